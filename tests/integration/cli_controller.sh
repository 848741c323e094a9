#!/bin/bash
# The seed's workflows through nubo against a real nubo-controller, a real docker-registry
# (notifying the controller of pushes) and the fake agent (real protocol, no VMs): login,
# build, run (deploy tree), run --replicas, deploy (waits for the image to be listed), images
# and instances lists (-o json parsed back), instance lifecycle, and the 401 error.
source "$NUBO_SRC/tests/lib.sh"
NUBO=$NUBO_BUILD/cli/nubo
CTL=$NUBO_BUILD/controller/nubo-controller
FAKE=$NUBO_BUILD/tests/nubo-fake-agent
[ -x "$NUBO" ] || t_fail "nubo not built at $NUBO"
[ -x "$CTL" ] || t_skip "nubo-controller not built ($CTL)"
[ -x "$FAKE" ] || t_skip "nubo-fake-agent not built ($FAKE)"
export HOME=$T_TMP/home XDG_CACHE_HOME=$T_TMP/cache XDG_CONFIG_HOME=$T_TMP/config
unset NUBO_API NUBO_TOKEN NUBO_REGISTRY NUBO_METRO NUBO_ORG NUBO_PROFILE
cd "$T_TMP"

CTL_PORT=$(t_free_port)
SECRET=s3cret$$
t_start_registry "notifications:
  endpoints:
    - name: nubo
      url: http://127.0.0.1:$CTL_PORT/registry/events
      headers:
        Authorization: [Bearer $SECRET]
      timeout: 2s
      threshold: 3
      backoff: 1s"
cat > ctl.ini <<INI
[controller]
plain_http = loopback
[registry]
url = $T_REGISTRY_URL
notification_secret = $SECRET
INI
"$CTL" --listen 127.0.0.1:$CTL_PORT --db "$T_TMP/ctl.db" --config ctl.ini \
    --bootstrap-token-file "$T_TMP/admin.token" > "$T_TMP/controller.log" 2>&1 &
t_track_pid $!
API=http://127.0.0.1:$CTL_PORT
t_wait_for 20 curl -fsS "$API/v1/healthz" || t_fail "controller did not start"
"$FAKE" --controller "$API" --join-token-file "$T_TMP/ctl.db.join-token" --metro fra \
    --nodes 2 --boot-ms 30 > "$T_TMP/fake-agent.log" 2>&1 &
t_track_pid $!

"$NUBO" login --api "$API" --token "$(cat admin.token)" --registry "$T_REGISTRY_URL" -q
grep -q "^api = $API" "$XDG_CONFIG_HOME/nubo/config" || t_fail "login wrote no profile"
t_wait_for 20 bash -c "'$NUBO' nodes list -o json | grep -q fake-1" || t_fail "nodes not registered"

# A runtime and the seed's example app (the token's user "admin" is the namespace).
python3 - <<'PY'
import os, struct
hdr = b'\x7fELF' + bytes([2, 1, 1]) + bytes(9) + struct.pack('<HH', 2, 62)
open('kernel', 'wb').write(hdr + os.urandom(32 * 1024))
PY
mkdir -p rt/usr/bin && printf 'python' > rt/usr/bin/python3
(cd rt && find . | sort | cpio -o -H newc > ../runtime.cpio 2>/dev/null)
"$NUBO" pkg --kernel kernel --initrd runtime.cpio --output official/python:3.11 --push -q
mkdir -p http-python312
printf 'print("hello")\n' > http-python312/server.py
printf 'spec: v0.6\nruntime: python:3.12\nrootfs: ./Dockerfile\ncmd: ["/usr/bin/python3", "/src/server.py"]\n' \
    > http-python312/Kraftfile
printf 'FROM scratch\n\n# Python HTTP server\nCOPY ./server.py /src/server.py\n' > http-python312/Dockerfile

# Workflow 1: build, then run; the deploy tree as in the seed.
"$NUBO" build http-python312 --output admin/http-python312:latest -q
"$NUBO" run --metro=fra -p 443:8080/http+tls -m 512MiB --image=admin/http-python312:latest > run.out 2> run.err \
    || t_fail "run failed: $(cat run.err)"
