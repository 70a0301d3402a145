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

/// A request in the core's terms: an operation on a path, with the caller's credentials.
#[derive(Clone)]
pub struct Request {
    pub id: String,
    pub operation: Operation,
    /// The path below the API prefix, e.g. `secret/data/apps/payment` (no leading slash).
    pub path: String,
    /// Body parameters (JSON object) merged with query parameters for reads.
    pub data: Map<String, Value>,
    /// The client token, if any was sent.
    pub token: Option<String>,
    pub remote_addr: Option<IpAddr>,
    pub dialect: Dialect,
    /// The HTTP method as sent, for engines that care (PATCH content types are checked by the API).
    pub wrap_ttl: Option<String>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never print data or token: they carry secrets
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("operation", &self.operation)
            .field("path", &self.path)
            .field("dialect", &self.dialect)
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
            token: None,
            remote_addr: None,
            dialect: Dialect::Vault,
            wrap_ttl: None,
        }
    }
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
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
    /// Also copy `data`'s fields to the top level of the body (Vault does this for some legacy
    /// sys endpoints such as `sys/mounts` and `sys/policy`).
    pub data_at_top_level: bool,
    /// Return this HTTP-ish status with the body instead of the default (e.g. 404 with data for
    /// a kv v2 read of a deleted version).
    pub status: Option<u16>,
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
            && self.warnings.is_empty()
            && self.status.is_none()
    }
}
