"""High availability: 3-node clusters of `coffer server -config=<file>` sharing one storage engine
(PostgreSQL or etcd, `ha_enabled = "true"`) and one static seal key. One node holds the storage's
lock and is active; the others are standbys that forward every request of every dialect to it.

Each backend gets one module-scoped cluster (kept 3 nodes strong: the kill test restarts what it
kills); the cut-off test builds its own cluster, one node of which reaches the storage through a
TCP proxy the test can cut. The Vault endpoints and shapes (sys/leader, sys/health, sys/ha-status,
sys/step-down) are Vault's. Failing tests show the tail of every node's log.
"""

from __future__ import annotations

import datetime
import os
import http.client
import json
import re
import time
import types
import uuid

import hvac
import pytest

# ha_helpers is also a plugin (pytest_plugins below): have its asserts rewritten before it is imported
pytest.register_assert_rewrite("ha_helpers")

from aws_helpers import expect_error, sm_client
from conftest import audit_entries, http_session, uid
from ha_helpers import (KV_MOUNT, REQ_TIMEOUT, Cluster, Node, Why, Writer, api, check_readable, kv_read, kv_write,
                        longest_stretch, require_backend, start_cluster, try_json, wait_until)

pytest_plugins = ["ha_helpers"]

BACKENDS = ["postgresql", "etcd"]

# The spec's limits (seconds).
FAILOVER_S = 3.0            # a killed or stepped-down active is replaced within this
MAX_ERROR_STRETCH_S = 3.0   # longest run of failed writes, first failure sent -> next success answered
CUT_FAILOVER_S = 5.0        # a node cut off from the storage is replaced within ~this
CUT_FENCE_S = 5.0           # ... and stops acknowledging writes within ~this
# Failover times are measured by polling sys/leader (every 50 ms, each poll one request): allow
# for one poll's worth of measuring error on top of the spec's figure.
POLL_SLACK_S = 0.25

ZERO_TIME = "0001-01-01T00:00:00Z"


RFC3339_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$")


def parse_rfc3339(s: str) -> datetime.datetime:
    """An RFC 3339 time (any number of fractional digits) as an aware datetime."""
    m = RFC3339_RE.match(s.strip().upper())
    assert m, f"not an RFC 3339 time: {s!r}"
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.datetime.fromisoformat(f"{m.group(1)}.{frac}{tz}")


def ha_nodes(node: Node, token: str) -> list[dict]:
    """GET sys/ha-status through `node`: the `nodes` list (top level, as Vault; or under data)."""
    r = api(node, "GET", "sys/ha-status", token)
    assert r.status_code == 200, f"sys/ha-status through {node}: HTTP {r.status_code} {r.text[:300]}"
    body = r.json()
    nodes = body.get("nodes")
    if nodes is None:
        nodes = (body.get("data") or {}).get("nodes")
    assert isinstance(nodes, list), f"sys/ha-status through {node}: no nodes list in {body}"
    return nodes


def ha_status_complete(cluster: Cluster, through: list[Node]):
    """Every node of `through` answers a sys/ha-status listing exactly the cluster's nodes, one of
    them (the active) as active_node; answer {node name: nodes} or False."""
    act = cluster.stable()
    if not act:
        return act
    want = sorted(n.api_addr for n in cluster.nodes)
    seen = {}
    for n in through:
        try:
            nodes = ha_nodes(n, cluster.root_token)
        except AssertionError as e:
            return Why(str(e))
        addrs = sorted(x.get("api_address", "").rstrip("/") for x in nodes)
        actives = [x.get("api_address", "").rstrip("/") for x in nodes if x.get("active_node") is True]
        if addrs != want or actives != [act.api_addr]:
            return Why(f"through {n.name}: nodes {addrs} (want {want}), active {actives} (want {act.api_addr})")
        seen[n.name] = nodes
    return seen


def print_writer(label: str, w: Writer) -> None:
    st = w.stats()
    s = longest_stretch(w.attempts)
    longest = "none" if s is None else f"{s.seconds:.2f}s ({s.errors} errors, first {s.first_error})"
    print(f"{label}: {st}; longest error stretch: {longest}")


# --- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    require_backend(request.param)
    return request.param


@pytest.fixture(scope="module")
def cluster(backend, tmp_path_factory):
    c = start_cluster(backend, tmp_path_factory.mktemp(f"ha-{backend}"))
    try:
        yield c
    finally:
        c.close()


# --- 1. topology ------------------------------------------------------------------------------

