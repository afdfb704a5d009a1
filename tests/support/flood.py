"""Flood of made-up tokens beside a steady stream of valid ones (tests/flood.sh).

The example (release binary) on a PostgreSQL schema of its own, with an
`application_name` of its own (its connections counted in pg_stat_activity). One user,
`--keys` API keys. Then:

1. Calibration of the lookup counter: the database's lookups by digest are counted as
   `idx_scan` of the unique index `personal_access_tokens_token_unique` in the run's
   schema (read once the server's backends have flushed their statistics: the same value
   three times a second apart). 200 distinct cold tokens must count 200; the same 200 at
   once again, 0 more (the refusal cache); again after the cache's 5 s time to live,
   200 more.
2. Quiet: the valid stream alone for `--quiet` seconds: GET /v1/auth/user at `--rate` a
   second on one keep-alive connection, the keys in turn, paced by a schedule (latency
   counted from the scheduled time, as wrk2 does, so that a stall is not hidden).
3. Flood A (`windows`): wrk, as fast as it goes, sends well-formed random tokens; every
   `--window` seconds a new set of `--set-size` tokens (2,000), each sent many times
   within its window, from several connections: every repeat comes within the cache's
   time to live. The store's promise, one query per distinct token, holds while the
   distinct tokens of one time to live fit its refusal cache (10,000 entries, spread
   over shards unevenly): here at most two sets, 4,000, are in force at once. With sets
   of 5,000 (10,000 in force, the cache's whole capacity) a run measured 1.27 lookups
   per token.
4. Flood B (`set`): one fixed set of `--big-set` tokens (50,000, more than the refusal
   cache holds) cycled for the whole flood.

During each flood the valid stream runs as in 2. Goals, for each flood:
- valid requests: every one 200 with the user's body (no 503: the pool never exhausted
  for them, no 401), p99 latency within `--latency-factor` (2) × the quiet p99;
- database lookups (idx_scan delta) ≤ distinct flood tokens sent + the valid keys'
  refreshes (each valid key's row is cached 5 s: at most keys × (seconds / 5 + 2));
  for flood B reported only (its tokens come back after the cache let them go, by
  capacity and by time to live), unless `--strict-big`;
- every flood answer the documented 401 (a 503 is counted, and is not a failure of the
  valid stream's goal);
- memory bounded: the server's VmRSS sampled every 0.5 s; after the first quarter of
  the flood it grows less than `--rss-goal` % (last sample against the sample at the
  quarter), and the peak over the whole run is reported.

Prints one line of results as JSON on stdout, details on stderr; exits 1 when a goal is
missed. Bounded: wrk runs `--flood` seconds (killed 30 s later), every request has a
timeout, every wait a deadline; the server is killed on exit and the schema dropped.
"""

import argparse
import base64
import http.client
import json
import os
import random
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

HERE = os.path.dirname(os.path.abspath(__file__))
PASSWORD = "flood test password"
UNAUTHENTICATED = b'{"message":"Unauthenticated."}'
TTL = 5.0  # the store's default cache time to live (bearer_auth_sqlx::DEFAULT_CACHE_TTL)
INDEX = "personal_access_tokens_token_unique"


def random_token():
    return f"{random.randint(1, 10**9)}|" + "".join(random.choices(string.ascii_letters + string.digits, k=40))


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))]


class Client:
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
        # A kept-alive connection the server closed (idle past its 10 s header timeout)
        # is opened again, once.
        for attempt in (1, 2):
            reused = self.conn is not None
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if not reused:
                    return None
        return None

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None


