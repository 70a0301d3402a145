//! The request pipeline: every dialect's request runs the same named stages, each a small
//! function of its own:
//!
//! 1. **resolve** — the canonical path, the target (sys or a mount) and what it needs
//!    (unauthenticated, sudo), the wrapping TTL;
//! 2. **authenticate** — the credential (none, token, signed proof) to one token context;
//! 3. **authorize** — the ACL decision for the canonical path (a denial is remembered, not yet
//!    answered, so that it is audited);
//! 4. **audit request** — fail-closed: no device, no request;
//! 5. **dispatch** — the engine or sys handler (a panic is answered as an internal error), after
//!    spending one use of a limited token;
//! 6. **finish** — login answers become tokens, wrapped requests get wrapped;
//! 7. **audit response** — fail-closed as well.

use crate::core::{Active, Core};
use crate::error::{CoreError, ErrorCode, Result};
use crate::request::{Credential, Operation, Request, Response, SignedProof};
use crate::router::{EngineRequest, Mount, MountEntry, RouteMatch};
use crate::token::{NewToken, TokenEntry};
use crate::util::validate_path;
use futures_util::FutureExt as _;
use std::sync::Arc;

/// Where a request goes. One per request, never moved around in bulk: its size is no concern.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Target {
    /// A `sys/` endpoint (the path below `sys/`).
    Sys(String),
    /// A mount, the canonical path below it, and its match in the engine's path table (`None`:
    /// an unknown path, or an engine without a table).
    Mount(Mount, String, Option<RouteMatch>),
}

/// A request on its way through the stages.
pub(crate) struct Pending {
    pub req: Request,
    /// The canonical path (also in `req.path`).
    pub path: String,
    pub target: Target,
    /// The operation after create/update resolution.
    pub op: Operation,
    pub unauthenticated: bool,
    pub needs_sudo: bool,
    pub wrap_ttl: Option<u64>,
    pub token: Option<Arc<TokenEntry>>,
    /// The path and capability the ACL checks when the engine's path table aliases the path
    /// ([`crate::paths::AclAlias`]); `None`: the canonical path and `op`.
    pub acl: Option<(String, Option<Operation>)>,
    /// The caller's ACL, once the authorize stage consulted it (engines filter listings by it).
    pub acl_set: Option<Arc<crate::policy::Acl>>,
    /// A refusal decided by authenticate or authorize, answered after the request is audited.
    pub denied: Option<CoreError>,
}

impl Pending {
    fn mount_labels(&self) -> (&str, &str) {
        match &self.target {
            Target::Sys(_) => ("system", "system"),
            Target::Mount(m, ..) => (m.entry.kind.as_str(), m.entry.accessor.as_str()),
        }
    }

    fn audit_input<'a>(
        &'a self,
        response: Option<&'a Response>,
        error: Option<&'a str>,
    ) -> crate::audit::AuditInput<'a> {
        let (mount_type, mount_accessor) = self.mount_labels();
        crate::audit::AuditInput {
            request: &self.req,
            operation: self.op,
            token: self.token.as_deref(),
            mount_type,
            mount_accessor,
            response,
            error,
        }
    }
}

impl Core {
    /// Handle one logical request through the stages (see the module docs). Audit is
    /// fail-closed on both sides.
    pub async fn handle(&self, req: Request) -> Result<Response> {
        let active = self.active()?;
        let mut p = self.resolve(&active, req)?;
        self.authenticate_stage(&active, &mut p).await?;
        self.resolve_operation(&mut p).await?;
        self.authorize_stage(&active, &mut p).await?;
        let error = p.denied.as_ref().map(|e| e.message.clone());
        active
            .audit
            .log_request(&p.audit_input(None, error.as_deref()))
            .await?;
        if let Some(e) = p.denied.take() {
            return Err(e);
        }
        self.spend_use(&active, &p).await?;
        let result = self.dispatch(&active, &p).await;
        let mut result = self.finish(&active, &p, result).await;
        active
            .audit
            .log_response(&p.audit_input(
                result.as_ref().ok(),
                result.as_ref().err().map(|e| e.message.as_str()),
            ))
            .await?;
        if let (Ok(resp), Credential::Signed(_), Some(t)) =
            (&mut result, &p.req.credential, &p.token)
        {
            resp.caller = Some(t.meta.clone());
        }
        if p.path == "sys/seal" && result.is_ok() {
            // sealed only now, so the audit devices' saved positions include this last entry
            self.seal().await?;
        }
        result
    }

