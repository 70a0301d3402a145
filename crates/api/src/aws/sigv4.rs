//! SigV4 verification, the HTTP half: from a request as received to the
//! [`SignedProof`] the core checks with the key's issuer.
//!
//! What is checked here (everything that needs no secret):
//!
//! - the `Authorization: AWS4-HMAC-SHA256 Credential=<id>/<date>/<region>/<service>/aws4_request,
//!   SignedHeaders=…, Signature=…` header, or the presigned query parameters `X-Amz-Algorithm`,
//!   `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-SignedHeaders`, `X-Amz-Signature` (and
//!   `X-Amz-Expires`);
//! - the credential scope's date equals the date of `X-Amz-Date` (or of `Date`);
//! - the request time is within the clock-skew window ([`VerifierConfig::max_skew`], 15 minutes
//!   by default, as AWS);
//! - `host` is a signed header, and the scope's service is the dialect's (`secretsmanager`);
//! - a sent `x-amz-content-sha256` equals the SHA-256 of the body.
//!
//! Then the canonical request is built as AWS specifies (method; the path normalized and
//! URI-encoded; the query sorted by encoded key then value; the signed headers, lowercase, values
//! trimmed with inner runs of spaces collapsed, repeated headers joined with `,`; the signed
//! header list; the hex SHA-256 of the body), and the string to sign from it. The signature
//! itself is checked by the issuer ([`coffer_core::sigv4::verify`]): the core never sees a
//! secret key.
//!
//! Errors are [`SigV4Error`], which carries AWS's codes, statuses and wording.

use axum::http::{HeaderMap, StatusCode};
use coffer_core::error::CoreError;
use coffer_core::request::{SignedProof, SigningScope};
use coffer_core::sigv4::ALGORITHM;
use std::time::Duration;

pub use coffer_core::sigv4::{sign, signing_key};

/// The SHA-256 of an empty body, hex.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Longest presigned validity AWS allows (`X-Amz-Expires`, seconds: 7 days).
const MAX_PRESIGNED_EXPIRES: i64 = 604_800;

/// How the verifier is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// How far the request time may be from the server's clock, either way (AWS: 15 minutes).
    pub max_skew: Duration,
    /// The service the credential scope must name.
    pub service: String,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        VerifierConfig {
            max_skew: Duration::from_secs(15 * 60),
            service: "secretsmanager".into(),
        }
    }
}

/// A request as received, in the parts SigV4 signs.
#[derive(Debug, Clone, Copy)]
pub struct HttpParts<'a> {
    pub method: &'a str,
    /// The path as received (still percent-encoded).
    pub path: &'a str,
    /// The query as received (without `?`), if any.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Why a signed request was refused, with AWS's codes and wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// Nothing signed was sent.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    /// The `Authorization` header (or presigned query) is malformed.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The signature does not match, or the scope, signed headers or body hash are wrong.
    #[error("{0}")]
    InvalidSignature(String),
    /// The request time is outside the clock-skew window ("Signature expired: …", "Signature
    /// not yet current: …"); AWS answers it as `InvalidSignatureException`.
    #[error("{0}")]
    SignatureExpired(String),
    /// The access key is unknown, or a session token was sent that Coffer did not issue.
    #[error("{}", coffer_core::sigv4::INVALID_SECURITY_TOKEN)]
    UnrecognizedClient,
}

