"""Azure identity against Coffer: the issue's snippet run unchanged with both environment recipes the
dev server prints (client secret through MSAL / AadClient, App Service managed identity), sync and
aio; the Entra-ID-like token endpoints and the managed-identity endpoint on the wire; Key Vault's
authentication challenge.

What the SDKs send and accept is documented in docs/azure-wire-notes.md.
"""

from __future__ import annotations

import secrets
import socket
import time
import uuid
from urllib.parse import quote

import hvac
import pytest

from azure_helpers import (SNIPPET, SNIPPET_AIO, AzureServer, FixedTokenCredential, audit_entries, az_name,
                           make_role, op_name, recipe_env, run_python, run_snippet)
from conftest import DevTlsServer, _start, free_port, make_client, uid

GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@pytest.fixture(scope="module")
def snippet_server(tmp_path_factory):
    """A dev server whose HTTPS listener is on 127.0.0.1:8443, the snippet's address (another free
    port only if 8443 is taken on this machine), with `MySecretName` set through the Key Vault API."""
    root = "root-" + secrets.token_hex(12)
    workdir = tmp_path_factory.mktemp("coffer-azure-snippet")
    tls_port = 8443 if _port_free(8443) else free_port()

    def args(port: int) -> list[str]:
        return ["server", "-dev", f"-dev-root-token-id={root}", f"-dev-listen-address=127.0.0.1:{port}",
                f"-dev-tls-listen-address=127.0.0.1:{tls_port}"]

    proc = _start(args, workdir)
    try:
        srv = AzureServer(DevTlsServer(proc, root, tls_port))
        srv.value = "snippet-" + uuid.uuid4().hex
        r = srv.raw("PUT", "/secrets/MySecretName", token=root, json={"value": srv.value})
        assert r.status_code == 200, r.text
        yield srv
    finally:
        proc.stop()


# --- the dev banner ---------------------------------------------------------------------------------------

def test_dev_banner_prints_both_azure_recipes(azure, client):
    out = azure.dev.wait_for_output("IDENTITY_HEADER")
    head = out[out.index("Azure Key Vault ("):].splitlines()[0]
    mount = azure.approle_mount
    assert f"auth/{mount}/role/dev-azure" in head and "policy dev-azure" in head, head
    assert out.index("AWS access key") < out.index("Azure Key Vault (")
    assert f"{mount}/" in client.sys.list_auth_methods()["data"]
    e = azure.exports()
    role_id = client.auth.approle.read_role_id("dev-azure", mount_point=mount)["data"]["role_id"]
    assert e["AZURE_TENANT_ID"] == ["adfs"]
    assert e["AZURE_AUTHORITY_HOST"] == [azure.url]
    assert e["AZURE_CLIENT_ID"] == [role_id]
    assert len(e["AZURE_CLIENT_SECRET"]) == 1 and e["AZURE_CLIENT_SECRET"][0]
    assert e["IDENTITY_ENDPOINT"] == [azure.url + "/msi/token"]
    assert e["IDENTITY_HEADER"] == [f"{role_id}:{e['AZURE_CLIENT_SECRET'][0]}"]
    # the role and its policy: everything under secret/
    role = client.auth.approle.read_role("dev-azure", mount_point=mount)["data"]
    assert "dev-azure" in (role.get("token_policies") or role.get("policies") or [])
    rules = str(client.sys.read_policy("dev-azure"))
    assert "secret/*" in rules


# --- the issue's snippet, unchanged ------------------------------------------------------------------------

def test_snippet_sync_client_secret(snippet_server):
    recipe = snippet_server.client_secret_recipe()
    assert recipe["AZURE_TENANT_ID"] == "adfs"
    assert run_snippet(SNIPPET, recipe, snippet_server.port) == snippet_server.value


def test_snippet_sync_managed_identity(snippet_server):
    recipe = snippet_server.managed_identity_recipe()
    assert not any(k.startswith("AZURE_CLIENT") for k in recipe)
    assert run_snippet(SNIPPET, recipe, snippet_server.port) == snippet_server.value


def test_snippet_aio_client_secret(snippet_server):
    assert run_snippet(SNIPPET_AIO, snippet_server.client_secret_recipe(), snippet_server.port) \
        == snippet_server.value


def test_snippet_aio_managed_identity(snippet_server):
    assert run_snippet(SNIPPET_AIO, snippet_server.managed_identity_recipe(), snippet_server.port) \
        == snippet_server.value


