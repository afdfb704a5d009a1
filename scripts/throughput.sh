#!/usr/bin/env bash
# Loopback throughput of the axum and actix-web examples, bare and protected.
#
#   bash scripts/throughput.sh
#
# Builds `cargo run --example axum` and `--example actix` in release, then for each one
# runs ROUNDS rounds, each a bare run (`--bare`: the same routes and bodies, no
# authentication) and a protected run (the same binary without the flag), alternating.
# Each run starts the server on its own loopback port (BIND_ADDR), reads the key it
# prints, and loads `GET /v1/auth/user` with `Authorization: Bearer <key>` through wrk
# (installed with apt-get when missing) for DURATION. It prints the median requests per
# second of each mode, and the median over the rounds of protected/bare within a round:
# the machine's speed drifts from one run to the next (by as much as twice over a few
# minutes here), and a round's two runs, back to back, drift least.
#
# Client and server share the machine's cores. With PIN=1 (the default, on a machine
# with two cores or more) the server runs on CPU 0 and wrk on CPU 1 (taskset), so that
# they do not take turns on one core; the servers then start one worker each.
#
# Settings (environment): DURATION (10s), THREADS (1), CONNECTIONS (32), ROUNDS (5),
# PIN (1), AXUM_ADDR (127.0.0.1:38080), ACTIX_ADDR (127.0.0.1:38081). Loopback only;
# every run is bounded by DURATION and each server is stopped after its run.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
THREADS=${THREADS:-1}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-5}
PIN=${PIN:-1}
AXUM_ADDR=${AXUM_ADDR:-127.0.0.1:38080}
ACTIX_ADDR=${ACTIX_ADDR:-127.0.0.1:38081}

case "$AXUM_ADDR $ACTIX_ADDR" in
  127.*" "127.*) ;;
  *) echo "throughput.sh: loopback addresses only (127.0.0.0/8)" >&2; exit 2 ;;
esac

if ! command -v wrk >/dev/null 2>&1; then
  echo "==> installing wrk" >&2
  apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi

server_cpu=()
client_cpu=()
if [[ "$PIN" == 1 ]] && command -v taskset >/dev/null 2>&1 && (( $(nproc) >= 2 )); then
  server_cpu=(taskset -c 0)
  client_cpu=(taskset -c 1)
fi

echo "==> cargo build --release -p examples --example axum --example actix" >&2
cargo build --release --quiet -p examples --example axum --example actix
bin_dir=target/release/examples

work=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# run EXAMPLE ADDR MODE: one bounded wrk run; prints its requests per second.
run() {
  local example=$1 addr=$2 mode=$3 flags=()
  [[ "$mode" == bare ]] && flags=(--bare)
  : >"$work/out"
  BIND_ADDR=$addr RUST_LOG=warn "${server_cpu[@]}" "$bin_dir/$example" "${flags[@]}" \
    >"$work/out" 2>"$work/err" &
  server_pid=$!
  local key= tries=0
  until key=$(sed -n 's/^API key: //p' "$work/out") && [[ -n "$key" ]] \
    && (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; do
    tries=$((tries + 1))
    if (( tries > 300 )) || ! kill -0 "$server_pid" 2>/dev/null; then
      echo "throughput.sh: $example ($mode) did not start:" >&2
      cat "$work/err" >&2
      exit 1
    fi
    sleep 0.1
  done
  "${client_cpu[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" \
    -H "Authorization: Bearer $key" "http://$addr/v1/auth/user" >"$work/wrk"
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  if grep -q 'Non-2xx' "$work/wrk"; then
    echo "throughput.sh: $example ($mode) answered other than 200:" >&2
    cat "$work/wrk" >&2
    exit 1
  fi
  awk '/^Requests\/sec:/ { print $2 }' "$work/wrk"
}

median() {
  sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds (bare then protected in each; ratio: median of the rounds' ratios)," \
  "pinned: $([[ ${#server_cpu[@]} -gt 0 ]] && echo 'server CPU 0, wrk CPU 1' || echo no)"
printf '%-8s %14s %14s %16s   %s\n' example "bare rps" "protected rps" "protected/bare" "runs (bare | protected)"
for spec in "axum $AXUM_ADDR" "actix $ACTIX_ADDR"; do
  read -r example addr <<<"$spec"
  bare=()
  protected=()
  for ((round = 1; round <= ROUNDS; round++)); do
    bare+=("$(run "$example" "$addr" bare)")
    protected+=("$(run "$example" "$addr" protected)")
  done
  b=$(printf '%s\n' "${bare[@]}" | median)
  p=$(printf '%s\n' "${protected[@]}" | median)
  ratio=$(for ((i = 0; i < ROUNDS; i++)); do
    awk -v b="${bare[i]}" -v p="${protected[i]}" 'BEGIN { print 100 * p / b }'
  done | median)
  printf '%-8s %14.0f %14.0f %15.1f%%   %s | %s\n' "$example" "$b" "$p" "$ratio" \
    "${bare[*]}" "${protected[*]}"
done
