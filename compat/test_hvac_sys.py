"""hvac 2.4 against Coffer's sys backend on a dev server: policies, ACL enforcement, mounts, key status."""

import json

import pytest
from hvac import exceptions

from conftest import uid

HCL = 'path "secret/data/ro/*" {\n  capabilities = ["read", "list"]\n}\n'


# --- policies -----------------------------------------------------------------------------------------------


def test_policy_crud_hcl(client):
    name = uid("pol")
    r = client.sys.create_or_update_policy(name=name, policy=HCL)
    assert r.status_code == 204

    got = client.sys.read_policy(name)
    assert got["data"]["name"] == name
    assert got["data"]["rules"] == HCL
    assert got["rules"] == HCL  # Vault also puts the fields at the top level

    listed = client.sys.list_policies()
    assert name in listed["data"]["policies"]
    assert "root" in listed["data"]["policies"]
    assert "default" in listed["data"]["policies"]
    assert name in listed["policies"]

    r = client.sys.delete_policy(name)
    assert r.status_code == 204
    with pytest.raises(exceptions.InvalidPath):
        client.sys.read_policy(name)
    assert name not in client.sys.list_policies()["data"]["policies"]


@pytest.mark.parametrize("pretty", [True, False])
def test_policy_from_dict(client, pretty):
    name = uid("pol")
    doc = {"path": {"secret/data/dict/*": {"capabilities": ["read"]}}}
    client.sys.create_or_update_policy(name=name, policy=doc, pretty_print=pretty)
    rules = client.sys.read_policy(name)["data"]["rules"]
    assert json.loads(rules) == doc
    assert (len(rules.splitlines()) > 1) == pretty  # stored verbatim
    client.sys.delete_policy(name)


def test_acl_policy_crud(client):
    name = uid("acl")
    r = client.sys.create_or_update_acl_policy(name=name, policy=HCL)
    assert r.status_code == 204
    assert client.sys.read_acl_policy(name)["data"] == {"name": name, "policy": HCL}
    # hvac sends GET (not LIST) /v1/sys/policies/acl
    assert name in client.sys.list_acl_policies()["data"]["keys"]
    # the same store as sys/policy
    assert client.sys.read_policy(name)["data"]["rules"] == HCL

    doc = {"path": {"secret/data/acl/*": {"capabilities": ["read"]}}}
    client.sys.create_or_update_acl_policy(name=name, policy=doc)
    assert json.loads(client.sys.read_acl_policy(name)["data"]["policy"]) == doc

    r = client.sys.delete_acl_policy(name)
    assert r.status_code == 204
    with pytest.raises(exceptions.InvalidPath):
        client.sys.read_acl_policy(name)
    assert name not in client.sys.list_acl_policies()["data"]["keys"]


def test_invalid_policy_is_rejected(client):
    name = uid("bad")
    with pytest.raises(exceptions.InvalidRequest) as e:
        client.sys.create_or_update_policy(name=name, policy='path "secret/*" { capabilities = ["read" ')
    assert e.value.errors
    with pytest.raises(exceptions.InvalidPath):
        client.sys.read_policy(name)


def test_root_policy_is_immutable(client):
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.delete_policy("root")
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.create_or_update_policy("root", 'path "*" { capabilities = ["read"] }')


# --- ACL enforcement ----------------------------------------------------------------------------------------


def test_read_only_policy(client, kv2_mount, token_for_policy):
    kv = client.secrets.kv.v2
    kv.create_or_update_secret(path="ro/a", secret={"v": "1"}, mount_point=kv2_mount)
    kv.create_or_update_secret(path="other/b", secret={"v": "2"}, mount_point=kv2_mount)
    ro = token_for_policy(
        f'path "{kv2_mount}/data/ro/*" {{ capabilities = ["read"] }}\n'
        f'path "{kv2_mount}/metadata/ro/*" {{ capabilities = ["read", "list"] }}\n'
    )
    rkv = ro.secrets.kv.v2

    assert rkv.read_secret_version(path="ro/a", mount_point=kv2_mount,
                                   raise_on_deleted_version=True)["data"]["data"] == {"v": "1"}
    assert rkv.read_secret_metadata(path="ro/a", mount_point=kv2_mount)["data"]["current_version"] == 1

    with pytest.raises(exceptions.Forbidden) as e:
        rkv.create_or_update_secret(path="ro/a", secret={"v": "hacked"}, mount_point=kv2_mount)
    assert e.value.errors
    with pytest.raises(exceptions.Forbidden):
        rkv.create_or_update_secret(path="ro/new", secret={"v": "x"}, mount_point=kv2_mount)
    with pytest.raises(exceptions.Forbidden):
        rkv.delete_latest_version_of_secret(path="ro/a", mount_point=kv2_mount)
    with pytest.raises(exceptions.Forbidden):
        rkv.destroy_secret_versions(path="ro/a", versions=[1], mount_point=kv2_mount)
    with pytest.raises(exceptions.Forbidden):
        rkv.read_secret_version(path="other/b", mount_point=kv2_mount, raise_on_deleted_version=True)
    with pytest.raises(exceptions.Forbidden):
        ro.sys.create_or_update_policy(uid("x"), 'path "*" { capabilities = ["sudo"] }')
    with pytest.raises(exceptions.Forbidden):
        ro.sys.enable_secrets_engine("kv", path=uid("m"))

    # nothing changed
    assert kv.read_secret_version(path="ro/a", mount_point=kv2_mount,
                                  raise_on_deleted_version=True)["data"]["data"] == {"v": "1"}
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret_version(path="ro/new", mount_point=kv2_mount, raise_on_deleted_version=True)


