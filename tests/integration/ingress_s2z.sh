#!/bin/bash
# Scale-to-zero through the metro's HAProxy: the real controller, nubo-ingress and HAProxy, one
# fake node whose "guest" is the python example app, started (inside the node's network
# namespace, on the instance's private IP) when the instance boots and killed when it stops
# (the fake agent's --hook). An instance with policy on goes to standby after its cooldown of
# no traffic; the next HTTPS request through its URL is held and answered once it has woken;
# 10 concurrent first requests all succeed with one wake; a standby instance a user stopped is
# not woken (503 at once); a crash while waking answers 503 rather than hanging; a TCP+TLS
# port's connection wakes its instance too (held by the activator, spliced back into HAProxy); policy idle lets an instance go while a keep-alive
# client connection stays open and silent at the ingress (its next request wakes it), policy on
# does not. Plus the create API's scale_to_zero forms.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/ingress-env.sh"

# the hook: serve the example app on the instance's address while the instance runs
CTL_GRACE_MS=20000 ing_fake_cluster 1

# --- the create API's forms
api POST /v1/instances '{"image":"admin/hello:latest","name":"legacy","features":["scale-to-zero"],"autostart":false}'
expect 200 "legacy feature"
api GET /v1/instances/legacy
[ "$(jget 'd["data"]["instances"][0]["scale_to_zero"]')" = "{'policy': 'on', 'stateful': False, 'cooldown_time_ms': 1000}" ] \
    || t_fail "legacy scale-to-zero: $BODY"
api POST /v1/instances '{"image":"admin/hello:latest","name":"off","scale_to_zero":{"policy":"off"},"autostart":false}'
expect 200 "policy off"
api POST /v1/instances '{"image":"admin/hello:latest","name":"bad","scale_to_zero":{"policy":"sometimes"}}'
expect 400 "unknown policy"
api POST /v1/instances '{"image":"admin/hello:latest","name":"bad","scale_to_zero":{"policy":"on","stateful":"yes"}}'
expect 400 "stateful not a bool"
api POST /v1/instances '{"image":"admin/hello:latest","name":"bad","scale_to_zero":{"policy":"on","cooldown_time_ms":86400001}}'
expect 400 "cooldown range"
for n in legacy off; do api DELETE "/v1/instances/$n"; expect 200 "delete $n"; done

# --- an instance that scales to zero after 1.5 s without traffic
api POST /v1/instances '{"image":"admin/hello:latest","name":"sleepy","scale_to_zero":{"policy":"on","cooldown_time_ms":1500},"service_group":{"services":[{"port":443,"destination_port":8080,"handlers":["http","tls"]}]},"autostart":true,"wait_timeout_ms":10000}'
expect 200 create
FQDN=$(jget 'd["data"]["instances"][0]["service_group"]["domains"][0]["fqdn"]')
UUID=$(jget 'd["data"]["instances"][0]["uuid"]')

ing_start "$ING_NODES" "traffic_interval_ms = 200
wake_timeout_ms = 30000"

get() { ing_get "$FQDN" "$1"; }
# "state start_count" in one look
look() { api GET "/v1/instances/sleepy"; jget '"%s %s" % (d["data"]["instances"][0]["state"], d["data"]["instances"][0]["start_count"])'; }
app_up() { [ -s "$T_TMP/app-$UUID.pid" ] && kill -0 "$(cat "$T_TMP/app-$UUID.pid")" 2>/dev/null; }

t_wait_for 20 bash -c "$(declare -f get ing_get); FQDN=$FQDN ADDR=$ADDR T_TMP=$T_TMP; get /dev/null | grep -q '^200'" \
    || t_fail "no answer through the ingress for $FQDN"

# --- quiet for the cooldown: standby, and the app really is gone
api GET "/v1/instances/sleepy/wait?state=standby&timeout_ms=15000"
expect 200 "wait for standby"
read -r st s0 <<<"$(look)"
[ "$st" = standby ] || t_fail "not in standby: $BODY"
app_up && t_fail "the instance is in standby but its app still runs"

