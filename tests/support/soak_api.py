"""Soak of the account API on PostgreSQL (tests/soak-api.sh).

Starts the example (release binary) on a PostgreSQL schema of its own, with an
`application_name` of its own so that its connections can be counted in
`pg_stat_activity`, and drives it for `--seconds` with mixed traffic:

- worker threads, each from a loopback address of its own (127.0.0.11, .12, …, so that
  the register throttle, 20 a minute per address, is each its own), each with a user of
  its own (a new one registered every `--register-every` seconds, about 3 a minute per
  address): create keys (full, limited to `servers:read`, and without a name: 422), list
  them (the ids must be exactly the user's), verify (GET /v1/auth/user) with a live key,
  a revoked or regenerated one, a random well-formed token, no header; regenerate,
  revoke, revoke again (404), another user's key (404), a limited key on an account
  route (403), a duplicate email (422);
- one probe thread from 127.0.0.50 sending invalid registrations every 2 s (30 a
  minute): 422 until the throttle's 20, then 429 with Retry-After.

Every answer is checked twice:
- documented: its status is one the OpenAPI document (GET /v1/openapi.json) lists for
  that operation, and its headers and body have that status's documented shape
  (Content-Type application/json; 401 `{"message":"Unauthenticated."}` with a Bearer
  challenge; 403, 404, 429 and 503 their exact bodies; 422 Laravel's shape; 2xx the
  route's fields). Anything else is "outside" (goal 0).
- expected: the status is the one the client knows it must get (a live key 200, a
  revoked one 401, …). A documented answer that is not the expected one (a 503, a 401 for
  a live key) is "unexpected" (goal 0).

Samples every `--sample-every` seconds: the server's VmRSS, its open descriptors, and
its connections in pg_stat_activity (by application_name, and by state). Warm-up: the
first 60 s or 10 % of the run, whichever is shorter. Goals: RSS growth after warm-up
(last sample against the first after warm-up) under `--rss-goal` %; the pool steady:
never above `--pool-max` connections (sqlx's default, 10), no upward trend (the largest
count in the second half after warm-up no larger than in the first half), and after the
load, none active or idle in a transaction.

Prints one line of results as JSON on stdout, the details on stderr; exits 1 if a goal
is missed. Bounded: every request has a 10 s timeout, the run ends after `--seconds` or
`--max-requests`, the server is killed on exit and the schema dropped.
"""

import argparse
import base64
import http.client
import json
import os
import random
import re
import secrets
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time

from account_api_process import free_port, log

PASSWORD = "soak api password"
UNAUTHENTICATED = {"message": "Unauthenticated."}
INVALID_ABILITY = {"message": "Invalid ability provided."}
SECOND_FACTOR = {"message": "Two-factor authentication required.", "requires_2fa": True}
NOT_FOUND = {"message": "Not Found."}
THROTTLED = {"message": "Too Many Attempts."}
UNAVAILABLE = {"message": "Service Unavailable."}
TOKEN_RE = re.compile(r"^[0-9]+\|[A-Za-z0-9]{40}[0-9a-f]{8}$")
KEY_FIELDS = {"id", "name", "abilities", "last_used_at", "expires_at", "created_at"}
NEW_KEY_FIELDS = {"id", "name", "abilities", "expires_at", "created_at", "plain_text_token"}


def random_token():
    alphabet = string.ascii_letters + string.digits
    return f"{random.randint(1, 10**6)}|" + "".join(random.choices(alphabet, k=40))


class Client:
    """One keep-alive connection from `source`; `None` for a request with no answer."""

    def __init__(self, port, source="127.0.0.1", timeout=10):
        self.port, self.source, self.timeout, self.conn = port, source, timeout, None

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
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout,
                                                       source_address=(self.source, 0))
            self.conn.request(method, path, body=data, headers=headers)
            response = self.conn.getresponse()
            raw = response.read()
            headers = {k.lower(): v for k, v in response.getheaders()}
            if headers.get("connection", "").lower() == "close":
                self.close()
            return response.status, headers, raw
        except (OSError, http.client.HTTPException):
            self.close()
            return None

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None


