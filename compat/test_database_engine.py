"""Vault's database secrets engine (`database`), driven by hvac 2.4, against the real PostgreSQL and
MariaDB servers of scripts/databases.sh (COFFER_TEST_PG_* / COFFER_TEST_MYSQL_*).

hvac sends: configure -> POST <mount>/config/<name>, create_role -> POST <mount>/roles/<name>,
generate_credentials -> GET <mount>/creds/<role>, rotate_root_credentials -> POST
<mount>/rotate-root/<name>; the leases of issued credentials (`<mount>/creds/<role>/<id>`) are
renewed / revoked through sys/leases/*.

Most tests run once per database (the ``db_kind`` / ``db_engine`` fixtures of conftest.py): a
fresh mount on the shared dev server, disabled afterwards, with whatever users the test left in the
database dropped. A generated username contains the start of the role's name between hyphens
(8 characters on PostgreSQL, 4 on MySQL; role names are random): that is how the tests find users
the engine left behind. rotate-root only ever changes the password of a
dedicated admin made for the test, never the shared admin of the environment.
"""

from __future__ import annotations

import json
import time

import pytest
from hvac import exceptions

from conftest import ConfigServer, all_strings, audit_entries, uid
from database_helpers import (HMAC_RE, MY, DbEngine, short_name,
                              wait_until)

NOT_ALLOWED = (exceptions.InvalidRequest, exceptions.Forbidden)


def check_creds(engine: DbEngine, r: dict, role: str, ttl: int) -> tuple[str, str, str]:
    """The shape of a creds/<role> answer; answers (username, password, lease_id)."""
    d = r["data"]
    user, password = d["username"], d["password"]
    assert isinstance(user, str) and user and isinstance(password, str) and len(password) >= 16, d
    assert user.startswith("v-"), user
    assert engine.db.fragment(role) in user, f"the generated username {user!r} names the role {role!r}"
    assert len(user) <= engine.db.max_username, user
    lid = r["lease_id"]
    assert lid.startswith(f"{engine.mount}/creds/{role}/") and len(lid) > len(f"{engine.mount}/creds/{role}/"), lid
    assert r["lease_duration"] == ttl, r
    assert r["renewable"] is True, r
    return user, password, lid


# --- connections ----------------------------------------------------------------------------------

def test_config_write_read_list_delete(db_engine):
    e = db_engine
    name = uid("conn")
    e.configure(name, allowed_roles=["app", "ops"])
    r = e.client.secrets.database.read_connection(name, mount_point=e.mount)
    d = r["data"]
    assert d["plugin_name"] == e.db.plugin_name
    assert d["connection_details"]["connection_url"] == e.db.connection_url()
    assert d["connection_details"]["username"] == e.db.admin_user
    assert "password" not in d["connection_details"], d
    assert sorted(d["allowed_roles"]) == ["app", "ops"]
    # the root password is never answered, under any key
    assert e.db.admin_password not in json.dumps(r)

    other = uid("conn")
    e.configure(other)
    keys = e.client.secrets.database.list_connections(mount_point=e.mount)["data"]["keys"]
    assert sorted(keys) == sorted([name, other])

    e.client.secrets.database.delete_connection(name, mount_point=e.mount)
    with pytest.raises(exceptions.InvalidPath):
        e.client.secrets.database.read_connection(name, mount_point=e.mount)
    assert e.client.secrets.database.list_connections(mount_point=e.mount)["data"]["keys"] == [other]


def test_allowed_roles_as_a_comma_string(db_engine):
    e = db_engine
    name = uid("conn")
    a, b = short_name(), short_name()
    e.configure(name, allowed_roles=f"{a},{b}")
    assert sorted(e.client.secrets.database.read_connection(name, mount_point=e.mount)["data"]["allowed_roles"]) \
        == sorted([a, b])
    role = e.role(name, name=b)
    user, password, _ = check_creds(e, e.creds(role), role, 300)
    assert e.db.login(user, password)


