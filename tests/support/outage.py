"""Outage under load (tests/outage.sh): the account API on PostgreSQL, reached through a
TCP proxy this script owns; the proxy cuts the database for a few seconds and restores
it while a load of valid, wrong and revoked keys runs.

The example is started with DATABASE_URL pointing at the proxy (a schema of its own on
the server behind it, dropped at the end). "Cut" (`--mode refuse`, the default): the
proxy closes its listening socket (new connections are refused: ECONNREFUSED) and aborts
every connection it forwards; "restore": it listens again on the same port. With
`--mode blackhole` the cut is a partition instead: connections stay open and new ones
are accepted, but nothing is forwarded until the restore. The example is never
restarted.

The design under test (bearer-auth-sqlx, "While the database is down"): an accepted key
is cached for the time to live (5 s, counted from the query that loaded it, however often
it is read); a hit needs no database. So during an outage the middleware keeps accepting
a key already cached until its entry's time to live runs out, then answers 503 until the
database returns; a token not cached (first use, a wrong secret not yet refused, a
revoked key whose cached refusal ran out) gets 503; a refusal still cached answers 401.

In the example every protected handler but one reads the database too (GET
/v1/auth/user reads the user, the account routes the keys): those answer 503 during an
outage whatever the cache holds, so a valid key never gets 200 there. The one handler
that answers from the verified token alone is the two-factor challenge: POST
/v1/auth/two-factor-challenge with a token whose second factor is not pending answers
409 "This token is not waiting for a second factor." The cache is observed there: 409 =
the middleware accepted the key, 401 = refused, 503 = it needed the database.

Classes of requests, each recorded with its send and answer times (ms):

  key-hot       challenge route, a valid key used from the start (and by the load)
  ttl-probe     challenge route, a key first used `--warm-lead` s before the cut: its
                entry's end of life falls inside the outage, at a time known to ~1 ms
  new-key       challenge route, a valid key first used only during the outage
  user          GET /v1/auth/user with the key-hot key (the handler reads the user)
  account       GET /v1/profile/api-keys with the login token (reads the keys)
  wrong         GET /v1/auth/user, the hot key's id with a wrong secret (always the same)
  wrong-random  GET /v1/auth/user, a new wrong secret on every request (never cached)
  revoked       GET /v1/auth/user, a key revoked before the load (401, never 200)
  revoked-late  GET /v1/auth/user, a key used (200) then revoked 1 s before the cut

A load of `--threads` threads per class for user, key-hot, wrong, revoked and
wrong-random sends requests as fast as they are answered; key-hot, account,
revoked-late, ttl-probe and new-key have a probe thread each (a request every 20 ms).
Each thread has its own keep-alive connection and its own class, so that a request held
by the database holds no other class.

Goals (each a check that fails the run):
  - answers outside {200, 401, 403, 503} (and 409 on the challenge route), or none: 0;
  - 503 only while the database is away: answered within [cut, restore + 1 s];
  - a wrong or revoked token never answers 200 (revoked-late: never after its revoke);
  - ttl-probe: accepted (409) for every request whose clock reading falls before the end
    of its entry's life, 503 after it, until the restore (`--ttl`, 5 s);
  - key-hot: accepted during the outage only while its entry lives (sent before
    cut + ttl), never again once it got a 503, until the restore; with an outage longer
    than ttl + 0.5 s it must have got a 503;
  - new-key, user and account: no success while the database is away (the cut is real);
  - after the restore: success again within 1 s for every valid class, with the same
    server process; then every class answers as before the cut.

Prints one line of JSON on stdout (the shell script makes the table), the timeline
(segments of equal status per class, ms relative to the cut) and details on stderr;
writes every request to `--timeline` (CSV) when asked. Exits 1 if a goal is missed.

    python3 outage.py --bin target/release/examples/account_api \
        --postgres-url postgres://postgres@127.0.0.1:5432/test --outage-seconds 10
"""

import argparse
import asyncio
import base64
import datetime
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zlib

from account_api_process import Client, Server, free_port, log, now

PASSWORD = "outage test password"
ALLOWED = {200, 401, 403, 503}
SLACK = 0.05  # s: thread scheduling between a clock reading here and one in the server


def wrong_secret():
    entropy = secrets.token_hex(20)  # 40 characters, as a real key's
    return entropy + format(zlib.crc32(entropy.encode()), "08x")


