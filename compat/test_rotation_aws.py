"""Automatic rotation through the AWS Secrets Manager dialect: RotateSecret / CancelRotateSecret /
DescribeSecret with boto3, the built-in `coffer:password` rotator, and HTTP hooks running a rotation
function written like AWS's Python template (rotation_hook/), unchanged.

Each test gets its own dev server whose schedule "hour" lasts one second (``rotation_server``), so
`rate(4 hours)` fires every ~4 s and failed runs are retried within milliseconds. What is checked
is AWS's documented behaviour (the rotation steps, staging labels, errors), plus Coffer's own
views of it (the Vault dialect's domain/rotation path, `coffer rotate`, the audit log).
"""

from __future__ import annotations

import datetime
import json
import string
import time
import uuid

import hvac
import pytest

from aws_helpers import assert_arn, code_of, expect_error, message_of, new_name, sm_client
from conftest import ConfigServer, make_client, uid
from rotation_helpers import (STEPS, audit_entries, coffer_cli, enable_file_audit, holder,
                              init_config_server, put_rotation, rotation_state, stages,
                              wait_failed, wait_rotation_done, wait_until)

DEFAULT_EXCLUDED = set("/@\"'\\")  # what the template's createSecret leaves out of its passwords


def hvac_read(server, name, version=None):
    c = make_client(server.url, server.root_token)
    try:
        return c.secrets.kv.v2.read_secret_version(path=name, mount_point="secret", version=version,
                                                   raise_on_deleted_version=True)["data"]["data"]
    finally:
        c.adapter.close()


def key_client(server, headers):
    """A boto3 client signed with the key a hook was given (from the recorded headers)."""
    return sm_client(server, headers["X-Coffer-Access-Key-Id"], headers["X-Coffer-Secret-Access-Key"])


