#!/bin/bash
# Issue 17 end to end with the real agent and real (TCG) guests: `nubo-devcluster up --ha`
# (a private PostgreSQL, two controllers, one node, the metro's ingress). kill -9 of the leader in
# the middle of a create burst: the follower takes over (the time is measured and logged; only a
# generous bound is asserted), every acknowledged create is there on the new leader, the guests
# that ran before were not restarted (same qemu process, same started_at and start count), the
# agent works for the new leader (an instance created after the takeover runs), the ingress
# follows it (a service created after the takeover answers through HAProxy, an old one still
# does) and the CLI's controller list finds it; the killed controller, started again, follows
# with the newer epoch.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/lib_cluster.sh"
t_cluster_up fra:1 --ha
t_cluster_runtimes --runtimes base # official/hello (base is the smallest runtime it builds with)
D=$NUBO_DEVCLUSTER_DIR
C1=https://$NUBO_DEVCLUSTER_API C2=https://$NUBO_DEVCLUSTER_API2
INGRESS=0
[ -s "$D/ingress/fra/ingress.pid" ] && INGRESS=1

now_ms() { date +%s%3N; }
# when controller log $1 last said it leads, in ms since the epoch (its log's clock)
led_at_ms() {
    local t
    t=$(grep 'leader: leading with epoch' "$1" | tail -1 | cut -d' ' -f1)
    date -d "$(date +%F) $t" +%s%3N
}
# the qemu process of an instance's domain (the node's libvirtd writes run/qemu/<domain>.pid;
# the domain is named by the instance's uuid), checked against its command line
qemu_pid() {
    local p
    p=$(cat "$D/nodes/fra-1/run/qemu/$1.pid" 2>/dev/null) || return 1
    tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q "guest=$1," || return 1
    echo "$p"
}
# "started_at start_count" of an instance, as the leader ($API) says
start_of() { t_api GET "/v1/instances/$1" | t_json '"%s %s" % (d["data"]["instances"][0]["started_at"], d["data"]["instances"][0]["start_count"])'; }
wait_running() { # uuid: the API's own wait, answered when the instance runs
    local r
    r=$(t_api GET "/v1/instances/$1/wait?state=running&timeout_ms=90000") || return 1
    [ "$(t_json 'd["data"]["instances"][0]["status"]' <<<"$r")" = success ] || { t_log "wait $1: $r"; return 1; }
}
node_ready() {
    [ "$(curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" "$API/v1/nodes" |
        t_json '[n["state"] for n in d["data"]["nodes"] if n["name"]=="fra-1"][0]')" = ready ]
}
# an HTTP service of hello (--http 8080) behind the metro's ingress at NAME.fra.nubo.local
create_hello() { # name [service domain name] -> its uuid
    local svc=
    [ -z "${2:-}" ] || svc=",\"service_group\":{\"services\":[{\"port\":443,\"destination_port\":8080,\"handlers\":[\"http\",\"tls\"]}],\"domains\":[{\"name\":\"$2\"}]}"
    local r
    r=$(t_api POST /v1/instances "{\"image\":\"official/hello:latest\",\"name\":\"$1\",\"memory_mb\":32,\"args\":[\"--http\",\"8080\"],\"metro\":\"fra\",\"autostart\":true$svc}")
    [ "$(t_json 'd["data"]["instances"][0]["status"]' <<<"$r")" = success ] || { t_log "create $1: $r"; return 1; }
    t_json 'd["data"]["instances"][0]["uuid"]' <<<"$r"
}
ingress_get() { # name: the hello answer through HAProxy (TLS from the cluster's CA)
    curl -fsS --max-time 5 --resolve "$1.fra.nubo.local:443:$ADDR" "https://$1.fra.nubo.local/"
}
ingress_answers() { ingress_get "$1" | grep -q "Hello from nubo's hello unikernel"; }

# --- 1. who leads: the first controller started first
t_wait_for 30 is_leader "$C1" || t_fail "the first controller does not lead: $(role_of "$C1")"
t_wait_for 30 is_follower "$C2" || t_fail "the second controller does not follow: $(role_of "$C2")"
read -r _ EPOCH0 _ < <(role_of "$C1")
LEADER_PID=$(cat "$D/controller/controller.pid")
API=$C1
t_log "leader $C1 (pid $LEADER_PID, epoch $EPOCH0), follower $C2"

