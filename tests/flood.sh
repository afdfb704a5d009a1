#!/usr/bin/env bash
# Flood of made-up tokens against the account API example on PostgreSQL, beside a steady
# stream of valid ones, loopback only:
#
#   wrk, as fast as it goes (FLOOD_WRK_THREADS 1, FLOOD_CONNECTIONS 64, FLOOD_NICE 19), sends
#   well-formed random tokens ({id}|{40 letters and digits}) to GET /v1/auth/user for
#   FLOOD_SECONDS (20), twice: flood A, a new set of 2,000 tokens every 4 s (each sent
#   many times within the store's 5 s cache time to live; the two sets in force at once
#   fit the refusal cache's 10,000 entries, the 5 or 6 sets of a flood together do not);
#   flood B, one set
#   of 50,000 (more than the refusal cache holds) cycled the whole time. Beside each,
#   and alone first (quiet, 15 s), a Python client sends GET /v1/auth/user with valid
#   keys at 200 a second. The table holds 20,000 other keys, as a real one would: on a
#   table of a few rows PostgreSQL scans the table and the index counts nothing.
#
# Goals: the valid requests all 200 (no 503: the pool never exhausted for them) with a
# p99 latency within 2 × the quiet p99; the database's lookups by digest (idx_scan of the
# token's unique index, calibrated first: 200 cold tokens must count 200) at most one
# per distinct token of flood A (+ the valid keys' refreshes), reported for flood B; every
# flood answer the documented 401; the server's RSS growing under 5 % after the first
# quarter of each flood; exit 0 on SIGTERM.
#
# First a self-test (FLOOD_SELFTEST=0 to skip): a short run with a latency factor of
# 0.01, an RSS goal of -1 %, flood B (20,000 tokens, twice the refusal cache) held to one
# lookup per token, and the valid keys
# deleted before flood B (their requests then 401) must fail on each.
#
# The work is in tests/support/flood.py and flood.lua. The example runs on a schema of
# its own on $BEARER_AUTH_POSTGRES_URL, dropped at the end; the server and wrk are
# killed on exit.
#
#   BEARER_AUTH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test bash tests/flood.sh
#   FLOOD_LOG=/tmp/flood.log bash tests/flood.sh    # keeps flood.py's details
set -euo pipefail
cd "$(dirname "$0")/.."

FLOOD_SECONDS=${FLOOD_SECONDS:-20}
FLOOD_WRK_THREADS=${FLOOD_WRK_THREADS:-1}
FLOOD_CONNECTIONS=${FLOOD_CONNECTIONS:-64}
# wrk runs under `nice -n 19`: on a small machine the load tool would otherwise take the
# CPU that the server and the valid client need, and measure itself; niced, it still
# takes every cycle they leave (FLOOD_NICE=0 to run it at the same priority).
FLOOD_NICE=${FLOOD_NICE:-19}
FLOOD_SELFTEST=${FLOOD_SELFTEST:-1}

[[ -n "${BEARER_AUTH_POSTGRES_URL:-}" ]] || { echo "flood: BEARER_AUTH_POSTGRES_URL is unset" >&2; exit 2; }
command -v psql >/dev/null || { echo "flood: psql is not installed" >&2; exit 2; }
command -v python3 >/dev/null || { echo "flood: python3 is not installed" >&2; exit 2; }
if ! command -v wrk >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get install -y wrk >/dev/null 2>&1 \
    || { timeout 300 apt-get update >/dev/null && timeout 300 apt-get install -y wrk >/dev/null; }
fi

echo "flood: building the example (release)"
CARGO_INCREMENTAL=0 timeout 3600 cargo build --release --quiet -p examples --example account_api
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin=$target_dir/release/examples/account_api

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Where each process runs, e.g. the server alone on CPU 0 with one worker, and wrk and the
# measuring client on CPU 1 (see tests/support/flood.py --help):
#   FLOOD_PLACEMENT="--server-cpus 0 --server-workers 1 --wrk-cpus 1 --client-cpus 1 --client-nice -10"
read -ra placement <<<"${FLOOD_PLACEMENT:-}"

run() { # out err args...
  local out=$1 err=$2; shift 2
  timeout --kill-after=10 600 python3 tests/support/flood.py --bin "$bin" \
    --postgres-url "$BEARER_AUTH_POSTGRES_URL" --wrk-threads "$FLOOD_WRK_THREADS" \
    --wrk-connections "$FLOOD_CONNECTIONS" --wrk-nice "$FLOOD_NICE" "${placement[@]}" "$@" >"$out" 2>"$err"
}

