"""Helpers for the Azure Key Vault compatibility tests: SecretClients (sync and aio) holding a fixed
Coffer token, raw HTTPS requests (to send what the SDK never would), Key Vault error assertions, and
running the issue's snippet in a fresh interpreter with exactly a recipe's environment.

Everything here encodes what Azure Key Vault and azure-identity do (docs/azure-wire-notes.md); the
tests never rely on Coffer's quirks.
"""

from __future__ import annotations

import json
from pathlib import Path
import os
import re
import subprocess
import sys
import time
import uuid
from urllib.parse import urlparse

import pytest
import requests
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.exceptions import (ClientAuthenticationError, HttpResponseError, ResourceExistsError,
                                   ResourceNotFoundError)

from conftest import AZURE_HOME, DevServer, make_client
from conftest import audit_entries as conftest_audit_entries

NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
VERSION_RE = re.compile(r"^[0-9a-f]{32}$")
API = "7.4"  # an api-version for raw requests (the server accepts any)
# Azure's recovery settings for a soft-delete vault with purge allowed, 90 days
RECOVERY_LEVEL = "Recoverable+Purgeable"
RECOVERABLE_DAYS = 90

# The snippet, verbatim. It is run unchanged (in a fresh interpreter: aiohttp and requests read
# their CA bundle from the environment); the harness only appends a line that prints `secret`.
SNIPPET = """\
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
client = SecretClient(vault_url="https://127.0.0.1:8443/", credential=DefaultAzureCredential())
secret = client.get_secret("MySecretName").value
"""

# The same with the aio clients (azure.identity.aio + azure.keyvault.secrets.aio).
SNIPPET_AIO = """\
import asyncio
from azure.identity.aio import DefaultAzureCredential
from azure.keyvault.secrets.aio import SecretClient

async def main():
    async with DefaultAzureCredential() as credential:
        async with SecretClient(vault_url="https://127.0.0.1:8443/", credential=credential) as client:
            return (await client.get_secret("MySecretName")).value

secret = asyncio.run(main())
"""

PRINT_SECRET = "\nimport json as _json\nprint(_json.dumps({'secret': secret}))\n"


