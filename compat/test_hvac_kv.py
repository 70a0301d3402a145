"""hvac 2.4 against Coffer's kv engine: every kv v2 call hvac offers, and kv v1."""

import time

import pytest
from hvac import exceptions

from conftest import uid


def kv2(client):
    return client.secrets.kv.v2


def read(client, mount, path, **kw):
    kw.setdefault("raise_on_deleted_version", True)
    return kv2(client).read_secret_version(path=path, mount_point=mount, **kw)


# --- the seed snippet ---------------------------------------------------------------------------------------


def test_seed_snippet(client):
    client.secrets.kv.v2.create_or_update_secret(
        path='apps/payment',
        secret={'api_key': 'sk_live_123', 'timeout': 30, 'nested': {'retry': True}},
    )
    # verbatim: hvac 2.4 warns that raise_on_deleted_version will change its default; the call must still work
    with pytest.warns(DeprecationWarning, match="raise_on_deleted_version"):
        got = client.secrets.kv.v2.read_secret_version(path='apps/payment')['data']['data']
    assert got == {'api_key': 'sk_live_123', 'timeout': 30, 'nested': {'retry': True}}
    # and with the parameter given explicitly (no warning)
    again = client.secrets.kv.v2.read_secret_version(path='apps/payment', raise_on_deleted_version=True)
    assert again['data']['data'] == got


# --- writes, versions, cas ----------------------------------------------------------------------------------


def test_create_returns_version_metadata(client, kv2_mount):
    p = uid("s")
    r1 = kv2(client).create_or_update_secret(path=p, secret={"a": "1"}, mount_point=kv2_mount)
    meta = r1["data"]
    assert meta["version"] == 1
    assert meta["deletion_time"] == ""
    assert meta["destroyed"] is False
    assert meta["created_time"]
    r2 = kv2(client).create_or_update_secret(path=p, secret={"a": "2"}, mount_point=kv2_mount)
    assert r2["data"]["version"] == 2

    latest = read(client, kv2_mount, p)["data"]
    assert latest["data"] == {"a": "2"}
    assert latest["metadata"]["version"] == 2
    assert read(client, kv2_mount, p, version=1)["data"]["data"] == {"a": "1"}
    assert read(client, kv2_mount, p, version=2)["data"]["data"] == {"a": "2"}


def test_nested_path_and_unicode_values(client, kv2_mount):
    p = f"{uid('team')}/svc/db"
    value = {"password": "pä$$ wörd/+?&=", "list": [1, "two", None], "n": 1.5}
    kv2(client).create_or_update_secret(path=p, secret=value, mount_point=kv2_mount)
    assert read(client, kv2_mount, p)["data"]["data"] == value


def test_read_missing_version_is_invalid_path(client, kv2_mount):
    p = uid("s")
    kv2(client).create_or_update_secret(path=p, secret={"a": 1}, mount_point=kv2_mount)
    with pytest.raises(exceptions.InvalidPath):
        read(client, kv2_mount, p, version=7)


def test_cas(client, kv2_mount):
    p = uid("s")
    kv2(client).create_or_update_secret(path=p, secret={"v": 1}, cas=0, mount_point=kv2_mount)
    # cas=0 means "only if it does not exist yet"
    with pytest.raises(exceptions.InvalidRequest) as e:
        kv2(client).create_or_update_secret(path=p, secret={"v": "x"}, cas=0, mount_point=kv2_mount)
    assert e.value.errors and isinstance(e.value.errors, list)
    # wrong version
    with pytest.raises(exceptions.InvalidRequest):
        kv2(client).create_or_update_secret(path=p, secret={"v": "x"}, cas=5, mount_point=kv2_mount)
    # right version
    r = kv2(client).create_or_update_secret(path=p, secret={"v": 2}, cas=1, mount_point=kv2_mount)
    assert r["data"]["version"] == 2
    # failed cas writes changed nothing
    assert read(client, kv2_mount, p)["data"]["data"] == {"v": 2}


HVAC_PATCH_WARNING = "ignore:The raise_on_deleted_version parameter:DeprecationWarning"


