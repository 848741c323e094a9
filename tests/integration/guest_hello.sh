#!/usr/bin/env bash
# The hello unikernel under qemu microvm/TCG, booted directly: command-line echo, ready marker,
# exit codes, crash reporting, clean poweroff; prints its boot time (qemu start -> NUBO_READY).
source "$NUBO_SRC/tests/lib.sh"

HELLO=$NUBO_BUILD/guest/hello/hello
[ -f "$HELLO" ] || t_fail "$HELLO missing: build the guest_hello target"
command -v qemu-system-x86_64 >/dev/null || t_skip "qemu-system-x86_64 missing (deploy/install-deps installs qemu-system-x86)"

QEMU=(qemu-system-x86_64 -M microvm -accel tcg -nodefaults -no-user-config -display none
      -serial stdio -no-reboot -m 64 -kernel "$HELLO")
BASE='console=ttyS0 tsc_early_khz=2000000 netdev.ip=10.9.8.7/24:10.9.8.1:1.1.1.1 env.vars=[ "GREETING=hi there" "N=1" ]'

# boot NAME ARGS: runs qemu to completion (20 s cap), serial log in $T_TMP/NAME.log,
# qemu's exit status in RC, microseconds from start to the NUBO_READY line in READY_US.
boot() {
    local name=$1; shift
    local log=$T_TMP/$name.log start line
    READY_US=
    start=${EPOCHREALTIME/./}
    set +e
    while IFS= read -r line; do
        line=${line%$'\r'}
        printf '%s\n' "$line" >> "$log"
        if [ -z "$READY_US" ] && [ "$line" = NUBO_READY ]; then
            READY_US=$(( ${EPOCHREALTIME/./} - start ))
        fi
    done < <(timeout 20 "${QEMU[@]}" -append "$BASE $*" 2>"$T_TMP/$name.qemu.log"; echo "QEMU_RC=$?")
    set -e
    RC=$(sed -n 's/^QEMU_RC=//p' "$log")
    touch "$log"
}

expect() { grep -qxF -- "$2" "$T_TMP/$1.log" || t_fail "$1: expected line '$2'"; }

boot noargs
[ "$RC" = 0 ] || t_fail "noargs: qemu exited with $RC (poweroff did not stop the VMM)"
expect noargs "NUBO_READY"
expect noargs "NUBO_EXIT 0"
expect noargs "hello: netdev.ip 10.9.8.7/24 gw 10.9.8.1 dns 1.1.1.1"
expect noargs "hello: env GREETING=hi there"
expect noargs "hello: env N=1"
grep -q '^hello: arg' "$T_TMP/noargs.log" && t_fail "noargs: arguments echoed where none were given"

boot exit7 -- --exit 7 '"two words"'
[ "$RC" = 0 ] || t_fail "exit7: qemu exited with $RC"
expect exit7 "hello: arg[0] --exit"
expect exit7 "hello: arg[1] 7"
expect exit7 "hello: arg[2] two words"
expect exit7 "NUBO_EXIT 7"

for kind in pf ud; do
    [ $kind = pf ] && boot crash_$kind -- --crash || boot crash_$kind -- --crash ud
    expect crash_$kind "NUBO_READY"
    grep -q '^NUBO_EXIT' "$T_TMP/crash_$kind.log" && t_fail "crash_$kind: printed NUBO_EXIT"
    [ "$RC" = 0 ] || t_fail "crash_$kind: qemu did not stop on the triple fault (rc $RC)"
done
expect crash_pf "NUBO_CRASH 14"
expect crash_ud "NUBO_CRASH 6"

# --wait idles until the VMM stops it.
"${QEMU[@]}" -append "$BASE -- --wait" > "$T_TMP/wait.log" 2>&1 &
WAIT_PID=$!
t_track_pid "$WAIT_PID"
t_wait_for 20 grep -q NUBO_READY "$T_TMP/wait.log" || t_fail "wait: no NUBO_READY"
sleep 1
kill -0 "$WAIT_PID" 2>/dev/null || t_fail "wait: guest exited on its own"
grep -q '^NUBO_EXIT' "$T_TMP/wait.log" && t_fail "wait: printed NUBO_EXIT"
kill "$WAIT_PID"

# A graceful stop (qemu system_powerdown = ACPI power button via the GED) ends --wait cleanly.
"${QEMU[@]}" -monitor "unix:$T_TMP/mon.sock,server,nowait" -append "$BASE -- --wait" > "$T_TMP/pwr.log" 2>&1 &
PWR_PID=$!
t_track_pid "$PWR_PID"
t_wait_for 20 grep -q 'waiting for the VMM' "$T_TMP/pwr.log" || t_fail "powerdown: guest not waiting"
python3 - "$T_TMP/mon.sock" <<'PY' || t_fail "powerdown: cannot talk to the qemu monitor"
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
time.sleep(0.2)
s.recv(65536)
s.sendall(b"system_powerdown\n")
time.sleep(0.2)
PY
t_wait_for 20 bash -c "! kill -0 $PWR_PID" || t_fail "powerdown: qemu still running"
grep -q '^NUBO_EXIT 0' "$T_TMP/pwr.log" || t_fail "powerdown: no NUBO_EXIT 0"

# isa-debug-exit fallback when there is no ACPI: qemu's status is (code << 1) | 1.
QEMU=(qemu-system-x86_64 -M microvm,acpi=off -accel tcg -nodefaults -no-user-config -display none
      -serial stdio -no-reboot -m 64 -device isa-debug-exit -kernel "$HELLO")