def test_snippet_aio_with_a_guid_tenant(snippet_server):
    # the aio credential posts straight to {authority}/{tenant}/oauth2/v2.0/token (no discovery), and
    # the challenge's tenant `adfs` is accepted whatever the credential's tenant
    recipe = snippet_server.client_secret_recipe(AZURE_TENANT_ID=GUID)
    assert run_snippet(SNIPPET_AIO, recipe, snippet_server.port) == snippet_server.value


def _wrong_secret_run(srv: AzureServer, script: str, tmp_path):
    root = srv.root()
    try:
        _, role_id, secret_id = make_role(root, srv.approle_mount)
        audit = uid("azaud")
        log = tmp_path / f"{audit}.log"
        root.sys.enable_audit_device(device_type="file", path=audit, options={"file_path": str(log)})
        try:
            recipe = srv.client_secret_recipe(AZURE_CLIENT_ID=role_id, AZURE_CLIENT_SECRET="wrong-" + secret_id)
            s = script.replace("127.0.0.1:8443", f"127.0.0.1:{srv.port}")
            r = run_python(s, recipe_env(recipe))
        finally:
            root.sys.disable_audit_device(audit)
    finally:
        root.adapter.close()
    assert r.returncode != 0, r.stdout
    assert "ClientAuthenticationError" in r.stderr, r.stderr[-3000:]
    assert "AADSTS7000215" in r.stderr, r.stderr[-3000:]
    es = audit_entries(log)
    login_path = f"auth/{srv.approle_mount}/login"
    logins = [e for e in es if e.get("request", {}).get("path") == login_path]
    assert logins, "the failed AppRole login must be audited"
    assert all(e.get("error") for e in logins if e["type"] == "response"), logins
    # no token issued
    assert not [e for e in es if e["type"] == "response" and (e.get("response") or {}).get("auth")]
    # the Key Vault call never happened
    assert not [e for e in es if e.get("dialect") == "azure" and "get" in op_name(e)
                and e["type"] == "response" and not e.get("error")]
    assert srv.value not in r.stdout + r.stderr


def test_wrong_client_secret_sync(snippet_server, tmp_path):
    _wrong_secret_run(snippet_server, SNIPPET, tmp_path)


def test_wrong_client_secret_aio(snippet_server, tmp_path):
    _wrong_secret_run(snippet_server, SNIPPET_AIO, tmp_path)


def test_wrong_identity_header(snippet_server):
    root = snippet_server.root()
    try:
        _, role_id, secret_id = make_role(root, snippet_server.approle_mount)
    finally:
        root.adapter.close()
    for script in (SNIPPET, SNIPPET_AIO):
        recipe = snippet_server.managed_identity_recipe(IDENTITY_HEADER=f"{role_id}:wrong-{secret_id}")
        s = script.replace("127.0.0.1:8443", f"127.0.0.1:{snippet_server.port}")
        r = run_python(s, recipe_env(recipe))
        assert r.returncode != 0, r.stdout
        assert "ClientAuthenticationError" in r.stderr or "CredentialUnavailableError" in r.stderr, r.stderr[-3000:]
        assert snippet_server.value not in r.stdout + r.stderr


# --- identity endpoints on the wire -----------------------------------------------------------------------

def _token(azure, client_id, client_secret, tenant="adfs", **extra):
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret,
            "scope": f"https://0.0.1:{azure.port}/.default"}
    form.update(extra)
    return azure.raw("POST", f"/{tenant}/oauth2/v2.0/token", data=form)


@pytest.mark.parametrize("path", ["/adfs/.well-known/openid-configuration",
                                  f"/{GUID}/v2.0/.well-known/openid-configuration"])
def test_openid_configuration(azure, path):
    r = azure.raw("GET", path)
    assert r.status_code == 200, r.text
    assert "WWW-Authenticate" not in r.headers
    body = r.json()
    for k in ("issuer", "token_endpoint", "authorization_endpoint"):
        assert isinstance(body.get(k), str) and body[k].startswith(azure.url + "/"), (k, body)
    # MSAL takes the first path segment of the token endpoint as its cache realm
    assert body["token_endpoint"].endswith("/oauth2/v2.0/token"), body


