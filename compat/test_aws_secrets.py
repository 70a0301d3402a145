"""boto3 against Coffer's AWS Secrets Manager dialect: the life of a secret and its versions.

Every expectation here is AWS Secrets Manager's documented behaviour (API reference / botocore's
service model), not Coffer's. Each test works on its own uuid-named secrets (the server is shared).
"""

from __future__ import annotations

import datetime
import uuid

import pytest

from conftest import uid
from aws_helpers import NOT_FOUND_MSG, arn_prefix, assert_arn, expect_error, message_of, new_name, sm_client


def versions_to_stages(sm, sid) -> dict[str, list[str]]:
    return {k: sorted(v) for k, v in sm.describe_secret(SecretId=sid).get("VersionIdsToStages", {}).items()}


def holder(sm, sid, label):
    """The version id holding `label` (from DescribeSecret), or None."""
    owners = [v for v, st in versions_to_stages(sm, sid).items() if label in st]
    assert len(owners) <= 1, owners
    return owners[0] if owners else None


# --- CreateSecret / GetSecretValue -----------------------------------------------------------------

def test_create_and_get_string(sm):
    name = new_name("cs")
    token = str(uuid.uuid4())
    r = sm.create_secret(Name=name, SecretString="hunter2", Description="d1", ClientRequestToken=token)
    assert r["Name"] == name
    assert_arn(r["ARN"], name)
    # the ClientRequestToken becomes the VersionId of the new version
    assert r["VersionId"] == token

    g = sm.get_secret_value(SecretId=name)
    assert g["SecretString"] == "hunter2"
    assert "SecretBinary" not in g
    assert g["Name"] == name
    assert g["ARN"] == r["ARN"]
    assert g["VersionId"] == token
    assert g["VersionStages"] == ["AWSCURRENT"]
    assert isinstance(g["CreatedDate"], datetime.datetime)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - g["CreatedDate"]).total_seconds()) < 120


def test_create_generates_version_id_when_sdk_sends_token(sm):
    # boto3 fills ClientRequestToken itself (idempotencyToken); the version id is a UUID
    name = new_name("cs")
    r = sm.create_secret(Name=name, SecretString="v")
    uuid.UUID(r["VersionId"])
    assert sm.get_secret_value(SecretId=name)["VersionId"] == r["VersionId"]


def test_binary_round_trip_byte_exact(sm):
    name = new_name("bin")
    blob = bytes(range(256)) + b"\x00\xff\x00" + "é€".encode()
    r = sm.create_secret(Name=name, SecretBinary=blob)
    g = sm.get_secret_value(SecretId=name)
    assert g["SecretBinary"] == blob
    assert "SecretString" not in g
    assert g["VersionId"] == r["VersionId"]
    blob2 = b"\x01\x02" * 1000
    sm.put_secret_value(SecretId=name, SecretBinary=blob2)
    assert sm.get_secret_value(SecretId=name)["SecretBinary"] == blob2
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretBinary"] == blob


def test_unicode_string_round_trip(sm):
    name = new_name("uni")
    s = "pässwörd ✓ 密码 \n\t \"quoted\" \\ {not json"
    sm.create_secret(Name=name, SecretString=s)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == s


def test_create_without_value(sm):
    name = new_name("nov")
    r = sm.create_secret(Name=name, Description="no value yet")
    assert_arn(r["ARN"], name)
    assert "VersionId" not in r
    d = sm.describe_secret(SecretId=name)
    assert d["Description"] == "no value yet"
    assert not d.get("VersionIdsToStages")
    e = expect_error("ResourceNotFoundException", sm.get_secret_value, SecretId=name)
    assert "AWSCURRENT" in message_of(e)
    # a first value later becomes AWSCURRENT
    p = sm.put_secret_value(SecretId=name, SecretString="first")
    assert p["VersionStages"] == ["AWSCURRENT"]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "first"


def test_create_existing_name(sm):
    name = new_name("dup")
    sm.create_secret(Name=name, SecretString="a")
    expect_error("ResourceExistsException", sm.create_secret, Name=name, SecretString="b")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "a"


