"""Crash safety of the account API on one database engine (tests/crash-safety.sh).

1. kill -9 in a burst, three rounds. Starts the example, registers users, and lets client
   threads create and regenerate keys as fast as they get answers (each thread its own
   keys, one request at a time, so each key's history is known). After a number of
   answers, with requests in flight, the server is killed with SIGKILL, then started
   again on the same database. Then, each round:
   - every plain_text_token a client received authenticates (200 on GET /v1/auth/user),
     unless a later regenerate of its key was sent: answered 200, the old token must be
     refused (401); unanswered (in flight at the kill, or answered otherwise), it may be
     either, and both outcomes are counted;
   - every key id a client received has its row;
   - no row is half-written: every row of personal_access_tokens has a 64-hex `token`, a
     `name`, a `tokenable_type` and a `tokenable_id` of an existing user, JSON
     `abilities`, a `created_at`; no pending second factor of a key that is gone.
2. SIGTERM under load. Fresh keys (never used: `last_used_at` null) are used by client
   threads, several keys each; SIGTERM arrives while requests run. The server must exit 0
   within the bound, and every key that got a 200 must have `last_used_at` written.

Prints one line of results as JSON on stdout (the shell script makes the table), the
details on stderr; exits 1 if a property fails.

    python3 crash_safety.py --bin target/debug/examples/account_api --engine sqlite
    python3 crash_safety.py --bin … --engine postgres --postgres-url postgres://…/test
"""

import argparse
import base64
import datetime
import hashlib
import http.client
import json
import os
import random
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

from account_api_process import free_port, log

PASSWORD = "crash safety password"


class Client:
    """One keep-alive connection; `None` for a request that got no answer."""

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
            return response.status, (json.loads(raw) if raw else None)
        except (OSError, http.client.HTTPException, ValueError):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return None

    def close(self):
        if self.conn is not None:
            self.conn.close()


class Database:
    """The example's database, read from outside."""

    def __init__(self, engine, work, postgres_url):
        self.engine = engine
        if engine == "sqlite":
            self.file = os.path.join(work, "crash.sqlite3")
            self.url = "sqlite://" + self.file
        else:
            self.server = postgres_url
            self.schema = "crash_" + secrets.token_hex(5)
            self.psql(f"create schema {self.schema}")
            sep = "&" if "?" in postgres_url else "?"
            self.url = f"{postgres_url}{sep}options=-c%20search_path%3D{self.schema}"

    def psql(self, sql):
        out = subprocess.run(
            ["psql", self.server, "-v", "ON_ERROR_STOP=1", "-AtF", "\t", "-c", sql],
            check=True, capture_output=True, text=True,
        ).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def rows(self, sql):
        """Rows as lists of text (None for null)."""
        if self.engine == "sqlite":
            with sqlite3.connect(self.file) as conn:
                return [[None if v is None else str(v) for v in row] for row in conn.execute(sql)]
        sql = sql.replace("personal_access_tokens", f"{self.schema}.personal_access_tokens")
        sql = sql.replace("bearer_auth_pending_second_factors", f"{self.schema}.bearer_auth_pending_second_factors")
        sql = sql.replace(" users", f" {self.schema}.users")
        # psql prints null as an empty field; ask for a marker instead.
        out = subprocess.run(
            ["psql", self.server, "-v", "ON_ERROR_STOP=1", "-AtF", "\t", "-P", "null=\\N", "-c", sql],
            check=True, capture_output=True, text=True,
        ).stdout
        return [[None if v == "\\N" else v for v in line.split("\t")] for line in out.splitlines() if line]

    def drop(self):
        if self.engine == "postgres":
            self.psql(f"drop schema {self.schema} cascade")


