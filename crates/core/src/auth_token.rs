//! The built-in token auth method, mounted at `auth/token/` (Vault's token API).

use crate::error::{CoreError, Result};
use crate::policy_store::normalize_name;
use crate::request::{AuthInfo, Operation, Response};
use crate::router::{Engine, EngineRequest, Ops, PathEntry, PathLookup, PathTable, RouteMatch};
use crate::token::{hash_token, NewToken, TokenEntry, TokenStore};
use crate::util::{format_unix, unix_now, value_as_i64};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub struct TokenEngine {
    tokens: Arc<TokenStore>,
    default_ttl: u64,
    max_ttl: u64,
    /// To ask the auth method that issued a token whether it may be renewed.
    router: std::sync::Weak<crate::router::Router>,
}

/// A token role (`auth/token/roles/<name>`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct TokenRole {
    name: String,
    #[serde(default)]
    allowed_policies: Vec<String>,
    #[serde(default)]
    disallowed_policies: Vec<String>,
    #[serde(default)]
    orphan: bool,
    #[serde(default = "yes")]
    renewable: bool,
    #[serde(default)]
    path_suffix: String,
    #[serde(default)]
    token_period: u64,
    #[serde(default)]
    token_explicit_max_ttl: u64,
    #[serde(default)]
    token_ttl: u64,
    #[serde(default)]
    token_num_uses: u64,
    #[serde(default)]
    token_no_default_policy: bool,
}

fn yes() -> bool {
    true
}

// parameters go through the one parser (`crate::params`), with this module's defaults

fn param_duration(data: &Map<String, Value>, key: &str) -> Result<u64> {
    Ok(crate::params::non_negative_duration(data, key)?.unwrap_or(0))
}

fn param_bool(data: &Map<String, Value>, key: &str, default: bool) -> Result<bool> {
    Ok(crate::params::bool_param(data, key)?.unwrap_or(default))
}

fn param_str<'a>(data: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(CoreError::invalid(format!(
            "invalid value for \"{key}\": expected a string"
        ))),
    }
}

fn param_list(data: &Map<String, Value>, key: &str) -> Result<Vec<String>> {
    Ok(crate::params::list_param(data, key)?.unwrap_or_default())
}

/// A list of policy names in their canonical form (a name that has none is refused).
fn policy_list(data: &Map<String, Value>, key: &str) -> Result<Vec<String>> {
    param_list(data, key)?
        .iter()
        .map(|p| normalize_name(p))
        .collect()
}

/// The data `auth/token/lookup*` returns.
pub fn lookup_data(e: &TokenEntry, id: Option<&str>) -> Map<String, Value> {
    let now = unix_now();
    let mut m = Map::new();
    m.insert("accessor".into(), e.accessor.clone().into());
    m.insert("creation_time".into(), (e.creation_time as i64).into());
    m.insert(
        "creation_ttl".into(),
        (if e.creation_ttl > 0 {
            e.creation_ttl
        } else {
            e.ttl
        })
        .into(),
    );
    m.insert("display_name".into(), e.display_name.clone().into());
    m.insert("entity_id".into(), e.entity_id.clone().into());
    m.insert(
        "expire_time".into(),
        e.expire_time
            .map(|t| Value::String(format_unix(t)))
            .unwrap_or(Value::Null),
    );
    m.insert("explicit_max_ttl".into(), e.explicit_max_ttl.into());
    m.insert("id".into(), id.unwrap_or("").into());
    m.insert("issue_time".into(), format_unix(e.creation_time).into());
    m.insert(
        "meta".into(),
        if e.meta.is_empty() {
            Value::Null
        } else {
            Value::Object(e.meta.clone())
        },
    );
    m.insert("num_uses".into(), e.num_uses.into());
    m.insert("orphan".into(), e.orphan.into());
    m.insert("path".into(), e.path.clone().into());
    m.insert("policies".into(), json!(e.policies));
    m.insert("renewable".into(), e.renewable.into());
    m.insert("ttl".into(), e.ttl_left(now).into());
    m.insert("type".into(), "service".into());
    if e.period > 0 {
        m.insert("period".into(), e.period.into());
    }
    if let Some(r) = &e.role {
        m.insert("role".into(), r.clone().into());
    }
    if !e.bound_cidrs.is_empty() {
        m.insert("bound_cidrs".into(), json!(e.bound_cidrs));
    }
    m
}