def poll_key(k, name, timeout: float) -> str | None:
    """Call GetSecretValue with the client `k` until it fails (answer the error code) or `timeout`
    passes (answer None: the key still works)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            k.get_secret_value(SecretId=name)
        except Exception as e:
            return code_of(e)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc)


# --- RotateSecret / CancelRotateSecret / DescribeSecret shapes --------------------------------------

def test_rotate_secret_answer_and_describe_members(rotation_server, rotation_sm):
    sm = rotation_sm
    name = new_name("rot")
    created = sm.create_secret(Name=name, SecretString=json.dumps({"username": "app", "password": "old"}))
    # not rotating yet: AWS reports RotationEnabled false (or leaves it out) and no rotation members
    d0 = sm.describe_secret(SecretId=name)
    assert not d0.get("RotationEnabled")
    for k in ("RotationLambdaARN", "RotationRules", "LastRotatedDate", "NextRotationDate"):
        assert k not in d0, (k, d0)

    token = str(uuid.uuid4())
    before = now_utc()
    r = sm.rotate_secret(SecretId=name, RotationLambdaARN="coffer:password", ClientRequestToken=token,
                         RotationRules={"ScheduleExpression": "rate(10 days)"})
    assert r["Name"] == name
    assert_arn(r["ARN"], name)
    assert r["ARN"] == created["ARN"]
    # the ClientRequestToken is the new version's id
    assert r["VersionId"] == token

    d = wait_rotation_done(sm, name, token)
    assert d["RotationEnabled"] is True
    assert d["RotationLambdaARN"] == "coffer:password"
    assert d["RotationRules"]["ScheduleExpression"] == "rate(10 days)"
    assert isinstance(d["LastRotatedDate"], datetime.datetime)
    assert before - datetime.timedelta(seconds=2) <= d["LastRotatedDate"] <= now_utc() + datetime.timedelta(seconds=2)
    assert d["NextRotationDate"] > d["LastRotatedDate"]
    assert d["VersionIdsToStages"][token] == ["AWSCURRENT"]
    assert d["VersionIdsToStages"][created["VersionId"]] == ["AWSPREVIOUS"]
    assert len(d["VersionIdsToStages"]) == 2

    # CancelRotateSecret: rotation off, nothing else changes
    value = sm.get_secret_value(SecretId=name)["SecretString"]
    c = sm.cancel_rotate_secret(SecretId=name)
    assert c["Name"] == name and c["ARN"] == created["ARN"]
    d2 = sm.describe_secret(SecretId=name)
    assert d2["RotationEnabled"] is False
    assert "NextRotationDate" not in d2
    assert d2["LastRotatedDate"] == d["LastRotatedDate"]
    assert stages(sm, name) == {k: sorted(v) for k, v in d["VersionIdsToStages"].items()}
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value

    # RotateSecret without RotationLambdaARN / RotationRules reuses the stored ones (AWS: "uses the
    # existing rotation function and schedule")
    r2 = sm.rotate_secret(SecretId=name)
    d3 = wait_rotation_done(sm, name, r2["VersionId"])
    assert d3["RotationEnabled"] is True
    assert d3["RotationLambdaARN"] == "coffer:password"
    assert d3["RotationRules"]["ScheduleExpression"] == "rate(10 days)"
    assert d3["VersionIdsToStages"][token] == ["AWSPREVIOUS"]
    assert d3["LastRotatedDate"] > d["LastRotatedDate"]


def test_rotate_secret_by_days_without_rotating_now(rotation_server, rotation_sm):
    sm = rotation_sm
    name = new_name("days")
    sm.create_secret(Name=name, SecretString="v1")
    before = stages(sm, name)
    r = sm.rotate_secret(SecretId=name, RotationLambdaARN="coffer:password", RotateImmediately=False,
                         RotationRules={"AutomaticallyAfterDays": 30, "Duration": "3h"})
    assert r["Name"] == name
    # no run starts, so there is no new version to name
    assert "VersionId" not in r
    d = sm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is True
    assert d["RotationRules"]["AutomaticallyAfterDays"] == 30
    assert d["RotationRules"]["Duration"] == "3h"
    assert "LastRotatedDate" not in d
    assert d["NextRotationDate"] > now_utc()
    # nothing rotated
    assert stages(sm, name) == before
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "v1"


# --- the built-in password rotator -----------------------------------------------------------------

def test_builtin_password_rotator_renews_the_password_field(rotation_server, rotation_sm):
    sm = rotation_sm
    name = new_name("pw")
    old = json.dumps({"username": "app", "password": "old-password", "port": 5432})
    first = sm.create_secret(Name=name, SecretString=old)["VersionId"]
    r = sm.rotate_secret(SecretId=name, RotationLambdaARN="coffer:password")
    wait_rotation_done(sm, name, r["VersionId"])

    cur = sm.get_secret_value(SecretId=name)
    assert cur["VersionId"] == r["VersionId"]
    assert cur["VersionStages"] == ["AWSCURRENT"]
    new = json.loads(cur["SecretString"])
    assert new["username"] == "app" and new["port"] == 5432
    assert set(new) == {"username", "password", "port"}
    assert new["password"] != "old-password"
    assert len(new["password"]) == 32  # GetRandomPassword's default length
    # AWSPREVIOUS holds the old value, byte for byte
    prev = sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
    assert prev["VersionId"] == first
    assert prev["SecretString"] == old
    # the Vault dialect reads the new version as the latest, and the old one by number
    assert hvac_read(rotation_server, name) == new
    assert hvac_read(rotation_server, name, version=1) == json.loads(old)
    # no AWSPENDING left anywhere
    assert holder(sm, name, "AWSPENDING") is None
    st = rotation_state(rotation_server, name)
    assert st["enabled"] is True and not st.get("run") and not st.get("last_error")
    assert st["rotator_id"] == "coffer:password"
    assert st["last_rotated_time"]


def test_builtin_password_rotator_options_and_plain_values(rotation_server, rotation_sm):
    sm = rotation_sm
    name = new_name("pwopt")
    old = {"api_key": "a", "token": "b", "password": "keep-me", "user": "u"}
    sm.create_secret(Name=name, SecretString=json.dumps(old))
    r = sm.rotate_secret(SecretId=name,
                         RotationLambdaARN="coffer:password?fields=api_key,token&length=40&exclude_punctuation=true")
    wait_rotation_done(sm, name, r["VersionId"])
    new = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    assert new["password"] == "keep-me" and new["user"] == "u"
    alnum = set(string.ascii_letters + string.digits)
    for f in ("api_key", "token"):
        assert len(new[f]) == 40, new[f]
        assert set(new[f]) <= alnum, new[f]
    assert new["api_key"] != new["token"]

    # a value that is not a JSON object is renewed whole
    plain = new_name("plain")
    sm.create_secret(Name=plain, SecretString="not json at all")
    r2 = sm.rotate_secret(SecretId=plain, RotationLambdaARN="coffer:password")
    wait_rotation_done(sm, plain, r2["VersionId"])
    v = sm.get_secret_value(SecretId=plain)["SecretString"]
    assert v != "not json at all" and len(v) == 32
    assert sm.get_secret_value(SecretId=plain, VersionStage="AWSPREVIOUS")["SecretString"] == "not json at all"
    assert hvac_read(rotation_server, plain) == {"value": v}


# --- hooks: the template-style rotation function ---------------------------------------------------

def test_template_rotation_function_rotates_end_to_end(rotation_server, rotation_sm, hook_host):
    sm = rotation_sm
    hook = hook_host()
    name = new_name("tmpl")
    first = sm.create_secret(Name=name, SecretString="initial-password")["VersionId"]
    token = str(uuid.uuid4())
    r = sm.rotate_secret(SecretId=name, RotationLambdaARN=hook.url("/rotate/db"), ClientRequestToken=token,
                         RotationRules={"AutomaticallyAfterDays": 30})
    assert r["VersionId"] == token
    d = wait_rotation_done(sm, name, token)

    # the function saw AWS's four steps, in order, once each, all answered 200
    assert hook.steps() == STEPS, [(c["step"], c["status"], c["error"]) for c in hook.calls]
    for c in hook.calls:
        assert c["status"] == 200, c.get("traceback") or c["error"]
        assert c["path"] == "/rotate/db"
        assert (c["content_type"] or "").startswith("application/json")
        ev = c["event"]
        assert set(ev) == {"Step", "SecretId", "ClientRequestToken", "RotationToken"}, ev
        assert ev["SecretId"] == name
        assert ev["ClientRequestToken"] == token
        uuid.UUID(ev["RotationToken"])
        assert c["headers"]["X-Coffer-Endpoint"].rstrip("/") == rotation_server.url
        assert c["headers"]["X-Coffer-Region"] == "us-east-1"
        assert c["headers"]["X-Coffer-Access-Key-Id"] and c["headers"]["X-Coffer-Secret-Access-Key"]
    # one key for the whole run, and not the dev key
    assert len({c["headers"]["X-Coffer-Access-Key-Id"] for c in hook.calls}) == 1
    assert hook.calls[0]["headers"]["X-Coffer-Access-Key-Id"] != rotation_server.aws_access_key_id

    # the function's new password is current; the old value is AWSPREVIOUS; AWSPENDING is gone
    new = sm.get_secret_value(SecretId=name)
    assert new["VersionId"] == token
    assert new["SecretString"] != "initial-password"
    assert len(new["SecretString"]) == 32
    assert not (set(new["SecretString"]) & DEFAULT_EXCLUDED), new["SecretString"]
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == "initial-password"
    assert {k: sorted(v) for k, v in d["VersionIdsToStages"].items()} == {
        first: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    assert hvac_read(rotation_server, name) == {"value": new["SecretString"]}
    assert d["LastRotatedDate"] and d["NextRotationDate"] > d["LastRotatedDate"]
    st = rotation_state(rotation_server, name)
    assert not st.get("run") and not st.get("last_error"), st

    # a second rotation moves AWSPREVIOUS along
    r2 = sm.rotate_secret(SecretId=name)
    wait_rotation_done(sm, name, r2["VersionId"])
    labelled = {k: v for k, v in stages(sm, name).items() if v}
    assert labelled == {token: ["AWSPREVIOUS"], r2["VersionId"]: ["AWSCURRENT"]}
    assert hook.steps() == STEPS * 2


def test_pending_placeholder_and_reads_during_a_run(rotation_server, rotation_sm, hook_host):
    """While a run is in progress: before the function stores the new version, DescribeSecret lists
    its id under AWSPENDING (the template looks for it there); after it stored it, every dialect's
    read without a version still answers AWSCURRENT. A second RotateSecret is refused meanwhile."""
    sm = rotation_sm
    hook = hook_host()
    hook.block("createSecret", times=1)
    hook.block("setSecret", times=1)
    name = new_name("pend")
    first = sm.create_secret(Name=name, SecretString=json.dumps({"password": "old"}))["VersionId"]
    token = str(uuid.uuid4())
    sm.rotate_secret(SecretId=name, RotationLambdaARN=hook.url(), ClientRequestToken=token)
    assert hook.wait_entered("createSecret"), "the scheduler never called createSecret"

    # 1. the run started, nothing stored yet
    assert stages(sm, name) == {first: ["AWSCURRENT"], token: ["AWSPENDING"]}
    expect_error("ResourceNotFoundException", sm.get_secret_value, SecretId=name, VersionId=token,
                 VersionStage="AWSPENDING")
    assert sm.get_secret_value(SecretId=name)["VersionId"] == first
    st = rotation_state(rotation_server, name)
    assert st["run"]["version_id"] == token, st
    assert st["run"].get("steps_done", []) == [], st
    assert st["run"].get("attempts", 0) == 0, st
    assert st["run"]["requested_by"], st
    # a second RotateSecret while the run is in progress is refused, and changes nothing
    e = expect_error("InvalidRequestException", sm.rotate_secret, SecretId=name,
                     RotationLambdaARN="coffer:password", ClientRequestToken=str(uuid.uuid4()))
    assert "previous rotation" in message_of(e).lower()
    st2 = rotation_state(rotation_server, name)
    assert st2["rotator_id"] == hook.url() and st2["run"]["version_id"] == token

    # 2. createSecret stored the pending value; setSecret is held
    hook.release("createSecret")
    assert hook.wait_entered("setSecret"), [(c["step"], c["status"], c["error"]) for c in hook.calls]
    pending = sm.get_secret_value(SecretId=name, VersionStage="AWSPENDING")
    assert pending["VersionId"] == token
    assert stages(sm, name) == {first: ["AWSCURRENT"], token: ["AWSPENDING"]}
    # reads naming no version answer AWSCURRENT in every dialect, never the pending value
    cur = sm.get_secret_value(SecretId=name)
    assert cur["VersionId"] == first and json.loads(cur["SecretString"]) == {"password": "old"}
    assert hvac_read(rotation_server, name) == {"password": "old"}
    st = rotation_state(rotation_server, name)
    assert st["run"]["steps_done"] == ["createSecret"], st
    assert st["pending_version_id"] == token, st

    # 3. released: the run finishes and every dialect reads the new version
    hook.release("setSecret")
    wait_rotation_done(sm, name, token)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == pending["SecretString"]
    assert hvac_read(rotation_server, name) == {"value": pending["SecretString"]}
    assert hook.steps() == STEPS


def test_hook_failing_at_test_secret(rotation_server, rotation_sm, hook_host, monkeypatch):
    sm = rotation_sm
    monkeypatch.setenv("ROTATION_HOOK_FAIL_AT", "testSecret")
    hook = hook_host()
    name = new_name("fail")
    first = sm.create_secret(Name=name, SecretString="still-current")["VersionId"]
    r = sm.rotate_secret(SecretId=name, RotationLambdaARN=hook.url(),
                         RotationRules={"ScheduleExpression": "rate(10 days)"})
    token = r["VersionId"]
    st = wait_failed(rotation_server, name, "testSecret")

    # retried from createSecret, then given up after 5 failed attempts
    tests = hook.calls_of("testSecret")
    assert len(tests) == 5, hook.steps()
    assert "finishSecret" not in hook.steps()
    assert all(c["event"]["ClientRequestToken"] == token for c in hook.calls)
    # AWSCURRENT unchanged; the pending version stays under AWSPENDING (as in AWS)
    cur = sm.get_secret_value(SecretId=name)
    assert cur["VersionId"] == first and cur["SecretString"] == "still-current"
    assert hvac_read(rotation_server, name) == {"value": "still-current"}
    assert holder(sm, name, "AWSCURRENT") == first
    assert holder(sm, name, "AWSPENDING") == token
    # the error is recorded where operators look
    assert "testSecret" in st["last_error"], st
    assert "500" in st["last_error"] or "injected failure" in st["last_error"], st
    assert st["enabled"] is True
    d = sm.describe_secret(SecretId=name)
    assert "LastRotatedDate" not in d
    assert d["NextRotationDate"] > now_utc()  # the next scheduled rotation will try again

    status = coffer_cli(rotation_server, "rotate", "status")
    assert status.returncode == 0, status
    row = [l for l in status.stdout.splitlines() if f"secret/{name}" in l]
    assert row, status.stdout
    assert "failed" in row[0] and "testSecret" in row[0], row
    show = coffer_cli(rotation_server, "rotate", "show", f"secret/{name}", "--format", "json")
    assert show.returncode == 0, show
    assert "testSecret" in json.loads(show.stdout)["last_error"]

    # once the function works again, a new rotation succeeds and clears the error
    monkeypatch.delenv("ROTATION_HOOK_FAIL_AT")
    r2 = sm.rotate_secret(SecretId=name)
    wait_rotation_done(sm, name, r2["VersionId"])
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["VersionId"] == first
    assert holder(sm, name, "AWSPENDING") is None
    st = rotation_state(rotation_server, name)
    assert not st.get("last_error") and not st.get("run"), st


def test_a_failed_step_is_retried_until_it_succeeds(rotation_server, rotation_sm, hook_host):
    """A step that fails is retried (from createSecret, with the same ClientRequestToken) and the
    run completes once the function works; the function's idempotent createSecret keeps the
    pending value it stored on the first try."""
    sm = rotation_sm
    hook = hook_host(fail_at="testSecret:2")
    name = new_name("retry")
    arn = sm.create_secret(Name=name, SecretString="v0")["ARN"]
    token = str(uuid.uuid4())
    # (named by its ARN here: the events still carry the name)
    sm.rotate_secret(SecretId=arn, RotationLambdaARN=hook.url(), ClientRequestToken=token)
    wait_rotation_done(sm, name, token)
    assert [c["status"] for c in hook.calls_of("testSecret")] == [500, 500, 200]
    assert hook.steps() == ["createSecret", "setSecret", "testSecret"] * 3 + ["finishSecret"]
    assert all(c["event"]["ClientRequestToken"] == token and c["event"]["SecretId"] == name
               for c in hook.calls)
    # one new version only: the retried createSecret found the pending one
    versions = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    assert len(versions) == 2, versions
    st = rotation_state(rotation_server, name)
    assert not st.get("run") and not st.get("last_error"), st
    assert st["last_rotated_time"]


def test_status_lists_a_failed_rotation_without_schedule(rotation_server, rotation_sm, hook_host):
    """`coffer rotate status` lists "scheduled, running or failed" rotations: a run given up on a
    secret with no schedule (RotateSecret with RotateImmediately and no rules) is a failed one."""
    sm = rotation_sm
    hook = hook_host(fail_at="testSecret")
    name = new_name("failnosched")
    sm.create_secret(Name=name, SecretString="x")
    sm.rotate_secret(SecretId=name, RotationLambdaARN=hook.url())
    wait_failed(rotation_server, name, "testSecret")
    status = coffer_cli(rotation_server, "rotate", "status")
    assert status.returncode == 0, status
    assert f"secret/{name}" in status.stdout, (
        "a rotation given up with an error (no schedule) is missing from `coffer rotate status`, "
        f"though GET domain/rotation/{name} reports last_error; status printed:\n{status.stdout}")


def test_scheduled_rotation_fires_repeatedly(rotation_server, rotation_sm, tmp_path):
    sm = rotation_sm
    log = tmp_path / "audit.log"
    c = enable_file_audit(rotation_server, log)
    name = new_name("sched")
    sm.create_secret(Name=name, SecretString=json.dumps({"password": "p0"}))
    sm.rotate_secret(SecretId=name, RotationLambdaARN="coffer:password", RotateImmediately=False,
                     RotationRules={"ScheduleExpression": "rate(4 hours)"})
    d0 = sm.describe_secret(SecretId=name)
    assert "LastRotatedDate" not in d0
    first_due = d0["NextRotationDate"]
    assert 3.0 <= (first_due - now_utc()).total_seconds() <= 4.5, first_due

    seen = []
    for _ in range(2):
        prev = seen[-1]["LastRotatedDate"] if seen else None

        def advanced():
            d = sm.describe_secret(SecretId=name)
            last = d.get("LastRotatedDate")
            return d if last and (prev is None or last > prev) and "NextRotationDate" in d else None

        seen.append(wait_until(advanced, timeout=7, interval=0.1,
                               what="the schedule rate(4 hours) (~4 s here) to fire"))
    first, second = seen
    assert first["LastRotatedDate"] >= first_due - datetime.timedelta(milliseconds=50)
    gap = (second["LastRotatedDate"] - first["LastRotatedDate"]).total_seconds()
    assert 3.5 <= gap <= 5.0, gap
    for d in seen:
        ahead = (d["NextRotationDate"] - d["LastRotatedDate"]).total_seconds()
        assert 3.9 <= ahead <= 4.1, ahead
    # each firing made a new version with a new password
    # (the first version has no stage left: deprecated, listed only with IncludeDeprecated)
    versions = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    assert len(versions) == 3, versions
    values = {json.loads(sm.get_secret_value(SecretId=name, VersionId=v["VersionId"])["SecretString"])["password"]
              for v in versions}
    assert len(values) == 3

    # scheduled runs are Coffer's own: audited as the scheduler, step by step
    c.sys.disable_audit_device("rotaudit")
    es = [e for e in audit_entries(log) if e.get("dialect") == "internal"
          and str(e["request"].get("operation_name", "")).startswith("rotation.")]
    ops = {e["request"]["operation_name"] for e in es}
    assert {f"rotation.{s}" for s in STEPS} <= ops, ops
    names = {e["auth"].get("display_name") for e in es if e["request"]["operation_name"] in
             {f"rotation.{s}" for s in STEPS}}
    assert names == {"coffer-rotation-scheduler"}, names


# --- refusals ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("rules", [
    {"ScheduleExpression": "rate(1 hours)"},
    {"ScheduleExpression": "rate(3 hours)"},
    {"ScheduleExpression": "rate(1000 days)"},
    {"ScheduleExpression": "rate(four hours)"},
    {"ScheduleExpression": "cron(0 16 1,15 * 2 *)"},
    {"ScheduleExpression": "cron(0 16 ? * 2 2031)"},
    {"ScheduleExpression": "cron(0 25 ? * 2 *)"},
    {"ScheduleExpression": "every day"},
    {"AutomaticallyAfterDays": 30, "ScheduleExpression": "rate(10 days)"},
    {"AutomaticallyAfterDays": 1001},
    {"AutomaticallyAfterDays": 30, "Duration": "25h"},
    {"AutomaticallyAfterDays": 30, "Duration": "3d"},
], ids=lambda r: json.dumps(r))
def test_bad_rotation_rules_are_refused(rotation_server, rotation_sm, rules):
    sm = rotation_sm
    name = new_name("badrule")
    sm.create_secret(Name=name, SecretString="v")
    before = stages(sm, name)
    e = expect_error("InvalidParameterException", sm.rotate_secret, SecretId=name,
                     RotationLambdaARN="coffer:password", RotationRules=rules)
    if "cron(" in rules.get("ScheduleExpression", ""):
        assert "cron" in message_of(e).lower()
    d = sm.describe_secret(SecretId=name)
    assert not d.get("RotationEnabled")
    assert "RotationLambdaARN" not in d and "RotationRules" not in d
    assert stages(sm, name) == before
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "v"


def test_a_cron_schedule_names_the_next_rotation(rotation_server, rotation_sm):
    import datetime as dt
    sm = rotation_sm
    name = new_name("cron")
    sm.create_secret(Name=name, SecretString="v")
    # 10:00 UTC every Monday (AWS's day-of-week: 1 = Sunday, so 2 = Monday)
    rules = {"ScheduleExpression": "cron(0 10 ? * 2 *)", "Duration": "1h"}
    sm.rotate_secret(SecretId=name, RotationLambdaARN="coffer:password", RotationRules=rules,
                     RotateImmediately=False)
    d = sm.describe_secret(SecretId=name)
    assert d["RotationRules"] == rules
    now = dt.datetime.now(dt.timezone.utc)
    monday = (now + dt.timedelta(days=(7 - now.weekday()) % 7)).replace(hour=10, minute=0, second=0,
                                                                       microsecond=0)
    if monday <= now:
        monday += dt.timedelta(days=7)
    start = d["NextRotationDate"].astimezone(dt.timezone.utc)
    # at a random point of the one-hour window that opens then
    assert monday <= start < monday + dt.timedelta(hours=1), (start, monday)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "v"


def test_other_refusals_change_nothing(rotation_server, rotation_sm):
    sm = rotation_sm
    name = new_name("ref")
    first = sm.create_secret(Name=name, SecretString="v")["VersionId"]

    def unchanged():
        d = sm.describe_secret(SecretId=name)
        assert not d.get("RotationEnabled")
        assert "RotationLambdaARN" not in d
        assert stages(sm, name) == {first: ["AWSCURRENT"]}

    # no rotator ever set
    e = expect_error(("InvalidParameterException", "InvalidRequestException"), sm.rotate_secret, SecretId=name)
    assert "rotat" in message_of(e).lower()
    unchanged()
    expect_error(("InvalidParameterException", "InvalidRequestException"), sm.rotate_secret, SecretId=name,
                 RotationRules={"AutomaticallyAfterDays": 30})
    unchanged()
    # not now, and no schedule to wait for
    expect_error(("InvalidParameterException", "InvalidRequestException"), sm.rotate_secret, SecretId=name,
                 RotationLambdaARN="coffer:password", RotateImmediately=False)
    unchanged()
    # ClientRequestToken that is not a UUID (it becomes the version id here)
    expect_error("InvalidParameterException", sm.rotate_secret, SecretId=name,
                 RotationLambdaARN="coffer:password", ClientRequestToken="x" * 40)
    unchanged()
    # ... or names a version that exists
    expect_error(("InvalidRequestException", "ResourceExistsException"), sm.rotate_secret, SecretId=name,
                 RotationLambdaARN="coffer:password", ClientRequestToken=first)
    unchanged()
    # a rotator that is neither coffer:, a URL nor an ARN
    expect_error("InvalidParameterException", sm.rotate_secret, SecretId=name,
                 RotationLambdaARN="ftp://127.0.0.1/x")
    unchanged()
    # a secret that does not exist
    missing = new_name("missing")
    expect_error("ResourceNotFoundException", sm.rotate_secret, SecretId=missing,
                 RotationLambdaARN="coffer:password")
    expect_error("ResourceNotFoundException", sm.cancel_rotate_secret, SecretId=missing)
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=missing)
    # a caller who may read but not update the secret's metadata cannot turn rotation on
    c = make_client(rotation_server.url, rotation_server.root_token)
    c.sys.create_or_update_policy(name="ro", policy='path "secret/*" { capabilities = ["read", "list"] }')
    ro = c.write("auth/aws-keys/keys/ro", policies=["ro"])["data"]
    ro_sm = sm_client(rotation_server, ro["access_key_id"], ro["secret_access_key"])
    expect_error("AccessDeniedException", ro_sm.rotate_secret, SecretId=name, RotationLambdaARN="coffer:password")
    expect_error("AccessDeniedException", ro_sm.cancel_rotate_secret, SecretId=name)
    unchanged()


def test_unknown_builtin_rotator(rotation_server, rotation_sm):
    """`coffer:nope` is not a rotator: refused by RotateSecret (InvalidParameterException), or the run
    fails with the error recorded; either way the secret's versions are untouched."""
    sm = rotation_sm
    name = new_name("nope")
    first = sm.create_secret(Name=name, SecretString="v")["VersionId"]
    try:
        sm.rotate_secret(SecretId=name, RotationLambdaARN="coffer:nope")
    except Exception as e:  # refused up front
        assert code_of(e) == "InvalidParameterException", e
        assert not sm.describe_secret(SecretId=name).get("RotationEnabled")
    else:
        st = wait_failed(rotation_server, name, "coffer:nope")
        assert "built-in" in st["last_error"] or "not" in st["last_error"], st
    assert stages(sm, name) == {first: ["AWSCURRENT"]}
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "v"
    assert "LastRotatedDate" not in sm.describe_secret(SecretId=name)
    # bad options of the built-in are not a rotator either
    name2 = new_name("nope2")
    first2 = sm.create_secret(Name=name2, SecretString=json.dumps({"password": "p"}))["VersionId"]
    try:
        sm.rotate_secret(SecretId=name2, RotationLambdaARN="coffer:password?length=many")
    except Exception as e:
        assert code_of(e) == "InvalidParameterException", e
    else:
        wait_failed(rotation_server, name2, "length")
    assert stages(sm, name2) == {first2: ["AWSCURRENT"]}


