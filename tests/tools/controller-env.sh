# Helpers for tests/integration/controller_*.sh: start the real nubo-controller and the fake
# agent, call the API with curl, read JSON with tests/lib.sh's jget. Source after tests/lib.sh.

CTL_BIN=$NUBO_BUILD/controller/nubo-controller
FAKE_BIN=$NUBO_BUILD/tests/nubo-fake-agent
[ -x "$CTL_BIN" ] || t_fail "nubo-controller not built ($CTL_BIN)"
[ -x "$FAKE_BIN" ] || t_fail "nubo-fake-agent not built ($FAKE_BIN)"
command -v curl >/dev/null || t_skip "curl missing"
command -v python3 >/dev/null || t_skip "python3 missing"

# ctl_start [INI-LINES]: a controller with a fresh db unless CTL_DB is set; sets CTL_URL,
# CTL_PID, ADMIN (token), CTL_JOIN (join token file), CTL_SECRET. With
# NUBO_TEST_STORE=postgresql the store is a PostgreSQL database named after CTL_DB (the sqlite
# path then only names the token files beside it). CTL_NAME=x: a second controller beside the
# first (its own ini, socket and controller-x.log; on PostgreSQL the same database, its
# sessions named ctl-x).
ctl_start() {
    CTL_PORT=${CTL_PORT:-$(t_free_port)}
    CTL_URL=${CTL_SCHEME:-http}://127.0.0.1:$CTL_PORT # https: a tls_cert_file in INI-LINES
    CTL_DB=${CTL_DB:-$T_TMP/ctl.db}
    CTL_SECRET=${CTL_SECRET:-evt-$RANDOM$RANDOM}
    local store="" tag=${CTL_NAME:+-$CTL_NAME}
    if [ "${NUBO_TEST_STORE:-sqlite}" = postgresql ]; then
        t_store_pg "nubo_$(printf '%s' "$CTL_DB" | cksum | cut -d' ' -f1)"
        store="[store]
url = $T_STORE_URL${CTL_NAME:+?application_name=ctl-$CTL_NAME}"
    fi
    cat > "$T_TMP/ctl$tag.ini" <<INI
[controller]
log_level = info
plain_http = loopback
[agent]
heartbeat_interval_ms = ${CTL_HB_MS:-200}
grace_ms = ${CTL_GRACE_MS:-3000}
[registry]
url = ${CTL_REGISTRY_URL:-http://127.0.0.1:1}
notification_secret = $CTL_SECRET
${1:-}
$store
INI
    "$CTL_BIN" --listen "127.0.0.1:$CTL_PORT" --db "$CTL_DB" --unix "$T_TMP/ctl$tag.sock" \
        --config "$T_TMP/ctl$tag.ini" >> "$T_TMP/controller$tag.log" 2>&1 &
    CTL_PID=$!
    t_track_pid "$CTL_PID"
    t_wait_for 20 curl -fsS "$CTL_URL/v1/healthz" || t_fail "controller did not start"
    ADMIN=$(cat "$CTL_DB.admin-token")
    CTL_JOIN=$CTL_DB.join-token
}

# fake_start NODES [ARGS...]: NODES fake nodes; waits until the controller lists them ready.
fake_start() {
    local n=$1; shift
    "$FAKE_BIN" --controller "$CTL_URL" --join-token-file "$CTL_JOIN" --nodes "$n" \
        --state-dir "$T_TMP/fake-state" "$@" \
        >> "$T_TMP/fake-agent.log" 2>&1 &
    FAKE_PID=$!
    t_track_pid "$FAKE_PID"
    t_wait_for 20 nodes_ready_at_least "$n" || t_fail "fake nodes did not register"
}

nodes_ready_at_least() {
    local BODY c
    BODY=$(curl -fsS -H "Authorization: Bearer $ADMIN" "$CTL_URL/v1/nodes") || return 1
    c=$(jget 'sum(1 for n in d["data"]["nodes"] if n["state"] == "ready")') && [ "$c" -ge "$1" ]
}

# api METHOD PATH [BODY] [TOKEN]: sets CODE and BODY; never fails by itself.
api() {
    local m=$1 p=$2 b=${3:-} tok=${4:-$ADMIN}
    local args=(-sS -o "$T_TMP/reply" -w '%{http_code}' -X "$m" -H "Authorization: Bearer $tok")
    [ -n "$b" ] && args+=(-H 'Content-Type: application/json' --data-binary "$b")
    CODE=$(curl "${args[@]}" "$CTL_URL$p") || CODE=000
    BODY=$(cat "$T_TMP/reply")
}

# failed_like CODE: the last api call failed as CODE says. A request-level error answers that
# HTTP status; item failures answer inside a 200 (as the platform does) with status "error"
# and each item's platform error code (the SDKs' APIHTTPError enum), which must be one that
# means CODE: 8 not found, 12 timed out, 11/15/21/23 conflicts, 7 invalid, 9 no room, and
# autoscale's 25..29 (instance, configured, not configured, disabled, size out of range).
t_jdef '
def failed_like(d, code):
    want = {400: {7, 13, 16, 17, 20, 24, 29}, 403: {14}, 404: {3, 8, 27}, 408: {12},
            409: {11, 15, 21, 23, 25, 26, 28},
            500: {10}, 502: {10}, 503: {9}}.get(code, set())
    items = [i for v in (d.get("data") or {}).values() if isinstance(v, list) for i in v]
    return bool(d.get("status") == "error" and items and "errors" in d and all(
        i.get("status") == "error" and i.get("error") in want for i in items))'
failed_like() {
    [ "$CODE" = "$1" ] && return 0
    [ "$CODE" = 200 ] || return 1
    [ "$(jget "failed_like(d, $1)" 2>/dev/null)" = True ]
}

# expect CODE [DESCRIPTION]: the last api call answered CODE (or failed like it, per item).
expect() {
    if [ "$1" -ge 400 ] 2>/dev/null; then
        failed_like "$1" || t_fail "${2:-request}: expected a failure like HTTP $1, got $CODE: $BODY"
        return 0
    fi
    [ "$CODE" = "$1" ] || t_fail "${2:-request}: expected HTTP $1, got $CODE: $BODY"
}

# An error reply must be the envelope with a one-line message.
expect_envelope_error() {
    local st msg
    st=$(jget 'd["status"]') || t_fail "not JSON: $BODY"
    [ "$st" = error ] || [ "$st" = partial_success ] || t_fail "status is $st: $BODY"
    msg=$(jget 'd["message"]')
    [ -n "$msg" ] || t_fail "no message: $BODY"
    [ "$(printf '%s' "$msg" | wc -l)" -eq 0 ] || t_fail "message spans lines: $msg"
}

# certbody NAME CN CHAINFILE KEYFILE: the body of POST /v1/certificates (PEM needs only its
# line ends escaped to be a JSON string).
certbody() {
    local chain key
    chain=$(<"$3") key=$(<"$4")
    printf '{"name":"%s","cn":"%s","chain":"%s\\n","pkey":"%s\\n"}' "$1" "$2" "${chain//$'\n'/\\n}" "${key//$'\n'/\\n}"
}

# index_image REPO TAG: announce a pushed image through the registry webhook; sets DIGEST.
index_image() {
    DIGEST=sha256:$(printf '%s:%s' "$1" "$2" | sha256sum | cut -c1-64)
    curl -fsS -X POST -H "Authorization: Bearer $CTL_SECRET" \
        -H 'Content-Type: application/vnd.docker.distribution.events.v1+json' \
        "$CTL_URL/registry/events" --data-binary @- >/dev/null <<JSON || t_fail "webhook refused"
{"events":[{"id":"e-$RANDOM","timestamp":"2026-11-27T02:00:00Z","action":"push",
 "target":{"mediaType":"application/vnd.oci.image.index.v1+json","size":512,
 "digest":"$DIGEST","length":512,"repository":"$1",
 "url":"http://127.0.0.1:5000/v2/$1/manifests/$DIGEST","tag":"$2"},
 "request":{"id":"r1","addr":"127.0.0.1:1","host":"127.0.0.1:5000","method":"PUT","useragent":"t"},
 "actor":{},"source":{"addr":"x:5000","instanceID":"i"}}]}
JSON
}

# instance_state UUID [TOKEN]
instance_state() {
    api GET "/v1/instances/$1" "" "${2:-$ADMIN}"
    jget 'd["data"]["instances"][0].get("state","?")'
}

state_is() { [ "$(instance_state "$1")" = "$2" ]; }
