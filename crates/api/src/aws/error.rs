//! AWS's error table: the core's neutral codes as Secrets Manager names them. Every error is a
//! JSON body `{"__type": "<Code>", "message": "…"}`; 400 for the caller's faults, 500 only for
//! `InternalServiceError`.

use super::sigv4::SigV4Error;
use axum::http::StatusCode;
use axum::response::Response as HttpResponse;
use coffer_core::error::{CoreError, ErrorCode};
use serde_json::json;

/// Secrets Manager's message for a secret that does not exist.
pub const NO_SUCH_SECRET: &str = "Secrets Manager can't find the specified secret.";
/// Its message for an operation on a secret scheduled for deletion.
pub const MARKED_FOR_DELETION: &str =
    "You can't perform this operation on the secret because it was marked for deletion.";

/// An error in AWS's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl AwsError {
    fn client(code: &'static str, message: impl Into<String>) -> Self {
        AwsError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::client("InvalidParameterException", message)
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::client("InvalidRequestException", message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::client("ValidationException", message)
    }

    pub fn serialization(message: impl Into<String>) -> Self {
        Self::client("SerializationException", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::client("ResourceNotFoundException", message)
    }

    pub fn exists(message: impl Into<String>) -> Self {
        Self::client("ResourceExistsException", message)
    }

    pub fn malformed_policy(message: impl Into<String>) -> Self {
        Self::client("MalformedPolicyDocumentException", message)
    }

    pub fn unknown_operation() -> Self {
        Self::client("UnknownOperationException", "")
    }

    /// The refusal of the signature itself.
    pub fn from_sigv4(e: &SigV4Error) -> Self {
        AwsError {
            status: e.status(),
            code: e.code(),
            message: e.to_string(),
        }
    }

    /// A core error, in general terms (operations refine `NotFound` and `InvalidState`).
    pub fn from_core(e: &CoreError) -> Self {
        if let Some(s) = SigV4Error::from_core(e) {
            return Self::from_sigv4(&s);
        }
        match e.code {
            ErrorCode::InvalidRequest | ErrorCode::UnsupportedOperation => {
                Self::invalid_parameter(e.message.clone())
            }
            ErrorCode::Unauthenticated => Self::client(
                "UnrecognizedClientException",
                coffer_core::sigv4::INVALID_SECURITY_TOKEN,
            ),
            ErrorCode::PermissionDenied => Self::client(
                "AccessDeniedException",
                "The caller is not authorized to perform this operation on this resource.",
            ),
            ErrorCode::NotFound => Self::not_found(NO_SUCH_SECRET),
            ErrorCode::AlreadyExists => Self::exists(e.message.clone()),
            ErrorCode::InvalidState => Self::invalid_request(MARKED_FOR_DELETION),
            ErrorCode::Disabled | ErrorCode::CasMismatch | ErrorCode::Conflict => {
                Self::invalid_request(e.message.clone())
            }
            ErrorCode::PayloadTooLarge => {
                Self::invalid_parameter("The request body is larger than Coffer accepts.")
            }
            ErrorCode::Throttled => Self::client("ThrottlingException", "Rate exceeded"),
            ErrorCode::Sealed | ErrorCode::NotInitialized | ErrorCode::AlreadyInitialized => {
                AwsError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "InternalServiceError",
                    message: "Coffer is sealed or not initialized; it serves no secrets until \
                              it is unsealed."
                        .into(),
                }
            }
            ErrorCode::Standby => AwsError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "InternalServiceError",
                message: "No active Coffer node answered (a failover is under way); retry the \
                          request."
                    .into(),
            },
            ErrorCode::Internal | ErrorCode::AuditFailed => {
                tracing::error!(error = %e.message, "AWS request failed");
                AwsError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "InternalServiceError",
                    message: "An error occurred on the server side; see the server log.".into(),
                }
            }
        }
    }

    pub fn response(&self) -> HttpResponse {
        crate::common::json_with_type(
            self.status,
            &json!({"__type": self.code, "message": self.message}),
            super::CONTENT_TYPE,
        )
    }
}

impl From<CoreError> for AwsError {
    fn from(e: CoreError) -> Self {
        AwsError::from_core(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let e = AwsError::from_core(&CoreError::denied());
        assert_eq!((e.code, e.status.as_u16()), ("AccessDeniedException", 400));
        let e = AwsError::from_core(&CoreError::internal("storage key x/y broke"));
        assert_eq!((e.code, e.status.as_u16()), ("InternalServiceError", 500));
        assert!(!e.message.contains("x/y"));
        let e = AwsError::from_core(&CoreError::sealed());
        assert_eq!(e.code, "InternalServiceError");
        let e = AwsError::from_core(&coffer_core::sigv4::signature_mismatch());
        assert_eq!(e.code, "InvalidSignatureException");
        let e = AwsError::from_core(&CoreError::unauthenticated());
        assert_eq!(e.code, "UnrecognizedClientException");
        let e = AwsError::from_core(&CoreError::new(ErrorCode::InvalidState, "deleted"));
        assert_eq!(e.code, "InvalidRequestException");
        let e = AwsError::from_core(&CoreError::not_found("no version 3"));
        assert_eq!(
            (e.code, e.message.as_str()),
            ("ResourceNotFoundException", NO_SUCH_SECRET)
        );
    }
}
