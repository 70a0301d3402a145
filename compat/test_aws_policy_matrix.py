"""Which Vault ACL capability each Secrets Manager operation needs on the kv mount `secret/`.

For each operation: a key whose policy grants only the one capability on the one path is allowed,
and a key that has everything under `secret/` except that capability on that path is denied
(AccessDeniedException) with nothing changed. Setup and checks use the dev key (policy dev-aws).
"""

from __future__ import annotations

import json
import uuid

import pytest

from aws_helpers import expect_error, new_name, sm_client

ALL_CAPS = ["create", "read", "update", "patch", "delete", "list"]
POLICY_DOC = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/r"},
    "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})


def only(path: str, cap: str) -> str:
    return f'path "{path}" {{\n  capabilities = ["{cap}"]\n}}\n'


def all_but(path: str, cap: str) -> str:
    everything = ", ".join(f'"{c}"' for c in ALL_CAPS)
    caps = ", ".join(f'"{c}"' for c in ALL_CAPS if c != cap)
    return (f'path "secret/*" {{\n  capabilities = [{everything}]\n}}\n'
            f'path "{path}" {{\n  capabilities = [{caps}]\n}}\n')


class Case:
    def __init__(self, op, path_kind, cap, call, setup=None, check_allowed=None, check_denied=None,
                 exists=True, with_value=True):
        self.op = op
        self.path_kind = path_kind  # data | metadata | undelete
        self.cap = cap
        self.call = call            # (client, name) -> response
        self.setup = setup          # (dev_client, name) -> None, after creation
        self.check_allowed = check_allowed  # (dev_client, name, response) -> None
        self.check_denied = check_denied    # (dev_client, name) -> None
        self.exists = exists
        self.with_value = with_value


def _stages(sm, n):
    return sm.describe_secret(SecretId=n).get("VersionIdsToStages", {})


def _value(sm, n):
    return sm.get_secret_value(SecretId=n)["SecretString"]


def _tags(sm, n):
    return {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=n).get("Tags", [])}


def _replicate(sm, n):
    sm.replicate_secret_to_regions(SecretId=n, AddReplicaRegions=[{"Region": "eu-west-1"}])


def _regions(sm, n):
    return sorted(s["Region"] for s in sm.describe_secret(SecretId=n).get("ReplicationStatus") or [])


