#!/usr/bin/env bash
# Soak test of the axum and actix-web examples, on loopback only.
#
#   bash tests/soak.sh                       # 60 s per example
#   SOAK_SECONDS=15 bash tests/soak.sh       # shorter
#   SOAK_EXAMPLES=actix bash tests/soak.sh   # one example
#
# For each example it builds the release binary, starts it on a free 127.0.0.1 port with
# DEMO_PENDING_KEY=1 (so that it prints a valid key and a key whose second factor is
# pending), and drives GET /v1/auth/user with wrk for SOAK_SECONDS, cycling four requests:
# the valid key, a wrong secret, the pending key, and no Authorization header. Every
# response is checked (status, Content-Type, WWW-Authenticate, body bytes) against the
# documented set:
#
#   200  application/json  no challenge                    the key's principal (probed once)
#   401  application/json  Bearer | Bearer error="invalid_token"  {"message":"Unauthenticated."}
#   403  application/json  no challenge                    {"message":"Two-factor authentication required.","requires_2fa":true}
#
# Anything else counts as "outside" (goal: 0). It prints requests, outside, socket
# errors, p50/p99 latency, and the server's RSS at 10 s and at the end with the growth
# (goal: under 5 %), then stops the server.
#
# Bounded: wrk stops after SOAK_SECONDS or SOAK_MAX_REQUESTS responses, whichever comes
# first, and is killed SOAK_SECONDS + 60 s after it starts if it has not; every wait has
# a deadline; the server is killed on exit, whatever the exit. Exit status: 0 when every
# example met both goals, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

SOAK_SECONDS=${SOAK_SECONDS:-60}
SOAK_THREADS=${SOAK_THREADS:-2}
SOAK_CONNECTIONS=${SOAK_CONNECTIONS:-32}
SOAK_MAX_REQUESTS=${SOAK_MAX_REQUESTS:-50000000}
SOAK_EXAMPLES=${SOAK_EXAMPLES:-"axum actix"}
RSS_GROWTH_GOAL_PERCENT=5
RSS_FIRST_SAMPLE=10
if (( SOAK_SECONDS <= RSS_FIRST_SAMPLE )); then
  RSS_FIRST_SAMPLE=$(( SOAK_SECONDS / 2 ))
fi

work=$(mktemp -d)
server_pid=""
wrk_pid=""

stop_pid() {
  local pid=$1
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    # Up to 5 s to exit on its own, then SIGKILL.
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}

cleanup() {
  stop_pid "$wrk_pid"
  stop_pid "$server_pid"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "soak: $*" >&2
  exit 2
}

# Installs a Debian package when its command is missing.
need() {
  local command=$1 package=$2
  command -v "$command" >/dev/null 2>&1 && return 0
  echo "soak: installing $package"
  export DEBIAN_FRONTEND=noninteractive
  if ! timeout 300 apt-get install -y "$package" >/dev/null 2>&1; then
    timeout 300 apt-get update >/dev/null
    timeout 300 apt-get install -y "$package" >/dev/null
  fi
  command -v "$command" >/dev/null 2>&1 || fail "could not install $package"
}

need wrk wrk
need curl curl

echo "soak: building the examples (release)"
timeout 3600 cargo build --release --quiet -p examples --example axum --example actix
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[[ -n "$target_dir" ]] || fail "cannot find cargo's target directory"

# A loopback port nobody listens on (the server's bind is the real check).
free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

