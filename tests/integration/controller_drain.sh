#!/bin/bash
# Node maintenance: PUT /v1/nodes/{name}/drain (admin) marks a node `maintenance` (the
# scheduler skips it) and re-places its instances on the other ready nodes of its metro with
# new private IPs and their desired state kept; /ready takes it back. Also over the CLI, and
# across a controller restart.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"

ctl_start
fake_start 3 --boot-ms 100 --metro fra
index_image admin/hello latest

api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","name":"web","replicas":2,"wait_timeout_ms":10000,"service_group":{"services":[{"port":443,"destination_port":8080}]}}'
expect 200 create
api POST /v1/instances '{"image":"admin/hello:latest","name":"idle","autostart":false}'
expect 200 create-stopped
api GET /v1/instances/idle
NODE=$(jget 'd["data"]["instances"][0]["node"]')
before() { api GET /v1/instances; jget "sorted((i['name'], i['private_ip']) for i in d['data']['instances'] if i['node']=='$NODE')"; }
ON=$(before)
t_log "draining $NODE holding $ON"

api POST /v1/users '{"name":"bob"}'
BOB=$(jget 'd["data"]["users"][0]["token"]')
api PUT "/v1/nodes/$NODE/drain" "" "$BOB"
expect 403 drain-not-admin
api PUT /v1/nodes/nope/drain
expect 404 drain-unknown

api PUT "/v1/nodes/$NODE/drain"
expect 200 drain
[ "$(jget 'd["data"]["nodes"][0]["state"]')" = maintenance ] || t_fail "not in maintenance: $BODY"
MOVED=$(jget 'len(d["data"]["nodes"][0]["moved_instances"])')
[ "$MOVED" -ge 2 ] || t_fail "moved $MOVED instances: $BODY"
api GET /v1/nodes
[ "$(jget "[n['instances'] for n in d['data']['nodes'] if n['name']=='$NODE']")" = "[0]" ] || t_fail "node not empty: $BODY"

# every instance runs elsewhere (or stays stopped), with a new address
api GET /v1/instances
[ "$(jget "[i['name'] for i in d['data']['instances'] if i['node']=='$NODE']")" = "[]" ] || t_fail "left on the node: $BODY"
api GET /v1/instances/idle
[ "$(jget 'd["data"]["instances"][0]["state"]')" = stopped ] || t_fail "stopped instance was started: $BODY"
running_all() { api GET /v1/instances; [ "$(jget "all(i['state']=='running' for i in d['data']['instances'] if i['name']!='idle')")" = True ]; }
t_wait_for 10 running_all || t_fail "moved instances not running again: $BODY"
[ "$(jget 'len(set(i["private_ip"] for i in d["data"]["instances"]))')" = 4 ] || t_fail "addresses collide: $BODY"
for pair in $(python3 -c "import ast; print(' '.join(n+'='+ip for n,ip in ast.literal_eval('''$ON''')))"); do
    n=${pair%%=*}; ip=${pair#*=}
    [ "$(jget "[i['private_ip'] for i in d['data']['instances'] if i['name']=='$n'][0]")" != "$ip" ] || t_fail "$n kept its old address $ip"
done

# the ingress follows: the group's backends are the moved instances at their new addresses
WANT=$(jget "sorted(i['private_ip'] for i in d['data']['instances'] if i['name']!='idle' and i.get('service_group'))")
ING=$(cat "$CTL_DB.ingress-token")
BODY=$(curl -fsS -H "Authorization: Bearer $ING" "$CTL_URL/ingress/v1/watch?metro=fra&version=0&timeout_ms=0") || t_fail "ingress watch"
[ "$(jget "sorted(b['ip'] for s in d['services'] for b in s['backends'])")" = "$WANT" ] || t_fail "ingress backends $BODY, want $WANT"

# the scheduler skips a node in maintenance
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","replicas":5,"memory_mb":16}'
expect 200 create-more
[ "$(jget "[i['name'] for i in d['data']['instances'] if i['node']=='$NODE']")" = "[]" ] || t_fail "placed on a drained node: $BODY"

# survives a restart
kill "$CTL_PID"; wait "$CTL_PID" 2>/dev/null
CTL_PORT=$CTL_PORT ctl_start
api GET /v1/nodes
[ "$(jget "[n['state'] for n in d['data']['nodes'] if n['name']=='$NODE']")" = "['maintenance']" ] || t_fail "maintenance lost on restart: $BODY"

# ready again, over the CLI
NUBO=$NUBO_BUILD/cli/nubo
export HOME=$T_TMP/home XDG_CACHE_HOME=$T_TMP/cache XDG_CONFIG_HOME=$T_TMP/config
unset NUBO_API NUBO_TOKEN NUBO_REGISTRY NUBO_METRO NUBO_ORG NUBO_PROFILE
"$NUBO" login --api "$CTL_URL" --token "$ADMIN" -q || t_fail login
"$NUBO" nodes ready "$NODE" > "$T_TMP/ready.out" || t_fail "nodes ready"
grep -q "is ready" "$T_TMP/ready.out" || t_fail "ready output: $(cat "$T_TMP/ready.out")"
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","replicas":2,"memory_mb":16}'
[ "$(jget "len([i for i in d['data']['instances'] if i['node']=='$NODE'])")" -ge 1 ] || t_fail "ready node takes nothing: $BODY"
"$NUBO" nodes drain "$NODE" > "$T_TMP/drain.out" || t_fail "nodes drain: $(cat "$T_TMP/drain.out")"
grep -q "is maintenance; moved" "$T_TMP/drain.out" || t_fail "drain output: $(cat "$T_TMP/drain.out")"

kill "$CTL_PID"; wait "$CTL_PID" 2>/dev/null
! grep -q Sanitizer "$T_TMP/controller.log" || t_fail "sanitizer: $(grep -m1 -A10 Sanitizer "$T_TMP/controller.log")"
t_log "controller drain: ok"