class Server:
    def __init__(self, binary, work, db, app_key):
        self.binary, self.work, self.db, self.app_key = binary, work, db, app_key
        self.proc = None
        self.port = free_port()
        self.starts = 0

    def start(self):
        self.starts += 1
        env = dict(os.environ, BIND_ADDR=f"127.0.0.1:{self.port}", DATABASE_URL=self.db.url,
                   APP_KEY=self.app_key, RUST_LOG="info")
        err = open(os.path.join(self.work, f"server-{self.starts}.err"), "w")
        self.proc = subprocess.Popen([self.binary], cwd=self.work, env=env,
                                     stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"account_api exited with {self.proc.returncode}: {self.log()}")
            reply = Client(self.port, timeout=1).request("GET", "/v1/openapi.json")
            if reply and reply[0] == 200:
                return
            time.sleep(0.1)
        raise RuntimeError("account_api did not answer within 30 s")

    def log(self):
        with open(os.path.join(self.work, f"server-{self.starts}.err")) as f:
            return f.read()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def register(port, n):
    """n users: [(id, token)]."""
    users = []
    client = Client(port, timeout=30)
    for i in range(n):
        reply = client.request("POST", "/v1/auth/register", body={
            "name": f"User {i}", "email": f"user{i}@crash.test", "password": PASSWORD})
        assert reply and reply[0] == 201, reply
        users.append((reply[1]["user"]["id"], reply[1]["token"]))
    client.close()
    return users


def new_key(client, token, name):
    reply = client.request("POST", "/v1/profile/api-keys", token, {"name": name})
    assert reply and reply[0] == 201, reply
    return reply[1]["id"], reply[1]["plain_text_token"]


# --- 1. kill -9 in a burst -------------------------------------------------------------

class Burster(threading.Thread):
    """Creates and regenerates its own keys, one request at a time, until the server dies
    or its budget is spent."""

    def __init__(self, port, master, budget, seed):
        super().__init__(daemon=True)
        self.client = Client(port)
        self.master = master
        self.budget = budget
        self.random = random.Random(seed)
        # key id -> {"tokens": [answered tokens, in order], "unsure": bool}
        self.keys = {}
        self.answered = self.unanswered = 0
        self.statuses = {}
        self.unanswered_creates = 0

    def count(self, status):
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def run(self):
        for n in range(self.budget):
            regenerable = [k for k, v in self.keys.items() if not v["unsure"]]
            if regenerable and self.random.random() < 0.5:
                key = self.random.choice(regenerable)
                reply = self.client.request("POST", f"/v1/profile/api-keys/{key}/regenerate", self.master)
                if reply is None:
                    self.keys[key]["unsure"] = True
                    self.unanswered += 1
                    return
                self.answered += 1
                self.count(reply[0])
                if reply[0] == 200:
                    self.keys[key]["tokens"].append(reply[1]["plain_text_token"])
                else:
                    # A 503 may come after the new secret was committed.
                    self.keys[key]["unsure"] = True
            else:
                reply = self.client.request("POST", "/v1/profile/api-keys", self.master, {"name": f"burst {n}"})
                if reply is None:
                    self.unanswered += 1
                    self.unanswered_creates += 1
                    return
                self.answered += 1
                self.count(reply[0])
                if reply[0] == 201:
                    self.keys[reply[1]["id"]] = {"tokens": [reply[1]["plain_text_token"]], "unsure": False}


