#!/usr/bin/env bash
# Start the database servers the tests use, on loopback, each in its own data directory under
# $COFFER_TEST_DB_DIR (default /tmp/coffer-test-db): PostgreSQL on 127.0.0.1:54329, MariaDB
# on 127.0.0.1:33069, and a three-member etcd cluster (coffer-etcd-1..3: clients on
# 127.0.0.1:23791..23793, peers on 127.0.0.1:23801..23803; data in etcd/<name>, logs in
# etcd/<name>.log). A server that is missing is installed from Debian's packages (apt-get,
# as root or with sudo); one that is stopped is started; one already answering is left alone.
# A stopped etcd member restarts with its data; an etcd cluster that does not become healthy
# within 30 s (or whose members' data is partly missing) is wiped and started afresh, once.
# PostgreSQL refuses to run as root: as root it runs as the `postgres` user (MariaDB as `mysql`;
# etcd runs as whoever runs this script).
#
# Sourced by scripts/test; it exports, for the tests:
#   COFFER_TEST_PG_PORT, COFFER_TEST_PG_USER, COFFER_TEST_PG_PASSWORD   (a superuser)
#   COFFER_TEST_PG_CA   (the CA of the server's TLS certificate: PostgreSQL runs with ssl = on)
#   COFFER_TEST_MYSQL_PORT, COFFER_TEST_MYSQL_USER, COFFER_TEST_MYSQL_PASSWORD   (all privileges)
#   COFFER_TEST_ETCD_ENDPOINTS   (the three client URLs, comma-separated; no auth, no TLS)
set -euo pipefail

