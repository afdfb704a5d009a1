"""Schemathesis hooks for tests/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

Authentication: fresh credentials for every test case, `Authorization: Bearer …`. The
script registers a user and creates a first API key (ST_KEY); that key, the "master",
creates the keys of the cases. Generated requests may revoke any key of the user: `POST
/v1/auth/logout` revokes the key it is sent with, `DELETE /v1/profile/api-keys/{id}` and
`POST …/{id}/regenerate` any key whose id they guess, the master's too. A key per case
keeps every operation meaningful, logout and revocation included (nothing excluded): a
case that revokes its own key harms no later case, and when the master itself is refused
(401), the hooks register a new user, whose token becomes the master (not a login, whose
throttle generated requests may have used up: they send emails seen in responses). Keys
of finished cases are revoked as the run goes, so the key list stays short.

Of every 8 cases, 6 get a key with every ability, 1 a key with the one ability
`servers:read` (which may not give `*`, nor regenerate a key that has it: 403 "Invalid
ability provided."), and 1 the login token of a second user who has two-factor on, its
second factor pending (403 "Two-factor authentication required." everywhere but the
challenge). The hooks register that user and turn two-factor on themselves (RFC 6238,
computed here); generated requests cannot revoke a pending token (every route but the
challenge refuses it), and the hooks make another such user should it be refused anyway.

Checks (with schemathesis' own, chosen on the command line):
- every 401 body is exactly `{"message":"Unauthenticated."}`; every 403 body exactly one of
  `{"message":"Two-factor authentication required.","requires_2fa":true}` and
  `{"message":"Invalid ability provided."}`;
- every answer, 204 included, carries `Content-Type: application/json` (the contract).
"""

import atexit
import base64
import collections
import hashlib
import hmac
import http.client
import json
import os
import struct
import sys
import threading
import time
import urllib.parse

import schemathesis

BASE = os.environ["ST_BASE_URL"]
PASSWORD = os.environ["ST_PASSWORD"]

UNAUTHENTICATED = b'{"message":"Unauthenticated."}'
FORBIDDEN = (
    b'{"message":"Two-factor authentication required.","requires_2fa":true}',
    b'{"message":"Invalid ability provided."}',
)

# Keys of this many recent cases stay valid (more than the run's workers).
KEEP = 16


# The hooks' own requests come from loopback addresses of their own, 127.0.0.2 onwards,
# a new one for each user they register: the account API throttles register and login
# per client address (20 a minute), and generated requests from 127.0.0.1 may have used
# that address's allowance up. Set-up is a different client, as it would be in life.
SOURCE_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 255)]
_source = {"index": 0}


def next_source_address():
    _source["index"] = (_source["index"] + 1) % len(SOURCE_ADDRESSES)


def call(method, path, token=None, body=None):
    """(status, parsed JSON body or None), sent from the hooks' current source address."""
    url = urllib.parse.urlsplit(BASE)
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    connection = http.client.HTTPConnection(
        url.hostname, url.port, timeout=30,
        source_address=(SOURCE_ADDRESSES[_source["index"]], 0))
    try:
        connection.request(method, url.path.rstrip("/") + path, body=data, headers=headers)
        response = connection.getresponse()
        status, raw = response.status, response.read()
    finally:
        connection.close()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def totp(secret, step):
    """RFC 6238: HMAC-SHA-1 of the time step, 6 digits."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return f"{(struct.unpack('>I', digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000:06d}"


class Credentials:
    """The master key, the keys made for cases, and the pending token, shared by the
    run's workers."""

    def __init__(self):
        self.lock = threading.Lock()
        self.master = os.environ["ST_KEY"]
        self.recent = collections.deque()
        self.cases = 0
        self.kinds = collections.Counter()
        self.users = 0
        self.pending = None

    def register(self):
        """A new user: (email, token). Not a login: generated requests may have used up
        the login throttle of an email they saw in a response."""
        self.users += 1
        next_source_address()
        email = f"schemathesis-{self.users}@example.com"
        status, body = call("POST", "/v1/auth/register", body={
            "name": f"Schemathesis {self.users}", "email": email, "password": PASSWORD})
        if status != 201:
            raise RuntimeError(f"registering {email}: {status} {body}")
        return email, body["token"]

    def key(self, abilities):
        body = {"name": "schemathesis case"}
        if abilities is not None:
            body["abilities"] = abilities
        for attempt in range(2):
            status, created = call("POST", "/v1/profile/api-keys", self.master, body)
            if status == 201:
                break
            if status == 401 and attempt == 0:
                # The master was revoked or regenerated by a generated request.
                _, self.master = self.register()
                self.recent.clear()
                continue
            raise RuntimeError(f"creating a key for a test case: {status} {created}")
        self.recent.append(created["id"])
        while len(self.recent) > KEEP:
            old = self.recent.popleft()
            # 404 when a generated request revoked it already.
            call("DELETE", f"/v1/profile/api-keys/{old}", self.master)
        return created["plain_text_token"]

    def pending_token(self):
        if self.pending is not None and call("GET", "/v1/auth/user", self.pending)[0] == 403:
            return self.pending
        # A user with two-factor on: register, enable, confirm with a code, log in.
        email, token = self.register()
        status, body = call("POST", "/v1/auth/two-factor/enable", token)
        if status != 200:
            raise RuntimeError(f"enabling two-factor: {status} {body}")
        code = totp(body["secret"], int(time.time()) // 30)
        status, body = call("POST", "/v1/auth/two-factor/confirm", token, {"code": code})
        if status != 200:
            raise RuntimeError(f"confirming two-factor: {status} {body}")
        status, body = call("POST", "/v1/auth/login", body={"email": email, "password": PASSWORD})
        if status != 200 or body.get("requires_2fa") is not True:
            raise RuntimeError(f"logging in as {email}: {status} {body}")
        self.pending = body["token"]
        return self.pending

    def for_case(self):
        with self.lock:
            self.cases += 1
            kind = ("pending", "servers:read", "all")[min(2, 7 - self.cases % 8)]
            self.kinds[kind] += 1
            if kind == "pending":
                return self.pending_token()
            return self.key(None if kind == "all" else [kind])


CREDENTIALS = Credentials()
atexit.register(
    lambda: print(
        f"hooks: credentials for {CREDENTIALS.cases} test cases "
        f"({', '.join(f'{kind}: {n}' for kind, n in sorted(CREDENTIALS.kinds.items()))}); "
        f"{CREDENTIALS.users} users registered on the way",
        file=sys.stderr,
    )
)


@schemathesis.auth(refresh_interval=None)
class FreshCredentialsPerCase:
    def get(self, case, ctx):
        return CREDENTIALS.for_case()

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.check
def documented_401_and_403_bodies(ctx, response, case):
    """Every 401 and 403 body is one the documentation gives, byte for byte."""
    if response.status_code == 401 and response.content != UNAUTHENTICATED:
        raise AssertionError(f"401 body {response.content!r}, not {UNAUTHENTICATED!r}")
    if response.status_code == 403 and response.content not in FORBIDDEN:
        raise AssertionError(f"403 body {response.content!r}, not one of {FORBIDDEN!r}")


@schemathesis.check
def every_answer_is_json(ctx, response, case):
    """Every answer carries `Content-Type: application/json`, 204 included."""
    content_type = response.headers.get("content-type", [])
    if content_type != ["application/json"]:
        raise AssertionError(f"Content-Type {content_type!r}, not ['application/json']")