class Documented:
    """The statuses each operation documents, from the OpenAPI document."""

    def __init__(self, document):
        self.statuses = {}
        for path, item in document["paths"].items():
            for method, operation in item.items():
                if isinstance(operation, dict) and "responses" in operation:
                    self.statuses[(method.upper(), path)] = {int(s) for s in operation["responses"]}

    def allows(self, op, status):
        return status in self.statuses.get(op, set())


def shape_ok(op, status, headers, raw):
    """Whether the answer has the documented shape of `status` on `op`: the reason if not."""
    if headers.get("content-type") != "application/json":
        return f"content-type {headers.get('content-type')!r}"
    if status == 204:
        return None if raw == b"" else "a 204 with a body"
    try:
        body = json.loads(raw)
    except ValueError:
        return "a body that is not JSON"
    www = headers.get("www-authenticate")
    if status == 401:
        if body != UNAUTHENTICATED:
            return f"401 body {raw[:100]!r}"
        if www not in ("Bearer", 'Bearer error="invalid_token"'):
            return f"401 challenge {www!r}"
        return None
    if www is not None:
        return f"a challenge on a {status}"
    if status == 403:
        return None if body in (INVALID_ABILITY, SECOND_FACTOR) else f"403 body {raw[:100]!r}"
    if status == 404:
        return None if body == NOT_FOUND else f"404 body {raw[:100]!r}"
    if status == 429:
        if body != THROTTLED:
            return f"429 body {raw[:100]!r}"
        return None if headers.get("retry-after", "").isdigit() else "429 without Retry-After"
    if status == 503:
        return None if body == UNAVAILABLE else f"503 body {raw[:100]!r}"
    if status == 422:
        ok = (isinstance(body, dict) and set(body) == {"message", "errors"} and isinstance(body["message"], str)
              and isinstance(body["errors"], dict) and body["errors"]
              and all(isinstance(v, list) and v and all(isinstance(m, str) for m in v)
                      for v in body["errors"].values()))
        return None if ok else f"422 body {raw[:100]!r}"
    method, path = op
    if path == "/v1/auth/register" and status == 201:
        ok = (isinstance(body, dict) and set(body) == {"user", "token"} and set(body["user"]) == {"id", "name", "email"}
              and TOKEN_RE.match(body["token"]))
        return None if ok else f"register 201 body {raw[:100]!r}"
    if path == "/v1/auth/user" and status == 200:
        ok = isinstance(body, dict) and set(body) == {"id", "name", "email", "two_factor_enabled"}
        return None if ok else f"user 200 body {raw[:100]!r}"
    if path == "/v1/profile/api-keys" and method == "GET" and status == 200:
        ok = isinstance(body, list) and all(isinstance(k, dict) and set(k) == KEY_FIELDS for k in body)
        return None if ok else f"list 200 body {raw[:100]!r}"
    if (path == "/v1/profile/api-keys" and method == "POST" and status == 201) or \
            (path.endswith("/regenerate") and status == 200):
        ok = isinstance(body, dict) and set(body) == NEW_KEY_FIELDS and TOKEN_RE.match(body["plain_text_token"]) \
            and body["plain_text_token"].startswith(f'{body["id"]}|')
        return None if ok else f"new key body {raw[:100]!r}"
    return f"no shape known for {status}"


