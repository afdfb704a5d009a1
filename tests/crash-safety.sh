#!/usr/bin/env bash
# Crash safety of the account API, on SQLite (a temporary file) and on PostgreSQL (a
# schema of its own on $BEARER_AUTH_POSTGRES_URL, dropped at the end), loopback only:
#
# 1. kill -9 in the middle of a burst of key creations and regenerations (8 client
#    threads, at most 150 requests each, SIGKILL after 400 answers), then a restart on
#    the same database, three times over: every plain_text_token a client received authenticates unless a
#    regenerate of its key was answered since (then it is refused, 401); a regenerate
#    still in flight at the kill may have gone either way, and both are counted; every
#    key's row holds the digest of the last token its client received; no row is
#    half-written.
# 2. SIGTERM under load (6 threads, 4 fresh keys each, 2 s): the server exits 0, and
#    every key that got a 200 has its last_used_at written.
#
# The work is in tests/support/crash_safety.py; this script builds the example, checks
# that the checks can fail (a self-test on a damaged database), runs it on each engine
# and prints the results table. Without $BEARER_AUTH_POSTGRES_URL the
# PostgreSQL run is skipped with a line saying so, except under CI=true, where it fails.
#
#   bash tests/crash-safety.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 >/dev/null; }

cargo build -q -p examples --example account_api
bin=$root/target/debug/examples/account_api

out=$(mktemp)
selftest=$(mktemp)
trap 'rm -f "$out" "$selftest"' EXIT
failed=0

# The checks must fail when what they check is broken: a database damaged after the kill
# (a received key's row deleted, a regenerated key's old digest put back, a name emptied)
# and a stop by SIGKILL rather than SIGTERM.
if python3 tests/support/crash_safety.py --bin "$bin" --engine sqlite --tamper >"$selftest" 2>/dev/null; then
  echo "FAIL  self-test: the checks passed on a damaged database and a SIGKILL stop"; exit 1
fi
python3 - "$selftest" <<'EOF'
import json, sys
failures = " | ".join(json.loads(open(sys.argv[1]).read())["failures"])
expected = ["a token regenerated since (answered) got 200", "a token the client received got 401",
            "without a row", "half-written row", "used keys without last_used_at"]
missed = [e for e in expected if e not in failures]
if missed:
    sys.exit(f"FAIL  self-test: the checks did not notice: {missed}")
print("ok    self-test: the checks fail on a damaged database and on a SIGKILL stop")
EOF

run() { # engine args...
  local engine=$1; shift
  if python3 tests/support/crash_safety.py --bin "$bin" --engine "$engine" "$@" >>"$out"; then
    echo "ok    $engine"
  else
    echo "FAIL  $engine"; failed=1
  fi
}

run sqlite
if [ -n "${BEARER_AUTH_POSTGRES_URL:-}" ]; then
  command -v psql >/dev/null || { echo "FAIL  postgres: psql is not installed"; exit 1; }
  run postgres --postgres-url "$BEARER_AUTH_POSTGRES_URL"
elif [ "${CI:-}" = true ]; then
  echo "FAIL  postgres: BEARER_AUTH_POSTGRES_URL is unset (CI must run it)"; failed=1
else
  echo "skip  postgres: BEARER_AUTH_POSTGRES_URL is unset"
fi

python3 - "$out" <<'EOF'
import json, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
rows = [
    ("kill -9: rounds (burst, SIGKILL, restart)", lambda r: r["crash"]["rounds"]),
    ("kill -9: answers before the kills", lambda r: r["crash"]["answers before the kill"]),
    ("kill -9: answers by status", lambda r: " ".join(f"{k}: {v}" for k, v in sorted(r["crash"]["burst statuses"].items()))),
    ("kill -9: requests in flight (unanswered)", lambda r: r["crash"]["unanswered (in flight)"]),
    ("kill -9: creations in flight / committed anyway", lambda r: f'{r["crash"]["in-flight creates"]} / {r["crash"]["in-flight creates committed"]}'),
    ("restart: tokens received", lambda r: r["crash"]["tokens received"]),
    ("restart: latest tokens that authenticate (200)", lambda r: r["crash"]["authenticate"]),
    ("restart: regenerated tokens refused (401)", lambda r: r["crash"]["old refused"]),
    ("restart: regenerate in flight, old token still valid", lambda r: r["crash"]["unsure: still valid"]),
    ("restart: regenerate in flight, committed", lambda r: r["crash"]["unsure: regenerated"]),
    ("rows / half-written rows", lambda r: f'{r["crash"]["rows"]} / {r["crash"]["half-written rows"]}'),
    ("SIGTERM: requests (before the signal)", lambda r: f'{r["stop"]["requests"]} ({r["stop"]["requests at SIGTERM"]})'),
    ("SIGTERM: exit status, seconds to exit", lambda r: f'{r["stop"]["exit"]}, {r["stop"]["stop seconds"]}'),
    ("SIGTERM: keys used / last_used_at written", lambda r: f'{r["stop"]["keys used"]} / {r["stop"]["last_used_at written"]}'),
    ("SIGTERM: written before the signal", lambda r: r["stop"]["written before SIGTERM"]),
    ("failures", lambda r: len(r["failures"])),
]
width = max(len(name) for name, _ in rows)
cols = [max([len(r["engine"])] + [len(str(get(r))) for _, get in rows]) for r in runs]
print()
print(f'| {"":{width}} | ' + " | ".join(f'{r["engine"]:>{c}}' for r, c in zip(runs, cols)) + " |")
print(f'|{"-" * (width + 2)}|' + "|".join("-" * (c + 2) for c in cols) + "|")
for name, get in rows:
    print(f"| {name:{width}} | " + " | ".join(f"{str(get(r)):>{c}}" for r, c in zip(runs, cols)) + " |")
EOF

[ "$failed" = 0 ] && echo "crash-safety: every check passed" || { echo "crash-safety: failed"; exit 1; }