def kill_in_a_burst(server, db, threads, budget, kill_after, rounds, tamper):
    server.start()
    users = register(server.port, 4)
    setup = Client(server.port)
    masters = [new_key(setup, users[i % len(users)][1], f"master {i}")[1] for i in range(threads)]
    setup.close()
    result = {
        "rounds": rounds, "answers before the kill": 0, "unanswered (in flight)": 0, "burst statuses": {},
        "tokens received": 0, "authenticate": 0, "old refused": 0,
        "unsure: still valid": 0, "unsure: regenerated": 0, "in-flight creates": 0, "failures": [],
    }
    ids = []
    for round_ in range(rounds):
        bursters = [Burster(server.port, masters[i], budget, seed=round_ * threads + i) for i in range(threads)]
        started = time.monotonic()
        for b in bursters:
            b.start()
        # Kill with requests in flight, once `kill_after` answers have come (or after 20 s).
        while sum(b.answered for b in bursters) < kill_after and time.monotonic() - started < 20:
            if not any(b.is_alive() for b in bursters):
                break
            time.sleep(0.002)
        answered_at_kill = sum(b.answered for b in bursters)
        in_flight = sum(1 for b in bursters if b.is_alive())
        server.kill()
        burst_seconds = time.monotonic() - started
        for b in bursters:
            b.join(15)
            b.client.close()
        log(f"  round {round_ + 1}: killed after {answered_at_kill} answers in {burst_seconds:.2f} s, "
            f"{in_flight} threads with a request in flight")
        if tamper and round_ == rounds - 1:
            tamper_with(db, bursters)
        server.start()
        ids += verify_round(server, db, bursters, result)
    result.update(check_rows(db))
    # Rows beyond those of the answered creations, the masters and the registrations:
    # creations in flight at a kill that were committed (their tokens never shown).
    result["in-flight creates committed"] = result["rows"] - len(ids) - threads - len(users)
    return result


def verify_round(server, db, bursters, result):
    """Checks the keys of one burst after the restart; adds to `result`; the key ids."""
    client = Client(server.port)
    result["answers before the kill"] += sum(b.answered for b in bursters)
    result["unanswered (in flight)"] += sum(b.unanswered for b in bursters)
    result["in-flight creates"] += sum(b.unanswered_creates for b in bursters)
    statuses = result["burst statuses"]
    for b in bursters:
        for status, n in b.statuses.items():
            statuses[str(status)] = statuses.get(str(status), 0) + n
    ids = []
    for b in bursters:
        for key_id, key in b.keys.items():
            ids.append(key_id)
            tokens = key["tokens"]
            result["tokens received"] += len(tokens)
            for old in tokens[:-1]:
                reply = client.request("GET", "/v1/auth/user", old)
                if reply and reply[0] == 401:
                    result["old refused"] += 1
                else:
                    result["failures"].append(f"key {key_id}: a token regenerated since (answered) got {reply and reply[0]}")
            reply = client.request("GET", "/v1/auth/user", tokens[-1])
            status = reply and reply[0]
            if key["unsure"]:
                if status == 200:
                    result["unsure: still valid"] += 1
                elif status == 401:
                    result["unsure: regenerated"] += 1
                else:
                    result["failures"].append(f"key {key_id}: its token (regenerate unanswered) got {status}")
            elif status == 200:
                result["authenticate"] += 1
            else:
                result["failures"].append(f"key {key_id}: a token the client received got {status}, not 200")
    client.close()
    digests = dict(db.rows("select id, token from personal_access_tokens"))
    missing = [i for i in ids if str(i) not in digests]
    if missing:
        result["failures"].append(f"keys a client received without a row: {missing[:10]}")
    # The row of each key holds the digest of the last token its client received.
    for b in bursters:
        for key_id, key in b.keys.items():
            digest = hashlib.sha256(key["tokens"][-1].split("|", 1)[1].encode()).hexdigest()
            if not key["unsure"] and str(key_id) in digests and digests[str(key_id)] != digest:
                result["failures"].append(f"key {key_id}: its row does not hold the digest of its last token")
    return ids


def tamper_with(db, bursters):
    """What the checks must notice (--tamper): a received key's row deleted, a
    regenerated key's digest set back to its old token's, a row's name emptied."""
    keys = [(k, v) for b in bursters for k, v in b.keys.items() if not v["unsure"]]
    once = [k for k, v in keys if len(v["tokens"]) == 1]
    regenerated = [(k, v) for k, v in keys if len(v["tokens"]) >= 2]
    assert len(once) >= 2 and regenerated, "too few keys to tamper with"
    old_secret = regenerated[0][1]["tokens"][-2].split("|", 1)[1]
    old_digest = hashlib.sha256(old_secret.encode()).hexdigest()
    statements = [
        f"delete from personal_access_tokens where id = {once[0]}",
        f"update personal_access_tokens set name = '' where id = {once[1]}",
        f"update personal_access_tokens set token = '{old_digest}' where id = {regenerated[0][0]}",
    ]
    log(f"  tampering: {statements}")
    if db.engine == "sqlite":
        with sqlite3.connect(db.file) as conn:
            for statement in statements:
                conn.execute(statement)
    else:
        for statement in statements:
            db.psql(statement.replace("personal_access_tokens", f"{db.schema}.personal_access_tokens"))


