#!/bin/bash
# Issue 11, observation 4: the controller read every body (up to the agents' 64 MiB) before it
# looked at the token or the route's limit, had no connection cap and waited 120 s for headers.
# Now, from the headers alone: an anonymous POST announcing 64 MiB is answered 401 before a
# byte of its body is sent (the probe sends none), an authenticated one past the API's 1 MiB
# gets 413; 16 concurrent anonymous 64 MiB uploads leave the controller's peak RSS far below
# one body; a client past max_connections_per_client is closed at once; a connection that
# sends no headers (or half of them, or no TLS handshake) is closed after header_timeout_ms.
# The positive paths: API calls on one keep-alive connection, an agent's 2 MiB body with its
# join token, and the gate again over TLS, whose later handshakes still work.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"
PROBE=$NUBO_SRC/tests/tools/body_probe.py
BIG=$((64 << 20))

ctl_start "[controller]
max_connections_per_client = 20"
HOST=127.0.0.1
new_user() { api POST /v1/users "{\"name\":\"$1\"}"; expect 200 "create user $1"; jget 'd["data"]["users"][0]["token"]'; }
ALICE=$(new_user alice)
JOIN=$(cat "$CTL_JOIN")

# refused from the headers: the probe never sends the body, so an answer means it was not read
early() { "$PROBE" early "$HOST" "$CTL_PORT" "$@"; }
out=$(early /v1/instances $BIG)
[[ $out == "401 "*'"status":"error"'* ]] || t_fail "anonymous 64 MiB POST: $out (want 401 before the body)"
out=$(early /agent/v1/register $BIG)
[[ $out == "401 "* ]] || t_fail "anonymous 64 MiB agent POST: $out"
out=$(early /v1/instances $BIG "$ALICE")
[[ $out == "413 "*"1048576"* ]] || t_fail "alice's 64 MiB POST: $out (want 413 naming the limit)"
out=$(early /agent/v1/register $BIG "$ALICE")
[[ $out == "401 "* ]] || t_fail "a user token's 64 MiB agent POST: $out (the agents' limit is theirs)"
# ...while the bodies a route takes are waited for
out=$(early /v1/instances 1000 "$ALICE" --wait 2)
[ "$out" = none ] || t_fail "alice's 1000-byte POST answered before its body: $out"
out=$(early /agent/v1/register $((32 << 20)) "$JOIN" --wait 2)
[ "$out" = none ] || t_fail "a 32 MiB agent POST with the join token answered before its body: $out"
t_log "refused from headers: anonymous 401, over-limit 413; routes' own bodies waited for"

# 16 concurrent anonymous 64 MiB uploads (curl streams them, no Expect: it does not wait)
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$CTL_PID/status"; }
truncate -s $BIG "$T_TMP/big.bin"
before=$(hwm)
pids=()
for _ in $(seq 16); do
    curl -sS -o /dev/null --max-time 60 -H 'Expect:' -H 'Content-Type: application/json' \
        -X POST -T "$T_TMP/big.bin" "$CTL_URL/v1/instances" 2>/dev/null &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
after=$(hwm)
t_log "peak RSS before ${before} kB, after 16 x 64 MiB anonymous uploads ${after} kB"
[ $((after - before)) -lt $((32 * 1024)) ] ||
    t_fail "peak RSS grew by $(((after - before) / 1024)) MiB for bodies that must not be read"
api GET /v1/instances "" "$ALICE"; expect 200 "alice after the uploads"

# an agent's large body is read and handled (2 MiB of JSON whitespace around a register)
python3 -c 'import sys; sys.stdout.write(" " * (2 << 20) + "{\"name\":\"big1\",\"metro\":\"fra\",\"memory_mb\":1024,\"vcpus\":2}")' > "$T_TMP/reg.json"
code=$(curl -sS -o "$T_TMP/reg.out" -w '%{http_code}' -H "Authorization: Bearer $JOIN" \
    -H 'Content-Type: application/json' --data-binary @"$T_TMP/reg.json" "$CTL_URL/agent/v1/register")
[ "$code" = 200 ] && grep -q '"token"' "$T_TMP/reg.out" || t_fail "2 MiB agent register: $code $(head -c 300 "$T_TMP/reg.out")"

