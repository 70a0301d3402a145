//! Canonical names of the objects Coffer keeps (policies, token roles, userpass users, AppRole
//! roles, and whatever later engines name).
//!
//! A name has exactly one spelling. It is computed once, before the ACL check, and the same
//! string is used by the ACL, the audit entry and the handler: no spelling of a name can be
//! checked as one object and touch another. Case is folded (ASCII only, so no Unicode case rule
//! such as the Kelvin sign folding to `k` can alias two names); anything else that would have to
//! be rewritten to find the object (surrounding or embedded whitespace, Unicode spaces, control
//! or invisible format characters, non-ASCII letters) is refused with 400, never trimmed.

use crate::error::{CoreError, Result};
use std::borrow::Cow;

/// Longest name accepted for any named object.
pub const MAX_NAME_LEN: usize = 128;

/// The policy every token carries unless told otherwise.
pub const DEFAULT_POLICY: &str = "default";
/// The policy that bypasses every check.
pub const ROOT_POLICY: &str = "root";
/// The policy of response-wrapping tokens.
pub const WRAPPING_POLICY: &str = "response-wrapping";

/// Policies no auth method, role or stored object may hand out: `root` and `response-wrapping`.
pub fn is_reserved_policy(name: &str) -> bool {
    name == ROOT_POLICY || name == WRAPPING_POLICY
}

/// Refuse a policy list that names a reserved policy (auth methods cannot create root tokens).
pub fn refuse_reserved_policies(policies: &[String]) -> Result<()> {
    match policies.iter().find(|p| is_reserved_policy(p)) {
        Some(p) => Err(CoreError::invalid(format!(
            "the \"{p}\" policy is reserved: auth methods and roles cannot issue it"
        ))),
        None => Ok(()),
    }
}

/// Why a name is not canonical, for the error message (never echoes the name itself beyond
/// what is safe: names are not secrets, but control characters are not printed).
fn problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Some("is too long");
    }
    if name.chars().any(char::is_whitespace) {
        return Some("contains whitespace");
    }
    if name.chars().any(|c| c.is_control()) {
        return Some("contains control characters");
    }
    if !name.is_ascii() {
        return Some("contains non-ASCII characters");
    }
    None
}

fn refuse(kind: &str, why: &str) -> CoreError {
    CoreError::invalid(format!("invalid {kind} name: the name {why}"))
}

/// The canonical policy name: printable ASCII without `/ \ * +`, lowercased.
pub fn policy_name(raw: &str) -> Result<String> {
    if let Some(why) = problem(raw) {
        return Err(refuse("policy", why));
    }
    if raw.contains(['/', '\\', '*', '+']) {
        return Err(refuse("policy", "contains one of / \\ * +"));
    }
    Ok(raw.to_ascii_lowercase())
}

/// Vault's `GenericNameRegex` `\w(([\w-.@]+)?\w)?` over ASCII word characters.
pub fn is_generic_name(name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let (Some(first), Some(last)) = (name.chars().next(), name.chars().last()) else {
        return false;
    };
    word(first)
        && word(last)
        && name
            .chars()
            .all(|c| word(c) || c == '-' || c == '.' || c == '@')
}

/// The canonical name of a role or user (`kind` names it in errors): Vault's generic name
/// rule, lowercased.
pub fn object_name(kind: &str, raw: &str) -> Result<String> {
    if let Some(why) = problem(raw) {
        return Err(refuse(kind, why));
    }
    if !is_generic_name(raw) {
        return Err(refuse(
            kind,
            "must start and end with a letter, digit or '_' and contain only those and - . @",
        ));
    }
    Ok(raw.to_ascii_lowercase())
}

/// Canonicalize the name segment that follows one of `prefixes` in a mount-relative path, with
/// `canon` (e.g. `users/Alice/password` → `users/alice/password`). An empty name (a list of the
/// collection) is left alone; paths under no prefix are returned as they are.
pub fn canonical_segment<'a>(
    rel: &'a str,
    prefixes: &[&str],
    canon: impl Fn(&str) -> Result<String>,
) -> Result<Cow<'a, str>> {
    for prefix in prefixes {
        let Some(rest) = rel.strip_prefix(prefix) else {
            continue;
        };
        let (name, tail) = match rest.split_once('/') {
            Some((n, t)) => (n, Some(t)),
            None => (rest, None),
        };
        if name.is_empty() {
            return Ok(Cow::Borrowed(rel));
        }
        let c = canon(name)?;
        if c == name {
            return Ok(Cow::Borrowed(rel));
        }
        return Ok(Cow::Owned(match tail {
            Some(t) => format!("{prefix}{c}/{t}"),
            None => format!("{prefix}{c}"),
        }));
    }
    Ok(Cow::Borrowed(rel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn policy_names() {
        assert_eq!(policy_name("Admin").unwrap(), "admin");
        assert_eq!(policy_name("my-policy_1.x").unwrap(), "my-policy_1.x");
        for bad in [
            "",
            " admin",
            "admin ",
            "ad min",
            "admin\u{a0}",
            "\u{2003}admin",
            "admin\u{3000}",
            "admin\t",
            "admin\n",
            "adm\u{0}in",
            "admin\u{200b}",
            "\u{feff}admin",
            "\u{212a}ey",
            "a/b",
            "a*",
            "a+",
            "a\\b",
        ] {
            assert!(policy_name(bad).is_err(), "{bad:?}");
        }
        assert!(policy_name(&"a".repeat(MAX_NAME_LEN)).is_ok());
        assert!(policy_name(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn object_names() {
        assert_eq!(object_name("role", "ADMIN").unwrap(), "admin");
        assert_eq!(object_name("user", "a.b@c-d_e").unwrap(), "a.b@c-d_e");
        for bad in ["", "-a", "a-", " a", "a ", "a\u{a0}", "a/b", "é", "a b"] {
            assert!(object_name("user", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn segments() {
        let canon = |n: &str| object_name("user", n);
        let p = ["users/", "login/"];
        assert_eq!(
            canonical_segment("users/Bob", &p, canon).unwrap(),
            "users/bob"
        );
        assert_eq!(
            canonical_segment("users/Bob/password", &p, canon).unwrap(),
            "users/bob/password"
        );
        assert_eq!(canonical_segment("users/", &p, canon).unwrap(), "users/");
        assert_eq!(
            canonical_segment("other/Bob", &p, canon).unwrap(),
            "other/Bob"
        );
        assert!(canonical_segment("login/bob ", &p, canon).is_err());
    }

    proptest! {
        /// Canonical names are fixed points, and two raw names that are both accepted map to the
        /// same canonical name exactly when they differ in ASCII case only.
        #[test]
        fn canonical_is_idempotent_and_case_only(a in "\\PC{0,12}", b in "\\PC{0,12}") {
            if let Ok(ca) = policy_name(&a) {
                prop_assert_eq!(policy_name(&ca).unwrap(), ca.clone());
                if let Ok(cb) = policy_name(&b) {
                    prop_assert_eq!(ca == cb, a.eq_ignore_ascii_case(&b));
                }
            }
            if let Ok(ca) = object_name("x", &a) {
                prop_assert_eq!(object_name("x", &ca).unwrap(), ca);
            }
        }
    }
}