@pytest.fixture
def locked_down_server(tmp_path):
    """A config-mode server (file storage) with rotation but no allowed_hook_hosts."""
    srv = ConfigServer(tmp_path, extra_config='rotation {\n  hour = "1s"\n}\n')
    srv.start()
    try:
        init_config_server(srv)
        yield srv
    finally:
        srv.stop()


def test_hook_on_a_host_not_allowed(locked_down_server, hook_host):
    srv = locked_down_server
    hook = hook_host()
    sm = sm_client(srv, *srv.aws_key)
    root = make_client(srv.url, srv.root_token)
    name = new_name("noallow")
    first = sm.create_secret(Name=name, SecretString="v")["VersionId"]
    keys_before = root.list("auth/aws-keys/keys")["data"]["keys"]
    policies_before = root.sys.list_policies()["data"]["policies"]

    outcome = {}
    for rotator in (hook.url(), "arn:aws:lambda:us-east-1:123456789012:function:not-configured"):
        n = name if not outcome else new_name("noarn")
        if outcome:
            sm.create_secret(Name=n, SecretString="v")
        try:
            sm.rotate_secret(SecretId=n, RotationLambdaARN=rotator)
            outcome[rotator] = wait_failed(srv, n, "not allowed" if rotator.startswith("http") else "no hook")
        except Exception as e:  # refusing up front is as good
            assert code_of(e) in ("InvalidParameterException", "InvalidRequestException"), e
            outcome[rotator] = code_of(e)

    # Coffer never called the hook, issued no key and changed nothing
    assert hook.calls == []
    assert stages(sm, name) == {first: ["AWSCURRENT"]}
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "v"
    assert root.list("auth/aws-keys/keys")["data"]["keys"] == keys_before
    assert root.sys.list_policies()["data"]["policies"] == policies_before
    st = outcome[hook.url()]
    if isinstance(st, dict):
        assert "127.0.0.1" in st["last_error"], st


