#!/bin/bash
# The controller on PostgreSQL ([store] url): a private server started by this test, fake
# agents, create (running), stop, kill -9 of the controller and a restart on the same database:
# the instances and their states are listed again, the rows are in PostgreSQL (and no sqlite
# file was made), and the schema version is the one sqlite stores. The rest of the controller
# suite runs on PostgreSQL with NUBO_TEST_STORE=postgresql.
source "$NUBO_SRC/tests/lib.sh"
NUBO_TEST_STORE=postgresql
source "$NUBO_SRC/tests/tools/controller-env.sh"

ctl_start
fake_start 2 --boot-ms 50
index_image admin/hello latest

api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","name":"pg-a","wait_timeout_ms":10000}'
expect 200 create-a
[ "$(jget 'd["data"]["instances"][0]["state"]')" = running ] || t_fail "pg-a not running: $BODY"
A=$(jget 'd["data"]["instances"][0]["uuid"]')
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","name":"pg-b","wait_timeout_ms":10000}'
expect 200 create-b
B=$(jget 'd["data"]["instances"][0]["uuid"]')
api PUT /v1/instances/stop "[{\"uuid\":\"$B\",\"drain_timeout_ms\":0}]"
expect 200 stop-b
t_wait_for 10 state_is "$B" stopped || t_fail "pg-b not stopped: $(instance_state "$B")"

[ ! -e "$CTL_DB" ] || t_fail "a sqlite database was created at $CTL_DB"
PSQL=("$PG_BIN/psql" -qAt "$T_STORE_URL")
[ "$("${PSQL[@]}" -c "SELECT count(*) FROM instances")" = 2 ] || t_fail "instances not in PostgreSQL"
[ "$("${PSQL[@]}" -c "SELECT desired FROM instances WHERE uuid='$B'")" != \
  "$("${PSQL[@]}" -c "SELECT desired FROM instances WHERE uuid='$A'")" ] || t_fail "stop not stored"

kill -9 "$CTL_PID"
wait "$CTL_PID" 2>/dev/null || true
t_log "controller killed; restarting on the same database"
ctl_start
api GET /v1/instances
expect 200 list-after-restart
[ "$(jget 'len(d["data"]["instances"])')" = 2 ] || t_fail "instances after restart: $BODY"
t_wait_for 10 state_is "$A" running || t_fail "pg-a after restart: $(instance_state "$A")"
state_is "$B" stopped || t_fail "pg-b after restart: $(instance_state "$B")"
api GET /v1/nodes
expect 200 nodes-after-restart
[ "$(jget 'len(d["data"]["nodes"])')" = 2 ] || t_fail "nodes after restart: $BODY"

# the schema version PostgreSQL records is the one a fresh sqlite store reaches
V=$("${PSQL[@]}" -c "SELECT version FROM nubo_schema")
grep -q "schema migrated to version $V\$" "$T_TMP/controller.log" || t_fail "schema version $V not the last migration"
t_log "controller on PostgreSQL: ok (schema version $V)"
