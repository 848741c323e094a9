#!/bin/bash
# Stateful scale-to-zero end to end on a private dev cluster (TCG guests, real libvirt): a python
# app that counts its requests goes to standby with its memory saved on the node's disk, the next
# request through the metro's HAProxy restores it and the count goes on; a user's stop discards
# the saved memory and the next start boots afresh (the count starts over). The guest's
# scale-to-zero disable counter (/uk/libukp/scale_to_zero_disable) holds it out of standby.
# Beside it (overlapping its waits), policy idle on a TCP+TLS port: a stateful redis goes to
# standby under one open but silent TLS connection through the metro's HAProxy, and that
# connection's next command wakes it (its slot's bytes counter moves) and is answered with the
# state the connection left (INCR k -> :1, standby, INCR k -> :2 on the same connection).
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/lib_cluster.sh"
t_need_ingress
t_cluster_up fra:1
t_cluster_runtimes

# --- redis, policy idle, stateful: its runtime pushed and the app built in the background
# (redis_side) while the counter boots, then created and driven (incr.py) while the counter's
# checks run (its TCG boot waits for the counter's first answer: two at once slowed both)
cat > "$T_TMP/incr.py" <<'EOF'
# nubo run redis (policy idle, stateful), then one TLS connection through the ingress: INCR k,
# silent until the instance is in standby, INCR k again on the same connection (bounded: 60 s
# for the answer across the wake).
import json, socket, ssl, subprocess, sys, time
addr, ca, nubo = sys.argv[1:4]
def stamp():
    return time.strftime("%H:%M:%S", time.gmtime()) + ".%03d" % (time.time() % 1 * 1000)
def nubo_json(*args):
    return json.loads(subprocess.run([nubo, *args, "-o", "json"], capture_output=True,
                                     text=True).stdout or "[{}]")[0]
run = subprocess.run([nubo, "run", "--metro=fra", "--name", "redis-idle", "-p", "6379:6379/tls",
                      "-m", "128MiB", "--scale-to-zero", "idle", "--scale-to-zero-stateful",
                      "--scale-to-zero-cooldown", "3s", "--image=demo/redis:latest"],
                     capture_output=True, text=True)
if run.returncode != 0:
    sys.exit("nubo run redis failed: " + run.stdout + run.stderr)
inst = nubo_json("instances", "get", "redis-idle")
print("uuid", inst["uuid"], flush=True)
fqdn = inst["service_group"]["domains"][0]["fqdn"]
ctx = ssl.create_default_context(cafile=ca)
def ask(s, line, timeout):
    s.settimeout(timeout)
    s.sendall(line)
    buf = b""
    while not buf.endswith(b"\r\n"):
        d = s.recv(64)
        if not d:
            raise EOFError("connection closed after %r" % buf)
        buf += d
    return buf.decode().strip()
end = time.monotonic() + 180
while True:  # redis listens a moment after the instance runs: PING on fresh connections
    try:
        s = ctx.wrap_socket(socket.create_connection((addr, 6379), timeout=10), server_hostname=fqdn)
        if ask(s, b"PING\r\n", 10) == "+PONG":
            break
    except (OSError, EOFError):
        pass
    if time.monotonic() > end:
        sys.exit("redis did not answer PING through the ingress")
    time.sleep(1)
print("first", ask(s, b"INCR k\r\n", 10), stamp(), flush=True)
end = time.monotonic() + 120
while nubo_json("instances", "get", "redis-idle").get("state") != "standby":
    if time.monotonic() > end:
        sys.exit("no standby under a silent connection")
    time.sleep(0.5)