CASES = [
    Case("CreateSecret(value)", "data", "create",
         lambda c, n: c.create_secret(Name=n, SecretString="v"), exists=False,
         check_allowed=lambda sm, n, r: _value(sm, n) == "v" or pytest.fail("not created"),
         check_denied=lambda sm, n: expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=n)),
    Case("CreateSecret(no value)", "metadata", "create",
         lambda c, n: c.create_secret(Name=n, Description="d"), exists=False,
         check_allowed=lambda sm, n, r: sm.describe_secret(SecretId=n)["Description"] == "d"
         or pytest.fail("not created"),
         check_denied=lambda sm, n: expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=n)),
    Case("GetSecretValue", "data", "read",
         lambda c, n: c.get_secret_value(SecretId=n),
         check_allowed=lambda sm, n, r: r["SecretString"] == "v0" or pytest.fail(r)),
    Case("PutSecretValue", "data", "update",
         lambda c, n: c.put_secret_value(SecretId=n, SecretString="v1"),
         check_allowed=lambda sm, n, r: _value(sm, n) == "v1" or pytest.fail("not put"),
         check_denied=lambda sm, n: (_value(sm, n) == "v0" and len(_stages(sm, n)) == 1) or pytest.fail("changed")),
    Case("UpdateSecret(value)", "data", "update",
         lambda c, n: c.update_secret(SecretId=n, SecretString="v1"),
         check_allowed=lambda sm, n, r: _value(sm, n) == "v1" or pytest.fail("not updated"),
         check_denied=lambda sm, n: _value(sm, n) == "v0" or pytest.fail("changed")),
    Case("UpdateSecret(no value)", "metadata", "update",
         lambda c, n: c.update_secret(SecretId=n, Description="changed"),
         check_allowed=lambda sm, n, r: sm.describe_secret(SecretId=n)["Description"] == "changed"
         or pytest.fail("not updated"),
         check_denied=lambda sm, n: "Description" not in sm.describe_secret(SecretId=n) or pytest.fail("changed")),
    Case("DescribeSecret", "metadata", "read",
         lambda c, n: c.describe_secret(SecretId=n),
         check_allowed=lambda sm, n, r: r["Name"] == n or pytest.fail(r)),
    Case("ListSecretVersionIds", "metadata", "read",
         lambda c, n: c.list_secret_version_ids(SecretId=n),
         check_allowed=lambda sm, n, r: len(r["Versions"]) == 1 or pytest.fail(r)),
    Case("GetResourcePolicy", "metadata", "read",
         lambda c, n: c.get_resource_policy(SecretId=n),
         check_allowed=lambda sm, n, r: r["Name"] == n or pytest.fail(r)),
    Case("UpdateSecretVersionStage", "metadata", "update",
         lambda c, n: c.update_secret_version_stage(SecretId=n, VersionStage="blue",
                                                    MoveToVersionId=list(_stages(sm_of(c), n))[0]),
         check_allowed=lambda sm, n, r: any("blue" in v for v in _stages(sm, n).values()) or pytest.fail("no"),
         check_denied=lambda sm, n: not any("blue" in v for v in _stages(sm, n).values()) or pytest.fail("moved")),
    Case("TagResource", "metadata", "update",
         lambda c, n: c.tag_resource(SecretId=n, Tags=[{"Key": "t", "Value": "1"}]),
         check_allowed=lambda sm, n, r: _tags(sm, n).get("t") == "1" or pytest.fail("not tagged"),
         check_denied=lambda sm, n: "t" not in _tags(sm, n) or pytest.fail("tagged")),
    Case("UntagResource", "metadata", "update",
         lambda c, n: c.untag_resource(SecretId=n, TagKeys=["keep"]),
         setup=lambda sm, n: sm.tag_resource(SecretId=n, Tags=[{"Key": "keep", "Value": "x"}]),
         check_allowed=lambda sm, n, r: "keep" not in _tags(sm, n) or pytest.fail("not untagged"),
         check_denied=lambda sm, n: "keep" in _tags(sm, n) or pytest.fail("untagged")),
    Case("PutResourcePolicy", "metadata", "update",
         lambda c, n: c.put_resource_policy(SecretId=n, ResourcePolicy=POLICY_DOC),
         check_allowed=lambda sm, n, r: "ResourcePolicy" in sm.get_resource_policy(SecretId=n) or pytest.fail("no"),
         check_denied=lambda sm, n: "ResourcePolicy" not in sm.get_resource_policy(SecretId=n) or pytest.fail("put")),
    Case("DeleteResourcePolicy", "metadata", "update",
         lambda c, n: c.delete_resource_policy(SecretId=n),
         setup=lambda sm, n: sm.put_resource_policy(SecretId=n, ResourcePolicy=POLICY_DOC),
         check_allowed=lambda sm, n, r: "ResourcePolicy" not in sm.get_resource_policy(SecretId=n)
         or pytest.fail("still there"),
         check_denied=lambda sm, n: "ResourcePolicy" in sm.get_resource_policy(SecretId=n) or pytest.fail("gone")),
    Case("ReplicateSecretToRegions", "metadata", "update",
         lambda c, n: c.replicate_secret_to_regions(SecretId=n, AddReplicaRegions=[{"Region": "eu-west-1"}]),
         check_allowed=lambda sm, n, r: _regions(sm, n) == ["eu-west-1"] or pytest.fail("not replicated"),
         check_denied=lambda sm, n: _regions(sm, n) == [] or pytest.fail("replicated")),
    Case("RemoveRegionsFromReplication", "metadata", "update",
         lambda c, n: c.remove_regions_from_replication(SecretId=n, RemoveReplicaRegions=["eu-west-1"]),
         setup=_replicate,
         check_allowed=lambda sm, n, r: _regions(sm, n) == [] or pytest.fail("not removed"),
         check_denied=lambda sm, n: _regions(sm, n) == ["eu-west-1"] or pytest.fail("removed")),
    Case("StopReplicationToReplica", "metadata", "update",
         lambda c, n: c.stop_replication_to_replica(SecretId=n), setup=_replicate),
    Case("DeleteSecret(window)", "metadata", "delete",
         lambda c, n: c.delete_secret(SecretId=n, RecoveryWindowInDays=7),
         check_allowed=lambda sm, n, r: "DeletedDate" in sm.describe_secret(SecretId=n) or pytest.fail("no"),
         check_denied=lambda sm, n: "DeletedDate" not in sm.describe_secret(SecretId=n) or pytest.fail("deleted")),
    Case("DeleteSecret(force)", "metadata", "delete",
         lambda c, n: c.delete_secret(SecretId=n, ForceDeleteWithoutRecovery=True),
         check_allowed=lambda sm, n, r: expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=n),
         check_denied=lambda sm, n: _value(sm, n) == "v0" or pytest.fail("deleted")),
    Case("RestoreSecret", "undelete", "update",
         lambda c, n: c.restore_secret(SecretId=n),
         setup=lambda sm, n: sm.delete_secret(SecretId=n, RecoveryWindowInDays=7),
         check_allowed=lambda sm, n, r: "DeletedDate" not in sm.describe_secret(SecretId=n) or pytest.fail("no"),
         check_denied=lambda sm, n: "DeletedDate" in sm.describe_secret(SecretId=n) or pytest.fail("restored")),
]

