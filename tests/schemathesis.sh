#!/usr/bin/env bash
# Property-based tests of the account API against its own OpenAPI document: schemathesis
# (from PyPI, 4.x) over every operation of `GET /v1/openapi.json`, on the example started
# as `cargo run --example account_api` would (its embedded SQLite default) in an empty
# temporary directory, on a free 127.0.0.1 port.
#
# Before the run, a user is registered and an API key created; every test case is then
# sent with a fresh key of that user (`Authorization: Bearer …`), made by that key:
# generated requests may revoke keys (logout, DELETE, regenerate), and a key per case
# keeps every operation meaningful, logout included (tests/support/schemathesis_hooks.py).
#
# Checks: no 5xx (not_a_server_error); every status code, content type, header and body
# as the document gives it (status_code_conformance, content_type_conformance,
# response_headers_conformance, response_schema_conformance); requests that break the
# document refused with a 4xx (negative_data_rejection, missing_required_header); 405
# with `Allow` for methods a path does not have (unsupported_method,
# allow_header_conformance); no operation that ignores its authentication (ignored_auth);
# a revoked key's id gone everywhere, a created one there (use_after_free,
# ensure_resource_availability); and the hooks' own: every 401 and 403 body one of the
# documented ones, byte for byte, and `Content-Type: application/json` on every answer.
# Then the server must stop on SIGTERM with exit status 0.
#
# Not checked: positive_data_acceptance, which expects every request the document allows
# to succeed; this API refuses some of them by its rules (a wrong password, an email
# taken, a TOTP code that is not the current one): 422, documented.
#
# Bounded: ST_MAX_EXAMPLES cases per operation and phase (default 200: about 45 s and
# 2,500 test cases here) and a hard ST_TIMEOUT seconds for the run (default 300). ST_SEED
# fixes the seed (printed otherwise). Fails on any finding, on a server that dies or does
# not stop cleanly, on a panic in its log; the last line is `schemathesis: N passed,
# M failed` (test cases, counted from schemathesis' report).
#
#   bash tests/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

max_examples=${ST_MAX_EXAMPLES:-200}
budget=${ST_TIMEOUT:-300}

command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 python3-pip >/dev/null; }
# schemathesis 4 from PyPI: the one python3 has, else installed for it, else (a Python
# whose packages the system manages) in a virtual environment under target/.
python=python3
has_st4() { "$python" -c 'import schemathesis, sys; sys.exit(schemathesis.__version__.split(".")[0] != "4")' 2>/dev/null; }
if ! has_st4; then
  python3 -m pip install -q 'schemathesis>=4,<5' >/dev/null 2>&1 || true
fi
if ! has_st4; then
  python=$root/target/schemathesis-venv/bin/python
  [ -x "$python" ] || python3 -m venv "$root/target/schemathesis-venv" ||
    { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$root/target/schemathesis-venv"; }
  has_st4 || "$python" -m pip install -q 'schemathesis>=4,<5'
fi
st_version=$("$python" -c 'import schemathesis; print(schemathesis.__version__)')

cargo build -q -p examples --example account_api
bin=$root/target/debug/examples/account_api

work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
(cd "$work" && exec env -u DATABASE_URL -u APP_KEY BIND_ADDR=127.0.0.1:$port RUST_LOG=info "$bin") \
  >"$work/server.out" 2>"$work/server.err" &
pid=$!
for _ in $(seq 1 100); do
  curl -s -m 1 -o /dev/null "$base/v1/openapi.json" && break
  sleep 0.1
done
curl -s -m 1 -o /dev/null "$base/v1/openapi.json" || { cat "$work/server.err"; echo "account_api did not start"; exit 1; }

# The user and the first key, as a client makes them.
export ST_BASE_URL=$base ST_PASSWORD='schemathesis password'
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[\"$1\"])"; }
token=$(curl -s -f "$base/v1/auth/register" -H 'Content-Type: application/json' \
  -d "{\"name\":\"Schemathesis\",\"email\":\"schemathesis@example.com\",\"password\":\"$ST_PASSWORD\"}" | json_field token)
ST_KEY=$(curl -s -f "$base/v1/profile/api-keys" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d '{"name":"schemathesis"}' | json_field plain_text_token)
export ST_KEY
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/auth/user" -H "Authorization: Bearer $ST_KEY")" = 200 ] ||
  { echo "the first key does not authenticate"; exit 1; }

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance
checks=$checks,response_schema_conformance,negative_data_rejection,missing_required_header
checks=$checks,unsupported_method,allow_header_conformance,ignored_auth,use_after_free
checks=$checks,ensure_resource_availability,documented_401_and_403_bodies,every_answer_is_json
seed=()
[ -n "${ST_SEED:-}" ] && seed=(--seed "$ST_SEED")

echo "schemathesis $st_version against $base/v1/openapi.json: $max_examples cases per operation and phase, at most $budget s"
status=0
(
  cd "$work"
  SCHEMATHESIS_HOOKS=$root/tests/support/schemathesis_hooks.py \
    timeout -k 10 "$budget" "$python" -m schemathesis.cli run "$base/v1/openapi.json" \
    --checks "$checks" \
    --max-examples "$max_examples" \
    --workers 2 \
    --request-timeout 30 \
    --generation-database none \
    --report ndjson --report-ndjson-path "$work/events.ndjson" \
    --no-color "${seed[@]}"
) || status=$?

problems=0
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  echo "FAIL  schemathesis did not finish within $budget s"; problems=$((problems + 1))
elif [ "$status" != 0 ] && [ ! -s "$work/events.ndjson" ]; then
  echo "FAIL  schemathesis exited with status $status"; problems=$((problems + 1))
fi
if kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid"
  stopped=0
  wait "$pid" || stopped=$?
  pid=""
  [ "$stopped" = 0 ] || { echo "FAIL  account_api exited with status $stopped on SIGTERM"; problems=$((problems + 1)); }
else
  echo "FAIL  account_api died during the run"; tail -20 "$work/server.err"; problems=$((problems + 1))
  pid=""
fi
if grep -q 'panicked' "$work/server.err"; then
  echo "FAIL  account_api panicked:"; grep -A3 'panicked' "$work/server.err" | head -20; problems=$((problems + 1))
fi
if grep -qF "${ST_KEY#*|}" "$work/server.out" "$work/server.err"; then
  echo "FAIL  a key appears in the server's output"; problems=$((problems + 1))
fi

# Test cases passed and failed, from the report's events.
read -r passed failed < <(python3 "$root/tests/support/schemathesis_tally.py" "$work/events.ndjson" || echo "0 0")
[ "$status" = 0 ] || [ "$failed" != 0 ] || [ "$problems" != 0 ] ||
  { echo "FAIL  schemathesis exited with status $status and no failed test case"; problems=$((problems + 1)); }
[ "$problems" = 0 ] || echo "$problems other problems (above)"
echo "schemathesis: $passed passed, $failed failed"
[ "$status" = 0 ] && [ "$failed" = 0 ] && [ "$problems" = 0 ]