class Postgres:
    def __init__(self, url):
        self.url = url
        self.schema = "flood_" + secrets.token_hex(5)
        self.psql(f"create schema {self.schema}")
        sep = "&" if "?" in url else "?"
        self.app_url = f"{url}{sep}options=-c%20search_path%3D{self.schema}&application_name={self.schema}"

    def psql(self, sql):
        out = subprocess.run(["psql", self.url, "-v", "ON_ERROR_STOP=1", "-AtF", "\t", "-c", sql],
                             check=True, capture_output=True, text=True, timeout=30).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def idx_scan(self):
        rows = self.psql(f"select idx_scan from pg_stat_user_indexes "
                         f"where schemaname = '{self.schema}' and indexrelname = '{INDEX}'")
        return int(rows[0][0])

    def settled_idx_scan(self, quiet=11, deadline=60):
        """idx_scan once the server's backends have flushed their counts. PostgreSQL 15
        flushes a busy backend's counts at most once a second, and an idle one's only
        after PGSTAT_IDLE_INTERVAL (10 s): the value must stay the same for `quiet`
        seconds (read every second, each read a new transaction)."""
        end = time.monotonic() + deadline
        last, since = None, None
        while time.monotonic() < end:
            value = self.idx_scan()
            now = time.monotonic()
            if value != last:
                last, since = value, now
            elif now - since >= quiet:
                return value
            time.sleep(1)
        raise RuntimeError(f"idx_scan still moving after {deadline} s")

    def fill(self, rows):
        """`rows` keys of nobody (tokenable_id 0), so that the table is the size of a real
        one and the planner looks digests up by the unique index (on a table of a few rows
        it scans the table, and idx_scan counts nothing)."""
        self.psql(f"insert into {self.schema}.personal_access_tokens "
                  f"(tokenable_type, tokenable_id, name, token, abilities, created_at, updated_at) "
                  f"select 'App\\Models\\User', 0, 'filler', md5(i::text) || md5((-i)::text), '[\"*\"]', "
                  f"now(), now() from generate_series(1, {rows}) i")
        self.psql(f"analyze {self.schema}.personal_access_tokens")

    def connections(self):
        rows = self.psql(f"select coalesce(state, '?'), count(*) from pg_stat_activity "
                         f"where application_name = '{self.schema}' group by 1")
        return {state: int(n) for state, n in rows}

    def drop(self):
        self.psql(f"drop schema if exists {self.schema} cascade")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


class Sampler(threading.Thread):
    """VmRSS every 0.5 s, the server's connections every second, until stopped."""

    def __init__(self, pid, pg):
        super().__init__(daemon=True)
        self.pid, self.pg = pid, pg
        self.stop = threading.Event()
        self.rss = []  # (time, KiB)
        self.conns = []  # (time, total, active)

    def run(self):
        n = 0
        while not self.stop.is_set():
            now = time.monotonic()
            try:
                self.rss.append((now, rss_kib(self.pid)))
                if n % 2 == 0:
                    states = self.pg.connections()
                    self.conns.append((now, sum(states.values()), states.get("active", 0)))
            except (OSError, subprocess.SubprocessError):
                pass
            n += 1
            self.stop.wait(0.5)

    def between(self, start, end):
        return ([kib for t, kib in self.rss if start <= t <= end],
                [(total, active) for t, total, active in self.conns if start <= t <= end])


class ValidStream(threading.Thread):
    """GET /v1/auth/user with valid keys at a fixed rate, on one keep-alive connection."""

    def __init__(self, port, tokens, user_body, rate, seconds):
        super().__init__(daemon=True)
        self.client = Client(port, timeout=10)
        self.tokens, self.user_body = tokens, user_body
        self.rate, self.seconds = rate, seconds
        self.latencies = []  # from the scheduled time, ms
        self.service = []  # from the send, ms
        self.statuses = {}
        self.bad = []
        self.slow = []  # the slowest answers: (ms from the send, wall clock at the send)

    def run(self):
        start = time.perf_counter()
        n = int(self.rate * self.seconds)
        for i in range(n):
            scheduled = start + i / self.rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter()
            wall = time.time()
            reply = self.client.request("GET", "/v1/auth/user", self.tokens[i % len(self.tokens)])
            done = time.perf_counter()
            self.latencies.append((done - scheduled) * 1000)
            self.service.append((done - sent) * 1000)
            self.slow.append(((done - sent) * 1000, wall))
            if len(self.slow) > 64:
                self.slow.sort(reverse=True)
                del self.slow[8:]
            status = reply[0] if reply else "no answer"
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status != 200 or reply[1] != self.user_body:
                if len(self.bad) < 5:
                    self.bad.append(f"{status} {reply and reply[1][:100]!r}")
        self.client.close()

    def summary(self):
        return {
            "requests": len(self.latencies),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "non-200": sum(v for k, v in self.statuses.items() if k != 200),
            "p50 ms": round(percentile(self.latencies, 50), 3),
            "p99 ms": round(percentile(self.latencies, 99), 3),
            "max ms": round(max(self.latencies), 3),
            "service p99 ms": round(percentile(self.service, 99), 3),
            "service max ms": round(max(self.service), 3),
            # The slowest answers, and where they fell in flood A's 4 s windows (seconds
            # after the wall clock's multiple of 4: the new set's first misses come at 0).
            "slowest (ms, s into the window)": [(round(ms, 1), round(wall % 4, 2))
                                                for ms, wall in sorted(self.slow, reverse=True)[:5]],
            "bad": self.bad,
        }


def wrk_values(text):
    values = {}
    for line in text.splitlines():
        if line.startswith("FLOOD "):
            _, name, value = line.split(" ", 2)
            values[name] = value
    return values


