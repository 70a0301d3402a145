"""Errors as AWS Secrets Manager answers them: codes, well-known messages, the JSON error envelope,
SigV4 failures, input that botocore would refuse (sent raw), and that bad input changes nothing."""

from __future__ import annotations

import datetime
import json
import uuid

import pytest

from aws_helpers import (NOT_FOUND_MSG, clock_at, code_of, error_of, expect_error, message_of, new_name,
                         raw_call, raw_error, raw_json, sm_client)
from conftest import AWS_ACCESS_KEY_ID

MISSING_OPS = [
    ("get_secret_value", {}),
    ("describe_secret", {}),
    ("put_secret_value", {"SecretString": "x"}),
    ("update_secret", {"Description": "x"}),
    ("update_secret", {"SecretString": "x"}),
    ("delete_secret", {"RecoveryWindowInDays": 7}),
    ("restore_secret", {}),
    ("list_secret_version_ids", {}),
    ("tag_resource", {"Tags": [{"Key": "k", "Value": "v"}]}),
    ("untag_resource", {"TagKeys": ["k"]}),
    ("get_resource_policy", {}),
    ("put_resource_policy", {"ResourcePolicy": json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/r"},
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]})}),
    ("delete_resource_policy", {}),
    ("update_secret_version_stage", {"VersionStage": "x", "MoveToVersionId": str(uuid.uuid4())}),
]


@pytest.mark.parametrize("op,kw", MISSING_OPS, ids=[f"{o}-{i}" for i, (o, _) in enumerate(MISSING_OPS)])
def test_missing_secret(sm, op, kw):
    name = new_name("missing")
    e = expect_error("ResourceNotFoundException", getattr(sm, op), SecretId=name, **kw)
    assert message_of(e) == NOT_FOUND_MSG
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # nothing was created along the way
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=name)


def test_force_delete_missing_secret(sm):
    # AWS answers a forced delete of a name that does not exist as if it had deleted it
    # (the recovery-window form answers ResourceNotFoundException, see test_missing_secret)
    name = new_name("missing")
    r = sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    assert r["Name"] == name
    assert "DeletionDate" in r
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=name)


def test_error_envelope_raw(dev_server):
    r = raw_call(dev_server, "GetSecretValue", {"SecretId": new_name("missing")})
    assert r.status_code == 400
    typ, msg = raw_error(r)
    assert typ == "ResourceNotFoundException"
    assert msg == NOT_FOUND_MSG
    assert r.headers["Content-Type"].startswith("application/x-amz-json-1.1")


def test_success_envelope_raw(dev_server):
    r = raw_call(dev_server, "GetRandomPassword", {"PasswordLength": 20})
    assert r.status_code == 200
    assert r.headers.get("x-amzn-RequestId")
    body = raw_json(r)
    assert len(body["RandomPassword"]) == 20


def test_unknown_access_key(dev_server):
    c = sm_client(dev_server, key_id="AKIAUNKNOWNKEY000001", secret="x" * 40)
    e = expect_error("UnrecognizedClientException", c.get_secret_value, SecretId="anything")
    assert message_of(e) == "The security token included in the request is invalid."
    r = raw_call(dev_server, "ListSecrets", {}, key_id="AKIAUNKNOWNKEY000001", secret="x" * 40)
    assert r.status_code in (400, 403)
    assert raw_error(r)[0] == "UnrecognizedClientException"


def test_wrong_secret_key(dev_server, sm):
    name = new_name("sig")
    c = sm_client(dev_server, key_id=AWS_ACCESS_KEY_ID, secret="y" * 40)
    e = expect_error("InvalidSignatureException", c.create_secret, Name=name, SecretString="x")
    assert "signature we calculated does not match" in message_of(e)
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=name)
    r = raw_call(dev_server, "ListSecrets", {}, secret="y" * 40)
    assert r.status_code in (400, 403)
    assert raw_error(r)[0] == "InvalidSignatureException"


