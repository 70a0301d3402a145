//! Declarative path tables: each engine declares, once, the mount-relative paths it serves, the
//! operations each accepts (mapped to a handler of the engine's own type), and the flags the
//! core needs before the handler runs: `unauthenticated`, `sudo` (root-protected) and whether
//! writes get an existence check (create vs update for the ACL).
//!
//! Patterns are Vault-style, `/`-separated:
//!
//! | segment   | matches |
//! |-----------|---------|
//! | `role`    | that literal segment |
//! | `{name}`  | one non-empty segment (captured as `name`) |
//! | `{path+}` | the rest of the path: not empty, not ending in `/` (a name that may hold `/`) |
//! | `{path*}` | the rest of the path, possibly empty, `/`s and a trailing `/` included |
//!
//! A remainder (`+`, `*`) is the last segment; the `/` before it must be present (`metadata`
//! does not match `metadata/{path*}`; `metadata/` does, with `path` empty). A pattern ending in
//! `/?` ignores trailing slashes of the path (Vault's `role/?$`).
//!
//! When several patterns match, the most specific wins, whatever the order of the table:
//! segment by segment, a literal beats `{name}`, which beats `{path+}`, which beats `{path*}`.
//! The core matches a request's path once ([`PathLookup::find`]), takes the flags from the
//! match, and hands the same [`RouteMatch`] to the engine
//! ([`crate::router::Engine::handle_route`]), which turns it into its handler and the captures
//! ([`PathTable::handler`], [`RouteMatch::captures`]). A path no pattern matches is Vault's
//! "unsupported path" (`NotFound`); a matched path without the operation is
//! `UnsupportedOperation`.
//!
//! ```
//! use coffer_core::paths::{Ops, PathEntry, PathTable};
//! #[derive(Clone, Copy)]
//! enum H { Login, ReadRole, WriteRole }
//! static PATHS: PathTable<H> = PathTable::new(&[
//!     PathEntry::new("login", &[(Ops::WRITE, H::Login)]).unauthenticated(),
//!     PathEntry::new("role/{role_name}", &[(Ops::READ, H::ReadRole), (Ops::WRITE, H::WriteRole)])
//!         .existence_check(),
//! ]);
//! let m = PATHS.lookup("role/web").expect("known path");
//! assert_eq!(m.captures("role/web").get("role_name").unwrap(), "web");
//! assert!(matches!(PATHS.handler(&m, coffer_core::request::Operation::Read), Ok(H::ReadRole)));
//! ```

use crate::error::{CoreError, Result};
use crate::request::Operation;
use crate::router::EngineRequest;
use std::cmp::Ordering;

/// A set of operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ops(u8);

impl Ops {
    pub const READ: Ops = Ops(1);
    pub const CREATE: Ops = Ops(1 << 1);
    pub const UPDATE: Ops = Ops(1 << 2);
    pub const PATCH: Ops = Ops(1 << 3);
    pub const DELETE: Ops = Ops(1 << 4);
    pub const LIST: Ops = Ops(1 << 5);
    /// Create and update (a write; the existence check tells them apart for the ACL only).
    pub const WRITE: Ops = Ops(Self::CREATE.0 | Self::UPDATE.0);
    pub const ALL: Ops = Ops(0b11_1111);

    /// The union of two sets.
    pub const fn or(self, other: Ops) -> Ops {
        Ops(self.0 | other.0)
    }

    pub const fn of(op: Operation) -> Ops {
        match op {
            Operation::Read => Self::READ,
            Operation::Create => Self::CREATE,
            Operation::Update => Self::UPDATE,
            Operation::Patch => Self::PATCH,
            Operation::Delete => Self::DELETE,
            Operation::List => Self::LIST,
        }
    }

    pub const fn contains(self, op: Operation) -> bool {
        self.0 & Self::of(op).0 != 0
    }
}

/// What the core needs to know of a path before its handler runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathFlags {
    /// No token needed (a credential sent anyway is looked at).
    pub unauthenticated: bool,
    /// Root-protected: `sudo` is needed besides the operation's capability.
    pub sudo: bool,
    /// Writes ask [`crate::router::Engine::exists`] (create vs update for the ACL); without it
    /// a write is an `update`.
    pub existence_check: bool,
    /// The path the ACL checks instead of the request's own (see [`AclAlias`]).
    pub acl: Option<AclAlias>,
}

