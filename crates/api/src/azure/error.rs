//! Key Vault's error table: `{"error": {"code", "message", "innererror": {"code"}}}` with
//! Azure's statuses. A 401 always carries the bearer challenge (the SDKs start their token
//! flow only from a 401 with `WWW-Authenticate`).

use crate::common::json_with_type;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response as HttpResponse;
use coffer_core::error::{CoreError, ErrorCode};
use coffer_engines::kv::domain::is_missing_secret;
use serde_json::{json, Map, Value};

pub const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// An error in Key Vault's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `innererror.code`, when Azure gives one.
    pub inner: Option<&'static str>,
}

impl AzureError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AzureError {
            status,
            code,
            message: message.into(),
            inner: None,
        }
    }

    pub fn with_inner(mut self, inner: &'static str) -> Self {
        self.inner = Some(inner);
        self
    }

    pub fn bad_parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadParameter", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    /// A secret (or one of its versions) that is not there.
    pub fn secret_not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "SecretNotFound",
            format!(
                "A secret with (name/id) {what} was not found in this key vault. If you recently \
                 deleted this secret you may be able to recover it using the correct recovery \
                 command."
            ),
        )
    }

    /// A name not in the deleted state, for the deleted-secret operations.
    pub fn deleted_not_found(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "SecretNotFound",
            format!("Deleted Secret not found: {name}"),
        )
    }

    /// A write to a name that is deleted but recoverable.
    pub fn deleted_conflict(name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Secret {name} is currently in a deleted but recoverable state, and its name \
                 cannot be reused; in this state, the secret can only be recovered or purged."
            ),
        )
    }

    /// A core error in general terms; operations refine `NotFound` and `InvalidState` first
    /// ([`Self::for_secret`]).
    pub fn from_core(e: &CoreError) -> Self {
        let (status, code, inner) = match e.code {
            ErrorCode::InvalidRequest => (StatusCode::BAD_REQUEST, "BadParameter", None),
            ErrorCode::Unauthenticated => (StatusCode::UNAUTHORIZED, "Unauthorized", None),
            ErrorCode::PermissionDenied => {
                (StatusCode::FORBIDDEN, "Forbidden", Some("AccessDenied"))
            }
            ErrorCode::NotFound => (StatusCode::NOT_FOUND, "NotFound", None),
            ErrorCode::AlreadyExists | ErrorCode::Conflict | ErrorCode::CasMismatch => {
                (StatusCode::CONFLICT, "Conflict", None)
            }
            ErrorCode::InvalidState => (StatusCode::CONFLICT, "Conflict", None),
            ErrorCode::UnsupportedOperation => {
                (StatusCode::METHOD_NOT_ALLOWED, "BadParameter", None)
            }
            ErrorCode::Disabled => (StatusCode::FORBIDDEN, "Forbidden", Some(disabled_inner(e))),
            ErrorCode::PayloadTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", None)
            }
            ErrorCode::Throttled => (StatusCode::TOO_MANY_REQUESTS, "Throttled", None),
            ErrorCode::Sealed | ErrorCode::NotInitialized | ErrorCode::Standby => {
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", None)
            }
            ErrorCode::AlreadyInitialized => (StatusCode::BAD_REQUEST, "BadParameter", None),
            ErrorCode::Internal | ErrorCode::AuditFailed => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                None,
            ),
        };
        let message = match e.code {
            // internal details stay in the server's log
            ErrorCode::Internal | ErrorCode::AuditFailed => {
                "An internal error occurred; the server's log has the details.".to_string()
            }
            ErrorCode::PermissionDenied => format!(
                "The caller does not have the permission this operation needs: {}",
                e.message
            ),
            ErrorCode::Disabled => disabled_message(e),
            _ => e.message.clone(),
        };
        AzureError {
            status,
            code,
            message,
            inner,
        }
    }

    /// A core error of an operation on secret `name` (version `version`, if one was asked for):
    /// a missing secret or version is `SecretNotFound`; a secret scheduled for deletion is
    /// `SecretNotFound` for reads and `Conflict` for writes (`write`).
    pub fn for_secret(e: &CoreError, name: &str, version: Option<&str>, write: bool) -> Self {
        match e.code {
            ErrorCode::NotFound if is_missing_secret(e) => Self::secret_not_found(name),
            ErrorCode::NotFound => match version {
                Some(v) => Self::secret_not_found(&format!("{name}/{v}")),
                None => Self::secret_not_found(name),
            },
            ErrorCode::InvalidState if write => Self::deleted_conflict(name),
            ErrorCode::InvalidState => Self::secret_not_found(name),
            _ => Self::from_core(e),
        }
    }

    /// The answer. `challenge` is the `WWW-Authenticate` value every 401 carries.
    pub fn response(&self, challenge: Option<&str>) -> HttpResponse {
        let mut error = Map::new();
        error.insert("code".into(), Value::from(self.code));
        error.insert("message".into(), Value::from(self.message.clone()));
        if let Some(inner) = self.inner {
            error.insert("innererror".into(), json!({ "code": inner }));
        }
        let mut resp = json_with_type(self.status, &json!({ "error": error }), CONTENT_TYPE);
        if self.status == StatusCode::UNAUTHORIZED {
            if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(c).ok()) {
                resp.headers_mut().insert("www-authenticate", v);
            }
        }
        resp
    }
}

/// Why a version is refused (the domain says it in its message: disabled, not yet valid or
/// expired), as Key Vault's inner code.
fn disabled_inner(e: &CoreError) -> &'static str {
    if e.message.contains("is not valid before") {
        "SecretNotYetValid"
    } else if e.message.contains("expired at") {
        "SecretExpired"
    } else {
        "SecretDisabled"
    }
}

/// The message of a refused version, in Key Vault's words.
pub fn disabled_message(e: &CoreError) -> String {
    match disabled_inner(e) {
        "SecretNotYetValid" => {
            format!(
                "Operation get is not allowed on a secret that is not yet valid ({}).",
                e.message
            )
        }
        "SecretExpired" => format!(
            "Operation get is not allowed on an expired secret ({}).",
            e.message
        ),
        _ => "Operation get is not allowed on a disabled secret.".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_inner_codes() {
        let denied = AzureError::from_core(&CoreError::new(ErrorCode::PermissionDenied, "x"));
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        assert_eq!(denied.inner, Some("AccessDenied"));
        let e = CoreError::new(
            ErrorCode::Disabled,
            "version 2 of secret \"a\" expired at 2020",
        );
        assert_eq!(AzureError::from_core(&e).inner, Some("SecretExpired"));
        let e = CoreError::new(ErrorCode::Disabled, "version 2 of secret \"a\" is disabled");
        assert_eq!(AzureError::from_core(&e).inner, Some("SecretDisabled"));
        let internal = AzureError::from_core(&CoreError::internal("disk path /x/y"));
        assert!(!internal.message.contains("/x/y"), "no internals leak");
        let state = CoreError::new(ErrorCode::InvalidState, "scheduled");
        assert_eq!(
            AzureError::for_secret(&state, "a", None, true).status,
            StatusCode::CONFLICT
        );
        assert_eq!(
            AzureError::for_secret(&state, "a", None, false).status,
            StatusCode::NOT_FOUND
        );
    }
}