def test_tampered_body_after_signing(dev_server, sm):
    # the payload hash is part of the signature: change the body after signing
    name = new_name("tamper")
    sm.create_secret(Name=name, SecretString="orig")
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from conftest import AWS_SECRET_ACCESS_KEY, http_session
    req = AWSRequest(method="POST", url=dev_server.url + "/",
                     data=json.dumps({"SecretId": name, "SecretString": "signed"}).encode(),
                     headers={"Content-Type": "application/x-amz-json-1.1",
                              "X-Amz-Target": "secretsmanager.PutSecretValue"})
    SigV4Auth(Credentials(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), "secretsmanager", "us-east-1").add_auth(req)
    p = req.prepare()
    s = http_session()
    r = s.post(p.url, data=json.dumps({"SecretId": name, "SecretString": "evil!!"}).encode(),
               headers=dict(p.headers), timeout=30)
    assert r.status_code in (400, 403)
    assert raw_error(r)[0] == "InvalidSignatureException"
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "orig"


@pytest.mark.parametrize("minutes", [-20, -60 * 24])
def test_signature_expired(dev_server, sm, minutes):
    name = new_name("skew")
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)
    c = sm_client(dev_server)
    with clock_at(when):
        e = expect_error("InvalidSignatureException", c.create_secret, Name=name, SecretString="x")
    assert "Signature expired" in message_of(e)
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=name)
    r = raw_call(dev_server, "ListSecrets", {}, when=when)
    typ, msg = raw_error(r)
    assert typ == "InvalidSignatureException" and "Signature expired" in msg


def test_signature_from_the_future(dev_server, sm):
    name = new_name("skew")
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=20)
    c = sm_client(dev_server)
    with clock_at(when):
        e = expect_error("InvalidSignatureException", c.create_secret, Name=name, SecretString="x")
    assert "Signature not yet current" in message_of(e)
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=name)


def test_small_clock_skew_accepted(dev_server):
    c = sm_client(dev_server)
    for minutes in (-3, 3):
        with clock_at(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)):
            assert len(c.get_random_password(PasswordLength=8)["RandomPassword"]) == 8


def test_signature_scoped_to_another_service(dev_server, sm):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from conftest import AWS_SECRET_ACCESS_KEY, http_session
    name = new_name("scope")
    req = AWSRequest(method="POST", url=dev_server.url + "/",
                     data=json.dumps({"Name": name, "SecretString": "x",
                                      "ClientRequestToken": str(uuid.uuid4())}).encode(),
                     headers={"Content-Type": "application/x-amz-json-1.1",
                              "X-Amz-Target": "secretsmanager.CreateSecret"})
    SigV4Auth(Credentials(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), "s3", "us-east-1").add_auth(req)
    p = req.prepare()
    s = http_session()
    r = s.post(p.url, data=p.body, headers=dict(p.headers), timeout=30)
    assert r.status_code in (400, 403)
    assert raw_error(r)[0] in ("InvalidSignatureException", "IncompleteSignatureException")
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=name)


def test_unsigned_request_refused(dev_server, sm):
    name = new_name("unsigned")
    r = raw_call(dev_server, "CreateSecret", {"Name": name, "SecretString": "x",
                                              "ClientRequestToken": str(uuid.uuid4())}, sign=False)
    assert r.status_code in (400, 403)
    typ, _ = raw_error(r)
    assert typ
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=name)


def test_unknown_operation(dev_server):
    r = raw_call(dev_server, "NoSuchOperation", {})
    assert r.status_code == 400
    assert raw_error(r)[0] == "UnknownOperationException"


def test_malformed_json_body(dev_server):
    r = raw_call(dev_server, "GetSecretValue", b"{not json")
    assert r.status_code == 400
    assert raw_error(r)[0] in ("SerializationException", "ValidationException")


def test_missing_required_parameter_raw(dev_server):
    r = raw_call(dev_server, "GetSecretValue", {})
    assert r.status_code == 400
    assert raw_error(r)[0] in ("ValidationException", "InvalidParameterException")


