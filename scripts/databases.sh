#!/usr/bin/env bash
# Start the database servers the tests use, on loopback, each in its own data directory under
# $COFFER_TEST_DB_DIR (default /tmp/coffer-test-db): PostgreSQL on 127.0.0.1:54329 and MariaDB
# on 127.0.0.1:33069. A server that is missing is installed from Debian's packages (apt-get,
# as root or with sudo); one that is stopped is started; one already answering is left alone.
# PostgreSQL refuses to run as root: as root it runs as the `postgres` user (MariaDB as `mysql`).
#
# Sourced by scripts/test; it exports, for the tests:
#   COFFER_TEST_PG_PORT, COFFER_TEST_PG_USER, COFFER_TEST_PG_PASSWORD   (a superuser)
#   COFFER_TEST_MYSQL_PORT, COFFER_TEST_MYSQL_USER, COFFER_TEST_MYSQL_PASSWORD   (all privileges)
set -euo pipefail

DB_DIR=${COFFER_TEST_DB_DIR:-/tmp/coffer-test-db}
export COFFER_TEST_PG_PORT=${COFFER_TEST_PG_PORT:-54329}
export COFFER_TEST_PG_USER=postgres
export COFFER_TEST_PG_PASSWORD=coffer-test-pg-superuser
export COFFER_TEST_MYSQL_PORT=${COFFER_TEST_MYSQL_PORT:-33069}
export COFFER_TEST_MYSQL_USER=coffer_admin
export COFFER_TEST_MYSQL_PASSWORD=coffer-test-mysql-admin

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

apt_install() {
  echo "databases: installing $* from Debian's packages" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null ||
    { as_root apt-get update -q >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}

# run a command as the service user when we are root, else as ourselves
as_service() {
  local user=$1; shift
  if [ "$(id -u)" = 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}

wait_for() {  # wait_for WHAT COMMAND...
  local what=$1; shift
  for _ in $(seq 1 150); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "databases: $what did not start" >&2
  return 1
}

mkdir -p "$DB_DIR"
chmod 755 "$DB_DIR"

# --- PostgreSQL -------------------------------------------------------------------------------
pg_bin() {
  local b
  b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -n "$b" ] && [ -x "$b/pg_ctl" ] && echo "$b"
}
start_postgres() {
  local bin data="$DB_DIR/pg"
  bin=$(pg_bin) || true
  if [ -z "$bin" ]; then
    apt_install postgresql
    bin=$(pg_bin)
  fi
  if "$bin/pg_isready" -q -h 127.0.0.1 -p "$COFFER_TEST_PG_PORT"; then
    return 0
  fi
  local owner=postgres
  [ "$(id -u)" = 0 ] || owner=$(id -un)
  if [ ! -s "$data/PG_VERSION" ]; then
    rm -rf "$data"
    install -d -m 700 -o "$owner" "$data"
    local pw="$DB_DIR/pg.pw"
    printf '%s\n' "$COFFER_TEST_PG_PASSWORD" > "$pw"
    chmod 644 "$pw"
    as_service postgres "$bin/initdb" -D "$data" -U "$COFFER_TEST_PG_USER" --pwfile="$pw" \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 >/dev/null
    rm -f "$pw"
  fi
  as_service postgres "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -o \
    "-p $COFFER_TEST_PG_PORT -c listen_addresses=127.0.0.1 -k $data" start >/dev/null
  wait_for PostgreSQL "$bin/pg_isready" -q -h 127.0.0.1 -p "$COFFER_TEST_PG_PORT"
}

# --- MariaDB ----------------------------------------------------------------------------------
mariadbd_bin() { command -v mariadbd || ls /usr/sbin/mariadbd 2>/dev/null; }
mysql_ping() {
  mariadb-admin --protocol=tcp -h 127.0.0.1 -P "$COFFER_TEST_MYSQL_PORT" \
    -u "$COFFER_TEST_MYSQL_USER" -p"$COFFER_TEST_MYSQL_PASSWORD" ping
}
start_mariadb() {
  local bin data="$DB_DIR/mysql" sock="$DB_DIR/mysql/mysql.sock"
  bin=$(mariadbd_bin) || true
  if [ -z "$bin" ]; then
    apt_install mariadb-server mariadb-client
    bin=$(mariadbd_bin)
  fi
  if mysql_ping >/dev/null 2>&1; then
    return 0
  fi
  local owner=mysql fresh=0
  [ "$(id -u)" = 0 ] || owner=$(id -un)
  if [ ! -d "$data/mysql" ]; then
    rm -rf "$data"
    install -d -m 700 -o "$owner" "$data"
    as_service "$owner" mariadb-install-db --no-defaults --datadir="$data" \
      --auth-root-authentication-method=normal --skip-test-db >/dev/null
    fresh=1
  fi
  # the server detaches from this script: it outlives it, like PostgreSQL's
  setsid "$bin" --no-defaults --user="$owner" --datadir="$data" --port="$COFFER_TEST_MYSQL_PORT" \
    --bind-address=127.0.0.1 --socket="$sock" --pid-file="$data/mysql.pid" \
    --skip-log-bin --log-error="$data/server.log" </dev/null >/dev/null 2>&1 &
  wait_for MariaDB mariadb-admin --socket="$sock" -u root ping
  if [ "$fresh" = 1 ]; then
    mariadb --socket="$sock" -u root <<SQL
CREATE USER '$COFFER_TEST_MYSQL_USER'@'%' IDENTIFIED BY '$COFFER_TEST_MYSQL_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$COFFER_TEST_MYSQL_USER'@'%' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
  fi
  wait_for MariaDB mysql_ping
}

start_postgres
start_mariadb
echo "databases: PostgreSQL on 127.0.0.1:$COFFER_TEST_PG_PORT, MariaDB on 127.0.0.1:$COFFER_TEST_MYSQL_PORT" >&2
