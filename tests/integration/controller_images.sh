#!/bin/bash
# Images against a real docker-registry: an unknown tag is resolved on demand (worker thread)
# and pinned to its digest at create; a push announced by the registry's notification
# webhook is indexed at once with its args/env; a delete notification removes it; the
# legacy /v1/images/list and the uuid/digest/tag look-ups answer.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"

NUBO=$NUBO_BUILD/cli/nubo
[ -x "$NUBO" ] || t_skip "the nubo CLI is not built (needed to push test images)"
t_start_registry
REG1=$T_REGISTRY_URL
KERNEL=$(type -P true)
manifest_digest() { # repo tag
    curl -fsSI -H 'Accept: application/vnd.oci.image.index.v1+json' \
        -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$1/v2/$2/manifests/$3" |
        tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}'
}

CTL_PORT=$(t_free_port)
CTL_REGISTRY_URL=$REG1
ctl_start
fake_start 1

# 1. on demand: pushed while the controller had no notification about it
"$NUBO" pkg --kernel "$KERNEL" --arg /bin/app --arg --serve --env GREETING=hi \
    --output admin/app:v1 --push --registry "$REG1" > "$T_TMP/push1.log" 2>&1 || t_fail "push: $(cat "$T_TMP/push1.log")"
D1=$(manifest_digest "$REG1" admin/app v1)
[ -n "$D1" ] || t_fail "no digest from the registry"
api POST /v1/instances '{"image":"admin/app:v1","name":"ondemand","autostart":false}'
expect 200 "create resolves on demand"
[ "$(jget 'd["data"]["instances"][0]["image"]')" = "admin/app@$D1" ] || t_fail "not pinned to $D1: $BODY"
[ "$(jget 'd["data"]["instances"][0]["args"]')" = "['/bin/app', '--serve']" ] || t_fail "image args: $BODY"
[ "$(jget 'd["data"]["instances"][0]["env"]["GREETING"]')" = hi ] || t_fail "image env: $BODY"
api GET /v1/images '{"tag":"admin/app:v1"}'
expect 200 "indexed after resolve"
[ "$(jget 'd["data"]["images"][0]["url"]')" = "admin/app@$D1" ] || t_fail "image url: $BODY"
IMG_UUID=$(jget 'd["data"]["images"][0]["uuid"]')
api GET "/v1/images?uuid=$IMG_UUID"; expect 200 "uuid look-up"
api GET /v1/images "{\"digest\":\"admin/app@$D1\"}"; expect 200 "digest look-up"
[ "$(jget 'd["data"]["images"][0]["size_in_bytes"]')" -gt 0 ] || t_fail "size: $BODY"
api GET /v1/images/list; expect 200 "legacy list"
[ "$(jget 'd["data"]["images"][0]["digest"]')" = "admin/app@$D1" ] || t_fail "legacy digest: $BODY"
# the legacy shape (the spec's, the legacy Go SDK's): args one string, kernel_args, labels
[ "$(jget 'type(d["data"]["images"][0]["args"]).__name__')" = str ] || t_fail "legacy args: $BODY"
[ "$(jget 'sorted(k for k in ("kernel_args", "labels") if k in d["data"]["images"][0])')" = "['kernel_args', 'labels']" ] ||
    t_fail "legacy kernel_args/labels: $BODY"
api GET /v1/images; expect 200 "current list"
[ "$(jget 'type(d["data"]["images"][0]["args"]).__name__')" = list ] || t_fail "current args: $BODY"
# a flag with a bad value is refused, in the query and in the legacy body
api GET '/v1/images/list?tagged=maybe'; expect 400 "tagged=maybe"
api GET /v1/images/list '{"tagged":"maybe"}'; expect 400 "body tagged maybe"
api GET /v1/images/list '{"tagged":true}'; expect 200 "body tagged"
# an unknown tag is a clean 404 from the registry
api POST /v1/instances '{"autostart":true,"image":"admin/app:nope"}'
expect 404 "unknown tag"
expect_envelope_error
# a look-up by tag resolves on demand too (clients poll the list after a push)
"$NUBO" pkg --kernel "$KERNEL" --arg /bin/v3 --output admin/app:v3 --push --registry "$REG1" \
    > "$T_TMP/push3.log" 2>&1 || t_fail "push v3"
D3=$(manifest_digest "$REG1" admin/app v3)
api GET /v1/images '{"tag":"admin/app:v3"}'
expect 200 "look-up resolves on demand"
[ "$(jget 'd["data"]["images"][0]["url"]')" = "admin/app@$D3" ] || t_fail "v3 url: $BODY"
[ "$(jget 'd["data"]["images"][0]["args"]')" = "['/bin/v3']" ] || t_fail "v3 args: $BODY"
api GET /v1/images '{"tag":"admin/app:nope"}'
expect 404 "look-up of an unknown tag"
expect_envelope_error
api GET /v1/images '{"tag":"other/app:v1"}'
expect 404 "look-up in another namespace"
# the tag moves: the instance keeps its digest
"$NUBO" pkg --kernel "$KERNEL" --arg /bin/app2 --output admin/app:v1 --push --registry "$REG1" \
    > "$T_TMP/push1b.log" 2>&1 || t_fail "re-push"
api GET /v1/instances/ondemand
[ "$(jget 'd["data"]["instances"][0]["image"]')" = "admin/app@$D1" ] || t_fail "pin moved: $BODY"

# 2. notifications: a second registry process on the same storage posts to the webhook
t_start_registry "notifications:
  endpoints:
    - name: nubo
      url: $CTL_URL/registry/events
      headers:
        Authorization: [Bearer $CTL_SECRET]
      timeout: 2s
      threshold: 3
      backoff: 1s"
REG2=$T_REGISTRY_URL
"$NUBO" pkg --kernel "$KERNEL" --arg /bin/web --output admin/web:v2 --push --registry "$REG2" \
    > "$T_TMP/push2.log" 2>&1 || t_fail "push 2: $(cat "$T_TMP/push2.log")"
D2=$(manifest_digest "$REG2" admin/web v2)
webhook_indexed() {
    api GET /v1/images '{"tag":"admin/web:v2"}'
    [ "$CODE" = 200 ] && [ "$(jget 'd["data"]["images"][0].get("args")')" = "['/bin/web']" ]
}
t_wait_for 20 webhook_indexed || t_fail "push notification not indexed: $BODY"
[ "$(jget 'd["data"]["images"][0]["url"]')" = "admin/web@$D2" ] || t_fail "webhook digest: $BODY"
grep -q "image admin/web@$D2" "$T_TMP/controller.log" || t_fail "not indexed from the webhook"
api POST /v1/instances '{"image":"admin/web:v2","name":"fromhook","autostart":false}'
expect 200 "create from webhook-indexed image"
# delete notification
curl -fsS -X DELETE "$REG2/v2/admin/web/manifests/$D2" || t_fail "registry delete"
webhook_deleted() { api GET /v1/images '{"tag":"admin/web:v2"}'; failed_like 404; }
t_wait_for 20 webhook_deleted || t_fail "delete notification not applied: $BODY"
t_log "controller images: ok"
