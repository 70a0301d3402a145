//! Seal administration over HTTP, as Vault answers it: rekey (with and without verification),
//! root token generation, remount, and wrapping an empty payload.

use crate::common::*;
use base64::Engine as _;
use serde_json::{json, Value};

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

fn error(v: &Value) -> String {
    v["errors"][0].as_str().unwrap_or_default().to_string()
}

fn sealed(s: &Server) -> bool {
    s.req("GET", "sys/seal-status", None, None).1["sealed"] == true
}

/// Give shares to `sys/unseal` one by one; the last answer.
fn submit_unseal(s: &Server, keys: &[String]) -> (u16, Value) {
    let mut last = (0, Value::Null);
    for k in keys {
        last = s.req("PUT", "sys/unseal", None, Some(json!({ "key": k })));
        if last.0 != 200 {
            break;
        }
    }
    last
}

#[test]
fn rekey_replaces_the_shares_old_ones_stop_working() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = with_config(dir.path(), "storage \"inmem\" {}", "");
    let (old, _root) = s.init_and_unseal(3, 2);
    let (st, _) = s.root(
        "POST",
        "sys/mounts/kv",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(st, 204);
    s.root(
        "POST",
        "kv/data/db",
        Some(json!({"data": {"pw": "kept-across-rekey"}})),
    );

    // status, no token needed; bare JSON as Vault answers it
    let (st, v) = s.req("GET", "sys/rekey/init", None, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["started"], false);
    assert_eq!(v["required"], 2);
    assert!(v.get("request_id").is_none(), "no envelope: {v}");
    let (st, v) = s.req(
        "PUT",
        "sys/rekey/update",
        None,
        Some(json!({"key": old[0], "nonce": "x"})),
    );
    assert_eq!(
        (st, error(&v)),
        (400, "no barrier rekey in progress".into())
    );

    // refusals change nothing
    for (body, msg) in [
        (
            json!({"secret_shares": 3, "secret_threshold": 5}),
            "threshold greater",
        ),
        (
            json!({"secret_shares": 3, "secret_threshold": 1}),
            "greater than one",
        ),
        (
            json!({"secret_shares": 1, "secret_threshold": 1, "pgp_keys": ["a"]}),
            "pgp_keys",
        ),
        (
            json!({"secret_shares": 1, "secret_threshold": 1, "backup": true}),
            "backup",
        ),
    ] {
        let (st, v) = s.req("PUT", "sys/rekey/init", None, Some(body));
        assert_eq!(st, 400, "{v}");
        assert!(error(&v).contains(msg), "{v}");
    }
    assert_eq!(
        s.req("GET", "sys/rekey/init", None, None).1["started"],
        false
    );

    let (st, v) = s.req(
        "PUT",
        "sys/rekey/init",
        None,
        Some(json!({"secret_shares": 5, "secret_threshold": 3})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["started"].clone(), v["n"].clone(), v["t"].clone()),
        (json!(true), json!(5), json!(3))
    );
    assert_eq!(
        (v["progress"].clone(), v["required"].clone()),
        (json!(0), json!(2))
    );
    let nonce = v["nonce"].as_str().unwrap().to_string();
    assert!(!nonce.is_empty());
    let (st, v) = s.req(
        "PUT",
        "sys/rekey/init",
        None,
        Some(json!({"secret_shares": 5, "secret_threshold": 3})),
    );
    assert_eq!((st, error(&v)), (400, "rekey already in progress".into()));

    // a wrong nonce, a missing key and a repeated share are refused
    let (st, v) = s.req(
        "PUT",
        "sys/rekey/update",
        None,
        Some(json!({"key": old[0], "nonce": "not-the-nonce"})),
    );
    assert_eq!(st, 400);
    assert!(error(&v).starts_with("incorrect nonce supplied"), "{v}");
    let (st, v) = s.req(
        "PUT",
        "sys/rekey/update",
        None,
        Some(json!({"nonce": nonce})),
    );
    assert_eq!(st, 400);
    assert!(error(&v).contains("'key' must be specified"), "{v}");
    let (st, v) = s.req(
        "PUT",
        "sys/rekey/update",
        None,
        Some(json!({"key": old[0], "nonce": nonce})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["progress"], 1);
    assert!(v.get("keys").is_none());
    let (st, v) = s.req(
        "PUT",
        "sys/rekey/update",
        None,
        Some(json!({"key": old[0], "nonce": nonce})),
    );
    assert_eq!(st, 400);
    assert!(error(&v).contains("already been provided"), "{v}");
    assert_eq!(s.req("GET", "sys/rekey/init", None, None).1["progress"], 1);

    let (st, v) = s.req(
        "PUT",
        "sys/rekey/update",
        None,
        Some(json!({"key": old[2], "nonce": nonce})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["complete"], true);
    assert_eq!(v["nonce"], nonce.as_str());
    assert_eq!(v["verification_required"], false);
    let new = strings(&v["keys"]);
    assert_eq!(new.len(), 5);
    assert_eq!(strings(&v["keys_base64"]).len(), 5);
    assert!(new.iter().all(|k| !old.contains(k)));
    // given out once: the rekey is over
    assert_eq!(
        s.req("GET", "sys/rekey/init", None, None).1["started"],
        false
    );
    let st = s.req("GET", "sys/seal-status", None, None).1;
    assert_eq!((st["t"].clone(), st["n"].clone()), (json!(3), json!(5)));
    // no share reached the server's log
    let out = s.output();
    assert!(old
        .iter()
        .chain(new.iter())
        .all(|k| !out.contains(k.as_str())));

    // seal: the old shares no longer unseal, the new ones do
    assert_eq!(s.root("PUT", "sys/seal", None).0, 204);
    let (st, v) = submit_unseal(&s, &old);
    assert_eq!(st, 400, "old shares must not unseal: {v}");
    assert!(sealed(&s));
    s.req("PUT", "sys/unseal", None, Some(json!({"reset": true})));
    s.unseal(&new[1..4]);
    let (st, v) = s.root("GET", "kv/data/db", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["data"]["pw"], "kept-across-rekey");
}

#[test]
fn rekey_with_verification_cancel_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = with_config(dir.path(), "storage \"inmem\" {}", "");
    let (old, _) = s.init_and_unseal(3, 2);

    // cancel forgets the attempt
    let (st, _) = s.req(
        "PUT",
        "sys/rekey/init",
        None,
        Some(json!({"secret_shares": 3, "secret_threshold": 2, "require_verification": true})),
    );
    assert_eq!(st, 200);
    assert_eq!(s.req("DELETE", "sys/rekey/init", None, None).0, 204);
    assert_eq!(
        s.req("GET", "sys/rekey/init", None, None).1["started"],
        false
    );
    let (st, v) = s.req("GET", "sys/rekey/verify", None, None);
    assert_eq!(
        (st, error(&v)),
        (400, "no rekey configuration found".into())
    );

    let (_, v) = s.req(
        "PUT",
        "sys/rekey/init",
        None,
        Some(json!({"secret_shares": 3, "secret_threshold": 2, "require_verification": true})),
    );
    assert_eq!(v["verification_required"], true);
    let mut last = Value::Null;
    let nonce = v["nonce"].as_str().unwrap().to_string();
    for k in &old[..2] {
        let (st, v) = s.req(
            "PUT",
            "sys/rekey/update",
            None,
            Some(json!({"key": k, "nonce": nonce})),
        );
        assert_eq!(st, 200, "{v}");
        last = v;
    }
    let v = last;
    assert_eq!(
        (v["complete"].clone(), v["verification_required"].clone()),
        (json!(true), json!(true))
    );
    let new = strings(&v["keys_base64"]);
    assert_eq!(new.len(), 3);
    let vnonce = v["verification_nonce"].as_str().unwrap().to_string();
    // not yet in force: more current shares are refused, the new ones must be proven first
    let (st, v) = s.req(
        "PUT",
        "sys/rekey/update",
        None,
        Some(json!({"key": old[2], "nonce": nonce})),
    );
    assert_eq!(st, 400);
    assert!(error(&v).contains("verification must be performed"), "{v}");
    let (st, v) = s.req("GET", "sys/rekey/verify", None, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["nonce"], vnonce.as_str());
    assert_eq!(
        (
            v["started"].clone(),
            v["t"].clone(),
            v["n"].clone(),
            v["progress"].clone()
        ),
        (json!(true), json!(2), json!(3), json!(0))
    );

    let (st, v) = s.req(
        "PUT",
        "sys/rekey/verify",
        None,
        Some(json!({"key": new[0], "nonce": "wrong"})),
    );
    assert_eq!(st, 400);
    assert!(error(&v).contains("incorrect nonce"), "{v}");
    let (_, v) = s.req(
        "PUT",
        "sys/rekey/verify",
        None,
        Some(json!({"key": new[0], "nonce": vnonce})),
    );
    assert_eq!(v["progress"], 1, "{v}");
    // restart: progress gone, new nonce
    let (st, v) = s.req("DELETE", "sys/rekey/verify", None, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["progress"], 0);
    let vnonce2 = v["nonce"].as_str().unwrap().to_string();
    assert_ne!(vnonce, vnonce2);
    // the old share is not one of the new ones: verification fails and starts over
    let (_, v) = s.req(
        "PUT",
        "sys/rekey/verify",
        None,
        Some(json!({"key": new[0], "nonce": vnonce2})),
    );
    assert_eq!(v["progress"], 1);
    let (st, v) = s.req(
        "PUT",
        "sys/rekey/verify",
        None,
        Some(json!({"key": old[0], "nonce": vnonce2})),
    );
    assert_eq!(st, 400);
    assert!(error(&v).contains("rekey verification failed"), "{v}");
    let vnonce3 = s.req("GET", "sys/rekey/verify", None, None).1["nonce"]
        .as_str()
        .unwrap()
        .to_string();
    for k in [&new[2], &new[1]] {
        let (st, v) = s.req(
            "PUT",
            "sys/rekey/verify",
            None,
            Some(json!({"key": k, "nonce": vnonce3})),
        );
        assert_eq!(st, 200, "{v}");
        if v["complete"] == true {
            assert_eq!(v["nonce"], vnonce3.as_str());
        }
    }
    assert_eq!(
        s.req("GET", "sys/rekey/init", None, None).1["started"],
        false
    );

    // the backup exists only with PGP keys, which Coffer refuses; it needs a token
    let (st, _) = s.req("GET", "sys/rekey/backup", None, None);
    assert_eq!(st, 403);
    let (st, v) = s.root("GET", "sys/rekey/backup", None);
    assert_eq!((st, error(&v)), (400, "no backed-up keys found".into()));
    assert_eq!(s.root("DELETE", "sys/rekey/backup", None).0, 204);
    let (st, v) = s.req("GET", "sys/rekey-recovery-key/init", None, None);
    assert_eq!(
        (st, error(&v)),
        (400, "recovery rekeying not supported".into())
    );

    assert_eq!(s.root("PUT", "sys/seal", None).0, 204);
    let (st, _) = submit_unseal(&s, &old);
    assert_eq!(st, 400, "the old key must not unseal");
    assert!(sealed(&s));
    // sealed: the seal administration answers as Vault does
    let (st, v) = s.req("GET", "sys/rekey/init", None, None);
    assert_eq!((st, error(&v)), (503, "Vault is sealed".into()));
    s.unseal(&new[..2]);
}

fn decode_otp(encoded: &str, otp: &str) -> String {
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .unwrap();
    assert_eq!(raw.len(), otp.len());
    String::from_utf8(raw.iter().zip(otp.bytes()).map(|(a, b)| a ^ b).collect()).unwrap()
}

#[test]
fn generate_root_mints_a_working_root_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = with_config(dir.path(), "storage \"inmem\" {}", "");
    let (keys, _) = s.init_and_unseal(3, 2);

    let (st, v) = s.req("GET", "sys/generate-root/attempt", None, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (
            v["started"].clone(),
            v["required"].clone(),
            v["otp_length"].clone()
        ),
        (json!(false), json!(2), json!(28))
    );
    let (st, v) = s.req(
        "PUT",
        "sys/generate-root/update",
        None,
        Some(json!({"key": keys[0], "nonce": "x"})),
    );
    assert_eq!(
        (st, error(&v)),
        (400, "no root generation in progress".into())
    );

    // the server generates the OTP when none is given, and shows it only then
    let (st, v) = s.req("PUT", "sys/generate-root/attempt", None, Some(json!({})));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["otp"].as_str().unwrap().len(), 28);
    assert_eq!(v["started"], true);
    assert_eq!(
        s.req("GET", "sys/generate-root/attempt", None, None).1["otp"],
        ""
    );
    let (st, v) = s.req("PUT", "sys/generate-root/attempt", None, Some(json!({})));
    assert_eq!(
        (st, error(&v)),
        (400, "root generation already in progress".into())
    );
    assert_eq!(
        s.req("DELETE", "sys/generate-root/attempt", None, None).0,
        204
    );
    assert_eq!(
        s.req("GET", "sys/generate-root/attempt", None, None).1["started"],
        false
    );
    for body in [json!({"otp": "too-short"}), json!({"pgp_key": "abc"})] {
        let (st, v) = s.req("PUT", "sys/generate-root/attempt", None, Some(body));
        assert_eq!(st, 400, "{v}");
    }

    // a client-chosen OTP of the right length (base64 of 21 bytes, as older clients make)
    let otp = base64::engine::general_purpose::STANDARD.encode([0x5au8; 21]);
    assert_eq!(otp.len(), 28);
    let (st, v) = s.req(
        "PUT",
        "sys/generate-root/attempt",
        None,
        Some(json!({"otp": otp})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["otp"], "");
    let nonce = v["nonce"].as_str().unwrap().to_string();
    // shares that do not recombine to the root key: refused, progress starts over
    let bogus = hex::encode([7u8; 33]);
    let (_, v) = s.req(
        "PUT",
        "sys/generate-root/update",
        None,
        Some(json!({"key": bogus, "nonce": nonce})),
    );
    assert_eq!(v["progress"], 1, "{v}");
    let (st, v) = s.req(
        "PUT",
        "sys/generate-root/update",
        None,
        Some(json!({"key": keys[1], "nonce": nonce})),
    );
    assert_eq!(st, 400, "{v}");
    assert!(error(&v).contains("root key verification failed"), "{v}");
    let (_, v) = s.req("GET", "sys/generate-root/attempt", None, None);
    assert_eq!(
        (v["started"].clone(), v["progress"].clone()),
        (json!(true), json!(0))
    );

    let (st, v) = s.req(
        "PUT",
        "sys/generate-root/update",
        None,
        Some(json!({"key": keys[2], "nonce": nonce})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["complete"].clone(), v["progress"].clone()),
        (json!(false), json!(1))
    );
    let (st, v) = s.req(
        "PUT",
        "sys/generate-root/update",
        None,
        Some(json!({"key": keys[0], "nonce": nonce})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["complete"], true);
    let encoded = v["encoded_token"].as_str().unwrap().to_string();
    assert_eq!(v["encoded_root_token"], encoded.as_str());
    assert!(
        !encoded.ends_with('='),
        "Vault's unpadded encoding: {encoded}"
    );
    let token = decode_otp(&encoded, &otp);
    assert!(token.starts_with("hvs."), "{token}");
    assert!(
        !s.output().contains(&token),
        "the new root token is never logged"
    );
    let (st, v) = s.req(
        "PUT",
        "sys/decode-token",
        None,
        Some(json!({"encoded_token": encoded, "otp": otp})),
    );
    assert_eq!(
        (st, v["token"].as_str()),
        (200, Some(token.as_str())),
        "{v}"
    );
    assert_eq!(
        s.req("GET", "sys/generate-root/attempt", None, None).1["started"],
        false
    );

    // a real root token: root policy, and sudo paths open to it
    let (st, v) = s.req("GET", "auth/token/lookup-self", Some(token.as_str()), None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["policies"], json!(["root"]));
    assert_eq!(
        s.req("PUT", "sys/rotate", Some(token.as_str()), None).0,
        204
    );
    let (st, v) = s.req("GET", "sys/audit", Some(token.as_str()), None);
    assert_eq!(st, 200, "{v}");

    // sealed: nothing but 503
    assert_eq!(s.root("PUT", "sys/seal", None).0, 204);
    let (st, _) = s.req("GET", "sys/generate-root/attempt", None, None);
    assert_eq!(st, 503);
    let (st, _) = s.req("PUT", "sys/generate-root/attempt", None, Some(json!({})));
    assert_eq!(st, 503);
}

#[test]
fn static_seal_refuses_rekey_and_generate_root() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, seal) = static_seal_config(dir.path());
    let mut s = with_config(dir.path(), &storage, &seal);
    s.init_static();
    for (m, p, body) in [
        ("GET", "sys/rekey/init", None),
        (
            "PUT",
            "sys/rekey/init",
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        ),
        ("PUT", "sys/generate-root/attempt", Some(json!({}))),
    ] {
        let (st, v) = s.req(m, p, None, body);
        assert_eq!(st, 400, "{m} {p}: {v}");
        assert!(error(&v).contains("static seal"), "{v}");
    }
}