/// The `auth` block of a response carrying a token.
pub fn auth_info(token: String, e: &TokenEntry) -> AuthInfo {
    AuthInfo {
        client_token: token,
        accessor: e.accessor.clone(),
        policies: e.policies.clone(),
        token_policies: e.policies.clone(),
        metadata: (!e.meta.is_empty()).then(|| e.meta.clone()),
        lease_duration: e.ttl,
        renewable: e.renewable,
        entity_id: e.entity_id.clone(),
        token_type: "service".into(),
        orphan: e.orphan,
        mfa_requirement: None,
        num_uses: e.num_uses,
    }
}

impl TokenEngine {
    pub fn new(
        tokens: Arc<TokenStore>,
        default_ttl: u64,
        max_ttl: u64,
        router: std::sync::Weak<crate::router::Router>,
    ) -> Self {
        TokenEngine {
            tokens,
            default_ttl,
            max_ttl,
            router,
        }
    }

    fn caller<'a>(&self, req: &'a EngineRequest<'_>) -> Result<&'a TokenEntry> {
        req.token.ok_or_else(CoreError::denied)
    }

    async fn create(
        &self,
        req: &EngineRequest<'_>,
        orphan_path: bool,
        role_name: Option<&str>,
    ) -> Result<Response> {
        let caller = self.caller(req)?;
        let d = req.data;
        let is_root = caller.is_root();
        let role = match role_name {
            Some(name) => Some(
                self.load_role(req, name)
                    .await?
                    .ok_or_else(|| CoreError::invalid(format!("unknown role {name}")))?,
            ),
            None => None,
        };
        let mut policies = policy_list(d, "policies")?;
        let no_default = param_bool(
            d,
            "no_default_policy",
            role.as_ref().is_some_and(|r| r.token_no_default_policy),
        )?;
        let no_parent = param_bool(d, "no_parent", false)?;
        if no_parent && !is_root && !orphan_path {
            return Err(CoreError::invalid(
                "root or sudo privileges required to create orphan token",
            ));
        }
        if param_str(d, "id")?.is_some_and(|id| id.contains('.')) {
            return Err(CoreError::invalid(
                "token IDs can not contain a '.' character",
            ));
        }
        if param_str(d, "id")?.is_some() && !is_root {
            return Err(CoreError::invalid(
                "root or sudo privileges required to specify token id",
            ));
        }
        // A role's allowed_policies replace the rule that a child's policies are a subset of its
        // parent's; without them the usual rule applies (Vault). disallowed_policies always do.
        let role_allowed = role
            .as_ref()
            .map(|r| r.allowed_policies.clone())
            .filter(|a| !a.is_empty());
        if let Some(allowed) = &role_allowed {
            if policies.is_empty() {
                policies = allowed.clone();
            }
            if let Some(bad) = policies
                .iter()
                .find(|p| *p != "default" && !allowed.contains(p))
            {
                return Err(CoreError::invalid(format!(
                    "token policies ({bad}) must be subset of the role's allowed policies"
                )));
            }
        } else if policies.is_empty() {
            policies = caller
                .policies
                .iter()
                .filter(|p| *p != "default")
                .cloned()
                .collect();
            if caller.is_root() && policies.is_empty() {
                policies = vec!["root".into()];
            }
        } else if !is_root {
            if let Some(bad) = policies
                .iter()
                .find(|p| *p != "default" && !caller.policies.contains(p))
            {
                return Err(CoreError::invalid(format!(
                    "child policies must be subset of parent (\"{bad}\" is not)"
                )));
            }
        }
        if let Some(r) = &role {
            if let Some(bad) = policies.iter().find(|p| r.disallowed_policies.contains(p)) {
                return Err(CoreError::invalid(format!(
                    "token policy ({bad}) is disallowed by this role"
                )));
            }
        }
        if policies
            .iter()
            .any(|p| p == crate::wrapping::WRAPPING_POLICY)
        {
            return Err(CoreError::invalid(
                "the response-wrapping policy is reserved for wrapping tokens",
            ));
        }
        if policies.iter().any(|p| p == "root") && !is_root {
            return Err(CoreError::invalid(
                "root tokens may not be created by non-root tokens",
            ));
        }
        if !no_default
            && !policies.iter().any(|p| p == "root")
            && !policies.iter().any(|p| p == "default")
        {
            policies.push("default".into());
        }
        policies.sort();
        policies.dedup();

        let mut ttl = param_duration(d, "ttl")?;
        if ttl == 0 {
            ttl = param_duration(d, "lease")?;
        }
        let mut explicit_max_ttl = param_duration(d, "explicit_max_ttl")?;
        let mut period = param_duration(d, "period")?;
        if period > 0 && !is_root {
            return Err(CoreError::invalid(
                "root or sudo privileges required to create periodic token",
            ));
        }
        let mut num_uses = match d.get("num_uses") {
            None | Some(Value::Null) => 0,
            Some(v) => {
                let n = value_as_i64(v)
                    .ok_or_else(|| CoreError::invalid("invalid value for \"num_uses\""))?;
                if n < 0 {
                    return Err(CoreError::invalid("number of uses cannot be negative"));
                }
                n as u64
            }
        };
        let mut renewable = param_bool(d, "renewable", true)?;
        let mut orphan = no_parent || orphan_path;
        let mut path = "auth/token/create".to_string();
        if let Some(r) = &role {
            orphan |= r.orphan;
            renewable &= r.renewable;
            if period == 0 {
                period = r.token_period;
            }
            if ttl == 0 {
                ttl = r.token_ttl;
            }
            if r.token_explicit_max_ttl > 0
                && (explicit_max_ttl == 0 || explicit_max_ttl > r.token_explicit_max_ttl)
            {
                explicit_max_ttl = r.token_explicit_max_ttl;
            }
            if num_uses == 0 {
                num_uses = r.token_num_uses;
            }
            path = format!("auth/token/create/{}", r.name);
            if !r.path_suffix.is_empty() {
                path = format!("{path}/{}", r.path_suffix);
            }
        } else if orphan_path {
            path = "auth/token/create-orphan".into();
        }
        let is_root_token = policies.iter().any(|p| p == "root");
        if ttl == 0 && period == 0 && !(is_root_token && explicit_max_ttl == 0) {
            ttl = self.default_ttl;
        }
        if self.max_ttl > 0 && ttl > self.max_ttl && period == 0 {
            ttl = self.max_ttl;
        }
        let display = match param_str(d, "display_name")? {
            Some(n) if !n.is_empty() => display_name(n),
            _ => "token".to_string(),
        };
        let meta = match d.get("meta") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => {
                if m.values().any(|v| !v.is_string()) {
                    return Err(CoreError::invalid("\"meta\" values must be strings"));
                }
                m.clone()
            }
            Some(_) => return Err(CoreError::invalid("\"meta\" must be a map of strings")),
        };
        let (token, entry) = self
            .tokens
            .create(NewToken {
                id: param_str(d, "id")?.map(str::to_string),
                policies,
                parent: if orphan {
                    None
                } else {
                    Some(caller.hash.clone())
                },
                meta,
                display_name: display,
                num_uses,
                ttl,
                explicit_max_ttl,
                period,
                renewable,
                path,
                role: role.map(|r| r.name),
                bound_cidrs: vec![],
                max_ttl: 0,
            })
            .await?;
        Ok(Response {
            auth: Some(auth_info(token, &entry)),
            ..Default::default()
        })
    }

    /// The token named by the `token` parameter. Unknown tokens: `unknown` is the error (Vault
    /// answers lookups with 403 "bad token" and renewals with 400 "token not found").
    async fn target_from_token_param(
        &self,
        req: &EngineRequest<'_>,
        unknown: fn() -> CoreError,
    ) -> Result<(String, Arc<TokenEntry>)> {
        let token = param_str(req.data, "token")?
            .filter(|t| !t.is_empty())
            .ok_or_else(|| CoreError::invalid("missing token"))?;
        let entry = self.tokens.lookup(token).await?.ok_or_else(unknown)?;
        Ok((token.to_string(), entry))
    }

    async fn target_from_accessor(&self, req: &EngineRequest<'_>) -> Result<Arc<TokenEntry>> {
        let acc = param_str(req.data, "accessor")?
            .filter(|t| !t.is_empty())
            .ok_or_else(|| CoreError::invalid("missing accessor"))?;
        self.tokens
            .lookup_accessor(acc)
            .await?
            .ok_or_else(|| CoreError::invalid("invalid accessor"))
    }

    fn increment(&self, req: &EngineRequest<'_>) -> Result<u64> {
        param_duration(req.data, "increment")
    }

    /// A token from an auth method's login is renewed only while that method still vouches for
    /// it (Vault asks the method's renew handler).
    async fn check_issuer(&self, e: &TokenEntry) -> Result<()> {
        if !e.path.starts_with("auth/") || e.path.starts_with("auth/token/") {
            return Ok(());
        }
        let router = self.router.upgrade().ok_or_else(CoreError::sealed)?;
        let (mount, rel) = router.route(&e.path).ok_or_else(|| {
            CoreError::invalid("the auth method that issued this token is no longer enabled")
        })?;
        let data = Map::new();
        let req = EngineRequest {
            operation: Operation::Update,
            path: rel,
            data: &data,
            storage: &mount.view,
            mount: &mount.entry,
            token: Some(e),
            client_token: None,
            request_id: "",
            remote_addr: None,
            acl: None,
        };
        mount.engine.renew_check(&req).await
    }

    async fn renewed(
        &self,
        token: Option<String>,
        e: &TokenEntry,
        increment: u64,
    ) -> Result<Response> {
        self.check_issuer(e).await?;
        let renewed = self.tokens.renew(&e.hash, increment, self.max_ttl).await?;
        Ok(Response {
            auth: Some(auth_info(token.unwrap_or_default(), &renewed)),
            ..Default::default()
        })
    }

    async fn load_role(&self, req: &EngineRequest<'_>, name: &str) -> Result<Option<TokenRole>> {
        req.storage
            .get_json(&format!("roles/{}", role_key(name)?))
            .await
    }

    async fn write_role(&self, req: &EngineRequest<'_>, name: &str) -> Result<Option<Response>> {
        let key = role_key(name)?;
        let mut role = self.load_role(req, name).await?.unwrap_or(TokenRole {
            name: key.clone(),
            renewable: true,
            ..Default::default()
        });
        let d = req.data;
        if d.contains_key("allowed_policies") {
            role.allowed_policies = policy_list(d, "allowed_policies")?;
            // a role is a standing grant: it may not hand out root or wrapping tokens
            crate::names::refuse_reserved_policies(&role.allowed_policies)?;
        }
        if d.contains_key("disallowed_policies") {
            role.disallowed_policies = policy_list(d, "disallowed_policies")?;
        }
        role.orphan = param_bool(d, "orphan", role.orphan)?;
        role.renewable = param_bool(d, "renewable", role.renewable)?;
        role.token_no_default_policy =
            param_bool(d, "token_no_default_policy", role.token_no_default_policy)?;
        if let Some(s) = param_str(d, "path_suffix")? {
            role.path_suffix = s.to_string();
        }
        for (k, slot) in [
            ("token_period", &mut role.token_period),
            ("token_explicit_max_ttl", &mut role.token_explicit_max_ttl),
            ("token_ttl", &mut role.token_ttl),
        ] {
            if d.contains_key(k) {
                *slot = param_duration(d, k)?;
            }
        }
        for (legacy, k) in [
            ("period", "token_period"),
            ("explicit_max_ttl", "token_explicit_max_ttl"),
        ] {
            if d.contains_key(legacy) && !d.contains_key(k) {
                let v = param_duration(d, legacy)?;
                if k == "token_period" {
                    role.token_period = v;
                } else {
                    role.token_explicit_max_ttl = v;
                }
            }
        }
        if let Some(v) = d.get("token_num_uses") {
            role.token_num_uses = value_as_i64(v)
                .filter(|n| *n >= 0)
                .ok_or_else(|| CoreError::invalid("invalid value for \"token_num_uses\""))?
                as u64;
        }
        req.storage.put_json(&format!("roles/{key}"), &role).await?;
        Ok(None)
    }
}

