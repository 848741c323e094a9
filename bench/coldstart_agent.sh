#!/usr/bin/env bash
# Cold-start benchmark driver for the agent (bench_coldstart_agent, see coldstart_agent.c); every
# section prints bare qemu, virsh create, the agent's create and the warm-slot take path
# (PVH guests) measured interleaved in one run, median and p90, and their ratios:
#   1. the tiny PVH test guest on the system libvirtd;
#   1b. the hello unikernel, and a burst of BURST (default 20) at once without and with slots;
#   2. the base runtime (Linux) when it is built;
#   3. the tiny guest on a private libvirtd whose qemu.conf trims libvirt's start path
#      (no per-domain /dev namespace, no cgroups, no DAC relabelling, no virtlogd), to show what
#      of libvirt's cost is host configuration rather than the agent;
#   4. API create -> running through nubo-controller + nubo-agent (tiny guest), interleaved
#      without a slot and with the agent's warm-slot pool, against section 1's qemu and virsh.
# usage: bench/coldstart_agent.sh [BUILD_DIR] [RUNS]     (root; libvirtd running)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$SRC/build}" && pwd)  # absolute: section 3 runs it from another mount namespace
RUNS=${2:-10}
BIN=$B/bench/bench_coldstart_agent
[ -x "$BIN" ] || { echo "build $BIN first" >&2; exit 1; }

echo "== 1. tiny PVH guest, system libvirtd"
S1=$(mktemp /tmp/nubo-bench-s1.XXXXXX)
"$BIN" --runs "$RUNS" | tee "$S1"
QEMU_MS=$(awk '/qemu-system-x86_64 direct/ {print $(NF-1)}' "$S1")
VIRSH_MS=$(awk '/virsh create/ {print $(NF-1)}' "$S1")
rm -f "$S1"

HELLO=$B/guest/hello/hello
if [ -f "$HELLO" ]; then
    echo "== 1b. hello unikernel (16 MiB), system libvirtd; then ${BURST:=20} at once, without and with slots"
    "$BIN" --runs "$RUNS" --kernel "$HELLO" --append "--wait" --mem 16 --burst "$BURST"
else
    echo "== 1b. skipped: hello unikernel not built ($HELLO)"
fi

RT=${NUBO_AGENT_RUNTIME_DIR:-$B/guest/runtimes/base}
if [ -f "$RT/vmlinuz" ] && [ -f "$RT/initrd.cpio" ]; then
    echo "== 2. base runtime (Debian cloud kernel + initramfs), system libvirtd"
    "$BIN" --runs "$RUNS" --kernel "$RT/vmlinuz" --initrd "$RT/initrd.cpio" --mem 256 \
        --kernel-args "$(cat "$SRC/guest/runtimes/kernel-args")" --append "/bin/busybox sleep 3600"
else
    echo "== 2. skipped: base runtime not built ($RT)"
fi

