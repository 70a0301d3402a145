"""Adversarial tests of the Azure Key Vault dialect: ACL bypass attempts (spellings, case twins, forged
backup headers, Host headers), leaks (denied callers, the audit log), malformed input, races on case
variants, a sealed server.

The first group pins confirmed bugs (each test fails until the bug is fixed; nothing is xfail):

* a caller that cannot list (or cannot see) a secret creates a second secret differing only in case
  through set or restore, which shadows the stored one for every exact-spelling reader and makes every
  other spelling a 409 (README: a secret is matched without regard to case; a restore needs the name to
  be free "in any spelling");
* concurrent sets of case variants of a new name create several secrets (check-then-create race);
* a caller with `update` but not `create` is refused a set/update by another spelling: the ACL judges
  the request's spelling (as a create), not the stored one (README: "the ACL always judges the stored
  spelling");
* one Azure operation spends several uses of a use-limited token, so a one-use token cannot set a new
  secret at all.

The rest pins behaviour verified to hold. The session server is shared: every test works on its own
uuid-named secrets.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
import uuid

import pytest

from azure_helpers import API, audit_entries, az_name, check_error, raw_error, sdk_error, wait_poller


def rule(path: str, *caps: str) -> str:
    quoted = ", ".join(f'"{c}"' for c in caps)
    return f'path "{path}" {{\n  capabilities = [{quoted}]\n}}\n'


def stored_spellings(client, name: str) -> list[str]:
    """Every secret of secret/ (any state) whose name equals `name` ignoring case, through Vault."""
    keys = client.secrets.kv.v2.list_secrets(path="", mount_point="secret")["data"]["keys"]
    return sorted(k for k in keys if k.lower() == name.lower())


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def raw_http(url: str, request: bytes) -> bytes:
    """One raw HTTP/1.1 exchange with the plain listener (for Host values no client library sends)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


# --- confirmed bugs -------------------------------------------------------------------------------------

def test_set_by_a_caller_that_cannot_list_does_not_create_a_case_twin(azure, kv, client, azure_token_for_policy):
    stored = "Shadow-" + uuid.uuid4().hex[:10]
    kv.set_secret(stored, "original")
    # may create and read any secret, may not update existing ones, may not list
    token = azure_token_for_policy(rule("secret/data/*", "create", "read"))
    r = azure.raw("PUT", f"/secrets/{stored.lower()}", token=token, json={"value": "attacker"})
    # Key Vault has one secret per name ignoring case: a set by another spelling is a new version of the
    # stored secret, which needs `update` on secret/data/<stored> (403 here), never a second secret
    assert stored_spellings(client, stored) == [stored], (r.status_code, r.text[:300])
    assert r.status_code != 200 or json.loads(r.text)["id"].split("/")[4] == stored
    assert kv.get_secret(stored).value == "original"
    # and no reader of that spelling is served the caller's value
    r = azure.raw("GET", f"/secrets/{stored.lower()}/", token=azure.dev_azure_token())
    assert "attacker" not in r.text


def test_restore_by_a_caller_that_cannot_list_refuses_a_case_twin(azure, kv, client, azure_token_for_policy):
    n = "twin-" + uuid.uuid4().hex[:10]
    kv.set_secret(n, "old")
    blob = kv.backup_secret(n)
    wait_poller(kv.begin_delete_secret(n))
    kv.purge_deleted_secret(n)
    kv.set_secret(n.upper(), "new")
    token = azure_token_for_policy(rule("secret/data/*", "create", "read"))
    with azure.kv(token) as c:
        # README: a backup is restored only while no secret of that name, in any spelling, exists
        sdk_error(409, "Conflict", c.restore_secret_backup, blob)
    assert stored_spellings(client, n) == [n.upper()]
    assert kv.get_secret(n.upper()).value == "new"


