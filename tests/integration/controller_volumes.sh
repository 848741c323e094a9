#!/bin/bash
# Volumes through the real controller and fake nodes: create/list/get/delete with the
# platform's fields, an instance placed on its volume's node, one writer, inline volumes gone
# with their instance, persistence across a controller restart, tenant isolation, every bad
# input a one-line error that creates nothing, and a volume whose node is down.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"

ctl_start
fake_start 2 --memory-mb 1024 --volume-mb 1000
index_image admin/hello latest

vol_count() {
    api GET /v1/volumes "" "${1:-$ADMIN}"
    jget 'len(d["data"]["volumes"])'
}
vol_field() { # REF EXPR
    api GET "/v1/volumes/$1"; expect 200 "get volume $1"
    jget "d[\"data\"][\"volumes\"][0]$2"
}
vol_state_is() { [ "$(vol_field "$1" '["state"]')" = "$2" ]; }

# create: the platform's fields
api POST /v1/volumes '{"name":"data","size_mb":100}'; expect 200 "create volume"
VOL=$(jget 'd["data"]["volumes"][0]["uuid"]')
[ "$(jget 'd["data"]["volumes"][0]["size_mb"]')" = 100 ] || t_fail "size_mb: $BODY"
[ "$(jget 'd["data"]["volumes"][0]["persistent"]')" = True ] || t_fail "persistent: $BODY"
jget 'd["data"]["volumes"][0]["created_at"]' | grep -q '^20' || t_fail "created_at: $BODY"
t_wait_for 10 vol_state_is data available || t_fail "volume never available: $BODY"
VNODE=$(vol_field data '["node"]')
api POST /v1/volumes '[{"size_mb":10},{"name":"data","size_mb":10}]'; expect 200 "batch create"
[ "$(jget 'd["status"]')" = partial_success ] || t_fail "batch with a duplicate: $BODY"
jget 'd["data"]["volumes"][0]["name"]' | grep -q '^vol-' || t_fail "generated name: $BODY"
GEN=$(jget 'd["data"]["volumes"][0]["uuid"]')
api DELETE "/v1/volumes/$GEN"; expect 200 "delete generated"

# bad inputs: one line each, nothing created
BEFORE=$(vol_count)
bad() { # CODE BODY [PATH]
    api POST "${3:-/v1/volumes}" "$2"
    expect "$1" "bad input $2"
    expect_envelope_error
}
bad 400 '{"size_mb":0}'
bad 400 '{"name":"x"}'
bad 400 '{"size_mb":"10"}'
bad 400 '{"size_mb":10,"colour":"red"}'
bad 400 '{"name":"Bad_Name","size_mb":10}'
bad 400 '{"size_mb":5000}'                      # beyond every node's volume budget
bad 409 '{"name":"data","size_mb":10}'
I=/v1/instances
bad 400 '{"image":"admin/hello:latest","volumes":[{"name":"data","at":"data"}]}' $I
bad 400 '{"image":"admin/hello:latest","volumes":[{"name":"data","at":"/"}]}' $I
bad 400 '{"image":"admin/hello:latest","volumes":[{"name":"data","at":"/a/../b"}]}' $I
bad 400 '{"image":"admin/hello:latest","volumes":[{"name":"data","at":"/a:b"}]}' $I
bad 400 '{"image":"admin/hello:latest","volumes":[{"at":"/data"}]}' $I
bad 400 '{"image":"admin/hello:latest","volumes":[{"name":"data","size_mb":5,"at":"/d"}]}' $I
bad 400 '{"image":"admin/hello:latest","volumes":[{"name":"data","at":"/d"},{"size_mb":5,"at":"/d"}]}' $I
bad 400 '{"image":"admin/hello:latest","volumes":[{"size_mb":0,"at":"/d"}]}' $I
bad 400 '{"image":"admin/hello:latest","volumes":[{"size_mb":5000,"at":"/d"}]}' $I
bad 400 '{"image":"admin/hello:latest","replicas":1,"volumes":[{"name":"data","at":"/d"}]}' $I
bad 404 '{"image":"admin/hello:latest","volumes":[{"name":"nope","at":"/d"}]}' $I
api GET $I; [ "$(jget 'len(d["data"]["instances"])')" = 0 ] || t_fail "a bad create made something"
[ "$(vol_count)" = "$BEFORE" ] || t_fail "a bad input created a volume"
# an empty volumes list asks for nothing (deviation 5)
api POST $I '{"image":"admin/hello:latest","name":"plain","volumes":[],"autostart":false}'
expect 200 "volumes: []"
api DELETE $I/plain; expect 200

