use super::*;
use serde_json::json;
use serde_json::Map;
use std::sync::Arc;

fn acl(texts: &[&str]) -> Acl {
    let policies: Vec<Arc<Policy>> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| match parse_policy(&format!("p{i}"), t) {
            Ok(p) => Arc::new(p),
            Err(e) => panic!("policy {i} failed to parse: {e}"),
        })
        .collect();
    Acl::new(&policies)
}

fn data(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("test data must be an object"),
    }
}

fn allowed(acl: &Acl, op: Operation, path: &str) -> bool {
    acl.check(op, path, None).allowed
}

fn err(text: &str) -> String {
    match parse_policy("bad", text) {
        Ok(p) => panic!("expected an error, parsed {p:?}"),
        Err(e) => e.to_string(),
    }
}

use Operation::{Create, Delete, List, Patch, Read, Update};

// --- Capabilities ---------------------------------------------------------------------

#[test]
fn capability_names_round_trip_in_vault_order() {
    let all = [
        "root", "deny", "sudo", "list", "delete", "patch", "update", "read", "create",
    ];
    let caps = Capabilities::from_names(&all).unwrap();
    assert_eq!(
        caps.names(),
        vec!["create", "read", "update", "patch", "delete", "list", "sudo", "deny", "root"]
    );
    assert_eq!(
        Capabilities::from_names(&["read", "list"]).unwrap(),
        Capabilities::READ | Capabilities::LIST
    );
    assert!(Capabilities::from_names(&[]).unwrap().is_empty());
    let e = Capabilities::from_names(&["read", "xyz"]).unwrap_err();
    assert_eq!(e.to_string(), "unknown capability \"xyz\"");
    assert!(
        Capabilities::from_names(&["Read"]).is_err(),
        "names are case-sensitive"
    );
    assert_eq!(
        format!("{:?}", Capabilities::READ | Capabilities::SUDO),
        "{\"read\", \"sudo\"}"
    );
}

// --- Parsing --------------------------------------------------------------------------

const HCL_SAMPLE: &str = r#"
        # comment
        path "secret/*" {
          capabilities = ["read", "list"]
        }
        path "secret/foo" {
          capabilities = ["create", "update"]
          required_parameters = ["Bar"]
          allowed_parameters = {
            "bar" = ["zip", "zap*"]
            "*"   = []
          }
          denied_parameters = {
            "secret" = []
          }
          min_wrapping_ttl = "1m"
          max_wrapping_ttl = 3600
        }
        path "/secret/super-secret" {
          capabilities = ["deny"]
        }
    "#;

const JSON_SAMPLE: &str = r#"{
        "path": {
            "secret/*": {"capabilities": ["read", "list"]},
            "secret/foo": {
                "capabilities": ["create", "update"],
                "required_parameters": ["Bar"],
                "allowed_parameters": {"bar": ["zip", "zap*"], "*": []},
                "denied_parameters": {"secret": []},
                "min_wrapping_ttl": "1m",
                "max_wrapping_ttl": 3600
            },
            "/secret/super-secret": {"capabilities": ["deny"]}
        }
    }"#;

#[test]
fn hcl_and_json_parse_to_the_same_policy() {
    let h = parse_policy("p", HCL_SAMPLE).unwrap();
    let j = parse_policy("p", JSON_SAMPLE).unwrap();
    assert_eq!(h, j);
    assert_eq!(h.rules().len(), 3);
    let foo = h.rule("secret/foo").unwrap();
    assert_eq!(
        foo.capabilities,
        Capabilities::CREATE | Capabilities::UPDATE
    );
    assert_eq!(foo.required_parameters, vec!["bar"]);
    assert_eq!(
        foo.allowed_parameters["bar"],
        vec![json!("zip"), json!("zap*")]
    );
    assert!(foo.allowed_parameters["*"].is_empty());
    assert_eq!(foo.min_wrapping_ttl, Some(Duration::from_secs(60)));
    assert_eq!(foo.max_wrapping_ttl, Some(Duration::from_secs(3600)));
    assert!(h.rule("secret/super-secret").unwrap().is_deny());
}