def test_create_both_string_and_binary_rejected(sm):
    name = new_name("both")
    expect_error("InvalidParameterException", sm.create_secret, Name=name, SecretString="a", SecretBinary=b"b")
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=name)


def test_create_with_kms_tags_description(sm):
    name = new_name("meta")
    kms = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    sm.create_secret(Name=name, SecretString="x", KmsKeyId=kms, Description="the description",
                     Tags=[{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": ""}])
    d = sm.describe_secret(SecretId=name)
    assert d["Name"] == name
    assert d["KmsKeyId"] == kms
    assert d["Description"] == "the description"
    assert sorted((t["Key"], t["Value"]) for t in d["Tags"]) == [("env", "prod"), ("team", "")]
    assert isinstance(d["CreatedDate"], datetime.datetime)
    assert isinstance(d["LastChangedDate"], datetime.datetime)
    assert "DeletedDate" not in d
    # UpdateSecret changes the key id without a new version
    before = versions_to_stages(sm, name)
    u = sm.update_secret(SecretId=name, KmsKeyId="alias/other")
    assert "VersionId" not in u
    assert sm.describe_secret(SecretId=name)["KmsKeyId"] == "alias/other"
    assert versions_to_stages(sm, name) == before


def test_get_by_version_id_and_stage(sm):
    name = new_name("ver")
    v1 = sm.create_secret(Name=name, SecretString="one")["VersionId"]
    v2 = sm.put_secret_value(SecretId=name, SecretString="two")["VersionId"]
    assert v1 != v2
    assert sm.get_secret_value(SecretId=name, VersionId=v1)["SecretString"] == "one"
    assert sm.get_secret_value(SecretId=name, VersionId=v2)["SecretString"] == "two"
    g = sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
    assert (g["SecretString"], g["VersionId"], g["VersionStages"]) == ("one", v1, ["AWSPREVIOUS"])
    g = sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    assert (g["SecretString"], g["VersionId"]) == ("two", v2)
    # both given and pointing at the same version
    assert sm.get_secret_value(SecretId=name, VersionId=v2, VersionStage="AWSCURRENT")["SecretString"] == "two"
    expect_error("ResourceNotFoundException", sm.get_secret_value, SecretId=name,
                 VersionId=str(uuid.uuid4()))
    e = expect_error("ResourceNotFoundException", sm.get_secret_value, SecretId=name, VersionStage="NOPE")
    assert "NOPE" in message_of(e)


def test_last_accessed_date(sm):
    # omitted until the secret is first read; then the day of the read (AWS rounds it to the date)
    name = new_name("acc")
    sm.create_secret(Name=name, SecretString="x")
    assert "LastAccessedDate" not in sm.describe_secret(SecretId=name)
    sm.get_secret_value(SecretId=name)
    la = sm.describe_secret(SecretId=name)["LastAccessedDate"].astimezone(datetime.timezone.utc)
    today = datetime.datetime.now(datetime.timezone.utc).date()
    assert la.date() in (today, today - datetime.timedelta(days=1))
    assert la.time() == datetime.time(0, 0)


def test_description_too_long(sm):
    name = new_name("desc")
    expect_error(("ValidationException", "InvalidParameterException"), sm.create_secret, Name=name,
                 SecretString="x", Description="d" * 2049)
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=name)
    sm.create_secret(Name=name, SecretString="x", Description="d" * 2048)
    assert sm.describe_secret(SecretId=name)["Description"] == "d" * 2048


# --- PutSecretValue: labels ------------------------------------------------------------------------

def test_put_moves_current_and_previous(sm):
    name = new_name("mv")
    v1 = sm.create_secret(Name=name, SecretString="1")["VersionId"]
    assert versions_to_stages(sm, name) == {v1: ["AWSCURRENT"]}
    p2 = sm.put_secret_value(SecretId=name, SecretString="2")
    v2 = p2["VersionId"]
    assert p2["Name"] == name and p2["VersionStages"] == ["AWSCURRENT"]
    assert_arn(p2["ARN"], name)
    assert versions_to_stages(sm, name) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"]}
    v3 = sm.put_secret_value(SecretId=name, SecretString="3")["VersionId"]
    # v1 lost its last label: deprecated, so DescribeSecret no longer lists it
    assert versions_to_stages(sm, name) == {v2: ["AWSPREVIOUS"], v3: ["AWSCURRENT"]}
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "3"
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == "2"

    listed = sm.list_secret_version_ids(SecretId=name)
    assert listed["Name"] == name
    assert_arn(listed["ARN"], name)
    assert {v["VersionId"]: sorted(v["VersionStages"]) for v in listed["Versions"]} == \
        {v2: ["AWSPREVIOUS"], v3: ["AWSCURRENT"]}
    for v in listed["Versions"]:
        assert isinstance(v["CreatedDate"], datetime.datetime)
    with_dep = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    by_id = {v["VersionId"]: v for v in with_dep}
    assert set(by_id) == {v1, v2, v3}
    assert not by_id[v1].get("VersionStages")
    # a deprecated version can still be read by id
    assert sm.get_secret_value(SecretId=name, VersionId=v1)["SecretString"] == "1"


def test_put_pending_does_not_move_current(sm):
    name = new_name("pend")
    v1 = sm.create_secret(Name=name, SecretString="cur")["VersionId"]
    p = sm.put_secret_value(SecretId=name, SecretString="next", VersionStages=["AWSPENDING"])
    vp = p["VersionId"]
    assert p["VersionStages"] == ["AWSPENDING"]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "cur"
    g = sm.get_secret_value(SecretId=name, VersionStage="AWSPENDING")
    assert (g["SecretString"], g["VersionId"], g["VersionStages"]) == ("next", vp, ["AWSPENDING"])
    assert versions_to_stages(sm, name) == {v1: ["AWSCURRENT"], vp: ["AWSPENDING"]}
    # a second pending version takes the label away from the first
    vp2 = sm.put_secret_value(SecretId=name, SecretString="next2", VersionStages=["AWSPENDING"])["VersionId"]
    assert holder(sm, name, "AWSPENDING") == vp2
    assert holder(sm, name, "AWSCURRENT") == v1
    # custom labels
    vc = sm.put_secret_value(SecretId=name, SecretString="c", VersionStages=["blue", "green"])["VersionId"]
    assert versions_to_stages(sm, name)[vc] == ["blue", "green"]
    assert sm.get_secret_value(SecretId=name, VersionStage="green")["SecretString"] == "c"
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "cur"


def test_put_idempotent_token(sm):
    name = new_name("idem")
    sm.create_secret(Name=name, SecretString="a")
    tok = str(uuid.uuid4())
    p1 = sm.put_secret_value(SecretId=name, SecretString="b", ClientRequestToken=tok)
    assert p1["VersionId"] == tok
    before = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    p2 = sm.put_secret_value(SecretId=name, SecretString="b", ClientRequestToken=tok)
    assert p2["VersionId"] == tok
    after = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    assert len(after) == len(before) == 2
    # same token, other data: refused, nothing changes
    expect_error("ResourceExistsException", sm.put_secret_value, SecretId=name, SecretString="c",
                 ClientRequestToken=tok)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "b"
    assert len(sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]) == 2


def test_create_idempotent_token(sm):
    name = new_name("idemc")
    tok = str(uuid.uuid4())
    r1 = sm.create_secret(Name=name, SecretString="same", ClientRequestToken=tok)
    r2 = sm.create_secret(Name=name, SecretString="same", ClientRequestToken=tok)
    assert r1["VersionId"] == r2["VersionId"] == tok
    assert r1["ARN"] == r2["ARN"]
    assert len(sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]) == 1
    expect_error("ResourceExistsException", sm.create_secret, Name=name, SecretString="other",
                 ClientRequestToken=tok)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "same"


