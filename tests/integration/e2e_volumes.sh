#!/bin/bash
# Volumes end to end on a private dev cluster: `nubo volumes create`, a Linux-runtime guest
# that writes a file on it (nubo run -v), stopped and deleted; the node's agent killed and
# restarted; a second guest on the same volume reads the file back; the volume's raw file
# lives on the node until `nubo volumes rm`.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/lib_cluster.sh"
t_cluster_up fra:1
t_cluster_runtimes
D=$NUBO_DEVCLUSTER_DIR
export NUBO_API=$API NUBO_TOKEN=$USER_TOKEN

"$NUBO" volumes create data --size 64MiB -q > /dev/null || t_fail "nubo volumes create"
vol_state() { t_api GET /v1/volumes/data | t_json 'd["data"]["volumes"][0]["state"]'; }
t_wait_for 60 bash -c "[ \"\$(curl -sS -H 'Authorization: Bearer $USER_TOKEN' $API/v1/volumes/data | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"data\"][\"volumes\"][0][\"state\"])')\" = available ]" \
    || t_fail "volume not available: $(vol_state)"
VOL=$(t_api GET /v1/volumes/data | t_json 'd["data"]["volumes"][0]["uuid"]')
RAW=$D/nodes/fra-1/agent/state/volumes/$VOL.raw
[ -f "$RAW" ] || t_fail "no raw file $RAW on the node"
/usr/sbin/dumpe2fs -h "$RAW" > /dev/null 2>&1 || t_fail "$RAW is not ext4"
logs_have() { "$NUBO" instances logs "$1" 2>&1 | grep -q "$2"; }

TOKEN=note-$RANDOM$RANDOM
# the app runs as the image's (unprivileged) user: the volume root is handed to it
"$NUBO" run --metro fra -m 128Mi -n writer -v data:/srv/data --image official/base:latest \
    -- /bin/sh -c "echo $TOKEN > /srv/data/note && sync && echo wrote-it; exec sleep 600" \
    > /dev/null || t_fail "nubo run -v failed"
t_wait_for 120 logs_have writer 'wrote-it\|nubo-init: cannot\|nubo-init: volume.*no disk' || true
"$NUBO" instances logs writer > "$T_TMP/writer.log" 2>&1
grep -q wrote-it "$T_TMP/writer.log" || t_fail "writer failed: $(tail -8 "$T_TMP/writer.log")"
grep -q "nubo-init: volume /dev/vd.* on /srv/data (ext4)" "$T_TMP/writer.log" ||
    t_fail "init did not mount the volume: $(tail -8 "$T_TMP/writer.log")"
# metrics of the running writer: libvirt's numbers through the agent's status batches
metric() { t_api GET /v1/instances/writer/metrics | t_json "d['data']['instances'][0]['$1']"; }
t_wait_for 60 bash -c "[ \"\$(curl -sS -H 'Authorization: Bearer $USER_TOKEN' $API/v1/instances/writer/metrics | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"data\"][\"instances\"][0][\"rss_bytes\"] > 0)')\" = True ]" ||
    t_fail "no rss for writer: $(t_api GET /v1/instances/writer/metrics)"
[ "$(metric cpu_time_ms)" -gt 0 ] || t_fail "no cpu time: $(t_api GET /v1/instances/writer/metrics)"
[ "$(metric boot_time_us)" -gt 0 ] || t_fail "no boot time: $(t_api GET /v1/instances/writer/metrics)"
t_api GET /v1/instances/metrics | t_json '[i["name"] for i in d["data"]["instances"]]' | grep -q writer ||
    t_fail "batch metrics lack writer"
"$NUBO" instances metrics writer > "$T_TMP/metrics.out" || t_fail "nubo instances metrics"
grep -E '^writer +[0-9.]+ MiB' "$T_TMP/metrics.out" > /dev/null || t_fail "metrics: $(cat "$T_TMP/metrics.out")"
t_api GET /v1/instances/nope/metrics | grep -q 'instance nope not found' ||
    t_fail "metrics of a missing instance: $(t_api GET /v1/instances/nope/metrics)"
"$NUBO" instances stop writer > /dev/null || t_fail "stop writer"
"$NUBO" instances wait writer --until stopped --timeout 60s > /dev/null || t_fail "writer did not stop"
"$NUBO" instances rm writer > /dev/null || t_fail "rm writer"
[ "$(vol_state)" = available ] || t_fail "after the writer's delete: $(vol_state)"

# the agent goes away and comes back: the volume is still there, and still the same
"$DC" agent-stop fra-1 --kill
"$DC" agent-start fra-1
t_wait_for 30 bash -c "curl -fsS -H 'Authorization: Bearer $ADMIN_TOKEN' $API/v1/nodes | python3 -c 'import json,sys; assert any(n[\"name\"]==\"fra-1\" and n[\"state\"]==\"ready\" for n in json.load(sys.stdin)[\"data\"][\"nodes\"])'" \
    || t_fail "fra-1 did not come back"
[ -f "$RAW" ] || t_fail "the agent restart lost $RAW"

"$NUBO" run --metro fra -m 128Mi -n reader -v data:/mnt/in:ro --image official/base:latest \
    -- /bin/sh -c 'cat /mnt/in/note; touch /mnt/in/x 2>/dev/null || echo read-only-ok; exec sleep 600' \
    > /dev/null || t_fail "second nubo run -v failed"
t_wait_for 120 logs_have reader 'read-only-ok\|nubo-init: cannot' || true
"$NUBO" instances logs reader > "$T_TMP/reader.log" 2>&1
grep -q "$TOKEN" "$T_TMP/reader.log" || t_fail "the file did not survive: $(tail -8 "$T_TMP/reader.log")"
grep -q read-only-ok "$T_TMP/reader.log" || t_fail "ro mount was writable: $(tail -8 "$T_TMP/reader.log")"
out=$("$NUBO" volumes rm data 2>&1) && t_fail "a volume attached to reader was deleted: $out"
"$NUBO" instances rm reader > /dev/null || t_fail "rm reader"
"$NUBO" volumes rm data > /dev/null || t_fail "nubo volumes rm"
t_wait_for 30 bash -c "[ ! -e '$RAW' ]" || t_fail "$RAW outlived its volume"
t_log "PASS: volumes end to end"