/// Makes the ACL check a request as if it were made on another path of the same mount: a
/// neutral path (e.g. the kv domain's `domain/versions/<name>`) is governed by the policy rules
/// users write for the paths they know (`data/<name>`), so one rule decides for every dialect.
/// The checked path is `prefix` followed by the pattern's `path` capture (empty when the
/// pattern has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclAlias {
    pub prefix: &'static str,
    /// The capability checked instead of the request's operation (`None`: the same).
    pub op: Option<Operation>,
}

/// One path of an engine: its pattern, its operations and their handlers, its flags.
#[derive(Debug)]
pub struct PathEntry<H: 'static> {
    pub pattern: &'static str,
    pub ops: &'static [(Ops, H)],
    pub flags: PathFlags,
}

impl<H> PathEntry<H> {
    pub const fn new(pattern: &'static str, ops: &'static [(Ops, H)]) -> Self {
        PathEntry {
            pattern,
            ops,
            flags: PathFlags {
                unauthenticated: false,
                sudo: false,
                existence_check: false,
                acl: None,
            },
        }
    }

    /// The ACL checks `<prefix><path>` (the `path` capture) instead of the request's path.
    pub const fn acl_as(mut self, prefix: &'static str) -> Self {
        self.flags.acl = Some(AclAlias { prefix, op: None });
        self
    }

    /// Like [`Self::acl_as`], checking the capability of `op` whatever the request's operation.
    pub const fn acl_as_op(mut self, prefix: &'static str, op: Operation) -> Self {
        self.flags.acl = Some(AclAlias {
            prefix,
            op: Some(op),
        });
        self
    }

    pub const fn unauthenticated(mut self) -> Self {
        self.flags.unauthenticated = true;
        self
    }

    pub const fn sudo(mut self) -> Self {
        self.flags.sudo = true;
        self
    }

    pub const fn existence_check(mut self) -> Self {
        self.flags.existence_check = true;
        self
    }
}

/// The most captures a pattern may have.
pub const MAX_CAPTURES: usize = 4;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Capture {
    name: &'static str,
    start: u32,
    end: u32,
}

/// A path matched against a table: which entry, its flags, and where the captures are in the
/// path (offsets, so a match can be kept beside the path it was made on). Plain data, no
/// allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMatch {
    /// The address of the table (a match is only used with the table that made it).
    table: usize,
    index: usize,
    pub flags: PathFlags,
    captures: [Capture; MAX_CAPTURES],
    len: u8,
}

impl RouteMatch {
    /// The captures, read from the path the match was made on.
    pub fn captures<'p>(&self, path: &'p str) -> Captures<'p> {
        Captures {
            path,
            captures: self.captures,
            len: self.len,
        }
    }
}

/// The named parts of a matched path.
#[derive(Debug, Clone, Copy)]
pub struct Captures<'p> {
    path: &'p str,
    captures: [Capture; MAX_CAPTURES],
    len: u8,
}

impl<'p> Captures<'p> {
    /// The capture `name`; an error (a table and its handler disagreeing) when the pattern has
    /// none of that name.
    pub fn get(&self, name: &str) -> Result<&'p str> {
        self.opt(name)
            .ok_or_else(|| CoreError::internal(format!("no path capture named {name:?}")))
    }

    /// The capture `name`, if the pattern has one.
    pub fn opt(&self, name: &str) -> Option<&'p str> {
        self.captures[..usize::from(self.len).min(MAX_CAPTURES)]
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| self.path.get(c.start as usize..c.end as usize))
    }
}

/// A segment of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment<'a> {
    Literal(&'a str),
    One(&'a str),
    /// `{name+}`
    Some(&'a str),
    /// `{name*}`
    Rest(&'a str),
}

impl Segment<'_> {
    fn parse(seg: &str) -> Segment<'_> {
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(inner) => {
                if let Some(n) = inner.strip_suffix('*') {
                    Segment::Rest(n)
                } else if let Some(n) = inner.strip_suffix('+') {
                    Segment::Some(n)
                } else {
                    Segment::One(inner)
                }
            }
            None => Segment::Literal(seg),
        }
    }

    /// Higher is more specific.
    fn rank(self) -> u8 {
        match self {
            Segment::Literal(_) => 3,
            Segment::One(_) => 2,
            Segment::Some(_) => 1,
            Segment::Rest(_) => 0,
        }
    }
}