def test_put_neither_string_nor_binary_changes_nothing(sm):
    name = new_name("empty")
    v1 = sm.create_secret(Name=name, SecretString="keep")["VersionId"]
    expect_error(("InvalidRequestException", "InvalidParameterException"), sm.put_secret_value, SecretId=name)
    expect_error("InvalidParameterException", sm.put_secret_value, SecretId=name, SecretString="s",
                 SecretBinary=b"b")
    assert versions_to_stages(sm, name) == {v1: ["AWSCURRENT"]}
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "keep"


# --- UpdateSecret ----------------------------------------------------------------------------------

def test_update_secret_with_and_without_value(sm):
    name = new_name("upd")
    v1 = sm.create_secret(Name=name, SecretString="a", Description="old")["VersionId"]
    u = sm.update_secret(SecretId=name, Description="new")
    assert u["Name"] == name and "VersionId" not in u
    assert sm.describe_secret(SecretId=name)["Description"] == "new"
    assert versions_to_stages(sm, name) == {v1: ["AWSCURRENT"]}
    tok = str(uuid.uuid4())
    u2 = sm.update_secret(SecretId=name, SecretString="b", ClientRequestToken=tok)
    assert u2["VersionId"] == tok
    assert_arn(u2["ARN"], name)
    assert versions_to_stages(sm, name) == {v1: ["AWSPREVIOUS"], tok: ["AWSCURRENT"]}
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "b"
    u3 = sm.update_secret(SecretId=name, SecretBinary=b"\x00bin")
    assert sm.get_secret_value(SecretId=name)["SecretBinary"] == b"\x00bin"
    assert holder(sm, name, "AWSCURRENT") == u3["VersionId"]
    assert holder(sm, name, "AWSPREVIOUS") == tok
    assert sm.describe_secret(SecretId=name)["Description"] == "new"