#[test]
fn remount_moves_a_mount_and_its_data() {
    let s = dev();
    let (st, _) = s.root(
        "POST",
        "sys/mounts/src-kv",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(st, 204);
    s.root(
        "POST",
        "src-kv/data/app",
        Some(json!({"data": {"pw": "moved-with-the-mount"}})),
    );
    let uuid = s.root("GET", "sys/mounts", None).1["src-kv/"]["uuid"].clone();

    // refusals
    for (body, status, msg) in [
        (
            json!({"from": "sys", "to": "x"}),
            400,
            "cannot remount \"sys/\"",
        ),
        (
            json!({"from": "src-kv", "to": "cubbyhole"}),
            400,
            "cannot remount to destination",
        ),
        (
            json!({"from": "src-kv", "to": "secret"}),
            400,
            "path already in use at \"secret/\"",
        ),
        (
            json!({"from": "src-kv", "to": "src-kv/sub"}),
            400,
            "path already in use",
        ),
        (
            json!({"from": "nope", "to": "x"}),
            400,
            "no matching mount at \"nope/\"",
        ),
        (
            json!({"from": "src-kv", "to": "auth/x"}),
            400,
            "non-auth mount to auth mount",
        ),
        (json!({"from": "src-kv"}), 400, "both 'from' and 'to'"),
    ] {
        let (st, v) = s.root("POST", "sys/remount", Some(body.clone()));
        assert_eq!(st, status, "{body}: {v}");
        assert!(error(&v).contains(msg), "{body}: {v}");
    }
    // sudo is needed
    s.policy(
        "remounter",
        "path \"sys/remount\" { capabilities = [\"update\"] }",
    );
    let t = s.token_with(&["remounter"]);
    let (st, _) = s.req(
        "POST",
        "sys/remount",
        Some(t.as_str()),
        Some(json!({"from": "src-kv", "to": "dst-kv"})),
    );
    assert_eq!(st, 403);

    let (st, v) = s.root(
        "POST",
        "sys/remount",
        Some(json!({"from": "src-kv", "to": "dst-kv"})),
    );
    assert_eq!(st, 200, "{v}");
    let id = v["data"]["migration_id"].as_str().unwrap().to_string();
    let (st, v) = s.root("GET", &format!("sys/remount/status/{id}"), None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["migration_id"], id.as_str());
    assert_eq!(
        v["data"]["migration_info"],
        json!({"source_mount": "src-kv/", "target_mount": "dst-kv/", "status": "success"})
    );
    assert_eq!(s.root("GET", "sys/remount/status/unknown-id", None).0, 404);

    // the data moved with the mount (same storage, same UUID)
    let (st, v) = s.root("GET", "dst-kv/data/app", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["data"]["pw"], "moved-with-the-mount");
    assert_eq!(s.root("GET", "src-kv/data/app", None).0, 404);
    let mounts = s.root("GET", "sys/mounts", None).1;
    assert!(mounts.get("src-kv/").is_none());
    assert_eq!(mounts["dst-kv/"]["uuid"], uuid);
    // and it can move again, to where it was
    let (st, _) = s.root(
        "POST",
        "sys/remount",
        Some(json!({"from": "dst-kv/", "to": "src-kv/"})),
    );
    assert_eq!(st, 200);
    assert_eq!(s.root("GET", "src-kv/data/app", None).0, 200);
}

#[test]
fn wrapping_an_empty_payload_and_auditing_seal_administration() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let s = dev();
    let (st, v) = s.root(
        "PUT",
        "sys/audit/file",
        Some(json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}})),
    );
    assert_eq!(st, 204, "{v}");

    // without a wrap TTL Vault refuses; with one, even an empty body is wrapped
    let (st, v) = s.root("POST", "sys/wrapping/wrap", None);
    assert_eq!(st, 400);
    assert_eq!(error(&v), "endpoint requires response wrapping to be used");
    let r = s
        .client
        .post(format!("{}/v1/sys/wrapping/wrap", s.addr))
        .header("X-Vault-Token", &s.token)
        .header("X-Vault-Wrap-TTL", "60")
        .send()
        .unwrap();
    let (st, v) = decode(r);
    assert_eq!(st, 200, "{v}");
    let wt = v["wrap_info"]["token"].as_str().unwrap().to_string();
    let (st, v) = s.req("POST", "sys/wrapping/unwrap", Some(wt.as_str()), None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"], json!({}));

    // the unauthenticated seal administration goes through the audited pipeline
    let (st, _) = s.req("GET", "sys/generate-root/attempt", None, None);
    assert_eq!(st, 200);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("sys/generate-root/attempt"), "not audited");
}