# --- the next request wakes it and is answered (one slow response, no error)
out=$(get "$T_TMP/body1") || t_fail "the request after standby failed: $out"
[ "${out%% *}" = 200 ] || t_fail "the request after standby answered $out: $(cat "$T_TMP/body1")"
grep -q 'Hello from nubo' "$T_TMP/body1" || t_fail "wake: unexpected body $(cat "$T_TMP/body1")"
t_log "woken by a request: first byte after ${out#* } s"
# (it may be back in standby already: a look can take longer than the cooldown here)
[ "$(look | cut -d' ' -f2)" = $((s0 + 1)) ] || t_fail "after one wake (start_count was $s0): $BODY"

# --- standby again; 10 concurrent first requests: all answered, one wake
api GET "/v1/instances/sleepy/wait?state=standby&timeout_ms=15000"
expect 200 "standby again"
read -r st s1 <<<"$(look)"
pids=()
for i in $(seq 10); do get "$T_TMP/c$i" > "$T_TMP/c$i.code" 2>&1 & pids+=($!); done
wait "${pids[@]}"
for i in $(seq 10); do
    c=$(cat "$T_TMP/c$i.code")
    [ "${c%% *}" = 200 ] && grep -q 'Hello from nubo' "$T_TMP/c$i" || t_fail "concurrent request $i: $c $(cat "$T_TMP/c$i" 2>/dev/null)"
done
[ "$(look | cut -d' ' -f2)" = $((s1 + 1)) ] || t_fail "10 concurrent requests, want one wake from start_count $s1: $BODY"
wakes=$(curl -fsS -H "Authorization: Bearer $ADMIN" "$CTL_URL/metrics" | sed -n 's/^nubo_scale_to_zero_wakes_total //p')
[ "$wakes" = 2 ] || t_fail "controller counted $wakes wakes, want 2"
t_log "10 concurrent first requests: all 200, one wake"

# --- HAProxy reloads while a request is held for the wake (a new group is a new backend): the
# old worker keeps the client's connection and the held one, knows nothing of the woken server
# and cannot reach a server behind `namespace` in its soft stop; the request is still answered
api GET "/v1/instances/sleepy/wait?state=standby&timeout_ms=15000"
expect 200 "standby before the reload"
touch "$T_TMP/hold-$UUID"
get "$T_TMP/body5" > "$T_TMP/body5.code" 2>&1 & held=$!
t_wait_for 15 grep -q "hold $UUID" "$T_TMP/hook.log" || t_fail "the held request's wake did not reach the start"
reloads=$(grep -c 'with a reload' "$T_TMP/ingress.log")
api POST /v1/instances '{"image":"admin/hello:latest","name":"reloader","service_group":{"services":[{"port":443,"destination_port":8080,"handlers":["http","tls"]}]},"autostart":false}'
expect 200 "create a group while a request is held"
t_wait_for 15 bash -c "[ \$(grep -c 'with a reload' '$T_TMP/ingress.log') -gt $reloads ]" \
    || t_fail "a new group did not reload HAProxy"
rm -f "$T_TMP/hold-$UUID"
wait "$held" || true
out=$(cat "$T_TMP/body5.code")
[ "${out%% *}" = 200 ] && grep -q 'Hello from nubo' "$T_TMP/body5" \
    || t_fail "a request held across a reload answered $out: $(cat "$T_TMP/body5" 2>/dev/null)"
t_log "a request held across a reload: answered after ${out#* } s"
api DELETE /v1/instances/reloader
expect 200 "delete the reloading group"

# --- a user's stop of a standby instance: traffic does not wake it
api GET "/v1/instances/sleepy/wait?state=standby&timeout_ms=15000"
expect 200 "standby a third time"
api PUT /v1/instances/sleepy/stop '{}'
expect 200 "stop a standby instance"
[ "$(look | cut -d' ' -f1)" = stopped ] || t_fail "stop of a standby instance: $BODY"
out=$(get "$T_TMP/body3") || true
[ "${out%% *}" = 503 ] || t_fail "a stopped instance's URL answered $out"
sleep 0.5
[ "$(look | cut -d' ' -f1)" = stopped ] || t_fail "a stopped instance was woken: $BODY"
app_up && t_fail "a stopped instance's app runs"