def az_name(prefix: str = "az") -> str:
    """A unique name that is legal in Azure (letters, digits, hyphens)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# --- credentials holding a fixed Coffer token ---------------------------------------------------------

class FixedTokenCredential:
    """An azure-core TokenCredential that answers one fixed Coffer token, and records what was asked."""

    def __init__(self, token: str, lifetime: int = 3600):
        self.token = token
        self.lifetime = lifetime
        self.requests: list[tuple[tuple[str, ...], dict]] = []

    def get_token(self, *scopes, claims=None, tenant_id=None, enable_cae=False, **kwargs) -> AccessToken:
        self.requests.append((scopes, {"tenant_id": tenant_id, "claims": claims}))
        return AccessToken(self.token, int(time.time()) + self.lifetime)

    def get_token_info(self, *scopes, options=None) -> AccessTokenInfo:
        options = dict(options or {})
        self.requests.append((scopes, {"tenant_id": options.get("tenant_id"), "claims": options.get("claims")}))
        return AccessTokenInfo(self.token, int(time.time()) + self.lifetime)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


class AsyncFixedTokenCredential:
    """The aio twin of FixedTokenCredential."""

    def __init__(self, token: str, lifetime: int = 3600):
        self.token = token
        self.lifetime = lifetime
        self.requests: list[tuple[tuple[str, ...], dict]] = []

    async def get_token(self, *scopes, claims=None, tenant_id=None, enable_cae=False, **kwargs) -> AccessToken:
        self.requests.append((scopes, {"tenant_id": tenant_id, "claims": claims}))
        return AccessToken(self.token, int(time.time()) + self.lifetime)

    async def get_token_info(self, *scopes, options=None) -> AccessTokenInfo:
        options = dict(options or {})
        self.requests.append((scopes, {"tenant_id": options.get("tenant_id"), "claims": options.get("claims")}))
        return AccessTokenInfo(self.token, int(time.time()) + self.lifetime)

    async def close(self) -> None:
        pass

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None


# --- one Coffer dev server seen as an Azure Key Vault ---------------------------------------------------

class AzureServer:
    """A `coffer server -dev` seen through its HTTPS listener: vault URL, CA, dev AppRole recipe."""

    def __init__(self, dev: DevServer):
        self.dev = dev
        self.url = dev.tls_url()                 # https://127.0.0.1:PORT
        self.vault_url = self.url + "/"
        self.host = urlparse(self.url).netloc    # 127.0.0.1:PORT
        self.port = urlparse(self.url).port
        self.ca = dev.ca_path()
        self.root_token = dev.root_token
        self._policy_token: str | None = None

    # the banner
    def exports(self) -> dict[str, list[str]]:
        self.dev.wait_for_output("IDENTITY_HEADER")
        return self.dev.exports()

    def export(self, name: str) -> str:
        values = self.exports().get(name)
        assert values and len(values) == 1, (name, values)
        return values[0]

    @property
    def approle_mount(self) -> str:
        """The AppRole mount of the dev role, as the banner names it (`AppRole auth/<mount>/role/dev-azure`)."""
        out = self.dev.wait_for_output("IDENTITY_HEADER")
        m = re.search(r"AppRole auth/([^/\s]+)/role/dev-azure", out)
        assert m, "the banner does not name the dev AppRole (AppRole auth/<mount>/role/dev-azure)"
        return m.group(1)

    @property
    def client_id(self) -> str:
        return self.export("AZURE_CLIENT_ID")

    @property
    def client_secret(self) -> str:
        return self.export("AZURE_CLIENT_SECRET")

    def root(self):
        """hvac with the root token (over the plain HTTP listener)."""
        return make_client(self.dev.url, self.root_token)

    def token_for(self, *policies: str, ttl: str = "30m") -> str:
        root = self.root()
        try:
            return root.auth.token.create(policies=list(policies), ttl=ttl)["auth"]["client_token"]
        finally:
            root.adapter.close()

    def dev_azure_token(self) -> str:
        """A token carrying the dev policy `dev-azure` (everything under secret/), made once."""
        if self._policy_token is None:
            self._policy_token = self.token_for("dev-azure", ttl="2h")
        return self._policy_token

    # SDK clients
    def kv(self, token: str | None = None, **kwargs):
        from azure.keyvault.secrets import SecretClient
        kwargs.setdefault("retry_total", 0)
        kwargs.setdefault("connection_verify", self.ca)
        cred = FixedTokenCredential(token or self.dev_azure_token())
        return SecretClient(self.vault_url, cred, **kwargs)

    def akv(self, token: str | None = None, **kwargs):
        from azure.keyvault.secrets.aio import SecretClient
        kwargs.setdefault("retry_total", 0)
        kwargs.setdefault("connection_verify", self.ca)
        cred = AsyncFixedTokenCredential(token or self.dev_azure_token())
        return SecretClient(self.vault_url, cred, **kwargs)

    # raw HTTPS
    def session(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False
        s.verify = self.ca
        return s

    def raw(self, method: str, path: str, token: str | None = None, headers: dict | None = None,
            params: dict | None = None, **kwargs) -> requests.Response:
        """One request to the HTTPS listener. `token` is sent as `Authorization: Bearer`; `path` may
        carry its own query (then `params` is not added)."""
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if params is None and "?" not in path and (path.startswith("/secrets") or path.startswith("/deletedsecrets")):
            params = {"api-version": API}
        s = self.session()
        try:
            return s.request(method, self.url + path, headers=h, params=params, timeout=30, **kwargs)
        finally:
            s.close()

    def secret_id(self, name: str, version: str | None = None) -> str:
        return f"{self.url}/secrets/{name}" + (f"/{version}" if version else "")

    def challenge(self, host: str | None = None, tenant: str = "adfs") -> str:
        """The exact WWW-Authenticate header Coffer answers for Host `host`."""
        host = host or self.host
        hostname, _, port = host.partition(":")
        rest = hostname.split(".", 1)[1]
        resource = f"https://{rest}" + (f":{port}" if port else "")
        return f'Bearer authorization="https://{host}/{tenant}", resource="{resource}"'

    # recipes (environment variables of the banner)
    def client_secret_recipe(self, **override: str) -> dict[str, str]:
        e = self.exports()
        env = {n: e[n][0] for n in ("AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST", "AZURE_CLIENT_ID",
                                   "AZURE_CLIENT_SECRET")}
        env.update(REQUESTS_CA_BUNDLE=self.ca, SSL_CERT_FILE=self.ca)
        env.update(override)
        return env

    def managed_identity_recipe(self, **override: str) -> dict[str, str]:
        e = self.exports()
        env = {n: e[n][0] for n in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")}
        env.update(REQUESTS_CA_BUNDLE=self.ca, SSL_CERT_FILE=self.ca)
        env.update(override)
        return env


# --- Key Vault errors ------------------------------------------------------------------------------------

def error_json(resp_text: str) -> dict:
    body = json.loads(resp_text)
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    err = body["error"]
    assert isinstance(err.get("code"), str) and isinstance(err.get("message"), str), body
    return err


def check_error(status_code: int, text: str, status: int, code: str, inner: str | None = None) -> dict:
    assert status_code == status, f"expected HTTP {status} {code}, got {status_code}: {text[:400]}"
    err = error_json(text)
    assert err["code"] == code, err
    if inner is not None:
        assert (err.get("innererror") or {}).get("code") == inner, err
    return err


_SDK_ERROR_TYPE = {401: ClientAuthenticationError, 404: ResourceNotFoundError, 409: ResourceExistsError}


def sdk_error(status: int, code: str, fn, *args, inner: str | None = None, **kwargs) -> HttpResponseError:
    """Call fn (an SDK call), which must fail with Key Vault's error `code` at HTTP `status`
    (and innererror `inner`); answer the exception."""
    with pytest.raises(HttpResponseError) as ei:
        fn(*args, **kwargs)
    e = ei.value
    want = _SDK_ERROR_TYPE.get(status)
    if want is not None:
        assert isinstance(e, want), (type(e), e)
    assert e.response is not None, e
    check_error(e.status_code, e.response.text(), status, code, inner)
    return e


async def async_sdk_error(status: int, code: str, coro, inner: str | None = None) -> HttpResponseError:
    try:
        await coro
    except HttpResponseError as e:
        want = _SDK_ERROR_TYPE.get(status)
        if want is not None:
            assert isinstance(e, want), (type(e), e)
        check_error(e.status_code, e.response.text(), status, code, inner)
        return e
    pytest.fail(f"expected HTTP {status} {code}, the call succeeded")


def raw_error(resp: requests.Response, status: int, code: str, inner: str | None = None) -> dict:
    return check_error(resp.status_code, resp.text, status, code, inner)


def wait_poller(poller, timeout: float = 15.0):
    """`poller.wait()` must end (a 404 while polling would make it spin forever)."""
    poller.wait(timeout=timeout)
    assert poller.done(), "the long-running operation's poller did not finish"
    return poller.result()


# --- subprocesses with a recipe's environment --------------------------------------------------------------

_DROP = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_", "VAULT_", "COFFER_", "AWS_", "REQUESTS_CA_BUNDLE",
         "CURL_CA_BUNDLE", "SSL_CERT_", "NODE_EXTRA_CA_CERTS", "MSAL_")


def recipe_env(recipe: dict[str, str]) -> dict[str, str]:
    """This process's environment without anything that could point a client elsewhere, a throwaway
    HOME, `AZURE_TOKEN_CREDENTIALS=prod` (DefaultAzureCredential tries no developer tools), and `recipe`."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(_DROP) and not k.lower().endswith("_proxy")}
    env["HOME"] = AZURE_HOME
    env["AZURE_TOKEN_CREDENTIALS"] = "prod"
    env["NO_PROXY"] = "*"
    env.update(recipe)
    return env