# --- the hook's credential --------------------------------------------------------------------------

def test_hook_key_is_scoped_to_the_secret_and_deleted_after_the_run(rotation_server, rotation_sm, hook_host):
    sm = rotation_sm
    hook = hook_host()
    hook.block("testSecret", times=1)
    name = new_name("scoped")
    other = new_name("other")
    sm.create_secret(Name=name, SecretString="mine")
    sm.create_secret(Name=other, SecretString="not yours")
    r = sm.rotate_secret(SecretId=name, RotationLambdaARN=hook.url())
    assert hook.wait_entered("testSecret")
    headers = hook.calls_of("testSecret")[0]["headers"]
    k = key_client(rotation_server, headers)

    # the key works on its own secret ...
    assert k.get_secret_value(SecretId=name)["SecretString"] == "mine"
    assert k.get_secret_value(SecretId=name, VersionStage="AWSPENDING")["VersionId"] == r["VersionId"]
    assert k.describe_secret(SecretId=name)["Name"] == name
    # ... and nothing else
    expect_error("AccessDeniedException", k.get_secret_value, SecretId=other)
    expect_error("AccessDeniedException", k.describe_secret, SecretId=other)
    expect_error("AccessDeniedException", k.put_secret_value, SecretId=other, SecretString="overwritten")
    expect_error("AccessDeniedException", k.create_secret, Name=new_name("new"), SecretString="x")
    expect_error("AccessDeniedException", k.delete_secret, SecretId=name, ForceDeleteWithoutRecovery=True)
    expect_error("AccessDeniedException", k.delete_secret, SecretId=other, ForceDeleteWithoutRecovery=True)
    expect_error("AccessDeniedException", k.list_secrets)
    assert sm.get_secret_value(SecretId=other)["SecretString"] == "not yours"
    # the key cannot be used against the Vault API either (it is a signing key, not a token)
    c = make_client(rotation_server.url, headers["X-Coffer-Secret-Access-Key"])
    with pytest.raises(hvac.exceptions.VaultError):
        c.secrets.kv.v2.read_secret_version(path=other, mount_point="secret", raise_on_deleted_version=True)

    hook.release("testSecret")
    wait_rotation_done(sm, name, r["VersionId"])
    # once the run is over the key no longer authenticates
    assert poll_key(k, name, timeout=3) == "UnrecognizedClientException"
    # and neither the key nor its policy is left behind
    root = make_client(rotation_server.url, rotation_server.root_token)
    assert root.list("auth/aws-keys/keys")["data"]["keys"] == ["dev"]
    assert not [p for p in root.sys.list_policies()["data"]["policies"] if p.startswith("rotation-")]