# --- a crash while waking: the held request gets an error (503) at once, not a hang until
# wake_timeout_ms (30 s here; curl gives up at 25 s)
api PUT /v1/instances/sleepy/start '{}'
expect 200 "start before the crash"
api GET "/v1/instances/sleepy/wait?state=standby&timeout_ms=20000"
expect 200 "standby before the crash"
touch "$T_TMP/crash-$UUID"
out=$(curl -sS --max-time 25 --cacert "$T_TMP/cert.pem" --resolve "$FQDN:443:$ADDR" -o "$T_TMP/body4" \
    -w '%{http_code} %{time_total}' "https://$FQDN/" 2>&1) || t_fail "a crash while waking: no answer ($out)"
[ "${out%% *}" = 503 ] || t_fail "a crash while waking answered $out: $(cat "$T_TMP/body4")"
grep -q "crash $UUID" "$T_TMP/hook.log" || t_fail "the wake did not reach the (crashing) start"
rm -f "$T_TMP/crash-$UUID"
t_log "a crash while waking: 503 after ${out#* } s"

# --- start works on it again; delete
api PUT /v1/instances/sleepy/start '{}'
expect 200 start
api GET "/v1/instances/sleepy/wait?state=running&timeout_ms=10000"
expect 200 "running after start"
api DELETE /v1/instances/sleepy
expect 200 delete
# --- policy idle vs on, each with a keep-alive client connection open through the ingress: the
# idle instance goes to standby (HAProxy holds the silent connection; it has no request in
# flight), the on instance stays running; the next request on each same connection is answered
SVC443='"service_group":{"services":[{"port":443,"destination_port":8080,"handlers":["http","tls"]}]},"autostart":true,"wait_timeout_ms":10000'
api POST /v1/instances "{\"image\":\"admin/hello:latest\",\"name\":\"idler\",\"scale_to_zero\":{\"policy\":\"idle\",\"cooldown_time_ms\":1000},$SVC443}"
expect 200 "create an idle instance"
IDLEFQ=$(jget 'd["data"]["instances"][0]["service_group"]["domains"][0]["fqdn"]')
api POST /v1/instances "{\"image\":\"admin/hello:latest\",\"name\":\"keeper\",\"scale_to_zero\":{\"policy\":\"on\",\"cooldown_time_ms\":1000},$SVC443}"
expect 200 "create an on instance"
KEEPFQ=$(jget 'd["data"]["instances"][0]["service_group"]["domains"][0]["fqdn"]')
for fq in "$IDLEFQ" "$KEEPFQ"; do
    t_wait_for 20 bash -c "$(declare -f ing_get); ADDR=$ADDR T_TMP=$T_TMP; ing_get $fq /dev/null | grep -q '^200'" \
        || t_fail "no answer through the ingress for $fq"
done
# one request on each connection, then (after $T_TMP/go appears) one more on the same one
python3 - "$ADDR" "$T_TMP/cert.pem" "$T_TMP/go" "$IDLEFQ" "$KEEPFQ" > "$T_TMP/ka.out" 2>&1 <<'PY' &
import http.client, os, socket, ssl, sys, time
addr, ca, go, fqs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
cs = []
for fq in fqs:
    c = http.client.HTTPSConnection(fq, 443, context=ssl.create_default_context(cafile=ca))
    c._create_connection = lambda *a, **k: socket.create_connection((addr, 443))
    try:
        c.request("GET", "/"); r = c.getresponse(); r.read()
    except OSError as e:
        sys.exit("%.3f first %s: %r" % (time.time(), fq, e))
    cs.append((c, c.sock.getsockname())); print("first", fq, r.status, flush=True)
while not os.path.exists(go):
    time.sleep(0.05)