DB_DIR=${COFFER_TEST_DB_DIR:-/tmp/coffer-test-db}
export COFFER_TEST_PG_PORT=${COFFER_TEST_PG_PORT:-54329}
export COFFER_TEST_PG_USER=postgres
export COFFER_TEST_PG_PASSWORD=coffer-test-pg-superuser
export COFFER_TEST_PG_CA="$DB_DIR/pg-tls/ca.pem"
export COFFER_TEST_MYSQL_PORT=${COFFER_TEST_MYSQL_PORT:-33069}
export COFFER_TEST_MYSQL_USER=coffer_admin
export COFFER_TEST_MYSQL_PASSWORD=coffer-test-mysql-admin
export COFFER_TEST_ETCD_ENDPOINTS=http://127.0.0.1:23791,http://127.0.0.1:23792,http://127.0.0.1:23793

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
# A CA and a server certificate (127.0.0.1, localhost) for PostgreSQL's TLS, made once.
pg_tls_files() {
  local dir="$DB_DIR/pg-tls" owner=$1
  if [ ! -s "$dir/server.key" ] || [ ! -s "$dir/ca.pem" ]; then
    command -v openssl >/dev/null || apt_install openssl
    rm -rf "$dir"
    install -d -m 755 "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/CN=coffer test CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
      -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$dir/san.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
      -CAcreateserial -days 3650 -extfile "$dir/san.ext" -out "$dir/server.pem" 2>/dev/null
    chown "$owner" "$dir/server.key" "$dir/server.pem"
    chmod 600 "$dir/server.key" "$dir/ca.key"
  fi
}
pg_options() {
  echo "-p $COFFER_TEST_PG_PORT -c listen_addresses=127.0.0.1 -k $DB_DIR/pg -c ssl=on -c ssl_cert_file=$DB_DIR/pg-tls/server.pem -c ssl_key_file=$DB_DIR/pg-tls/server.key"
}
start_postgres() {
  local bin data="$DB_DIR/pg"
  bin=$(pg_bin) || true
  if [ -z "$bin" ]; then
    apt_install postgresql
    bin=$(pg_bin)
  fi
  local owner=postgres
  [ "$(id -u)" = 0 ] || owner=$(id -un)
  pg_tls_files "$owner"
  if "$bin/pg_isready" -q -h 127.0.0.1 -p "$COFFER_TEST_PG_PORT"; then
    # a server started before TLS was part of this script: restart it with TLS on
    if [ "$(PGPASSWORD="$COFFER_TEST_PG_PASSWORD" psql -h 127.0.0.1 -p "$COFFER_TEST_PG_PORT" \
          -U "$COFFER_TEST_PG_USER" -d postgres -Atc 'show ssl' 2>/dev/null)" != on ]; then
      as_service postgres "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -o "$(pg_options)" \
        restart >/dev/null
      wait_for PostgreSQL "$bin/pg_isready" -q -h 127.0.0.1 -p "$COFFER_TEST_PG_PORT"
    fi
    return 0
  fi
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
  as_service postgres "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -o "$(pg_options)" \
    start >/dev/null
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

# --- etcd (a three-member cluster) ------------------------------------------------------------
ETCD_DIR="$DB_DIR/etcd"
ETCD_CLUSTER=coffer-etcd-1=http://127.0.0.1:23801,coffer-etcd-2=http://127.0.0.1:23802,coffer-etcd-3=http://127.0.0.1:23803
etcdctl3() {
  ETCDCTL_API=3 etcdctl --dial-timeout=1s --command-timeout=2s "$@"
}
# every member answers a linearizable read (so a leader is elected and every member follows it)
etcd_healthy() { etcdctl3 --endpoints="$COFFER_TEST_ETCD_ENDPOINTS" endpoint health; }
etcd_wait_healthy() {  # etcd_wait_healthy SECONDS
  local deadline=$((SECONDS + $1))
  until etcd_healthy >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}
# member N is running when its peer port is taken (a member without quorum does not answer clients)
etcd_running() { (exec 3<>"/dev/tcp/127.0.0.1/2380$1") 2>/dev/null; }
# etcd 3.4 refuses to run on architectures other than amd64 and ppc64le unless told their Go name
etcd_env() {
  case $(uname -m) in
    x86_64 | ppc64le) ;;
    aarch64) echo ETCD_UNSUPPORTED_ARCH=arm64 ;;
    armv*) echo ETCD_UNSUPPORTED_ARCH=arm ;;
    i?86) echo ETCD_UNSUPPORTED_ARCH=386 ;;
    *) echo "ETCD_UNSUPPORTED_ARCH=$(uname -m)" ;;
  esac
}
start_etcd_member() {  # start_etcd_member N
  local name="coffer-etcd-$1" client="http://127.0.0.1:2379$1" peer="http://127.0.0.1:2380$1"
  local data="$ETCD_DIR/coffer-etcd-$1" env
  env=$(etcd_env)
  [ -d "$data" ] || install -d -m 700 "$data"
  # the member detaches from this script: it outlives it, like MariaDB. The initial-cluster flags
  # bootstrap a fresh data dir; etcd ignores them when the member dir exists (a restart).
  # shellcheck disable=SC2016 # $0 and $@ are the inner shell's: it records its pid, then is etcd
  setsid sh -c 'echo $$ >"$0"; exec "$@"' "$data.pid" env ${env:+"$env"} etcd \
    --name="$name" --data-dir="$data" \
    --listen-client-urls="$client" --advertise-client-urls="$client" \
    --listen-peer-urls="$peer" --initial-advertise-peer-urls="$peer" \
    --initial-cluster="$ETCD_CLUSTER" --initial-cluster-token=coffer-test-etcd \
    --initial-cluster-state=new --heartbeat-interval=100 --election-timeout=1000 \
    --logger=zap --log-outputs=stderr </dev/null >>"$data.log" 2>&1 &
}
etcd_member_pid() {  # etcd_member_pid N: the pid of member N, which this script started, if it runs
  local data="$ETCD_DIR/coffer-etcd-$1" pid
  pid=$(cat "$data.pid" 2>/dev/null) || return 1
  tr '\0' '\n' 2>/dev/null <"/proc/$pid/cmdline" | grep -qxF -- "--data-dir=$data" && echo "$pid"
}
stop_etcd_member() {  # stop_etcd_member N
  local pid sig
  if pid=$(etcd_member_pid "$1"); then
    for sig in TERM KILL; do
      kill -s "$sig" "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do etcd_member_pid "$1" >/dev/null || break; sleep 0.2; done
    done
  fi
  rm -f "$ETCD_DIR/coffer-etcd-$1.pid"
}
start_etcd() {
  if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
    apt_install etcd-server etcd-client
  fi
  if etcd_healthy >/dev/null 2>&1; then
    return 0
  fi
  mkdir -p "$ETCD_DIR"
  local n with_data=0
  for n in 1 2 3; do
    [ ! -d "$ETCD_DIR/coffer-etcd-$n/member" ] || with_data=$((with_data + 1))
  done
  if [ "$with_data" = 3 ]; then
    for n in 1 2 3; do etcd_running "$n" || start_etcd_member "$n"; done
    if etcd_wait_healthy 30; then
      return 0
    fi
    echo "databases: the etcd cluster did not become healthy; wiping it and starting afresh" >&2
  elif [ "$with_data" != 0 ]; then
    echo "databases: etcd data is missing for $((3 - with_data)) of 3 members; wiping it and starting afresh" >&2
  fi
  for n in 1 2 3; do stop_etcd_member "$n"; rm -rf "$ETCD_DIR/coffer-etcd-$n"; done
  for n in 1 2 3; do start_etcd_member "$n"; done
  etcd_wait_healthy 30 || {
    echo "databases: etcd did not start (see $ETCD_DIR/coffer-etcd-*.log)" >&2
    return 1
  }
}

start_postgres
start_mariadb
start_etcd
echo "databases: PostgreSQL on 127.0.0.1:$COFFER_TEST_PG_PORT, MariaDB on 127.0.0.1:$COFFER_TEST_MYSQL_PORT," \
  "etcd on $COFFER_TEST_ETCD_ENDPOINTS" >&2
