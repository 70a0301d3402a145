//! Input data for writes: Vault's `key=value` arguments (`key=@file`, `key=-`, `@file.json`,
//! `-`), `k=v` flag values, and reading secrets from the terminal.
//!
//! Error messages here never quote a value: an argument may be a secret typed in the wrong form.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::path::Path;

use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// Where `@file` and `-` arguments read from; injectable for tests.
pub struct Sources<'a> {
    pub stdin: &'a mut dyn Read,
    pub read_file: &'a dyn Fn(&Path) -> io::Result<Vec<u8>>,
}

/// Parses Vault-style data arguments into a JSON object:
/// - `key=value`: a string value; a repeated key collects its values into an array;
/// - `key=@path`: the contents of a file (`key=\@text` is the literal `@text`);
/// - `key=-`: all of stdin;
/// - `@path` or `-` on its own: a JSON object read from the file or stdin, merged in.
///
/// Stdin can be consumed only once.
pub fn parse_data_args(
    args: &[String],
    sources: Sources<'_>,
) -> Result<Map<String, Value>, String> {
    let Sources { stdin, read_file } = sources;
    let mut result = Map::new();
    let mut stdin_used = false;
    let mut take_stdin = |stdin: &mut dyn Read| -> Result<Zeroizing<Vec<u8>>, String> {
        if stdin_used {
            return Err("stdin already consumed by an earlier argument".to_string());
        }
        stdin_used = true;
        let mut buf = Zeroizing::new(Vec::new());
        stdin
            .read_to_end(&mut buf)
            .map_err(|e| format!("error reading stdin: {e}"))?;
        Ok(buf)
    };
    for (index, raw) in args.iter().enumerate() {
        let position = index + 1;
        if raw.is_empty() {
            continue;
        }
        let Some((key, value)) = raw.split_once('=') else {
            if raw == "-" {
                let bytes = take_stdin(&mut *stdin)?;
                merge_json_object(&mut result, &bytes, "stdin")?;
            } else if let Some(path) = raw.strip_prefix('@') {
                let bytes = Zeroizing::new(
                    read_file(Path::new(path))
                        .map_err(|e| format!("error reading file {path}: {e}"))?,
                );
                merge_json_object(&mut result, &bytes, path)?;
            } else {
                return Err(format!(
                    "argument {position} is not in key=value form (nor @file or -)"
                ));
            }
            continue;
        };
        if key.is_empty() {
            return Err(format!("argument {position} has an empty key"));
        }
        let value = if let Some(path) = value.strip_prefix('@') {
            let bytes = read_file(Path::new(path))
                .map_err(|e| format!("error reading file {path}: {e}"))?;
            String::from_utf8(bytes)
                .map_err(|_| format!("file {path} (for key {key}) is not valid UTF-8"))?
        } else if let Some(rest) = value.strip_prefix("\\@") {
            format!("@{rest}")
        } else if value == "-" {
            let bytes = take_stdin(&mut *stdin)?;
            String::from_utf8(bytes.to_vec())
                .map_err(|_| format!("stdin (for key {key}) is not valid UTF-8"))?
        } else {
            value.to_string()
        };
        insert_repeatable(&mut result, key, Value::String(value));
    }
    Ok(result)
}

/// Parses with the real stdin and file system.
pub fn parse_data_args_from_env(args: &[String]) -> Result<Map<String, Value>, String> {
    let stdin = io::stdin();
    let mut lock = stdin.lock();
    parse_data_args(
        args,
        Sources {
            stdin: &mut lock,
            read_file: &|path: &Path| std::fs::read(path),
        },
    )
}

fn insert_repeatable(map: &mut Map<String, Value>, key: &str, value: Value) {
    match map.get_mut(key) {
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            map.insert(key.to_string(), value);
        }
    }
}

fn merge_json_object(
    map: &mut Map<String, Value>,
    bytes: &[u8],
    source: &str,
) -> Result<(), String> {
    // serde_json's messages can quote the offending input; report only where it failed.
    let parsed: Value = serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "{source} does not contain valid JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let Value::Object(object) = parsed else {
        return Err(format!("{source} must contain a JSON object"));
    };
    map.extend(object);
    Ok(())
}

/// Parses a `key=value` flag value (`-metadata`, `-custom-metadata`, `-options`).
pub fn parse_key_value(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err("expected key=value".to_string()),
    }
}