def test_policy_change_takes_effect_immediately(dev_server, client, kv2_mount):
    kv = client.secrets.kv.v2
    kv.create_or_update_secret(path="p/a", secret={"v": 1}, mount_point=kv2_mount)
    name = uid("pol")
    client.sys.create_or_update_policy(name, f'path "{kv2_mount}/data/p/*" {{ capabilities = ["read"] }}')
    tok = client.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"]
    user = dev_server.client(tok).secrets.kv.v2

    user.read_secret_version(path="p/a", mount_point=kv2_mount, raise_on_deleted_version=True)
    with pytest.raises(exceptions.Forbidden):
        user.create_or_update_secret(path="p/a", secret={"v": 2}, mount_point=kv2_mount)

    client.sys.create_or_update_policy(
        name, f'path "{kv2_mount}/data/p/*" {{ capabilities = ["read", "create", "update"] }}')
    user.create_or_update_secret(path="p/a", secret={"v": 2}, mount_point=kv2_mount)

    client.sys.delete_policy(name)
    with pytest.raises(exceptions.Forbidden):
        user.read_secret_version(path="p/a", mount_point=kv2_mount, raise_on_deleted_version=True)


def test_deny_overrides(client, kv2_mount, token_for_policy):
    client.secrets.kv.v2.create_or_update_secret(path="d/open", secret={"a": 1}, mount_point=kv2_mount)
    client.secrets.kv.v2.create_or_update_secret(path="d/closed", secret={"a": 1}, mount_point=kv2_mount)
    c = token_for_policy(
        f'path "{kv2_mount}/data/d/*" {{ capabilities = ["read"] }}\n'
        f'path "{kv2_mount}/data/d/closed" {{ capabilities = ["deny"] }}\n'
    )
    c.secrets.kv.v2.read_secret_version(path="d/open", mount_point=kv2_mount, raise_on_deleted_version=True)
    with pytest.raises(exceptions.Forbidden):
        c.secrets.kv.v2.read_secret_version(path="d/closed", mount_point=kv2_mount, raise_on_deleted_version=True)


def test_legacy_policy_syntax(client, kv2_mount, token_for_policy):
    # `policy = "read" | "write"` inside a path block predates `capabilities`; hvac's own tests still use it
    kv = client.secrets.kv.v2
    kv.create_or_update_secret(path="l/a", secret={"v": 1}, mount_point=kv2_mount)
    ro = token_for_policy(f'path "{kv2_mount}/data/l/*" {{\n  policy = "read"\n}}\n')
    rw = token_for_policy(f'path "{kv2_mount}/data/l/*" {{\n  policy = "write"\n}}\n')
    ro.secrets.kv.v2.read_secret_version(path="l/a", mount_point=kv2_mount, raise_on_deleted_version=True)
    with pytest.raises(exceptions.Forbidden):
        ro.secrets.kv.v2.create_or_update_secret(path="l/a", secret={"v": 2}, mount_point=kv2_mount)
    rw.secrets.kv.v2.create_or_update_secret(path="l/a", secret={"v": 2}, mount_point=kv2_mount)
    assert rw.secrets.kv.v2.read_secret_version(path="l/a", mount_point=kv2_mount,
                                                raise_on_deleted_version=True)["data"]["data"] == {"v": 2}


def test_plus_segment_glob(client, kv2_mount, token_for_policy):
    kv = client.secrets.kv.v2
    kv.create_or_update_secret(path="g/team1/db", secret={"v": 1}, mount_point=kv2_mount)
    kv.create_or_update_secret(path="g/team1/x/db", secret={"v": 1}, mount_point=kv2_mount)
    c = token_for_policy(f'path "{kv2_mount}/data/g/+/db" {{ capabilities = ["read"] }}')
    c.secrets.kv.v2.read_secret_version(path="g/team1/db", mount_point=kv2_mount, raise_on_deleted_version=True)
    with pytest.raises(exceptions.Forbidden):
        c.secrets.kv.v2.read_secret_version(path="g/team1/x/db", mount_point=kv2_mount,
                                            raise_on_deleted_version=True)