def parse_cpus(cpus):
    """The set of CPUs of a taskset list: "1", "0,2", "0-3"."""
    out = set()
    for part in cpus.split(","):
        first, _, last = part.partition("-")
        out.update(range(int(first), int(last or first) + 1))
    return out


def niced(value):
    """A preexec_fn that sets a child's nice value to `value` (as such, not added to this
    script's own), or None for 0: the child keeps this script's."""
    return (lambda: os.setpriority(os.PRIO_PROCESS, 0, value)) if value else None


def pinned(cpus):
    """The command prefix that runs a program on the CPUs `cpus` ("0", "1-3"), or none."""
    return ["taskset", "-c", cpus] if cpus else []


class Run:
    def __init__(self, args):
        self.args = args
        self.pg = Postgres(args.postgres_url)
        self.work = tempfile.mkdtemp(prefix="flood-")
        self.port = free_port()
        self.server = None
        self.wrk = None

    def start(self):
        env = dict(os.environ, BIND_ADDR=f"127.0.0.1:{self.port}", DATABASE_URL=self.pg.app_url, RUST_LOG="warn",
                   APP_KEY="base64:" + base64.b64encode(secrets.token_bytes(32)).decode())
        self.err = open(os.path.join(self.work, "server.err"), "w")
        if self.args.server_workers:
            env["TOKIO_WORKER_THREADS"] = str(self.args.server_workers)
        self.server = subprocess.Popen(pinned(self.args.server_cpus) + [self.args.bin], cwd=self.work, env=env,
                                       stdout=subprocess.DEVNULL, stderr=self.err,
                                       preexec_fn=niced(self.args.server_nice))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"account_api exited with {self.server.returncode}: {self.server_log()}")
            reply = Client(self.port, timeout=2).request("GET", "/v1/openapi.json")
            if reply and reply[0] == 200:
                return
            time.sleep(0.1)
        raise RuntimeError("account_api did not answer within 30 s")

    def server_log(self):
        with open(os.path.join(self.work, "server.err")) as f:
            return f.read()[-2000:]

    def cleanup(self):
        for proc in (self.wrk, self.server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        try:
            self.pg.drop()
        finally:
            shutil.rmtree(self.work, ignore_errors=True)

    def setup_keys(self):
        client = Client(self.port, timeout=30)
        reply = client.request("POST", "/v1/auth/register", body={
            "name": "Flood", "email": "flood@flood.test", "password": PASSWORD})
        assert reply and reply[0] == 201, reply
        master = json.loads(reply[1])["token"]
        tokens = []
        for i in range(self.args.keys):
            reply = client.request("POST", "/v1/profile/api-keys", master, {"name": f"valid {i}"})
            assert reply and reply[0] == 201, reply
            tokens.append(json.loads(reply[1])["plain_text_token"])
        reply = client.request("GET", "/v1/auth/user", tokens[0])
        assert reply and reply[0] == 200, reply
        client.close()
        return tokens, reply[1]

    def calibrate(self):
        """The counter counts lookups: 200 cold tokens count 200, their repeats within the
        time to live none, their repeats after it 200 again."""
        client = Client(self.port)
        tokens = [random_token() for _ in range(200)]
        before = self.pg.settled_idx_scan()

        def send():
            for token in tokens:
                reply = client.request("GET", "/v1/auth/user", token)
                assert reply and reply[0] == 401, reply
        started = time.monotonic()
        send()
        send()  # within the time to live: from the refusal cache
        took = time.monotonic() - started
        cold = self.pg.settled_idx_scan()
        time.sleep(max(0.0, TTL + 0.5 - (time.monotonic() - started)))
        send()  # past the time to live: queried again
        again = self.pg.settled_idx_scan()
        client.close()
        result = {"cold 200 + repeat 200": cold - before, "seconds for the 400": round(took, 2),
                  "again after the TTL": again - cold}
        log(f"calibration: {result}")
        return result

    def flood(self, name, mode, size, tokens, user_body, sampler):
        args = self.args
        url = f"http://127.0.0.1:{self.port}/v1/auth/user"
        lua = os.path.join(HERE, "flood.lua")
        seed = random.randrange(1, 10**6)
        per_thread = args.max_requests // args.wrk_threads
        before = self.pg.settled_idx_scan()
        started = time.monotonic()
        out_path = os.path.join(self.work, f"{name}.wrk")
        with open(out_path, "w") as out:
            # The nice value is set as such, not added to this script's own (--client-nice).
            self.wrk = subprocess.Popen(
                pinned(args.wrk_cpus) + ["wrk", f"-t{args.wrk_threads}", f"-c{args.wrk_connections}", f"-d{args.flood}s", "--timeout", "10s",
                 "-s", lua, url, "--", mode, str(size), str(seed), str(args.window), str(per_thread)],
                stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=niced(args.wrk_nice))
        # The valid stream inside the flood: from 1 s in to 1 s before its end.
        time.sleep(1)
        stream = ValidStream(self.port, tokens, user_body, args.rate, max(1.0, args.flood - 2))
        stream.start()
        stream.join(args.flood + 30)
        try:
            self.wrk.wait(timeout=args.flood + 30)
        except subprocess.TimeoutExpired:
            self.wrk.kill()
            self.wrk.wait()
            raise RuntimeError(f"wrk did not end within {args.flood + 30} s")
        ended = time.monotonic()
        if self.wrk.returncode != 0:
            raise RuntimeError(f"wrk failed ({self.wrk.returncode}): {open(out_path).read()[-2000:]}")
        if self.server.poll() is not None:
            raise RuntimeError(f"account_api died during the flood: {self.server_log()}")
        values = wrk_values(open(out_path).read())
        after = self.pg.settled_idx_scan()
        rss, conns = sampler.between(started, ended)
        quarter = started + (ended - started) / 4
        rss_warm = [kib for t, kib in sampler.rss if quarter <= t <= ended]
        requests = int(values["requests"])
        seconds = float(values["seconds"])
        distinct = int(values["distinct"])
        lookups = after - before
        valid_refresh_bound = args.keys * (int((ended - started) / TTL) + 2)
        result = {
            "mode": mode, "set size": size, "requests": requests, "seconds": seconds,
            "rate": round(requests / seconds), "distinct": distinct, "sets": int(values["sets"]),
            "401": int(values["ok_401"]), "503": int(values["unavailable_503"]), "outside": int(values["outside"]),
            "first outside": values.get("first_outside", ""),
            "socket errors": int(values["socket_errors"]),
            "flood p50 ms": float(values["p50_ms"]), "flood p99 ms": float(values["p99_ms"]),
            "lookups": lookups, "valid refresh bound": valid_refresh_bound,
            "absorbed": requests - lookups, "lookups per distinct": round(lookups / max(distinct, 1), 3),
            "valid": stream.summary(),
            "rss start": rss[0] if rss else None, "rss at quarter": rss_warm[0] if rss_warm else None,
            "rss end": rss[-1] if rss else None, "rss peak": max(rss) if rss else None,
            "connections max": max((c for c, _ in conns), default=None),
            "active max": max((a for _, a in conns), default=None),
        }
        if rss_warm:
            result["rss growth %"] = round((rss_warm[-1] - rss_warm[0]) * 100.0 / rss_warm[0], 2)
        log(f"{name}: {json.dumps(result)}")
        return result


def check(args, result):
    failures = []
    cal = result["calibration"]
    if cal["cold 200 + repeat 200"] != 200 or cal["again after the TTL"] != 200:
        failures.append(f"calibration: idx_scan does not count one lookup per cold token: {cal}")
    quiet_p99 = result["quiet"]["p99 ms"]
    if result["quiet"]["non-200"]:
        failures.append(f"quiet: {result['quiet']['non-200']} valid requests not 200: {result['quiet']['bad']}")
    for name in ("flood A", "flood B"):
        r = result[name]
        v = r["valid"]
        if v["non-200"]:
            failures.append(f"{name}: {v['non-200']} valid requests not 200 {v['statuses']}: {v['bad']}")
        if v["p99 ms"] > args.latency_factor * quiet_p99:
            failures.append(f"{name}: valid p99 {v['p99 ms']} ms > {args.latency_factor} × quiet {quiet_p99} ms")
        if r["outside"] or r["socket errors"]:
            failures.append(f"{name}: {r['outside']} flood answers not 401/503 ({r['first outside']}), "
                            f"{r['socket errors']} socket errors")
        strict = name == "flood A" or args.strict_big
        if strict and r["lookups"] > r["distinct"] + r["valid refresh bound"]:
            failures.append(f"{name}: {r['lookups']} lookups for {r['distinct']} distinct tokens "
                            f"(+ at most {r['valid refresh bound']} for the valid keys)")
        if r.get("rss growth %") is None or not r["rss growth %"] < args.rss_goal:
            failures.append(f"{name}: RSS grew {r.get('rss growth %')} % after the first quarter "
                            f"(goal < {args.rss_goal} %)")
    return failures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--postgres-url", required=True)
    parser.add_argument("--filler", type=int, default=20000, help="rows of nobody's keys in the table")
    parser.add_argument("--keys", type=int, default=2, help="valid keys, used in turn")
    parser.add_argument("--rate", type=float, default=200, help="valid requests a second")
    parser.add_argument("--quiet", type=float, default=15, help="seconds of the valid stream alone")
    parser.add_argument("--flood", type=int, default=20, help="seconds of each flood")
    parser.add_argument("--window", type=int, default=4, help="flood A: seconds of each token set (< 5)")
    parser.add_argument("--set-size", type=int, default=2000,
                        help="flood A: tokens per window (two windows' fit the refusal cache)")
    parser.add_argument("--big-set", type=int, default=50000, help="flood B: tokens in the one set")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--wrk-connections", type=int, default=64)
    parser.add_argument("--wrk-nice", type=int, default=0,
                        help="nice value of wrk: on a small machine the load tool takes the CPU the server "
                             "and the valid client need; 19 lets them go first, as if the flood came from "
                             "elsewhere")
    parser.add_argument("--server-cpus", default="",
                        help="CPUs the server runs on (taskset -c), e.g. 0; empty: any")
    parser.add_argument("--server-workers", type=int, default=0,
                        help="the server's Tokio worker threads (TOKIO_WORKER_THREADS); 0: one per CPU")
    parser.add_argument("--server-nice", type=int, default=0, help="nice value of the server")
    parser.add_argument("--wrk-cpus", default="",
                        help="CPUs wrk runs on (taskset -c), e.g. 1; empty: any")
    parser.add_argument("--client-cpus", default="",
                        help="CPUs this script (the valid client) runs on, e.g. 1; empty: any")
    parser.add_argument("--client-nice", type=int, default=0,
                        help="nice value of this script (the valid client, which measures): "
                             "below 0, it is not kept waiting to send by wrk or the database")
    parser.add_argument("--max-requests", type=int, default=20_000_000)
    parser.add_argument("--latency-factor", type=float, default=2.0)
    parser.add_argument("--rss-goal", type=float, default=5.0)
    parser.add_argument("--tamper", action="store_true",
                        help="self-test: delete the valid keys before flood B")
    parser.add_argument("--strict-big", action="store_true",
                        help="hold flood B to the lookups goal too")
    args = parser.parse_args()
    args.bin = os.path.abspath(args.bin)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    run = Run(args)
    result = {}
    try:
        run.start()
        # After the server started (it would inherit them): the measuring client's CPUs and
        # priority.
        if args.client_cpus:
            os.sched_setaffinity(0, parse_cpus(args.client_cpus))
        if args.client_nice:
            os.setpriority(os.PRIO_PROCESS, 0, args.client_nice)
        tokens, user_body = run.setup_keys()
        run.pg.fill(args.filler)
        result["calibration"] = run.calibrate()
        sampler = Sampler(run.server.pid, run.pg)
        sampler.start()
        quiet = ValidStream(run.port, tokens, user_body, args.rate, args.quiet)
        started = time.monotonic()
        quiet.start()
        quiet.join(args.quiet + 30)
        result["quiet"] = quiet.summary()
        rss, conns = sampler.between(started, time.monotonic())
        result["quiet"].update({"rss end": rss[-1] if rss else None,
                                "connections max": max((c for c, _ in conns), default=None)})
        log(f"quiet: {result['quiet']}")
        result["flood A"] = run.flood("flood A", "windows", args.set_size, tokens, user_body, sampler)
        if args.tamper:
            # Self-test: the valid keys deleted before flood B: its valid requests must fail.
            run.pg.psql(f"delete from {run.pg.schema}.personal_access_tokens where name like 'valid %'")
        result["flood B"] = run.flood("flood B", "set", args.big_set, tokens, user_body, sampler)
        sampler.stop.set()
        sampler.join(5)
        result["rss peak"] = max(kib for _, kib in sampler.rss)
        result["connections max"] = max(c for _, c, _ in sampler.conns)
        # Stop: SIGTERM, exit 0 within the grace.
        run.server.send_signal(signal.SIGTERM)
        try:
            result["exit"] = run.server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            result["exit"] = "no exit within 20 s"
        failures = check(args, result)
        if result["exit"] != 0:
            failures.append(f"exit status on SIGTERM: {result['exit']}")
    except (RuntimeError, AssertionError) as e:
        failures = [f"{type(e).__name__}: {e}"]
    finally:
        run.cleanup()
    result["failures"] = failures
    for failure in failures:
        log(f"  FAIL {failure}")
    print(json.dumps(result))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
