"""hvac 2.4 audit device calls (client.sys.*audit*) against a file device, and what lands in the file.

The dev server is shared by every test, and audit is fail-closed: a device that stays enabled and
later breaks would fail every request of the session. So each test enables its own uuid-named
device and always disables it again (the ``file_audit`` fixture).
"""

from __future__ import annotations

import json
import re

import pytest
from hvac import exceptions

from conftest import all_strings, audit_entries, uid

HMAC_RE = re.compile(r"^hmac-sha256:[0-9a-f]{64}$")


def test_enable_list_disable(client, tmp_path):
    path = uid("aud")
    log = tmp_path / "a.log"
    client.sys.enable_audit_device(device_type="file", path=path, description="compat",
                                   options={"file_path": str(log)})
    try:
        listed = client.sys.list_enabled_audit_devices()
        dev = listed["data"][f"{path}/"]
        assert dev["type"] == "file"
        assert dev["description"] == "compat"
        assert dev["options"] == {"file_path": str(log)}
        assert dev["path"] == f"{path}/"
        assert dev["local"] is False
        # the same path cannot be enabled twice
        with pytest.raises(exceptions.InvalidRequest) as e:
            client.sys.enable_audit_device(device_type="file", path=path, options={"file_path": str(log)})
        assert e.value.errors
    finally:
        r = client.sys.disable_audit_device(path)
    assert r.status_code == 204
    assert f"{path}/" not in client.sys.list_enabled_audit_devices()["data"]
    # nothing is written after disable
    n = len(audit_entries(log))
    client.auth.token.lookup_self()
    assert len(audit_entries(log)) == n


def test_calculate_hash_matches_logged_secret(client, kv2_mount, file_audit):
    path, log = file_audit
    secret_value = "s3cret-" + uid("v")
    p = uid("s")
    client.secrets.kv.v2.create_or_update_secret(path=p, secret={"password": secret_value}, mount_point=kv2_mount)
    client.secrets.kv.v2.read_secret_version(path=p, mount_point=kv2_mount, raise_on_deleted_version=True)

    h = client.sys.calculate_hash(path, secret_value)["data"]["hash"]
    assert HMAC_RE.match(h), h
    # deterministic per device
    assert client.sys.calculate_hash(path, secret_value)["data"]["hash"] == h

    es = audit_entries(log)
    api_path = f"{kv2_mount}/data/{p}"
    writes = [e for e in es if e["request"]["path"] == api_path and e["request"]["operation"] in ("create", "update")]
    reads = [e for e in es if e["request"]["path"] == api_path and e["request"]["operation"] == "read"]
    assert {e["type"] for e in writes} == {"request", "response"}
    assert {e["type"] for e in reads} == {"request", "response"}
    for e in writes:
        assert e["request"]["data"]["data"]["password"] == h
    read_resp = [e for e in reads if e["type"] == "response"][0]
    assert read_resp["response"]["data"]["data"]["password"] == h
    # the request id in the entry is the one hvac got back
    assert all(e["request"]["id"] for e in es)


def test_nothing_in_clear(dev_server, client, kv2_mount, file_audit):
    path, log = file_audit
    secret_value = "clear-" + uid("v")
    p = uid("s")
    client.secrets.kv.v2.create_or_update_secret(path=p, secret={"k": secret_value, "n": 7}, mount_point=kv2_mount)
    client.secrets.kv.v2.read_secret_version(path=p, mount_point=kv2_mount, raise_on_deleted_version=True)
    # a token created and used while auditing: neither it nor root may show up in clear
    tok = client.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    dev_server.client(tok).auth.token.lookup_self()

    text = log.read_text()
    assert secret_value not in text
    assert dev_server.root_token not in text
    assert tok not in text

    root_hash = client.sys.calculate_hash(path, dev_server.root_token)["data"]["hash"]
    tok_hash = client.sys.calculate_hash(path, tok)["data"]["hash"]
    es = audit_entries(log)
    assert es
    for e in es:
        assert e["type"] in ("request", "response")
        assert e["time"]
        assert e["request"]["client_token"] in (root_hash, tok_hash)
        assert e["auth"]["client_token"] in (root_hash, tok_hash)
        # every string in request / response data is an HMAC
        for section in ("request", "response"):
            data = e.get(section, {}).get("data")
            if data is not None:
                for s in all_strings(data):
                    assert HMAC_RE.match(s), (section, e["request"]["path"], s)
    # numbers stay numbers
    w = [e for e in es if e["request"]["path"] == f"{kv2_mount}/data/{p}" and "data" in e["request"]][0]
    assert w["request"]["data"]["data"]["n"] == 7
    # the token created in the response is HMAC'd too
    created = [e for e in es if e["type"] == "response" and e["request"]["path"] == "auth/token/create"][0]
    assert created["response"]["auth"]["client_token"] == tok_hash
    assert created["response"]["auth"]["policies"] == ["default"]


def test_entries_are_hash_chained(client, file_audit):
    _, log = file_audit
    for _ in range(3):
        client.auth.token.lookup_self()
    es = audit_entries(log)
    assert len(es) >= 6
    assert es[0]["seq"] == 1 and es[0]["prev_hash"] == ""
    for prev, cur in zip(es, es[1:]):
        assert cur["seq"] == prev["seq"] + 1
        assert cur["prev_hash"] == prev["hash"]
        assert re.match(r"^[0-9a-f]{64}$", cur["hash"])
        assert cur["dialect"] == "vault"
    # every request entry is followed by its response entry (same request id)
    ids = [(e["type"], e["request"]["id"]) for e in es if e["request"]["path"] == "auth/token/lookup-self"]
    assert ids[0][0] == "request" and ("response", ids[0][1]) in ids


