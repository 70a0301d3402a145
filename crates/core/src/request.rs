//! The logical request and response every dialect translates to and from.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::IpAddr;

/// What a request does to its path, as Vault's ACL sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Read,
    /// A write to a path that does not exist yet (the router decides create vs update with the
    /// engine's existence check).
    Create,
    Update,
    Patch,
    Delete,
    List,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            Operation::List => "list",
        }
    }
}

/// Which wire dialect a request arrived through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Vault,
    Aws,
    Azure,
    /// Internal calls (tests, scheduler).
    Internal,
}

/// Who a caller says it is. The core resolves every kind to one token context with policies
/// (the authenticate stage); dialects only parse it off the wire.
#[derive(Clone, Default)]
pub enum Credential {
    /// Nothing was presented.
    #[default]
    None,
    /// A Coffer token (Vault's `X-Vault-Token` / `Authorization: Bearer`, Azure bearer tokens).
    Token(String),
    /// A signed request (AWS SigV4): the proof that the holder of an access key's secret signed
    /// exactly this request. The core asks the auth method that issued the key to check it.
    Signed(SignedProof),
    /// Coffer acting on its own behalf (the rotation scheduler): the named actor, with root's
    /// rights. Only accepted on requests of [`Dialect::Internal`], which no dialect builds from
    /// the wire; audited under the actor's name.
    Internal(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print a token or a signature
        match self {
            Credential::None => f.write_str("None"),
            Credential::Token(_) => f.write_str("Token(..)"),
            Credential::Signed(p) => write!(f, "Signed({})", p.access_key_id),
            Credential::Internal(actor) => write!(f, "Internal({actor})"),
        }
    }
}

/// A signed-request proof (SigV4): what the signer claims and what the verifier recomputes.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedProof {
    /// The access key id (`AKIA…`) from the credential scope.
    pub access_key_id: String,
    /// The string to sign, recomputed by the dialect from the request as received.
    pub string_to_sign: String,
    /// The signature the client sent (lowercase hex).
    pub signature: String,
    pub scope: SigningScope,
    /// A session token sent with the request (`X-Amz-Security-Token`), if any.
    pub security_token: Option<String>,
}

impl std::fmt::Debug for SignedProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print the session token
        f.debug_struct("SignedProof")
            .field("access_key_id", &self.access_key_id)
            .field("scope", &self.scope)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| ".."),
            )
            .finish_non_exhaustive()
    }
}

/// SigV4's credential scope: `<date>/<region>/<service>/aws4_request`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningScope {
    /// `YYYYMMDD`.
    pub date: String,
    pub region: String,
    pub service: String,
}

/// Who a signed request turned out to be: what the issuing auth method tells the core.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SignedIdentity {
    pub policies: Vec<String>,
    /// Shown in the audit log and token lookups (e.g. `access-key-ci`).
    pub display_name: String,
    /// Identifies the credential in the audit log (the access key id).
    pub accessor: String,
    pub metadata: Map<String, Value>,
}

/// A request in the core's terms: an operation on a path, with the caller's credential.
#[derive(Clone)]
pub struct Request {
    pub id: String,
    pub operation: Operation,
    /// The path below the API prefix, e.g. `secret/data/apps/payment` (no leading slash).
    pub path: String,
    /// Body parameters (JSON object) merged with query parameters for reads.
    pub data: Map<String, Value>,
    /// What the caller presented to prove who it is.
    pub credential: Credential,
    pub remote_addr: Option<IpAddr>,
    pub dialect: Dialect,
    /// The dialect's own name for the operation, recorded in the audit log (e.g.
    /// `secretsmanager.GetSecretValue`); `None` for the Vault dialect, whose operation is the
    /// path and verb.
    pub operation_name: Option<String>,
    /// The requested response-wrapping TTL, as sent (`X-Vault-Wrap-TTL`).
    pub wrap_ttl: Option<String>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print data or credentials: they carry secrets
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("operation", &self.operation)
            .field("path", &self.path)
            .field("dialect", &self.dialect)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

impl Request {
    pub fn new(operation: Operation, path: impl Into<String>) -> Self {
        Request {
            id: uuid::Uuid::new_v4().to_string(),
            operation,
            path: path.into(),
            data: Map::new(),
            credential: Credential::None,
            remote_addr: None,
            dialect: Dialect::Vault,
            operation_name: None,
            wrap_ttl: None,
        }
    }
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.credential = Credential::Token(token.into());
        self
    }
    /// The token the caller presented, if its credential is a token.
    pub fn token(&self) -> Option<&str> {
        match &self.credential {
            Credential::Token(t) => Some(t.as_str()),
            _ => None,
        }
    }
    pub fn with_data(mut self, data: Value) -> Self {
        if let Value::Object(m) = data {
            self.data = m;
        }
        self
    }
}