@pytest.mark.filterwarnings(HVAC_PATCH_WARNING)  # hvac's patch() reads without passing the parameter
def test_patch(client, kv2_mount):
    p = uid("s")
    kv2(client).create_or_update_secret(path=p, secret={"a": 1, "b": 2}, mount_point=kv2_mount)
    r = kv2(client).patch(path=p, secret={"b": 3, "c": 4}, mount_point=kv2_mount)
    assert r["data"]["version"] == 2
    assert read(client, kv2_mount, p)["data"]["data"] == {"a": 1, "b": 3, "c": 4}


@pytest.mark.filterwarnings(HVAC_PATCH_WARNING)
def test_patch_missing_secret(client, kv2_mount):
    with pytest.raises(exceptions.InvalidPath):
        kv2(client).patch(path=uid("nope"), secret={"a": 1}, mount_point=kv2_mount)


def test_missing_secret_is_invalid_path(client, kv2_mount):
    with pytest.raises(exceptions.InvalidPath) as e:
        read(client, kv2_mount, uid("missing"))
    # Vault answers `{"errors":[]}` here; hvac hands the list over as is
    assert isinstance(e.value.errors, list)
    with pytest.raises(exceptions.InvalidPath):
        kv2(client).read_secret_metadata(path=uid("missing"), mount_point=kv2_mount)


# --- metadata -----------------------------------------------------------------------------------------------


def test_read_secret_metadata(client, kv2_mount):
    p = uid("s")
    for i in range(3):
        kv2(client).create_or_update_secret(path=p, secret={"i": i}, mount_point=kv2_mount)
    md = kv2(client).read_secret_metadata(path=p, mount_point=kv2_mount)["data"]
    assert md["current_version"] == 3
    assert md["oldest_version"] in (0, 1)
    assert md["cas_required"] is False
    assert md["max_versions"] == 0
    assert md["delete_version_after"] == "0s"
    assert md["created_time"] and md["updated_time"]
    assert sorted(md["versions"]) == ["1", "2", "3"]
    for v in md["versions"].values():
        assert v["deletion_time"] == ""
        assert v["destroyed"] is False
        assert v["created_time"]


def test_update_metadata(client, kv2_mount):
    p = uid("s")
    kv2(client).create_or_update_secret(path=p, secret={"a": 1}, mount_point=kv2_mount)
    r = kv2(client).update_metadata(
        path=p,
        max_versions=5,
        cas_required=True,
        delete_version_after="1h",
        custom_metadata={"owner": "payments", "tier": "1"},
        mount_point=kv2_mount,
    )
    assert r.status_code == 204
    md = kv2(client).read_secret_metadata(path=p, mount_point=kv2_mount)["data"]
    assert md["max_versions"] == 5
    assert md["cas_required"] is True
    assert md["delete_version_after"] == "1h0m0s"
    assert md["custom_metadata"] == {"owner": "payments", "tier": "1"}

    # the version payload carries custom_metadata too
    assert read(client, kv2_mount, p)["data"]["metadata"]["custom_metadata"] == {"owner": "payments", "tier": "1"}
    # deletion of a version written now is scheduled delete_version_after later
    w = kv2(client).create_or_update_secret(path=p, secret={"a": 2}, cas=1, mount_point=kv2_mount)
    assert w["data"]["deletion_time"] != ""

    # cas_required: a write without cas is refused and changes nothing
    with pytest.raises(exceptions.InvalidRequest) as e:
        kv2(client).create_or_update_secret(path=p, secret={"a": 3}, mount_point=kv2_mount)
    assert e.value.errors
    assert read(client, kv2_mount, p)["data"]["data"] == {"a": 2}


def test_update_metadata_before_first_write(client, kv2_mount):
    # Vault allows creating the metadata entry first; the first write then honours it
    p = uid("s")
    kv2(client).update_metadata(path=p, cas_required=True, mount_point=kv2_mount)
    with pytest.raises(exceptions.InvalidRequest):
        kv2(client).create_or_update_secret(path=p, secret={"a": 1}, mount_point=kv2_mount)
    kv2(client).create_or_update_secret(path=p, secret={"a": 1}, cas=0, mount_point=kv2_mount)
    assert read(client, kv2_mount, p)["data"]["data"] == {"a": 1}


