#!/bin/bash
# deploy/monitoring against a live controller: every metric name the Grafana dashboard and the
# Prometheus sample use is one the controller's /metrics exports (its # TYPE line at least: the
# ingress series get samples in ingress_metrics.sh), the dashboard imports as is, and /metrics
# answers a scraper that sends a bearer token while it is open. promtool, when installed,
# checks the sample.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"
MON=$NUBO_SRC/deploy/monitoring

ctl_start
fake_start 1 --boot-ms 20
index_image admin/hello latest
api POST /v1/instances '{"image":"admin/hello:latest","name":"m1","autostart":true,"wait_timeout_ms":10000}'
expect 200 create

# what Prometheus sends with the sample's authorization: {credentials_file: …}
echo "scrape-token-$RANDOM" > "$T_TMP/scrape.token"
curl -fsS -H "Authorization: Bearer $(cat "$T_TMP/scrape.token")" \
    -H 'Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1' \
    -D "$T_TMP/headers" "$CTL_URL/metrics" > "$T_TMP/metrics" || t_fail "/metrics with a bearer token"
grep -qi '^content-type: text/plain; version=0.0.4' "$T_TMP/headers" || t_fail "content type: $(cat "$T_TMP/headers")"
for s in 'nubo_metro_instances{metro="fra0",state="running"} 1' 'nubo_node_memory_mb{node=' \
    'nubo_node_memory_allocated_mb{node=' 'nubo_instance_wake_time_seconds_count 0' \
    'nubo_instances{state="running"} 1'; do
    grep -qF "$s" "$T_TMP/metrics" || t_fail "/metrics lacks '$s'"
done
python3 "$NUBO_SRC/tests/tools/monitoring_check.py" "$MON" "$T_TMP/metrics" >&2 ||
    t_fail "deploy/monitoring uses series the controller does not export"

# the check can fail: a name the controller does not export is caught
sed 's/nubo_node_memory_allocated_mb/nubo_node_memory_alocated_mb/' "$MON/grafana-nubo.json" > "$T_TMP/g.json"
mkdir -p "$T_TMP/mon" && cp "$MON/prometheus.yml" "$T_TMP/mon/" && cp "$T_TMP/g.json" "$T_TMP/mon/grafana-nubo.json"
python3 "$NUBO_SRC/tests/tools/monitoring_check.py" "$T_TMP/mon" "$T_TMP/metrics" > "$T_TMP/check.out" &&
    t_fail "a misspelt metric name passed the check"
grep -q 'nubo_node_memory_alocated_mb' "$T_TMP/check.out" || t_fail "check output: $(cat "$T_TMP/check.out")"

if command -v promtool >/dev/null; then
    sed "s|/etc/prometheus/|$T_TMP/|" "$MON/prometheus.yml" > "$T_TMP/prometheus.yml"
    cp "$T_TMP/scrape.token" "$T_TMP/nubo-scrape.token"
    cp "$T_TMP/scrape.token" "$T_TMP/nubo-user.token"
    promtool check config "$T_TMP/prometheus.yml" >&2 || t_fail "promtool refused the sample"
fi
t_log "PASS: monitoring samples match the controller's series"