def test_concurrent_sets_of_case_variants_make_one_secret(azure, client):
    token = azure.dev_azure_token()
    failures = []
    for _ in range(20):
        v = uuid.uuid4().hex[:8]
        spellings = [f"race{v}", f"RACE{v}", f"Race{v}", f"rAce{v}", f"raCe{v}", f"racE{v}", f"RaCe{v}",
                     f"rACE{v}"]
        barrier = threading.Barrier(len(spellings))
        answers: dict[str, int] = {}

        def put(s: str) -> None:
            sess = azure.session()
            try:
                barrier.wait()
                answers[s] = sess.put(f"{azure.url}/secrets/{s}", params={"api-version": API},
                                      headers={"Authorization": f"Bearer {token}"},
                                      json={"value": s}, timeout=30).status_code
            finally:
                sess.close()

        threads = [threading.Thread(target=put, args=(s,)) for s in spellings]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(code < 500 for code in answers.values()), answers
        made = stored_spellings(client, f"race{v}")
        if len(made) != 1:
            failures.append(made)
    assert not failures, f"case twins created by concurrent sets: {failures}"


def test_a_caller_with_update_but_not_create_reaches_the_stored_spelling(azure, kv, client, azure_token_for_policy):
    stored = "UpdOnly-" + uuid.uuid4().hex[:10]
    kv.set_secret(stored, "v1")
    token = azure_token_for_policy(
        rule("secret/data/*", "update", "read") + rule("secret/metadata/*", "update", "read")
        + rule("secret/metadata/", "list"))
    # the exact spelling works
    r = azure.raw("PUT", f"/secrets/{stored}", token=token, json={"value": "v2"})
    assert r.status_code == 200, r.text
    # another spelling must reach the same secret: the ACL judges the stored name (update), not the
    # request's spelling as if it were a new secret (create)
    r = azure.raw("PUT", f"/secrets/{stored.lower()}", token=token, json={"value": "v3"})
    assert r.status_code == 200, r.text
    assert json.loads(r.text)["id"].split("/")[4] == stored
    r = azure.raw("PATCH", f"/secrets/{stored.upper()}/", token=token, json={"contentType": "text/plain"})
    assert r.status_code == 200, r.text
    g = kv.get_secret(stored)
    assert (g.value, g.properties.content_type) == ("v3", "text/plain")
    assert stored_spellings(client, stored) == [stored]


def test_a_one_use_token_can_set_a_new_secret(azure, kv, client):
    n = az_name("oneuse")
    token = client.auth.token.create(policies=["dev-azure"], num_uses=1, ttl="10m")["auth"]["client_token"]
    # one Key Vault operation is one use of the token (a Vault write with this token succeeds)
    r = azure.raw("PUT", f"/secrets/{n}", token=token, json={"value": "v"})
    assert r.status_code == 200, r.text
    assert kv.get_secret(n).value == "v"


# --- what holds: ACL ---------------------------------------------------------------------------------------

SPELLINGS = ["/secrets/pub-..%2Fpriv-{u}/", "/secrets/pub-%2F..%2Fpriv-{u}/", "/secrets/..%2Fpriv-{u}/",
             "/secrets//priv-{u}/", "/secrets/priv-{u}//", "/SECRETS/PRIV-{u}/", "/secrets/priv-{u}%00/",
             "/secrets/pr%C4%B1v-{u}/", "/secrets/priv-{u};x/", "/secrets/priv-{u}%20/", "/secrets/%70riv-{u}/",
             "/secrets/pub-a%252F..%252Fpriv-{u}/", "/secrets/Priv-{u}/", "/secrets/priv-{u}/%2e%2e/",
             "/secrets/priv-{u}/versions/"]


def test_no_spelling_of_a_denied_name_reaches_it(azure, kv, azure_token_for_policy):
    u = uuid.uuid4().hex[:8]
    kv.set_secret(f"priv-{u}", "PRIV-VALUE-" + u)
    token = azure_token_for_policy(
        rule("secret/data/pub-*", "create", "read", "update") + rule("secret/metadata/*", "read", "list")
        + rule("secret/metadata/", "list"))
    for path in SPELLINGS:
        r = azure.raw("GET", path.format(u=u), token=token)
        assert r.status_code in (400, 403, 405), (path, r.status_code, r.text[:200])
        check_error(r.status_code, r.text, r.status_code, {400: "BadParameter", 403: "Forbidden",
                                                           405: "MethodNotAllowed"}[r.status_code])
        assert "PRIV-VALUE" not in r.text


