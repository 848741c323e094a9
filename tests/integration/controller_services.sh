#!/bin/bash
# Service groups and certificates on the real nubo-controller with fake agents: CRUD, the
# handler rules, inline (ephemeral) groups created with an instance and deleted with its last
# one, explicit groups that persist, PATCH set/add/del, certificates checked with OpenSSL, and
# the ingress watch (answers at once on a change, lists running backends only).
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"
command -v openssl >/dev/null || t_skip "openssl missing"

ctl_start "[services]
domain = nubo.test"
fake_start 2 --boot-ms 200
index_image admin/hello latest

# ---- handler rules: each violation is one line, nothing is created
bad() {
    api POST /v1/services "$1"
    expect 400 "rule $2"
    expect_envelope_error
    grep -q "$2" <<< "$(jget 'd["message"]')" || t_fail "message for $2: $BODY"
}
bad '{"services":[{"port":80,"destination_port":8080,"handlers":["http","tls"]}]}' "port 80"
bad '{"services":[{"port":443,"destination_port":8080,"handlers":["tls"]}]}' "port 443"
bad '{"services":[{"port":8443,"destination_port":8080,"handlers":["http","tls"]}]}' "raw TCP"
bad '{"services":[{"port":443,"destination_port":8080,"handlers":["http","tls","redirect"]}]}' "redirect"
bad '{"services":[{"port":0,"destination_port":8080}]}' "port"
bad '{"services":[{"port":443,"destination_port":70000}]}' "destination_port"
bad '{"services":[{"port":443,"handlers":["gzip"]}]}' "handlers"
bad '{"services":[]}' "at least one port"
bad '{"services":[{"port":443}],"soft_limit":0}' "soft_limit"
bad '{"services":[{"port":443}],"hard_limit":65536}' "hard_limit"
bad '{"services":[{"port":443},{"port":443}]}' "twice"
bad '{"services":[{"port":443}],"colour":"red"}' "colour"
api GET /v1/services
[ "$(jget 'len(d["data"]["service_groups"])')" = 0 ] || t_fail "a rejected group was created: $BODY"

# ---- explicit group: defaults, persistent, look-ups
api POST /v1/services '{"name":"shop","services":[{"port":443,"destination_port":8080,"handlers":["http","tls"]},{"port":80,"destination_port":443,"handlers":["http","redirect"]}]}'
expect 200 create-explicit
SHOP=$(jget 'd["data"]["service_groups"][0]["uuid"]')
[ "$(jget 'd["data"]["service_groups"][0]["persistent"]')" = True ] || t_fail "explicit not persistent: $BODY"
[ "$(jget 'd["data"]["service_groups"][0]["soft_limit"]')" = 1 ] || t_fail "soft default: $BODY"
[ "$(jget 'd["data"]["service_groups"][0]["hard_limit"]')" = 65535 ] || t_fail "hard default: $BODY"
[ "$(jget 'd["data"]["service_groups"][0]["domains"][0]["fqdn"]')" = shop.fra0.nubo.test ] || t_fail "default domain: $BODY"
api POST /v1/services '{"name":"shop","services":[{"port":443}]}'
expect 409 duplicate-name
api POST /v1/services '{"services":[{"port":443}],"domains":[{"name":"shop"}]}'
expect 409 duplicate-domain
api POST /v1/services '{"services":[{"port":443,"destination_port":9000}]}'
expect 200 create-default-name
GEN=$(jget 'd["data"]["service_groups"][0]["name"]')
[[ $GEN =~ ^[a-z]+-[a-z]+-[a-z0-9]{8}$ ]] || t_fail "default name $GEN"
[ "$(jget 'd["data"]["service_groups"][0]["domains"][0]["fqdn"]')" = "$GEN.fra0.nubo.test" ] || t_fail "default domain: $BODY"
api GET "/v1/services?name=shop"
expect 200 get-by-name
[ "$(jget 'd["data"]["service_groups"][0]["uuid"]')" = "$SHOP" ] || t_fail "look-up: $BODY"
api GET /v1/services/nope
expect 404 get-missing
# the spec's shape: domains inside services[]
api POST /v1/services '{"name":"spec-shape","services":[{"port":443,"destination_port":8080,"domains":[{"name":"spec-shape"}]}]}'
expect 200 spec-shape
[ "$(jget 'd["data"]["service_groups"][0]["domains"][0]["fqdn"]')" = spec-shape.fra0.nubo.test ] || t_fail "spec shape domain: $BODY"
api DELETE /v1/services/spec-shape; expect 200 delete-spec-shape
# /v1/services/autoscale is a path, never a group: no group may take the name, and a DELETE
# there deletes nothing
api POST /v1/services '{"name":"autoscale","services":[{"port":443}]}'
expect 400 reserved-name
api DELETE /v1/services/autoscale
[ "$CODE" != 200 ] || t_fail "DELETE /v1/services/autoscale answered 200: $BODY"