/// The pattern without its `/?` suffix, and whether it had one.
fn split_optional_slash(pattern: &str) -> (&str, bool) {
    match pattern.strip_suffix("/?") {
        Some(p) => (p, true),
        None => (pattern, false),
    }
}

/// Match `path` against `pattern`, recording captures; `false` if it does not match.
fn match_pattern(pattern: &'static str, path: &str, out: &mut RouteMatch) -> bool {
    let (pattern, optional_slash) = split_optional_slash(pattern);
    let path = if optional_slash {
        path.trim_end_matches('/')
    } else {
        path
    };
    let mut rest = path;
    let mut len = 0usize;
    let mut segments = pattern.split('/').map(Segment::parse).peekable();
    let mut first = true;
    while let Some(seg) = segments.next() {
        if !first {
            match rest.strip_prefix('/') {
                Some(r) => rest = r,
                None => return false,
            }
        }
        first = false;
        let start = path.len() - rest.len();
        let (head, tail) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (name, end) = match seg {
            Segment::Literal(l) => {
                if head != l {
                    return false;
                }
                rest = tail;
                continue;
            }
            Segment::One(name) => {
                if head.is_empty() {
                    return false;
                }
                rest = tail;
                (name, start + head.len())
            }
            Segment::Some(name) | Segment::Rest(name) => {
                let some = matches!(seg, Segment::Some(_));
                if segments.peek().is_some() || (some && (rest.is_empty() || rest.ends_with('/'))) {
                    return false;
                }
                rest = "";
                (name, path.len())
            }
        };
        if len == MAX_CAPTURES {
            return false;
        }
        let (Ok(start), Ok(end)) = (u32::try_from(start), u32::try_from(end)) else {
            return false;
        };
        out.captures[len] = Capture { name, start, end };
        len += 1;
    }
    out.len = len as u8;
    rest.is_empty()
}

/// Which of two patterns is more specific (`Greater`: `a`).
fn specificity(a: &str, b: &str) -> Ordering {
    let mut sa = split_optional_slash(a).0.split('/').map(Segment::parse);
    let mut sb = split_optional_slash(b).0.split('/').map(Segment::parse);
    loop {
        match (sa.next(), sb.next()) {
            (Some(x), Some(y)) => match x.rank().cmp(&y.rank()) {
                Ordering::Equal => continue,
                o => return o,
            },
            // the longer one's extra segments matched nothing: the shorter is the exact one
            (None, Some(_)) => return Ordering::Greater,
            (Some(_), None) => return Ordering::Less,
            (None, None) => return Ordering::Equal,
        }
    }
}

/// An engine's table of paths, with handlers of type `H` (typically a fieldless enum).
#[derive(Debug)]
pub struct PathTable<H: 'static> {
    entries: &'static [PathEntry<H>],
}

