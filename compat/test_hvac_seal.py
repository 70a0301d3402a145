"""hvac 2.4 init / unseal / seal / health / key rotation on a `coffer server -config=...` with file storage."""

import os

import pytest
from hvac import exceptions

KV = "kv"


def health_get(c, **kw):
    """read_health_status(method='GET'): a dict on 200, the raw requests.Response otherwise."""
    return c.sys.read_health_status(method="GET", **kw)


def test_seal_lifecycle(config_server):
    c = config_server.client()

    # --- uninitialized ---
    assert c.sys.is_initialized() is False
    st = c.sys.read_seal_status()
    assert st["initialized"] is False and st["sealed"] is True
    head = c.sys.read_health_status()
    assert head.status_code == 501
    h = health_get(c)
    assert h.status_code == 501
    assert h.json()["initialized"] is False and h.json()["sealed"] is True
    # uninitcode overrides the status code (hvac then returns the JSON dict)
    assert health_get(c, uninit_code=200)["initialized"] is False

    # --- initialize ---
    init = c.sys.initialize(5, 3)
    keys, keys_b64, root = init["keys"], init["keys_base64"], init["root_token"]
    assert len(keys) == 5 and len(set(keys)) == 5
    assert len(keys_b64) == 5
    assert root
    assert c.sys.is_initialized() is True
    with pytest.raises(exceptions.InvalidRequest):
        c.sys.initialize(5, 3)

    # --- sealed ---
    assert c.sys.is_sealed() is True
    st = c.sys.read_seal_status()
    assert st["sealed"] is True and st["initialized"] is True
    assert st["t"] == 3 and st["n"] == 5 and st["progress"] == 0
    assert c.sys.read_health_status().status_code == 503
    h = health_get(c)
    assert h.status_code == 503
    assert h.json()["sealed"] is True and h.json()["initialized"] is True
    assert health_get(c, sealed_code=200)["sealed"] is True
    # a sealed server refuses everything else, even the root token
    rc = config_server.client(root)
    with pytest.raises(exceptions.VaultDown):
        rc.sys.list_mounted_secrets_engines()

    # --- unseal step by step ---
    r = c.sys.submit_unseal_key(keys[0])
    assert r["sealed"] is True and r["progress"] == 1 and r["t"] == 3 and r["n"] == 5
    r = c.sys.submit_unseal_key(keys[1])
    assert r["sealed"] is True and r["progress"] == 2
    assert c.sys.read_seal_status()["progress"] == 2
    r = c.sys.submit_unseal_key(reset=True)
    assert r["sealed"] is True and r["progress"] == 0
    r = c.sys.submit_unseal_key(keys[4])
    assert r["progress"] == 1
    r = c.sys.submit_unseal_key(keys[2])
    assert r["progress"] == 2
    r = c.sys.submit_unseal_key(keys[0])
    assert r["sealed"] is False and r["progress"] == 0

    # --- unsealed ---
    assert c.sys.is_sealed() is False
    head = c.sys.read_health_status()  # HEAD by default
    assert head.status_code == 200
    assert head.text == ""
    h = health_get(c)
    assert isinstance(h, dict)
    assert h["initialized"] is True and h["sealed"] is False and h["standby"] is False
    assert h["version"]
    assert isinstance(h["server_time_utc"], int)
    assert rc.is_authenticated() is True
    assert rc.auth.token.lookup_self()["data"]["policies"] == ["root"]

    # a config-mode server has no secret/ mount; enable one and use it
    rc.sys.enable_secrets_engine("kv", path=KV, options={"version": "2"})
    rc.secrets.kv.v2.create_or_update_secret(path="db", secret={"pw": "before-rotate"}, mount_point=KV)

    # --- key status and rotation ---
    ks = rc.sys.get_encryption_key_status()
    term = ks["data"]["term"]
    assert term >= 1 and ks["data"]["install_time"]
    r = rc.sys.rotate_encryption_key()
    assert r.status_code == 204
    assert rc.sys.get_encryption_key_status()["data"]["term"] == term + 1
    rc.secrets.kv.v2.create_or_update_secret(path="db", secret={"pw": "after-rotate"}, mount_point=KV)

    # --- seal ---
    r = rc.sys.seal()
    assert r.status_code == 204
    assert c.sys.is_sealed() is True
    st = c.sys.read_seal_status()
    assert st["sealed"] is True and st["progress"] == 0 and st["t"] == 3
    with pytest.raises(exceptions.VaultDown):
        rc.secrets.kv.v2.read_secret_version(path="db", mount_point=KV, raise_on_deleted_version=True)

    # --- unseal again, all at once ---
    r = c.sys.submit_unseal_keys(keys[:3])
    assert r["sealed"] is False
    kv = rc.secrets.kv.v2
    assert kv.read_secret_version(path="db", mount_point=KV, version=1,
                                  raise_on_deleted_version=True)["data"]["data"] == {"pw": "before-rotate"}
    assert kv.read_secret_version(path="db", mount_point=KV,
                                  raise_on_deleted_version=True)["data"]["data"] == {"pw": "after-rotate"}


