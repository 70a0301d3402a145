"""A single-user rotation function with the structure of AWS's Python rotation template.

Written from scratch for these tests (only the behaviour follows AWS's template, not its text). It
runs as an AWS Lambda rotation function would: everything it needs comes from the event and the
environment (``SECRETS_MANAGER_ENDPOINT``, and the SDK's usual ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_DEFAULT_REGION``); it talks to the service with boto3 only.

The four steps, each safe to repeat (the service retries a failed run from ``createSecret``):

* ``createSecret``: make sure a version with id ``ClientRequestToken`` holds ``AWSPENDING``; a new
  random password when there is none yet.
* ``setSecret``: where a real function would change the password in the database (nothing here).
* ``testSecret``: where a real function would log in with the pending value (here: it must exist).
* ``finishSecret``: move ``AWSCURRENT`` to the new version.
"""

from __future__ import annotations

import logging
import os

import boto3

log = logging.getLogger("rotation_function")

# characters the generated password leaves out (the template's usual set), unless configured
DEFAULT_EXCLUDED = "/@\"'\\"


def lambda_handler(event, context):
    """Entry point: check the rotation is one this function should act on, then run the step."""
    secret_id = event["SecretId"]
    token = event["ClientRequestToken"]
    step = event["Step"]

    client = boto3.client("secretsmanager", endpoint_url=os.environ["SECRETS_MANAGER_ENDPOINT"])

    described = client.describe_secret(SecretId=secret_id)
    if not described.get("RotationEnabled"):
        raise ValueError(f"rotation is not enabled for secret {secret_id}")

    stages_by_version = described.get("VersionIdsToStages", {})
    if token not in stages_by_version:
        raise ValueError(f"version {token} is not a version of secret {secret_id}")
    stages = stages_by_version[token]
    if "AWSCURRENT" in stages:
        # an earlier invocation already finished this rotation
        log.info("version %s of %s is already AWSCURRENT", token, secret_id)
        return
    if "AWSPENDING" not in stages:
        raise ValueError(f"version {token} of secret {secret_id} is not AWSPENDING")

    handlers = {
        "createSecret": create_secret,
        "setSecret": set_secret,
        "testSecret": test_secret,
        "finishSecret": finish_secret,
    }
    if step not in handlers:
        raise ValueError(f"unknown rotation step {step!r}")
    handlers[step](client, secret_id, token)


def create_secret(client, secret_id, token):
    """Store a new random password as the pending version, unless an earlier try did."""
    # the secret must have a current value (this fails loudly if it has none)
    client.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
    try:
        client.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage="AWSPENDING")
        log.info("createSecret: the pending version %s of %s exists already", token, secret_id)
        return
    except client.exceptions.ResourceNotFoundException:
        pass
    excluded = os.environ.get("EXCLUDE_CHARACTERS", DEFAULT_EXCLUDED)
    new_password = client.get_random_password(ExcludeCharacters=excluded)["RandomPassword"]
    client.put_secret_value(
        SecretId=secret_id,
        ClientRequestToken=token,
        SecretString=new_password,
        VersionStages=["AWSPENDING"],
    )
    log.info("createSecret: stored the pending version %s of %s", token, secret_id)


def set_secret(client, secret_id, token):
    """A real function would set the pending password in the service the secret is for."""
    log.info("setSecret: nothing to change outside Secrets Manager for %s", secret_id)


def test_secret(client, secret_id, token):
    """A real function would log in with the pending password; here it only has to be readable."""
    pending = client.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage="AWSPENDING")
    if not pending.get("SecretString"):
        raise ValueError(f"testSecret: the pending version {token} of {secret_id} is empty")


def finish_secret(client, secret_id, token):
    """Make the pending version AWSCURRENT (the one it replaces becomes AWSPREVIOUS)."""
    described = client.describe_secret(SecretId=secret_id)
    current = None
    for version, stages in described.get("VersionIdsToStages", {}).items():
        if "AWSCURRENT" in stages:
            if version == token:
                log.info("finishSecret: %s is already AWSCURRENT for %s", token, secret_id)
                return
            current = version
            break
    client.update_secret_version_stage(
        SecretId=secret_id,
        VersionStage="AWSCURRENT",
        MoveToVersionId=token,
        RemoveFromVersionId=current,
    )
    log.info("finishSecret: AWSCURRENT moved to %s for %s", token, secret_id)