def test_get_capabilities(client, kv2_mount, token_for_policy):
    c = token_for_policy(f'path "{kv2_mount}/data/cap/*" {{ capabilities = ["read", "list"] }}')
    tok = c.token
    acc = client.auth.token.lookup(tok)["data"]["accessor"]
    inside, outside = f"{kv2_mount}/data/cap/x", f"{kv2_mount}/data/other"
    for r in (c.sys.get_capabilities(paths=[inside, outside]),
              client.sys.get_capabilities(paths=[inside, outside], token=tok),
              client.sys.get_capabilities(paths=[inside, outside], accessor=acc)):
        assert sorted(r["data"][inside]) == ["list", "read"]
        assert r["data"][outside] == ["deny"]
    assert client.sys.get_capabilities(paths=[inside])["data"][inside] == ["root"]


# --- mounts -------------------------------------------------------------------------------------------------


def test_mount_lifecycle(client):
    path = uid("mnt")
    r = client.sys.enable_secrets_engine("kv", path=path, description="compat mount", options={"version": "2"})
    assert r.status_code == 204

    mounts = client.sys.list_mounted_secrets_engines()
    entry = mounts["data"][f"{path}/"]
    assert entry["type"] == "kv"
    assert entry["description"] == "compat mount"
    assert entry["options"] == {"version": "2"}
    assert entry["accessor"]
    assert mounts[f"{path}/"]["type"] == "kv"  # Vault repeats the mounts at the top level
    assert "sys/" in mounts["data"]
    assert mounts["data"]["secret/"]["options"] == {"version": "2"}
    assert client.sys.retrieve_mount_option(path, "version") == "2"

    cfg = client.sys.read_mount_configuration(path)
    assert cfg["data"]["default_lease_ttl"] == 2764800  # system default, 768h
    assert cfg["data"]["max_lease_ttl"] == 2764800
    assert cfg["data"]["force_no_cache"] is False

    r = client.sys.tune_mount_configuration(path, default_lease_ttl="1h", max_lease_ttl="2h",
                                            description="tuned")
    assert r.status_code == 204
    cfg = client.sys.read_mount_configuration(path)["data"]
    assert cfg["default_lease_ttl"] == 3600
    assert cfg["max_lease_ttl"] == 7200
    assert cfg["description"] == "tuned"
    listed = client.sys.list_mounted_secrets_engines()["data"][f"{path}/"]
    assert listed["description"] == "tuned"
    assert listed["config"]["default_lease_ttl"] == 3600
    assert listed["config"]["max_lease_ttl"] == 7200

    # the mount works, and its data goes away with it
    client.secrets.kv.v2.create_or_update_secret(path="x", secret={"a": 1}, mount_point=path)
    r = client.sys.disable_secrets_engine(path)
    assert r.status_code == 204
    assert f"{path}/" not in client.sys.list_mounted_secrets_engines()["data"]
    client.sys.enable_secrets_engine("kv", path=path, options={"version": "2"})
    with pytest.raises(exceptions.InvalidPath):
        client.secrets.kv.v2.read_secret_version(path="x", mount_point=path, raise_on_deleted_version=True)
    client.sys.disable_secrets_engine(path)


def test_mount_path_in_use(client, kv2_mount):
    with pytest.raises(exceptions.InvalidRequest) as e:
        client.sys.enable_secrets_engine("kv", path=kv2_mount, options={"version": "2"})
    assert e.value.errors


def test_unknown_engine_type(client):
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.enable_secrets_engine("no-such-engine", path=uid("m"))


# --- seal status / health / keys on the (unsealed) dev server -----------------------------------------------


def test_dev_server_status(client):
    assert client.sys.is_initialized() is True
    assert client.sys.is_sealed() is False
    st = client.sys.read_seal_status()
    assert st["sealed"] is False and st["initialized"] is True
    head = client.sys.read_health_status()
    assert head.status_code == 200
    h = client.sys.read_health_status(method="GET")
    assert h["initialized"] is True and h["sealed"] is False and h["standby"] is False
    h = client.sys.read_health_status(method="GET", standby_ok=True)
    assert h["sealed"] is False


def test_key_status(client):
    ks = client.sys.get_encryption_key_status()
    assert ks["data"]["term"] >= 1
    assert ks["data"]["install_time"]


def test_leader_status(client):
    status = client.sys.read_leader_status()
    assert status["ha_enabled"] is False
    assert "leader_address" in status and "is_self" in status
    assert client.ha_status["ha_enabled"] is False
