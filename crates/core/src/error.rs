//! The one error table of the core. Each dialect renders these codes in its own format
//! (Vault `errors`, AWS `__type`, Azure `error.code`). Messages never carry secret values.

use std::fmt;

/// What went wrong, independent of any wire dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Malformed or semantically invalid input (400).
    InvalidRequest,
    /// Missing/invalid token or policy denies (403).
    PermissionDenied,
    /// No such item or no such route (404).
    NotFound,
    /// The path exists but not for this operation (405).
    UnsupportedOperation,
    /// Check-and-set or precondition mismatch (400 in Vault).
    CasMismatch,
    /// Request body over the limit (413).
    PayloadTooLarge,
    /// Too many requests (429).
    RateLimited,
    /// The server is sealed (503).
    Sealed,
    /// The server is not initialized (400 for most, 501 for health).
    NotInitialized,
    /// Already initialized (400).
    AlreadyInitialized,
    /// Something broke inside (500).
    Internal,
    /// The audit subsystem could not record the request (500, fail-closed).
    AuditFailed,
}

impl ErrorCode {
    /// The HTTP status the Vault dialect uses for this code.
    pub fn vault_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest
            | ErrorCode::CasMismatch
            | ErrorCode::NotInitialized
            | ErrorCode::AlreadyInitialized => 400,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::UnsupportedOperation => 405,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::Sealed => 503,
            ErrorCode::Internal | ErrorCode::AuditFailed => 500,
        }
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
        Self::new(ErrorCode::Sealed, "Vault is sealed")
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

impl From<coffer_storage::StorageError> for CoreError {
    fn from(e: coffer_storage::StorageError) -> Self {
        match e {
            coffer_storage::StorageError::CasFailed(_) => CoreError::new(
                ErrorCode::CasMismatch,
                "check-and-set parameter did not match the current version",
            ),
            other => CoreError::internal(other.to_string()),
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