# --- UpdateSecretVersionStage ------------------------------------------------------------------------

def test_update_secret_version_stage(sm):
    name = new_name("stage")
    v1 = sm.create_secret(Name=name, SecretString="1")["VersionId"]
    v2 = sm.put_secret_value(SecretId=name, SecretString="2")["VersionId"]
    v3 = sm.put_secret_value(SecretId=name, SecretString="3")["VersionId"]
    # AWSCURRENT is attached to v3: moving it without RemoveFromVersionId is refused, nothing changes
    before = versions_to_stages(sm, name)
    expect_error("InvalidParameterException", sm.update_secret_version_stage, SecretId=name,
                 VersionStage="AWSCURRENT", MoveToVersionId=v1)
    assert versions_to_stages(sm, name) == before
    # roll back: AWSCURRENT to v1; AWSPREVIOUS follows to the version it was taken from
    r = sm.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=v1,
                                       RemoveFromVersionId=v3)
    assert r["Name"] == name
    assert_arn(r["ARN"], name)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "1"
    assert holder(sm, name, "AWSCURRENT") == v1
    assert holder(sm, name, "AWSPREVIOUS") == v3
    # a custom label: attach, move (needs RemoveFromVersionId), detach
    sm.update_secret_version_stage(SecretId=name, VersionStage="mine", MoveToVersionId=v2)
    assert "mine" in versions_to_stages(sm, name)[v2]
    expect_error("InvalidParameterException", sm.update_secret_version_stage, SecretId=name,
                 VersionStage="mine", MoveToVersionId=v3)
    assert holder(sm, name, "mine") == v2
    sm.update_secret_version_stage(SecretId=name, VersionStage="mine", MoveToVersionId=v3,
                                   RemoveFromVersionId=v2)
    assert holder(sm, name, "mine") == v3
    sm.update_secret_version_stage(SecretId=name, VersionStage="mine", RemoveFromVersionId=v3)
    assert holder(sm, name, "mine") is None
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "1"
    # an unknown version id
    expect_error(("InvalidParameterException", "ResourceNotFoundException"), sm.update_secret_version_stage,
                 SecretId=name, VersionStage="x", MoveToVersionId=str(uuid.uuid4()))


