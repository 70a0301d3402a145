"""Helpers for the high-availability and `coffer operator migrate` tests (test_ha_cluster.py,
test_migrate.py): the shared storage engines (a fresh PostgreSQL database or a fresh etcd prefix
per cluster), 3-node clusters of `coffer server -config=<file>` with a static seal, a TCP proxy that
can cut one node off from its storage, a writer thread that records every answer it gets, and
running `coffer operator migrate`.

The backends come from the environment (scripts/databases.sh exports them):
  COFFER_TEST_PG_PORT / _USER / _PASSWORD   a PostgreSQL superuser on 127.0.0.1
  COFFER_TEST_ETCD_ENDPOINTS                 http URLs of a 3-member etcd cluster, comma-separated
Missing ones skip the tests, or fail them when COFFER_REQUIRE_BACKENDS=1.

This module is also a pytest plugin (the test modules list it in ``pytest_plugins``): when a test
fails, the tail of the log of every Coffer server registered with ``register_logs`` (cluster nodes,
restarted processes included, and single servers) is attached to the failure report.

Everything here encodes the HA spec (Vault's endpoints and shapes); nothing relies on how Coffer
implements it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import hvac
import pg8000.native
import pytest
import requests

from conftest import CofferProcess, ServerStartError, _start, coffer_bin, free_port, http_session, uid

# HTTP timeouts (seconds): every request made here has one.
REQ_TIMEOUT = 5.0
WRITE_TIMEOUT = 2.0      # the writer's requests (a stalled request counts as an error after this)
KV_MOUNT = "secret"


# --- failure logs (pytest plugin part) ---------------------------------------------------------

_LOG_SOURCES: dict[int, tuple[str, Callable[[], str]]] = {}
_LOG_LOCK = threading.Lock()
LOG_TAIL_LINES = 250


def register_logs(label: str, fn: Callable[[], str]) -> int:
    """Attach fn() (a server's output) to the report of every test that fails while registered."""
    with _LOG_LOCK:
        handle = id(fn) ^ secrets.randbits(48)
        _LOG_SOURCES[handle] = (label, fn)
        return handle


def unregister_logs(handle: int | None) -> None:
    if handle is None:
        return
    with _LOG_LOCK:
        _LOG_SOURCES.pop(handle, None)


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    parts = text.splitlines()
    if len(parts) <= lines:
        return text
    return f"[... {len(parts) - lines} earlier lines ...]\n" + "\n".join(parts[-lines:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    with _LOG_LOCK:
        sources = list(_LOG_SOURCES.values())
    for label, fn in sources:
        try:
            text = fn()
        except Exception as e:  # noqa: BLE001 - a log that cannot be read must not hide the failure
            text = f"<could not read: {e!r}>"
        rep.sections.append((f"coffer log: {label}", _tail(text) or "<empty>"))


# --- environment ------------------------------------------------------------------------------

_REQUIRED_ENV = {
    "postgresql": ("COFFER_TEST_PG_PORT", "COFFER_TEST_PG_USER", "COFFER_TEST_PG_PASSWORD"),
    "etcd": ("COFFER_TEST_ETCD_ENDPOINTS",),
}


def require_backend(kind: str) -> None:
    """Skip (or, with COFFER_REQUIRE_BACKENDS=1, fail) when `kind`'s variables are not set."""
    missing = [v for v in _REQUIRED_ENV[kind] if not os.environ.get(v)]
    if not missing:
        return
    msg = (f"the {kind} backend is not configured ({', '.join(missing)} unset): "
           f"`source scripts/databases.sh` or run ./scripts/test")
    if os.environ.get("COFFER_REQUIRE_BACKENDS") == "1":
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


# --- HCL --------------------------------------------------------------------------------------

def _hcl_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))  # JSON string escapes are HCL's


def hcl_block(kind: str, label: str | None, attrs: dict) -> str:
    head = f'{kind} "{label}"' if label is not None else kind
    body = "".join(f"  {k} = {_hcl_value(v)}\n" for k, v in attrs.items())
    return f"{head} {{\n{body}}}\n"


def write_seal_key(path: Path) -> Path:
    """A static seal key: 64 hex characters (32 bytes)."""
    path.write_text(secrets.token_hex(32) + "\n")
    path.chmod(0o600)
    return path


def seal_stanza(key_path: Path) -> str:
    return hcl_block("seal", "static", {"current_key_id": "k1", "current_key": f"file://{key_path}"})


# --- storage engines --------------------------------------------------------------------------

class PgStore:
    """A fresh PostgreSQL database (CREATE DATABASE at create(), DROP ... WITH (FORCE) at drop())."""

    kind = "postgresql"
    TABLE = "coffer_kv_store"

    def __init__(self):
        require_backend("postgresql")
        self.port = int(os.environ["COFFER_TEST_PG_PORT"])
        self.user = os.environ["COFFER_TEST_PG_USER"]
        self.password = os.environ["COFFER_TEST_PG_PASSWORD"]
        self.dbname = "coffer_" + uuid.uuid4().hex[:16]
        self.created = False

    def _connect(self, database: str):
        return pg8000.native.Connection(self.user, host="127.0.0.1", port=self.port, password=self.password,
                                        database=database, timeout=15)

    def create(self) -> "PgStore":
        c = self._connect("postgres")
        try:
            c.run(f'CREATE DATABASE "{self.dbname}"')  # the native API runs it outside a transaction
        finally:
            c.close()
        self.created = True
        return self

    def drop(self) -> None:
        if not self.created:
            return
        c = self._connect("postgres")
        try:
            c.run(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
        finally:
            c.close()
        self.created = False

    def connection_url(self, port: int | None = None) -> str:
        u = urllib.parse.quote(self.user, safe="")
        p = urllib.parse.quote(self.password, safe="")
        return f"postgres://{u}:{p}@127.0.0.1:{port or self.port}/{self.dbname}?sslmode=disable"

    def attrs(self, proxy_port: int | None = None, ha: bool = False) -> dict:
        a = {"connection_url": self.connection_url(proxy_port)}
        if ha:
            a["ha_enabled"] = "true"
        return a

    def upstream_port(self) -> int:
        """Where a proxy for one node's storage connections forwards to."""
        return self.port

    def count(self, table: str = TABLE) -> int | None:
        """Rows in `table`; None when the table does not exist."""
        c = self._connect(self.dbname)
        try:
            exists = c.run("SELECT to_regclass(:t) IS NOT NULL", t=f"public.{table}")[0][0]
            if not exists:
                return None
            return int(c.run(f'SELECT count(*) FROM "{table}"')[0][0])
        finally:
            c.close()

    def describe(self) -> str:
        return f"postgresql database {self.dbname}"


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _prefix_end(prefix: bytes) -> bytes:
    """etcd's range_end for "every key starting with prefix"."""
    p = bytearray(prefix)
    while p:
        if p[-1] < 0xFF:
            p[-1] += 1
            return bytes(p)
        p.pop()
    return b"\0"


class EtcdStore:
    """A fresh key prefix `/coffer-<unique>/` in the test etcd cluster; keys are read and deleted
    through etcd's JSON gateway (/v3/kv/...)."""

    kind = "etcd"

    def __init__(self, path: str | None = None):
        require_backend("etcd")
        self.endpoints = [e.strip().rstrip("/") for e in os.environ["COFFER_TEST_ETCD_ENDPOINTS"].split(",")
                          if e.strip()]
        self.path = path or f"/{uid('coffer')}/"
        self.created = False

    def create(self) -> "EtcdStore":
        self.created = True
        return self

    def drop(self) -> None:
        """Delete the prefix and its siblings (`/coffer-<unique>` without the slash also covers
        what a backend keeps next to its path, e.g. HA locks and check-ins)."""
        if self.created:
            base = self.path.rstrip("/").encode()
            self._gateway("deleterange", {"key": _b64(base), "range_end": _b64(_prefix_end(base))})
            self.created = False

    def address(self, proxy_port: int | None = None) -> str:
        if proxy_port is not None:
            return f"http://127.0.0.1:{proxy_port}"
        return ",".join(self.endpoints)

    def attrs(self, proxy_port: int | None = None, ha: bool = False) -> dict:
        a = {"address": self.address(proxy_port), "path": self.path}
        if ha:
            a["ha_enabled"] = "true"
        return a

    def upstream_port(self) -> int:
        return urllib.parse.urlparse(self.endpoints[0]).port

    def _gateway(self, op: str, body: dict) -> dict:
        last = None
        for ep in self.endpoints:  # any member answers; try the next when one does not
            s = http_session()
            try:
                r = s.post(f"{ep}/v3/kv/{op}", json=body, timeout=REQ_TIMEOUT)
                if r.status_code == 200:
                    return r.json()
                last = f"{ep}: HTTP {r.status_code} {r.text[:300]}"
            except requests.RequestException as e:
                last = f"{ep}: {e!r}"
            finally:
                s.close()
        raise AssertionError(f"etcd {op} failed on every endpoint; last: {last}")

    def items(self) -> dict[str, bytes]:
        """Every key under the prefix (the prefix removed) and its raw value."""
        r = self._gateway("range", {"key": _b64(self.path.encode()),
                                    "range_end": _b64(_prefix_end(self.path.encode()))})
        out = {}
        for kv in r.get("kvs", []):
            k = base64.b64decode(kv["key"])
            out[k[len(self.path.encode()):].decode("utf-8", "surrogateescape")] = base64.b64decode(kv.get("value", ""))
        return out

    def count(self) -> int:
        r = self._gateway("range", {"key": _b64(self.path.encode()),
                                    "range_end": _b64(_prefix_end(self.path.encode())), "count_only": True})
        return int(r.get("count", 0))

    def put_raw(self, key: str, value: bytes) -> None:
        """Write one entry under the prefix directly (to stage a half-done migration)."""
        self._gateway("put", {"key": _b64((self.path + key).encode("utf-8", "surrogateescape")),
                              "value": _b64(value)})

    def describe(self) -> str:
        return f"etcd prefix {self.path}"


def make_store(kind: str):
    return {"postgresql": PgStore, "etcd": EtcdStore}[kind]()


# --- a TCP proxy that can cut a node off from its storage -------------------------------------

class _Pair:
    """One proxied connection: two sockets, two pump threads; the last pump to finish closes both."""

    def __init__(self, a: socket.socket, b: socket.socket):
        self.a, self.b = a, b
        self._lock = threading.Lock()
        self._running = 2

    def shutdown(self) -> None:
        for s in (self.a, self.b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def pump_done(self) -> None:
        self.shutdown()
        with self._lock:
            self._running -= 1
            last = self._running == 0
        if last:
            self.a.close()
            self.b.close()


class TcpProxy:
    """Listens on 127.0.0.1:<port> (a free port) and forwards each connection to
    127.0.0.1:<upstream_port>. ``cut()`` closes the listener and every open connection (new
    connections are then refused); ``heal()`` listens again on the same port."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._listener: socket.socket | None = None
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._cut = False
        self.accepted = 0
        self._open()

    def _open(self) -> None:
        deadline = time.monotonic() + 5
        while True:
            ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                ls.bind(("127.0.0.1", self.port))
                break
            except OSError:
                ls.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        ls.listen(128)
        ls.settimeout(0.1)
        stop = threading.Event()
        self._listener, self._stop = ls, stop
        self._thread = threading.Thread(target=self._accept_loop, args=(ls, stop), daemon=True,
                                        name=f"proxy-accept-{self.port}")
        self._thread.start()

    def _accept_loop(self, ls: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            pair = _Pair(client, upstream)
            with self._lock:
                if self._cut or stop.is_set():
                    client.close()
                    upstream.close()
                    continue
                self._pairs.add(pair)
                self.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(pair, src, dst), daemon=True,
                                 name=f"proxy-pump-{self.port}").start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._pairs.discard(pair)
            pair.pump_done()

    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            pairs = list(self._pairs)
            self._pairs.clear()
            stop, thread, ls = self._stop, self._thread, self._listener
            self._listener = None
        if stop is not None:
            stop.set()
        if thread is not None:
            thread.join(timeout=2)
        if ls is not None:
            ls.close()  # queued, not yet accepted connections are reset
        for p in pairs:
            p.shutdown()  # wakes both pumps; the last one closes the sockets

    def heal(self) -> None:
        with self._lock:
            if not self._cut:
                return
            self._cut = False
        self._open()

    def close(self) -> None:
        self.cut()


# --- HTTP -------------------------------------------------------------------------------------

def api(base, method: str, path: str, token: str | None = None, body=None, params=None,
        timeout: float = REQ_TIMEOUT, headers: dict | None = None) -> requests.Response:
    """One request to `<base>/v1/<path>` (base: a URL or anything with .url); raises
    requests.RequestException on transport errors."""
    url = base if isinstance(base, str) else base.url
    h = dict(headers or {})
    if token is not None:
        h["X-Vault-Token"] = token
    s = http_session()
    try:
        return s.request(method, f"{url}/v1/{path.lstrip('/')}", headers=h, json=body, params=params,
                         timeout=timeout)
    finally:
        s.close()


def try_json(r: requests.Response):
    try:
        return r.json()
    except ValueError:
        return None


class Why:
    """A falsy answer of a wait predicate that says what is missing (shown when the wait fails)."""

    def __init__(self, reason: str):
        self.reason = reason

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return self.reason


def wait_until(pred, timeout: float, interval: float = 0.05, what: str = "the condition"):
    """Poll pred() until it answers something truthy (answered); fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = pred()
        except (requests.RequestException, hvac.exceptions.VaultError) as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.1f}s waiting for {what}; last answer: {last!r}",
                        pytrace=False)
        time.sleep(interval)


# --- nodes and clusters -----------------------------------------------------------------------

class Node:
    """One `coffer server -config=<file>` of a cluster. Its ports are kept across restarts."""

    def __init__(self, name: str, workdir: Path, storage_hcl: Callable[[], str], seal_hcl: str):
        self.name = name
        self.workdir = workdir
        self.storage_hcl = storage_hcl
        self.seal_hcl = seal_hcl
        self.config_path = workdir / f"{name}.hcl"
        self.api_port = 0
        self.cluster_port = 0
        self.process: CofferProcess | None = None
        self.processes: list[CofferProcess] = []   # every process this node ran (for the logs)

    # addresses
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def api_addr(self) -> str:
        return self.url

    @property
    def cluster_addr(self) -> str:
        return f"https://127.0.0.1:{self.cluster_port}"

    def __repr__(self) -> str:
        return f"<node {self.name} {self.url}>"

    def _write_config(self) -> None:
        self.config_path.write_text(
            self.storage_hcl()
            + "\n"
            + 'listener "tcp" {\n'
            f'  address         = "127.0.0.1:{self.api_port}"\n'
            f'  cluster_address = "127.0.0.1:{self.cluster_port}"\n'
            "  tls_disable     = true\n"
            "}\n\n"
            f'api_addr      = "{self.api_addr}"\n'
            f'cluster_addr  = "{self.cluster_addr}"\n'
            "disable_mlock = true\n\n"
            + self.seal_hcl
        )

    def _spawn(self) -> None:
        p = CofferProcess(["server", f"-config={self.config_path}"], self.api_port, self.workdir)
        self.processes.append(p)
        self.process = p
        p.start()  # ready: sys/seal-status answers 200

    def start(self, attempts: int = 3) -> None:
        """First start: fresh free ports; again with new ports if one was taken meanwhile."""
        error = None
        for _ in range(attempts):
            self.api_port = free_port()
            self.cluster_port = free_port()
            while self.cluster_port == self.api_port:
                self.cluster_port = free_port()
            self._write_config()
            try:
                self._spawn()
                return
            except ServerStartError as e:
                error = e
                self.process.stop()
                if "in use" not in str(e).lower():
                    break
        pytest.fail(f"node {self.name} did not start: {error}", pytrace=False)

    def restart(self, attempts: int = 5) -> None:
        """Start again with the same configuration (same ports)."""
        self.stop()
        error = None
        for _ in range(attempts):
            try:
                self._spawn()
                return
            except ServerStartError as e:
                error = e
                self.process.stop()
                if "in use" not in str(e).lower():
                    break
                time.sleep(0.5)
        pytest.fail(f"node {self.name} did not restart: {error}", pytrace=False)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.proc is not None and self.process.proc.poll() is None

    def kill9(self) -> None:
        p = self.process.proc
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def output(self) -> str:
        parts = []
        for i, p in enumerate(self.processes):
            parts.append(f"----- {self.name} process {i + 1} (api {self.url}, cluster {self.cluster_addr}, "
                         f"log {p.log_path}) -----\n{_tail(p.output())}")
        return "\n".join(parts)

    def client(self, token: str | None = None, timeout: float = 10) -> hvac.Client:
        return hvac.Client(url=self.url, token=token, timeout=timeout, session=http_session())

    # what the node says about the cluster
    def leader(self, timeout: float = 2.0) -> dict | None:
        """GET sys/leader (no token): the body, or None when the node did not answer 200."""
        try:
            r = api(self, "GET", "sys/leader", timeout=timeout)
        except requests.RequestException:
            return None
        return r.json() if r.status_code == 200 else None

    def health(self, timeout: float = 2.0, **params) -> tuple[int | None, dict | None]:
        try:
            r = api(self, "GET", "sys/health", params=params or None, timeout=timeout)
        except requests.RequestException:
            return None, None
        return r.status_code, try_json(r)

    def is_active(self) -> bool:
        info = self.leader()
        return bool(info and info.get("is_self"))


class Cluster:
    """N nodes sharing one storage engine (fresh database / etcd prefix) and one static seal key."""

    def __init__(self, kind: str, workdir: Path, proxy_first: bool = False):
        self.kind = kind
        self.workdir = workdir
        self.store = make_store(kind)
        self.key_path = write_seal_key(workdir / "seal.key")
        self.proxy: TcpProxy | None = None
        self.proxy_first = proxy_first
        self.nodes: list[Node] = []
        self.root_token = ""
        self._log_handle: int | None = None

    # lifecycle
    def start(self, n: int = 3) -> "Cluster":
        self._log_handle = register_logs(f"{self.kind} cluster in {self.workdir}", self.output)
        self.store.create()
        if self.proxy_first:
            self.proxy = TcpProxy(self.store.upstream_port())
        seal = seal_stanza(self.key_path)
        for i in range(n):
            proxy_port = self.proxy.port if (i == 0 and self.proxy is not None) else None
            storage = hcl_block("storage", self.kind, self.store.attrs(proxy_port, ha=True))
            self.nodes.append(Node(f"n{i + 1}", self.workdir, lambda s=storage: s, seal))

        first = self.nodes[0]
        first.start()
        r = api(first, "PUT", "sys/init", body={}, timeout=30)
        assert r.status_code == 200, f"sys/init through {first}: HTTP {r.status_code} {r.text[:500]}"
        self.root_token = r.json()["root_token"]
        wait_until(first.is_active, 10, what=f"{first} to become active after init")
        for node in self.nodes[1:]:
            node.start()
        self.wait_stable(timeout=15)
        # what the tests use: kv v2 at secret/
        r = api(self.active(), "POST", f"sys/mounts/{KV_MOUNT}", self.root_token,
                body={"type": "kv", "options": {"version": "2"}})
        assert r.status_code in (200, 204), f"enable kv v2: HTTP {r.status_code} {r.text[:300]}"
        return self

    def close(self) -> None:
        try:
            for node in self.nodes:
                try:
                    node.stop()
                except Exception:  # noqa: BLE001 - stop the others anyway
                    pass
            if self.proxy is not None:
                self.proxy.close()
            self.store.drop()
        finally:
            unregister_logs(self._log_handle)

    def output(self) -> str:
        return "\n".join(n.output() for n in self.nodes)

    # views
    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.alive]

    def node_at(self, api_addr: str) -> Node | None:
        for n in self.nodes:
            if n.api_addr == api_addr.rstrip("/"):
                return n
        return None

    def actives(self, nodes: list[Node] | None = None) -> list[Node]:
        return [n for n in (nodes if nodes is not None else self.live()) if n.is_active()]

    def active(self) -> Node:
        """The one node that says it is active (fails when there is not exactly one)."""
        act = self.actives()
        assert len(act) == 1, f"expected exactly one active node, got {act}"
        return act[0]

    def standbys(self) -> list[Node]:
        act = self.active()
        return [n for n in self.live() if n is not act]

    def stable(self, nodes: list[Node] | None = None):
        """The active node when exactly one of `nodes` (default: the live ones) reports is_self,
        every one of them names it as leader, and every one is unsealed (health with
        standbyok=true answers 200); else a description of what is not there yet."""
        nodes = nodes if nodes is not None else self.live()
        infos = {n.name: n.leader() for n in nodes}
        silent = [n.name for n in nodes if infos[n.name] is None]
        if silent:
            return Why(f"no 200 answer to sys/leader from {silent}")
        selfs = [n for n in nodes if infos[n.name].get("is_self")]
        if len(selfs) != 1:
            return Why(f"{len(selfs)} nodes say they are active: {[n.name for n in selfs]}")
        act = selfs[0]
        named = {n.name: infos[n.name].get("leader_address") for n in nodes}
        if any((v or "").rstrip("/") != act.api_addr for v in named.values()):
            return Why(f"{act.name} ({act.api_addr}) is active but the nodes name as leader: {named}")
        health = {n.name: n.health(standbyok="true")[0] for n in nodes}
        if any(v != 200 for v in health.values()):
            return Why(f"sys/health?standbyok=true answers {health}")
        return act

    def ready(self, timeout: float = 15) -> Node:
        """Restart any node a failed test left dead, then wait until the whole cluster is stable;
        answer the active node."""
        for n in self.nodes:
            if not n.alive:
                n.restart()
        return self.wait_stable(timeout, nodes=self.nodes)

    def wait_stable(self, timeout: float = 10, nodes: list[Node] | None = None) -> Node:
        return wait_until(lambda: self.stable(nodes), timeout, interval=0.1,
                          what=f"one active node named as leader by every node of {nodes or self.live()}")

    def wait_new_active(self, candidates: list[Node], timeout: float, exclude: Node | None = None
                        ) -> tuple[Node | None, float]:
        """Poll `candidates` until one (not `exclude`) reports is_self; answer (node, seconds waited),
        or (None, seconds) at the timeout."""
        t0 = time.monotonic()
        while True:
            for n in candidates:
                if n is not exclude and n.is_active():
                    return n, time.monotonic() - t0
            if time.monotonic() - t0 >= timeout:
                return None, time.monotonic() - t0
            time.sleep(0.05)