def test_a_denied_caller_cannot_tell_existing_missing_and_deleted_names(azure, kv, azure_token_for_policy):
    u = uuid.uuid4().hex[:8]
    live, missing, deleted = f"Live-{u}", f"Missing-{u}", f"Gone-{u}"
    kv.set_secret(live, "v")
    kv.set_secret(deleted, "v")
    wait_poller(kv.begin_delete_secret(deleted))
    token = azure_token_for_policy(rule("secret/metadata/", "list"))
    ops = [("GET", "/secrets/{n}/", None), ("PUT", "/secrets/{n}", {"value": "x"}),
           ("PATCH", "/secrets/{n}/", {"contentType": "x"}), ("DELETE", "/secrets/{n}", None),
           ("POST", "/secrets/{n}/backup", None), ("GET", "/secrets/{n}/versions", None),
           ("GET", "/deletedsecrets/{n}", None), ("POST", "/deletedsecrets/{n}/recover", None),
           ("DELETE", "/deletedsecrets/{n}", None)]
    for method, path, body in ops:
        seen = set()
        for n in (live, missing, deleted, live.lower()):
            r = azure.raw(method, path.format(n=n), token=token, json=body)
            seen.add((r.status_code, r.text.replace(n, "N")))
        assert len(seen) == 1, (method, path, seen)
        status, text = seen.pop()
        check_error(status, text, 403, "Forbidden", "AccessDenied")
    assert kv.get_secret(live).value == "v"
    sdk_error(404, "SecretNotFound", kv.get_secret, missing)
    assert kv.get_deleted_secret(deleted).name == deleted


def test_forged_backup_headers_are_refused_and_change_nothing(azure, kv, client):
    n = "Forge-" + uuid.uuid4().hex[:8]
    kv.set_secret(n, "v")
    raw = unb64url(azure.raw("POST", f"/secrets/{n}/backup", token=azure.dev_azure_token()).json()["value"])
    name_len = struct.unpack(">H", raw[5:7])[0]
    assert raw[:4] == b"CKVB" and raw[7:7 + name_len].decode() == n
    sealed = raw[7 + name_len:]
    wait_poller(kv.begin_delete_secret(n))
    kv.purge_deleted_secret(n)
    victim = "Victim-" + uuid.uuid4().hex[:8]

    def blob(name: bytes, body: bytes = sealed, fmt: int = 1, length: int | None = None) -> str:
        return b64url(b"CKVB" + bytes([fmt]) + struct.pack(">H", len(name) if length is None else length)
                      + name + body)

    forged = [blob(n.upper().encode()), blob(n.lower().encode()), blob(victim.encode()), blob(n.encode(), fmt=2),
              blob(n.encode(), length=65535), blob(b""), blob(b"a/b"), blob(b"../x"),
              b64url(raw[:-1] + bytes([raw[-1] ^ 1])), b64url(raw[:-10]), b64url(raw[:8]), "", "!!!", " " + b64url(raw)]
    for value in forged + [123, None, [b64url(raw)]]:
        r = azure.raw("POST", "/secrets/restore", token=azure.dev_azure_token(), json={"value": value})
        raw_error(r, 400, "BadParameter")
    r = azure.raw("POST", "/secrets/restore", token=azure.dev_azure_token(),
                  json={"value": blob(n.encode(), body=sealed + b"A" * (5 * 1024 * 1024))})
    assert r.status_code == 413 and r.json()["error"]["code"], r.text[:200]
    for name in (n, n.upper(), n.lower(), victim):
        assert stored_spellings(client, name) == []
    # the genuine blob still restores, under its own name
    r = azure.raw("POST", "/secrets/restore", token=azure.dev_azure_token(), json={"value": b64url(raw)})
    assert r.status_code == 200 and r.json()["id"].split("/")[4] == n, r.text


# --- what holds: hosts, input, paging ----------------------------------------------------------------

@pytest.mark.parametrize("host", [b'evil"x', b"a,b", b"a b", b"a.b:123456", b"[::1]x", b"[fe80::1%25eth0]:1",
                                  b"A" * 300, b"", b"h:", b":80", b"a.b:80:80", b"[]", b"[1.2.3.4]",
                                  b"\xff.a", b"a.b%0d%0a", b"a\tb", b"a=b.c"])