# keep-alive: several calls on one connection, each gated on its own
urls=(); for _ in 1 2 3; do urls+=(-o /dev/null "$CTL_URL/v1/instances" -o /dev/null "$CTL_URL/v1/images"); done
codes=$(curl -sS -w '%{http_code} %{num_connects}\n' -H "Authorization: Bearer $ALICE" "${urls[@]}" | sort | uniq -c | tr -s ' ')
[ "$codes" = $' 5 200 0\n 1 200 1' ] || t_fail "6 keep-alive calls (count, status, new connections): $codes"

# the per-client cap: 20 held, the 21st to 24th closed at once
coproc HOLD { python3 "$PROBE" hold "$HOST" "$CTL_PORT" 24; }
read -r word closed <&"${HOLD[0]}" || t_fail "hold probe failed"
[ "$word $closed" = "closed 4" ] || t_fail "24 connections against a cap of 20: $word $closed closed"
curl -sS -o /dev/null --max-time 5 -H "Authorization: Bearer $ALICE" "$CTL_URL/v1/instances" \
    2>/dev/null && t_fail "a 25th connection was served past the cap"
exec {HOLD[1]}>&-
wait "$HOLD_PID" || true
t_wait_for 10 curl -fsS -o /dev/null -H "Authorization: Bearer $ALICE" "$CTL_URL/v1/instances" \
    || t_fail "not served again once the held connections closed"

curl -sS "$CTL_URL/metrics" -H "Authorization: Bearer $ADMIN" > "$T_TMP/metrics"
grep -Eq '^nubo_controller_connections_refused_total [1-9]' "$T_TMP/metrics" || t_fail "refusals not counted"
grep -Eq '^nubo_controller_rejected_before_body_total [1-9]' "$T_TMP/metrics" || t_fail "gate refusals not counted"
kill -0 "$CTL_PID" || t_fail "controller died"
t_log "plain: gate, RSS, cap, keep-alive, 2 MiB agent body ok"

# over TLS: the same gate, the header deadline (1 s here; no handshake, no headers, half of
# them), and handshakes after it
command -v openssl >/dev/null || t_skip "openssl missing (plain HTTP part passed)"
cd "$T_TMP"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ca" -keyout ca.key -out ca.pem 2>/dev/null
openssl req -new -newkey rsa:2048 -nodes -subj "/CN=nubo-controller" -keyout key.pem -out c.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > c.ext
openssl x509 -req -in c.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile c.ext \
    -out cert.pem 2>/dev/null || t_fail "cannot sign the test certificate"
kill "$CTL_PID"
export CURL_CA_BUNDLE=$T_TMP/ca.pem # curl (ctl_start, api) trusts the test CA
CTL_PORT=$(t_free_port); CTL_DB=$T_TMP/tls.db; CTL_SCHEME=https
ctl_start "[controller]
tls_cert_file = $T_TMP/cert.pem
tls_key_file = $T_TMP/key.pem
header_timeout_ms = 1000"
TPORT=$CTL_PORT; TURL=$CTL_URL; TADMIN=$ADMIN
out=$("$PROBE" early "$HOST" "$TPORT" /v1/instances $BIG --ca ca.pem)
[[ $out == "401 "* ]] || t_fail "TLS: anonymous 64 MiB POST: $out"
out=$("$PROBE" early "$HOST" "$TPORT" /v1/instances $BIG "$TADMIN" --ca ca.pem)
[[ $out == "413 "* ]] || t_fail "TLS: admin's 64 MiB POST: $out"
[ "$("$PROBE" idle "$HOST" "$TPORT" --ca ca.pem)" = closed ] || t_fail "TLS: a silent connection stayed open"
[ "$("$PROBE" idle "$HOST" "$TPORT")" = closed ] || t_fail "TLS: a connection without a handshake stayed open"
[ "$("$PROBE" idle "$HOST" "$TPORT" --ca ca.pem --send $'GET /v1/instances HTTP/1.1\r\nHost: x\r\n')" = closed ] ||
    t_fail "TLS: a connection with half its headers stayed open"
curl -sS --cacert ca.pem "$TURL/metrics" -H "Authorization: Bearer $TADMIN" > metrics.tls
grep -Eq '^nubo_controller_header_timeouts_total [3-9]' metrics.tls || t_fail "header timeouts not counted"
for _ in 1 2 3; do
    curl -fsS -o /dev/null --cacert ca.pem -H "Authorization: Bearer $TADMIN" "$TURL/v1/instances" \
        "$TURL/v1/images" || t_fail "TLS: API calls after the refusals"
done
kill -0 "$CTL_PID" || t_fail "TLS controller died"
t_log "reject before read: plain and TLS ok"