def test_cancel_during_a_run_drops_it_and_revokes_the_hook_key(rotation_server, rotation_sm, hook_host):
    sm = rotation_sm
    hook = hook_host()
    hook.block("setSecret", times=1)
    name = new_name("cancel")
    first = sm.create_secret(Name=name, SecretString="keep")["VersionId"]
    r = sm.rotate_secret(SecretId=name, RotationLambdaARN=hook.url(),
                         RotationRules={"ScheduleExpression": "rate(10 days)"})
    assert hook.wait_entered("setSecret")
    headers = hook.calls_of("setSecret")[0]["headers"]

    c = sm.cancel_rotate_secret(SecretId=name)
    assert c["Name"] == name
    # the version the cancelled run stored keeps AWSPENDING (as in AWS), and is reported
    assert c.get("VersionId") in (None, r["VersionId"])
    d = sm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is False
    assert "NextRotationDate" not in d
    st = rotation_state(rotation_server, name)
    assert not st.get("run"), st

    # the held step now completes: the dropped run must not go on to finish
    hook.release("setSecret")
    wait_until(lambda: hook.calls_of("setSecret")[0]["status"], what="the held setSecret to answer")
    time.sleep(0.5)
    assert hook.steps() == ["createSecret", "setSecret"], hook.steps()
    assert holder(sm, name, "AWSCURRENT") == first
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "keep"
    assert "LastRotatedDate" not in sm.describe_secret(SecretId=name)

    # and the key Coffer gave the hook for that run is revoked like after any run
    got = poll_key(key_client(rotation_server, headers), name, timeout=3)
    root = make_client(rotation_server.url, rotation_server.root_token)
    left = root.list("auth/aws-keys/keys")["data"]["keys"]
    assert got == "UnrecognizedClientException", (
        f"the hook's key of a cancelled run still authenticates 3 s after the run was dropped "
        f"(GetSecretValue answered {got or 'the secret'}); keys left on auth/aws-keys: {left}")
    assert left == ["dev"], left


