#!/bin/bash
# Two controllers on one PostgreSQL (a private server started here): exactly one leads, the
# other answers 307 to it; fake agents reach them through tests/tools/leader_proxy.py (the
# HAProxy of a deployment). kill -9 of the leader in the middle of a create burst: every
# acknowledged create is on the new leader, the takeover time is measured, and no instance is
# restarted (the fake agents' start/stop hook sees one start per instance and no stop). The
# killed controller comes back as a follower. Fencing: the leader is paused (SIGSTOP) across a
# takeover with a create waiting for it; once resumed (SIGCONT) it writes nothing (PostgreSQL's
# statement log, per controller session), the create is not acknowledged, and it rejoins as a
# follower.
source "$NUBO_SRC/tests/lib.sh"
NUBO_TEST_STORE=postgresql
source "$NUBO_SRC/tests/tools/controller-env.sh"

# "ROLE EPOCH LEADER_URL" of a controller's /healthz (sed: this runs in tight loops)
role_of() {
    curl -fsS --max-time 5 "$1/healthz" |
        sed -E 's/.*"role":"([a-z]*)".*"epoch":([0-9]*).*"leader_url":"([^"]*)".*/\1 \2 \3/'
}
is_leader() { [ "$(role_of "$1" | cut -d' ' -f1)" = leader ]; }
is_follower() { [ "$(role_of "$1" | cut -d' ' -f1)" = follower ]; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# when controller log $1 last said it leads, in ms since the epoch (its log's clock)
led_at_ms() {
    local t
    t=$(grep 'leader: leading with epoch' "$1" | tail -1 | cut -d' ' -f1)
    date -d "$(date +%F) $t" +%s%3N
}

cat > "$T_TMP/hook" <<EOF
#!/bin/sh
echo "\$1 \$2" >> "$T_TMP/churn"
EOF
chmod +x "$T_TMP/hook"

PA=$(t_free_port) PB=$(t_free_port) PP=$(t_free_port)
CTL_GRACE_MS=10000 # the default: agents reconnecting after a takeover back off up to 5 s
CTL_NAME=a CTL_PORT=$PA ctl_start
A_URL=$CTL_URL A_PID=$CTL_PID
t_wait_for 20 is_leader "$A_URL" || t_fail "the first controller does not lead: $(role_of "$A_URL")"
# every data-modifying statement, with the session's name (ctl-a, ctl-b), in the server's log
PSQL=("$PG_BIN/psql" -qAt "$T_STORE_URL")
"${PSQL[@]}" -c "ALTER SYSTEM SET log_statement='mod'" -c "ALTER SYSTEM SET log_line_prefix='%m [%a] '" \
    -c "SELECT pg_reload_conf()" >/dev/null || t_fail "cannot turn on statement logging"
unset CTL_PORT
CTL_NAME=b CTL_PORT=$PB ctl_start
B_URL=$CTL_URL B_PID=$CTL_PID
t_wait_for 20 is_follower "$B_URL" || t_fail "the second controller does not follow: $(role_of "$B_URL")"
read -r _ EPOCH LEADER < <(role_of "$B_URL")
[ "$LEADER" = "$A_URL" ] || t_fail "the follower names $LEADER as leader, not $A_URL"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$A_URL/healthz/leader")" = 200 ] || t_fail "/healthz/leader of the leader"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$B_URL/healthz/leader")" = 503 ] || t_fail "/healthz/leader of the follower"
R=$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H "Authorization: Bearer $ADMIN" "$B_URL/v1/instances?details=false")
[ "$R" = "307 $A_URL/v1/instances?details=false" ] || t_fail "the follower answered '$R', not a 307 to the leader"
t_log "A leads (epoch $EPOCH), B follows and redirects to it"

python3 "$NUBO_SRC/tests/tools/leader_proxy.py" "$PP" "$A_URL" "$B_URL" >> "$T_TMP/proxy.log" 2>&1 &
t_track_pid $!
CTL_URL=http://127.0.0.1:$PP
t_wait_for 60 curl -fsS "$CTL_URL/healthz/leader" || t_fail "the proxy does not reach the leader"
fake_start 4 --boot-ms 50 --vcpus 64 --hook "$T_TMP/hook"
index_image admin/hello latest

