"""`coffer operator migrate -config=<file> [-start=<key>]`: copy every storage entry (raw bytes,
already ciphertext) from a `storage_source` to a `storage_destination` (file, postgresql or etcd on
either side), offline. It prints `copied N entries` last.

One file-storage server with a static seal is populated once (kv v2 secrets with several versions,
deleted and destroyed ones, custom metadata, a policy, a token, an AWS access key) and stopped; its
data directory is the source of every migration here. After a migration a server started on the
destination with the same seal key must answer exactly what the original answered.
"""

from __future__ import annotations

import dataclasses
import shutil
import types
from pathlib import Path

import pytest

# ha_helpers is also a plugin (pytest_plugins below): have its asserts rewritten before it is imported
pytest.register_assert_rewrite("ha_helpers")

from aws_helpers import sm_client
from conftest import make_client
from ha_helpers import (COPIED_RE, KV_MOUNT, EtcdStore, PgStore, SingleServer, api, hcl_block, init_static,
                        migrate_config, require_backend, run_migrate, seal_stanza, try_json, wait_until,
                        write_seal_key)

pytest_plugins = ["ha_helpers"]

N_SECRETS = 20
READER_POLICY = ('path "secret/data/mig/*" { capabilities = ["read"] }\n'
                 'path "secret/metadata/mig/*" { capabilities = ["read", "list"] }\n')


@dataclasses.dataclass
class Source:
    data_dir: Path
    key: Path
    root: str
    token: str
    aws: tuple[str, str]
    snapshot: dict


def populate(url: str, root: str) -> tuple[str, tuple[str, str]]:
    """kv v2 secrets mig/s00..s19 (1-3 versions; some latest versions deleted, some first versions
    destroyed, some with custom metadata; s19 deleted with all its versions), a policy, a token of
    that policy and an AWS access key. Answers (token, (key id, secret))."""
    c = make_client(url, root)
    c.sys.enable_secrets_engine("kv", path=KV_MOUNT, options={"version": "2"})
    kv2 = c.secrets.kv.v2
    for i in range(N_SECRETS):
        p = f"mig/s{i:02d}"
        for v in range(1 + i % 3):
            kv2.create_or_update_secret(path=p, secret={"i": i, "v": v + 1, "pad": "x" * i}, mount_point=KV_MOUNT)
        if i % 3 == 2 and i % 2 == 0:
            kv2.destroy_secret_versions(path=p, versions=[1], mount_point=KV_MOUNT)
        if i % 4 == 1:
            kv2.delete_latest_version_of_secret(path=p, mount_point=KV_MOUNT)
        if i % 7 == 3:
            kv2.update_metadata(path=p, max_versions=5, custom_metadata={"owner": f"team-{i}"},
                                mount_point=KV_MOUNT)
    kv2.delete_metadata_and_all_versions(path=f"mig/s{N_SECRETS - 1:02d}", mount_point=KV_MOUNT)
    kv2.create_or_update_secret(path="mig-aws", secret={"k": "v"}, mount_point=KV_MOUNT)

    c.sys.create_or_update_policy(name="mig-reader", policy=READER_POLICY)
    token = c.auth.token.create(policies=["mig-reader"], ttl="2h", meta={"purpose": "migrate"})["auth"]["client_token"]

    c.sys.enable_auth_method("aws-access-keys", path="aws-keys")
    c.sys.create_or_update_policy(name="mig-aws", policy='path "secret/*" { capabilities = ["read", "list"] }\n')
    key = c.write("auth/aws-keys/keys/mig", policies=["mig-aws"])["data"]
    c.adapter.close()
    return token, (key["access_key_id"], key["secret_access_key"])