fn bad_token() -> CoreError {
    CoreError::new(crate::error::ErrorCode::PermissionDenied, "bad token")
}

fn token_not_found() -> CoreError {
    CoreError::invalid("token not found")
}

/// Vault's display names: `token-` plus the name with every character outside `[a-zA-Z0-9-]`
/// replaced by `-`, and trailing dashes removed.
fn display_name(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_end_matches('-');
    format!("token-{cleaned}")
}

/// Token role names are canonical before the handler runs ([`Engine::canonical_path`]); this
/// check keeps a name that did not come through the core from being stored another way.
fn role_key(name: &str) -> Result<String> {
    crate::names::object_name("role", name)
}

fn role_data(r: &TokenRole) -> Map<String, Value> {
    let v = json!({
        "name": r.name,
        "allowed_policies": r.allowed_policies,
        "disallowed_policies": r.disallowed_policies,
        "orphan": r.orphan,
        "renewable": r.renewable,
        "path_suffix": r.path_suffix,
        "token_period": r.token_period,
        "period": r.token_period,
        "token_explicit_max_ttl": r.token_explicit_max_ttl,
        "explicit_max_ttl": r.token_explicit_max_ttl,
        "token_ttl": r.token_ttl,
        "token_num_uses": r.token_num_uses,
        "token_no_default_policy": r.token_no_default_policy,
        "token_type": "service",
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The endpoints of `auth/token/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Create,
    CreateOrphan,
    CreateWithRole,
    LookupSelf,
    Lookup,
    LookupAccessor,
    RenewSelf,
    Renew,
    RenewAccessor,
    RevokeSelf,
    Revoke,
    RevokeAccessor,
    RevokeOrphan,
    ListAccessors,
    ListRoles,
    ReadRole,
    WriteRole,
    DeleteRole,
    Tidy,
    /// Answered as an unknown path (see `create/{role_name+}`).
    Unknown,
}

const WRITE: Ops = Ops::WRITE;
const READ_WRITE: Ops = Ops::READ.or(Ops::WRITE);
const NOT_WRITE: Ops = Ops::READ.or(Ops::PATCH).or(Ops::DELETE).or(Ops::LIST);
const REVOKE_ORPHAN: &[(Ops, Path)] = &[(WRITE, Path::RevokeOrphan)];

/// Vault's token store paths. Trailing slashes are ignored (`/?`). Root-protected as in Vault
/// (`revoke-orphan`, `accessors*`); `revoke-orphan/` is not (it was not before the table, and
/// only a list reaches it).
static PATHS: PathTable<Path> = PathTable::new(&[
    PathEntry::new("create/?", &[(WRITE, Path::Create)]),
    PathEntry::new("create-orphan/?", &[(WRITE, Path::CreateOrphan)]),
    // other operations on a role's create path have always been an unknown path here (Vault:
    // unsupported operation); kept so that no client sees a change
    PathEntry::new(
        "create/{role_name+}/?",
        &[(WRITE, Path::CreateWithRole), (NOT_WRITE, Path::Unknown)],
    ),
    PathEntry::new("lookup-self/?", &[(READ_WRITE, Path::LookupSelf)]),
    PathEntry::new("lookup/?", &[(READ_WRITE, Path::Lookup)]),
    PathEntry::new("lookup-accessor/?", &[(WRITE, Path::LookupAccessor)]),
    PathEntry::new("renew-self/?", &[(WRITE, Path::RenewSelf)]),
    PathEntry::new("renew/?", &[(WRITE, Path::Renew)]),
    PathEntry::new("renew-accessor/?", &[(WRITE, Path::RenewAccessor)]),
    PathEntry::new("revoke-self/?", &[(WRITE, Path::RevokeSelf)]),
    PathEntry::new("revoke/?", &[(WRITE, Path::Revoke)]),
    PathEntry::new("revoke-accessor/?", &[(WRITE, Path::RevokeAccessor)]),
    PathEntry::new("revoke-orphan", REVOKE_ORPHAN).sudo(),
    PathEntry::new("revoke-orphan/", REVOKE_ORPHAN),
    PathEntry::new("accessors/?", &[(Ops::LIST, Path::ListAccessors)]).sudo(),
    PathEntry::new("roles/?", &[(Ops::LIST, Path::ListRoles)]),
    PathEntry::new(
        "roles/{role_name+}/?",
        &[
            (Ops::READ, Path::ReadRole),
            (WRITE, Path::WriteRole),
            (Ops::DELETE, Path::DeleteRole),
        ],
    ),
    PathEntry::new("tidy/?", &[(WRITE, Path::Tidy)]),
]);

#[async_trait]
impl Engine for TokenEngine {
    fn canonical_path<'a>(&self, rel: &'a str) -> Result<std::borrow::Cow<'a, str>> {
        crate::names::canonical_segment(rel, &["roles/", "create/"], |n| {
            crate::names::object_name("role", n)
        })
    }

    fn paths(&self) -> Option<&'static dyn PathLookup> {
        Some(&PATHS)
    }

    async fn handle(&self, req: &EngineRequest<'_>) -> Result<Option<Response>> {
        let route = PATHS.find_for(req)?;
        self.handle_route(req, &route).await
    }

    async fn handle_route(
        &self,
        req: &EngineRequest<'_>,
        route: &RouteMatch,
    ) -> Result<Option<Response>> {
        let op = req.operation;
        let caps = route.captures(req.path);
        match PATHS.handler(route, op)? {
            Path::Create => self.create(req, false, None).await.map(Some),
            Path::CreateOrphan => self.create(req, true, None).await.map(Some),
            Path::CreateWithRole => {
                let role = caps.get("role_name")?;
                self.create(req, false, Some(role)).await.map(Some)
            }
            Path::LookupSelf => {
                let e = self.caller(req)?;
                Ok(Some(Response::data(lookup_data(e, req.client_token))))
            }
            Path::Lookup => {
                if param_str(req.data, "token")?.is_none() && op == Operation::Read {
                    let e = self.caller(req)?;
                    return Ok(Some(Response::data(lookup_data(e, req.client_token))));
                }
                let (token, e) = self.target_from_token_param(req, bad_token).await?;
                Ok(Some(Response::data(lookup_data(&e, Some(&token)))))
            }
            Path::LookupAccessor => {
                let e = self.target_from_accessor(req).await?;
                Ok(Some(Response::data(lookup_data(&e, None))))
            }
            Path::RenewSelf => {
                let e = self.caller(req)?;
                self.renewed(req.client_token.map(str::to_string), e, self.increment(req)?)
                    .await
                    .map(Some)
            }
            Path::Renew => {
                let (token, e) = self.target_from_token_param(req, token_not_found).await?;
                self.renewed(Some(token), &e, self.increment(req)?).await.map(Some)
            }
            Path::RenewAccessor => {
                let e = self.target_from_accessor(req).await?;
                self.renewed(None, &e, self.increment(req)?).await.map(Some)
            }
            Path::RevokeSelf => {
                let e = self.caller(req)?;
                self.tokens.revoke_tree(&e.hash).await?;
                Ok(None)
            }
            Path::Revoke => {
                let token = param_str(req.data, "token")?
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| CoreError::invalid("missing token"))?;
                // revoking an unknown token succeeds, as in Vault
                self.tokens.revoke_tree(&hash_token(token)).await?;
                Ok(None)
            }
            Path::RevokeAccessor => {
                let acc = param_str(req.data, "accessor")?
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| CoreError::invalid("missing accessor"))?;
                if let Some(h) = self.tokens.hash_for_accessor(acc).await? {
                    self.tokens.revoke_tree(&h).await?;
                }
                Ok(None)
            }
            Path::RevokeOrphan => {
                let token = param_str(req.data, "token")?
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| CoreError::invalid("missing token"))?;
                self.tokens.revoke_orphan(&hash_token(token)).await?;
                Ok(None)
            }
            Path::ListAccessors => {
                let keys = self.tokens.list_accessors().await?;
                Ok(Some(Response::data(keys_map(keys))))
            }
            Path::ListRoles => {
                let keys = req.storage.list("roles/").await?;
                if keys.is_empty() {
                    return Err(CoreError::not_found(""));
                }
                Ok(Some(Response::data(keys_map(keys))))
            }
            Path::ReadRole => match self.load_role(req, caps.get("role_name")?).await? {
                Some(r) => Ok(Some(Response::data(role_data(&r)))),
                None => Err(CoreError::not_found("")),
            },
            Path::WriteRole => self.write_role(req, caps.get("role_name")?).await,
            Path::DeleteRole => {
                let key = role_key(caps.get("role_name")?)?;
                req.storage.delete(&format!("roles/{key}")).await?;
                Ok(None)
            }
            Path::Tidy => Ok(Some(Response::default().with_warning(
                "Tidy operation successfully started. Any information from the operation will be printed to the server log.",
            ))),
            Path::Unknown => Err(CoreError::unsupported_path(&format!("auth/token/{}", req.path))),
        }
    }
}

pub(crate) fn keys_map(keys: Vec<String>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("keys".into(), json!(keys));
    m
}

#[cfg(test)]
mod path_tests {
    use super::*;

    /// The table's flags are Vault's: `revoke-orphan` and `accessors` need sudo (Vault's
    /// `PathsSpecial.Root`: `revoke-orphan/*`, `accessors*`), nothing is unauthenticated, no
    /// path has an existence check.
    #[test]
    fn path_flags_are_vaults() {
        assert!(PATHS.problems().is_empty(), "{:?}", PATHS.problems());
        for p in ["revoke-orphan", "accessors", "accessors/"] {
            assert!(PATHS.flags(p).sudo, "{p}");
        }
        for p in [
            "revoke",
            "create",
            "create-orphan",
            "lookup-self",
            "roles/x",
            "tidy",
        ] {
            assert!(!PATHS.flags(p).sudo, "{p}");
        }
        assert!(PATHS
            .entries()
            .iter()
            .all(|e| !e.flags.unauthenticated && !e.flags.existence_check));
    }

    #[test]
    fn create_paths() {
        let m = PATHS.lookup("create/web/").unwrap();
        assert_eq!(m.captures("create/web/").get("role_name").unwrap(), "web");
        assert_eq!(
            PATHS.handler(&m, Operation::Update).unwrap(),
            Path::CreateWithRole
        );
        assert_eq!(PATHS.handler(&m, Operation::Read).unwrap(), Path::Unknown);
        let m = PATHS.lookup("create/").unwrap();
        assert_eq!(PATHS.handler(&m, Operation::Update).unwrap(), Path::Create);
    }
}
