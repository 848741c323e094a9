#!/bin/bash
# nubo-ingress between the real nubo-controller (fake agents: no VMs) and a real HAProxy: the
# "instances" are the python example app listening on the private IPs the controller assigned,
# inside one network namespace per fake node, reached only through HAProxy's `namespace`
# keyword. Round robin over both, TLS with a pinned CA, 80 -> https redirect, a stopped
# instance drained without a reload, an unknown name and a deleted group answer 503, and
# shape changes reload without dropping the listener.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/ingress-env.sh"

ctl_start "[services]
domain = nubo.test"
fake_start 2 --boot-ms 100
index_image admin/hello latest

# --- a CA and the metro wildcard certificate
t_signed_cert "$T_TMP" metro 'DNS:*.fra0.nubo.test'

# --- two replicas behind an inline group (the controller places them on both fake nodes)
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","name":"web","replicas":1,"service_group":{"services":[{"port":443,"destination_port":8080,"handlers":["http","tls"]},{"port":80,"destination_port":443,"handlers":["http","redirect"]}]},"wait_timeout_ms":10000}'
expect 200 create
FQDN=$(jget 'd["data"]["instances"][0]["service_group"]["domains"][0]["fqdn"]')
GROUP=$(jget 'd["data"]["instances"][0]["service_group"]["uuid"]')
NAMES=$(jget '" ".join(i["name"] for i in d["data"]["instances"])')
t_log "group $GROUP, domain $FQDN, instances $NAMES"

# --- each fake node's "guests": the python example on the instance's private IP in a netns
declare -A NODE_NS
nodes=""
start_app() { # instance name: serve the example app on its private IP inside its node's netns
    local name=$1 node ip
    api GET "/v1/instances/$name"
    node=$(jget 'd["data"]["instances"][0]["node"]')
    ip=$(jget 'd["data"]["instances"][0]["private_ip"]')
    if [ -z "${NODE_NS[$node]:-}" ]; then
        t_netns "$node"
        NODE_NS[$node]=$T_NS
        nodes+="$node:$T_NS "
    fi
    ip -n "${NODE_NS[$node]}" addr add "$ip/32" dev lo
    ip netns exec "${NODE_NS[$node]}" python3 -c "
import runpy, http.server, sys
srv = http.server.ThreadingHTTPServer
class Bound(srv):
    def __init__(self, addr, h): super().__init__(('$ip', addr[1]), h)
http.server.ThreadingHTTPServer = Bound
runpy.run_path('$NUBO_SRC/examples/http-python/server.py', run_name='__main__')" \
        > "$T_TMP/app-$name.log" 2>&1 &
    t_track_pid $!
    t_wait_for 10 ip netns exec "${NODE_NS[$node]}" curl -fsS "http://$ip:8080/" || t_fail "app $name did not start"
    t_log "instance $name: node $node, $ip"
}
for name in $NAMES; do start_app "$name"; done
[ "${#NODE_NS[@]}" = 2 ] || t_fail "replicas not on two nodes"

# --- the ingress on a private loopback address
ING_CERT=$T_TMP/metro.pem ING_KEY=$T_TMP/metro.key ING_CA=$T_TMP/ca.pem ing_start "$nodes"