rss_kib() {
  awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

cat >"$work/soak.lua" <<'LUA'
-- Four requests in turn; every response checked against the documented set.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local UNAUTHENTICATED = '{"message":"Unauthenticated."}'
local SECOND_FACTOR = '{"message":"Two-factor authentication required.","requires_2fa":true}'
local INVALID_TOKEN = 'Bearer error="invalid_token"'

function init(args)
  local valid_key, pending_key = args[1], args[2]
  user_body = args[3]
  max_responses = tonumber(args[4])
  local path = wrk.path
  prepared = {
    wrk.format("GET", path, { ["Authorization"] = "Bearer " .. valid_key }),
    wrk.format("GET", path, { ["Authorization"] = "Bearer 1|" .. string.rep("x", 48) }),
    wrk.format("GET", path, { ["Authorization"] = "Bearer " .. pending_key }),
    wrk.format("GET", path, {}),
  }
  sent = 0
  ok_200, missing_401, invalid_401, second_factor_403, outside = 0, 0, 0, 0, 0
  first_outside = ""
end

function request()
  sent = sent + 1
  return prepared[(sent % #prepared) + 1]
end

local function header(headers, name)
  local found = nil
  for key, value in pairs(headers) do
    if string.lower(key) == name then
      if found ~= nil then
        return "(repeated)"
      end
      found = value
    end
  end
  return found
end

function response(status, headers, body)
  local json = header(headers, "content-type") == "application/json"
  local www = header(headers, "www-authenticate")
  if json and status == 200 and www == nil and body == user_body then
    ok_200 = ok_200 + 1
  elseif json and status == 401 and www == "Bearer" and body == UNAUTHENTICATED then
    missing_401 = missing_401 + 1
  elseif json and status == 401 and www == INVALID_TOKEN and body == UNAUTHENTICATED then
    invalid_401 = invalid_401 + 1
  elseif json and status == 403 and www == nil and body == SECOND_FACTOR then
    second_factor_403 = second_factor_403 + 1
  else
    outside = outside + 1
    if first_outside == "" then
      first_outside = string.format("%d content-type=%s www-authenticate=%s body=%s", status,
        tostring(header(headers, "content-type")), tostring(www), string.sub(body, 1, 200))
    end
  end
  if ok_200 + missing_401 + invalid_401 + second_factor_403 + outside >= max_responses then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total = { ok_200 = 0, missing_401 = 0, invalid_401 = 0, second_factor_403 = 0, outside = 0 }
  local first = ""
  for _, thread in ipairs(threads) do
    for name, _ in pairs(total) do
      total[name] = total[name] + thread:get(name)
    end
    if first == "" then
      first = thread:get("first_outside")
    end
  end
  local errors = summary.errors
  print(string.format("SOAK requests %d", summary.requests))
  print(string.format("SOAK seconds %.1f", summary.duration / 1e6))
  print(string.format("SOAK outside %d", total.outside))
  print(string.format("SOAK counts 200=%d 401-missing=%d 401-invalid=%d 403-2fa=%d",
    total.ok_200, total.missing_401, total.invalid_401, total.second_factor_403))
  print(string.format("SOAK socket_errors connect=%d read=%d write=%d timeout=%d",
    errors.connect, errors.read, errors.write, errors.timeout))
  print(string.format("SOAK p50_ms %.3f", latency:percentile(50) / 1000))
  print(string.format("SOAK p99_ms %.3f", latency:percentile(99) / 1000))
  if first ~= "" then
    print("SOAK first_outside " .. first)
  end
end
LUA

# soak NAME: one example, start to stop. Returns 1 when a goal was missed.
soak() {
  local name=$1 bin="$target_dir/release/examples/$1"
  local port out="$work/$name.out" log="$work/$name.log"
  port=$(free_port) || fail "no free loopback port"
  BIND_ADDR="127.0.0.1:$port" DEMO_PENDING_KEY=1 RUST_LOG=warn "$bin" >"$out" 2>"$log" &
  server_pid=$!

  # Ready: both keys printed and /health answering, within 30 s.
  local deadline=$(( SECONDS + 30 ))
  until [[ $(grep -c '^\(API key\|Pending 2FA key\): ' "$out" || true) -ge 2 ]] \
    && curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/health"; do
    kill -0 "$server_pid" 2>/dev/null || fail "$name exited: $(cat "$log")"
    (( SECONDS < deadline )) || fail "$name not ready in 30 s"
    sleep 0.2
  done
  local key pending user_body
  key=$(sed -n 's/^API key: //p' "$out")
  pending=$(sed -n 's/^Pending 2FA key: //p' "$out")
  user_body=$(curl -fsS --max-time 5 -H "Authorization: Bearer $key" \
    "http://127.0.0.1:$port/v1/auth/user") || fail "$name refused its own key"

  local url="http://127.0.0.1:$port/v1/auth/user"
  local per_thread=$(( (SOAK_MAX_REQUESTS + SOAK_THREADS - 1) / SOAK_THREADS ))
  local rss_start
  rss_start=$(rss_kib "$server_pid")
  echo "soak: $name on 127.0.0.1:$port, $SOAK_SECONDS s, $SOAK_THREADS threads," \
    "$SOAK_CONNECTIONS connections"
  timeout --kill-after=5 $(( SOAK_SECONDS + 60 )) \
    wrk -t"$SOAK_THREADS" -c"$SOAK_CONNECTIONS" -d"${SOAK_SECONDS}s" --timeout 5s --latency \
    -s "$work/soak.lua" "$url" -- "$key" "$pending" "$user_body" "$per_thread" \
    >"$work/$name.wrk" 2>&1 &
  wrk_pid=$!
  sleep "$RSS_FIRST_SAMPLE"
  local rss_first rss_end
  rss_first=$(rss_kib "$server_pid")
  local wrk_status=0
  wait "$wrk_pid" || wrk_status=$?
  wrk_pid=""
  kill -0 "$server_pid" 2>/dev/null || fail "$name died during the soak: $(tail -5 "$log")"
  rss_end=$(rss_kib "$server_pid")
  stop_pid "$server_pid"
  server_pid=""
  (( wrk_status == 0 )) || fail "wrk failed ($wrk_status): $(cat "$work/$name.wrk")"

  value() { sed -n "s/^SOAK $1 //p" "$work/$name.wrk"; }
  local requests outside growth
  requests=$(value requests)
  outside=$(value outside)
  [[ -n "$requests" && -n "$outside" ]] || fail "no wrk summary: $(cat "$work/$name.wrk")"
  growth=$(awk -v a="$rss_first" -v b="$rss_end" 'BEGIN { printf "%.2f", (b - a) * 100 / a }')

  echo "== $name =="
  printf '  %-26s %s\n' \
    "requests" "$requests in $(value seconds) s" \
    "responses by kind" "$(value counts)" \
    "outside documented set" "$outside (goal 0)" \
    "socket errors" "$(value socket_errors)" \
    "latency p50 / p99" "$(value p50_ms) ms / $(value p99_ms) ms" \
    "RSS before load" "$rss_start KiB" \
    "RSS at ${RSS_FIRST_SAMPLE} s" "$rss_first KiB" \
    "RSS at end" "$rss_end KiB" \
    "RSS growth" "$growth % (goal < $RSS_GROWTH_GOAL_PERCENT %)"
  local first
  first=$(value first_outside)
  [[ -z "$first" ]] || printf '  %-26s %s\n' "first outside" "$first"

  local met=0
  (( outside == 0 )) || met=1
  awk -v g="$growth" -v goal="$RSS_GROWTH_GOAL_PERCENT" 'BEGIN { exit !(g < goal) }' || met=1
  return "$met"
}

status=0
for name in $SOAK_EXAMPLES; do
  case "$name" in
    axum | actix) soak "$name" || status=1 ;;
    *) fail "unknown example $name (axum or actix)" ;;
  esac
done
exit "$status"
