"""The server configuration's `aws` stanza: regions served by their own kv mount, and the
clock-skew window. A config-mode server (file storage), initialized and unsealed here."""

from __future__ import annotations

import datetime

import pytest

from aws_helpers import raw_call, raw_json, sm_client
from conftest import ConfigServer

CONFIG = """
aws {
  max_clock_skew = "2m"
  region "eu-west-1" {
    mount = "secret-eu"
  }
}
"""


@pytest.fixture
def aws_config_server(tmp_path):
    srv = ConfigServer(tmp_path, extra_config=CONFIG)
    srv.start()
    try:
        c = srv.client()
        init = c.sys.initialize(secret_shares=1, secret_threshold=1)
        c.sys.submit_unseal_key(init["keys"][0])
        root = srv.client(init["root_token"])
        root.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
        root.sys.enable_secrets_engine("kv", path="secret-eu", options={"version": "2"})
        root.sys.enable_auth_method("aws-access-keys", path="aws-keys")
        root.sys.create_or_update_policy(
            name="both", policy='path "secret/*" { capabilities = ["create", "read", "update", "list"] }\n'
                                'path "secret-eu/*" { capabilities = ["create", "read", "update", "list"] }\n')
        key = root.write("auth/aws-keys/keys/app", policies=["both"])["data"]
        srv.root = root
        srv.key = (key["access_key_id"], key["secret_access_key"])
        yield srv
    finally:
        srv.stop()


def test_a_mapped_region_is_served_by_its_own_mount(aws_config_server):
    srv = aws_config_server
    us = sm_client(srv, *srv.key, region="us-east-1")
    eu = sm_client(srv, *srv.key, region="eu-west-1")
    us.create_secret(Name="db", SecretString='{"where": "us"}')
    eu.create_secret(Name="db", SecretString='{"where": "eu"}')
    # one name, two stores: each region reads its own
    assert us.get_secret_value(SecretId="db")["SecretString"] == '{"where": "us"}'
    assert eu.get_secret_value(SecretId="db")["SecretString"] == '{"where": "eu"}'
    # and Vault sees them in the mounts the configuration names
    read = srv.root.secrets.kv.v2.read_secret_version
    assert read(path="db", mount_point="secret", raise_on_deleted_version=True)["data"]["data"] == {"where": "us"}
    assert read(path="db", mount_point="secret-eu", raise_on_deleted_version=True)["data"]["data"] == {"where": "eu"}
    # a region the configuration does not name is served by secret/
    ap = sm_client(srv, *srv.key, region="ap-south-1")
    assert ap.get_secret_value(SecretId="db")["SecretString"] == '{"where": "us"}'
    assert [s["Name"] for s in eu.list_secrets()["SecretList"]] == ["db"]


def test_the_configured_clock_skew_applies(aws_config_server):
    srv = aws_config_server
    sm_client(srv, *srv.key).create_secret(Name="skew", SecretString="x")
    now = datetime.datetime.now(datetime.timezone.utc)
    ok = raw_call(srv, "GetSecretValue", {"SecretId": "skew"}, *srv.key,
                  when=now - datetime.timedelta(seconds=60))
    assert ok.status_code == 200, ok.text
    # 3 minutes off: inside AWS's 15, outside the configured 2
    late = raw_call(srv, "GetSecretValue", {"SecretId": "skew"}, *srv.key,
                    when=now - datetime.timedelta(minutes=3))
    assert late.status_code == 400
    body = raw_json(late)
    assert body["__type"] == "InvalidSignatureException"
    assert "Signature expired" in body["message"]
    assert "2 min" in body["message"]
