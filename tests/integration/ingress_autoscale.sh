#!/bin/bash
# Autoscale through the metro's HAProxy: the real controller, nubo-ingress and HAProxy, two
# fake nodes whose "guests" are the python example app (answering after 300 ms, so requests
# stay in flight), started per boot by the fake agent's --hook. A group with an in-flight
# step policy grows from its master to max_size under a bounded load generator, its replicas
# spread over both nodes, and shrinks back to the master after the load stops; deleting the
# configuration leaves the master. Bad inputs (min > max, an unknown metric, an unknown group,
# another user's group) are one-line refusals that store nothing. The CLI's autoscale commands.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/ingress-env.sh"

# the example app, answering each request after 300 ms of "work"
cat > "$T_TMP/slow_app.py" <<APP
import http.server, runpy, time
answer = http.server.BaseHTTPRequestHandler.send_response
def slow(self, *a, **k):
    time.sleep(0.3)
    answer(self, *a, **k)
http.server.BaseHTTPRequestHandler.send_response = slow
runpy.run_path('$NUBO_SRC/examples/http-python/server.py', run_name='__main__')
APP
CTL_GRACE_MS=20000 ing_fake_cluster 2 "$T_TMP/slow_app.py"
read -r N0 N1 <<<"$NODE_NAMES"
ing_start "$ING_NODES" "traffic_interval_ms = 200"

api POST /v1/users '{"name":"other"}'
expect 200 "user other"
OTHER=$(jget 'd["data"]["users"][0]["token"]')

api POST /v1/services '{"name":"web","services":[{"port":443,"destination_port":8080,"handlers":["http","tls"]}]}'
expect 200 "group"
SVC=$(jget 'd["data"]["service_groups"][0]["uuid"]')
FQDN=$(jget 'd["data"]["service_groups"][0]["domains"][0]["fqdn"]')
api POST /v1/instances '{"image":"admin/hello:latest","name":"web-master","service_group":{"name":"web"},"autostart":true,"wait_timeout_ms":10000}'
expect 200 "master"
MASTER=$(jget 'd["data"]["instances"][0]["uuid"]')

# --- bad inputs: one line each, nothing stored
unconfigured() {
    api GET "/v1/services/$SVC/autoscale"
    expect 200 "get autoscale"
    [ "$(jget 'd["data"]["service_groups"][0]["status"]')" = unconfigured ] || t_fail "$1 stored something: $BODY"
}
refused() { # code description message-part body [token]
    api POST /v1/services/autoscale "$4" "${5:-$ADMIN}"
    expect "$1" "$2"
    [ "$(jget 'd["status"]')" = error ] || t_fail "$2: not an error: $BODY"
    expect_envelope_error
    grep -qF -- "$3" <<<"$(jget 'd["message"]')" || t_fail "$2: want one line with '$3': $BODY"
    unconfigured "$2"
}
STEPS='"steps":[{"lower_bound":3,"adjustment":1}]'
refused 400 "min > max" 'min_size (3) must not exceed max_size (2)' '{"name":"web","min_size":3,"max_size":2}'
refused 400 "unknown metric" "'memory' is not one of cpu, inflight_reqs" \
    '{"name":"web","policies":[{"name":"p","type":"step","metric":"memory",'"$STEPS"'}]}'
refused 404 "unknown group" "service group nope not found" '{"name":"nope"}'
refused 404 "another user's group (name)" "service group web not found" '{"name":"web"}' "$OTHER"
refused 404 "another user's group (uuid)" "service group $SVC not found" "{\"uuid\":\"$SVC\"}" "$OTHER"
api POST /v1/instances '{"image":"admin/hello:latest","name":"loner"}'
expect 200 "an instance outside the group"
refused 400 "a master outside the group" "is not in service group web" '{"name":"web","master":{"name":"loner"}}'
api DELETE /v1/instances/loner
api POST /v1/services/web/autoscale/policies '{"name":"p","type":"step",'"$STEPS"'}'
expect 404 "a policy on an unconfigured group"
api GET "/v1/services/$SVC/autoscale" '' "$OTHER"
expect 200 "another user's get"
[ "$(jget 'd["data"]["service_groups"][0]["error"]')" = 8 ] || t_fail "another user's group is visible: $BODY"

# --- configure: 1..3 instances on the requests in flight per instance
api POST /v1/services/autoscale '{"name":"web","min_size":1,"max_size":3,"warmup_time_ms":1000,"cooldown_time_ms":1500,"master":{"name":"web-master"},"policies":[{"name":"load","type":"step","metric":"inflight_reqs","steps":[{"upper_bound":1,"adjustment":-1},{"lower_bound":3,"adjustment":1}]}]}'
expect 200 "configure"
api POST /v1/services/autoscale '{"name":"web"}'
expect 409 "configured twice"
[ "$(jget 'd["data"]["service_groups"][0]["error"]')" = 26 ] || t_fail "configured twice: $BODY"
api GET /v1/services/autoscale
[ "$(jget '(d["data"]["service_groups"][0]["master"]["name"], d["data"]["service_groups"][0]["max_size"], d["data"]["service_groups"][0]["policies"][0]["metric"])')" = "('web-master', 3, 'inflight_reqs')" ] ||
    t_fail "get all: $BODY"

# --- the CLI: policies add/get/rm, get
export NUBO_API=$CTL_URL NUBO_TOKEN=$ADMIN XDG_CONFIG_HOME=$T_TMP/config
NUBO=$NUBO_BUILD/cli/nubo
"$NUBO" services autoscale policies add web cpu-high --metric cpu --step 90:/+1 --step :10/-1 \
    > "$T_TMP/cli.txt" 2>&1 || t_fail "cli policies add: $(cat "$T_TMP/cli.txt")"
