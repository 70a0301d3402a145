"""The built-in database rotators against real PostgreSQL and MariaDB servers (started by
scripts/databases.sh, which scripts/test sources; their ports and admin credentials come in
COFFER_TEST_* variables), driven through boto3's rotate_secret:

* single user: after a rotation the old password no longer logs in and the new one does;
* alternating users: the previous credentials (the other user) keep working until the next
  rotation; the superuser's secret is named by `masterarn`.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid

import boto3
import pg8000.native
import pymysql
import pytest
import requests

from conftest import AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
from rotation_helpers import start_rotation_dev_server

PG = {
    "port": int(os.environ.get("COFFER_TEST_PG_PORT", "0") or 0),
    "user": os.environ.get("COFFER_TEST_PG_USER", ""),
    "password": os.environ.get("COFFER_TEST_PG_PASSWORD", ""),
}
MY = {
    "port": int(os.environ.get("COFFER_TEST_MYSQL_PORT", "0") or 0),
    "user": os.environ.get("COFFER_TEST_MYSQL_USER", ""),
    "password": os.environ.get("COFFER_TEST_MYSQL_PASSWORD", ""),
}


def _require(db: dict, name: str) -> None:
    if not db["port"]:
        pytest.fail(f"{name} is not configured: run the tests through ./scripts/test "
                    f"(it starts the database servers: scripts/databases.sh)", pytrace=False)


@pytest.fixture(scope="module")
def rot_server(tmp_path_factory):
    """A dev server whose schedule hours last one second (rotation.hour), on plain HTTP."""
    srv = start_rotation_dev_server(tmp_path_factory.mktemp("coffer-rotation-db"))
    try:
        yield srv
    finally:
        srv.process.stop()


@pytest.fixture
def sm(rot_server):
    client = boto3.client("secretsmanager", endpoint_url=rot_server.url, region_name="us-east-1",
                          aws_access_key_id=AWS_ACCESS_KEY_ID, aws_secret_access_key=AWS_SECRET_ACCESS_KEY)
    client.coffer = rot_server
    return client


def rotation_state(server, name: str) -> dict:
    """The rotation's state through the Vault dialect (settings, run, last error)."""
    r = requests.get(f"{server.url}/v1/secret/domain/rotation/{name}",
                     headers={"X-Vault-Token": server.root_token}, timeout=10)
    return r.json().get("data", {})


