"""Every spelling of a secret's name, and oversized requests, through the AWS dialect: the ACL and
the handler act on the one name the request carries (names are case-sensitive in AWS and in kv
paths alike), spellings that are not names are refused, and nothing changes on a refusal."""

from __future__ import annotations

import pytest

from aws_helpers import expect_error, new_name, raw_call, raw_error, sm_client

def deny_under(prefix: str) -> str:
    """Everything under secret/, except the data of secrets under `prefix`/."""
    return ('path "secret/*" { capabilities = ["create", "read", "update", "delete", "list"] }\n'
            f'path "secret/data/{prefix}/*" {{ capabilities = ["deny"] }}\n')


@pytest.mark.parametrize("spelling", [
    "{p}/x ", " {p}/x", "{p}/x\u00a0", "{p}/x\u200b", "{p}%2Fx", "{p}/x%20", "{p}/\u0078\u0301",
    "{p}/x\t", "{p}/x\n",
])
def test_spellings_that_are_not_names_are_refused_and_change_nothing(dev_server, sm, aws_key_for_policy,
                                                                      spelling):
    prefix = new_name("prod")
    key_id, secret = aws_key_for_policy(deny_under(prefix))
    victim = f"{prefix}/x"
    sm.create_secret(Name=victim, SecretString="original")
    limited = sm_client(dev_server, key_id, secret)
    name = spelling.format(p=prefix)
    # as a new name: refused as a name; as a SecretId: no secret answers to it
    expect_error(("ValidationException", "InvalidParameterException"), limited.create_secret,
                 Name=name, SecretString="attacker")
    expect_error(("ResourceNotFoundException", "AccessDeniedException", "ValidationException"),
                 limited.put_secret_value, SecretId=name, SecretString="attacker")
    expect_error(("ResourceNotFoundException", "AccessDeniedException", "ValidationException"),
                 limited.get_secret_value, SecretId=name)
    # the denied secret is untouched and still denied to this key
    assert sm.get_secret_value(SecretId=victim)["SecretString"] == "original"
    assert len(sm.list_secret_version_ids(SecretId=victim)["Versions"]) == 1
    expect_error("AccessDeniedException", limited.get_secret_value, SecretId=victim)


def test_case_variants_are_other_secrets_for_the_acl_and_the_handler(dev_server, sm, aws_key_for_policy):
    prefix = new_name("prod")
    key_id, secret = aws_key_for_policy(deny_under(prefix))
    victim = f"{prefix}/x"
    sm.create_secret(Name=victim, SecretString="original")
    limited = sm_client(dev_server, key_id, secret)
    upper = f"{prefix.upper()}/X"
    # another name (AWS names are case-sensitive): its own secret, allowed by the policy
    limited.create_secret(Name=upper, SecretString="mine")
    assert limited.get_secret_value(SecretId=upper)["SecretString"] == "mine"
    # and never the denied one
    assert sm.get_secret_value(SecretId=victim)["SecretString"] == "original"
    expect_error("AccessDeniedException", limited.get_secret_value, SecretId=victim)
    expect_error("AccessDeniedException", limited.put_secret_value, SecretId=victim, SecretString="x")


def test_an_oversized_request_is_refused_in_aws_form_and_changes_nothing(dev_server, sm):
    name = new_name("big")
    resp = raw_call(dev_server, "CreateSecret", {"Name": name, "SecretString": "a" * (2 * 1024 * 1024)})
    code, msg = raw_error(resp)
    assert resp.status_code == 400
    assert code in ("InvalidParameterException", "ValidationException"), (code, msg)
    expect_error("ResourceNotFoundException", sm.describe_secret, SecretId=name)