@pytest.mark.parametrize("tenant", ["adfs", GUID])
def test_token_endpoint_issues_a_coffer_token(azure, client, tenant):
    name, role_id, secret_id = make_role(client, azure.approle_mount)
    before = int(time.time())
    r = _token(azure, role_id, secret_id, tenant=tenant, client_info="1",
               claims='{"access_token": {"xms_cc": {"values": ["CP1"]}}}')
    assert r.status_code == 200, r.text
    assert "WWW-Authenticate" not in r.headers
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 300, body
    assert isinstance(body["ext_expires_in"], int), body
    assert isinstance(body["expires_on"], int), body
    assert before + body["expires_in"] - 5 <= body["expires_on"] <= int(time.time()) + body["expires_in"] + 5
    assert "resource" in body
    # a returned scope/id_token/client_info would break MSAL's token cache
    assert not {"scope", "id_token", "client_info"} & set(body), body
    token = body["access_token"]
    me = make_client(azure.dev.url, token).auth.token.lookup_self()["data"]
    assert "dev-azure" in me["policies"]
    # and Key Vault takes it
    n = az_name("tok")
    with azure.kv(token) as c:
        assert c.set_secret(n, "v").value == "v"


def test_token_endpoint_wrong_secret(azure, client, file_audit):
    _, log = file_audit
    _, role_id, secret_id = make_role(client, azure.approle_mount)
    r = _token(azure, role_id, "wrong-" + secret_id)
    assert r.status_code == 401, r.text
    body = r.json()
    assert body["error"] == "invalid_client", body
    assert body["error_description"].startswith("AADSTS7000215"), body
    assert "access_token" not in body
    es = audit_entries(log)
    logins = [e for e in es if e["request"].get("path") == f"auth/{azure.approle_mount}/login"]
    assert any(e.get("error") for e in logins), logins
    assert not [e for e in es if e["type"] == "response" and (e.get("response") or {}).get("auth")]


def test_token_endpoint_unknown_client(azure):
    r = _token(azure, str(uuid.uuid4()), "whatever")
    assert r.status_code == 401, r.text
    body = r.json()
    assert body["error"] == "invalid_client" and "access_token" not in body, body


def test_token_endpoint_bad_grant_type(azure, client):
    _, role_id, secret_id = make_role(client, azure.approle_mount)
    r = _token(azure, role_id, secret_id, grant_type="password")
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "unsupported_grant_type"


def test_token_endpoint_lockout_applies(azure, client):
    _, role_id, secret_id = make_role(client, azure.approle_mount)
    for _ in range(5):
        assert _token(azure, role_id, "wrong-" + secret_id).status_code == 401
    r = _token(azure, role_id, secret_id)
    assert 400 <= r.status_code < 500, r.text
    body = r.json()
    assert "access_token" not in body and body.get("error"), body


def test_token_endpoint_consumes_secret_id_uses(azure, client):
    _, role_id, secret_id = make_role(client, azure.approle_mount, secret_id_num_uses=1)
    assert _token(azure, role_id, secret_id).status_code == 200
    r = _token(azure, role_id, secret_id)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_client" and "access_token" not in r.json()


def test_discovery_instance(azure):
    r = azure.raw("GET", "/common/discovery/instance",
                  params={"api-version": "1.0",
                          "authorization_endpoint": f"https://127.0.0.1/{GUID}/oauth2/v2.0/authorize"})
    assert r.status_code == 200, r.text
    assert isinstance(r.json().get("tenant_discovery_endpoint"), str)