def snapshot(url: str, root: str, token: str, aws: tuple[str, str]) -> dict:
    """What the server answers about everything populate() made (request ids and TTLs left out)."""
    out: dict = {}

    def get(path: str, tok: str | None = root, method: str = "GET", body=None):
        r = api(url, method, path, tok, body=body)
        b = try_json(r)
        if isinstance(b, dict):
            b.pop("request_id", None)
            if isinstance(b.get("data"), dict):
                b["data"].pop("ttl", None)  # token lookups: counts down
        return r.status_code, b

    mounts = get("sys/mounts")
    assert mounts[0] == 200, mounts
    out["mounts"] = {k: (v.get("type"), v.get("uuid"), v.get("accessor")) for k, v in mounts[1]["data"].items()}
    out["auth"] = sorted(get("sys/auth")[1]["data"])
    out["list mig/"] = get(f"{KV_MOUNT}/metadata/mig", method="LIST")
    for i in range(N_SECRETS):
        p = f"mig/s{i:02d}"
        st, meta = get(f"{KV_MOUNT}/metadata/{p}")
        out[f"metadata {p}"] = (st, meta)
        out[f"data {p}"] = get(f"{KV_MOUNT}/data/{p}")
        if st == 200:
            for v in sorted(meta["data"]["versions"], key=int):
                out[f"data {p} v{v}"] = get(f"{KV_MOUNT}/data/{p}?version={v}")
    out["policy"] = get("sys/policy/mig-reader")
    out["root lookup-self"] = get("auth/token/lookup-self")
    out["token lookup-self"] = get("auth/token/lookup-self", tok=token)
    out["token reads"] = get(f"{KV_MOUNT}/data/mig/s00", tok=token)
    out["token denied"] = get(f"{KV_MOUNT}/data/mig-aws", tok=token)[0]
    out["token capabilities"] = get("sys/capabilities-self", tok=token, method="POST",
                                    body={"paths": [f"{KV_MOUNT}/data/mig/s01", f"{KV_MOUNT}/data/other"]})
    out["bad token"] = get(f"{KV_MOUNT}/data/mig/s00", tok="not-a-real-token")[0]
    g = sm_client(types.SimpleNamespace(url=url), *aws).get_secret_value(SecretId="mig-aws")
    out["aws get mig-aws"] = (g["SecretString"], g["VersionId"])
    return out


def assert_same(got: dict, want: dict, where: str) -> None:
    diffs = {k: {"want": want.get(k, "<missing>"), "got": got.get(k, "<missing>")}
             for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)}
    assert not diffs, f"{where} answers differently from the original server in {len(diffs)} places: " + \
        "\n".join(f"{k}: {v}" for k, v in list(diffs.items())[:10])


def serve_and_snapshot(workdir: Path, storage_hcl: str, src: Source, label: str) -> dict:
    """Start a server on a migrated store with the source's seal key (it unseals itself), take
    its snapshot, stop it."""
    srv = SingleServer(workdir, storage_hcl, seal_stanza(src.key), label)
    try:
        wait_until(lambda: api(srv.url, "GET", "sys/health").status_code == 200, 15,
                   what=f"the server on the migrated store ({label}) to unseal itself")
        return snapshot(srv.url, src.root, src.token, src.aws)
    finally:
        srv.stop()
        srv.forget()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    require_all()  # every test here needs both (skip before starting anything)
    tmp = tmp_path_factory.mktemp("migrate-source")
    key = write_seal_key(tmp / "seal.key")
    data = tmp / "data"
    srv = SingleServer(tmp, hcl_block("storage", "file", {"path": str(data)}), seal_stanza(key),
                       "migrate source (file storage)")
    try:
        try:
            root = init_static(srv.url)
            token, aws = populate(srv.url, root)
            snap = snapshot(srv.url, root, token, aws)
            # the snapshot is stable: a difference later is the migration's doing
            assert_same(snapshot(srv.url, root, token, aws), snap, "the same server, asked twice,")
        finally:
            srv.stop()  # migrate is offline: the source's server is stopped
        yield Source(data, key, root, token, aws, snap)
    finally:
        srv.forget()


def require_all() -> None:
    require_backend("postgresql")
    require_backend("etcd")


def ok(result) -> int:
    """A migration that succeeded: answer how many entries it says it copied."""
    assert result.rc == 0, f"migrate failed\n{result}"
    return result.copied()


# --- 6. file -> postgresql -> etcd -> file ----------------------------------------------------

def test_round_trip_file_postgresql_etcd_file(source, tmp_path):
    require_all()
    pg, etcd = PgStore().create(), EtcdStore().create()
    try:
        n1 = ok(run_migrate(tmp_path, migrate_config(source.data_dir, pg)))
        assert n1 > 0
        assert pg.count() == n1, f"{pg.describe()} holds {pg.count()} rows, migrate said it copied {n1}"

        n2 = ok(run_migrate(tmp_path, migrate_config(pg, etcd)))
        assert n2 == n1, f"postgresql -> etcd copied {n2} entries, file -> postgresql {n1}"
        assert etcd.count() == n2, f"{etcd.describe()} holds {etcd.count()} keys, migrate said it copied {n2}"

        final = tmp_path / "final-data"
        n3 = ok(run_migrate(tmp_path, migrate_config(etcd, final)))
        assert n3 == n2, f"etcd -> file copied {n3} entries, postgresql -> etcd {n2}"

        print(f"copied {n1} entries on each hop")
        snap = serve_and_snapshot(tmp_path / "final", hcl_block("storage", "file", {"path": str(final)}), source,
                                  "server on the round-tripped file storage")
        assert_same(snap, source.snapshot, "the server on file -> postgresql -> etcd -> file")
    finally:
        pg.drop()
        etcd.drop()


