#!/usr/bin/env bash
# What nubo build makes really boots: the python runtime packed with nubo pkg (as
# guest/build-runtimes does), examples/http-python built on it with nubo build, pushed to a real
# registry, pulled back (verified) and booted under qemu microvm/TCG in a test-owned network
# namespace with the image's own kernel-args label and default args: server.py answers HTTP.
source "$NUBO_SRC/tests/lib.sh"
t_need_root
NUBO=$NUBO_BUILD/cli/nubo
[ -x "$NUBO" ] || t_fail "nubo not built at $NUBO"
command -v qemu-system-x86_64 >/dev/null || t_skip "qemu-system-x86_64 missing (deploy/install-deps installs qemu-system-x86)"
RT=$NUBO_BUILD/guest/runtimes
if [ ! -f "$RT/python/initrd.cpio" ] || [ ! -f "$RT/base/vmlinuz" ]; then
    t_log "building guest_runtime_python (kernel package download on first build)"
    cmake --build "$NUBO_BUILD" --target guest_runtime_python > "$T_TMP/build.log" 2>&1 \
        || t_skip "cannot build the runtimes here (see build.log)"
fi
KERNEL=$RT/base/vmlinuz
[ -f "$RT/base/vmlinux" ] && KERNEL=$RT/base/vmlinux
t_start_registry
export HOME=$T_TMP/home XDG_CACHE_HOME=$T_TMP/cache XDG_CONFIG_HOME=$T_TMP/config
export NUBO_REGISTRY=$T_REGISTRY_URL NUBO_API=http://127.0.0.1:1
cd "$T_TMP"

"$NUBO" pkg --kernel "$KERNEL" --initrd "$RT/python/initrd.cpio" --env PYTHONUNBUFFERED=1 \
    --label "org.nubo.kernel.args=$(cat "$NUBO_SRC/guest/runtimes/kernel-args")" \
    --output official/python:3.11 --push -q
"$NUBO" build "$NUBO_SRC/examples/http-python" --output demo/http-python:latest -q 2>/dev/null
"$NUBO" pull demo/http-python:latest --dir img -o json > img.json
cmp "$KERNEL" img/kernel || t_fail "the app image's kernel is not the runtime's"
read -r KARGS < <(python3 -c 'import json; j=json.load(open("img.json")); print([l.split("=",1)[1] for l in j["labels"] if l.startswith("org.nubo.kernel.args=")][0])')
read -r ARGS < <(python3 -c 'import json; print(" ".join(json.load(open("img.json"))["args"]))')
[ "$ARGS" = "/usr/bin/python3 /src/server.py" ] || t_fail "image args: $ARGS"
KHZ=$(awk '/^cpu MHz/ {printf "%d", $4 * 1000; exit}' /proc/cpuinfo)

t_netns cliboot
ip -n "$T_NS" link add br0 type bridge
ip -n "$T_NS" tuntap add dev tap0 mode tap
ip -n "$T_NS" link set tap0 master br0
ip -n "$T_NS" addr add 10.79.0.1/24 dev br0
ip -n "$T_NS" link set br0 up
ip -n "$T_NS" link set tap0 up
ip netns exec "$T_NS" qemu-system-x86_64 -M microvm -accel tcg -nodefaults -no-user-config \
    -display none -serial stdio -no-reboot -m 256 \
    -kernel img/kernel -initrd img/initrd -device virtio-rng-device \
    -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-device,netdev=n0 \
    -append "$KARGS tsc_early_khz=${KHZ:-2000000} netdev.ip=10.79.0.2/24:10.79.0.1:10.79.0.1 env.vars=[ \"PORT=8080\" ] -- $ARGS" \
    > "$T_TMP/boot.log" 2>&1 &
t_track_pid $!
t_wait_for 90 grep -q '^NUBO_READY' "$T_TMP/boot.log" || t_fail "no NUBO_READY"
t_wait_for 60 grep -q 'listening on :8080' "$T_TMP/boot.log" || t_fail "server.py did not start"
body=$(ip netns exec "$T_NS" curl -fsS --max-time 10 http://10.79.0.2:8080/) || t_fail "no HTTP answer"
case $body in
    "Hello from nubo!"*) ;;
    *) t_fail "unexpected body: $body" ;;
esac
t_log "ok: $body"