def test_an_invalid_host_is_refused_without_a_challenge(azure, host):
    out = raw_http(azure.dev.url, b"GET /secrets/x HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), out[:300]
    assert b"www-authenticate" not in head.lower()
    check_error(400, body.decode(), 400, "BadParameter")


def test_a_crlf_in_the_host_header_injects_nothing(azure):
    out = raw_http(azure.dev.url, b"GET /secrets/x HTTP/1.1\r\nHost: x.y\r\nX-Evil: a\r\nConnection: close\r\n\r\n")
    head = out.partition(b"\r\n\r\n")[0].decode().lower().split("\r\n")
    challenge = [h for h in head if h.startswith("www-authenticate:")]
    assert challenge == ['www-authenticate: bearer authorization="https://x.y/adfs", resource="https://y"']
    assert not any(h.startswith("x-evil") or h.startswith("set-cookie") for h in head)


def test_malformed_bodies_are_400_and_change_nothing(azure, kv):
    n = az_name("mal")
    kv.set_secret(n, "orig")
    t = azure.dev_azure_token()
    bodies = [{}, {"value": 1}, {"value": None}, {"value": {"a": 1}}, {"value": "x" * (25 * 1024 + 1)},
              {"value": "a", "tags": {str(i): "v" for i in range(16)}}, {"value": "a", "tags": {"k": "v" * 257}},
              {"value": "a", "tags": {"k" * 513: "v"}}, {"value": "a", "tags": {"k": 1}}, {"value": "a", "tags": ["x"]},
              {"value": "a", "tags": {"": "v"}}, {"value": "a", "contentType": "c" * 256}, {"value": "a", "contentType": 5},
              {"value": "a", "attributes": "x"}, {"value": "a", "attributes": {"enabled": "true"}},
              {"value": "a", "attributes": {"nbf": -1}}, {"value": "a", "attributes": {"nbf": 1.5}},
              {"value": "a", "attributes": {"exp": 2 ** 63}}, {"value": "a", "attributes": {"exp": "1"}}]
    for b in bodies:
        raw_error(azure.raw("PUT", f"/secrets/{n}", token=t, json=b), 400, "BadParameter")
    raws = [b"", b"null", b"[]", b'"x"', b'{"value":"\xff"}', b'{"value":"\\ud800"}', b'{"value":"a"} x',
            b'{"value":"a","tags":' + b'{"a":' * 200 + b"1" + b"}" * 200 + b"}", b"[" * 100000 + b"]" * 100000,
            b'{"value":"a","attributes":{"exp":1e400}}']
    for b in raws:
        raw_error(azure.raw("PUT", f"/secrets/{n}", token=t, data=b, headers={"Content-Type": "application/json"}),
                  400, "BadParameter")
    for b in [{"tags": {str(i): "v" for i in range(16)}}, {"attributes": "x"}]:
        raw_error(azure.raw("PATCH", f"/secrets/{n}/", token=t, json=b), 400, "BadParameter")
    r = azure.raw("PUT", f"/secrets/{n}", token=t, data=b'{"value":"' + b"A" * (33 * 1024 * 1024) + b'"}',
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"]
    g = kv.get_secret(n)
    assert (g.value, g.properties.tags, g.properties.content_type) == ("orig", None, None)
    assert len(list(kv.list_properties_of_secret_versions(n))) == 1


@pytest.mark.parametrize("query", ["maxresults=0", "maxresults=26", "maxresults=-1", "maxresults=abc",
                                   "maxresults=99999999999", "$skiptoken=!!!", "$skiptoken=%FF",
                                   "$skiptoken=__4"])
def test_paging_garbage_is_400(azure, query):
    raw_error(azure.raw("GET", f"/secrets?api-version={API}&{query}", token=azure.dev_azure_token()),
              400, "BadParameter")


def test_api_version_garbage_never_reaches_the_next_link(azure, kv):
    for i in range(2):
        kv.set_secret(az_name("apiv"), "v")
    for api in ["%0d%0aX:y", "a%26b%3Dc", "x%22y", "7" * 500]:
        r = azure.raw("GET", f"/secrets?api-version={api}&maxresults=1", token=azure.dev_azure_token())
        assert r.status_code == 200, r.text
        link = r.json()["nextLink"]
        assert link and link.startswith(azure.url + "/secrets?$skiptoken="), link
        assert all(c not in link for c in '\r\n" ') and link.count("&") == 1


# --- what holds: leaks, identity, sealed -----------------------------------------------------------------

def test_the_audit_log_holds_no_plaintext(azure, kv, file_audit):
    _, log = file_audit
    u = uuid.uuid4().hex
    n = az_name("aud")
    kv.set_secret(n, f"VALUE-{u}", tags={"t": f"TAG-{u}"}, content_type=f"CT-{u}")
    assert kv.get_secret(n.upper()).value == f"VALUE-{u}"
    blob = kv.backup_secret(n)
    wait_poller(kv.begin_delete_secret(n))
    kv.purge_deleted_secret(n)
    kv.restore_secret_backup(blob)
    s = azure.session()
    try:
        ok = s.post(f"{azure.url}/adfs/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": azure.client_id, "client_secret": azure.client_secret})
        access = ok.json()["access_token"]
        s.post(f"{azure.url}/adfs/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": azure.client_id, "client_secret": f"WRONG-{u}"})
    finally:
        s.close()
    text = log.read_text()
    assert audit_entries(log), "nothing audited"
    for secret in (u, azure.client_secret, access, b64url(blob)[:40], base64.b64encode(blob).decode()[:40]):
        assert secret not in text
    # nor the server's own output (which shows the dev client secret in its banner only)
    for secret in (u, access):
        assert secret not in azure.dev.output()


