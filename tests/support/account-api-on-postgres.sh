# Sourced by the scripts that drive account_api on PostgreSQL through a Python helper
# (tests/outage.sh, tests/two-instances.sh), with `name` set to the script's name:
#
# - skips without $BEARER_AUTH_POSTGRES_URL (fails under CI=true);
# - installs python3 and psql where missing;
# - builds the example (ACCOUNT_API_PROFILE: release, the default, or debug, which CI
#   has already from the tests) and sets `bin` to it;
# - sets `work` (a temporary directory) and `py_pid` (the helper's pid, for the script
#   to set), and a trap that stops the helper and removes `work` however the script ends.

if [ -z "${BEARER_AUTH_POSTGRES_URL:-}" ]; then
  if [ "${CI:-}" = true ]; then
    echo "FAIL  $name: BEARER_AUTH_POSTGRES_URL is unset (CI must run it)"; exit 1
  fi
  echo "skip  $name: BEARER_AUTH_POSTGRES_URL is unset"; exit 0
fi
command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 >/dev/null; }
command -v psql >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-client >/dev/null; }

profile=${ACCOUNT_API_PROFILE:-release}
case $profile in
  release) build_flags=(--release) ;;
  debug) build_flags=() ;;
  *) echo "$name: ACCOUNT_API_PROFILE must be release or debug (it is $profile)"; exit 2 ;;
esac
echo "$name: building the example ($profile)"
timeout 3600 cargo build "${build_flags[@]}" --quiet -p examples --example account_api
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin=$target_dir/$profile/examples/account_api
[ -x "$bin" ] || { echo "$name: no $bin"; exit 2; }

work=$(mktemp -d)
py_pid=""
cleanup() {
  # The helper stops its servers (and proxy) itself; this is for an interrupted run.
  if [ -n "$py_pid" ] && kill -0 "$py_pid" 2>/dev/null; then
    kill -TERM "$py_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$py_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$py_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