get() { curl -sS --max-time 5 --cacert "$T_TMP/ca.pem" --resolve "$FQDN:443:$ADDR" "https://$FQDN/"; }
code() { curl -sS -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$T_TMP/ca.pem" --resolve "$1:443:$ADDR" "https://$1/"; }
t_wait_for 20 bash -c "$(declare -f get); FQDN=$FQDN ADDR=$ADDR T_TMP=$T_TMP; get | grep -q 'Hello from nubo'" \
    || t_fail "no answer through the ingress for $FQDN"

# round robin: both instances answer
seen=$(for i in $(seq 8); do get; done | sed -n 's/.*instance \([0-9.]*\)).*/\1/p' | sort -u | wc -l)
[ "$seen" = 2 ] || t_fail "round robin: $seen distinct instances answered"
# http on 80 redirects to https
loc=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' --resolve "$FQDN:80:$ADDR" "http://$FQDN/p?q=1")
[ "$loc" = "301 https://$FQDN/p?q=1" ] || t_fail "redirect: $loc"
# a name nobody serves
[ "$(code nobody.fra0.nubo.test)" = 503 ] || t_fail "unknown name should answer 503"
# the controller restarts: HAProxy keeps serving meanwhile, the ingress backs off and resumes
kill "$CTL_PID"; wait "$CTL_PID" 2>/dev/null || true
for i in $(seq 4); do get | grep -q 'Hello from nubo' || t_fail "request $i failed while the controller was down"; sleep 0.3; done
CTL_PORT=$CTL_PORT ctl_start "[services]
domain = nubo.test"
t_wait_for 20 nodes_ready_at_least 2 || t_fail "fake nodes did not come back"
t_wait_for 15 grep -q "retrying in" "$T_TMP/ingress.log" || t_fail "the ingress did not notice the controller was gone"
reloads0=$(grep -c "with a reload" "$T_TMP/ingress.log")

# stop one instance: drained by the runtime API, no reload, requests keep succeeding
first=${NAMES%% *}
api PUT "/v1/instances/$first/stop" '{}'
expect 200 stop
api GET "/v1/instances/$first/wait?state=stopped&timeout_ms=10000"
t_wait_for 10 grep -q "runtime commands, no reload" "$T_TMP/ingress.log" || t_fail "the stop was not applied at runtime"
for i in $(seq 6); do
    b=$(get) || t_fail "request $i failed after a stop"
    grep -q 'Hello from nubo' <<<"$b" || t_fail "request $i after a stop: $b"
done
[ "$(grep -c "with a reload" "$T_TMP/ingress.log")" = "$reloads0" ] || t_fail "a stop reloaded HAProxy"

# a second group (new backend) reloads seamlessly while requests run
( for i in $(seq 40); do get >/dev/null 2>&1 || echo fail; done > "$T_TMP/during-reload" ) &
LOADP=$!
api POST /v1/services '{"name":"other","services":[{"port":443,"destination_port":8080,"handlers":["http","tls"]}]}'
expect 200 second-group
t_wait_for 10 bash -c "[ \$(grep -c 'with a reload' '$T_TMP/ingress.log') -gt $reloads0 ]" || t_fail "no reload for a new backend"
wait $LOADP
t_log "requests failed during a reload: $(grep -c fail "$T_TMP/during-reload" || true)/40"
[ "$(code other.fra0.nubo.test)" = 503 ] || t_fail "a group without instances should answer 503"

# a user certificate from /v1/certificates is served for its domain (SNI picks it)
P=$T_TMP/pki
t_signed_cert "$P" leaf 'DNS:*.example.com'
api POST /v1/certificates "$(certbody ex '*.example.com' "$P/leaf.pem" "$P/leaf.key")"
expect 200 certificate
api POST /v1/services '{"name":"custom","services":[{"port":443}],"domains":[{"fqdn":"api.example.com","certificate":{"name":"ex"}}]}'
expect 200 custom-domain
usercode() { curl -sS -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$P/ca.pem" --resolve "api.example.com:443:$ADDR" https://api.example.com/ 2>/dev/null; }
t_wait_for 10 bash -c "$(declare -f usercode); P=$P ADDR=$ADDR; [ \$(usercode) = 503 ]" \
    || t_fail "the user certificate is not served for api.example.com ($(usercode))"

# a TCP+TLS port: TLS terminated, routed by SNI, plain TCP to the instance
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","name":"raw","service_group":{"services":[{"port":18443,"destination_port":8080,"handlers":["tls"]}]},"wait_timeout_ms":10000}'
expect 200 create-raw
RAWFQDN=$(jget 'd["data"]["instances"][0]["service_group"]["domains"][0]["fqdn"]')
start_app raw
rawget() { curl -sS --max-time 5 --cacert "$T_TMP/ca.pem" --resolve "$RAWFQDN:18443:$ADDR" "https://$RAWFQDN:18443/"; }
t_wait_for 15 bash -c "$(declare -f rawget); T_TMP=$T_TMP RAWFQDN=$RAWFQDN ADDR=$ADDR; rawget | grep -q 'Hello from nubo'" \
    || t_fail "TCP+TLS port 18443 does not reach the instance: $(rawget 2>&1)"
# hard_limit = maxconn per instance, and a request over it fails instead of queueing
api GET /v1/instances/raw
RAWGROUP=$(jget 'd["data"]["instances"][0]["service_group"]["uuid"]')
reloads1=$(grep -c "with a reload" "$T_TMP/ingress.log")
api PATCH "/v1/services/$RAWGROUP" '{"prop":"hard_limit","op":"set","value":1}'
expect 200 hard-limit
t_wait_for 10 bash -c "[ \$(grep -c 'with a reload' '$T_TMP/ingress.log') -gt $reloads1 ]" || t_fail "hard_limit not applied"
grep -q "maxconn 1$" "$T_TMP/ing/haproxy.cfg" || grep -q "maxconn 1 " "$T_TMP/ing/haproxy.cfg" || t_fail "hard_limit 1 is not maxconn 1"
sleep 0.5 # the old worker finishes
# One TLS connection held open occupies the instance's only slot (mode tcp connects at once).
( sleep 4 | openssl s_client -quiet -no_ign_eof -connect "$ADDR:18443" -servername "$RAWFQDN" >/dev/null 2>&1 ) &
HOLD=$!
sleep 1
t0=$(date +%s%N)
if rawget >/dev/null 2>&1; then t_fail "a connection over hard_limit 1 was served"; fi
t1=$(date +%s%N)
t_log "over hard_limit: refused after $(( (t1 - t0) / 1000000 )) ms"
[ $(( (t1 - t0) / 1000000 )) -lt 3000 ] || t_fail "the excess connection waited instead of failing"
wait $HOLD
t_wait_for 10 bash -c "$(declare -f rawget); T_TMP=$T_TMP RAWFQDN=$RAWFQDN ADDR=$ADDR; rawget | grep -q 'Hello from nubo'" \
    || t_fail "port 18443 does not answer once the slot is free"
api DELETE /v1/instances/raw
expect 200 delete-raw

# delete everything: the inline group goes, its name stops reaching a backend
for name in $NAMES; do api DELETE "/v1/instances/$name"; expect 200 "delete $name"; done
t_wait_for 10 bash -c "$(declare -f code); ADDR=$ADDR T_TMP=$T_TMP; [ \$(code $FQDN) = 503 ]" || t_fail "$FQDN still routed after delete"
api GET /v1/services
[ "$(jget "[g['uuid'] for g in d['data']['service_groups'] if g['uuid']=='$GROUP']")" = "[]" ] || t_fail "inline group still listed: $BODY"

# nubo-ingress stops its HAProxy on SIGTERM
hp=$(cat "$T_TMP/ing/haproxy.pid")
kill "$ING_PID"
t_wait_for 10 bash -c "! kill -0 $hp 2>/dev/null" || t_fail "haproxy survived nubo-ingress"
grep -E "reload|runtime" "$T_TMP/ingress.log" | grep nubo-ingress >&2 || true
t_log "PASS: ingress with the controller"
