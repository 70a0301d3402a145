//! The one error table of the core. Each dialect renders these codes in its own format
//! (Vault `errors`, AWS `__type`, Azure `error.code`). Messages never carry secret values.

use std::fmt;

/// What went wrong, independent of any wire dialect. Each dialect maps a code to its own status
/// and error shape (the Vault dialect in `coffer_api::vault`); nothing here knows HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Malformed or semantically invalid input.
    InvalidRequest,
    /// No credential, or one that does not resolve (unknown, expired, revoked token; bad
    /// signature).
    Unauthenticated,
    /// The caller is known, but its policies do not allow this.
    PermissionDenied,
    /// No such item or no such route.
    NotFound,
    /// The item to create exists already.
    AlreadyExists,
    /// The path exists but not for this operation.
    UnsupportedOperation,
    /// The caller's check-and-set value does not match the current version.
    CasMismatch,
    /// A concurrent change won (a storage-level check-and-set failed); retrying may succeed.
    Conflict,
    /// The item is not in a state that allows this (e.g. scheduled for deletion).
    InvalidState,
    /// The item exists but is disabled, not yet valid or expired.
    Disabled,
    /// The request body is over the limit.
    PayloadTooLarge,
    /// Too many requests.
    Throttled,
    /// The server is sealed.
    Sealed,
    /// The server is not initialized.
    NotInitialized,
    /// The server is initialized already.
    AlreadyInitialized,
    /// Something broke inside.
    Internal,
    /// The audit subsystem could not record the request (fail-closed).
    AuditFailed,
    /// HA: this node is not the active node (and cannot forward the request to one).
    Standby,
}

impl ErrorCode {
    /// Whether the caller is at fault (a 4xx-class answer in every dialect).
    pub fn is_client_error(self) -> bool {
        !matches!(
            self,
            ErrorCode::Sealed | ErrorCode::Internal | ErrorCode::AuditFailed
        )
    }
}

/// An error from the core, with a message safe to show to the caller.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CoreError {
    pub code: ErrorCode,
    pub message: String,
}

impl fmt::Debug for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CoreError({:?}: {})", self.code, self.message)
    }
}

impl CoreError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CoreError {
            code,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }
    pub fn denied() -> Self {
        Self::new(ErrorCode::PermissionDenied, "permission denied")
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn unsupported_path(path: &str) -> Self {
        Self::new(
            ErrorCode::NotFound,
            format!("no handler for route \"{path}\". route entry not found."),
        )
    }
    pub fn unsupported_operation() -> Self {
        Self::new(ErrorCode::UnsupportedOperation, "unsupported operation")
    }
    pub fn sealed() -> Self {
        Self::new(ErrorCode::Sealed, "the server is sealed")
    }
    /// No or an invalid credential. The message is the same as for a denial, so a caller
    /// cannot probe which tokens exist.
    pub fn unauthenticated() -> Self {
        Self::new(ErrorCode::Unauthenticated, "permission denied")
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

impl From<coffer_storage::StorageError> for CoreError {
    fn from(e: coffer_storage::StorageError) -> Self {
        match e {
            coffer_storage::StorageError::CasFailed(_) => {
                CoreError::new(ErrorCode::Conflict, "a concurrent change won; please retry")
            }
            coffer_storage::StorageError::Fenced => CoreError::new(
                ErrorCode::Standby,
                "this node is no longer the active node; retry the request",
            ),
            coffer_storage::StorageError::TooLarge(m) => {
                CoreError::new(ErrorCode::PayloadTooLarge, m)
            }
            other => CoreError::internal(other.to_string()),
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
