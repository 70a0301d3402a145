//! Adversarial regression tests: each hole found by attacking a running server stays closed.
//! (The transport-level ones — slow clients, connection caps, bodies before authentication,
//! health status codes, file modes — are in `adversarial_transport`.)

use crate::common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use std::path::Path;

const ADMIN_HCL: &str =
    r#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#;

fn enable_auth(s: &Server, kind: &str) {
    let (st, v) = s.root(
        "POST",
        &format!("sys/auth/{kind}"),
        Some(json!({"type": kind})),
    );
    assert_eq!(st, 204, "{v}");
}

/// A token whose policy allows `allow` (all capabilities but sudo) and denies `deny`.
fn limited_token(s: &Server, name: &str, allow: &[&str], deny: &[&str]) -> String {
    let mut hcl = String::new();
    for p in allow {
        hcl.push_str(&format!(
            "path \"{p}\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }}\n"
        ));
    }
    for p in deny {
        hcl.push_str(&format!("path \"{p}\" {{ capabilities = [\"deny\"] }}\n"));
    }
    s.policy(name, &hcl);
    s.token_with(&[name])
}

/// Item 1: A policy name spelled with whitespace (ASCII or Unicode) cannot get around an explicit
/// deny: the name is refused with 400 before anything is written.
#[test]
fn policy_names_with_whitespace_are_refused_not_trimmed() {
    let s = dev();
    s.policy("admin", r#"path "secret/*" { capabilities = ["read"] }"#);
    let t = limited_token(
        &s,
        "policy-manager",
        &["sys/policy/*", "sys/policies/acl/*"],
        &[
            "sys/policy/default",
            "sys/policy/admin",
            "sys/policies/acl/default",
            "sys/policies/acl/admin",
        ],
    );
    let before_default = s.root("GET", "sys/policy/default", None).1["data"].clone();
    let before_admin = s.root("GET", "sys/policy/admin", None).1["data"].clone();
    for (method, path) in [
        ("PUT", "sys/policy/default%20"),
        ("PUT", "sys/policy/%20admin"),
        ("PUT", "sys/policy/admin%C2%A0"),
        ("PUT", "sys/policy/%E2%80%83admin"),
        ("PUT", "sys/policy/admin%09"),
        ("PUT", "sys/policy/admin%E2%80%8B"),
        ("PUT", "sys/policies/acl/admin%20"),
        ("DELETE", "sys/policies/acl/admin%20"),
        ("DELETE", "sys/policy/%20admin"),
    ] {
        let (st, v) = s.req(method, path, Some(&t), Some(json!({"policy": ADMIN_HCL})));
        assert_eq!(st, 400, "{method} {path}: {v}");
        assert!(
            v["errors"][0].as_str().unwrap().starts_with("invalid "),
            "{v}"
        );
    }
    assert_eq!(
        s.root("GET", "sys/policy/default", None).1["data"],
        before_default
    );
    assert_eq!(
        s.root("GET", "sys/policy/admin", None).1["data"],
        before_admin
    );
    // the deny itself holds for every case spelling
    for path in [
        "sys/policy/ADMIN",
        "sys/policy/Default",
        "sys/policies/acl/aDmIn",
    ] {
        let (st, _) = s.req("PUT", path, Some(&t), Some(json!({"policy": ADMIN_HCL})));
        assert_eq!(st, 403, "{path}");
    }
    // an honest name still works
    let (st, v) = s.req(
        "PUT",
        "sys/policy/Team-Ops",
        Some(&t),
        Some(json!({"policy": ADMIN_HCL})),
    );
    assert_eq!(st, 204, "{v}");
    assert_eq!(
        s.root("GET", "sys/policy/team-ops", None).1["name"],
        "team-ops"
    );
}

/// Item 2: Auth methods and roles cannot store or issue the reserved policies.
#[test]
fn auth_methods_cannot_issue_root_or_wrapping_tokens() {
    let s = dev();
    enable_auth(&s, "userpass");
    enable_auth(&s, "approle");
    let t = limited_token(
        &s,
        "user-manager",
        &["auth/userpass/users/*", "auth/approle/role/*"],
        &[],
    );
    for reserved in ["root", "ROOT", "response-wrapping", "Response-Wrapping"] {
        for (field, value) in [
            ("token_policies", json!([reserved])),
            ("token_policies", json!(format!("default,{reserved}"))),
            ("policies", json!([reserved])),
        ] {
            let (st, v) = s.req(
                "POST",
                "auth/userpass/users/mallory",
                Some(&t),
                Some(json!({"password": "pw-mallory-1", field: value})),
            );
            assert_eq!(st, 400, "userpass {field}={value}: {v}");
            let (st, v) = s.req(
                "POST",
                "auth/approle/role/mallory",
                Some(&t),
                Some(json!({ field: value })),
            );
            assert_eq!(st, 400, "approle {field}={value}: {v}");
            // the per-field endpoint too
            let (st, _) = s.req(
                "POST",
                "auth/userpass/users/mallory/policies",
                Some(&t),
                Some(json!({ field: value })),
            );
            assert!(st == 400 || st == 404, "{st}");
        }
        // root itself cannot make a role or user that logs in as root either
        let (st, _) = s.root(
            "POST",
            "auth/userpass/users/mallory",
            Some(json!({"password": "pw-mallory-1", "token_policies": [reserved]})),
        );
        assert_eq!(st, 400);
    }
    // nothing was created; a normal user logs in with normal policies
    let (st, _) = s.root("GET", "auth/userpass/users/mallory", None);
    assert_eq!(st, 404);
    let (st, _) = s.req(
        "POST",
        "auth/userpass/users/mallory",
        Some(&t),
        Some(json!({"password": "pw-mallory-1", "token_policies": ["default"]})),
    );
    assert_eq!(st, 204);
    let (st, v) = s.req(
        "POST",
        "auth/userpass/login/mallory",
        None,
        Some(json!({"password": "pw-mallory-1"})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["auth"]["policies"], json!(["default"]));
    let token = v["auth"]["client_token"].as_str().unwrap();
    let (st, _) = s.req("POST", "sys/rotate", Some(token), None);
    assert_eq!(st, 403);
}

/// Item 3: Case variants of a role or user name are the same object to the ACL and the handler.
#[test]
fn case_variants_cannot_get_around_a_deny_on_named_objects() {
    let s = dev();
    enable_auth(&s, "userpass");
    enable_auth(&s, "approle");
    s.policy(
        "privileged-pol",
        r#"path "secret/*" { capabilities = ["read"] }"#,
    );
    let (st, _) = s.root(
        "POST",
        "auth/token/roles/privileged",
        Some(json!({"allowed_policies": ["privileged-pol"]})),
    );
    assert_eq!(st, 204);
    let (st, _) = s.root(
        "POST",
        "auth/userpass/users/admin",
        Some(json!({"password": "admin-original-pw"})),
    );
    assert_eq!(st, 204);
    let (st, _) = s.root("POST", "auth/approle/role/adminrole", Some(json!({})));
    assert_eq!(st, 204);
    let t = limited_token(
        &s,
        "helpdesk",
        &[
            "auth/token/create/*",
            "auth/userpass/users/*",
            "auth/approle/role/*",
        ],
        &[
            "auth/token/create/privileged",
            "auth/userpass/users/admin",
            "auth/userpass/users/admin/*",
            "auth/approle/role/adminrole/*",
            "auth/approle/role/adminrole",
        ],
    );
    for role in ["PRIVILEGED", "Privileged", "privilegeD"] {
        let (st, v) = s.req("POST", &format!("auth/token/create/{role}"), Some(&t), None);
        assert_eq!(st, 403, "{role}: {v}");
    }
    for user in ["ADMIN", "Admin", "aDMIN"] {
        let (st, _) = s.req(
            "POST",
            &format!("auth/userpass/users/{user}"),
            Some(&t),
            Some(json!({"password": "pwned"})),
        );
        assert_eq!(st, 403, "{user}");
        let (st, _) = s.req(
            "POST",
            &format!("auth/userpass/users/{user}/password"),
            Some(&t),
            Some(json!({"password": "pwned"})),
        );
        assert_eq!(st, 403, "{user}/password");
    }
    for role in ["ADMINROLE", "AdminRole"] {
        let (st, _) = s.req(
            "POST",
            &format!("auth/approle/role/{role}/secret-id"),
            Some(&t),
            None,
        );
        assert_eq!(st, 403, "{role}");
    }
    // admin's password is unchanged
    let (st, _) = s.req(
        "POST",
        "auth/userpass/login/admin",
        None,
        Some(json!({"password": "admin-original-pw"})),
    );
    assert_eq!(st, 200);
    // the audit log and the handler see the canonical path: a mixed-case login works
    let (st, v) = s.req(
        "POST",
        "auth/userpass/login/ADMIN",
        None,
        Some(json!({"password": "admin-original-pw"})),
    );
    assert_eq!(st, 200, "{v}");
}

/// Item 4: Forty simultaneous logins (39 wrong passwords, one right) check at most the lockout
/// threshold (5) of passwords; the rest are refused with 403 before any check.
#[test]
fn lockout_cannot_be_beaten_by_concurrency() {
    let s = dev();
    enable_auth(&s, "userpass");
    let (st, _) = s.root(
        "POST",
        "auth/userpass/users/carol",
        Some(json!({"password": "carol-right-pw"})),
    );
    assert_eq!(st, 204);
    let login = |pw: &str| {
        s.req(
            "POST",
            "auth/userpass/login/carol",
            None,
            Some(json!({ "password": pw })),
        )
        .0
    };
    // 40 guesses at once (a right password among them would legitimately reset the count, so an
    // attacker's guesses are all wrong here)
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let login = &login;
                scope.spawn(move || login(&format!("guess-{i}")))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let checked = statuses.iter().filter(|st| **st == 400).count();
    let refused = statuses.iter().filter(|st| **st == 403).count();
    assert!(checked <= 5, "{checked} passwords checked: {statuses:?}");
    assert_eq!(checked + refused, 40, "{statuses:?}");
    // the account is locked now: even the right password is refused without a check
    assert_eq!(login("carol-right-pw"), 403);
}

/// Item 7: Durations far beyond any sane value are refused with 400; nothing panics, the connection
/// gets its answer and every request entry in the audit log has its response entry.
#[test]
fn huge_durations_are_refused_without_a_panic() {
    let s = dev();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let (st, _) = s.root(
        "PUT",
        "sys/audit/file",
        Some(json!({"type": "file", "options": {"file_path": log.display().to_string()}})),
    );
    assert_eq!(st, 204);
    let t = s.token_with(&["default"]);
    let (_, v) = s.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["default"], "ttl": "1h"})),
    );
    let lease_token = v["auth"]["client_token"].as_str().unwrap().to_string();
    for huge in [
        json!(1e300),
        json!(1.7e308),
        json!("1e300s"),
        json!(u64::MAX),
        json!(-1e300),
    ] {
        let (st, v) = s.req(
            "POST",
            "auth/token/renew-self",
            Some(&t),
            Some(json!({ "increment": huge })),
        );
        assert_eq!(st, 400, "renew-self {huge}: {v}");
        for (path, body) in [
            ("auth/token/create", json!({ "ttl": huge })),
            ("auth/token/create", json!({ "explicit_max_ttl": huge })),
            ("auth/token/roles/r1", json!({ "token_ttl": huge })),
            (
                "auth/token/renew",
                json!({ "token": lease_token, "increment": huge }),
            ),
            (
                "sys/mounts/secret/tune",
                json!({ "default_lease_ttl": huge }),
            ),
            ("sys/mounts/secret/tune", json!({ "max_lease_ttl": huge })),
        ] {
            let (st, v) = s.root("POST", path, Some(body));
            assert_eq!(st, 400, "{path} {huge}: {v}");
        }
        let (st, v) = s.root(
            "PUT",
            "sys/leases/renew",
            Some(json!({"lease_id": "auth/token/create/x", "increment": huge})),
        );
        assert!(st == 400, "sys/leases/renew {huge}: {st} {v}");
    }
    let out = s.output();
    assert!(!out.contains("panicked"), "{out}");
    // every request entry has its response entry
    let text = std::fs::read_to_string(&log).unwrap();
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let requests = entries.iter().filter(|e| e["type"] == "request").count();
    let responses = entries.iter().filter(|e| e["type"] == "response").count();
    let answered: std::collections::HashSet<&str> = entries
        .iter()
        .filter(|e| e["type"] == "response")
        .filter_map(|e| e["request"]["id"].as_str())
        .collect();
    let unanswered: Vec<&Value> = entries
        .iter()
        .filter(|e| e["type"] == "request")
        .filter(|e| !answered.contains(e["request"]["id"].as_str().unwrap_or("")))
        .collect();
    assert!(unanswered.is_empty(), "{unanswered:#?}");
    // (one response more: the entry of the request that enabled the device)
    assert_eq!(requests + 1, responses);
}

