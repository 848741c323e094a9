# The seed's three workflows, as a user runs them, on a private dev cluster (TCG guests):
# build + run, many instances with --replicas 2, instances from an existing image by digest;
# then images list, instances list, wait, logs, stop/start/delete, exit codes and crashes.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/lib_cluster.sh"
t_cluster_up fra:2,was:1
t_cluster_runtimes

app=$T_TMP/http-python312
cp -r "$NUBO_SRC/examples/http-python" "$app"
cd "$app"

# --- 1. Create an image and an instance from it
t_log "workflow 1: build + run"
"$NUBO" build . --output demo/http-python312:latest > "$T_TMP/build1.log" 2>&1 \
    || { cat "$T_TMP/build1.log"; t_fail "nubo build failed"; }
out=$("$NUBO" run --metro=fra -p 443:8080/http+tls -m 512MiB --image=demo/http-python312:latest) \
    || t_fail "nubo run failed: $out"
echo "$out"
grep -q '^\[●\] Deployed successfully!' <<<"$out" || t_fail "no 'Deployed successfully!' title"
grep -Eq 'state: running$' <<<"$out" || t_fail "instance not running"
grep -Eq 'boot time: [0-9]+\.[0-9]{2} ms$' <<<"$out" || t_fail "no boot time row"
grep -Eq 'image: demo/http-python312@sha256:[0-9a-f]{64}$' <<<"$out" || t_fail "image not in digest form"
grep -Eq 'memory: 512 MiB$' <<<"$out" || t_fail "memory row wrong"
grep -Eq 'args: /usr/bin/python3 /src/server.py$' <<<"$out" || t_fail "args row wrong"
name1=$(sed -n 's/.*─ name: //p' <<<"$out")
inst=$("$NUBO" instances get "$name1" -o json)
node1=$(t_json 'd[0]["node"]' <<<"$inst")
ip1=$(t_json 'd[0]["private_ip"]' <<<"$inst")
[ "$(t_json 'd[0]["metro"]' <<<"$inst")" = fra ] || t_fail "instance not in metro fra"
body=$(t_node_curl "$node1" "http://$ip1:8080/") || t_fail "app did not answer on $ip1:8080"
grep -q 'Hello from nubo' <<<"$body" || t_fail "unexpected app answer: $body"
t_log "workflow 1 ok: $name1 on $node1 ($ip1) answered: $body"
# ... and through the URL nubo run printed: the metro's HAProxy, TLS from the cluster's CA.
url=$(sed -n 's/.*─ url: //p' <<<"$out")
[[ $url == https://*.fra.nubo.local ]] || t_fail "no https url row for the published port: '$url'"
fqdn=${url#https://}
body=$(curl -fsS --cacert "$NUBO_DEVCLUSTER_DIR/ca/ca.pem" --resolve "$fqdn:443:$NUBO_DEVCLUSTER_INGRESS_NET.1" \
    --max-time 5 --retry 30 --retry-all-errors --retry-delay 1 "$url") || t_fail "$url did not answer through the ingress"
grep -q "Hello from nubo.*instance $ip1" <<<"$body" || t_fail "unexpected answer through $url: $body"
t_log "workflow 1: $url answered through the ingress: $body"

images=$("$NUBO" images list)
echo "$images"
grep -Eq '^demo/http-python312 +latest +[0-9]+ MB' <<<"$images" || t_fail "images list lacks demo/http-python312"

# --- 2. Create an image and many instances from it
t_log "workflow 2: --replicas 2"
before=$("$NUBO" instances list -o json | t_json '" ".join(sorted(i["uuid"] for i in d))')
"$NUBO" build . --output demo/http-python312:latest > "$T_TMP/build2.log" 2>&1 || t_fail "second build failed"
out=$("$NUBO" run --metro=fra -p 443:8080/http+tls -m 512MiB --replicas 2 --image=demo/http-python312:latest) \
    || t_fail "nubo run --replicas 2 failed: $out"
grep -q 'Deployed successfully!' <<<"$out" || t_fail "replicas deploy not successful"
all=$("$NUBO" instances list -o json)
new=$(python3 -c '
import json,sys
before=set(sys.argv[1].split()); d=json.load(sys.stdin)
print(" ".join(i["uuid"] for i in d if i["uuid"] not in before))' "$before" <<<"$all")
[ "$(wc -w <<<"$new")" = 3 ] || t_fail "--replicas 2 should create 3 instances, got: $new"
"$NUBO" instances wait $new --until running --timeout 120s > /dev/null || t_fail "replicas did not all reach running"
nodes=$(python3 -c '
import json,sys
new=set(sys.argv[1].split()); d=json.load(sys.stdin)
print(" ".join(sorted({i["node"] for i in d if i["uuid"] in new})))' "$new" <<<"$("$NUBO" instances list -o json)")
[ "$nodes" = "fra-1 fra-2" ] || t_fail "replicas not spread over both fra nodes: $nodes"
listing=$("$NUBO" instances list)
echo "$listing"
[ "$(grep -c ' running ' <<<"$listing")" -ge 4 ] || t_fail "instances list should show 4 running"
head -1 <<<"$listing" | grep -Eq '^NAME +FQDN +STATE +CREATED AT +IMAGE +MEMORY +ARGS +BOOT TIME' || t_fail "instances list header"

# --- 3. Create instances from an existing image
t_log "workflow 3: run by digest"
digest_ref=$(t_json 'd[0]["image"]' <<<"$inst")
out=$("$NUBO" run --metro=fra -p 443:8080/http+tls -m 512MiB --image="$digest_ref") || t_fail "run by digest failed: $out"
grep -q 'Deployed successfully!' <<<"$out" || t_fail "run by digest not successful"
grep -q "image: $digest_ref" <<<"$out" || t_fail "run by digest shows another image"

# --- wait, logs, stop, start, delete
t_log "lifecycle: stop / wait / start / logs / rm"
"$NUBO" instances stop "$name1" > /dev/null || t_fail "stop failed"
"$NUBO" instances wait "$name1" --until stopped --timeout 60s > /dev/null || t_fail "wait stopped failed"
st=$("$NUBO" instances get "$name1" -o json)
[ "$(t_json 'd[0]["state"]' <<<"$st")" = stopped ] || t_fail "not stopped after stop"
"$NUBO" instances start "$name1" > /dev/null || t_fail "start failed"
"$NUBO" instances wait "$name1" --until running --timeout 120s > /dev/null || t_fail "did not come back to running"
[ "$("$NUBO" instances get "$name1" -o json | t_json 'd[0]["start_count"]')" -ge 2 ] || t_fail "start_count not bumped"
"$NUBO" instances logs "$name1" | grep -q NUBO_READY || t_fail "logs lack the guest's console"

# --- the other metro, exit codes and crashes with the hello unikernel
out=$("$NUBO" run --metro=was -m 64Mi --name hello-exit --image=official/hello:latest -- --exit 3) || true
"$NUBO" instances wait hello-exit --until stopped --timeout 60s > /dev/null || t_fail "hello --exit 3 did not stop"
h=$("$NUBO" instances get hello-exit -o json)
[ "$(t_json 'd[0]["node"]' <<<"$h")" = was-1 ] || t_fail "--metro=was not placed on was-1"
[ "$(t_json 'd[0]["exit_code"]' <<<"$h")" = 3 ] || t_fail "exit_code should be 3: $h"
[ "$(t_json 'd[0]["stop_reason"] & 2' <<<"$h")" = 2 ] || t_fail "stop_reason should say the app exited: $h"
out=$("$NUBO" run --metro=was -m 64Mi --name hello-crash --image=official/hello:latest -- --crash) || true
"$NUBO" instances wait hello-crash --until stopped --timeout 60s > /dev/null || t_fail "hello --crash did not stop"
c=$("$NUBO" instances get hello-crash -o json)
[ "$(t_json 'd[0]["stop_reason"]' <<<"$c")" = 1 ] || t_fail "a crash should be stop_reason 1: $c"

# --- many env vars with blanks reach a Linux guest's app intact (compact env.vars form)
envj=$(python3 -c 'import json; print(json.dumps({f"K{i}": f"v {i}" for i in range(40)}))')
t_api POST /v1/instances "{\"autostart\":true,\"image\":\"official/base:latest\",\"name\":\"env-check\",\"memory_mb\":256,\"metro\":\"was\",\"args\":[\"/bin/busybox\",\"env\"],\"env\":$envj}" > /dev/null
"$NUBO" instances wait env-check --until stopped --timeout 90s > /dev/null || t_fail "env-check did not run to its end"
# The console is shipped on its own path; its last lines may trail the stopped report a little.
env_log_complete() { "$NUBO" instances logs env-check | grep -q '^NUBO_EXIT'; }
t_wait_for 20 env_log_complete || t_fail "env-check's console never showed NUBO_EXIT"
envlog=$("$NUBO" instances logs env-check | tr -d '\r')   # a serial console ends lines with CR LF
for i in 0 17 39; do grep -qx "K$i=v $i" <<<"$envlog" || t_fail "env var K$i missing or mangled in the guest"; done
[ "$(grep -c '^K[0-9]*=v ' <<<"$envlog")" = 40 ] || t_fail "not all 40 env vars reached the app"
[ "$("$NUBO" instances get env-check -o json | t_json 'd[0]["exit_code"]')" = 0 ] || t_fail "env-check exit code"

all=$("$NUBO" instances list -o json | t_json '" ".join(i["name"] for i in d)')
"$NUBO" instances rm $all > /dev/null || t_fail "rm failed"
left=$("$NUBO" instances list -o json | t_json 'len(d)')
[ "$left" = 0 ] || t_fail "$left instances left after rm"
# Deletion is acknowledged at once and carried out by the agents: their domains go away soon.
no_domains() { [ -z "$("$DC" exec "$1" virsh -q -c qemu:///system list --name)" ]; }
for n in fra-1 fra-2 was-1; do
    t_wait_for 60 no_domains "$n" || t_fail "$n still runs domains 60 s after rm"
done
t_log "PASS: seed workflows"
