# Failures on a private dev cluster: kill -9 the controller during a burst of creates (every
# acknowledged instance survives and converges), kill -9 an agent (its guests keep running and
# are re-adopted), and stop an agent for good (its node becomes unavailable after the grace).
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/lib_cluster.sh"
t_cluster_up fra:2,was:1
t_cluster_runtimes
D=$NUBO_DEVCLUSTER_DIR

# --- kill -9 the controller in the middle of a burst of creates
t_log "burst of creates with a kill -9 of the controller in the middle"
acked=$T_TMP/acked
: > "$acked"
(
    for i in $(seq 1 40); do
        r=$(curl -sS --max-time 5 -X POST -H "Authorization: Bearer $USER_TOKEN" \
            -d "{\"image\":\"official/hello:latest\",\"name\":\"burst-$i\",\"memory_mb\":32,\"args\":[\"--wait\"],\"metro\":\"fra\",\"autostart\":true}" \
            "$API/v1/instances" 2>/dev/null) || continue
        # Acknowledged = the API said success for the item.
        python3 -c 'import json,sys; d=json.loads(sys.argv[1]); i=d["data"]["instances"][0]; assert i["status"]=="success"; print(i["uuid"])' "$r" >> "$acked" 2>/dev/null || true
    done
) &
burst=$!
t_track_pid "$burst"
enough_acked() { [ "$(wc -l < "$acked")" -ge 8 ]; }
t_wait_for 60 enough_acked || t_fail "creates are not being acknowledged"
kill -9 "$(cat "$D/controller/controller.pid")"
t_log "controller killed after $(wc -l < "$acked") acknowledged creates"
wait "$burst" || true
n_acked=$(wc -l < "$acked")
"$DC" up > "$T_TMP/cluster-up2.log" 2>&1 || t_fail "devcluster up after the kill failed"
missing=0
for u in $(cat "$acked"); do
    st=$(t_api GET "/v1/instances/$u" | t_json 'd["data"]["instances"][0]["status"]')
    [ "$st" = success ] || { t_log "acknowledged $u is missing"; missing=$((missing + 1)); }
done
[ "$missing" = 0 ] || t_fail "$missing of $n_acked acknowledged instances lost by the controller crash"
"$NUBO" instances wait $(cat "$acked") --until running --timeout 180s > /dev/null \
    || t_fail "acknowledged instances did not converge to running after the restart"
t_log "all $n_acked acknowledged creates survived the kill -9 and are running"

# --- kill -9 an agent: guests keep running and are re-adopted
t_log "kill -9 the agent of fra-1"
on_fra1=$(t_api GET /v1/instances | python3 -c '
import json,sys; d=json.load(sys.stdin)
print(" ".join(i["uuid"] for i in d["data"]["instances"] if i.get("node")=="fra-1" and i["state"]=="running"))')
[ -n "$on_fra1" ] || t_fail "no running instance on fra-1 to test with"
starts_before=$(t_api GET /v1/instances | t_json '" ".join(str(i["start_count"]) for i in d["data"]["instances"] if i.get("node")=="fra-1")')
"$DC" agent-stop fra-1 --kill
doms=$("$DC" exec fra-1 virsh -q -c qemu:///system list --name | sort)
for u in $on_fra1; do grep -qx "$u" <<<"$doms" || t_fail "guest $u died with its agent"; done
"$DC" agent-start fra-1
sleep 1
t_wait_for 30 bash -c "curl -fsS -H 'Authorization: Bearer $ADMIN_TOKEN' $API/v1/nodes | python3 -c 'import json,sys; assert any(n[\"name\"]==\"fra-1\" and n[\"state\"]==\"ready\" for n in json.load(sys.stdin)[\"data\"][\"nodes\"])'" \
    || t_fail "fra-1 did not come back after its agent restarted"
starts_after=$(t_api GET /v1/instances | t_json '" ".join(str(i["start_count"]) for i in d["data"]["instances"] if i.get("node")=="fra-1")')
[ "$starts_before" = "$starts_after" ] || t_fail "re-adoption restarted guests: start counts $starts_before -> $starts_after"
one=${on_fra1%% *}
"$NUBO" instances stop "$one" > /dev/null || t_fail "stop after re-adoption failed"
"$NUBO" instances wait "$one" --until stopped --timeout 60s > /dev/null || t_fail "re-adopted guest does not obey a stop"
t_log "fra-1's guests survived the agent kill and were re-adopted"

# --- an agent gone for good: its node becomes unavailable after the grace
t_log "stop was-1's agent for good"
"$NUBO" run --metro=was -m 32Mi --name was-guest --image=official/hello:latest -- --wait > /dev/null || t_fail "run on was failed"
"$DC" agent-stop was-1
node_state() { curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" "$API/v1/nodes" | t_json '[n["state"] for n in d["data"]["nodes"] if n["name"]=="was-1"][0]'; }
t_wait_for 40 bash -c "[ \"\$(curl -fsS -H 'Authorization: Bearer $ADMIN_TOKEN' $API/v1/nodes | python3 -c 'import json,sys; print([n[\"state\"] for n in json.load(sys.stdin)[\"data\"][\"nodes\"] if n[\"name\"]==\"was-1\"][0])')\" = unavailable ]" \
    || t_fail "was-1 is '$(node_state)', not unavailable, 40 s after its agent stopped"
st=$("$NUBO" instances get was-guest -o json)
t_log "was-guest after its node went away: $(t_json 'd[0]["state"]' <<<"$st")"
out=$("$NUBO" run --metro=was -m 32Mi --image=official/hello:latest -- --wait 2>&1) && t_fail "create on a metro with no ready node succeeded: $out"
grep -qi 'capacity\|no node\|unavailable' <<<"$out" || t_fail "unclear error for a metro without ready nodes: $out"
t_log "PASS: faults"