# --- the proxy -------------------------------------------------------------------------

class Proxy:
    """A TCP proxy to the database, on its own asyncio loop in a thread. Two ways to cut:
    "refuse" closes every connection and the listening socket (the database's host is up,
    its server is not: ECONNREFUSED); "blackhole" keeps every connection open and
    accepts new ones, but forwards nothing (a network partition: whatever is sent waits,
    and flows again at the restore)."""

    def __init__(self, upstream_host, upstream_port, mode="refuse"):
        self.mode = mode
        self.flowing = None  # an asyncio.Event, made on the loop
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = None
        self.up = False
        self.transports = set()
        self.accepted = 0
        self.accepted_while_down = 0
        self.aborted_at_cut = 0

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def start(self):
        self.thread.start()
        self.call(self._listen())

    async def _listen(self):
        if self.flowing is None:
            self.flowing = asyncio.Event()
        self.flowing.set()
        if self.server is None or not self.server.is_serving():
            self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.up = True

    async def _handle(self, reader, writer):
        self.accepted += 1
        if not self.up:
            self.accepted_while_down += 1
            if self.mode == "refuse":
                writer.transport.abort()
                return
        # Blackhole: the connection hangs until the restore, what the client sends kept; a
        # client that gives up meanwhile never reaches the database (as a SYN lost in a
        # partition would not).
        held = b""
        while not self.flowing.is_set():
            flowing = asyncio.ensure_future(self.flowing.wait())
            read = asyncio.ensure_future(reader.read(65536))
            await asyncio.wait({flowing, read}, return_when=asyncio.FIRST_COMPLETED)
            flowing.cancel()
            if not read.done():
                read.cancel()
                try:
                    await read
                except asyncio.CancelledError:
                    pass
                break
            data = read.result()
            if not data:
                writer.transport.abort()
                return
            held += data
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.upstream), 5)
        except (OSError, asyncio.TimeoutError):
            writer.transport.abort()
            return
        if held:
            up_writer.write(held)
        pair = {writer.transport, up_writer.transport}
        self.transports |= pair

        async def pipe(src, dst):
            try:
                while True:
                    data = await src.read(65536)
                    if not data:
                        break
                    await self.flowing.wait()  # blackhole: held until the restore
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.transports -= pair
        for transport in pair:
            transport.abort()

    async def _cut(self):
        self.up = False
        self.flowing.clear()
        if self.mode == "blackhole":
            self.aborted_at_cut = 0
            return
        self.server.close()  # the listening socket: new connections are refused
        self.aborted_at_cut = len(self.transports) // 2  # two transports per connection
        for transport in list(self.transports):
            transport.abort()
        self.transports.clear()

    def cut(self):
        """The time the cut began (a 503 may follow at once)."""
        began = now()
        self.call(self._cut())
        return began

    def restore(self):
        """The time the restore began: the strictest origin for the recovery."""
        began = now()
        self.call(self._listen())
        return began

    def refuses(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return False
        except ConnectionRefusedError:
            return True
        except OSError:
            return False

    async def _stop(self):
        if self.server is not None:
            self.server.close()
        for transport in list(self.transports):
            transport.abort()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self):
        if self.thread.is_alive():
            try:
                self.call(self._stop())
            except Exception as e:  # the loop is stopped next whatever happened
                log(f"  stopping the proxy: {e!r}")
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


# --- HTTP ------------------------------------------------------------------------------

class Recorder:
    """Every request: (class, sent, answered, status)."""

    def __init__(self):
        self.rows = []
        self.lock = threading.Lock()
        self.errors = []

    def add(self, cls, sent, answered, status, detail=None):
        with self.lock:
            self.rows.append((cls, sent, answered, status))
            if status is None and len(self.errors) < 10:
                self.errors.append(f"{cls}: {detail}")


CHALLENGE = "/v1/auth/two-factor-challenge"
NOT_PENDING = "This token is not waiting for a second factor."


def call(recorder, client, cls, token, path="/v1/auth/user"):
    """One request, recorded. On the challenge route (POST, `{}`), the middleware's
    acceptance of a token whose second factor is not pending is the documented 409, which
    the handler answers without the database: any other 409 is recorded as -409."""
    sent = now()
    if path == CHALLENGE:
        status, body = client.request("POST", path, token, {})
        if status == 409 and not (isinstance(body, dict) and body.get("message") == NOT_PENDING):
            status = -409
    else:
        status, body = client.request("GET", path, token)
    recorder.add(cls, sent, now(), status, body if status is None else None)
    return status


