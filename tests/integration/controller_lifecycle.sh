#!/bin/bash
# The real nubo-controller driven over HTTP with fake agents (3 nodes): create -> starting ->
# running -> stop -> stopped -> start -> delete, replicas spread over nodes, waits answered
# from state changes, logs, batch and single-object forms, ?uuid=/?name= look-ups, metrics.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"

ctl_start
fake_start 3 --boot-ms 300
index_image admin/hello latest

# create without waiting: placed on a node, starting
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","name":"web"}'
expect 200 create
U=$(jget 'd["data"]["instances"][0]["uuid"]')
[ "$(jget 'd["data"]["instances"][0]["state"]')" = starting ] || t_fail "fresh instance not starting: $BODY"
[ -n "$(jget 'd["data"]["instances"][0]["node"]')" ] || t_fail "not scheduled on a node: $BODY"
[ "$(jget 'd["data"]["instances"][0]["image"]')" = "admin/hello@$DIGEST" ] || t_fail "tag not pinned to digest: $BODY"
[ "$(jget 'd["data"]["instances"][0]["private_fqdn"]')" = web.internal ] || t_fail "fqdn: $BODY"
case "$(jget 'd["data"]["instances"][0]["private_ip"]')" in 10.64.*.*) ;; *) t_fail "private ip: $BODY" ;; esac

# wait (GET, query form) returns once running; the fake agent boots in 300 ms
api GET "/v1/instances/wait?uuid=$U&state=running&timeout_ms=10000"
expect 200 wait
[ "$(jget 'd["data"]["instances"][0]["state"]')" = running ] || t_fail "wait: $BODY"
[ "$(jget 'd["data"]["instances"][0]["boot_time_us"]')" -gt 0 ] || t_fail "no boot time: $BODY"
[ "$(jget 'd["data"]["instances"][0]["start_count"]')" = 1 ] || t_fail "start_count: $BODY"

# log: base64 console output shipped by the agent
api GET "/v1/instances/$U/log"
expect 200 log
jget 'd["data"]["instances"][0]["output"]' | base64 -d | grep -q NUBO_READY || t_fail "log: $BODY"

# stop (batch form, by name) then wait (PUT, body form) for stopped
api PUT /v1/instances/stop '[{"name":"web","drain_timeout_ms":0}]'
expect 200 stop
# the documented shape: {status, uuid, name, state, previous_state}, not the whole instance
[ "$(jget 'd["data"]["instances"][0]["previous_state"]')" = running ] || t_fail "stop previous_state: $BODY"
[ "$(jget 'd["data"]["instances"][0].get("image", "-")')" = - ] || t_fail "stop answers the instance: $BODY"
api PUT /v1/instances/wait '[{"name":"web","state":"stopped","timeout_ms":10000}]'
expect 200 wait-stopped
[ "$(jget 'd["data"]["instances"][0]["state"]')" = stopped ] || t_fail "not stopped: $BODY"
[ "$(jget 'd["data"]["instances"][0]["stop_reason"]')" = 15 ] || t_fail "stop_reason: $BODY"

# start again with wait_timeout_ms: the reply comes when it runs
api PUT "/v1/instances/$U/start?wait_timeout_ms=10000"
expect 200 start
[ "$(jget 'd["data"]["instances"][0]["state"]')" = running ] || t_fail "start+wait: $BODY"
[ "$(jget 'd["data"]["instances"][0]["start_count"]')" = 2 ] || t_fail "start_count 2: $BODY"

# a wait that cannot be satisfied times out per item (408)
api GET "/v1/instances/$U/wait" '{"state":"stopped","timeout_ms":300}'
expect 408 wait-timeout
expect_envelope_error

# GET by ?name=, body look-ups and list
api GET "/v1/instances?name=web"
expect 200 by-name
[ "$(jget 'd["data"]["instances"][0]["uuid"]')" = "$U" ] || t_fail "name look-up: $BODY"
api GET /v1/instances "[{\"uuid\":\"$U\"},{\"name\":\"nope\"}]"
expect 200 partial
[ "$(jget 'd["status"]')" = partial_success ] || t_fail "partial_success: $BODY"
# the platform's code (not found = 8, the SDKs' APIHTTPError), and no top-level errors[]: the
# JS SDK's unwrap() throws on any, and a partial success must not throw
[ "$(jget 'd["data"]["instances"][1]["error"]')" = 8 ] || t_fail "item error: $BODY"
[ "$(jget '"errors" in d')" = False ] || t_fail "partial success carries errors[]: $BODY"

