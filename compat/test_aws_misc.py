"""GetRandomPassword, resource policies, replication, rotation (not supported: a clear error),
cross-dialect reads and writes (Vault API <-> AWS API), and the audit trail of AWS requests."""

from __future__ import annotations

import json
import string

import pytest

from aws_helpers import REGION, assert_arn, error_of, expect_error, message_of, new_name, sm_client
from conftest import uid

PUNCT = set(string.punctuation)  # AWS's punctuation set: !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
UPPER, LOWER, DIGITS = set(string.ascii_uppercase), set(string.ascii_lowercase), set(string.digits)
ALLOWED_DEFAULT = UPPER | LOWER | DIGITS | PUNCT


# --- GetRandomPassword ---------------------------------------------------------------------------------

def draws(sm, n=25, **kw) -> list[str]:
    return [sm.get_random_password(**kw)["RandomPassword"] for _ in range(n)]


def test_password_defaults(sm):
    pws = draws(sm)
    for p in pws:
        assert len(p) == 32
        assert set(p) <= ALLOWED_DEFAULT, p
        # RequireEachIncludedType defaults to true
        assert set(p) & UPPER and set(p) & LOWER and set(p) & DIGITS and set(p) & PUNCT, p
    assert len(set(pws)) == len(pws)


@pytest.mark.parametrize("length", [1, 4, 100, 4096])
def test_password_length(sm, length):
    kw = {"PasswordLength": length}
    if length < 4:
        kw["RequireEachIncludedType"] = False
    p = sm.get_random_password(**kw)["RandomPassword"]
    assert len(p) == length


@pytest.mark.parametrize("flag,cls", [("ExcludeNumbers", DIGITS), ("ExcludePunctuation", PUNCT),
                                      ("ExcludeUppercase", UPPER), ("ExcludeLowercase", LOWER)])
def test_password_exclude_class(sm, flag, cls):
    remaining = [c for c in (UPPER, LOWER, DIGITS, PUNCT) if c is not cls]
    for p in draws(sm, 20, PasswordLength=24, **{flag: True}):
        assert len(p) == 24
        assert not (set(p) & cls), (flag, p)
        assert set(p) <= ALLOWED_DEFAULT
        for c in remaining:  # each remaining type still appears
            assert set(p) & c, (flag, p)


def test_password_exclude_characters(sm):
    excluded = "aeiouAEIOU01234!@#$%"
    for p in draws(sm, 20, PasswordLength=64, ExcludeCharacters=excluded):
        assert len(p) == 64
        assert not (set(p) & set(excluded)), p
        # every type is still required, from what is left of it
        assert set(p) & (DIGITS - set(excluded)) and set(p) & (PUNCT - set(excluded)), p
    # excluding every digit by character leaves none
    for p in draws(sm, 10, PasswordLength=40, ExcludeCharacters=string.digits, RequireEachIncludedType=False):
        assert not (set(p) & DIGITS), p


def test_password_include_space(sm):
    without = "".join(draws(sm, 20, PasswordLength=100))
    assert " " not in without
    pws = draws(sm, 20, PasswordLength=100, IncludeSpace=True)
    assert all(len(p) == 100 for p in pws)
    assert any(" " in p for p in pws)
    assert set("".join(pws)) <= ALLOWED_DEFAULT | {" "}


def test_password_require_each_included_type(sm):
    # length 4 with four types: each password has exactly one of each
    for p in draws(sm, 40, PasswordLength=4, RequireEachIncludedType=True):
        assert set(p) & UPPER and set(p) & LOWER and set(p) & DIGITS and set(p) & PUNCT, p
    # with fewer types, still each of them
    for p in draws(sm, 30, PasswordLength=3, ExcludePunctuation=True, RequireEachIncludedType=True):
        assert set(p) & UPPER and set(p) & LOWER and set(p) & DIGITS, p
        assert not set(p) & PUNCT
    for p in draws(sm, 30, PasswordLength=2, ExcludeNumbers=True, ExcludePunctuation=True):
        assert set(p) & UPPER and set(p) & LOWER, p


