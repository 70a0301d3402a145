"""Response wrapping (X-Vault-Wrap-TTL, sys/wrapping/*) and per-token cubbyhole, through hvac 2.4.

hvac has client.sys.wrap / client.sys.unwrap; lookup and rewrap go through the adapter
(POST sys/wrapping/lookup, POST sys/wrapping/rewrap). kv v2's read_secret_version takes no
wrap_ttl, so a wrapped kv read uses client.read(path, wrap_ttl=...) (GET with X-Vault-Wrap-TTL).
"""

from __future__ import annotations

import time

import pytest
from hvac import exceptions

from conftest import uid


def wait_until(pred, timeout=10.0, step=0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def lookup(c, token):
    return c.adapter.post("/v1/sys/wrapping/lookup", json={"token": token})


def rewrap(c, token):
    return c.adapter.post("/v1/sys/wrapping/rewrap", json={"token": token})


# --- wrapping -------------------------------------------------------------------------------------

def test_wrapped_token_create_unwraps_once(dev_server, client):
    w = client.auth.token.create(policies=["default"], ttl="10m", meta={"m": "1"}, wrap_ttl="60s")
    assert w["auth"] is None and w["data"] is None, "wrapping was requested but the secret came back in clear"
    info = w["wrap_info"]
    assert info["token"] and info["accessor"]
    assert info["ttl"] == 60
    assert info["creation_path"] == "auth/token/create"
    assert info["creation_time"]
    assert info["wrapped_accessor"]

    anon = dev_server.client()  # unwrap needs no token of its own
    inner = anon.sys.unwrap(info["token"])
    auth = inner["auth"]
    assert auth["client_token"] and auth["client_token"] != info["token"]
    assert auth["accessor"] == info["wrapped_accessor"]
    assert auth["policies"] == ["default"]
    assert auth["metadata"] == {"m": "1"}
    assert auth["lease_duration"] == 600
    assert dev_server.client(auth["client_token"]).auth.token.lookup_self()["data"]["meta"] == {"m": "1"}

    with pytest.raises(exceptions.InvalidRequest) as e:
        anon.sys.unwrap(info["token"])
    assert e.value.errors
    # the wrapping token itself is gone
    assert dev_server.client(info["token"]).is_authenticated() is False


def test_unwrap_with_wrapping_token_as_client_token(dev_server, client):
    info = client.sys.wrap({"k": "v"}, ttl=60)["wrap_info"]
    c = dev_server.client(info["token"])
    assert c.sys.unwrap()["data"] == {"k": "v"}  # no "token" in the body: X-Vault-Token is used
    with pytest.raises((exceptions.InvalidRequest, exceptions.Forbidden)):
        c.sys.unwrap()


def test_sys_wrap_and_lookup(dev_server, client):
    payload = {"user": "alice", "n": 3, "nested": {"a": [1, 2]}}
    w = client.sys.wrap(payload, ttl=120)
    assert w["data"] is None
    info = w["wrap_info"]
    assert info["ttl"] == 120
    assert info["creation_path"] == "sys/wrapping/wrap"

    anon = dev_server.client()
    d = lookup(anon, info["token"])["data"]
    assert d["creation_path"] == "sys/wrapping/wrap"
    assert d["creation_ttl"] == 120
    assert d["creation_time"][:19] == info["creation_time"][:19]
    # lookup does not consume the token
    lookup(anon, info["token"])
    assert anon.sys.unwrap(info["token"])["data"] == payload
    with pytest.raises(exceptions.InvalidRequest):
        lookup(anon, info["token"])


# Regression: creation_time used to be stored as f64 and came back ~256 ns off in ~10% of lookups.
# Vault prints wrap_info.creation_time and the lookup's creation_time from the same time.Time.
def test_wrap_lookup_creation_time_matches_wrap_info(dev_server, client):
    anon = dev_server.client()
    mismatches = []
    for _ in range(200):  # the old bug hit ~10% of tries, so 200 tries catch it reliably
        info = client.sys.wrap({"a": "b"}, ttl=30)["wrap_info"]
        d = lookup(anon, info["token"])["data"]
        if d["creation_time"] != info["creation_time"]:
            mismatches.append((info["creation_time"], d["creation_time"]))
    assert not mismatches, f"{len(mismatches)}/200 differ, e.g. {mismatches[0]}"


def test_wrapped_kv2_read(dev_server, client, kv2_mount):
    p = uid("s")
    client.secrets.kv.v2.create_or_update_secret(path=p, secret={"password": "hunter2"}, mount_point=kv2_mount)
    w = client.read(f"{kv2_mount}/data/{p}", wrap_ttl="30s")
    assert w["data"] is None
    info = w["wrap_info"]
    assert info["ttl"] == 30
    assert info["creation_path"] == f"{kv2_mount}/data/{p}"
    assert info["wrapped_accessor"] == ""
    inner = dev_server.client().sys.unwrap(info["token"])
    assert inner["data"]["data"] == {"password": "hunter2"}
    assert inner["data"]["metadata"]["version"] == 1


def test_wrapped_error_is_not_wrapped(client, kv2_mount):
    # Vault: errors are returned as errors, never wrapped (hvac's read() maps the 404 to None)
    assert client.read(f"{kv2_mount}/data/{uid('missing')}", wrap_ttl="30s") is None


def test_rewrap(dev_server, client):
    info = client.sys.wrap({"x": "y"}, ttl=90)["wrap_info"]
    anon = dev_server.client()
    new = rewrap(anon, info["token"])["wrap_info"]
    assert new["token"] != info["token"]
    assert new["creation_path"] == "sys/wrapping/wrap"
    assert new["ttl"] == 90
    # the old token is spent
    with pytest.raises(exceptions.InvalidRequest):
        anon.sys.unwrap(info["token"])
    assert anon.sys.unwrap(new["token"])["data"] == {"x": "y"}


def test_wrap_ttl_expiry(dev_server, client):
    info = client.sys.wrap({"short": "lived"}, ttl=1)["wrap_info"]
    anon = dev_server.client()

    def gone():
        try:
            lookup(anon, info["token"])
            return False
        except exceptions.InvalidRequest:
            return True

    assert wait_until(gone, timeout=10)
    with pytest.raises(exceptions.InvalidRequest):
        anon.sys.unwrap(info["token"])


def test_unwrap_refuses_ordinary_token(dev_server, client):
    tok = client.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    with pytest.raises(exceptions.InvalidRequest):
        dev_server.client().sys.unwrap(tok)
    with pytest.raises(exceptions.InvalidRequest):
        lookup(dev_server.client(), tok)
    # and the ordinary token is untouched
    assert dev_server.client(tok).is_authenticated() is True
    with pytest.raises(exceptions.InvalidRequest):
        dev_server.client().sys.unwrap("hvs." + uid("bogus"))


def test_wrapping_token_is_good_for_nothing_else(dev_server, client):
    client.secrets.kv.v2.create_or_update_secret(path=uid("w"), secret={"a": 1})
    info = client.sys.wrap({"a": "b"}, ttl=60)["wrap_info"]
    wc = dev_server.client(info["token"])
    with pytest.raises(exceptions.Forbidden):
        wc.secrets.kv.v2.read_secret_version(path="anything", raise_on_deleted_version=True)
    with pytest.raises(exceptions.Forbidden):
        wc.auth.token.create(policies=["default"], ttl="1m")
    # still unwrappable afterwards
    assert dev_server.client().sys.unwrap(info["token"])["data"] == {"a": "b"}


def test_bad_wrap_ttl(client):
    with pytest.raises(exceptions.InvalidRequest):
        client.auth.token.create(policies=["default"], ttl="1m", wrap_ttl="not-a-duration")
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.wrap({"a": "b"}, ttl="0")


def test_wrapped_response_not_in_audit_in_clear(dev_server, client, tmp_path):
    path = uid("aud")
    log = tmp_path / "w.log"
    client.sys.enable_audit_device(device_type="file", path=path, options={"file_path": str(log)})
    try:
        secret = "wrapped-" + uid("v")
        info = client.sys.wrap({"s": secret}, ttl=60)["wrap_info"]
        dev_server.client().sys.unwrap(info["token"])
    finally:
        client.sys.disable_audit_device(path)
    text = log.read_text()
    assert secret not in text
    assert info["token"] not in text


# --- cubbyhole ------------------------------------------------------------------------------------

def test_cubbyhole_isolation(dev_server, client):
    a_tok = client.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    b_tok = client.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    a, b = dev_server.client(a_tok), dev_server.client(b_tok)

    a.write_data("cubbyhole/x", data={"v": "only-a"})
    assert a.read("cubbyhole/x")["data"] == {"v": "only-a"}
    assert a.list("cubbyhole")["data"]["keys"] == ["x"]
    # nobody else sees it: not another token, not even root (each sees its own, empty, cubbyhole)
    assert b.read("cubbyhole/x") is None
    assert client.read("cubbyhole/x") is None
    assert b.list("cubbyhole") is None
    # the same path in b's cubbyhole is a different secret
    b.write_data("cubbyhole/x", data={"v": "only-b"})
    assert a.read("cubbyhole/x")["data"] == {"v": "only-a"}
    assert b.read("cubbyhole/x")["data"] == {"v": "only-b"}
    a.delete("cubbyhole/x")
    assert a.read("cubbyhole/x") is None
    assert b.read("cubbyhole/x")["data"] == {"v": "only-b"}


def test_cubbyhole_destroyed_with_token(dev_server, client):
    # root may pick a token's id, so a revoked token's id can be reused: the new token with the same
    # id must start with an empty cubbyhole
    tid = "custom" + uid("cubby").replace("-", "")  # Vault refuses custom ids containing "."
    client.auth.token.create(id=tid, policies=["default"], ttl="10m")
    c = dev_server.client(tid)
    c.write_data("cubbyhole/k", data={"v": "1"})
    c.write_data("cubbyhole/dir/k2", data={"v": "2"})
    client.auth.token.revoke(tid)
    with pytest.raises(exceptions.Forbidden):
        c.read("cubbyhole/k")

    client.auth.token.create(id=tid, policies=["default"], ttl="10m")
    assert c.read("cubbyhole/k") is None
    assert c.read("cubbyhole/dir/k2") is None
    assert c.list("cubbyhole") is None
    client.auth.token.revoke(tid)


def test_cubbyhole_destroyed_when_token_expires(dev_server, client):
    tid = "custom" + uid("cubexp").replace("-", "")
    client.auth.token.create(id=tid, policies=["default"], ttl="1s")
    c = dev_server.client(tid)
    c.write_data("cubbyhole/k", data={"v": "1"})
    assert wait_until(lambda: not c.is_authenticated(), timeout=10)
    client.auth.token.create(id=tid, policies=["default"], ttl="10m")
    assert c.read("cubbyhole/k") is None
    client.auth.token.revoke(tid)


def test_cubbyhole_errors(dev_server, client):
    tok = client.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    c = dev_server.client(tok)
    with pytest.raises(exceptions.InvalidRequest):
        c.write_data("cubbyhole/empty", data={})
    with pytest.raises(exceptions.Forbidden):
        dev_server.client().read("cubbyhole/x")


# --- wrapped AppRole secret ID (hvac's own wrapping integration test does this) -----------------------

def test_wrapped_approle_secret_id(dev_server, client, approle_mount):
    role = uid("role")
    client.auth.approle.create_or_update_approle(role, token_policies=["default"], mount_point=approle_mount)
    role_id = client.auth.approle.read_role_id(role, mount_point=approle_mount)["data"]["role_id"]
    w = client.auth.approle.generate_secret_id(role, mount_point=approle_mount, wrap_ttl="60s")
    assert w["data"] is None
    info = w["wrap_info"]
    assert info["creation_path"] == f"auth/{approle_mount}/role/{role}/secret-id"
    inner = dev_server.client().sys.unwrap(info["token"])["data"]
    assert inner["secret_id"] and inner["secret_id_accessor"]
    auth = dev_server.client().auth.approle.login(role_id, inner["secret_id"], use_token=False,
                                                  mount_point=approle_mount)["auth"]
    assert auth["metadata"] == {"role_name": role}
