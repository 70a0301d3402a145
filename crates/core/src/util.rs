//! Small shared helpers: time formatting, Vault duration parsing, path checks.

use crate::error::{CoreError, Result};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Current time as Vault prints it: RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    format_unix(unix_now())
}

/// Seconds (with fraction) since the epoch.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Format a unix timestamp as RFC 3339.
pub fn format_unix(secs: f64) -> String {
    let nanos = (secs * 1e9) as i128;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Parse an RFC 3339 timestamp to unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos() as f64 / 1e9)
}

/// Parse a Vault duration: an integer number of seconds (JSON number or string), or a Go-style
/// duration string such as `"1h30m"`, `"768h"`, `"10s"`, `"1.5h"`, `"500ms"`, plus `d` for days.
pub fn parse_duration_str(s: &str) -> Result<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Duration::ZERO);
    }
    if let Ok(n) = s.parse::<u64>() {
        if n > MAX_DURATION_SECS {
            return Err(CoreError::invalid(format!(
                "invalid duration {s:?}: too long"
            )));
        }
        return Ok(Duration::from_secs(n));
    }
    let bad = || CoreError::invalid(format!("invalid duration {s:?}"));
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    duration_from_secs_f64(total).ok_or_else(bad)
}

/// Longest duration any parameter may give: 100 years. Longer values are refused rather than
/// carried into arithmetic that could overflow.
pub const MAX_DURATION_SECS: u64 = 100 * 365 * 86400;

/// A duration from fractional seconds; `None` (never a panic) when negative, not finite or over
/// [`MAX_DURATION_SECS`].
pub fn duration_from_secs_f64(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || !(0.0..=MAX_DURATION_SECS as f64).contains(&secs) {
        return None;
    }
    Duration::try_from_secs_f64(secs).ok()
}

/// Parse a duration given as a JSON value (number of seconds or string).
pub fn parse_duration_value(v: &Value) -> Result<Duration> {
    match v {
        Value::Null => Ok(Duration::ZERO),
        Value::Number(n) => n
            .as_u64()
            .filter(|s| *s <= MAX_DURATION_SECS)
            .map(Duration::from_secs)
            .or_else(|| n.as_f64().and_then(duration_from_secs_f64))
            .ok_or_else(|| CoreError::invalid(format!("invalid duration {n}"))),
        Value::String(s) => parse_duration_str(s),
        _ => Err(CoreError::invalid(
            "duration must be a number of seconds or a string",
        )),
    }
}

/// Format a duration the way Vault echoes config values: `"0s"`, `"1h0m0s"`, `"30s"`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// Reject paths that could escape their namespace or are malformed.
pub fn validate_path(path: &str) -> Result<()> {
    if path.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(CoreError::invalid(
            "invalid path: '.' and '..' segments are not allowed",
        ));
    }
    if path.contains("//") {
        return Err(CoreError::invalid("invalid path: empty path segment"));
    }
    if path.chars().any(|c| c.is_control()) {
        return Err(CoreError::invalid(
            "invalid path: control characters are not allowed",
        ));
    }
    Ok(())
}

/// Lowercase hex of `bytes`, appended to `out` (a table lookup; `hex::encode` is several times
/// slower and sits on the audit hot path).
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0x0f) as usize] as char);
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    s
}

/// Parse a list of CIDR blocks (a bare address counts as a single-host block).
pub fn parse_cidrs(list: &[String]) -> Result<Vec<ipnet::IpNet>> {
    list.iter()
        .map(|c| {
            let c = c.trim();
            c.parse::<ipnet::IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| CoreError::invalid(format!("invalid CIDR block {c:?}")))
        })
        .collect()
}

/// Whether `addr` is inside one of `cidrs` (an empty list allows every address; an unknown
/// address is refused when the list is not empty).
pub fn cidrs_allow(cidrs: &[String], addr: Option<std::net::IpAddr>) -> bool {
    if cidrs.is_empty() {
        return true;
    }
    let Some(addr) = addr else {
        return false;
    };
    // IPv4-mapped IPv6 peers match IPv4 blocks
    let addr = match addr {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(std::net::IpAddr::V4)
            .unwrap_or(addr),
        v4 => v4,
    };
    match parse_cidrs(cidrs) {
        Ok(nets) => nets.iter().any(|n| n.contains(&addr)),
        Err(_) => false,
    }
}

/// Read an optional boolean parameter that may be sent as a bool, a string or a number.
pub fn value_as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "t" | "yes" => Some(true),
            "false" | "0" | "f" | "no" | "" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    }
}

/// Read an integer parameter sent as a number or a numeric string.
pub fn value_as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Read a list of strings sent as a JSON array or a comma-separated string.
pub fn value_as_string_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Null => Some(vec![]),
        Value::String(s) => Some(
            s.split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
        ),
        // array items are taken as sent: a name with surrounding whitespace is the caller's
        // to get right, not ours to rewrite after the ACL saw it
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_str("768h").unwrap().as_secs(), 768 * 3600);
        assert_eq!(parse_duration_str("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration_str("0s").unwrap().as_secs(), 0);
        assert_eq!(parse_duration_str("45").unwrap().as_secs(), 45);
        assert_eq!(parse_duration_str("2d").unwrap().as_secs(), 172800);
        assert!(parse_duration_str("h").is_err());
        assert!(parse_duration_str("5x").is_err());
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h0m0s");
    }

    #[test]
    fn paths() {
        assert!(validate_path("a/../b").is_err());
        assert!(validate_path("a/b").is_ok());
        assert!(validate_path("a//b").is_err());
    }
}

#[cfg(test)]
mod hex_tests {
    #[test]
    fn to_hex_matches_hex_crate() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        assert_eq!(super::to_hex(&bytes), hex::encode(&bytes));
        assert_eq!(super::to_hex(&[]), "");
    }
}