def test_topology(cluster):
    act = cluster.ready()
    assert len(cluster.live()) == 3
    standbys = [n for n in cluster.nodes if n is not act]

    infos = {n.name: n.leader() for n in cluster.nodes}
    for n in cluster.nodes:
        info = infos[n.name]
        assert info is not None, f"{n} did not answer sys/leader"
        assert info["ha_enabled"] is True, info
        assert info["is_self"] is (n is act), (n, info)
        assert info["leader_address"].rstrip("/") == act.api_addr, (n, info)
        assert info["leader_cluster_address"].rstrip("/") == act.cluster_addr, (n, info)
        assert info["performance_standby"] is False, info
        assert info["performance_standby_last_remote_wal"] == 0, info
    assert sum(1 for i in infos.values() if i["is_self"]) == 1
    active_time = infos[act.name]["active_time"]
    assert active_time != ZERO_TIME, infos[act.name]
    t = parse_rfc3339(active_time)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()) < 3600, active_time
    for s in standbys:
        parse_rfc3339(infos[s.name]["active_time"])  # RFC 3339 (the zero time on a standby)

    # sys/health: 200 active, 429 standby (200 with standbyok), Vault's override codes
    st, body = act.health()
    assert st == 200, body
    assert body["standby"] is False and body["sealed"] is False and body["initialized"] is True, body
    cluster_ids = {body.get("cluster_id")}
    st, _ = act.health(activecode="202")
    assert st == 202
    for s in standbys:
        st, body = s.health()
        assert st == 429, (s, st, body)
        assert body["standby"] is True and body["sealed"] is False and body["initialized"] is True, body
        cluster_ids.add(body.get("cluster_id"))
        st, body = s.health(standbyok="true")
        assert st == 200 and body["standby"] is True, (s, st, body)
        st, _ = s.health(standbycode="472")
        assert st == 472, (s, st)
    assert len(cluster_ids) == 1 and all(cluster_ids), f"every node must report the cluster's id: {cluster_ids}"

    # sys/ha-status through every node (forwarded to the active): 3 nodes, one active. Standbys
    # may take a moment to check in after the cluster started.
    seen = wait_until(lambda: ha_status_complete(cluster, cluster.nodes), 12, interval=0.25,
                      what="sys/ha-status to list the 3 nodes with exactly one active, through every node")
    for nodes in seen.values():
        by_addr = {x["api_address"].rstrip("/"): x for x in nodes}
        for n in cluster.nodes:
            entry = by_addr[n.api_addr]
            for field in ("hostname", "api_address", "cluster_address", "active_node", "last_echo", "version"):
                assert field in entry, (field, entry)
            assert entry["cluster_address"].rstrip("/") == n.cluster_addr, entry
            assert entry["active_node"] is (n is act), entry
            assert isinstance(entry["hostname"], str) and entry["hostname"], entry
            assert isinstance(entry["version"], str) and entry["version"], entry
            if entry["last_echo"] is not None:
                parse_rfc3339(entry["last_echo"])
            if n is not act:
                assert entry["last_echo"] is not None, f"a standby listed without a check-in time: {entry}"


# --- 2. forwarding ----------------------------------------------------------------------------