impl<H: Copy + Send + Sync + 'static> PathTable<H> {
    pub const fn new(entries: &'static [PathEntry<H>]) -> Self {
        PathTable { entries }
    }

    pub fn entries(&self) -> &'static [PathEntry<H>] {
        self.entries
    }

    fn id(&self) -> usize {
        self as *const Self as usize
    }

    /// The most specific entry matching `path`, or `None` (an unknown path).
    pub fn lookup(&self, path: &str) -> Option<RouteMatch> {
        let mut best: Option<RouteMatch> = None;
        let head = path.split('/').next().unwrap_or("");
        for (index, entry) in self.entries.iter().enumerate() {
            // a pattern starting with a literal matches only paths starting with that segment
            let first = entry.pattern.split('/').next().unwrap_or("");
            if !first.starts_with('{') && first != head {
                continue;
            }
            let mut m = RouteMatch {
                table: self.id(),
                index,
                flags: entry.flags,
                captures: [Capture::default(); MAX_CAPTURES],
                len: 0,
            };
            if !match_pattern(entry.pattern, path, &mut m) {
                continue;
            }
            let better = match &best {
                None => true,
                Some(b) => {
                    let current = self.entries.get(b.index).map_or("", |e| e.pattern);
                    specificity(entry.pattern, current) == Ordering::Greater
                }
            };
            if better {
                best = Some(m);
            }
        }
        best
    }

    /// The handler of a match for `op`: `UnsupportedOperation` when the path does not take it.
    pub fn handler(&self, m: &RouteMatch, op: Operation) -> Result<H> {
        let entry = self
            .entries
            .get(m.index)
            .filter(|_| m.table == self.id())
            .ok_or_else(|| CoreError::internal("a path match used with another table"))?;
        entry
            .ops
            .iter()
            .find(|(ops, _)| ops.contains(op))
            .map(|(_, h)| *h)
            .ok_or_else(CoreError::unsupported_operation)
    }

    /// Match a request's path: Vault's "unsupported path" (`NotFound`) when nothing matches.
    pub fn find_for(&self, req: &EngineRequest<'_>) -> Result<RouteMatch> {
        self.lookup(req.path)
            .ok_or_else(|| CoreError::unsupported_path(&format!("{}{}", req.mount.path, req.path)))
    }

    /// Problems of the table itself (for the engines' tests): malformed patterns, a remainder
    /// that is not last, too many captures, two patterns of the same shape, an entry without
    /// operations, an operation mapped twice in one entry.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            let (pattern, _) = split_optional_slash(e.pattern);
            let segs: Vec<Segment<'_>> = pattern.split('/').map(Segment::parse).collect();
            let mut captures = 0;
            for (j, s) in segs.iter().enumerate() {
                match s {
                    Segment::Literal(l) if l.contains(['{', '}', '*', '?']) => {
                        out.push(format!("{}: malformed segment {l:?}", e.pattern))
                    }
                    Segment::Literal(_) => {}
                    Segment::One(n) | Segment::Some(n) | Segment::Rest(n) => {
                        captures += 1;
                        if n.is_empty() || n.contains(['{', '}', '*', '+']) {
                            out.push(format!("{}: malformed capture", e.pattern));
                        }
                        if !matches!(s, Segment::One(_)) && j + 1 != segs.len() {
                            out.push(format!("{}: a remainder must be last", e.pattern));
                        }
                    }
                }
            }
            if captures > MAX_CAPTURES {
                out.push(format!("{}: more than {MAX_CAPTURES} captures", e.pattern));
            }
            if e.ops.is_empty() {
                out.push(format!("{}: no operations", e.pattern));
            }
            for (k, (a, _)) in e.ops.iter().enumerate() {
                if e.ops[k + 1..].iter().any(|(b, _)| a.0 & b.0 != 0) {
                    out.push(format!("{}: an operation mapped twice", e.pattern));
                }
            }
            for other in &self.entries[i + 1..] {
                if specificity(e.pattern, other.pattern) == Ordering::Equal
                    && shape(e.pattern) == shape(other.pattern)
                {
                    out.push(format!(
                        "{} and {}: the same shape",
                        e.pattern, other.pattern
                    ));
                }
            }
        }
        out
    }
}

/// A pattern with its capture names erased (two patterns of one shape match the same paths).
fn shape(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|s| match Segment::parse(s) {
            Segment::Literal(l) => l,
            Segment::One(_) => "{}",
            Segment::Some(_) => "{+}",
            Segment::Rest(_) => "{*}",
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// An engine's path table as the core sees it: matching and flags, without the handler type.
pub trait PathLookup: Send + Sync {
    /// The match of a mount-relative path, or `None` (an unknown path).
    fn find(&self, path: &str) -> Option<RouteMatch>;

    /// The flags of `path` (all off for an unknown path).
    fn flags(&self, path: &str) -> PathFlags {
        self.find(path).map(|m| m.flags).unwrap_or_default()
    }
}

impl<H: Copy + Send + Sync + 'static> PathLookup for PathTable<H> {
    fn find(&self, path: &str) -> Option<RouteMatch> {
        self.lookup(path)
    }
}

#[cfg(test)]
mod tests;
