#!/bin/bash
# Every bad input gets a one-line error in the envelope and changes nothing; users never see
# or touch each other's objects; admin-only endpoints refuse users.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"

ctl_start
fake_start 2 --memory-mb 1024
index_image admin/hello latest

snapshot() {
    api GET /v1/instances "" "${1:-$ADMIN}"
    jget 'sorted(i["uuid"] for i in d["data"]["instances"])'
}
BEFORE=$(snapshot)

bad() { # CODE BODY [PATH] [METHOD]
    api "${4:-POST}" "${3:-/v1/instances}" "$2"
    expect "$1" "bad input $2"
    expect_envelope_error
}
bad 400 '{"image":'                                     # malformed JSON
bad 400 'null'
bad 400 '"text"'
bad 400 '{"image":5}'                                   # wrong type
bad 400 '{"image":"admin/hello:latest","memory_mb":"128"}'
bad 400 '{"image":"admin/hello:latest","replicas":true}'
bad 400 '{"image":"admin/hello:latest","env":{"A":1}}'
bad 400 '{"image":"admin/hello:latest","args":"ls"}'
bad 400 '{"image":"admin/hello:latest","colour":"blue"}'  # unknown field
bad 400 '{"image":"admin/hello:latest","memory_mb":8}'  # out of range
bad 400 '{"image":"admin/hello:latest","memory_mb":2048}' # more than any node
bad 400 '{"image":"admin/hello:latest","replicas":254}'
bad 400 '{"image":"admin/hello:latest","vcpus":0}'
bad 400 '{"image":"admin/hello:latest","name":"Web_1"}' # bad names
bad 400 '{"image":"admin/hello:latest","name":"-web"}'
bad 400 "{\"image\":\"admin/hello:latest\",\"name\":\"$(printf 'a%.0s' $(seq 64))\"}"
bad 400 '{"image":"admin/hello:latest","restart_policy":"sometimes"}'
bad 400 '{"image":"Admin/Hello"}'
bad 404 '{"image":"other/hello:latest"}'                # another user's namespace
bad 502 '{"image":"admin/unknown:latest"}'              # unknown image, registry down
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","metro":"sin0"}'
failed_like 400 || t_fail "unknown metro: $CODE $BODY"
bad 503 '{"autostart":true,"image":"admin/hello:latest","memory_mb":1000,"replicas":2}' # no room to run 3
bad 400 '[]'
# the spec's memory cap (a per-metro setting, default 4096), before any node is asked
bad 400 '{"image":"admin/hello:latest","memory_mb":4097}'
grep -q "limit of 4096 MiB" "$T_TMP/reply" || t_fail "memory cap message: $BODY"
# path words are no names: /v1/instances/metrics stays the metrics endpoint
bad 400 '{"image":"admin/hello:latest","name":"metrics"}'
bad 400 '{"image":"admin/hello:latest","name":"wait"}'
# query flags with bad values are refused
api GET '/v1/instances?details=banana'; expect 400 "details=banana"
api GET '/v1/services?details=banana'; expect 400 "services details=banana"
api GET '/v1/instances?details=false'; expect 200 "details=false"
# without autostart an instance is created stopped (the spec's default)
api POST /v1/instances '{"image":"admin/hello:latest","name":"lazy"}'
expect 200 "no autostart"
[ "$(jget 'd["data"]["instances"][0]["state"]')" = stopped ] || t_fail "autostart default: $BODY"
api DELETE /v1/instances/lazy; expect 200 "delete lazy"
# duplicate name
api POST /v1/instances '{"image":"admin/hello:latest","name":"dup","autostart":false}'
expect 200 "first dup"
DUP=$(jget 'd["data"]["instances"][0]["uuid"]')
[ "$(jget 'd["data"]["instances"][0]["state"]')" = stopped ] || t_fail "autostart false: $BODY"
bad 409 '{"image":"admin/hello:latest","name":"dup"}'
# a batch create with one bad item: partial success, the good one is created
api POST /v1/instances '[{"image":"admin/hello:latest","name":"ok-one","autostart":false},{"image":"admin/hello:latest","name":"dup"}]'
expect 200 batch
[ "$(jget 'd["status"]')" = partial_success ] || t_fail "batch: $BODY"
OK1=$(jget 'd["data"]["instances"][0]["uuid"]')
# 413: a body over the bound (1 MiB)
head -c 1100000 /dev/zero | tr '\0' ' ' > "$T_TMP/big"
sed -i '1s/^/{"image":"admin\/hello:latest","args":["/' "$T_TMP/big"; echo '"]}' >> "$T_TMP/big"
CODE=$(curl -sS -o "$T_TMP/reply" -w '%{http_code}' -X POST -H "Authorization: Bearer $ADMIN" \
    --data-binary @"$T_TMP/big" "$CTL_URL/v1/instances"); BODY=$(cat "$T_TMP/reply")
