# Issue 11, observations 2, 3 and 8 replayed on a private dev cluster, with images pushed the
# way an attacker would (tests/security/oci_push.py: layers and config as given):
#  2. an image config with 9,000 env entries: every user's GET /v1/images still answers 200,
#     the image is refused from the index with a one-line reason;
#  3. a 0.5 MB gzip layer that unpacks to a 512 MiB kernel is refused by the node's unpack cap
#     (max_image_size 256Mi here), nothing stays in the cache; a 100 MiB kernel in a 16 MiB
#     instance is refused on the instance (stopped, message) before any qemu runs, and the
#     cache counts it at its size on disk;
#  8. those tenant-facing errors show no host path.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/lib_cluster.sh"
export NUBO_DEVCLUSTER_MAX_IMAGE_SIZE=256Mi
t_cluster_up fra:1
REG=http://$NUBO_DEVCLUSTER_REGISTRY
# The admin may push anywhere (official/* and demo/*): registry auth is not what this replays.
PUSH=("python3" "$NUBO_SRC/tests/security/oci_push.py" "$REG" --token "$ADMIN_TOKEN")
AGENT_LOG=$NUBO_DEVCLUSTER_DIR/nodes/fra-1/agent.log

api_as() { # token method path [body] -> body; its HTTP status: last_status
    curl -sS -o "$T_TMP/body" -w '%{http_code}' -X "$2" -H "Authorization: Bearer $1" \
        -H 'Content-Type: application/json' ${4:+--data "$4"} "$API$3" > "$T_TMP/status"
    cat "$T_TMP/body"
}
last_status() { cat "$T_TMP/status"; }
MALLORY=$(api_as "$ADMIN_TOKEN" POST /v1/users '{"name":"mallory"}' | t_json 'd["data"]["users"][0]["token"]')
[ "$(last_status)" = 200 ] || t_fail "cannot create a second user"