# --- ARNs and lookups ------------------------------------------------------------------------------

def test_lookup_by_name_full_arn_partial_arn(sm):
    name = new_name("arn") + "/nested/path"
    arn = sm.create_secret(Name=name, SecretString="v")["ARN"]
    suffix = assert_arn(arn, name)
    partial = arn_prefix() + name
    assert arn == partial + "-" + suffix
    for sid in (name, arn, partial):
        g = sm.get_secret_value(SecretId=sid)
        assert (g["SecretString"], g["Name"], g["ARN"]) == ("v", name, arn), sid
        d = sm.describe_secret(SecretId=sid)
        assert (d["Name"], d["ARN"]) == (name, arn), sid
    # a full ARN with another suffix is not this secret
    other = partial + "-" + ("A" if suffix[0] != "A" else "B") + suffix[1:]
    e = expect_error("ResourceNotFoundException", sm.get_secret_value, SecretId=other)
    assert message_of(e) == NOT_FOUND_MSG
    # another account or region in the ARN is not this secret either
    expect_error(("ResourceNotFoundException", "InvalidParameterException", "AccessDeniedException"),
                 sm.get_secret_value, SecretId=arn.replace(":123456789012:", ":210987654321:"))


def test_arn_changes_after_force_delete_and_recreate(sm):
    name = new_name("rec")
    arn1 = sm.create_secret(Name=name, SecretString="one")["ARN"]
    d = sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    assert d["Name"] == name and d["ARN"] == arn1
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=name)
    arn2 = sm.create_secret(Name=name, SecretString="two")["ARN"]
    assert_arn(arn2, name)
    assert arn2 != arn1
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "two"
    assert sm.get_secret_value(SecretId=arn2)["SecretString"] == "two"
    e = expect_error("ResourceNotFoundException", sm.get_secret_value, SecretId=arn1)
    assert message_of(e) == NOT_FOUND_MSG
    # the old versions are gone
    assert len(sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]) == 1


def test_arn_carries_the_region_of_the_request(dev_server):
    c = sm_client(dev_server, region="eu-west-1")
    name = new_name("reg")
    arn = c.create_secret(Name=name, SecretString="v")["ARN"]
    assert_arn(arn, name, region="eu-west-1")
    assert c.get_secret_value(SecretId=arn)["SecretString"] == "v"


# --- names and sizes --------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["has space", "hash#tag", "per%cent", "dollar$", "star*", "back\\slash", "q?",
                                 "comma,", "semi;colon", "tilde~"])
def test_invalid_name_characters(sm, bad):
    name = new_name("bad") + bad
    e = expect_error("ValidationException", sm.create_secret, Name=name, SecretString="x")
    assert message_of(e)
    expect_error(("ResourceNotFoundException", "ValidationException"), sm.describe_secret,
                 SecretId=name.replace(bad, ""))


def test_valid_name_characters(sm):
    name = new_name("ok") + "/a_b+c=d.e@f-g"
    arn = sm.create_secret(Name=name, SecretString="x")["ARN"]
    assert_arn(arn, name)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "x"


@pytest.mark.parametrize("shape", ["{u}.", "{u}/@=+_.-", "{u}/.x", "{u}/x..y"])
def test_names_with_dots_and_symbols_are_their_own_secrets(sm, shape):
    # every character here is allowed in an AWS secret name: each is a distinct secret, read back as is
    u = uid("shape")
    name = shape.format(u=u)
    plain = f"{u}/plain"
    sm.create_secret(Name=plain, SecretString="plain")
    arn = sm.create_secret(Name=name, SecretString="odd")["ARN"]
    assert_arn(arn, name)
    g = sm.get_secret_value(SecretId=name)
    assert (g["Name"], g["SecretString"]) == (name, "odd")
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == "odd"
    assert sm.get_secret_value(SecretId=plain)["SecretString"] == "plain"
    listed = sm.list_secrets(Filters=[{"Key": "name", "Values": [name]}])["SecretList"]
    assert name in [s["Name"] for s in listed]