def test_wrong_root_password_is_refused_when_verifying(db_engine):
    e = db_engine
    name = uid("conn")
    with pytest.raises(exceptions.InvalidRequest) as err:
        e.configure(name, password="not-the-password")
    assert err.value.errors
    with pytest.raises(exceptions.InvalidPath):
        e.client.secrets.database.read_connection(name, mount_point=e.mount)
    try:
        keys = e.client.secrets.database.list_connections(mount_point=e.mount)["data"]["keys"]
    except exceptions.InvalidPath:  # Vault answers 404 to an empty listing
        keys = []
    assert name not in keys
    # verify_connection=true said explicitly: the same
    with pytest.raises(exceptions.InvalidRequest):
        e.configure(name, password="not-the-password", verify_connection=True)


def test_unverified_config_is_stored_but_cannot_issue(db_engine):
    e = db_engine
    name = uid("conn")
    e.configure(name, password="not-the-password", verify_connection=False)
    d = e.client.secrets.database.read_connection(name, mount_point=e.mount)["data"]
    assert d["connection_details"]["username"] == e.db.admin_user
    role = e.role(name)
    with pytest.raises(exceptions.VaultError):
        e.creds(role)
    assert e.leftovers() == []
    assert e.leases(role) == []


@pytest.mark.parametrize("plugin", ["mysql-aurora-database-plugin", "mysql-rds-database-plugin",
                                    "mysql-legacy-database-plugin"])
def test_mysql_plugin_variants(client, plugin):
    MY.require()
    e = DbEngine(client, MY)
    try:
        e.enable()
        name = uid("conn")
        e.configure(name, plugin_name=plugin)
        assert e.client.secrets.database.read_connection(name, mount_point=e.mount)["data"]["plugin_name"] == plugin
        role = e.role(name)
        r = e.creds(role)
        user, password = r["data"]["username"], r["data"]["password"]
        assert len(user) <= 32, user
        assert r["lease_id"].startswith(f"{e.mount}/creds/{role}/")
        assert e.db.login(user, password)
        e.client.sys.revoke_lease(r["lease_id"])
        assert not e.db.login(user, password)
        assert not e.db.user_exists(user)
    finally:
        e.cleanup()


# --- roles ----------------------------------------------------------------------------------------

def test_role_write_read_list_delete(db_engine):
    e = db_engine
    conn = uid("conn")
    e.configure(conn)
    role = e.role(conn, default_ttl="5m", max_ttl="1h")
    d = e.client.secrets.database.read_role(role, mount_point=e.mount)["data"]
    assert d["db_name"] == conn
    assert d["creation_statements"] == e.db.creation()
    assert d["revocation_statements"] == e.db.revocation()
    assert d["default_ttl"] == 300 and d["max_ttl"] == 3600
    other = e.role(conn)
    assert sorted(e.client.secrets.database.list_roles(mount_point=e.mount)["data"]["keys"]) == sorted([role, other])
    e.client.secrets.database.delete_role(role, mount_point=e.mount)
    with pytest.raises(exceptions.InvalidPath):
        e.client.secrets.database.read_role(role, mount_point=e.mount)
    with pytest.raises(exceptions.VaultError):
        e.creds(role)


def test_role_not_in_allowed_roles_cannot_issue(db_engine):
    e = db_engine
    conn = uid("conn")
    e.configure(conn, allowed_roles=["someone-else"])
    role = short_name()
    try:
        e.role(conn, name=role)
    except NOT_ALLOWED:
        pass  # refusing the role itself is fine too
    else:
        with pytest.raises(NOT_ALLOWED):
            e.creds(role)
    # no allowed_roles at all: no role may use the connection
    bare = uid("conn")
    e.configure(bare, allowed_roles=None)
    role2 = short_name()
    try:
        e.role(bare, name=role2)
    except NOT_ALLOWED:
        pass
    else:
        with pytest.raises(NOT_ALLOWED):
            e.creds(role2)
    assert e.leftovers() == []
    # once allowed ("*"), the same role issues
    e.configure(conn, allowed_roles=["*"])
    e.role(conn, name=role)
    user, password, _ = check_creds(e, e.creds(role), role, 300)
    assert e.db.login(user, password)