def wait_rotated(sm, name: str, token: str, timeout: float = 20.0) -> dict:
    """Wait until `token` is AWSCURRENT; fail with the rotation's state otherwise."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        d = sm.describe_secret(SecretId=name)
        if "AWSCURRENT" in d["VersionIdsToStages"].get(token, []):
            return d
        time.sleep(0.1)
    raise AssertionError(f"rotation of {name} did not finish: {rotation_state(sm.coffer, name)}")


# --- PostgreSQL ---------------------------------------------------------------------------------

def pg_admin():
    return pg8000.native.Connection(PG["user"], host="127.0.0.1", port=PG["port"],
                                    password=PG["password"], database="postgres")


def pg_login(user: str, password: str) -> bool:
    try:
        c = pg8000.native.Connection(user, host="127.0.0.1", port=PG["port"], password=password,
                                     database="postgres", timeout=10)
    except pg8000.exceptions.DatabaseError:
        return False
    c.run("SELECT 1")
    c.close()
    return True


def pg_secret(user: str, password: str, **extra) -> str:
    return json.dumps({"engine": "postgres", "host": "127.0.0.1", "port": PG["port"],
                       "username": user, "password": password, "dbname": "postgres", **extra})


def test_postgresql_single_user(sm):
    _require(PG, "PostgreSQL")
    user, pw = "app_" + uuid.uuid4().hex[:8], "Old-" + secrets.token_hex(8)
    admin = pg_admin()
    admin.run(f'CREATE ROLE "{user}" WITH LOGIN PASSWORD \'{pw}\'')
    admin.close()
    name = "db/pg-" + user
    sm.create_secret(Name=name, SecretString=pg_secret(user, pw))
    token = str(uuid.uuid4())
    r = sm.rotate_secret(SecretId=name, ClientRequestToken=token,
                         RotationLambdaARN="coffer:postgresql-single-user")
    assert r["VersionId"] == token
    wait_rotated(sm, name, token)
    new = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    assert new["username"] == user and new["password"] != pw
    assert pg_login(user, new["password"]), "the new password logs in"
    assert not pg_login(user, pw), "the old password no longer logs in"
    old = json.loads(sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"])
    assert old["password"] == pw
    # a second rotation starts from the new password
    token2 = str(uuid.uuid4())
    sm.rotate_secret(SecretId=name, ClientRequestToken=token2)
    wait_rotated(sm, name, token2)
    newer = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    assert pg_login(user, newer["password"]) and not pg_login(user, new["password"])


def test_postgresql_alternating_users(sm):
    _require(PG, "PostgreSQL")
    user, pw = "alt_" + uuid.uuid4().hex[:8], "Old-" + secrets.token_hex(8)
    admin = pg_admin()
    admin.run(f'CREATE ROLE "{user}" WITH LOGIN PASSWORD \'{pw}\'')
    admin.run(f'CREATE TABLE "t_{user}" (x int)')
    admin.run(f'GRANT SELECT ON "t_{user}" TO "{user}"')
    admin.close()
    master = "db/pg-master-" + user
    sm.create_secret(Name=master, SecretString=pg_secret(PG["user"], PG["password"]))
    name = "db/pg-" + user
    sm.create_secret(Name=name, SecretString=pg_secret(user, pw, masterarn=master))
    token = str(uuid.uuid4())
    sm.rotate_secret(SecretId=name, ClientRequestToken=token,
                     RotationLambdaARN="coffer:postgresql-alternating-users")
    wait_rotated(sm, name, token)
    clone = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    assert clone["username"] == user + "_clone"
    assert pg_login(clone["username"], clone["password"])
    assert pg_login(user, pw), "the previous user keeps working until the next rotation"
    # the clone has the user's rights (membership in its role)
    c = pg8000.native.Connection(clone["username"], host="127.0.0.1", port=PG["port"],
                                 password=clone["password"], database="postgres")
    c.run(f'SET ROLE "{user}"')
    assert c.run(f'SELECT count(*) FROM "t_{user}"') == [[0]]
    c.close()
    # the next rotation goes back to the user, with a new password; the clone still works
    token2 = str(uuid.uuid4())
    sm.rotate_secret(SecretId=name, ClientRequestToken=token2)
    wait_rotated(sm, name, token2)
    back = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    assert back["username"] == user and back["password"] != pw
    assert pg_login(user, back["password"]) and not pg_login(user, pw)
    assert pg_login(clone["username"], clone["password"])


# --- MariaDB ------------------------------------------------------------------------------------

def my_admin():
    return pymysql.connect(host="127.0.0.1", port=MY["port"], user=MY["user"], password=MY["password"],
                           autocommit=True)


def my_login(user: str, password: str) -> bool:
    try:
        c = pymysql.connect(host="127.0.0.1", port=MY["port"], user=user, password=password,
                            connect_timeout=10)
    except pymysql.err.OperationalError:
        return False
    with c.cursor() as cur:
        cur.execute("SELECT 1")
    c.close()
    return True


def my_secret(user: str, password: str, **extra) -> str:
    return json.dumps({"engine": "mysql", "host": "127.0.0.1", "port": MY["port"],
                       "username": user, "password": password, **extra})


def test_mysql_single_user(sm):
    _require(MY, "MariaDB")
    user, pw = "app_" + uuid.uuid4().hex[:8], "Old-" + secrets.token_hex(8)
    with my_admin().cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{pw}'")
    name = "db/my-" + user
    sm.create_secret(Name=name, SecretString=my_secret(user, pw))
    token = str(uuid.uuid4())
    sm.rotate_secret(SecretId=name, ClientRequestToken=token, RotationLambdaARN="coffer:mysql-single-user")
    wait_rotated(sm, name, token)
    new = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    assert new["password"] != pw
    assert my_login(user, new["password"])
    assert not my_login(user, pw)


def test_mysql_alternating_users(sm):
    _require(MY, "MariaDB")
    user, pw = "alt_" + uuid.uuid4().hex[:8], "Old-" + secrets.token_hex(8)
    db = "d_" + user
    with my_admin().cursor() as cur:
        cur.execute(f"CREATE DATABASE `{db}`")
        cur.execute(f"CREATE TABLE `{db}`.t (x int)")
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{pw}'")
        cur.execute(f"GRANT SELECT ON `{db}`.* TO '{user}'@'%'")
    master = "db/my-master-" + user
    sm.create_secret(Name=master, SecretString=my_secret(MY["user"], MY["password"]))
    name = "db/my-" + user
    sm.create_secret(Name=name, SecretString=my_secret(user, pw, masterarn=master, dbname=db))
    token = str(uuid.uuid4())
    sm.rotate_secret(SecretId=name, ClientRequestToken=token,
                     RotationLambdaARN="coffer:mysql-alternating-users")
    wait_rotated(sm, name, token)
    clone = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    assert clone["username"] == user + "_clone"
    assert my_login(user, pw), "the previous user keeps working until the next rotation"
    c = pymysql.connect(host="127.0.0.1", port=MY["port"], user=clone["username"],
                        password=clone["password"], database=db)
    with c.cursor() as cur:
        cur.execute("SELECT count(*) FROM t")
        assert cur.fetchone() == (0,), "the clone has the user's grants"
    c.close()


def test_a_database_host_not_allowed_is_refused(sm, rot_server):
    name = "db/far-" + uuid.uuid4().hex[:8]
    value = json.dumps({"engine": "postgres", "host": "203.0.113.7", "port": 5432,
                        "username": "app", "password": "p"})
    sm.create_secret(Name=name, SecretString=value)
    sm.rotate_secret(SecretId=name, RotationLambdaARN="coffer:postgresql-single-user")
    # the run fails at once, connecting nowhere: the host is not allowed
    deadline = time.time() + 10
    state: dict = {}
    while time.time() < deadline:
        state = rotation_state(rot_server, name)
        if state.get("last_error"):
            break
        time.sleep(0.1)
    assert "not allowed" in state.get("last_error", ""), state
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value
    assert list(sm.describe_secret(SecretId=name)["VersionIdsToStages"].values()).count(["AWSCURRENT"]) == 1