def test_a_secret_id_of_another_role_is_refused(azure, client):
    mount = azure.approle_mount
    name = az_name("other")
    client.write(f"auth/{mount}/role/{name}", token_policies="default")
    other_secret = client.write(f"auth/{mount}/role/{name}/secret-id")["data"]["secret_id"]
    s = azure.session()
    try:
        r = s.post(f"{azure.url}/adfs/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": azure.client_id, "client_secret": other_secret})
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        r = s.get(f"{azure.url}/msi/token", headers={"X-IDENTITY-HEADER": f"{azure.client_id}:{other_secret}"})
        assert r.status_code == 401 and "access_token" not in r.text
        for client_id in ("root", "dev-azure", "../root", azure.client_id.upper()):
            r = s.post(f"{azure.url}/adfs/oauth2/v2.0/token", data={
                "grant_type": "client_credentials", "client_id": client_id, "client_secret": azure.client_secret})
            assert r.status_code == 401, (client_id, r.text)
    finally:
        s.close()


def test_a_sealed_server_does_nothing_on_any_azure_route(azure_tls):
    az = azure_tls
    root = az.root()
    t = az.root_token
    assert az.raw("PUT", "/secrets/Sealed-one", token=t, json={"value": "before"}).status_code == 200
    root.sys.seal()
    assert root.sys.read_seal_status()["sealed"]
    ops = [("GET", "/secrets", None), ("GET", "/secrets/Sealed-one/", None), ("GET", "/secrets/sealed-one/", None),
           ("PUT", "/secrets/Sealed-one", {"value": "x"}), ("PUT", "/secrets/Sealed-two", {"value": "x"}),
           ("PATCH", "/secrets/Sealed-one/", {"contentType": "x"}), ("DELETE", "/secrets/Sealed-one", None),
           ("POST", "/secrets/Sealed-one/backup", None), ("POST", "/secrets/restore", {"value": "Q0tWQgE"}),
           ("GET", "/secrets/Sealed-one/versions", None), ("GET", "/deletedsecrets", None),
           ("GET", "/deletedsecrets/Sealed-one", None), ("POST", "/deletedsecrets/Sealed-one/recover", None),
           ("DELETE", "/deletedsecrets/Sealed-one", None)]
    for token in (t, "bogus"):
        for method, path, body in ops:
            raw_error(az.raw(method, path, token=token, json=body), 503, "ServiceUnavailable")
    for method, path, body in ops:
        r = az.raw(method, path, json=body)
        assert r.status_code == 401 and r.headers.get("WWW-Authenticate"), (path, r.status_code)
    s = az.session()
    try:
        r = s.post(f"{az.url}/adfs/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": az.client_id, "client_secret": az.client_secret})
        assert r.status_code == 503 and "access_token" not in r.text
        r = s.get(f"{az.url}/msi/token", headers={"X-IDENTITY-HEADER": f"{az.client_id}:{az.client_secret}"})
        assert r.status_code == 503 and "access_token" not in r.text
    finally:
        s.close()
