#!/bin/bash
# Two tenants on the real nubo-controller (fake agents): neither squats the platform's names nor
# the other's domains (a refusal never names the holder), certificates carry only names their
# owner may hold, published ports stay off the ports the ingress host uses, and per-user quotas
# refuse with one line naming the limit (issue 12, observations 3-6, the API's half).
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"
command -v openssl >/dev/null || t_skip "openssl missing"

CFG="[services]
domain = nubo.test
reserved_ports = 5000
[quotas]
instances = 3
live_instances = 2
live_memory_mb = 512
memory_mb = 1024
certificates = 2"
ctl_start "$CFG"
fake_start 1 --boot-ms 50
index_image official/hello latest
api POST /v1/users '{"name":"acme"}'
A=$(jget 'd["data"]["users"][0]["token"]')
api POST /v1/users '{"name":"bob"}'
B=$(jget 'd["data"]["users"][0]["token"]')
HTTP='"services":[{"port":80,"destination_port":8080,"handlers":["http"]}]'

# ---- 4. domain squatting: A holds a platform name and a custom domain
api POST /v1/services "{\"name\":\"shop\",$HTTP,\"domains\":[{\"name\":\"shop\"},{\"fqdn\":\"www.acme-corp.test\"}]}" "$A"
expect 200 a-shop
for fq in fra0.nubo.test nubo.test x.was.nubo.test a.b.fra0.nubo.test; do
    api POST /v1/services "{$HTTP,\"domains\":[{\"fqdn\":\"$fq\"}]}" "$B"
    expect 400 "platform name $fq"
    grep -q reserved <<< "$(jget 'd["message"]')" || t_fail "$fq: $BODY"
done
for dom in '{"fqdn":"www.acme-corp.test"}' '{"name":"shop"}'; do
    api POST /v1/services "{$HTTP,\"domains\":[$dom]}" "$B"
    expect 409 "taken $dom"
    expect_envelope_error
    msg=$(jget 'd["message"]')
    grep -q "not available" <<< "$msg" || t_fail "taken: $msg"
    if grep -Eq "shop |group|acme[^-]" <<< "$msg"; then t_fail "the refusal names the holder: $msg"; fi
done
api POST /v1/services "{$HTTP,\"domains\":[{\"fqdn\":\"www.acme-corp.test\"}]}" "$A"
expect 409 own-domain-twice
grep -q "your service group shop" <<< "$(jget 'd["message"]')" || t_fail "own conflict: $BODY"

# ---- 3. certificates carry only names their owner may hold
P=$T_TMP/pki
mkdir -p "$P"
cert() { # NAME SANS -> self-signed $P/NAME.{pem,key}
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$1" \
        -addext "subjectAltName=$2" -keyout "$P/$1.key" -out "$P/$1.pem" 2>/dev/null || t_fail "cert $1"
}
cert wild "DNS:b.bob.test,DNS:*.fra0.nubo.test"
api POST /v1/certificates "$(certbody wild b.bob.test "$P/wild.pem" "$P/wild.key")" "$B"
expect 400 cert-platform-wildcard
grep -q "platform" <<< "$(jget 'd["message"]')" || t_fail "platform cert: $BODY"
cert steal "DNS:b.bob.test,DNS:*.acme-corp.test"
api POST /v1/certificates "$(certbody steal b.bob.test "$P/steal.pem" "$P/steal.key")" "$B"
expect 409 cert-covers-other-tenant
expect_envelope_error
cert own "DNS:b.bob.test,DNS:*.bob.test"
api POST /v1/certificates "$(certbody own b.bob.test "$P/own.pem" "$P/own.key")" "$B"
expect 200 cert-own

# ---- 5. ports the ingress host uses cannot be published
for port in 5000 "$CTL_PORT" 22; do
    api POST /v1/services "{\"services\":[{\"port\":$port,\"handlers\":[\"tls\"]}]}" "$B"
    expect 400 "port $port"
    grep -q "cannot be published" <<< "$(jget 'd["message"]')" || t_fail "port $port: $BODY"