def test_max_versions_trims_oldest(client, kv2_mount):
    p = uid("s")
    kv2(client).create_or_update_secret(path=p, secret={"i": 1}, mount_point=kv2_mount)
    kv2(client).update_metadata(path=p, max_versions=2, mount_point=kv2_mount)
    for i in (2, 3, 4):
        kv2(client).create_or_update_secret(path=p, secret={"i": i}, mount_point=kv2_mount)
    md = kv2(client).read_secret_metadata(path=p, mount_point=kv2_mount)["data"]
    assert sorted(md["versions"], key=int) == ["3", "4"]
    assert md["current_version"] == 4
    assert md["oldest_version"] == 3
    with pytest.raises(exceptions.InvalidPath):
        read(client, kv2_mount, p, version=1)
    assert read(client, kv2_mount, p, version=3)["data"]["data"] == {"i": 3}


# --- delete / undelete / destroy -----------------------------------------------------------------------------


def test_delete_latest_version(client, kv2_mount):
    p = uid("s")
    kv2(client).create_or_update_secret(path=p, secret={"a": 1}, mount_point=kv2_mount)
    kv2(client).create_or_update_secret(path=p, secret={"a": 2}, mount_point=kv2_mount)
    r = kv2(client).delete_latest_version_of_secret(path=p, mount_point=kv2_mount)
    assert r.status_code == 204

    with pytest.raises(exceptions.InvalidPath):
        read(client, kv2_mount, p)
    # with raise_on_deleted_version=False hvac returns the 404 body, which must carry the metadata
    body = read(client, kv2_mount, p, raise_on_deleted_version=False)
    assert body["data"]["data"] is None
    assert body["data"]["metadata"]["version"] == 2
    assert body["data"]["metadata"]["deletion_time"] != ""
    assert body["data"]["metadata"]["destroyed"] is False
    # older versions are untouched
    assert read(client, kv2_mount, p, version=1)["data"]["data"] == {"a": 1}
    md = kv2(client).read_secret_metadata(path=p, mount_point=kv2_mount)["data"]
    assert md["versions"]["2"]["deletion_time"] != ""
    assert md["versions"]["1"]["deletion_time"] == ""


def test_delete_and_undelete_versions(client, kv2_mount):
    p = uid("s")
    for i in (1, 2, 3):
        kv2(client).create_or_update_secret(path=p, secret={"i": i}, mount_point=kv2_mount)
    r = kv2(client).delete_secret_versions(path=p, versions=[1, 2], mount_point=kv2_mount)
    assert r.status_code == 204
    for v in (1, 2):
        with pytest.raises(exceptions.InvalidPath):
            read(client, kv2_mount, p, version=v)
        got = read(client, kv2_mount, p, version=v, raise_on_deleted_version=False)
        assert got["data"]["metadata"]["deletion_time"] != ""
    assert read(client, kv2_mount, p)["data"]["data"] == {"i": 3}

    r = kv2(client).undelete_secret_versions(path=p, versions=[1, 2], mount_point=kv2_mount)
    assert r.status_code == 204
    assert read(client, kv2_mount, p, version=1)["data"]["data"] == {"i": 1}
    got = read(client, kv2_mount, p, version=2)["data"]
    assert got["data"] == {"i": 2}
    assert got["metadata"]["deletion_time"] == ""


def test_destroy_versions(client, kv2_mount):
    p = uid("s")
    for i in (1, 2):
        kv2(client).create_or_update_secret(path=p, secret={"i": i}, mount_point=kv2_mount)
    r = kv2(client).destroy_secret_versions(path=p, versions=[1], mount_point=kv2_mount)
    assert r.status_code == 204
    md = kv2(client).read_secret_metadata(path=p, mount_point=kv2_mount)["data"]
    assert md["versions"]["1"]["destroyed"] is True
    assert md["versions"]["2"]["destroyed"] is False
    # a destroyed version is gone for good: even raise_on_deleted_version=False raises (deletion_time is "")
    with pytest.raises(exceptions.InvalidPath) as e:
        read(client, kv2_mount, p, version=1, raise_on_deleted_version=False)
    assert e.value.json["data"]["metadata"]["destroyed"] is True
    # undelete cannot bring it back
    kv2(client).undelete_secret_versions(path=p, versions=[1], mount_point=kv2_mount)
    with pytest.raises(exceptions.InvalidPath):
        read(client, kv2_mount, p, version=1)
    assert read(client, kv2_mount, p)["data"]["data"] == {"i": 2}