    /// Stage 1: the one canonical path that serves the ACL check, routing, audit and the
    /// handler alike (no spelling of a path can be checked as one thing and run as another),
    /// and the target.
    pub(crate) fn resolve(&self, active: &Active, mut req: Request) -> Result<Pending> {
        validate_path(&req.path)?;
        req.path = canonical_path(&req.path, req.operation)?;
        let wrap_ttl = match req.wrap_ttl.as_deref().filter(|w| !w.is_empty()) {
            Some(w) => Some(crate::wrapping::parse_wrap_ttl(w)?),
            None => None,
        };
        let mut op = req.operation;
        let mut acl = None;
        let (target, unauthenticated, needs_sudo) =
            if let Some(rest) = req.path.strip_prefix("sys/") {
                if op == Operation::Create {
                    op = Operation::Update;
                }
                let rest = rest.trim_end_matches('/').to_string();
                let unauth = crate::sys::unauthenticated(&rest);
                let sudo = crate::sys::needs_sudo(&rest, op);
                (Target::Sys(rest), unauth, sudo)
            } else {
                let (mount, rel) = active
                    .router
                    .route(&req.path)
                    .ok_or_else(|| CoreError::unsupported_path(&req.path))?;
                // the names the engine keeps get their one spelling before the ACL sees the path
                let rel = mount.engine.canonical_path(rel)?.into_owned();
                let canonical = format!("{}{rel}", mount.entry.path);
                if canonical != req.path {
                    req.path = canonical;
                }
                // the one match of the path in the engine's table: its flags now, its handler at
                // dispatch
                let route = mount.engine.paths().and_then(|table| table.find(&rel));
                let flags = route.map(|r| r.flags).unwrap_or_default();
                if let (Some(alias), Some(route)) = (flags.acl, route) {
                    let name = route.captures(&rel).opt("path").unwrap_or("");
                    acl = Some((
                        format!("{}{}{name}", mount.entry.path, alias.prefix),
                        alias.op,
                    ));
                }
                let (unauth, sudo) = (flags.unauthenticated, flags.sudo);
                (Target::Mount(mount, rel, route), unauth, sudo)
            };
        Ok(Pending {
            path: req.path.clone(),
            req,
            target,
            op,
            unauthenticated,
            needs_sudo,
            wrap_ttl,
            token: None,
            acl,
            acl_set: None,
            denied: None,
        })
    }

