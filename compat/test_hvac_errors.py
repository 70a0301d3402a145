"""Error shapes as hvac 2.4 sees them: status -> exception type, and `errors` read from the JSON body.

hvac fills `exc.errors` only when the response's Content-Type is exactly `application/json`;
otherwise the list is None and the message is the raw text. Every test here therefore also proves
the Content-Type and the `{"errors": [...]}` body.
"""

import pytest
from hvac import exceptions

from conftest import uid


def assert_vault_error(exc_info):
    e = exc_info.value
    assert isinstance(e.errors, list) and e.errors, f"no errors list (text={e.text!r})"
    assert all(isinstance(m, str) and m for m in e.errors)
    assert isinstance(e.json, dict) and e.json["errors"] == e.errors
    # hvac builds its message from the errors
    assert str(e).startswith(", ".join(e.errors))


def test_invalid_request_non_dict_secret(client, kv2_mount):
    # hvac's create_or_update_secret would send any type; go one level lower to send a string as data
    with pytest.raises(exceptions.InvalidRequest) as ei:
        client.adapter.post(f"/v1/{kv2_mount}/data/{uid('s')}", json={"options": {}, "data": "not-a-dict"})
    assert_vault_error(ei)


def test_invalid_request_malformed_json(client, kv2_mount):
    p = uid("s")
    with pytest.raises(exceptions.InvalidRequest) as ei:
        client.adapter.post(f"/v1/{kv2_mount}/data/{p}", data='{"data": {"a": ',
                            headers={"Content-Type": "application/json"})
    assert_vault_error(ei)
    # and nothing was written
    with pytest.raises(exceptions.InvalidPath):
        client.secrets.kv.v2.read_secret_version(path=p, mount_point=kv2_mount, raise_on_deleted_version=True)


def test_invalid_request_bad_versions(client, kv2_mount):
    p = uid("s")
    client.secrets.kv.v2.create_or_update_secret(path=p, secret={"a": 1}, mount_point=kv2_mount)
    with pytest.raises(exceptions.InvalidRequest) as ei:
        client.adapter.post(f"/v1/{kv2_mount}/delete/{p}", json={"versions": "one"})
    assert_vault_error(ei)


def test_invalid_request_cas_mismatch(client, kv2_mount):
    p = uid("s")
    client.secrets.kv.v2.create_or_update_secret(path=p, secret={"a": 1}, mount_point=kv2_mount)
    with pytest.raises(exceptions.InvalidRequest) as ei:
        client.secrets.kv.v2.create_or_update_secret(path=p, secret={"a": 2}, cas=0, mount_point=kv2_mount)
    assert_vault_error(ei)


def test_forbidden_bogus_token(dev_server):
    c = dev_server.client("s.bogus" + uid())
    with pytest.raises(exceptions.Forbidden) as ei:
        c.secrets.kv.v2.read_secret_version(path="apps/x", raise_on_deleted_version=True)
    assert_vault_error(ei)


def test_forbidden_missing_token(dev_server):
    # no X-Vault-Token at all: Vault answers 403 too (hvac's is_authenticated() short-circuits without a token,
    # so go through a real call)
    c = dev_server.client(None)
    with pytest.raises(exceptions.Forbidden) as ei:
        c.sys.list_mounted_secrets_engines()
    assert_vault_error(ei)


def test_forbidden_by_policy(client, kv2_mount, token_for_policy):
    ro = token_for_policy(f'path "{kv2_mount}/data/*" {{ capabilities = ["read"] }}')
    with pytest.raises(exceptions.Forbidden) as ei:
        ro.secrets.kv.v2.create_or_update_secret(path=uid("s"), secret={"a": 1}, mount_point=kv2_mount)
    assert_vault_error(ei)


def test_invalid_path_no_such_mount(client):
    with pytest.raises(exceptions.InvalidPath) as ei:
        client.secrets.kv.v2.read_secret_version(path="x", mount_point=uid("nomount"),
                                                 raise_on_deleted_version=True)
    assert_vault_error(ei)


def test_invalid_path_deleted_policy(client):
    with pytest.raises(exceptions.InvalidPath):
        client.sys.read_policy(uid("nopolicy"))
    assert client.get_policy(uid("nopolicy")) is None


def test_deleted_version_404_body(client, kv2_mount):
    p = uid("s")
    client.secrets.kv.v2.create_or_update_secret(path=p, secret={"a": 1}, mount_point=kv2_mount)
    client.secrets.kv.v2.delete_latest_version_of_secret(path=p, mount_point=kv2_mount)
    with pytest.raises(exceptions.InvalidPath) as ei:
        client.secrets.kv.v2.read_secret_version(path=p, mount_point=kv2_mount, raise_on_deleted_version=True)
    # the JSON body of the 404 still carries the version metadata (hvac relies on it)
    assert ei.value.json["data"]["metadata"]["deletion_time"] != ""
    assert ei.value.json["data"]["metadata"]["version"] == 1


def test_error_bodies_do_not_echo_secret_values(client, kv2_mount):
    secret_value = "sup3r-s3cret-" + uid()
    with pytest.raises(exceptions.InvalidRequest) as ei:
        client.adapter.post(f"/v1/{kv2_mount}/data/{uid('s')}",
                            json={"options": {"cas": "not-a-number"}, "data": {"pw": secret_value}})
    assert secret_value not in (ei.value.text or "")
