#!/usr/bin/env bash
# Scale-to-zero wake latency on the dev cluster, first byte through the metro's HAProxy (new
# TLS connection per request, curl's time_starttransfer): the same request to a running
# `hello --http` instance, to the same instance woken from standby (stateless: the domain was
# stopped, so a wake is a boot), and a cold create (POST with wait, then the first answer),
# all in the same run. Prints medians and the ratios.
# usage: bench/s2z_wake.sh [BUILD_DIR] [RUNS]   (root; starts and removes a private cluster)
set -euo pipefail
NUBO_SRC=$(cd "$(dirname "$0")/.." && pwd)
NUBO_BUILD=${1:-$NUBO_SRC/build}
RUNS=${2:-5}
export NUBO_SRC NUBO_BUILD
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/lib_cluster.sh"
export NUBO_DEVCLUSTER_INGRESS_NET=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1))
t_cluster_up fra:1
t_cluster_runtimes
ADDR=$NUBO_DEVCLUSTER_INGRESS_NET.1
CA=$NUBO_DEVCLUSTER_DIR/ca/ca.pem

create() { # name, extra JSON fields -> prints the group's fqdn
    local body
    body=$(t_api POST /v1/instances "{\"image\":\"official/hello:latest\",\"name\":\"$1\",\"memory_mb\":16,\"args\":[\"--http\",\"8080\"],\"metro\":\"fra\",\"service_group\":{\"services\":[{\"port\":443,\"destination_port\":8080,\"handlers\":[\"http\",\"tls\"]}]},\"wait_timeout_ms\":120000$2}")
    t_json 'd["data"]["instances"][0]["service_group"]["domains"][0]["fqdn"]' <<<"$body" ||
        t_fail "create $1: $body"
}
first_byte() { # fqdn -> "code seconds"
    curl -sS -o /dev/null --max-time 60 --cacert "$CA" --resolve "$1:443:$ADDR" \
        -w '%{http_code} %{time_starttransfer}' "https://$1/"
}
state() { t_api GET "/v1/instances/$1" | t_json 'd["data"]["instances"][0]["state"]'; }

# warm the node's image cache and the ingress: not what is measured
fq=$(create warm "")
t_wait_for 60 bash -c "$(declare -f first_byte); CA=$CA ADDR=$ADDR; [ \"\$(first_byte $fq | cut -d' ' -f1)\" = 200 ]"
t_api DELETE /v1/instances/warm > /dev/null

S2Z=$(create sleepy ',"scale_to_zero":{"policy":"on","cooldown_time_ms":1000}')
t_wait_for 60 bash -c "$(declare -f first_byte); CA=$CA ADDR=$ADDR; [ \"\$(first_byte $S2Z | cut -d' ' -f1)\" = 200 ]"
: > "$T_TMP/running"; : > "$T_TMP/wake"; : > "$T_TMP/cold"
for i in $(seq "$RUNS"); do
    # running: keep it busy, so it stays up
    r=$(first_byte "$S2Z"); [ "${r%% *}" = 200 ] && echo "${r#* }" >> "$T_TMP/running"
    t_api GET "/v1/instances/sleepy/wait?state=standby&timeout_ms=60000" > /dev/null
    r=$(first_byte "$S2Z")
    [ "${r%% *}" = 200 ] || t_fail "wake $i answered $r"
    echo "${r#* }" >> "$T_TMP/wake"
    # cold: create, wait running, first answer (a new group: the ingress reloads for it)
    t0=$(date +%s%N)
    fq=$(create "cold-$i" "")
    while :; do r=$(first_byte "$fq"); [ "${r%% *}" = 200 ] && break; done
    echo "$(( $(date +%s%N) - t0 ))" | awk '{printf "%.6f\n", $1 / 1e9}' >> "$T_TMP/cold"
    t_api DELETE "/v1/instances/cold-$i" > /dev/null
done
python3 - "$T_TMP" <<'PY'
import statistics, sys
d = sys.argv[1]
m = {k: statistics.median(float(x) for x in open(f"{d}/{k}")) for k in ("running", "wake", "cold")}
for k, v in m.items():
    print(f"{k:8s} median first byte {v * 1000:8.1f} ms")
print(f"wake - running {1000 * (m['wake'] - m['running']):.1f} ms; wake / cold create {m['wake'] / m['cold']:.2f}")
PY
