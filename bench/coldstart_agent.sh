#!/usr/bin/env bash
# Cold-start benchmark driver for the agent (bench_coldstart_agent, see coldstart_agent.c):
#   1. the tiny PVH test guest on the system libvirtd;
#   2. the base runtime (Linux) when it is built;
#   3. the tiny guest on a private libvirtd whose qemu.conf trims libvirt's start path
#      (no per-domain /dev namespace, no cgroups, no DAC relabelling, no virtlogd), to show what
#      of libvirt's cost is host configuration rather than the agent.
# usage: bench/coldstart_agent.sh [BUILD_DIR] [RUNS]     (root; libvirtd running)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$SRC/build}
RUNS=${2:-10}
BIN=$B/bench/bench_coldstart_agent
[ -x "$BIN" ] || { echo "build $BIN first" >&2; exit 1; }

echo "== 1. tiny PVH guest, system libvirtd"
"$BIN" --runs "$RUNS"

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