expect 413 oversize
expect_envelope_error
# other endpoints
bad 400 '{"uuid":"not-a-uuid"}' /v1/instances GET
bad 400 '[{"uuid":"x","name":"y"}]' /v1/instances/stop PUT
bad 400 '[{"name":"dup","force":"yes"}]' /v1/instances/stop PUT
bad 400 '[{"name":"dup","drain_timeout_ms":3600001}]' /v1/instances/stop PUT
bad 400 '[{"name":"dup","state":"flying"}]' /v1/instances/wait GET
bad 400 '[{"name":"dup","limit":99999}]' /v1/instances/log GET
bad 400 '' /v1/instances DELETE
bad 404 '' /v1/instances/00000000-0000-4000-8000-000000000000 GET
bad 404 '' /v1/nothing GET
bad 405 '' /v1/instances/start GET
api GET "/v1/instances?colour=blue"; expect 400 "unknown query"; expect_envelope_error
api GET "/v1/instances?uuid=$DUP&name=dup"; expect 200 "mixed look-ups"
# auth
CODE=$(curl -sS -o "$T_TMP/reply" -w '%{http_code}' "$CTL_URL/v1/instances"); BODY=$(cat "$T_TMP/reply")
expect 401 "no token"; expect_envelope_error
api GET /v1/instances "" "bm90LWEtdG9rZW4="; expect 401 "bad token"

AFTER=$(snapshot)
EXPECTED=$(printf '%s\n' "$DUP" "$OK1" | sort | python3 -c 'import sys; print(sorted(l.strip() for l in sys.stdin))')
[ "$AFTER" = "$EXPECTED" ] || t_fail "bad inputs changed the store: before $BEFORE after $AFTER expected $EXPECTED"

