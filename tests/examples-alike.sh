#!/usr/bin/env bash
# Runs the axum and the actix-web examples side by side on loopback and sends both the
# same requests; fails unless every answer has the same status, Content-Type,
# WWW-Authenticate and body. Bounded: a few dozen requests, every curl with a timeout,
# both servers stopped on exit.
#
#   bash tests/examples-alike.sh        (builds the examples in debug first)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -q -p examples --example axum --example actix
dir=target/debug/examples
tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # name -> prints "port key"
  local name=$1 port
  port=$(free_port)
  BIND_ADDR=127.0.0.1:$port RUST_LOG=off "$dir/$name" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  for _ in $(seq 1 100); do
    grep -q '^API key: ' "$tmp/$name.out" 2>/dev/null && curl -s -m 1 -o /dev/null "http://127.0.0.1:$port/health" && break
    sleep 0.1
  done
  echo "$port $(sed -n 's/^API key: //p' "$tmp/$name.out")"
}

read -r axum_port axum_key < <(start axum)
read -r actix_port actix_key < <(start actix)
[ -n "$axum_key" ] && [ -n "$actix_key" ] || { echo "an example did not print its key"; exit 1; }

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

answer() { # port key path header -> one line
  local port=$1 key=$2 path=$3 header=${4//KEY/$2}
  local args=(-s -m 5 -o "$tmp/body" -D "$tmp/head" "http://127.0.0.1:$port$path")
  [ -n "$header" ] && args+=(-H "$header")
  curl "${args[@]}" || { echo "curl failed"; return; }
  local status ctype www
  status=$(head -1 "$tmp/head" | awk '{print $2}')
  ctype=$(grep -i '^content-type:' "$tmp/head" | tr -d '\r' | cut -d' ' -f2- || true)
  www=$(grep -i '^www-authenticate:' "$tmp/head" | tr -d '\r' | cut -d' ' -f2- || true)
  printf '%s | %s | %s | %s' "$status" "$ctype" "$www" "$(cat "$tmp/body")"
}

failed=0
for case in "${cases[@]}"; do
  path=${case%%|*}
  header=${case#*|}
  a=$(answer "$axum_port" "$axum_key" "$path" "$header")
  b=$(answer "$actix_port" "$actix_key" "$path" "$header")
  if [ "$a" = "$b" ]; then
    printf 'same  %-48s %s\n' "$path ${header//KEY/<key>}" "$a"
  else
    printf 'DIFF  %-48s\n  axum:  %s\n  actix: %s\n' "$path ${header//KEY/<key>}" "$a" "$b"
    failed=$((failed + 1))
  fi
done
echo "${#cases[@]} cases: $(( ${#cases[@]} - failed )) passed, $failed failed"
[ "$failed" -eq 0 ]
