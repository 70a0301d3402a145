#!/usr/bin/env python3
"""Run the README's commands, as written, so that a README command that stops working fails the
tests.

Every ```sh block of README.md runs, in document order, in one bash session that starts in the
repository root with an empty HOME (a temporary directory), no VAULT_*/COFFER_*/AWS_*/AZURE_*/
IDENTITY_* variables nor CA-bundle overrides, and this interpreter's bin directory first on PATH
(the test virtualenv's `aws` command).
```python blocks run with this interpreter (the test virtualenv, which has hvac); an ```hcl block
whose first line is a comment naming a file (`# coffer.hcl`) is written to that file, in the
session's current directory at that point.

Substitutions, all of them:
- `cargo run --release` / `cargo build --release` run as `cargo run --features etcd` /
  `cargo build --features etcd`, and `target/release` is `target/debug`: the test command builds
  once, in debug, with the etcd backend.
- The line `./scripts/test` is not run (it is the command running this check).
- A line that starts a server (`cargo run ... server ...` or `coffer server ...`) runs in the
  background; the check waits until the server prints that it is listening. A server already
  started on the same port is stopped first (as a reader would stop it with Ctrl-C). Every server
  is stopped at the end.
- The top block's first command must serve `sys/health`; the check asks it.

Usage: readme_check.py [README.md]   (exit status 0 when every command succeeded)
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FENCE = re.compile(r"^```(\w*)\s*$")
SERVER_LINE = re.compile(r"^\s*(cargo run\b.*--\s+server\b|coffer server\b)")


def blocks(text):
    """(language, body, line number) of every fenced block."""
    out, lang, body, start = [], None, [], 0
    for n, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if lang is None and m:
            lang, body, start = m.group(1) or "text", [], n
        elif lang is not None and line.strip() == "```":
            out.append((lang, "\n".join(body) + "\n", start))
            lang = None
        elif lang is not None:
            body.append(line)
    return out


def rewrite(line):
    line = line.replace("cargo run --release", "cargo run")
    line = line.replace("cargo build --release", "cargo build")
    # the test command builds with the etcd backend: the same build, not a second one
    for cmd in ("cargo run", "cargo build"):
        if cmd in line and "--features" not in line:
            line = line.replace(cmd, f"{cmd} --features etcd")
    return line.replace("target/release", "target/debug")


def server_port(line):
    m = re.search(r"-dev-listen-address[= ](\S+)", line)
    if m:
        return m.group(1).rsplit(":", 1)[-1]
    m = re.search(r"-config[= ](\S+)", line)
    if m:
        return "config:" + m.group(1)
    return "8200"


def script_for(README):
    """The whole README as one bash script."""
    parts = [
        textwrap.dedent(
            """\
            set -euo pipefail
            declare -A SERVERS=()
            SERVER_LOG_DIR=$(mktemp -d)
            stop_all() { for p in "${SERVERS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
            trap stop_all EXIT
            config_port() {  # the port of the first listener address in a config file
              sed -n 's/.*address *= *"[^"]*:\\([0-9]*\\)".*/\\1/p' "$1" | head -n1
            }
            check_health() {  # check_health URL: 200 and a JSON body saying unsealed
              "$PYTHON" -c 'import json,sys,urllib.request; r=urllib.request.urlopen(sys.argv[1]); b=json.load(r); sys.exit(0 if r.status==200 and b["sealed"] is False else 1)' "$1"
            }
            start_server() {  # start_server KEY COMMAND...
              local key=$1; shift
              if [[ $key == config:* ]]; then key=$(config_port "${key#config:}"); fi
              if [[ -n ${SERVERS[$key]:-} ]]; then
                kill "${SERVERS[$key]}" 2>/dev/null || true; wait "${SERVERS[$key]}" 2>/dev/null || true
              fi
              local log="$SERVER_LOG_DIR/server-$key.log"
              "$@" >"$log" 2>&1 &
              SERVERS[$key]=$!
              for _ in $(seq 1 600); do
                if grep -q "listening on" "$log"; then return 0; fi
                if ! kill -0 "${SERVERS[$key]}" 2>/dev/null; then break; fi
                sleep 0.1
              done
              echo "README check: the server did not start: $*" >&2; cat "$log" >&2; return 1
            }
            """
        )
    ]
    checked_first = False
    for lang, body, start in blocks(README):
        if lang in ("sh", "bash", "shell"):
            parts.append(f"echo '--- README.md line {start}: sh block' >&2")
            for raw in body.splitlines():
                line = rewrite(raw)
                bare = line.split("#", 1)[0].strip()
                if not bare:
                    continue
                if bare == "./scripts/test":
                    parts.append("echo '(./scripts/test: the command running this check, not run)' >&2")
                    continue
                parts.append(f"printf '$ %s\\n' {shlex.quote(bare)} >&2")
                if SERVER_LINE.match(bare):
                    # `coffer server ... &` in the README: the check backgrounds it itself
                    bare = bare.rstrip("&").rstrip()
                    parts.append(f"start_server {server_port(bare)} {bare}")
                    if not checked_first:
                        # the README's first command must serve sys/health
                        parts.append("check_health http://127.0.0.1:8200/v1/sys/health")
                        checked_first = True
                else:
                    parts.append(bare)
        elif lang == "python":
            parts.append(f"echo '--- README.md line {start}: python block' >&2")
            parts.append(f"{sys.executable} - <<'README_PY'\n{body}README_PY")
        elif lang == "hcl":
            first = body.splitlines()[0] if body.strip() else ""
            m = re.match(r"^#\s*(\S+\.(hcl|json))\s*$", first)
            if m:
                parts.append(f"echo '--- README.md line {start}: writing {m.group(1)}' >&2")
                parts.append(f"cat > {m.group(1)} <<'README_HCL'\n{body}README_HCL")
    if not checked_first:
        parts.append("echo 'README check: no server command found in the README' >&2; exit 1")
    return "\n".join(parts) + "\n"


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "README.md")
    with open(path, encoding="utf-8") as f:
        readme = f.read()
    first = next((b for b in blocks(readme) if b[0] == "sh"), None)
    if first is None or not first[1].splitlines()[0].startswith("cargo run --release -- server -dev"):
        print("README check: the README must start with `cargo run --release -- server -dev`", file=sys.stderr)
        return 1
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        if "./scripts/test" not in f.read() or "./scripts/test" not in first[1]:
            print("README check: the README's test command must be what .ci/run runs", file=sys.stderr)
            return 1
    home = tempfile.mkdtemp(prefix="coffer-readme-")
    dropped = ("VAULT_", "COFFER_", "AWS_", "AZURE_", "IDENTITY_", "MSI_", "IMDS_")
    bundles = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped) and k not in bundles}
    env["HOME"] = home
    # the README's `aws` commands are the AWS CLI of this virtualenv
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHON"] = sys.executable
    # cargo and rustup live under the real home
    real_home = os.path.expanduser("~")
    env.setdefault("CARGO_HOME", os.path.join(real_home, ".cargo"))
    env.setdefault("RUSTUP_HOME", os.path.join(real_home, ".rustup"))
    script = script_for(readme)
    try:
        r = subprocess.run(
            ["bash", "-c", script], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, timeout=900
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if r.returncode != 0:
        print(f"README check FAILED (exit {r.returncode})", file=sys.stderr)
        return 1
    print("README check: every command ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
