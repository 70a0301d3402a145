use crate::common::*;
use serde_json::{json, Value};

/// For each operation: the capability it needs, and the request. A token whose policy grants
/// exactly that capability succeeds; one whose policy grants everything else gets 403.
#[test]
fn policy_matrix_for_kv2_and_sys() {
    let s = dev();
    s.root(
        "POST",
        "secret/data/team/app",
        Some(json!({"data": {"k": "v"}})),
    );
    s.root(
        "POST",
        "secret/data/team/other",
        Some(json!({"data": {"k": "v"}})),
    );
    type Case = (&'static str, &'static str, &'static str, Option<Value>);
    let cases: Vec<Case> = vec![
        ("read", "GET", "secret/data/team/app", None),
        (
            "create",
            "POST",
            "secret/data/team/new",
            Some(json!({"data": {"a": "b"}})),
        ),
        (
            "update",
            "POST",
            "secret/data/team/app",
            Some(json!({"data": {"a": "c"}})),
        ),
        ("delete", "DELETE", "secret/data/team/other", None),
        ("list", "LIST", "secret/metadata/team", None),
        ("read", "GET", "secret/metadata/team/app", None),
        (
            "update",
            "POST",
            "secret/metadata/team/app",
            Some(json!({"max_versions": 5})),
        ),
        ("delete", "DELETE", "secret/metadata/team/gone", None),
        (
            "update",
            "POST",
            "secret/delete/team/app",
            Some(json!({"versions": [1]})),
        ),
        (
            "update",
            "POST",
            "secret/undelete/team/app",
            Some(json!({"versions": [1]})),
        ),
        (
            "update",
            "POST",
            "secret/destroy/team/app",
            Some(json!({"versions": [1]})),
        ),
        ("read", "GET", "secret/subkeys/team/app", None),
        ("read", "GET", "secret/config", None),
        (
            "update",
            "POST",
            "secret/config",
            Some(json!({"max_versions": 7})),
        ),
        ("read", "GET", "sys/mounts", None),
        (
            "update",
            "POST",
            "sys/mounts/extra",
            Some(json!({"type": "kv"})),
        ),
        ("read", "GET", "sys/policy", None),
        (
            "update",
            "PUT",
            "sys/policy/newpol",
            Some(json!({"policy": ""})),
        ),
        ("read", "GET", "sys/policy/default", None),
        ("delete", "DELETE", "sys/policy/newpol", None),
        ("list", "LIST", "sys/policies/acl", None),
        ("read", "GET", "sys/key-status", None),
    ];
    let all = ["create", "read", "update", "delete", "list", "patch"];
    for (i, (cap, method, path, body)) in cases.iter().enumerate() {
        let glob_path = path.trim_end_matches('/');
        let others: Vec<&str> = all.iter().copied().filter(|c| c != cap).collect();
        s.policy(&format!("allow{i}"), &format!("path \"{glob_path}\" {{ capabilities = [\"{cap}\"] }}\npath \"{glob_path}/\" {{ capabilities = [\"{cap}\"] }}"));
        s.policy(&format!("lack{i}"), &format!("path \"{glob_path}\" {{ capabilities = {others:?} }}\npath \"{glob_path}/\" {{ capabilities = {others:?} }}"));
        let lacking = s.token_with(&[&format!("lack{i}")]);
        let (st, v) = s.req(method, path, Some(&lacking), body.clone());
        assert_eq!(st, 403, "{method} {path} without {cap} must be 403: {v}");
        let allowed = s.token_with(&[&format!("allow{i}")]);
        let (st, v) = s.req(method, path, Some(&allowed), body.clone());
        assert!(
            st == 200 || st == 204,
            "{method} {path} with {cap} must succeed, got {st}: {v}"
        );
    }
}

#[test]
fn deny_wins_and_globs_match_as_vault_documents() {
    let s = dev();
    for p in [
        "a/x/teamb",
        "a/y/teamb",
        "a/x/y/teamb",
        "a/x/teamc",
        "b/one",
        "b/two/three",
        "c/secret",
    ] {
        s.root(
            "POST",
            &format!("secret/data/{p}"),
            Some(json!({"data": {"k": "v"}})),
        );
    }
    s.policy(
        "plus",
        "path \"secret/data/a/+/teamb\" { capabilities = [\"read\"] }",
    );
    s.policy(
        "star",
        "path \"secret/data/b/*\" { capabilities = [\"read\"] }",
    );
    s.policy(
        "grant",
        "path \"secret/data/c/*\" { capabilities = [\"read\", \"update\"] }",
    );
    s.policy(
        "deny",
        "path \"secret/data/c/secret\" { capabilities = [\"deny\"] }",
    );
    let t = s.token_with(&["plus", "star", "grant", "deny"]);
    let read = |p: &str| s.req("GET", &format!("secret/data/{p}"), Some(&t), None).0;
    assert_eq!(read("a/x/teamb"), 200);
    assert_eq!(read("a/y/teamb"), 200);
    assert_eq!(read("a/x/y/teamb"), 403, "+ matches exactly one segment");
    assert_eq!(read("a/x/teamc"), 403);
    assert_eq!(read("b/one"), 200);
    assert_eq!(read("b/two/three"), 200, "* matches across segments");
    assert_eq!(
        read("c/secret"),
        403,
        "deny beats the grant in another policy"
    );
    // capabilities endpoints agree
    let (_, v) = s.req(
        "POST",
        "sys/capabilities-self",
        Some(&t),
        Some(json!({"paths": ["secret/data/c/secret", "secret/data/b/x"]})),
    );
    assert_eq!(v["secret/data/c/secret"], json!(["deny"]));
    assert_eq!(v["secret/data/b/x"], json!(["read"]));
    let (_, v) = s.root(
        "POST",
        "sys/capabilities",
        Some(json!({"token": t, "path": "secret/data/c/other"})),
    );
    assert_eq!(v["capabilities"], json!(["read", "update"]));
    // a policy change takes effect on the next request
    s.policy(
        "star",
        "path \"secret/data/b/*\" { capabilities = [\"deny\"] }",
    );
    assert_eq!(read("b/one"), 403);
}

#[test]
fn policy_crud_in_hcl_and_json() {
    let s = dev();
    s.policy("h", "path \"secret/*\" {\n  capabilities = [\"read\"]\n}");
    let (st, v) = s.root(
        "PUT",
        "sys/policies/acl/j",
        Some(json!({"policy": "{\"path\":{\"secret/*\":{\"capabilities\":[\"read\"]}}}"})),
    );
    assert_eq!(st, 204, "{v}");
    let (_, v) = s.root("GET", "sys/policies/acl/j", None);
    assert!(v["data"]["policy"].as_str().unwrap().contains("secret/*"));
    let (_, v) = s.root("GET", "sys/policy", None);
    let names = v["data"]["policies"].as_array().unwrap();
    for n in ["default", "h", "j", "root"] {
        assert!(names.contains(&json!(n)), "{v}");
    }
    let (st, v) = s.root(
        "PUT",
        "sys/policy/bad",
        Some(json!({"policy": "path \"x\" { capabilities = [\"fly\"] }"})),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(s.root("GET", "sys/policy/bad", None).0, 404);
    assert_eq!(s.root("DELETE", "sys/policy/root", None).0, 400);
    assert_eq!(s.root("DELETE", "sys/policy/h", None).0, 204);
    assert_eq!(s.root("GET", "sys/policy/h", None).0, 404);
}

/// A trailing slash or a different case must not let a request be checked as one path and run as
/// another.
#[test]
fn path_spelling_cannot_bypass_the_acl() {
    let s = dev();
    s.policy("admin", "path \"secret/*\" { capabilities = [\"read\"] }");
    s.policy(
        "editor",
        "path \"sys/policy/*\" { capabilities = [\"create\", \"update\", \"read\"] }\n\
         path \"sys/policy/admin\" { capabilities = [\"deny\"] }\n\
         path \"auth/token/create\" { capabilities = [\"deny\"] }\n\
         path \"auth/token/*\" { capabilities = [\"update\"] }",
    );
    let t = s.token_with(&["editor"]);
    let evil = json!({"policy": "path \"*\" { capabilities = [\"sudo\", \"read\", \"update\"] }"});
    for path in [
        "sys/policy/admin",
        "sys/policy/admin/",
        "sys/policy/ADMIN",
        "sys/policy/Admin/",
    ] {
        let (st, v) = s.req("PUT", path, Some(&t), Some(evil.clone()));
        assert_eq!(st, 403, "{path}: {v}");
    }
    let (_, v) = s.root("GET", "sys/policy/admin", None);
    assert!(
        v["data"]["rules"].as_str().unwrap().contains("secret/*"),
        "admin policy unchanged"
    );
    // sudo and exact denies in the token backend hold with a trailing slash too
    for path in ["auth/token/create", "auth/token/create/"] {
        assert_eq!(
            s.req("POST", path, Some(&t), Some(json!({}))).0,
            403,
            "{path}"
        );
    }
    let victim = s.token_with(&["default"]);
    let (st, _) = s.req(
        "POST",
        "auth/token/revoke-orphan/",
        Some(&t),
        Some(json!({"token": victim})),
    );
    assert_eq!(st, 403, "revoke-orphan needs sudo whatever the spelling");
    assert_eq!(
        s.req("GET", "auth/token/lookup-self", Some(&victim), None)
            .0,
        200
    );
}