def test_unknown_role_cannot_issue(db_engine):
    with pytest.raises((exceptions.InvalidRequest, exceptions.InvalidPath)):
        db_engine.creds(short_name())


# --- credentials and their leases -----------------------------------------------------------------

def test_creds_issue_login_and_revoke(db_engine):
    e = db_engine
    conn = uid("conn")
    e.configure(conn)
    role = e.role(conn, default_ttl=300, max_ttl=600)
    user, password, lid = check_creds(e, e.creds(role), role, 300)
    assert e.db.login(user, password)
    assert not e.db.login(user, password + "x")

    lease = e.client.sys.read_lease(lid)["data"]
    assert lease["id"] == lid and lease["renewable"] is True
    assert 290 <= lease["ttl"] <= 300
    assert lid.rsplit("/", 1)[1] in e.leases(role)

    # every call is a new user with a new password
    user2, password2, lid2 = check_creds(e, e.creds(role), role, 300)
    assert user2 != user and password2 != password and lid2 != lid
    assert e.db.login(user2, password2)

    r = e.client.sys.revoke_lease(lid)
    assert r.status_code == 204
    assert not e.db.login(user, password)
    assert not e.db.user_exists(user)
    with pytest.raises(exceptions.InvalidRequest):
        e.client.sys.read_lease(lid)
    # the other one is untouched
    assert e.db.login(user2, password2)
    assert e.leases(role) == [lid2.rsplit("/", 1)[1]]


def test_default_revocation_drops_the_user(db_engine):
    """No revocation_statements: the plugin's default revocation drops the user."""
    e = db_engine
    conn = uid("conn")
    e.configure(conn)
    role = e.role(conn, revocation=None)
    user, password, lid = check_creds(e, e.creds(role), role, 300)
    assert e.db.login(user, password)
    e.client.sys.revoke_lease(lid)
    assert not e.db.login(user, password)
    assert not e.db.user_exists(user)


def test_renew_extends_up_to_max_ttl(db_engine):
    e = db_engine
    conn = uid("conn")
    e.configure(conn)
    role = e.role(conn, default_ttl=3, max_ttl=12, renewal=e.db.renewal())
    t0 = time.monotonic()
    user, password, lid = check_creds(e, e.creds(role), role, 3)

    r = e.client.sys.renew_lease(lid, increment=7)
    assert r["lease_id"] == lid and r["renewable"] is True
    assert 6 <= r["lease_duration"] <= 7, r

    time.sleep(4.5)  # past the first expiry (3 s): the renewal holds it
    assert e.db.user_exists(user), "renewed credentials were revoked at the original expiry"
    assert e.db.login(user, password), "renewed credentials no longer log in"

    before = time.monotonic()
    r = e.client.sys.renew_lease(lid, increment=3600)
    after = time.monotonic()
    # capped at what remains of max_ttl (12 s from issue)
    assert 12 - (after - t0) - 1.5 <= r["lease_duration"] <= 12 - (before - t0) + 1, r
    assert r["lease_duration"] < 3600
    assert e.client.sys.read_lease(lid)["data"]["ttl"] <= r["lease_duration"] + 1  # rounding

    # and at max_ttl the user is dropped
    gone = wait_until(lambda: not e.db.user_exists(user), timeout=12 - (time.monotonic() - t0) + 15)
    assert gone, f"{user} still exists {time.monotonic() - t0:.1f}s after issue (max_ttl 12s)"
    assert time.monotonic() - t0 >= 10, "dropped well before max_ttl"
    assert not e.db.login(user, password)


