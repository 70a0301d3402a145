"""hvac 2.4 token calls (client.auth.token.*) and is_authenticated()."""

import time

import pytest
from hvac import exceptions

from conftest import uid


def test_is_authenticated(dev_server, client):
    assert client.is_authenticated() is True
    # hvac maps 400/403/404 to False but lets 401 raise: a bogus token must get 403
    assert dev_server.client("bogus-" + uid()).is_authenticated() is False


def test_bogus_token_is_forbidden_with_errors(dev_server):
    c = dev_server.client("bogus-" + uid())
    with pytest.raises(exceptions.Forbidden) as e:
        c.auth.token.lookup_self()
    assert e.value.errors and all(isinstance(m, str) for m in e.value.errors)


def test_create_and_lookup(dev_server, client):
    pol = uid("pol")
    client.sys.create_or_update_policy(pol, 'path "secret/data/x" { capabilities = ["read"] }')
    created = client.auth.token.create(policies=[pol], ttl="1h", meta={"app": "billing"}, num_uses=5)
    auth = created["auth"]
    tok, acc = auth["client_token"], auth["accessor"]
    assert tok and acc and tok != acc
    assert sorted(auth["policies"]) == sorted(["default", pol])
    assert sorted(auth["token_policies"]) == sorted(["default", pol])
    assert auth["metadata"] == {"app": "billing"}
    assert auth["lease_duration"] == 3600
    assert auth["renewable"] is True
    assert auth["orphan"] is False

    d = client.auth.token.lookup(tok)["data"]
    assert d["id"] == tok
    assert d["accessor"] == acc
    assert sorted(d["policies"]) == sorted(["default", pol])
    assert d["meta"] == {"app": "billing"}
    assert d["num_uses"] == 5
    assert d["creation_ttl"] == 3600
    assert 3500 <= d["ttl"] <= 3600
    assert d["renewable"] is True
    assert d["orphan"] is False
    assert d["type"] == "service"
    # hvac always sends display_name="token"; Vault stores it prefixed: "token-" + display_name
    assert d["display_name"] == "token-token"
    assert d["path"] == "auth/token/create"
    assert d["expire_time"]

    me = dev_server.client(tok).auth.token.lookup_self()["data"]
    assert me["id"] == tok
    assert me["accessor"] == acc

    by_acc = client.auth.token.lookup_accessor(acc)["data"]
    assert by_acc["accessor"] == acc
    assert by_acc["id"] == ""  # the token itself is never shown through its accessor
    assert by_acc["meta"] == {"app": "billing"}
    client.sys.delete_policy(pol)


def test_root_lookup_self(client, dev_server):
    d = client.auth.token.lookup_self()["data"]
    assert d["id"] == dev_server.root_token
    assert d["policies"] == ["root"]
    assert d["ttl"] == 0
    assert d["expire_time"] is None


def test_num_uses_limits_requests(dev_server, client):
    client.secrets.kv.v2.create_or_update_secret(path=uid("n"), secret={"a": 1})
    tok = client.auth.token.create(num_uses=2, ttl="10m")["auth"]["client_token"]
    limited = dev_server.client(tok)
    limited.auth.token.lookup_self()
    limited.auth.token.lookup_self()
    # both uses spent: the token is gone
    with pytest.raises(exceptions.Forbidden):
        limited.auth.token.lookup_self()
    assert limited.is_authenticated() is False


def test_renew(client):
    tok = client.auth.token.create(ttl="1h", policies=["default"])["auth"]["client_token"]
    r = client.auth.token.renew(tok, increment="2h")["auth"]
    assert r["client_token"] == tok
    assert 7100 <= r["lease_duration"] <= 7200
    assert 7100 <= client.auth.token.lookup(tok)["data"]["ttl"] <= 7200


def test_renew_self(dev_server, client):
    tok = client.auth.token.create(ttl="30m", policies=["default"])["auth"]["client_token"]
    c = dev_server.client(tok)
    r = c.auth.token.renew_self(increment="1h")["auth"]
    assert r["client_token"] == tok
    assert 3500 <= r["lease_duration"] <= 3600
    # renew_self without an increment renews by the token's own TTL
    r = c.auth.token.renew_self()["auth"]
    assert r["lease_duration"] > 0


def test_non_renewable_token(client):
    tok = client.auth.token.create(ttl="1h", renewable=False, policies=["default"])["auth"]["client_token"]
    assert client.auth.token.lookup(tok)["data"]["renewable"] is False
    with pytest.raises(exceptions.InvalidRequest):
        client.auth.token.renew(tok)


def test_revoke(dev_server, client):
    auth = client.auth.token.create(policies=["default"], ttl="10m")["auth"]
    tok, acc = auth["client_token"], auth["accessor"]
    assert dev_server.client(tok).is_authenticated() is True
    r = client.auth.token.revoke(tok)
    assert r.status_code == 204
    assert dev_server.client(tok).is_authenticated() is False
    # the accessor died with it (Vault: 400 "invalid accessor")
    with pytest.raises(exceptions.InvalidRequest) as e:
        client.auth.token.lookup_accessor(acc)
    assert e.value.errors


def test_lookup_of_revoked_token_is_forbidden(client):
    tok = client.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    client.auth.token.revoke(tok)
    # Vault: 403 {"errors":["bad token"]} (ErrPermissionDenied)
    with pytest.raises(exceptions.Forbidden) as e:
        client.auth.token.lookup(tok)
    assert e.value.errors == ["bad token"]


def test_renew_of_revoked_token_is_invalid_request(client):
    tok = client.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    client.auth.token.revoke(tok)
    with pytest.raises(exceptions.InvalidRequest) as e:
        client.auth.token.renew(tok)
    assert e.value.errors


