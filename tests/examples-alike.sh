#!/usr/bin/env bash
# Runs the axum and the actix-web examples side by side on loopback and sends both the
# same requests; fails unless both servers answered every request and every answer has
# the same status, Content-Type, WWW-Authenticate and body. Bounded: a few dozen
# requests, every curl with a timeout, both servers (and their children) stopped on any
# exit, Ctrl-C included.
#
#   bash tests/examples-alike.sh        (builds the examples in debug first)
#
# ALIKE_AXUM_CMD / ALIKE_ACTIX_CMD replace the commands that start the two servers (CI
# uses them to check that the script fails when a server never answers).
set -euo pipefail
cd "$(dirname "$0")/.."

need() { # command package
  command -v "$1" >/dev/null 2>&1 && return
  echo "installing $2 (for $1)"
  apt-get update -qq && apt-get install -y -qq "$2" >/dev/null
}
need curl curl
need python3 python3

if [ -z "${ALIKE_AXUM_CMD:-}${ALIKE_ACTIX_CMD:-}" ]; then
  cargo build -q -p examples --example axum --example actix
fi
axum_cmd=${ALIKE_AXUM_CMD:-target/debug/examples/axum}
actix_cmd=${ALIKE_ACTIX_CMD:-target/debug/examples/actix}

tmp=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    # Each server runs in its own process group (setsid): stop the whole group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME COMMAND: starts the server in the current shell (so that its pid is kept for
# the cleanup) and sets NAME_port and NAME_key once it answers /health, or fails.
start() {
  local name=$1 cmd=$2 port key=""
  port=$(free_port)
  BIND_ADDR=127.0.0.1:$port RUST_LOG=off setsid $cmd >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  for _ in $(seq 1 100); do
    key=$(sed -n 's/^API key: //p' "$tmp/$name.out" 2>/dev/null || true)
    if [ -n "$key" ] && curl -s -m 1 -o /dev/null "http://127.0.0.1:$port/health"; then
      printf -v "${name}_port" '%s' "$port"
      printf -v "${name}_key" '%s' "$key"
      return 0
    fi
    sleep 0.1
  done
  echo "the $name server did not print its key and answer /health within 10 s"
  sed 's/^API key: .*/API key: <redacted>/' "$tmp/$name.out" "$tmp/$name.err" | tail -20
  return 1
}

start axum "$axum_cmd"
start actix "$actix_cmd"

# Each case: path|header ("KEY" stands for the server's own key).
cases=(
  "/v1/auth/user|"
  "/v1/auth/user|Authorization: Bearer KEY"
  "/v1/auth/user|Authorization: bearer KEY"
  "/v1/auth/user|Authorization: BEARER   KEY"
  "/v1/auth/user|Authorization: Bearer 1|wrong"
  "/v1/auth/user|Authorization: Bearer 999|wrong"
  "/v1/auth/user|Authorization: Bearer x1|abc"
  "/v1/auth/user|Authorization: Bearer"
  "/v1/auth/user|Authorization: Bearer a b"
  "/v1/auth/user|Authorization: Bearer a,b"
  "/v1/auth/user|Authorization: Basic dXNlcjpwYXNz"
  "/v1/auth/user|Authorization: BearerAbc"
  "/v1/auth/user|Authorization: Bearer KEY=="
  "/health|"
  "/health|Authorization: Bearer nope"
)

# answer PORT KEY PATH HEADER: one line "status | content-type | www-authenticate | body",
# or a non-zero exit when the server gave no HTTP answer.
answer() {
  local port=$1 key=$2 path=$3 header=${4//KEY/$2}
  local args=(-s -m 5 -o "$tmp/body" -D "$tmp/head" "http://127.0.0.1:$port$path")
  [ -n "$header" ] && args+=(-H "$header")
  rm -f "$tmp/body" "$tmp/head"
  curl "${args[@]}" || return 1
  local status ctype www
  status=$(head -1 "$tmp/head" | awk '{print $2}')
  case "$status" in [1-5][0-9][0-9]) ;; *) return 1 ;; esac
  ctype=$(grep -i '^content-type:' "$tmp/head" | tr -d '\r' | cut -d' ' -f2- || true)
  www=$(grep -i '^www-authenticate:' "$tmp/head" | tr -d '\r' | cut -d' ' -f2- || true)
  printf '%s | %s | %s | %s' "$status" "$ctype" "$www" "$(cat "$tmp/body")"
}

failed=0
for case in "${cases[@]}"; do
  path=${case%%|*}
  header=${case#*|}
  shown="$path ${header//KEY/<key>}"
  if ! a=$(answer "$axum_port" "$axum_key" "$path" "$header"); then
    printf 'NO ANSWER from axum   %s\n' "$shown"; failed=$((failed + 1)); continue
  fi
  if ! b=$(answer "$actix_port" "$actix_key" "$path" "$header"); then
    printf 'NO ANSWER from actix  %s\n' "$shown"; failed=$((failed + 1)); continue
  fi
  if [ "$a" = "$b" ]; then
    printf 'same  %-48s %s\n' "$shown" "$a"
  else
    printf 'DIFF  %-48s\n  axum:  %s\n  actix: %s\n' "$shown" "$a" "$b"
    failed=$((failed + 1))
  fi
done
echo "examples-alike: $(( ${#cases[@]} - failed )) passed, $failed failed"
[ "$failed" -eq 0 ]
