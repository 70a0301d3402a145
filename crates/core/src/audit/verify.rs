//! Verifying an audit log's hash chain (`coffer audit verify`).

use aws_lc_rs::hmac;
use serde_json::{Map, Value};

/// SHA-256 of an entry's body: its JSON without `seq`, `prev_hash` and `hash` (keys in
/// serde_json's stable order).
pub fn body_digest(body: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The chain hash of an entry: HMAC-SHA256 under the chain key over its sequence number, the
/// previous entry's hash and the digest of its body, as hex.
pub fn chain_hash(chain: &hmac::Key, seq: u64, prev_hash: &str, digest: &[u8; 32]) -> String {
    crate::util::to_hex(chain_tag(chain, seq, prev_hash, digest).as_ref())
}

fn chain_tag(chain: &hmac::Key, seq: u64, prev_hash: &str, digest: &[u8; 32]) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(chain);
    ctx.update(&seq.to_be_bytes());
    ctx.update(&(prev_hash.len() as u64).to_be_bytes());
    ctx.update(prev_hash.as_bytes());
    ctx.update(digest);
    ctx.sign()
}

/// Write one log line: the body's JSON with `seq`, `prev_hash` and `hash` added at the end.
pub fn append_line(out: &mut Vec<u8>, body: &[u8], seq: u64, prev_hash: &str, hash: &str) {
    let inner = body.strip_suffix(b"}").unwrap_or(body);
    out.extend_from_slice(inner);
    if inner.len() > 1 {
        out.push(b',');
    }
    out.extend_from_slice(b"\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b",\"prev_hash\":\"");
    out.extend_from_slice(prev_hash.as_bytes());
    out.extend_from_slice(b"\",\"hash\":\"");
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// Whether an entry's `hash` field verifies (constant-time comparison).
pub fn entry_hash_ok(chain: &hmac::Key, entry: &Map<String, Value>) -> bool {
    let (Some(seq), Some(prev_hash), Some(claimed)) = (
        entry.get("seq").and_then(Value::as_u64),
        entry.get("prev_hash").and_then(Value::as_str),
        entry.get("hash").and_then(Value::as_str),
    ) else {
        return false;
    };
    let Ok(claimed) = hex::decode(claimed) else {
        return false;
    };
    let mut body = entry.clone();
    body.remove("seq");
    body.remove("prev_hash");
    body.remove("hash");
    let Ok(bytes) = serde_json::to_vec(&body) else {
        return false;
    };
    let digest = body_digest(&bytes);
    let mut msg = Vec::with_capacity(8 + 8 + prev_hash.len() + 32);
    msg.extend_from_slice(&seq.to_be_bytes());
    msg.extend_from_slice(&(prev_hash.len() as u64).to_be_bytes());
    msg.extend_from_slice(prev_hash.as_bytes());
    msg.extend_from_slice(&digest);
    hmac::verify(chain, &msg, &claimed).is_ok()
}

/// The result of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOutcome {
    pub ok: bool,
    /// Entries checked before stopping.
    pub entries: u64,
    /// "OK ..." or what is wrong and where (file and line).
    pub message: String,
}

struct Line<'a> {
    file: &'a str,
    number: usize,
    text: &'a str,
}

fn fail(entries: u64, message: String) -> VerifyOutcome {
    VerifyOutcome {
        ok: false,
        entries,
        message,
    }
}

fn parse(line: &Line<'_>) -> Option<Map<String, Value>> {
    let start = line.text.find('{')?;
    serde_json::from_str(&line.text[start..]).ok()
}

