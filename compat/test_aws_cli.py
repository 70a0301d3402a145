"""The real AWS CLI (awscli v1, `python -m awscli`) running every Secrets Manager operation Coffer
serves, against the dev server. Each CLI call is a process start (~0.5 s), so every operation runs
through the CLI once and the effects are checked with boto3."""

from __future__ import annotations

import base64
import json

import pytest

from aws_helpers import NOT_FOUND_MSG, assert_arn, expect_error, new_name, run_cli

POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/r"},
    "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})


@pytest.fixture
def cli(dev_server, tmp_path):
    home = str(tmp_path)

    def run(*args, ok=True, region="us-east-1", **kw):
        r = run_cli(dev_server, *args, home=home, region=region, **kw)
        if ok:
            assert r.rc == 0, r
        else:
            assert r.rc != 0, r
        return r

    return run


def test_cli_values_and_versions(cli, sm, tmp_path):
    name = new_name("cli")
    r = cli("create-secret", "--name", name, "--secret-string", '{"user":"u","pw":"p"}',
            "--description", "from the cli", "--tags", "Key=env,Value=dev").json()
    arn, v1 = r["ARN"], r["VersionId"]
    assert r["Name"] == name
    assert_arn(arn, name)
    d = sm.describe_secret(SecretId=name)
    assert d["Description"] == "from the cli" and d["Tags"] == [{"Key": "env", "Value": "dev"}]

    g = cli("get-secret-value", "--secret-id", name).json()
    assert (g["SecretString"], g["VersionId"], g["VersionStages"]) == ('{"user":"u","pw":"p"}', v1, ["AWSCURRENT"])

    p = cli("put-secret-value", "--secret-id", arn, "--secret-string", "second").json()
    v2 = p["VersionId"]
    assert p["VersionStages"] == ["AWSCURRENT"]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "second"

    u = cli("update-secret", "--secret-id", name, "--description", "changed").json()
    assert u["ARN"] == arn and "VersionId" not in u

    d = cli("describe-secret", "--secret-id", name).json()
    assert d["Description"] == "changed"
    assert d["VersionIdsToStages"] == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"]}

    vs = cli("list-secret-version-ids", "--secret-id", name, "--include-deprecated").json()
    assert {v["VersionId"] for v in vs["Versions"]} == {v1, v2}

    cli("update-secret-version-stage", "--secret-id", name, "--version-stage", "AWSCURRENT",
        "--move-to-version-id", v1, "--remove-from-version-id", v2)
    assert sm.get_secret_value(SecretId=name)["VersionId"] == v1

    ls = cli("list-secrets", "--filters", f"Key=name,Values={name}").json()
    assert [s["Name"] for s in ls["SecretList"]] == [name]

    bg = cli("batch-get-secret-value", "--secret-id-list", name, name + "-missing").json()
    assert [v["SecretString"] for v in bg["SecretValues"]] == ['{"user":"u","pw":"p"}']
    assert [e["ErrorCode"] for e in bg["Errors"]] == ["ResourceNotFoundException"]

    # binary through a file
    bname = new_name("clibin")
    blob = bytes(range(256))
    f = tmp_path / "blob.bin"
    f.write_bytes(blob)
    cli("create-secret", "--name", bname, "--secret-binary", f"fileb://{f}")
    assert sm.get_secret_value(SecretId=bname)["SecretBinary"] == blob
    g = cli("get-secret-value", "--secret-id", bname).json()
    assert base64.b64decode(g["SecretBinary"]) == blob


def test_cli_tags_policy_delete_restore(cli, sm):
    name = new_name("cli2")
    arn = sm.create_secret(Name=name, SecretString="x", Tags=[{"Key": "env", "Value": "dev"}])["ARN"]
    cli("tag-resource", "--secret-id", name, "--tags", "Key=team,Value=core")
    cli("untag-resource", "--secret-id", name, "--tag-keys", "env")
    assert sm.describe_secret(SecretId=name)["Tags"] == [{"Key": "team", "Value": "core"}]

    v = cli("validate-resource-policy", "--resource-policy", POLICY).json()
    assert v["PolicyValidationPassed"] is True
    cli("put-resource-policy", "--secret-id", name, "--resource-policy", POLICY)
    assert json.loads(cli("get-resource-policy", "--secret-id", name).json()["ResourcePolicy"]) == json.loads(POLICY)
    err = cli("put-resource-policy", "--secret-id", name, "--resource-policy", "{nope", ok=False)
    assert "MalformedPolicyDocumentException" in err.stderr
    cli("delete-resource-policy", "--secret-id", name)
    assert "ResourcePolicy" not in sm.get_resource_policy(SecretId=name)

    dl = cli("delete-secret", "--secret-id", name, "--recovery-window-in-days", "7").json()
    assert dl["ARN"] == arn and "DeletionDate" in dl
    err = cli("get-secret-value", "--secret-id", name, ok=False)
    assert "InvalidRequestException" in err.stderr
    cli("restore-secret", "--secret-id", name)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "x"
    cli("delete-secret", "--secret-id", name, "--force-delete-without-recovery")
    e = expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=name)
    assert e.response["Error"]["Message"] == NOT_FOUND_MSG


def test_cli_replication_password_rotation(cli, sm):
    name = new_name("cli3")
    sm.create_secret(Name=name, SecretString="x")
    r = cli("replicate-secret-to-regions", "--secret-id", name, "--add-replica-regions", "Region=eu-west-1").json()
    assert [s["Region"] for s in r["ReplicationStatus"]] == ["eu-west-1"]
    assert [s["Region"] for s in sm.describe_secret(SecretId=name)["ReplicationStatus"]] == ["eu-west-1"]
    cli("remove-regions-from-replication", "--secret-id", name, "--remove-replica-regions", "eu-west-1")
    assert not sm.describe_secret(SecretId=name).get("ReplicationStatus")
    sm.replicate_secret_to_regions(SecretId=name, AddReplicaRegions=[{"Region": "eu-west-1"}])
    s = cli("stop-replication-to-replica", "--secret-id", name, region="eu-west-1").json()
    assert name in s["ARN"]

    pw = cli("get-random-password", "--password-length", "50", "--exclude-punctuation",
             "--exclude-characters", "abc").json()["RandomPassword"]
    assert len(pw) == 50 and not set(pw) & set("abc!@#$%^&*()")

    before = sm.describe_secret(SecretId=name).get("VersionIdsToStages")
    err = cli("rotate-secret", "--secret-id", name, ok=False)  # no rotator named or stored
    assert "An error occurred" in err.stderr
    assert sm.describe_secret(SecretId=name).get("VersionIdsToStages") == before
    cli("rotate-secret", "--secret-id", name, "--rotation-lambda-arn", "coffer:password",
        "--rotation-rules", "AutomaticallyAfterDays=30", "--no-rotate-immediately")
    assert sm.describe_secret(SecretId=name)["RotationEnabled"]
    cli("cancel-rotate-secret", "--secret-id", name)
    assert not sm.describe_secret(SecretId=name)["RotationEnabled"]
    assert sm.describe_secret(SecretId=name).get("VersionIdsToStages") == before
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "x"


def test_cli_errors(cli, dev_server):
    err = cli("get-secret-value", "--secret-id", new_name("nope"), ok=False)
    assert "ResourceNotFoundException" in err.stderr and NOT_FOUND_MSG in err.stderr
    bad = run_cli(dev_server, "list-secrets", key_id="AKIAUNKNOWNKEY000001", secret="z" * 40)
    assert bad.rc != 0 and "UnrecognizedClientException" in bad.stderr