cat run.out >&2
grep -q '^\[●\] Deployed successfully!$' run.out || t_fail "no success title"
grep -Eq '^ ├───── boot time: [0-9]+\.[0-9]{2} ms$' run.out || t_fail "no boot time row"
grep -q '^ ├──────── memory: 512 MiB$' run.out || t_fail "no memory row"
grep -q '^ ├───────── image: admin/http-python312@sha256:' run.out || t_fail "image row not pinned to a digest"
grep -q '^ └────────── args: /usr/bin/python3 /src/server.py$' run.out || t_fail "no args row"

# Workflow 2: replicas; the list shows three instances, -o json parsed back.
"$NUBO" run --metro=fra -p 443:8080/http+tls -m 512MiB --replicas 2 \
    --image=admin/http-python312:latest -q > /dev/null 2>run2.err || t_fail "run -R 2: $(cat run2.err)"
"$NUBO" instances list -o json > list.json
python3 - <<'PY' || t_fail "instances list -o json is wrong"
import json
j = json.load(open('list.json'))
assert len(j) == 4, len(j)
assert all(i['state'] == 'running' and i['memory_mb'] == 512 for i in j), j
assert all(i['image'].startswith('admin/http-python312@sha256:') for i in j), j
PY
"$NUBO" instances list > list.txt
head -1 list.txt | grep -q '^NAME  *FQDN  *STATE  *CREATED AT  *IMAGE  *MEMORY  *ARGS  *BOOT TIME$' \
    || t_fail "instances table header: $(head -1 list.txt)"
grep -Eq 'running +([0-9]+ seconds? ago|now) +admin/http-python312@sha256\.\.\. +512 MiB +/usr/bin/python3 /src/server.py +[0-9]+us$' list.txt \
    || t_fail "instances table rows: $(cat list.txt)"

# Workflow 3: run from the digest.
digest=$("$NUBO" images get admin/http-python312:latest -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])')
"$NUBO" run --metro=fra -m 256 --name from-digest --image="$digest" -q > /dev/null || t_fail "run by digest"
"$NUBO" images list > images.txt
grep -Eq '^admin/http-python312 +latest +[0-9.]+ kB$' images.txt || t_fail "images table: $(cat images.txt)"

# deploy: build + push + wait until listed + run, in one go.
"$NUBO" deploy http-python312 -p 443:8080 -M 256 --name deployed > deploy.out 2> deploy.err \
    || t_fail "deploy failed: $(cat deploy.err)"
grep -q "name: deployed" deploy.out || t_fail "deploy printed no tree: $(cat deploy.out deploy.err)"
grep -q "pushed admin/http-python312:latest (${digest}," deploy.out \
    || t_fail "deploy rebuilt a different image than build: $(head -1 deploy.out) vs $digest"

# Lifecycle of one instance through the API's wait endpoint.
"$NUBO" instances stop from-digest -q
"$NUBO" instances wait from-digest --until stopped --timeout 10s -q || t_fail "wait stopped"
"$NUBO" instances get from-digest -o json | grep -q '"state": "stopped"' || t_fail "not stopped"
"$NUBO" instances start from-digest -w -q || t_fail "start -w"
# The agent's boot phases reach the API (under details) and instances get.
"$NUBO" instances get from-digest > get.txt
phases=$(sed -n 's/^ *boot_phases: //p' get.txt)
for f in domain_us image_us vmm_us slot_us copy_us; do
    [[ $phases =~ \"$f\":[0-9]+ ]] || t_fail "instances get shows no boot phase $f: $(cat get.txt)"
done
[[ $phases =~ \"guest_us\":[1-9][0-9]* ]] || t_fail "instances get shows no guest boot phase: $(cat get.txt)"
"$NUBO" instances logs from-digest | grep -q NUBO_READY || t_fail "logs lack the boot marker"
"$NUBO" instances rm from-digest -q
set +e
msg=$("$NUBO" instances get from-digest 2>&1); rc=$?
msg401=$("$NUBO" images list --token bm9ib2R5OnNlY3JldA== 2>&1); rc401=$?
set -e
[ $rc = 1 ] && [[ $msg == *"not found"* ]] || t_fail "removed instance still found: $msg"
[ $rc401 = 1 ] && [[ $msg401 == *"refused the token (HTTP 401"* ]] && [[ $msg401 == *"nubo login"* ]] \
    || t_fail "401: rc=$rc401 $msg401"
t_log "ok"
