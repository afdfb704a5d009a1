#!/usr/bin/env bash
# Two instances, one database: two account_api processes, A and B, on one PostgreSQL
# schema (of its own on $BEARER_AUTH_POSTGRES_URL, dropped at the end), loopback only.
# Each trial creates a key on A and uses it on B at once (200 on the very first
# request), keeps B's cache warm, then revokes (or regenerates) it on A and polls B every
# 5 ms until it refuses the old token (401): the delay is from A's answer to B's first
# 401. For a regenerate, the new token must answer 200 on B at once.
#
#   bash tests/two-instances.sh                          # the defaults, about 3 min
#   TRIALS=40 NOTIFY_TRIALS=300 bash tests/two-instances.sh
#   TWO_INSTANCES_SELF_TEST=0 bash tests/two-instances.sh   # skip the self-test
#   TWO_INSTANCES_VERBOSE=1 bash tests/two-instances.sh      # one line per trial
#
# Modes and bounds (exit 1 if any trial exceeds its bound, or a create-then-use or a
# regenerated token's first use on B is not 200):
#   ttl     without KEYS_NOTIFY: B refuses within the key cache's time to live, 5 s,
#           + 0.1 s of slack (the 5 ms poll period, one loopback request, scheduling on
#           a busy machine). TRIALS revoke (16) + REGEN_TRIALS regenerate (4) trials,
#           each about 5 s: the revoke comes 0.05 to 0.5 s into B's entry's life, near
#           the worst case.
#   notify  KEYS_NOTIFY=1 on both: within 1 s. NOTIFY_TRIALS revoke (100),
#           NOTIFY_REGEN_TRIALS regenerate (20) and NOTIFY_RACE_TRIALS (20) trials where
#           the revoke on A runs while B verifies the key for the first time.
#
# Before that, a self-test checks that the checks can fail: the 1 s bound on instances
# started without KEYS_NOTIFY, and B on another schema (a key created on A is unknown to
# B), must each fail.
#
# Bounded: every request has a 10 s timeout, every poll a deadline (5.1 s + 2 s), the
# helper a deadline from the trial counts (120 s + 8 s per trial without notify + 3 s
# per trial with it); the servers are stopped whatever the exit. Exit status 0 only when
# every trial met its bound. Without $BEARER_AUTH_POSTGRES_URL it skips (fails under
# CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

TRIALS=${TRIALS:-16}
REGEN_TRIALS=${REGEN_TRIALS:-4}
NOTIFY_TRIALS=${NOTIFY_TRIALS:-100}
NOTIFY_REGEN_TRIALS=${NOTIFY_REGEN_TRIALS:-20}
NOTIFY_RACE_TRIALS=${NOTIFY_RACE_TRIALS:-20}
TWO_INSTANCES_SELF_TEST=${TWO_INSTANCES_SELF_TEST:-1}

name=two-instances
# shellcheck source=tests/support/account-api-on-postgres.sh
source tests/support/account-api-on-postgres.sh

helper() { # OUT ARGS...
  local out=$1; shift
  local limit=$(( 120 + 8 * (TRIALS + REGEN_TRIALS) + 3 * (NOTIFY_TRIALS + NOTIFY_REGEN_TRIALS + NOTIFY_RACE_TRIALS) ))
  timeout --kill-after=10 "$limit" python3 tests/support/two_instances.py --bin "$bin" \
    --postgres-url "$BEARER_AUTH_POSTGRES_URL" "$@" >"$out" &
  py_pid=$!
  local status=0
  wait "$py_pid" || status=$?
  py_pid=""
  return "$status"
}

if [ "$TWO_INSTANCES_SELF_TEST" = 1 ]; then
  echo "two-instances: self-test (the checks must fail on a broken setup)"
  for test in notify-off other-schema; do
    if helper "$work/self-$test.json" --self-test "$test" 2>"$work/self-$test.err"; then
      cat "$work/self-$test.err"; echo "FAIL  self-test $test: the checks passed"; exit 1
    fi
    python3 - "$work/self-$test.json" "$test" <<'EOF' || { cat "$work/self-$test.err"; exit 1; }
import json, sys
text = open(sys.argv[1]).read()
if not text.strip():
    sys.exit(f"FAIL  self-test {sys.argv[2]}: the helper failed without results")
failures = " | ".join(json.loads(text)["failures"])
expected = {"notify-off": "ms after A's answer, bound 1000 ms", "other-schema": "the first use on B answered 401"}[sys.argv[2]]
if expected not in failures:
    sys.exit(f"FAIL  self-test {sys.argv[2]}: not noticed ({expected!r}); failures: {failures}")
print(f"ok    self-test {sys.argv[2]}: noticed ({expected})")
EOF
  done
fi

echo "two-instances: $TRIALS + $REGEN_TRIALS trials without notify, $NOTIFY_TRIALS + $NOTIFY_REGEN_TRIALS + $NOTIFY_RACE_TRIALS with KEYS_NOTIFY=1"
status=0
helper "$work/run.json" --trials "$TRIALS" --regen-trials "$REGEN_TRIALS" \
  --notify-trials "$NOTIFY_TRIALS" --notify-regen-trials "$NOTIFY_REGEN_TRIALS" \
  --notify-race-trials "$NOTIFY_RACE_TRIALS" ${TWO_INSTANCES_VERBOSE:+--verbose} 2>"$work/run.err" || status=$?
cat "$work/run.err"
[ -s "$work/run.json" ] || { echo "FAIL  two-instances: the helper failed (status $status)"; exit 1; }

python3 - "$work/run.json" <<'EOF'
import json, sys
r = json.loads(open(sys.argv[1]).read())
print()
print("| mode | operation | trials | min ms | median ms | p99 ms | max ms | bound ms |")
print("|---|---|---|---|---|---|---|---|")
for m in r["results"]:
    for op in ("revoke", "regenerate", "race"):
        s = m[op]
        if s:
            print(f'| {m["mode"]} | {op} | {s["n"]} | {s["min"]} | {s["median"]} | {s["p99"]} | {s["max"]} | {m["bound ms"]} |')
print()
for m in r["results"]:
    first = ", ".join(f"{k}: {v}" for k, v in sorted(m["first use on B"].items()))
    extra = ""
    if m["refused after the entry's end ms"]:
        e = m["refused after the entry's end ms"]
        extra = f'; refused {e["min"]}..{e["max"]} ms after the end of B\'s entry\'s life'
    print(f'{m["mode"]}: first uses on B by status: {first}; over the bound: {m["over bound"]}; '
          f'{m["seconds"]} s{extra}')
    for line in m.get("server errors", []):
        print(f"  server: {line}")
for f in r["failures"]:
    print(f"FAIL  {f}")
EOF

if [ "$status" = 0 ]; then
  echo "two-instances: every trial within its bound"
else
  echo "two-instances: failed"; exit 1
fi
