#!/bin/bash
# Issue 11, observation 7: whoever holds the join token registers an existing node's name again.
# Now refused (409, one line), also with a register key other than the node's, with nothing
# changed: the real node keeps its token, its metro and its desired set, and the attacker gets
# neither a token nor anyone's env. A node token cannot register another name; the real agent
# restarting comes back with its stored token; an admin's replace hands the name to another
# machine and cuts the old one off.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"

ctl_start
fake_start 1
JOIN=$(cat "$CTL_JOIN")
NODE_TOK=$(cat "$T_TMP/fake-state/fake-0.token")
index_image admin/hello latest
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","name":"victim","env":{"A_SECRET":"s3cret"}}'
expect 200 create
t_wait_for 20 state_is victim running || t_fail "victim did not run"

register() { # TOKEN NAME METRO [REGISTER_KEY] -> CODE, BODY
    local key=${4:+,\"register_key\":\"$4\"}
    CODE=$(curl -sS -o "$T_TMP/reg" -w '%{http_code}' -H "Authorization: Bearer $1" \
        -d "{\"name\":\"$2\",\"metro\":\"$3\",\"memory_mb\":1024,\"vcpus\":1,\"instances\":[]$key}" \
        "$CTL_URL/agent/v1/register") || CODE=000
    BODY=$(cat "$T_TMP/reg")
}
node_field() { api GET /v1/nodes; jget "[n['$1'] for n in d['data']['nodes'] if n['name']=='fake-0'][0]"; }
METRO0=$(node_field metro)
REG0=$(node_field registered_at)

# the takeover: the join token and the node's name, another metro
register "$JOIN" fake-0 evil
[ "$CODE" = 409 ] || t_fail "join token re-registered fake-0: $CODE $BODY"
expect_envelope_error
grep -q 'nubo nodes replace fake-0' <<< "$BODY" || t_fail "the refusal does not say what to do: $BODY"
! grep -q 's3cret\|"token"' <<< "$BODY" || t_fail "the refusal leaks: $BODY"
[ "$(node_field metro)" = "$METRO0" ] || t_fail "metro overwritten"
[ "$(node_field registered_at)" = "$REG0" ] || t_fail "the node was re-registered"
# with a register key of its own (the same agent's retry after a lost reply is let in only with
# the key the node first came with, which lives in that agent's state dir)
register "$JOIN" fake-0 "$METRO0" "guessedguessedguessedguessedguessed"
[ "$CODE" = 409 ] || t_fail "join token and a guessed register key re-registered fake-0: $CODE $BODY"
[ "$(node_field registered_at)" = "$REG0" ] || t_fail "the node was re-registered"
# the real node's token still works, and still sees its set
curl -fsS -H "Authorization: Bearer $NODE_TOK" "$CTL_URL/agent/v1/watch?version=0&timeout_ms=0" |
    grep -q victim || t_fail "the real node lost its token or its desired set"
# a node token registers its own name only; a node keeps its metro
register "$NODE_TOK" other-node fra0
[ "$CODE" = 403 ] || t_fail "a node token registered another name: $CODE $BODY"
register "$NODE_TOK" fake-0 evil
[ "$CODE" = 409 ] || t_fail "a register moved the node to another metro: $CODE $BODY"
[ "$(node_field metro)" = "$METRO0" ] || t_fail "metro overwritten by its own token"
register "$JOIN" new-node fra0
[ "$CODE" = 200 ] || t_fail "a new name with the join token: $CODE $BODY"

# the real agent killed and restarted comes back with its stored token: same node, same token
kill -9 "$FAKE_PID"; wait "$FAKE_PID" 2>/dev/null || true
fake_start 1
t_wait_for 20 state_is victim running || t_fail "victim lost after the agent restart"
[ "$(cat "$T_TMP/fake-state/fake-0.token")" = "$NODE_TOK" ] || t_fail "the node token changed on restart"
grep -q "fake-0.*409\|register failed (409)" "$T_TMP/fake-agent.log" && t_fail "the restarted agent was refused"

# an admin replaces the machine: the old token is refused at once, the new one is the node's
api PUT /v1/nodes/fake-0/replace "" "$(printf x)"
expect 401 "replace without a valid token"
api PUT /v1/nodes/fake-0/replace
expect 200 replace
NEW_TOK=$(jget 'd["data"]["nodes"][0]["token"]')
[ -n "$NEW_TOK" ] && [ "$NEW_TOK" != "$NODE_TOK" ] || t_fail "no new token: $BODY"
CODE=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $NODE_TOK" "$CTL_URL/agent/v1/watch?version=0&timeout_ms=0")
[ "$CODE" = 401 ] || t_fail "the replaced token still works ($CODE)"
register "$NEW_TOK" fake-0 "$METRO0"
[ "$CODE" = 200 ] || t_fail "the new machine cannot register with the new token: $CODE $BODY"
t_log "node takeover refused; restart and replace ok"
