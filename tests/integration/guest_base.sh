#!/usr/bin/env bash
# The base Linux runtime under qemu microvm/TCG, booted directly: args, env and exit code reach
# and come back from the app; in a test-owned network namespace eth0 is configured from
# netdev.ip= and answers ping. Prints boot time (qemu start -> NUBO_READY).
source "$NUBO_SRC/tests/lib.sh"
t_need_root
command -v qemu-system-x86_64 >/dev/null || t_skip "qemu-system-x86_64 missing (deploy/install-deps installs qemu-system-x86)"
command -v busybox >/dev/null || t_skip "busybox missing (busybox-static)"

RT=$NUBO_BUILD/guest/runtimes/base
# Always (a no-op when current): a stale runtime would test old code.
mkdir -p "$NUBO_BUILD/guest"
# One build at a time when tests run in parallel (ctest -j): same outputs.
flock "$NUBO_BUILD/guest/build.lock" cmake --build "$NUBO_BUILD" --target guest_runtime_base > "$T_TMP/build.log" 2>&1 \
    || t_fail "cannot build the base runtime (see build.log)"
KHZ=$(awk '/^cpu MHz/ {printf "%d", $4 * 1000; exit}' /proc/cpuinfo)
# The image label org.nubo.kernel.args (guest/runtimes/kernel-args) + what the agent adds.
KARGS="$(cat "$NUBO_SRC/guest/runtimes/kernel-args") tsc_early_khz=${KHZ:-2000000}"
# Images carry the PVH vmlinux when the build could extract it; the bzImage must boot too.
KERNEL=$RT/vmlinuz
[ -f "$RT/vmlinux" ] && KERNEL=$RT/vmlinux
QEMU=(qemu-system-x86_64 -M microvm -accel tcg -nodefaults -no-user-config -display none
      -serial stdio -no-reboot -m 256 -device virtio-rng-device -kernel "$KERNEL" -initrd "$RT/initrd.cpio")

# boot NAME CMDLINE-TAIL [QEMU-ARGS...]: serial log in $T_TMP/NAME.log, qemu status in RC,
# microseconds from start to NUBO_READY in READY_US.
boot() {
    local name=$1 tail=$2; shift 2
    local log=$T_TMP/$name.log start line
    READY_US=
    : > "$log"
    start=${EPOCHREALTIME/./}
    set +e
    while IFS= read -r line; do
        line=${line%$'\r'}
        printf '%s\n' "$line" >> "$log"
        if [ -z "$READY_US" ] && [ "$line" = NUBO_READY ]; then
            READY_US=$(( ${EPOCHREALTIME/./} - start ))
        fi
    done < <(timeout 60 "${QEMU[@]}" "$@" -append "$KARGS $tail" 2>"$T_TMP/$name.qemu.log"; echo "QEMU_RC=$?")
    set -e
    RC=$(sed -n 's/^QEMU_RC=//p' "$log")
}
expect() { grep -qF -- "$2" "$T_TMP/$1.log" || t_fail "$1: expected '$2' in the console log"; }

boot app 'env.vars=[ "GREETING=hello world" "N=42" ] -- /bin/sh -c "echo GREETING=[$GREETING] N=[$N] ARGS=[$0 $1] UID=[$(busybox id -u)]; exit 3" x y'
[ "$RC" = 0 ] || t_fail "app: qemu exited with $RC (poweroff should stop it)"
expect app "NUBO_READY"
expect app "GREETING=[hello world] N=[42] ARGS=[x y] UID=[65534]"
expect app "nubo-init: app user nobody (uid 65534, gid 65534)"
expect app "NUBO_EXIT 3"

# The app's user: the image's (nubo.user=, from config.User), never one smuggled in an env value.
boot asroot 'nubo.user=root env.vars=["X=a nubo.user=nobody"] -- /bin/sh -c "echo UID=[$(busybox id -u)] GID=[$(busybox id -g)]"'
expect asroot "UID=[0] GID=[0]"
boot smuggle 'env.vars=["X=a nubo.user=root"] -- /bin/sh -c "echo UID=[$(busybox id -u)]"'
expect smuggle "UID=[65534]"
boot numeric 'nubo.user=1234:nogroup -- /bin/sh -c "echo UID=[$(busybox id -u)] GID=[$(busybox id -g)]"'
expect numeric "UID=[1234] GID=[65534]"
boot ghost 'nubo.user=ghost -- /bin/sh -c "echo RAN"'
expect ghost "user 'ghost' is not in /etc/passwd"
expect ghost "NUBO_EXIT 1"
grep -q '^RAN' "$T_TMP/ghost.log" && t_fail "ghost: the app ran although its user does not exist"
t_log "base boot ($(basename "$KERNEL"), qemu start -> NUBO_READY, microvm/TCG): ${READY_US} us"

