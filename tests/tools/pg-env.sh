# A private PostgreSQL for one test run (Debian's postgresql-15): initdb into a temporary
# directory, its own port on 127.0.0.1 and its own socket directory, run as the postgres user
# when we are root (initdb refuses root), stopped by PID. Source it; bash only.
#   pg_available            true when the server binaries are installed
#   pg_start                sets PG_DIR, PG_PORT, PG_PID, PG_URL (database "postgres");
#                           PG_FSYNC=off (tests: they kill the controller, never the server's
#                           machine) spares the disk; the default keeps fsync on
#   pg_url DB               the URL of database DB on that server, created if missing
#   pg_stop                 fast shutdown by PID, then removes PG_DIR

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
    PG_DIR=$(mktemp -d /tmp/nubo-pg.XXXXXX)
    [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
    # --no-sync: only initdb's own files
    _pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U nubo -E UTF8 --locale=C --no-sync \
        > "$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; return 1; }
    PG_PORT=$(_pg_free_port)
    local args=(-D "$PG_DIR/data" -p "$PG_PORT" -k "$PG_DIR" -c listen_addresses=127.0.0.1
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
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
        kill -0 "$PG_PID" 2>/dev/null || break
        sleep 0.1
    done
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" \
        || { tail -20 "$PG_DIR/postgres.log" >&2; return 1; }
    PG_URL=postgresql://nubo@127.0.0.1:$PG_PORT/postgres
}

pg_url() {
    "$PG_BIN/psql" -qAt -h 127.0.0.1 -p "$PG_PORT" -U nubo -d postgres \
        -c "SELECT 1 FROM pg_database WHERE datname='$1'" | grep -q 1 \
        || "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U nubo "$1" >&2
    echo "postgresql://nubo@127.0.0.1:$PG_PORT/$1"
}

pg_stop() {
    [ -n "${PG_PID:-}" ] || return 0
    kill -INT "$PG_PID" 2>/dev/null
    local i
    for i in $(seq 100); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PG_PID" 2>/dev/null
    wait "$PG_PID" 2>/dev/null
    PG_PID=
    [ -n "${PG_DIR:-}" ] && rm -rf "$PG_DIR"
    return 0
}
