"""Two instances, one database (tests/two-instances.sh): two account_api processes, A
and B, on one PostgreSQL schema. Create a key on A and use it on B at once; revoke (or
regenerate) it on A and measure how long B keeps accepting it.

Per trial (each its own key):
  1. POST /v1/profile/api-keys on A (the login token of a user registered on A);
  2. GET /v1/auth/user on B with the new token, at once: must be 200 on the very first
     request (the key is committed before A answers; B has never seen its digest);
  3. B's cache kept warm: the token used on B every `--poll` s for a random 0.05 to
     0.5 s (B's entry was loaded by step 2, so the revoke comes early in its life: the
     worst case for the bound without notifications);
  4. revoke: DELETE /v1/profile/api-keys/{id} on A (204), or regenerate:
     POST .../{id}/regenerate (200, a new token, which must answer 200 on B at once);
  5. the old token polled on B every `--poll` s until 401; delay = time from A's answer
     to B's first 401. Every answer before it must be 200, and 3 more after it 401.

Bounds: without KEYS_NOTIFY, the cache's time to live (5 s) plus `--slack` (0.1 s: the
poll period, one loopback request, scheduling on a busy machine); with KEYS_NOTIFY=1 on
both, 1 s. Without notify the delay should be (B's entry's load) + ttl − (A's answer):
the excess over that is reported too.

With KEYS_NOTIFY=1 a third kind of trial, "race": the revoke is sent on A while B
verifies the token for the first time (its load may be in flight across the
notification): B's first answer may be 200 or 401, but B must refuse it within the
bound after A's answer (an answer loaded across the eviction must not be cached).

Prints one line of JSON on stdout (the shell makes the table), details on stderr; exits
1 if a trial exceeds its bound or a create-then-use fails.

    python3 two_instances.py --bin target/release/examples/account_api \
        --postgres-url postgres://postgres@127.0.0.1:5432/test
"""

import argparse
import base64
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from account_api_process import Client, Server, log, now

PASSWORD = "two instances password"


class Database:
    def __init__(self, url):
        self.server = url
        self.schemas = []

    def psql(self, sql):
        subprocess.run(["psql", self.server, "-v", "ON_ERROR_STOP=1", "-Atq", "-c", sql],
                       check=True, capture_output=True, text=True, timeout=30)

    def new_schema(self):
        schema = "two_" + secrets.token_hex(5)
        self.psql(f"create schema {schema}")
        self.schemas.append(schema)
        sep = "&" if "?" in self.server else "?"
        return f"{self.server}{sep}options=-c%20search_path%3D{schema}"

    def drop(self):
        for schema in self.schemas:
            try:
                self.psql(f"drop schema if exists {schema} cascade")
            except (subprocess.SubprocessError, OSError) as e:
                log(f"  could not drop schema {schema}: {e}")