def test_restart_keeps_data_and_starts_sealed(config_server):
    c = config_server.client()
    init = c.sys.initialize(3, 2)
    assert c.sys.submit_unseal_keys(init["keys_base64"][:2])["sealed"] is False  # base64 form works too
    rc = config_server.client(init["root_token"])
    rc.sys.enable_secrets_engine("kv", path=KV, options={"version": "2"})
    rc.secrets.kv.v2.create_or_update_secret(path="persist", secret={"a": "b"}, mount_point=KV)
    pol = 'path "kv/data/*" { capabilities = ["read"] }\n'
    rc.sys.create_or_update_policy("persisted", pol)
    child = rc.auth.token.create(policies=["persisted"], ttl="1h")["auth"]["client_token"]

    config_server.restart()
    c = config_server.client()
    assert c.sys.is_initialized() is True
    assert c.sys.is_sealed() is True
    assert c.sys.submit_unseal_keys(init["keys"][1:3])["sealed"] is False

    rc = config_server.client(init["root_token"])
    assert rc.sys.read_policy("persisted")["data"]["rules"] == pol
    assert rc.sys.retrieve_mount_option(KV, "version") == "2"
    user = config_server.client(child)
    assert user.secrets.kv.v2.read_secret_version(path="persist", mount_point=KV,
                                                  raise_on_deleted_version=True)["data"]["data"] == {"a": "b"}
    with pytest.raises(exceptions.Forbidden):
        user.secrets.kv.v2.create_or_update_secret(path="persist", secret={"a": "c"}, mount_point=KV)


def test_bad_unseal_key_and_init_params(config_server):
    c = config_server.client()
    with pytest.raises(exceptions.InvalidRequest) as e:
        c.sys.initialize(secret_shares=2, secret_threshold=3)
    assert e.value.errors
    assert c.sys.is_initialized() is False

    init = c.sys.initialize(secret_shares=3, secret_threshold=2)
    keys = init["keys"]
    with pytest.raises(exceptions.InvalidRequest) as e:
        c.sys.submit_unseal_key("not-a-key")
    assert e.value.errors
    assert c.sys.is_sealed() is True

    # the same share twice does not count twice
    assert c.sys.submit_unseal_key(keys[0])["progress"] == 1
    r = c.sys.submit_unseal_key(keys[0])
    assert r["progress"] == 1 and r["sealed"] is True

    # a well-formed share that is not one of ours: the attempt fails, progress resets, still sealed
    fake = os.urandom(len(bytes.fromhex(keys[1]))).hex()
    with pytest.raises(exceptions.InvalidRequest) as e:
        c.sys.submit_unseal_key(fake)
    assert e.value.errors
    st = c.sys.read_seal_status()
    assert st["sealed"] is True and st["progress"] == 0

    assert c.sys.submit_unseal_keys(keys[1:3])["sealed"] is False


def test_seal_requires_root_or_sudo(config_server):
    c = config_server.client()
    init = c.sys.initialize(1, 1)
    c.sys.submit_unseal_key(init["keys"][0])
    rc = config_server.client(init["root_token"])
    tok = rc.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    with pytest.raises(exceptions.Forbidden):
        config_server.client(tok).sys.seal()
    with pytest.raises(exceptions.Forbidden):
        config_server.client(tok).sys.rotate_encryption_key()
    assert c.sys.is_sealed() is False

    # tokens survive a seal / unseal cycle
    rc.sys.seal()
    c.sys.submit_unseal_key(init["keys"][0])
    assert config_server.client(tok).is_authenticated() is True


def test_health_code_overrides(config_server):
    c = config_server.client()
    init = c.sys.initialize(1, 1)
    c.sys.submit_unseal_key(init["keys"][0])
    r = c.sys.read_health_status(method="GET", standby_ok=True, active_code=299)
    assert r.status_code == 299  # not 200, so hvac hands back the raw response
    assert r.json()["sealed"] is False


@pytest.mark.parametrize("default_ttl,max_ttl", [("768h", "768h"), ("1h", "2h")])
def test_hvac_harness_json_config(tmp_path, default_ttl, max_ttl):
    """The config hvac's own integration harness starts Vault with: JSON, legacy `backend` key, inmem storage."""
    import json

    from conftest import _start, make_client

    cfg = tmp_path / "vault.json"

    def args(port):
        cfg.write_text(json.dumps({
            "backend": {"inmem": {}},
            "listener": {"tcp": {"address": f"127.0.0.1:{port}", "tls_disable": True}},
            "disable_mlock": True,
            "default_lease_ttl": default_ttl,
            "max_lease_ttl": max_ttl,
        }))
        return ["server", f"-config={cfg}"]

    seconds = {"768h": 768 * 3600, "1h": 3600, "2h": 7200}
    proc = _start(args, tmp_path)
    try:
        c = make_client(proc.url)
        assert c.sys.is_initialized() is False
        init = c.sys.initialize(5, 3)
        assert c.sys.submit_unseal_keys(init["keys"])["sealed"] is False
        rc = make_client(proc.url, init["root_token"])
        assert rc.is_authenticated() is True
        # the configured lease TTLs are the system defaults
        rc.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
        tune = rc.sys.read_mount_configuration("kv")["data"]
        assert tune["default_lease_ttl"] == seconds[default_ttl]
        assert tune["max_lease_ttl"] == seconds[max_ttl]
        auth = rc.auth.token.create(policies=["default"])["auth"]
        assert auth["lease_duration"] == seconds[default_ttl]
    finally:
        proc.stop()