/// Collects `key=value` flag values into a JSON object (later values win).
pub fn key_values_to_map(pairs: &[(String, String)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

/// Reads a secret: from stdin if `arg` is `-`, otherwise by prompting on the terminal without
/// echo (or reading one line when stdin is not a terminal).
pub fn read_secret(arg: Option<&str>, prompt: &str) -> Result<Zeroizing<String>, String> {
    match arg {
        Some("-") => {
            let mut buf = Zeroizing::new(String::new());
            io::stdin()
                .read_to_string(&mut buf)
                .map_err(|e| format!("error reading stdin: {e}"))?;
            Ok(Zeroizing::new(buf.trim().to_string()))
        }
        Some(value) => Ok(Zeroizing::new(value.to_string())),
        None => prompt_hidden(prompt),
    }
}

fn prompt_hidden(prompt: &str) -> Result<Zeroizing<String>, String> {
    let stdin = io::stdin();
    let interactive = stdin.is_terminal();
    if interactive {
        eprint!("{prompt}");
        let _ = io::stderr().flush();
        set_terminal_echo(false);
    }
    let mut line = Zeroizing::new(String::new());
    let read = stdin.lock().read_line(&mut line);
    if interactive {
        set_terminal_echo(true);
        eprintln!();
    }
    read.map_err(|e| format!("error reading input: {e}"))?;
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Err("no input given".to_string());
    }
    Ok(Zeroizing::new(trimmed.to_string()))
}

fn set_terminal_echo(on: bool) {
    // Best effort: without stty the input is echoed, which is still correct behaviour.
    let _ = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse_with(
        args: &[&str],
        stdin: &str,
        files: &[(&str, &str)],
    ) -> Result<Map<String, Value>, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let files: HashMap<String, Vec<u8>> = files
            .iter()
            .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
            .collect();
        let reader = move |path: &Path| {
            files
                .get(path.to_str().unwrap_or_default())
                .cloned()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
        };
        let mut input = stdin.as_bytes();
        parse_data_args(
            &args,
            Sources {
                stdin: &mut input,
                read_file: &reader,
            },
        )
    }

    #[test]
    fn plain_pairs() {
        let m = parse_with(&["a=1", "b=two=2", "c="], "", &[]).unwrap();
        assert_eq!(
            Value::Object(m),
            serde_json::json!({"a": "1", "b": "two=2", "c": ""})
        );
    }

    #[test]
    fn repeated_keys_become_arrays() {
        let m = parse_with(&["a=1", "a=2", "a=3"], "", &[]).unwrap();
        assert_eq!(m["a"], serde_json::json!(["1", "2", "3"]));
    }

    #[test]
    fn file_and_stdin_values() {
        let m = parse_with(
            &["cert=@/tmp/c.pem", "pw=-", "lit=\\@home"],
            "s3cret\n",
            &[("/tmp/c.pem", "PEM\n")],
        )
        .unwrap();
        assert_eq!(m["cert"], "PEM\n");
        assert_eq!(m["pw"], "s3cret\n");
        assert_eq!(m["lit"], "@home");
    }

    #[test]
    fn json_object_from_stdin_and_file() {
        let m = parse_with(&["-"], r#"{"a": 1, "b": {"c": true}}"#, &[]).unwrap();
        assert_eq!(
            Value::Object(m),
            serde_json::json!({"a": 1, "b": {"c": true}})
        );
        let m = parse_with(&["@d.json", "x=y"], "", &[("d.json", r#"{"a":"b"}"#)]).unwrap();
        assert_eq!(Value::Object(m), serde_json::json!({"a": "b", "x": "y"}));
    }

    #[test]
    fn stdin_only_once() {
        let err = parse_with(&["a=-", "b=-"], "x", &[]).unwrap_err();
        assert!(err.contains("stdin already consumed"));
    }

    #[test]
    fn errors_never_echo_values() {
        let err = parse_with(&["a=1", "hunter2"], "", &[]).unwrap_err();
        assert!(err.contains("argument 2"), "{err}");
        assert!(!err.contains("hunter2"));
        let err = parse_with(&["-"], r#""hunter2""#, &[]).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        let err = parse_with(&["-"], "{hunter2", &[]).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        let err = parse_with(&["=hunter2"], "", &[]).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn missing_file_is_reported_with_its_path() {
        let err = parse_with(&["k=@/nope"], "", &[]).unwrap_err();
        assert!(err.contains("/nope"), "{err}");
    }

    #[test]
    fn key_value_flags() {
        assert_eq!(
            parse_key_value("a=b=c").unwrap(),
            ("a".into(), "b=c".into())
        );
        assert_eq!(parse_key_value("a=").unwrap(), ("a".into(), String::new()));
        assert!(parse_key_value("=b").is_err());
        assert!(parse_key_value("ab").is_err());
        let m = key_values_to_map(&[("a".into(), "1".into()), ("a".into(), "2".into())]);
        assert_eq!(m["a"], "2");
    }
}