class Loop(threading.Thread):
    """Sends requests in turn (each a (class, token-or-callable, path)) until `stop`,
    `budget` requests, or `until`; `interval` s between requests (0: as fast as
    answered)."""

    timeout = 35.0  # s, per request (--request-timeout)

    def __init__(self, port, recorder, plan, stop, budget, interval=0.0, start_at=None):
        super().__init__(daemon=True)
        self.client = Client(port, timeout=Loop.timeout)
        self.recorder, self.plan, self.stop, self.budget = recorder, plan, stop, budget
        self.interval, self.start_at = interval, start_at

    def run(self):
        if self.start_at is not None:
            delay = self.start_at - now()
            if delay > 0 and self.stop.wait(delay):
                return
        n = 0
        while not self.stop.is_set() and n < self.budget:
            cls, token, path = self.plan[n % len(self.plan)]
            call(self.recorder, self.client, cls, token() if callable(token) else token, path)
            n += 1
            if self.interval:
                self.stop.wait(self.interval)
        self.client.close()


# --- the example -----------------------------------------------------------------------

def expect(reply, status, what):
    if reply[0] != status:
        raise RuntimeError(f"{what}: expected {status}, got {reply}")
    return reply[1]


# --- the analysis ----------------------------------------------------------------------

# Per class: the route, and the answer when the database is there (None: see the checks).
CLASSES = {
    "key-hot": (CHALLENGE, 409),
    "ttl-probe": (CHALLENGE, 409),
    "new-key": (CHALLENGE, 409),
    "user": ("/v1/auth/user", 200),
    "account": ("/v1/profile/api-keys", 200),
    "wrong": ("/v1/auth/user", 401),
    "wrong-random": ("/v1/auth/user", 401),
    "revoked": ("/v1/auth/user", 401),
    "revoked-late": ("/v1/auth/user", None),
}


def segments(rows, origin):
    """Runs of equal status, by answer time: [(status, first ms, last ms, count)]."""
    out = []
    for _, sent, answered, status in sorted(rows, key=lambda r: r[2]):
        t = round((answered - origin) * 1000)
        if out and out[-1][0] == status:
            out[-1][2] = t
            out[-1][3] += 1
        else:
            out.append([status, t, t, 1])
    return out