def test_expired_creds_are_dropped(db_engine):
    e = db_engine
    conn = uid("conn")
    e.configure(conn)
    role = e.role(conn, default_ttl=3, max_ttl=60)
    user, password, lid = check_creds(e, e.creds(role), role, 3)
    assert e.db.login(user, password)
    # the expiration manager revokes the lease unprompted: the user is gone
    assert wait_until(lambda: not e.db.user_exists(user), timeout=20), f"{user} still exists after its lease expired"
    assert not e.db.login(user, password)
    with pytest.raises(exceptions.InvalidRequest):
        e.client.sys.read_lease(lid)
    assert e.leases(role) == []


def test_revoke_prefix_revokes_all_creds_of_a_role(db_engine):
    e = db_engine
    conn = uid("conn")
    e.configure(conn)
    role, keep = e.role(conn), e.role(conn)
    issued = [check_creds(e, e.creds(role), role, 300) for _ in range(3)]
    kept_user, kept_password, kept_lid = check_creds(e, e.creds(keep), keep, 300)
    assert len(e.leases(role)) == 3
    for user, password, _ in issued:
        assert e.db.login(user, password)

    r = e.client.sys.revoke_prefix(f"{e.mount}/creds/{role}")
    assert r.status_code == 204
    for user, password, lid in issued:
        assert not e.db.login(user, password), user
        assert not e.db.user_exists(user), user
    assert e.leases(role) == []
    assert e.db.login(kept_user, kept_password), "another role's credentials were revoked too"
    assert e.leases(keep) == [kept_lid.rsplit("/", 1)[1]]


def test_disabling_the_mount_revokes_its_creds(db_engine):
    """Vault revokes a mount's leases when it is disabled (beyond the brief's list, but Vault's)."""
    e = db_engine
    conn = uid("conn")
    e.configure(conn)
    role = e.role(conn)
    user, password, lid = check_creds(e, e.creds(role), role, 300)
    assert e.db.login(user, password)
    e.client.sys.disable_secrets_engine(e.mount)
    assert not e.db.user_exists(user), "disabling the mount left its user in the database"
    with pytest.raises(exceptions.InvalidRequest):
        e.client.sys.read_lease(lid)


def test_failing_creation_statement_leaves_no_user(db_engine):
    e = db_engine
    conn = uid("conn")
    e.configure(conn)
    # the user is created by the first statement, then the second one fails
    role = e.role(conn, creation=e.db.creation() + [e.db.bad_statement()])
    with pytest.raises(exceptions.VaultError) as err:
        e.creds(role)
    assert err.value.errors
    assert e.leftovers() == [], "a user was left behind by the failed creation"
    assert e.leases(role) == []
    # the connection still works for a role whose statements are fine
    good = e.role(conn)
    user, password, _ = check_creds(e, e.creds(good), good, 300)
    assert e.db.login(user, password)


# --- rotate-root ----------------------------------------------------------------------------------

def test_rotate_root(db_engine):
    e = db_engine
    root_user, root_password = e.root_user()
    assert e.db.login(root_user, root_password)
    conn = uid("conn")
    e.configure(conn, username=root_user, password=root_password)
    role = e.role(conn)
    user, password, lid = check_creds(e, e.creds(role), role, 300)
    assert e.db.login(user, password)

    r = e.client.secrets.database.rotate_root_credentials(conn, mount_point=e.mount)
    assert r.status_code in (200, 204)
    assert not e.db.login(root_user, root_password), "the old root password still logs in"
    d = e.client.secrets.database.read_connection(conn, mount_point=e.mount)["data"]
    assert d["connection_details"]["username"] == root_user
    assert root_password not in json.dumps(d)

    # the engine goes on with the new root password: it issues and revokes
    user2, password2, lid2 = check_creds(e, e.creds(role), role, 300)
    assert e.db.login(user2, password2)
    e.client.sys.revoke_lease(lid2)
    assert not e.db.user_exists(user2)
    e.client.sys.revoke_lease(lid)
    assert not e.db.user_exists(user)

    # a second rotation works from the rotated password
    e.client.secrets.database.rotate_root_credentials(conn, mount_point=e.mount)
    user3, password3, _ = check_creds(e, e.creds(role), role, 300)
    assert e.db.login(user3, password3)


