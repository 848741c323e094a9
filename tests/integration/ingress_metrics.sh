#!/bin/bash
# Instance metrics move with load through the metro's real HAProxy: nubo-ingress reports
# HAProxy's per-server counters; GET /v1/instances/{name}/metrics shows ntotal growing with
# requests, nreqs / nqueued while slow requests are in flight / wait behind hard_limit 1, and
# both back at 0 after (4 requests of 4 s: the machine may be slow to look); the same numbers in the owner's Prometheus text and in the operators'
# /metrics, whose series the Grafana dashboard and scrape sample use (all with samples here).
# Another user sees none of it.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/ingress-env.sh"

cat > "$T_TMP/app.py" <<'APP'
# /slow answers after 4 s; anything else at once
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(4)
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
APP
ing_fake_cluster 1 "$T_TMP/app.py"
api POST /v1/users '{"name":"eve"}'
EVE=$(jget 'd["data"]["users"][0]["token"]')
api POST /v1/instances '{"image":"admin/hello:latest","name":"web","service_group":{"services":[{"port":443,"destination_port":8080,"handlers":["http","tls"]}],"soft_limit":1,"hard_limit":1},"autostart":true,"wait_timeout_ms":10000}'
expect 200 create; [ "$(jget "d[\"data\"][\"instances\"][0][\"status\"]")" = success ] || t_fail "create: $BODY"
FQDN=$(jget 'd["data"]["instances"][0]["service_group"]["domains"][0]["fqdn"]')
UUID=$(jget 'd["data"]["instances"][0]["uuid"]')
ing_start "$ING_NODES" "traffic_interval_ms = 200
timeout_queue_ms = 20000"
t_wait_for 20 bash -c "$(declare -f ing_get); ADDR=$ADDR T_TMP=$T_TMP; ing_get $FQDN /dev/null | grep -q '^200'" \
    || t_fail "no answer through the ingress for $FQDN"

# "nconns nreqs nqueued ntotal" of web, as its owner reads them
counts() {
    api GET /v1/instances/web/metrics
    jget '" ".join(str(d["data"]["instances"][0][k]) for k in ("nconns", "nreqs", "nqueued", "ntotal"))'
}
# counts_match AWK-CONDITION: over $1..$4 = nconns nreqs nqueued ntotal
counts_match() { counts > "$T_TMP/counts"; awk "{ exit !($1) }" "$T_TMP/counts"; }
t_wait_for 10 counts_match '$4 >= 1' || t_fail "ntotal never counted the first requests: $(counts)"
read -r _ _ _ t0 <<<"$(counts)"

# --- 20 requests one after the other: ntotal moves by 20
curl -sS --cacert "$T_TMP/cert.pem" --resolve "$FQDN:443:$ADDR" -o /dev/null "https://$FQDN/?n=[1-20]" \
    || t_fail "sequential requests"
t_wait_for 10 counts_match "\$4 >= $t0 + 20" || t_fail "ntotal $t0 did not grow by 20: $(counts)"
read -r c r q t1 <<<"$(counts)"
[ "$t1" -le $((t0 + 20 + 3)) ] || t_fail "ntotal grew by more than the requests sent: $t0 -> $t1"
[ "$c $r" = "0 0" ] || t_fail "nothing is in flight, yet nconns nreqs = $c $r"
t_log "ntotal $t0 -> $t1 after 20 requests"

# --- 4 slow requests against hard_limit 1: one in flight, the others queued
pids=()
for i in 1 2 3 4; do ing_get "$FQDN" "$T_TMP/slow$i" /slow > "$T_TMP/slow$i.code" 2>&1 & pids+=($!); done
t_wait_for 10 counts_match '$2 == 1 && $3 >= 1' || t_fail "want 1 in flight and some queued: $(counts)"
t_log "under load: nconns nreqs nqueued ntotal = $(cat "$T_TMP/counts")"
curl -fsS -H "Authorization: Bearer $ADMIN" -H 'Accept: text/plain;version=0.0.4' \
    "$CTL_URL/v1/instances/metrics" > "$T_TMP/mine.txt" || t_fail "text form"
grep -q "^nubo_instance_requests_in_flight{uuid=\"$UUID\",name=\"web\"} 1$" "$T_TMP/mine.txt" \
    || t_fail "text form in flight: $(grep in_flight "$T_TMP/mine.txt")"
grep -q "^nubo_instance_handled_total{uuid=\"$UUID\",name=\"web\"} [1-9]" "$T_TMP/mine.txt" \
    || t_fail "text form ntotal: $(grep handled "$T_TMP/mine.txt")"
curl -fsS -H "Authorization: Bearer $ADMIN" "$CTL_URL/metrics" > "$T_TMP/metrics"
grep -q '^nubo_ingress_requests_in_flight{metro="fra0"} 1$' "$T_TMP/metrics" \
    || t_fail "/metrics in flight: $(grep ingress_ "$T_TMP/metrics")"
wait "${pids[@]}"
for i in 1 2 3 4; do
    [ "$(cut -d' ' -f1 "$T_TMP/slow$i.code")" = 200 ] || t_fail "slow request $i: $(cat "$T_TMP/slow$i.code")"
done
t_wait_for 10 counts_match "\$2 == 0 && \$3 == 0 && \$4 >= $t1 + 4" || t_fail "after the slow requests: $(counts)"

# --- the operators' view: every series the dashboard and the sample use has samples now
curl -fsS -H "Authorization: Bearer $ADMIN" "$CTL_URL/metrics" > "$T_TMP/metrics"
sessions=$(sed -n 's/^nubo_ingress_sessions_total{metro="fra0"} //p' "$T_TMP/metrics")
[ "${sessions:-0}" -ge $((t1 + 4)) ] || t_fail "nubo_ingress_sessions_total $sessions < $((t1 + 4))"
python3 "$NUBO_SRC/tests/tools/monitoring_check.py" "$NUBO_SRC/deploy/monitoring" "$T_TMP/metrics" --samples >&2 \
    || t_fail "the dashboard uses series without samples on a cluster with traffic"

# --- owner only
api GET /v1/instances/web/metrics '' "$EVE"
[ "$(jget 'd["data"]["instances"][0]["status"]')" = error ] || t_fail "another user read web's metrics: $BODY"
curl -fsS -H "Authorization: Bearer $EVE" -H 'Accept: text/plain' "$CTL_URL/v1/instances/metrics" > "$T_TMP/eve.txt" \
    || t_fail "eve's text form"
grep -q "$UUID" "$T_TMP/eve.txt" && t_fail "another user's text form shows web"
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $EVE" -H 'Accept: text/plain' \
    "$CTL_URL/v1/instances/web/metrics")
[ "$code" = 404 ] || t_fail "another user's text form of web answered $code"
t_log "PASS: instance metrics move with load through the ingress"