def test_denied_request_is_audited_with_error(client, token_for_policy, file_audit):
    _, log = file_audit
    limited = token_for_policy('path "secret/data/only-this" { capabilities = ["read"] }')
    target = uid("forbidden")
    with pytest.raises(exceptions.Forbidden):
        limited.secrets.kv.v2.read_secret_version(path=target, raise_on_deleted_version=True)
    es = [e for e in audit_entries(log) if e["request"]["path"] == f"secret/data/{target}"]
    assert es, "a denied request must still be audited"
    assert any("permission denied" in e.get("error", "") for e in es)


def test_calculate_hash_unknown_device(client):
    with pytest.raises(exceptions.InvalidRequest) as e:
        client.sys.calculate_hash(uid("nodev"), "x")
    assert "unknown audit backend" in str(e.value)


def test_enable_unwritable_file_is_refused(client, tmp_path):
    # must be refused up front: an enabled device that cannot write would fail every request.
    # (a missing directory is created, as Vault does; a regular file as parent cannot be)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    path = uid("aud")
    with pytest.raises(exceptions.InvalidRequest) as e:
        client.sys.enable_audit_device(device_type="file", path=path,
                                       options={"file_path": str(blocker / "audit.log")})
    assert e.value.errors
    assert f"{path}/" not in client.sys.list_enabled_audit_devices()["data"]
    assert client.auth.token.lookup_self()["data"]["policies"] == ["root"]


def test_unknown_device_type_is_refused(client):
    path = uid("aud")
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.enable_audit_device(device_type="nosuchtype", path=path)
    assert f"{path}/" not in client.sys.list_enabled_audit_devices()["data"]


def test_audit_endpoints_need_sudo(client, token_for_policy, tmp_path):
    c = token_for_policy('path "sys/audit*" { capabilities = ["create", "read", "update", "delete", "list"] }')
    path = uid("aud")
    with pytest.raises(exceptions.Forbidden):
        c.sys.enable_audit_device(device_type="file", path=path, options={"file_path": str(tmp_path / "x.log")})
    with pytest.raises(exceptions.Forbidden):
        c.sys.list_enabled_audit_devices()
    assert f"{path}/" not in client.sys.list_enabled_audit_devices()["data"]


# --- fail-closed (own server: a broken device must stop every request) ------------------------------

class UnixLineSink:
    """A unix stream socket listener collecting what the audit device writes; stop() breaks it."""

    def __init__(self, path: str):
        import socket
        import threading

        self.path = path
        self.data = bytearray()
        self.lock = threading.Lock()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(8)
        self.conns = []
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        import threading

        while not self.stopped:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            with self.lock:
                self.data.extend(chunk)

    def lines(self) -> list[dict]:
        with self.lock:
            text = self.data.decode()
        return [json.loads(x) for x in text.splitlines() if x.strip()]

    def stop(self):
        import os
        import socket

        self.stopped = True
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.srv.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def test_audit_is_fail_closed(config_server):
    import os
    import tempfile
    import time

    c = config_server.client()
    init = c.sys.initialize(1, 1)
    c.sys.submit_unseal_key(init["keys"][0])
    root = config_server.client(init["root_token"])
    root.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})

    sockdir = tempfile.mkdtemp(prefix="cof-", dir="/tmp")
    sock_path = os.path.join(sockdir, "audit.sock")
    sink = UnixLineSink(sock_path)
    try:
        root.sys.enable_audit_device(device_type="socket", path="sock",
                                     options={"address": sock_path, "socket_type": "unix"})
        root.secrets.kv.v2.create_or_update_secret(path="before", secret={"a": "1"}, mount_point="kv")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
                e["request"]["path"] == "kv/data/before" for e in sink.lines() if "request" in e):
            time.sleep(0.05)
        assert any(e["request"]["path"] == "kv/data/before" for e in sink.lines() if "request" in e)

        # break the only audit device: requests must now fail instead of running unaudited
        sink.stop()
        failed = None
        for _ in range(3):
            try:
                root.auth.token.lookup_self()
            except exceptions.VaultError as e:
                failed = e
                break
        assert failed is not None, "requests kept succeeding with a broken audit device"
        assert isinstance(failed, exceptions.InternalServerError)
        with pytest.raises(exceptions.InternalServerError):
            root.secrets.kv.v2.create_or_update_secret(path="during", secret={"a": "2"}, mount_point="kv")

        # repair: the device reconnects and requests flow again
        sink = UnixLineSink(sock_path)
        assert root.auth.token.lookup_self()["data"]["policies"] == ["root"]
        # the write attempted while auditing was broken never happened
        with pytest.raises(exceptions.InvalidPath):
            root.secrets.kv.v2.read_secret_version(path="during", mount_point="kv", raise_on_deleted_version=True)
        assert root.secrets.kv.v2.read_secret_version(path="before", mount_point="kv",
                                                      raise_on_deleted_version=True)["data"]["data"] == {"a": "1"}
        root.sys.disable_audit_device("sock")
    finally:
        sink.stop()
        try:
            os.rmdir(sockdir)
        except OSError:
            pass
