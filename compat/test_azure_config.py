"""The server configuration's `azure` stanza: vault names (the first label of the request's Host)
mapped to kv mounts, the tenant named in the challenge, and the AppRole mount behind the token
endpoints. Config-mode servers (file storage, plain HTTP listener), initialized and unsealed here; the
SDK refuses bearer tokens over http, so requests are raw, with an explicit Host header.
"""

from __future__ import annotations

import re
import time
import uuid
from urllib.parse import urlparse

import pytest

from azure_helpers import API, raw_error
from conftest import ConfigServer, http_session

TENANT = "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"

CONFIG = f"""
azure {{
  tenant = "{TENANT}"
  vault "payments" {{
    mount = "kv-pay"
  }}
}}
"""


def _init(srv: ConfigServer):
    c = srv.client()
    init = c.sys.initialize(secret_shares=1, secret_threshold=1)
    c.sys.submit_unseal_key(init["keys"][0])
    root = srv.client(init["root_token"])
    root.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    srv.root = root
    srv.root_token = init["root_token"]
    srv.port = urlparse(srv.url).port
    return root


def kv_request(srv, method, path, host, token=None, **kwargs):
    headers = dict(kwargs.pop("headers", {}) or {})
    headers["Host"] = host
    if token:
        headers["Authorization"] = f"Bearer {token}"
    params = kwargs.pop("params", {"api-version": API})
    s = http_session()
    try:
        return s.request(method, srv.url + path, headers=headers, params=params, timeout=30, **kwargs)
    finally:
        s.close()


@pytest.fixture(scope="module")
def azure_config_server(tmp_path_factory):
    srv = ConfigServer(tmp_path_factory.mktemp("coffer-azure-config"), extra_config=CONFIG)
    srv.start()
    try:
        root = _init(srv)
        root.sys.enable_secrets_engine("kv", path="kv-pay", options={"version": "2"})
        yield srv
    finally:
        srv.stop()


def _read(root, mount, name):
    return root.secrets.kv.v2.read_secret_version(path=name, mount_point=mount,
                                                  raise_on_deleted_version=True)["data"]["data"]


def test_a_vault_name_is_served_by_its_mount(azure_config_server):
    srv = azure_config_server
    tok = srv.root_token
    pay = f"payments.example.test:{srv.port}"
    ip = f"127.0.0.1:{srv.port}"
    other = f"other.example.test:{srv.port}"
    name = "db-" + uuid.uuid4().hex[:8]
    r = kv_request(srv, "PUT", f"/secrets/{name}", pay, tok, json={"value": "pay"})
    assert r.status_code == 200, r.text
    idu = urlparse(r.json()["id"])
    assert idu.netloc == pay and re.fullmatch(rf"/secrets/{name}/[0-9a-f]{{32}}", idu.path), r.json()["id"]
    r = kv_request(srv, "PUT", f"/secrets/{name}", ip, tok, json={"value": "default"})
    assert r.status_code == 200, r.text
    # one name, two stores
    assert kv_request(srv, "GET", f"/secrets/{name}/", pay, tok).json()["value"] == "pay"
    assert kv_request(srv, "GET", f"/secrets/{name}/", ip, tok).json()["value"] == "default"
    # host names are case-insensitive
    assert kv_request(srv, "GET", f"/secrets/{name}/", f"Payments.Example.TEST:{srv.port}", tok).json()["value"] == "pay"
    # an unmapped label uses secret/
    assert kv_request(srv, "GET", f"/secrets/{name}/", other, tok).json()["value"] == "default"
    # Vault sees them in the mounts the configuration names
    assert _read(srv.root, "kv-pay", name) == {"value": "pay"}
    assert _read(srv.root, "secret", name) == {"value": "default"}
    # listing a vault lists its mount only, and links stay on the request's host
    only_pay = "pay-only-" + uuid.uuid4().hex[:8]
    assert kv_request(srv, "PUT", f"/secrets/{only_pay}", pay, tok, json={"value": "x"}).status_code == 200
    listed = kv_request(srv, "GET", "/secrets", pay, tok, params={"api-version": API, "maxresults": "1"}).json()
    assert len(listed["value"]) == 1 and urlparse(listed["nextLink"]).netloc == pay
    ids = [i["id"] for i in kv_request(srv, "GET", "/secrets", ip, tok).json()["value"]]
    assert not any(i.endswith("/" + only_pay) for i in ids)
    raw_error(kv_request(srv, "GET", f"/secrets/{only_pay}/", ip, tok), 404, "SecretNotFound")