def test_requests_through_standbys_are_forwarded(cluster, tmp_path):
    act = cluster.ready()
    s1, s2 = [n for n in cluster.nodes if n is not act]
    root = cluster.root_token

    # kv v2 through hvac: write through a standby, read through the other one and the active
    path = f"fwd/{uid()}"
    w = s1.client(root).secrets.kv.v2
    assert w.create_or_update_secret(path=path, secret={"n": 1}, mount_point=KV_MOUNT)["data"]["version"] == 1
    assert w.create_or_update_secret(path=path, secret={"n": 2}, mount_point=KV_MOUNT)["data"]["version"] == 2
    first_meta = None
    for n in (s2, act, s1):
        kv2 = n.client(root).secrets.kv.v2
        latest = kv2.read_secret_version(path=path, mount_point=KV_MOUNT, raise_on_deleted_version=True)["data"]
        assert latest["data"] == {"n": 2} and latest["metadata"]["version"] == 2, (n, latest)
        v1 = kv2.read_secret_version(path=path, version=1, mount_point=KV_MOUNT,
                                     raise_on_deleted_version=True)["data"]
        assert v1["data"] == {"n": 1} and v1["metadata"]["version"] == 1, (n, v1)
        meta = kv2.read_secret_metadata(path=path, mount_point=KV_MOUNT)["data"]
        assert meta["current_version"] == 2 and sorted(meta["versions"]) == ["1", "2"], (n, meta)
        first_meta = first_meta or meta
        assert meta == first_meta, f"{n} answers other metadata than the first node"

    # a bad token: the same 403 through a standby as through the active
    answers = {}
    for n in (act, s1, s2):
        r = api(n, "GET", f"{KV_MOUNT}/data/{path}", "not-a-real-token")
        answers[n.name] = (r.status_code, try_json(r))
    assert answers[act.name][0] == 403, answers
    assert answers[s1.name] == answers[act.name] == answers[s2.name], answers
    with pytest.raises(hvac.exceptions.Forbidden):
        s2.client("not-a-real-token").secrets.kv.v2.read_secret_version(path=path, mount_point=KV_MOUNT)

    # AWS Secrets Manager through the standbys: an access key made through a standby
    s1.client(root).sys.enable_auth_method("aws-access-keys", path="aws-keys")
    s2.client(root).sys.create_or_update_policy(
        name="ha-aws", policy='path "secret/*" { capabilities = ["create", "read", "update", "delete", "list"] }\n')
    key = s1.client(root).write("auth/aws-keys/keys/ha", policies=["ha-aws"])["data"]
    key_id, secret = key["access_key_id"], key["secret_access_key"]
    version_ids = set()
    for n in (s1, s2, act):
        sm = sm_client(types.SimpleNamespace(url=n.url), key_id, secret)
        g = sm.get_secret_value(SecretId=path)
        assert json.loads(g["SecretString"]) == {"n": 2}, (n, g["SecretString"])
        version_ids.add(g["VersionId"])
        expect_error("ResourceNotFoundException", sm.get_secret_value, SecretId=f"missing-{uid()}")
    assert len(version_ids) == 1, version_ids
    aws_name = f"fwd-aws-{uid()}"
    made = sm_client(types.SimpleNamespace(url=s2.url), key_id, secret).create_secret(
        Name=aws_name, SecretString=json.dumps({"from": "aws"}))
    assert made["Name"] == aws_name
    got = act.client(root).secrets.kv.v2.read_secret_version(path=aws_name, mount_point=KV_MOUNT,
                                                             raise_on_deleted_version=True)["data"]["data"]
    assert got == {"from": "aws"}

    # Azure Key Vault paths through a standby (raw requests: the SDKs insist on HTTPS)
    az = "fwdaz-" + uuid.uuid4().hex[:12]
    act.client(root).secrets.kv.v2.create_or_update_secret(path=az, secret={"a": "b"}, mount_point=KV_MOUNT)
    versions = set()
    s = http_session()
    try:
        for n in (s1, act):
            r = s.get(f"{n.url}/secrets/{az}", params={"api-version": "7.4"},
                      headers={"Authorization": f"Bearer {root}"}, timeout=REQ_TIMEOUT)
            assert r.status_code == 200, (n, r.status_code, r.text[:300])
            body = r.json()
            assert json.loads(body["value"]) == {"a": "b"}, body
            versions.add(body["id"].rstrip("/").rsplit("/", 1)[-1])
            # the challenge names the host the client asked (forwarding keeps the Host header)
            r = s.get(f"{n.url}/secrets/{az}", params={"api-version": "7.4"}, timeout=REQ_TIMEOUT)
            assert r.status_code == 401, (n, r.status_code, r.text[:300])
            challenge = r.headers.get("WWW-Authenticate", "")
            assert f"127.0.0.1:{n.api_port}/" in challenge, (n, challenge)
    finally:
        s.close()
    assert len(versions) == 1, versions

    # audit: a device enabled through a standby; a request through a standby is audited once
    device = uid("haaud")
    log = tmp_path / f"{device}.log"
    r = s1.client(root).sys.enable_audit_device(device_type="file", path=device, options={"file_path": str(log)})
    assert r.status_code == 204, r.text
    try:
        probe = f"audited/{uid()}"
        r = kv_write(s2, root, probe, {"x": "y"})
        assert r.status_code == 200, r.text
        request_id = r.json()["request_id"]
        entries = [e for e in audit_entries(log, missing_ok=True)
                   if (e.get("request") or {}).get("path") == f"{KV_MOUNT}/data/{probe}"]
        assert sorted(e["type"] for e in entries) == ["request", "response"], \
            f"expected one request and one response entry, got {json.dumps(entries, indent=1)[:3000]}"
        assert {e["request"]["id"] for e in entries} == {request_id}, entries
    finally:
        r = s2.client(root).sys.disable_audit_device(device)
        assert r.status_code == 204, r.text


# --- 3. kill -9 of the active node ------------------------------------------------------------