def start_cluster(kind: str, workdir: Path, n: int = 3, proxy_first: bool = False) -> Cluster:
    c = Cluster(kind, workdir, proxy_first=proxy_first)
    try:
        c.start(n)
    except BaseException:
        c.close()
        raise
    return c


# --- kv helpers -------------------------------------------------------------------------------

def kv_write(node, token: str, key: str, data: dict, timeout: float = REQ_TIMEOUT) -> requests.Response:
    return api(node, "POST", f"{KV_MOUNT}/data/{key}", token, body={"data": data}, timeout=timeout)


def kv_read(node, token: str, key: str, timeout: float = REQ_TIMEOUT, version: int | None = None
            ) -> tuple[int, dict | None, int | None]:
    """(status, data, version) of GET secret/data/<key>."""
    params = {"version": str(version)} if version is not None else None
    r = api(node, "GET", f"{KV_MOUNT}/data/{key}", token, params=params, timeout=timeout)
    body = try_json(r) or {}
    d = body.get("data") or {}
    return r.status_code, d.get("data"), (d.get("metadata") or {}).get("version")


def check_readable(nodes: list[Node], token: str, expected: dict[str, dict], workers: int = 8
                   ) -> dict[str, list[str]]:
    """Read every key of `expected` through every node; answer {node name: [problems]}."""
    problems: dict[str, list[str]] = {}

    def one(node: Node, key: str, value: dict) -> str | None:
        try:
            st, data, _ = kv_read(node, token, key)
        except requests.RequestException as e:
            return f"{key}: {e!r}"
        if st != 200:
            return f"{key}: HTTP {st}"
        if data != value:
            return f"{key}: {data!r} != {value!r}"
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for node in nodes:
            futs = [pool.submit(one, node, k, v) for k, v in expected.items()]
            problems[node.name] = [p for p in (f.result(timeout=60) for f in futs) if p]
    return problems