t0 = time.monotonic()
print("sent", stamp(), flush=True)
second = ask(s, b"INCR k\r\n", 60)
print("second", second, stamp(), "after %d ms" % ((time.monotonic() - t0) * 1000), flush=True)
EOF
cp -r "$NUBO_SRC/examples/redis" "$T_TMP/redis"
redis_side() { # no t_* helper here: they share the test's one JSON reader
    NUBO_TOKEN=$ADMIN_TOKEN "$NUBO_SRC/guest/build-runtimes" --runtimes redis --build "$NUBO_BUILD" --nubo "$NUBO" \
        --registry "http://$NUBO_DEVCLUSTER_REGISTRY" > "$T_TMP/runtimes-redis.log" 2>&1 \
        || { echo "build-runtimes redis failed"; tail -20 "$T_TMP/runtimes-redis.log"; return 1; }
    (cd "$T_TMP/redis" && "$NUBO" build . --output demo/redis:latest) > "$T_TMP/build-redis.log" 2>&1 \
        || { echo "nubo build redis failed"; tail -20 "$T_TMP/build-redis.log"; return 1; }
    while [ ! -e "$T_TMP/counting" ]; do sleep 0.2; done
    exec python3 "$T_TMP/incr.py" "$ADDR" "$CA" "$NUBO"
}
redis_side > "$T_TMP/incr.out" 2>&1 &
INCR=$!
t_track_pid $INCR

app=$T_TMP/counter
mkdir -p "$app"
cat > "$app/Kraftfile" <<'EOF'
spec: v0.6
runtime: python:3.12
rootfs: ./Dockerfile
cmd: ["/usr/bin/python3", "/src/server.py"]
EOF
printf 'FROM scratch\nCOPY ./server.py /src/server.py\n' > "$app/Dockerfile"
cat > "$app/server.py" <<'EOF'
# Counts the requests to / it answered: only its memory knows the count. /hold and /release
# step the platform's scale-to-zero disable counter.
from http.server import BaseHTTPRequestHandler, HTTPServer
count = 0
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        global count
        if self.path in ("/hold", "/release"):
            with open("/uk/libukp/scale_to_zero_disable", "w") as f:
                f.write("+" if self.path == "/hold" else "-")
            body = b"ok\n"
        else:
            count += 1
            body = f"count {count}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
HTTPServer(("0.0.0.0", 8080), H).serve_forever()
EOF
t_cluster_build "$app" demo/counter:latest

out=$("$NUBO" run --metro=fra -p 443:8080/http+tls -m 256MiB --scale-to-zero on \
      --scale-to-zero-stateful --scale-to-zero-cooldown 2s --image=demo/counter:latest) \
    || t_fail "nubo run failed: $out"
