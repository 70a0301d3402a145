"""AppRole and userpass auth methods through hvac 2.4 (client.auth.approle.*, client.auth.userpass.*).

Expected behaviour is Vault's (builtin/credential/approle, builtin/credential/userpass, core login
handling, user lockout). Every test mounts its own uuid-named auth method (``approle_mount`` /
``userpass_mount`` in conftest), so lockout counters and roles never leak between tests.

Requests as hvac sends them: create_or_update_approle joins list params with commas
("a,b"); generate_secret_id sends metadata as a JSON *string*; userpass sends policies as a list.
"""

from __future__ import annotations

import time

import pytest
from hvac import exceptions

from conftest import uid

INVALID_APPROLE = "invalid role or secret ID"
INVALID_USERPASS = "invalid username or password"


def wait_until(pred, timeout=10.0, step=0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


@pytest.fixture
def kv_policy(client):
    """A policy allowing read (only) on secret/data/<p>, with a secret written there by root."""
    p = uid("app")
    client.secrets.kv.v2.create_or_update_secret(path=p, secret={"db": "pw-" + p})
    name = uid("pol")
    client.sys.create_or_update_policy(name, f'path "secret/data/{p}" {{ capabilities = ["read"] }}')
    yield name, p
    client.sys.delete_policy(name)


def assert_vault_error(e, status, messages=None):
    resp = e.value
    assert resp.errors, f"no errors list in {resp.text!r}"
    assert all(isinstance(m, str) and m for m in resp.errors)
    assert isinstance(resp.json, dict) and resp.json["errors"] == resp.errors
    if messages is not None:
        assert resp.errors == messages
    exc = {400: exceptions.InvalidRequest, 403: exceptions.Forbidden}[status]
    assert isinstance(resp, exc)


# --- AppRole --------------------------------------------------------------------------------------

def make_role(client, mount, **kw):
    role = uid("role")
    kw.setdefault("token_policies", ["default"])
    r = client.auth.approle.create_or_update_approle(role, mount_point=mount, **kw)
    assert r.status_code == 204
    role_id = client.auth.approle.read_role_id(role, mount_point=mount)["data"]["role_id"]
    return role, role_id


def new_secret_id(client, mount, role, **kw):
    return client.auth.approle.generate_secret_id(role, mount_point=mount, **kw)["data"]


def approle_login(dev_server, mount, role_id, secret_id):
    # login needs no token: use an anonymous client
    anon = dev_server.client()
    return anon.auth.approle.login(role_id, secret_id, use_token=False, mount_point=mount)


def num_uses(client, mount, role, secret_id):
    return client.auth.approle.read_secret_id(role, secret_id, mount_point=mount)["data"]["secret_id_num_uses"]


def test_approle_end_to_end(dev_server, client, approle_mount, kv_policy):
    pol, p = kv_policy
    role, role_id = make_role(client, approle_mount, token_policies=[pol], token_ttl="10m", token_max_ttl="1h")
    assert role_id

    sid = new_secret_id(client, approle_mount, role)
    assert sid["secret_id"] and sid["secret_id_accessor"]
    assert sid["secret_id"] != sid["secret_id_accessor"]
    assert sid["secret_id_ttl"] == 0 and sid["secret_id_num_uses"] == 0

    anon = dev_server.client()
    resp = anon.auth.approle.login(role_id, sid["secret_id"], use_token=False, mount_point=approle_mount)
    assert anon.token is None  # use_token=False leaves the client alone
    auth = resp["auth"]
    assert auth["client_token"] and auth["accessor"]
    assert sorted(auth["policies"]) == sorted(["default", pol])
    assert sorted(auth["token_policies"]) == sorted(["default", pol])
    assert auth["metadata"] == {"role_name": role}
    assert auth["lease_duration"] == 600
    assert auth["renewable"] is True
    assert auth["token_type"] == "service"

    tc = dev_server.client(auth["client_token"])
    me = tc.auth.token.lookup_self()["data"]
    assert me["path"] == f"auth/{approle_mount}/login"
    assert me["meta"] == {"role_name": role}
    assert me["display_name"] == approle_mount
    # allowed by its policy
    assert tc.secrets.kv.v2.read_secret_version(path=p, raise_on_deleted_version=True)["data"]["data"] == {"db": "pw-" + p}
    # and nothing else
    with pytest.raises(exceptions.Forbidden):
        tc.secrets.kv.v2.create_or_update_secret(path=p, secret={"db": "x"})
    with pytest.raises(exceptions.Forbidden):
        tc.secrets.kv.v2.read_secret_version(path=uid("other"), raise_on_deleted_version=True)
    with pytest.raises(exceptions.Forbidden):
        tc.auth.approle.generate_secret_id(role, mount_point=approle_mount)
    # token_max_ttl caps renewal
    r = tc.auth.token.renew_self(increment="3h")["auth"]
    assert 3500 <= r["lease_duration"] <= 3600


def test_approle_login_with_hvac_use_token(dev_server, client, approle_mount):
    role, role_id = make_role(client, approle_mount)
    sid = new_secret_id(client, approle_mount, role)["secret_id"]
    anon = dev_server.client()
    resp = anon.auth.approle.login(role_id, sid, mount_point=approle_mount)  # use_token=True (default)
    assert anon.token == resp["auth"]["client_token"]
    assert anon.is_authenticated() is True


def test_approle_read_and_list_role(client, approle_mount):
    role, _ = make_role(client, approle_mount, token_policies=["default", "p2"], secret_id_num_uses=3,
                        secret_id_ttl="10m", token_ttl="5m", secret_id_bound_cidrs=["127.0.0.1/32"],
                        token_bound_cidrs=["127.0.0.1"])
    d = client.auth.approle.read_role(role, mount_point=approle_mount)["data"]
    assert d["bind_secret_id"] is True
    assert sorted(d["token_policies"]) == ["default", "p2"]
    assert d["secret_id_num_uses"] == 3
    assert d["secret_id_ttl"] == 600
    assert d["token_ttl"] == 300
    assert d["secret_id_bound_cidrs"] == ["127.0.0.1/32"]
    assert d["token_bound_cidrs"] == ["127.0.0.1"]
    assert d["token_type"] == "default"
    assert "role_id" not in d  # read separately, through role-id
    assert role in client.auth.approle.list_roles(mount_point=approle_mount)["data"]["keys"]
    with pytest.raises(exceptions.InvalidPath):
        client.auth.approle.read_role(uid("nope"), mount_point=approle_mount)


def test_approle_update_role_id(dev_server, client, approle_mount):
    role, old_role_id = make_role(client, approle_mount)
    custom = "custom-role-id-" + uid()
    r = client.auth.approle.update_role_id(role, custom, mount_point=approle_mount)
    assert r.status_code in (200, 204)
    assert client.auth.approle.read_role_id(role, mount_point=approle_mount)["data"]["role_id"] == custom

    sid = new_secret_id(client, approle_mount, role)["secret_id"]
    assert approle_login(dev_server, approle_mount, custom, sid)["auth"]["metadata"] == {"role_name": role}
    with pytest.raises(exceptions.InvalidRequest) as e:
        approle_login(dev_server, approle_mount, old_role_id, sid)
    assert_vault_error(e, 400, [INVALID_APPROLE])


def test_approle_role_id_must_be_unique(client, approle_mount):
    role_a, role_id_a = make_role(client, approle_mount)
    role_b, role_id_b = make_role(client, approle_mount)
    # Vault: setRoleEntry fails with "role_id already in use" (a plain error there, so 500)
    with pytest.raises((exceptions.InvalidRequest, exceptions.InternalServerError)):
        client.auth.approle.update_role_id(role_b, role_id_a, mount_point=approle_mount)
    assert client.auth.approle.read_role_id(role_b, mount_point=approle_mount)["data"]["role_id"] == role_id_b


def test_approle_custom_secret_id(dev_server, client, approle_mount):
    role, role_id = make_role(client, approle_mount)
    custom = "my-custom-secret-" + uid()
    d = client.auth.approle.create_custom_secret_id(role, custom, mount_point=approle_mount)["data"]
    assert d["secret_id"] == custom
    assert d["secret_id_accessor"]
    assert approle_login(dev_server, approle_mount, role_id, custom)["auth"]["client_token"]
    # registering the same secret ID again is refused, and the original keeps working
    with pytest.raises(exceptions.VaultError):
        client.auth.approle.create_custom_secret_id(role, custom, mount_point=approle_mount)
    assert approle_login(dev_server, approle_mount, role_id, custom)["auth"]["client_token"]


def test_approle_read_list_destroy_secret_id(dev_server, client, approle_mount):
    role, role_id = make_role(client, approle_mount)
    sid = new_secret_id(client, approle_mount, role, metadata={"env": "ci", "team": "a"})
    keep = new_secret_id(client, approle_mount, role)

    d = client.auth.approle.read_secret_id(role, sid["secret_id"], mount_point=approle_mount)["data"]
    assert d["secret_id_accessor"] == sid["secret_id_accessor"]
    assert d["metadata"] == {"env": "ci", "team": "a"}
    assert d["secret_id_num_uses"] == 0
    assert d["secret_id_ttl"] == 0
    assert d["cidr_list"] == [] and d["token_bound_cidrs"] == []
    assert d["creation_time"] and d["last_updated_time"] and d["expiration_time"]
    assert "secret_id" not in d  # never echoed back

    acc = client.auth.approle.read_secret_id_accessor(role, sid["secret_id_accessor"], mount_point=approle_mount)
    assert acc["data"]["secret_id_accessor"] == sid["secret_id_accessor"]

    keys = client.auth.approle.list_secret_id_accessors(role, mount_point=approle_mount)["data"]["keys"]
    assert sorted(keys) == sorted([sid["secret_id_accessor"], keep["secret_id_accessor"]])
    # listing shows accessors, never secret IDs
    assert sid["secret_id"] not in keys and keep["secret_id"] not in keys

    # secret-ID metadata is added to the token's metadata
    auth = approle_login(dev_server, approle_mount, role_id, sid["secret_id"])["auth"]
    assert auth["metadata"] == {"env": "ci", "team": "a", "role_name": role}

    r = client.auth.approle.destroy_secret_id(role, sid["secret_id"], mount_point=approle_mount)
    assert r.status_code == 204
    keys = client.auth.approle.list_secret_id_accessors(role, mount_point=approle_mount)["data"]["keys"]
    assert keys == [keep["secret_id_accessor"]]
    with pytest.raises(exceptions.InvalidRequest) as e:
        approle_login(dev_server, approle_mount, role_id, sid["secret_id"])
    assert_vault_error(e, 400, [INVALID_APPROLE])
    # the other secret ID is unaffected; tokens already issued stay valid
    assert approle_login(dev_server, approle_mount, role_id, keep["secret_id"])["auth"]["client_token"]
    assert dev_server.client(auth["client_token"]).is_authenticated() is True


def test_approle_lookup_of_unknown_secret_id(client, approle_mount):
    # Vault: pathRoleSecretIDLookupUpdate returns (nil, nil) for an unknown secret ID -> 204, no body
    role, _ = make_role(client, approle_mount)
    r = client.auth.approle.read_secret_id(role, "no-such-secret-" + uid(), mount_point=approle_mount)
    assert not isinstance(r, dict), f"expected an empty 204, got {r}"
    assert r.status_code == 204


def test_approle_secret_id_num_uses(dev_server, client, approle_mount):
    role, role_id = make_role(client, approle_mount, secret_id_num_uses=2)
    sid = new_secret_id(client, approle_mount, role)
    assert sid["secret_id_num_uses"] == 2
    assert num_uses(client, approle_mount, role, sid["secret_id"]) == 2

    t1 = approle_login(dev_server, approle_mount, role_id, sid["secret_id"])["auth"]["client_token"]
    assert num_uses(client, approle_mount, role, sid["secret_id"]) == 1
    t2 = approle_login(dev_server, approle_mount, role_id, sid["secret_id"])["auth"]["client_token"]
    assert t1 != t2
    with pytest.raises(exceptions.InvalidRequest) as e:
        approle_login(dev_server, approle_mount, role_id, sid["secret_id"])
    assert_vault_error(e, 400)
    # the spent secret ID is gone entirely
    with pytest.raises(exceptions.InvalidPath):
        client.auth.approle.list_secret_id_accessors(role, mount_point=approle_mount)
    # tokens already issued are unaffected
    assert dev_server.client(t1).is_authenticated() is True


def test_approle_secret_id_ttl(dev_server, client, approle_mount):
    role, role_id = make_role(client, approle_mount, secret_id_ttl="2s")
    sid = new_secret_id(client, approle_mount, role)
    assert sid["secret_id_ttl"] == 2
    d = client.auth.approle.read_secret_id(role, sid["secret_id"], mount_point=approle_mount)["data"]
    assert d["secret_id_ttl"] == 2
    assert d["expiration_time"] != "0001-01-01T00:00:00Z"
    assert approle_login(dev_server, approle_mount, role_id, sid["secret_id"])["auth"]["client_token"]

    def refused():
        try:
            approle_login(dev_server, approle_mount, role_id, sid["secret_id"])
            return False
        except exceptions.InvalidRequest:
            return True

    time.sleep(2.0)
    assert wait_until(refused, timeout=10, step=0.5), "an expired secret ID still logs in"


def test_approle_role_secret_id_bound_cidrs(dev_server, client, approle_mount):
    role, role_id = make_role(client, approle_mount, secret_id_bound_cidrs=["10.0.0.0/8"])
    sid = new_secret_id(client, approle_mount, role)["secret_id"]
    with pytest.raises(exceptions.InvalidRequest) as e:
        approle_login(dev_server, approle_mount, role_id, sid)
    assert_vault_error(e, 400)
    assert "127.0.0.1" in e.value.errors[0]  # Vault: source address "127.0.0.1" unauthorized ...
    # a secret ID's own cidr_list must lie inside the role's
    with pytest.raises((exceptions.InvalidRequest, exceptions.InternalServerError)):
        new_secret_id(client, approle_mount, role, cidr_list=["127.0.0.1/32"])
    # allowed when the role's CIDRs include the caller
    role2, role_id2 = make_role(client, approle_mount, secret_id_bound_cidrs=["10.0.0.0/8", "127.0.0.0/8"])
    sid2 = new_secret_id(client, approle_mount, role2)["secret_id"]
    assert approle_login(dev_server, approle_mount, role_id2, sid2)["auth"]["client_token"]


def test_approle_secret_id_cidr_list(dev_server, client, approle_mount):
    role, role_id = make_role(client, approle_mount)
    far = new_secret_id(client, approle_mount, role, cidr_list=["10.0.0.0/8"])
    near = new_secret_id(client, approle_mount, role, cidr_list=["127.0.0.1/32"])
    assert client.auth.approle.read_secret_id(role, far["secret_id"], mount_point=approle_mount)["data"]["cidr_list"] == ["10.0.0.0/8"]
    with pytest.raises(exceptions.InvalidRequest) as e:
        approle_login(dev_server, approle_mount, role_id, far["secret_id"])
    assert_vault_error(e, 400)
    assert approle_login(dev_server, approle_mount, role_id, near["secret_id"])["auth"]["client_token"]


def test_approle_token_bound_cidrs(dev_server, client, approle_mount):
    role, role_id = make_role(client, approle_mount, token_bound_cidrs=["10.0.0.0/8"])
    sid = new_secret_id(client, approle_mount, role)["secret_id"]
    auth = approle_login(dev_server, approle_mount, role_id, sid)["auth"]
    tok = auth["client_token"]
    # the token exists and carries the binding...
    d = client.auth.token.lookup(tok)["data"]
    assert d["bound_cidrs"] == ["10.0.0.0/8"]
    # ...but is refused from 127.0.0.1
    tc = dev_server.client(tok)
    with pytest.raises(exceptions.Forbidden):
        tc.auth.token.lookup_self()
    assert tc.is_authenticated() is False


def test_approle_secret_id_token_bound_cidrs(dev_server, client, approle_mount):
    role, role_id = make_role(client, approle_mount)
    sid = new_secret_id(client, approle_mount, role, token_bound_cidrs=["10.0.0.0/8"])["secret_id"]
    tok = approle_login(dev_server, approle_mount, role_id, sid)["auth"]["client_token"]
    with pytest.raises(exceptions.Forbidden):
        dev_server.client(tok).auth.token.lookup_self()
    ok = new_secret_id(client, approle_mount, role, token_bound_cidrs=["127.0.0.1/32"])["secret_id"]
    tok = approle_login(dev_server, approle_mount, role_id, ok)["auth"]["client_token"]
    # Vault prints a /32 binding without its mask (go-sockaddr)
    assert dev_server.client(tok).auth.token.lookup_self()["data"]["bound_cidrs"] in (["127.0.0.1"], ["127.0.0.1/32"])


def test_approle_bad_credentials(dev_server, client, approle_mount):
    role, role_id = make_role(client, approle_mount, secret_id_num_uses=3)
    sid = new_secret_id(client, approle_mount, role)["secret_id"]

    with pytest.raises(exceptions.InvalidRequest) as wrong_secret:
        approle_login(dev_server, approle_mount, role_id, "wrong-" + uid())
    assert_vault_error(wrong_secret, 400, [INVALID_APPROLE])
    with pytest.raises(exceptions.InvalidRequest) as wrong_role:
        approle_login(dev_server, approle_mount, "wrong-" + uid(), sid)
    assert_vault_error(wrong_role, 400, [INVALID_APPROLE])
    with pytest.raises(exceptions.InvalidRequest) as missing:
        approle_login(dev_server, approle_mount, role_id, None)
    assert_vault_error(missing, 400)
    assert wrong_secret.value.json["errors"] == wrong_role.value.json["errors"]

    # no state change: nothing was spent
    assert num_uses(client, approle_mount, role, sid) == 3
    assert approle_login(dev_server, approle_mount, role_id, sid)["auth"]["client_token"]
    assert num_uses(client, approle_mount, role, sid) == 2


def test_approle_lockout(dev_server, client, approle_mount):
    role, role_id = make_role(client, approle_mount)
    sid = new_secret_id(client, approle_mount, role)["secret_id"]
    for _ in range(5):
        with pytest.raises(exceptions.InvalidRequest) as e:
            approle_login(dev_server, approle_mount, role_id, "wrong-" + uid())
        assert_vault_error(e, 400, [INVALID_APPROLE])
    with pytest.raises(exceptions.Forbidden) as e:
        approle_login(dev_server, approle_mount, role_id, sid)
    assert_vault_error(e, 403, ["permission denied"])


def renew_refused(tc, increment="1h"):
    """True if renew-self did not extend the token (an error, or a 2xx without a new lease)."""
    try:
        r = tc.auth.token.renew_self(increment=increment)
    except exceptions.VaultError:
        return True
    return not isinstance(r, dict) or not r.get("auth")


def test_approle_token_renewal(dev_server, client, approle_mount):
    role, role_id = make_role(client, approle_mount, token_ttl="60s", token_max_ttl="2h")
    sid = new_secret_id(client, approle_mount, role)["secret_id"]
    tc = dev_server.client(approle_login(dev_server, approle_mount, role_id, sid)["auth"]["client_token"])
    r = tc.auth.token.renew_self(increment="1h")["auth"]
    assert 3500 <= r["lease_duration"] <= 3600
    r = tc.auth.token.renew_self(increment="5h")["auth"]  # capped by token_max_ttl
    assert r["lease_duration"] <= 7200


def test_approle_token_not_renewed_after_role_deleted(dev_server, client, approle_mount):
    role, role_id = make_role(client, approle_mount, token_ttl="60s", token_max_ttl="2h")
    sid = new_secret_id(client, approle_mount, role)["secret_id"]
    tc = dev_server.client(approle_login(dev_server, approle_mount, role_id, sid)["auth"]["client_token"])
    client.auth.approle.delete_role(role, mount_point=approle_mount)
    assert renew_refused(tc), "renewed although its role is gone"
    assert tc.auth.token.lookup_self()["data"]["ttl"] <= 60


def test_approle_delete_role(dev_server, client, approle_mount):
    role, role_id = make_role(client, approle_mount)
    sid = new_secret_id(client, approle_mount, role)["secret_id"]
    r = client.auth.approle.delete_role(role, mount_point=approle_mount)
    assert r.status_code == 204
    with pytest.raises(exceptions.InvalidRequest) as e:
        approle_login(dev_server, approle_mount, role_id, sid)
    assert_vault_error(e, 400, [INVALID_APPROLE])
    # a new role of the same name gets a new role_id, and the old secret ID does not work for it
    client.auth.approle.create_or_update_approle(role, token_policies=["default"], mount_point=approle_mount)
    new_role_id = client.auth.approle.read_role_id(role, mount_point=approle_mount)["data"]["role_id"]
    assert new_role_id != role_id
    with pytest.raises(exceptions.InvalidRequest):
        approle_login(dev_server, approle_mount, new_role_id, sid)


def test_approle_role_needs_a_constraint(client, approle_mount):
    # Vault: bind_secret_id=false with no CIDR binding is refused
    with pytest.raises(exceptions.InvalidRequest):
        client.auth.approle.create_or_update_approle(uid("role"), bind_secret_id=False, mount_point=approle_mount)


def test_approle_without_secret_id_but_cidr_bound(dev_server, client, approle_mount):
    role, role_id = make_role(client, approle_mount, bind_secret_id=False,
                              secret_id_bound_cidrs=["127.0.0.1/32"])
    assert approle_login(dev_server, approle_mount, role_id, None)["auth"]["metadata"] == {"role_name": role}


def test_approle_secrets_not_in_audit_log(dev_server, client, approle_mount, tmp_path):
    role, role_id = make_role(client, approle_mount)
    path = uid("aud")
    log = tmp_path / "approle.log"
    client.sys.enable_audit_device(device_type="file", path=path, options={"file_path": str(log)})
    try:
        sid = new_secret_id(client, approle_mount, role)["secret_id"]
        tok = approle_login(dev_server, approle_mount, role_id, sid)["auth"]["client_token"]
        h = client.sys.calculate_hash(path, sid)["data"]["hash"]
    finally:
        client.sys.disable_audit_device(path)
    text = log.read_text()
    assert sid not in text and tok not in text and role_id not in text
    assert h in text


# --- userpass -------------------------------------------------------------------------------------

def make_user(client, mount, policies=("default",), **kw):
    user = uid("user")
    password = "pw-" + uid()
    r = client.auth.userpass.create_or_update_user(user, password, policies=list(policies), mount_point=mount, **kw)
    assert r.status_code == 204
    return user, password


def up_login(dev_server, mount, user, password, use_token=False):
    return dev_server.client().auth.userpass.login(user, password, use_token=use_token, mount_point=mount)


def test_userpass_end_to_end(dev_server, client, userpass_mount, kv_policy):
    pol, p = kv_policy
    user, password = make_user(client, userpass_mount, policies=[pol])

    anon = dev_server.client()
    resp = anon.auth.userpass.login(user, password, mount_point=userpass_mount)  # use_token=True
    auth = resp["auth"]
    assert anon.token == auth["client_token"]
    assert sorted(auth["policies"]) == sorted(["default", pol])
    assert sorted(auth["token_policies"]) == sorted(["default", pol])
    assert auth["metadata"] == {"username": user}
    assert auth["renewable"] is True
    assert anon.is_authenticated() is True

    me = anon.auth.token.lookup_self()["data"]
    assert me["path"] == f"auth/{userpass_mount}/login/{user}"
    assert me["display_name"] == f"{userpass_mount}-{user}"
    assert me["meta"] == {"username": user}
    assert anon.secrets.kv.v2.read_secret_version(path=p, raise_on_deleted_version=True)["data"]["data"]["db"]
    with pytest.raises(exceptions.Forbidden):
        anon.secrets.kv.v2.read_secret_version(path=uid("other"), raise_on_deleted_version=True)
    with pytest.raises(exceptions.Forbidden):
        anon.auth.userpass.create_or_update_user(uid("u"), "x", mount_point=userpass_mount)


def test_userpass_token_renewal(dev_server, client, userpass_mount):
    user, password = make_user(client, userpass_mount, token_ttl="60s", token_max_ttl="2h")
    tc = dev_server.client(up_login(dev_server, userpass_mount, user, password)["auth"]["client_token"])
    r = tc.auth.token.renew_self(increment="1h")["auth"]
    assert 3500 <= r["lease_duration"] <= 3600


def test_userpass_token_not_renewed_after_user_deleted(dev_server, client, userpass_mount):
    user, password = make_user(client, userpass_mount, token_ttl="60s", token_max_ttl="2h")
    tc = dev_server.client(up_login(dev_server, userpass_mount, user, password)["auth"]["client_token"])
    client.auth.userpass.delete_user(user, mount_point=userpass_mount)
    assert renew_refused(tc), "renewed although the user is gone"
    assert tc.auth.token.lookup_self()["data"]["ttl"] <= 60


def test_userpass_token_not_renewed_after_policies_changed(dev_server, client, userpass_mount):
    user, password = make_user(client, userpass_mount, policies=["default", "old-pol"],
                               token_ttl="60s", token_max_ttl="2h")
    tc = dev_server.client(up_login(dev_server, userpass_mount, user, password)["auth"]["client_token"])
    client.auth.userpass.create_or_update_user(user, policies=["default"], mount_point=userpass_mount)
    assert renew_refused(tc), "renewed with a policy set the user no longer has"
    assert tc.auth.token.lookup_self()["data"]["ttl"] <= 60


def test_userpass_token_bound_cidrs_checked_at_login(dev_server, client, userpass_mount):
    # Vault's userpass login itself checks token_bound_cidrs: 403 permission denied, no token
    user, password = make_user(client, userpass_mount, token_bound_cidrs=["10.0.0.0/8"])
    with pytest.raises(exceptions.Forbidden) as e:
        up_login(dev_server, userpass_mount, user, password)
    assert_vault_error(e, 403, ["permission denied"])
    ok_user, ok_pw = make_user(client, userpass_mount, token_bound_cidrs=["127.0.0.1/32"])
    assert up_login(dev_server, userpass_mount, ok_user, ok_pw)["auth"]["client_token"]


def test_userpass_usernames_stored_lowercase(dev_server, client, userpass_mount):
    user = uid("Mixed")
    client.auth.userpass.create_or_update_user(user, "pw-x", policies=["default"], mount_point=userpass_mount)
    assert client.auth.userpass.list_user(mount_point=userpass_mount)["data"]["keys"] == [user.lower()]
    assert client.auth.userpass.read_user(user.upper(), mount_point=userpass_mount)["data"]["token_policies"] == ["default"]
    assert up_login(dev_server, userpass_mount, user, "pw-x")["auth"]["metadata"] == {"username": user.lower()}


def test_userpass_update_password(dev_server, client, userpass_mount):
    user, old = make_user(client, userpass_mount)
    new = "new-" + uid()
    r = client.auth.userpass.update_password_on_user(user, new, mount_point=userpass_mount)
    assert r.status_code == 204
    assert up_login(dev_server, userpass_mount, user, new)["auth"]["client_token"]
    with pytest.raises(exceptions.InvalidRequest) as e:
        up_login(dev_server, userpass_mount, user, old)
    assert_vault_error(e, 400, [INVALID_USERPASS])


def test_userpass_list_read_delete(dev_server, client, userpass_mount):
    u1, p1 = make_user(client, userpass_mount, policies=["default", "extra"], token_ttl="20m")
    u2, _ = make_user(client, userpass_mount)
    assert sorted(client.auth.userpass.list_user(mount_point=userpass_mount)["data"]["keys"]) == sorted([u1, u2])

    resp = client.auth.userpass.read_user(u1, mount_point=userpass_mount)
    d = resp["data"]
    assert sorted(d["token_policies"]) == ["default", "extra"]
    assert "extra" in d["policies"]  # set through the deprecated "policies" field (hvac's only option)
    assert d["token_ttl"] == 1200
    assert "password" not in d and "password_hash" not in d
    text = str(resp)
    assert p1 not in text and "argon" not in text.lower() and "$2" not in text

    r = client.auth.userpass.delete_user(u1, mount_point=userpass_mount)
    assert r.status_code == 204
    with pytest.raises(exceptions.InvalidRequest) as e:
        up_login(dev_server, userpass_mount, u1, p1)
    assert_vault_error(e, 400, [INVALID_USERPASS])
    with pytest.raises(exceptions.InvalidPath):
        client.auth.userpass.read_user(u1, mount_point=userpass_mount)
    assert client.auth.userpass.list_user(mount_point=userpass_mount)["data"]["keys"] == [u2]
    client.auth.userpass.delete_user(u2, mount_point=userpass_mount)
    with pytest.raises(exceptions.InvalidPath):
        client.auth.userpass.list_user(mount_point=userpass_mount)


def test_userpass_update_policies_keeps_password(dev_server, client, userpass_mount):
    user, password = make_user(client, userpass_mount, policies=["not_root"])
    client.auth.userpass.create_or_update_user(user, policies=["somethingelse"], mount_point=userpass_mount)
    assert "somethingelse" in client.auth.userpass.read_user(user, mount_point=userpass_mount)["data"]["policies"]
    auth = up_login(dev_server, userpass_mount, user, password)["auth"]
    assert "somethingelse" in auth["policies"] and "not_root" not in auth["policies"]


def test_userpass_ttl(dev_server, client, userpass_mount):
    # hvac's own integration test passes the legacy "ttl" kwarg
    user, password = make_user(client, userpass_mount, ttl="10s")
    assert up_login(dev_server, userpass_mount, user, password)["auth"]["lease_duration"] == 10
    client.auth.userpass.create_or_update_user(user, token_ttl="15s", mount_point=userpass_mount)
    assert up_login(dev_server, userpass_mount, user, password)["auth"]["lease_duration"] == 15


def test_userpass_create_requires_password(client, userpass_mount):
    with pytest.raises(exceptions.InvalidRequest):
        client.auth.userpass.create_or_update_user(uid("user"), policies=["default"], mount_point=userpass_mount)


def test_userpass_usernames_are_case_insensitive(dev_server, client, userpass_mount):
    user, password = make_user(client, userpass_mount)
    auth = up_login(dev_server, userpass_mount, user.upper(), password)["auth"]
    assert auth["metadata"] == {"username": user}


def test_userpass_unknown_user_and_wrong_password_look_the_same(dev_server, client, userpass_mount):
    user, _ = make_user(client, userpass_mount)
    with pytest.raises(exceptions.InvalidRequest) as wrong_pw:
        up_login(dev_server, userpass_mount, user, "wrong")
    with pytest.raises(exceptions.InvalidRequest) as no_user:
        up_login(dev_server, userpass_mount, uid("ghost"), "wrong")
    assert_vault_error(wrong_pw, 400, [INVALID_USERPASS])
    assert_vault_error(no_user, 400, [INVALID_USERPASS])
    assert wrong_pw.value.json == no_user.value.json


def test_userpass_lockout(dev_server, client, userpass_mount):
    user, password = make_user(client, userpass_mount)
    other, other_pw = make_user(client, userpass_mount)
    for _ in range(5):
        with pytest.raises(exceptions.InvalidRequest) as e:
            up_login(dev_server, userpass_mount, user, "wrong-" + uid())
        assert_vault_error(e, 400, [INVALID_USERPASS])
    # locked: even the right password is refused, before the password is checked
    # (Vault's core returns ErrPermissionDenied for a locked user: 403 "permission denied")
    with pytest.raises(exceptions.Forbidden) as e:
        up_login(dev_server, userpass_mount, user, password)
    assert_vault_error(e, 403, ["permission denied"])
    # other users are not affected
    assert up_login(dev_server, userpass_mount, other, other_pw)["auth"]["client_token"]


def test_userpass_success_resets_lockout_counter(dev_server, client, userpass_mount):
    user, password = make_user(client, userpass_mount)
    for _ in range(2):
        for _ in range(4):
            with pytest.raises(exceptions.InvalidRequest):
                up_login(dev_server, userpass_mount, user, "wrong")
        assert up_login(dev_server, userpass_mount, user, password)["auth"]["client_token"]


def test_userpass_password_not_in_audit_log(dev_server, client, userpass_mount, tmp_path):
    user, password = make_user(client, userpass_mount)
    path = uid("aud")
    log = tmp_path / "up.log"
    client.sys.enable_audit_device(device_type="file", path=path, options={"file_path": str(log)})
    try:
        client.auth.userpass.update_password_on_user(user, password + "2", mount_point=userpass_mount)
        tok = up_login(dev_server, userpass_mount, user, password + "2")["auth"]["client_token"]
    finally:
        client.sys.disable_audit_device(path)
    text = log.read_text()
    assert password not in text and tok not in text


# --- disabling an auth method --------------------------------------------------------------------

def test_disabling_auth_method_revokes_its_tokens(dev_server, client):
    up = uid("userpass")
    ar = uid("approle")
    client.sys.enable_auth_method("userpass", path=up)
    client.sys.enable_auth_method("approle", path=ar)
    try:
        user, password = make_user(client, up)
        up_tok = up_login(dev_server, up, user, password)["auth"]["client_token"]
        role, role_id = make_role(client, ar)
        sid = new_secret_id(client, ar, role)["secret_id"]
        ar_tok = approle_login(dev_server, ar, role_id, sid)["auth"]["client_token"]
        other = client.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]

        client.sys.disable_auth_method(up)
        assert dev_server.client(up_tok).is_authenticated() is False
        assert dev_server.client(ar_tok).is_authenticated() is True
        assert dev_server.client(other).is_authenticated() is True
        with pytest.raises(exceptions.InvalidPath):
            client.sys.list_leases(f"auth/{up}")
    finally:
        for p in (up, ar):
            try:
                client.sys.disable_auth_method(p)
            except exceptions.VaultError:
                pass
    assert dev_server.client(ar_tok).is_authenticated() is False