# tenant isolation: another user's volume is not found, in every form
api POST /v1/users '{"name":"acme"}'; expect 200 "create user"
ACME=$(jget 'd["data"]["users"][0]["token"]')
api GET "/v1/volumes/$VOL" "" "$ACME"; expect 404 "another user's volume by uuid"
api GET /v1/volumes/data "" "$ACME"; expect 404 "another user's volume by name"
[ "$(vol_count "$ACME")" = 0 ] || t_fail "acme lists admin's volumes"
api DELETE "/v1/volumes/$VOL" "" "$ACME"; expect 404 "another user deletes"
api POST $I "{\"image\":\"admin/hello:latest\",\"volumes\":[{\"uuid\":\"$VOL\",\"at\":\"/d\"}]}" "$ACME"
expect 404 "another user's volume on create"; expect_envelope_error
api POST /v1/volumes '{"name":"data","size_mb":10}' "$ACME"; expect 200 "names are per user"

# quotas: volumes and total_volume_mb are counted (inline volumes too) and refused past the
# limit with a 403 naming it
api PATCH /v1/users/acme/quotas '{"hard":{"volumes":2,"total_volume_mb":50}}'; expect 200 "set quotas"
api POST /v1/volumes '{"name":"second","size_mb":30}' "$ACME"; expect 200 "within the volume quotas"
api POST /v1/volumes '{"size_mb":5}' "$ACME"; expect 403 "a third volume"; expect_envelope_error
jget 'd["message"]' | grep -q '^quota volumes exceeded: 2 in use, 1 more asked, limit 2' || t_fail "message: $BODY"
api PATCH /v1/users/acme/quotas '{"hard":{"volumes":5}}'; expect 200 "raise volumes"
api POST /v1/volumes '{"size_mb":20}' "$ACME"; expect 403 "past total_volume_mb"
jget 'd["message"]' | grep -q '^quota total_volume_mb exceeded: 40 in use, 20 more asked, limit 50' || t_fail "message: $BODY"
index_image acme/hello latest
api POST $I '{"image":"acme/hello:latest","volumes":[{"size_mb":11,"at":"/d"}],"autostart":false}' "$ACME"
expect 403 "an inline volume past total_volume_mb"
jget 'd["message"]' | grep -q 'quota total_volume_mb exceeded' || t_fail "inline message: $BODY"
api GET /v1/users/acme/quotas "" "$ACME"; expect 200 "quotas"
[ "$(jget '(d["data"]["quotas"][0]["used"]["volumes"], d["data"]["quotas"][0]["used"]["total_volume_mb"])')" = "(2, 40)" ] \
    || t_fail "used volumes: $BODY"
[ "$(vol_count "$ACME")" = 2 ] || t_fail "a refused create made a volume"

# an instance on the volume lands on its node; one writer; no delete while attached
api POST $I '{"image":"admin/hello:latest","name":"w1","volumes":[{"name":"data","at":"/data"}],"autostart":true,"wait_timeout_ms":5000}'
expect 200 "instance with volume"
[ "$(jget 'd["data"]["instances"][0]["node"]')" = "$VNODE" ] || t_fail "not on the volume's node: $BODY"
t_wait_for 10 vol_state_is data mounted || t_fail "volume not mounted: $BODY"
[ "$(vol_field data '["attached_to"][0]["name"]')" = w1 ] || t_fail "attached_to: $BODY"
[ "$(vol_field data '["mounted_by"][0]["readonly"]')" = False ] || t_fail "mounted_by: $BODY"
api DELETE /v1/volumes/data; expect 409 "delete an attached volume"; expect_envelope_error
jget 'd["message"]' | grep -q 'attached to instance w1' || t_fail "unclear message: $BODY"
bad 409 '{"image":"admin/hello:latest","volumes":[{"name":"data","at":"/data"}]}' $I
api PUT $I/w1/stop; expect 200 "stop w1"
t_wait_for 10 vol_state_is data idle || t_fail "stopped: not idle: $BODY"
api DELETE $I/w1; expect 200 "delete instance"
t_wait_for 10 vol_state_is data available || t_fail "detached volume: $BODY"

# inline volume: made with the instance, not persistent, gone with it
api POST $I '{"image":"admin/hello:latest","name":"w2","volumes":[{"size_mb":20,"at":"/cache"}],"autostart":false}'
expect 200 "inline volume"
api GET /v1/volumes
INL=$(jget '[v["uuid"] for v in d["data"]["volumes"] if v["attached_to"] and v["attached_to"][0]["name"]=="w2"][0]')
[ "$(vol_field "$INL" '["persistent"]')" = False ] || t_fail "inline volume persistent: $BODY"
api DELETE $I/w2; expect 200
api GET "/v1/volumes/$INL"; expect 404 "inline volume outlived its instance"