@pytest.mark.parametrize("op,body", [
    ("GetRandomPassword", {"PasswordLength": 0}),
    ("GetRandomPassword", {"PasswordLength": 4097}),
    ("ListSecrets", {"MaxResults": 0}),
    ("ListSecrets", {"MaxResults": 101}),
    ("GetSecretValue", {"SecretId": ""}),
    ("CreateSecret", {"Name": "", "SecretString": "x"}),
    ("BatchGetSecretValue", {"SecretIdList": []}),
    ("BatchGetSecretValue", {"SecretIdList": [f"s{i}" for i in range(21)]}),
    ("BatchGetSecretValue", {"Filters": [{"Key": "name", "Values": ["x"]}], "MaxResults": 21}),
    ("ListSecrets", {"Filters": [{"Key": "name", "Values": []}]}),
    ("ListSecrets", {"Filters": [{"Key": "name", "Values": [f"v{i}" for i in range(11)]}]}),
    ("ListSecrets", {"Filters": [{"Key": "name", "Values": ["bad#char"]}]}),
    ("ListSecrets", {"SortOrder": "sideways"}),
    ("CreateSecret", {"Name": "empty-value-x", "SecretString": ""}),
], ids=lambda v: v if isinstance(v, str) else None)
def test_out_of_model_input_raw(dev_server, op, body):
    r = raw_call(dev_server, op, body)
    assert r.status_code == 400, r.text
    assert raw_error(r)[0] in ("ValidationException", "InvalidParameterException")


def test_short_client_request_token_raw(dev_server, sm):
    name = new_name("tok")
    sm.create_secret(Name=name, SecretString="x")
    r = raw_call(dev_server, "PutSecretValue", {"SecretId": name, "SecretString": "y",
                                                "ClientRequestToken": "a" * 31})
    assert r.status_code == 400
    assert raw_error(r)[0] in ("ValidationException", "InvalidParameterException")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "x"
    assert len(sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]) == 1


def test_failed_put_changes_nothing(sm):
    name = new_name("nochange")
    v1 = sm.create_secret(Name=name, SecretString="a")["VersionId"]
    v2 = sm.put_secret_value(SecretId=name, SecretString="b")["VersionId"]
    before = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    for kw in ({"SecretString": "c", "SecretBinary": b"c"},
               {"SecretString": "x" * 65537},
               {"SecretString": "c", "ClientRequestToken": v1}):  # token of another version, other data
        err = error_of(sm.put_secret_value, SecretId=name, **kw)
        assert code_of(err) in ("InvalidParameterException", "ValidationException", "ResourceExistsException")
    assert sm.describe_secret(SecretId=name)["VersionIdsToStages"] == before
    assert len(sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]) == 2
    g = sm.get_secret_value(SecretId=name)
    assert (g["SecretString"], g["VersionId"]) == ("b", v2)


def test_request_id_differs_per_request(dev_server):
    a = raw_call(dev_server, "GetSecretValue", {"SecretId": new_name("m")})
    b = raw_call(dev_server, "GetSecretValue", {"SecretId": new_name("m")})
    assert a.headers["x-amzn-RequestId"] != b.headers["x-amzn-RequestId"]


def test_too_many_tags_refused_and_nothing_changes(sm):
    name = new_name("tags")
    sm.create_secret(Name=name, SecretString="x", Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(45)])
    # 45 + 6 new would be 51: refused as a whole, not half applied
    expect_error("InvalidParameterException", sm.tag_resource, SecretId=name,
                 Tags=[{"Key": f"n{i}", "Value": "v"} for i in range(6)])
    tags = sm.describe_secret(SecretId=name)["Tags"]
    assert len(tags) == 45 and not any(t["Key"].startswith("n") for t in tags)
    # overwriting existing keys does not count twice
    sm.tag_resource(SecretId=name, Tags=[{"Key": f"k{i}", "Value": "w"} for i in range(10)]
                    + [{"Key": f"n{i}", "Value": "v"} for i in range(5)])
    assert len(sm.describe_secret(SecretId=name)["Tags"]) == 50