def test_kill9_of_the_active_node(cluster):
    cluster.ready()
    root = cluster.root_token
    w = Writer(cluster.live(), root, prefix=f"ha/{uid('kill')}").start()
    victim = None
    try:
        time.sleep(2.0)
        # the active, as sys/leader names it
        some = cluster.live()[0]
        info = some.leader()
        assert info and info.get("leader_address"), f"{some} names no leader: {info}"
        victim = cluster.node_at(info["leader_address"])
        assert victim is not None and victim.is_active(), (info, victim)
        survivors = [n for n in cluster.live() if n is not victim]
        w.set_targets(survivors)
        t_kill = time.monotonic()
        victim.kill9()
        new, waited = cluster.wait_new_active(survivors, timeout=FAILOVER_S + 10)
        assert new is not None, f"no node became active within {FAILOVER_S + 10:.0f}s of the kill"
        print(f"kill -9 of {victim}: {new} active after {waited:.2f}s")
        assert waited <= FAILOVER_S + POLL_SLACK_S, f"{new} became active only {waited:.2f}s after the kill"
        time.sleep(max(0.0, t_kill + 6.0 - time.monotonic()))
    finally:
        w.stop()
    print_writer("writer", w)

    longest = longest_stretch(w.attempts)
    if longest is not None:
        assert longest.recovered, f"writes never succeeded again after {longest.first_error}"
        assert longest.seconds <= MAX_ERROR_STRETCH_S, \
            f"writes failed for {longest.seconds:.2f}s ({longest.errors} requests, first {longest.first_error})"
    late = [a for a in w.attempts if a.ok and a.t0 > t_kill + waited]
    assert late, "no write was acknowledged after the failover"
    bad_503 = [a for a in w.attempts if a.status == 503 and not a.json_error_body]
    assert not bad_503, f"503 answers without a JSON error body: {bad_503[:3]}"

    problems = check_readable(survivors, root, w.acked)
    lost = {k: v for k, v in problems.items() if v}
    print(f"acknowledged keys: {len(w.acked)}; unreadable per node: { {k: len(v) for k, v in problems.items()} }")
    assert not lost, f"acknowledged writes lost: { {k: v[:5] for k, v in lost.items()} }"

    # the killed node comes back (same configuration) as a standby of the new active
    victim.restart()
    act = cluster.wait_stable(15, nodes=cluster.nodes)
    assert act is new, f"the active changed from {new} to {act} when {victim} rejoined"
    st, body = victim.health()
    assert st == 429 and body["standby"] is True, (st, body)
    info = victim.leader()
    assert info["is_self"] is False and info["leader_address"].rstrip("/") == new.api_addr, info
    some_key = next(iter(w.acked))
    st, data, _ = kv_read(victim, root, some_key)
    assert (st, data) == (200, w.acked[some_key]), f"a read through the rejoined {victim}: HTTP {st} {data}"
    wait_until(lambda: ha_status_complete(cluster, [victim]), 12, interval=0.25,
               what="sys/ha-status to list the rejoined node")


# --- 4. step-down -----------------------------------------------------------------------------

def test_step_down_through_a_standby(cluster):
    old = cluster.ready()
    root = cluster.root_token
    standby = next(n for n in cluster.nodes if n is not old)
    w = Writer(cluster.live(), root, prefix=f"ha/{uid('stepdown')}").start()
    try:
        time.sleep(1.0)
        t0 = time.monotonic()
        r = standby.client(root).sys.step_down()  # PUT sys/step-down, forwarded to the active
        assert r.status_code == 204, (r.status_code, r.text)
        new, waited = cluster.wait_new_active(cluster.live(), timeout=FAILOVER_S + 10, exclude=old)
        assert new is not None, f"no other node became active within {FAILOVER_S + 10:.0f}s of the step-down"
        print(f"step-down of {old}: {new} active after {waited:.2f}s")
        assert waited <= FAILOVER_S + POLL_SLACK_S, f"{new} became active only {waited:.2f}s after the step-down"
        time.sleep(max(0.0, t0 + 4.0 - time.monotonic()))
    finally:
        w.stop()
    print_writer("writer", w)
    longest = longest_stretch(w.attempts)
    if longest is not None:
        assert longest.recovered and longest.seconds <= MAX_ERROR_STRETCH_S, \
            f"writes failed for {longest.seconds:.2f}s ({longest.errors} requests, first {longest.first_error})"
    bad_503 = [a for a in w.attempts if a.status == 503 and not a.json_error_body]
    assert not bad_503, f"503 answers without a JSON error body: {bad_503[:3]}"

    act = cluster.wait_stable(FAILOVER_S)
    assert act is not old, f"{old} is active again right after stepping down"
    after = {}
    for n in cluster.nodes:
        key = f"ha/after-stepdown/{uid()}"
        r = kv_write(n, root, key, {"via": n.name})
        assert r.status_code == 200, f"write through {n} after the step-down: HTTP {r.status_code} {r.text[:300]}"
        after[key] = {"via": n.name}
    problems = check_readable(cluster.nodes, root, {**w.acked, **after})
    lost = {k: v for k, v in problems.items() if v}
    print(f"acknowledged keys: {len(w.acked) + len(after)}")
    assert not lost, f"acknowledged writes lost: { {k: v[:5] for k, v in lost.items()} }"


