#!/bin/bash
# Stopped instances hold no capacity (the platform's rule; issue 12, observation 6): two
# tenants' stopped big instances no longer keep a third tenant out of a full metro, a start
# whose node filled up meanwhile runs on another node of the metro, and a start that fits
# nowhere is a one-line 503 naming the instance. Real controller, two fake nodes of 2 GiB.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"

ctl_start
fake_start 2 --boot-ms 50 --memory-mb 2048
index_image official/hello latest
for u in acme bob carol; do
    api POST /v1/users "{\"name\":\"$u\"}"
    expect 200 "user $u"
    declare "TOK_$u=$(jget 'd["data"]["users"][0]["token"]')"
done
is() { [ "$(instance_state "$1" "$3")" = "$2" ]; } # NAME STATE TOKEN
BIG='"image":"hello:latest","memory_mb":1536,"autostart":true,"wait_timeout_ms":10000'

# acme and bob each run a big instance: one per node, the metro is full
api POST /v1/instances "{$BIG,\"name\":\"big\"}" "$TOK_acme"
expect 200 acme-big
api POST /v1/instances "{$BIG,\"name\":\"big\"}" "$TOK_bob"
expect 200 bob-big
t_wait_for 20 is big running "$TOK_acme" || t_fail "acme's big is not running"
api POST /v1/instances "{$BIG,\"name\":\"third\"}" "$TOK_carol"
expect 503 full-while-running
grep -q "no capacity" <<< "$(jget 'd["message"]')" || t_fail "not a capacity refusal: $BODY"

# stopped, they hold nothing: carol's instance gets in
for t in "$TOK_acme" "$TOK_bob"; do
    api PUT /v1/instances/big/stop '{}' "$t"
    expect 200 stop
done
t_wait_for 20 is big stopped "$TOK_acme" || t_fail "acme's big did not stop"
t_wait_for 20 is big stopped "$TOK_bob" || t_fail "bob's big did not stop"
api POST /v1/instances "{$BIG,\"name\":\"third\"}" "$TOK_carol"
expect 200 third-fits-beside-stopped
FULL=$(jget 'd["data"]["instances"][0]["node"]')
api GET /v1/nodes
[ "$(jget "[n['allocated_memory_mb'] for n in d['data']['nodes'] if n['name']=='$FULL']")" = "[1536]" ] \
    || t_fail "stopped instances still counted on $FULL: $BODY"

# the big instance that shared carol's node starts on the other one
node_of() { api GET /v1/instances/big "" "$1"; jget 'd["data"]["instances"][0]["node"]'; }
if [ "$(node_of "$TOK_acme")" = "$FULL" ]; then MOVER=$TOK_acme OTHER=$TOK_bob; else MOVER=$TOK_bob OTHER=$TOK_acme; fi
HOME_NODE=$(node_of "$OTHER")
[ "$(node_of "$MOVER")" = "$FULL" ] || t_fail "neither big instance was on $FULL"
api PUT /v1/instances/big/start '{}' "$MOVER"
expect 200 start-replaced
t_wait_for 20 is big running "$MOVER" || t_fail "the re-placed start did not run: $(instance_state big "$MOVER")"
[ "$(node_of "$MOVER")" = "$HOME_NODE" ] || t_fail "started on $(node_of "$MOVER"), not on $HOME_NODE"
grep -q "placed on $HOME_NODE" "$T_TMP/controller.log" || t_fail "the move is not logged"

# the last one fits nowhere: one line naming it, and it stays stopped where it was
api PUT /v1/instances/big/start '{}' "$OTHER"
expect 503 start-nowhere
expect_envelope_error
msg=$(jget 'd["message"]')
grep -q "cannot start instance big: no capacity" <<< "$msg" || t_fail "start refusal: $msg"
[ "$(instance_state big "$OTHER")" = stopped ] || t_fail "a refused start changed the instance: $BODY"
[ "$(node_of "$OTHER")" = "$HOME_NODE" ] || t_fail "a refused start moved the instance"

kill "$CTL_PID"; wait "$CTL_PID" 2>/dev/null || true
if grep -q "Sanitizer" "$T_TMP/controller.log"; then
    t_fail "sanitizer report in the controller log"
fi
t_log "PASS: controller capacity (stopped instances hold nothing, a start finds room or says so)"
