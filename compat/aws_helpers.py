"""Helpers for the AWS Secrets Manager compatibility tests: boto3 clients, raw SigV4-signed requests
(to send what botocore's client-side validation would refuse), error assertions and the AWS CLI.

Everything here encodes what AWS Secrets Manager does; the tests never rely on Coffer's quirks.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager

import boto3
import botocore.auth
import botocore.config
import botocore.session
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import AWS_ACCESS_KEY_ID, AWS_ACCOUNT_ID, AWS_SECRET_ACCESS_KEY, http_session, uid

REGION = "us-east-1"
NOT_FOUND_MSG = "Secrets Manager can't find the specified secret."
# AWS's ARN: arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 random characters>
ARN_SUFFIX_LEN = 6


# Loading botocore's service model costs ~0.3 s per new session; every session here shares one
# loader (the environment and config files were already cleared by conftest, so nothing leaks).
_LOADER = botocore.session.get_session().get_component("data_loader")


def sm_client(dev_server, key_id: str | None = None, secret: str | None = None, region: str = REGION):
    """A boto3 Secrets Manager client pointed at the dev server; one attempt only (no retries)."""
    session = boto3.session.Session()
    session._session.register_component("data_loader", _LOADER)
    return session.client(
        "secretsmanager",
        endpoint_url=dev_server.url,
        region_name=region,
        aws_access_key_id=key_id or AWS_ACCESS_KEY_ID,
        aws_secret_access_key=secret or AWS_SECRET_ACCESS_KEY,
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"},
                                      connect_timeout=10, read_timeout=30),
    )


def new_name(prefix: str = "aws") -> str:
    return uid(prefix)


def arn_prefix(region: str = REGION) -> str:
    return f"arn:aws:secretsmanager:{region}:{AWS_ACCOUNT_ID}:secret:"


def assert_arn(arn: str, name: str, region: str = REGION) -> str:
    """Check an ARN has AWS's shape for `name`; answer its 6-character suffix."""
    prefix = arn_prefix(region) + name + "-"
    assert arn.startswith(prefix), (arn, prefix)
    suffix = arn[len(prefix):]
    assert len(suffix) == ARN_SUFFIX_LEN and suffix.isalnum(), arn
    return suffix


def error_of(fn, *args, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as e:
        fn(*args, **kwargs)
    return e.value


def expect_error(codes, fn, *args, **kwargs) -> ClientError:
    """Call fn, which must fail with a ClientError whose code is `codes` (a str or a tuple of them).
    Answer the error (``.response['Error']['Code'/'Message']``)."""
    if isinstance(codes, str):
        codes = (codes,)
    err = error_of(fn, *args, **kwargs)
    code = err.response["Error"]["Code"]
    assert code in codes, f"expected {codes}, got {code}: {err.response['Error'].get('Message')!r}"
    return err


def code_of(err: ClientError) -> str:
    return err.response["Error"]["Code"]


def message_of(err: ClientError) -> str:
    return err.response["Error"].get("Message", "")


# --- raw signed requests ----------------------------------------------------------------------------

def raw_call(dev_server, operation: str, body, key_id: str | None = None, secret: str | None = None,
             region: str = REGION, sign: bool = True, headers: dict | None = None,
             when: datetime.datetime | None = None, target: str | None = None):
    """POST one Secrets Manager JSON request, SigV4-signed like boto3 would (unless sign=False).
    `body` is a dict (sent as JSON) or bytes/str (sent as is). `when` signs with another clock.
    Answers the requests.Response."""
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    if isinstance(data, str):
        data = data.encode()
    h = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": target or f"secretsmanager.{operation}",
    }
    if headers:
        h.update(headers)
    req = AWSRequest(method="POST", url=dev_server.url + "/", data=data, headers=h)
    if sign:
        creds = Credentials(key_id or AWS_ACCESS_KEY_ID, secret or AWS_SECRET_ACCESS_KEY)
        if when is None:
            botocore.auth.SigV4Auth(creds, "secretsmanager", region).add_auth(req)
        else:
            with clock_at(when):
                botocore.auth.SigV4Auth(creds, "secretsmanager", region).add_auth(req)
    prepared = req.prepare()
    s = http_session()
    try:
        return s.post(prepared.url, data=prepared.body, headers=dict(prepared.headers), timeout=30)
    finally:
        s.close()


def raw_json(resp) -> dict:
    assert resp.headers.get("Content-Type", "").startswith("application/x-amz-json-1.1"), resp.headers
    return resp.json()


def raw_error(resp) -> tuple[str, str]:
    """The AWS JSON error of a raw response: (short __type, message). Checks the error envelope."""
    assert 400 <= resp.status_code < 600, (resp.status_code, resp.text[:300])
    assert resp.headers.get("x-amzn-RequestId"), resp.headers
    body = resp.json()
    assert "__type" in body, body
    msg = body.get("message", body.get("Message"))
    assert isinstance(msg, str), body
    # `__type` may be namespaced ("com.amazonaws...#Code"); clients use the part after '#'
    return body["__type"].rsplit("#", 1)[-1], msg


@contextmanager
def clock_at(when: datetime.datetime):
    """Make botocore sign as if the time were `when` (an aware UTC datetime)."""
    orig = botocore.auth.get_current_datetime

    def fake(remove_tzinfo=True):
        w = when.astimezone(datetime.timezone.utc)
        return w.replace(tzinfo=None) if remove_tzinfo else w

    botocore.auth.get_current_datetime = fake
    try:
        yield
    finally:
        botocore.auth.get_current_datetime = orig


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- the AWS CLI ------------------------------------------------------------------------------------

class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def json(self):
        return json.loads(self.stdout) if self.stdout.strip() else None

    def __repr__(self):
        return f"<aws cli rc={self.rc} stdout={self.stdout[:400]!r} stderr={self.stderr[:400]!r}>"


def run_cli(dev_server, *args: str, key_id: str | None = None, secret: str | None = None,
            region: str = REGION, home: str | None = None) -> CliResult:
    """`aws secretsmanager <args>` (awscli v1 run with this interpreter) against the dev server."""
    home = home or tempfile.mkdtemp(prefix="coffer-awscli-home-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "HOME": home,
        "AWS_ACCESS_KEY_ID": key_id or AWS_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": secret or AWS_SECRET_ACCESS_KEY,
        "AWS_CONFIG_FILE": os.path.join(home, "config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "credentials"),
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
    })
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    env["NO_PROXY"] = "*"
    cmd = [sys.executable, "-m", "awscli", "secretsmanager", *args,
           "--endpoint-url", dev_server.url, "--region", region, "--output", "json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    return CliResult(proc)
