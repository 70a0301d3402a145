"""Fixtures for the client-compatibility tests: start the real `coffer` binary and point real SDKs at it.

The binary is taken from $COFFER_BIN (scripts/test sets it), falling back to target/debug/coffer.

* ``dev_server``   -- one `coffer server -dev` per test session (in-memory, unsealed, known root token).
                      Tests share it, so every test works under its own uuid-named paths/mounts/policies.
                      Its HTTPS listener takes a port of the kernel's choosing (never 8443).
* ``dev_tls_server`` -- a fresh `coffer server -dev` per test with both listeners on free ports, for
                      tests of the HTTPS listener; ``exports()`` parses the `export` lines it printed.
* ``config_server`` -- a fresh `coffer server -config=<file>` per test, with file storage in a tmp dir;
                      it starts uninitialized and sealed. ``restart()`` keeps the data directory.
* ``client``       -- ``hvac.Client`` with the dev server's root token.
* ``azure`` / ``kv`` / ``azure_tls`` -- the session dev server (or a fresh one) seen as an Azure Key
                      Vault through its HTTPS listener, and a sync SecretClient for it (azure_helpers).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import hvac
import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 30.0

# hvac.Client falls back to VAULT_ADDR / VAULT_TOKEN when url / token are None; never let the
# environment of whoever runs the suite leak into it.
for _var in ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE"):
    os.environ.pop(_var, None)

# The same for the AWS SDKs (boto3 / the AWS CLI): no credentials, profile, region, endpoint or
# config file of the person running the suite may reach them; every client is given its own.
for _var in [v for v in os.environ if v.startswith("AWS_")]:
    os.environ.pop(_var, None)
_AWS_EMPTY_DIR = tempfile.mkdtemp(prefix="coffer-compat-aws-")
for _var, _file in (("AWS_CONFIG_FILE", "config"), ("AWS_SHARED_CREDENTIALS_FILE", "credentials")):
    Path(_AWS_EMPTY_DIR, _file).write_text("")
    os.environ[_var] = str(Path(_AWS_EMPTY_DIR, _file))
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

# The same for the Azure SDKs (azure-identity / MSAL): no tenant, client, authority, managed-identity
# endpoint or credential selection of the person running the suite may reach them. Subprocesses that
# run Azure snippets also get a throwaway HOME (no ~/.azure, no shared token cache).
for _var in [v for v in os.environ if v.startswith(("AZURE_", "IDENTITY_", "MSI_", "IMDS_"))]:
    os.environ.pop(_var, None)
AZURE_HOME = tempfile.mkdtemp(prefix="coffer-compat-azure-home-")

# The dev server's fixed AWS access key (auth/aws-keys/keys/dev, policy dev-aws) and account id.
AWS_ACCESS_KEY_ID = "AKIACOFFERTEST000001"
AWS_SECRET_ACCESS_KEY = "c0fferTestSecretKey/0123456789+abcdefghi"  # 40 characters
AWS_ACCOUNT_ID = "123456789012"


def coffer_bin() -> str:
    path = os.environ.get("COFFER_BIN") or str(REPO / "target" / "debug" / "coffer")
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        pytest.fail(f"coffer binary not found at {path}; build it with `cargo build -p coffer --bins` "
                    f"or set COFFER_BIN", pytrace=False)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uid(prefix: str = "t") -> str:
    """A short unique name, usable as a path segment, mount path or policy name."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def http_session() -> requests.Session:
    # Ignore *_PROXY / .netrc from the environment: every request goes straight to 127.0.0.1.
    s = requests.Session()
    s.trust_env = False
    return s


def make_client(url: str, token: str | None = None) -> hvac.Client:
    return hvac.Client(url=url, token=token, timeout=15, session=http_session())


