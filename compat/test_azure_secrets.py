"""azure-keyvault-secrets 4.12 against Coffer's Azure Key Vault dialect: every secrets operation, paging,
versions and their attributes, soft delete → recover → purge, backup / restore, names, limits, errors,
api versions, and the audit trail.

Expectations are Azure Key Vault's (docs/azure-wire-notes.md), plus Coffer's documented rule that
not-yet-valid and expired versions cannot be read (403, so that Azure's pollers still terminate).
The session server is shared: each test works on its own uuid-named secrets.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import uuid
from urllib.parse import parse_qs, urlparse

import hvac
import pytest

from azure_helpers import (API, NAME_RE, RECOVERABLE_DAYS, RECOVERY_LEVEL, VERSION_RE, async_sdk_error,
                           audit_entries, az_name, op_name, raw_error, sdk_error, wait_poller)

UTC = datetime.timezone.utc


def now() -> datetime.datetime:
    return datetime.datetime.now(UTC)


def near_now(t: datetime.datetime, slack: float = 120) -> bool:
    return t is not None and abs((now() - t).total_seconds()) < slack


def versions_of(kv, name) -> list:
    return list(kv.list_properties_of_secret_versions(name))


def kv_meta(client, name):
    return client.secrets.kv.v2.read_secret_metadata(path=name, mount_point="secret")["data"]


# --- set / get ------------------------------------------------------------------------------------------

def test_set_answers_the_secret_bundle(azure, kv):
    n = az_name("set")
    s = kv.set_secret(n, "hunter2", content_type="text/plain", tags={"env": "dev", "team": "a"})
    p = s.properties
    assert s.value == "hunter2"
    assert s.name == n and p.name == n
    assert VERSION_RE.match(p.version), p.version
    assert s.id == azure.secret_id(n, p.version)
    assert p.vault_url == azure.url
    assert p.enabled is True
    assert p.content_type == "text/plain"
    assert p.tags == {"env": "dev", "team": "a"}
    assert p.not_before is None and p.expires_on is None
    assert near_now(p.created_on) and near_now(p.updated_on)
    assert p.recovery_level == RECOVERY_LEVEL
    assert p.recoverable_days == RECOVERABLE_DAYS
    g = kv.get_secret(n)
    assert (g.value, g.id, g.properties.content_type, g.properties.tags) == \
        ("hunter2", s.id, "text/plain", {"env": "dev", "team": "a"})


def test_set_wire_shape(azure):
    # what the SDK does not show: timestamps are JSON numbers, no kid/managed for plain secrets
    n = az_name("wire")
    r = azure.raw("PUT", f"/secrets/{n}", token=azure.dev_azure_token(),
                  json={"value": "v", "attributes": {"enabled": True}})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    b = r.json()
    assert b["value"] == "v"
    assert re.fullmatch(rf"{re.escape(azure.url)}/secrets/{n}/[0-9a-f]{{32}}", b["id"]), b
    a = b["attributes"]
    assert a["enabled"] is True
    for k in ("created", "updated"):
        assert isinstance(a[k], int), a
    assert "nbf" not in a and "exp" not in a
    assert a["recoveryLevel"] == RECOVERY_LEVEL and a["recoverableDays"] == RECOVERABLE_DAYS
    assert "kid" not in b and "managed" not in b


def test_get_latest_and_by_version(azure, kv):
    n = az_name("get")
    v1 = kv.set_secret(n, "one").properties.version
    v2 = kv.set_secret(n, "two").properties.version
    assert v1 != v2
    assert kv.get_secret(n).value == "two"
    assert kv.get_secret(n, v1).value == "one"
    assert kv.get_secret(n, v2).value == "two"
    # latest with and without the trailing slash; a version in the hyphenated form too
    tok = azure.dev_azure_token()
    for path in (f"/secrets/{n}", f"/secrets/{n}/"):
        r = azure.raw("GET", path, token=tok)
        assert r.status_code == 200, r.text
        assert r.json()["id"] == azure.secret_id(n, v2)
    r = azure.raw("GET", f"/secrets/{n}/{uuid.UUID(v1)}", token=tok)
    assert r.status_code == 200, r.text
    assert r.json()["value"] == "one" and r.json()["id"] == azure.secret_id(n, v1)


def test_get_missing(kv):
    sdk_error(404, "SecretNotFound", kv.get_secret, az_name("missing"))
    n = az_name("missingver")
    kv.set_secret(n, "x")
    sdk_error(404, "SecretNotFound", kv.get_secret, n, uuid.uuid4().hex)


def test_text_round_trips_exactly(kv):
    for value in ('{ "b": 1,  "a": [1, 2] }', "pässwörd ✓ 密码 \n\t \"quoted\" \\ {not json", "[1, 2]", " "):
        n = az_name("rt")
        assert kv.set_secret(n, value).value == value
        assert kv.get_secret(n).value == value


# --- versions ---------------------------------------------------------------------------------------------

def test_list_versions(azure, kv):
    n = az_name("vers")
    made = [kv.set_secret(n, f"v{i}").properties.version for i in range(3)]
    for page_size in (None, 1):
        kw = {"max_page_size": page_size} if page_size else {}
        vs = list(kv.list_properties_of_secret_versions(n, **kw))
        assert sorted(p.version for p in vs) == sorted(made)
        for p in vs:
            assert p.name == n
            assert p.id == azure.secret_id(n, p.version)
            assert p.enabled is True and p.created_on is not None
    sdk_error(404, "SecretNotFound", lambda: list(kv.list_properties_of_secret_versions(az_name("nov"))))


# --- listing and paging -------------------------------------------------------------------------------------

def test_list_pages_through_every_secret_once(azure_tls):
    with azure_tls.kv(azure_tls.root_token) as c:
        names = [f"Page-{i}" for i in range(5)]
        for n in names:
            c.set_secret(n, "v", tags={"n": n})
        pages = [list(p) for p in c.list_properties_of_secrets(max_page_size=2).by_page()]
        assert all(len(p) <= 2 for p in pages), [len(p) for p in pages]
        assert len([p for p in pages if p]) >= 3
        seen = [s.name for p in pages for s in p]
        assert sorted(seen) == names, seen
        for s in (s for p in pages for s in p):
            assert s.id == azure_tls.secret_id(s.name)  # no version in list items
            assert s.version is None
            assert s.enabled is True and s.tags == {"n": s.name}
        # without a page size: one page of everything
        assert sorted(s.name for s in c.list_properties_of_secrets()) == names


def test_next_link_is_absolute_on_the_request_host(azure_tls):
    tok = azure_tls.root_token
    for i in range(3):
        assert azure_tls.raw("PUT", f"/secrets/nl-{i}", token=tok, json={"value": "v"}).status_code == 200
    for host in (azure_tls.host, f"kv.example.test:{azure_tls.port}"):
        r = azure_tls.raw("GET", "/secrets", token=tok, headers={"Host": host},
                          params={"api-version": API, "maxresults": "2"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["value"]) == 2
        assert "+" not in body["nextLink"] and " " not in body["nextLink"], body["nextLink"]
        link = urlparse(body["nextLink"])
        assert (link.scheme, link.netloc, link.path) == ("https", host, "/secrets"), body["nextLink"]
        assert all(i["id"].startswith(f"https://{host}/secrets/") for i in body["value"])
        # follow it (as the SDK does: re-quoting the query, api-version overwritten)
        q = {k: v[0] for k, v in parse_qs(link.query).items()}
        q["api-version"] = "2026-04-01"
        r2 = azure_tls.raw("GET", "/secrets", token=tok, headers={"Host": host}, params=q)
        assert r2.status_code == 200, r2.text
        rest = r2.json()
        assert len(rest["value"]) == 1
        assert not rest.get("nextLink")
        assert sorted(i["id"].rsplit("/", 1)[1] for i in body["value"] + rest["value"]) == \
            ["nl-0", "nl-1", "nl-2"]


@pytest.mark.parametrize("path", ["/secrets", "/secrets/{n}/versions", "/deletedsecrets"])
def test_maxresults_bounds(azure, kv, path):
    n = az_name("mr")
    kv.set_secret(n, "v")
    tok = azure.dev_azure_token()
    p = path.format(n=n)
    for ok in ("1", "25"):
        r = azure.raw("GET", p, token=tok, params={"api-version": API, "maxresults": ok})
        assert r.status_code == 200, (ok, r.text)
        assert len(r.json()["value"]) <= int(ok)
    for bad in ("0", "26", "-1", "abc"):
        raw_error(azure.raw("GET", p, token=tok, params={"api-version": API, "maxresults": bad}),
                  400, "BadParameter")


# --- update properties ----------------------------------------------------------------------------------------

def test_update_properties_of_the_latest(azure, kv):
    n = az_name("upd")
    s = kv.set_secret(n, "v", content_type="a", tags={"x": "1"})
    u = kv.update_secret_properties(n, content_type="b", tags={"y": "2"})
    assert u.name == n and u.version == s.properties.version
    assert u.content_type == "b"
    assert u.tags == {"y": "2"}  # tags replace the whole set
    assert u.updated_on >= s.properties.created_on
    g = kv.get_secret(n)
    assert (g.value, g.properties.version, g.properties.content_type, g.properties.tags) == \
        ("v", s.properties.version, "b", {"y": "2"})
    assert len(versions_of(kv, n)) == 1  # no new version
    # the answer carries no value
    r = azure.raw("PATCH", f"/secrets/{n}/", token=azure.dev_azure_token(), json={"tags": {"z": "3"}})
    assert r.status_code == 200, r.text
    assert "value" not in r.json() and r.json()["tags"] == {"z": "3"}


def test_update_dates(kv):
    n = az_name("upddates")
    kv.set_secret(n, "v")
    nbf = (now() - datetime.timedelta(hours=1)).replace(microsecond=0)
    exp = (now() + datetime.timedelta(days=1)).replace(microsecond=0)
    u = kv.update_secret_properties(n, not_before=nbf, expires_on=exp)
    assert (u.not_before, u.expires_on) == (nbf, exp)
    g = kv.get_secret(n)
    assert g.value == "v" and (g.properties.not_before, g.properties.expires_on) == (nbf, exp)


def test_update_an_older_version(kv):
    n = az_name("updold")
    v1 = kv.set_secret(n, "one").properties.version
    v2 = kv.set_secret(n, "two").properties.version
    u = kv.update_secret_properties(n, v1, enabled=False, tags={"old": "yes"})
    assert u.version == v1 and u.enabled is False
    sdk_error(403, "Forbidden", kv.get_secret, n, v1, inner="SecretDisabled")
    g = kv.get_secret(n)
    assert g.value == "two" and g.properties.version == v2 and g.properties.tags is None
    sdk_error(404, "SecretNotFound", kv.update_secret_properties, n, uuid.uuid4().hex, enabled=False)
    sdk_error(404, "SecretNotFound", kv.update_secret_properties, az_name("updmissing"), enabled=False)


# --- disabled, expired, not-yet-valid versions ---------------------------------------------------------------------

def test_disabled_version(kv):
    n = az_name("dis")
    s = kv.set_secret(n, "v", enabled=False)
    assert s.properties.enabled is False
    sdk_error(403, "Forbidden", kv.get_secret, n, inner="SecretDisabled")
    sdk_error(403, "Forbidden", kv.get_secret, n, s.properties.version, inner="SecretDisabled")
    # its properties are still listed
    [p] = versions_of(kv, n)
    assert p.enabled is False
    kv.update_secret_properties(n, enabled=True)
    assert kv.get_secret(n).value == "v"


@pytest.mark.parametrize("kind", ["expired", "not-yet-valid"])
def test_expired_and_not_yet_valid_versions(kv, kind):
    n = az_name("dates")
    hour = datetime.timedelta(hours=1)
    if kind == "expired":
        s = kv.set_secret(n, "v", expires_on=now() - hour)
        inner = "SecretExpired"
    else:
        s = kv.set_secret(n, "v", not_before=now() + hour)
        inner = "SecretNotYetValid"
    sdk_error(403, "Forbidden", kv.get_secret, n, inner=inner)
    sdk_error(403, "Forbidden", kv.get_secret, n, s.properties.version, inner=inner)
    # listing still shows it, with its dates
    [p] = versions_of(kv, n)
    assert (p.expires_on is not None) if kind == "expired" else (p.not_before is not None)
    # move the date and it is readable
    if kind == "expired":
        kv.update_secret_properties(n, expires_on=now() + hour)
    else:
        kv.update_secret_properties(n, not_before=now() - hour)
    assert kv.get_secret(n).value == "v"


# --- soft delete, recover, purge ---------------------------------------------------------------------------------

def test_soft_delete_recover_purge(azure, kv):
    n = az_name("del")
    s = kv.set_secret(n, "keep-me", tags={"t": "1"})
    ver = s.properties.version
    poller = kv.begin_delete_secret(n)
    d = wait_poller(poller)
    assert d.name == n
    assert d.recovery_id == f"{azure.url}/deletedsecrets/{n}"
    assert near_now(d.deleted_date)
    assert d.scheduled_purge_date - d.deleted_date == datetime.timedelta(days=RECOVERABLE_DAYS)
    assert d.properties.version == ver
    assert d.properties.recovery_level == RECOVERY_LEVEL
    # gone from the live collection
    sdk_error(404, "SecretNotFound", kv.get_secret, n)
    sdk_error(404, "SecretNotFound", kv.get_secret, n, ver)
    # in the deleted collection
    g = kv.get_deleted_secret(n)
    assert (g.name, g.properties.version, g.recovery_id) == (n, ver, d.recovery_id)
    assert g.id == azure.secret_id(n, ver)
    assert g.deleted_date == d.deleted_date and g.scheduled_purge_date == d.scheduled_purge_date
    listed = [x for x in kv.list_deleted_secrets() if x.name == n]
    assert len(listed) == 1
    assert listed[0].recovery_id == d.recovery_id and listed[0].deleted_date == d.deleted_date
    assert listed[0].id == azure.secret_id(n)
    # the name cannot be reused or changed while deleted
    sdk_error(409, "Conflict", kv.set_secret, n, "other")
    sdk_error(409, "Conflict", kv.update_secret_properties, n, tags={"t": "2"})
    # recover: the poller must end
    r = wait_poller(kv.begin_recover_deleted_secret(n))
    assert r.name == n and r.version == ver
    g = kv.get_secret(n)
    assert (g.value, g.properties.version, g.properties.tags) == ("keep-me", ver, {"t": "1"})
    sdk_error(404, "SecretNotFound", kv.get_deleted_secret, n)
    # delete again and purge: the name is free
    wait_poller(kv.begin_delete_secret(n))
    assert kv.purge_deleted_secret(n) is None
    sdk_error(404, "SecretNotFound", kv.get_deleted_secret, n)
    sdk_error(404, "SecretNotFound", kv.get_secret, n)
    assert not [x for x in kv.list_deleted_secrets() if x.name == n]
    fresh = kv.set_secret(n, "new")
    assert fresh.properties.version != ver
    assert [p.version for p in versions_of(kv, n)] == [fresh.properties.version]


def test_purge_answers_204(azure, kv):
    n = az_name("purge")
    kv.set_secret(n, "v")
    wait_poller(kv.begin_delete_secret(n))
    r = azure.raw("DELETE", f"/deletedsecrets/{n}", token=azure.dev_azure_token())
    assert r.status_code == 204, r.text
    assert r.content == b""


@pytest.mark.parametrize("state", ["disabled", "expired"])
def test_recover_poller_ends_when_the_latest_is_unreadable(kv, state):
    n = az_name("recunread")
    if state == "disabled":
        kv.set_secret(n, "v", enabled=False)
    else:
        kv.set_secret(n, "v", expires_on=now() - datetime.timedelta(hours=1))
    wait_poller(kv.begin_delete_secret(n))
    r = wait_poller(kv.begin_recover_deleted_secret(n))
    assert r.name == n
    assert [p.name for p in versions_of(kv, n)] == [n]


def test_operations_on_the_wrong_state(kv):
    live = az_name("live")
    kv.set_secret(live, "v")
    missing = az_name("nothing")
    sdk_error(404, "SecretNotFound", kv.get_deleted_secret, live)
    sdk_error(404, "SecretNotFound", kv.purge_deleted_secret, live)
    sdk_error(404, "SecretNotFound", kv.begin_recover_deleted_secret, live)
    sdk_error(404, "SecretNotFound", kv.begin_delete_secret, missing)
    sdk_error(404, "SecretNotFound", kv.purge_deleted_secret, missing)
    sdk_error(404, "SecretNotFound", kv.backup_secret, missing)
    assert kv.get_secret(live).value == "v"


def test_list_deleted_pages(azure_tls):
    with azure_tls.kv(azure_tls.root_token) as c:
        names = [f"Gone-{i}" for i in range(5)]
        for n in names:
            c.set_secret(n, "v")
        for n in names[:3]:
            wait_poller(c.begin_delete_secret(n))
        pages = [list(p) for p in c.list_deleted_secrets(max_page_size=2).by_page()]
        assert all(len(p) <= 2 for p in pages)
        assert sorted(d.name for p in pages for d in p) == names[:3]
        assert sorted(s.name for s in c.list_properties_of_secrets()) == names[3:]


# --- backup / restore ----------------------------------------------------------------------------------------------

def test_backup_and_restore(azure, kv):
    n = az_name("bak")
    v1 = kv.set_secret(n, "one").properties.version
    v2 = kv.set_secret(n, "two", content_type="text/plain", tags={"k": "v"}).properties.version
    blob = kv.backup_secret(n)
    assert isinstance(blob, bytes) and blob
    # on the wire: base64url without padding
    r = azure.raw("POST", f"/secrets/{n}/backup", token=azure.dev_azure_token())
    assert r.status_code == 200, r.text
    assert re.fullmatch(r"[A-Za-z0-9_-]+", r.json()["value"]), r.json()["value"][:80]
    # restore over a live secret: conflict
    sdk_error(409, "Conflict", kv.restore_secret_backup, blob)
    wait_poller(kv.begin_delete_secret(n))
    # over a soft-deleted one: conflict
    sdk_error(409, "Conflict", kv.restore_secret_backup, blob)
    kv.purge_deleted_secret(n)
    p = kv.restore_secret_backup(blob)
    assert p.name == n and p.version == v2
    g = kv.get_secret(n)
    assert (g.value, g.properties.version, g.properties.content_type, g.properties.tags) == \
        ("two", v2, "text/plain", {"k": "v"})
    assert kv.get_secret(n, v1).value == "one"
    assert sorted(x.version for x in versions_of(kv, n)) == sorted([v1, v2])


def test_restore_accepts_padded_base64url(azure, kv):
    n = az_name("bakpad")
    kv.set_secret(n, "v")
    value = azure.raw("POST", f"/secrets/{n}/backup", token=azure.dev_azure_token()).json()["value"]
    wait_poller(kv.begin_delete_secret(n))
    kv.purge_deleted_secret(n)
    padded = value + "=" * (-len(value) % 4)
    r = azure.raw("POST", "/secrets/restore", token=azure.dev_azure_token(), json={"value": padded})
    assert r.status_code == 200, r.text
    assert "value" not in r.json()
    assert kv.get_secret(n).value == "v"


def test_restore_refuses_corrupted_and_foreign_blobs(azure, kv):
    n = az_name("bakbad")
    kv.set_secret(n, "v")
    blob = kv.backup_secret(n)
    wait_poller(kv.begin_delete_secret(n))
    kv.purge_deleted_secret(n)
    flipped = bytearray(blob)
    flipped[len(flipped) // 2] ^= 0x01
    for bad in (bytes(flipped), blob[:-5], b"not a backup", b"\x00" * 64):
        sdk_error(400, "BadParameter", kv.restore_secret_backup, bad)
    tok = azure.dev_azure_token()
    for body in ({"value": "!!not base64!!"}, {"value": 5}, {}):
        raw_error(azure.raw("POST", "/secrets/restore", token=tok, json=body), 400, "BadParameter")
    raw_error(azure.raw("POST", "/secrets/restore", token=tok, data=b"{nope",
                        headers={"Content-Type": "application/json"}), 400, "BadParameter")
    sdk_error(404, "SecretNotFound", kv.get_secret, n)
    # the genuine blob still restores
    assert kv.restore_secret_backup(blob).name == n


def test_restore_into_another_coffer_is_refused(kv, azure_tls):
    n = az_name("bakother")
    kv.set_secret(n, "v")
    blob = kv.backup_secret(n)
    with azure_tls.kv(azure_tls.root_token) as other:
        sdk_error(400, "BadParameter", other.restore_secret_backup, blob)
        sdk_error(404, "SecretNotFound", other.get_secret, n)


# --- names -----------------------------------------------------------------------------------------------------

# {u}: a unique part, so that no other test of the shared server can have made the name
ILLEGAL = ["a_b{u}", "a.b{u}", "a{u}" + "a" * 119, "a/b{u}", "sécret{u}", "a b{u}", "a%2Fb{u}", "a+b{u}",
           "ünï{u}", "{u}\t", "{u}:x"]


@pytest.mark.parametrize("bad", ILLEGAL, ids=[repr(b[:10]) for b in ILLEGAL])
def test_illegal_names(kv, client, bad):
    name = bad.format(u=uuid.uuid4().hex[:8])
    sdk_error(400, "BadParameter", kv.set_secret, name, "v")
    sdk_error(400, "BadParameter", kv.get_secret, name)
    # nothing was created under that (or any decoded) spelling
    for path in {name, name.replace("%2F", "/")}:
        with pytest.raises((hvac.exceptions.InvalidPath, hvac.exceptions.InvalidRequest)):
            client.secrets.kv.v2.read_secret_metadata(path=path, mount_point="secret")


def test_empty_name(azure):
    r = azure.raw("PUT", "/secrets/", token=azure.dev_azure_token(), json={"value": "v"})
    raw_error(r, 400, "BadParameter")


def test_illegal_name_in_every_operation(kv):
    bad = "a_b-" + uuid.uuid4().hex[:8]
    for fn, args in [(kv.get_secret, (bad,)), (kv.get_secret, (bad, uuid.uuid4().hex)),
                     (kv.update_secret_properties, (bad,)), (kv.begin_delete_secret, (bad,)),
                     (kv.get_deleted_secret, (bad,)), (kv.begin_recover_deleted_secret, (bad,)),
                     (kv.purge_deleted_secret, (bad,)), (kv.backup_secret, (bad,)),
                     (lambda b: list(kv.list_properties_of_secret_versions(b)), (bad,))]:
        sdk_error(400, "BadParameter", fn, *args)


def test_percent_encoded_slash_raw(azure, client):
    base = uuid.uuid4().hex[:8]
    for path in (f"/secrets/a%2F{base}", f"/secrets/a%2f{base}"):
        raw_error(azure.raw("PUT", path, token=azure.dev_azure_token(), json={"value": "v"}),
                  400, "BadParameter")
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.secrets.kv.v2.read_secret_metadata(path=f"a/{base}", mount_point="secret")


def test_legal_name_edges(kv):
    for n in ["x" + uuid.uuid4().hex + "y" * 94, uuid.uuid4().hex[:8].upper() + "-0-9", "0" + uuid.uuid4().hex]:
        assert len(n) <= 127
        assert kv.set_secret(n, "v").name == n
        assert kv.get_secret(n).value == "v"
    n127 = ("z" + uuid.uuid4().hex + "-" * 127)[:127]
    assert len(n127) == 127
    assert kv.set_secret(n127, "v").name == n127


def test_names_are_case_insensitive(azure, kv, client):
    stored = "MyCase-" + uuid.uuid4().hex[:10]
    lower, upper = stored.lower(), stored.upper()
    s1 = kv.set_secret(stored, "v1")
    v1 = s1.properties.version
    g = kv.get_secret(lower)
    assert (g.value, g.name, g.id) == ("v1", stored, azure.secret_id(stored, v1))
    assert kv.get_secret(upper, v1).value == "v1"
    # set through another spelling writes a new version of the same secret
    s2 = kv.set_secret(lower, "v2")
    assert s2.name == stored and s2.id == azure.secret_id(stored, s2.properties.version)
    assert sorted(p.version for p in versions_of(kv, upper)) == sorted([v1, s2.properties.version])
    assert all(p.name == stored for p in versions_of(kv, lower))
    assert kv_meta(client, stored)["current_version"] == 2
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv_meta(client, lower)
    u = kv.update_secret_properties(upper, tags={"c": "1"})
    assert u.name == stored and u.tags == {"c": "1"}
    assert kv.backup_secret(lower)
    d = wait_poller(kv.begin_delete_secret(upper))
    assert d.name == stored and d.recovery_id == f"{azure.url}/deletedsecrets/{stored}"
    assert kv.get_deleted_secret(lower).name == stored
    assert wait_poller(kv.begin_recover_deleted_secret(lower)).name == stored
    assert kv.get_secret(stored).value == "v2"
    wait_poller(kv.begin_delete_secret(lower))
    kv.purge_deleted_secret(upper)
    sdk_error(404, "SecretNotFound", kv.get_deleted_secret, stored)


def test_case_variants_while_soft_deleted_and_on_restore(kv):
    stored = "Gone-" + uuid.uuid4().hex[:10]
    kv.set_secret(stored, "v")
    blob = kv.backup_secret(stored)
    wait_poller(kv.begin_delete_secret(stored))
    sdk_error(409, "Conflict", kv.set_secret, stored.lower(), "x")
    sdk_error(409, "Conflict", kv.restore_secret_backup, blob)
    kv.purge_deleted_secret(stored.upper())
    # the name is taken again in another case: restoring `Gone-…` conflicts with `gone-…`
    kv.set_secret(stored.lower(), "other")
    sdk_error(409, "Conflict", kv.restore_secret_backup, blob)
    g = kv.get_secret(stored)
    assert (g.name, g.value) == (stored.lower(), "other")
    assert len(versions_of(kv, stored)) == 1


def test_kv_secrets_with_illegal_names_are_invisible(kv, client):
    base = uuid.uuid4().hex[:10]
    write = client.secrets.kv.v2.create_or_update_secret
    write(path=f"folder-{base}/x", secret={"a": "b"}, mount_point="secret")
    write(path=f"a_{base}", secret={"a": "b"}, mount_point="secret")
    visible = f"ok-{base}"
    write(path=visible, secret={"a": "b"}, mount_point="secret")
    names = [p.name for p in kv.list_properties_of_secrets()]
    assert all(NAME_RE.match(n) for n in names), [n for n in names if not NAME_RE.match(n)]
    assert [n for n in names if base in n] == [visible]
    sdk_error(400, "BadParameter", kv.get_secret, f"a_{base}")
    sdk_error(400, "BadParameter", kv.get_secret, f"folder-{base}/x")
    sdk_error(404, "SecretNotFound", kv.get_secret, f"folder-{base}")  # a folder is not a secret
    assert json.loads(kv.get_secret(visible).value) == {"a": "b"}


# --- limits and malformed requests ------------------------------------------------------------------------------------

def test_value_size_limit(kv):
    n = az_name("big")
    sdk_error(400, "BadParameter", kv.set_secret, n, "x" * 25601)
    sdk_error(404, "SecretNotFound", kv.get_secret, n)  # nothing created
    assert len(kv.set_secret(n, "x" * 25600).value) == 25600
    assert kv.set_secret(n, "é" * 12800).value == "é" * 12800  # 25,600 bytes of UTF-8
    sdk_error(400, "BadParameter", kv.set_secret, n, "é" * 12800 + "x")  # 25,601 bytes
    assert len(versions_of(kv, n)) == 2
    assert kv.get_secret(n).value == "é" * 12800


BAD_SET_BODIES = [b"", b"{not json", b"[]", b'"v"', b'{"value": 5}', b"{}", b'{"value": null}',
                  b'{"value": "x", "attributes": {"enabled": "yes"}}',
                  b'{"value": "x", "attributes": {"exp": "tomorrow"}}',
                  b'{"value": "x", "tags": ["a"]}']


@pytest.mark.parametrize("body", BAD_SET_BODIES, ids=[b.decode()[:40] or "empty" for b in BAD_SET_BODIES])
def test_set_with_a_bad_body(azure, kv, body):
    n = az_name("badset")
    kv.set_secret(n, "v0", tags={"t": "0"})
    new = az_name("badnew")
    tok = azure.dev_azure_token()
    h = {"Content-Type": "application/json"}
    raw_error(azure.raw("PUT", f"/secrets/{n}", token=tok, data=body, headers=h), 400, "BadParameter")
    raw_error(azure.raw("PUT", f"/secrets/{new}", token=tok, data=body, headers=h), 400, "BadParameter")
    g = kv.get_secret(n)
    assert (g.value, g.properties.tags) == ("v0", {"t": "0"})
    assert len(versions_of(kv, n)) == 1
    sdk_error(404, "SecretNotFound", kv.get_secret, new)


BAD_PATCH_BODIES = [b"{nope", b"[]", b'{"attributes": {"enabled": "no"}}', b'{"tags": ["a"]}',
                    b'{"attributes": {"nbf": "soon"}}', b'{"contentType": 5}']


@pytest.mark.parametrize("body", BAD_PATCH_BODIES, ids=[b.decode()[:40] for b in BAD_PATCH_BODIES])
def test_update_with_a_bad_body(azure, kv, body):
    n = az_name("badpatch")
    kv.set_secret(n, "v0", tags={"t": "0"}, content_type="ct")
    raw_error(azure.raw("PATCH", f"/secrets/{n}/", token=azure.dev_azure_token(), data=body,
                        headers={"Content-Type": "application/json"}), 400, "BadParameter")
    p = kv.get_secret(n).properties
    assert (p.tags, p.content_type, p.enabled) == ({"t": "0"}, "ct", True)


def test_any_api_version(azure, kv):
    n = az_name("api")
    kv.set_secret(n, "v")
    tok = azure.dev_azure_token()
    for api in ("1999-01-01", "banana", "7.6", "2025-06-01-preview"):
        r = azure.raw("GET", f"/secrets/{n}/", token=tok, params={"api-version": api})
        assert r.status_code == 200, (api, r.text)
        assert r.json()["value"] == "v"
    for api in ("7.0", "2016-10-01", "7.5", "2025-07-01"):
        with azure.kv(api_version=api) as c:
            m = az_name("api")
            c.set_secret(m, api)
            assert c.get_secret(m).value == api
            assert any(p.name == m for p in c.list_properties_of_secret_versions(m))


# --- aio -----------------------------------------------------------------------------------------------------

def test_aio_lifecycle(azure):
    async def main():
        async with azure.akv() as c:
            n = az_name("aio")
            v1 = (await c.set_secret(n, "one")).properties.version
            s2 = await c.set_secret(n, "two", tags={"a": "1"})
            assert (await c.get_secret(n)).value == "two"
            assert (await c.get_secret(n, v1)).value == "one"
            versions = [p.version async for p in c.list_properties_of_secret_versions(n, max_page_size=1)]
            assert sorted(versions) == sorted([v1, s2.properties.version])
            page = [p.name async for p in c.list_properties_of_secrets(max_page_size=3)]
            assert all(NAME_RE.match(x) for x in page)
            u = await c.update_secret_properties(n, enabled=False)
            assert u.enabled is False
            await async_sdk_error(403, "Forbidden", c.get_secret(n), inner="SecretDisabled")
            await c.update_secret_properties(n, enabled=True)
            blob = await c.backup_secret(n)
            d = await asyncio.wait_for(c.delete_secret(n), 15)
            assert d.recovery_id == f"{azure.url}/deletedsecrets/{n}"
            await async_sdk_error(404, "SecretNotFound", c.get_secret(n))
            assert (await c.get_deleted_secret(n)).name == n
            assert n in [x.name async for x in c.list_deleted_secrets()]
            r = await asyncio.wait_for(c.recover_deleted_secret(n), 15)
            assert r.name == n
            assert (await c.get_secret(n)).value == "two"
            await asyncio.wait_for(c.delete_secret(n), 15)
            await c.purge_deleted_secret(n)
            await async_sdk_error(404, "SecretNotFound", c.get_deleted_secret(n))
            restored = await c.restore_secret_backup(blob)
            assert restored.name == n
            assert (await c.get_secret(n)).value == "two"

    asyncio.run(main())


# --- audit ---------------------------------------------------------------------------------------------------

def test_audit_entries_for_azure_requests(kv, file_audit):
    _, log = file_audit
    n = az_name("aud")
    value = "audited-" + uuid.uuid4().hex
    kv.set_secret(n, value)
    kv.get_secret(n)
    next(iter(kv.list_properties_of_secrets(max_page_size=1).by_page()))
    versions_of(kv, n)
    kv.update_secret_properties(n, tags={"a": "b"})
    blob = kv.backup_secret(n)
    wait_poller(kv.begin_delete_secret(n))
    kv.get_deleted_secret(n)
    next(iter(kv.list_deleted_secrets(max_page_size=1).by_page()))
    wait_poller(kv.begin_recover_deleted_secret(n))
    wait_poller(kv.begin_delete_secret(n))
    kv.purge_deleted_secret(n)
    kv.restore_secret_backup(blob)
    with pytest.raises(Exception):
        kv.get_secret(az_name("audmissing"))
    text = log.read_text()
    es = audit_entries(log)
    azure_names = {op_name(e) for e in es if e.get("dialect") == "azure" and op_name(e)}
    for op in ("set", "get", "list", "list_versions", "update", "delete", "get_deleted", "list_deleted",
               "recover", "purge", "backup", "restore"):
        assert any(x == op or x.endswith("." + op) for x in azure_names), (op, sorted(azure_names))
    gets = [e for e in es if e.get("dialect") == "azure" and op_name(e).endswith("get")]
    assert {e["type"] for e in gets} == {"request", "response"}
    assert value not in text
    # nothing Azure is recorded as another dialect
    assert not [e for e in es if op_name(e).startswith("secrets.") and e.get("dialect") != "azure"]