def test_the_acl_checks_the_mapped_mount(azure_config_server):
    srv = azure_config_server
    name = "acl-" + uuid.uuid4().hex[:8]
    pay = f"payments.example.test:{srv.port}"
    ip = f"127.0.0.1:{srv.port}"
    for host in (pay, ip):
        assert kv_request(srv, "PUT", f"/secrets/{name}", host, srv.root_token, json={"value": "v"}).status_code == 200
    srv.root.sys.create_or_update_policy(name="pay-only", policy='path "kv-pay/*" { capabilities = ["read"] }')
    tok = srv.root.auth.token.create(policies=["pay-only"], ttl="10m")["auth"]["client_token"]
    assert kv_request(srv, "GET", f"/secrets/{name}/", pay, tok).json()["value"] == "v"
    raw_error(kv_request(srv, "GET", f"/secrets/{name}/", ip, tok), 403, "Forbidden", inner="AccessDenied")


def test_the_configured_tenant_is_in_the_challenge(azure_config_server):
    srv = azure_config_server
    host = f"127.0.0.1:{srv.port}"
    r = kv_request(srv, "GET", "/secrets", host)
    assert r.status_code == 401, r.text
    h = r.headers["WWW-Authenticate"]
    assert re.fullmatch(rf'Bearer authorization="https?://{re.escape(host)}/{TENANT}", '
                        rf'resource="https?://0\.0\.1:{srv.port}"', h), h
    # the resource follows the Host header
    r = kv_request(srv, "GET", "/secrets", f"payments.example.test:{srv.port}")
    assert r.status_code == 401
    assert f'resource="https://example.test:{srv.port}"' in r.headers["WWW-Authenticate"] or \
        f'resource="http://example.test:{srv.port}"' in r.headers["WWW-Authenticate"]


def test_the_configured_approle_mount_backs_the_token_endpoints(tmp_path):
    srv = ConfigServer(tmp_path, extra_config='\nazure {\n  approle_mount = "apps"\n}\n')
    srv.start()
    try:
        root = _init(srv)
        root.sys.enable_auth_method("approle", path="apps")
        root.sys.create_or_update_policy(name="app", policy='path "secret/*" { capabilities = ["create", "read"] }')
        root.auth.approle.create_or_update_approle("app", token_policies=["app"], mount_point="apps")
        role_id = root.auth.approle.read_role_id("app", mount_point="apps")["data"]["role_id"]
        secret_id = root.auth.approle.generate_secret_id("app", mount_point="apps")["data"]["secret_id"]
        host = f"127.0.0.1:{srv.port}"
        s = http_session()
        try:
            r = s.post(f"{srv.url}/adfs/oauth2/v2.0/token", timeout=30,
                       data={"grant_type": "client_credentials", "client_id": role_id,
                             "client_secret": secret_id, "scope": f"https://0.0.1:{srv.port}/.default"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["expires_on"] > time.time()
            token = body["access_token"]
            assert "app" in srv.client(token).auth.token.lookup_self()["data"]["policies"]
            put = kv_request(srv, "PUT", "/secrets/from-app", host, token, json={"value": "ok"})
            assert put.status_code == 200, put.text
            mi = s.get(f"{srv.url}/msi/token", params={"api-version": "2019-08-01",
                                                      "resource": f"https://0.0.1:{srv.port}"},
                       headers={"X-IDENTITY-HEADER": f"{role_id}:{secret_id}"}, timeout=30)
            assert mi.status_code == 200, mi.text
            assert mi.json()["client_id"] == role_id
        finally:
            s.close()
    finally:
        srv.stop()


def test_the_token_endpoints_use_auth_approle_by_default(config_server):
    srv = config_server
    root = _init(srv)
    root.sys.enable_auth_method("approle", path="approle")
    root.sys.create_or_update_policy(name="app", policy='path "secret/*" { capabilities = ["read"] }')
    root.auth.approle.create_or_update_approle("app", token_policies=["app"], mount_point="approle")
    role_id = root.auth.approle.read_role_id("app", mount_point="approle")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("app", mount_point="approle")["data"]["secret_id"]
    s = http_session()
    try:
        r = s.post(f"{srv.url}/{TENANT}/oauth2/v2.0/token", timeout=30,
                   data={"grant_type": "client_credentials", "client_id": role_id, "client_secret": secret_id,
                         "scope": f"https://0.0.1:{srv.port}/.default"})
    finally:
        s.close()
    assert r.status_code == 200, r.text
    assert "app" in srv.client(r.json()["access_token"]).auth.token.lookup_self()["data"]["policies"]