# ---- PATCH: add, del, set, limits; violations rejected
api PATCH "/v1/services/$SHOP" '{"prop":"services","op":"add","value":[{"port":8443,"destination_port":9443,"handlers":["tls"]}]}'
expect 200 patch-add
[ "$(jget 'len(d["data"]["service_groups"][0]["services"])')" = 3 ] || t_fail "add: $BODY"
api PATCH "/v1/services/$SHOP" '{"prop":"services","op":"add","value":[{"port":8443,"handlers":["tls"]}]}'
expect 409 patch-add-dup
api PATCH "/v1/services/$SHOP" '{"prop":"services","op":"add","value":[{"port":25,"handlers":["http"]}]}'
expect 400 patch-add-rule
api PATCH /v1/services '[{"name":"shop","prop":"services","op":"del","value":[8443]},{"name":"shop","prop":"hard_limit","op":"set","value":100},{"name":"shop","prop":"soft_limit","op":"set","value":10}]'
expect 200 patch-batch
[ "$(jget 'len(d["data"]["service_groups"][2]["services"])')" = 2 ] || t_fail "del: $BODY"
[ "$(jget 'd["data"]["service_groups"][2]["hard_limit"]')" = 100 ] || t_fail "hard: $BODY"
[ "$(jget 'd["data"]["service_groups"][2]["soft_limit"]')" = 10 ] || t_fail "soft: $BODY"
api PATCH "/v1/services/$SHOP" '{"prop":"soft_limit","op":"set","value":200}'
expect 400 patch-soft-over-hard
api PATCH "/v1/services/$SHOP" '{"prop":"domains","op":"add","value":[{"name":"shop2"}]}'
expect 200 patch-domain-add
[ "$(jget '[x["fqdn"] for x in d["data"]["service_groups"][0]["domains"]]')" = "['shop.fra0.nubo.test', 'shop2.fra0.nubo.test']" ] || t_fail "domains: $BODY"
api PATCH "/v1/services/$SHOP" '{"prop":"domains","op":"del","value":["shop2"]}'
expect 200 patch-domain-del
[ "$(jget 'len(d["data"]["service_groups"][0]["domains"])')" = 1 ] || t_fail "domain del: $BODY"
api PATCH "/v1/services/$SHOP" '{"prop":"colour","op":"set","value":1}'
expect 400 patch-bad-prop
expect_envelope_error

# ---- the ingress watch: token, full set, version
ING=$(cat "$CTL_DB.ingress-token")
[ "$(stat -c %a "$CTL_DB.ingress-token")" = 600 ] || t_fail "ingress token file mode"
ingress() { # ingress VERSION TIMEOUT_MS -> BODY
    BODY=$(curl -sS -m 90 -H "Authorization: Bearer $ING" \
        "$CTL_URL/ingress/v1/watch?metro=fra0&version=$1&timeout_ms=$2") || t_fail "ingress watch failed"
}
api GET "/ingress/v1/watch?metro=fra0"
expect 401 ingress-user-token
ingress 0 0
V=$(jget 'd["version"]')
[ "$(jget 'd["domain_suffix"]')" = fra0.nubo.test ] || t_fail "suffix: $BODY"
[ "$(jget 'sorted(s["name"] for s in d["services"])')" = "$(python3 -c "print(sorted(['shop','$GEN']))")" ] || t_fail "ingress services: $BODY"

# ---- an instance joins the explicit group; a parked watch answers on the change, not at its
# 60 s timeout (which would also bring the new version); timed by the watch's own answer (the
# python look-ups below take seconds on a loaded machine)
( ingress "$V" 60000; date +%s%N > "$T_TMP/watch1.t"; printf '%s' "$BODY" > "$T_TMP/watch1" ) &
WATCH=$!
sleep 0.3
T0=$(date +%s%N)
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","name":"shop-1","service_group":{"name":"shop"},"wait_timeout_ms":10000}'
expect 200 join-explicit
[ "$(jget 'd["data"]["instances"][0]["service_group"]["uuid"]')" = "$SHOP" ] || t_fail "instance group: $BODY"
[ "$(jget 'd["data"]["instances"][0]["service_group"]["domains"][0]["fqdn"]')" = shop.fra0.nubo.test ] || t_fail "instance domains: $BODY"
wait "$WATCH"
T1=$(cat "$T_TMP/watch1.t")
[ $(( (T1 - T0) / 1000000 )) -lt 45000 ] ||
    t_fail "the ingress watch answered at its timeout, not on the change ($(( (T1 - T0) / 1000000 )) ms)"
