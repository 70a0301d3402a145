//! Vault's ACL policy language: parsing (HCL or JSON), merging and compiled access checks.
//!
//! A [`Policy`] is one named document of `path "<pattern>" { ... }` rules. An [`Acl`] is the
//! compiled union of every policy a token carries; it is built once per policy set and cached by
//! the caller (it is immutable, `Send` and `Sync`).
//!
//! # Path patterns
//!
//! * `secret/foo` — exact; an exact rule always beats every glob rule.
//! * `secret/foo*` — prefix glob: a single trailing `*` matches any suffix, `/` included.
//! * `secret/+/teamb` — `+` is a whole path segment matching exactly one segment (anything but
//!   `/`). `+` segments may appear anywhere and combine with a trailing `*` (`secret/+/team*`),
//!   but `+*` is rejected, as Vault does. A `+` inside a segment (`a+b`) is a literal character.
//! * A `*` anywhere but at the end, and identity templating (`{{identity.entity.id}}`), are
//!   rejected with a clear error instead of silently never matching.
//! * A leading `/` on a rule path or a request path is ignored.
//!
//! When several glob rules match, the most specific wins, using Vault's documented priority:
//! 1. the rule whose first wildcard (`+` or `*`) occurs later wins;
//! 2. then a rule not ending in `*` beats one ending in `*`;
//! 3. then the rule with fewer `+` segments wins;
//! 4. then the longer rule wins;
//! 5. then the lexicographically greater rule wins.
//!
//! # Merging
//!
//! Rules for the same pattern — repeated blocks in one policy, or the same pattern in several
//! policies of one token — are merged the way Vault merges them: capabilities are united and
//! `deny` overrides everything for that pattern; parameter constraints accumulate (a value list
//! of `[]`, "any value", absorbs every other list for that parameter; required parameters are
//! united); for wrapping TTLs the smallest specified value is kept. Only the single best
//! matching pattern decides a request, so a `deny` on `secret/*` does not override a grant on
//! the more specific `secret/foo` — exactly as in Vault.
//!
//! # Listing
//!
//! A list of `a/b/` and of `a/b` is the same request: [`Acl::check`] looks for an exact rule
//! `a/b/`, then `a/b`, then the best glob rule matching either form, so `a/b/*`, `a/*` and
//! `+/b` all govern a listing of `a/b/`. (Vault tries the glob rules for the two forms one
//! after the other; ranking them together keeps a more specific rule such as `a/b/*` from being
//! shadowed by `a/*`.) Like Vault's, [`Acl::capabilities`] also falls back from `a/b/` to
//! `a/b` (but never adds a slash).
//!
//! # Parameter constraints
//!
//! `required_parameters`, `allowed_parameters` and `denied_parameters` are checked for
//! create, update and patch requests. Parameter names are case-insensitive (lower-cased, as in
//! Vault). A value list of `[]` means any value; `"*"` as a parameter name means every
//! parameter. String entries may start and/or end with `*` (`"prefix-*"`, `"*-suffix"`,
//! `"*middle*"`; a lone `"*"` is the literal string, as in Vault). A request value that is a
//! list, or a string containing commas, is checked element by element (Vault 1.21+ behaviour):
//! for `allowed_parameters` every element must be allowed, for `denied_parameters` any denied
//! element denies. `denied_parameters` wins over `allowed_parameters`.
//!
//! # Wrapping TTLs
//!
//! `min_wrapping_ttl` / `max_wrapping_ttl` (seconds, or durations such as `"90s"`, `"1h30m"`,
//! `"2d"`) require the response to be wrapped with a TTL in range; [`Acl::check`] assumes no
//! wrapping, so such rules deny unless the caller uses [`Acl::check_wrapped`].

mod acl;
mod default;
mod params;
mod parse;
#[cfg(test)]
mod tests;

pub use acl::{Acl, AclDecision};
pub use default::default_policy_text;
pub use parse::{parse_duration, parse_policy};

use crate::request::Operation;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign};
use std::time::Duration;

/// Name of Vault's built-in policy attached to tokens by default.
pub const DEFAULT_POLICY_NAME: &str = "default";
/// Name of the built-in root policy (see [`Acl::root`]).
pub const ROOT_POLICY_NAME: &str = "root";

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