# --- the writer -------------------------------------------------------------------------------

@dataclasses.dataclass
class Attempt:
    t0: float          # monotonic time the request was sent
    t1: float          # ... and answered (or failed)
    node: str
    key: str
    status: int | None
    error: str | None
    json_error_body: bool   # a non-2xx answer carried {"errors": [...]}

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Writer:
    """A thread writing secret/data/<prefix>/<i> (i = 0, 1, ...) round-robin through the nodes of
    ``targets`` (a list it re-reads before every request; change it with ``set_targets``), one
    request at a time, each with a WRITE_TIMEOUT timeout. Records every attempt; ``acked`` maps
    each key answered 2xx to the value written. With ``fence_key``, every other request writes
    that one key instead (its acknowledgements are in ``fence_acked``)."""

    def __init__(self, targets: list[Node], token: str, prefix: str, pause: float = 0.01,
                 fence_key: str | None = None):
        self.token = token
        self.prefix = prefix
        self.pause = pause
        self.fence_key = fence_key
        self._targets = list(targets)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.attempts: list[Attempt] = []
        self.acked: dict[str, dict] = {}
        self.fence_acked: list[tuple[Attempt, dict]] = []
        self._sessions: dict[str, requests.Session] = {}
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"writer-{prefix}")
        self.crash: BaseException | None = None

    def set_targets(self, targets: list[Node]) -> None:
        with self._lock:
            self._targets = list(targets)

    def start(self) -> "Writer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=WRITE_TIMEOUT + 10)
        assert not self._thread.is_alive(), "the writer thread did not stop"
        for s in self._sessions.values():
            s.close()
        if self.crash is not None:
            raise AssertionError(f"the writer thread crashed: {self.crash!r}")

    def _session(self, node: Node) -> requests.Session:
        s = self._sessions.get(node.name)
        if s is None:
            s = self._sessions[node.name] = http_session()
        return s

    def _run(self) -> None:
        i = 0
        try:
            while not self._stop.is_set():
                with self._lock:
                    targets = list(self._targets)
                if not targets:
                    time.sleep(self.pause)
                    continue
                node = targets[i % len(targets)]
                fence = self.fence_key is not None and i % 2 == 1
                key = self.fence_key if fence else f"{self.prefix}/{i}"
                value = {"i": i, "via": node.name, "run": self.prefix}
                t0 = time.monotonic()
                status = error = None
                json_err = False
                try:
                    r = self._session(node).post(f"{node.url}/v1/{KV_MOUNT}/data/{key}",
                                                 headers={"X-Vault-Token": self.token},
                                                 json={"data": value}, timeout=WRITE_TIMEOUT)
                    status = r.status_code
                    if not 200 <= status < 300:
                        body = try_json(r)
                        json_err = isinstance(body, dict) and isinstance(body.get("errors"), list)
                        error = r.text[:200]
                except requests.RequestException as e:
                    error = type(e).__name__
                    # a broken keep-alive connection must not poison the next request
                    old = self._sessions.pop(node.name, None)
                    if old is not None:
                        old.close()
                a = Attempt(t0, time.monotonic(), node.name, key, status, error, json_err)
                self.attempts.append(a)
                if a.ok:
                    if fence:
                        self.fence_acked.append((a, value))
                    else:
                        self.acked[key] = value
                i += 1
                self._stop.wait(self.pause)
        except BaseException as e:  # noqa: BLE001 - reported by stop()
            self.crash = e

    # analysis
    def stats(self) -> dict:
        by_node: dict[str, list[int]] = {}
        for a in self.attempts:
            ok_err = by_node.setdefault(a.node, [0, 0])
            ok_err[0 if a.ok else 1] += 1
        return {"attempts": len(self.attempts), "acked": sum(1 for a in self.attempts if a.ok),
                "errors": sum(1 for a in self.attempts if not a.ok),
                "by_node (ok, err)": {k: tuple(v) for k, v in sorted(by_node.items())}}


