"""A tiny HTTP host serving ``rotation_function.lambda_handler`` as a Coffer rotation hook.

Coffer POSTs each step as AWS's rotation event (``{"Step", "SecretId", "ClientRequestToken",
"RotationToken"}``) with the run's credentials in headers (``X-Coffer-Access-Key-Id``,
``X-Coffer-Secret-Access-Key``, ``X-Coffer-Endpoint``, ``X-Coffer-Region``). The host does what
Lambda does for a function: it puts them in the environment the function reads
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``,
``SECRETS_MANAGER_ENDPOINT``), gives it a fresh default boto3 session (a new invocation
environment), and calls ``lambda_handler(event, None)`` unchanged. 200 on success; 500 with the
error's text when it raises.

For tests:

* every call is recorded (``calls``: step, event, headers, path, status, error);
* ``ROTATION_HOOK_FAIL_AT`` (environment, read on every request: comma-separated steps, each
  ``step`` or ``step:N``) makes those steps answer 500 without calling the function, as a
  function whose step failed would (``step:N``: only the first N requests of that step);
  ``HookHost(fail_at=...)`` sets the same per host;
* ``block(step)`` holds that step's requests until ``release(step)``; ``wait_entered(step)``
  waits until one arrived.

Invocations are serialized by one process-wide lock, since they change ``os.environ``; the
variables are restored afterwards, so nothing leaks into the rest of the test process.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.session

from . import rotation_function

FAIL_ENV = "ROTATION_HOOK_FAIL_AT"
ENV_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
            "SECRETS_MANAGER_ENDPOINT", "AWS_SESSION_TOKEN")
HEADERS = ("X-Coffer-Access-Key-Id", "X-Coffer-Secret-Access-Key", "X-Coffer-Endpoint",
           "X-Coffer-Region")

_INVOKE_LOCK = threading.Lock()
# botocore's service models, loaded once for every invocation's fresh session (~0.3 s each)
_LOADER = botocore.session.get_session().get_component("data_loader")


class _Gate:
    def __init__(self, times: int | None):
        self.open = threading.Event()
        self.entered = threading.Event()
        self.times = times  # None: every request of the step waits; N: the first N only
        self.drop = False   # when released with drop: answer 503 without running the step
        self.lock = threading.Lock()

    def take(self) -> bool:
        """Whether this request must wait at the gate."""
        with self.lock:
            if self.times is None:
                return True
            if self.times <= 0:
                return False
            self.times -= 1
            return True


class HookHost:
    """One HTTP server on 127.0.0.1 (a free port) serving the rotation function."""

    def __init__(self, fail_at: str | None = None, handler=None, block_timeout: float = 60.0):
        self.fail_at = fail_at
        self.handler = handler or rotation_function.lambda_handler
        self.block_timeout = block_timeout
        self.calls: list[dict] = []
        self._calls_lock = threading.Lock()
        self._gates: dict[str, _Gate] = {}
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # quiet
                pass

            def do_POST(self):
                status, text = host._serve(self)
                body = text.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the caller went away (e.g. a server killed by the test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"hook-{self.port}",
                                        daemon=True)
        self._thread.start()

    # --- what tests use ---------------------------------------------------------------------

    def url(self, path: str = "/rotate") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def steps(self) -> list[str]:
        with self._calls_lock:
            return [c["step"] for c in self.calls]

    def calls_of(self, step: str) -> list[dict]:
        with self._calls_lock:
            return [c for c in self.calls if c["step"] == step]

    def block(self, step: str, times: int | None = None) -> None:
        """Hold requests of `step` (all of them, or the first `times`) until released."""
        self._gates[step] = _Gate(times)

    def release(self, step: str, drop: bool = False) -> None:
        gate = self._gates.get(step)
        if gate is not None:
            gate.drop = drop
            gate.open.set()

    def wait_entered(self, step: str, timeout: float = 10.0) -> bool:
        gate = self._gates.get(step)
        assert gate is not None, f"{step} is not blocked"
        return gate.entered.wait(timeout)

    def wait_for(self, pred, timeout: float = 10.0, interval: float = 0.02):
        """Wait until pred(self.calls) is truthy; answer it (or None on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._calls_lock:
                got = pred(list(self.calls))
            if got or time.monotonic() >= deadline:
                return got
            time.sleep(interval)

    def close(self) -> None:
        for gate in self._gates.values():
            gate.drop = True
            gate.open.set()
        self.server.shutdown()
        self.server.server_close()

    # --- serving ----------------------------------------------------------------------------

    def _should_fail(self, step: str) -> bool:
        spec = self.fail_at if self.fail_at is not None else os.environ.get(FAIL_ENV, "")
        for item in (s.strip() for s in spec.split(",")):
            name, _, times = item.partition(":")
            if name != step:
                continue
            if not times:
                return True
            # this request is already recorded: fail while it is among the first N of the step
            return len(self.calls_of(step)) <= int(times)
        return False

    def _serve(self, req: BaseHTTPRequestHandler) -> tuple[int, str]:
        raw = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        call = {
            "path": req.path,
            "headers": {h: req.headers.get(h) for h in HEADERS},
            "content_type": req.headers.get("Content-Type"),
            "received": time.time(),
            "step": None,
            "event": None,
            "status": None,
            "error": None,
        }
        with self._calls_lock:
            self.calls.append(call)
        try:
            event = json.loads(raw)
            call["event"] = event
            call["step"] = event.get("Step")
        except ValueError as e:
            return self._finish(call, 400, f"the event is not JSON: {e}")

        gate = self._gates.get(call["step"])
        if gate is not None and gate.take():
            gate.entered.set()
            if not gate.open.wait(self.block_timeout):
                return self._finish(call, 503, f"{call['step']}: held too long by the test")
            if gate.drop:
                return self._finish(call, 503, f"{call['step']}: dropped by the test")

        if self._should_fail(call["step"]):
            return self._finish(call, 500, f"{call['step']}: injected failure ({FAIL_ENV})")

        missing = [h for h in HEADERS if not call["headers"].get(h)]
        if missing:
            return self._finish(call, 400, f"missing headers: {missing}")
        try:
            self._invoke(call["headers"], event)
        except Exception as e:  # the function's failure is the step's failure
            call["traceback"] = traceback.format_exc()
            return self._finish(call, 500, f"{type(e).__name__}: {e}")
        return self._finish(call, 200, "ok")

    def _finish(self, call: dict, status: int, text: str) -> tuple[int, str]:
        call["status"] = status
        if status >= 300:
            call["error"] = text
        return status, text

    def _invoke(self, headers: dict, event: dict) -> None:
        env = {
            "AWS_ACCESS_KEY_ID": headers["X-Coffer-Access-Key-Id"],
            "AWS_SECRET_ACCESS_KEY": headers["X-Coffer-Secret-Access-Key"],
            "AWS_DEFAULT_REGION": headers["X-Coffer-Region"],
            "SECRETS_MANAGER_ENDPOINT": headers["X-Coffer-Endpoint"],
        }
        with _INVOKE_LOCK:
            saved = {k: os.environ.get(k) for k in ENV_VARS}
            saved_session = boto3.DEFAULT_SESSION
            try:
                os.environ.pop("AWS_SESSION_TOKEN", None)
                os.environ.update(env)
                # a new invocation environment: the default session resolves credentials anew
                boto3.setup_default_session()
                boto3.DEFAULT_SESSION._session.register_component("data_loader", _LOADER)
                self.handler(event, None)
            finally:
                boto3.DEFAULT_SESSION = saved_session
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