"$NUBO" services autoscale policies get web cpu-high -o json > "$T_TMP/cli.txt" 2>&1 || t_fail "cli policies get: $(cat "$T_TMP/cli.txt")"
python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))[0]; assert p["steps"]==[{"adjustment":1,"lower_bound":90},{"adjustment":-1,"upper_bound":10}], p' \
    "$T_TMP/cli.txt" || t_fail "cli policy: $(cat "$T_TMP/cli.txt")"
"$NUBO" services autoscale policies add web cpu-high --step 1:/1 > "$T_TMP/cli.txt" 2>&1 && t_fail "a policy added twice"
[ "$(wc -l < "$T_TMP/cli.txt")" = 1 ] || t_fail "cli error is not one line: $(cat "$T_TMP/cli.txt")"
"$NUBO" services autoscale policies rm web cpu-high > "$T_TMP/cli.txt" 2>&1 || t_fail "cli policies rm: $(cat "$T_TMP/cli.txt")"
"$NUBO" services autoscale get web > "$T_TMP/cli.txt" 2>&1 || t_fail "cli get: $(cat "$T_TMP/cli.txt")"
grep -q "web-master" "$T_TMP/cli.txt" && ! grep -q "cpu-high" "$T_TMP/cli.txt" || t_fail "cli get: $(cat "$T_TMP/cli.txt")"

# --- load: up to max_size, spread over the nodes
members() { api GET /v1/services/web; jget 'len(d["data"]["service_groups"][0]["instances"])'; }
# wait_members N SECONDS: until group web has N instances (one python polling, not one a look)
wait_members() {
    python3 - "$CTL_URL" "$ADMIN" "$1" "$2" <<'PY'
import json, sys, time, urllib.request
url, tok, want, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
end = time.monotonic() + secs
while time.monotonic() < end:
    req = urllib.request.Request(url + "/v1/services/web", headers={"Authorization": "Bearer " + tok})
    with urllib.request.urlopen(req, timeout=10) as r:
        if len(json.load(r)["data"]["service_groups"][0]["instances"]) == want:
            sys.exit(0)
    time.sleep(0.1)
sys.exit(1)
PY
}
t_wait_for 20 bash -c "$(declare -f ing_get); ADDR=$ADDR T_TMP=$T_TMP; ing_get $FQDN /dev/null | grep -q '^200'" ||
    t_fail "no answer through the ingress for $FQDN"
[ "$(members)" = 1 ] || t_fail "an idle group grew: $BODY"
# bounded: 12 clients for at most 60 s, stopped once the group is at max_size
python3 "$NUBO_SRC/tests/tools/http_load.py" "$FQDN" "$ADDR" "$T_TMP/cert.pem" 12 60 "$T_TMP/stop" \
    > "$T_TMP/load.txt" 2> "$T_TMP/load.err" &
LOAD=$!
t_track_pid $LOAD
t0=$(date +%s.%N)
wait_members 3 50 ||
    t_fail "the group did not grow to 3 under load: $(members) member(s); $(grep autoscale "$T_TMP/controller.log" | tail -5)"
t_log "under load: 3 instances after $(awk "BEGIN{print $(date +%s.%N) - $t0}") s"
touch "$T_TMP/stop"
api GET /v1/instances
jget 'sorted(set(i["node"] for i in d["data"]["instances"] if i["service_group"]["name"] == "web"))' > "$T_TMP/nodes.txt"
[ "$(cat "$T_TMP/nodes.txt")" = "$(python3 -c "print(sorted(['$N0','$N1']))")" ] || t_fail "replicas not spread over both nodes: $(cat "$T_TMP/nodes.txt")"
wait $LOAD
read -r ok failed < "$T_TMP/load.txt"
t_log "load: $ok requests answered, $failed failed"
[ "$ok" -gt 0 ] && [ "$failed" = 0 ] || t_fail "load generator: $ok ok, $failed failed: $(cat "$T_TMP/load.err")"

# --- idle: back down to the master after the cooldowns
t1=$(date +%s.%N)
wait_members 1 30 ||
    t_fail "the group did not shrink to 1 after the load: $(members) member(s)"
t_log "after the load: back to 1 instance in $(awk "BEGIN{print $(date +%s.%N) - $t1}") s"
api GET /v1/services/web
[ "$(jget 'd["data"]["service_groups"][0]["instances"][0]["uuid"]')" = "$MASTER" ] || t_fail "the master was removed: $BODY"
# never past max_size: the loop's own account of every step
grep -E 'autoscale: group web \(.*\): [0-9]+ -> [0-9]+ instances' "$T_TMP/controller.log" > "$T_TMP/steps.txt"
! grep -Eq -- '-> ([4-9]|[0-9]{2,}) instances' "$T_TMP/steps.txt" || t_fail "autoscale went past max_size: $(cat "$T_TMP/steps.txt")"

# --- delete: unconfigured, the master stays and runs
api DELETE "/v1/services/$SVC/autoscale"
expect 200 "delete config"
unconfigured "delete"
api DELETE /v1/services/autoscale '[{"name":"web"}]'
expect 404 "delete twice"
api GET /v1/instances/web-master
[ "$(jget 'd["data"]["instances"][0]["state"]')" = running ] || t_fail "the master after delete: $BODY"
grep "autoscale" "$T_TMP/controller.log" | tail -6 >&2
t_log "PASS: autoscale through the ingress"
