#!/bin/bash
# Two tenants behind one metro's real HAProxy (nubo-ingress, the real controller, fake agents):
# B's certificate also names A's custom domain and has the key type HAProxy prefers (ECDSA over
# A's RSA), yet A's name is served with A's certificate; and a port B publishes that something
# else on the ingress host already listens on does not hold back A's changes (issue 12,
# observations 3 and 5).
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/ingress-env.sh"

ctl_start "[services]
domain = nubo.test"
fake_start 1 --boot-ms 50
api POST /v1/users '{"name":"acme"}'
A=$(jget 'd["data"]["users"][0]["token"]')
api POST /v1/users '{"name":"bob"}'
B=$(jget 'd["data"]["users"][0]["token"]')

P=$T_TMP/pki
# the metro's wildcard (RSA, the operator's CA)
t_signed_cert "$P" metro 'DNS:*.fra0.nubo.test'
selfsigned() { # NAME KEYALG SANS
    # shellcheck disable=SC2086 # KEYALG is options
    openssl req -x509 -newkey $2 -nodes -days 2 -subj "/CN=$1" -addext "subjectAltName=$3" \
        -keyout "$P/$1.key" -out "$P/$1.pem" 2>/dev/null || t_fail "certificate $1"
}

# B gets in first with an ECDSA certificate that also names A's domain (nobody holds it yet)
selfsigned bcert "ec -pkeyopt ec_paramgen_curve:P-256" "DNS:b.bob.test,DNS:www.acme.test"
api POST /v1/certificates "$(certbody bcert b.bob.test "$P/bcert.pem" "$P/bcert.key")" "$B"
expect 200 b-cert
selfsigned acert rsa:2048 "DNS:www.acme.test"
api POST /v1/certificates "$(certbody acert www.acme.test "$P/acert.pem" "$P/acert.key")" "$A"
expect 200 a-cert
api POST /v1/services '{"name":"shop","services":[{"port":443}],"domains":[{"fqdn":"www.acme.test","certificate":{"name":"acert"}}]}' "$A"
expect 200 a-group
api POST /v1/services '{"name":"blog","services":[{"port":443}],"domains":[{"fqdn":"b.bob.test","certificate":{"name":"bcert"}}]}' "$B"
expect 200 b-group

ING_CERT=$P/metro.pem ING_KEY=$P/metro.key ING_CA=$P/ca.pem ing_start ""

# GET https://NAME/ with CA pinned: the HTTP code (000 when TLS does not verify)
code() { curl -sS -o "$T_TMP/body" -w '%{http_code}' --max-time 5 --cacert "$2" --resolve "$1:${3:-443}:$ADDR" "https://$1:${3:-443}/" 2>>"$T_TMP/curl.err"; }
t_wait_for 30 bash -c "$(declare -f code); ADDR=$ADDR T_TMP=$T_TMP; [ \$(code b.bob.test $P/bcert.pem) = 503 ]" \
    || t_fail "B's name is not served with B's certificate: $(tail -2 "$T_TMP/curl.err")"

# ---- 3. A's name is served with A's certificate, not B's preferred-key-type one
[ "$(code www.acme.test "$P/acert.pem")" = 503 ] || t_fail "www.acme.test is not served with A's certificate: $(tail -2 "$T_TMP/curl.err")"
served=$(openssl s_client -connect "$ADDR:443" -servername www.acme.test </dev/null 2>/dev/null | openssl x509 -noout -subject)
grep -q acert <<< "$served" || t_fail "www.acme.test presented $served"
served=$(openssl s_client -connect "$ADDR:443" -servername shop.fra0.nubo.test </dev/null 2>/dev/null | openssl x509 -noout -subject)
grep -q 'fra0.nubo.test' <<< "$served" || t_fail "a platform name presented $served"

# ---- 5. a published port another process on the ingress host holds leaves out only itself
WEDGE=$(t_free_port)
python3 -c "
import socket, time
s = socket.socket(); s.bind(('$ADDR', $WEDGE)); s.listen(1); time.sleep(300)" &
WEDGE_PID=$!
t_track_pid $WEDGE_PID
t_wait_for 10 bash -c "ss -ltn | grep -q '$ADDR:$WEDGE '" || t_fail "the wedge listener did not start"
api POST /v1/services "{\"name\":\"wedge\",\"services\":[{\"port\":$WEDGE,\"handlers\":[\"tls\"]}]}" "$B"
expect 200 wedge-group
api POST /v1/services '{"name":"later","services":[{"port":443}]}' "$A"
expect 200 a-later
# A's new name reaches HAProxy (its backend answers, not "no service for this host")
t_wait_for 20 bash -c "$(declare -f code); ADDR=$ADDR T_TMP=$T_TMP; [ \$(code later.fra0.nubo.test $P/ca.pem) = 503 ] && ! grep -q 'no service for this host' $T_TMP/body" \
    || t_fail "A's change did not reach HAProxy while B's port $WEDGE cannot bind: $(grep -E 'warn|left out' "$T_TMP/ingress.log" | tail -3)"
grep -q "public port $WEDGE left out" "$T_TMP/ingress.log" || t_fail "the left-out port is not logged"
# the ingress reports it: B's group shows why on that port, A's groups show nothing
port_error() { # TOKEN GROUP: the "error" of the group's first port ("" = none)
    api GET "/v1/services/$2" '' "$1"
    [ "$CODE" = 200 ] && jget 'd["data"]["service_groups"][0]["services"][0].get("error","")'
}
b_error_shown() { [ -n "$(port_error "$B" wedge)" ]; }
b_error_gone() { local e; e=$(port_error "$B" wedge) && [ -z "$e" ]; }
t_wait_for 15 b_error_shown || t_fail "B's group does not show its left-out port: $BODY"
err=$(port_error "$B" wedge)
grep -q "cannot bind" <<< "$err" || t_fail "the port's error does not say why: $err"
[ -z "$(port_error "$A" later)" ] || t_fail "A's group shows an error: $BODY"
# the conflict goes: the ingress binds the port on its next probe and the error clears
kill "$WEDGE_PID"
wait "$WEDGE_PID" 2>/dev/null || true
t_wait_for 30 bash -c "ss -ltn | grep -q '$ADDR:$WEDGE '" || t_fail "HAProxy did not bind port $WEDGE once it was free"
t_wait_for 15 b_error_gone || t_fail "the error stayed after the port bound: $(port_error "$B" wedge)"
t_log "PASS: ingress tenants (certificates by SNI filter, an unbindable port left out and shown on its group until it binds)"