def analyse(rows, t, args, server_alive):
    """The goals: a dict of figures and a list of failures."""
    cut, restore, ttl = t["cut"], t["restore"], args.ttl
    failures = []
    by_class = {cls: [] for cls in CLASSES}
    for row in rows:
        by_class[row[0]].append(row)

    def ms(x):
        return None if x is None else round((x - cut) * 1000)

    statuses = {cls: {} for cls in CLASSES}
    for cls, _, _, status in rows:
        key = "no answer" if status is None else str(status)
        statuses[cls][key] = statuses[cls].get(key, 0) + 1

    # 1. Outside the documented set, or no answer (409: the challenge route's only).
    outside = [r for r in rows if not (r[3] in ALLOWED or (r[3] == 409 and CLASSES[r[0]][0] == CHALLENGE))]
    if outside:
        failures.append(f"{len(outside)} answers outside {{200, 401, 403, 503}} (409 on the challenge route) "
                        f"or none, first: {outside[0][0]} {outside[0][3]} at {ms(outside[0][2])} ms")

    # 2. 503 only while the database is away (+ 1 s).
    s503 = [r for r in rows if r[3] == 503]
    early = [r for r in s503 if r[2] < cut]
    late = [r for r in s503 if r[2] > restore + 1.0]
    if early:
        failures.append(f"{len(early)} answers 503 before the cut, first {early[0][0]} at {ms(early[0][2])} ms")
    if late:
        failures.append(f"{len(late)} answers 503 more than 1 s after the restore, last {late[-1][0]} at "
                        f"{ms(max(r[2] for r in late))} ms (restore at {ms(restore)} ms)")

    # 3. With the database there, every class answers as it should.
    for cls, (_, expected) in CLASSES.items():
        if expected is None:
            continue
        off = [r for r in by_class[cls] if (r[2] < cut or r[1] > restore + 1.0) and r[3] != expected]
        if off:
            failures.append(f"{cls}: {len(off)} answers other than {expected} with the database there, first "
                            f"{off[0][3]} at {ms(off[0][2])} ms")

    # 4. Never accepted: a wrong or revoked token.
    for cls in ("wrong", "wrong-random", "revoked"):
        n = sum(1 for r in by_class[cls] if r[3] == 200)
        if n:
            failures.append(f"{cls}: {n} answers 200")
    late_200 = [r for r in by_class["revoked-late"] if r[3] == 200 and r[1] >= t["late_revoked"]]
    if late_200:
        failures.append(f"revoked-late: {len(late_200)} answers 200 after its revoke was answered")
    if not any(r[3] == 200 for r in by_class["revoked-late"] if r[2] < t["late_revoked"]):
        failures.append("revoked-late: never got 200 before its revoke (the class proves nothing)")
    bad_late = [r for r in by_class["revoked-late"] if r[1] >= t["late_revoked"] and r[3] not in (401, 503)]
    if bad_late:
        failures.append(f"revoked-late: {len(bad_late)} answers other than 401/503 after its revoke")

    # 5. The ttl-probe: its entry lives from its first query, started in [warm_sent, warm_answered].
    end_min, end_max = t["warm_sent"] + ttl, t["warm_answered"] + ttl
    # Sent during the outage; a request still waiting at the restore may be accepted by the
    # database then, so only an acceptance answered before the restore is the cache's.
    during = [r for r in by_class["ttl-probe"] if cut <= r[1] < restore]
    ttl_late = [r for r in during if r[3] == 409 and r[2] < restore and r[1] > end_max + SLACK]
    ttl_early = [r for r in during if r[3] == 503 and r[2] < end_min - SLACK]
    if ttl_late:
        failures.append(f"ttl-probe: {len(ttl_late)} requests accepted (409) though sent after its entry's end of "
                        f"life ({ms(end_max)} ms), last sent at {ms(ttl_late[-1][1])} ms")
    if ttl_early:
        failures.append(f"ttl-probe: {len(ttl_early)} answers 503 before its entry's end of life "
                        f"({ms(end_min)} ms), first at {ms(ttl_early[0][2])} ms: a cached key must be accepted")
    other = [r for r in during if r[3] not in (409, 503)]
    if other:
        failures.append(f"ttl-probe: {len(other)} answers other than 409/503 during the outage")
    if end_min > cut + 0.1 and not any(r[3] == 409 and r[2] < restore for r in during):
        failures.append("ttl-probe: not accepted during the outage while its entry lived")
    if end_max < restore - 0.1 and not any(r[3] == 503 for r in during):
        failures.append("ttl-probe: no 503 during the outage after its entry's end of life")
    ttl_last_ok = max((r[1] for r in during if r[3] == 409 and r[2] < restore), default=None)
    ttl_first_503 = min((r[2] for r in during if r[3] == 503), default=None)

    # 6. key-hot: accepted while its entry lives (loaded before the cut: it ends by
    # cut + ttl), then 503 until the restore, never accepted again meanwhile.
    hot = [r for r in by_class["key-hot"] if cut <= r[1] < restore]
    hot_first_503 = min((r[2] for r in hot if r[3] == 503), default=None)
    hot_last_ok = max((r[1] for r in hot if r[3] == 409 and r[2] < restore), default=None)
    if hot_last_ok is not None and hot_last_ok > cut + ttl + SLACK:
        failures.append(f"key-hot: accepted a request sent at {ms(hot_last_ok)} ms, past cut + ttl")
    if hot_first_503 is not None and any(r[3] == 409 and hot_first_503 < r[1] and r[2] < restore for r in hot):
        failures.append("key-hot: accepted again during the outage after a 503 (an entry without a database)")
    if restore - cut > ttl + 0.5 and hot_first_503 is None:
        failures.append("key-hot: no 503 during an outage longer than the ttl: its entry outlived the ttl")
    if [r for r in hot if r[3] not in (409, 503)]:
        failures.append("key-hot: answers other than 409/503 during the outage")

    # 7. What needs the database: never a success while it is away.
    for cls, ok in (("new-key", 409), ("account", 200), ("user", 200)):
        bad = [r for r in by_class[cls] if r[1] >= cut and r[2] <= restore and r[3] == ok]
        if bad:
            failures.append(f"{cls}: {len(bad)} answers {ok} while the database was away (the cut was not real?)")
    if [r for r in by_class["new-key"] if r[1] < cut]:
        failures.append("new-key: used before the cut")
    if not [r for r in by_class["new-key"] if r[1] >= cut and r[2] <= restore]:
        failures.append("new-key: not used during the outage")

    # 8. After the restore: a success within 1 s for each class that has one.
    recovery = {}
    for cls, ok in (("key-hot", 409), ("ttl-probe", 409), ("new-key", 409), ("user", 200), ("account", 200)):
        first = min((r[2] for r in by_class[cls] if r[2] >= restore and r[3] == ok), default=None)
        recovery[cls] = None if first is None else round((first - restore) * 1000)
        if first is None or first - restore > 1.0:
            failures.append(f"{cls}: no {ok} within 1 s of the restore (first: {recovery[cls]} ms)")
    if not server_alive:
        failures.append("the server process is not the one started (it exited)")

    # How long a request waited for its 503, per class.
    wait_503 = {cls: round(max(r[2] - r[1] for r in rs if r[3] == 503) * 1000)
                for cls, rs in by_class.items() if any(r[3] == 503 for r in rs)}
    longest = {cls: round(max(r[2] - r[1] for r in rs) * 1000) for cls, rs in by_class.items() if rs}
    return {
        "outage ms": round((restore - cut) * 1000),
        "requests": len(rows),
        "statuses": statuses,
        "first 503 after cut ms": ms(min((r[2] for r in s503), default=None)),
        "last 503 after restore ms": None if not s503 else round((max(r[2] for r in s503) - restore) * 1000),
        "longest wait for a 503 ms": wait_503,
        "longest request ms": longest,
        "first success after restore ms": recovery,
        "ttl-probe entry end ms": [ms(end_min), ms(end_max)],
        "ttl-probe last accepted sent ms": ms(ttl_last_ok),
        "ttl-probe first 503 ms": ms(ttl_first_503),
        "key-hot last accepted sent ms": ms(hot_last_ok),
        "key-hot first 503 ms": ms(hot_first_503),
        "wrong or revoked accepted": sum(1 for r in rows if r[0] in ("wrong", "wrong-random", "revoked")
                                         and r[3] == 200) + len(late_200),
    }, failures


