"""hvac 2.4 seal administration: rekey (with and without verification), root token generation,
moving a mount, on real `coffer server` processes."""

import base64

import pytest
from hvac import exceptions

from conftest import uid


def decode_root_token(encoded: str, otp: str) -> str:
    """What `vault operator generate-root -decode` does: unpadded base64, XOR with the OTP."""
    raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    assert len(raw) == len(otp)
    return bytes(a ^ b for a, b in zip(raw, otp.encode())).decode()


def init_unsealed(config_server, shares=3, threshold=2):
    c = config_server.client()
    init = c.sys.initialize(shares, threshold)
    assert c.sys.submit_unseal_keys(init["keys"][:threshold])["sealed"] is False
    return c, init["keys"], init["root_token"]


def test_rekey_old_shares_stop_working_new_ones_unseal(config_server):
    c, old, root = init_unsealed(config_server)
    rc = config_server.client(root)
    rc.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
    rc.secrets.kv.v2.create_or_update_secret(path="db", secret={"pw": "kept"}, mount_point="kv")

    assert c.sys.read_rekey_progress()["started"] is False
    start = c.sys.start_rekey(secret_shares=5, secret_threshold=3)
    assert start["started"] is True and start["n"] == 5 and start["t"] == 3 and start["required"] == 2
    nonce = start["nonce"]
    # a second start, a wrong nonce and a repeated share are refused as Vault refuses them
    with pytest.raises(exceptions.InvalidRequest, match="rekey already in progress"):
        c.sys.start_rekey(secret_shares=5, secret_threshold=3)
    with pytest.raises(exceptions.InvalidRequest, match="incorrect nonce"):
        c.sys.rekey(old[0], nonce="not-the-nonce")
    r = c.sys.rekey(old[0], nonce=nonce)
    assert r["progress"] == 1 and r["started"] is True
    with pytest.raises(exceptions.InvalidRequest, match="already been provided"):
        c.sys.rekey(old[0], nonce=nonce)
    assert c.sys.read_rekey_progress()["progress"] == 1

    done = c.sys.rekey_multi(old[1:], nonce=nonce)
    assert done["complete"] is True and done["nonce"] == nonce
    new = done["keys"]
    assert len(new) == 5 and len(done["keys_base64"]) == 5
    assert not set(new) & set(old)
    assert c.sys.read_rekey_progress()["started"] is False
    st = c.sys.read_seal_status()
    assert st["t"] == 3 and st["n"] == 5

    assert rc.sys.seal().status_code == 204
    with pytest.raises(exceptions.InvalidRequest):
        c.sys.submit_unseal_keys(old)
    assert c.sys.is_sealed() is True
    c.sys.submit_unseal_key(reset=True)
    assert c.sys.submit_unseal_keys(new[2:])["sealed"] is False
    got = rc.secrets.kv.v2.read_secret_version(path="db", mount_point="kv", raise_on_deleted_version=True)
    assert got["data"]["data"] == {"pw": "kept"}


def test_rekey_verification_and_cancel(config_server):
    c, old, root = init_unsealed(config_server)
    c.sys.start_rekey(secret_shares=3, secret_threshold=2, require_verification=True)
    assert c.sys.cancel_rekey().status_code == 204
    assert c.sys.read_rekey_progress()["started"] is False

    start = c.sys.start_rekey(secret_shares=3, secret_threshold=2, require_verification=True)
    assert start["verification_required"] is True
    done = c.sys.rekey_multi(old[:2], nonce=start["nonce"])
    assert done["complete"] is True and done["verification_required"] is True
    new, vnonce = done["keys"], done["verification_nonce"]
    prog = c.sys.read_rekey_verify_progress()
    assert prog["nonce"] == vnonce and prog["started"] is True and prog["progress"] == 0

    assert c.sys.rekey_verify(new[0], vnonce)["progress"] == 1
    restarted = c.sys.cancel_rekey_verify()  # answers the verification status with a new nonce
    assert restarted["nonce"] != vnonce and restarted["progress"] == 0
    vnonce = restarted["nonce"]
    assert c.sys.read_rekey_verify_progress()["progress"] == 0
    with pytest.raises(exceptions.InvalidRequest, match="incorrect nonce"):
        c.sys.rekey_verify(new[0], "wrong")
    v = c.sys.rekey_verify_multi(new[1:], vnonce)
    assert v["complete"] is True

    rc = config_server.client(root)
    with pytest.raises(exceptions.InvalidRequest, match="no backed-up keys found"):
        rc.sys.read_backup_keys()
    rc.sys.seal()
    with pytest.raises(exceptions.InvalidRequest):
        c.sys.submit_unseal_keys(old[:2])
    c.sys.submit_unseal_key(reset=True)
    assert c.sys.submit_unseal_keys(new[:2])["sealed"] is False


