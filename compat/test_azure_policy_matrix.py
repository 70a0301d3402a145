"""Which Vault ACL capability each Azure Key Vault operation needs on the kv mount `secret/`.

For each operation: a token whose policy grants only the one capability on the one path is allowed,
and a token that has everything under `secret/` except that capability on that path is denied
(403 Forbidden, innererror AccessDenied) with nothing changed. Setup and checks use a token of the
dev policy `dev-azure`. Tokens reach the SDK through a credential answering a fixed Coffer token.
"""

from __future__ import annotations

import uuid

import hvac
import pytest

from azure_helpers import az_name, sdk_error, wait_poller

ALL_CAPS = ["create", "read", "update", "patch", "delete", "list"]


def rule(path: str, *caps: str) -> str:
    quoted = ", ".join(f'"{c}"' for c in caps)
    return f'path "{path}" {{\n  capabilities = [{quoted}]\n}}\n'


def all_but(path: str, cap: str) -> str:
    return rule("secret/*", *ALL_CAPS) + rule(path, *[c for c in ALL_CAPS if c != cap])


class Case:
    def __init__(self, op, path_kind, cap, call, setup=None, check_allowed=None, check_denied=None, exists=True):
        self.op = op
        self.path_kind = path_kind  # data | metadata | undelete | list (secret/metadata/)
        self.cap = cap
        self.call = call                    # (client, name, ctx) -> result
        self.setup = setup                  # (kv, name, ctx) -> None, after creation
        self.check_allowed = check_allowed  # (kv, name, result, ctx) -> None
        self.check_denied = check_denied    # (kv, name, ctx) -> None
        self.exists = exists

    def path(self, name: str) -> str:
        if self.path_kind == "list":
            return "secret/metadata/"
        return f"secret/{self.path_kind}/{name}"


def _delete(kv, n, ctx):
    wait_poller(kv.begin_delete_secret(n))


def _backup_and_purge(kv, n, ctx):
    ctx["blob"] = kv.backup_secret(n)
    wait_poller(kv.begin_delete_secret(n))
    kv.purge_deleted_secret(n)


def _versions(kv, n):
    return list(kv.list_properties_of_secret_versions(n))


def _unchanged(kv, n, ctx):
    g = kv.get_secret(n)
    assert (g.value, g.properties.tags) == ("v0", None), "changed"
    assert len(_versions(kv, n)) == 1, "changed"


def _still_deleted(kv, n, ctx):
    assert kv.get_deleted_secret(n).name == n
    sdk_error(404, "SecretNotFound", kv.get_secret, n)


def _absent(kv, n, ctx):
    sdk_error(404, "SecretNotFound", kv.get_secret, n)


def _check(cond, msg="unexpected"):
    assert cond, msg


CASES = [
    Case("set(new)", "data", "create", lambda c, n, x: c.set_secret(n, "v1"), exists=False,
         check_allowed=lambda kv, n, r, x: _check(kv.get_secret(n).value == "v1", "not created"),
         check_denied=_absent),
    Case("set(existing)", "data", "update", lambda c, n, x: c.set_secret(n, "v1"),
         check_allowed=lambda kv, n, r, x: _check(kv.get_secret(n).value == "v1" and len(_versions(kv, n)) == 2),
         check_denied=_unchanged),
    Case("get", "data", "read", lambda c, n, x: c.get_secret(n),
         check_allowed=lambda kv, n, r, x: _check(r.value == "v0")),
    Case("get(version)", "data", "read", lambda c, n, x: c.get_secret(n, x["version"]),
         check_allowed=lambda kv, n, r, x: _check(r.value == "v0")),
    Case("list", "list", "list", lambda c, n, x: [p.name for p in c.list_properties_of_secrets()],
         # items are filtered to readable metadata: this token reads none
         check_allowed=lambda kv, n, r, x: _check(n not in r)),
    Case("list_versions", "metadata", "read", lambda c, n, x: list(c.list_properties_of_secret_versions(n)),
         check_allowed=lambda kv, n, r, x: _check(len(r) == 1 and r[0].version == x["version"])),
    Case("update", "metadata", "update", lambda c, n, x: c.update_secret_properties(n, tags={"t": "1"}),
         check_allowed=lambda kv, n, r, x: _check(kv.get_secret(n).properties.tags == {"t": "1"}, "not updated"),
         check_denied=_unchanged),
    Case("delete", "metadata", "delete", lambda c, n, x: wait_poller(c.begin_delete_secret(n)),
         check_allowed=lambda kv, n, r, x: _still_deleted(kv, n, x),
         check_denied=_unchanged),
    Case("get_deleted", "metadata", "read", lambda c, n, x: c.get_deleted_secret(n), setup=_delete,
         check_allowed=lambda kv, n, r, x: _check(r.name == n and r.properties.version == x["version"])),
    Case("list_deleted", "list", "list", lambda c, n, x: [d.name for d in c.list_deleted_secrets()],
         setup=_delete),
    Case("recover", "undelete", "update", lambda c, n, x: wait_poller(c.begin_recover_deleted_secret(n)),
         setup=_delete,
         check_allowed=lambda kv, n, r, x: _check(kv.get_secret(n).value == "v0", "not recovered"),
         check_denied=_still_deleted),
    Case("purge", "metadata", "delete", lambda c, n, x: c.purge_deleted_secret(n), setup=_delete,
         check_allowed=lambda kv, n, r, x: sdk_error(404, "SecretNotFound", kv.get_deleted_secret, n),
         check_denied=_still_deleted),
    Case("backup", "data", "read", lambda c, n, x: c.backup_secret(n),
         check_allowed=lambda kv, n, r, x: _check(isinstance(r, bytes) and len(r) > 0)),
    Case("restore", "data", "create", lambda c, n, x: c.restore_secret_backup(x["blob"]), setup=_backup_and_purge,
         check_allowed=lambda kv, n, r, x: _check(kv.get_secret(n).value == "v0", "not restored"),
         check_denied=_absent),
]