# the CLI: nubo volumes create|list|rm and nubo run -v, decoding with proto's types
NUBO=$NUBO_BUILD/cli/nubo
export HOME=$T_TMP/home XDG_CONFIG_HOME=$T_TMP/config XDG_CACHE_HOME=$T_TMP/cache
unset NUBO_METRO NUBO_PROFILE
nubo() { NUBO_API=$CTL_URL NUBO_TOKEN=$ADMIN "$NUBO" "$@"; }
nubo volumes create cli-vol --size 16MiB -q > "$T_TMP/out" || t_fail "nubo volumes create"
[ "$(cat "$T_TMP/out")" = cli-vol ] || t_fail "create printed: $(cat "$T_TMP/out")"
nubo volumes list > "$T_TMP/out" || t_fail "nubo volumes list"
grep -E '^cli-vol +16 MiB' "$T_TMP/out" >/dev/null || t_fail "list: $(cat "$T_TMP/out")"
nubo volumes create --size 0 2> "$T_TMP/err" && t_fail "size 0 accepted by the CLI"
[ "$(wc -l < "$T_TMP/err")" = 1 ] || t_fail "not one line: $(cat "$T_TMP/err")"
nubo run --image admin/hello:latest -n cli-w -v cli-vol:/srv/data --no-start -q > /dev/null ||
    t_fail "nubo run -v"
[ "$(vol_field cli-vol '["attached_to"][0]["name"]')" = cli-w ] || t_fail "run -v: $BODY"
nubo run --image admin/hello:latest -v cli-vol:relative 2> "$T_TMP/err" && t_fail "bad -v"
grep -q 'absolute path' "$T_TMP/err" || t_fail "-v message: $(cat "$T_TMP/err")"
nubo instances rm cli-w > /dev/null || t_fail "rm cli-w"
nubo volumes rm cli-vol > /dev/null || t_fail "nubo volumes rm"
api GET /v1/volumes/cli-vol; expect 404 "removed by the CLI"

# persistence across a controller restart
kill "$CTL_PID"; wait "$CTL_PID" 2>/dev/null
ctl_start
t_wait_for 20 nodes_ready_at_least 2 || t_fail "nodes did not come back"
[ "$(vol_field data '["state"]')" = available ] || t_fail "after restart: $BODY"
[ "$(vol_field data '["uuid"]')" = "$VOL" ] || t_fail "after restart: $BODY"

# a drain cannot move an instance whose data stays on the node
api POST $I '{"image":"admin/hello:latest","name":"pinned","volumes":[{"name":"data","at":"/data"}],"autostart":false}'
expect 200 "pinned instance"
api PUT "/v1/nodes/$VNODE/drain"; expect 409 "drain of a node holding a mounted volume"
expect_envelope_error
api GET $I/pinned; [ "$(jget 'd["data"]["instances"][0]["node"]')" = "$VNODE" ] || t_fail "moved: $BODY"
api DELETE $I/pinned; expect 200 "delete pinned"

# a volume whose node is down: a clear error, nothing created
"$FAKE_BIN" --controller "$CTL_URL" --join-token-file "$CTL_JOIN" --nodes 1 --prefix far \
    --metro ams0 --volume-mb 500 >> "$T_TMP/fake-far.log" 2>&1 &
FAR=$!
t_track_pid "$FAR"
t_wait_for 20 nodes_ready_at_least 3 || t_fail "far node did not register"
api POST /v1/volumes '{"name":"far","size_mb":50,"metro":"ams0"}'; expect 200 "far volume"
t_wait_for 10 vol_state_is far available || t_fail "far volume: $BODY"
kill "$FAR"; wait "$FAR" 2>/dev/null
node_down() {
    api GET /v1/nodes
    [ "$(jget '[n["state"] for n in d["data"]["nodes"] if n["metro"]=="ams0"][0]')" != ready ]
}
t_wait_for 20 node_down || t_fail "far node still ready"
bad 503 '{"image":"admin/hello:latest","name":"lost","volumes":[{"name":"far","at":"/d"}]}' $I
jget 'd["message"]' | grep -q 'lives on node far' || t_fail "unclear message: $BODY"
api GET $I/lost; expect 404 "an instance was created for a down node"
t_log "controller_volumes: ok"