boot debugexit -- --exit 5
[ "$RC" = 11 ] || t_fail "debugexit: qemu exited with $RC, expected 11"
expect debugexit "NUBO_EXIT 5"

# Boot time: 5 boots, qemu start -> NUBO_READY.
QEMU=(qemu-system-x86_64 -M microvm -accel tcg -nodefaults -no-user-config -display none
      -serial stdio -no-reboot -m 64 -kernel "$HELLO")
times=()
for i in 1 2 3 4 5; do
    boot time$i
    [ -n "$READY_US" ] || t_fail "time$i: no NUBO_READY"
    times+=("$READY_US")
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n | tr '\n' ' ')
t_log "hello boot (qemu start -> NUBO_READY, microvm/TCG) us: $sorted"

# Network (stretch goal): virtio-net on virtio-mmio + ARP/ICMP/TCP in the unikernel itself,
# inside a network namespace of this test. --http serves GET with a fixed body.
if [ "$(id -u)" = 0 ] && command -v curl >/dev/null && command -v busybox >/dev/null; then
    t_netns hello
    ip -n "$T_NS" link add br0 type bridge
    ip -n "$T_NS" tuntap add dev tap0 mode tap
    ip -n "$T_NS" link set tap0 master br0
    ip -n "$T_NS" addr add 10.76.0.1/24 dev br0
    ip -n "$T_NS" link set br0 up
    ip -n "$T_NS" link set tap0 up
    start=${EPOCHREALTIME/./}
    ip netns exec "$T_NS" "${QEMU[@]}" \
        -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-device,netdev=n0 \
        -append "netdev.ip=10.76.0.2/24:10.76.0.1:10.76.0.1 -- --http 8080" > "$T_TMP/http.log" 2>&1 &
    HTTP_PID=$!
    t_track_pid "$HTTP_PID"
    # Wait for the guest before the first packet: an ARP miss would cost the host a 1 s retry.
    t_wait_for 20 grep -q 'serving HTTP' "$T_TMP/http.log" || t_fail "http: server did not start"
    ready_us=$(( ${EPOCHREALTIME/./} - start ))
    body=$(ip netns exec "$T_NS" curl -fsS --max-time 5 http://10.76.0.2:8080/) || t_fail "http: no answer"
    first_us=$(( ${EPOCHREALTIME/./} - start ))
    [ "$body" = "Hello from nubo's hello unikernel!" ] || t_fail "http: unexpected answer '$body'"
    grep -q '^NUBO_READY' "$T_TMP/http.log" || t_fail "http: no NUBO_READY"
    for i in $(seq 20); do
        got=$(ip netns exec "$T_NS" curl -fsS --max-time 5 "http://10.76.0.2:8080/n$i") || t_fail "http: request $i failed"
        [ "$got" = "$body" ] || t_fail "http: request $i answered '$got'"
    done
    # 30 clients at once: every one answered.
    pids=()
    for i in $(seq 30); do
        ip netns exec "$T_NS" curl -sS -o /dev/null -w '%{http_code}\n' --max-time 10 http://10.76.0.2:8080/ \
            >> "$T_TMP/parallel.out" 2>&1 &
        pids+=($!)
    done
    wait "${pids[@]}" || true
    [ "$(grep -cx 200 "$T_TMP/parallel.out")" = 30 ] || t_fail "http: parallel requests failed: $(sort "$T_TMP/parallel.out" | uniq -c | tr '\n' ' ')"
    code=$(ip netns exec "$T_NS" curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST http://10.76.0.2:8080/)
    [ "$code" = 405 ] || t_fail "http: POST answered $code, expected 405"
    ip netns exec "$T_NS" busybox ping -c 2 -W 3 10.76.0.2 > "$T_TMP/hello-ping.log" 2>&1 || t_fail "http: no ping answer"
    t_log "hello --http: serving ~${ready_us} us after qemu start (polled), first HTTP answer at ${first_us} us; $(tail -1 "$T_TMP/hello-ping.log")"
    kill "$HTTP_PID"
    wait "$HTTP_PID" 2>/dev/null || true

    # The same over a virtio 1.x (non-legacy) virtio-mmio transport.
    ip netns exec "$T_NS" "${QEMU[@]}" -global virtio-mmio.force-legacy=false \
        -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-device,netdev=n0 \
        -append "netdev.ip=10.76.0.2/24:10.76.0.1:10.76.0.1 -- --http 8080" > "$T_TMP/http1.log" 2>&1 &
    HTTP_PID=$!
    t_track_pid "$HTTP_PID"
    t_wait_for 20 grep -q 'serving HTTP' "$T_TMP/http1.log" || t_fail "http (virtio 1.x): server did not start"
    grep -q 'virtio-net up' "$T_TMP/http1.log" || t_fail "http (virtio 1.x): not the modern transport"
    body=$(ip netns exec "$T_NS" curl -fsS --max-time 5 http://10.76.0.2:8080/) || t_fail "http (virtio 1.x): no answer"
    [ "$body" = "Hello from nubo's hello unikernel!" ] || t_fail "http (virtio 1.x): unexpected '$body'"
    kill "$HTTP_PID"
else
    t_log "network part skipped: needs root, curl and busybox"
fi
echo "PASS guest_hello"