class Tally:
    """Answers by operation and status, and what fell outside."""

    def __init__(self, documented, documented_override=None):
        self.documented = documented
        self.lock = threading.Lock()
        self.by = {}
        self.requests = self.no_answer = self.outside = self.unexpected = 0
        self.examples = []

    def record(self, op, reply, expected):
        """Checks one answer; returns it (or None)."""
        with self.lock:
            self.requests += 1
            if reply is None:
                self.no_answer += 1
                self.note(f"{op}: no answer")
                return None
            status, headers, raw = reply
            key = f"{op[0]} {op[1]} {status}"
            self.by[key] = self.by.get(key, 0) + 1
            why = None if self.documented.allows(op, status) else f"status {status} not documented"
            why = why or shape_ok(op, status, headers, raw)
            if why:
                self.outside += 1
                self.note(f"outside: {op} {why}")
            elif status not in expected:
                self.unexpected += 1
                self.note(f"unexpected: {op} {status} (expected {sorted(expected)}) {raw[:120]!r}")
        return reply

    def note(self, text):
        if len(self.examples) < 20:
            self.examples.append(text)
            log("  " + text)

    def fail(self, text):
        """A check of the client's own (a list that does not match): counted as unexpected."""
        with self.lock:
            self.unexpected += 1
            self.note(text)


class Shared:
    """What the workers share: other users' key ids (for the 404s), the deadline."""

    def __init__(self, deadline, max_requests):
        self.lock = threading.Lock()
        self.others = []  # (thread index, key id)
        self.deadline = deadline
        self.max_requests = max_requests

    def add(self, index, key_id):
        with self.lock:
            self.others.append((index, key_id))
            if len(self.others) > 2000:
                del self.others[:1000]

    def other(self, index):
        with self.lock:
            candidates = [k for i, k in self.others[-200:] if i != index]
        return random.choice(candidates) if candidates else None