# --- the run ---------------------------------------------------------------------------

def run(args):
    pg = urllib.parse.urlsplit(args.postgres_url)
    schema = "outage_" + secrets.token_hex(5)
    psql = ["psql", args.postgres_url, "-v", "ON_ERROR_STOP=1", "-Atq", "-c"]
    subprocess.run(psql + [f"create schema {schema}"], check=True, capture_output=True, timeout=30)
    work = tempfile.mkdtemp(prefix="outage-")
    proxy = Proxy(pg.hostname or "127.0.0.1", pg.port or 5432, args.mode)
    server = None
    stop = threading.Event()
    threads = []
    try:
        proxy.start()
        netloc = pg.netloc.rsplit("@", 1)
        netloc = (netloc[0] + "@" if len(netloc) == 2 else "") + f"127.0.0.1:{proxy.port}"
        query = (pg.query + "&" if pg.query else "") + f"options=-c%20search_path%3D{schema}"
        url = urllib.parse.urlunsplit((pg.scheme, netloc, pg.path, query, ""))
        server = Server("server", os.path.abspath(args.bin), work, url,
                        "base64:" + base64.b64encode(secrets.token_bytes(32)).decode(), args.notify)
        setup = Client(server.port, timeout=30)
        login = expect(setup.request("POST", "/v1/auth/register", body={
            "name": "Outage", "email": "outage@outage.test", "password": PASSWORD}), 201, "register")["token"]

        def key(name):
            body = expect(setup.request("POST", "/v1/profile/api-keys", login, {"name": name}), 201, "create " + name)
            return body["id"], body["plain_text_token"]

        hot_id, hot = key("key-hot")
        _, ttl_key = key("ttl-probe")
        _, new_key = key("new-key")
        revoked_id, revoked = key("revoked")
        late_id, late = key("revoked-late")
        expect(setup.request("GET", "/v1/auth/user", revoked), 200, "revoked key before its revoke")
        expect(setup.request("DELETE", f"/v1/profile/api-keys/{revoked_id}", login), 204, "revoke")
        expect(setup.request("GET", "/v1/auth/user", revoked), 401, "revoked key after its revoke")
        wrong = f"{hot_id}|{wrong_secret()}"
        if args.self_test:
            # What the checks must notice: a valid key labelled "revoked" (answers 200).
            revoked = hot

        def plan(cls, token):
            return (cls, token, CLASSES[cls][0])

        recorder = Recorder()
        t = {}
        t0 = now()
        cut_at = t0 + args.before
        load_plan = [plan("user", hot), plan("key-hot", hot), plan("wrong", wrong), plan("revoked", revoked),
                     plan("wrong-random", lambda: f"{hot_id}|{wrong_secret()}")]
        # Threads of their own per class: a request held by the database holds no other.
        for _ in range(args.threads):
            for load in load_plan:
                threads.append(Loop(server.port, recorder, [load], stop, args.max_requests))
        interval = args.probe_interval
        threads.append(Loop(server.port, recorder, [plan("key-hot", hot)], stop, args.max_requests, interval))
        threads.append(Loop(server.port, recorder, [plan("account", login)], stop, args.max_requests, interval))
        threads.append(Loop(server.port, recorder, [plan("revoked-late", late)], stop, args.max_requests, interval))
        threads.append(Loop(server.port, recorder, [plan("new-key", new_key)], stop, args.max_requests, interval,
                            start_at=cut_at + 0.2))
        for thread in threads:
            thread.start()

        # The ttl-probe's first use, `warm_lead` s before the cut: its entry's life starts.
        time.sleep(max(0.0, cut_at - args.warm_lead - now()))
        probe = Client(server.port)
        t["warm_sent"] = now()
        status, _ = probe.request("POST", CHALLENGE, ttl_key, {})
        t["warm_answered"] = now()
        probe.close()
        if status != 409:
            raise RuntimeError(f"ttl-probe's first use answered {status}")
        recorder.add("ttl-probe", t["warm_sent"], t["warm_answered"], status)
        ttl_loop = Loop(server.port, recorder, [plan("ttl-probe", ttl_key)], stop, args.max_requests, interval)
        ttl_loop.start()
        threads.append(ttl_loop)

        # revoked-late: revoked 1 s before the cut, on this instance, under load.
        time.sleep(max(0.0, cut_at - 1.0 - now()))
        expect(setup.request("DELETE", f"/v1/profile/api-keys/{late_id}", login), 204, "revoke revoked-late")
        t["late_revoked"] = now()
        setup.close()

        time.sleep(max(0.0, cut_at - now()))
        t["cut"] = proxy.cut()
        if args.mode == "refuse" and not proxy.refuses():
            raise RuntimeError("the proxy still accepts connections after the cut")
        log(f"  cut ({args.mode}) at +{args.before:.1f} s ({proxy.aborted_at_cut} connections aborted); "
            f"outage of {args.outage_seconds} s")
        time.sleep(args.outage_seconds + (args.self_test_restore_delay if args.self_test else 0))
        t["restore_wall"] = time.time()
        t["restore"] = proxy.restore()
        if args.self_test:
            # What the checks must notice: a restore later than the one they are told.
            t["restore"] -= args.self_test_restore_delay
        log(f"  restored; {args.after} s more of load")
        time.sleep(args.after)
        stop.set()
        for thread in threads:
            thread.join(Loop.timeout + 5)
        alive = server.proc.poll() is None
        rows = list(recorder.rows)
        if recorder.errors:
            log("  requests without an answer: " + " | ".join(recorder.errors))
        figures, failures = analyse(rows, t, args, alive)
        figures["proxy"] = {"connections": proxy.accepted, "aborted at cut": proxy.aborted_at_cut,
                            "accepted while down": proxy.accepted_while_down}
        figures["notify"] = args.notify
        figures["mode"] = args.mode
        log("  timeline (status [first ms .. last ms] xN, by answer time, 0 = cut, "
            f"restore at {round((t['restore'] - t['cut']) * 1000)} ms):")
        for cls in CLASSES:
            segs = segments([r for r in rows if r[0] == cls], t["cut"])
            log(f"    {cls:13} " + "  ".join(f"{s} [{a}..{b}] x{n}" for s, a, b, n in segs))
        if args.timeline:
            with open(args.timeline, "w") as f:
                f.write("class,sent_ms,answered_ms,status\n")
                for cls, sent, answered, status in sorted(rows, key=lambda r: r[1]):
                    f.write(f"{cls},{round((sent - t['cut']) * 1000)},{round((answered - t['cut']) * 1000)},"
                            f"{'' if status is None else status}\n")
            log(f"  every request: {args.timeline} (ms relative to the cut)")
        if args.server_log:
            shutil.copyfile(server.err_path, args.server_log)
        logged = server.log().splitlines()
        figures["server ERROR lines"] = sum(1 for line in logged if " ERROR " in line)
        figures["server WARN lines"] = sum(1 for line in logged if " WARN " in line)
        log("  the server's warnings and errors (first 8):")
        for line in [line for line in logged if " WARN " in line or " ERROR " in line][:8]:
            log("    " + line[:300])
        if args.notify:
            # When the notifications listener was back (the cache is emptied then).
            back = [line for line in logged if "notifications listener reconnected" in line]
            if back:
                stamp = datetime.datetime.strptime(back[0][:26], "%Y-%m-%dT%H:%M:%S.%f")
                stamp = stamp.replace(tzinfo=datetime.timezone.utc).timestamp()
                figures["listener back after restore ms"] = round((stamp - t["restore_wall"]) * 1000)
            else:
                failures.append("KEYS_NOTIFY=1: the notifications listener did not reconnect")
        if any("panicked" in line for line in logged):
            failures.append("the server panicked")
        return figures, failures
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
        if server is not None:
            server.stop()
        proxy.stop()
        subprocess.run(psql + [f"drop schema if exists {schema} cascade"], capture_output=True, timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def main():
    # SIGTERM (from `timeout`, or the shell's trap) runs the clean-up as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # Finer thread switching: the probes' clock readings stay close to their requests.
    sys.setswitchinterval(0.0005)
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--postgres-url", required=True)
    parser.add_argument("--outage-seconds", type=float, default=10.0)
    parser.add_argument("--before", type=float, default=None, help="s of load before the cut")
    parser.add_argument("--after", type=float, default=None, help="s of load after the restore")
    parser.add_argument("--warm-lead", type=float, default=None,
                        help="s before the cut that the ttl-probe is first used (default: its entry ends "
                             "in the middle of the outage, or 0.5 s after the cut for a long one)")
    parser.add_argument("--ttl", type=float, default=5.0, help="the key cache's time to live (the store's 5 s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="load threads per load class (as fast as answered)")
    parser.add_argument("--probe-interval", type=float, default=0.02)
    parser.add_argument("--request-timeout", type=float, default=35.0,
                        help="s a request may take before it counts as unanswered (the example answers "
                             "408 after 30 s)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="per thread, at most")
    parser.add_argument("--notify", action="store_true", help="KEYS_NOTIFY=1")
    parser.add_argument("--mode", choices=["refuse", "blackhole"], default="refuse",
                        help="refuse: connections closed and refused; blackhole: held, nothing forwarded")
    parser.add_argument("--timeline", help="write every request here (CSV)")
    parser.add_argument("--server-log", help="copy the server's log (stderr) here")
    parser.add_argument("--self-test", action="store_true",
                        help="label a valid key 'revoked', report the restore earlier than it is and claim "
                             "a ttl of --ttl (use a wrong one): the checks must fail")
    parser.add_argument("--self-test-restore-delay", type=float, default=2.0)
    args = parser.parse_args()
    outage, ttl = args.outage_seconds, args.ttl
    if args.warm_lead is None:
        # The entry ends `outage - 2.5` s into the outage (between 0.3 s and ttl - 0.5 s):
        # then the 2 s a miss waits for the database (the store's query timeout) end
        # before the restore, so that its 503 is seen.
        args.warm_lead = ttl - min(max(0.3, outage - 2.5), ttl - 0.5)
    if args.before is None:
        # key-hot's entry, loaded when the load starts and again each ttl, then ends
        # inside the outage too, half as far into it as the ttl-probe's.
        e_hot = (ttl - args.warm_lead) / 2
        args.before = ttl - e_hot
        while args.before < max(2.0, args.warm_lead + 0.2):
            args.before += ttl
    if args.after is None:
        args.after = 3.0 if outage < 5 else ttl + 1.0
    Loop.timeout = args.request_timeout
    figures, failures = run(args)
    for failure in failures:
        log(f"  FAIL {failure}")
    print(json.dumps({"outage seconds": outage, "figures": figures, "failures": failures}))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