# two users: isolation
api POST /v1/users '{"name":"acme"}'; expect 200 "create user"
ACME=$(jget 'd["data"]["users"][0]["token"]')
api POST /v1/users '{"name":"acme"}'; expect 409 "user exists"; expect_envelope_error
api POST /v1/users '{"name":"beta"}'; expect 200 "create user 2"
BETA=$(jget 'd["data"]["users"][0]["token"]')
api POST /v1/users '{"name":"evil"}' "$ACME"; expect 403 "user creates user"
api GET /v1/users/me "" "$ACME"; expect 200 me
[ "$(jget 'd["data"]["users"][0]["name"]')" = acme ] || t_fail "me: $BODY"
index_image acme/web v1
index_image official/base latest
api POST /v1/instances '{"autostart":true,"image":"acme/web:v1","name":"site"}' "$ACME"; expect 200 "acme create"
A1=$(jget 'd["data"]["instances"][0]["uuid"]')
api POST /v1/instances '{"autostart":true,"image":"base","name":"site"}' "$BETA"; expect 200 "beta official image, same name"
[ "$(jget 'd["data"]["instances"][0]["image"]')" = "official/base@$DIGEST" ] || t_fail "official: $BODY"
api POST /v1/instances '{"autostart":true,"image":"acme/web:v1"}' "$BETA"; expect 404 "beta uses acme image"
api GET "/v1/instances/$A1" "" "$BETA"; expect 404 "beta sees acme instance"
api PUT "/v1/instances/$A1/stop" "" "$BETA"; expect 404 "beta stops acme instance"
api DELETE "/v1/instances/$A1" "" "$BETA"; expect 404 "beta deletes acme instance"
api GET /v1/instances "" "$BETA"
[ "$(jget 'len(d["data"]["instances"])')" = 1 ] || t_fail "beta lists: $BODY"
api GET /v1/images "" "$BETA"
[ "$(jget 'sorted(i["owner"] for i in d["data"]["images"])')" = "['official']" ] || t_fail "beta images: $BODY"
api GET /v1/images "" "$ACME"
[ "$(jget 'sorted(i["owner"] for i in d["data"]["images"])')" = "['acme', 'official']" ] || t_fail "acme images: $BODY"
api GET /v1/images '{"tag":"acme/web:v1"}' "$BETA"; expect 404 "beta looks up acme tag"
api GET "/v1/images?digest=acme/web@$(curl -fsS -H "Authorization: Bearer $ACME" "$CTL_URL/v1/images" | python3 -c 'import json,sys; print([i for i in json.load(sys.stdin)["data"]["images"] if i["owner"]=="acme"][0]["url"].split("@")[1])')" "" "$ACME"
expect 200 "digest look-up"
api GET /v1/instances/"$A1" "" "$ACME"; expect 200 "acme sees its own"
# the registry webhook needs the secret
CODE=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer wrong" \
    --data-binary '{"events":[]}' "$CTL_URL/registry/events")
[ "$CODE" = 401 ] || t_fail "webhook without secret: $CODE"
# the agent endpoints refuse user tokens, the API refuses node tokens
CODE=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ADMIN" "$CTL_URL/agent/v1/watch")
[ "$CODE" = 401 ] || t_fail "user token on agent endpoint: $CODE"
CODE=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $ADMIN" -d '{}' "$CTL_URL/agent/v1/register")
[ "$CODE" = 401 ] || t_fail "user token as join token: $CODE"
kill -0 "$CTL_PID" || t_fail "controller died"

# the token files were created private; bad configuration stops the start with one line
[ "$(stat -c %a "$CTL_DB.admin-token")" = 600 ] || t_fail "admin token file not 0600"
[ "$(stat -c %a "$CTL_JOIN")" = 600 ] || t_fail "join token file not 0600"
printf '[controller]\nplain_http = loopback\n[agent]\ngrace_ms = soon\n' > "$T_TMP/bad.ini"
if "$CTL_BIN" --listen 127.0.0.1:1 --db "$T_TMP/other.db" --config "$T_TMP/bad.ini" 2> "$T_TMP/bad.err"; then
    t_fail "a bad config was accepted"
fi
[ "$(wc -l < "$T_TMP/bad.err")" = 1 ] && grep -q "grace_ms" "$T_TMP/bad.err" || t_fail "bad config error: $(cat "$T_TMP/bad.err")"
printf '[agent]\ncolour = blue\n' > "$T_TMP/bad.ini"
"$CTL_BIN" --listen 127.0.0.1:1 --db "$T_TMP/other.db" --config "$T_TMP/bad.ini" 2> "$T_TMP/bad.err" && t_fail "unknown key accepted"
grep -q "unknown setting \[agent\] colour" "$T_TMP/bad.err" || t_fail "unknown key error: $(cat "$T_TMP/bad.err")"
"$CTL_BIN" --listen 127.0.0.1 --db "$T_TMP/other2.db" 2> "$T_TMP/bad.err" && t_fail "listen without port accepted"
grep -q "HOST:PORT" "$T_TMP/bad.err" || t_fail "listen error: $(cat "$T_TMP/bad.err")"
t_log "controller bad inputs and isolation: ok"