class Worker(threading.Thread):
    def __init__(self, index, port, tally, shared, register_every):
        super().__init__(daemon=True)
        self.index = index
        self.client = Client(port, source=f"127.0.0.{11 + index}")
        self.tally, self.shared = tally, shared
        self.register_every = register_every
        self.random = random.Random(index)
        self.users = 0
        self.error = None

    def call(self, op, expected, token=None, body=None, path=None):
        reply = self.client.request(op[0], path or op[1], token, body)
        return self.tally.record(op, reply, expected)

    def register(self):
        self.users += 1
        email = f"soak{self.index}.{self.users}.{secrets.token_hex(3)}@soak.test"
        name = f"Soak {self.index}.{self.users}"
        reply = self.call(("POST", "/v1/auth/register"), {201},
                          body={"name": name, "email": email, "password": PASSWORD})
        if not reply or reply[0] != 201:
            return False
        body = json.loads(reply[2])
        self.user = {"id": body["user"]["id"], "name": name, "email": email, "two_factor_enabled": False}
        self.master = body["token"]
        self.login_id = int(self.master.split("|")[0])
        self.keys = {}  # id -> (token, full)
        self.dead = []  # tokens revoked or regenerated
        self.revoked_ids = []
        self.registered_at = time.monotonic()
        return True

    def live(self, full=None):
        ids = [k for k, (_, f) in self.keys.items() if full is None or f == full]
        return self.random.choice(ids) if ids else None

    def run(self):
        try:
            self.loop()
        except Exception as e:  # a bug of this script: reported, never hidden
            self.error = repr(e)
            log(f"  worker {self.index}: {e!r}")

    def loop(self):
        while not self.register():
            if time.monotonic() > self.shared.deadline:
                return
            time.sleep(1)
        user_path = ("GET", "/v1/auth/user")
        keys_path = ("GET", "/v1/profile/api-keys")
        create = ("POST", "/v1/profile/api-keys")
        regenerate = ("POST", "/v1/profile/api-keys/{id}/regenerate")
        revoke = ("DELETE", "/v1/profile/api-keys/{id}")
        ops = (["verify"] * 40 + ["dead"] * 8 + ["random"] * 5 + ["missing"] * 2 + ["list"] * 10
               + ["create"] * 8 + ["create_limited"] * 2 + ["create_invalid"] * 2 + ["limited"] * 2
               + ["regenerate"] * 8 + ["revoke"] * 8 + ["revoke_again"] * 2 + ["others"] * 3
               + ["duplicate"] * 0)
        last_duplicate = time.monotonic()
        while time.monotonic() < self.shared.deadline and self.tally.requests < self.shared.max_requests:
            now = time.monotonic()
            if now - self.registered_at > self.register_every:
                self.register()
                continue
            if now - last_duplicate > 60:
                # One duplicate email a minute: 422 (counts toward the address's 20).
                last_duplicate = now
                self.call(("POST", "/v1/auth/register"), {422},
                          body={"name": "Dup", "email": self.user["email"].upper(), "password": PASSWORD})
                continue
            op = self.random.choice(ops)
            if op == "create" or (op in ("verify", "regenerate", "revoke") and not self.keys):
                self.create(create, ["*"])
            elif op == "create_limited":
                self.create(create, ["servers:read"])
            elif op == "create_invalid":
                self.call(create, {422}, self.master, {"name": "   ", "abilities": "not a list"})
            elif op == "verify":
                key = self.live()
                reply = self.call(user_path, {200}, self.keys[key][0])
                if reply and reply[0] == 200 and json.loads(reply[2]) != self.user:
                    self.tally.fail(f"GET /v1/auth/user: {reply[2][:120]!r} is not {self.user}")
            elif op == "dead" and self.dead:
                self.call(user_path, {401}, self.random.choice(self.dead))
            elif op == "random":
                self.call(user_path, {401}, random_token())
            elif op == "missing":
                self.call(user_path, {401})
            elif op == "list":
                reply = self.call(keys_path, {200}, self.master)
                if reply and reply[0] == 200:
                    ids = {k["id"] for k in json.loads(reply[2])}
                    want = set(self.keys) | {self.login_id}
                    if ids != want:
                        self.tally.fail(f"list: ids {sorted(ids)} are not {sorted(want)}")
            elif op == "limited":
                key = self.live(full=False)
                if key is not None:
                    self.call(keys_path, {403}, self.keys[key][0])
                    self.call(user_path, {200}, self.keys[key][0])
            elif op == "regenerate":
                key = self.live(full=True)
                if key is not None:
                    reply = self.call(regenerate, {200}, self.master, path=f"/v1/profile/api-keys/{key}/regenerate")
                    if reply and reply[0] == 200:
                        self.dead.append(self.keys[key][0])
                        self.keys[key] = (json.loads(reply[2])["plain_text_token"], True)
                        # The old token is refused at once.
                        self.call(user_path, {401}, self.dead[-1])
            elif op == "revoke" or len(self.keys) > 15:
                key = self.live()
                reply = self.call(revoke, {204}, self.master, path=f"/v1/profile/api-keys/{key}")
                if reply and reply[0] == 204:
                    self.dead.append(self.keys.pop(key)[0])
                    self.revoked_ids.append(key)
                    self.call(user_path, {401}, self.dead[-1])
            elif op == "revoke_again" and self.revoked_ids:
                key = self.random.choice(self.revoked_ids)
                self.call(revoke, {404}, self.master, path=f"/v1/profile/api-keys/{key}")
            elif op == "others":
                key = self.shared.other(self.index)
                if key is not None:
                    if self.random.random() < 0.5:
                        self.call(revoke, {404}, self.master, path=f"/v1/profile/api-keys/{key}")
                    else:
                        self.call(regenerate, {404}, self.master, path=f"/v1/profile/api-keys/{key}/regenerate")
            del self.dead[:-30]
            del self.revoked_ids[:-30]
        self.client.close()

    def create(self, op, abilities):
        body = {"name": f"key {self.random.randrange(10**6)}"}
        if abilities != ["*"] or self.random.random() < 0.5:
            body["abilities"] = abilities
        reply = self.call(op, {201}, self.master, body)
        if reply and reply[0] == 201:
            created = json.loads(reply[2])
            if created["abilities"] != abilities:
                self.tally.fail(f"create: abilities {created['abilities']} are not {abilities}")
            self.keys[created["id"]] = (created["plain_text_token"], abilities == ["*"])
            self.shared.add(self.index, created["id"])