# --- the Vault dialect and the CLI ------------------------------------------------------------------

def test_vault_dialect_rotation_path_and_cli(rotation_server, rotation_sm, token_for_policy_rot):
    sm = rotation_sm
    name = new_name("vault")
    sm.create_secret(Name=name, SecretString=json.dumps({"password": "p"}))
    # turning rotation on needs update on metadata/<name>
    reader = token_for_policy_rot(f'path "secret/*" {{ capabilities = ["read", "list"] }}')
    denied = put_rotation(rotation_server, name, {"rotator_id": "coffer:password"}, token=reader)
    assert denied.status_code == 403, denied.text
    assert rotation_state(rotation_server, name).get("enabled") in (None, False)

    resp = put_rotation(rotation_server, name, {
        "rotator_id": "coffer:password",
        "rules": {"schedule_expression": "rate(10 days)", "duration": "2h"},
        "rotate_immediately": True,
    })
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert data["enabled"] is True and data["rotator_id"] == "coffer:password"
    assert data["rules"] == {"schedule_expression": "rate(10 days)", "duration": "2h"}
    vid = data["run"]["version_id"]
    wait_rotation_done(sm, name, vid)
    st = rotation_state(rotation_server, name)
    assert st["last_rotated_time"] and st["next_rotation_time"] and not st.get("run"), st
    d = sm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is True and d["RotationRules"]["Duration"] == "2h"
    # bad rules through the Vault dialect: 400, nothing changes
    bad = put_rotation(rotation_server, name, {"rules": {"schedule_expression": "rate(2 hours)"}})
    assert bad.status_code == 400, bad.text
    assert rotation_state(rotation_server, name)["rules"]["schedule_expression"] == "rate(10 days)"
    cancel = put_rotation(rotation_server, name, {"cancel": True})
    assert cancel.status_code == 200 and cancel.json()["data"]["enabled"] is False

    # the CLI: start without rotating now, show, status, cancel
    name2 = new_name("cli")
    sm.create_secret(Name=name2, SecretString="cli-value")
    start = coffer_cli(rotation_server, "rotate", "start", f"secret/{name2}", "--rotator", "coffer:password",
                       "--after-days", "30", "--no-now", "--format", "json")
    assert start.returncode == 0, start
    out = json.loads(start.stdout)
    assert out["enabled"] is True and out["rules"]["automatically_after_days"] == 30 and not out.get("run")
    show = coffer_cli(rotation_server, "rotate", "show", f"secret/{name2}", "--format", "json")
    assert show.returncode == 0, show
    assert json.loads(show.stdout)["next_rotation_time"]
    status = coffer_cli(rotation_server, "rotate", "status")
    assert status.returncode == 0, status
    row = [l for l in status.stdout.splitlines() if f"secret/{name2}" in l]
    assert row and "scheduled" in row[0], status.stdout
    assert sm.get_secret_value(SecretId=name2)["SecretString"] == "cli-value"
    cancel = coffer_cli(rotation_server, "rotate", "cancel", f"secret/{name2}", "--format", "json")
    assert cancel.returncode == 0, cancel
    assert json.loads(cancel.stdout)["enabled"] is False
    assert sm.describe_secret(SecretId=name2)["RotationEnabled"] is False
    # status needs root
    st = coffer_cli(rotation_server, "rotate", "status", token=reader)
    assert st.returncode != 0, st


