"""Static roles of the database engine against real PostgreSQL and MariaDB (servers from
scripts/databases.sh): Coffer takes over an existing user's password at once, rotates it on
`rotate-role` and every `rotation_period` (the scheduler), and the old password stops working."""

from __future__ import annotations

import secrets
import time
import uuid

import hvac
import pg8000.native
import pymysql
import pytest

from rotation_helpers import start_rotation_dev_server
from test_rotation_databases import MY, PG, _require


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A dev server whose scheduler looks every 100 ms (rotation.hour = 1s), with a database
    mount at database/; answers its root client."""
    srv = start_rotation_dev_server(tmp_path_factory.mktemp("coffer-static-roles"))
    client = srv.client(srv.root_token)
    client.sys.enable_secrets_engine("database", path="database")
    try:
        yield client
    finally:
        srv.process.stop()


def pg_login(user: str, password: str) -> bool:
    try:
        pg8000.native.Connection(user, host="127.0.0.1", port=PG["port"], password=password,
                                 database="postgres", timeout=10).close()
        return True
    except pg8000.exceptions.DatabaseError:
        return False


def my_login(user: str, password: str) -> bool:
    try:
        pymysql.connect(host="127.0.0.1", port=MY["port"], user=user, password=password,
                        connect_timeout=10).close()
        return True
    except pymysql.err.OperationalError:
        return False


def setup_pg(client, user: str, pw: str) -> None:
    admin = pg8000.native.Connection(PG["user"], host="127.0.0.1", port=PG["port"],
                                     password=PG["password"], database="postgres")
    admin.run(f'CREATE ROLE "{user}" WITH LOGIN PASSWORD \'{pw}\'')
    admin.close()
    client.secrets.database.configure(
        "pg", "postgresql-database-plugin", allowed_roles="*", mount_point="database",
        connection_url=f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{PG['port']}/postgres",
        username=PG["user"], password=PG["password"])


def setup_my(client, user: str, pw: str) -> None:
    c = pymysql.connect(host="127.0.0.1", port=MY["port"], user=MY["user"], password=MY["password"],
                        autocommit=True)
    with c.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{pw}'")
    c.close()
    client.secrets.database.configure(
        "my", "mysql-database-plugin", allowed_roles="*", mount_point="database",
        connection_url=f"{{{{username}}}}:{{{{password}}}}@tcp(127.0.0.1:{MY['port']})/",
        username=MY["user"], password=MY["password"])


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_a_static_role_owns_and_rotates_the_password(server, kind):
    db, login, setup = (("pg", pg_login, setup_pg) if kind == "postgresql"
                        else ("my", my_login, setup_my))
    _require(PG if kind == "postgresql" else MY, kind)
    user, pw = "st_" + uuid.uuid4().hex[:8], "Old-" + secrets.token_hex(8)
    setup(server, user, pw)
    role = "static-" + user
    server.write(f"database/static-roles/{role}", db_name=db, username=user, rotation_period="1h")
    # taken over at once: the old password is refused, Coffer's works
    first = server.read(f"database/static-creds/{role}")["data"]
    assert first["username"] == user and first["password"] != pw
    assert 3500 <= first["ttl"] <= 3600 and first["rotation_period"] == 3600
    assert login(user, first["password"]) and not login(user, pw)
    # rotate-role: a new password now
    server.write(f"database/rotate-role/{role}")
    second = server.read(f"database/static-creds/{role}")["data"]
    assert second["password"] != first["password"]
    assert login(user, second["password"]) and not login(user, first["password"])
    # the role as read shows no password
    shown = server.read(f"database/static-roles/{role}")["data"]
    assert shown["username"] == user and "password" not in shown
    assert role in server.list("database/static-roles")["data"]["keys"]


def test_the_scheduler_rotates_a_static_role_every_period(server):
    _require(PG, "PostgreSQL")
    user, pw = "per_" + uuid.uuid4().hex[:8], "Old-" + secrets.token_hex(8)
    setup_pg(server, user, pw)
    role = "periodic-" + user
    server.write(f"database/static-roles/{role}", db_name="pg", username=user, rotation_period="5s")
    first = server.read(f"database/static-creds/{role}")["data"]["password"]
    deadline = time.time() + 20
    current = first
    while time.time() < deadline and current == first:
        time.sleep(0.5)
        current = server.read(f"database/static-creds/{role}")["data"]["password"]
    assert current != first, "the static role was not rotated after its period"
    assert pg_login(user, current) and not pg_login(user, first)


def test_static_role_refusals_change_nothing(server):
    _require(PG, "PostgreSQL")
    setup_pg(server, "unused_" + uuid.uuid4().hex[:6], "x-" + secrets.token_hex(4))
    for bad in ({"db_name": "pg", "username": "a;drop", "rotation_period": "1h"},
                {"db_name": "pg", "username": "x", "rotation_period": "1s"},
                {"db_name": "nope", "username": "x", "rotation_period": "1h"},
                {"db_name": "pg", "rotation_period": "1h"}):
        with pytest.raises(hvac.exceptions.InvalidRequest):
            server.write("database/static-roles/bad", **bad)
    assert server.read("database/static-roles/bad") is None  # nothing was stored
    # the scheduler's listing is root's only
    token = server.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    other = hvac.Client(url=server.url, token=token)
    with pytest.raises(hvac.exceptions.Forbidden):
        other.list("database/static-roles-due")
