# A private PostgreSQL (Debian's postgresql-15) for a test run or a dev cluster
# (nubo-devcluster up --ha): initdb into its own directory, its own port and socket directory,
# run as the postgres user when we are root (initdb refuses root), stopped by PID. Source it;
# bash only. Not for production: see deploy/OPERATIONS.md.
#   pg_available            true when the server binaries are installed
#   pg_start                sets PG_DIR, PG_PORT, PG_HOST, PG_PID, PG_URL (database "postgres").
#                           Given PG_DIR: that directory (its data kept across starts), else a
#                           temporary one. Given PG_PORT: that port, else a free one.
#                           PG_LISTEN: the TCP address (default 127.0.0.1); empty = the unix
#                           socket in PG_DIR only (0700, postgres' own: root and postgres
#                           connect, other local users cannot). PG_FSYNC=off (tests: they kill
#                           the controller, never the server's machine) spares the disk; the
#                           default keeps fsync on
#   pg_url DB               the URL of database DB on that server, created if missing
#   pg_stop                 fast shutdown by PID (PG_PID), then removes PG_DIR

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}

pg_available() { [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/postgres" ]; }

_pg_as() {
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
    else
        "$@"
    fi
}

_pg_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pg_start() {
    if [ -n "${PG_DIR:-}" ]; then
        mkdir -p "$PG_DIR"
        chmod 700 "$PG_DIR"
    else
        PG_DIR=$(mktemp -d /tmp/nubo-pg.XXXXXX)
    fi
    [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
    # --no-sync: only initdb's own files
    [ -s "$PG_DIR/data/PG_VERSION" ] ||
        _pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U nubo -E UTF8 --locale=C --no-sync \
            > "$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; return 1; }
    PG_PORT=${PG_PORT:-$(_pg_free_port)}
    local listen=${PG_LISTEN-127.0.0.1}
    PG_HOST=${listen:-$PG_DIR}
    local args=(-D "$PG_DIR/data" -p "$PG_PORT" -k "$PG_DIR" -c listen_addresses="$listen"
                -c unix_socket_permissions=0700
                -c max_connections=40 -c shared_buffers=32MB -c fsync="${PG_FSYNC:-on}")
    # no function around the server: $! must be the postgres process itself (setpriv execs)
    if [ "$(id -u)" = 0 ]; then
        setpriv --reuid=postgres --regid=postgres --init-groups -- \
            "$PG_BIN/postgres" "${args[@]}" > "$PG_DIR/postgres.log" 2>&1 &
    else
        "$PG_BIN/postgres" "${args[@]}" > "$PG_DIR/postgres.log" 2>&1 &
    fi
    PG_PID=$!
    local i
    for i in $(seq 100); do
        "$PG_BIN/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT" && break
        kill -0 "$PG_PID" 2>/dev/null || break
        sleep 0.1
    done
    "$PG_BIN/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT" \
        || { tail -20 "$PG_DIR/postgres.log" >&2; return 1; }
    PG_URL=$(_pg_db_url postgres)
}

_pg_db_url() {
    if [ "$PG_HOST" = "$PG_DIR" ]; then
        echo "postgresql://nubo@/$1?host=$PG_DIR&port=$PG_PORT"
    else
        echo "postgresql://nubo@$PG_HOST:$PG_PORT/$1"
    fi
}

pg_url() {
    "$PG_BIN/psql" -qAt -h "$PG_HOST" -p "$PG_PORT" -U nubo -d postgres \
        -c "SELECT 1 FROM pg_database WHERE datname='$1'" | grep -q 1 \
        || "$PG_BIN/createdb" -h "$PG_HOST" -p "$PG_PORT" -U nubo "$1" >&2
    _pg_db_url "$1"
}

pg_stop() {
    [ -n "${PG_PID:-}" ] || return 0
    # (each may fail because the server is already gone; under set -e in an EXIT trap that
    # failure became the caller's exit status: bench/scale.sh answered 1 after a good run)
    kill -INT "$PG_PID" 2>/dev/null || true
    local i
    for i in $(seq 100); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PG_PID" 2>/dev/null || true
    wait "$PG_PID" 2>/dev/null || true
    PG_PID=
    [ -n "${PG_DIR:-}" ] && rm -rf "$PG_DIR"
    return 0
}