# --- 7. -start and refusals -------------------------------------------------------------------

def test_start_copies_only_the_keys_from_there_on(source, tmp_path):
    require_all()
    full, part, pg = EtcdStore().create(), EtcdStore().create(), PgStore().create()
    try:
        n = ok(run_migrate(tmp_path, migrate_config(source.data_dir, full)))
        items = full.items()
        assert len(items) == n, f"{full.describe()} holds {len(items)} keys, migrate said it copied {n}"
        order = sorted(items, key=lambda k: k.encode("utf-8", "surrogateescape"))
        start = order[len(order) // 2]
        tail = [k for k in order if k.encode("utf-8", "surrogateescape") >= start.encode("utf-8", "surrogateescape")]
        assert 0 < len(tail) < n

        # an interrupted migration copied what sorts before `start`; -start=<key> finishes it
        for k in order:
            if k not in tail:
                part.put_raw(k, items[k])
        m = ok(run_migrate(tmp_path, migrate_config(source.data_dir, part), start=start))
        assert m == len(tail), f"-start={start!r} copied {m} entries; {len(tail)} of {n} keys are >= it"
        assert part.items() == items, "the resumed migration's keys or values differ from the full one's"

        # into an empty store, -start copies just the keys from `start` on
        m2 = ok(run_migrate(tmp_path, migrate_config(source.data_dir, pg), start=start))
        assert m2 == len(tail) and pg.count() == len(tail), (m2, pg.count(), len(tail))

        # the resumed store serves everything
        storage = hcl_block("storage", "etcd", part.attrs())
        snap = serve_and_snapshot(tmp_path / "resumed", storage, source, "server on the resumed etcd store")
        assert_same(snap, source.snapshot, "the server on the resumed migration")
    finally:
        full.drop()
        part.drop()
        pg.drop()


def test_a_destination_in_use_is_refused(source, tmp_path):
    """Without -start the destination must be empty: a second migration into the same store (or
    into another cluster's store) is refused and changes nothing."""
    require_all()
    pg = PgStore().create()
    try:
        n = ok(run_migrate(tmp_path, migrate_config(source.data_dir, pg)))
        before = pg.count()
        assert before == n
        r = run_migrate(tmp_path, migrate_config(source.data_dir, pg), timeout=60)
        assert r.rc != 0, f"a migration into a non-empty store went ahead\n{r}"
        assert "not empty" in (r.stdout + r.stderr), r
        assert pg.count() == before
    finally:
        pg.drop()


CONSUL = ("consul", {"address": "127.0.0.1:8500", "path": "coffer/"})
INMEM = ("inmem", {})

# name: (source, destination, words of which the message must contain one)
BAD = {
    "missing-destination": ("file", None, ["storage_destination"]),
    "missing-source": (None, "pg", ["storage_source"]),
    "unknown-destination-type": ("file", CONSUL, ["consul"]),
    "unknown-source-type": (CONSUL, "pg", ["consul"]),
    "inmem-source": (INMEM, "pg", ["inmem"]),
    "inmem-destination": ("file", INMEM, ["inmem"]),
    "same-file": ("file", "file", ["same", "identical"]),
    "same-postgresql": ("pg", "pg", ["same", "identical"]),
    "same-etcd": ("etcd", "etcd", ["same", "identical"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_configurations_are_refused_and_write_nothing(case, source, tmp_path):
    require_all()
    pg, etcd = PgStore().create(), EtcdStore().create()
    try:
        # a copy of the source: a migration that wrongly went ahead must not touch the shared one
        data = tmp_path / "source-copy"
        shutil.copytree(source.data_dir, data)
        sides = {"file": data, "pg": pg, "etcd": etcd}
        src, dst, words = BAD[case]
        src = sides.get(src, src) if isinstance(src, str) else src
        dst = sides.get(dst, dst) if isinstance(dst, str) else dst
        r = run_migrate(tmp_path, migrate_config(src, dst), timeout=60)
        assert r.rc != 0, f"migrate accepted a bad configuration ({case})\n{r}"
        assert any(w in r.output.lower() for w in words), f"the message names none of {words}\n{r}"
        assert not [n for n in COPIED_RE.findall(r.output) if int(n) > 0], f"it says it copied entries\n{r}"
        assert pg.count() in (None, 0), f"{pg.describe()} was written to: {pg.count()} rows"
        assert etcd.count() == 0, f"{etcd.describe()} was written to: {etcd.count()} keys"
    finally:
        pg.drop()
        etcd.drop()
