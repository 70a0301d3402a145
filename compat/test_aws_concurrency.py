"""Concurrent Secrets Manager writes: the kv domain's rules hold under races (one store, one
commit at a time per secret), whichever client wins."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import ClientError

from aws_helpers import new_name, sm_client

WORKERS = 16


def run_all(fn, n=WORKERS):
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda i: _outcome(fn, i), range(n)))


def _outcome(fn, i):
    try:
        return ("ok", fn(i))
    except ClientError as e:
        return (e.response["Error"]["Code"], None)


def test_concurrent_creates_of_one_name_make_one_secret(dev_server):
    name = new_name("race")
    clients = [sm_client(dev_server) for _ in range(WORKERS)]
    outcomes = run_all(lambda i: clients[i].create_secret(Name=name, SecretString=f"v{i}")["ARN"])
    winners = [o for o in outcomes if o[0] == "ok"]
    assert len(winners) == 1, outcomes
    assert {o[0] for o in outcomes if o[0] != "ok"} == {"ResourceExistsException"}, outcomes
    sm = clients[0]
    versions = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    assert len(versions) == 1
    assert sm.describe_secret(SecretId=name)["ARN"] == winners[0][1]


def test_concurrent_retries_of_one_token_make_one_version(dev_server):
    name = new_name("race")
    sm = sm_client(dev_server)
    sm.create_secret(Name=name, SecretString="v0")
    token = str(uuid.uuid4())
    clients = [sm_client(dev_server) for _ in range(WORKERS)]
    outcomes = run_all(lambda i: clients[i].put_secret_value(
        SecretId=name, SecretString="same", ClientRequestToken=token)["VersionId"])
    assert all(o[0] == "ok" for o in outcomes), outcomes
    # every retry answers the one version the token created
    assert {o[1] for o in outcomes} == {token}
    versions = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    assert len(versions) == 2
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "same"


def test_concurrent_puts_keep_one_awscurrent_and_one_awsprevious(dev_server, client):
    name = new_name("race")
    sm = sm_client(dev_server)
    sm.create_secret(Name=name, SecretString="v0")
    clients = [sm_client(dev_server) for _ in range(WORKERS)]
    outcomes = run_all(lambda i: clients[i].put_secret_value(SecretId=name, SecretString=f"v{i + 1}"))
    assert all(o[0] == "ok" for o in outcomes), outcomes
    stages = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    labels = [label for ls in stages.values() for label in ls]
    assert labels.count("AWSCURRENT") == 1 and labels.count("AWSPREVIOUS") == 1, stages
    # AWSCURRENT is one of the values written, and each put made a version of its own (Vault
    # numbers them; unlabelled ones beyond max_versions are pruned, labelled ones never)
    current = sm.get_secret_value(SecretId=name)["SecretString"]
    assert current in {f"v{i + 1}" for i in range(WORKERS)}
    meta = client.secrets.kv.v2.read_secret_metadata(path=name, mount_point="secret")["data"]
    assert meta["current_version"] == WORKERS + 1
    # the last commit holds AWSCURRENT
    latest = client.secrets.kv.v2.read_secret_version(path=name, mount_point="secret",
                                                       raise_on_deleted_version=True)["data"]["data"]
    assert latest == {"value": current}


def test_a_put_racing_a_delete_never_writes_into_a_deleted_secret(dev_server):
    name = new_name("race")
    sm = sm_client(dev_server)
    sm.create_secret(Name=name, SecretString="v0")
    clients = [sm_client(dev_server) for _ in range(WORKERS)]

    def act(i):
        if i == 0:
            return clients[i].delete_secret(SecretId=name, RecoveryWindowInDays=7)
        return clients[i].put_secret_value(SecretId=name, SecretString=f"v{i}")

    outcomes = run_all(act)
    assert outcomes[0][0] == "ok", outcomes
    # puts either landed before the deletion or were refused as AWS refuses them
    assert {o[0] for o in outcomes[1:]} <= {"ok", "InvalidRequestException"}, outcomes
    landed = sum(1 for o in outcomes[1:] if o[0] == "ok")
    sm.restore_secret(SecretId=name)
    versions = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    assert len(versions) == 1 + landed
