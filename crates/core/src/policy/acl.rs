//! The compiled ACL: rule lookup with Vault's priority order, and access decisions.

use super::params::{allowed_value, denied_value, lower};
use super::{Capabilities, PathRule, Policy};
use crate::request::Operation;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The outcome of [`Acl::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclDecision {
    pub allowed: bool,
    /// The request may use sudo-protected paths: the matched rule grants `sudo`, or the ACL is
    /// root. Always false when `allowed` is false.
    pub root_privs: bool,
    /// Why the request was denied (for logs and audit). Names parameters but never contains
    /// their values.
    pub reason: Option<String>,
}

impl AclDecision {
    fn allow(root_privs: bool) -> AclDecision {
        AclDecision {
            allowed: true,
            root_privs,
            reason: None,
        }
    }

    fn deny(reason: impl Into<String>) -> AclDecision {
        AclDecision {
            allowed: false,
            root_privs: false,
            reason: Some(reason.into()),
        }
    }
}

/// The merged, compiled permissions of one pattern.
#[derive(Debug)]
struct Perms {
    caps: Capabilities,
    required: Vec<Box<str>>,
    allowed: HashMap<Box<str>, Vec<Value>>,
    denied: HashMap<Box<str>, Vec<Value>>,
    min_wrap: Option<Duration>,
    max_wrap: Option<Duration>,
}

impl Perms {
    fn from_rule(rule: PathRule) -> Perms {
        Perms {
            caps: rule.capabilities,
            required: rule
                .required_parameters
                .into_iter()
                .map(String::into_boxed_str)
                .collect(),
            allowed: rule
                .allowed_parameters
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v))
                .collect(),
            denied: rule
                .denied_parameters
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v))
                .collect(),
            min_wrap: rule.min_wrapping_ttl,
            max_wrap: rule.max_wrapping_ttl,
        }
    }

    fn decide(
        &self,
        op: Operation,
        data: Option<&Map<String, Value>>,
        wrap_ttl: Option<Duration>,
    ) -> AclDecision {
        if self.caps.contains(Capabilities::DENY) {
            return AclDecision::deny("permission denied: explicitly denied by policy");
        }
        if !self.caps.contains(Capabilities::for_operation(op)) {
            return AclDecision::deny(format!(
                "permission denied: no policy grants {:?} on this path",
                op.as_str()
            ));
        }
        if let Some(max) = self.max_wrap {
            if wrap_ttl.is_none_or(|t| t > max) {
                return AclDecision::deny(format!(
                    "permission denied: the response must be wrapped with a TTL of at most {}s",
                    max.as_secs()
                ));
            }
        }
        if let Some(min) = self.min_wrap {
            if wrap_ttl.is_none_or(|t| t < min) {
                return AclDecision::deny(format!(
                    "permission denied: the response must be wrapped with a TTL of at least {}s",
                    min.as_secs()
                ));
            }
        }
        if matches!(op, Operation::Create | Operation::Update | Operation::Patch) {
            if let Err(reason) = self.check_parameters(data) {
                return AclDecision::deny(reason);
            }
        }
        AclDecision::allow(self.caps.contains(Capabilities::SUDO))
    }

    fn check_parameters(&self, data: Option<&Map<String, Value>>) -> Result<(), String> {
        for name in &self.required {
            if !data.is_some_and(|d| d.contains_key(&**name)) {
                return Err(format!(
                    "permission denied: missing required parameter {name:?}"
                ));
            }
        }
        let Some(data) = data.filter(|d| !d.is_empty()) else {
            return Ok(());
        };
        if !self.denied.is_empty() {
            if self.denied.contains_key("*") {
                return Err("permission denied: all parameters are denied on this path".to_owned());
            }
            for (name, value) in data {
                if let Some(list) = self.denied.get(&*lower(name)) {
                    if denied_value(value, list) {
                        return Err(format!(
                            "permission denied: parameter {name:?} is denied or has a denied value"
                        ));
                    }
                }
            }
        }
        if self.allowed.is_empty() {
            return Ok(());
        }
        let allow_all = self.allowed.contains_key("*");
        if allow_all && self.allowed.len() == 1 {
            return Ok(());
        }
        for (name, value) in data {
            match self.allowed.get(&*lower(name)) {
                None if allow_all => {}
                None => {
                    return Err(format!(
                        "permission denied: parameter {name:?} is not allowed"
                    ))
                }
                Some(list) => {
                    if !allowed_value(value, list) {
                        return Err(format!(
                            "permission denied: parameter {name:?} has a value that is not allowed"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
/// One segment of a `+` pattern.
#[derive(Debug)]
enum Segment {
    Any,
    Lit(Box<str>),
}

/// A pattern containing `+` segments.
#[derive(Debug)]
struct SegmentRule {
    /// The pattern without its trailing `*`.
    pattern: Box<str>,
    segments: Vec<Segment>,
    is_prefix: bool,
    first_wildcard: usize,
    wildcards: usize,
    perms: Perms,
}

impl SegmentRule {
    fn matches(&self, path: &str) -> bool {
        let mut parts = path.split('/');
        let last = self.segments.len().saturating_sub(1);
        for (i, segment) in self.segments.iter().enumerate() {
            let Some(part) = parts.next() else {
                return false;
            };
            match segment {
                Segment::Any => {}
                Segment::Lit(lit) => {
                    let ok = if self.is_prefix && i == last {
                        part.starts_with(&**lit)
                    } else {
                        part == &**lit
                    };
                    if !ok {
                        return false;
                    }
                }
            }
        }
        self.is_prefix || parts.next().is_none()
    }
}

/// A matching non-exact rule, ranked with Vault's priority order.
#[derive(Clone, Copy)]
struct Candidate<'a> {
    first_wildcard: usize,
    is_prefix: bool,
    wildcards: usize,
    pattern: &'a str,
    perms: &'a Perms,
}

impl Candidate<'_> {
    /// True when `self` has priority over `other`.
    fn outranks(&self, other: &Candidate<'_>) -> bool {
        if self.first_wildcard != other.first_wildcard {
            return self.first_wildcard > other.first_wildcard;
        }
        if self.is_prefix != other.is_prefix {
            return !self.is_prefix;
        }
        if self.wildcards != other.wildcards {
            return self.wildcards < other.wildcards;
        }
        if self.pattern.len() != other.pattern.len() {
            return self.pattern.len() > other.pattern.len();
        }
        self.pattern > other.pattern
    }
}

/// The compiled union of a token's policies. Build it once per policy set and share it.
pub struct Acl {
    root: bool,
    exact: HashMap<Box<str>, Perms>,
    /// Prefix rules keyed by the pattern without its trailing `*`.
    prefix: HashMap<Box<str>, Perms>,
    /// The distinct lengths of the keys of `prefix`, longest first.
    prefix_lens: Vec<usize>,
    segment: Vec<SegmentRule>,
}

impl fmt::Debug for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acl")
            .field("root", &self.root)
            .field("exact", &self.exact.len())
            .field("prefix", &self.prefix.len())
            .field("segment", &self.segment.len())
            .finish()
    }
}

impl Acl {
    /// Compiles several policies into one ACL. Rules for the same pattern are merged (see the
    /// module documentation). A policy *named* "root" gets no special power here: root tokens
    /// use [`Acl::root`].
    pub fn new(policies: &[Arc<Policy>]) -> Acl {
        let mut order: Vec<String> = Vec::new();
        let mut merged: HashMap<String, PathRule> = HashMap::new();
        for policy in policies {
            for rule in policy.rules() {
                match merged.get_mut(&rule.path) {
                    Some(existing) => existing.merge(rule),
                    None => {
                        order.push(rule.path.clone());
                        merged.insert(rule.path.clone(), rule.clone());
                    }
                }
            }
        }

        let mut acl = Acl {
            root: false,
            exact: HashMap::new(),
            prefix: HashMap::new(),
            prefix_lens: Vec::new(),
            segment: Vec::new(),
        };
        for pattern in order {
            let Some(rule) = merged.remove(&pattern) else {
                continue;
            };
            let (body, is_prefix) = match pattern.strip_suffix('*') {
                Some(body) => (body, true),
                None => (pattern.as_str(), false),
            };
            let has_plus = body.split('/').any(|s| s == "+");
            if has_plus {
                let mut segments = Vec::new();
                let mut first_wildcard = None;
                let mut wildcards = 0;
                let mut offset = 0;
                for seg in body.split('/') {
                    if seg == "+" {
                        wildcards += 1;
                        first_wildcard.get_or_insert(offset);
                        segments.push(Segment::Any);
                    } else {
                        segments.push(Segment::Lit(seg.into()));
                    }
                    offset += seg.len() + 1;
                }
                acl.segment.push(SegmentRule {
                    pattern: body.into(),
                    segments,
                    is_prefix,
                    first_wildcard: first_wildcard.unwrap_or(body.len()),
                    wildcards,
                    perms: Perms::from_rule(rule),
                });
            } else if is_prefix {
                acl.prefix.insert(body.into(), Perms::from_rule(rule));
            } else {
                acl.exact.insert(body.into(), Perms::from_rule(rule));
            }
        }
        let mut lens: Vec<usize> = acl.prefix.keys().map(|k| k.len()).collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        lens.dedup();
        acl.prefix_lens = lens;
        acl
    }

    /// The root ACL: everything is allowed, sudo included.
    pub fn root() -> Acl {
        Acl {
            root: true,
            exact: HashMap::new(),
            prefix: HashMap::new(),
            prefix_lens: Vec::new(),
            segment: Vec::new(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// What `sys/capabilities` reports for `path`: `["root"]` for the root ACL, `["deny"]`
    /// when nothing (or an explicit deny) applies, otherwise the granted capabilities sorted
    /// alphabetically, as Vault returns them. Like Vault, the lookup uses list semantics (a
    /// trailing `/` may be dropped to find a rule).
    pub fn capabilities(&self, path: &str) -> Vec<&'static str> {
        if self.root {
            return vec!["root"];
        }
        let path = path.trim_start_matches('/');
        let caps = self
            .find(path, path.strip_suffix('/'))
            .map(|p| p.caps)
            .unwrap_or_default();
        if caps.is_empty() || caps.contains(Capabilities::DENY) {
            return vec!["deny"];
        }
        let mut names = caps.names();
        names.sort_unstable();
        names
    }

    /// The effective capabilities on `path`, as a set (empty when nothing matches).
    pub fn capability_set(&self, path: &str) -> Capabilities {
        if self.root {
            return Capabilities::ROOT;
        }
        let path = path.trim_start_matches('/');
        self.find(path, path.strip_suffix('/'))
            .map(|p| p.caps)
            .unwrap_or_default()
    }

    /// Checks a request that is not response-wrapped. `data` is the request body, checked
    /// against parameter constraints for create, update and patch.
    pub fn check(
        &self,
        op: Operation,
        path: &str,
        data: Option<&Map<String, Value>>,
    ) -> AclDecision {
        self.check_wrapped(op, path, data, None)
    }

    /// Like [`Acl::check`], for a request whose response will be wrapped with `wrap_ttl`
    /// (`None` when not wrapped); needed by rules with `min_wrapping_ttl`/`max_wrapping_ttl`.
    pub fn check_wrapped(
        &self,
        op: Operation,
        path: &str,
        data: Option<&Map<String, Value>>,
        wrap_ttl: Option<Duration>,
    ) -> AclDecision {
        if self.root {
            return AclDecision::allow(true);
        }
        let path = path.trim_start_matches('/');
        let with_slash: String;
        let perms = if op == Operation::List {
            // A listing of "a/b" and of "a/b/" is the same request: check it as "a/b/", falling
            // back to "a/b".
            match path.strip_suffix('/') {
                Some(trimmed) => self.find(path, Some(trimmed)),
                None => {
                    with_slash = format!("{path}/");
                    self.find(&with_slash, Some(path))
                }
            }
        } else {
            self.find(path, None)
        };
        match perms {
            Some(perms) => perms.decide(op, data, wrap_ttl),
            None => AclDecision::deny("permission denied: no policy rule matches this path"),
        }
    }

    /// The permissions deciding `path`: an exact rule for `path`, then for `alt`; otherwise the
    /// highest-priority glob rule matching either.
    fn find(&self, path: &str, alt: Option<&str>) -> Option<&Perms> {
        if let Some(p) = self.exact.get(path) {
            return Some(p);
        }
        if let Some(p) = alt.and_then(|a| self.exact.get(a)) {
            return Some(p);
        }
        let mut best = self.best_glob(path, None);
        if let Some(a) = alt {
            best = self.best_glob(a, best);
        }
        best.map(|c| c.perms)
    }

    fn best_glob<'a>(
        &'a self,
        path: &str,
        mut best: Option<Candidate<'a>>,
    ) -> Option<Candidate<'a>> {
        let mut consider = |c: Candidate<'a>| {
            if best.as_ref().is_none_or(|b| c.outranks(b)) {
                best = Some(c);
            }
        };
        for &len in &self.prefix_lens {
            let Some(head) = path.get(..len) else {
                continue;
            };
            if let Some((key, perms)) = self.prefix.get_key_value(head) {
                consider(Candidate {
                    first_wildcard: len,
                    is_prefix: true,
                    wildcards: 0,
                    pattern: key,
                    perms,
                });
                break;
            }
        }
        for rule in &self.segment {
            if rule.matches(path) {
                consider(Candidate {
                    first_wildcard: rule.first_wildcard,
                    is_prefix: rule.is_prefix,
                    wildcards: rule.wildcards,
                    pattern: &rule.pattern,
                    perms: &rule.perms,
                });
            }
        }
        best
    }
}