/// Authentication material returned by logins and token creation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AuthInfo {
    pub client_token: String,
    pub accessor: String,
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    pub metadata: Option<Map<String, Value>>,
    pub lease_duration: u64,
    pub renewable: bool,
    pub entity_id: String,
    pub token_type: String,
    pub orphan: bool,
    pub mfa_requirement: Option<Value>,
    pub num_uses: u64,
}

/// What an engine answers.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub data: Option<Map<String, Value>>,
    pub auth: Option<AuthInfo>,
    pub warnings: Vec<String>,
    pub lease_id: String,
    pub lease_duration: u64,
    pub renewable: bool,
    /// The work goes on after the answer (e.g. a tidy run in the background): dialects that
    /// can say so answer "accepted" (Vault: 202).
    pub accepted: bool,
    /// Set by an auth method's login: the core turns it into a token (and its lease) and
    /// answers with `auth`.
    pub login: Option<LoginAuth>,
    /// Set when the response was wrapped: the caller gets only this.
    pub wrap_info: Option<WrapInfo>,
    /// Set by an engine that hands out something to revoke later (a database user): the core
    /// puts it under a lease (answered as `lease_id`, `lease_duration`, `renewable`) and asks
    /// the engine to revoke it when the lease is revoked or expires.
    pub secret: Option<SecretLease>,
    /// Names the schema of `data` when an engine answers with one of its typed results (e.g.
    /// the kv domain's `kv.version`): each dialect renders that result in its own shape. `None`
    /// means `data` is already the answer's body. Kept through response wrapping, so an
    /// unwrapped answer is rendered like the original.
    pub kind: Option<std::borrow::Cow<'static, str>>,
    /// The metadata of the identity a signed request resolved to (e.g. the access key's name
    /// and account), set by the core for dialects that render the caller (AWS ARNs). Never
    /// audited as response data.
    pub caller: Option<Map<String, Value>>,
}

/// What a wrapped response carries instead of its content.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WrapInfo {
    pub token: String,
    pub accessor: String,
    pub ttl: u64,
    pub creation_time: String,
    pub creation_path: String,
    pub wrapped_accessor: String,
}

/// What an engine asks to be leased.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecretLease {
    /// Seconds; 0 = the mount's default lease TTL.
    pub ttl: u64,
    /// Renewal cap from the issue time, seconds; 0 = the mount's max lease TTL.
    pub max_ttl: u64,
    pub renewable: bool,
    /// What the engine needs to revoke or renew it (stored under the barrier with the lease;
    /// never answered to the caller).
    pub internal: Map<String, Value>,
}

/// What an auth method returns from a successful login; the core creates the token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoginAuth {
    /// Policies for the token ("default" is added unless `no_default_policy`).
    pub policies: Vec<String>,
    /// Token metadata (string values), e.g. `{"role_name": "web"}` or `{"username": "bob"}`.
    pub metadata: Map<String, Value>,
    /// Shown as the token's display name, after the mount path (e.g. `approle`, `userpass-bob`).
    pub display_name: String,
    /// Seconds; 0 = the mount's default lease TTL.
    pub ttl: u64,
    /// Renewal cap in seconds; 0 = the mount's max lease TTL.
    pub max_ttl: u64,
    pub explicit_max_ttl: u64,
    pub period: u64,
    /// 0 = unlimited.
    pub num_uses: u64,
    pub renewable: bool,
    /// CIDRs the token may be used from (empty = anywhere).
    pub bound_cidrs: Vec<String>,
    pub no_default_policy: bool,
}

impl Response {
    pub fn data(data: Map<String, Value>) -> Self {
        Response {
            data: Some(data),
            ..Default::default()
        }
    }
    pub fn from_value(v: Value) -> Self {
        match v {
            Value::Object(m) => Self::data(m),
            _ => Response::default(),
        }
    }
    pub fn with_warning(mut self, w: impl Into<String>) -> Self {
        self.warnings.push(w.into());
        self
    }
    /// Whether there is nothing to send (Vault answers 204).
    pub fn is_empty(&self) -> bool {
        self.data.is_none()
            && self.auth.is_none()
            && self.login.is_none()
            && self.wrap_info.is_none()
            && self.lease_id.is_empty()
            && self.warnings.is_empty()
            && !self.accepted
    }
}
