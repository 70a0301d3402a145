//! The kv domain: typed operations on the shared secret model, used by every dialect.
//!
//! Every rule of the model is enforced here, once:
//!
//! - a staging label is on at most one version; moving `AWSCURRENT` puts `AWSPREVIOUS` on the
//!   version that held it; a version put without explicit labels gets `AWSCURRENT`
//!   ([`labels`]);
//! - pruning by `max_versions` never drops a version that holds a label
//!   ([`SecretMeta::prune`]);
//! - idempotency: a put with a token (or caller-chosen version id) used before returns the
//!   version it created if the payload is the same, and fails with `AlreadyExists` otherwise;
//! - a secret scheduled for deletion cannot be read or written (`InvalidState`) until restored;
//!   once its purge time has passed it is gone (`NotFound`), and a put creates it anew (with a
//!   new secret id);
//! - a disabled, not-yet-valid or expired version is never handed out (`Disabled`), whichever
//!   dialect asks;
//! - Vault's check-and-set (`cas`, `cas_required`).
//!
//! Dialects reach these operations only through core requests (so the ACL and audit apply):
//! Vault's kv v2 paths through [`super::v2`], everything else through the mount-relative
//! `domain/` paths documented in [`routes`]. Results are the neutral views of [`views`].

mod backup;
mod fold;
mod labels;
mod ops;
mod put;
pub mod rotation;
pub mod routes;
mod types;
pub mod views;

#[cfg(test)]
mod tests;

pub use backup::{backup_name, MAX_BACKUP_BYTES};
pub use labels::{attach_label, detach_label, validate_label};
pub use ops::*;
pub use types::*;
pub use views::{
    ConfigView, DeletionView, Encoding, ListPage, RotationView, SecretView, SubkeysView,
    VersionView, KIND_CONFIG, KIND_ENTRY, KIND_LIST, KIND_ROTATION, KIND_SECRET, KIND_SUBKEYS,
    KIND_VERSION,
};