_CLIENT_DEV = {}


def sm_of(c):
    """The dev-key client of the server `c` talks to (to read version ids inside a call)."""
    return _CLIENT_DEV[id(c)]


def _region_for(case):
    return "eu-west-1" if case.op == "StopReplicationToReplica" else "us-east-1"


@pytest.mark.parametrize("allowed", [True, False], ids=["allowed", "denied"])
@pytest.mark.parametrize("case", CASES, ids=[c.op for c in CASES])
def test_capability(dev_server, sm, aws_key_for_policy, case, allowed):
    name = new_name("pm")
    if case.exists:
        sm.create_secret(Name=name, SecretString="v0")
        if case.setup:
            case.setup(sm, name)
    path = f"secret/{case.path_kind}/{name}"
    policy = only(path, case.cap) if allowed else all_but(path, case.cap)
    key_id, secret = aws_key_for_policy(policy)
    c = sm_client(dev_server, key_id, secret, region=_region_for(case))
    _CLIENT_DEV[id(c)] = sm
    try:
        if allowed:
            r = case.call(c, name)
            if case.check_allowed:
                case.check_allowed(sm, name, r)
        else:
            expect_error("AccessDeniedException", case.call, c, name)
            if case.check_denied:
                case.check_denied(sm, name)
    finally:
        _CLIENT_DEV.pop(id(c), None)


def test_batch_get_per_secret_capability(dev_server, sm, aws_key_for_policy):
    a = sm.create_secret(Name=new_name("pmb"), SecretString="va")["Name"]
    b = sm.create_secret(Name=new_name("pmb"), SecretString="vb")["Name"]
    key_id, secret = aws_key_for_policy(only(f"secret/data/{a}", "read"))
    c = sm_client(dev_server, key_id, secret)
    r = c.batch_get_secret_value(SecretIdList=[a, b])
    assert [(v["Name"], v["SecretString"]) for v in r["SecretValues"]] == [(a, "va")]
    assert [(e["SecretId"], e["ErrorCode"]) for e in r["Errors"]] == [(b, "AccessDeniedException")]


def test_list_secrets_needs_list_and_filters_by_read(dev_server, sm, aws_key_for_policy):
    base = new_name("pml")
    a = sm.create_secret(Name=f"{base}/a", SecretString="x")["Name"]
    sm.create_secret(Name=f"{base}/b", SecretString="x")
    key_id, secret = aws_key_for_policy(only("secret/metadata/", "list") + only(f"secret/metadata/{a}", "read"))
    c = sm_client(dev_server, key_id, secret)
    got = [s["Name"] for s in c.list_secrets(Filters=[{"Key": "name", "Values": [base]}])["SecretList"]]
    assert got == [a]
    # without list on secret/metadata/: denied, even with read on the secrets
    key_id, secret = aws_key_for_policy(f'path "secret/metadata/{base}/*" {{ capabilities = ["read"] }}\n')
    c = sm_client(dev_server, key_id, secret)
    expect_error("AccessDeniedException", c.list_secrets, Filters=[{"Key": "name", "Values": [base]}])
    # a key with everything under secret/ sees both
    got = sorted(s["Name"] for s in sm.list_secrets(Filters=[{"Key": "name", "Values": [base]}])["SecretList"])
    assert got == [f"{base}/a", f"{base}/b"]