#[test]
fn repeated_blocks_merge_in_hcl_and_json() {
    let h = parse_policy(
        "p",
        r#"
            path "a/b" { capabilities = ["read"] }
            path "a/b" { capabilities = ["list"] }
            path "a/c" { capabilities = ["read"] }
            path "a/c" { capabilities = ["deny"] }
            path "a/c" { capabilities = ["update"] }
            "#,
    )
    .unwrap();
    assert_eq!(h.rules().len(), 2);
    assert_eq!(
        h.rule("a/b").unwrap().capabilities,
        Capabilities::READ | Capabilities::LIST
    );
    assert_eq!(h.rule("a/c").unwrap().capabilities, Capabilities::DENY);

    // Duplicate keys in a JSON object are kept and merged, not silently dropped.
    let j = parse_policy(
        "p",
        r#"{"path": {"a/c": {"capabilities": ["deny"]}, "a/c": {"capabilities": ["read"]},
                         "a/b": {"capabilities": ["read"]}, "a/b": {"capabilities": ["list"]}}}"#,
    )
    .unwrap();
    assert_eq!(j.rule("a/c").unwrap().capabilities, Capabilities::DENY);
    assert_eq!(
        j.rule("a/b").unwrap().capabilities,
        Capabilities::READ | Capabilities::LIST
    );
    // HCL's JSON dialect for repeated blocks: a list of bodies, or a list of path objects.
    let l = parse_policy(
        "p",
        r#"{"path": [{"a/b": {"capabilities": ["read"]}}, {"a/b": [{"capabilities": ["list"]}]}]}"#,
    )
    .unwrap();
    assert_eq!(
        l.rule("a/b").unwrap().capabilities,
        Capabilities::READ | Capabilities::LIST
    );
}

#[test]
fn repeated_blocks_merge_parameters_like_vault() {
    let p = parse_policy(
        "p",
        r#"
            path "x" {
              capabilities = ["update"]
              allowed_parameters = { "a" = ["1"], "b" = ["1"] }
              required_parameters = ["r1"]
              max_wrapping_ttl = "1h"
            }
            path "x" {
              capabilities = ["create"]
              allowed_parameters = { "a" = ["2"], "b" = [], "c" = ["3"] }
              required_parameters = ["r2", "r1"]
              max_wrapping_ttl = "10m"
              min_wrapping_ttl = "1m"
            }
            "#,
    )
    .unwrap();
    let r = p.rule("x").unwrap();
    assert_eq!(r.capabilities, Capabilities::CREATE | Capabilities::UPDATE);
    assert_eq!(r.allowed_parameters["a"], vec![json!("1"), json!("2")]);
    assert!(
        r.allowed_parameters["b"].is_empty(),
        "[] absorbs other lists"
    );
    assert_eq!(r.allowed_parameters["c"], vec![json!("3")]);
    assert_eq!(r.required_parameters, vec!["r1", "r2"]);
    assert_eq!(r.max_wrapping_ttl, Some(Duration::from_secs(600)));
    assert_eq!(r.min_wrapping_ttl, Some(Duration::from_secs(60)));
}

#[test]
fn block_syntax_for_parameter_maps_and_path_attribute_are_accepted() {
    let a = parse_policy(
        "p",
        r#"
            path "x" {
              capabilities = ["update"]
              allowed_parameters {
                foo = ["bar"]
              }
            }
            "#,
    )
    .unwrap();
    let b = parse_policy(
        "p",
        r#"path = { "x" = { capabilities = ["update"], allowed_parameters = { foo = ["bar"] } } }"#,
    )
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a.rule("x").unwrap().allowed_parameters["foo"],
        vec![json!("bar")]
    );
}

#[test]
fn policy_shorthand_maps_to_capabilities() {
    let p = parse_policy(
        "p",
        r#"
            path "r" { policy = "read" }
            path "w" { policy = "write" }
            path "s" { policy = "sudo" }
            path "d" {
              policy = "deny"
              capabilities = ["read"]
            }
            path "c" {
              policy = "read"
              capabilities = ["create"]
            }
            "#,
    )
    .unwrap();
    let caps = |path: &str| p.rule(path).unwrap().capabilities.names();
    assert_eq!(caps("r"), vec!["read", "list"]);
    assert_eq!(
        caps("w"),
        vec!["create", "read", "update", "delete", "list"]
    );
    assert_eq!(
        caps("s"),
        vec!["create", "read", "update", "delete", "list", "sudo"]
    );
    assert_eq!(caps("d"), vec!["deny"]);
    assert_eq!(caps("c"), vec!["create", "read", "list"]);
}