t_log "the parked ingress watch answered $(( (T1 - T0) / 1000000 )) ms after the create was sent"
BODY=$(cat "$T_TMP/watch1")
[ "$(jget 'd["version"]')" != "$V" ] || t_fail "version did not change: $BODY"
ingress 0 0
[ "$(jget '[b["name"] for s in d["services"] if s["name"]=="shop" for b in s["backends"]]')" = "['shop-1']" ] || t_fail "running backend missing: $BODY"
[ "$(jget '[b["state"] for s in d["services"] if s["name"]=="shop" for b in s["backends"]]')" = "['running']" ] || t_fail "backend state: $BODY"
[ "$(jget '[p["destination_port"] for s in d["services"] if s["name"]=="shop" for p in s["ports"]]')" = "[8080, 443]" ] || t_fail "ports: $BODY"
V=$(jget 'd["version"]')

# stopping the instance takes it out of the backends (watch answers on the change)
api PUT /v1/instances/shop-1/stop '{}'
expect 200 stop
api GET "/v1/instances/shop-1/wait?state=stopped&timeout_ms=10000"
expect 200 wait-stopped
ingress "$V" 10000
[ "$(jget '[b for s in d["services"] if s["name"]=="shop" for b in s["backends"]]')" = "[]" ] || t_fail "stopped backend still listed: $BODY"

# a group with instances attached cannot be deleted
api DELETE /v1/services/shop
expect 409 delete-attached
expect_envelope_error
grep -q "shop-1" <<< "$(jget 'd["message"]')" || t_fail "delete message names no instance: $BODY"
api DELETE /v1/instances/shop-1
expect 200 delete-instance
api GET /v1/services/shop
expect 200 explicit-persists
[ "$(jget 'd["data"]["service_groups"][0]["instances"]')" = "[]" ] || t_fail "instances left: $BODY"

# ---- inline group: created with the instances, deleted with the last one
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","name":"blog","replicas":1,"service_group":{"services":[{"port":443,"destination_port":8080,"handlers":["http","tls"]}]},"wait_timeout_ms":10000}'
expect 200 inline
INL=$(jget 'd["data"]["instances"][0]["service_group"]["uuid"]')
[ "$(jget 'd["data"]["instances"][1]["service_group"]["uuid"]')" = "$INL" ] || t_fail "replicas in other groups: $BODY"
INLNAME=$(jget 'd["data"]["instances"][0]["service_group"]["name"]')
[ "$(jget 'd["data"]["instances"][0]["service_group"]["domains"][0]["fqdn"]')" = "$INLNAME.fra0.nubo.test" ] || t_fail "inline domain: $BODY"
R2=$(jget 'd["data"]["instances"][1]["name"]')
api GET "/v1/services/$INL"
expect 200 inline-get
[ "$(jget 'd["data"]["service_groups"][0]["persistent"]')" = False ] || t_fail "inline persistent: $BODY"
[ "$(jget 'len(d["data"]["service_groups"][0]["instances"])')" = 2 ] || t_fail "inline instances: $BODY"
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","service_group":{"services":[{"port":80,"handlers":["tls"]}]}}'
expect 400 inline-rule
grep -q "port 80" <<< "$(jget 'd["message"]')" || t_fail "inline rule message: $BODY"
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","service_group":{"name":"nope"}}'
expect 404 unknown-group
api DELETE /v1/instances/blog
expect 200 delete-first
api GET "/v1/services/$INL"
expect 200 inline-survives-one
api DELETE "/v1/instances/$R2"
expect 200 delete-last
api GET "/v1/services/$INL"
expect 404 inline-gone

# the inline group survives a restart while it has instances, and goes with the last one
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","name":"keep","service_group":{"services":[{"port":443}],"domains":[{"name":"keep"}]},"wait_timeout_ms":10000}'
expect 200 inline-keep
KG=$(jget 'd["data"]["instances"][0]["service_group"]["uuid"]')
kill "$CTL_PID"; wait "$CTL_PID" 2>/dev/null
grep -q "Sanitizer" "$T_TMP/controller.log" && t_fail "sanitizer report before the restart: $(grep -m1 -A8 Sanitizer "$T_TMP/controller.log")"
CTL_PORT=$CTL_PORT ctl_start "[services]
domain = nubo.test"
api GET "/v1/services/$KG"
expect 200 inline-after-restart
[ "$(jget 'd["data"]["service_groups"][0]["instances"][0]["name"]')" = keep ] || t_fail "restart lost membership: $BODY"
[ "$(jget 'd["data"]["service_groups"][0]["domains"][0]["fqdn"]')" = keep.fra0.nubo.test ] || t_fail "restart lost domain: $BODY"
api DELETE /v1/instances/keep
api GET "/v1/services/$KG"
expect 404 inline-gone-after-restart