def test_generate_root_token_works_for_sudo_paths(config_server):
    c, keys, _root = init_unsealed(config_server)
    prog = c.sys.read_root_generation_progress()
    assert prog["started"] is False and prog["required"] == 2 and prog["otp_length"] == 28

    start = c.sys.start_root_token_generation()
    otp, nonce = start["otp"], start["nonce"]
    assert len(otp) == 28 and start["started"] is True
    with pytest.raises(exceptions.InvalidRequest, match="already in progress"):
        c.sys.start_root_token_generation()
    assert c.sys.cancel_root_generation().status_code == 204
    assert c.sys.read_root_generation_progress()["started"] is False
    with pytest.raises(exceptions.InvalidRequest, match="wrong length"):
        c.sys.start_root_token_generation(otp="c2hvcnQ=")

    start = c.sys.start_root_token_generation()
    otp, nonce = start["otp"], start["nonce"]
    with pytest.raises(exceptions.InvalidRequest, match="incorrect nonce"):
        c.sys.generate_root(keys[0], "bad-nonce")
    r = c.sys.generate_root(keys[0], nonce)
    assert r["progress"] == 1 and r["complete"] is False
    r = c.sys.generate_root(keys[2], nonce)
    assert r["complete"] is True
    token = decode_root_token(r["encoded_token"], otp)
    assert token.startswith("hvs.")

    tc = config_server.client(token)
    assert tc.auth.token.lookup_self()["data"]["policies"] == ["root"]
    # sudo paths: key rotation and the audit device list
    assert tc.sys.rotate_encryption_key().status_code == 204
    tc.sys.list_enabled_audit_devices()


def test_move_backend_keeps_the_data(client):
    src, dst = uid("src"), uid("dst")
    client.sys.enable_secrets_engine("kv", path=src, options={"version": "2"})
    client.secrets.kv.v2.create_or_update_secret(path="app", secret={"pw": "moved"}, mount_point=src)
    r = client.sys.move_backend(src, dst)
    migration = r["data"]["migration_id"]
    status = client.read(f"sys/remount/status/{migration}")["data"]
    assert status["migration_info"] == {"source_mount": f"{src}/", "target_mount": f"{dst}/", "status": "success"}
    got = client.secrets.kv.v2.read_secret_version(path="app", mount_point=dst, raise_on_deleted_version=True)
    assert got["data"]["data"] == {"pw": "moved"}
    assert f"{src}/" not in client.sys.list_mounted_secrets_engines()["data"]
    with pytest.raises(exceptions.InvalidPath):
        client.secrets.kv.v2.read_secret_version(path="app", mount_point=src, raise_on_deleted_version=True)
    with pytest.raises(exceptions.InvalidRequest, match="cannot remount"):
        client.sys.move_backend("sys", uid("x"))
    with pytest.raises(exceptions.InvalidRequest, match="path already in use"):
        client.sys.move_backend(dst, "secret")
    client.sys.disable_secrets_engine(dst)


def test_move_backend_needs_sudo(token_for_policy):
    c = token_for_policy('path "sys/remount" { capabilities = ["update"] }')
    with pytest.raises(exceptions.Forbidden):
        c.sys.move_backend("secret", uid("x"))
