//! The cubbyhole engine: private storage for each token, destroyed with the token. One token can
//! never see another's cubbyhole, root included.

use crate::error::{CoreError, Result};
use crate::request::{Operation, Response};
use crate::router::{Engine, EngineRequest};
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

#[async_trait]
impl Engine for CubbyholeEngine {
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
        let token = req.token.ok_or_else(CoreError::denied)?;
        let view = self.tokens.cubbyhole(&token.hash);
        let key = req.path.trim_start_matches('/');
        match req.operation {
            Operation::List => {
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
            Operation::Read => match view.get_json::<Map<String, Value>>(key).await? {
                Some(m) => Ok(Some(Response::data(m))),
                None => Err(CoreError::not_found("")),
            },
            Operation::Create | Operation::Update => {
                if req.data.is_empty() {
                    return Err(CoreError::invalid("missing data fields"));
                }
                view.put_json(key, req.data).await?;
                Ok(None)
            }
            Operation::Delete => {
                view.delete(key).await?;
                Ok(None)
            }
            Operation::Patch => Err(CoreError::unsupported_operation()),
        }
    }
}
