//! Rendering of the kv engine's typed results in Vault's shapes.

use super::*;
use coffer_engines::kv::domain::Encoding;
use serde_json::json;

#[test]
fn go_durations() {
    assert_eq!(go_duration(0), "0s");
    assert_eq!(go_duration(-1), "-1s");
    assert_eq!(go_duration(90), "1m30s");
    assert_eq!(go_duration(3600), "1h0m0s");
    assert_eq!(go_duration(12600), "3h30m0s");
}

fn view() -> VersionView {
    VersionView {
        name: "app".into(),
        number: 3,
        version_id: "5f0c6ad2-9b0e-4b36-8d5e-0a8f5f7b8e11".into(),
        created_time: "2026-01-01T00:00:00Z".into(),
        updated_time: Some("2026-01-01T00:00:00Z".into()),
        enabled: true,
        encoding: Encoding::Json,
        ..Default::default()
    }
}

fn typed(kind: &'static str, v: impl serde::Serialize) -> Response {
    Response {
        data: serde_json::to_value(v).ok().and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        }),
        kind: Some(kind.into()),
        ..Default::default()
    }
}

fn rendered(mut r: Response, op: Operation) -> (u16, Value) {
    let status = render(&mut r, op);
    assert!(r.kind.is_none());
    (
        status.as_u16(),
        r.data.map(Value::Object).unwrap_or(Value::Null),
    )
}

#[test]
fn versions() {
    // a write: the metadata block
    let (st, body) = rendered(typed(KIND_VERSION, view()), Operation::Update);
    assert_eq!(st, 200);
    assert_eq!(
        body,
        json!({"created_time": "2026-01-01T00:00:00Z", "custom_metadata": null,
               "deletion_time": "", "destroyed": false, "version": 3})
    );
    // a read of a JSON object
    let mut v = view();
    v.data = Some(json!({"password": "p"}).as_object().cloned().unwrap());
    v.custom_metadata.insert("owner".into(), "me".into());
    let (st, body) = rendered(typed(KIND_VERSION, v), Operation::Read);
    assert_eq!(st, 200);
    assert_eq!(body["data"], json!({"password": "p"}));
    assert_eq!(body["metadata"]["version"], 3);
    assert_eq!(body["metadata"]["custom_metadata"], json!({"owner": "me"}));
    // text and binary read as {"value": ...}
    let mut v = view();
    v.encoding = Encoding::Text;
    v.value = Some("plain".into());
    assert_eq!(
        rendered(typed(KIND_VERSION, v), Operation::Read).1["data"],
        json!({"value": "plain"})
    );
    // gone: 404 with the metadata (a patch: the block alone)
    let mut v = view();
    v.deleted = true;
    v.deletion_time = Some("2026-01-02T00:00:00Z".into());
    let (st, body) = rendered(typed(KIND_VERSION, v.clone()), Operation::Read);
    assert_eq!(st, 404);
    assert_eq!(body["data"], Value::Null);
    assert_eq!(body["metadata"]["deletion_time"], "2026-01-02T00:00:00Z");
    let (st, body) = rendered(typed(KIND_VERSION, v), Operation::Patch);
    assert_eq!(st, 404);
    assert_eq!(body["version"], 3);
}

#[test]
fn subkeys_secret_config_list_entry() {
    let s = SubkeysView {
        version: view(),
        subkeys: Some(json!({"a": null}).as_object().cloned().unwrap()),
    };
    let (st, body) = rendered(typed(KIND_SUBKEYS, s), Operation::Read);
    assert_eq!((st, &body["subkeys"]), (200, &json!({"a": null})));
    let gone = SubkeysView {
        version: view(),
        subkeys: None,
    };
    let (st, body) = rendered(typed(KIND_SUBKEYS, gone), Operation::Read);
    assert_eq!((st, &body["subkeys"]), (404, &Value::Null));

    let mut secret = SecretView {
        name: "app".into(),
        current_version: 3,
        delete_version_after_secs: 90,
        ..Default::default()
    };
    let mut v = view();
    v.destroyed = true;
    secret.versions.push(v);
    let (_, body) = rendered(typed(KIND_SECRET, secret), Operation::Read);
    assert_eq!(body["delete_version_after"], "1m30s");
    assert_eq!(body["custom_metadata"], Value::Null);
    assert_eq!(
        body["versions"]["3"],
        json!({"created_time": "2026-01-01T00:00:00Z", "deletion_time": "", "destroyed": true})
    );
    assert!(body.get("secret_id").is_none());

    let cfg = ConfigView {
        delete_version_after: -1,
        max_versions: 4,
        ..Default::default()
    };
    assert_eq!(
        rendered(typed(KIND_CONFIG, cfg), Operation::Read).1,
        json!({"cas_required": false, "delete_version_after": "-1s", "max_versions": 4})
    );
    let page = ListPage {
        keys: vec!["a".into(), "b/".into()],
        next_token: Some("x".into()),
        ..Default::default()
    };
    assert_eq!(
        rendered(typed(KIND_LIST, page), Operation::List).1,
        json!({"keys": ["a", "b/"]})
    );
    let entry = typed(KIND_ENTRY, json!({"k": "v", "ttl": "1h"}));
    assert_eq!(
        rendered(entry, Operation::Read).1,
        json!({"k": "v", "ttl": "1h"})
    );
    // a result that does not match its kind is an internal error, not a half-rendered body
    let mut bad = typed(KIND_SECRET, json!({"name": 5}));
    assert_eq!(
        render(&mut bad, Operation::Read),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(bad.data.is_none());
}
