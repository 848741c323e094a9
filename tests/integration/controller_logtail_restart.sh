#!/bin/bash
# Console tails survive a controller restart: they reach sqlite (bounded per instance) within
# a tick of arriving, so even kill -9 keeps them, and a clean stop writes the last ones.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"

CTL_GRACE_MS=60000 ctl_start "[instances]
log_tail_bytes = 1024"
fake_start 1 --boot-ms 100
index_image admin/hello latest
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","name":"talk","wait_timeout_ms":10000}'
expect 200 create
logged() { api GET /v1/instances/talk/log; grep -q NUBO_READY <<< "$(jget 'd["data"]["instances"][0]["output"]' | base64 -d)"; }
t_wait_for 10 logged || t_fail "no console output: $BODY"
END0=$(jget 'd["data"]["instances"][0]["available"]["end"]')
api GET /v1/instances/talk
S0=$(jget 'd["data"]["instances"][0]["started_at"]')

# kill -9 after a tick: the tail is in the store
sleep 1.5
kill -9 "$FAKE_PID" "$CTL_PID"; wait "$CTL_PID" 2>/dev/null || true
CTL_PORT=$CTL_PORT CTL_GRACE_MS=60000 ctl_start "[instances]
log_tail_bytes = 1024"
api GET /v1/instances/talk/log
expect 200 log-after-kill
grep -q "NUBO_READY" <<< "$(jget 'd["data"]["instances"][0]["output"]' | base64 -d)" || t_fail "tail lost by kill -9: $BODY"
[ "$(jget 'd["data"]["instances"][0]["available"]["end"]')" = "$END0" ] || t_fail "offsets changed: $BODY"

# more output, then a clean stop right away: the shutdown writes it
fake_start 1 --boot-ms 100
# The new fake node knows nothing of the first boot (a real agent keeps console.log): only once
# it has taken the running instance over (its own boot: a new started_at) does a stop and start
# make a second boot, written after the first one's bytes.
# Running, not only starting: a stop that lands while that boot is starting ends it before its
# output, and the next boot's then comes at offset 0 again, over bytes the controller has.
adopted() {
    api GET /v1/instances/talk
    [ "$(jget 'd["data"]["instances"][0]["started_at"]')" != "$S0" ] &&
        [ "$(jget 'd["data"]["instances"][0]["state"]')" = running ]
}
t_wait_for 20 adopted || t_fail "the restarted fake node did not take the instance over: $BODY"
api PUT /v1/instances/talk/stop '{}'
api GET "/v1/instances/talk/wait?state=stopped&timeout_ms=10000"
expect 200 "stopped before the restart"
api PUT /v1/instances/talk/start '{"wait_timeout_ms":10000}'
expect 200 restart-instance
more() { api GET /v1/instances/talk/log; grep -q "fake boot 2" <<< "$(jget 'd["data"]["instances"][0]["output"]' | base64 -d)"; }
t_wait_for 10 more || { LOGB=$BODY; api GET /v1/instances/talk; t_fail "no second boot output: $LOGB
the instance: $BODY"; }
END1=$(jget 'd["data"]["instances"][0]["available"]["end"]')
kill "$FAKE_PID" "$CTL_PID"; wait "$CTL_PID" 2>/dev/null || true
! grep -q Sanitizer "$T_TMP/controller.log" || t_fail "sanitizer: $(grep -m1 -A10 Sanitizer "$T_TMP/controller.log")"
CTL_PORT=$CTL_PORT ctl_start "[instances]
log_tail_bytes = 1024"
api GET /v1/instances/talk/log
grep -q "fake boot 2" <<< "$(jget 'd["data"]["instances"][0]["output"]' | base64 -d)" || t_fail "tail lost by a clean stop: $BODY"
[ "$(jget 'd["data"]["instances"][0]["available"]["end"]')" = "$END1" ] || t_fail "end offset: $BODY"

# deleting the instance deletes its tail
api DELETE /v1/instances/talk
expect 200 delete
[ "$(sqlite3 "$CTL_DB" 'SELECT count(*) FROM logtails' 2>/dev/null || echo 0)" = 0 ] || t_fail "tail row outlived its instance"
t_log "controller log tails: ok"