for fq, (c, name) in zip(fqs, cs):
    c.request("GET", "/"); r = c.getresponse(); body = r.read()
    same = c.sock is not None and c.sock.getsockname() == name
    print("second", fq, r.status, "same" if same else "reconnected", b"Hello from nubo" in body, flush=True)
PY
KA=$!
t_track_pid "$KA" # a failed check must not leave the client waiting for go
t_log "keep-alive client started"
t_wait_for 60 grep -q "first $KEEPFQ" "$T_TMP/ka.out" || t_fail "keep-alive client: $(cat "$T_TMP/ka.out")"
# Start counts from here on: python may take longer to start than the 1 s cooldowns, and then
# its first requests woke instances already in standby; from now on the connections are open.
api GET /v1/instances/keeper
k0=$(jget 'd["data"]["instances"][0]["start_count"]')
api GET /v1/instances/idler
i0=$(jget 'd["data"]["instances"][0]["start_count"]')
api GET "/v1/instances/idler/wait?state=standby&timeout_ms=8000"
expect 200 "idle instance with a silent keep-alive connection to standby"
sleep 1.5 # past the on instance's cooldown too
api GET /v1/instances/keeper
[ "$(jget '"%s %s" % (d["data"]["instances"][0]["state"], d["data"]["instances"][0]["start_count"])')" = "running $k0" ] \
    || t_fail "an on instance with an open connection left running (start_count was $k0): $BODY"
touch "$T_TMP/go"
wait $KA || t_fail "keep-alive client: $(cat "$T_TMP/ka.out")"
grep -q "second $IDLEFQ 200 same True" "$T_TMP/ka.out" || t_fail "idle: the request on the held connection: $(cat "$T_TMP/ka.out")"
grep -q "second $KEEPFQ 200 same True" "$T_TMP/ka.out" || t_fail "on: the second request: $(cat "$T_TMP/ka.out")"
api GET /v1/instances/idler
[ "$(jget 'd["data"]["instances"][0]["start_count"]')" = $((i0 + 1)) ] || t_fail "idle instance not woken once (start_count was $i0): $BODY"
t_log "idle: standby under a silent keep-alive connection, woken by its next request; on: held awake"
for n in idler keeper; do api DELETE "/v1/instances/$n"; expect 200 "delete $n"; done

# --- a TCP+TLS port (no http handler): the held connection is woken and spliced through
api POST /v1/instances '{"image":"admin/hello:latest","name":"rawzz","scale_to_zero":{"policy":"on","cooldown_time_ms":1500},"service_group":{"services":[{"port":18443,"destination_port":8080,"handlers":["tls"]}]},"autostart":true,"wait_timeout_ms":10000}'
expect 200 "create a TCP service"
RAWFQDN=$(jget 'd["data"]["instances"][0]["service_group"]["domains"][0]["fqdn"]')
rawget() { curl -sS --max-time 20 --cacert "$T_TMP/cert.pem" --resolve "$RAWFQDN:18443:$ADDR" -o "$1" -w '%{http_code} %{time_starttransfer}' "https://$RAWFQDN:18443/"; }
t_wait_for 20 bash -c "$(declare -f rawget); RAWFQDN=$RAWFQDN ADDR=$ADDR T_TMP=$T_TMP; rawget /dev/null | grep -q '^200'" \
    || t_fail "no answer through the TCP+TLS port for $RAWFQDN"
api GET "/v1/instances/rawzz/wait?state=standby&timeout_ms=15000"
expect 200 "TCP service to standby"
out=$(rawget "$T_TMP/raw1") || t_fail "the connection to a TCP service in standby failed: $out"
[ "${out%% *}" = 200 ] && grep -q 'Hello from nubo' "$T_TMP/raw1" \
    || t_fail "TCP wake answered $out: $(cat "$T_TMP/raw1")"
t_log "TCP connection woke its instance: first byte after ${out#* } s"
api DELETE /v1/instances/rawzz
expect 200 "delete the TCP service"

grep -E "wake asked|to standby" "$T_TMP/ingress.log" "$T_TMP/controller.log" | tail -4 >&2 || true
t_log "PASS: scale-to-zero through the ingress"
