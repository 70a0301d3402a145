use crate::common::*;
use serde_json::json;

/// Secret values and tokens never reach the server's own output, even at trace level, nor any
/// error body.
#[test]
fn no_secret_in_logs_or_error_bodies() {
    let s = dev_with(&["-log-level=trace"]);
    let marker = "LOGLEAK-MARKER-91b2";
    let (st, _) = s.root(
        "POST",
        "secret/data/leak",
        Some(json!({"data": {"pw": marker}})),
    );
    assert_eq!(st, 200);
    let (_, v) = s.root("GET", "secret/data/leak", None);
    assert_eq!(v["data"]["data"]["pw"], marker);
    let (_, v) = s.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["default"]})),
    );
    let issued = v["auth"]["client_token"].as_str().unwrap().to_string();

    // error bodies: cas mismatch, malformed JSON, wrong types, denied, sealed paths
    let mut bodies = Vec::new();
    bodies.push(
        s.root(
            "POST",
            "secret/data/leak",
            Some(json!({"options": {"cas": 99}, "data": {"pw": marker}})),
        )
        .1,
    );
    bodies.push(
        s.raw(
            "POST",
            "secret/data/leak",
            Some(ROOT),
            format!("{{\"data\":{{\"pw\":\"{marker}\"").into_bytes(),
            "application/json",
        )
        .1,
    );
    bodies.push(
        s.root(
            "POST",
            "secret/metadata/leak",
            Some(json!({"max_versions": marker})),
        )
        .1,
    );
    bodies.push(
        s.root("POST", "secret/data/leak", Some(json!({"data": marker})))
            .1,
    );
    bodies.push(
        s.req(
            "POST",
            "secret/data/leak",
            Some(&issued),
            Some(json!({"data": {"pw": marker}})),
        )
        .1,
    );
    bodies.push(s.req("GET", "secret/data/leak", Some(marker), None).1);
    bodies.push(
        s.root("POST", "auth/token/lookup", Some(json!({"token": marker})))
            .1,
    );
    for b in &bodies {
        let text = b.to_string();
        assert!(b["errors"].is_array(), "expected an error body: {text}");
        assert!(
            !text.contains(marker),
            "secret echoed in an error body: {text}"
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let out = s.output();
    assert!(out.contains("listening"), "server output captured: {out}");
    assert!(
        !out.contains(marker),
        "secret value in the server's log output"
    );
    assert!(
        !out.contains(&issued),
        "issued token in the server's log output"
    );
}