/// Item 10: Failed logins for names that do not exist are kept in memory only: they lock the name
/// out while the server runs but write nothing durable (a restart forgets them), while a real
/// user's lockout is durable.
#[test]
fn failed_logins_for_unknown_users_write_nothing_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, seal) = static_seal_config(dir.path());
    let login = |s: &Server, user: &str, pw: &str| {
        s.req(
            "POST",
            &format!("auth/userpass/login/{user}"),
            None,
            Some(json!({ "password": pw })),
        )
        .0
    };
    let root;
    {
        let mut s = with_config(dir.path(), &storage, &seal);
        root = s.init_static();
        enable_auth(&s, "userpass");
        let (st, _) = s.root(
            "POST",
            "auth/userpass/users/dave",
            Some(json!({"password": "dave-right-pw"})),
        );
        assert_eq!(st, 204);
        let data = dir.path().join("data");
        let size_before = dir_size(&data);
        for _ in 0..5 {
            assert_eq!(login(&s, "ghost", "guess"), 400);
            assert_eq!(login(&s, "dave", "guess"), 400);
        }
        assert_eq!(login(&s, "ghost", "guess"), 403);
        assert_eq!(login(&s, "dave", "dave-right-pw"), 403);
        // a flood of made-up names does not grow storage (the real user's record is one entry)
        for i in 0..200 {
            assert_eq!(login(&s, &format!("nobody-{i}"), "x"), 400);
        }
        let grown = dir_size(&data).saturating_sub(size_before);
        assert!(grown < 64 * 1024, "storage grew by {grown} bytes");
    }
    let mut s = with_config(dir.path(), &storage, &seal);
    s.token = root;
    assert_eq!(
        login(&s, "ghost", "guess"),
        400,
        "unknown names are forgotten"
    );
    assert_eq!(
        login(&s, "dave", "dave-right-pw"),
        403,
        "a real user's lockout survives a restart"
    );
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Item 11: A denied request answers Vault's plain "permission denied" whatever the reason (a deny
/// rule, no rule, a missing capability, sudo); the reason goes to the server log only.
#[test]
fn denials_do_not_map_the_policy_set() {
    let s = dev();
    s.policy(
        "mapper",
        r#"
        path "secret/data/denied" { capabilities = ["deny"] }
        path "secret/data/readonly" { capabilities = ["read"] }
        path "sys/rotate" { capabilities = ["update"] }
        "#,
    );
    let t = s.token_with(&["mapper"]);
    for (method, path) in [
        ("GET", "secret/data/denied"),
        ("GET", "secret/data/nothing-matches"),
        ("POST", "secret/data/readonly"),
        ("POST", "sys/rotate"),
    ] {
        let (st, v) = s.req(method, path, Some(&t), Some(json!({"data": {"a": "b"}})));
        assert_eq!(st, 403, "{path}");
        assert_eq!(v, json!({"errors": ["permission denied"]}), "{path}");
    }
    let out = s.output();
    assert!(out.contains("permission denied"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Property: for any spelling of a name, the ACL decision and the object the handler touched are
// the same object.
// ---------------------------------------------------------------------------------------------

/// Named-object endpoints: (path prefix, the field that records which write touched the
/// object, as read back).
const NAMED: &[(&str, &str)] = &[
    ("sys/policy/", "rules"),
    ("sys/policies/acl/", "policy"),
    ("auth/userpass/users/", "token_ttl"),
    ("auth/approle/role/", "token_ttl"),
    ("auth/token/roles/", "token_explicit_max_ttl"),
];

/// Characters an attacker wraps a name in.
const WRAPPERS: &[&str] = &[
    "", "", "", " ", "\t", "\u{a0}", "\u{2003}", "\u{3000}", "\u{200b}", "\u{feff}", "\n",
];

fn percent_encode(s: &str, encode: &[bool]) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        let must = !c.is_ascii_alphanumeric() && c != '-' && c != '_' && c != '.';
        if must || encode.get(i).copied().unwrap_or(false) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value that a write through `prefix` leaves in the object `name` (read as root).
fn marker_of(s: &Server, prefix: &str, field: &str, name: &str) -> Value {
    let (st, v) = s.root("GET", &format!("{prefix}{name}"), None);
    if st == 404 {
        return Value::Null;
    }
    assert_eq!(st, 200, "{prefix}{name}: {v}");
    v["data"][field].clone()
}

/// The body of a write through `prefix` that leaves marker `n` in the object.
fn write_body(prefix: &str, n: u64) -> Value {
    match prefix {
        "sys/policy/" | "sys/policies/acl/" => {
            json!({ "policy": format!("path \"marker/{n}\" {{ capabilities = [\"read\"] }}") })
        }
        "auth/userpass/users/" => json!({ "token_ttl": n, "password": "pw-for-a-user" }),
        "auth/approle/role/" => json!({ "token_ttl": n }),
        _ => json!({ "token_explicit_max_ttl": n }),
    }
}

fn marker_matches(v: &Value, n: u64) -> bool {
    match v {
        Value::String(p) => p.contains(&format!("marker/{n}\"")),
        other => other.as_u64() == Some(n),
    }
}

#[test]
fn every_spelling_of_a_name_is_one_object_to_the_acl_and_the_handler() {
    let s = dev();
    enable_auth(&s, "userpass");
    enable_auth(&s, "approle");
    let mut allow = Vec::new();
    let mut deny = Vec::new();
    for (prefix, _) in NAMED {
        allow.push(format!("{prefix}*"));
        deny.push(format!("{prefix}victim"));
    }
    let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
    let deny: Vec<&str> = deny.iter().map(String::as_str).collect();
    // the victims exist, written by root with marker 1
    for (prefix, _) in NAMED {
        let (st, v) = s.root(
            "POST",
            &format!("{prefix}victim"),
            Some(write_body(prefix, 1)),
        );
        assert_eq!(st, 204, "{prefix}: {v}");
    }
    let t = limited_token(&s, "named-objects", &allow, &deny);

    let spelling = (
        0..NAMED.len(),
        prop::bool::ANY,
        0..WRAPPERS.len(),
        0..WRAPPERS.len(),
        prop::collection::vec(prop::bool::ANY, 6),
        prop::collection::vec(prop::bool::ANY, 8),
    );
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let counter = std::cell::Cell::new(100u64);
    runner
        .run(&spelling, |(ep, victim, pre, post, upper, enc)| {
            let (prefix, field) = NAMED[ep];
            let base = if victim { "victim" } else { "other" };
            let cased: String = base
                .chars()
                .zip(upper.iter().chain(std::iter::repeat(&false)))
                .map(|(c, u)| if *u { c.to_ascii_uppercase() } else { c })
                .collect();
            let raw = format!("{}{cased}{}", WRAPPERS[pre], WRAPPERS[post]);
            let n = counter.get() + 1;
            counter.set(n);
            let path = format!("{prefix}{}", percent_encode(&raw, &enc));
            let (st, v) = s.req("POST", &path, Some(&t), Some(write_body(prefix, n)));
            let canonical = raw.is_ascii() && !raw.chars().any(|c| c.is_whitespace());
            let victim_now = marker_of(&s, prefix, field, "victim");
            let other_now = marker_of(&s, prefix, field, "other");
            prop_assert!(
                marker_matches(&victim_now, 1),
                "{path}: the denied object changed ({st} {v})"
            );
            match (canonical, victim) {
                (false, _) => prop_assert_eq!(st, 400, "{} {:?}: {}", path, raw, v),
                (true, true) => prop_assert_eq!(st, 403, "{} {:?}: {}", path, raw, v),
                (true, false) => {
                    prop_assert_eq!(st, 204, "{} {:?}: {}", path, raw, v);
                    // the allowed name is the object the handler wrote
                    prop_assert!(
                        marker_matches(&other_now, n),
                        "{path}: wrote somewhere else ({other_now})"
                    );
                }
            }
            if st == 204 && !marker_matches(&other_now, n) {
                return Err(TestCaseError::fail(format!(
                    "{path}: 204 but nothing written"
                )));
            }
            Ok(())
        })
        .unwrap();
}

/// Arbitrary request bodies and paths, as root and as nobody: every answer is a success or a
/// client error (never a 5xx, never a dropped connection), in Vault's error shape.
#[test]
fn arbitrary_bodies_and_paths_get_client_errors() {
    let s = dev();
    enable_auth(&s, "userpass");
    let endpoints = [
        "secret/data/fuzz",
        "secret/metadata/fuzz",
        "sys/policy/fuzz",
        "auth/token/create",
        "auth/token/renew-self",
        "auth/userpass/users/fuzz",
        "auth/userpass/login/fuzz",
        "sys/mounts/fuzz",
        "sys/leases/renew",
        "sys/capabilities-self",
        "sys/wrapping/wrap",
        "sys/unseal",
    ];
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        "\\{(\"[a-z_]{1,12}\":(null|true|-?[0-9]{1,20}(\\.[0-9]+)?(e[0-9]{1,3})?|\"\\PC{0,20}\"|\\[\\]|\\{\\}),?){0,4}\\}"
            .prop_map(String::into_bytes),
    ];
    let strategy = (
        0..endpoints.len(),
        body,
        prop::collection::vec(any::<u8>(), 0..40),
        prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "LIST", "PATCH"]),
        any::<bool>(),
    );
    let mut runner = TestRunner::new(Config {
        cases: 192,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |(ep, body, path_bytes, method, as_root)| {
            let token = if as_root {
                Some(ROOT)
            } else {
                Some("not-a-token")
            };
            let (st, v) = s.raw(method, endpoints[ep], token, body, "application/json");
            prop_assert!(
                (200..500).contains(&st),
                "{method} {}: {st} {v}",
                endpoints[ep]
            );
            if st >= 400 {
                prop_assert!(v["errors"].is_array(), "{v}");
            }
            // arbitrary path bytes, percent-encoded
            let mut path = String::from("secret/data/");
            for b in &path_bytes {
                path.push_str(&format!("%{b:02X}"));
            }
            let (st, v) = s.req(method, &path, token, None);
            prop_assert!((200..500).contains(&st), "{method} {path}: {st} {v}");
            Ok(())
        })
        .unwrap();
    assert!(!s.output().contains("panicked"));
    assert_eq!(s.req("GET", "sys/health", None, None).0, 200);
}
