# Shared shell helpers for tests/integration/*.sh. Source it; it sets a cleanup trap.
# Every process a test starts is recorded by PID and killed by PID; every namespace and
# domain it creates is recorded and removed. Nothing is ever killed by name.
set -euo pipefail

NUBO_SRC=${NUBO_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
NUBO_BUILD=${NUBO_BUILD:-$NUBO_SRC/build}
T_TMP=$(mktemp -d /tmp/nubo-test.XXXXXX)
T_PIDS=()
T_NETNS=()
T_DOMAINS=()
T_CLEANUPS=()

t_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
t_fail() { t_log "FAIL: $*"; exit 1; }
# Exit 77 = skipped (ctest SKIP_RETURN_CODE); always say why.
t_skip() { t_log "SKIP: $*"; exit 77; }

t_cleanup() {
    local rc=$?
    set +e
    local c
    for ((i=${#T_CLEANUPS[@]}-1; i>=0; i--)); do eval "${T_CLEANUPS[$i]}"; done
    for d in "${T_DOMAINS[@]:-}"; do
        [ -n "$d" ] && virsh -q -c "${NUBO_LIBVIRT_URI:-qemu:///system}" destroy "$d" >/dev/null 2>&1
    done
    for p in "${T_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
    for p in "${T_PIDS[@]:-}"; do
        [ -n "$p" ] || continue
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
    done
    for n in "${T_NETNS[@]:-}"; do [ -n "$n" ] && ip netns del "$n" 2>/dev/null; done
    if [ "$rc" != 0 ] && [ "$rc" != 77 ] && [ -d "$T_TMP" ]; then
        t_log "test failed (rc=$rc); logs:"
        for f in "$T_TMP"/*.log; do [ -f "$f" ] && { echo "--- $f (tail)"; tail -40 "$f"; } >&2; done
    fi
    [ -n "${T_KEEP:-}" ] || rm -rf "$T_TMP"
    return "$rc"
}
trap t_cleanup EXIT

t_on_exit() { T_CLEANUPS+=("$*"); }
t_track_pid() { T_PIDS+=("$1"); }
t_track_domain() { T_DOMAINS+=("$1"); }

# jget EXPR: print(EXPR) with d the JSON in $BODY, as `python3 -c` would print it; fails, with
# python's traceback on stderr, when BODY is not JSON or EXPR raises. One python per test
# (tests/tools/jeval.py, started here) answers every call: a python started per call took
# seconds each on a loaded machine. Call it from the test's shell and its $(...) subshells,
# never from two background jobs at once (they would share one pipe).
coproc T_JEVAL { exec python3 "$NUBO_SRC/tests/tools/jeval.py"; }
t_track_pid "$T_JEVAL_PID"
# the coprocess's own descriptors are closed in subshells; copies are not
exec {T_JEVAL_IN}>&"${T_JEVAL[1]}" {T_JEVAL_OUT}<&"${T_JEVAL[0]}"

t_jeval() { # OP CODE [JSON]: one request to the reader; prints its answer
    local id=$BASHPID.$RANDOM rid st text
    printf '%s\0%s\0%s\0%s\0' "$id" "$1" "$2" "${3:-}" >&"$T_JEVAL_IN" &&
        IFS= read -r -d '' -u "$T_JEVAL_OUT" rid &&
        IFS= read -r -d '' -u "$T_JEVAL_OUT" st &&
        IFS= read -r -d '' -u "$T_JEVAL_OUT" text || t_fail "the JSON reader (tests/tools/jeval.py) is gone"
    [ "$rid" = "$id" ] || t_fail "the JSON reader answered another request: jget used by two jobs at once"
    if [ "$st" = 0 ]; then printf '%s' "$text"; else printf '%s' "$text" >&2; return 1; fi
}
jget() { t_jeval print "$1" "${BODY:-}"; }
# t_jdef CODE: define a python helper (a def) that later jget expressions may call.
t_jdef() { t_jeval exec "$1"; }

# A free TCP port on 127.0.0.1 (found by the JSON reader: no python of its own).
t_jdef '
import socket
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]'
t_free_port() { t_jeval print 'free_port()' null; }

# t_wait_for TIMEOUT_S CMD...: retry CMD until it succeeds (used only by tests, never by daemons).
t_wait_for() {
    local limit=$1; shift
    local end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.1
    done
}

# The registry is up: it serves /v2/ (200), or asks for a token (401) when auth is configured.
t_registry_answers() {
    local c; c=$(curl -sS -o /dev/null -w '%{http_code}' "$1") || return 1
    [ "$c" = 200 ] || [ "$c" = 401 ]
}

# Start a throw-away distribution registry on a free loopback port.
# Sets T_REGISTRY_URL and T_REGISTRY_PID. Extra YAML (e.g. notifications) in $1.
t_start_registry() {
    command -v docker-registry >/dev/null || t_skip "docker-registry is not installed (deploy/install-deps installs it)"
    local port; port=$(t_free_port)
    mkdir -p "$T_TMP/registry"
    cat > "$T_TMP/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $T_TMP/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
${1:-}
YML
    docker-registry serve "$T_TMP/registry.yml" > "$T_TMP/registry.log" 2>&1 &
    T_REGISTRY_PID=$!
    t_track_pid "$T_REGISTRY_PID"
    T_REGISTRY_URL="http://127.0.0.1:$port"
    t_wait_for 20 t_registry_answers "$T_REGISTRY_URL/v2/" || t_fail "registry did not start"
}

# Network namespace owned by this test: t_netns NAME -> creates nubo-t-<pid>-NAME, sets T_NS.
t_netns() {
    T_NS="nt$$-$1"
    ip netns add "$T_NS" || t_fail "cannot create netns $T_NS"
    T_NETNS+=("$T_NS")
    ip -n "$T_NS" link set lo up
}

# Skip unless libvirtd answers on the system URI (deploy/services starts it).
t_need_libvirt() {
    command -v virsh >/dev/null || t_skip "virsh missing (libvirt-clients)"
    timeout 20 virsh -q -c qemu:///system version >/dev/null 2>&1 \
        || t_skip "libvirtd is not running (deploy/services start starts it)"
}

# The controller's store in tests: sqlite (default) or, with NUBO_TEST_STORE=postgresql, a
# private PostgreSQL this test starts on first use (deploy/pg-env.sh) and stops at exit.
# t_store_pg NAME: sets T_STORE_URL to the URL of database NAME on it (created if missing).
t_store_pg() {
    if [ -z "${PG_PID:-}" ]; then
        source "$NUBO_SRC/deploy/pg-env.sh"
        pg_available || t_skip "PostgreSQL server binaries missing (apt-get install postgresql-15)"
        PG_FSYNC=${PG_FSYNC:-off} pg_start > "$T_TMP/pg-start.log" 2>&1 || { cat "$T_TMP/pg-start.log" >&2; t_fail "cannot start PostgreSQL"; }
        t_on_exit "cp \"\$PG_DIR/postgres.log\" \"\$T_TMP/postgres.log\" 2>/dev/null; pg_stop"
        t_log "store: private PostgreSQL on 127.0.0.1:$PG_PORT (pid $PG_PID)"
    fi
    T_STORE_URL=$(pg_url "$1") || t_fail "cannot create database $1"
}

# t_signed_cert DIR NAME SAN...: DIR/NAME.pem and NAME.key for the subjectAltNames SAN
# (DNS:www.example.com ...; the first is its CN), signed by the test's CA DIR/ca.pem (ca.key),
# made on first use.
t_signed_cert() {
    local d=$1 name=$2 cn=${3#DNS:} san; shift 2
    san=$(IFS=,; echo "$*")
    mkdir -p "$d"
    [ -s "$d/ca.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=test-ca" \
        -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null || t_fail "cannot make a CA in $d"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null &&
        printf 'subjectAltName=%s\n' "$san" > "$d/$name.ext" &&
        openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
            -extfile "$d/$name.ext" -out "$d/$name.pem" 2>/dev/null || t_fail "cannot sign $name for $san"
}

t_need_root() { [ "$(id -u)" = 0 ] || t_skip "needs root (network namespaces, libvirt)"; }
