#!/bin/bash
# A join-token register the controller committed but whose reply never reached the agent (the
# controller killed or failing over right after the commit, a connection reset): the agent has
# no node token and registers again with the join token. With the register key it made before
# its first try, that is its own retry and it comes back as the same node; an agent without a
# key (as before it existed) gets 409 forever, and so does anyone else's key (issue 11's
# takeover stays closed). The reply is really lost: tools/lose_reply_proxy.py lets the request
# reach the controller and drops its answer; the first time, the controller is then killed -9
# and restarted before the agent's retry reaches it (the restarted one knows the node only from
# its store).
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"

ctl_start
JOIN=$(cat "$CTL_JOIN")
PROXY_PORT=$(t_free_port)
python3 "$NUBO_SRC/tests/tools/lose_reply_proxy.py" "$PROXY_PORT" "$CTL_URL" "$T_TMP/go" \
    >> "$T_TMP/proxy.log" 2>&1 &
t_track_pid $!
t_wait_for 10 grep -q listening "$T_TMP/proxy.log" || t_fail "proxy did not start"

node_state() { # NAME -> ready|unavailable|... (empty: unknown)
    api GET /v1/nodes
    jget "([n['state'] for n in d['data']['nodes'] if n['name']=='$1'] or [''])[0]"
}
node_is() { [ "$(node_state "$1")" = "$2" ]; }
fake_via_proxy() { # PREFIX LOG [ARGS...]: one fake node through the proxy; sets FPID
    local prefix=$1 log=$2; shift 2
    "$FAKE_BIN" --controller "http://127.0.0.1:$PROXY_PORT" --join-token-file "$CTL_JOIN" \
        --nodes 1 --prefix "$prefix" --state-dir "$T_TMP/state-$prefix" "$@" >> "$log" 2>&1 &
    FPID=$!
    t_track_pid "$FPID"
}

# the agent with a register key: its first reply is lost and the controller killed -9 right
# after its commit; the agent's retry, held by the proxy meanwhile, reaches the restarted
# controller and makes it the same node
fake_via_proxy new "$T_TMP/fake-new.log"
t_wait_for 30 grep -q "lost new-0's register reply" "$T_TMP/proxy.log" ||
    t_fail "the proxy did not lose new-0's first reply: $(cat "$T_TMP/proxy.log")"
grep -q 'node new-0 registered' "$T_TMP/controller.log" || t_fail "new-0 was not committed"
kill -9 "$CTL_PID"; wait "$CTL_PID" 2>/dev/null || true
ctl_start
touch "$T_TMP/go"
t_wait_for 30 node_is new-0 ready || t_fail "new-0 not ready: $(cat "$T_TMP/fake-new.log")"
grep -q "lost new-0's register reply (HTTP 200)" "$T_TMP/proxy.log" ||
    t_fail "the proxy did not lose new-0's first reply: $(cat "$T_TMP/proxy.log")"
t_wait_for 10 test -s "$T_TMP/state-new/new-0.token" || t_fail "new-0 kept no node token"
! grep -q "register failed (409)" "$T_TMP/fake-new.log" || t_fail "new-0's retry was refused"
[ "$(grep -c 'node new-0 registered' "$T_TMP/controller.log")" = 1 ] ||
    t_fail "new-0 was not registered exactly once: $(grep new-0 "$T_TMP/controller.log")"
grep -q "node new-0: its agent registers again with the join token and its register key" \
    "$T_TMP/controller.log" || t_fail "the retry is not in the controller's log"
[ "$(stat -c %a "$T_TMP/state-new/new-0.register-key")" = 600 ] || t_fail "register key not 0600"
NODE_TOK=$(cat "$T_TMP/state-new/new-0.token")
UUID0=$(api GET /v1/nodes; jget "[n['uuid'] for n in d['data']['nodes'] if n['name']=='new-0'][0]")

# its desired set reaches it
index_image admin/hello latest
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","name":"kept"}'
expect 200 create
KEPT=$(jget 'd["data"]["instances"][0]["uuid"]')
t_wait_for 20 state_is "$KEPT" running || t_fail "kept did not run on new-0"

# anyone else with the join token: another key or none is still a takeover
register() { # KEY -> CODE, BODY (a join-token register of new-0)
    local key=${1:+,\"register_key\":\"$1\"}
    CODE=$(curl -sS -o "$T_TMP/reg" -w '%{http_code}' -H "Authorization: Bearer $JOIN" \
        -d "{\"name\":\"new-0\",\"metro\":\"fra0\",\"memory_mb\":1024,\"vcpus\":1,\"instances\":[]$key}" \
        "$CTL_URL/agent/v1/register") || CODE=000
    BODY=$(cat "$T_TMP/reg")
}
register "attackerattackerattackerattacker"
[ "$CODE" = 409 ] || t_fail "another key took over new-0: $CODE $BODY"
grep -q 'nubo nodes replace new-0' <<< "$BODY" || t_fail "the refusal does not say what to do: $BODY"
register ""
[ "$CODE" = 409 ] || t_fail "no key took over new-0: $CODE $BODY"
curl -fsS -H "Authorization: Bearer $NODE_TOK" "$CTL_URL/agent/v1/watch?version=0&timeout_ms=0" |
    grep -q "$KEPT" || t_fail "new-0 lost its token or its desired set to a refused register"

# the agent restarted with its key but without its node token file: the same node, no 409
kill -9 "$FPID"; wait "$FPID" 2>/dev/null || true
rm "$T_TMP/state-new/new-0.token"
fake_via_proxy new "$T_TMP/fake-new.log"
t_wait_for 20 test -s "$T_TMP/state-new/new-0.token" || t_fail "new-0 did not register again"
[ "$(cat "$T_TMP/state-new/new-0.token")" != "$NODE_TOK" ] || t_fail "the node token did not change"
t_wait_for 20 node_is new-0 ready || t_fail "new-0 not ready after its restart"
api GET /v1/nodes
[ "$(jget "[n['uuid'] for n in d['data']['nodes'] if n['name']=='new-0'][0]")" = "$UUID0" ] ||
    t_fail "new-0 came back as another node"
# (a fake agent keeps no instances across its restart: the controller has it start kept again)
t_wait_for 20 state_is "$KEPT" running || t_fail "kept is not running after new-0 came back"
! grep -q "register failed (409)" "$T_TMP/fake-new.log" || t_fail "the restarted agent was refused"
kill "$FPID"; wait "$FPID" 2>/dev/null || true

# the defect as it was: an agent without a register key loses its first reply and is refused
fake_via_proxy old "$T_TMP/fake-old.log" --no-register-key
t_wait_for 30 grep -q "old-0: register failed (409)" "$T_TMP/fake-old.log" ||
    t_fail "an agent without a key was not refused: $(cat "$T_TMP/fake-old.log")"
grep -q "lost old-0's register reply (HTTP 200)" "$T_TMP/proxy.log" || t_fail "old-0's reply was not lost"
[ ! -e "$T_TMP/state-old/old-0.token" ] || t_fail "old-0 has a token"
t_log "a lost register reply: retried with the register key (same node, new token); other keys 409"
