"""What the Python helpers of the tests/ scripts share: the log, the clock and a free
loopback port (all of them); a keep-alive HTTP client and an account_api process that dies
with its parent (tests/outage.sh and tests/two-instances.sh)."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def now():
    return time.monotonic()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """One keep-alive connection. `request` gives (status, body) or (None, error)."""

    def __init__(self, port, timeout=10):
        self.port, self.timeout, self.conn = port, timeout, None

    def request(self, method, path, token=None, body=None):
        headers = {}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
            raw = response.read()
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            try:
                return response.status, (json.loads(raw) if raw else None)
            except ValueError:
                return response.status, raw[:200]
        except (OSError, http.client.HTTPException) as e:
            self.close()
            return None, f"{type(e).__name__}: {e}"

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def die_with_parent():
    """In the child before exec: SIGTERM when this process dies, however it dies."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Server:
    """account_api on a free port of 127.0.0.1, its log in `work/<name>.err`; ready once
    it answers GET /v1/openapi.json (within 30 s)."""

    def __init__(self, name, binary, work, url, app_key, notify):
        self.name = name
        self.port = free_port()
        env = dict(os.environ, BIND_ADDR=f"127.0.0.1:{self.port}", DATABASE_URL=url, APP_KEY=app_key,
                   RUST_LOG="info", KEYS_NOTIFY="1" if notify else "")
        self.err_path = os.path.join(work, f"{name}.err")
        self.proc = subprocess.Popen([binary], cwd=work, env=env, stdout=subprocess.DEVNULL,
                                     preexec_fn=die_with_parent,
                                     stderr=open(self.err_path, "w"))
        deadline = now() + 30
        while now() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode}: {self.log()[-2000:]}")
            if Client(self.port, timeout=1).request("GET", "/v1/openapi.json")[0] == 200:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not answer within 30 s")

    def log(self):
        with open(self.err_path) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