def test_password_only_one_class(sm):
    for p in draws(sm, 10, PasswordLength=30, ExcludeUppercase=True, ExcludeLowercase=True,
                   ExcludePunctuation=True):
        assert set(p) <= DIGITS and len(p) == 30


def test_password_everything_excluded_rejected(sm):
    expect_error(("InvalidParameterException", "ValidationException"), sm.get_random_password,
                 ExcludeNumbers=True, ExcludePunctuation=True, ExcludeUppercase=True, ExcludeLowercase=True)


def test_password_too_long_rejected(sm):
    expect_error(("InvalidParameterException", "ValidationException"), sm.get_random_password,
                 PasswordLength=4097)


# --- resource policies ---------------------------------------------------------------------------------

def policy_doc(action="secretsmanager:GetSecretValue"):
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:role/app"},
            "Action": action,
            "Resource": "*",
        }],
    })


def test_resource_policy_put_get_delete(sm):
    name = new_name("rp")
    arn = sm.create_secret(Name=name, SecretString="x")["ARN"]
    g = sm.get_resource_policy(SecretId=name)
    assert g["ARN"] == arn and g["Name"] == name
    assert "ResourcePolicy" not in g
    doc = policy_doc()
    p = sm.put_resource_policy(SecretId=name, ResourcePolicy=doc)
    assert p["ARN"] == arn and p["Name"] == name
    g = sm.get_resource_policy(SecretId=arn)
    assert json.loads(g["ResourcePolicy"]) == json.loads(doc)
    # replace
    doc2 = policy_doc("secretsmanager:DescribeSecret")
    sm.put_resource_policy(SecretId=name, ResourcePolicy=doc2)
    assert json.loads(sm.get_resource_policy(SecretId=name)["ResourcePolicy"]) == json.loads(doc2)
    d = sm.delete_resource_policy(SecretId=name)
    assert d["ARN"] == arn and d["Name"] == name
    assert "ResourcePolicy" not in sm.get_resource_policy(SecretId=name)
    # the secret's value and versions are untouched
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "x"


@pytest.mark.parametrize("bad", ["{not json", "[]", "\"a string\"", "{\"Version\": \"2012-10-17\""])
def test_put_malformed_policy_rejected(sm, bad):
    name = new_name("rpbad")
    sm.create_secret(Name=name, SecretString="x")
    doc = policy_doc()
    sm.put_resource_policy(SecretId=name, ResourcePolicy=doc)
    expect_error("MalformedPolicyDocumentException", sm.put_resource_policy, SecretId=name, ResourcePolicy=bad)
    assert json.loads(sm.get_resource_policy(SecretId=name)["ResourcePolicy"]) == json.loads(doc)


def test_validate_resource_policy(sm):
    r = sm.validate_resource_policy(ResourcePolicy=policy_doc())
    assert r["PolicyValidationPassed"] is True
    assert not r.get("ValidationErrors")
    # with a secret
    name = new_name("rpv")
    sm.create_secret(Name=name, SecretString="x")
    r = sm.validate_resource_policy(SecretId=name, ResourcePolicy=policy_doc())
    assert r["PolicyValidationPassed"] is True
    # validation does not attach the policy
    assert "ResourcePolicy" not in sm.get_resource_policy(SecretId=name)


def test_validate_malformed_policy(sm):
    try:
        r = sm.validate_resource_policy(ResourcePolicy="{not json")
    except Exception as e:  # AWS may refuse outright
        assert getattr(e, "response", {}).get("Error", {}).get("Code") == "MalformedPolicyDocumentException", e
        return
    assert r["PolicyValidationPassed"] is False
    assert r["ValidationErrors"]
    assert all(v.get("ErrorMessage") for v in r["ValidationErrors"])


def test_validate_policy_with_errors(sm):
    # well-formed JSON, but not a valid policy (no Statement / bad Effect)
    for doc in ({"Version": "2012-10-17"},
                {"Version": "2012-10-17", "Statement": [{"Effect": "Perhaps", "Principal": "*",
                                                         "Action": "secretsmanager:*", "Resource": "*"}]}):
        try:
            r = sm.validate_resource_policy(ResourcePolicy=json.dumps(doc))
        except Exception as e:
            assert getattr(e, "response", {}).get("Error", {}).get("Code") == "MalformedPolicyDocumentException", e
            continue
        assert r["PolicyValidationPassed"] is False, doc
        assert r["ValidationErrors"], doc