def test_keyless_operations_need_no_capability(dev_server, aws_key_for_policy):
    key_id, secret = aws_key_for_policy(only("secret/data/nothing-here", "read"))
    c = sm_client(dev_server, key_id, secret)
    assert len(c.get_random_password(PasswordLength=12)["RandomPassword"]) == 12
    assert c.validate_resource_policy(ResourcePolicy=POLICY_DOC)["PolicyValidationPassed"] is True


def test_deny_on_data_prefix_keeps_metadata_readable(dev_server, sm, aws_key_for_policy):
    # the example: everything on secret/*, but deny on secret/data/prod/*
    name = f"prod/{uuid.uuid4().hex[:12]}"
    sm.create_secret(Name=name, SecretString="prod-value", Description="prod db")
    key_id, secret = aws_key_for_policy(
        'path "secret/*" {\n  capabilities = ["create", "read", "update", "patch", "delete", "list"]\n}\n'
        'path "secret/data/prod/*" {\n  capabilities = ["deny"]\n}\n')
    c = sm_client(dev_server, key_id, secret)
    e = expect_error("AccessDeniedException", c.get_secret_value, SecretId=name)
    assert "prod-value" not in str(e.response)
    d = c.describe_secret(SecretId=name)
    assert d["Name"] == name and d["Description"] == "prod db"
    expect_error("AccessDeniedException", c.put_secret_value, SecretId=name, SecretString="other")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "prod-value"
    r = c.batch_get_secret_value(SecretIdList=[name])
    assert not r["SecretValues"]
    assert [(x["SecretId"], x["ErrorCode"]) for x in r["Errors"]] == [(name, "AccessDeniedException")]


def test_denied_for_missing_secret_is_still_denied(dev_server, sm, aws_key_for_policy):
    # a caller without access learns nothing about whether a secret exists
    key_id, secret = aws_key_for_policy(only("secret/data/elsewhere", "read"))
    c = sm_client(dev_server, key_id, secret)
    expect_error("AccessDeniedException", c.get_secret_value, SecretId=new_name("pmmissing"))
    existing = sm.create_secret(Name=new_name("pmexists"), SecretString="x")["Name"]
    expect_error("AccessDeniedException", c.get_secret_value, SecretId=existing)


@pytest.mark.parametrize("alias", ["x/../prod/{id}", "./prod/{id}", "prod/./{id}", "prod//{id}", "/prod/{id}",
                                   "prod/{id}/", "prod/{id}/.", "prod/x/../{id}"])
def test_path_aliases_do_not_bypass_a_deny(dev_server, sm, aws_key_for_policy, alias):
    # AWS names may contain '/' and '.', so these are other (legal) AWS names; they must never
    # reach the value of prod/<id> past a deny on secret/data/prod/*
    ident = uuid.uuid4().hex[:12]
    name = f"prod/{ident}"
    sm.create_secret(Name=name, SecretString="prod-only")
    key_id, secret = aws_key_for_policy(
        'path "secret/*" {\n  capabilities = ["create", "read", "update", "patch", "delete", "list"]\n}\n'
        'path "secret/data/prod/*" {\n  capabilities = ["deny"]\n}\n')
    c = sm_client(dev_server, key_id, secret)
    other = alias.format(id=ident)
    try:
        r = c.get_secret_value(SecretId=other)
    except Exception as e:  # not found, invalid or denied are all fine
        assert "prod-only" not in str(getattr(e, "response", e))
    else:
        assert r["SecretString"] != "prod-only", (other, r["Name"])
    # writing through the alias does not change prod/<id> either
    try:
        c.put_secret_value(SecretId=other, SecretString="overwritten")
    except Exception:
        pass
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "prod-only"