def test_managed_identity_endpoint(azure, client):
    _, role_id, secret_id = make_role(client, azure.approle_mount)
    resource = f"https://0.0.1:{azure.port}"
    before = int(time.time())
    # the sync client (MSAL) sends the resource unencoded and a Metadata header
    r = azure.raw("GET", f"/msi/token?api-version=2019-08-01&resource={resource}",
                  headers={"X-IDENTITY-HEADER": f"{role_id}:{secret_id}", "Metadata": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resource"] == resource
    assert body["token_type"] == "Bearer"
    assert body["client_id"] == role_id
    assert isinstance(body["expires_on"], str) and body["expires_on"].isdigit(), body
    assert int(body["expires_on"]) > before + 300
    me = make_client(azure.dev.url, body["access_token"]).auth.token.lookup_self()["data"]
    assert "dev-azure" in me["policies"]
    # the aio client encodes it
    r2 = azure.raw("GET", f"/msi/token?api-version=2019-08-01&resource={quote(resource, safe='')}",
                   headers={"X-IDENTITY-HEADER": f"{role_id}:{secret_id}"})
    assert r2.status_code == 200, r2.text
    assert r2.json()["resource"] == resource


@pytest.mark.parametrize("header", ["wrong", None, "nobody:nothing"])
def test_managed_identity_endpoint_refuses(azure, client, header):
    _, role_id, secret_id = make_role(client, azure.approle_mount)
    headers = {}
    if header == "wrong":
        headers["X-IDENTITY-HEADER"] = f"{role_id}:wrong-{secret_id}"
    elif header is not None:
        headers["X-IDENTITY-HEADER"] = header
    r = azure.raw("GET", f"/msi/token?api-version=2019-08-01&resource=https://0.0.1:{azure.port}",
                  headers=headers)
    assert r.status_code == 401, r.text
    body = r.json()
    assert body["statusCode"] == 401 and isinstance(body["message"], str), body
    assert "access_token" not in body


# --- the Key Vault challenge ---------------------------------------------------------------------------

KV_PATHS = [
    ("GET", "/secrets"),
    ("GET", "/secrets/{n}"),
    ("GET", "/secrets/{n}/"),
    ("GET", "/secrets/{n}/0123456789abcdef0123456789abcdef"),
    ("GET", "/secrets/{n}/versions"),
    ("PATCH", "/secrets/{n}/"),
    ("DELETE", "/secrets/{n}"),
    ("POST", "/secrets/{n}/backup"),
    ("POST", "/secrets/restore"),
    ("GET", "/deletedsecrets"),
    ("GET", "/deletedsecrets/{n}"),
    ("DELETE", "/deletedsecrets/{n}"),
    ("POST", "/deletedsecrets/{n}/recover"),
    ("PUT", "/secrets/{n}"),
]


@pytest.mark.parametrize("method,path", KV_PATHS, ids=[f"{m} {p}" for m, p in KV_PATHS])
def test_challenge_without_token(azure, method, path):
    r = azure.raw(method, path.format(n=az_name("ch")))
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == azure.challenge()
    assert r.json()["error"]["code"] == "Unauthorized"


def test_challenge_answers_the_sdk_probe_before_the_body(azure, client):
    # the SDK's first request to a host: the PUT as is, but Content-Length 0 and no body
    n = az_name("probe")
    r = azure.raw("PUT", f"/secrets/{n}", headers={"Content-Type": "application/json", "Content-Length": "0"},
                  data=b"")
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == azure.challenge()
    # ... and before the name: an illegal name gets the challenge too
    r = azure.raw("PUT", "/secrets/a_b", headers={"Content-Type": "application/json"}, data=b"")
    assert r.status_code == 401, r.text
    # nothing was written
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.secrets.kv.v2.read_secret_metadata(path=n, mount_point="secret")


def test_challenge_uses_the_request_host(azure):
    host = f"kv.example.test:{azure.port}"
    r = azure.raw("GET", "/secrets", headers={"Host": host})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == \
        f'Bearer authorization="https://{host}/adfs", resource="https://example.test:{azure.port}"'


def test_challenge_for_an_invalid_or_revoked_token(azure, client):
    r = azure.raw("GET", "/secrets", token="not-a-token")
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == azure.challenge()
    tok = client.auth.token.create(policies=["dev-azure"], ttl="10m")["auth"]["client_token"]
    assert azure.raw("GET", "/secrets", token=tok).status_code == 200
    client.auth.token.revoke(tok)
    r = azure.raw("GET", "/secrets", token=tok)
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == azure.challenge()
    assert r.json()["error"]["code"] == "Unauthorized"


def test_identity_endpoints_are_not_challenged(azure):
    for path in ("/adfs/.well-known/openid-configuration", "/common/discovery/instance?api-version=1.0"):
        r = azure.raw("GET", path)
        assert r.status_code == 200, (path, r.text)
        assert "WWW-Authenticate" not in r.headers


def test_sdk_requests_the_challenge_scope(azure_tls):
    # a fresh server (own port): the SDK probes, reads the challenge and asks for resource + /.default,
    # with no tenant (AD FS)
    from azure.keyvault.secrets import SecretClient
    cred = FixedTokenCredential(azure_tls.root_token)
    with SecretClient(azure_tls.vault_url, cred, connection_verify=azure_tls.ca, retry_total=0) as c:
        c.set_secret("probe", "v")
        assert c.get_secret("probe").value == "v"
    assert cred.requests, "the credential was never asked"
    for scopes, kw in cred.requests:
        assert scopes == (f"https://0.0.1:{azure_tls.port}/.default",)
        assert kw["tenant_id"] is None


def test_revoked_token_gives_client_authentication_error(azure, client):
    from azure.core.exceptions import ClientAuthenticationError
    tok = client.auth.token.create(policies=["dev-azure"], ttl="10m")["auth"]["client_token"]
    client.auth.token.revoke(tok)
    with azure.kv(tok) as c:
        with pytest.raises(ClientAuthenticationError):
            c.get_secret(az_name("rv"))
