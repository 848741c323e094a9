#!/bin/bash
# Issue 7 end to end on a private dev cluster (TCG guests): `nubo run -p` publishes the python
# example through the metro's nubo-ingress + HAProxy; the URL `nubo run` prints answers over
# TLS (CA pinned, --resolve to the ingress's loopback address), round robin reaches the
# replicas, http:// redirects to https://, a stopped replica is drained while requests keep
# succeeding, deleting every instance removes the route and the inline group, and handler rule
# violations are refused with one line.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/lib_cluster.sh"
t_need_ingress
t_cluster_up fra:2
t_cluster_runtimes
st=$("$DC" status)
grep -q "^CA: *$CA" <<<"$st" || t_fail "devcluster status does not name the CA: $st"

app=$T_TMP/http-python312
cp -r "$NUBO_SRC/examples/http-python" "$app"
cd "$app"
"$NUBO" build . --output demo/http-python312:latest > "$T_TMP/build.log" 2>&1 \
    || { tail -20 "$T_TMP/build.log"; t_fail "nubo build failed"; }

# --- handler rules: refused with one line, nothing created
if out=$("$NUBO" run --metro=fra -p 8080:8080/http -m 512MiB --image=demo/http-python312:latest 2>&1); then
    t_fail "-p 8080:8080/http was accepted: $out"
fi
[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || t_fail "rule violation error is not one line: $out"
t_log "rule violation refused: $out"
[ "$("$NUBO" instances list -o json | t_json 'len(d)')" = 0 ] || t_fail "a refused run created instances"

# --- deploy: 3 instances (--replicas 2) behind one inline group
out=$("$NUBO" run --metro=fra -p 443:8080/http+tls -p 80:443/http+redirect -m 512MiB --replicas 2 \
      --image=demo/http-python312:latest) || t_fail "nubo run failed: $out"
echo "$out"
grep -q 'Deployed successfully!' <<<"$out" || t_fail "not deployed"
url=$(sed -n 's/.*─ url: //p' <<<"$out" | head -1)
[[ $url =~ ^https://[a-z0-9-]+\.fra\.nubo\.local$ ]] || t_fail "no https url row: '$url'"
FQDN=${url#https://}
names=$("$NUBO" instances list -o json | t_json '" ".join(i["name"] for i in d)')
"$NUBO" instances wait $names --until running --timeout 180s > /dev/null || t_fail "instances not running"
t_log "url $url -> ingress $ADDR; instances $names"

get() { curl -sS --max-time 10 --cacert "$CA" --resolve "$FQDN:443:$ADDR" "$url/"; }
code() { curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$CA" --resolve "$FQDN:443:$ADDR" "$url/"; }
t_wait_for 60 bash -c "$(declare -f get); CA=$CA FQDN=$FQDN ADDR=$ADDR url=$url; get | grep -q 'Hello from nubo'" \
    || t_fail "the URL printed by nubo run does not answer through the ingress: $(get 2>&1)"
body=$(get)
t_log "through HAProxy: $body"

# --- round robin: the replicas answer (their private addresses differ). An instance is
# `running` once its guest says NUBO_READY, a moment before python listens: until then HAProxy
# retries the request on another instance, so give every app a little time to come up.
: > "$T_TMP/seen"
end=$((SECONDS + 60))
while [ $SECONDS -lt $end ]; do
    get | sed -n 's/.*instance \([0-9.]*\)).*/\1/p' >> "$T_TMP/seen"
    [ "$(sort -u "$T_TMP/seen" | wc -l)" -ge 3 ] && break
    sleep 0.2
done
seen=$(sort -u "$T_TMP/seen")
[ "$(wc -l <<<"$seen")" -ge 2 ] || t_fail "round robin reached only: $seen"
t_log "instances answering: $(echo $seen) over $(wc -l < "$T_TMP/seen") requests"

# --- measured, not asserted: one keep-alive connection, 50 requests, through HAProxy (TLS)
# vs plain HTTP straight to one guest from inside its node's namespace
lat() { sort -n | awk '{a[NR]=$1} END {printf "p50 %.2f ms, p90 %.2f ms", a[int(NR*0.5)+1]*1000, a[int(NR*0.9)]*1000}'; }
one=$("$NUBO" instances get "${names%% *}" -o json)
lnode=$(t_json 'd[0]["node"]' <<<"$one"); lip=$(t_json 'd[0]["private_ip"]' <<<"$one")
via=$(for i in $(seq 50); do printf 'url = "%s/"\noutput = "/dev/null"\nwrite-out = "%%{time_total}\\n"\n' "$url"; done |
      curl -sS --cacert "$CA" --resolve "$FQDN:443:$ADDR" -K - | lat)
direct=$(for i in $(seq 50); do printf 'url = "http://%s:8080/"\noutput = "/dev/null"\nwrite-out = "%%{time_total}\\n"\n' "$lip"; done |
      "$DC" exec "$lnode" curl -sS -K - | lat)
t_log "latency: through HAProxy (https, keep-alive, round robin) $via; direct to $lip in $lnode $direct"

# --- http:// on 80 redirects to https://
loc=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' --max-time 10 --resolve "$FQDN:80:$ADDR" "http://$FQDN/x")
[ "$loc" = "301 https://$FQDN/x" ] || t_fail "http redirect: $loc"

# --- stop one: requests keep succeeding
first=${names%% *}
"$NUBO" instances stop "$first" > /dev/null || t_fail "stop failed"
fails=0
for i in $(seq 20); do
    b=$(get 2>&1) && grep -q 'Hello from nubo' <<<"$b" || fails=$((fails + 1))
    sleep 0.2
done
[ "$fails" = 0 ] || t_fail "$fails of 20 requests failed while $first stopped"
"$NUBO" instances wait "$first" --until stopped --timeout 60s > /dev/null || t_fail "$first did not stop"
for i in $(seq 6); do get | grep -q 'Hello from nubo' || t_fail "request after the stop failed"; done

# --- delete all: no backend for the name, the inline group is gone
group=$(t_api GET /v1/services | t_json '[g["uuid"] for g in d["data"]["service_groups"]]')
"$NUBO" instances rm $names > /dev/null || t_fail "rm failed"
t_wait_for 30 bash -c "$(declare -f code); CA=$CA FQDN=$FQDN ADDR=$ADDR url=$url; [ \$(code) = 503 ]" \
    || t_fail "$FQDN still reaches a backend after delete ($(code))"
left=$(t_api GET /v1/services | t_json 'len(d["data"]["service_groups"])')
[ "$left" = 0 ] || t_fail "inline group $group still listed after its last instance went"
t_log "PASS: services through the ingress"
