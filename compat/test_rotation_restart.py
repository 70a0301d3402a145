"""Rotation across restarts: schedules and runs in progress are stored with the secret (file
storage here), so a restarted (and unsealed) server keeps firing schedules and resumes an
interrupted run with the same ClientRequestToken (the new version's id), as AWS retries a rotation
with the same token until it completes."""

from __future__ import annotations

import datetime
import json
import uuid

import pytest

from aws_helpers import code_of, new_name, sm_client
from conftest import ConfigServer, make_client
from rotation_helpers import init_config_server, stages, unseal, wait_rotation_done, wait_until

STANZA = 'rotation {\n  hour = "1s"\n  allowed_hook_hosts = ["127.0.0.1"]\n}\n'


@pytest.fixture
def file_server(tmp_path):
    srv = ConfigServer(tmp_path, extra_config=STANZA)
    srv.start()
    try:
        init_config_server(srv)
        yield srv
    finally:
        srv.stop()


def crash(srv: ConfigServer) -> None:
    """SIGKILL the server (no shutdown of any kind)."""
    srv.process.proc.kill()
    srv.process.proc.wait(timeout=5)
    srv.process.stop()  # closes the log


def test_schedule_survives_a_restart(file_server):
    srv = file_server
    sm = sm_client(srv, *srv.aws_key)
    name = new_name("persist")
    first = sm.create_secret(Name=name, SecretString=json.dumps({"password": "p0"}))["VersionId"]
    sm.rotate_secret(SecretId=name, RotationLambdaARN="coffer:password", RotateImmediately=False,
                     RotationRules={"ScheduleExpression": "rate(4 hours)"})
    due = sm.describe_secret(SecretId=name)["NextRotationDate"]

    srv.restart()
    unseal(srv)
    sm = sm_client(srv, *srv.aws_key)  # (the port may have changed)
    d = sm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is True
    assert d["RotationRules"]["ScheduleExpression"] == "rate(4 hours)"
    assert d["NextRotationDate"] == due
    assert "LastRotatedDate" not in d, "rotated before the schedule said"

    def fired():
        d = sm.describe_secret(SecretId=name)
        return d if "LastRotatedDate" in d else None

    d = wait_until(fired, timeout=8, interval=0.1, what="the schedule to fire after the restart")
    assert d["LastRotatedDate"] >= due - datetime.timedelta(milliseconds=50)
    assert stages(sm, name)[first] == ["AWSPREVIOUS"]
    new = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    assert new["password"] != "p0"
    assert d["NextRotationDate"] > d["LastRotatedDate"]


def interrupt_at_set_secret(srv: ConfigServer, hook) -> dict:
    """Start a hook rotation, SIGKILL the server while the hook holds setSecret, start it again and
    unseal it. Answers what the test needs to check the resumed run."""
    sm = sm_client(srv, *srv.aws_key)
    name = new_name("resume")
    first = sm.create_secret(Name=name, SecretString="before-crash")["VersionId"]
    token = str(uuid.uuid4())
    hook.block("setSecret", times=1)
    sm.rotate_secret(SecretId=name, RotationLambdaARN=hook.url(), ClientRequestToken=token,
                     RotationRules={"AutomaticallyAfterDays": 30})
    assert hook.wait_entered("setSecret"), hook.steps()
    pending = sm.get_secret_value(SecretId=name, VersionStage="AWSPENDING")
    assert pending["VersionId"] == token
    old_headers = hook.calls_of("setSecret")[0]["headers"]
    before = len(hook.calls)

    crash(srv)
    hook.release("setSecret", drop=True)  # that request's caller is gone
    srv.start()
    unseal(srv)
    return {"name": name, "first": first, "token": token, "pending": pending["SecretString"],
            "old_headers": old_headers, "before": before, "old_endpoint": old_headers["X-Coffer-Endpoint"]}


def test_an_interrupted_run_resumes_after_a_restart(file_server, hook_host):
    srv = file_server
    hook = hook_host()
    ctx = interrupt_at_set_secret(srv, hook)
    sm = sm_client(srv, *srv.aws_key)
    name, token = ctx["name"], ctx["token"]

    d = wait_rotation_done(sm, name, token, timeout=10)
    after = hook.calls[ctx["before"]:]
    # resumed with the same ClientRequestToken, from the new server, through finishSecret
    assert after, "the hook was not called after the restart"
    assert all(c["event"]["ClientRequestToken"] == token for c in after)
    assert all(c["headers"]["X-Coffer-Endpoint"].rstrip("/") == srv.url for c in after)
    steps_after = [c["step"] for c in after]
    assert steps_after[-3:] == ["setSecret", "testSecret", "finishSecret"], steps_after
    assert all(c["status"] == 200 for c in after), [(c["step"], c["error"]) for c in after]
    # the value the function stored before the crash is the one that became current
    cur = sm.get_secret_value(SecretId=name)
    assert cur["VersionId"] == token
    assert cur["SecretString"] == ctx["pending"]
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == "before-crash"
    assert {k: sorted(v) for k, v in d["VersionIdsToStages"].items()} == {
        ctx["first"]: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    assert d["LastRotatedDate"] and d["NextRotationDate"] > d["LastRotatedDate"]
    # one version was created by the rotation, not two
    versions = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    assert sorted(v["VersionId"] for v in versions) == sorted([ctx["first"], token])


def test_the_key_of_an_interrupted_run_does_not_outlive_it(file_server, hook_host):
    """The access key issued to the hook before the crash must stop working once the resumed run is
    over, like the key of any run (it was scoped to that run)."""
    srv = file_server
    hook = hook_host()
    ctx = interrupt_at_set_secret(srv, hook)
    sm = sm_client(srv, *srv.aws_key)
    wait_rotation_done(sm, ctx["name"], ctx["token"], timeout=10)

    new_headers = hook.calls[-1]["headers"]
    root = make_client(srv.url, srv.root_token)
    for label, h in (("the resumed run's", new_headers), ("the interrupted run's", ctx["old_headers"])):
        k = sm_client(srv, h["X-Coffer-Access-Key-Id"], h["X-Coffer-Secret-Access-Key"])
        try:
            k.get_secret_value(SecretId=ctx["name"])
            got = "the secret"
        except Exception as e:
            got = code_of(e)
        left = root.list("auth/aws-keys/keys")["data"]["keys"]
        assert got == "UnrecognizedClientException", (
            f"{label} hook key still authenticates after the resumed run finished "
            f"(GetSecretValue answered {got}); keys left on auth/aws-keys: {left}")
    assert root.list("auth/aws-keys/keys")["data"]["keys"] == ["app"]
    assert not [p for p in root.sys.list_policies()["data"]["policies"] if p.startswith("rotation-")]
