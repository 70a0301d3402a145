"""hvac 2.4 over the HTTPS listener of `coffer server -dev`, configured only through the environment
variables the dev server prints (``VAULT_ADDR``, ``VAULT_CACERT``) plus ``VAULT_TOKEN``.

hvac reads ``VAULT_CACERT`` when it is imported, so each client runs in a fresh interpreter whose
environment holds exactly those variables, as in a shell where the printed exports were pasted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import uid

# A kv v2 round trip with `hvac.Client()` and no arguments: the address, the CA and the token come
# from the environment.
HVAC_ROUND_TRIP = textwrap.dedent(
    """\
    import json, sys
    import hvac
    client = hvac.Client()
    path = sys.argv[1]
    client.secrets.kv.v2.create_or_update_secret(path=path, secret={"api_key": "s3cr3t"})
    data = client.secrets.kv.v2.read_secret_version(path=path, raise_on_deleted_version=True)
    health = client.sys.read_health_status(method="GET")
    print(json.dumps({"url": client.url, "data": data["data"]["data"], "sealed": health["sealed"]}))
    """
)

# Plain `requests` and the standard library trust the CA through REQUESTS_CA_BUNDLE and SSL_CERT_FILE.
OTHER_CLIENTS = textwrap.dedent(
    """\
    import json, os, sys, urllib.request
    import requests
    url = os.environ["VAULT_ADDR"] + "/v1/sys/health"
    r = requests.get(url, timeout=10)
    with urllib.request.urlopen(url, timeout=10) as u:
        status = u.status
    print(json.dumps({"requests": r.status_code, "urllib": status}))
    """
)


def clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The test's environment without anything that could point a client elsewhere, plus `extra`."""
    drop = ("VAULT_", "COFFER_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_", "NODE_EXTRA_CA_CERTS")
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(drop) and not k.lower().endswith("_proxy")}
    env["HOME"] = str(tmp)  # no ~/.vault-token
    env.update(extra)
    return env


def run_python(script: str, env: dict[str, str], *args: str) -> dict:
    r = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, f"client failed:\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)


def test_hvac_from_printed_exports(dev_tls_server, tmp_path):
    exports = dev_tls_server.exports()
    # the HTTP address first (as before), then the HTTPS alternative
    assert exports["VAULT_ADDR"] == [dev_tls_server.url, dev_tls_server.https_url]
    ca = exports["VAULT_CACERT"][0]
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS"):
        assert exports[name] == [ca], name
    assert f"CA certificate: {ca}" in dev_tls_server.output()
    assert Path(ca).is_file()

    env = clean_env(tmp_path, VAULT_ADDR=exports["VAULT_ADDR"][1], VAULT_CACERT=ca,
                    VAULT_TOKEN=dev_tls_server.root_token)
    path = uid("tls")
    out = run_python(HVAC_ROUND_TRIP, env, path)
    assert out == {"url": dev_tls_server.https_url, "data": {"api_key": "s3cr3t"}, "sealed": False}

    # what hvac wrote over HTTPS is there over HTTP too (one core behind both listeners)
    http = dev_tls_server.client(dev_tls_server.root_token)
    got = http.secrets.kv.v2.read_secret_version(path=path, raise_on_deleted_version=True)
    assert got["data"]["data"] == {"api_key": "s3cr3t"}

    # without the CA, hvac refuses the server's certificate
    no_ca = clean_env(tmp_path, VAULT_ADDR=dev_tls_server.https_url, VAULT_TOKEN=dev_tls_server.root_token)
    r = subprocess.run([sys.executable, "-c", HVAC_ROUND_TRIP, uid("tls")], env=no_ca, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in r.stderr, r.stderr

    # the other printed exports work for the clients they are meant for
    env = clean_env(tmp_path, VAULT_ADDR=dev_tls_server.https_url, REQUESTS_CA_BUNDLE=ca, SSL_CERT_FILE=ca)
    assert run_python(OTHER_CLIENTS, env) == {"requests": 200, "urllib": 200}

    # a clean stop removes the CA's directory
    dev_tls_server.process.stop()
    assert dev_tls_server.process.proc.returncode == 0
    assert not Path(ca).parent.exists()
