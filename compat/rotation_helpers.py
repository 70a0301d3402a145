"""Helpers for the automatic-rotation tests: a dev server whose schedule "hour" lasts one second,
waiting for the scheduler, the Vault dialect's rotation state, the `coffer rotate` CLI and the
audit log.

With `rotation { hour = "1s" }` a schedule `rate(4 hours)` fires every ~4 s, retries back off by
~8 ms, 16 ms, ... and the scheduler looks for due work every 100 ms.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from conftest import audit_entries as conftest_audit_entries
from conftest import (AWS_ACCESS_KEY_ID, AWS_ACCOUNT_ID, AWS_SECRET_ACCESS_KEY, ConfigServer, DevServer, _start,
                      coffer_bin, http_session, make_client)

ROTATION_STANZA = 'rotation {\n  hour = "1s"\n}\n'
STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]


# --- servers ----------------------------------------------------------------------------------

def start_rotation_dev_server(workdir: Path, rotation_stanza: str = ROTATION_STANZA) -> DevServer:
    """`coffer server -dev` (fixed root token and AWS key) with a config file adding a plain HTTP
    listener on a free port and the `rotation` stanza."""
    root = "root-" + secrets.token_hex(12)
    cfg = workdir / "rotation-dev.hcl"

    def args(port: int) -> list[str]:
        cfg.write_text(
            'storage "inmem" {}\n'
            f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n'
            + rotation_stanza
        )
        return ["server", "-dev", f"-dev-root-token-id={root}",
                f"-dev-aws-access-key-id={AWS_ACCESS_KEY_ID}",
                f"-dev-aws-secret-access-key={AWS_SECRET_ACCESS_KEY}",
                f"-dev-aws-account-id={AWS_ACCOUNT_ID}",
                f"-config={cfg}"]

    return DevServer(_start(args, workdir), root)


def init_config_server(srv: ConfigServer) -> dict:
    """Initialize and unseal a ConfigServer; enable kv v2 at secret/ and `aws-access-keys` at
    aws-keys/, and issue a key whose policy covers secret/*. Answers {keys, root, key_id, secret}."""
    c = srv.client()
    init = c.sys.initialize(secret_shares=1, secret_threshold=1)
    assert c.sys.submit_unseal_key(init["keys"][0])["sealed"] is False
    root = srv.client(init["root_token"])
    root.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    root.sys.enable_auth_method("aws-access-keys", path="aws-keys")
    root.sys.create_or_update_policy(
        name="app", policy='path "secret/*" { capabilities = ["create", "read", "update", "delete", "list"] }\n')
    key = root.write("auth/aws-keys/keys/app", policies=["app"])["data"]
    srv.root_token = init["root_token"]
    srv.unseal_keys = init["keys"]
    srv.aws_key = (key["access_key_id"], key["secret_access_key"])
    return {"keys": init["keys"], "root": init["root_token"],
            "key_id": key["access_key_id"], "secret": key["secret_access_key"]}


def unseal(srv) -> None:
    c = srv.client()
    for k in srv.unseal_keys:
        c.sys.submit_unseal_key(k)
    assert c.sys.read_seal_status()["sealed"] is False


# --- waiting ----------------------------------------------------------------------------------

def wait_until(pred, timeout: float = 10.0, interval: float = 0.05, what: str = "the condition"):
    """Poll pred() until it answers something truthy (answered); fail after `timeout` seconds with
    the last answer."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.1f}s waiting for {what}; last answer: {last!r}",
                        pytrace=False)
        time.sleep(interval)


# --- AWS views --------------------------------------------------------------------------------

def stages(sm, name) -> dict[str, list[str]]:
    return {k: sorted(v) for k, v in sm.describe_secret(SecretId=name).get("VersionIdsToStages", {}).items()}


def holder(sm, name, stage):
    owners = [v for v, st in stages(sm, name).items() if stage in st]
    assert len(owners) <= 1, (stage, owners)
    return owners[0] if owners else None


def wait_rotation_done(sm, name, version_id, timeout: float = 10.0) -> dict:
    """Wait until `version_id` holds AWSCURRENT and the run is over (no AWSPENDING left on it);
    answer the final DescribeSecret."""
    def done():
        d = sm.describe_secret(SecretId=name)
        st = d.get("VersionIdsToStages", {})
        if st.get(version_id) == ["AWSCURRENT"]:
            return d
        return None
    return wait_until(done, timeout, what=f"version {version_id} of {name} to be AWSCURRENT alone")


# --- the Vault dialect's rotation state --------------------------------------------------------

def rotation_state(server, name: str, mount: str = "secret", token: str | None = None) -> dict:
    """GET /v1/<mount>/domain/rotation/<name> (root token by default): the answer's data."""
    s = http_session()
    try:
        r = s.get(f"{server.url}/v1/{mount}/domain/rotation/{name}",
                  headers={"X-Vault-Token": token or server.root_token}, timeout=10)
    finally:
        s.close()
    assert r.status_code == 200, (r.status_code, r.text[:500])
    return r.json()["data"]


def put_rotation(server, name: str, body: dict, mount: str = "secret", token: str | None = None):
    """PUT /v1/<mount>/domain/rotation/<name>; answers the requests.Response."""
    s = http_session()
    try:
        return s.put(f"{server.url}/v1/{mount}/domain/rotation/{name}",
                     headers={"X-Vault-Token": token or server.root_token}, json=body, timeout=10)
    finally:
        s.close()


def run_error(state: dict) -> str:
    """The error text a rotation state reports (the run's, else the last one), '' when none."""
    run = state.get("run") or {}
    return run.get("last_error") or state.get("last_error") or ""


def wait_failed(server, name: str, needle: str, timeout: float = 10.0) -> dict:
    """Wait until the rotation of `name` is given up (no run) with an error containing `needle`."""
    def failed():
        st = rotation_state(server, name)
        if not st.get("run") and needle in (st.get("last_error") or ""):
            return st
        return None
    return wait_until(failed, timeout, what=f"the rotation of {name} to fail with {needle!r}")


# --- the `coffer` CLI --------------------------------------------------------------------------

def coffer_cli(server, *args: str, token: str | None = None, timeout: float = 30):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULT_", "COFFER_", "AWS_")) and k.lower() not in
           ("http_proxy", "https_proxy", "all_proxy")}
    env.update({"VAULT_ADDR": server.url, "VAULT_TOKEN": token or server.root_token, "NO_PROXY": "*"})
    return subprocess.run([coffer_bin(), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


# --- audit ------------------------------------------------------------------------------------

def enable_file_audit(server, path: Path, name: str = "rotaudit"):
    c = make_client(server.url, server.root_token)
    c.sys.enable_audit_device(device_type="file", path=name, options={"file_path": str(path)})
    return c


def audit_entries(path: Path) -> list[dict]:
    """The entries written so far (none while the file does not exist yet)."""
    return conftest_audit_entries(path, missing_ok=True)