@dataclasses.dataclass
class Stretch:
    start: float      # the first failed request of the stretch was sent
    end: float        # the next successful request was answered (or the last attempt, if none)
    errors: int
    recovered: bool
    first_error: str

    @property
    def seconds(self) -> float:
        return self.end - self.start


def error_stretches(attempts: list[Attempt]) -> list[Stretch]:
    """Runs of consecutive failed requests (in sending order), each measured from the sending of
    its first failure to the answer of the next success."""
    out: list[Stretch] = []
    cur: Stretch | None = None
    for a in sorted(attempts, key=lambda a: a.t0):
        if not a.ok:
            if cur is None:
                cur = Stretch(a.t0, a.t1, 0, False, f"{a.node} {a.key}: {a.status} {a.error}")
            cur.errors += 1
            cur.end = a.t1
        elif cur is not None:
            cur.end = a.t1
            cur.recovered = True
            out.append(cur)
            cur = None
    if cur is not None:
        out.append(cur)
    return out


def longest_stretch(attempts: list[Attempt]) -> Stretch | None:
    s = error_stretches(attempts)
    return max(s, key=lambda x: x.seconds) if s else None


# --- single servers and `coffer operator migrate` ---------------------------------------------

class SingleServer:
    """One `coffer server -config=<file>` on the given storage stanza (HCL), with the given seal
    stanza, on a free port; its log is attached to failing tests until stop()."""

    def __init__(self, workdir: Path, storage_hcl: str, seal_hcl: str, label: str):
        workdir.mkdir(parents=True, exist_ok=True)
        cfg = workdir / f"server-{uuid.uuid4().hex[:8]}.hcl"

        def args(port: int) -> list[str]:
            cfg.write_text(storage_hcl + "\n"
                           + f'listener "tcp" {{\n  address     = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n\n'
                           + "disable_mlock = true\n\n" + seal_hcl)
            return ["server", f"-config={cfg}"]

        self.process = _start(args, workdir)
        self.url = self.process.url
        self._handle = register_logs(label, self.process.output)

    def output(self) -> str:
        return self.process.output()

    def stop(self) -> None:
        """Stop the process (its log stays attached to failures until forget())."""
        self.process.stop()

    def forget(self) -> None:
        unregister_logs(self._handle)
        self._handle = None


