#!/usr/bin/env bash
# Makes PostgreSQL (127.0.0.1:5432, trust, database `test`) and MariaDB (127.0.0.1:3306,
# root with an empty password, database `test`) answer, and exports the URLs the SQL
# store's tests read. Uses the servers that already answer; otherwise installs Debian's
# packages and starts them. Sourced by .ci/run; also usable by hand:
#
#   source .ci/services.sh
set -euo pipefail

export BEARER_AUTH_POSTGRES_URL=${BEARER_AUTH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
export BEARER_AUTH_MYSQL_URL=${BEARER_AUTH_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # description command...
  local what=$1; shift
  for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "$what did not come up within 30 s" >&2
  return 1
}

postgres_answers() { psql -h 127.0.0.1 -p 5432 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; }

if ! command -v psql >/dev/null 2>&1 || ! postgres_answers; then
  echo "PostgreSQL does not answer on 127.0.0.1:5432: installing and starting Debian's"
  command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql postgresql-client
  version=$(ls /etc/postgresql | sort -V | tail -1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null ||
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  wait_for PostgreSQL psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1'
  psql -h 127.0.0.1 -U postgres -d postgres -Atc "select 1 from pg_database where datname = 'test'" | grep -q 1 ||
    psql -h 127.0.0.1 -U postgres -d postgres -c 'create database test' >/dev/null
fi
postgres_answers
echo "PostgreSQL: $(psql -h 127.0.0.1 -U postgres -d test -Atc 'show server_version')"

mariadb_answers() { mariadb -h 127.0.0.1 -P 3306 -u root test -e 'select 1' >/dev/null 2>&1; }

if ! command -v mariadb >/dev/null 2>&1 || ! mariadb_answers; then
  echo "MariaDB does not answer on 127.0.0.1:3306: installing and starting Debian's"
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server mariadb-client
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  wait_for MariaDB mariadb -u root -e 'select 1'
  # Debian's root logs in through the Unix socket only; the tests connect over TCP.
  mariadb -u root -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); CREATE DATABASE IF NOT EXISTS test; FLUSH PRIVILEGES;"
fi
mariadb_answers
echo "MariaDB: $(mariadb -h 127.0.0.1 -u root -N test -e 'select version()')"
