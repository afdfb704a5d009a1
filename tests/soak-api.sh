#!/usr/bin/env bash
# Soak of the account API example on PostgreSQL, loopback only:
#
#   SOAK_SECONDS (600) of mixed traffic from SOAK_THREADS (6) client threads, each from a
#   loopback address of its own: register, create, list, verify, regenerate, revoke (and
#   their refusals: 401, 403, 404, 422, 429); every answer checked against what the
#   OpenAPI document (GET /v1/openapi.json) lists for its route and the documented body
#   of that status, and against what the client knows it must get.
#
# Goals: 0 answers outside the documented set (and 0 documented but unexpected, e.g. a
# 503 or a 401 for a live key); RSS growth under 5 % after warm-up (the first 60 s or
# 10 %); no connection leak: the server's connections in pg_stat_activity (by its own
# application_name) never above the pool's 10, no larger in the second half after
# warm-up than in the first, none active or idle in a transaction after the load.
#
# First a self-test (SOAK_SELFTEST=0 to skip, 20 s): the same run with a status the
# server rightly answers taken out of the document, the clients' keys deleted from the
# table half-way (live keys then refused, lists short), an RSS goal of -1 % and a pool
# maximum of 1 must fail on each of the four.
#
# The work is in tests/support/soak_api.py. The example runs on a schema of its own on
# $BEARER_AUTH_POSTGRES_URL, dropped at the end; the server is killed on exit.
#
#   BEARER_AUTH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test bash tests/soak-api.sh
#   SOAK_SECONDS=60 bash tests/soak-api.sh     # shorter
#   SOAK_LOG=/tmp/soak.log bash tests/soak-api.sh  # keeps soak_api.py's samples and details
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_THREADS=${SOAK_THREADS:-6}
SOAK_SELFTEST=${SOAK_SELFTEST:-1}

[[ -n "${BEARER_AUTH_POSTGRES_URL:-}" ]] || { echo "soak-api: BEARER_AUTH_POSTGRES_URL is unset" >&2; exit 2; }
command -v psql >/dev/null || { echo "soak-api: psql is not installed" >&2; exit 2; }
command -v python3 >/dev/null || { echo "soak-api: python3 is not installed" >&2; exit 2; }

echo "soak-api: building the example (release)"
CARGO_INCREMENTAL=0 timeout 3600 cargo build --release --quiet -p examples --example account_api
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin=$target_dir/release/examples/account_api

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() { # out err args...
  local out=$1 err=$2; shift 2
  timeout --kill-after=10 $(( ${SOAK_SECONDS%.*} + 200 )) \
    python3 tests/support/soak_api.py --bin "$bin" --postgres-url "$BEARER_AUTH_POSTGRES_URL" "$@" >"$out" 2>"$err"
}

if [[ "$SOAK_SELFTEST" == 1 ]]; then
  if run "$work/self.json" "$work/self.err" --seconds 20 --threads 3 --sample-every 2 \
      --undocument "DELETE /v1/profile/api-keys/{id} 204" --rss-goal -1 --pool-max 1 --tamper --fill 0; then
    echo "FAIL  self-test: the goals were met with a broken document and impossible goals"; exit 1
  fi
  python3 - "$work/self.json" <<'EOF'
import json, sys
failures = " | ".join(json.load(open(sys.argv[1]))["failures"])
expected = ["outside the documented set", "documented answers other than the expected one", "RSS grew",
            "connections (the pool's maximum is 1)"]
missed = [e for e in expected if e not in failures]
if missed:
    sys.exit(f"FAIL  self-test: the checks did not notice: {missed} (failures: {failures})")
print("ok    self-test: an undocumented 204, keys deleted behind the clients' back, an RSS goal of -1 % and a pool of 1 each fail")
EOF
fi

echo "soak-api: $SOAK_SECONDS s, $SOAK_THREADS client threads (details: stderr of soak_api.py below on failure)"
status=0
run "$work/soak.json" "$work/soak.err" --seconds "$SOAK_SECONDS" --threads "$SOAK_THREADS" || status=$?
[[ -s "$work/soak.json" ]] || { echo "soak-api: no result"; tail -30 "$work/soak.err"; exit 1; }
(( status == 0 )) || tail -40 "$work/soak.err"
[[ -z "${SOAK_LOG:-}" ]] || cp "$work/soak.err" "$SOAK_LOG"

python3 - "$work/soak.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
if "requests" not in r:
    sys.exit("soak-api: " + "; ".join(r["failures"]))
rows = [
    ("duration, client threads", f'{r["seconds"]} s, {r["threads"]}'),
    ("requests (rate)", f'{r["requests"]} ({r["rate"]}/s)'),
    ("users registered", r["users"]),
    ("outside the documented set (goal 0)", r["outside"]),
    ("documented but unexpected (goal 0)", r["unexpected"]),
    ("requests without an answer (goal 0)", r["no answer"]),
    ("register throttle probe", " ".join(f"{k}: {v}" for k, v in sorted(r["probe statuses"].items()))),
    ("RSS before load / at warm-up end", f'{r["rss before"]} / {r["rss warm"]} KiB ({r["warm-up seconds"]:.0f} s)'),
    ("RSS end / peak / after load", f'{r["rss end"]} / {r["rss peak"]} / {r["rss after"]} KiB'),
    ("RSS growth after warm-up (goal < 5 %)", f'{r["rss growth %"]} %'),
    ("RSS each minute from the start, KiB", " ".join(str(k) for k in r["rss by minute"])),
    ("open descriptors warm-up / end", f'{r["fds warm"]} / {r["fds end"]}'),
    ("connections min / max (goal <= 10)", "{} / {}".format(*r["connections min/max"])),
    ("connections after warm-up min / max", "{} / {}".format(*r["connections after warm-up min/max"])),
    ("max connections 1st / 2nd half", "{} / {}".format(*r["connections halves max"])),
    ("connections 2 s after the load", r["connections after load"]),
    ("samples", r["samples"]),
]
width = max(len(k) for k, _ in rows)
print()
print(f"| {'':{width}} | result |")
print(f"|{'-' * (width + 2)}|--------|")
for k, v in rows:
    print(f"| {k:{width}} | {v} |")
print()
print("answers by route and status:")
for k, v in r["by status"].items():
    print(f"  {k:55} {v}")
for f in r["failures"]:
    print("FAIL  " + f)
EOF
(( status == 0 )) && echo "soak-api: every goal met" || { echo "soak-api: failed"; exit 1; }