# replicas: 6 instances over 3 nodes, two per node; create waits until all run
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","replicas":5,"memory_mb":64,"wait_timeout_ms":15000}'
expect 200 replicas
[ "$(jget 'len(d["data"]["instances"])')" = 6 ] || t_fail "replicas+1: $BODY"
[ "$(jget 'sorted(__import__("collections").Counter(i["node"] for i in d["data"]["instances"]).values())')" = "[2, 2, 2]" ] \
    || t_fail "replicas not spread: $BODY"
[ "$(jget 'all(i["state"]=="running" for i in d["data"]["instances"])')" = True ] || t_fail "replicas not running: $BODY"
[ "$(jget 'len(set(i["private_ip"] for i in d["data"]["instances"]))')" = 6 ] || t_fail "ips not unique: $BODY"
case "$(jget 'd["data"]["instances"][0]["name"]')" in hello-?????) ;; *) t_fail "default name: $BODY" ;; esac
REPL=$(jget '",".join(i["uuid"] for i in d["data"]["instances"])')

# nodes and metros
api GET /v1/nodes
expect 200 nodes
[ "$(jget 'sum(n["instances"] for n in d["data"]["nodes"])')" = 7 ] || t_fail "node counts: $BODY"
api GET /v1/metros
[ "$(jget 'd["data"]["metros"][0]["name"]')" = fra0 ] || t_fail "metros: $BODY"

# delete: batch by query, and single object
api DELETE "/v1/instances?uuid=$REPL"
expect 200 delete-batch
api DELETE "/v1/instances/$U"
expect 200 delete
[ "$(jget 'd["data"]["instances"][0]["previous_state"]')" = running ] || t_fail "delete previous_state: $BODY"
api GET "/v1/instances/$U"
expect 404 gone
api GET /v1/instances
[ "$(jget 'len(d["data"]["instances"])')" = 0 ] || t_fail "left over: $BODY"
# the agents saw the deletions (their desired set is empty)
t_wait_for 10 bash -c "curl -fsS -H 'Authorization: Bearer $ADMIN' $CTL_URL/v1/nodes | grep -q '\"instances\":0'" \
    || t_fail "nodes still hold instances"

# delete-on-stop: the instance goes away once the node reports it stopped
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","name":"once","features":["delete-on-stop"],"wait_timeout_ms":10000}'
expect 200 delete-on-stop
[ "$(jget 'd["data"]["instances"][0]["features"]')" = "['delete-on-stop']" ] || t_fail "features: $BODY"
api PUT /v1/instances/once/stop
expect 200 "stop once"
gone() { api GET /v1/instances/once; failed_like 404; }
t_wait_for 10 gone || t_fail "delete-on-stop kept the instance: $BODY"

# service groups: none yet, then one (the full story is controller_services.sh)
api GET /v1/services
expect 200 services
[ "$(jget 'd["data"]["service_groups"]')" = "[]" ] || t_fail "services: $BODY"
api POST /v1/services '{"services":[{"port":443}]}'
expect 200 "services create"

# metrics
curl -fsS -H "Authorization: Bearer $ADMIN" "$CTL_URL/metrics" > "$T_TMP/metrics"
grep -q '^nubo_instances{state="running"} 0' "$T_TMP/metrics" || t_fail "metrics instances"
grep -q '^nubo_nodes{state="ready"} 3' "$T_TMP/metrics" || t_fail "metrics nodes"
grep -q '^nubo_api_request_duration_seconds_bucket' "$T_TMP/metrics" || t_fail "latency histogram"
grep -q '^nubo_instance_boot_time_seconds_count [1-9]' "$T_TMP/metrics" || t_fail "boot histogram"

# the unix socket serves the same API
curl -fsS --unix-socket "$T_TMP/ctl.sock" http://ctl/v1/healthz | grep -q success || t_fail "unix socket"
# and the agent protocol over it (agents inside network namespaces register this way)
reg=$(curl -fsS --unix-socket "$T_TMP/ctl.sock" -H "Authorization: Bearer $(cat "$CTL_JOIN")" \
    -d '{"name":"ns-node","metro":"fra0","memory_mb":1024,"vcpus":1,"instances":[]}' \
    http://ctl/agent/v1/register) || t_fail "register over the unix socket"
NTOK=$(printf '%s' "$reg" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
curl -fsS --unix-socket "$T_TMP/ctl.sock" -H "Authorization: Bearer $NTOK" \
    "http://ctl/agent/v1/watch?version=0&timeout_ms=0" | grep -q '"assignments":\[\]' || t_fail "watch over the unix socket"
t_log "controller lifecycle: ok"