/// Why a policy document was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The text is not valid HCL.
    #[error("failed to parse policy HCL: {0}")]
    Hcl(String),
    /// The text starts with `{` but is not valid JSON.
    #[error("failed to parse policy JSON: {0}")]
    Json(String),
    /// A key Vault's policy language does not know.
    #[error("unknown key {key:?}{}", in_path(path))]
    UnknownKey { key: String, path: Option<String> },
    /// A capability name that does not exist.
    #[error("unknown capability {capability:?}{}", in_path(path))]
    UnknownCapability {
        capability: String,
        path: Option<String>,
    },
    /// A valid policy key for a feature Coffer does not implement (Vault Enterprise features,
    /// identity templating, JSON-pointer parameter names).
    #[error("{feature} is not supported by Coffer{}", in_path(path))]
    Unsupported {
        feature: String,
        path: Option<String>,
    },
    /// A path block whose content is malformed.
    #[error("path {path:?}: {message}")]
    InvalidRule { path: String, message: String },
    /// A malformed document outside any path block.
    #[error("invalid policy: {0}")]
    Invalid(String),
}

fn in_path(path: &Option<String>) -> String {
    match path {
        Some(p) => format!(" in path {p:?}"),
        None => String::new(),
    }
}

/// Longest error message kept from a parser (they quote the offending source line).
const MAX_MESSAGE: usize = 1024;

fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("...");
    }
    message
}

fn invalid_rule(path: &str, message: impl Into<String>) -> PolicyError {
    PolicyError::InvalidRule {
        path: path.to_owned(),
        message: message.into(),
    }
}

// ------------------------------------------------------------------------------------------------
// Capabilities
// ------------------------------------------------------------------------------------------------

/// A set of ACL capabilities (a small bit set).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u16);

impl Capabilities {
    pub const DENY: Capabilities = Capabilities(1 << 0);
    pub const CREATE: Capabilities = Capabilities(1 << 1);
    pub const READ: Capabilities = Capabilities(1 << 2);
    pub const UPDATE: Capabilities = Capabilities(1 << 3);
    pub const PATCH: Capabilities = Capabilities(1 << 4);
    pub const DELETE: Capabilities = Capabilities(1 << 5);
    pub const LIST: Capabilities = Capabilities(1 << 6);
    pub const SUDO: Capabilities = Capabilities(1 << 7);
    /// Only ever held by the root policy; a policy document cannot grant it.
    pub const ROOT: Capabilities = Capabilities(1 << 8);

    /// Every capability with its Vault name, in Vault's canonical order.
    const NAMED: [(Capabilities, &'static str); 9] = [
        (Capabilities::CREATE, "create"),
        (Capabilities::READ, "read"),
        (Capabilities::UPDATE, "update"),
        (Capabilities::PATCH, "patch"),
        (Capabilities::DELETE, "delete"),
        (Capabilities::LIST, "list"),
        (Capabilities::SUDO, "sudo"),
        (Capabilities::DENY, "deny"),
        (Capabilities::ROOT, "root"),
    ];

    /// The empty set.
    pub const fn empty() -> Capabilities {
        Capabilities(0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when every capability of `other` is in `self`.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when `self` and `other` share a capability.
    pub const fn intersects(self, other: Capabilities) -> bool {
        self.0 & other.0 != 0
    }

    /// The capability named `name` (`"read"`, `"deny"`, ...), if it exists.
    pub fn from_name(name: &str) -> Option<Capabilities> {
        Self::NAMED
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(c, _)| *c)
    }

    /// The union of the named capabilities. Names are case-sensitive, as in Vault. No
    /// normalisation is done here: a policy rule collapses a set containing `deny` to `deny`.
    pub fn from_names(names: &[&str]) -> Result<Capabilities, PolicyError> {
        let mut caps = Capabilities::empty();
        for name in names {
            caps |=
                Capabilities::from_name(name).ok_or_else(|| PolicyError::UnknownCapability {
                    capability: (*name).to_owned(),
                    path: None,
                })?;
        }
        Ok(caps)
    }

    /// The names of the capabilities in the set, in Vault's canonical order
    /// (create, read, update, patch, delete, list, sudo, deny, root).
    pub fn names(&self) -> Vec<&'static str> {
        Self::NAMED
            .iter()
            .filter(|(c, _)| self.contains(*c))
            .map(|(_, n)| *n)
            .collect()
    }

    /// The capability an operation needs.
    pub const fn for_operation(op: Operation) -> Capabilities {
        match op {
            Operation::Read => Capabilities::READ,
            Operation::Create => Capabilities::CREATE,
            Operation::Update => Capabilities::UPDATE,
            Operation::Patch => Capabilities::PATCH,
            Operation::Delete => Capabilities::DELETE,
            Operation::List => Capabilities::LIST,
        }
    }
}

impl BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Capabilities) -> Capabilities {
        Capabilities(self.0 | rhs.0)
    }
}