def run_python(script: str, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, cwd=AZURE_HOME)


def run_snippet(script: str, recipe: dict[str, str], port: int = 8443) -> str:
    """Run `script` (the snippet) with `recipe`; answer the printed `secret`. The snippet names port
    8443; only when the test server could not have it is the port rewritten."""
    if port != 8443:
        script = script.replace("127.0.0.1:8443", f"127.0.0.1:{port}")
    r = run_python(script + PRINT_SECRET, recipe_env(recipe))
    assert r.returncode == 0, f"the snippet failed (rc={r.returncode}):\n{r.stdout}\n{r.stderr[-4000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])["secret"]


def audit_entries(log) -> list[dict]:
    """The entries written so far (none while the file does not exist yet)."""
    return conftest_audit_entries(Path(log), missing_ok=True)


def op_name(e: dict) -> str:
    return str(e.get("request", {}).get("operation_name") or "")


def make_role(root, mount: str, policies=("dev-azure",), **role_options) -> tuple[str, str, str]:
    """A fresh AppRole role on `mount` (hvac root client): answers (role name, role_id, secret_id)."""
    name = az_name("azrole")
    root.auth.approle.create_or_update_approle(name, token_policies=list(policies), mount_point=mount,
                                               **role_options)
    role_id = root.auth.approle.read_role_id(name, mount_point=mount)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(name, mount_point=mount)["data"]["secret_id"]
    return name, role_id, secret_id