# --- replication ------------------------------------------------------------------------------------------

def regions_of(status) -> list[str]:
    return sorted(s["Region"] for s in status or [])


def test_replicate_and_remove_regions(sm):
    name = new_name("repl")
    arn = sm.create_secret(Name=name, SecretString="x")["ARN"]
    assert not sm.describe_secret(SecretId=name).get("ReplicationStatus")
    r = sm.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": "eu-west-1"},
                                                                          {"Region": "ap-south-1",
                                                                           "KmsKeyId": "alias/r"}])
    assert r["ARN"] == arn
    assert regions_of(r["ReplicationStatus"]) == ["ap-south-1", "eu-west-1"]
    for s in r["ReplicationStatus"]:
        assert s["Status"] in ("InSync", "InProgress", "Failed")
    d = sm.describe_secret(SecretId=name)
    assert regions_of(d["ReplicationStatus"]) == ["ap-south-1", "eu-west-1"]
    assert d.get("PrimaryRegion") == REGION
    r = sm.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=["ap-south-1"])
    assert r["ARN"] == arn
    assert regions_of(r["ReplicationStatus"]) == ["eu-west-1"]
    assert regions_of(sm.describe_secret(SecretId=name).get("ReplicationStatus")) == ["eu-west-1"]
    sm.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=["eu-west-1"])
    assert not sm.describe_secret(SecretId=name).get("ReplicationStatus")
    # the value is untouched
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "x"


def test_delete_refused_while_replicated(sm):
    name = new_name("repldel")
    sm.create_secret(Name=name, SecretString="x")
    sm.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": "eu-west-1"}])
    e = expect_error("InvalidParameterException", sm.delete_secret, SecretId=name, RecoveryWindowInDays=7)
    assert "eu-west-1" in message_of(e)
    assert "DeletedDate" not in sm.describe_secret(SecretId=name)
    sm.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=["eu-west-1"])
    sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


def test_create_with_replica_regions(sm):
    name = new_name("replc")
    r = sm.create_secret(Name=name, SecretString="x", AddReplicaRegions=[{"Region": "eu-central-1"}])
    assert regions_of(r["ReplicationStatus"]) == ["eu-central-1"]
    d = sm.describe_secret(SecretId=name)
    assert regions_of(d["ReplicationStatus"]) == ["eu-central-1"]
    assert d.get("PrimaryRegion") == REGION
    sm.remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=["eu-central-1"])


def test_replicate_to_own_region_rejected(sm):
    name = new_name("replown")
    sm.create_secret(Name=name, SecretString="x")
    expect_error(("InvalidParameterException", "InvalidRequestException"), sm.replicate_secret_to_regions,
                 SecretId=name, AddReplicaRegions=[{"Region": REGION}])
    assert not sm.describe_secret(SecretId=name).get("ReplicationStatus")


def test_replicate_bad_region_rejected(sm):
    name = new_name("replbad")
    sm.create_secret(Name=name, SecretString="x")
    expect_error(("InvalidParameterException", "ValidationException"), sm.replicate_secret_to_regions,
                 SecretId=name, AddReplicaRegions=[{"Region": "Not A Region"}])
    assert not sm.describe_secret(SecretId=name).get("ReplicationStatus")


def test_stop_replication_to_replica(dev_server, sm):
    name = new_name("stop")
    sm.create_secret(Name=name, SecretString="x")
    sm.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": "eu-west-1"}])
    replica = sm_client(dev_server, region="eu-west-1")
    r = replica.stop_replication_to_replica(SecretId=name)
    assert name in r["ARN"]
    assert r["ARN"].startswith("arn:aws:secretsmanager:")


# --- rotation: not supported, a clear error, nothing changes -------------------------------------------