@pytest.mark.parametrize("allowed", [True, False], ids=["allowed", "denied"])
@pytest.mark.parametrize("case", CASES, ids=[c.op for c in CASES])
def test_capability(azure, kv, azure_token_for_policy, case, allowed):
    name = az_name("pm")
    ctx: dict = {}
    if case.exists:
        ctx["version"] = kv.set_secret(name, "v0").properties.version
        if case.setup:
            case.setup(kv, name, ctx)
    path = case.path(name)
    token = azure_token_for_policy(rule(path, case.cap) if allowed else all_but(path, case.cap))
    with azure.kv(token) as c:
        if allowed:
            r = case.call(c, name, ctx)
            if case.check_allowed:
                case.check_allowed(kv, name, r, ctx)
        else:
            sdk_error(403, "Forbidden", case.call, c, name, ctx, inner="AccessDenied")
            if case.check_denied:
                case.check_denied(kv, name, ctx)


def test_list_shows_only_secrets_whose_metadata_is_readable(azure, kv, azure_token_for_policy):
    mine, other = az_name("pmlist"), az_name("pmlist")
    kv.set_secret(mine, "v")
    kv.set_secret(other, "v")
    token = azure_token_for_policy(rule("secret/metadata/", "list") + rule(f"secret/metadata/{mine}", "read"))
    with azure.kv(token) as c:
        names = [p.name for p in c.list_properties_of_secrets()]
        assert names == [mine]
        # with paging too
        assert [p.name for p in c.list_properties_of_secrets(max_page_size=1)] == [mine]


def test_a_token_without_policies_is_forbidden_not_challenged(azure, kv, azure_token_for_policy):
    n = az_name("pmnone")
    kv.set_secret(n, "v")
    token = azure_token_for_policy(rule("secret/data/nothing-here", "read"))
    with azure.kv(token) as c:
        e = sdk_error(403, "Forbidden", c.get_secret, n, inner="AccessDenied")
        assert "WWW-Authenticate" not in e.response.headers
        sdk_error(403, "Forbidden", c.set_secret, az_name("pmnone"), "v", inner="AccessDenied")


def test_a_case_variant_of_a_denied_name_is_denied(azure, kv, client, azure_token_for_policy):
    stored = "denied-" + uuid.uuid4().hex[:10]
    kv.set_secret(stored, "v0")
    token = azure_token_for_policy(rule("secret/*", *ALL_CAPS) + rule("secret/data/denied-*", "deny"))
    with azure.kv(token) as c:
        for spelling in (stored, stored.upper(), "Denied-" + stored[len("denied-"):]):
            sdk_error(403, "Forbidden", c.get_secret, spelling, inner="AccessDenied")
            sdk_error(403, "Forbidden", c.set_secret, spelling, "changed", inner="AccessDenied")
            sdk_error(403, "Forbidden", c.backup_secret, spelling, inner="AccessDenied")
        # metadata is not denied: the listing sees it under its stored name
        assert [p.name for p in c.list_properties_of_secret_versions(stored.upper())][0] == stored
    _unchanged(kv, stored, {})
    for spelling in (stored.upper(), "Denied-" + stored[len("denied-"):]):
        with pytest.raises(hvac.exceptions.InvalidPath):
            client.secrets.kv.v2.read_secret_metadata(path=spelling, mount_point="secret")


def test_another_spelling_needs_the_right_on_both_spellings(azure, kv, azure_token_for_policy):
    stored = "Cased-" + uuid.uuid4().hex[:10]
    kv.set_secret(stored, "v")
    # read on data/* (no list at all): every spelling finds the stored secret
    reader = azure_token_for_policy(rule("secret/data/*", "read"))
    with azure.kv(reader) as c:
        for spelling in (stored, stored.lower(), stored.upper()):
            g = c.get_secret(spelling)
            assert (g.value, g.name) == ("v", stored)
    # a right on the stored spelling only: other spellings are refused, not redirected
    exact = azure_token_for_policy(rule(f"secret/data/{stored}", "read"))
    with azure.kv(exact) as c:
        assert c.get_secret(stored).value == "v"
        sdk_error(403, "Forbidden", c.get_secret, stored.lower(), inner="AccessDenied")
    # a right on the asked spelling only: refused as well (the stored one is judged too)
    asked = azure_token_for_policy(rule(f"secret/data/{stored.lower()}", "read", "create", "update"))
    with azure.kv(asked) as c:
        sdk_error(403, "Forbidden", c.get_secret, stored.lower(), inner="AccessDenied")
        sdk_error(403, "Forbidden", c.set_secret, stored.lower(), "changed", inner="AccessDenied")
    assert kv.get_secret(stored).value == "v"
    assert [p.name for p in kv.list_properties_of_secrets() if p.name.lower() == stored.lower()] == [stored]
