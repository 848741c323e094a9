#!/bin/bash
# Issue 11, observation 6: the controller's TCP listener speaks HTTPS with a certificate from
# the operator's CA. A client that trusts another CA is refused, plain HTTP to the TLS port
# fails cleanly (and the listener keeps serving), the CLI works through --ca and remembers the
# CA in the profile nubo login writes, and plain HTTP is refused on a non-loopback address.
source "$NUBO_SRC/tests/lib.sh"
CTL_BIN=$NUBO_BUILD/controller/nubo-controller
NUBO=$NUBO_BUILD/cli/nubo
[ -x "$CTL_BIN" ] && [ -x "$NUBO" ] || t_fail "build nubo-controller and nubo first"
command -v openssl >/dev/null || t_skip "openssl missing"

cd "$T_TMP"
ca() { # name: a CA
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$1" -keyout "$1.key" \
        -out "$1.pem" 2>/dev/null || t_fail "cannot make CA $1"
}
ca good
ca other
openssl req -new -newkey rsa:2048 -nodes -subj "/CN=nubo-controller" -keyout key.pem \
    -out cert.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > cert.ext
openssl x509 -req -in cert.csr -CA good.pem -CAkey good.key -CAcreateserial -days 2 \
    -extfile cert.ext -out cert.pem 2>/dev/null || t_fail "cannot sign the controller certificate"
chmod 600 key.pem

PORT=$(t_free_port)
cat > ctl.ini <<INI
[controller]
tls_cert_file = $T_TMP/cert.pem
tls_key_file = $T_TMP/key.pem
[registry]
url = http://127.0.0.1:1
INI
"$CTL_BIN" --listen "127.0.0.1:$PORT" --db "$T_TMP/ctl.db" --config ctl.ini > controller.log 2>&1 &
CTL_PID=$!
t_track_pid "$CTL_PID"
URL=https://127.0.0.1:$PORT
t_wait_for 20 curl -fsS --cacert good.pem "$URL/v1/healthz" || t_fail "controller did not serve HTTPS"
ADMIN=$(cat ctl.db.admin-token)

# a client that trusts another CA is refused in the handshake
rc=0; curl -sS --max-time 10 --cacert other.pem "$URL/v1/healthz" > /dev/null 2> wrongca.err || rc=$?
[ "$rc" = 60 ] || t_fail "wrong CA: curl exit $rc, want 60 (certificate not trusted): $(cat wrongca.err)"
# plain HTTP to the TLS port gets no answer, and the port goes on serving TLS
rc=0; curl -sS --max-time 10 "http://127.0.0.1:$PORT/v1/healthz" > plain.out 2>&1 || rc=$?
[ "$rc" != 0 ] || t_fail "plain HTTP to the TLS port was answered: $(cat plain.out)"
grep -q "status" plain.out && t_fail "plain HTTP to the TLS port got an API answer"
kill -0 "$CTL_PID" || t_fail "controller died"
curl -fsS --max-time 10 --cacert good.pem -H "Authorization: Bearer $ADMIN" "$URL/v1/instances" \
    > /dev/null || t_fail "HTTPS stopped working after the bad clients"

# the CLI: --ca trusts the CA; without it (system CAs) it is refused with one line
export XDG_CONFIG_HOME=$T_TMP/config
unset NUBO_API NUBO_TOKEN NUBO_CA NUBO_PROFILE NUBO_CONFIG
"$NUBO" --api "$URL" --token "$ADMIN" --ca "$T_TMP/good.pem" instances list -o json > list.json \
    || t_fail "CLI with --ca: $(cat list.json)"
if "$NUBO" --api "$URL" --token "$ADMIN" instances list > nocafile.out 2> noca.err; then
    t_fail "CLI trusted a certificate from a CA it was not given"
fi
[ "$(wc -l < noca.err)" = 1 ] || t_fail "CLI TLS error is not one line: $(cat noca.err)"
# nubo login remembers the CA; later commands need no flag
"$NUBO" login --api "$URL" --token "$ADMIN" --ca "$T_TMP/good.pem" -q || t_fail "nubo login over TLS"
grep -q "^ca_file = $T_TMP/good.pem$" "$XDG_CONFIG_HOME/nubo/config" || t_fail "profile lacks ca_file"
"$NUBO" instances list -o json > /dev/null || t_fail "CLI with the profile's CA"
NUBO_CA=$T_TMP/other.pem "$NUBO" instances list > /dev/null 2>&1 && t_fail "NUBO_CA=other CA was trusted"

# plain HTTP: only where plain_http allows it, and never silently on a public address
printf '[controller]\nplain_http = loopback\n' > plain.ini
"$CTL_BIN" --listen "0.0.0.0:$(t_free_port)" --db "$T_TMP/p1.db" --config plain.ini 2> p1.err \
    && t_fail "plain HTTP on 0.0.0.0 was accepted with plain_http = loopback"
[ "$(wc -l < p1.err)" = 1 ] && grep -q "not a loopback address" p1.err || t_fail "p1: $(cat p1.err)"
printf '[registry]\nurl = http://127.0.0.1:1\n' > none.ini
"$CTL_BIN" --listen "127.0.0.1:$(t_free_port)" --db "$T_TMP/p2.db" --config none.ini 2> p2.err \
    && t_fail "plain HTTP without plain_http was accepted"
[ "$(wc -l < p2.err)" = 1 ] && grep -q "tls_cert_file" p2.err || t_fail "p2: $(cat p2.err)"
t_log "controller TLS: wrong CA refused, plain HTTP to TLS fails cleanly, CLI --ca/login/profile, plain HTTP refused off loopback: ok"