if [ "$KERNEL" != "$RT/vmlinuz" ]; then
    QEMU_ELF=("${QEMU[@]}")
    QEMU=(qemu-system-x86_64 -M microvm -accel tcg -nodefaults -no-user-config -display none
          -serial stdio -no-reboot -m 256 -kernel "$RT/vmlinuz" -initrd "$RT/initrd.cpio")
    boot bzimage '-- /bin/sh -c "exit 9"'
    expect bzimage "NUBO_EXIT 9"
    t_log "base boot (bzImage, qemu start -> NUBO_READY, microvm/TCG): ${READY_US} us"
    QEMU=("${QEMU_ELF[@]}")
fi

# Many env entries: the comma form is one token to Linux (the spaced form panics it past 32).
many=$(for i in $(seq 40); do printf '"V%d=v %d",' "$i" "$i"; done)
boot manyenv "env.vars=[${many%,}] -- /bin/sh -c \"echo V1=[\$V1] V40=[\$V40]\""
expect manyenv "V1=[v 1] V40=[v 40]"
expect manyenv "NUBO_EXIT 0"

boot noapp ''
expect noapp "no application given"
expect noapp "NUBO_EXIT 1"
grep -q '^NUBO_READY' "$T_TMP/noapp.log" && t_fail "noapp: printed NUBO_READY without an app"

boot missing '-- /no/such/program'
expect missing "cannot run /no/such/program"
expect missing "NUBO_EXIT 127"

# A platform stop (qemu system_powerdown = ACPI power button) reaches the app as SIGTERM.
"${QEMU[@]}" -monitor "unix:$T_TMP/mon.sock,server,nowait" \
    -append "$KARGS -- /bin/sh -c \"trap 'echo GOT_TERM; exit 7' TERM; echo WAITING; while true; do sleep 1; done\"" \
    > "$T_TMP/pwr.log" 2>&1 &
PWR_PID=$!
t_track_pid "$PWR_PID"
t_wait_for 60 grep -q '^WAITING' "$T_TMP/pwr.log" || t_fail "powerdown: app not started"
python3 - "$T_TMP/mon.sock" <<'PY' || t_fail "powerdown: cannot talk to the qemu monitor"
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
time.sleep(0.2)
s.recv(65536)
s.sendall(b"system_powerdown\n")
time.sleep(0.2)
PY
t_wait_for 30 bash -c "! kill -0 $PWR_PID" || t_fail "powerdown: qemu still running"
grep -q '^GOT_TERM' "$T_TMP/pwr.log" || t_fail "powerdown: the app did not get SIGTERM"
grep -q '^NUBO_EXIT 7' "$T_TMP/pwr.log" || t_fail "powerdown: no NUBO_EXIT 7"

# Network: bridge + tap inside a namespace of our own; the guest gets 10.77.0.2/24.
t_netns base
ip -n "$T_NS" link add br0 type bridge
ip -n "$T_NS" tuntap add dev tap0 mode tap
ip -n "$T_NS" link set tap0 master br0
ip -n "$T_NS" addr add 10.77.0.1/24 dev br0
ip -n "$T_NS" link set br0 up
ip -n "$T_NS" link set tap0 up
ip netns exec "$T_NS" "${QEMU[@]}" \
    -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-device,netdev=n0 \
    -append "$KARGS nubo.user=root netdev.ip=10.77.0.2/24:10.77.0.1:10.77.0.1 -- /bin/sh -c \"ping -c 1 -W 5 10.77.0.1 && echo GW_PING_OK; cat /etc/resolv.conf; sleep 120\"" \
    > "$T_TMP/net.log" 2>&1 &
NET_PID=$!
t_track_pid "$NET_PID"
t_wait_for 60 grep -q '^NUBO_READY' "$T_TMP/net.log" || t_fail "net: no NUBO_READY"
grep -q 'nubo-init: eth0 10.77.0.2/24 gw 10.77.0.1' "$T_TMP/net.log" || t_fail "net: eth0 not configured"
t_wait_for 30 grep -q GW_PING_OK "$T_TMP/net.log" || t_fail "net: the guest cannot ping its gateway"
t_wait_for 10 grep -q "nameserver 10.77.0.1" "$T_TMP/net.log" || t_fail "net: resolv.conf not written"
ip netns exec "$T_NS" busybox ping -c 3 -W 3 10.77.0.2 > "$T_TMP/ping.log" 2>&1 || t_fail "net: guest does not answer ping"
t_log "ping into the guest: $(tail -1 "$T_TMP/ping.log")"
kill "$NET_PID"
echo "PASS guest_base"