# A tenant-facing text must not show where the hosts keep things.
no_host_path() { # what text
    case $2 in
        *"$NUBO_DEVCLUSTER_DIR"* | *"$T_TMP"* | */var/* | */tmp/*) t_fail "$1 shows a host path: $2" ;;
    esac
}

# --- 2. one image nobody can read back must not break anyone's listing
"${PUSH[@]}" official/good v1 --kernel-zeros 4096 > /dev/null || t_fail "push official/good"
"${PUSH[@]}" official/bigenv v1 --kernel-zeros 4096 --env-count 9000 > /dev/null || t_fail "push official/bigenv"
# The push notification indexes it at once; the resolver then reads its config and refuses it.
refused() { grep -q 'official/bigenv.*env: must be an object of at most 256' "$NUBO_DEVCLUSTER_DIR/controller/controller.log"; }
t_wait_for 60 refused || t_fail "the controller never refused official/bigenv's config"
listed() { api_as "$1" GET /v1/images > "$T_TMP/images.json"; [ "$(last_status)" = 200 ]; }
for who in USER_TOKEN MALLORY ADMIN_TOKEN; do
    listed "${!who}" || t_fail "GET /v1/images as $who answered $(last_status): $(cat "$T_TMP/images.json")"
    names=$(t_json '" ".join(t for i in d["data"]["images"] for t in i.get("tags", []))' < "$T_TMP/images.json")
    grep -q 'official/good:v1' <<<"$names" || t_fail "official/good missing for $who: $names"
    grep -q 'official/bigenv' <<<"$names" && t_fail "official/bigenv listed for $who: $names"
done
# Creating an instance of it fails cleanly, in one line, and creates nothing.
body=$(api_as "$USER_TOKEN" POST /v1/instances '{"autostart":true,"image":"official/bigenv:v1","name":"big","memory_mb":16}')
# (a failure of the create item answers inside a 200 with status error, as the platform does)
[ "$(last_status)" -ge 400 ] || [ "$(t_json 'd["status"]' <<<"$body")" = error ] ||
    t_fail "an instance of official/bigenv was created: $body"
msg=$(t_json 'd.get("message", "") + " ".join(e.get("message","") for e in (d.get("errors") or []))' <<<"$body")
grep -q 'at most 256' <<<"$msg" || t_fail "create gives no reason: $body"
[ "$(wc -l <<<"$msg")" = 1 ] || t_fail "the reason is not one line: $msg"
no_host_path "create error" "$msg"
[ "$(api_as "$USER_TOKEN" GET /v1/instances | t_json 'len(d["data"]["instances"])')" = 0 ] \
    || t_fail "a failed create left an instance behind"
t_log "observation 2 ok: listings answer 200 for three users; official/bigenv refused: $msg"

# --- 3a. a gzip bomb layer: refused by the unpack cap, nothing left in the cache
"${PUSH[@]}" demo/bomb v1 --kernel-zeros $((512 << 20)) --gzip 2> "$T_TMP/bomb-push.log" > /dev/null \
    || t_fail "push demo/bomb"
lsize=$(sed -n 's/^layer \([0-9]*\) bytes$/\1/p' "$T_TMP/bomb-push.log")
[ "$lsize" -lt $((1 << 20)) ] || t_fail "the bomb layer is $lsize bytes, not a bomb"
stopped_with() { # name -> its JSON once stopped with a message
    local j; j=$("$NUBO" instances get "$1" -o json 2>/dev/null) || return 1
    [ "$(t_json 'd[0]["state"]' <<<"$j")" = stopped ] && [ -n "$(t_json 'd[0].get("message","")' <<<"$j")" ] \
        && printf '%s' "$j" > "$T_TMP/$1.json"
}
api_as "$USER_TOKEN" POST /v1/instances '{"autostart":true,"image":"demo/bomb:v1","name":"bomb","memory_mb":16}' > /dev/null
[ "$(last_status)" = 200 ] || t_fail "create bomb answered $(last_status)"
t_wait_for 120 stopped_with bomb || t_fail "the bomb instance never stopped with a message"
msg=$(t_json 'd[0]["message"]' < "$T_TMP/bomb.json")
grep -q 'over the limit of 268435456 bytes' <<<"$msg" || t_fail "the bomb was not refused by the cap: $msg"
no_host_path "the bomb's message" "$msg"
cache_kib=$(du -sk "$NUBO_DEVCLUSTER_DIR/nodes/fra-1/agent/cache" | cut -f1)
[ "$cache_kib" -lt $((64 * 1024)) ] || t_fail "the node's cache holds $cache_kib KiB after the bomb"
t_log "observation 3a ok: a $lsize-byte layer refused: $msg (cache $cache_kib KiB)"

# --- 3b. a kernel larger than the instance's memory: refused on the instance, no qemu
"${PUSH[@]}" demo/fat v1 --kernel-zeros $((100 << 20)) --gzip > /dev/null 2>&1 || t_fail "push demo/fat"
api_as "$USER_TOKEN" POST /v1/instances '{"autostart":true,"image":"demo/fat:v1","name":"fat","memory_mb":16}' > /dev/null
[ "$(last_status)" = 200 ] || t_fail "create fat answered $(last_status)"
t_wait_for 120 stopped_with fat || t_fail "the fat instance never stopped with a message"
msg=$(t_json 'd[0]["message"]' < "$T_TMP/fat.json")
grep -q 'needs 10[01] MiB for its kernel and initrd, more than the 16 MiB of memory' <<<"$msg" \
    || t_fail "no per-instance reason: $msg"
[ "$(t_json 'd[0]["stop_reason"]' < "$T_TMP/fat.json")" = 4 ] || t_fail "stop_reason: $(cat "$T_TMP/fat.json")"
no_host_path "the fat instance's message" "$msg"
[ -z "$("$DC" exec fra-1 virsh -q -c qemu:///system list --all --name)" ] || t_fail "a domain was created"
# The cache counts the kernel at its size on disk (100 MiB), not its 0.1 MB layer.
kib=$(sed -n 's/.*image demo\/fat@.* pulled in [0-9]* ms (\([0-9]*\) KiB)$/\1/p' "$AGENT_LOG" | tail -1)
[ -n "$kib" ] && [ "$kib" -ge $((100 * 1024)) ] || t_fail "the cache counts demo/fat as '${kib:-?}' KiB"
t_log "observation 3b ok: $msg; cached as $kib KiB"
t_log "PASS: hostile images"
