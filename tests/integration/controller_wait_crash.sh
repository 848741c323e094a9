#!/bin/bash
# A wait for running returns at once, with an item error naming the stop reason and the
# agent's message, when the instance stops after its start (a crash or a failed start)
# instead of sitting until its timeout; `nubo run` then prints "not online" right away.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"

ctl_start
fake_start 1 --boot-ms 300 --metro fra
index_image admin/hello latest

# created, then a long wait: the fake node crashes it during boot (env NUBO_FAKE_CRASH)
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","name":"crashy","env":{"NUBO_FAKE_CRASH":"1"}}'
expect 200 create
T0=$(date +%s%N)
api GET /v1/instances/crashy/wait '{"state":"running","timeout_ms":30000}'
MS=$(( ($(date +%s%N) - T0) / 1000000 ))
expect 409 wait-crashed
expect_envelope_error
[ "$MS" -lt 10000 ] || t_fail "the wait sat for $MS ms instead of returning on the crash"
grep -q "kernel panic during boot" <<< "$(jget 'd["message"]')" || t_fail "no agent message: $BODY"
grep -q "stop_reason 1 (K----)" <<< "$(jget 'd["message"]')" || t_fail "no stop reason: $BODY"
[ "$(jget 'd["data"]["instances"][0]["state"]')" = stopped ] || t_fail "item state: $BODY"

# a wait that begins after the crash returns at once too
api GET /v1/instances/crashy/wait '{"state":"running","timeout_ms":30000}'
expect 409 wait-after-crash

# a user's stop is not hopeless: the wait for running keeps waiting (and times out, 408)
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","name":"calm","wait_timeout_ms":10000}'
expect 200 create-calm
api PUT /v1/instances/calm/stop '{}'
api GET /v1/instances/calm/wait '{"state":"stopped","timeout_ms":10000}'
expect 200 stopped
api GET /v1/instances/calm/wait '{"state":"running","timeout_ms":500}'
expect 408 wait-stopped-by-user

# start again with a wait: the crash answers the start with the stopped instance
api PUT /v1/instances/crashy/start '{"wait_timeout_ms":30000}'
expect 200 start-wait
[ "$(jget 'd["data"]["instances"][0]["state"]')" = stopped ] || t_fail "start+wait: $BODY"
[ "$(jget 'd["data"]["instances"][0]["start_count"]')" = 2 ] || t_fail "start_count: $BODY"

# nubo run prints the tree at once
NUBO=$NUBO_BUILD/cli/nubo
if [ -x "$NUBO" ]; then
    export HOME=$T_TMP/home XDG_CACHE_HOME=$T_TMP/cache XDG_CONFIG_HOME=$T_TMP/config
    unset NUBO_API NUBO_TOKEN NUBO_REGISTRY NUBO_METRO NUBO_ORG NUBO_PROFILE
    "$NUBO" login --api "$CTL_URL" --token "$ADMIN" -q || t_fail "login"
    T0=$(date +%s%N)
    if "$NUBO" run --metro=fra --timeout 60s -e NUBO_FAKE_CRASH=1 --image=admin/hello:latest > "$T_TMP/run.out" 2> "$T_TMP/run.err"; then
        t_fail "nubo run of a crashing app succeeded"
    fi
    MS=$(( ($(date +%s%N) - T0) / 1000000 ))
    grep -q "Deployed but instance is not online!" "$T_TMP/run.out" || t_fail "run output: $(cat "$T_TMP/run.out")"
    [ "$MS" -lt 15000 ] || t_fail "nubo run took $MS ms"
fi

kill "$CTL_PID"; wait "$CTL_PID" 2>/dev/null
! grep -q Sanitizer "$T_TMP/controller.log" || t_fail "sanitizer: $(grep -m1 -A10 Sanitizer "$T_TMP/controller.log")"
t_log "controller wait crash: ok"
