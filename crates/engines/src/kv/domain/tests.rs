//! Unit tests of the kv domain rules, each on an in-memory barrier.

use super::super::model::{self, Payload, AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use super::super::store::PathLocks;
use super::super::{KvEngine, KvVersion};
use super::*;
use coffer_core::barrier::{Barrier, SecretKey, View};
use coffer_core::error::ErrorCode;
use coffer_core::request::{Operation, Response};
use coffer_core::router::{Engine, EngineRequest, MountEntry};
use coffer_storage::InmemBackend;
use serde_json::{json, Map, Value};
use std::sync::Arc;

async fn view() -> View {
    let barrier = Arc::new(Barrier::new(Arc::new(InmemBackend::new())));
    barrier
        .initialize(&SecretKey::generate().unwrap())
        .await
        .unwrap();
    View::new(barrier, "logical/test/")
}

fn json_payload(v: Value) -> Payload {
    Payload::from_json_object(v.as_object().unwrap()).unwrap()
}

fn put_text(s: &str) -> PutVersion {
    PutVersion::new(Payload::text(s))
}

fn labels(s: &SecretView) -> Vec<(u64, Vec<String>)> {
    s.versions
        .iter()
        .map(|v| {
            let mut l = v.staging_labels.clone();
            l.sort();
            (v.number, l)
        })
        .collect()
}

fn sel_label(l: &str) -> Selector {
    Selector {
        label: Some(l.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn new_versions_take_awscurrent_and_leave_awsprevious() {
    let (v, locks) = (view().await, PathLocks::default());
    let d = Domain::new(&v, &locks);
    // the first version of a labelled secret is created with AWSCURRENT (as the AWS dialect does)
    let mut first = put_text("one");
    first.staging_labels = Some(vec![AWSCURRENT.into()]);
    let v1 = d.put("s", first).await.unwrap();
    assert_eq!(v1.staging_labels, vec![AWSCURRENT]);
    d.put("s", put_text("two")).await.unwrap();
    let s = d.describe("s").await.unwrap();
    assert_eq!(
        labels(&s),
        vec![(1, vec![AWSPREVIOUS.into()]), (2, vec![AWSCURRENT.into()])]
    );
    // explicit labels: AWSCURRENT stays where it is
    let mut p = put_text("pending");
    p.staging_labels = Some(vec![AWSPENDING.into()]);
    d.put("s", p).await.unwrap();
    let s = d.describe("s").await.unwrap();
    assert_eq!(
        labels(&s),
        vec![
            (1, vec![AWSPREVIOUS.into()]),
            (2, vec![AWSCURRENT.into()]),
            (3, vec![AWSPENDING.into()])
        ]
    );
    // the highest-numbered version and the AWSCURRENT one differ now: a read that names no
    // version answers AWSCURRENT, never the staged one; the staged one by its number
    let latest = d
        .read("s", &Selector::latest(), IfGone::Fail)
        .await
        .unwrap();
    assert_eq!(latest.value.as_deref(), Some("two"));
    let staged = d
        .read("s", &Selector::number(3), IfGone::Fail)
        .await
        .unwrap();
    assert_eq!(staged.value.as_deref(), Some("pending"));
    let current = d
        .read("s", &sel_label(AWSCURRENT), IfGone::Fail)
        .await
        .unwrap();
    assert_eq!(current.value.as_deref(), Some("two"));
    // moving AWSCURRENT to 3: 2 becomes AWSPREVIOUS (taken off 1); AWSPENDING stays on 3
    let err = d
        .move_label("s", AWSCURRENT, Some(&Selector::number(3)), None)
        .await
        .unwrap_err();
    // a label held by another version moves only when the caller names that version
    assert_eq!(err.code, ErrorCode::InvalidRequest, "{err:?}");
    let s = d
        .move_label(
            "s",
            AWSCURRENT,
            Some(&Selector::number(3)),
            Some(&Selector::number(2)),
        )
        .await
        .unwrap();
    assert_eq!(
        labels(&s),
        vec![
            (1, vec![]),
            (2, vec![AWSPREVIOUS.into()]),
            (3, vec![AWSCURRENT.into(), AWSPENDING.into()])
        ]
    );
    // a label is on at most one version: moving a custom label takes it off the other
    d.move_label("s", "blue", Some(&Selector::number(1)), None)
        .await
        .unwrap();
    let s = d
        .move_label(
            "s",
            "blue",
            Some(&Selector::number(2)),
            Some(&Selector::number(1)),
        )
        .await
        .unwrap();
    assert_eq!(s.versions[0].staging_labels, Vec::<String>::new());
    assert!(s.versions[1].staging_labels.contains(&"blue".to_string()));
    // removing: only from the version that holds it; AWSCURRENT only by moving it
    let err = d
        .move_label("s", "blue", None, Some(&Selector::number(1)))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    d.move_label("s", "blue", None, Some(&Selector::number(2)))
        .await
        .unwrap();
    let err = d
        .move_label("s", AWSCURRENT, None, Some(&Selector::number(3)))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert_eq!(
        d.move_label("s", "", Some(&Selector::number(1)), None)
            .await
            .unwrap_err()
            .code,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        d.move_label("s", "x", Some(&Selector::number(9)), None)
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn pruning_keeps_labelled_versions() {
    let (v, locks) = (view().await, PathLocks::default());
    let d = Domain::new(&v, &locks);
    let mut first = put_text("v1");
    first.staging_labels = Some(vec!["keep".into()]);
    d.put("p", first).await.unwrap();
    d.set_attributes(
        "p",
        &Attributes {
            max_versions: Some(2),
            ..Default::default()
        },
        false,
    )
    .await
    .unwrap();
    for i in 2..=6 {
        d.put("p", put_text(&format!("v{i}"))).await.unwrap();
    }
    let s = d.describe("p").await.unwrap();
    // 1 holds "keep"; 5 holds AWSPREVIOUS; 6 AWSCURRENT; 2-4 are gone
    assert_eq!(
        s.versions.iter().map(|v| v.number).collect::<Vec<_>>(),
        vec![1, 5, 6]
    );
    assert_eq!(s.oldest_version, 5);
    let old = d
        .read("p", &Selector::number(1), IfGone::Fail)
        .await
        .unwrap();
    assert_eq!(old.value.as_deref(), Some("v1"));
    assert_eq!(
        d.read("p", &Selector::number(3), IfGone::Fail)
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn idempotent_puts() {
    let (v, locks) = (view().await, PathLocks::default());
    let d = Domain::new(&v, &locks);
    let id = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    let mut p = put_text("secret-1");
    p.version_id = Some(id.into());
    let a = d.put("i", p.clone()).await.unwrap();
    assert_eq!(a.version_id, id);
    assert_eq!(a.id_hex(), id.replace('-', ""));
    // the same token (here: the version id, in its other form) and payload: the same version
    let mut again = p.clone();
    again.version_id = Some(id.replace('-', "").to_uppercase());
    let b = d.put("i", again).await.unwrap();
    assert_eq!((b.number, b.version_id.as_str()), (1, id));
    assert_eq!(d.describe("i").await.unwrap().versions.len(), 1);
    // the same token with another payload: refused, nothing written
    let mut other = put_text("secret-2");
    other.version_id = Some(id.into());
    let err = d.put("i", other).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AlreadyExists);
    assert!(!err.message.contains("secret-2"));
    assert_eq!(d.describe("i").await.unwrap().current_version, 1);
    // an explicit token apart from the version id
    let mut t = put_text("secret-3");
    t.idempotency_token = Some("token-A".into());
    let c = d.put("i", t.clone()).await.unwrap();
    assert_eq!(d.put("i", t).await.unwrap().number, c.number);
    let mut t2 = put_text("secret-4");
    t2.idempotency_token = Some("token-A".into());
    assert_eq!(
        d.put("i", t2).await.unwrap_err().code,
        ErrorCode::AlreadyExists
    );
    // a version id already taken by another put
    let mut dup = put_text("secret-5");
    dup.version_id = Some(id.into());
    dup.idempotency_token = Some("token-B".into());
    assert_eq!(
        d.put("i", dup).await.unwrap_err().code,
        ErrorCode::AlreadyExists
    );
    // a version id that is no UUID
    let mut bad = put_text("x");
    bad.version_id = Some("not-a-uuid".into());
    assert_eq!(
        d.put("i", bad).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    // must_create
    let mut create = put_text("x");
    create.must_create = true;
    assert_eq!(
        d.put("i", create.clone()).await.unwrap_err().code,
        ErrorCode::AlreadyExists
    );
    assert_eq!(d.put("new", create).await.unwrap().number, 1);
}

#[tokio::test]
async fn reads_by_number_id_and_label() {
    let (v, locks) = (view().await, PathLocks::default());
    let d = Domain::new(&v, &locks);
    let mut first = PutVersion::new(json_payload(json!({"k": "a"})));
    first.staging_labels = Some(vec![AWSCURRENT.into()]);
    let a = d.put("r", first).await.unwrap();
    d.put("r", PutVersion::new(Payload::binary(vec![0xff, 0])))
        .await
        .unwrap();
    let by_hex = Selector {
        version_id: Some(a.id_hex()),
        ..Default::default()
    };
    let r = d.read("r", &by_hex, IfGone::Fail).await.unwrap();
    assert_eq!((r.number, r.encoding), (1, Encoding::Json));
    assert_eq!(r.data.unwrap()["k"], "a");
    let r = d
        .read("r", &sel_label(AWSPREVIOUS), IfGone::Fail)
        .await
        .unwrap();
    assert_eq!(r.number, 1);
    let r = d
        .read("r", &Selector::latest(), IfGone::Fail)
        .await
        .unwrap();
    assert_eq!(
        (r.encoding, r.value.as_deref()),
        (Encoding::Binary, Some("/wA="))
    );
    // criteria that disagree
    let mixed = Selector {
        number: 2,
        version_id: Some(a.version_id.clone()),
        label: None,
    };
    assert_eq!(
        d.read("r", &mixed, IfGone::Fail).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        d.read("r", &sel_label("nope"), IfGone::Fail)
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
    // a deleted version: NotFound, or described without payload
    d.set_versions_deleted("r", &[Selector::number(1)], true)
        .await
        .unwrap();
    let err = d
        .read("r", &Selector::number(1), IfGone::Fail)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    let gone = d
        .read("r", &Selector::number(1), IfGone::Describe)
        .await
        .unwrap();
    assert!(gone.deleted && !gone.has_payload());
    // the access day is recorded
    let s = d.describe("r").await.unwrap();
    let day = s.last_accessed_date.unwrap();
    assert!(day.ends_with("T00:00:00Z"), "{day}");
}

#[tokio::test]
async fn unusable_versions_are_never_handed_out() {
    let (v, locks) = (view().await, PathLocks::default());
    let d = Domain::new(&v, &locks);
    d.put("u", PutVersion::new(json_payload(json!({"pw": "hunter2"}))))
        .await
        .unwrap();
    let now = model::now().unix_timestamp();
    let cases: [(Attributes, &str); 3] = [
        (
            Attributes {
                enabled: Some(false),
                ..Default::default()
            },
            "is disabled",
        ),
        (
            Attributes {
                not_before: Some(Some(now + 3600)),
                ..Default::default()
            },
            "is not valid before",
        ),
        (
            Attributes {
                expires: Some(Some(now - 1)),
                ..Default::default()
            },
            "expired at",
        ),
    ];
    let engine = KvEngine::new(KvVersion::V2);
    let mount = mount_entry();
    for (attrs, why) in cases {
        d.set_attributes("u", &attrs, false).await.unwrap();
        let err = d
            .read("u", &Selector::latest(), IfGone::Fail)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Disabled, "{why}");
        assert!(err.message.contains(why), "{}", err.message);
        assert!(!err.message.contains("hunter2"));
        // through Vault's kv v2 paths too: data/ reads, subkeys/ and patches
        for (op, path, body) in [
            (Operation::Read, "data/u", json!({})),
            (Operation::Read, "subkeys/u", json!({})),
            (Operation::Patch, "data/u", json!({"data": {"x": 1}})),
        ] {
            let err = call(&engine, &mount, &v, op, path, body).await.unwrap_err();
            assert_eq!(err.code, ErrorCode::Disabled, "{op:?} {path} {why}");
        }
        // back to usable
        let reset = Attributes {
            enabled: Some(true),
            not_before: Some(None),
            expires: Some(None),
            ..Default::default()
        };
        d.set_attributes("u", &reset, false).await.unwrap();
        d.read("u", &Selector::latest(), IfGone::Fail)
            .await
            .unwrap();
    }
    // the metadata (describe) stays readable
    let s = d.describe("u").await.unwrap();
    assert!(s.versions[0].enabled);
}

#[tokio::test]
async fn deleted_secrets_until_restored_or_purged() {
    let (v, locks) = (view().await, PathLocks::default());
    let d = Domain::new(&v, &locks);
    d.put("a/x", put_text("1")).await.unwrap();
    d.put("a/y", put_text("2")).await.unwrap();
    let id = d.describe("a/x").await.unwrap().secret_id;
    let del = DeleteSecret {
        recovery_window_secs: Some(3600),
        recovery_id: Some("rid".into()),
    };
    let s = d.delete_secret("a/x", &del).await.unwrap();
    let deletion = s.deletion.unwrap();
    assert!(deletion.scheduled_purge_time.is_some());
    assert_eq!(deletion.recovery_id.as_deref(), Some("rid"));
    // neither read nor written; still described
    for err in [
        d.read("a/x", &Selector::latest(), IfGone::Fail)
            .await
            .unwrap_err(),
        d.put("a/x", put_text("3")).await.unwrap_err(),
        d.set_attributes("a/x", &Attributes::default(), false)
            .await
            .unwrap_err(),
        d.move_label("a/x", "l", Some(&Selector::number(1)), None)
            .await
            .unwrap_err(),
        d.delete_secret("a/x", &del).await.unwrap_err(),
    ] {
        assert_eq!(err.code, ErrorCode::InvalidState, "{err:?}");
    }
    assert!(d.describe("a/x").await.unwrap().deletion.is_some());
    // listed among the deleted only
    let live = d
        .list("a", &ListOptions::default(), |_| true)
        .await
        .unwrap();
    assert_eq!(live.keys, vec!["y"]);
    let deleted = ListOptions {
        deleted: true,
        ..Default::default()
    };
    assert_eq!(
        d.list("a/", &deleted, |_| true).await.unwrap().keys,
        vec!["x"]
    );
    // restore
    d.restore("a/x").await.unwrap();
    assert_eq!(
        d.restore("a/x").await.unwrap_err().code,
        ErrorCode::InvalidState
    );
    d.read("a/x", &Selector::latest(), IfGone::Fail)
        .await
        .unwrap();
    assert!(d
        .list("a/", &deleted, |_| true)
        .await
        .unwrap()
        .keys
        .is_empty());
    // purge: only a deleted secret, and then everything is gone
    assert_eq!(
        d.purge("a/x").await.unwrap_err().code,
        ErrorCode::InvalidState
    );
    d.delete_secret("a/x", &DeleteSecret::default())
        .await
        .unwrap();
    d.purge("a/x").await.unwrap();
    assert_eq!(
        d.describe("a/x").await.unwrap_err().code,
        ErrorCode::NotFound
    );
    assert!(v
        .list("versions/a/")
        .await
        .unwrap()
        .iter()
        .all(|k| k != "x/"));
    assert!(v.list("deleted/").await.unwrap().is_empty());
    // created again: a new secret id
    d.put("a/x", put_text("again")).await.unwrap();
    assert_ne!(d.describe("a/x").await.unwrap().secret_id, id);
}

#[tokio::test]
async fn a_passed_purge_time_means_gone() {
    let (v, locks) = (view().await, PathLocks::default());
    let d = Domain::new(&v, &locks);
    d.put("e", put_text("1")).await.unwrap();
    let id = d.describe("e").await.unwrap().secret_id;
    let del = DeleteSecret {
        recovery_window_secs: Some(0),
        recovery_id: None,
    };
    d.delete_secret("e", &del).await.unwrap();
    assert_eq!(d.describe("e").await.unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(
        d.read("e", &Selector::latest(), IfGone::Fail)
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
    // a put starts over (lazy purge in the same commit)
    let n = d.put("e", put_text("2")).await.unwrap();
    assert_eq!(n.number, 1);
    assert_ne!(n.secret_id, id);
    assert!(v.list("deleted/").await.unwrap().is_empty());
}

#[tokio::test]
async fn list_pages_and_recursion() {
    let (v, locks) = (view().await, PathLocks::default());
    let d = Domain::new(&v, &locks);
    for n in ["a", "b/c", "b/d/e", "f", "g"] {
        d.put(n, put_text("x")).await.unwrap();
    }
    let one = d.list("", &ListOptions::default(), |_| true).await.unwrap();
    assert_eq!(one.keys, vec!["a", "b/", "f", "g"]);
    assert!(one.next_token.is_none());
    let mut opts = ListOptions {
        recursive: true,
        page_size: 2,
        ..Default::default()
    };
    let mut all = Vec::new();
    loop {
        let page = d.list("", &opts, |_| true).await.unwrap();
        assert!(page.keys.len() <= 2);
        all.extend(page.keys);
        match page.next_token {
            Some(t) => opts.next_token = Some(t),
            None => break,
        }
    }
    assert_eq!(all, vec!["a", "b/c", "b/d/e", "f", "g"]);
    assert_eq!(
        d.list(
            "b",
            &ListOptions {
                recursive: true,
                ..Default::default()
            },
            |_| true
        )
        .await
        .unwrap()
        .keys,
        vec!["c", "d/e"]
    );
    let bad = ListOptions {
        next_token: Some("%%%".into()),
        ..Default::default()
    };
    assert_eq!(
        d.list("", &bad, |_| true).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    let big = ListOptions {
        page_size: 5000,
        ..Default::default()
    };
    assert_eq!(
        d.list("", &big, |_| true).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
}

#[tokio::test]
async fn attributes_and_settings() {
    let (v, locks) = (view().await, PathLocks::default());
    let d = Domain::new(&v, &locks);
    let mut p = put_text("x");
    p.attributes.description = Some("db password".into());
    p.attributes.content_type = Some(Some("text/x-password".into()));
    p.attributes.version_tags = Some([("v".to_string(), "1".to_string())].into());
    d.put("t", p).await.unwrap();
    let s = d
        .set_attributes(
            "t",
            &Attributes {
                tags: Some([("team".to_string(), "a".to_string())].into()),
                kms_key_id: Some("alias/k".into()),
                retention_days: Some(7),
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap();
    assert_eq!(s.description, "db password");
    assert_eq!(s.tags["team"], "a");
    assert_eq!(s.kms_key_id.as_deref(), Some("alias/k"));
    assert_eq!(s.retention_days, Some(7));
    let v1 = &s.versions[0];
    assert_eq!(v1.content_type.as_deref(), Some("text/x-password"));
    assert_eq!(v1.encoding, Encoding::Text);
    assert_eq!(v1.tags["v"], "1");
    assert_eq!(
        d.set_attributes("missing", &Attributes::default(), false)
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
}

fn mount_entry() -> MountEntry {
    MountEntry {
        path: "secret/".into(),
        kind: "kv-v2".into(),
        description: String::new(),
        uuid: "00000000-0000-4000-8000-000000000000".into(),
        accessor: "kv_test".into(),
        config: Default::default(),
        options: Map::new(),
        local: false,
        seal_wrap: false,
        plugin_version: String::new(),
    }
}

async fn call(
    engine: &KvEngine,
    mount: &MountEntry,
    view: &View,
    op: Operation,
    path: &str,
    data: Value,
) -> coffer_core::error::Result<Option<Response>> {
    let data = data.as_object().cloned().unwrap_or_default();
    let req = EngineRequest {
        operation: op,
        path,
        data: &data,
        storage: view,
        mount,
        token: None,
        client_token: None,
        request_id: "test",
        remote_addr: None,
        acl: None,
    };
    engine.handle(&req).await
}

#[tokio::test]
async fn domain_paths_answer_neutral_typed_results() {
    let v = view().await;
    let engine = KvEngine::new(KvVersion::V2);
    let mount = mount_entry();
    use Operation::*;
    let secret = "TOPSECRET-9d1";
    let resp = call(
        &engine,
        &mount,
        &v,
        Update,
        "domain/versions/app/db",
        json!({"text": secret, "staging_labels": ["AWSCURRENT", "blue"], "description": "d",
               "version_id": "7c9e6679742540de944be07fc1f90ae7"}),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.kind.as_deref(), Some(KIND_VERSION));
    assert!(!resp.accepted);
    let put: VersionView = serde_json::from_value(Value::Object(resp.data.unwrap())).unwrap();
    assert_eq!(put.version_id, "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    assert!(!put.has_payload());

    let resp = call(
        &engine,
        &mount,
        &v,
        Read,
        "domain/versions/app/db",
        json!({"label": "blue"}),
    )
    .await
    .unwrap()
    .unwrap();
    let read: VersionView = serde_json::from_value(Value::Object(resp.data.unwrap())).unwrap();
    assert_eq!(read.value.as_deref(), Some(secret));
    assert!(!format!("{read:?}").contains(secret));

    let resp = call(
        &engine,
        &mount,
        &v,
        Read,
        "domain/secrets/app/db",
        json!({}),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.kind.as_deref(), Some(KIND_SECRET));
    let s: SecretView = serde_json::from_value(Value::Object(resp.data.unwrap())).unwrap();
    assert_eq!(s.description, "d");

    let resp = call(
        &engine,
        &mount,
        &v,
        List,
        "domain/secrets/",
        json!({"recursive": "true"}),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.kind.as_deref(), Some(KIND_LIST));
    let page: ListPage = serde_json::from_value(Value::Object(resp.data.unwrap())).unwrap();
    assert_eq!(page.keys, vec!["app/db"]);

    call(
        &engine,
        &mount,
        &v,
        Update,
        "domain/labels/app/db",
        json!({"label": "green", "to_version": 1}),
    )
    .await
    .unwrap();
    call(
        &engine,
        &mount,
        &v,
        Delete,
        "domain/secrets/app/db",
        json!({"recovery_window_secs": "7d"}),
    )
    .await
    .unwrap();
    // Vault's paths see the deletion too
    let err = call(&engine, &mount, &v, Read, "data/app/db", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidState);
    call(
        &engine,
        &mount,
        &v,
        Update,
        "domain/restore/app/db",
        json!({}),
    )
    .await
    .unwrap();
    // a text payload reads through Vault's data/ as {"value": ...} (rendered by the dialect)
    let resp = call(&engine, &mount, &v, Read, "data/app/db", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.kind.as_deref(), Some(KIND_VERSION));
    assert_eq!(resp.data.unwrap()["value"], secret);

    // bad input: clear errors that never echo a value
    for (op, path, body) in [
        (Update, "domain/versions/x", json!({})),
        (
            Update,
            "domain/versions/x",
            json!({"text": "a", "data": {}}),
        ),
        (Update, "domain/versions/x", json!({"binary": secret})),
        (
            Update,
            "domain/versions/x",
            json!({"text": "a", "version_id": secret}),
        ),
        (
            Update,
            "domain/versions/x",
            json!({"text": "a", "staging_labels": secret}),
        ),
        (Update, "domain/secrets/app/db", json!({"tags": {"k": 1}})),
        (Read, "domain/versions/app/db", json!({"if_gone": secret})),
        (Update, "domain/labels/app/db", json!({})),
    ] {
        let err = call(&engine, &mount, &v, op, path, body).await.unwrap_err();
        assert_eq!(
            err.code,
            ErrorCode::InvalidRequest,
            "{op:?} {path}: {err:?}"
        );
        assert!(!err.message.contains(secret));
    }
    for (op, path) in [(Read, "domain/nothing/x"), (Read, "domain/secrets/")] {
        let err = call(&engine, &mount, &v, op, path, json!({}))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound, "{op:?} {path}");
    }
    assert_eq!(
        call(&engine, &mount, &v, Patch, "domain/versions/x", json!({}))
            .await
            .unwrap_err()
            .code,
        ErrorCode::UnsupportedOperation
    );
}

/// A secret written without labels (only through Vault) stays unlabelled: Vault's version
/// pruning is unchanged, and reading it by AWSCURRENT gives its latest version.
#[tokio::test]
async fn unlabelled_secrets_stay_unlabelled_and_awscurrent_is_the_latest() {
    let (v, locks) = (view().await, PathLocks::default());
    let d = Domain::new(&v, &locks);
    let mut settings = put_text("one");
    settings.attributes.max_versions = Some(1);
    d.put("u", settings).await.unwrap();
    d.put("u", put_text("two")).await.unwrap();
    let s = d.describe("u").await.unwrap();
    // one version kept; no label is stored, and the latest is shown holding AWSCURRENT
    assert_eq!(labels(&s), vec![(2, vec![AWSCURRENT.into()])]);
    let stored = d.store.meta("u").await.unwrap().unwrap();
    assert!(stored
        .versions
        .values()
        .all(|v| v.staging_labels.is_empty()));
    let r = d
        .read("u", &sel_label(AWSCURRENT), IfGone::Fail)
        .await
        .unwrap();
    assert_eq!((r.number, r.value.as_deref()), (2, Some("two")));
    // any other label is not there
    assert_eq!(
        d.read("u", &sel_label(AWSPREVIOUS), IfGone::Fail)
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
    // once a label is used, unlabelled puts move AWSCURRENT as AWS does
    d.move_label("u", AWSCURRENT, Some(&Selector::number(2)), None)
        .await
        .unwrap();
    d.put("u", put_text("three")).await.unwrap();
    let s = d.describe("u").await.unwrap();
    assert_eq!(
        labels(&s),
        vec![(2, vec![AWSPREVIOUS.into()]), (3, vec![AWSCURRENT.into()])]
    );
}

#[tokio::test]
async fn a_backup_restores_every_version_under_its_name_only() {
    let (v, locks) = (view().await, PathLocks::default());
    let d = Domain::new(&v, &locks);
    d.put("b", put_text("MARKER-one")).await.unwrap();
    let two = d.put("b", put_text("MARKER-two")).await.unwrap();
    let blob = d.backup("b").await.unwrap();
    assert_eq!(backup_name(&blob).unwrap(), "b");
    assert!(
        !blob.windows(6).any(|w| w == b"MARKER"),
        "payloads are sealed in the blob"
    );
    // not while the name exists, in any state
    let e = d.restore_backup("b", &blob).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::AlreadyExists);
    d.delete_secret("b", &DeleteSecret::default())
        .await
        .unwrap();
    let e = d.restore_backup("b", &blob).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::AlreadyExists);
    // never under another name, even with the header rewritten
    assert_eq!(
        d.restore_backup("c", &blob).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    let mut renamed = blob.clone();
    renamed[7] = b'c';
    assert_eq!(
        d.restore_backup("c", &renamed).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    // a flipped bit is refused
    let mut bad = blob.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    d.purge("b").await.unwrap();
    assert_eq!(
        d.restore_backup("b", &bad).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    assert!(
        !d.exists("b").await.unwrap(),
        "nothing written on a refusal"
    );
    // after the purge: back with both versions, the same ids and payloads
    let s = d.restore_backup("b", &blob).await.unwrap();
    assert_eq!(s.versions.len(), 2);
    assert!(s.deletion.is_none());
    let read = d
        .read_as("b", &Selector::default(), IfGone::Fail, true)
        .await
        .unwrap();
    assert_eq!(read.version_id, two.version_id);
    assert_eq!(read.value.as_deref(), Some("MARKER-two"));
    let first = d
        .read_as("b", &Selector::number(1), IfGone::Fail, true)
        .await
        .unwrap();
    assert_eq!(first.value.as_deref(), Some("MARKER-one"));
    // another Coffer (another keyring) cannot open it
    let (v2, locks2) = (view().await, PathLocks::default());
    let other = Domain::new(&v2, &locks2);
    assert_eq!(
        other.restore_backup("b", &blob).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    assert!(backup_name(b"CKVB\x01\x00").is_err());
    assert!(backup_name(b"nope").is_err());
}

#[tokio::test]
async fn a_rotation_run_is_durable_and_moves_awscurrent_only_when_finished() {
    use super::rotation::{RotationConfig, RunOutcome, MAX_ATTEMPTS};
    let (v, locks) = (view().await, PathLocks::default());
    let d = Domain::new(&v, &locks);
    d.put("r", put_text("old")).await.unwrap();
    let cfg = |immediately: bool| RotationConfig {
        rotator_id: Some("coffer:password".into()),
        rules: Some(model::RotationRules {
            schedule_expression: Some("rate(4 hours)".into()),
            ..Default::default()
        }),
        rotate_immediately: immediately,
        version_id: None,
        requested_by: "tester".into(),
    };
    // a bad rotator or schedule changes nothing
    let mut bad = cfg(true);
    bad.rotator_id = Some("ftp://x".into());
    assert_eq!(
        d.configure_rotation("r", &bad).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    let mut bad = cfg(true);
    bad.rules = Some(model::RotationRules {
        schedule_expression: Some("rate(1 hours)".into()),
        ..Default::default()
    });
    assert_eq!(
        d.configure_rotation("r", &bad).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    assert!(d.describe("r").await.unwrap().rotation.is_none());
    // start now: the run is due at once, and a second start is refused while it runs
    let s = d.configure_rotation("r", &cfg(true)).await.unwrap();
    let run = s.rotation.unwrap().run.unwrap();
    assert_eq!(run.requested_by, "tester");
    assert_eq!(
        d.configure_rotation("r", &cfg(true))
            .await
            .unwrap_err()
            .code,
        ErrorCode::InvalidState
    );
    assert_eq!(
        d.due_rotations(Some(model::now())).await.unwrap(),
        vec!["r"]
    );
    // the scheduler picks the same run up (as after a restart)
    assert_eq!(d.start_run("r", "schedule").await.unwrap(), run);
    // finishing before AWSCURRENT moved is a failure; AWSCURRENT stays
    let s = d
        .record_run("r", &run.version_id, &RunOutcome::Finished)
        .await
        .unwrap();
    let r = s.rotation.unwrap();
    assert_eq!(r.run.as_ref().unwrap().attempts, 1);
    assert!(r.last_error.unwrap().contains("AWSCURRENT"));
    let current = d
        .read_as("r", &sel_label(AWSCURRENT), IfGone::Fail, true)
        .await
        .unwrap();
    assert_eq!(current.value.as_deref(), Some("old"));
    // a retry is not due before its backoff
    assert!(d
        .due_rotations(Some(model::now()))
        .await
        .unwrap()
        .is_empty());
    // the rotator's four steps: a pending version under the run's id, then AWSCURRENT moves
    // the current version expires in an hour: the new one will too, an hour after its creation
    let expires = model::now().unix_timestamp() + 3600;
    d.set_attributes(
        "r",
        &Attributes {
            expires: Some(Some(expires)),
            ..Default::default()
        },
        false,
    )
    .await
    .unwrap();
    let mut pending = put_text("new");
    pending.version_id = Some(run.version_id.clone());
    pending.staging_labels = Some(vec![AWSPENDING.into()]);
    d.put("r", pending).await.unwrap();
    for step in ["createSecret", "setSecret", "testSecret"] {
        d.record_run("r", &run.version_id, &RunOutcome::Step(step.into()))
            .await
            .unwrap();
    }
    let to = Selector {
        version_id: Some(run.version_id.clone()),
        ..Default::default()
    };
    d.move_label("r", AWSCURRENT, Some(&to), Some(&Selector::number(1)))
        .await
        .unwrap();
    let s = d
        .record_run("r", &run.version_id, &RunOutcome::Finished)
        .await
        .unwrap();
    let r = s.rotation.clone().unwrap();
    assert!(r.run.is_none() && r.last_error.is_none() && r.last_rotated_time.is_some());
    assert!(
        r.next_rotation_time.is_some(),
        "the next rotation is scheduled"
    );
    assert_eq!(
        labels(&s),
        vec![
            (1, vec![AWSPREVIOUS.to_string()]),
            (2, vec![AWSCURRENT.to_string()])
        ]
    );
    // a finished run cannot be recorded again; cancelling turns it off and drops the schedule
    assert_eq!(
        d.record_run("r", &run.version_id, &RunOutcome::Step("x".into()))
            .await
            .unwrap_err()
            .code,
        ErrorCode::InvalidState
    );
    let s = d.cancel_rotation("r").await.unwrap();
    let r = s.rotation.unwrap();
    assert!(!r.enabled && r.next_rotation_time.is_none());
    assert!(d
        .due_rotations(Some(model::now() + time::Duration::days(3650)))
        .await
        .unwrap()
        .is_empty());
    // failures give up after MAX_ATTEMPTS, leaving AWSCURRENT alone
    let s = d.configure_rotation("r", &cfg(true)).await.unwrap();
    let id = s.rotation.unwrap().run.unwrap().version_id;
    for _ in 0..MAX_ATTEMPTS {
        d.record_run("r", &id, &RunOutcome::Failed("testSecret: refused".into()))
            .await
            .unwrap();
    }
    let r = d.describe("r").await.unwrap().rotation.unwrap();
    assert!(r.run.is_none());
    assert_eq!(r.last_error.as_deref(), Some("testSecret: refused"));
    assert_eq!(
        d.due_rotations(None).await.unwrap(),
        vec!["r"],
        "a failed rotation is listed"
    );
    assert!(r.next_rotation_time.is_some());
    // the index goes with the secret
    d.delete_secret("r", &DeleteSecret::default())
        .await
        .unwrap();
    d.purge("r").await.unwrap();
    assert!(v.list("rotation/").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_pending_version_on_a_vault_only_secret_leaves_the_current_one_current() {
    let (v, locks) = (view().await, PathLocks::default());
    let d = Domain::new(&v, &locks);
    d.put("vo", put_text("one")).await.unwrap();
    d.put("vo", put_text("two")).await.unwrap();
    let mut pending = put_text("three");
    pending.staging_labels = Some(vec![AWSPENDING.into()]);
    d.put("vo", pending).await.unwrap();
    let s = d.describe("vo").await.unwrap();
    assert_eq!(
        labels(&s),
        vec![
            (1, vec![]),
            (2, vec![AWSCURRENT.to_string()]),
            (3, vec![AWSPENDING.to_string()])
        ]
    );
    let current = d
        .read_as("vo", &sel_label(AWSCURRENT), IfGone::Fail, true)
        .await
        .unwrap();
    assert_eq!(current.value.as_deref(), Some("two"));
}