class CofferProcess:
    """One running `coffer server` process; output goes to a log file so it can be shown on failure."""

    def __init__(self, args: list[str], port: int, workdir: Path):
        self.args = args
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self._log = None

    def start(self) -> None:
        fd, log = tempfile.mkstemp(prefix=f"coffer-{self.port}-", suffix=".log", dir=self.workdir)
        self.log_path = Path(log)
        self._log = os.fdopen(fd, "wb")
        self.proc = subprocess.Popen(
            [coffer_bin(), *self.args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
        )
        self._wait_ready()

    def output(self) -> str:
        if self.log_path is None:
            return ""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as e:  # pragma: no cover
            return f"<could not read server log: {e}>"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        session = http_session()
        last = "no answer yet"
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise ServerStartError(
                        f"coffer exited with code {self.proc.returncode} before answering "
                        f"(args: {self.args})\n--- server output ---\n{self.output()}"
                    )
                try:
                    r = session.get(f"{self.url}/v1/sys/seal-status", timeout=1)
                    if r.status_code == 200:
                        return
                    last = f"HTTP {r.status_code}: {r.text[:200]}"
                except requests.RequestException as e:
                    last = repr(e)
                time.sleep(0.05)
        finally:
            session.close()
        self.stop()
        raise ServerStartError(
            f"coffer did not answer 200 on /v1/sys/seal-status within {STARTUP_TIMEOUT:.0f}s "
            f"(last: {last}; args: {self.args})\n--- server output ---\n{self.output()}"
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


class ServerStartError(Exception):
    pass


def _start(make_args, workdir: Path, attempts: int = 3) -> CofferProcess:
    """Start a server on a fresh free port; retry if the port was taken between probe and bind."""
    error = None
    for _ in range(attempts):
        port = free_port()
        p = CofferProcess(make_args(port), port, workdir)
        try:
            p.start()
            return p
        except ServerStartError as e:
            error = e
            if "in use" not in str(e).lower():
                break
    pytest.fail(str(error), pytrace=False)


class DevServer:
    def __init__(self, process: CofferProcess, root_token: str):
        self.process = process
        self.url = process.url
        self.root_token = root_token
        # only the session `dev_server` is started with these (see its fixture)
        self.aws_access_key_id = AWS_ACCESS_KEY_ID
        self.aws_secret_access_key = AWS_SECRET_ACCESS_KEY
        self.aws_account_id = AWS_ACCOUNT_ID

    def client(self, token: str | None = None) -> hvac.Client:
        return make_client(self.url, token)

    def output(self) -> str:
        return self.process.output()

    def wait_for_output(self, needle: str, timeout: float = 10.0) -> str:
        """The server output once it contains `needle` (the banner is written by another thread
        than the one answering requests, so it may lag behind readiness); fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.output()
            if needle in out:
                return out
            if time.monotonic() >= deadline:
                pytest.fail(f"the server output never contained {needle!r}\n--- server output ---\n{out}",
                            pytrace=False)
            time.sleep(0.05)

    def exports(self) -> dict[str, list[str]]:
        """The `$ export NAME='value'` lines of the dev banner, parsed as a shell would, in order."""
        out: dict[str, list[str]] = {}
        for line in self.output().splitlines():
            line = line.strip()
            if line.startswith("$ export "):
                for word in shlex.split(line[len("$ export "):]):
                    name, _, value = word.partition("=")
                    out.setdefault(name, []).append(value)
        return out

    def tls_url(self) -> str:
        """The HTTPS listener's URL, from the banner line `==> Coffer server listening on https://...`."""
        marker = "==> Coffer server listening on https://"
        out = self.wait_for_output(marker)
        line = out[out.index(marker):].splitlines()[0]
        return "https://" + line[len(marker):].split()[0].rstrip("/")

    def ca_path(self) -> str:
        """The dev CA certificate's path, from the banner line `CA certificate: <path>`."""
        marker = "CA certificate: "
        out = self.wait_for_output(marker)
        return out[out.index(marker):].splitlines()[0][len(marker):].strip()


class DevTlsServer(DevServer):
    """`coffer server -dev` whose HTTPS listener is on a known free port."""

    def __init__(self, process: CofferProcess, root_token: str, tls_port: int):
        super().__init__(process, root_token)
        self.https_url = f"https://127.0.0.1:{tls_port}"

    def tls_url(self) -> str:
        return self.https_url


class ConfigServer:
    """`coffer server -config=<file>` with file storage; starts uninitialized and sealed."""

    def __init__(self, tmp: Path, extra_config: str = ""):
        self.tmp = tmp
        self.data_dir = tmp / "data"
        self.config_path = tmp / "coffer.hcl"
        self.extra_config = extra_config
        self.process: CofferProcess | None = None
        self.url = ""

    def start(self) -> None:
        def args(port: int) -> list[str]:
            self.config_path.write_text(
                f'storage "file" {{\n  path = "{self.data_dir}"\n}}\n\n'
                f'listener "tcp" {{\n  address     = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n\n'
                "disable_mlock = true\n" + self.extra_config
            )
            return ["server", f"-config={self.config_path}"]

        self.process = _start(args, self.tmp)
        self.url = self.process.url

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def restart(self) -> None:
        """Stop the process and start a new one on the same data directory (possibly another port)."""
        self.stop()
        self.start()

    def client(self, token: str | None = None) -> hvac.Client:
        return make_client(self.url, token)

    def output(self) -> str:
        return self.process.output() if self.process else ""


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory):
    root = "root-" + secrets.token_hex(12)
    workdir = tmp_path_factory.mktemp("coffer-dev")

    def args(port: int) -> list[str]:
        return ["server", "-dev", f"-dev-root-token-id={root}", f"-dev-listen-address=127.0.0.1:{port}",
                "-dev-tls-listen-address=127.0.0.1:0",
                f"-dev-aws-access-key-id={AWS_ACCESS_KEY_ID}",
                f"-dev-aws-secret-access-key={AWS_SECRET_ACCESS_KEY}",
                f"-dev-aws-account-id={AWS_ACCOUNT_ID}"]

    proc = _start(args, workdir)
    try:
        yield DevServer(proc, root)
    finally:
        proc.stop()


# --- AWS Secrets Manager dialect -------------------------------------------------------------------

class AwsCreds:
    """The dev server's AWS key pair and account id."""

    def __init__(self, access_key_id: str, secret_access_key: str, account_id: str):
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.account_id = account_id

    # tuple-like: `key_id, secret, account = aws_creds`
    def __iter__(self):
        return iter((self.access_key_id, self.secret_access_key, self.account_id))


@pytest.fixture(scope="session")
def aws_creds(dev_server):
    return AwsCreds(dev_server.aws_access_key_id, dev_server.aws_secret_access_key, dev_server.aws_account_id)


@pytest.fixture
def sm(dev_server):
    """A boto3 Secrets Manager client signed with the dev key (policy dev-aws), region us-east-1."""
    from aws_helpers import sm_client
    return sm_client(dev_server)


@pytest.fixture
def aws_key_for_policy(dev_server, client):
    """Factory: a fresh AWS access key whose only policy is the given HCL text; returns
    ``(access_key_id, secret_access_key)``. Keys and policies are removed afterwards."""
    made: list[tuple[str, str]] = []

    def make(policy: str) -> tuple[str, str]:
        pname = uid("awspol")
        kname = uid("awskey")
        client.sys.create_or_update_policy(name=pname, policy=policy)
        made.append((pname, kname))
        data = client.write(f"auth/aws-keys/keys/{kname}", policies=[pname])["data"]
        return data["access_key_id"], data["secret_access_key"]

    yield make
    for pname, kname in made:
        for f in (lambda: client.delete(f"auth/aws-keys/keys/{kname}"), lambda: client.sys.delete_policy(pname)):
            try:
                f()
            except hvac.exceptions.VaultError:
                pass


@pytest.fixture
def dev_tls_server(tmp_path):
    root = "root-" + secrets.token_hex(12)
    tls_ports: list[int] = []

    def args(port: int) -> list[str]:
        tls_port = free_port()
        while tls_port == port:
            tls_port = free_port()
        tls_ports.append(tls_port)
        return ["server", "-dev", f"-dev-root-token-id={root}", f"-dev-listen-address=127.0.0.1:{port}",
                f"-dev-tls-listen-address=127.0.0.1:{tls_port}"]

    proc = _start(args, tmp_path)
    try:
        yield DevTlsServer(proc, root, tls_ports[-1])
    finally:
        proc.stop()


@pytest.fixture
def config_server(tmp_path):
    srv = ConfigServer(tmp_path)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(dev_server):
    c = dev_server.client(dev_server.root_token)
    yield c
    c.adapter.close()


@pytest.fixture
def kv2_mount(client):
    """A fresh kv v2 mount at a unique path, removed afterwards."""
    path = uid("kv2")
    client.sys.enable_secrets_engine("kv", path=path, options={"version": "2"})
    yield path
    try:
        client.sys.disable_secrets_engine(path)
    except hvac.exceptions.VaultError:
        pass


@pytest.fixture
def token_for_policy(dev_server, client):
    """Factory: a client whose token carries only the given policy text (plus `default`)."""
    created: list[str] = []

    def make(policy: str | dict) -> hvac.Client:
        name = uid("pol")
        client.sys.create_or_update_policy(name=name, policy=policy)
        created.append(name)
        tok = client.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"]
        return dev_server.client(tok)

    yield make
    for name in created:
        try:
            client.sys.delete_policy(name)
        except hvac.exceptions.VaultError:
            pass


# --- auth method mounts (AppRole, userpass) ---------------------------------------------------------

def _auth_mount(client, method: str) -> str:
    path = uid(method)
    client.sys.enable_auth_method(method, path=path)
    return path


@pytest.fixture
def approle_mount(client):
    """A fresh AppRole auth mount at a unique path (auth/<path>), disabled afterwards."""
    path = _auth_mount(client, "approle")
    yield path
    try:
        client.sys.disable_auth_method(path)
    except hvac.exceptions.VaultError:
        pass


@pytest.fixture
def userpass_mount(client):
    """A fresh userpass auth mount at a unique path (auth/<path>), disabled afterwards."""
    path = _auth_mount(client, "userpass")
    yield path
    try:
        client.sys.disable_auth_method(path)
    except hvac.exceptions.VaultError:
        pass


# --- Azure Key Vault dialect ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def azure(dev_server):
    """The session dev server seen as an Azure Key Vault (its HTTPS listener; see azure_helpers)."""
    from azure_helpers import AzureServer
    return AzureServer(dev_server)


@pytest.fixture
def kv(azure):
    """A sync SecretClient for the session dev server, holding a token of policy dev-azure."""
    c = azure.kv()
    yield c
    c.close()


@pytest.fixture
def azure_tls(dev_tls_server):
    """A fresh dev server (nothing stored yet, its own CA and port) seen as an Azure Key Vault."""
    from azure_helpers import AzureServer
    return AzureServer(dev_tls_server)


@pytest.fixture
def azure_token_for_policy(client):
    """Factory: a Coffer token (for the session dev server) whose only policy is the given HCL text
    (plus `default`). Policies are removed afterwards."""
    created: list[str] = []

    def make(policy: str) -> str:
        name = uid("azpol")
        client.sys.create_or_update_policy(name=name, policy=policy)
        created.append(name)
        return client.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"]

    yield make
    for name in created:
        try:
            client.sys.delete_policy(name)
        except hvac.exceptions.VaultError:
            pass


@pytest.fixture
def file_audit(client, tmp_path):
    """A file audit device on the session dev server at a unique path, writing to a file in
    tmp_path; always disabled after. Yields (device path, log file)."""
    path = uid("aud")
    log = tmp_path / f"{path}.log"
    r = client.sys.enable_audit_device(device_type="file", path=path, options={"file_path": str(log)})
    assert r.status_code == 204
    try:
        yield path, log
    finally:
        client.sys.disable_audit_device(path)


def audit_entries(log: Path, missing_ok: bool = False) -> list[dict]:
    """The entries of a file audit log (none yet when `missing_ok` and it was not written)."""
    if missing_ok and not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def all_strings(v):
    """Every string inside a JSON value."""
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for x in v.values():
            yield from all_strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from all_strings(x)


# --- automatic rotation -----------------------------------------------------------------------------

@pytest.fixture
def rotation_server(tmp_path):
    """A fresh `coffer server -dev` (root token and AWS key as ``dev_server``'s) whose rotation
    schedule "hour" lasts 1 s (``rotation { hour = "1s" }``), on a free port: each test gets its
    own scheduler (a hook blocked by one test never holds up another's rotations)."""
    from rotation_helpers import start_rotation_dev_server
    srv = start_rotation_dev_server(tmp_path)
    try:
        yield srv
    finally:
        srv.process.stop()


@pytest.fixture
def rotation_sm(rotation_server):
    """A boto3 Secrets Manager client for ``rotation_server``, signed with the dev key."""
    from aws_helpers import sm_client
    return sm_client(rotation_server)


@pytest.fixture
def hook_host():
    """Factory: a ``rotation_hook.host.HookHost`` (the template-style rotation function served on
    127.0.0.1); every host made is closed (blocked steps dropped) afterwards."""
    from rotation_hook.host import HookHost
    made: list = []

    def make(**kwargs):
        h = HookHost(**kwargs)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


# --- database secrets engine ------------------------------------------------------------------------

@pytest.fixture(params=["postgresql", "mysql"])
def db_kind(request):
    """Each real database server of scripts/databases.sh in turn (database_helpers.PG / .MY)."""
    from database_helpers import DATABASES
    db = DATABASES[request.param]
    db.require()
    return db


@pytest.fixture
def db_engine(client, db_kind):
    """A fresh `database` mount on the session dev server for ``db_kind``
    (database_helpers.DbEngine); afterwards the mount is disabled and every user the test left in
    the database (issued credentials, dedicated root users) is dropped."""
    from database_helpers import DbEngine
    engine = DbEngine(client, db_kind)
    try:
        engine.enable()
        yield engine
    finally:
        engine.cleanup()