@pytest.mark.parametrize("shape", ["/{u}/lead", "{u}/trail/", "{u}//double", "{u}/./dot", "{u}/../up", "{u}/.."])
def test_names_that_are_not_paths_are_refused(sm, shape):
    # AWS allows these; in Coffer a name is a kv path, so the README documents them as refused
    # (never silently mapped onto another secret's path)
    u = uid("shape")
    name = shape.format(u=u)
    e = expect_error("ValidationException", sm.create_secret, Name=name, SecretString="odd")
    assert "path" in message_of(e)
    # nothing was created under any spelling
    for other in (f"{u}/lead", f"{u}/trail", f"{u}/double", f"{u}/dot", "up", u):
        expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=other)


def test_name_length_limit(sm):
    base = new_name("long")
    name512 = base + "x" * (512 - len(base))
    assert len(name512) == 512
    arn = sm.create_secret(Name=name512, SecretString="x")["ARN"]
    assert_arn(arn, name512)
    assert sm.get_secret_value(SecretId=name512)["SecretString"] == "x"
    name513 = base + "y" * (513 - len(base))
    expect_error(("ValidationException", "InvalidParameterException"), sm.create_secret, Name=name513,
                 SecretString="x")


def test_secret_string_size_limit(sm):
    name = new_name("size")
    big = "a" * 65536
    v1 = sm.create_secret(Name=name, SecretString=big)["VersionId"]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == big
    expect_error(("InvalidParameterException", "ValidationException"), sm.put_secret_value, SecretId=name,
                 SecretString=big + "a")
    name2 = new_name("size2")
    expect_error(("InvalidParameterException", "ValidationException"), sm.create_secret, Name=name2,
                 SecretString=big + "b")
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=name2)
    # the failed put left the versions unchanged
    assert versions_to_stages(sm, name) == {v1: ["AWSCURRENT"]}
    assert len(sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]) == 1


def test_secret_string_limit_counts_bytes(sm):
    # the quota is 65,536 bytes of secret value: 32,769 two-byte characters are over it
    name = new_name("bytes")
    ok = "é" * 32768
    sm.create_secret(Name=name, SecretString=ok)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == ok
    expect_error(("InvalidParameterException", "ValidationException"), sm.put_secret_value, SecretId=name,
                 SecretString=ok + "é")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == ok


def test_secret_binary_size_limit(sm):
    name = new_name("bsize")
    blob = b"\x07" * 65536
    sm.create_secret(Name=name, SecretBinary=blob)
    assert sm.get_secret_value(SecretId=name)["SecretBinary"] == blob
    expect_error(("InvalidParameterException", "ValidationException"), sm.put_secret_value, SecretId=name,
                 SecretBinary=blob + b"\x07")
    assert len(sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]) == 1


# --- DeleteSecret / RestoreSecret ---------------------------------------------------------------------

@pytest.mark.parametrize("days", [7, 30])
def test_delete_with_recovery_window_and_restore(sm, days):
    name = new_name("del")
    arn = sm.create_secret(Name=name, SecretString="keep")["ARN"]
    t0 = datetime.datetime.now(datetime.timezone.utc)
    d = sm.delete_secret(SecretId=name, RecoveryWindowInDays=days)
    assert d["ARN"] == arn and d["Name"] == name
    expected = t0 + datetime.timedelta(days=days)
    assert abs((d["DeletionDate"] - expected).total_seconds()) < 300, (d["DeletionDate"], expected)

    desc = sm.describe_secret(SecretId=name)
    assert isinstance(desc["DeletedDate"], datetime.datetime)
    # reads and writes are refused while it is scheduled for deletion
    e = expect_error("InvalidRequestException", sm.get_secret_value, SecretId=name)
    assert "marked for deletion" in message_of(e)
    expect_error("InvalidRequestException", sm.put_secret_value, SecretId=name, SecretString="x")
    expect_error("InvalidRequestException", sm.update_secret, SecretId=name, SecretString="x")
    e = expect_error("InvalidRequestException", sm.create_secret, Name=name, SecretString="again")
    assert "scheduled for deletion" in message_of(e)
    # scheduling it again is refused and keeps the first deletion date
    expect_error("InvalidRequestException", sm.delete_secret, SecretId=name, RecoveryWindowInDays=days)
    assert sm.describe_secret(SecretId=name)["DeletedDate"] == desc["DeletedDate"]

    r = sm.restore_secret(SecretId=name)
    assert r["ARN"] == arn and r["Name"] == name
    assert "DeletedDate" not in sm.describe_secret(SecretId=name)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "keep"