class Prober(threading.Thread):
    """Invalid registrations from one address, one every 2 s: 422, then 429 past 20 a minute."""

    def __init__(self, port, tally, shared):
        super().__init__(daemon=True)
        self.client = Client(port, source="127.0.0.50")
        self.tally, self.shared = tally, shared
        self.statuses = {}

    def run(self):
        op = ("POST", "/v1/auth/register")
        while time.monotonic() < self.shared.deadline:
            reply = self.tally.record(op, self.client.request("POST", op[1], body={
                "name": "Probe", "email": "not an email", "password": "short"}), {422, 429})
            if reply:
                self.statuses[reply[0]] = self.statuses.get(reply[0], 0) + 1
            time.sleep(2)
        self.client.close()


class Postgres:
    def __init__(self, url):
        self.url = url
        self.schema = "soak_" + secrets.token_hex(5)
        self.app_name = self.schema
        self.psql(f"create schema {self.schema}")
        sep = "&" if "?" in url else "?"
        self.app_url = f"{url}{sep}options=-c%20search_path%3D{self.schema}&application_name={self.app_name}"

    def psql(self, sql):
        """Rows of `sql` (sent on standard input: it may be longer than an argument may)."""
        out = subprocess.run(["psql", self.url, "-v", "ON_ERROR_STOP=1", "-qAtF", "\t", "-f", "-"], input=sql,
                             check=True, capture_output=True, text=True, timeout=60).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def connections(self):
        """The server's connections by state."""
        rows = self.psql(f"select coalesce(state, '?'), count(*) from pg_stat_activity "
                         f"where application_name = '{self.app_name}' group by 1")
        return {state: int(n) for state, n in rows}

    def drop(self):
        self.psql(f"drop schema if exists {self.schema} cascade")


