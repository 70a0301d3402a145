"""hvac 2.4 lease calls (client.sys.*lease*) on token leases.

Every token with a TTL has a lease `<creation path>/<token hash>` (Vault: `auth/token/create/<hash>`).
hvac sends: read_lease -> PUT sys/leases/lookup {"lease_id"}, list_leases -> LIST sys/leases/lookup/<prefix>,
renew_lease -> PUT sys/leases/renew {"lease_id","increment"}, revoke_lease -> PUT sys/leases/revoke
{"lease_id"}, revoke_prefix -> PUT sys/leases/revoke-prefix/<prefix> {"prefix"}.

revoke_prefix('auth/token/create') on the shared dev server would revoke every other test's tokens,
so those tests run on a fresh `config_server`.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from hvac import exceptions

from conftest import uid

TOKEN_PREFIX = "auth/token/create"


def lease_keys(c, prefix=TOKEN_PREFIX) -> set[str]:
    try:
        return set(c.sys.list_leases(prefix)["data"]["keys"])
    except exceptions.InvalidPath:  # Vault answers 404 when there is nothing under the prefix
        return set()


def create_with_lease(c, prefix=TOKEN_PREFIX, create=None, **kw):
    """Create a token and find its lease id by diffing the lease listing (tests run serially)."""
    before = lease_keys(c, prefix)
    auth = (create or c.auth.token.create)(**kw)["auth"]
    new = lease_keys(c, prefix) - before
    assert len(new) == 1, f"expected exactly one new lease under {prefix}, got {new}"
    return auth, f"{prefix}/{new.pop()}"


def parse_time(s: str) -> float:
    # RFC 3339 with up to nanoseconds; Python's fromisoformat takes at most microseconds
    head, _, frac = s.rstrip("Z").partition(".")
    frac = (frac + "000000")[:6]
    return datetime.fromisoformat(f"{head}.{frac}+00:00").timestamp()


def wait_until(pred, timeout=10.0, step=0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def init_unseal(srv):
    c = srv.client()
    init = c.sys.initialize(1, 1)
    assert c.sys.submit_unseal_key(init["keys"][0])["sealed"] is False
    return init, srv.client(init["root_token"])


# --- dev server -----------------------------------------------------------------------------------

def test_token_has_lease_that_can_be_listed_and_read(client):
    auth, lid = create_with_lease(client, ttl="10m", policies=["default"])
    assert lid.startswith("auth/token/create/")
    # the lease id never contains the token itself
    assert auth["client_token"] not in lid

    d = client.sys.read_lease(lid)["data"]
    assert d["id"] == lid
    assert d["renewable"] is True
    assert 590 <= d["ttl"] <= 600
    assert d["last_renewal"] is None
    assert 595 <= parse_time(d["expire_time"]) - parse_time(d["issue_time"]) <= 605
    assert abs(parse_time(d["issue_time"]) - time.time()) < 60


def test_list_leases_prefix_forms(client):
    _, lid = create_with_lease(client, ttl="10m", policies=["default"])
    # trailing slash or not: same listing; the parent lists the child "folder"
    assert lid.rsplit("/", 1)[1] in client.sys.list_leases("auth/token/create/")["data"]["keys"]
    assert "create/" in client.sys.list_leases("auth/token")["data"]["keys"]
    assert "token/" in client.sys.list_leases("auth")["data"]["keys"]
    with pytest.raises(exceptions.InvalidPath):
        client.sys.list_leases(f"auth/{uid('nothing')}")


def test_token_renew_moves_the_lease(client):
    auth, lid = create_with_lease(client, ttl="10m", policies=["default"])
    r = client.auth.token.renew(auth["client_token"], increment="2h")["auth"]
    assert 7100 <= r["lease_duration"] <= 7200
    d = client.sys.read_lease(lid)["data"]
    assert 7100 <= d["ttl"] <= 7200
    assert d["last_renewal"] is not None
    assert 7150 <= parse_time(d["expire_time"]) - time.time() <= 7210


def test_token_revoke_removes_the_lease(client):
    auth, lid = create_with_lease(client, ttl="10m", policies=["default"])
    client.auth.token.revoke(auth["client_token"])
    assert lid.rsplit("/", 1)[1] not in lease_keys(client)
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.read_lease(lid)


def test_revoke_lease_revokes_the_token(dev_server, client):
    auth, lid = create_with_lease(client, ttl="10m", policies=["default"])
    tc = dev_server.client(auth["client_token"])
    assert tc.is_authenticated() is True
    r = client.sys.revoke_lease(lid)
    assert r.status_code == 204
    assert tc.is_authenticated() is False
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.read_lease(lid)
    assert lid.rsplit("/", 1)[1] not in lease_keys(client)
    with pytest.raises(exceptions.InvalidRequest):
        client.auth.token.lookup_accessor(auth["accessor"])


def test_revoke_lease_revokes_child_tokens(dev_server, client):
    auth, lid = create_with_lease(client, ttl="10m")
    child = dev_server.client(auth["client_token"]).auth.token.create(policies=["default"], ttl="5m")
    client.sys.revoke_lease(lid)
    assert dev_server.client(child["auth"]["client_token"]).is_authenticated() is False


def test_revoke_prefix_with_exact_lease_id(dev_server, client):
    # Vault: a prefix without trailing slash that is an existing lease id revokes exactly that lease
    auth, lid = create_with_lease(client, ttl="10m", policies=["default"])
    other, _ = create_with_lease(client, ttl="10m", policies=["default"])
    try:
        r = client.sys.revoke_prefix(lid)
        assert r.status_code == 204
        assert dev_server.client(auth["client_token"]).is_authenticated() is False
        assert dev_server.client(other["client_token"]).is_authenticated() is True
    finally:
        for a in (auth, other):
            try:
                client.auth.token.revoke(a["client_token"])
            except exceptions.VaultError:
                pass


def test_orphan_token_lease_path(client):
    _, lid = create_with_lease(client, prefix="auth/token/create-orphan",
                               create=client.auth.token.create_orphan, ttl="10m", policies=["default"])
    assert lid.startswith("auth/token/create-orphan/")
    assert client.sys.read_lease(lid)["data"]["id"] == lid
    client.sys.revoke_lease(lid)


def test_expired_token_lease_goes_away(dev_server, client):
    auth, lid = create_with_lease(client, ttl="1s", policies=["default"])
    key = lid.rsplit("/", 1)[1]
    # the expiration manager revokes the lease on its own, without anyone using the token
    assert wait_until(lambda: key not in lease_keys(client), timeout=10)
    assert dev_server.client(auth["client_token"]).is_authenticated() is False


def test_lease_errors(client):
    with pytest.raises(exceptions.InvalidRequest) as e:
        client.sys.read_lease(f"auth/token/create/{uid('nope')}")
    assert e.value.errors
    with pytest.raises(exceptions.InvalidRequest) as e:
        client.sys.renew_lease(f"auth/token/create/{uid('nope')}", 60)
    assert e.value.errors
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.read_lease("")


def test_lease_listing_needs_sudo(token_for_policy):
    c = token_for_policy('path "sys/leases/*" { capabilities = ["read", "list", "update"] }')
    with pytest.raises(exceptions.Forbidden):
        c.sys.list_leases(TOKEN_PREFIX)
    with pytest.raises(exceptions.Forbidden):
        c.sys.revoke_prefix(f"auth/token/create/{uid('x')}")


def test_non_renewable_token_lease(client):
    _, lid = create_with_lease(client, ttl="10m", renewable=False, policies=["default"])
    assert client.sys.read_lease(lid)["data"]["renewable"] is False
    with pytest.raises((exceptions.InvalidRequest, exceptions.Forbidden)):
        client.sys.renew_lease(lid, 3600)
    client.sys.revoke_lease(lid)


def test_sys_leases_renew_refuses_token_leases(client):
    auth, lid = create_with_lease(client, ttl="10m", policies=["default"])
    with pytest.raises((exceptions.InvalidRequest, exceptions.Forbidden)) as e:
        client.sys.renew_lease(lid, 3600)
    assert "tokens cannot be renewed through this endpoint" in str(e.value)
    assert client.auth.token.lookup(auth["client_token"])["data"]["ttl"] <= 600
    client.auth.token.revoke(auth["client_token"])


def test_default_policy_cannot_extend_another_tokens_life(dev_server, client):
    victim, lid = create_with_lease(client, ttl="60s", policies=["default"])
    other = client.auth.token.create(ttl="10m", policies=["default"])["auth"]["client_token"]
    oc = dev_server.client(other)
    with pytest.raises((exceptions.InvalidRequest, exceptions.Forbidden)):
        oc.sys.renew_lease(lid, 7200)
    assert client.auth.token.lookup(victim["client_token"])["data"]["ttl"] <= 60
    client.auth.token.revoke(victim["client_token"])
    client.auth.token.revoke(other)


# --- config server (revoke_prefix, restart) --------------------------------------------------------

def test_revoke_prefix(config_server):
    init, root = init_unseal(config_server)
    toks = [root.auth.token.create(ttl="10m", policies=["default"])["auth"]["client_token"] for _ in range(3)]
    orphan = root.auth.token.create_orphan(ttl="10m", policies=["default"])["auth"]["client_token"]
    assert len(lease_keys(root)) == 3
    assert len(lease_keys(root, "auth/token/create-orphan")) == 1

    r = root.sys.revoke_prefix(TOKEN_PREFIX)
    assert r.status_code == 204
    for t in toks:
        assert config_server.client(t).is_authenticated() is False
    with pytest.raises(exceptions.InvalidPath):
        root.sys.list_leases(TOKEN_PREFIX)
    # "auth/token/create" is a path prefix, not a string prefix: create-orphan leases survive
    assert config_server.client(orphan).is_authenticated() is True
    assert len(lease_keys(root, "auth/token/create-orphan")) == 1
    # the root token has no lease and is untouched
    assert root.auth.token.lookup_self()["data"]["policies"] == ["root"]


def test_revoke_force(config_server):
    _, root = init_unseal(config_server)
    tok = root.auth.token.create(ttl="10m", policies=["default"])["auth"]["client_token"]
    r = root.sys.revoke_force(TOKEN_PREFIX)
    assert r.status_code == 204
    assert config_server.client(tok).is_authenticated() is False
    assert lease_keys(root) == set()


def test_leases_survive_restart_and_still_expire(config_server):
    init, root = init_unseal(config_server)
    long_auth, long_lid = create_with_lease(root, ttl="1h", policies=["default"])
    short_auth, short_lid = create_with_lease(root, ttl="3s", policies=["default"])
    expire_before = root.sys.read_lease(long_lid)["data"]["expire_time"]

    config_server.restart()
    c = config_server.client()
    assert c.sys.submit_unseal_key(init["keys"][0])["sealed"] is False
    root = config_server.client(init["root_token"])

    d = root.sys.read_lease(long_lid)["data"]
    assert d["expire_time"] == expire_before
    assert config_server.client(long_auth["client_token"]).is_authenticated() is True
    # the short one is revoked by the expiration manager after the restart, unprompted
    short_key = short_lid.rsplit("/", 1)[1]
    assert wait_until(lambda: short_key not in lease_keys(root), timeout=12)
    assert config_server.client(short_auth["client_token"]).is_authenticated() is False


# --- login tokens (AppRole, userpass) ---------------------------------------------------------------

def test_approle_login_token_lease(dev_server, client, approle_mount):
    role = uid("role")
    client.auth.approle.create_or_update_approle(role, token_policies=["default"], token_ttl="15m",
                                                 mount_point=approle_mount)
    role_id = client.auth.approle.read_role_id(role, mount_point=approle_mount)["data"]["role_id"]
    sid = client.auth.approle.generate_secret_id(role, mount_point=approle_mount)["data"]["secret_id"]
    anon = dev_server.client()
    prefix = f"auth/{approle_mount}/login"

    def login(**_):
        return anon.auth.approle.login(role_id, sid, use_token=False, mount_point=approle_mount)

    auth, lid = create_with_lease(client, prefix=prefix, create=login)
    assert lid.startswith(prefix + "/")
    d = client.sys.read_lease(lid)["data"]
    assert d["id"] == lid and d["renewable"] is True
    assert 890 <= d["ttl"] <= 900
    assert prefix.split("/")[1] + "/" in client.sys.list_leases("auth")["data"]["keys"]

    tc = dev_server.client(auth["client_token"])
    assert tc.is_authenticated() is True
    client.sys.revoke_lease(lid)
    assert tc.is_authenticated() is False
    with pytest.raises(exceptions.InvalidPath):
        client.sys.list_leases(prefix)


def test_userpass_login_token_lease(dev_server, client, userpass_mount):
    user, password = uid("user"), "pw-" + uid()
    client.auth.userpass.create_or_update_user(user, password, policies=["default"], token_ttl="12m",
                                               mount_point=userpass_mount)
    prefix = f"auth/{userpass_mount}/login/{user}"

    def login(**_):
        return dev_server.client().auth.userpass.login(user, password, use_token=False, mount_point=userpass_mount)

    auth, lid = create_with_lease(client, prefix=prefix, create=login)
    assert 710 <= client.sys.read_lease(lid)["data"]["ttl"] <= 720
    client.auth.token.revoke(auth["client_token"])
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.read_lease(lid)