@pytest.fixture
def token_for_policy_rot(rotation_server):
    c = make_client(rotation_server.url, rotation_server.root_token)

    def make(policy: str) -> str:
        pname = uid("pol")
        c.sys.create_or_update_policy(name=pname, policy=policy)
        return c.auth.token.create(policies=[pname], ttl="10m")["auth"]["client_token"]

    yield make
    c.adapter.close()


# --- audit ------------------------------------------------------------------------------------------

def rotation_entries(log):
    return [e for e in audit_entries(log)
            if str(e.get("request", {}).get("operation_name", "")).startswith("rotation.")]


def test_audit_of_a_rotation_asked_for_through_aws(rotation_server, rotation_sm, hook_host, tmp_path):
    sm = rotation_sm
    log = tmp_path / "audit.log"
    root = enable_file_audit(rotation_server, log)
    hook = hook_host()
    builtin = new_name("audb")
    hooked = new_name("audh")
    sm.create_secret(Name=builtin, SecretString=json.dumps({"password": "p"}))
    sm.create_secret(Name=hooked, SecretString="h")
    rb = sm.rotate_secret(SecretId=builtin, RotationLambdaARN="coffer:password")
    wait_rotation_done(sm, builtin, rb["VersionId"])
    rh = sm.rotate_secret(SecretId=hooked, RotationLambdaARN=hook.url())
    wait_rotation_done(sm, hooked, rh["VersionId"])
    new_builtin = json.loads(sm.get_secret_value(SecretId=builtin)["SecretString"])["password"]
    new_hooked = sm.get_secret_value(SecretId=hooked)["SecretString"]
    hook_secret = hook.calls[0]["headers"]["X-Coffer-Secret-Access-Key"]
    hook_key_id = hook.calls[0]["headers"]["X-Coffer-Access-Key-Id"]
    root.sys.disable_audit_device("rotaudit")

    es = audit_entries(log)
    # who asked: the caller of RotateSecret (its audit entry's display name)
    asked = [e for e in es if e.get("dialect") == "aws"
             and e["request"].get("operation_name") == "secretsmanager.RotateSecret"]
    assert asked, "RotateSecret is not audited"
    caller = asked[0]["auth"]["display_name"]
    assert caller == "aws-dev", caller

    rot = rotation_entries(log)
    assert rot, "no rotation.* entries in the audit log"
    assert all(e["dialect"] == "internal" for e in rot)
    # the steps run on behalf of that caller (finding and starting due runs is the scheduler's)
    step_ops = {f"rotation.{s}" for s in STEPS}
    for e in [e for e in rot if e["request"]["operation_name"] in step_ops]:
        assert e["dialect"] == "internal", e
        assert e["auth"]["display_name"] == f"coffer-rotation-for-{caller}", e["auth"]
    for name in (builtin, hooked):
        mine = [e for e in rot if name in e["request"]["path"]]
        ops = {e["request"]["operation_name"] for e in mine}
        assert {f"rotation.{s}" for s in STEPS} <= ops, (name, sorted(ops))
        assert {e["type"] for e in mine} == {"request", "response"}
    # the built-in's steps read and write the secret itself
    b_ops = {(e["request"]["operation_name"], e["request"]["path"]) for e in rot if builtin in e["request"]["path"]}
    assert any(op == "rotation.createSecret" and "versions" in p for op, p in b_ops), b_ops

    # the hook's own calls are AWS requests signed with the run's key (named after the run)
    hook_calls = [e for e in es if e.get("dialect") == "aws" and e["auth"].get("display_name", "").startswith("aws-rotation-")]
    called = {e["request"].get("operation_name") for e in hook_calls}
    for op in ("DescribeSecret", "GetSecretValue", "GetRandomPassword", "PutSecretValue",
               "UpdateSecretVersionStage"):
        assert f"secretsmanager.{op}" in called, sorted(called)

    # no secret in clear: not the new values, nor the hook's secret access key
    text = log.read_text()
    for s in (new_builtin, new_hooked, hook_secret):
        assert s not in text
    assert hook_key_id  # (an access key id is an identifier, it may appear)
