//! The CLI's error: a message for stderr and the process exit code.

/// Exit code for a failed request, an unreachable server or any other runtime failure.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for bad flags or arguments (and, as in Vault, "no value found" and "sealed").
pub const EXIT_USAGE: i32 = 2;

#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

impl CliError {
    /// A usage error: bad flags or arguments (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// A runtime failure (exit code 1).
    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }

    /// A failure reported with a specific exit code.
    pub fn with_code(code: i32, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }
}

/// A command's outcome: the exit code on success (0, or 2 for e.g. `status` on a sealed server).
pub type CliResult = Result<i32, CliError>;