def test_rotate_without_a_rotator_is_refused_and_cancel_turns_rotation_off(sm):
    name = new_name("rot")
    sm.create_secret(Name=name, SecretString="x")
    before = sm.describe_secret(SecretId=name)
    # no rotator given and none stored: refused, nothing changed
    e = error_of(lambda: sm.rotate_secret(SecretId=name))
    assert message_of(e).strip()
    after = sm.describe_secret(SecretId=name)
    assert after.get("VersionIdsToStages") == before.get("VersionIdsToStages")
    assert not after.get("RotationEnabled")
    assert "RotationLambdaARN" not in after and "RotationRules" not in after
    # scheduled (not now), then cancelled: settings kept, rotation off, the value untouched
    sm.rotate_secret(SecretId=name, RotationLambdaARN="coffer:password",
                     RotationRules={"AutomaticallyAfterDays": 30}, RotateImmediately=False)
    on = sm.describe_secret(SecretId=name)
    assert on["RotationEnabled"] and on["RotationRules"] == {"AutomaticallyAfterDays": 30}
    assert "NextRotationDate" in on
    sm.cancel_rotate_secret(SecretId=name)
    off = sm.describe_secret(SecretId=name)
    assert not off["RotationEnabled"] and "NextRotationDate" not in off
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "x"
    assert len(sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]) == 1


# --- cross-dialect --------------------------------------------------------------------------------------

def kv_read(client, name):
    return client.secrets.kv.v2.read_secret_version(path=name, mount_point="secret",
                                                    raise_on_deleted_version=True)["data"]


def test_vault_write_aws_read(sm, client):
    name = new_name("x/v2a")
    client.secrets.kv.v2.create_or_update_secret(path=name, secret={"a": "b"}, mount_point="secret")
    g = sm.get_secret_value(SecretId=name)
    assert g["SecretString"] == '{"a":"b"}'
    assert g["VersionStages"] == ["AWSCURRENT"]
    assert_arn(g["ARN"], name)
    d = sm.describe_secret(SecretId=name)
    assert d["Name"] == name
    assert list(d["VersionIdsToStages"].values()) == [["AWSCURRENT"]]
    # several keys and nested values read back as the same JSON object
    data = {"user": "app", "port": 5432, "nested": {"k": [1, 2]}, "flag": True}
    client.secrets.kv.v2.create_or_update_secret(path=name, secret=data, mount_point="secret")
    g2 = sm.get_secret_value(SecretId=name)
    assert json.loads(g2["SecretString"]) == data
    assert g2["VersionId"] != g["VersionId"]
    assert g2["VersionStages"] == ["AWSCURRENT"]
    # the first version is still there by id
    assert sm.get_secret_value(SecretId=name, VersionId=g["VersionId"])["SecretString"] == '{"a":"b"}'


def test_aws_write_vault_read(sm, client):
    name = new_name("x/a2v")
    obj = {"username": "admin", "password": "p@ss", "n": 3}
    sm.create_secret(Name=name, SecretString=json.dumps(obj))
    assert kv_read(client, name)["data"] == obj
    # a string that is not a JSON object: Vault reads something, AWS reads the exact string back
    sm.put_secret_value(SecretId=name, SecretString="plain text, not json")
    assert isinstance(kv_read(client, name)["data"], dict)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "plain text, not json"
    sm.put_secret_value(SecretId=name, SecretString="[1, 2, 3]")
    kv_read(client, name)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "[1, 2, 3]"
    # a JSON object string is kept exactly for AWS readers
    text = '{ "b": 1,  "a": "x" }'
    sm.put_secret_value(SecretId=name, SecretString=text)
    assert kv_read(client, name)["data"] == {"b": 1, "a": "x"}
    assert json.loads(sm.get_secret_value(SecretId=name)["SecretString"]) == {"b": 1, "a": "x"}


def test_aws_binary_readable_by_vault(sm, client):
    name = new_name("x/bin")
    sm.create_secret(Name=name, SecretBinary=b"\x00\x01\xfe\xff")
    kv_read(client, name)  # no error
    assert sm.get_secret_value(SecretId=name)["SecretBinary"] == b"\x00\x01\xfe\xff"