impl SigV4Error {
    /// The error code in the JSON protocols (`__type`), which Secrets Manager speaks.
    pub fn code(&self) -> &'static str {
        match self {
            SigV4Error::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            SigV4Error::IncompleteSignature(_) => "IncompleteSignatureException",
            SigV4Error::InvalidSignature(_) | SigV4Error::SignatureExpired(_) => {
                "InvalidSignatureException"
            }
            SigV4Error::UnrecognizedClient => "UnrecognizedClientException",
        }
    }

    /// The error code in the query and REST-XML protocols (STS, IAM, S3), for dialects that
    /// will speak them: AWS calls a mismatch `SignatureDoesNotMatch` there, and an unknown key
    /// `InvalidClientTokenId`.
    pub fn query_code(&self) -> &'static str {
        match self {
            SigV4Error::MissingAuthenticationToken => "MissingAuthenticationToken",
            SigV4Error::IncompleteSignature(_) => "IncompleteSignature",
            SigV4Error::InvalidSignature(_) => "SignatureDoesNotMatch",
            SigV4Error::SignatureExpired(_) => "RequestExpired",
            SigV4Error::UnrecognizedClient => "InvalidClientTokenId",
        }
    }

    /// The HTTP status (Secrets Manager's Common Errors: 403 for a missing token, 400 else).
    pub fn status(&self) -> StatusCode {
        match self {
            SigV4Error::MissingAuthenticationToken => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The AWS error for the core's refusal of a signed request: the issuer answers a known key
    /// with a wrong signature with [`coffer_core::sigv4::SIGNATURE_MISMATCH`]; any other
    /// unauthenticated answer (unknown key, session token) is `UnrecognizedClientException`.
    /// `None` for errors that are not about the credential.
    pub fn from_core(e: &CoreError) -> Option<SigV4Error> {
        if e.code != coffer_core::error::ErrorCode::Unauthenticated {
            return None;
        }
        Some(if e.message == coffer_core::sigv4::SIGNATURE_MISMATCH {
            SigV4Error::InvalidSignature(e.message.clone())
        } else {
            SigV4Error::UnrecognizedClient
        })
    }
}

fn incomplete(msg: impl Into<String>) -> SigV4Error {
    SigV4Error::IncompleteSignature(msg.into())
}

/// What the request claims: from the `Authorization` header or the presigned query.
struct Claim {
    access_key_id: String,
    scope: SigningScope,
    signed_headers: Vec<String>,
    signature: String,
    /// Presigned requests: the validity in seconds (`X-Amz-Expires`).
    expires: Option<i64>,
    /// Whether it came from the query (a presigned request).
    presigned: bool,
}

/// Verify everything but the signature itself and build the proof for the core. `now` is the
/// server's clock in unix seconds.
pub fn verify(
    req: &HttpParts<'_>,
    now: i64,
    cfg: &VerifierConfig,
) -> Result<SignedProof, SigV4Error> {
    let query = parse_query(req.query.unwrap_or(""));
    let claim = match header_str(req.headers, "authorization") {
        Some(auth) => parse_authorization(auth)?,
        None if query_get(&query, "X-Amz-Algorithm").is_some()
            || query_get(&query, "X-Amz-Signature").is_some() =>
        {
            parse_presigned(&query)?
        }
        None => return Err(SigV4Error::MissingAuthenticationToken),
    };

    // the request time: X-Amz-Date (header, or query when presigned), else Date
    let (amz_date, when) = request_time(req.headers, &query, claim.presigned)?;
    let day = amz_date.get(..8).unwrap_or("");
    if claim.scope.date != day {
        return Err(SigV4Error::InvalidSignature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
             HTTP: '{}' != '{}', from '{amz_date}'.",
            claim.scope.date, day
        )));
    }
    if claim.scope.service != cfg.service {
        return Err(SigV4Error::InvalidSignature(format!(
            "Credential should be scoped to correct service: '{}'. ",
            cfg.service
        )));
    }
    if !claim.signed_headers.iter().any(|h| h == "host") {
        return Err(SigV4Error::InvalidSignature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    check_time(when, now, cfg.max_skew, claim.expires)?;

    let payload_hash = payload_hash(req.headers, req.body)?;
    let canonical = canonical_request(req, &query, &claim, &payload_hash);
    let scope = format!(
        "{}/{}/{}/aws4_request",
        claim.scope.date, claim.scope.region, claim.scope.service
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let security_token = header_str(req.headers, "x-amz-security-token")
        .map(str::to_string)
        .or_else(|| query_get(&query, "X-Amz-Security-Token").map(str::to_string));
    Ok(SignedProof {
        access_key_id: claim.access_key_id,
        string_to_sign,
        signature: claim.signature,
        scope: claim.scope,
        security_token,
    })
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

/// `Credential=AKID/20150830/us-east-1/service/aws4_request` → key id and scope.
fn parse_credential(value: &str) -> Result<(String, SigningScope), SigV4Error> {
    let parts: Vec<&str> = value.split('/').collect();
    match parts.as_slice() {
        [id, date, region, service, "aws4_request"]
            if !id.is_empty()
                && date.len() == 8
                && date.bytes().all(|b| b.is_ascii_digit())
                && !region.is_empty()
                && !service.is_empty() =>
        {
            Ok((
                id.to_string(),
                SigningScope {
                    date: date.to_string(),
                    region: region.to_string(),
                    service: service.to_string(),
                },
            ))
        }
        _ => Err(incomplete(format!(
            "Credential should be scoped to a valid region. Credential must have exactly 5 \
             slash-delimited elements, e.g. keyid/date/region/service/term, got '{}'",
            // never echo more than the scope's shape
            value.chars().take(200).collect::<String>()
        ))),
    }
}

fn parse_signed_headers(value: &str) -> Result<Vec<String>, SigV4Error> {
    let list: Vec<String> = value.split(';').map(|h| h.trim().to_string()).collect();
    if list.iter().any(|h| h.is_empty()) {
        return Err(incomplete(
            "Invalid SignedHeaders in the AWS Authorization.",
        ));
    }
    Ok(list)
}

fn parse_authorization(auth: &str) -> Result<Claim, SigV4Error> {
    let auth = auth.trim();
    let Some(rest) = auth.strip_prefix(ALGORITHM) else {
        let algorithm = auth.split_whitespace().next().unwrap_or("");
        return Err(incomplete(format!(
            "Unsupported AWS 'algorithm': '{}'",
            algorithm.chars().take(64).collect::<String>()
        )));
    };
    if !rest.starts_with(' ') {
        return Err(incomplete(
            "Authorization header requires 'Credential' parameter.",
        ));
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    for (name, v) in [
        ("Credential", credential),
        ("Signature", signature),
        ("SignedHeaders", signed),
    ] {
        if v.is_none() {
            missing.push(format!("Authorization header requires '{name}' parameter."));
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(incomplete(missing.join(" ")));
    };
    let (access_key_id, scope) = parse_credential(credential)?;
    Ok(Claim {
        access_key_id,
        scope,
        signed_headers: parse_signed_headers(signed)?,
        signature: signature.to_string(),
        expires: None,
        presigned: false,
    })
}

fn parse_presigned(query: &[(Vec<u8>, Vec<u8>)]) -> Result<Claim, SigV4Error> {
    let get = |k: &str| query_get(query, k);
    let mut missing = Vec::new();
    for k in [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Signature",
        "X-Amz-SignedHeaders",
        "X-Amz-Date",
    ] {
        if get(k).is_none() {
            missing.push(format!("AWS query-string parameters must include '{k}'."));
        }
    }
    if !missing.is_empty() {
        return Err(incomplete(missing.join(" ")));
    }
    if get("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(incomplete(
            "Unsupported AWS 'algorithm' in the query string.",
        ));
    }
    let (access_key_id, scope) = parse_credential(get("X-Amz-Credential").unwrap_or(""))?;
    let expires = match get("X-Amz-Expires") {
        None => None,
        Some(e) => match e.parse::<i64>() {
            Ok(n) if (1..=MAX_PRESIGNED_EXPIRES).contains(&n) => Some(n),
            _ => {
                return Err(incomplete(
                    "X-Amz-Expires must be a whole number of seconds from 1 to 604800.",
                ))
            }
        },
    };
    Ok(Claim {
        access_key_id,
        scope,
        signed_headers: parse_signed_headers(get("X-Amz-SignedHeaders").unwrap_or(""))?,
        signature: get("X-Amz-Signature").unwrap_or("").to_string(),
        expires,
        presigned: true,
    })
}

/// The request time: (`YYYYMMDDTHHMMSSZ`, unix seconds).
fn request_time(
    headers: &HeaderMap,
    query: &[(Vec<u8>, Vec<u8>)],
    presigned: bool,
) -> Result<(String, i64), SigV4Error> {
    let amz = if presigned {
        query_get(query, "X-Amz-Date")
    } else {
        header_str(headers, "x-amz-date")
    };
    if let Some(d) = amz {
        let t = parse_amz_date(d).ok_or_else(|| {
            incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{}'. See \
                 http://en.wikipedia.org/wiki/ISO_8601",
                d.chars().take(64).collect::<String>()
            ))
        })?;
        return Ok((d.to_string(), t));
    }
    let Some(d) = header_str(headers, "date") else {
        return Err(incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    let t = parse_http_date(d)
        .ok_or_else(|| incomplete("The 'Date' header is not a valid HTTP date."))?;
    Ok((format_amz_date(t), t))
}

fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let year = i32::try_from(digits(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(digits(4..6)?).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(year, month, u8::try_from(digits(6..8)?).ok()?).ok()?;
    let t = time::Time::from_hms(
        u8::try_from(digits(9..11)?).ok()?,
        u8::try_from(digits(11..13)?).ok()?,
        u8::try_from(digits(13..15)?).ok()?,
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// An IMF-fixdate (`Sun, 30 Aug 2015 12:36:00 GMT`) → unix seconds.
fn parse_http_date(s: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_weekday, day, month, year, hms, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = MONTHS.iter().position(|m| m == month)?;
    let hms: Vec<&str> = hms.split(':').collect();
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    let date = time::Date::from_calendar_date(
        year.parse().ok()?,
        time::Month::try_from(u8::try_from(month + 1).ok()?).ok()?,
        day.parse().ok()?,
    )
    .ok()?;
    let t = time::Time::from_hms(h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// Unix seconds → `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(t: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(t) {
        Ok(d) => format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        Err(_) => String::new(),
    }
}

/// AWS's clock-skew check and wording; presigned requests are good from their time until it
/// plus `X-Amz-Expires` (and not before their time less the skew).
fn check_time(
    when: i64,
    now: i64,
    max_skew: Duration,
    expires: Option<i64>,
) -> Result<(), SigV4Error> {
    let skew = i64::try_from(max_skew.as_secs()).unwrap_or(i64::MAX);
    let minutes = skew / 60;
    let earliest = now.saturating_sub(skew);
    let latest = now.saturating_add(skew);
    if let Some(exp) = expires {
        if when.saturating_add(exp) < now {
            return Err(SigV4Error::SignatureExpired(format!(
                "Signature expired: {} is now earlier than {} ({} - {exp} sec.)",
                format_amz_date(when),
                format_amz_date(now.saturating_sub(exp)),
                format_amz_date(now),
            )));
        }
    } else if when < earliest {
        return Err(SigV4Error::SignatureExpired(format!(
            "Signature expired: {} is now earlier than {} ({} - {minutes} min.)",
            format_amz_date(when),
            format_amz_date(earliest),
            format_amz_date(now),
        )));
    }
    if when > latest {
        return Err(SigV4Error::SignatureExpired(format!(
            "Signature not yet current: {} is still later than {} ({} + {minutes} min.)",
            format_amz_date(when),
            format_amz_date(latest),
            format_amz_date(now),
        )));
    }
    Ok(())
}

/// The body's hash: computed, and compared with `x-amz-content-sha256` when one was sent.
fn payload_hash(headers: &HeaderMap, body: &[u8]) -> Result<String, SigV4Error> {
    use subtle::ConstantTimeEq;
    let computed = sha256_hex(body);
    if let Some(sent) = headers.get("x-amz-content-sha256") {
        let sent = sent.as_bytes().to_ascii_lowercase();
        if !bool::from(sent.as_slice().ct_eq(computed.as_bytes())) {
            return Err(SigV4Error::InvalidSignature(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .into(),
            ));
        }
    }
    Ok(computed)
}

fn canonical_request(
    req: &HttpParts<'_>,
    query: &[(Vec<u8>, Vec<u8>)],
    claim: &Claim,
    payload_hash: &str,
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.path));
    out.push('\n');
    out.push_str(&canonical_query(query, claim.presigned));
    out.push('\n');
    for name in &claim.signed_headers {
        out.push_str(name);
        out.push(':');
        push_header_value(&mut out, req.headers, name);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&claim.signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// All values of a header, each trimmed with inner runs of spaces collapsed, joined with `,`,
/// appended to `out`.
fn push_header_value(out: &mut String, headers: &HeaderMap, name: &str) {
    for (i, v) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let v = String::from_utf8_lossy(v.as_bytes());
        for (j, word) in v.split_whitespace().enumerate() {
            if j > 0 {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
}

/// The path, normalized (empty and `.` segments dropped, `..` applied) and URI-encoded as AWS
/// does for every service but S3: the path as received is already encoded once, and is encoded
/// again (`%` → `%25`).
fn canonical_uri(path: &str) -> String {
    if path == "/" {
        return "/".to_string();
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let trailing = segments.last().is_some()
        && (path.ends_with('/') || path.ends_with("/.") || path.ends_with("/.."));
    let mut out = String::from("/");
    out.push_str(
        &segments
            .iter()
            .map(|s| uri_encode(s.as_bytes()))
            .collect::<Vec<_>>()
            .join("/"),
    );
    if trailing {
        out.push('/');
    }
    out
}

/// `k=v` pairs, encoded the AWS way and sorted by key then value (the signature of a presigned
/// request left out).
fn canonical_query(query: &[(Vec<u8>, Vec<u8>)], presigned: bool) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| !(presigned && k == b"X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The query's pairs, percent-decoded to bytes (`+` is kept as it is: AWS's encoding has no
/// `+`).
fn parse_query(q: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn query_get<'q>(query: &'q [(Vec<u8>, Vec<u8>)], key: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == key.as_bytes())
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// AWS's URI encoding: every byte but `A-Za-z0-9-._~` as `%XX` (uppercase hex).
pub fn uri_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[path = "sigv4_tests.rs"]
mod tests;