def test_ha_endpoints_denied_malformed_and_spelled(cluster):
    """sys/step-down and sys/ha-status through every node: a token without sudo on them is denied
    (and nothing steps down), wrong methods and other spellings do nothing, a forged forwarding
    marker is not trusted, and concurrent step-downs hand over once."""
    act = cluster.ready()
    root = cluster.root_token
    # a token with the default policy only, and one allowed everything under sys/ but not sudo
    r = api(act, "PUT", "sys/policy/ha-no-sudo", root,
            body={"policy": 'path "sys/*" { capabilities = ["create", "read", "update", "delete", "list"] }'})
    assert r.status_code in (200, 204), r.text
    plain = api(act, "POST", "auth/token/create", root, body={"policies": ["default"], "ttl": "10m"}).json()["auth"]["client_token"]
    no_sudo = api(act, "POST", "auth/token/create", root, body={"policies": ["ha-no-sudo"], "ttl": "10m"}).json()["auth"]["client_token"]
    for n in cluster.nodes:
        for tok in (plain, no_sudo, "not-a-token", None):
            r = api(n, "PUT", "sys/step-down", tok)
            assert r.status_code == 403, (n, tok, r.status_code, r.text)
            assert try_json(r) == {"errors": ["permission denied"]}, r.text
        r = api(n, "GET", "sys/ha-status", plain)
        assert r.status_code == 403, (n, r.status_code, r.text)
        # other spellings are other (unknown) paths, never the step-down
        for path in ("sys/Step-Down", "sys/STEP-DOWN", "SYS/step-down", "sys/step-down%00", "sys/step-down-x"):
            r = api(n, "PUT", path, root)
            assert r.status_code in (400, 404, 405), (n, path, r.status_code, r.text)
        # wrong method
        r = api(n, "GET", "sys/step-down", root)
        assert r.status_code == 405, (n, r.status_code, r.text)
        r = api(n, "PUT", "sys/leader", root, body={"is_self": True})
        assert r.status_code == 405, (n, r.status_code, r.text)
        # a client cannot make a standby skip forwarding or the active trust anything by
        # sending the forwarding marker: a standby refuses, the active ignores it
        r = api(n, "GET", "sys/ha-status", root, headers={"X-Coffer-Forwarded-By": "evil"})
        if n.is_active():
            assert r.status_code == 200, r.text
        else:
            assert r.status_code == 503 and "errors" in r.json(), (n, r.status_code, r.text)
    # nothing above moved the lock
    assert cluster.ready() is act or cluster.ready().api_addr == act.api_addr
    time.sleep(0.5)
    assert act.is_active(), "a denied or malformed request made the active node step down"
    # a standby refuses to seal, as Vault's do (it does not seal the active node either)
    for n in cluster.nodes:
        if n is not act:
            r = api(n, "PUT", "sys/seal", root)
            assert r.status_code == 500, (n, r.status_code, r.text)
            assert r.json() == {"errors": ["vault cannot seal when in standby mode; please restart instead"]}, r.text
    assert act.is_active()
    # oversized step-down body: refused or ignored, never a crash
    r = api(act, "PUT", "sys/step-down", plain, body={"x": "y" * (2 << 20)})
    assert r.status_code in (403, 413), (r.status_code, r.text[:200])
    assert act.is_active()