done
api POST /v1/services '{"name":"raw","services":[{"port":8443,"handlers":["tls"]}],"domains":[{"name":"raw"}]}' "$B"
expect 200 allowed-port
api PATCH /v1/services/raw '{"prop":"services","op":"add","value":[{"port":5000,"handlers":["tls"]}]}' "$B"
expect 400 patch-reserved-port

# ---- 6. quotas: live memory, all memory (stopped instances included), count
api GET /v1/users/quotas "" "$B"
expect 200 quotas
[ "$(jget '[q["name"] for q in d["data"]["quotas"]]')" = "['bob']" ] || t_fail "bob sees: $BODY"
[ "$(jget 'd["data"]["quotas"][0]["hard"]["live_memory_mb"]')" = 512 ] || t_fail "hard: $BODY"
[ "$(jget 'd["data"]["quotas"][0]["used"]["certificates"]')" = 1 ] || t_fail "used: $BODY"
api POST /v1/instances '{"image":"hello:latest","name":"w","memory_mb":256,"replicas":1,"autostart":true}' "$B"
expect 200 within-quota
api POST /v1/instances '{"image":"hello:latest","memory_mb":128,"autostart":true}' "$B"
expect 403 live-memory
expect_envelope_error
grep -q "quota live_" <<< "$(jget 'd["message"]')" || t_fail "live quota message: $BODY"
api POST /v1/instances '{"image":"hello:latest","name":"big","memory_mb":2048,"autostart":false}' "$B"
expect 403 stopped-memory
grep -q "quota memory_mb" <<< "$(jget 'd["message"]')" || t_fail "memory quota message: $BODY"
api POST /v1/instances '{"image":"hello:latest","name":"idle","memory_mb":512,"autostart":false}' "$B"
expect 200 stopped-within-quota
api POST /v1/instances '{"image":"hello:latest","memory_mb":16,"autostart":false}' "$B"
expect 403 instance-count
grep -q "quota instances" <<< "$(jget 'd["message"]')" || t_fail "count message: $BODY"
api PUT /v1/instances/idle/start '{}' "$B"
expect 403 start-over-live-quota
api PATCH /v1/users/bob/quotas '{"hard":{"live_memory_mb":2048}}' "$B"
expect 403 user-sets-own-quota
api GET /v1/users/bob/quotas "" "$A"
expect 404 other-users-quota
api PATCH /v1/users/bob/quotas '{"hard":{"live_memory_mb":2048,"live_instances":3}}'
expect 200 admin-raises
[ "$(jget 'd["data"]["quotas"][0]["hard"]["live_memory_mb"]')" = 2048 ] || t_fail "raised: $BODY"
api PUT /v1/instances/idle/start '{}' "$B"
expect 200 start-after-raise
api GET /v1/users/admin/quotas
[ "$(jget 'd["data"]["quotas"][0]["hard"]["instances"]')" = 2147483647 ] || t_fail "admin limits: $BODY"

# ---- custom domains granted by the operator; quotas an admin set survive a restart
kill "$CTL_PID"; wait "$CTL_PID" 2>/dev/null
CTL_PORT=$CTL_PORT ctl_start "$CFG
[services]
custom_domains = acme:acme-corp.test"
api GET /v1/users/bob/quotas
[ "$(jget 'd["data"]["quotas"][0]["hard"]["live_memory_mb"]')" = 2048 ] || t_fail "quota lost on restart: $BODY"
api POST /v1/services "{$HTTP,\"domains\":[{\"fqdn\":\"api.bob.test\"}]}" "$B"
expect 403 not-granted
api POST /v1/services "{$HTTP,\"domains\":[{\"fqdn\":\"api.acme-corp.test\"}]}" "$A"
expect 200 granted
kill "$CTL_PID"; wait "$CTL_PID" 2>/dev/null
if grep -q "Sanitizer" "$T_TMP/controller.log"; then
    grep -m5 -A12 "Sanitizer" "$T_TMP/controller.log" >&2
    t_fail "the controller reported a sanitizer error"
fi
t_log "PASS: tenants: names, certificates, ports, quotas"
