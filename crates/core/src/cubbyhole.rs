//! The cubbyhole engine: private storage for each token, destroyed with the token. One token can
//! never see another's cubbyhole, root included.

use crate::error::{CoreError, Result};
use crate::request::Response;
use crate::router::{Engine, EngineRequest, Ops, PathEntry, PathLookup, PathTable, RouteMatch};
use crate::token::TokenStore;
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::sync::Arc;

pub struct CubbyholeEngine {
    tokens: Arc<TokenStore>,
}

impl CubbyholeEngine {
    pub fn new(tokens: Arc<TokenStore>) -> Self {
        CubbyholeEngine { tokens }
    }
}

/// The endpoints of the cubbyhole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    List,
    Read,
    Write,
    Patch,
    Delete,
}

/// Every path is a key of the caller's cubbyhole; a write asks whether it exists (Vault's
/// `handleExistenceCheck`). A patch is refused, after the missing-key check (as before the
/// table).
static PATHS: PathTable<Path> = PathTable::new(&[PathEntry::new(
    "{path*}",
    &[
        (Ops::LIST, Path::List),
        (Ops::READ, Path::Read),
        (Ops::WRITE, Path::Write),
        (Ops::PATCH, Path::Patch),
        (Ops::DELETE, Path::Delete),
    ],
)
.existence_check()]);

#[async_trait]
impl Engine for CubbyholeEngine {
    fn paths(&self) -> Option<&'static dyn PathLookup> {
        Some(&PATHS)
    }

    async fn exists(&self, req: &EngineRequest<'_>) -> Result<Option<bool>> {
        let Some(t) = req.token else {
            return Ok(None);
        };
        let key = req.path.trim_matches('/');
        if key.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            self.tokens.cubbyhole(&t.hash).get(key).await?.is_some(),
        ))
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
        let token = req.token.ok_or_else(CoreError::denied)?;
        let view = self.tokens.cubbyhole(&token.hash);
        let key = route
            .captures(req.path)
            .get("path")?
            .trim_start_matches('/');
        match PATHS.handler(route, req.operation)? {
            Path::List => {
                let prefix = if key.is_empty() || key.ends_with('/') {
                    key.to_string()
                } else {
                    format!("{key}/")
                };
                let keys = view.list(&prefix).await?;
                if keys.is_empty() {
                    return Err(CoreError::not_found(""));
                }
                Ok(Some(Response::data(crate::auth_token::keys_map(keys))))
            }
            _ if key.is_empty() || key.ends_with('/') => Err(CoreError::invalid("missing path")),
            Path::Read => match view.get_json::<Map<String, Value>>(key).await? {
                Some(m) => Ok(Some(Response::data(m))),
                None => Err(CoreError::not_found("")),
            },
            Path::Write => {
                if req.data.is_empty() {
                    return Err(CoreError::invalid("missing data fields"));
                }
                view.put_json(key, req.data).await?;
                Ok(None)
            }
            Path::Delete => {
                view.delete(key).await?;
                Ok(None)
            }
            Path::Patch => Err(CoreError::unsupported_operation()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vault's cubbyhole: no unauthenticated or root-protected path (a token is always needed),
    /// an existence check on every key.
    #[test]
    fn path_flags_are_vaults() {
        assert!(PATHS.problems().is_empty(), "{:?}", PATHS.problems());
        for p in ["", "a", "a/b", "a/"] {
            let f = PATHS.flags(p);
            assert!(!f.unauthenticated && !f.sudo && f.existence_check, "{p}");
        }
    }
}