echo "== 3. tiny PVH guest, private libvirtd with a trimmed start path"
T=$(mktemp -d /tmp/nubo-bench-lv.XXXXXX)
NS=nubo-bench-$$
cleanup() {
    set +e
    for f in libvirtd virtlogd; do [ -s "$T/$f.pid" ] && kill "$(cat "$T/$f.pid")"; done
    sleep 1
    for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p"; done
    ip netns del "$NS" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T"/{run,lib,log,cache}
[ -d /var/cache/libvirt/qemu ] && cp -a /var/cache/libvirt/qemu "$T/cache/"
cp /etc/libvirt/qemu.conf "$T/qemu.conf"
cat >> "$T/qemu.conf" <<'EOF'
# nubo bench: trimmed start path
namespaces = [ ]
cgroup_controllers = [ ]
security_driver = "none"
dynamic_ownership = 0
remember_owner = 0
user = "root"
group = "root"
stdio_handler = "file"
EOF
ip netns add "$NS"
ip netns exec "$NS" unshare --mount --propagation private -- bash -c '
    set -e; t=$1
    mount --bind "$t/run" /run/libvirt; mount --bind "$t/lib" /var/lib/libvirt
    mount --bind "$t/log" /var/log/libvirt; mount --bind "$t/cache" /var/cache/libvirt
    mount --bind "$t/qemu.conf" /etc/libvirt/qemu.conf
    virtlogd -d -p "$t/virtlogd.pid"; libvirtd -d -p "$t/libvirtd.pid"' _ "$T"
for _ in $(seq 100); do [ -s "$T/virtlogd.pid" ] && [ -s "$T/libvirtd.pid" ] && break; sleep 0.1; done
IN="nsenter --net=/run/netns/$NS --mount=/proc/$(cat "$T/virtlogd.pid")/ns/mnt --"
for _ in $(seq 100); do $IN virsh -q -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.2; done
$IN "$BIN" --runs "$RUNS"
trap - EXIT
cleanup

echo "== 4. API create -> running through nubo-controller + nubo-agent (tiny guest, image cached)"
CTL=$B/controller/nubo-controller
PUSH=$B/tests/agent_pushimg
AGENT=$B/agent/nubo-agent
if [ ! -x "$CTL" ] || [ ! -x "$PUSH" ] || [ ! -x "$AGENT" ]; then
    echo "   skipped: build nubo-controller, nubo-agent and agent_pushimg"
    exit 0
fi
W=$(mktemp -d /tmp/nubo-bench-api.XXXXXX)
chmod 755 "$W"
NS=nubo-bench-api-$$
PIDS=()
cleanup4() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p"; done
    sleep 1
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    for d in $(virsh -q -c qemu:///system list --name 2>/dev/null); do
        grep -q "$d" "$W/uuids" 2>/dev/null && virsh -q -c qemu:///system destroy "$d" >/dev/null
    done
    ip netns del "$NS" 2>/dev/null
    rm -rf "$W"
}
trap cleanup4 EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RP=$(free_port); CP=$(free_port)
mkdir -p "$W/reg"
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s/reg\nhttp:\n  addr: 127.0.0.1:%s\n' "$W" "$RP" > "$W/reg.yml"
docker-registry serve "$W/reg.yml" > "$W/reg.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$RP/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
"$PUSH" --registry "http://127.0.0.1:$RP" --repo official/benchguest --tag v1 \
    --kernel "$B/agent/testguest/testguest" >/dev/null
printf '[controller]\nplain_http = loopback\n[agent]\nheartbeat_interval_ms = 1000\n[registry]\nurl = http://127.0.0.1:%s\n' "$RP" > "$W/ctl.ini"
"$CTL" --listen "127.0.0.1:$CP" --db "$W/nubo.db" --unix "$W/ctl.sock" --config "$W/ctl.ini" \
    --bootstrap-token-file "$W/admin-token" --log-level warn > "$W/ctl.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$CP/v1/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
ip netns add "$NS"
cat > "$W/agent.ini" <<INI
[node]
name = bench
metro = bench
[controller]
url = http://controller
socket = $W/ctl.sock
join_token_file = $W/nubo.db.join-token
[libvirt]
accel = tcg
shutdown_timeout = 1s
[registry]
url = http://127.0.0.1:$RP
[images]
cache_dir = $W/cache
[state]
dir = $W/state
[network]
bridge = nubobench0
netns = $NS
[slots]
; 64 MiB creates take a warm slot, 72 MiB ones (no such shape) the plain path
size = 2
shapes = 64x1
INI
"$AGENT" --config "$W/agent.ini" --log-level info > "$W/agent.log" 2>&1 & PIDS+=($!)
TOK=$(cat "$W/admin-token")
api() { curl -sS -H "Authorization: Bearer $TOK" "$@"; }
for _ in $(seq 100); do api "http://127.0.0.1:$CP/v1/nodes" | grep -q '"ready"' && break; sleep 0.1; done
create() { # [memory_mb] -> "us state uuid"
    local s e out
    s=$(date +%s%N)
    out=$(api -X POST "http://127.0.0.1:$CP/v1/instances" \
        -d '{"autostart":true,"image":"official/benchguest:v1","memory_mb":'"${1:-72}"',"args":["serve"],"wait_timeout_ms":60000}')
    e=$(date +%s%N)
    python3 -c 'import json,sys; i=json.loads(sys.argv[1])["data"]["instances"][0]; print(sys.argv[2], i.get("state"), i.get("uuid"))' \
        "$out" $(( (e - s) / 1000 ))
}
destroy() {
    api -X DELETE "http://127.0.0.1:$CP/v1/instances/$1" >/dev/null
    for _ in $(seq 100); do virsh -q -c qemu:///system domstate "$1" >/dev/null 2>&1 || break; sleep 0.05; done
}
read -r _ st u < <(create)   # warm-up: pulls the image into the node's cache
echo "$u" >> "$W/uuids"
destroy "$u"
# the pool (2 slots of 64x1) full before a slot create is timed
pool_full() {
    local ready taken lost
    ready=$(grep -c 'warm slot .* ready in' "$W/agent.log" || true)
    taken=$(grep -c 'started from warm slot' "$W/agent.log" || true)
    lost=$(grep -c 'its qemu ended' "$W/agent.log" || true)
    [ $((ready - taken - lost)) -ge 2 ]
}
wait_pool() { for _ in $(seq 1200); do pool_full && return 0; sleep 0.5; done; return 1; }
plain=(); slot=()
for _ in $(seq "$RUNS"); do   # interleaved: no slot (72 MiB), then a warm slot (64 MiB)
    read -r us st u < <(create 72)
    echo "$u" >> "$W/uuids"
    [ "$st" = running ] || { echo "   create did not reach running (state $st)"; break; }
    plain+=("$us")
    destroy "$u"
    wait_pool || { echo "   the warm-slot pool did not fill"; break; }
    read -r us st u < <(create 64)
    echo "$u" >> "$W/uuids"
    [ "$st" = running ] || { echo "   create from a slot did not reach running (state $st)"; break; }
    grep -q "instance $u: started from warm slot" "$W/agent.log" || sleep 1
    grep -q "instance $u: started from warm slot" "$W/agent.log" || { echo "   $u did not take a slot"; break; }
    slot+=("$us")
    destroy "$u"
done
stat_line() { # label ms...
    local label=$1; shift
    printf '%s\n' "$@" | sort -n | awk -v l="$label" -v q="$QEMU_MS" -v v="$VIRSH_MS" '{a[NR]=$1} END {
        if (NR == 0) exit
        m = (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2) / 1000; k = int((9*NR+9)/10); p = a[k] / 1000
        printf "  %-44s median %8.1f  p90 %8.1f ms", l, m, p
        if (q > 0) printf "  (%.2f x qemu", m / q
        if (v > 0) printf ", %.2f x virsh", m / v
        printf ")\n" }'
}
echo "  (runs: ${#plain[@]} without a slot, ${#slot[@]} from the pool; ratios against section 1's qemu / virsh)"
[ ${#plain[@]} -gt 0 ] && stat_line "API create -> running, no slot (72 MiB)" "${plain[@]}"
[ ${#slot[@]} -gt 0 ] && stat_line "API create -> running, with pool (64 MiB)" "${slot[@]}"