impl BitOrAssign for Capabilities {
    fn bitor_assign(&mut self, rhs: Capabilities) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Capabilities {
    type Output = Capabilities;
    fn bitand(self, rhs: Capabilities) -> Capabilities {
        Capabilities(self.0 & rhs.0)
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

// ------------------------------------------------------------------------------------------------
// Policy and rules
// ------------------------------------------------------------------------------------------------

/// The rule of one path pattern (all blocks of that pattern in a policy, merged).
#[derive(Debug, Clone, PartialEq)]
pub struct PathRule {
    /// The pattern as written, leading `/` removed, trailing `*` kept.
    pub path: String,
    /// Granted capabilities; exactly [`Capabilities::DENY`] for a deny rule.
    pub capabilities: Capabilities,
    /// Lower-cased parameter names that must be present.
    pub required_parameters: Vec<String>,
    /// Lower-cased parameter name → allowed values (`[]` = any value; `"*"` = any parameter).
    pub allowed_parameters: BTreeMap<String, Vec<Value>>,
    /// Lower-cased parameter name → denied values (`[]` = any value; `"*"` = every parameter).
    pub denied_parameters: BTreeMap<String, Vec<Value>>,
    pub min_wrapping_ttl: Option<Duration>,
    pub max_wrapping_ttl: Option<Duration>,
}

impl PathRule {
    /// True for an explicit `deny` rule.
    pub fn is_deny(&self) -> bool {
        self.capabilities.contains(Capabilities::DENY)
    }

    fn deny_only(&mut self) {
        self.capabilities = Capabilities::DENY;
        self.required_parameters.clear();
        self.allowed_parameters.clear();
        self.denied_parameters.clear();
        self.min_wrapping_ttl = None;
        self.max_wrapping_ttl = None;
    }

    /// Merges another rule for the same pattern into this one, with Vault's semantics.
    fn merge(&mut self, other: &PathRule) {
        if self.is_deny() {
            return;
        }
        if other.is_deny() {
            self.deny_only();
            return;
        }
        self.capabilities |= other.capabilities;
        self.min_wrapping_ttl = min_specified(self.min_wrapping_ttl, other.min_wrapping_ttl);
        self.max_wrapping_ttl = min_specified(self.max_wrapping_ttl, other.max_wrapping_ttl);
        merge_param_map(&mut self.allowed_parameters, &other.allowed_parameters);
        merge_param_map(&mut self.denied_parameters, &other.denied_parameters);
        for p in &other.required_parameters {
            if !self.required_parameters.contains(p) {
                self.required_parameters.push(p.clone());
            }
        }
    }
}

fn min_specified(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Vault's merge of two parameter maps: values are appended on a name conflict, and an empty
/// list ("any value") absorbs every other list.
fn merge_param_map(into: &mut BTreeMap<String, Vec<Value>>, from: &BTreeMap<String, Vec<Value>>) {
    for (name, values) in from {
        match into.get_mut(name) {
            None => {
                into.insert(name.clone(), values.clone());
            }
            Some(existing) => {
                if values.is_empty() || existing.is_empty() {
                    existing.clear();
                } else {
                    existing.extend(values.iter().cloned());
                }
            }
        }
    }
}

/// A parsed ACL policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    rules: Vec<PathRule>,
}

impl Policy {
    /// The rules, one per distinct pattern, in order of first appearance.
    pub fn rules(&self) -> &[PathRule] {
        &self.rules
    }

    /// The merged rule for `pattern` exactly as written in the policy (leading `/` ignored).
    pub fn rule(&self, pattern: &str) -> Option<&PathRule> {
        let pattern = pattern.strip_prefix('/').unwrap_or(pattern);
        self.rules.iter().find(|r| r.path == pattern)
    }
}