def test_vault_version_becomes_current(sm, client):
    name = new_name("x/cur")
    v1 = sm.create_secret(Name=name, SecretString='{"v":"1"}')["VersionId"]
    client.secrets.kv.v2.create_or_update_secret(path=name, secret={"v": "2"}, mount_point="secret")
    g = sm.get_secret_value(SecretId=name)
    assert json.loads(g["SecretString"]) == {"v": "2"}
    assert g["VersionId"] != v1
    assert g["VersionStages"] == ["AWSCURRENT"]
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["VersionId"] == v1
    stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    assert stages[g["VersionId"]] == ["AWSCURRENT"]
    assert stages[v1] == ["AWSPREVIOUS"]
    # and back: an AWS put after the Vault write is the newest Vault version
    sm.put_secret_value(SecretId=name, SecretString='{"v":"3"}')
    assert kv_read(client, name)["data"] == {"v": "3"}
    assert kv_read(client, name)["metadata"]["version"] == 3


def test_vault_delete_metadata_removes_aws_secret(sm, client):
    name = new_name("x/gone")
    sm.create_secret(Name=name, SecretString="x")
    client.secrets.kv.v2.delete_metadata_and_all_versions(path=name, mount_point="secret")
    e = expect_error("ResourceNotFoundException", sm.get_secret_value, SecretId=name)
    assert message_of(e) == "Secrets Manager can't find the specified secret."


def test_vault_listing_sees_aws_secrets(sm, client):
    base = uid("x-list")
    sm.create_secret(Name=f"{base}/one", SecretString="1")
    sm.create_secret(Name=f"{base}/two", SecretString='{"a":1}')
    keys = client.secrets.kv.v2.list_secrets(path=base, mount_point="secret")["data"]["keys"]
    assert sorted(keys) == ["one", "two"]


# --- audit ------------------------------------------------------------------------------------------------

def test_audit_entries_for_aws_requests(sm, client, file_audit):
    path, log = file_audit
    value = "audited-" + uid("v")
    name = new_name("aud")
    sm.create_secret(Name=name, SecretString=value)
    sm.get_secret_value(SecretId=name)
    with pytest.raises(Exception):
        sm.get_secret_value(SecretId=new_name("audmissing"))
    text = log.read_text()
    entries = [json.loads(l) for l in text.splitlines() if l.strip()]

    def op(e):
        return e.get("request", {}).get("operation_name")

    gets = [e for e in entries if e.get("dialect") == "aws" and op(e) == "secretsmanager.GetSecretValue"]
    assert {e["type"] for e in gets} == {"request", "response"}, [op(e) for e in entries]
    creates = [e for e in entries if e.get("dialect") == "aws" and op(e) == "secretsmanager.CreateSecret"]
    assert creates
    # the secret value never appears in clear
    assert value not in text
    # nothing AWS is recorded as the vault dialect
    assert not [e for e in entries if op(e) and str(op(e)).startswith("secretsmanager.")
                and e.get("dialect") != "aws"]


def test_the_aws_request_id_finds_its_audit_entries(sm, file_audit):
    _, log = file_audit
    name = new_name("rid")
    sm.create_secret(Name=name, SecretString="x")
    r = sm.get_secret_value(SecretId=name)
    rid = r["ResponseMetadata"]["RequestId"]
    missing = None
    try:
        sm.get_secret_value(SecretId=new_name("ridmissing"))
    except Exception as e:  # a failed request has an id in the audit log too
        missing = e.response["ResponseMetadata"]["RequestId"]
    entries = [json.loads(l) for l in log.read_text().splitlines() if l.strip()]
    for want in (rid, missing):
        mine = [e for e in entries if e.get("request", {}).get("id") == want]
        assert {e["type"] for e in mine} == {"request", "response"}, want
        assert all(e["request"]["operation_name"] == "secretsmanager.GetSecretValue" for e in mine)
    # request ids are not reused
    ids = [e["request"]["id"] for e in entries if e["type"] == "request"]
    assert len(ids) == len(set(ids))
