"""One store, three dialects: secrets written through Azure Key Vault read with hvac (Vault) and boto3
(AWS Secrets Manager), and the other way round; versions are the same versions (Azure's 32 hex digits
are AWS's VersionId without hyphens); soft delete is shared.
"""

from __future__ import annotations

import datetime
import json

import hvac
import pytest
from botocore.exceptions import ClientError

from aws_helpers import expect_error
from azure_helpers import az_name, sdk_error, wait_poller


def vault_data(client, name):
    return client.secrets.kv.v2.read_secret_version(path=name, mount_point="secret",
                                                    raise_on_deleted_version=True)["data"]["data"]


def hexid(version_id: str) -> str:
    return version_id.replace("-", "")


def test_azure_text_reads_through_vault_and_aws(kv, client, sm):
    n = az_name("xd")
    text = "plain text ✓ {not json"
    s = kv.set_secret(n, text)
    assert vault_data(client, n) == {"value": text}
    g = sm.get_secret_value(SecretId=n)
    assert g["SecretString"] == text
    assert g["Name"] == n
    assert hexid(g["VersionId"]) == s.properties.version


def test_azure_json_object_text_is_the_object_for_vault(kv, client, sm):
    n = az_name("xdjson")
    text = '{"user": "app", "n": 1, "nested": {"k": [1, 2]}}'
    kv.set_secret(n, text)
    assert vault_data(client, n) == json.loads(text)
    assert json.loads(sm.get_secret_value(SecretId=n)["SecretString"]) == json.loads(text)
    assert kv.get_secret(n).value == text


def test_vault_writes_read_through_azure(kv, client, sm):
    n = az_name("xdvault")
    client.secrets.kv.v2.create_or_update_secret(path=n, secret={"a": "b"}, mount_point="secret")
    g = kv.get_secret(n)
    assert json.loads(g.value) == {"a": "b"}
    assert g.name == n and g.properties.enabled is True
    assert g.properties.version == hexid(sm.get_secret_value(SecretId=n)["VersionId"])
    client.secrets.kv.v2.create_or_update_secret(path=n, secret={"a": "c", "d": 1}, mount_point="secret")
    assert json.loads(kv.get_secret(n).value) == {"a": "c", "d": 1}
    vs = list(kv.list_properties_of_secret_versions(n))
    assert len(vs) == 2
    assert json.loads(kv.get_secret(n, g.properties.version).value) == {"a": "b"}


def test_aws_writes_read_through_azure(kv, sm):
    n = az_name("xdaws")
    r = sm.create_secret(Name=n, SecretString="from-aws")
    g = kv.get_secret(n)
    assert g.value == "from-aws"
    assert g.properties.version == hexid(r["VersionId"])
    # a version id in AWS's hyphenated form is accepted too
    assert kv.get_secret(n, r["VersionId"]).value == "from-aws"
    r2 = sm.put_secret_value(SecretId=n, SecretString="second")
    g2 = kv.get_secret(n)
    assert (g2.value, g2.properties.version) == ("second", hexid(r2["VersionId"]))
    assert any(p.name == n for p in kv.list_properties_of_secrets())


def test_azure_versions_are_aws_versions(kv, sm):
    n = az_name("xdvers")
    made = [kv.set_secret(n, f"v{i}").properties.version for i in range(3)]
    # versions without staging labels are listed only with IncludeDeprecated (AWS's rule)
    ids = sm.list_secret_version_ids(SecretId=n, IncludeDeprecated=True)["Versions"]
    assert sorted(hexid(v["VersionId"]) for v in ids) == sorted(made)
    # AWSCURRENT is Azure's latest
    cur = sm.get_secret_value(SecretId=n)
    assert (hexid(cur["VersionId"]), cur["SecretString"]) == (made[-1], "v2")
    # and the AWS side changes what Azure calls the latest
    sm.put_secret_value(SecretId=n, SecretString="aws-latest")
    assert kv.get_secret(n).value == "aws-latest"


def test_soft_delete_through_azure_is_seen_by_aws_and_vault(kv, sm, client):
    n = az_name("xddel")
    v = kv.set_secret(n, "v").properties.version
    wait_poller(kv.begin_delete_secret(n))
    expect_error("InvalidRequestException", sm.get_secret_value, SecretId=n)
    assert "DeletedDate" in sm.describe_secret(SecretId=n)
    with pytest.raises(hvac.exceptions.VaultError):
        vault_data(client, n)
    # AWS's RestoreSecret undoes Azure's delete
    sm.restore_secret(SecretId=n)
    g = kv.get_secret(n)
    assert (g.value, g.properties.version) == ("v", v)
    sdk_error(404, "SecretNotFound", kv.get_deleted_secret, n)


def test_soft_delete_through_aws_is_seen_by_azure(kv, sm):
    n = az_name("xdawsdel")
    sm.create_secret(Name=n, SecretString="v")
    sm.delete_secret(SecretId=n, RecoveryWindowInDays=7)
    sdk_error(404, "SecretNotFound", kv.get_secret, n)
    d = kv.get_deleted_secret(n)
    assert d.name == n and d.scheduled_purge_date > d.deleted_date
    sdk_error(409, "Conflict", kv.set_secret, n, "x")
    assert wait_poller(kv.begin_recover_deleted_secret(n)).name == n
    assert sm.get_secret_value(SecretId=n)["SecretString"] == "v"


def test_purge_through_azure_frees_the_name_everywhere(kv, sm, client):
    n = az_name("xdpurge")
    kv.set_secret(n, "v")
    wait_poller(kv.begin_delete_secret(n))
    kv.purge_deleted_secret(n)
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=n)
    with pytest.raises(hvac.exceptions.InvalidPath):
        client.secrets.kv.v2.read_secret_metadata(path=n, mount_point="secret")
    sm.create_secret(Name=n, SecretString="again")
    assert kv.get_secret(n).value == "again"


@pytest.mark.parametrize("state,word", [("disabled", "disabled"), ("expired", "expired"),
                                        ("not-yet-valid", "valid")])
def test_an_unreadable_version_is_unreadable_everywhere(kv, sm, client, state, word):
    n = az_name("xdunread")
    hour = datetime.timedelta(hours=1)
    now = datetime.datetime.now(datetime.timezone.utc)
    kw = {"disabled": {"enabled": False}, "expired": {"expires_on": now - hour},
          "not-yet-valid": {"not_before": now + hour}}[state]
    kv.set_secret(n, "v", **kw)
    with pytest.raises(ClientError):
        sm.get_secret_value(SecretId=n)
    # Vault answers 400 with a message saying which
    with pytest.raises(hvac.exceptions.InvalidRequest) as e:
        vault_data(client, n)
    assert word in str(e.value).lower(), str(e.value)


def test_azure_tags_and_content_type_do_not_touch_the_value(kv, client):
    n = az_name("xdattrs")
    kv.set_secret(n, "v", content_type="application/x-pem-file", tags={"a": "1"})
    kv.update_secret_properties(n, content_type="text/plain", tags={"b": "2"})
    assert vault_data(client, n) == {"value": "v"}
    meta = client.secrets.kv.v2.read_secret_metadata(path=n, mount_point="secret")["data"]
    assert meta["current_version"] == 1