def test_delete_metadata_and_all_versions(client, kv2_mount):
    p = uid("s")
    kv2(client).create_or_update_secret(path=p, secret={"a": 1}, mount_point=kv2_mount)
    kv2(client).create_or_update_secret(path=p, secret={"a": 2}, mount_point=kv2_mount)
    r = kv2(client).delete_metadata_and_all_versions(path=p, mount_point=kv2_mount)
    assert r.status_code == 204
    with pytest.raises(exceptions.InvalidPath):
        kv2(client).read_secret_metadata(path=p, mount_point=kv2_mount)
    with pytest.raises(exceptions.InvalidPath):
        read(client, kv2_mount, p, version=1)
    # the name can be reused from version 1
    w = kv2(client).create_or_update_secret(path=p, secret={"a": 3}, cas=0, mount_point=kv2_mount)
    assert w["data"]["version"] == 1


# --- list ---------------------------------------------------------------------------------------------------


def test_list_secrets(client, kv2_mount):
    root = uid("dir")
    for p in (f"{root}/a", f"{root}/b", f"{root}/sub/c", f"{root}/sub/deeper/d"):
        kv2(client).create_or_update_secret(path=p, secret={"x": 1}, mount_point=kv2_mount)
    keys = kv2(client).list_secrets(path=root, mount_point=kv2_mount)["data"]["keys"]
    assert sorted(keys) == ["a", "b", "sub/"]
    sub = kv2(client).list_secrets(path=f"{root}/sub", mount_point=kv2_mount)["data"]["keys"]
    assert sorted(sub) == ["c", "deeper/"]
    top = kv2(client).list_secrets(path="", mount_point=kv2_mount)["data"]["keys"]
    assert f"{root}/" in top


def test_list_keeps_soft_deleted_drops_purged(client, kv2_mount):
    root = uid("dir")
    for n in ("keep", "soft", "gone"):
        kv2(client).create_or_update_secret(path=f"{root}/{n}", secret={"x": 1}, mount_point=kv2_mount)
    kv2(client).delete_latest_version_of_secret(path=f"{root}/soft", mount_point=kv2_mount)
    kv2(client).delete_metadata_and_all_versions(path=f"{root}/gone", mount_point=kv2_mount)
    keys = kv2(client).list_secrets(path=root, mount_point=kv2_mount)["data"]["keys"]
    assert sorted(keys) == ["keep", "soft"]


def test_list_missing_prefix_is_invalid_path(client, kv2_mount):
    with pytest.raises(exceptions.InvalidPath):
        kv2(client).list_secrets(path=uid("empty"), mount_point=kv2_mount)


# --- engine configuration -----------------------------------------------------------------------------------


def test_configure_and_read_configuration(client, kv2_mount):
    cfg = kv2(client).read_configuration(mount_point=kv2_mount)["data"]
    assert cfg["max_versions"] == 0
    assert cfg["cas_required"] is False
    assert cfg["delete_version_after"] == "0s"

    r = kv2(client).configure(max_versions=3, cas_required=True, delete_version_after="30m", mount_point=kv2_mount)
    assert r.status_code == 204
    cfg = kv2(client).read_configuration(mount_point=kv2_mount)["data"]
    assert cfg["max_versions"] == 3
    assert cfg["cas_required"] is True
    assert cfg["delete_version_after"] == "30m0s"

    # the mount-wide cas_required applies to every secret
    p = uid("s")
    with pytest.raises(exceptions.InvalidRequest):
        kv2(client).create_or_update_secret(path=p, secret={"a": 0}, mount_point=kv2_mount)
    for i in range(5):
        kv2(client).create_or_update_secret(path=p, secret={"a": i}, cas=i, mount_point=kv2_mount)
    # ... and so does the mount-wide max_versions
    md = kv2(client).read_secret_metadata(path=p, mount_point=kv2_mount)["data"]
    assert sorted(md["versions"], key=int) == ["3", "4", "5"]