# --- 2. guests that run before the takeover
PRE=()
for i in 1 2 3; do
    svc=
    [ "$i" != 1 ] || svc=hapre
    u=$(create_hello "pre-$i" $svc) || t_fail "cannot create pre-$i"
    PRE+=("$u")
done
declare -A PID0 START0
for u in "${PRE[@]}"; do
    wait_running "$u" || t_fail "$u did not reach running: $(t_api GET "/v1/instances/$u")"
    PID0[$u]=$(qemu_pid "$u") || t_fail "no qemu process for $u on fra-1"
    START0[$u]=$(start_of "$u")
done
t_log "running before: $(for u in "${PRE[@]}"; do printf '%s(qemu %s, %s) ' "${u:0:8}" "${PID0[$u]}" "${START0[$u]}"; done)"
if [ "$INGRESS" = 1 ]; then
    t_wait_for 60 ingress_answers hapre || t_fail "hapre does not answer through the ingress: $(ingress_get hapre 2>&1)"
fi

# --- 3. a create burst, kill -9 of the leader in its middle. The loader knows both controllers
# (as the CLI does): a refused connection or a 503 moves it to the other one, a 307 is followed;
# an acknowledged create = a 200 with a success item. A create that failed is not sent again.
# The burst's instances stay stopped (autostart false): what is asserted of them is the store;
# a guest each would only load the machine's TCG.
: > "$T_TMP/acked"
python3 - "$C1,$C2" "$USER_TOKEN" "$CA" "$T_TMP" <<'PY' &
import http.client, json, os, ssl, sys, time, urllib.parse
urls, token, ca, tmp = sys.argv[1].split(","), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
acked = open(f"{tmp}/acked", "a", buffering=1)
log = open(f"{tmp}/burst.log", "a", buffering=1)
cur, i = 0, 0
while not os.path.exists(f"{tmp}/burst-stop") and i < 2000:
    i += 1
    body = json.dumps({"image": "official/hello:latest", "name": f"burst-{i}", "memory_mb": 16,
                       "metro": "fra", "autostart": False})
    url, hops, status, text = urls[cur] + "/v1/instances", 0, None, ""
    while True:
        u = urllib.parse.urlsplit(url)
        c = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=10)
        try:
            c.request("POST", u.path, body, {"Authorization": "Bearer " + token,
                                             "Content-Type": "application/json"})
            r = c.getresponse()
            status, text, loc = r.status, r.read().decode(errors="replace"), r.getheader("Location")
        except OSError as e:
            status, text, loc = None, str(e), None
        finally:
            c.close()
        if status == 307 and loc and hops < 2:
            hops, url = hops + 1, loc
            continue
        break
    origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(url))
    if status == 200:
        it = json.loads(text)["data"]["instances"][0]
        if it.get("status") == "success":
            acked.write(it["uuid"] + "\n")
            cur = urls.index(origin) if origin in urls else cur
            continue
    log.write(f"burst-{i} {time.strftime('%T')} {origin}: {status} {text[:200]}\n")
    cur = (urls.index(origin) + 1) % len(urls) if origin in urls else (cur + 1) % len(urls)
    time.sleep(0.1)
log.write(f"{i} creates sent\n")
PY
LOADER=$!
t_track_pid "$LOADER"
acked_at_least() { [ "$(wc -l < "$T_TMP/acked")" -ge "$1" ]; }
t_wait_for 60 acked_at_least 10 || t_fail "the burst did not get going: $(tail -3 "$T_TMP/burst.log" 2>/dev/null)"
kill -9 "$LEADER_PID"
T0=$(now_ms)
AT_KILL=$(wc -l < "$T_TMP/acked")
t_log "leader killed (kill -9 $LEADER_PID) after $AT_KILL acknowledged creates"