def test_revoke_accessor(dev_server, client):
    auth = client.auth.token.create(policies=["default"], ttl="10m")["auth"]
    r = client.auth.token.revoke_accessor(auth["accessor"])
    assert r.status_code == 204
    assert dev_server.client(auth["client_token"]).is_authenticated() is False


def test_revoke_self(dev_server, client):
    tok = client.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    c = dev_server.client(tok)
    r = c.auth.token.revoke_self()  # POST with no body at all
    assert r.status_code == 204
    assert c.is_authenticated() is False


def test_revoking_parent_revokes_children_but_not_orphans(dev_server, client):
    parent = client.auth.token.create(ttl="10m")["auth"]["client_token"]  # inherits root
    pc = dev_server.client(parent)
    child = pc.auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    orphan_auth = pc.auth.token.create_orphan(policies=["default"], ttl="10m")["auth"]
    orphan = orphan_auth["client_token"]
    assert orphan_auth["orphan"] is True
    assert client.auth.token.lookup(orphan)["data"]["orphan"] is True
    assert client.auth.token.lookup(child)["data"]["orphan"] is False

    client.auth.token.revoke(parent)
    assert dev_server.client(child).is_authenticated() is False
    assert dev_server.client(orphan).is_authenticated() is True
    client.auth.token.revoke(orphan)


def test_create_orphan(dev_server, client):
    auth = client.auth.token.create_orphan(policies=["default"], ttl="15m", meta={"k": "v"})["auth"]
    assert auth["orphan"] is True
    d = client.auth.token.lookup(auth["client_token"])["data"]
    assert d["orphan"] is True
    assert d["meta"] == {"k": "v"}
    assert d["path"] == "auth/token/create-orphan"
    assert 800 <= d["ttl"] <= 900


def test_child_policies_must_be_subset(dev_server, client, token_for_policy):
    limited = token_for_policy('path "auth/token/create" { capabilities = ["update"] }')
    other = uid("pol")
    client.sys.create_or_update_policy(other, 'path "secret/*" { capabilities = ["read"] }')
    # a non-root token cannot mint a token with a policy it does not hold
    with pytest.raises((exceptions.Forbidden, exceptions.InvalidRequest)):
        limited.auth.token.create(policies=[other], ttl="5m")
    client.sys.delete_policy(other)


def test_list_accessors(client):
    auth = client.auth.token.create(policies=["default"], ttl="10m")["auth"]
    keys = client.auth.token.list_accessors()["data"]["keys"]
    assert auth["accessor"] in keys
    client.auth.token.revoke_accessor(auth["accessor"])
    assert auth["accessor"] not in client.auth.token.list_accessors()["data"]["keys"]


def test_display_name_is_prefixed_and_sanitized(client):
    tok = client.auth.token.create(display_name="My App!", policies=["default"], ttl="5m")["auth"]["client_token"]
    assert client.auth.token.lookup(tok)["data"]["display_name"] == "token-My-App"


def test_no_default_policy(client):
    pol = uid("pol")
    client.sys.create_or_update_policy(pol, 'path "secret/data/nd" { capabilities = ["read"] }')
    auth = client.auth.token.create(policies=[pol], no_default_policy=True, ttl="5m")["auth"]
    assert auth["policies"] == [pol]
    client.sys.delete_policy(pol)


def test_renew_accessor(client):
    acc = client.auth.token.create(ttl="10m", policies=["default"])["auth"]["accessor"]
    r = client.auth.token.renew_accessor(acc, increment="1h")["auth"]
    assert r["accessor"] == acc
    assert r["client_token"] == ""  # never revealed through an accessor
    assert 3500 <= r["lease_duration"] <= 3600


def test_renew_is_capped_by_explicit_max_ttl(client):
    tok = client.auth.token.create(ttl="1h", explicit_max_ttl="90m", policies=["default"])["auth"]["client_token"]
    r = client.auth.token.renew(tok, increment="3h")["auth"]
    assert 5300 <= r["lease_duration"] <= 5400
    assert client.auth.token.lookup(tok)["data"]["explicit_max_ttl"] == 5400


def test_revoke_and_orphan_children(dev_server, client):
    parent = client.auth.token.create(ttl="10m")["auth"]["client_token"]
    child = dev_server.client(parent).auth.token.create(policies=["default"], ttl="10m")["auth"]["client_token"]
    r = client.auth.token.revoke_and_orphan_children(parent)
    assert r.status_code == 204
    assert dev_server.client(parent).is_authenticated() is False
    assert dev_server.client(child).is_authenticated() is True
    assert client.auth.token.lookup(child)["data"]["orphan"] is True
    client.auth.token.revoke(child)


def test_token_expires(dev_server, client):
    tok = client.auth.token.create(ttl="1s", policies=["default"])["auth"]["client_token"]
    c = dev_server.client(tok)
    deadline = time.monotonic() + 10
    while c.is_authenticated() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert c.is_authenticated() is False


def test_create_wrapped_token(client):
    try:
        w = client.auth.token.create(policies=["default"], ttl="10m", wrap_ttl="60s")
    except exceptions.InvalidRequest as e:
        # refusing to wrap is acceptable; handing out the secret unwrapped is not
        assert e.errors
        return
    assert w["auth"] is None, "wrapping was requested but the token came back in clear"
    info = w["wrap_info"]
    assert info["token"] and info["ttl"] == 60
    assert info["creation_path"] == "auth/token/create"
    inner = client.sys.unwrap(info["token"])["auth"]
    assert inner["policies"] == ["default"]
    assert client.auth.token.lookup(inner["client_token"])["data"]["creation_ttl"] == 600
    with pytest.raises(exceptions.InvalidRequest):  # single use
        client.sys.unwrap(info["token"])