/// Verify log files given in order (a rotated set: oldest first). `key_hex` is the device's
/// chain key; `expected_tail`, when known from the server, is the device's last (seq, hash), so a
/// truncated tail is detected.
pub fn verify(
    key_hex: &str,
    files: &[(String, Vec<u8>)],
    expected_tail: Option<(u64, String)>,
) -> VerifyOutcome {
    let key_bytes = zeroize::Zeroizing::new(match hex::decode(key_hex.trim()) {
        Ok(k) if !k.is_empty() => k,
        _ => return fail(0, "the chain key must be hex".into()),
    });
    let chain = hmac::Key::new(hmac::HMAC_SHA256, &key_bytes);
    let mut lines: Vec<Line<'_>> = Vec::new();
    for (fi, (name, content)) in files.iter().enumerate() {
        let Ok(text) = std::str::from_utf8(content) else {
            return fail(0, format!("{name}: not UTF-8 text"));
        };
        let complete = text.is_empty() || text.ends_with('\n');
        let mut pieces: Vec<&str> = text.split('\n').collect();
        if complete {
            pieces.pop();
        } else {
            if fi + 1 == files.len() {
                return fail(
                    0,
                    format!(
                        "{name}: truncated tail: the last line ({}) is incomplete",
                        pieces.len()
                    ),
                );
            }
            return fail(0, format!("{name}: line {} is incomplete", pieces.len()));
        }
        for (i, t) in pieces.into_iter().enumerate() {
            if t.trim().is_empty() {
                continue;
            }
            lines.push(Line {
                file: name,
                number: i + 1,
                text: t,
            });
        }
    }

    let mut prev: Option<(u64, String)> = None;
    let mut first_seq: Option<u64> = None;
    let mut checked = 0u64;
    for (idx, line) in lines.iter().enumerate() {
        let at = format!("{} line {}", line.file, line.number);
        let Some(entry) = parse(line) else {
            return fail(
                checked,
                format!("{at}: not an audit entry (inserted or edited)"),
            );
        };
        let (Some(seq), Some(prev_hash), Some(_)) = (
            entry.get("seq").and_then(Value::as_u64),
            entry.get("prev_hash").and_then(Value::as_str),
            entry.get("hash").and_then(Value::as_str),
        ) else {
            return fail(
                checked,
                format!("{at}: entry has no seq/prev_hash/hash (inserted or edited)"),
            );
        };
        if !entry_hash_ok(&chain, &entry) {
            return fail(
                checked,
                format!(
                    "{at}: entry seq {seq} does not verify: it was edited, or forged and inserted"
                ),
            );
        }
        match &prev {
            None => {
                if seq == 1 && !prev_hash.is_empty() {
                    return fail(checked, format!("{at}: first entry has a previous hash"));
                }
            }
            Some((pseq, phash)) => {
                if seq == pseq + 1 && prev_hash != phash {
                    return fail(checked, format!("{at}: entry seq {seq} does not follow the previous entry (chain broken)"));
                }
                if seq != pseq + 1 {
                    let next_seq = lines
                        .get(idx + 1)
                        .and_then(parse)
                        .and_then(|e| e.get("seq").and_then(Value::as_u64));
                    if seq <= *pseq || next_seq == Some(pseq + 1) {
                        return fail(
                            checked,
                            format!("{at}: entry seq {seq} is out of order after seq {pseq} (lines swapped, reordered or replayed)"),
                        );
                    }
                    return fail(
                        checked,
                        format!(
                            "{at}: entries seq {}..{} are missing (lines deleted)",
                            pseq + 1,
                            seq - 1
                        ),
                    );
                }
            }
        }
        checked += 1;
        first_seq.get_or_insert(seq);
        prev = Some((
            seq,
            entry
                .get("hash")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ));
    }
    if let Some((tseq, thash)) = expected_tail {
        let (lseq, lhash) = prev.clone().unwrap_or((0, String::new()));
        if lseq < tseq {
            return fail(
                checked,
                format!("truncated tail: the log ends at seq {lseq} but the device has written up to seq {tseq}"),
            );
        }
        if lseq == tseq && lhash != thash {
            return fail(
                checked,
                format!("the last entry (seq {lseq}) is not the one the device wrote"),
            );
        }
    }
    VerifyOutcome {
        ok: true,
        entries: checked,
        message: match prev {
            Some((s, _)) => match first_seq {
                // a chain can only be checked from its first entry on: say where it starts
                Some(f) if f > 1 => format!(
                    "OK: {checked} entries verified (seq {f} to {s}; entries before seq {f} are not in these files)"
                ),
                _ => format!("OK: {checked} entries verified (last seq {s})"),
            },
            None => "OK: no entries".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain_of(n: u64) -> (String, Vec<String>) {
        let key_hex = "11".repeat(32);
        let key = hmac::Key::new(hmac::HMAC_SHA256, &[0x11; 32]);
        let mut prev = String::new();
        let mut out = Vec::new();
        for seq in 1..=n {
            let mut e = Map::new();
            e.insert("type".into(), "request".into());
            e.insert(
                "request".into(),
                serde_json::json!({"path": format!("secret/data/{seq}")}),
            );
            let body = serde_json::to_vec(&e).unwrap();
            let h = chain_hash(&key, seq, &prev, &body_digest(&body));
            let mut line = Vec::new();
            append_line(&mut line, &body, seq, &prev, &h);
            prev = h;
            out.push(String::from_utf8(line).unwrap().trim_end().to_string());
        }
        (key_hex, out)
    }

    fn file(lines: &[String]) -> Vec<(String, Vec<u8>)> {
        vec![(
            "audit.log".into(),
            format!("{}\n", lines.join("\n")).into_bytes(),
        )]
    }

    #[test]
    fn clean_chain_verifies_and_each_tamper_is_caught() {
        let (k, lines) = chain_of(6);
        assert!(verify(&k, &file(&lines), None).ok);

        let mut edited = lines.clone();
        edited[2] = edited[2].replace("secret/data/3", "secret/data/x");
        let r = verify(&k, &file(&edited), None);
        assert!(
            !r.ok && r.message.contains("line 3") && r.message.contains("edited"),
            "{r:?}"
        );

        let mut deleted = lines.clone();
        deleted.remove(3);
        let r = verify(&k, &file(&deleted), None);
        assert!(!r.ok && r.message.contains("missing"), "{r:?}");

        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        let r = verify(&k, &file(&swapped), None);
        assert!(!r.ok && r.message.contains("out of order"), "{r:?}");

        let mut inserted = lines.clone();
        inserted.insert(2, lines[1].replace("secret/data/2", "secret/data/forged"));
        let r = verify(&k, &file(&inserted), None);
        assert!(!r.ok && r.message.contains("line 3"), "{r:?}");

        // truncated: whole lines gone at the end, detected against the device's position
        let truncated = lines[..4].to_vec();
        let r = verify(&k, &file(&truncated), Some((6, "x".into())));
        assert!(!r.ok && r.message.contains("truncated"), "{r:?}");
        // truncated mid-line
        let mut bytes = file(&lines);
        let len = bytes[0].1.len();
        bytes[0].1.truncate(len - 10);
        let r = verify(&k, &bytes, None);
        assert!(!r.ok && r.message.contains("truncated"), "{r:?}");

        // wrong key
        let r = verify(&"22".repeat(32), &file(&lines), None);
        assert!(!r.ok);
    }

    #[test]
    fn rotated_files_verify_in_order() {
        let (k, lines) = chain_of(6);
        let files = vec![
            (
                "a.log".to_string(),
                format!("{}\n", lines[..3].join("\n")).into_bytes(),
            ),
            (
                "b.log".to_string(),
                format!("{}\n", lines[3..].join("\n")).into_bytes(),
            ),
        ];
        assert!(verify(&k, &files, None).ok);
        let reversed = vec![files[1].clone(), files[0].clone()];
        assert!(!verify(&k, &reversed, None).ok);
    }
}
