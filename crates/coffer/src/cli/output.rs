//! Output formatting in the style of Vault's CLI: Key/Value tables (`-format=table`), pretty JSON
//! (`-format=json`) and raw single fields (`-field=NAME`).

use std::io::{IsTerminal, Write};

use serde_json::{Map, Value};

/// The output format chosen by `-format` (or `COFFER_FORMAT` / `VAULT_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text.trim().to_ascii_lowercase().as_str() {
            "table" => Some(Format::Table),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// The keys of Vault's response envelope; everything else in a response is payload.
const ENVELOPE_KEYS: &[&str] = &[
    "request_id",
    "lease_id",
    "renewable",
    "lease_duration",
    "data",
    "wrap_info",
    "warnings",
    "auth",
    "mount_type",
];

/// Renders a value the way Go's `%v` does, which is what Vault's tables show.
pub fn go_display(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_display).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = sorted_entries(map)
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", go_display(v)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Renders a list of strings the way Go's `%q` does (`["default" "root"]`).
pub fn go_quoted_list(value: Option<&Value>) -> String {
    let items = value
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let parts: Vec<String> = items
        .iter()
        .map(|item| match item {
            Value::String(s) => Value::String(s.clone()).to_string(),
            other => go_display(other),
        })
        .collect();
    format!("[{}]", parts.join(" "))
}