if [[ "$FLOOD_SELFTEST" == 1 ]]; then
  if run "$work/self.json" "$work/self.err" --quiet 5 --flood 6 --latency-factor 0.01 --rss-goal -1 --strict-big --big-set 20000 --tamper; then
    echo "FAIL  self-test: the goals were met with impossible goals"; exit 1
  fi
  python3 - "$work/self.json" <<'EOF'
import json, re, sys
failures = " | ".join(json.load(open(sys.argv[1]))["failures"])
expected = [r"flood [AB]: valid p99", r"flood [AB]: RSS grew", r"flood B: \d+ lookups for",
            r"flood B: \d+ valid requests not 200"]
missed = [e for e in expected if not re.search(e, failures)]
if missed:
    sys.exit(f"FAIL  self-test: the checks did not notice: {missed} (failures: {failures})")
print("ok    self-test: a latency factor of 0.01, an RSS goal of -1 %, flood B held to one lookup a token and "
      "the valid keys deleted before flood B each fail")
EOF
fi

echo "flood: quiet 15 s, then two floods of $FLOOD_SECONDS s (nice -n $FLOOD_NICE wrk -t$FLOOD_WRK_THREADS -c$FLOOD_CONNECTIONS); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
run "$work/flood.json" "$work/flood.err" --flood "$FLOOD_SECONDS" || status=$?
[[ -s "$work/flood.json" ]] || { echo "flood: no result"; tail -30 "$work/flood.err"; exit 1; }
(( status == 0 )) || tail -20 "$work/flood.err"
[[ -z "${FLOOD_LOG:-}" ]] || cp "$work/flood.err" "$FLOOD_LOG"
echo "flood: load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$work/flood.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
if "flood B" not in r:
    sys.exit("flood: " + "; ".join(r["failures"]))
c, q, a, b = r["calibration"], r["quiet"], r["flood A"], r["flood B"]
print(f'\ncalibration of idx_scan: 200 cold tokens + their 200 repeats at once count {c["cold 200 + repeat 200"]}; '
      f'the 200 again after the 5 s TTL count {c["again after the TTL"]}')
print(f'quiet: {q["requests"]} valid requests, p50 {q["p50 ms"]} ms, p99 {q["p99 ms"]} ms, max {q["max ms"]} ms, '
      f'non-200 {q["non-200"]}, RSS {q["rss end"]} KiB, connections {q["connections max"]}\n')
rows = [
    ("flood tokens", lambda f: f'{f["set size"]} per {"4 s window" if f["mode"] == "windows" else "run"}'),
    ("flood requests (rate)", lambda f: f'{f["requests"]} ({f["rate"]}/s)'),
    ("flood answers 401 / 503 / other", lambda f: f'{f["401"]} / {f["503"]} / {f["outside"]}'),
    ("flood p50 / p99", lambda f: f'{f["flood p50 ms"]} / {f["flood p99 ms"]} ms'),
    ("distinct tokens sent", lambda f: f["distinct"]),
    ("database lookups (idx_scan)", lambda f: f["lookups"]),
    ("  of which valid keys' refreshes, at most", lambda f: f["valid refresh bound"]),
    ("lookups per distinct token", lambda f: f["lookups per distinct"]),
    ("repeats absorbed (requests - lookups)", lambda f: f["absorbed"]),
    ("valid requests / non-200", lambda f: f'{f["valid"]["requests"]} / {f["valid"]["non-200"]}'),
    ("valid p50 / p99 / max", lambda f: f'{f["valid"]["p50 ms"]} / {f["valid"]["p99 ms"]} / {f["valid"]["max ms"]} ms'),
    ("valid p99 / quiet p99 (goal <= 2)", lambda f: f'{f["valid"]["p99 ms"] / q["p99 ms"]:.2f}'),
    ("RSS start / quarter / end / peak KiB", lambda f: f'{f["rss start"]} / {f["rss at quarter"]} / {f["rss end"]} / {f["rss peak"]}'),
    ("RSS growth after the quarter (goal < 5 %)", lambda f: f'{f["rss growth %"]} %'),
    ("server connections / active, max", lambda f: f'{f["connections max"]} / {f["active max"]}'),
]
width = max(len(k) for k, _ in rows)
print(f"| {'':{width}} |  flood A (5,000/4 s) |  flood B (50,000 set) |")
print(f"|{'-' * (width + 2)}|----------------------|-----------------------|")
for k, get in rows:
    print(f"| {k:{width}} | {str(get(a)):>20} | {str(get(b)):>21} |")
print(f'\nRSS peak over the run: {r["rss peak"]} KiB; exit on SIGTERM: {r["exit"]}')
for f in r["failures"]:
    print("FAIL  " + f)
EOF
(( status == 0 )) && echo "flood: every goal met" || { echo "flood: failed"; exit 1; }