# --- kv v1 --------------------------------------------------------------------------------------------------


@pytest.fixture
def kv1_mount(client):
    path = uid("kv1")
    client.sys.enable_secrets_engine("kv", path=path, options={"version": "1"})
    yield path
    client.sys.disable_secrets_engine(path)


def test_kv_v1(client, kv1_mount):
    v1 = client.secrets.kv.v1
    assert client.sys.retrieve_mount_option(kv1_mount, "version") == "1"
    # method=None: hvac reads first (404) and then POSTs
    r = v1.create_or_update_secret(path="app/one", secret={"user": "u", "pw": "p"}, mount_point=kv1_mount)
    assert r.status_code == 204
    got = v1.read_secret(path="app/one", mount_point=kv1_mount)
    assert got["data"] == {"user": "u", "pw": "p"}
    # update (hvac now PUTs): a v1 write replaces the whole value, no versions
    v1.create_or_update_secret(path="app/one", secret={"user": "u2"}, mount_point=kv1_mount)
    assert v1.read_secret(path="app/one", mount_point=kv1_mount)["data"] == {"user": "u2"}
    v1.create_or_update_secret(path="app/two", secret={"x": "1"}, method="POST", mount_point=kv1_mount)
    v1.create_or_update_secret(path="app/sub/three", secret={"x": "1"}, method="PUT", mount_point=kv1_mount)

    keys = v1.list_secrets(path="app", mount_point=kv1_mount)["data"]["keys"]
    assert sorted(keys) == ["one", "sub/", "two"]

    r = v1.delete_secret(path="app/one", mount_point=kv1_mount)
    assert r.status_code == 204
    with pytest.raises(exceptions.InvalidPath):
        v1.read_secret(path="app/one", mount_point=kv1_mount)
    assert sorted(v1.list_secrets(path="app", mount_point=kv1_mount)["data"]["keys"]) == ["sub/", "two"]


def test_kv_without_version_option_is_v1(client):
    path = uid("kvdefault")
    client.sys.enable_secrets_engine("kv", path=path)
    try:
        client.secrets.kv.v1.create_or_update_secret(path="x", secret={"a": "b"}, mount_point=path)
        assert client.secrets.kv.v1.read_secret(path="x", mount_point=path)["data"] == {"a": "b"}
    finally:
        client.sys.disable_secrets_engine(path)


# --- more kv v2 semantics hvac users rely on ----------------------------------------------------------------


def test_read_secret_alias_and_version_zero(client, kv2_mount):
    p = uid("s")
    kv2(client).create_or_update_secret(path=p, secret={"i": 1}, mount_point=kv2_mount)
    kv2(client).create_or_update_secret(path=p, secret={"i": 2}, mount_point=kv2_mount)
    assert kv2(client).read_secret(path=p, mount_point=kv2_mount,
                                   raise_on_deleted_version=True)["data"]["data"] == {"i": 2}
    # ?version=0 means "latest"
    assert read(client, kv2_mount, p, version=0)["data"]["metadata"]["version"] == 2


def test_update_metadata_is_partial(client, kv2_mount):
    # fields hvac does not send stay as they were; custom_metadata is replaced as a whole
    p = uid("s")
    kv2(client).create_or_update_secret(path=p, secret={"a": 1}, mount_point=kv2_mount)
    kv2(client).update_metadata(path=p, max_versions=4, cas_required=True,
                                custom_metadata={"a": "1", "b": "2"}, mount_point=kv2_mount)
    kv2(client).update_metadata(path=p, custom_metadata={"c": "3"}, mount_point=kv2_mount)
    md = kv2(client).read_secret_metadata(path=p, mount_point=kv2_mount)["data"]
    assert md["max_versions"] == 4
    assert md["cas_required"] is True
    assert md["custom_metadata"] == {"c": "3"}
    assert md["delete_version_after"] == "0s"  # hvac always sends "0s" unless told otherwise


