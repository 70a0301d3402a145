//! The `aws-access-keys` auth method over the Vault API, and dev mode's printed AWS key pair.

use crate::common::{dev, dev_with};
use serde_json::{json, Value};

fn printed(out: &str, name: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .map(str::to_string)
}

#[test]
fn keys_over_the_vault_api() {
    let s = dev();
    let (st, v) = s.root(
        "POST",
        "sys/auth/team-keys",
        Some(json!({"type": "aws-access-keys"})),
    );
    assert_eq!(st, 204, "{v}");
    let (st, v) = s.root("GET", "sys/auth", None);
    assert_eq!(st, 200);
    assert_eq!(v["data"]["team-keys/"]["type"], "aws-access-keys", "{v}");

    // create: the pair, once
    let (st, created) = s.root(
        "POST",
        "auth/team-keys/keys/CI",
        Some(json!({"policies": ["deploy", "Reader"]})),
    );
    assert_eq!(st, 200, "{created}");
    let id = created["data"]["access_key_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = created["data"]["secret_access_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(id.starts_with("AKIA") && id.len() == 20, "{id}");
    assert_eq!(secret.len(), 40);
    assert_eq!(created["data"]["policies"], json!(["deploy", "reader"]));

    // read (canonical name), list: never the secret
    let (st, read) = s.root("GET", "auth/team-keys/keys/ci", None);
    assert_eq!(st, 200, "{read}");
    assert_eq!(read["data"]["access_key_id"], json!(id));
    assert_eq!(read["data"]["last_used"], Value::Null);
    assert!(!read.to_string().contains(&secret));
    let (st, list) = s.root("LIST", "auth/team-keys/keys", None);
    assert_eq!((st, list["data"]["keys"].clone()), (200, json!(["ci"])));

    // reserved policies and bad names are refused
    for reserved in ["root", "response-wrapping"] {
        let (st, v) = s.root(
            "POST",
            "auth/team-keys/keys/x",
            Some(json!({"policies": [reserved]})),
        );
        assert_eq!(st, 400, "{v}");
    }
    let (st, _) = s.root("POST", "auth/team-keys/keys/bad%20name", Some(json!({})));
    assert_eq!(st, 400);

    // rotate: a new pair
    let (st, rotated) = s.root("POST", "auth/team-keys/keys/CI/rotate", Some(json!({})));
    assert_eq!(st, 200, "{rotated}");
    let new_id = rotated["data"]["access_key_id"].as_str().unwrap();
    assert_ne!(new_id, id);
    let (_, read) = s.root("GET", "auth/team-keys/keys/ci", None);
    assert_eq!(read["data"]["access_key_id"], json!(new_id));

    // a token without a policy for the mount gets nothing
    let t = s.token_with(&["default"]);
    let (st, _) = s.req("GET", "auth/team-keys/keys/ci", Some(&t), None);
    assert_eq!(st, 403);

    // delete
    let (st, _) = s.root("DELETE", "auth/team-keys/keys/ci", None);
    assert_eq!(st, 204);
    let (st, _) = s.root("GET", "auth/team-keys/keys/ci", None);
    assert_eq!(st, 404);

    // neither secret was ever logged
    let out = s.output();
    assert!(!out.contains(&secret));
    assert!(!out.contains(rotated["data"]["secret_access_key"].as_str().unwrap()));
}

#[test]
fn dev_mode_prints_a_generated_pair() {
    let s = dev();
    let out = s.output_with("AWS_SECRET_ACCESS_KEY");
    let id = printed(&out, "AWS_ACCESS_KEY_ID").unwrap_or_else(|| panic!("{out}"));
    let secret = printed(&out, "AWS_SECRET_ACCESS_KEY").unwrap_or_else(|| panic!("{out}"));
    assert!(id.starts_with("AKIA") && id.len() == 20, "{id}");
    assert_eq!(secret.len(), 40);
    // printed once, in the banner
    assert_eq!(out.matches(&secret).count(), 1);
    let (st, key) = s.root("GET", "auth/aws-keys/keys/dev", None);
    assert_eq!(st, 200, "{key}");
    assert_eq!(key["data"]["access_key_id"], json!(id));
    assert_eq!(key["data"]["policies"], json!(["dev-aws"]));
    // the policy: everything under secret/, not root
    let (st, pol) = s.root("GET", "sys/policy/dev-aws", None);
    assert_eq!(st, 200);
    let rules = pol["data"]["rules"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(rules.contains(r#"path "secret/*""#), "{pol}");
    assert!(!rules.contains("sudo"), "{pol}");
    let (_, cfg) = s.root("GET", "auth/aws-keys/config", None);
    assert_eq!(cfg["data"]["account_id"], Value::Null);
}

#[test]
fn dev_mode_takes_a_fixed_pair_and_account() {
    let s = dev_with(&[
        "-dev-aws-access-key-id=FOOBARKEY",
        "-dev-aws-secret-access-key=dev-secret-value",
        "-dev-aws-account-id=123456789012",
    ]);
    let out = s.output_with("AWS_SECRET_ACCESS_KEY");
    assert_eq!(
        printed(&out, "AWS_ACCESS_KEY_ID").as_deref(),
        Some("FOOBARKEY"),
        "{out}"
    );
    assert_eq!(
        printed(&out, "AWS_SECRET_ACCESS_KEY").as_deref(),
        Some("dev-secret-value")
    );
    let (_, key) = s.root("GET", "auth/aws-keys/keys/dev", None);
    assert_eq!(key["data"]["access_key_id"], "FOOBARKEY");
    let (_, cfg) = s.root("GET", "auth/aws-keys/config", None);
    assert_eq!(cfg["data"]["account_id"], "123456789012");
}

#[test]
fn dev_mode_refuses_half_a_pair() {
    let out = std::process::Command::new(crate::common::bin())
        .args([
            "server",
            "-dev",
            "-dev-listen-address=127.0.0.1:0",
            "-dev-aws-access-key-id=FOOBARKEY",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("given together"), "{err}");
}