# ---- certificates: a CA and a leaf made here, checked with OpenSSL
D=$T_TMP/pki
t_signed_cert "$D" leaf DNS:www.example.com 'DNS:*.example.com'
openssl genrsa -out "$D/other.key" 2048 2>/dev/null
api POST /v1/certificates "$(certbody ex '*.example.com' "$D/leaf.pem" "$D/other.key")"
expect 400 cert-wrong-key
grep -q "does not match" <<< "$(jget 'd["message"]')" || t_fail "wrong key message: $BODY"
api POST /v1/certificates "$(certbody ex 'shop.example.org' "$D/leaf.pem" "$D/leaf.key")"
expect 400 cert-wrong-cn
api POST /v1/certificates '{"cn":"a.example.com","chain":"junk","pkey":"junk"}'
expect 400 cert-not-pem
api POST /v1/certificates "$(certbody ex '*.example.com' <(cat "$D/leaf.pem" "$D/ca.pem") "$D/leaf.key")"
expect 200 cert-create
CERT=$(jget 'd["data"]["certificates"][0]["uuid"]')
[ "$(jget 'd["data"]["certificates"][0]["common_name"]')" = '*.example.com' ] || t_fail "cert cn: $BODY"
grep -q test-ca <<< "$(jget 'd["data"]["certificates"][0]["issuer"]')" || t_fail "cert issuer: $BODY"
api POST /v1/services '{"name":"custom","services":[{"port":443}],"domains":[{"fqdn":"api.example.org"}]}'
expect 400 custom-domain-no-cert
api POST /v1/services '{"name":"custom","services":[{"port":443}],"domains":[{"fqdn":"api.example.com","certificate":{"name":"ex"}}]}'
expect 200 custom-domain
[ "$(jget 'd["data"]["service_groups"][0]["domains"][0]["certificate"]["uuid"]')" = "$CERT" ] || t_fail "domain cert: $BODY"
ingress 0 0
[ "$(jget '[c["uuid"] for c in d["certificates"]]')" = "['$CERT']" ] || t_fail "ingress certificates: $BODY"
[ "$(jget '"PRIVATE KEY" in d["certificates"][0]["pkey"]')" = True ] || t_fail "ingress pkey"
api DELETE /v1/certificates/ex
expect 409 cert-in-use
api DELETE /v1/services/custom
expect 200 delete-custom
api DELETE /v1/certificates/ex
expect 200 cert-delete
api GET /v1/certificates
[ "$(jget 'len(d["data"]["certificates"])')" = 0 ] || t_fail "cert left: $BODY"

# the agent is told the group's destination ports (redirects excluded) to time net_time_us
reg=$(curl -fsS -H "Authorization: Bearer $(cat "$CTL_JOIN")" \
    -d '{"name":"ams-node","metro":"ams","memory_mb":1024,"vcpus":1,"instances":[]}' \
    "$CTL_URL/agent/v1/register") || t_fail "register"
NTOK=$(printf '%s' "$reg" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
api POST /v1/instances '{"autostart":true,"image":"admin/hello:latest","name":"timed","metro":"ams","service_ports":[1],"service_group":{"services":[{"port":443,"destination_port":8080},{"port":80,"destination_port":443,"handlers":["http","redirect"]},{"port":5432,"destination_port":5432}]}}'
expect 200 create-ams
[ "$(jget 'd["data"]["instances"][0]["service_group"]["domains"][0]["fqdn"]')" = "$(jget 'd["data"]["instances"][0]["service_group"]["name"]').ams.nubo.test" ] || t_fail "ams domain: $BODY"
BODY=$(curl -fsS -H "Authorization: Bearer $NTOK" "$CTL_URL/agent/v1/watch?version=0&timeout_ms=0") || t_fail "agent watch"
[ "$(jget '[a["service_ports"] for a in d["assignments"] if a["name"]=="timed"]')" = "[[8080, 5432]]" ] || t_fail "service_ports: $BODY"
api DELETE /v1/instances/timed
expect 200 delete-timed

# another user sees none of it
api POST /v1/users '{"name":"bob"}'
BOB=$(jget 'd["data"]["users"][0]["token"]')
api GET /v1/services/shop "" "$BOB"
expect 404 other-user
api DELETE /v1/services/shop
expect 200 delete-explicit
# a clean shutdown with nothing leaked or misused (ASan builds report here)
kill "$CTL_PID"; wait "$CTL_PID" 2>/dev/null
if grep -q "Sanitizer" "$T_TMP/controller.log"; then
    grep -m5 -A12 "Sanitizer" "$T_TMP/controller.log" >&2
    t_fail "the controller reported a sanitizer error"
fi
t_log "controller services: ok"
