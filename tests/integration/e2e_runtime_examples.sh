#!/usr/bin/env bash
# The runtime catalog's examples as users deploy them, on a private dev cluster (TCG guests):
# build-runtimes pushes base, base-compat, node, nginx and redis; `nubo build` turns each of
# examples/{http-node,nginx,redis,http-c} into an app image (node:21 -> Debian's 18 with a
# notice), `nubo run` starts it, and the HTTP apps answer through the metro's ingress, redis
# answers PING from the node's namespace. Prints run-to-answer per app. A Kraftfile naming a
# runtime the cluster lacks fails `nubo build` with one line listing the ones it has.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/lib_cluster.sh"
command -v cc >/dev/null || t_skip "cc missing"
t_cluster_up fra:1
NUBO_TOKEN=$ADMIN_TOKEN "$NUBO_SRC/guest/build-runtimes" --build "$NUBO_BUILD" --registry "http://$NUBO_DEVCLUSTER_REGISTRY" \
    --runtimes base,base-compat,node,nginx,redis > "$T_TMP/runtimes.log" 2>&1 \
    || { tail -30 "$T_TMP/runtimes.log" >&2; t_fail "build-runtimes failed"; }
grep -q '^official/node:18 sha256:' "$T_TMP/runtimes.log" || t_fail "no official/node:18 pushed"

cp -r "$NUBO_SRC/examples/http-node" "$NUBO_SRC/examples/nginx" "$NUBO_SRC/examples/redis" \
    "$NUBO_SRC/examples/http-c" "$T_TMP/"
make -s -C "$T_TMP/http-c" > "$T_TMP/make.log" 2>&1 || t_fail "make examples/http-c failed"

# --- a runtime the cluster does not have
mkdir -p "$T_TMP/bad"
printf 'spec: v0.6\nruntime: cobol:latest\ncmd: ["/app"]\n' > "$T_TMP/bad/Kraftfile"
if "$NUBO" build "$T_TMP/bad" --output demo/bad:latest > "$T_TMP/bad.log" 2>&1; then
    t_fail "nubo build accepted runtime cobol:latest"
fi
cat "$T_TMP/bad.log"
[ "$(grep -c . "$T_TMP/bad.log")" = 1 ] || t_fail "unknown runtime: not one line"
for r in base base-compat nginx node redis; do
    grep -Eq "runtime 'cobol:latest' does not exist in this cluster .*has: .*\b$r\b" "$T_TMP/bad.log" \
        || t_fail "unknown runtime: the error does not list $r"
done

# deploy NAME DIR MEM EXPECT [build args...]: build, run with 443 -> 8080, HTTP through the ingress.
deploy_http() {
    local name=$1 dir=$2 mem=$3 expect=$4; shift 4
    "$NUBO" build "$dir" --output "demo/$name:latest" "$@" > "$T_TMP/build-$name.log" 2>&1 \
        || { cat "$T_TMP/build-$name.log"; t_fail "nubo build $name failed"; }
    local t0=${EPOCHREALTIME/./} out
    out=$("$NUBO" run --metro=fra -p 443:8080/http+tls -m "$mem" --image="demo/$name:latest") \
        || t_fail "nubo run $name failed: $out"
    grep -Eq 'state: running$' <<<"$out" || { echo "$out"; t_fail "$name not running"; }
    local url fqdn body boot
    url=$(sed -n 's/.*─ url: //p' <<<"$out")
    fqdn=${url#https://}
    boot=$(sed -n 's/.*boot time: //p' <<<"$out")
    body=$(curl -fsS --cacert "$NUBO_DEVCLUSTER_DIR/ca/ca.pem" --resolve "$fqdn:443:$NUBO_DEVCLUSTER_INGRESS_NET.1" \
        --max-time 5 --retry 120 --retry-all-errors --retry-delay 1 "$url") \
        || { "$NUBO" instances logs "$(sed -n 's/.*─ name: //p' <<<"$out")" 2>&1 | tail -20; t_fail "$name: $url did not answer through the ingress"; }
    grep -q "$expect" <<<"$body" || t_fail "$name: unexpected answer: $body"
    printf '%-12s boot %s, run-to-answer %d ms: %s\n' "$name" "$boot" $(( (${EPOCHREALTIME/./} - t0) / 1000 )) \
        "$(head -1 <<<"$body" | head -c 60)" | tee -a "$T_TMP/report.txt"
    "$NUBO" instances rm "$(sed -n 's/.*─ name: //p' <<<"$out")" > /dev/null 2>&1 || true
}

deploy_http http-node "$T_TMP/http-node" 512MiB 'Hello from nubo! (Node.js v18'
grep -q 'notice: runtime node:21 .*official/node:' "$T_TMP/build-http-node.log" || t_fail "no notice for node:21"
deploy_http nginx "$T_TMP/nginx" 128MiB 'Hello from nubo!'
deploy_http http-c "$T_TMP/http-c" 128MiB 'Hello from nubo! (C, static)'
deploy_http http-c-compat "$T_TMP/http-c" 128MiB 'Hello from nubo! (C, dynamic)' -K "$T_TMP/http-c/Kraftfile.compat"

# --- redis: TCP from the node's namespace (where private IPs live)
"$NUBO" build "$T_TMP/redis" --output demo/redis:latest > "$T_TMP/build-redis.log" 2>&1 \
    || { cat "$T_TMP/build-redis.log"; t_fail "nubo build redis failed"; }
t0=${EPOCHREALTIME/./}
out=$("$NUBO" run --metro=fra -m 128MiB --image=demo/redis:latest) || t_fail "nubo run redis failed: $out"
name=$(sed -n 's/.*─ name: //p' <<<"$out")
inst=$("$NUBO" instances get "$name" -o json)
node=$(t_json 'd[0]["node"]' <<<"$inst")
ip=$(t_json 'd[0]["private_ip"]' <<<"$inst")
pong=
for _ in $(seq 1 120); do
    pong=$("$DC" exec "$node" timeout 3 bash -c "exec 3<>/dev/tcp/$ip/6379; printf 'PING\r\n' >&3; head -c 7 <&3" 2>/dev/null) && break
    sleep 1
done
grep -q '+PONG' <<<"$pong" || t_fail "redis on $ip did not answer PING: '$pong'"
printf '%-12s run-to-PONG %d ms\n' redis $(( (${EPOCHREALTIME/./} - t0) / 1000 )) | tee -a "$T_TMP/report.txt"
# The app's redis.conf replaced the runtime's: maxmemory is the example's 32 MiB.
maxmem=$("$DC" exec "$node" timeout 10 bash -c "exec 3<>/dev/tcp/$ip/6379; printf 'CONFIG GET maxmemory\r\nQUIT\r\n' >&3; cat <&3" 2>/dev/null | tr -d '\r' | sed -n '5p') || true
[ "$maxmem" = 33554432 ] || t_fail "redis did not use the app's redis.conf (maxmemory '$maxmem')"

cat "$T_TMP/report.txt"
echo "PASS e2e_runtime_examples"
