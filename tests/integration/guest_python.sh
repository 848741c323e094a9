#!/usr/bin/env bash
# The python runtime + examples/http-python, booted under qemu microvm/TCG inside a
# test-owned network namespace: server.py must answer HTTP on 8080. The app image is built the
# way an app image is: the runtime's initrd with the app's cpio (/src/server.py) appended.
source "$NUBO_SRC/tests/lib.sh"
t_need_root
command -v qemu-system-x86_64 >/dev/null || t_skip "qemu-system-x86_64 missing (deploy/install-deps installs qemu-system-x86)"
command -v curl >/dev/null || t_skip "curl missing"

RT=$NUBO_BUILD/guest/runtimes
# Always (a no-op when current): a stale runtime would test old code.
mkdir -p "$NUBO_BUILD/guest"
# One build at a time when tests run in parallel (ctest -j): same outputs.
flock "$NUBO_BUILD/guest/build.lock" cmake --build "$NUBO_BUILD" --target guest_runtime_python > "$T_TMP/build.log" 2>&1 \
    || t_fail "cannot build the runtimes (see build.log)"
MKCPIO=$RT/guest_mkcpio
[ -x "$MKCPIO" ] || t_fail "$MKCPIO missing"

# FROM scratch; COPY ./server.py /src/server.py
printf '%s\n' "dir /src 0755" "file /src/server.py 0644 $NUBO_SRC/examples/http-python/server.py" \
    | "$MKCPIO" "$T_TMP/app.cpio"
cat "$RT/python/initrd.cpio" "$T_TMP/app.cpio" > "$T_TMP/initrd.cpio"

KHZ=$(awk '/^cpu MHz/ {printf "%d", $4 * 1000; exit}' /proc/cpuinfo)
# The image label org.nubo.kernel.args (guest/runtimes/kernel-args) + what the agent adds.
KARGS="$(cat "$NUBO_SRC/guest/runtimes/kernel-args") tsc_early_khz=${KHZ:-2000000}"

t_netns py
ip -n "$T_NS" link add br0 type bridge
ip -n "$T_NS" tuntap add dev tap0 mode tap
ip -n "$T_NS" link set tap0 master br0
ip -n "$T_NS" addr add 10.78.0.1/24 dev br0
ip -n "$T_NS" link set br0 up
ip -n "$T_NS" link set tap0 up

KERNEL=$RT/base/vmlinuz
[ -f "$RT/base/vmlinux" ] && KERNEL=$RT/base/vmlinux
start=${EPOCHREALTIME/./}
ip netns exec "$T_NS" qemu-system-x86_64 -M microvm -accel tcg -nodefaults -no-user-config \
    -display none -serial stdio -no-reboot -m 256 \
    -kernel "$KERNEL" -initrd "$T_TMP/initrd.cpio" -device virtio-rng-device \
    -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-device,netdev=n0 \
    -append "$KARGS netdev.ip=10.78.0.2/24:10.78.0.1:10.78.0.1 env.vars=[ \"PORT=8080\" ] -- /usr/bin/python3 /src/server.py" \
    > "$T_TMP/py.log" 2>&1 &
PY_PID=$!
t_track_pid "$PY_PID"
t_wait_for 90 grep -q '^NUBO_READY' "$T_TMP/py.log" || t_fail "no NUBO_READY"
ready_us=$(( ${EPOCHREALTIME/./} - start ))
t_wait_for 60 grep -q 'listening on :8080' "$T_TMP/py.log" || t_fail "server.py did not start"
listen_us=$(( ${EPOCHREALTIME/./} - start ))
body=$(ip netns exec "$T_NS" curl -fsS --max-time 10 http://10.78.0.2:8080/) || t_fail "no HTTP answer from the guest"
case $body in
    "Hello from nubo! (Python 3.11"*) ;;
    *) t_fail "unexpected body: $body" ;;
esac
first_us=$(( ${EPOCHREALTIME/./} - start ))
t_log "python boot (microvm/TCG, polled): NUBO_READY ~${ready_us} us, listening ~${listen_us} us, first HTTP answer ${first_us} us"
t_log "body: $body"
kill "$PY_PID"
echo "PASS guest_python"
