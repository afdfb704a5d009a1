#!/usr/bin/env bash
# Runs README.md's curl flow (the ```sh block after `<!-- curl-flow`) against
# `cargo run --example account_api` started as a newcomer would, with nothing set: an
# empty working directory, the embedded SQLite default. Then runs the documentation's
# own snippets (Python `requests`, JavaScript `fetch`, Go `net/http` where Go is
# installed) unchanged but for the base URL and the key, and stops the server with
# SIGTERM: it must exit 0 after flushing `last_used_at`. Fails on any other answer.
#
#   bash tests/readme-flow.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 >/dev/null; }
# Go for the documentation's Go snippet; Debian's package, installed where CI asks for it.
if ! command -v go >/dev/null && [ "${CI:-}" = true ]; then
  apt-get update -qq && apt-get install -y -qq golang-go >/dev/null
fi

cargo build -q -p examples --example account_api
bin=$root/target/debug/examples/account_api

work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
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
[ -f "$work/account_api.sqlite3" ] || { echo "no embedded SQLite database in the working directory"; exit 1; }

failed=0
check() { # description expected actual
  if [ "$2" = "$3" ]; then
    echo "ok    $1"
  else
    printf 'FAIL  %s\n  expected: %s\n  actual:   %s\n' "$1" "$2" "$3"
    failed=$((failed + 1))
  fi
}

# The README's block, with its base URL pointed at this server. Every curl in it reports
# its status on stderr, in order.
awk '/^<!-- curl-flow/ {f=1; next} f && /^```sh/ {g=1; next} g && /^```/ {exit} g' README.md \
  | sed "s|^BASE=.*|BASE=$base|" >"$work/flow.sh"
[ -s "$work/flow.sh" ] || { echo "README.md has no curl-flow block"; exit 1; }
(
  cd "$work"
  curl() { command curl -w '%{stderr}%{http_code}\n' "$@"; }
  export -f curl
  bash -euo pipefail flow.sh >flow.out 2>flow.status
)
check "README flow: the status of every request" \
  "201 201 200 200 200 401 200 204 401 204" "$(tr '\n' ' ' <"$work/flow.status" | sed 's/ $//')"
out=$(cat "$work/flow.out")
user='{"id":1,"name":"Ada","email":"ada@example.com","two_factor_enabled":false}'
check "README flow: the user, read with the key and with the regenerated key" 2 "$(grep -o "$user" <<<"$out" | wc -l)"
check "README flow: a plain_text_token at creation and at regeneration" 2 "$(grep -o '"plain_text_token":"[0-9]*|[A-Za-z0-9]*"' <<<"$out" | wc -l)"
check "README flow: the old and the revoked key refused" 2 "$(grep -o '{"message":"Unauthenticated."}' <<<"$out" | wc -l)"

# The documentation's snippets, for a fresh key.
token=$(curl -s "$base/v1/auth/login" -H 'Content-Type: application/json' \
  -d '{"email":"ada@example.com","password":"correct horse"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
key=$(curl -s "$base/v1/profile/api-keys" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"name":"snippets"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["plain_text_token"])')
snippet() { sed -e "s|https://api.proxyhat.com|$base|" -e "s/__API_KEY__/$key/" "tests/spec-snippets/$1"; }
user_py="{'id': 1, 'name': 'Ada', 'email': 'ada@example.com', 'two_factor_enabled': False}"

if python3 -c 'import requests' 2>/dev/null || pip install -q requests >/dev/null 2>&1; then
  check "the documentation's Python snippet" "$user_py" "$(snippet requests.py | python3 -)"
else
  echo "FAIL  the Python snippet: the requests package cannot be installed"; failed=$((failed + 1))
fi
if command -v node >/dev/null; then
  snippet fetch.mjs >"$work/fetch.mjs"
  check "the documentation's JavaScript snippet" \
    "{id:1,name:'Ada',email:'ada@example.com',two_factor_enabled:false}" "$(node "$work/fetch.mjs" | tr -d ' \n')"
else
  echo "skip  the JavaScript snippet: no node on this machine"
fi
if command -v go >/dev/null; then
  mkdir -p "$work/go" && snippet nethttp.go >"$work/go/main.go"
  check "the documentation's Go snippet" "200 OK" "$(cd "$work/go" && GOCACHE=$work/go-cache GOFLAGS=-mod=mod go run main.go)"
else
  echo "skip  the Go snippet: no Go toolchain on this machine (CI installs golang-go)"
fi

# A graceful stop: SIGTERM, exit 0, last_used_at written first.
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
check "SIGTERM: the server exits 0" 0 "$status"
check "SIGTERM: last_used_at flushed before the exit" 1 "$(grep -c 'last_used_at flushed' "$work/server.err")"
grep -q "$key" "$work/server.out" "$work/server.err" && { echo "FAIL  a key appears in the server's output"; failed=$((failed + 1)); }

[ "$failed" -eq 0 ] && echo "readme-flow: every check passed" || { echo "readme-flow: $failed failed"; exit 1; }
