#!/usr/bin/env python3
"""Compare two coffer binaries on one scenario, in one script, alternating runs.

    bench/compare.py --bench target/release/bench --before OLD/coffer --after target/release/coffer \
        [--bench-before OLD/bench] [--scenario kv2-read] [--rounds 5] [-- extra bench options]

Extra bench options go after `--` (e.g. `-- --no-baseline`: no ceiling run, so no ratio to
it; the after/before ratio of req/s is still measured in the same script).

`--bench-before` drives the "before" binary with the harness of its own time (a harness may pass
flags an older coffer does not know); the measured request path is the same.

Each round runs the scenario (with its own ceiling baseline, as `bench` does) once against the
"before" binary and once against the "after" binary, in alternating order, so that drift in the
machine's load hits both alike. It reports, per binary, the median over rounds of req/s, p50/p99
latency and of the ratio to the ceiling measured in the same bench run, and the ratio
after/before of the medians. Exit status 0 unless a bench run failed; speed never fails it.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def run(bench, coffer, scenario, extra, out):
    cmd = [bench, scenario, "--coffer", coffer, "--json", out] + extra
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout)
        raise SystemExit(f"bench failed: {' '.join(cmd)}")
    with open(out) as f:
        doc = json.load(f)
    row = next(x for x in doc["results"] if x["scenario"] == scenario)
    s = row["summary"]
    return {"rps": s["rps"], "p50": s["p50_ms"], "p99": s["p99_ms"], "ratio": row.get("ratio")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True)
    ap.add_argument("--bench-before")
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--scenario", default="kv2-read")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    results = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.rounds):
            order = ["before", "after"] if i % 2 == 0 else ["after", "before"]
            for which in order:
                coffer = a.before if which == "before" else a.after
                bench = (a.bench_before or a.bench) if which == "before" else a.bench
                r = run(bench, coffer, a.scenario, a.extra, os.path.join(tmp, f"{which}-{i}.json"))
                results[which].append(r)
                vs = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
                print(f"round {i + 1} {which:6}: {r['rps']:8.0f} req/s  p50 {r['p50']:.3f} ms"
                      f"  p99 {r['p99']:.3f} ms  vs ceiling {vs}", flush=True)

    def median(rs, k):
        xs = [x[k] for x in rs if x[k] is not None]
        return statistics.median(xs) if xs else None

    med = {w: {k: median(rs, k) for k in ("rps", "p50", "p99", "ratio")}
           for w, rs in results.items()}
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    print()
    print(f"| {a.scenario} ({a.rounds} rounds, medians) | req/s | p50 ms | p99 ms | ratio to ceiling |")
    print("|---|---|---|---|---|")
    for w in ("before", "after"):
        m = med[w]
        print(f"| {w} | {m['rps']:.0f} | {m['p50']:.3f} | {m['p99']:.3f} | {fmt(m['ratio'])} |")
    line = f"\nafter / before: req/s {med['after']['rps'] / med['before']['rps']:.3f}"
    if med["after"]["ratio"] is not None and med["before"]["ratio"] is not None:
        line += f", ratio-to-ceiling {med['after']['ratio'] / med['before']['ratio']:.3f}"
    print(line)


if __name__ == "__main__":
    main()