def percentile(values, p):
    """Nearest rank."""
    values = sorted(values)
    if not values:
        return None
    rank = max(1, -(-len(values) * p // 100))
    return values[int(rank) - 1]


def summary(delays):
    ms = [d * 1000 for d in delays]
    if not ms:
        return None
    return {"n": len(ms), "min": round(min(ms), 1), "median": round(percentile(ms, 50), 1),
            "p99": round(percentile(ms, 99), 1), "max": round(max(ms), 1)}


class Trials:
    def __init__(self, a, b, login, args, bound, mode):
        self.a, self.b, self.login, self.args, self.bound, self.mode = a, b, login, args, bound, mode
        self.ca, self.cb = Client(a.port), Client(b.port)
        self.failures = []
        self.delays = {"revoke": [], "regenerate": [], "race": []}
        self.excess = []  # delay minus the end of B's entry's life, without notify
        self.first_use = {}  # status of the first use on B -> count
        self.random = random.Random(args.seed)

    def fail(self, text):
        if len(self.failures) < 50:
            self.failures.append(f"{self.mode}: {text}")
        log(f"  FAIL {self.mode}: {text}")

    def create(self, name):
        status, body = self.ca.request("POST", "/v1/profile/api-keys", self.login, {"name": name})
        if status != 201:
            raise RuntimeError(f"create on A answered {status}: {body}")
        return body["id"], body["plain_text_token"]

    def use_on_b(self, token):
        sent = now()
        status, body = self.cb.request("GET", "/v1/auth/user", token)
        return status, sent, now()

    def first_use_on_b(self, token, what):
        status, sent, answered = self.use_on_b(token)
        self.first_use[str(status)] = self.first_use.get(str(status), 0) + 1
        if status != 200:
            self.fail(f"{what}: the first use on B answered {status}, not 200")
        return status, sent, answered

    def warm(self):
        return now() + self.random.uniform(0.05, 0.5)

    def poll_until_refused(self, token, since, what, bound):
        """Polls B until 401; the delay from `since`, or None."""
        # Past the bound too (up to the ttl's, + 2 s), so that a delay over it is measured.
        limit = max(bound, self.args.ttl + self.args.slack) + 2.0
        deadline = since + limit
        while now() < deadline:
            status, sent, answered = self.use_on_b(token)
            if status == 401:
                delay = answered - since
                for _ in range(3):
                    again = self.use_on_b(token)[0]
                    if again != 401:
                        self.fail(f"{what}: B answered {again} after it had refused the token")
                        break
                return delay
            if status != 200:
                self.fail(f"{what}: B answered {status} while the token was still accepted")
            time.sleep(self.args.poll)
        self.fail(f"{what}: B still accepted the token {limit:.1f} s after A's answer")
        return None

    def one(self, kind, n):
        what = f"{kind} #{n}"
        key_id, token = self.create(what)
        if kind == "race":
            # The revoke on A while B loads the token for the first time: B's first use
            # 0 to 2 ms after the revoke is sent (the DELETE and its commit take a few
            # ms), so that B's lookup runs before, across or after the commit and its
            # notification.
            first = {}
            lag = self.random.uniform(0.0, 0.002)

            def use_first():
                time.sleep(lag)
                first["status"] = self.use_on_b(token)[0]

            # The thread's first use goes on B's keep-alive connection; the poll below
            # uses it again after the thread is done.
            user = threading.Thread(target=use_first)
            user.start()
            status, _ = self.ca.request("DELETE", f"/v1/profile/api-keys/{key_id}", self.login)
            revoked = now()
            user.join(15)
            if status != 204:
                raise RuntimeError(f"revoke on A answered {status}")
            self.first_use["race: " + str(first.get("status"))] = self.first_use.get("race: " + str(first.get("status")), 0) + 1
            if first.get("status") not in (200, 401):
                self.fail(f"{what}: B's first use answered {first.get('status')}")
            delay = self.poll_until_refused(token, revoked, what, self.bound)
            if delay is not None:
                self.delays[kind].append(delay)
                if delay > self.bound:
                    self.fail(f"{what}: refused on B {delay * 1000:.0f} ms after the revoke, bound "
                              f"{self.bound * 1000:.0f} ms")
            return
        _, loaded_sent, loaded_answered = self.first_use_on_b(token, what)
        until = self.warm()
        while now() < until:
            status = self.use_on_b(token)[0]
            if status != 200:
                self.fail(f"{what}: B answered {status} while warming")
                break
            time.sleep(self.args.poll)
        new_token = None
        if kind == "revoke":
            status, body = self.ca.request("DELETE", f"/v1/profile/api-keys/{key_id}", self.login)
            expected = 204
        else:
            status, body = self.ca.request("POST", f"/v1/profile/api-keys/{key_id}/regenerate", self.login)
            expected = 200
        changed = now()
        if status != expected:
            raise RuntimeError(f"{kind} on A answered {status}: {body}")
        if kind == "regenerate":
            new_token = body["plain_text_token"]
            self.first_use_on_b(new_token, what + " (new token)")
        delay = self.poll_until_refused(token, changed, what, self.bound)
        if delay is None:
            return
        self.delays[kind].append(delay)
        if delay > self.bound:
            self.fail(f"{what}: the old token refused on B {delay * 1000:.0f} ms after A's answer, bound "
                      f"{self.bound * 1000:.0f} ms")
        detail = ""
        if not self.args.notify_mode:
            # B's entry lives from its load (in [loaded_sent, loaded_answered]) for the ttl:
            # B's refusal after the end of its life, at most and at least.
            late = delay - (loaded_sent + self.args.ttl - changed)
            early = delay - (loaded_answered + self.args.ttl - changed)
            self.excess.append((early, late))
            detail = f", {early * 1000:.1f}..{late * 1000:.1f} ms after its entry's end"
        if self.args.verbose:
            log(f"    {what}: {delay * 1000:.1f} ms (first use on B took "
                f"{(loaded_answered - loaded_sent) * 1000:.1f} ms{detail})")
        if new_token is not None:
            status = self.use_on_b(new_token)[0]
            if status != 200:
                self.fail(f"{what}: the new token answered {status} on B after the old one was refused")

    def run(self, kinds):
        started = now()
        n = 0
        for kind, count in kinds:
            for _ in range(count):
                n += 1
                self.one(kind, n)
        self.ca.close()
        self.cb.close()
        return now() - started


def phase(args, db, work, app_key, notify, counts, bound, mode, b_elsewhere=False):
    url = db.new_schema()
    a = b = None
    try:
        a = Server(f"{mode}-A", args.bin, work, url, app_key, notify)
        # B on the same schema (or, as a self-test, on another one: a misconfiguration).
        b = Server(f"{mode}-B", args.bin, work, db.new_schema() if b_elsewhere else url, app_key, notify)
        client = Client(a.port, timeout=30)
        status, body = client.request("POST", "/v1/auth/register", body={
            "name": "Two", "email": f"{mode}@two.test", "password": PASSWORD})
        client.close()
        if status != 201:
            raise RuntimeError(f"register on A answered {status}: {body}")
        login = body["token"]
        args.notify_mode = notify
        trials = Trials(a, b, login, args, bound, mode)
        seconds = trials.run(counts)
        alive = a.proc.poll() is None and b.proc.poll() is None
        if not alive:
            trials.fail("a server exited during the trials")
        result = {
            "mode": mode, "notify": notify, "bound ms": round(bound * 1000), "seconds": round(seconds, 1),
            "first use on B": trials.first_use,
            "revoke": summary(trials.delays["revoke"]), "regenerate": summary(trials.delays["regenerate"]),
            "race": summary(trials.delays["race"]),
            "refused after the entry's end ms": None if not trials.excess else {
                "min": round(min(e for e, _ in trials.excess) * 1000, 1),
                "max": round(max(l for _, l in trials.excess) * 1000, 1)},
            "over bound": sum(1 for k in trials.delays.values() for d in k if d > bound),
            "failures": trials.failures,
        }
        for server in (a, b):
            errors = [line for line in server.log().splitlines() if "panicked" in line or " ERROR " in line]
            if errors:
                result.setdefault("server errors", []).extend(errors[:5])
        return result
    finally:
        for server in (b, a):
            if server is not None:
                server.stop()


def main():
    # SIGTERM (from `timeout`, or the shell's trap) runs the clean-up as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--postgres-url", required=True)
    parser.add_argument("--trials", type=int, default=16, help="revoke trials without notify")
    parser.add_argument("--regen-trials", type=int, default=4, help="regenerate trials without notify")
    parser.add_argument("--notify-trials", type=int, default=100, help="revoke trials with KEYS_NOTIFY=1")
    parser.add_argument("--notify-regen-trials", type=int, default=20)
    parser.add_argument("--notify-race-trials", type=int, default=20)
    parser.add_argument("--ttl", type=float, default=5.0)
    parser.add_argument("--slack", type=float, default=0.1)
    parser.add_argument("--notify-bound", type=float, default=1.0)
    parser.add_argument("--poll", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--verbose", action="store_true", help="one line per trial on stderr")
    parser.add_argument("--self-test", choices=["notify-off", "other-schema"],
                        help="notify-off: the notify bound (1 s) checked on instances without KEYS_NOTIFY; "
                             "other-schema: B on another schema. The checks must fail")
    args = parser.parse_args()
    args.bin = os.path.abspath(args.bin)
    db = Database(args.postgres_url)
    work = tempfile.mkdtemp(prefix="two-instances-")
    app_key = "base64:" + base64.b64encode(secrets.token_bytes(32)).decode()
    results = []
    try:
        if args.self_test == "notify-off":
            results.append(phase(args, db, work, app_key, False, [("revoke", 2)], args.notify_bound, "self-test"))
        elif args.self_test == "other-schema":
            results.append(phase(args, db, work, app_key, False, [("revoke", 1)], args.ttl + args.slack,
                                 "self-test", b_elsewhere=True))
        else:
            if args.trials + args.regen_trials:
                log(f"without notify: {args.trials} revoke + {args.regen_trials} regenerate trials")
                results.append(phase(args, db, work, app_key, False,
                                     [("revoke", args.trials), ("regenerate", args.regen_trials)],
                                     args.ttl + args.slack, "ttl"))
            if args.notify_trials + args.notify_regen_trials + args.notify_race_trials:
                log(f"KEYS_NOTIFY=1: {args.notify_trials} revoke + {args.notify_regen_trials} regenerate + "
                    f"{args.notify_race_trials} race trials")
                results.append(phase(args, db, work, app_key, True,
                                     [("revoke", args.notify_trials), ("regenerate", args.notify_regen_trials),
                                      ("race", args.notify_race_trials)],
                                     args.notify_bound, "notify"))
    finally:
        db.drop()
        shutil.rmtree(work, ignore_errors=True)
    failures = [f for r in results for f in r["failures"]]
    print(json.dumps({"results": results, "failures": failures}))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