def check_rows(db):
    rows = db.rows(
        "select id, token, name, tokenable_type, tokenable_id, abilities, created_at "
        "from personal_access_tokens"
    )
    users = {row[0] for row in db.rows("select id from users")}
    bad = []
    for row_id, token, name, ttype, tid, abilities, created in rows:
        why = []
        if token is None or not re.fullmatch(r"[0-9a-f]{64}", token):
            why.append("token")
        if not name:
            why.append("name")
        if ttype != "App\\Models\\User":
            why.append("tokenable_type")
        if tid not in users:
            why.append("tokenable_id")
        try:
            if not isinstance(json.loads(abilities), list):
                why.append("abilities")
        except (TypeError, ValueError):
            why.append("abilities")
        if not created:
            why.append("created_at")
        if why:
            bad.append(f"row {row_id}: {', '.join(why)}")
    orphans = db.rows(
        "select token_id from bearer_auth_pending_second_factors "
        "where token_id not in (select id from personal_access_tokens)"
    )
    failures = [f"half-written {b}" for b in bad[:10]]
    if orphans:
        failures.append(f"pending second factors of keys that are gone: {orphans[:10]}")
    return {"rows": len(rows), "half-written rows": len(bad), "row failures": failures}


# --- 2. SIGTERM under load -------------------------------------------------------------

class Loader(threading.Thread):
    """Sends GET /v1/auth/user with its keys in turn until the server stops answering."""

    def __init__(self, port, tokens):
        super().__init__(daemon=True)
        self.client = Client(port)
        self.tokens = tokens  # [(key id, token)]
        self.used = set()
        self.answers = {}
        self.sent = 0

    def run(self):
        failures_in_a_row = 0
        while failures_in_a_row < 3 and self.sent < 5000:
            for key_id, token in self.tokens:
                self.sent += 1
                reply = self.client.request("GET", "/v1/auth/user", token)
                if reply is None:
                    failures_in_a_row += 1
                    time.sleep(0.01)
                    continue
                failures_in_a_row = 0
                self.answers[reply[0]] = self.answers.get(reply[0], 0) + 1
                if reply[0] == 200:
                    self.used.add(key_id)
        self.client.close()