#[test]
fn empty_and_trivial_policies_are_allowed() {
    for text in [
        "",
        "   \n# only a comment\n",
        "{}",
        r#"{"path": {}}"#,
        r#"name = "x""#,
    ] {
        let p = parse_policy("empty", text).unwrap();
        assert!(p.rules().is_empty(), "{text:?}");
    }
    let p = parse_policy("p", r#"path "x" {}"#).unwrap();
    assert!(p.rule("x").unwrap().capabilities.is_empty());
    let a = Acl::new(&[Arc::new(p)]);
    assert_eq!(a.capabilities("x"), vec!["deny"]);
    assert!(!allowed(&a, Read, "x"));
}

#[test]
fn bad_policies_are_rejected_with_clear_messages() {
    let e = err(r#"path "bar" { capabilities = ["read", "xyz"] }"#);
    assert_eq!(e, "unknown capability \"xyz\" in path \"bar\"");
    let e = err(r#"path "bar" { foo = 1 }"#);
    assert_eq!(e, "unknown key \"foo\" in path \"bar\"");
    let e = err(r#"paths "bar" {}"#);
    assert_eq!(e, "unknown key \"paths\"");
    let e = err(r#"{"path": {"bar": {"capabilites": ["read"]}}}"#);
    assert_eq!(e, "unknown key \"capabilites\" in path \"bar\"");
    let e = err(r#"{"paths": {}}"#);
    assert_eq!(e, "unknown key \"paths\"");
    let e = err(r#"path "bar" { capabilities = ["root"] }"#);
    assert!(e.contains("\"root\" capability cannot be granted"), "{e}");
    let e = err(r#"path "bar" { capabilities = "read" }"#);
    assert!(e.contains("must be a list of strings"), "{e}");
    let e = err(r#"path "bar" { capabilities = [1] }"#);
    assert!(
        e.contains("must be a list of strings, found a number"),
        "{e}"
    );
    let e = err(r#"path "bar" { policy = "admin" }"#);
    assert!(e.contains("invalid policy \"admin\""), "{e}");
    let e = err(r#"path "bar" {"#);
    assert!(e.starts_with("failed to parse policy HCL: "), "{e}");
    let e = err(r#"{"path": "#);
    assert!(e.starts_with("failed to parse policy JSON: "), "{e}");
    let e = err(r#"path "a/+*" { capabilities = ["read"] }"#);
    assert!(e.contains("'+*' is forbidden"), "{e}");
    let e = err(r#"path "a/*/b" { capabilities = ["read"] }"#);
    assert!(
        e.contains("'*' is only allowed as the last character"),
        "{e}"
    );
    let e = err("path \"x\" {\n capabilities = [\"read\"]\n capabilities = [\"list\"]\n}");
    assert!(e.contains("redefined attribute"), "{e}");
    let e = err(r#"{"path": {"x": {"capabilities": ["read"], "capabilities": ["list"]}}}"#);
    assert_eq!(e, "path \"x\": duplicate key \"capabilities\"");
    let e = err(r#"path "x" { allowed_parameters = { "a*" = [] } }"#);
    assert!(e.contains("cannot contain a wildcard"), "{e}");
    let e = err(r#"path "x" { allowed_parameters = { "a" = "b" } }"#);
    assert!(e.contains("must be a list"), "{e}");
    let e = err(r#"path "x" { required_parameters = ["*"] }"#);
    assert!(e.contains("wildcard not permitted"), "{e}");
    let e = err("path \"x\" {\n min_wrapping_ttl = \"10m\"\n max_wrapping_ttl = \"1m\"\n}");
    assert!(
        e.contains("max_wrapping_ttl cannot be less than min_wrapping_ttl"),
        "{e}"
    );
    let e = err(r#"path "x" { max_wrapping_ttl = "soon" }"#);
    assert!(e.contains("invalid duration \"soon\""), "{e}");
    let e = err(r#"path "x" { control_group = {} }"#);
    assert!(e.contains("not supported by Coffer"), "{e}");
    let e = err(r#"path "identity/entity/id/{{identity.entity.id}}" { capabilities = ["read"] }"#);
    assert!(e.contains("templating"), "{e}");
    let e = err(r#"path "x" { capabilities = [var.x] }"#);
    assert!(e.contains("only literal values"), "{e}");
    let e = err(r#"path "x" { comment = "${foo}" }"#);
    assert!(e.contains("templates"), "{e}");
    let e = err(r#"path "a" "b" {}"#);
    assert!(e.contains("exactly one label"), "{e}");
    let e = err("[1]");
    assert!(e.starts_with("failed to parse policy HCL"), "{e}");
    let e = err(r#"{"path": {"x": 1}}"#);
    assert_eq!(e, "path \"x\": expected an object, found a number");
    let deep = format!(
        "path \"x\" {{ comment = {}1{} }}",
        "[".repeat(500),
        "]".repeat(500)
    );
    assert!(err(&deep).contains("nested more than"));
    let deep_json = format!(
        "{{\"path\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(err(&deep_json).contains("JSON"));
    let long = format!("path \"x\" {{ comment = {}true }}", "!".repeat(100_000));
    assert!(
        err(&long).len() < 2 * MAX_MESSAGE,
        "parser messages are bounded"
    );
    let deep_hcl = "[".repeat(100_000);
    assert!(err(&deep_hcl).contains("nested more than"));
}

#[test]
fn durations_follow_vault_syntax() {
    assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert!(parse_duration("1x").is_err());
    assert!(parse_duration("-5s").is_err());
    assert!(parse_duration("h").is_err());
    let p = parse_policy("p", r#"path "x" { max_wrapping_ttl = 0 }"#).unwrap();
    assert_eq!(
        p.rule("x").unwrap().max_wrapping_ttl,
        None,
        "zero means unset"
    );
}

// --- Matching -------------------------------------------------------------------------

#[test]
fn exact_rule_beats_glob() {
    let a = acl(&[r#"
            path "secret/*"   { capabilities = ["read"] }
            path "secret/foo" { capabilities = ["update"] }
        "#]);
    assert!(allowed(&a, Read, "secret/bar"));
    assert!(!allowed(&a, Update, "secret/bar"));
    assert!(allowed(&a, Update, "secret/foo"));
    assert!(
        !allowed(&a, Read, "secret/foo"),
        "exact rule replaces the glob's grant"
    );
    assert!(!allowed(&a, Read, "secret"), "secret/* needs the slash");
    assert!(allowed(&a, Read, "secret/"));
    assert!(allowed(&a, Read, "/secret/bar"), "leading slash ignored");
}

#[test]
fn star_is_a_string_prefix_and_longest_prefix_wins() {
    let a = acl(&[r#"
            path "secret/*"       { capabilities = ["read"] }
            path "secret/team*"   { capabilities = ["update"] }
            path "secret/team-a/*" { capabilities = ["delete"] }
            path "*"              { capabilities = ["list"] }
        "#]);
    assert!(allowed(&a, Read, "secret/x/y/z"));
    assert!(allowed(&a, Update, "secret/teams/x"));
    assert!(allowed(&a, Update, "secret/team"));
    assert!(!allowed(&a, Read, "secret/teams"));
    assert!(allowed(&a, Delete, "secret/team-a/k"));
    assert!(!allowed(&a, Update, "secret/team-a/k"));
    assert!(allowed(&a, Update, "secret/team-a"));
    assert!(allowed(&a, List, "other/"));
    assert!(allowed(&a, List, "anything"));
    assert!(!allowed(&a, Read, "other/x"));
}

#[test]
fn plus_matches_exactly_one_segment() {
    let a = acl(&[r#"path "secret/+/teamb" { capabilities = ["read"] }"#]);
    assert!(allowed(&a, Read, "secret/foo/teamb"));
    assert!(!allowed(&a, Read, "secret/foo/bar/teamb"));
    assert!(!allowed(&a, Read, "secret/teamb"));
    assert!(!allowed(&a, Read, "secret/foo/teamb/x"));
    assert!(!allowed(&a, Read, "secret/foo/teambx"));
    assert!(
        allowed(&a, Read, "secret//teamb"),
        "an empty segment is a segment"
    );

    let b = acl(&[r#"
            path "+/data/*"         { capabilities = ["read"] }
            path "secret/+/team*"   { capabilities = ["update"] }
            path "+"                { capabilities = ["list"] }
            path "a/+/+/d"          { capabilities = ["delete"] }
            path "a+b/c"            { capabilities = ["patch"] }
        "#]);
    assert!(allowed(&b, Read, "kv/data/x/y"));
    assert!(!allowed(&b, Read, "kv/data"));
    assert!(allowed(&b, Update, "secret/x/team"));
    assert!(allowed(&b, Update, "secret/x/teams/deep/er"));
    assert!(!allowed(&b, Update, "secret/x/y/team"));
    assert!(allowed(&b, List, "anything"));
    assert!(!allowed(&b, List, "any/thing"));
    assert!(allowed(&b, Delete, "a/1/2/d"));
    assert!(!allowed(&b, Delete, "a/1/d"));
    assert!(allowed(&b, Patch, "a+b/c"), "+ inside a segment is literal");
    assert!(!allowed(&b, Patch, "axb/c"));
}

#[test]
fn priority_matching_follows_vault_rules() {
    // 1. The later first wildcard wins.
    let a = acl(&[r#"
            path "secret/+/bar/*" { capabilities = ["read"] }
            path "secret/foo/+/*" { capabilities = ["update"] }
        "#]);
    assert!(allowed(&a, Update, "secret/foo/bar/x"));
    assert!(!allowed(&a, Read, "secret/foo/bar/x"));
    // A plain prefix whose '*' comes after a '+' beats it, and vice versa.
    let a = acl(&[r#"
            path "secret/foo/*"  { capabilities = ["read"] }
            path "secret/+/bar"  { capabilities = ["update"] }
        "#]);
    assert!(allowed(&a, Read, "secret/foo/bar"));
    assert!(!allowed(&a, Update, "secret/foo/bar"));
    assert!(allowed(&a, Update, "secret/baz/bar"));
    let a = acl(&[r#"
            path "secret/*"        { capabilities = ["read"] }
            path "secret/foo/+"    { capabilities = ["update"] }
        "#]);
    assert!(allowed(&a, Update, "secret/foo/x"));
    assert!(!allowed(&a, Read, "secret/foo/x"));

    // 2. Same first wildcard: not ending in '*' beats ending in '*'.
    let a = acl(&[r#"
            path "secret/+"  { capabilities = ["update"] }
            path "secret/*"  { capabilities = ["read"] }
            path "x/+/bar"   { capabilities = ["update"] }
            path "x/+/ba*"   { capabilities = ["read"] }
        "#]);
    assert!(allowed(&a, Update, "secret/foo"));
    assert!(!allowed(&a, Read, "secret/foo"));
    assert!(allowed(&a, Read, "secret/foo/bar"));
    assert!(allowed(&a, Update, "x/1/bar"));
    assert!(!allowed(&a, Read, "x/1/bar"));
    assert!(allowed(&a, Read, "x/1/bart"));

    // 3. Fewer '+' segments wins.
    let a = acl(&[r#"
            path "a/+/b/+" { capabilities = ["read"] }
            path "a/+/b/c" { capabilities = ["update"] }
        "#]);
    assert!(allowed(&a, Update, "a/x/b/c"));
    assert!(!allowed(&a, Read, "a/x/b/c"));
    assert!(allowed(&a, Read, "a/x/b/d"));

    // 4. Longer wins.
    let a = acl(&[r#"
            path "a/+/bar/b*"  { capabilities = ["read"] }
            path "a/+/bar/ba*" { capabilities = ["update"] }
        "#]);
    assert!(allowed(&a, Update, "a/x/bar/baz"));
    assert!(!allowed(&a, Read, "a/x/bar/baz"));
    assert!(allowed(&a, Read, "a/x/bar/bz"));

    // 5. Lexicographically greater wins ('a' > '+').
    let a = acl(&[r#"
            path "+/a/+" { capabilities = ["read"] }
            path "+/+/b" { capabilities = ["update"] }
        "#]);
    assert!(allowed(&a, Read, "x/a/b"));
    assert!(!allowed(&a, Update, "x/a/b"));
}

#[test]
fn deny_wins_for_the_same_pattern_across_policies() {
    let a = acl(&[
        r#"path "secret/*" { capabilities = ["read", "list", "sudo"] }"#,
        r#"path "secret/*" { capabilities = ["deny"] }"#,
        r#"path "secret/*" { capabilities = ["update"] }"#,
    ]);
    for op in [Read, List, Update, Create, Delete, Patch] {
        let d = a.check(op, "secret/x", None);
        assert!(!d.allowed);
        assert!(!d.root_privs);
        assert_eq!(
            d.reason.as_deref(),
            Some("permission denied: explicitly denied by policy")
        );
    }
    assert_eq!(a.capabilities("secret/x"), vec!["deny"]);

    // Capabilities of the same pattern in different policies are united.
    let b = acl(&[
        r#"path "secret/*" { capabilities = ["read"] }"#,
        r#"path "secret/*" { capabilities = ["update"] }"#,
    ]);
    assert!(allowed(&b, Read, "secret/x") && allowed(&b, Update, "secret/x"));

    // A deny on a less specific pattern does not override a more specific grant (Vault).
    let c = acl(&[
        r#"path "secret/*" { capabilities = ["deny"] }"#,
        r#"path "secret/open" { capabilities = ["read"] }"#,
    ]);
    assert!(allowed(&c, Read, "secret/open"));
    assert!(!allowed(&c, Read, "secret/closed"));
    // And a more specific deny wins over a broader grant.
    let d = acl(&[
        r#"path "secret/*" { capabilities = ["read"] }"#,
        r#"path "secret/private/*" { capabilities = ["deny"] }"#,
    ]);
    assert!(!allowed(&d, Read, "secret/private/x"));
    assert!(!allowed(&d, List, "secret/private/"));
    assert!(allowed(&d, Read, "secret/public"));
}

#[test]
fn list_matches_with_and_without_trailing_slash() {
    let exact_slash = acl(&[r#"path "secret/metadata/foo/" { capabilities = ["list"] }"#]);
    let exact_bare = acl(&[r#"path "secret/metadata/foo" { capabilities = ["list"] }"#]);
    let glob_child = acl(&[r#"path "secret/metadata/foo/*" { capabilities = ["list"] }"#]);
    let glob_parent = acl(&[r#"path "secret/metadata/*" { capabilities = ["list"] }"#]);
    let seg = acl(&[r#"path "+/metadata/foo" { capabilities = ["list"] }"#]);
    for a in [&exact_slash, &exact_bare, &glob_child, &glob_parent, &seg] {
        assert!(allowed(a, List, "secret/metadata/foo/"), "{a:?}");
        assert!(allowed(a, List, "secret/metadata/foo"), "{a:?}");
        assert!(!allowed(a, List, "secret/other/x/"), "{a:?}");
    }
    // The trailing-slash fallback is for list only.
    assert!(!exact_bare.check(Read, "secret/metadata/foo/", None).allowed);
    // A more specific deny under the listed directory applies to the listing.
    let a = acl(&[r#"
            path "secret/metadata/*"     { capabilities = ["list"] }
            path "secret/metadata/foo/*" { capabilities = ["deny"] }
        "#]);
    assert!(!allowed(&a, List, "secret/metadata/foo/"));
    assert!(allowed(&a, List, "secret/metadata/bar/"));
}

#[test]
fn root_acl_allows_everything() {
    let r = Acl::root();
    assert!(r.is_root());
    let d = r.check(Delete, "sys/seal", None);
    assert_eq!(
        d,
        AclDecision {
            allowed: true,
            root_privs: true,
            reason: None
        }
    );
    assert_eq!(r.capabilities("anything"), vec!["root"]);
    assert_eq!(r.capability_set("x"), Capabilities::ROOT);
    // A policy merely *named* root is an ordinary policy.
    let p = parse_policy("root", "").unwrap();
    let a = Acl::new(&[Arc::new(p)]);
    assert!(!a.is_root());
    assert!(!allowed(&a, Read, "x"));
}

#[test]
fn sudo_gives_root_privs() {
    let a = acl(&[r#"
            path "sys/audit/*" { capabilities = ["create", "update", "sudo"] }
            path "sys/mounts"  { capabilities = ["read"] }
        "#]);
    let d = a.check(Update, "sys/audit/file", None);
    assert!(d.allowed && d.root_privs);
    let d = a.check(Read, "sys/mounts", None);
    assert!(d.allowed && !d.root_privs);
    let d = a.check(Read, "sys/audit/file", None);
    assert!(!d.allowed && !d.root_privs);
    assert_eq!(
        d.reason.as_deref(),
        Some("permission denied: no policy grants \"read\" on this path")
    );
    let d = a.check(Read, "nowhere", None);
    assert_eq!(
        d.reason.as_deref(),
        Some("permission denied: no policy rule matches this path")
    );
}

#[test]
fn capabilities_output_is_sorted_like_vault() {
    let a = acl(&[r#"
            path "secret/*" { capabilities = ["update", "sudo", "read", "create", "list", "delete", "patch"] }
            path "secret/ro" { capabilities = ["read"] }
            path "secret/metadata/" { capabilities = ["list"] }
        "#]);
    assert_eq!(
        a.capabilities("secret/x"),
        vec!["create", "delete", "list", "patch", "read", "sudo", "update"]
    );
    assert_eq!(a.capabilities("secret/ro"), vec!["read"]);
    assert_eq!(a.capabilities("other"), vec!["deny"]);
    assert_eq!(a.capabilities("/secret/ro"), vec!["read"]);
    assert_eq!(
        a.capabilities("secret/metadata"),
        a.capabilities("secret/x")
    );
    assert_eq!(a.capabilities("secret/metadata/"), vec!["list"]);
    assert_eq!(
        a.capability_set("secret/ro/"),
        Capabilities::READ,
        "capabilities use list semantics: the trailing slash may be dropped"
    );
}

#[test]
fn default_policy_parses_and_grants_self_service() {
    let p = parse_policy(DEFAULT_POLICY_NAME, default_policy_text()).unwrap();
    assert_eq!(p.name, "default");
    let a = Acl::new(&[Arc::new(p)]);
    assert!(allowed(&a, Read, "auth/token/lookup-self"));
    assert!(allowed(&a, Update, "auth/token/renew-self"));
    assert!(allowed(&a, Update, "auth/token/revoke-self"));
    assert!(allowed(&a, Update, "sys/capabilities-self"));
    assert!(allowed(&a, Update, "sys/leases/lookup"));
    assert!(allowed(&a, Update, "sys/wrapping/unwrap"));
    assert!(allowed(&a, Update, "sys/tools/hash/sha2-256"));
    assert!(allowed(&a, Update, "sys/control-group/request"));
    assert!(allowed(&a, Create, "cubbyhole/mine"));
    assert!(allowed(&a, List, "cubbyhole/"));
    assert!(allowed(&a, Read, "identity/oidc/provider/p1/authorize"));
    assert!(!allowed(&a, Update, "auth/token/lookup-self"));
    assert!(!allowed(&a, Read, "secret/data/x"));
    assert!(!allowed(&a, Update, "sys/policies/acl/default"));
    assert!(!a.check(Read, "auth/token/lookup-self", None).root_privs);
}

// --- Parameter constraints --------------------------------------------------------------

#[test]
fn required_parameters() {
    let a = acl(&[r#"
            path "x" {
              capabilities = ["create", "update", "read"]
              required_parameters = ["Name", "ttl"]
            }
        "#]);
    let ok = data(json!({"name": "n", "ttl": 1, "extra": true}));
    assert!(a.check(Create, "x", Some(&ok)).allowed);
    let missing = data(json!({"name": "n"}));
    let d = a.check(Update, "x", Some(&missing));
    assert!(!d.allowed);
    assert_eq!(
        d.reason.as_deref(),
        Some("permission denied: missing required parameter \"ttl\"")
    );
    assert!(!a.check(Update, "x", None).allowed);
    assert!(
        a.check(Read, "x", None).allowed,
        "reads are not parameter-checked"
    );
}

#[test]
fn denied_parameters() {
    let a = acl(&[r#"
            path "x" {
              capabilities = ["create", "update", "patch"]
              denied_parameters = {
                "secret" = []
                "env"    = ["prod", "*-live", "*danger*"]
                "n"      = [5, true]
              }
            }
            path "all" {
              capabilities = ["update"]
              denied_parameters = { "*" = [] }
            }
        "#]);
    let check = |v: Value| a.check(Update, "x", Some(&data(v))).allowed;
    assert!(check(json!({"other": 1})));
    assert!(!check(json!({"secret": "anything"})));
    assert!(
        !check(json!({"SECRET": "anything"})),
        "names are case-insensitive"
    );
    assert!(!check(json!({"env": "prod"})));
    assert!(check(json!({"env": "production"})));
    assert!(!check(json!({"env": "eu-live"})));
    assert!(!check(json!({"env": "so-danger-ous"})));
    assert!(
        !check(json!({"env": ["dev", "prod"]})),
        "any denied element denies"
    );
    assert!(
        !check(json!({"env": "dev, prod"})),
        "comma strings are split"
    );
    assert!(check(json!({"env": ["dev", "qa"]})));
    assert!(!check(json!({"n": 5})));
    assert!(!check(json!({"n": 5.0})), "numbers compare by value");
    assert!(!check(json!({"n": true})));
    assert!(check(json!({"n": 6})));
    assert!(check(json!({"n": "5"})), "a string is not the number 5");
    assert!(
        a.check(Update, "all", None).allowed,
        "no data, nothing to deny"
    );
    let d = a.check(Update, "all", Some(&data(json!({"a": 1}))));
    assert!(!d.allowed);
    let d = a.check(Patch, "x", Some(&data(json!({"secret": "hunter2-value"}))));
    let reason = d.reason.unwrap();
    assert!(reason.contains("\"secret\""), "{reason}");
    assert!(!reason.contains("hunter2"), "reasons never contain values");
}

#[test]
fn allowed_parameters() {
    let a = acl(&[r#"
            path "x" {
              capabilities = ["create", "update"]
              allowed_parameters = {
                "color" = ["red", "blue*", "*green"]
                "size"  = []
                "count" = [1, 2]
              }
            }
            path "any" {
              capabilities = ["update"]
              allowed_parameters = { "*" = [] }
            }
            path "mixed" {
              capabilities = ["update"]
              allowed_parameters = { "*" = [], "color" = ["red"] }
              denied_parameters = { "color" = ["red"] }
            }
            path "star" {
              capabilities = ["update"]
              allowed_parameters = { "v" = ["*"] }
            }
        "#]);
    let check = |p: &str, v: Value| a.check(Update, p, Some(&data(v))).allowed;
    assert!(check("x", json!({"color": "red", "size": "huge"})));
    assert!(check("x", json!({"Color": "blueish"})));
    assert!(check("x", json!({"color": "lightgreen"})));
    assert!(!check("x", json!({"color": "purple"})));
    assert!(
        !check("x", json!({"color": "red", "shape": "round"})),
        "unlisted name"
    );
    assert!(
        check("x", json!({"color": ["red", "bluey"]})),
        "every element allowed"
    );
    assert!(!check("x", json!({"color": ["red", "pink"]})));
    assert!(check("x", json!({"color": "red, blue"})));
    assert!(!check("x", json!({"color": "red,pink"})));
    assert!(check("x", json!({"count": 2})));
    assert!(check("x", json!({"count": 2.0})));
    assert!(!check("x", json!({"count": 3})));
    assert!(check("x", json!({})), "empty data is allowed");
    assert!(a.check(Create, "x", None).allowed);
    assert!(check("any", json!({"whatever": [1, 2, 3]})));
    // '*' allows other names; listed names are still constrained; denied wins.
    assert!(check("mixed", json!({"other": 1})));
    assert!(
        !check("mixed", json!({"color": "red"})),
        "denied wins over allowed"
    );
    assert!(!check("mixed", json!({"color": "blue"})));
    // A lone "*" value is the literal string "*", as in Vault.
    assert!(check("star", json!({"v": "*"})));
    assert!(!check("star", json!({"v": "anything"})));
}

#[test]
fn wrapping_ttls_require_wrapping() {
    let a = acl(&[r#"
            path "w" {
              capabilities = ["read"]
              min_wrapping_ttl = "1m"
              max_wrapping_ttl = "1h"
            }
        "#]);
    assert!(!a.check(Read, "w", None).allowed);
    let ttl = |s| {
        a.check_wrapped(Read, "w", None, Some(Duration::from_secs(s)))
            .allowed
    };
    assert!(ttl(60) && ttl(3600) && ttl(600));
    assert!(!ttl(59) && !ttl(3601));
}

#[test]
fn acl_is_send_sync_and_policies_share() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Acl>();
    assert_send_sync::<Policy>();
    assert_send_sync::<AclDecision>();
    let p = Arc::new(parse_policy("p", r#"path "a/*" { capabilities = ["read"] }"#).unwrap());
    let a = Arc::new(Acl::new(&[p.clone(), p]));
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let a = Arc::clone(&a);
            std::thread::spawn(move || a.check(Read, &format!("a/{i}"), None).allowed)
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap());
    }
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    const POLICY: &str = r#"
            path "a/*"       { capabilities = ["read", "list"] }
            path "a/b"       { capabilities = ["update"] }
            path "a/+/c"     { capabilities = ["delete"] }
            path "+/b/*"     { capabilities = ["create"] }
            path "a/b/c/*"   { capabilities = ["deny"] }
            path "x+/y*"     { capabilities = ["patch"] }
        "#;

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse_policy("p", &text);
        }

        #[test]
        fn capabilities_agree_with_check(path in "[ab+xyc/é]{0,12}") {
            let a = acl(&[POLICY]);
            prop_assume!(!path.ends_with('/'));
            let caps = a.capabilities(&path);
            for op in [Read, Update, Delete, Create, Patch] {
                prop_assert_eq!(
                    a.check(op, &path, None).allowed,
                    caps.contains(&op.as_str()),
                    "{} {}", op.as_str(), path
                );
            }
        }
    }
}