def _login_from(node: Node, source: str, mount: str, user: str, password: str,
                headers: dict | None = None) -> tuple[int, bytes]:
    """A userpass login sent from the loopback address `source` (127.0.0.x)."""
    conn = http.client.HTTPConnection("127.0.0.1", node.api_port, timeout=REQ_TIMEOUT,
                                      source_address=(source, 0))
    try:
        conn.request("POST", f"/v1/auth/{mount}/login/{user}", body=json.dumps({"password": password}),
                     headers={"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_client_address_is_vouched_for_through_a_standby(cluster):
    """A login bound to a client CIDR works through a standby from inside the CIDR and fails from
    outside it: the standby passes the client's address on, authenticated with a key derived from
    the cluster's root key; the same headers forged by a client are ignored."""
    act = cluster.ready()
    root = cluster.root_token
    mount = uid("up")
    r = api(act, "POST", f"sys/auth/{mount}", root, body={"type": "userpass"})
    assert r.status_code in (200, 204), r.text
    r = api(act, "POST", f"auth/{mount}/users/alice", root,
            body={"password": "correct-horse-1", "token_bound_cidrs": ["127.0.0.2/32"], "policies": ["default"]})
    assert r.status_code in (200, 204), r.text
    for n in cluster.nodes:
        st, body = _login_from(n, "127.0.0.2", mount, "alice", "correct-horse-1")
        assert st == 200, (n, st, body[:300])
        token = json.loads(body)["auth"]["client_token"]
        # the token is bound too: usable from 127.0.0.2 through any node, not from 127.0.0.1
        for m in cluster.nodes:
            conn = http.client.HTTPConnection("127.0.0.1", m.api_port, timeout=REQ_TIMEOUT,
                                              source_address=("127.0.0.2", 0))
            conn.request("GET", "/v1/auth/token/lookup-self", headers={"X-Vault-Token": token})
            assert conn.getresponse().status == 200, (n, m)
            conn.close()
            r = api(m, "GET", "auth/token/lookup-self", token)
            assert r.status_code == 403, (n, m, r.status_code, r.text)
        st, body = _login_from(n, "127.0.0.1", mount, "alice", "correct-horse-1")
        assert st == 403, (n, st, body[:300])
    # a client forging the forwarding headers (straight to the active, or through a standby)
    # gains nothing
    forged = {
        "X-Coffer-Forwarded-By": "some-node",
        "X-Coffer-Forwarded-For": "127.0.0.2",
        "X-Coffer-Forwarded-At": str(int(time.time())),
        "X-Coffer-Forwarded-Mac": "00" * 32,
    }
    st, body = _login_from(act, "127.0.0.1", mount, "alice", "correct-horse-1", headers=forged)
    assert st == 403, (st, body[:300])
    standby = next(n for n in cluster.nodes if n is not act)
    no_by = {k: v for k, v in forged.items() if k != "X-Coffer-Forwarded-By"}
    st, body = _login_from(standby, "127.0.0.1", mount, "alice", "correct-horse-1", headers=no_by)
    assert st == 403, (st, body[:300])


# --- 5. the active node cut off from the storage ----------------------------------------------

def test_a_node_cut_off_from_the_storage_is_fenced(backend, tmp_path):
    c = start_cluster(backend, tmp_path, proxy_first=True)
    try:
        root = c.root_token
        a = c.nodes[0]  # started first, initialized through: active; its storage goes through c.proxy
        act = c.wait_stable(15)
        assert act is a, f"expected {a} (initialized first) to be active, got {act}"
        assert c.proxy.accepted > 0, "the proxied node never connected through the proxy"
        others = c.nodes[1:]

        fence = f"fence/{uid()}"
        w = Writer([a], root, prefix=f"cut/{uid()}", fence_key=fence).start()
        try:
            wait_until(lambda: w.fence_acked and len(w.acked) >= 3, 10,
                       what="the writer to get writes acknowledged by the active node")
            time.sleep(0.5)
            t_cut = time.monotonic()
            c.proxy.cut()
            new, waited = c.wait_new_active(others, timeout=CUT_FAILOVER_S + 15)
            assert new is not None, f"no other node became active within {CUT_FAILOVER_S + 15:.0f}s of the cut"
            print(f"{a} cut off from {c.store.describe()}: {new} active after {waited:.2f}s")
            assert waited <= CUT_FAILOVER_S + POLL_SLACK_S, \
                f"{new} became active only {waited:.2f}s after {a} was cut off"

            # the new active writes the fence key (a moment's retry: it just took over)
            def write_new():
                r = kv_write(new, root, fence, {"by": "new-active"})
                return r if r.status_code == 200 else None
            r = wait_until(write_new, 3, interval=0.1, what=f"a write through the new active {new}")
            new_version = r.json()["data"]["version"]
            time.sleep(max(0.0, t_cut + CUT_FENCE_S + 3.0 - time.monotonic()))
        finally:
            w.stop()
        print_writer("writer through the cut-off node", w)

        after = [x for x in w.attempts if x.t0 >= t_cut]
        late = [x for x in after if x.t0 >= t_cut + CUT_FENCE_S]
        assert late, f"the writer sent nothing to {a} from {CUT_FENCE_S:.0f}s after the cut on"
        acked_late = [x for x in late if x.ok]
        assert not acked_late, \
            f"{a} acknowledged writes {CUT_FENCE_S:.0f}s and more after being cut off: {acked_late[:5]}"
        print(f"writes through {a} after the cut: {len(after)} ({sum(x.ok for x in after)} acknowledged, "
              f"all within {CUT_FENCE_S:.0f}s)")

        # heal: the node comes back as a standby of the new active, never as a second active
        c.proxy.heal()

        def back_as_standby():
            actives = c.actives(c.nodes)
            assert len(actives) <= 1, f"two active nodes after the heal: {actives}"
            info = a.leader()
            if not info or info.get("is_self") or info.get("leader_address", "").rstrip("/") != new.api_addr:
                return False
            return a.health()[0] == 429
        wait_until(back_as_standby, 20, interval=0.2, what=f"{a} to come back as a standby of {new}")
        time.sleep(1.0)  # anything the old active still had queued would land by now
        assert c.wait_stable(5) is new

        # nothing the cut-off node did overwrote the new active's write
        for n in (new, a):
            st, data, version = kv_read(n, root, fence)
            assert (st, data, version) == (200, {"by": "new-active"}, new_version), \
                f"the fence key through {n}: HTTP {st} {data} version {version} (want version {new_version})"
            meta = api(n, "GET", f"{KV_MOUNT}/metadata/{fence}", root).json()["data"]
            assert meta["current_version"] == new_version, meta

        # every write the cut-off node acknowledged is there, read through every node (a forwards)
        problems = check_readable(c.nodes, root, w.acked)
        lost = {k: v for k, v in problems.items() if v}
        print(f"acknowledged keys: {len(w.acked)}")
        assert not lost, f"acknowledged writes lost: { {k: v[:5] for k, v in lost.items()} }"
        r = kv_write(a, root, f"cut/after-heal/{uid()}", {"ok": True})
        assert r.status_code == 200, f"a write through the healed standby {a}: HTTP {r.status_code} {r.text[:300]}"
    finally:
        c.close()


def test_audit_chain_continues_across_failovers(backend, tmp_path):
    """One file audit device on a cluster (the nodes share the file, as nodes on one host would):
    requests before and after a step-down and a kill -9 land in one chain that `coffer audit
    verify` accepts, each request audited once, by whichever node was active."""
    import subprocess

    from conftest import coffer_bin

    (tmp_path / "audit").mkdir()
    cluster = start_cluster(backend, tmp_path / "audit")
    try:
        root = cluster.root_token
        act = cluster.ready()
        log = tmp_path / "cluster-audit.log"
        r = api(act, "PUT", "sys/audit/clusterfile", root, body={"type": "file", "options": {"file_path": str(log)}})
        assert r.status_code == 204, r.text
        marks = []

        def burst(label: str) -> None:
            for i, n in enumerate(cluster.live()):
                key = f"audit/{label}-{i}"
                # right after a failover a standby may answer 503 until it sees the new active
                # node (within the failover bound); a 503 is not forwarded, so not audited
                deadline = time.monotonic() + 3.0
                while True:
                    r = kv_write(n, root, key, {"v": label})
                    if r.status_code != 503 or time.monotonic() >= deadline:
                        break
                    time.sleep(0.05)
                assert r.status_code == 200, (label, n, r.status_code, r.text)
                marks.append(key)

        burst("before")
        r = api(cluster.live()[1] if cluster.live()[0] is act else cluster.live()[0], "PUT", "sys/step-down", root)
        assert r.status_code == 204, r.text
        new, _ = cluster.wait_new_active(cluster.live(), timeout=10, exclude=act)
        assert new is not None
        burst("after-step-down")
        new.kill9()
        third, _ = cluster.wait_new_active(cluster.live(), timeout=10, exclude=new)
        assert third is not None
        time.sleep(0.5)
        burst("after-kill")
        entries = audit_entries(log)
        for key in marks:
            reqs = [e for e in entries if e.get("type") == "request"
                    and e.get("request", {}).get("path") == f"{KV_MOUNT}/data/{key}"]
            assert len(reqs) == 1, (key, len(reqs))
        env = {**os.environ, "VAULT_ADDR": third.url, "VAULT_TOKEN": root}
        p = subprocess.run([coffer_bin(), "audit", "verify", str(log)], env=env, capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0, f"audit verify failed:\n{p.stdout}\n{p.stderr}"
    finally:
        cluster.close()


def test_concurrent_inits_on_two_nodes_make_one_cluster(backend, tmp_path):
    """Two uninitialized nodes of one cluster asked to initialize at the same moment: exactly one
    init succeeds (the other is refused: the winner holds the cluster's lock, or it finds the
    cluster initialized), and the cluster then works with the winner's root token through both."""
    import threading

    from ha_helpers import hcl_block, make_store, seal_stanza, write_seal_key

    store = make_store(backend).create()
    key = write_seal_key(tmp_path / "seal.key")
    storage = hcl_block("storage", backend, store.attrs(None, ha=True))
    nodes = [Node(f"i{i}", tmp_path, lambda s=storage: s, seal_stanza(key)) for i in range(2)]
    try:
        for n in nodes:
            n.start()
        answers = [None, None]
        go = threading.Barrier(2)

        def init(i):
            go.wait()
            answers[i] = api(nodes[i], "PUT", "sys/init", body={}, timeout=30)

        threads = [threading.Thread(target=init, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        codes = sorted(a.status_code for a in answers)
        assert codes[0] == 200 and codes[1] in (400, 503), [(a.status_code, a.text[:200]) for a in answers]
        winner = next(a for a in answers if a.status_code == 200)
        loser = next(a for a in answers if a.status_code != 200)
        assert "errors" in loser.json(), loser.text
        root = winner.json()["root_token"]
        wait_until(lambda: any(n.is_active() for n in nodes), 10, what="an active node")
        wait_until(lambda: all(n.leader() and n.leader().get("leader_address") for n in nodes), 10,
                   what="both nodes to know the active node")
        r = api(nodes[0], "POST", f"sys/mounts/{KV_MOUNT}", root, body={"type": "kv", "options": {"version": "2"}})
        assert r.status_code in (200, 204), r.text
        for n in nodes:
            r = kv_write(n, root, f"init-race/{n.name}", {"via": n.name})
            assert r.status_code == 200, (n, r.status_code, r.text)
        for n in nodes:
            for m in nodes:
                st, data, _ = kv_read(n, root, f"init-race/{m.name}")
                assert st == 200 and data == {"via": m.name}, (n, m, st, data)
    finally:
        for n in nodes:
            n.stop()
        store.drop()


def test_a_leader_advert_forged_in_the_storage_is_not_followed(tmp_path):
    """Someone who can write the storage (but holds no key of the cluster) rewrites the lock's
    advert to send standbys' forwarded requests (tokens, secret values) to their own server:
    standbys do not follow it (they answer 503 instead), and follow the real one again once the
    advert is back."""
    import http.server
    import threading

    require_backend("postgresql")
    cluster = start_cluster("postgresql", tmp_path)
    caught = []

    class Catcher(http.server.BaseHTTPRequestHandler):
        def do_PUT(self):  # noqa: N802 - http.server's naming
            caught.append((self.path, dict(self.headers)))
            self.send_response(200)
            self.end_headers()

        do_POST = do_GET = do_PUT  # noqa: N815

        def log_message(self, *a):
            pass

    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Catcher)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        root = cluster.root_token
        act = cluster.ready()
        standby = next(n for n in cluster.nodes if n is not act)
        c = cluster.store._connect(cluster.store.dbname)
        try:
            (original,), = c.run("SELECT ha_value FROM coffer_ha_locks WHERE ha_key = 'leader'")
            forged = json.loads(original)
            forged["api_addr"] = f"http://127.0.0.1:{evil.server_address[1]}"
            c.run("UPDATE coffer_ha_locks SET ha_value = :v WHERE ha_key = 'leader'", v=json.dumps(forged))
            time.sleep(1.0)  # several polls of the standbys
            r = kv_write(standby, root, "forged/x", {"secret": "must-not-leave"})
            assert r.status_code == 503, (r.status_code, r.text)
            assert caught == [], caught
            r = api(standby, "GET", "sys/leader")
            assert r.json()["leader_address"] != forged["api_addr"], r.text
            c.run("UPDATE coffer_ha_locks SET ha_value = :v WHERE ha_key = 'leader'", v=original)
        finally:
            c.close()
        wait_until(lambda: kv_write(standby, root, "forged/y", {"v": 1}).status_code == 200, 10,
                   what="forwarding to the real active node again")
        assert caught == [], caught
    finally:
        evil.shutdown()
        cluster.close()