def test_invalid_metadata_is_rejected(client, kv2_mount):
    p = uid("s")
    kv2(client).create_or_update_secret(path=p, secret={"a": 1}, mount_point=kv2_mount)
    with pytest.raises(exceptions.InvalidRequest):
        kv2(client).update_metadata(path=p, custom_metadata={"k": "v" * 600}, mount_point=kv2_mount)
    with pytest.raises(exceptions.InvalidRequest):
        kv2(client).update_metadata(path=p, delete_version_after="soon", mount_point=kv2_mount)
    md = kv2(client).read_secret_metadata(path=p, mount_point=kv2_mount)["data"]
    assert md["custom_metadata"] in (None, {})
    assert md["delete_version_after"] == "0s"


@pytest.mark.parametrize("name", ["with space", "plus+sign", "percent%25", "q?mark", "hash#tag", "ünï-cödé"])
def test_names_needing_url_escaping(client, kv2_mount, name):
    # hvac percent-encodes path segments (urllib.parse.quote); the server must decode exactly once
    d = uid("odd")
    kv2(client).create_or_update_secret(path=f"{d}/{name}", secret={"n": name}, mount_point=kv2_mount)
    assert read(client, kv2_mount, f"{d}/{name}")["data"]["data"] == {"n": name}
    assert kv2(client).list_secrets(path=d, mount_point=kv2_mount)["data"]["keys"] == [name]


def test_list_with_strict_http(dev_server, kv2_mount):
    # hvac.Client(strict_http=True) lists with GET ...?list=true instead of the LIST verb
    import hvac
    from conftest import http_session

    c = hvac.Client(url=dev_server.url, token=dev_server.root_token, strict_http=True, session=http_session())
    d = uid("dir")
    c.secrets.kv.v2.create_or_update_secret(path=f"{d}/x", secret={"a": 1}, mount_point=kv2_mount)
    assert c.secrets.kv.v2.list_secrets(path=d, mount_point=kv2_mount)["data"]["keys"] == ["x"]


def test_subkeys_via_adapter(client, kv2_mount):
    # hvac 2.4 has no read_secret_subkeys; callers use the adapter directly (GET /v1/<mount>/subkeys/<path>)
    p = uid("s")
    kv2(client).create_or_update_secret(path=p, secret={"a": 1, "b": {"c": "x", "d": {"e": 2}}},
                                        mount_point=kv2_mount)
    r = client.adapter.get(f"/v1/{kv2_mount}/subkeys/{p}")
    assert r["data"]["subkeys"] == {"a": None, "b": {"c": None, "d": {"e": None}}}
    assert r["data"]["metadata"]["version"] == 1
    r = client.adapter.get(f"/v1/{kv2_mount}/subkeys/{p}", params={"depth": 1})
    assert r["data"]["subkeys"] == {"a": None, "b": None}


def test_tune_kv_v1_to_v2_never_loses_data(client):
    """`vault kv enable-versioning`: tune a kv v1 mount to options.version=2.

    Vault upgrades the existing entries (asynchronously) to version 1 of each key. A server that does not
    support the upgrade must refuse the tune (400) and leave the v1 mount and its data as they were; what it
    must never do is flip the option and hide the existing entries.
    """
    path = uid("up")
    client.sys.enable_secrets_engine("kv", path=path, options={"version": "1"})
    try:
        client.secrets.kv.v1.create_or_update_secret(path="old", secret={"a": "1"}, mount_point=path)
        try:
            client.sys.tune_mount_configuration(path, options={"version": "2"})
        except exceptions.InvalidRequest as e:
            assert e.errors
            assert client.sys.retrieve_mount_option(path, "version") == "1"
            assert client.secrets.kv.v1.read_secret(path="old", mount_point=path)["data"] == {"a": "1"}
            return
        assert client.sys.retrieve_mount_option(path, "version") == "2"
        deadline = time.monotonic() + 3  # Vault upgrades in the background, answering errors meanwhile
        while True:
            try:
                got = read(client, path, "old")
                break
            except (exceptions.InvalidPath, exceptions.InvalidRequest, exceptions.VaultDown):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert got["data"]["data"] == {"a": "1"}
        assert got["data"]["metadata"]["version"] == 1
    finally:
        client.sys.disable_secrets_engine(path)
