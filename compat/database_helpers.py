"""Helpers for the database secrets engine tests (test_database_engine.py): the real PostgreSQL and
MariaDB servers that scripts/databases.sh starts (ports and admin credentials in COFFER_TEST_*
variables), seen both as Coffer's `database` engine sees them (plugin names, connection URLs with
{{username}}/{{password}} templates, SQL statements) and as the test checks them (logging in as a
user, looking users up in the catalog, dropping what a test leaves behind).

``Db`` is one kind of database (``PG`` or ``MY``); ``DbEngine`` is one `database` mount on a Coffer
server plus what the test created in the database (issued users, dedicated root users), all of it
removed by ``cleanup()``.
"""

from __future__ import annotations

import os
import re
import secrets
import string
import time
import uuid


import hvac
import pg8000.native
import pymysql
import pytest
from hvac import exceptions

HMAC_RE = re.compile(r"^hmac-sha256:[0-9a-f]{64}$")


def short_name() -> str:
    """A role name of 8 random lowercase letters and digits. Generated usernames keep the first
    characters of the role's name (``Db.role_chars``: 8 on PostgreSQL, 4 on MySQL) between hyphens,
    `v-<display>-<role>-<random>...`; the random part has no hyphen, so ``-<fragment>-`` finds
    exactly the users of this role."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def wait_until(pred, timeout: float = 10.0, interval: float = 0.2):
    """Poll pred() until it answers something truthy; answer it (or the last falsy answer)."""
    deadline = time.monotonic() + timeout
    while True:
        last = pred()
        if last or time.monotonic() >= deadline:
            return last
        time.sleep(interval)


class Db:
    """One kind of database server the engine talks to."""

    key: str            # parametrize id
    plugin_name: str
    max_username: int   # Vault's default username templates: 63 (PostgreSQL), 32 (MySQL)
    role_chars: int     # how much of the role name a generated username keeps

    def fragment(self, role: str) -> str:
        """What every username generated for `role` contains."""
        return f"-{role[: self.role_chars]}-"

    def __init__(self, env: str, label: str):
        self.label = label
        self.port = int(os.environ.get(f"COFFER_TEST_{env}_PORT", "0") or 0)
        self.admin_user = os.environ.get(f"COFFER_TEST_{env}_USER", "")
        self.admin_password = os.environ.get(f"COFFER_TEST_{env}_PASSWORD", "")

    def require(self) -> None:
        if not self.port:
            pytest.fail(f"{self.label} is not configured: `source scripts/databases.sh` (or run the tests "
                        f"through ./scripts/test) to start the database servers", pytrace=False)

    # --- what Coffer is told ------------------------------------------------------------------
    def connection_url(self) -> str:
        raise NotImplementedError

    def creation(self) -> list[str]:
        raise NotImplementedError

    def revocation(self) -> list[str]:
        raise NotImplementedError

    def renewal(self) -> list[str]:
        raise NotImplementedError

    def bad_statement(self) -> str:
        return "THIS IS NOT SQL {{name}}"

    # --- what the test checks -----------------------------------------------------------------
    def login(self, user: str, password: str) -> bool:
        raise NotImplementedError

    def users_containing(self, fragment: str) -> list[str]:
        raise NotImplementedError

    def user_exists(self, user: str) -> bool:
        return user in self.users_containing(user)

    def create_root_user(self, user: str, password: str) -> None:
        """A dedicated admin for one test (rotate-root changes its password, never the env's)."""
        raise NotImplementedError

    def drop_user(self, user: str) -> None:
        raise NotImplementedError


class Postgres(Db):
    key = "postgresql"
    plugin_name = "postgresql-database-plugin"
    max_username = 63
    role_chars = 8

    def __init__(self):
        super().__init__("PG", "PostgreSQL")

    def connection_url(self) -> str:
        return f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{self.port}/postgres"

    def creation(self) -> list[str]:
        return ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"]

    def revocation(self) -> list[str]:
        return ['DROP ROLE IF EXISTS "{{name}}";']

    def renewal(self) -> list[str]:
        return ["ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}';"]

    def _admin(self):
        return pg8000.native.Connection(self.admin_user, host="127.0.0.1", port=self.port,
                                        password=self.admin_password, database="postgres", timeout=15)

    def login(self, user: str, password: str) -> bool:
        try:
            c = pg8000.native.Connection(user, host="127.0.0.1", port=self.port, password=password,
                                         database="postgres", timeout=10)
        except pg8000.exceptions.DatabaseError:
            return False
        try:
            c.run("SELECT 1")
        finally:
            c.close()
        return True

    def users_containing(self, fragment: str) -> list[str]:
        c = self._admin()
        try:
            return [r[0] for r in c.run("SELECT rolname FROM pg_roles WHERE strpos(rolname, :f) > 0", f=fragment)]
        finally:
            c.close()

    def valid_until(self, user: str):
        c = self._admin()
        try:
            rows = c.run("SELECT rolvaliduntil FROM pg_roles WHERE rolname = :u", u=user)
        finally:
            c.close()
        return rows[0][0] if rows else None

    def create_root_user(self, user: str, password: str) -> None:
        c = self._admin()
        try:
            c.run(f"CREATE ROLE \"{user}\" WITH LOGIN CREATEROLE PASSWORD '{password}'")
        finally:
            c.close()

    def drop_user(self, user: str) -> None:
        c = self._admin()
        try:
            c.run(f'DROP ROLE IF EXISTS "{user}"')
        finally:
            c.close()


class MySQL(Db):
    key = "mysql"
    plugin_name = "mysql-database-plugin"
    max_username = 32
    role_chars = 4

    def __init__(self):
        super().__init__("MYSQL", "MariaDB")

    def connection_url(self) -> str:
        return f"{{{{username}}}}:{{{{password}}}}@tcp(127.0.0.1:{self.port})/"

    def creation(self) -> list[str]:
        return ["CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';",
                "GRANT SELECT ON *.* TO '{{name}}'@'%';"]

    def revocation(self) -> list[str]:
        return ["DROP USER IF EXISTS '{{name}}'@'%';"]

    def renewal(self) -> list[str]:
        return []  # MySQL has no expiry of its own: renewing only moves the lease

    def _admin(self):
        return pymysql.connect(host="127.0.0.1", port=self.port, user=self.admin_user,
                               password=self.admin_password, autocommit=True, connect_timeout=15)

    def login(self, user: str, password: str) -> bool:
        try:
            c = pymysql.connect(host="127.0.0.1", port=self.port, user=user, password=password,
                                connect_timeout=10)
        except pymysql.err.OperationalError:
            return False
        try:
            with c.cursor() as cur:
                cur.execute("SELECT 1")
        finally:
            c.close()
        return True

    def users_containing(self, fragment: str) -> list[str]:
        c = self._admin()
        try:
            with c.cursor() as cur:
                cur.execute("SELECT User FROM mysql.user WHERE LOCATE(%s, User) > 0", (fragment,))
                return [r[0] for r in cur.fetchall()]
        finally:
            c.close()

    def create_root_user(self, user: str, password: str) -> None:
        c = self._admin()
        try:
            with c.cursor() as cur:
                cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
                cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%' WITH GRANT OPTION")
        finally:
            c.close()

    def drop_user(self, user: str) -> None:
        c = self._admin()
        try:
            with c.cursor() as cur:
                cur.execute("SELECT Host FROM mysql.user WHERE User = %s", (user,))
                for (host,) in cur.fetchall():
                    cur.execute(f"DROP USER IF EXISTS '{user}'@'{host}'")
        finally:
            c.close()


PG = Postgres()
MY = MySQL()
DATABASES = {PG.key: PG, MY.key: MY}


class DbEngine:
    """A `database` mount (path `mount`) on a Coffer server, configured for one kind of database.

    Everything the test makes in the database is remembered: ``cleanup()`` disables the mount
    (which revokes its leases) and then drops whatever users are still there."""

    def __init__(self, client: hvac.Client, db: Db, mount: str | None = None):
        self.client = client
        self.db = db
        self.mount = mount or f"db-{uuid.uuid4().hex[:10]}"
        self.fragments: list[str] = []   # role names: generated usernames contain their fragment
        self.users: list[str] = []       # usernames the engine handed out
        self.root_users: list[str] = []  # dedicated admins made for one test

    def enable(self) -> "DbEngine":
        self.client.sys.enable_secrets_engine("database", path=self.mount)
        return self

    # --- Coffer side --------------------------------------------------------------------------
    def configure(self, name: str, allowed_roles=("*",), username: str | None = None,
                  password: str | None = None, **kw):
        if allowed_roles is not None and not isinstance(allowed_roles, str):
            allowed_roles = list(allowed_roles)
        return self.client.secrets.database.configure(
            name, kw.pop("plugin_name", self.db.plugin_name), allowed_roles=allowed_roles,
            mount_point=self.mount, connection_url=kw.pop("connection_url", self.db.connection_url()),
            username=username or self.db.admin_user,
            password=self.db.admin_password if password is None else password, **kw)

    def role(self, db_name: str, name: str | None = None, creation=None, revocation="default",
             renewal=None, default_ttl=300, max_ttl=600, **kw) -> str:
        """Create a role (its name is short and unique unless given) and answer its name."""
        name = name or short_name()
        self.fragments.append(name)
        if revocation == "default":
            revocation = self.db.revocation()
        self.client.secrets.database.create_role(
            name, db_name, creation if creation is not None else self.db.creation(),
            default_ttl=default_ttl, max_ttl=max_ttl, revocation_statements=revocation,
            renew_statements=renewal, mount_point=self.mount, **kw)
        return name

    def creds(self, role: str) -> dict:
        """GET creds/<role>: the whole answer (lease_id, lease_duration, renewable, data)."""
        r = self.client.secrets.database.generate_credentials(role, mount_point=self.mount)
        user = (r.get("data") or {}).get("username")
        if user:
            self.users.append(user)
        return r

    def leases(self, role: str) -> list[str]:
        try:
            return self.client.sys.list_leases(f"{self.mount}/creds/{role}")["data"]["keys"]
        except exceptions.InvalidPath:
            return []

    # --- database side ------------------------------------------------------------------------
    def root_user(self) -> tuple[str, str]:
        user = "croot_" + uuid.uuid4().hex[:10]
        password = "Root-" + secrets.token_hex(12)
        self.db.create_root_user(user, password)
        self.root_users.append(user)
        return user, password

    def leftovers(self) -> list[str]:
        found: list[str] = []
        for role in self.fragments:
            found += [u for u in self.db.users_containing(self.db.fragment(role)) if u not in found]
        return found

    def cleanup(self, disable: bool = True) -> None:
        if disable:
            try:
                self.client.sys.disable_secrets_engine(self.mount)
            except Exception:  # noqa: BLE001 - the mount may be gone or the server down
                pass
        for user in dict.fromkeys(self.users + self.leftovers()):
            try:
                self.db.drop_user(user)
            except Exception:  # noqa: BLE001
                pass
        for user in self.root_users:
            try:
                self.db.drop_user(user)
            except Exception:  # noqa: BLE001
                pass
