//! Key Vault names and versions, and the request's host (ids, the challenge's resource, the
//! vault name).
//!
//! A name is `[0-9a-zA-Z-]{1,127}` and matched without regard to case; a secret keeps the case
//! it was created with. The kv domain resolves the spelling (the operations ask with
//! `fold_case`), judging the caller's rights on the stored name as well as on the asked one.

use super::error::AzureError;

/// The longest name Key Vault accepts.
pub const MAX_NAME: usize = 127;

/// Whether `name` is a legal Key Vault secret name.
pub fn is_legal(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A name from the request path (already percent-decoded).
pub fn check_name(name: &str) -> Result<&str, AzureError> {
    if is_legal(name) {
        Ok(name)
    } else {
        Err(AzureError::bad_parameter(format!(
            "The request URI contains an invalid name: {}",
            printable(name)
        )))
    }
}

/// A version from the request path: empty = the latest; else 32 hex digits (Key Vault's form)
/// or a hyphenated UUID, answered lowercase.
pub fn check_version(v: &str) -> Result<Option<String>, AzureError> {
    if v.is_empty() {
        return Ok(None);
    }
    let hex: String = v.chars().filter(|c| *c != '-').collect();
    let uuid_like = v.len() == 36 && uuid::Uuid::try_parse(v).is_ok();
    if (v.len() == 32 || uuid_like) && hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
    {
        Ok(Some(hex.to_ascii_lowercase()))
    } else {
        Err(AzureError::bad_parameter(format!(
            "The request URI contains an invalid version: {}",
            printable(v)
        )))
    }
}

/// At most 200 characters of caller input, control characters escaped (for messages).
fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(200).flat_map(char::escape_default).collect();
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// The request's `Host` as given (with its port), if it is a plausible host: letters, digits,
/// dots, hyphens, an optional `:port`, or a bracketed IPv6 literal. It is echoed in ids, links
/// and the challenge, so nothing else is accepted.
pub fn check_host(host: &str) -> Option<&str> {
    let (name, port) = split_port(host)?;
    let name_ok = if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    (name_ok && port_ok).then_some(host)
}

/// (host name, port) of a `Host` value.
fn split_port(host: &str) -> Option<(&str, Option<&str>)> {
    if host.starts_with('[') {
        let end = host.find(']')?;
        let rest = &host[end + 1..];
        return match rest.strip_prefix(':') {
            Some(p) => Some((&host[..=end], Some(p))),
            None if rest.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match host.rsplit_once(':') {
        Some((n, p)) => Some((n, Some(p))),
        None => Some((host, None)),
    }
}

fn is_ip_literal(name: &str) -> bool {
    name.starts_with('[') || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// The vault name a host names: its first label; none for an IP literal or a one-label host.
pub fn vault_name(host: &str) -> Option<String> {
    let (name, _) = split_port(host)?;
    if is_ip_literal(name) {
        return None;
    }
    let (first, rest) = name.split_once('.')?;
    (!first.is_empty() && !rest.is_empty()).then(|| first.to_ascii_lowercase())
}

/// The challenge's `resource`: `https://` + the host without its first label, keeping the
/// port (what the SDKs' resource check accepts: the request's host must end with "." + it).
/// A one-label host has nothing to drop; it is answered as is (no SDK accepts that).
pub fn resource(host: &str) -> String {
    let (name, port) = split_port(host).unwrap_or((host, None));
    let rest = match name.split_once('.') {
        Some((_, rest)) if !name.starts_with('[') && !rest.is_empty() => rest,
        _ => name,
    };
    match port {
        Some(p) => format!("https://{rest}:{p}"),
        None => format!("https://{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_legal("My-Secret-1"));
        assert!(is_legal(&"a".repeat(127)));
        for bad in [
            "",
            "a_b",
            "a.b",
            "a/b",
            "a b",
            "é",
            &"a".repeat(128),
            "a\u{0}",
        ] {
            assert!(!is_legal(bad), "{bad:?}");
            assert!(check_name(bad).is_err());
        }
    }

    #[test]
    fn versions() {
        let hex = "0123456789abcdef0123456789ABCDEF";
        assert_eq!(
            check_version(hex).unwrap().unwrap(),
            hex.to_ascii_lowercase()
        );
        let uuid = "01234567-89ab-cdef-0123-456789abcdef";
        assert_eq!(
            check_version(uuid).unwrap().unwrap(),
            "0123456789abcdef0123456789abcdef"
        );
        assert_eq!(check_version("").unwrap(), None);
        for bad in [
            "versions",
            "0123",
            "g123456789abcdef0123456789abcdef",
            "0123456789abcdef-0123456789abcdef",
        ] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_resources_and_vaults() {
        assert_eq!(resource("127.0.0.1:8443"), "https://0.0.1:8443");
        assert_eq!(resource("vault.example.com"), "https://example.com");
        assert_eq!(
            resource("payments.example.test:9000"),
            "https://example.test:9000"
        );
        assert_eq!(resource("localhost:8443"), "https://localhost:8443");
        assert_eq!(vault_name("127.0.0.1:8443"), None);
        assert_eq!(vault_name("localhost:8443"), None);
        assert_eq!(
            vault_name("Payments.example.test:1"),
            Some("payments".into())
        );
        assert_eq!(vault_name("[::1]:8443"), None);
        assert!(check_host("127.0.0.1:8443").is_some());
        assert!(check_host("[::1]:8443").is_some());
        for bad in ["a b", "a\"b", "h:80x", "a,b", "a=b", "", "[zz]:1", "h:"] {
            assert!(check_host(bad).is_none(), "{bad}");
        }
    }
}