/// A map's entries sorted by key (independent of serde_json's `preserve_order` feature).
pub fn sorted_entries(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

fn display_width(text: &str) -> usize {
    text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
}

/// Aligns rows into columns separated by four spaces; an empty cell shows as `n/a`.
pub fn columns(rows: &[Vec<String>]) -> String {
    let cell = |c: &String| -> String {
        if c.is_empty() {
            "n/a".to_string()
        } else {
            c.clone()
        }
    };
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            let w = display_width(&cell(c));
            match widths.get_mut(i) {
                Some(existing) => *existing = (*existing).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            let text = cell(c);
            let is_last = i + 1 == row.len();
            line.push_str(&text);
            if !is_last {
                let width = widths.get(i).copied().unwrap_or(0);
                let pad = width.saturating_sub(display_width(&text)) + 4;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A two-column `Key`/`Value` table with Vault's header rows.
pub fn key_value_table(rows: &[(String, String)]) -> String {
    let mut all = vec![
        vec!["Key".to_string(), "Value".to_string()],
        vec!["---".to_string(), "-----".to_string()],
    ];
    all.extend(rows.iter().map(|(k, v)| vec![k.clone(), v.clone()]));
    columns(&all)
}

/// The rows of a JSON object, sorted by key, values rendered like Go's `%v`.
pub fn map_rows(map: &Map<String, Value>) -> Vec<(String, String)> {
    sorted_entries(map)
        .into_iter()
        .map(|(k, v)| (k.clone(), go_display(v)))
        .collect()
}

/// A Key/Value table of a JSON object (Vault's `OutputData`).
pub fn map_table(map: &Map<String, Value>) -> String {
    key_value_table(&map_rows(map))
}

/// `== Title ==` padded with `=` to about `total_len` characters (Vault's `padEqualSigns`).
pub fn pad_equal_signs(title: &str, total_len: usize) -> String {
    let mut signs = total_len.saturating_sub(title.chars().count() + 2);
    if signs == 0 {
        signs = 4;
    }
    if signs % 2 == 1 {
        signs += 1;
    }
    let side = "=".repeat(signs / 2);
    format!("{side} {title} {side}")
}

/// A section header sized to the table of `map` that follows it.
pub fn header_for_map(title: &str, map: &Map<String, Value>) -> String {
    let max_key = map
        .keys()
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(0)
        .max(3);
    // The key column, four spaces of glue and the width of "Value".
    pad_equal_signs(title, max_key + 4 + 5)
}

/// A `== Title ==` line followed by a path, as Vault prints before kv output.
pub fn path_section(title: &str, path: &str) -> String {
    format!(
        "{}\n{}\n",
        pad_equal_signs(title, path.chars().count()),
        path
    )
}

/// Formats seconds like Go's `time.Duration` with trailing zero units trimmed (`1h`, `1m30s`).
pub fn human_duration(seconds: i64) -> String {
    if seconds == 0 {
        return "0s".to_string();
    }
    let sign = if seconds < 0 { "-" } else { "" };
    let total = seconds.unsigned_abs();
    let (hours, minutes, secs) = (total / 3600, (total % 3600) / 60, total % 60);
    let mut text = if hours > 0 {
        format!("{sign}{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{secs}s")
    } else {
        format!("{sign}{secs}s")
    };
    if text.ends_with("m0s") {
        text.truncate(text.len() - 2);
    }
    if text.ends_with("h0m") {
        text.truncate(text.len() - 2);
    }
    text
}

/// Reads a JSON number (or numeric string) as whole seconds.
pub fn as_seconds(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.round() as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn str_field(object: &Value, key: &str) -> String {
    match object.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => go_display(other),
    }
}

fn bool_field(object: &Value, key: &str) -> bool {
    object.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// For responses that are not in Vault's envelope (some `sys/` endpoints answer with a bare
/// object): moves the non-envelope keys under `data`, so they print like any secret.
pub fn normalize_secret(body: Value) -> Value {
    let Value::Object(mut object) = body else {
        return body;
    };
    let has_data = object.get("data").is_some_and(|d| !d.is_null());
    if !has_data {
        let extra: Vec<String> = object
            .keys()
            .filter(|k| !ENVELOPE_KEYS.contains(&k.as_str()))
            .cloned()
            .collect();
        if !extra.is_empty() {
            let mut data = Map::new();
            for key in extra {
                if let Some(v) = object.remove(&key) {
                    data.insert(key, v);
                }
            }
            object.insert("data".to_string(), Value::Object(data));
        }
    }
    Value::Object(object)
}

/// The table rows of a response, in Vault's order: lease, auth, wrapping, then data keys.
pub fn secret_rows(secret: &Value) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: String| rows.push((k.to_string(), v));
    let lease_duration = as_seconds(secret.get("lease_duration")).unwrap_or(0);
    if lease_duration > 0 {
        let lease_id = str_field(secret, "lease_id");
        if lease_id.is_empty() {
            push("refresh_interval", human_duration(lease_duration));
        } else {
            push("lease_id", lease_id);
            push("lease_duration", human_duration(lease_duration));
            push(
                "lease_renewable",
                bool_field(secret, "renewable").to_string(),
            );
        }
    }
    if let Some(auth) = secret.get("auth").filter(|a| a.is_object()) {
        push("token", str_field(auth, "client_token"));
        push("token_accessor", str_field(auth, "accessor"));
        let duration = as_seconds(auth.get("lease_duration")).unwrap_or(0);
        let duration = if duration == 0 {
            "∞".to_string()
        } else {
            human_duration(duration)
        };
        push("token_duration", duration);
        push("token_renewable", bool_field(auth, "renewable").to_string());
        push("token_policies", go_quoted_list(auth.get("token_policies")));
        push(
            "identity_policies",
            go_quoted_list(auth.get("identity_policies")),
        );
        push("policies", go_quoted_list(auth.get("policies")));
        if let Some(Value::Object(meta)) = auth.get("metadata") {
            for (k, v) in sorted_entries(meta) {
                push(&format!("token_meta_{k}"), go_display(v));
            }
        }
    }
    if let Some(wrap) = secret.get("wrap_info").filter(|w| w.is_object()) {
        push("wrapping_token:", str_field(wrap, "token"));
        push("wrapping_accessor:", str_field(wrap, "accessor"));
        let ttl = as_seconds(wrap.get("ttl")).unwrap_or(0);
        push("wrapping_token_ttl:", human_duration(ttl));
        push(
            "wrapping_token_creation_time:",
            str_field(wrap, "creation_time"),
        );
        push(
            "wrapping_token_creation_path:",
            str_field(wrap, "creation_path"),
        );
        let wrapped_accessor = str_field(wrap, "wrapped_accessor");
        if !wrapped_accessor.is_empty() {
            push("wrapped_accessor:", wrapped_accessor);
        }
    }
    if let Some(Value::Object(data)) = secret.get("data") {
        rows.extend(map_rows(data));
    }
    rows
}

/// Whether a response is wrapped: it carries only `wrap_info` (the wrapping token).
pub fn is_wrapped(secret: &Value) -> bool {
    secret.get("wrap_info").is_some_and(Value::is_object)
}

/// A response rendered in `format`; `None` when a table would be empty.
pub fn render_secret(secret: &Value, format: Format) -> Option<String> {
    match format {
        Format::Json => Some(json_pretty(secret)),
        Format::Table => {
            let rows = secret_rows(secret);
            if rows.is_empty() {
                None
            } else {
                Some(key_value_table(&rows))
            }
        }
    }
}

/// A list of keys: a `Keys` column, or a JSON array.
pub fn render_list(keys: &[Value], format: Format) -> String {
    match format {
        Format::Json => json_pretty(&Value::Array(keys.to_vec())),
        Format::Table => {
            let mut rows = vec![vec!["Keys".to_string()], vec!["----".to_string()]];
            rows.extend(keys.iter().map(|k| vec![go_display(k)]));
            columns(&rows)
        }
    }
}

/// The value `-field=NAME` selects from a response, as Vault's `RawField` does.
pub fn raw_field(secret: &Value, field: &str) -> Option<Value> {
    let data_field = || secret.get("data").and_then(|d| d.get(field)).cloned();
    let value = if let Some(auth) = secret.get("auth").filter(|a| a.is_object()) {
        match field {
            "token" => auth.get("client_token").cloned(),
            "token_accessor" => auth.get("accessor").cloned(),
            "token_duration" => auth.get("lease_duration").cloned(),
            "token_renewable" => auth.get("renewable").cloned(),
            "token_policies" => auth.get("token_policies").cloned(),
            "identity_policies" => auth.get("identity_policies").cloned(),
            "policies" => auth.get("policies").cloned(),
            _ => data_field(),
        }
    } else if let Some(wrap) = secret.get("wrap_info").filter(|w| w.is_object()) {
        match field {
            "wrapping_token" => wrap.get("token").cloned(),
            "wrapping_accessor" => wrap.get("accessor").cloned(),
            "wrapping_token_ttl" => wrap.get("ttl").cloned(),
            "wrapping_token_creation_time" => wrap.get("creation_time").cloned(),
            "wrapping_token_creation_path" => wrap.get("creation_path").cloned(),
            "wrapped_accessor" => wrap.get("wrapped_accessor").cloned(),
            _ => data_field(),
        }
    } else {
        match field {
            "refresh_interval" | "lease_duration" => secret.get("lease_duration").cloned(),
            "lease_id" => secret.get("lease_id").cloned(),
            "lease_renewable" => secret.get("renewable").cloned(),
            "request_id" => secret.get("request_id").cloned(),
            "warnings" => secret.get("warnings").cloned(),
            _ => data_field(),
        }
    };
    value.filter(|v| !v.is_null())
}

/// The text printed for a `-field` value: raw for tables, JSON otherwise.
pub fn field_text(value: &Value, format: Format) -> String {
    match format {
        Format::Table => go_display(value),
        Format::Json => json_pretty(value),
    }
}

/// Pretty JSON with two-space indentation.
pub fn json_pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// The warnings of a response as Vault prints them (to stderr), if any.
pub fn warnings_text(secret: &Value) -> Option<String> {
    let warnings = secret.get("warnings")?.as_array()?;
    if warnings.is_empty() {
        return None;
    }
    let mut text = String::from("WARNING! The following warnings were returned from Coffer:\n\n");
    for w in warnings {
        text.push_str(&format!("  * {}\n", go_display(w)));
    }
    Some(text)
}

/// Prints a response's warnings to stderr.
pub fn print_warnings(secret: &Value) {
    if let Some(text) = warnings_text(secret) {
        eprintln!("{text}");
    }
}

/// Writes text to stdout, adding a final newline if it lacks one. A closed pipe is not an error.
pub fn print_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// Writes a raw `-field` value to stdout: with a newline on a terminal, without one in a pipe
/// (so `$(coffer kv get -field=x ...)` and `> file` give exactly the value), as Vault does.
pub fn print_raw(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if out.is_terminal() {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_display_matches_fmt_v() {
        assert_eq!(go_display(&json!(null)), "<nil>");
        assert_eq!(go_display(&json!("x")), "x");
        assert_eq!(go_display(&json!(3)), "3");
        assert_eq!(go_display(&json!(true)), "true");
        assert_eq!(go_display(&json!(["a", 1])), "[a 1]");
        assert_eq!(
            go_display(&json!({"b": 1, "a": {"c": "d"}})),
            "map[a:map[c:d] b:1]"
        );
        assert_eq!(
            go_quoted_list(Some(&json!(["default", "root"]))),
            r#"["default" "root"]"#
        );
        assert_eq!(go_quoted_list(None), "[]");
    }

    #[test]
    fn columns_align_and_fill_empty_cells() {
        let table = key_value_table(&[
            ("created_time".into(), "2024-01-01T00:00:00Z".into()),
            ("deletion_time".into(), String::new()),
            ("version".into(), "1".into()),
        ]);
        let expected = "\
Key              Value
---              -----
created_time     2024-01-01T00:00:00Z
deletion_time    n/a
version          1
";
        assert_eq!(table, expected);
    }

    #[test]
    fn multi_column_table() {
        let table = columns(&[
            vec!["Path".into(), "Type".into(), "Description".into()],
            vec!["secret/".into(), "kv".into(), String::new()],
        ]);
        assert_eq!(
            table,
            "Path       Type    Description\nsecret/    kv      n/a\n"
        );
    }

    #[test]
    fn headers() {
        assert_eq!(pad_equal_signs("Data", 10), "== Data ==");
        assert_eq!(pad_equal_signs("Metadata", 4), "== Metadata ==");
        assert_eq!(pad_equal_signs("Data", 11), "=== Data ===");
        let map = json!({"custom_metadata": null, "version": 1});
        let Value::Object(map) = map else {
            unreachable!()
        };
        assert_eq!(header_for_map("Metadata", &map), "======= Metadata =======");
        assert_eq!(
            path_section("Secret Path", "secret/data/creds"),
            "== Secret Path ==\nsecret/data/creds\n"
        );
        assert_eq!(
            path_section("Secret Path", "s/data/x"),
            "== Secret Path ==\ns/data/x\n"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(90), "1m30s");
        assert_eq!(human_duration(120), "2m");
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(3660), "1h1m");
        assert_eq!(human_duration(3601), "1h0m1s");
        assert_eq!(human_duration(2_764_800), "768h");
        assert_eq!(human_duration(-60), "-1m");
        assert_eq!(as_seconds(Some(&json!("30"))), Some(30));
        assert_eq!(as_seconds(Some(&json!(1.6))), Some(2));
    }

    #[test]
    fn secret_table_rows() {
        let secret = json!({
            "request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 2764800,
            "data": {"b": "2", "a": "1"}, "wrap_info": null, "warnings": null, "auth": null
        });
        let rows = secret_rows(&secret);
        let keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["refresh_interval", "a", "b"]);
        assert_eq!(rows[0].1, "768h");
    }

    #[test]
    fn auth_table_rows() {
        let secret = json!({
            "lease_duration": 0, "data": null,
            "auth": {"client_token": "tok", "accessor": "acc", "lease_duration": 3600,
                     "renewable": true, "policies": ["default", "p"], "token_policies": ["default", "p"],
                     "metadata": {"user": "bob"}}
        });
        let rows = secret_rows(&secret);
        let find = |k: &str| {
            rows.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(find("token"), Some("tok"));
        assert_eq!(find("token_duration"), Some("1h"));
        assert_eq!(find("token_policies"), Some(r#"["default" "p"]"#));
        assert_eq!(find("identity_policies"), Some("[]"));
        assert_eq!(find("token_meta_user"), Some("bob"));
        assert_eq!(raw_field(&secret, "token"), Some(json!("tok")));
        assert_eq!(raw_field(&secret, "token_accessor"), Some(json!("acc")));
        assert_eq!(raw_field(&secret, "nope"), None);
    }

    #[test]
    fn wrapped_responses() {
        let secret = json!({
            "request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
            "data": null, "auth": null, "warnings": null,
            "wrap_info": {"token": "wt", "accessor": "wa", "ttl": 300,
                          "creation_time": "2024-01-01T00:00:00Z", "creation_path": "secret/data/x",
                          "wrapped_accessor": ""}
        });
        assert!(is_wrapped(&secret));
        assert!(!is_wrapped(&json!({"wrap_info": null})));
        let rows = secret_rows(&secret);
        let keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "wrapping_token:",
                "wrapping_accessor:",
                "wrapping_token_ttl:",
                "wrapping_token_creation_time:",
                "wrapping_token_creation_path:"
            ]
        );
        assert_eq!(rows[2].1, "5m");
        assert_eq!(raw_field(&secret, "wrapping_token"), Some(json!("wt")));
        assert_eq!(raw_field(&secret, "wrapping_token_ttl"), Some(json!(300)));
    }

    #[test]
    fn raw_fields_of_plain_secrets() {
        let secret =
            json!({"request_id": "r", "lease_duration": 60, "data": {"k": "v", "n": null}});
        assert_eq!(raw_field(&secret, "k"), Some(json!("v")));
        assert_eq!(raw_field(&secret, "n"), None);
        assert_eq!(raw_field(&secret, "refresh_interval"), Some(json!(60)));
        assert_eq!(field_text(&json!("v"), Format::Table), "v");
        assert_eq!(field_text(&json!("v"), Format::Json), "\"v\"");
        assert_eq!(field_text(&json!(["a", "b"]), Format::Table), "[a b]");
    }

    #[test]
    fn bare_responses_are_normalized() {
        let body = json!({"sealed": false, "t": 1});
        assert_eq!(
            normalize_secret(body),
            json!({"data": {"sealed": false, "t": 1}})
        );
        let enveloped = json!({"request_id": "r", "data": {"a": 1}});
        assert_eq!(normalize_secret(enveloped.clone()), enveloped);
    }

    #[test]
    fn lists_and_formats() {
        let keys = vec![json!("a"), json!("b/")];
        assert_eq!(render_list(&keys, Format::Table), "Keys\n----\na\nb/\n");
        assert_eq!(render_list(&keys, Format::Json), "[\n  \"a\",\n  \"b/\"\n]");
        assert_eq!(Format::parse("JSON"), Some(Format::Json));
        assert_eq!(Format::parse("yaml"), None);
        assert_eq!(render_secret(&json!({"data": {}}), Format::Table), None);
    }

    #[test]
    fn warnings() {
        assert_eq!(warnings_text(&json!({"warnings": []})), None);
        let text = warnings_text(&json!({"warnings": ["careful"]})).unwrap_or_default();
        assert!(text.contains("  * careful"));
    }
}