def test_delete_default_window_is_30_days(sm):
    name = new_name("del30")
    sm.create_secret(Name=name, SecretString="x")
    t0 = datetime.datetime.now(datetime.timezone.utc)
    d = sm.delete_secret(SecretId=name)
    assert abs((d["DeletionDate"] - (t0 + datetime.timedelta(days=30))).total_seconds()) < 300
    sm.restore_secret(SecretId=name)


@pytest.mark.parametrize("days", [0, 6, 31, 365])
def test_delete_recovery_window_out_of_range(sm, days):
    name = new_name("delbad")
    sm.create_secret(Name=name, SecretString="x")
    expect_error("InvalidParameterException", sm.delete_secret, SecretId=name, RecoveryWindowInDays=days)
    assert "DeletedDate" not in sm.describe_secret(SecretId=name)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "x"


def test_delete_force_and_window_together_rejected(sm):
    name = new_name("delboth")
    sm.create_secret(Name=name, SecretString="x")
    expect_error("InvalidParameterException", sm.delete_secret, SecretId=name, RecoveryWindowInDays=7,
                 ForceDeleteWithoutRecovery=True)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "x"


def test_force_delete(sm):
    name = new_name("force")
    sm.create_secret(Name=name, SecretString="x")
    t0 = datetime.datetime.now(datetime.timezone.utc)
    d = sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    assert abs((d["DeletionDate"] - t0).total_seconds()) < 300
    e = expect_error("ResourceNotFoundException", sm.get_secret_value, SecretId=name)
    assert message_of(e) == NOT_FOUND_MSG
    expect_error("ResourceNotFoundException", sm.restore_secret, SecretId=name)
    # the name is free at once
    sm.create_secret(Name=name, SecretString="y")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "y"


def test_force_delete_of_secret_scheduled_for_deletion(sm):
    name = new_name("sched")
    sm.create_secret(Name=name, SecretString="x")
    sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=name)
    sm.create_secret(Name=name, SecretString="new")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "new"


# --- tags ------------------------------------------------------------------------------------------------

def test_tag_and_untag(sm):
    name = new_name("tag")
    sm.create_secret(Name=name, SecretString="x", Tags=[{"Key": "a", "Value": "1"}])
    sm.tag_resource(SecretId=name, Tags=[{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "one"}])
    tags = {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=name)["Tags"]}
    assert tags == {"a": "one", "b": "2"}
    sm.untag_resource(SecretId=name, TagKeys=["a", "not-there"])
    tags = {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=name).get("Tags", [])}
    assert tags == {"b": "2"}
    # tag keys are case-sensitive
    sm.tag_resource(SecretId=name, Tags=[{"Key": "B", "Value": "upper"}])
    tags = {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=name)["Tags"]}
    assert tags == {"b": "2", "B": "upper"}
    sm.untag_resource(SecretId=name, TagKeys=["b", "B"])
    assert not sm.describe_secret(SecretId=name).get("Tags")
    # tagging does not create versions
    assert len(sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]) == 1


def test_tag_by_arn(sm):
    name = new_name("tagarn")
    arn = sm.create_secret(Name=name, SecretString="x")["ARN"]
    sm.tag_resource(SecretId=arn, Tags=[{"Key": "k", "Value": "v"}])
    assert sm.describe_secret(SecretId=name)["Tags"] == [{"Key": "k", "Value": "v"}]
