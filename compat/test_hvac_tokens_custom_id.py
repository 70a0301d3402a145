"""Root-chosen token ids (auth/token/create `id`), which Vault restricts."""

import pytest
from hvac import exceptions

from conftest import uid


def test_custom_token_id(dev_server, client):
    tid = "custom" + uid().replace("-", "")
    auth = client.auth.token.create(id=tid, policies=["default"], ttl="5m")["auth"]
    assert auth["client_token"] == tid
    assert dev_server.client(tid).auth.token.lookup_self()["data"]["id"] == tid
    client.auth.token.revoke(tid)


def test_custom_token_id_needs_root(dev_server, client):
    # Vault: "id" can only be specified by a root token
    parent = client.auth.token.create(policies=["default"], ttl="5m")["auth"]["client_token"]
    tid = "custom" + uid().replace("-", "")
    with pytest.raises((exceptions.Forbidden, exceptions.InvalidRequest)):
        dev_server.client(parent).auth.token.create(id=tid, policies=["default"], ttl="5m")
    assert dev_server.client(tid).is_authenticated() is False


# Vault API docs: "The ID provided may not contain a `.` character" (older versions: "custom token
# ID cannot have the 's.' prefix"), so custom ids never pass for generated (hvs./s.) or namespaced
# (<id>.<ns>) tokens. (Coffer accepted them until 934783b.)
@pytest.mark.parametrize("prefix", ["hvs.", "s.", "a.b"])
def test_custom_token_id_with_dot_is_refused(dev_server, client, prefix):
    tid = prefix + uid().replace("-", "")
    try:
        with pytest.raises(exceptions.InvalidRequest):
            client.auth.token.create(id=tid, policies=["default"], ttl="5m")
    finally:
        try:
            client.auth.token.revoke(tid)
        except exceptions.VaultError:
            pass