def init_static(url: str, timeout: float = 30) -> str:
    """PUT sys/init {} on a statically sealed server; answer the root token, once it is usable."""
    r = api(url, "PUT", "sys/init", body={}, timeout=timeout)
    assert r.status_code == 200, f"sys/init: HTTP {r.status_code} {r.text[:500]}"
    root = r.json()["root_token"]
    wait_until(lambda: api(url, "GET", "sys/health").status_code == 200, 10,
               what=f"{url} to be unsealed and active after init")
    return root


COPIED_RE = re.compile(r"copied (\d+) entries")


@dataclasses.dataclass
class MigrateResult:
    rc: int
    stdout: str
    stderr: str
    config: str
    args: list[str]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def copied(self) -> int:
        found = COPIED_RE.findall(self.output)
        assert found, f"migrate printed no `copied N entries` line\n{self}"
        return int(found[-1])

    def __str__(self) -> str:
        return (f"coffer {' '.join(self.args)} -> exit {self.rc}\n--- config ---\n{self.config}"
                f"--- stdout ---\n{_tail(self.stdout, 60)}\n--- stderr ---\n{_tail(self.stderr, 60)}")


def storage_attrs(store) -> tuple[str, dict]:
    """(type, attributes) for a migrate stanza naming `store` (a PgStore, an EtcdStore, or a Path
    for file storage)."""
    if isinstance(store, Path):
        return "file", {"path": str(store)}
    return store.kind, store.attrs()


def migrate_config(source, destination) -> str:
    """A migrate file; source/destination: a store (see storage_attrs), a (type, attrs) tuple, or
    None to leave that stanza out."""
    text = ""
    for stanza, side in (("storage_source", source), ("storage_destination", destination)):
        if side is None:
            continue
        kind, attrs = side if isinstance(side, tuple) else storage_attrs(side)
        text += hcl_block(stanza, kind, attrs)
    return text


def run_migrate(workdir: Path, config_text: str, start: str | None = None, timeout: float = 120
                ) -> MigrateResult:
    cfg = workdir / f"migrate-{uuid.uuid4().hex[:8]}.hcl"
    cfg.write_text(config_text)
    args = ["operator", "migrate", f"-config={cfg}"]
    if start is not None:
        args.append(f"-start={start}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "AWS_"))}
    p = subprocess.run([coffer_bin(), *args], env=env, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, cwd=workdir)
    return MigrateResult(p.returncode, p.stdout, p.stderr, config_text, args)