url=$(sed -n 's/.*─ url: //p' <<<"$out" | head -1)
FQDN=${url#https://}
name=$(sed -n 's/.*─ name: //p' <<<"$out" | head -1)
uuid=$("$NUBO" instances get "$name" -o json | t_json 'd[0]["uuid"]')
inst() { "$NUBO" instances get "$name" -o json | t_json "d[0]$1"; }
get() { curl -sS --max-time 60 --cacert "$CA" --resolve "$FQDN:443:$ADDR" "$url/${1:-}"; }
# the guest is running from its ready marker, a moment before python listens (and it may be
# in standby already when the machine is slow: the request wakes it)
t_wait_for 120 bash -c "$(declare -f get); CA=$CA FQDN=$FQDN ADDR=$ADDR url=$url; get | grep -q '^count 1$'" \
    || t_fail "the counter does not answer through the ingress: $(get 2>&1)"
[ "$(get)" = "count 2" ] || t_fail "second request not counted"
t_log "counting through the ingress"
touch "$T_TMP/counting"
[ "$(inst '["scale_to_zero"]["stateful"]')" = True ] || t_fail "scale_to_zero.stateful not shown"

save=$(ls -d "$NUBO_DEVCLUSTER_DIR"/nodes/*/agent/state/instances/"$uuid" | head -1)/memory.save
standby() { [ "$(inst '["state"]')" = standby ]; }

# the disable counter holds it awake past its cooldown, its release lets it go
[ "$(get hold)" = ok ] || t_fail "/hold failed"
t_wait_for 30 grep -q "instance $uuid: scale-to-zero disable counter 1" "$NUBO_DEVCLUSTER_DIR"/nodes/*/agent.log \
    || t_fail "the agent did not see the guest's disable counter"
sleep 6 # three cooldowns with no traffic: it would be in standby without the counter
[ "$(inst '["state"]')" = running ] \
    || t_fail "an instance with its disable counter at 1 went to standby"
[ "$(get release)" = ok ] || t_fail "/release failed"
t_wait_for 60 standby || t_fail "no standby after the cooldown: $("$NUBO" instances list)"
ls -l "$save" > /dev/null 2>&1 || t_fail "no save image at $save after a stateful standby"
t_log "standby, memory saved: $(du -h "$save" | cut -f1)"

# the wake restores the guest: the count goes on, the first request answered, not refused
t0=$(date +%s%N)
body=$(get) || t_fail "request during the wake failed"
t_log "wake answered in $(( ($(date +%s%N) - t0) / 1000000 )) ms: $body"
[ "$body" = "count 3" ] || t_fail "stateful wake lost the app's memory: '$body' (want count 3)"
grep -q "instance $uuid: restored from its saved memory" "$NUBO_DEVCLUSTER_DIR"/nodes/*/agent.log \
    || t_fail "the agent did not restore the instance"
[ ! -e "$save" ] || t_fail "the save image stays after the restore"
[ "$(get)" = "count 4" ] || t_fail "the restored app does not keep counting"
bt=$(inst '.get("boot_time_us", 0)')
[ "${bt:-0}" -gt 0 ] || t_fail "the wake reports no boot_time_us"
t_log "wake boot_time_us $bt"

# standby again, then a user's stop: the saved memory goes, the next start boots afresh
t_wait_for 60 standby || t_fail "no second standby"
t_wait_for 30 test -e "$save" || t_fail "no save image after the second standby"
"$NUBO" instances stop "$name" > /dev/null || t_fail "stop of a standby instance failed"
t_wait_for 30 bash -c "! test -e '$save'" || t_fail "a user's stop kept the save image"
"$NUBO" instances start "$name" > /dev/null || t_fail "start failed"
"$NUBO" instances wait "$name" --until running --timeout 120s > /dev/null || t_fail "not running after start"
t_wait_for 60 bash -c "$(declare -f get); CA=$CA FQDN=$FQDN ADDR=$ADDR url=$url; get | grep -q '^count 1$'" \
    || t_fail "a start after a user's stop did not boot afresh: $(get 2>&1)"

# --- the redis connection's second INCR, across its standby
wait $INCR || t_fail "redis client: $(cat "$T_TMP/incr.out")"
cat "$T_TMP/incr.out" >&2
ruuid=$(sed -n 's/^uuid //p' "$T_TMP/incr.out")
grep -q '^first :1 ' "$T_TMP/incr.out" || t_fail "first INCR: $(cat "$T_TMP/incr.out")"
grep -q '^second :2 ' "$T_TMP/incr.out" \
    || t_fail "the silent connection's INCR across the standby: $(cat "$T_TMP/incr.out")"
grep -h "bytes for $ruuid, which sleeps: wake asked\|instance $ruuid: restored" \
    "$NUBO_DEVCLUSTER_DIR"/ingress/*/ingress.log "$NUBO_DEVCLUSTER_DIR"/nodes/*/agent.log >&2
grep -q "bytes for $ruuid, which sleeps: wake asked" "$NUBO_DEVCLUSTER_DIR"/ingress/*/ingress.log \
    || t_fail "the ingress did not ask the wake of the redis instance"
grep -q "instance $ruuid: restored from its saved memory" "$NUBO_DEVCLUSTER_DIR"/nodes/*/agent.log \
    || t_fail "redis was not restored (a boot would have lost the connection)"
t_log "redis: a silent TLS connection kept across a stateful standby, its next bytes woke it"
t_log "ok"