# --- audit ----------------------------------------------------------------------------------------

def test_generated_password_is_not_in_the_audit_log(db_engine, file_audit):
    e = db_engine
    audit_path, log = file_audit
    root_user, root_password = e.root_user()
    conn = uid("conn")
    e.configure(conn, username=root_user, password=root_password)
    role = e.role(conn)
    user, password, lid = check_creds(e, e.creds(role), role, 300)
    e.client.sys.renew_lease(lid, increment=60)
    e.client.sys.revoke_lease(lid)
    e.client.secrets.database.rotate_root_credentials(conn, mount_point=e.mount)

    text = log.read_text()
    assert password not in text, "the generated password is in the audit log in clear"
    assert root_password not in text, "the root password is in the audit log in clear"

    pw_hash = e.client.sys.calculate_hash(audit_path, password)["data"]["hash"]
    es = audit_entries(log)
    issued = [x for x in es if x["type"] == "response" and x["request"]["path"] == f"{e.mount}/creds/{role}"]
    assert len(issued) == 1, [x["request"]["path"] for x in es]
    data = issued[0]["response"]["data"]
    assert data["password"] == pw_hash
    for s in all_strings(data):
        assert HMAC_RE.match(s), s
    # the root password sent with config/<name> is HMAC'd in the request too
    root_hash = e.client.sys.calculate_hash(audit_path, root_password)["data"]["hash"]
    writes = [x for x in es if x["request"]["path"] == f"{e.mount}/config/{conn}" and x["request"].get("data")]
    assert writes and all(x["request"]["data"]["password"] == root_hash for x in writes)


# --- restart --------------------------------------------------------------------------------------

def _unseal(srv: ConfigServer, keys: list[str]) -> None:
    c = srv.client()
    for k in keys:
        c.sys.submit_unseal_key(k)
    assert c.sys.read_seal_status()["sealed"] is False


def test_expired_lease_is_revoked_after_a_restart(db_kind, tmp_path):
    srv = ConfigServer(tmp_path)
    srv.start()
    e = None
    try:
        init = srv.client().sys.initialize(secret_shares=1, secret_threshold=1)
        _unseal(srv, init["keys"])
        e = DbEngine(srv.client(init["root_token"]), db_kind).enable()
        conn = uid("conn")
        e.configure(conn)
        short = e.role(conn, default_ttl=5, max_ttl=60)
        long = e.role(conn, default_ttl=600, max_ttl=1200)
        s_user, s_password, s_lid = check_creds(e, e.creds(short), short, 5)
        l_user, l_password, l_lid = check_creds(e, e.creds(long), long, 600)
        issued_at = time.monotonic()
        srv.stop()

        # the short lease expires while the server is down: nobody drops the user meanwhile
        time.sleep(max(0.0, issued_at + 6.5 - time.monotonic()))
        assert db_kind.user_exists(s_user)

        srv.start()
        _unseal(srv, init["keys"])
        e.client = srv.client(init["root_token"])
        assert wait_until(lambda: not db_kind.user_exists(s_user), timeout=20), \
            f"{s_user} still exists after a restart, its lease long expired"
        assert not db_kind.login(s_user, s_password)
        with pytest.raises(exceptions.InvalidRequest):
            e.client.sys.read_lease(s_lid)

        # the long one survived, and the stored connection (root password included) still revokes it
        assert db_kind.login(l_user, l_password)
        assert e.client.sys.read_lease(l_lid)["data"]["ttl"] > 500
        e.client.sys.revoke_lease(l_lid)
        assert not db_kind.user_exists(l_user)
    finally:
        if e is not None:
            e.cleanup()
        srv.stop()