def fill_caches(pg, port, n):
    """Brings the key store's two caches to their capacity (10,000 entries each) before
    the soak, so that what grows after the warm-up is not bounded caches filling up:
    `n` keys of one user written straight into the table (their secrets known here), each
    verified once (200), and `n` made-up tokens, each refused once (401)."""
    import hashlib
    client = Client(port, source="127.0.0.60", timeout=30)
    reply = client.request("POST", "/v1/auth/register", body={
        "name": "Warm", "email": "warm@soak.test", "password": PASSWORD})
    if not reply or reply[0] != 201:
        raise RuntimeError(f"fill: register answered {reply and reply[0]}")
    user = json.loads(reply[2])["user"]
    client.close()
    secrets_ = [secrets.token_hex(20) for _ in range(n)]
    values = ",".join(f"('App\\Models\\User', {user['id']}, 'warm', '{hashlib.sha256(x.encode()).hexdigest()}', "
                      f"'[\"*\"]', now(), now())" for x in secrets_)
    rows = pg.psql(f"insert into {pg.schema}.personal_access_tokens "
                   f"(tokenable_type, tokenable_id, name, token, abilities, created_at, updated_at) "
                   f"values {values} returning id")
    tokens = [f"{row[0]}|{x}" for row, x in zip(rows, secrets_)]
    answers = {}
    lock = threading.Lock()

    def send(part):
        c = Client(port, timeout=10)
        for token, want in part:
            reply = c.request("GET", "/v1/auth/user", token)
            status = reply[0] if reply else None
            with lock:
                answers[(want, status)] = answers.get((want, status), 0) + 1
        c.close()
    work = [(t, 200) for t in tokens] + [(random_token(), 401) for _ in range(n)]
    threads = [threading.Thread(target=send, args=(work[i::4],), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    wrong = {f"{want}->{status}": k for (want, status), k in answers.items() if want != status}
    if wrong:
        raise RuntimeError(f"fill: answers other than expected: {wrong}")
    log(f"  caches filled: {n} keys verified, {n} made-up tokens refused")
    return {"keys verified": n, "tokens refused": n}


def proc_status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def run(args):
    pg = Postgres(args.postgres_url)
    work = tempfile.mkdtemp(prefix="soak-api-")
    port = free_port()
    env = dict(os.environ, BIND_ADDR=f"127.0.0.1:{port}", DATABASE_URL=pg.app_url, RUST_LOG="warn",
               APP_KEY="base64:" + base64.b64encode(secrets.token_bytes(32)).decode())
    err = open(os.path.join(work, "server.err"), "w")
    server = subprocess.Popen([args.bin], cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        return drive(args, pg, server, port, work)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        err.close()
        try:
            pg.drop()
        finally:
            shutil.rmtree(work, ignore_errors=True)


def drive(args, pg, server, port, work):
    deadline = time.monotonic() + 30
    document = None
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"account_api exited with {server.returncode}: "
                               + open(os.path.join(work, "server.err")).read()[-2000:])
        reply = Client(port, timeout=2).request("GET", "/v1/openapi.json")
        if reply and reply[0] == 200:
            document = json.loads(reply[2])
            break
        time.sleep(0.1)
    if document is None:
        raise RuntimeError("account_api did not answer within 30 s")
    documented = Documented(document)
    if args.undocument:
        # Self-test: a status the server rightly answers taken out of the document.
        method, path, status = args.undocument.split(" ")
        documented.statuses[(method, path)].discard(int(status))
    tally = Tally(documented)
    filled = fill_caches(pg, port, args.fill) if args.fill else None
    start = time.monotonic()
    shared = Shared(start + args.seconds, args.max_requests)
    warmup = min(60.0, args.seconds * 0.1)
    rss_before = proc_status(server.pid, "VmRSS")
    workers = [Worker(i, port, tally, shared, args.register_every) for i in range(args.threads)]
    prober = Prober(port, tally, shared)
    for t in workers + [prober]:
        t.start()
    samples = []  # (seconds, rss KiB, fds, connections, {state: n})
    next_sample = start
    tampered = not args.tamper
    while any(t.is_alive() for t in workers):
        now = time.monotonic()
        if not tampered and now - start >= args.seconds / 2:
            # Self-test: the workers' keys deleted behind their back (the login tokens
            # kept): a live key then gets 401 and the lists miss keys; both must count.
            tampered = True
            pg.psql(f"delete from {pg.schema}.personal_access_tokens where name like 'key %'")
            log("  tampered: the workers' keys deleted from the table")
        if now >= next_sample:
            if server.poll() is not None:
                raise RuntimeError(f"account_api died: {open(os.path.join(work, 'server.err')).read()[-2000:]}")
            states = pg.connections()
            sample = (round(now - start, 1), proc_status(server.pid, "VmRSS"), len(os.listdir(f"/proc/{server.pid}/fd")),
                      sum(states.values()), states)
            samples.append(sample)
            log(f"  {sample[0]:7.1f} s  requests {tally.requests:8d}  RSS {sample[1]} KiB  fds {sample[2]}  "
                f"connections {sample[3]} {states}")
            next_sample += args.sample_every
        if now > shared.deadline + 60:
            raise RuntimeError("workers still running 60 s after the deadline")
        time.sleep(min(0.2, max(0.0, next_sample - time.monotonic())))
    for t in workers + [prober]:
        t.join(15)
    elapsed = time.monotonic() - start
    # After the load: nothing active or idle in a transaction, once the requests are done.
    time.sleep(2)
    after = pg.connections()
    rss_after = proc_status(server.pid, "VmRSS")

    post = [s for s in samples if s[0] >= warmup]
    if len(post) < 2:
        post = samples[-2:]
    rss_warm, rss_end = post[0][1], samples[-1][1]
    growth = (rss_end - rss_warm) * 100.0 / rss_warm
    peak = max(s[1] for s in samples)
    conns = [s[3] for s in samples]
    half = len(post) // 2
    first_half_max = max(s[3] for s in post[:max(half, 1)])
    second_half_max = max(s[3] for s in post[half:])
    leftover = {k: v for k, v in after.items() if k in ("active", "idle in transaction", "idle in transaction (aborted)")}

    failures = []
    if tally.outside:
        failures.append(f"{tally.outside} answers outside the documented set")
    if tally.unexpected:
        failures.append(f"{tally.unexpected} documented answers other than the expected one")
    if tally.no_answer:
        failures.append(f"{tally.no_answer} requests without an answer")
    if any(w.error for w in workers):
        failures.append("a worker failed: " + "; ".join(w.error for w in workers if w.error))
    if not growth < args.rss_goal:
        failures.append(f"RSS grew {growth:.2f} % after warm-up (goal < {args.rss_goal} %)")
    if max(conns) > args.pool_max:
        failures.append(f"{max(conns)} connections (the pool's maximum is {args.pool_max})")
    if second_half_max > first_half_max:
        failures.append(f"connections grew: at most {first_half_max} in the first half after warm-up, "
                        f"{second_half_max} in the second")
    if leftover:
        failures.append(f"after the load: connections {leftover}")
    if prober.statuses.get(429, 0) == 0 and args.seconds >= 60:
        failures.append("the register throttle never answered 429")
    result = {
        "seconds": round(elapsed, 1), "threads": args.threads, "requests": tally.requests,
        "rate": round(tally.requests / elapsed, 1), "outside": tally.outside, "unexpected": tally.unexpected,
        "no answer": tally.no_answer, "users": sum(w.users for w in workers),
        "by status": dict(sorted(tally.by.items())), "warm-up seconds": warmup,
        "rss before": rss_before, "rss warm": rss_warm, "rss end": rss_end, "rss peak": peak,
        "rss after": rss_after, "rss growth %": round(growth, 2),
        "fds warm": post[0][2], "fds end": samples[-1][2],
        "connections min/max": [min(conns), max(conns)], "connections after warm-up min/max":
            [min(s[3] for s in post), max(s[3] for s in post)],
        "connections halves max": [first_half_max, second_half_max], "connections after load": after,
        "rss by minute": [s[1] for s in samples if s[0] % 60 < args.sample_every] + [samples[-1][1]],
        "caches filled": filled, "samples": len(samples), "probe statuses": prober.statuses, "examples": tally.examples,
        "failures": failures,
    }
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--postgres-url", required=True)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--max-requests", type=int, default=5_000_000)
    parser.add_argument("--register-every", type=float, default=20.0, help="seconds between a worker's registrations")
    parser.add_argument("--sample-every", type=float, default=5.0)
    parser.add_argument("--rss-goal", type=float, default=5.0, help="RSS growth after warm-up, %%, under")
    parser.add_argument("--pool-max", type=int, default=10, help="the pool's maximum (sqlx's default)")
    parser.add_argument("--fill", type=int, default=11000,
                        help="keys verified and made-up tokens refused before the soak, to bring the "
                             "store's caches (10,000 entries each) to capacity; 0 for none")
    parser.add_argument("--tamper", action="store_true",
                        help="self-test: delete the workers' keys from the table half-way")
    parser.add_argument("--undocument", help="self-test: 'METHOD PATH STATUS' taken out of the document")
    args = parser.parse_args()
    args.bin = os.path.abspath(args.bin)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    try:
        result = run(args)
    except RuntimeError as e:
        result = {"failures": [str(e)]}
    for failure in result["failures"]:
        log(f"  FAIL {failure}")
    print(json.dumps(result))
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