# --- 4. the follower takes over
t_wait_for 60 is_leader "$C2" || t_fail "the follower did not take over: $(role_of "$C2")"
TAKEOVER_MS=$(($(led_at_ms "$D/controller2/controller.log") - T0))
read -r _ EPOCH1 _ < <(role_of "$C2")
[ "$EPOCH1" -gt "$EPOCH0" ] || t_fail "the new leader's epoch $EPOCH1 is not past $EPOCH0"
t_log "takeover: $C2 leads (epoch $EPOCH1) $TAKEOVER_MS ms after the kill (lease_ttl_ms 3000, lease_check_ms 500)"
grep 'leader: leading with epoch' "$D/controller2/controller.log" | tail -1 >&2
API=$C2
# the burst goes on through the new leader, then stops
t_wait_for 60 acked_at_least $((AT_KILL + 10)) || t_fail "no creates acknowledged after the takeover: $(tail -3 "$T_TMP/burst.log")"
touch "$T_TMP/burst-stop"
wait "$LOADER" || t_fail "the burst's loader failed: $(tail -3 "$T_TMP/burst.log")"
ACKED=$(wc -l < "$T_TMP/acked")
t_log "burst: $ACKED acknowledged ($AT_KILL before the kill), $(grep -c '^burst-' "$T_TMP/burst.log" || true) not"

# every acknowledged create is on the new leader
t_api GET "/v1/instances?details=false" | t_json '"\n".join(i["uuid"] for i in d["data"]["instances"])' |
    sort > "$T_TMP/present"
MISSING=$(sort "$T_TMP/acked" | comm -23 - "$T_TMP/present")
[ -z "$MISSING" ] || t_fail "$(wc -l <<<"$MISSING") acknowledged create(s) missing on the new leader: $MISSING"

# the agent works for the new leader: a create placed now reaches running (an assignment from
# the new leader's watch, the agent's report back to it), and the node is ready there
t_wait_for 30 node_ready || t_fail "fra-1 is not ready on the new leader"
svc=
[ "$INGRESS" != 1 ] || svc=hapost
POST=$(create_hello post-1 $svc) || t_fail "cannot create post-1 on the new leader"
wait_running "$POST" || t_fail "an instance created after the takeover did not run: $(t_api GET "/v1/instances/$POST")"
t_log "post-1 ($POST) created on the new leader and running"

# the guests from before were not restarted: same qemu process, same start
for u in "${PRE[@]}"; do
    wait_running "$u" || t_fail "$u is not running after the takeover: $(t_api GET "/v1/instances/$u")"
    p=$(qemu_pid "$u") || t_fail "no qemu process for $u after the takeover"
    [ "$p" = "${PID0[$u]}" ] || t_fail "$u was restarted: qemu pid ${PID0[$u]} -> $p"
    s=$(start_of "$u")
    [ "$s" = "${START0[$u]}" ] || t_fail "$u was restarted: started_at/start_count ${START0[$u]} -> $s"
done
t_log "the ${#PRE[@]} guests from before run on, not restarted"

# the ingress follows the new leader: the new service's route reached HAProxy, the old one stays
if [ "$INGRESS" = 1 ]; then
    t_wait_for 60 ingress_answers hapost || t_fail "hapost (created after the takeover) does not answer through the ingress: $(ingress_get hapost 2>&1)"
    t_wait_for 30 ingress_answers hapre || t_fail "hapre no longer answers through the ingress: $(ingress_get hapre 2>&1)"
    t_log "ingress: hapost (new) and hapre (old) answer through HAProxy"
else
    t_log "no ingress in this cluster (haproxy or nubo-ingress missing): its resync is not checked"
fi
# the CLI's profile lists both controllers; the first is the dead one
[ "$("$NUBO" instances get post-1 -o json | t_json 'd[0]["state"]')" = running ] || t_fail "the CLI did not find the new leader"

# --- 5. the killed controller, started again, follows the new leader with the newer epoch
"$DC" up --ha > "$T_TMP/cluster-up2.log" 2>&1 || { tail -20 "$T_TMP/cluster-up2.log" >&2; t_fail "devcluster up after the kill failed"; }
t_wait_for 30 is_follower "$C1" || t_fail "the old leader did not come back as a follower: $(role_of "$C1")"
read -r _ EPOCH_SEEN LEADER_SEEN < <(role_of "$C1")
[ "$EPOCH_SEEN" = "$EPOCH1" ] && [ "$LEADER_SEEN" = "$C2" ] ||
    t_fail "the old leader sees epoch $EPOCH_SEEN led by $LEADER_SEEN, not $EPOCH1 by $C2"
is_leader "$C2" || t_fail "the new leader lost the lead when the old one came back: $(role_of "$C2")"
t_log "PASS: HA end to end (takeover $TAKEOVER_MS ms, $ACKED acknowledged creates kept, no guest restarted)"