    /// Stage 2: who is calling. On an unauthenticated path a credential is looked at but not
    /// required; elsewhere a missing or bad one is a denial (audited before it is answered).
    pub(crate) async fn authenticate_stage(&self, active: &Active, p: &mut Pending) -> Result<()> {
        if p.unauthenticated {
            p.token = match &p.req.credential {
                Credential::Token(t) if !t.is_empty() => active.tokens.lookup(t).await?,
                _ => None,
            };
            return Ok(());
        }
        if let Credential::Internal(actor) = &p.req.credential {
            if p.req.dialect != crate::request::Dialect::Internal {
                p.denied = Some(CoreError::unauthenticated());
                return Ok(());
            }
            p.token = Some(Arc::new(TokenEntry::ephemeral(
                format!("internal-{actor}"),
                vec![crate::names::ROOT_POLICY.to_string()],
                format!("coffer-{actor}"),
                serde_json::Map::new(),
                "internal/".to_string(),
            )));
            return Ok(());
        }
        match self
            .authenticate_credential(active, &p.req.credential, p.req.remote_addr)
            .await
        {
            Ok(e) => p.token = Some(e),
            Err(e) if e.code == ErrorCode::Unauthenticated => p.denied = Some(e),
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Resolve any credential to a token context: a token is looked up; a signed proof is
    /// checked by the auth method that issued its key, which answers with the identity's
    /// policies (an ephemeral context: nothing is stored, nothing to spend).
    pub async fn authenticate_credential(
        &self,
        active: &Active,
        credential: &Credential,
        remote: Option<std::net::IpAddr>,
    ) -> Result<Arc<TokenEntry>> {
        match credential {
            Credential::None => Err(CoreError::unauthenticated()),
            Credential::Token(t) => self.authenticate(active, Some(t), remote).await,
            Credential::Signed(proof) => self.authenticate_signed(active, proof).await,
            // only the authenticate stage accepts it, for internal requests
            Credential::Internal(_) => Err(CoreError::unauthenticated()),
        }
    }

    /// Authenticate a token: unknown, expired, missing or used from outside its CIDRs →
    /// unauthenticated.
    pub async fn authenticate(
        &self,
        active: &Active,
        token: Option<&str>,
        remote: Option<std::net::IpAddr>,
    ) -> Result<Arc<TokenEntry>> {
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(CoreError::unauthenticated)?;
        let entry = active
            .tokens
            .lookup(token)
            .await?
            .ok_or_else(CoreError::unauthenticated)?;
        if !crate::util::cidrs_allow(&entry.bound_cidrs, remote) {
            return Err(CoreError::unauthenticated());
        }
        Ok(entry)
    }

    async fn authenticate_signed(
        &self,
        active: &Active,
        proof: &SignedProof,
    ) -> Result<Arc<TokenEntry>> {
        let table = active.router.snapshot();
        for mount in table.iter().filter(|m| m.engine.issues_signing_keys()) {
            if let Some(identity) = mount.engine.resolve_signed(&mount.view, proof).await? {
                let mut policies: Vec<String> = identity
                    .policies
                    .iter()
                    .map(|p| crate::names::policy_name(p))
                    .collect::<Result<_>>()?;
                if policies.iter().any(|p| crate::names::is_reserved_policy(p)) {
                    return Err(CoreError::unauthenticated());
                }
                policies.push(crate::names::DEFAULT_POLICY.into());
                policies.sort();
                policies.dedup();
                return Ok(Arc::new(TokenEntry::ephemeral(
                    identity.accessor,
                    policies,
                    identity.display_name,
                    identity.metadata,
                    mount.entry.path.clone(),
                )));
            }
        }
        Err(CoreError::unauthenticated())
    }

    /// For writes to a mount: `create` when the target does not exist yet, else `update` (the
    /// ACL tells them apart). Skipped for a caller already refused, so a refused caller cannot
    /// probe what exists.
    pub(crate) async fn resolve_operation(&self, p: &mut Pending) -> Result<()> {
        if let (Target::Mount(mount, rel, route), None) = (&p.target, &p.denied) {
            if p.op == Operation::Update || p.op == Operation::Create {
                // with a table, only the paths it flags have an existence check
                let checked = mount.engine.paths().is_none()
                    || route.is_some_and(|r| r.flags.existence_check);
                if !checked {
                    p.op = Operation::Update;
                    return Ok(());
                }
                let probe = engine_request(p.op, mount, rel, &p.req, p.token.as_deref());
                p.op = match mount.engine.exists(&probe).await? {
                    Some(false) => Operation::Create,
                    _ => Operation::Update,
                };
            }
        }
        Ok(())
    }

    /// Stage 3: the ACL decision for the canonical path (skipped for unauthenticated paths and
    /// for the sys paths any valid token may use).
    pub(crate) async fn authorize_stage(&self, active: &Active, p: &mut Pending) -> Result<()> {
        let any_token = matches!(&p.target, Target::Sys(rest) if crate::sys::any_valid_token(rest));
        if p.denied.is_some() || p.unauthenticated || any_token {
            return Ok(());
        }
        let Some(entry) = p.token.clone() else {
            return Ok(());
        };
        let (path, op) = match &p.acl {
            Some((path, op)) => (path.as_str(), op.unwrap_or(p.op)),
            None => (p.path.as_str(), p.op),
        };
        let q = AclQuery {
            op,
            path,
            data: &p.req.data,
            needs_sudo: p.needs_sudo,
            wrap_ttl: p.wrap_ttl,
        };
        match self.authorize(active, &entry, &q).await {
            Ok(acl) => {
                p.acl_set = Some(acl);
                Ok(())
            }
            Err(e) if e.code == ErrorCode::PermissionDenied => {
                p.denied = Some(e);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Spend one use of a use-limited token (compare-and-set: concurrent requests never spend
    /// one use twice); a token with none left is refused.
    async fn spend_use(&self, active: &Active, p: &Pending) -> Result<()> {
        if p.unauthenticated {
            return Ok(());
        }
        if let Some(entry) = &p.token {
            if !active.tokens.use_token(entry).await? {
                return Err(CoreError::unauthenticated());
            }
        }
        Ok(())
    }

    /// Stage 5: run the handler. A panicking handler is a bug, but its request still gets an
    /// answer and a response entry in the audit log.
    pub(crate) async fn dispatch(&self, active: &Arc<Active>, p: &Pending) -> Result<Response> {
        let run = async {
            match &p.target {
                Target::Sys(rest) => {
                    crate::sys::dispatch(self, active, &p.req, rest, p.op, p.token.clone()).await
                }
                Target::Mount(mount, rel, route) => {
                    let mut ereq = engine_request(p.op, mount, rel, &p.req, p.token.as_deref());
                    ereq.acl = p.acl_set.as_deref();
                    let answer = match route {
                        Some(route) => mount.engine.handle_route(&ereq, route).await,
                        None => mount.engine.handle(&ereq).await,
                    };
                    match answer {
                        Ok(Some(mut resp)) => match (resp.login.take(), resp.secret.take()) {
                            (Some(login), _) => self
                                .issue_login_token(active, &mount.entry, &p.path, login)
                                .await
                                .map(|auth| {
                                    resp.auth = Some(auth);
                                    resp
                                }),
                            (None, Some(secret)) => {
                                self.issue_secret_lease(active, mount, &p.path, secret, &mut resp)
                                    .await?;
                                Ok(resp)
                            }
                            (None, None) => Ok(resp),
                        },
                        Ok(None) => Ok(Response::default()),
                        Err(e) => Err(e),
                    }
                }
            }
        };
        match std::panic::AssertUnwindSafe(run).catch_unwind().await {
            Ok(r) => r,
            Err(_) => {
                tracing::error!(path = %p.path, "request handler panicked");
                Err(CoreError::internal("request handler panicked"))
            }
        }
    }

    /// Stage 6: wrap real answers when asked (sys/wrapping/* manage wraps themselves).
    async fn finish(
        &self,
        active: &Active,
        p: &Pending,
        result: Result<Response>,
    ) -> Result<Response> {
        match (result, p.wrap_ttl) {
            (Ok(resp), Some(ttl)) if !resp.is_empty() && !p.path.starts_with("sys/wrapping/") => {
                crate::wrapping::wrap(&active.tokens, resp, &p.path, ttl).await
            }
            (r, _) => r,
        }
    }

    /// A mount's default and max lease TTLs (the system's where the mount sets none).
    fn mount_ttls(&self, mount: &MountEntry) -> (u64, u64) {
        let pick = |own: u64, sys: u64| if own > 0 { own } else { sys };
        (
            pick(
                mount.config.default_lease_ttl,
                self.config().default_lease_ttl,
            ),
            pick(mount.config.max_lease_ttl, self.config().max_lease_ttl),
        )
    }

    /// Put an engine's secret under a lease (id `<path>/<random>`), stored before the answer
    /// leaves, so that it is revoked even if the caller never comes back.
    async fn issue_secret_lease(
        &self,
        active: &Active,
        mount: &Mount,
        path: &str,
        secret: crate::request::SecretLease,
        resp: &mut Response,
    ) -> Result<()> {
        let e = &mount.entry;
        let (sys_default, sys_max) = self.mount_ttls(e);
        let max_ttl = if secret.max_ttl > 0 {
            secret.max_ttl.min(sys_max)
        } else {
            sys_max
        };
        let ttl = if secret.ttl > 0 {
            secret.ttl
        } else {
            sys_default
        }
        .min(max_ttl);
        let now = crate::util::unix_now();
        let lease = crate::lease::Lease {
            lease_id: format!("{}/{}", path.trim_end_matches('/'), uuid::Uuid::new_v4()),
            issue_time: now,
            expire_time: now + ttl as f64,
            last_renewal: None,
            renewable: secret.renewable,
            token_hash: None,
            secret: Some(crate::lease::SecretRecord {
                mount_path: e.path.clone(),
                mount_accessor: e.accessor.clone(),
                max_expire_time: now + max_ttl as f64,
                internal: secret.internal,
            }),
        };
        if let Err(err) = active.leases.put(&lease).await {
            // nothing may stay behind unleased: take the secret back
            if let Some(sec) = &lease.secret {
                let _ = mount.engine.revoke_secret(&mount.view, &sec.internal).await;
            }
            return Err(err);
        }
        resp.lease_id = lease.lease_id;
        resp.lease_duration = ttl;
        resp.renewable = secret.renewable;
        Ok(())
    }

    /// Turn an auth method's login answer into a token (an orphan with its own lease).
    async fn issue_login_token(
        &self,
        active: &Active,
        mount: &MountEntry,
        login_path: &str,
        login: crate::request::LoginAuth,
    ) -> Result<crate::request::AuthInfo> {
        let (sys_default, sys_max) = self.mount_ttls(mount);
        let max_ttl = if login.max_ttl > 0 {
            login.max_ttl.min(sys_max)
        } else {
            sys_max
        };
        let mut ttl = if login.ttl > 0 {
            login.ttl
        } else {
            sys_default
        };
        if login.period == 0 {
            ttl = ttl.min(max_ttl);
        }
        let mut policies: Vec<String> = login
            .policies
            .iter()
            .map(|p| crate::names::policy_name(p))
            .collect::<Result<_>>()?;
        // whatever an auth method stored, a login never yields root or a wrapping token
        if policies.iter().any(|p| crate::names::is_reserved_policy(p)) {
            return Err(CoreError::invalid("auth methods cannot create root tokens"));
        }
        if !login.no_default_policy && !policies.iter().any(|p| p == "default") {
            policies.push("default".into());
        }
        policies.sort();
        policies.dedup();
        crate::util::parse_cidrs(&login.bound_cidrs)?;
        let (token, entry) = active
            .tokens
            .create(NewToken {
                policies,
                meta: login.metadata,
                display_name: if login.display_name.is_empty() {
                    mount
                        .path
                        .trim_start_matches("auth/")
                        .trim_end_matches('/')
                        .to_string()
                } else {
                    login.display_name
                },
                num_uses: login.num_uses,
                ttl,
                explicit_max_ttl: login.explicit_max_ttl,
                period: login.period,
                renewable: login.renewable,
                path: login_path.to_string(),
                bound_cidrs: login.bound_cidrs,
                max_ttl,
                ..Default::default()
            })
            .await?;
        Ok(crate::auth_token::auth_info(token, &entry))
    }

    /// ACL check for a request; `sudo` additionally required for root-protected paths.
    pub async fn authorize(
        &self,
        active: &Active,
        entry: &TokenEntry,
        q: &AclQuery<'_>,
    ) -> Result<Arc<crate::policy::Acl>> {
        let acl = active.policies.acl_for(&entry.policies).await?;
        let decision = acl.check_wrapped(
            q.op,
            q.path,
            Some(q.data),
            q.wrap_ttl.map(std::time::Duration::from_secs),
        );
        if !decision.allowed || (q.needs_sudo && !decision.root_privs) {
            // the caller learns only "permission denied": whether a rule denied, none matched or
            // a capability was missing would map the policy set for an attacker
            let reason = match (&decision.reason, decision.allowed) {
                (Some(r), _) => r.as_str(),
                (None, true) => "sudo capability required",
                (None, false) => "no capability for this operation",
            };
            tracing::info!(
                path = q.path,
                operation = ?q.op,
                accessor = %entry.accessor,
                reason,
                "permission denied"
            );
            return Err(CoreError::denied());
        }
        Ok(acl)
    }
}

/// What an ACL check is asked.
pub struct AclQuery<'a> {
    pub op: Operation,
    pub path: &'a str,
    pub data: &'a serde_json::Map<String, serde_json::Value>,
    /// The path is root-protected: `sudo` is needed as well.
    pub needs_sudo: bool,
    /// The requested response-wrapping TTL (policies may bound it).
    pub wrap_ttl: Option<u64>,
}

/// The one spelling of a request path: no trailing slash except on lists (which Vault checks
/// and serves as `path/`), and policy names in the canonical form the policy store keeps
/// (a name that has none is refused). Names kept by engines are canonicalized by the engine
/// once the path is routed ([`crate::router::Engine::canonical_path`]).
pub fn canonical_path(path: &str, op: Operation) -> Result<String> {
    let trimmed = path.trim_end_matches('/');
    let p = if op == Operation::List && !trimmed.is_empty() {
        format!("{trimmed}/")
    } else {
        trimmed.to_string()
    };
    let canon = crate::names::canonical_segment(
        &p,
        &["sys/policy/", "sys/policies/acl/"],
        crate::names::policy_name,
    )?;
    Ok(canon.into_owned())
}

/// What an engine sees of a request routed to `mount` (`rel` = the path below it).
pub(crate) fn engine_request<'a>(
    operation: Operation,
    mount: &'a Mount,
    rel: &'a str,
    req: &'a Request,
    token: Option<&'a TokenEntry>,
) -> EngineRequest<'a> {
    EngineRequest {
        operation,
        path: rel,
        data: &req.data,
        storage: &mount.view,
        mount: &mount.entry,
        token,
        client_token: req.token(),
        request_id: &req.id,
        remote_addr: req.remote_addr,
        acl: None,
    }
}