def sigterm_under_load(server, db, threads, keys_per_thread, load_seconds, stop_signal):
    # Server from step 1, still running.
    users = register_more(server.port)
    client = Client(server.port)
    groups = []
    for t in range(threads):
        groups.append([new_key(client, users[t % len(users)][1], f"load {t}.{k}") for k in range(keys_per_thread)])
    client.close()
    ids = [key_id for group in groups for key_id, _ in group]
    id_list = ",".join(str(i) for i in ids)
    before = db.rows(f"select count(*) from personal_access_tokens where id in ({id_list}) and last_used_at is not null")
    loaders = [Loader(server.port, group) for group in groups]
    load_started = time.time()
    for loader in loaders:
        loader.start()
    time.sleep(load_seconds)
    # Written by the periodic writer before the signal (60 s interval: none expected).
    written_before = int(db.rows(
        f"select count(*) from personal_access_tokens where id in ({id_list}) and last_used_at is not null")[0][0])
    sent_at_signal = sum(l.sent for l in loaders)
    signalled = time.monotonic()
    server.proc.send_signal(stop_signal)
    try:
        code = server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        code = "no exit within 20 s"
    stop_seconds = time.monotonic() - signalled
    for loader in loaders:
        loader.join(15)
    used = set().union(*(l.used for l in loaders))
    rows = db.rows(f"select id, last_used_at from personal_access_tokens where id in ({id_list})")
    written = {int(i) for i, at in rows if at is not None}
    answers = {}
    for l in loaders:
        for status, n in l.answers.items():
            answers[status] = answers.get(status, 0) + n
    failures = []
    if code != 0:
        failures.append(f"exit status on SIGTERM: {code}")
    if int(before[0][0]) != 0:
        failures.append("keys used before the load")
    lost = sorted(used - written)
    if lost:
        failures.append(f"used keys without last_used_at after the stop: {lost[:10]}")
    # Each written time lies within the load, to the second (UTC, `Y-m-d H:i:s`).
    stopped = time.time()
    for key_id, at in rows:
        if at is None:
            continue
        when = datetime.datetime.strptime(at[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc)
        if not load_started - 1 <= when.timestamp() <= stopped + 1:
            failures.append(f"key {key_id}: last_used_at {at} is not within the load")
    unexpected = {s: n for s, n in answers.items() if s != 200}
    if unexpected:
        failures.append(f"answers other than 200 under load: {unexpected}")
    if "last_used_at flushed" not in server.log():
        failures.append("no 'last_used_at flushed' in the server's log")
    return {
        "keys": len(ids), "requests": sum(l.sent for l in loaders), "requests at SIGTERM": sent_at_signal,
        "keys used": len(used), "last_used_at written": len(used & written),
        "written before SIGTERM": written_before, "exit": code, "stop seconds": round(stop_seconds, 2),
        "failures": failures,
    }


def register_more(port):
    client = Client(port, timeout=30)
    users = []
    for i in range(2):
        reply = client.request("POST", "/v1/auth/register", body={
            "name": f"Loader {i}", "email": f"loader{i}@crash.test", "password": PASSWORD})
        assert reply and reply[0] == 201, reply
        users.append((reply[1]["user"]["id"], reply[1]["token"]))
    client.close()
    return users


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--engine", choices=["sqlite", "postgres"], required=True)
    parser.add_argument("--postgres-url")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--budget", type=int, default=150, help="requests per thread in the burst, at most")
    parser.add_argument("--kill-after", type=int, default=400, help="answers before each SIGKILL")
    parser.add_argument("--rounds", type=int, default=3, help="bursts, each ended by a SIGKILL and a restart")
    parser.add_argument("--load-threads", type=int, default=6)
    parser.add_argument("--keys-per-thread", type=int, default=4)
    parser.add_argument("--load-seconds", type=float, default=2.0)
    parser.add_argument("--tamper", action="store_true",
                        help="self-test: damage the database after the kill and stop with SIGKILL, not "
                             "SIGTERM; every check must then fail")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="crash-safety-")
    db = Database(args.engine, work, args.postgres_url)
    app_key = "base64:" + base64.b64encode(secrets.token_bytes(32)).decode()
    server = Server(os.path.abspath(args.bin), work, db, app_key)
    try:
        log(f"{args.engine}: kill -9 in a burst of key creations and regenerations")
        crash = kill_in_a_burst(server, db, args.threads, args.budget, args.kill_after, args.rounds, args.tamper)
        log(f"{args.engine}: SIGTERM under load")
        stop_signal = signal.SIGKILL if args.tamper else signal.SIGTERM
        stop = sigterm_under_load(server, db, args.load_threads, args.keys_per_thread, args.load_seconds, stop_signal)
    finally:
        server.kill()
        db.drop()
        shutil.rmtree(work, ignore_errors=True)
    failures = crash.pop("failures") + crash.pop("row failures") + stop["failures"]
    for failure in failures:
        log(f"  FAIL {failure}")
    print(json.dumps({"engine": args.engine, "crash": crash, "stop": stop, "failures": failures}))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