# The burst: one create after the other through the proxy, an acknowledged one = a 200 with
# the instance's uuid; the failures while nobody leads are expected and not retried.
N=${HA_BURST:-200}
python3 - "$CTL_URL" "$ADMIN" "$N" > "$T_TMP/acked" 2> "$T_TMP/burst.log" <<'PY' &
import json, sys, time, urllib.request
url, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
fails = 0
for i in range(n):
    body = json.dumps({"image": "admin/hello:latest", "name": f"burst-{i}", "autostart": True,
                       "memory_mb": 16}).encode()
    req = urllib.request.Request(url + "/v1/instances", body, method="POST", headers={
        "Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            d = json.load(r)
        it = d["data"]["instances"][0]
        if it.get("status") == "success":
            print(it["uuid"], flush=True)
            continue
        print(f"create {i}: {it.get('message')}", file=sys.stderr, flush=True)
    except Exception as e:
        print(f"create {i}: {e}", file=sys.stderr, flush=True)
    fails += 1
    time.sleep(0.05)
print(f"{fails} create(s) not acknowledged", file=sys.stderr)
PY
BURST=$!
acked_at_least() { [ "$(wc -l < "$T_TMP/acked")" -ge "$1" ]; }
t_wait_for 120 acked_at_least $((N / 3)) || t_fail "the burst did not get going: $(tail -3 "$T_TMP/burst.log")"
kill -9 "$A_PID"
T0=$(now_ms)
t_log "leader A killed after $(wc -l < "$T_TMP/acked") acknowledged creates"
t_wait_for 60 is_leader "$B_URL" || t_fail "B did not take over: $(role_of "$B_URL")"
T1=$(led_at_ms "$T_TMP/controller-b.log")
t_log "takeover: B leads $((T1 - T0)) ms after the kill of A (lease_ttl_ms 3000, lease_check_ms 500)"
grep "leader: leading" "$T_TMP/controller-b.log" | tail -1 >&2
wait "$BURST"
ACKED=$(wc -l < "$T_TMP/acked")
t_log "burst done: $ACKED of $N acknowledged ($(tail -1 "$T_TMP/burst.log"))"

api GET "/v1/instances?details=false"
expect 200 list-after-takeover
printf '%s' "$BODY" | python3 -c 'import json,sys; print("\n".join(i["uuid"] for i in json.load(sys.stdin)["data"]["instances"]))' \
    | sort > "$T_TMP/present"
MISSING=$(sort "$T_TMP/acked" | comm -23 - "$T_TMP/present" | wc -l)
[ "$MISSING" = 0 ] || t_fail "$MISSING acknowledged create(s) missing on the new leader"
all_running() {
    api GET /v1/instances
    [ "$(jget 'sum(1 for i in d["data"]["instances"] if i["state"] != "running")')" = 0 ]
}
t_wait_for 60 all_running || t_fail "not every instance runs after the takeover: $BODY"
STARTS=$(grep -c '^start ' "$T_TMP/churn")
TWICE=$(awk '$1=="start"{n[$2]++} END{for(u in n) if(n[u]>1) print u}' "$T_TMP/churn" | wc -l)
STOPS=$(grep -c '^stop ' "$T_TMP/churn" || true)
[ "$TWICE" = 0 ] && [ "$STOPS" = 0 ] || t_fail "instances restarted across the takeover: $TWICE started twice, $STOPS stopped"
[ "$STARTS" = "$(wc -l < "$T_TMP/present")" ] || t_fail "$STARTS starts for $(wc -l < "$T_TMP/present") instances"
t_log "all $ACKED acknowledged creates on B, $STARTS instance(s) running, none restarted"

# The killed controller comes back: a follower of B.
CTL_NAME=a CTL_PORT=$PA ctl_start
A_PID=$CTL_PID
t_wait_for 20 is_follower "$A_URL" || t_fail "A did not come back as a follower: $(role_of "$A_URL")"
read -r _ EPOCH_B LEADER < <(role_of "$A_URL")
[ "$LEADER" = "$B_URL" ] || t_fail "A names $LEADER as leader, not $B_URL"

# Fencing. A connection to B opened now carries a create sent while B is paused. On SIGCONT
# B either reads it before its overdue lease check (the fence refuses the write) or after it
# (a 307 to A: seen so far); either way it is not acknowledged and nothing is written. The fence
# itself is exercised deterministically by unit.test_store_pg (test_pg_fence).
python3 - "$PB" "$ADMIN" "$T_TMP/ready" "$T_TMP/go" > "$T_TMP/paused-create" 2>&1 <<'PY' &
import http.client, json, os, sys, time
port, token, ready, go = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
c.request("GET", "/healthz")
c.getresponse().read()
open(ready, "w").close()
while not os.path.exists(go):  # the test has stopped B
    time.sleep(0.05)
c.request("POST", "/v1/instances", json.dumps({"image": "admin/hello:latest", "name": "fenced",
          "autostart": True, "memory_mb": 16}),
          {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
r = c.getresponse()
print(r.status, r.read().decode().strip())
PY
CLIENT=$!
t_wait_for 60 test -e "$T_TMP/ready" || t_fail "the client did not connect to B"
PGLOG=$PG_DIR/postgres.log
kill -STOP "$B_PID"
T0=$(now_ms)
LOG_AT=$(wc -l < "$PGLOG")
touch "$T_TMP/go"
sleep 1 # the create reaches B's socket
t_wait_for 60 is_leader "$A_URL" || { kill -CONT "$B_PID"; t_fail "A did not take over from the paused B"; }
T1=$(led_at_ms "$T_TMP/controller-a.log")
t_log "B paused; A leads $((T1 - T0)) ms later: $(role_of "$A_URL")"
kill -CONT "$B_PID"
wait "$CLIENT"
t_log "the create B held while paused: $(cut -c1-200 "$T_TMP/paused-create")"
# B finds its lease gone, answers as a follower for a moment, then executes itself again (its
# port refuses meanwhile): the check waits for the new image to follow A
rejoined() {
    awk '/leader: starting again as a follower/ { f = 1 } f && /leader: following/ { ok = 1 }
         END { exit !ok }' "$T_TMP/controller-b.log"
}
b_follows_a() {
    local r role leader
    r=$(role_of "$B_URL") || return 1
    read -r role _ leader <<<"$r"
    [ "$role" = follower ] && [ "$leader" = "$A_URL" ]
}
t_wait_for 30 rejoined || t_fail "B did not start again as a follower: $(tail -5 "$T_TMP/controller-b.log")"
t_wait_for 30 b_follows_a || t_fail "B does not follow A ($A_URL): $(role_of "$B_URL")"
grep -q '"status":"success"' "$T_TMP/paused-create" && t_fail "the paused leader acknowledged a create"
# (its lease renewal, and once started again the schema check's insert of nothing, are not)
WROTE=$(tail -n +"$LOG_AT" "$PGLOG" | grep '\[ctl-b\] LOG: ' | grep -E 'INSERT|UPDATE|DELETE' \
    | grep -v -e 'UPDATE leader_lease' -e 'INSERT INTO nubo_schema SELECT 0 WHERE NOT EXISTS' || true)
[ -z "$WROTE" ] || t_fail "the paused leader wrote after its resumption: $WROTE"
grep -E "write refused|lost the lease" "$T_TMP/controller-b.log" | tail -3 >&2
api GET /v1/instances/fenced
failed_like 404 || t_fail "the fenced create exists: $BODY"
[ "$("${PSQL[@]}" -c "SELECT count(*) FROM nodes WHERE unavailable<>0")" = 0 ] || t_fail "nodes were marked unavailable"
t_wait_for 30 all_running || t_fail "instances not running on A: $BODY"
[ "$(grep -c '^stop ' "$T_TMP/churn" || true)" = 0 ] || t_fail "an instance was stopped across the second takeover"
t_log "fencing: ok (B wrote nothing after SIGCONT and follows A)"
