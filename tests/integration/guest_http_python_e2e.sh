#!/usr/bin/env bash
# End to end through the registry: build-runtimes pushes official/*, `nubo build` turns
# examples/http-python (runtime python:3.12 -> official/python:3.11 with a notice) into an app
# image, `nubo pull` fetches kernel + initrd back, and qemu boots them (microvm/TCG) inside a
# test netns with the command line an agent builds: the app answers HTTP.
source "$NUBO_SRC/tests/lib.sh"
t_need_root
NUBO=$NUBO_BUILD/cli/nubo
[ -x "$NUBO" ] || t_skip "$NUBO not built (CLI)"
for sub in pkg build pull; do
    "$NUBO" "$sub" --help >/dev/null 2>&1 || t_skip "the CLI has no '$sub' command yet"
done
command -v qemu-system-x86_64 >/dev/null || t_skip "qemu-system-x86_64 missing"
t_start_registry

"$NUBO_SRC/guest/build-runtimes" --build "$NUBO_BUILD" --nubo "$NUBO" --registry "$T_REGISTRY_URL" \
    > "$T_TMP/runtimes.log" 2>&1 || t_fail "build-runtimes failed (see runtimes.log)"
"$NUBO" build "$NUBO_SRC/examples/http-python" --output acme/http-python:latest \
    --registry "$T_REGISTRY_URL" > "$T_TMP/build.log" 2>&1 || t_fail "nubo build failed (see build.log)"
grep -q 'python:3.12.*official/python:3.11' "$T_TMP/build.log" || t_fail "no notice about python:3.12 -> 3.11"
mkdir -p "$T_TMP/img"
"$NUBO" pull acme/http-python:latest --dir "$T_TMP/img" --registry "$T_REGISTRY_URL" \
    > "$T_TMP/pull.log" 2>&1 || t_fail "nubo pull failed (see pull.log)"
[ -s "$T_TMP/img/kernel" ] && [ -s "$T_TMP/img/initrd" ] || t_fail "pull did not give kernel + initrd"

# What the agent would put on the command line: image kernel args + tsc + netdev + env + cmd.
KARGS=$(cat "$NUBO_SRC/guest/runtimes/kernel-args")
KHZ=$(awk '/^cpu MHz/ {printf "%d", $4 * 1000; exit}' /proc/cpuinfo)
t_netns e2e
ip -n "$T_NS" link add br0 type bridge
ip -n "$T_NS" tuntap add dev tap0 mode tap
ip -n "$T_NS" link set tap0 master br0
ip -n "$T_NS" addr add 10.75.0.1/24 dev br0
ip -n "$T_NS" link set br0 up
ip -n "$T_NS" link set tap0 up
ip netns exec "$T_NS" qemu-system-x86_64 -M microvm -accel tcg -nodefaults -no-user-config \
    -display none -serial stdio -no-reboot -m 256 -device virtio-rng-device \
    -kernel "$T_TMP/img/kernel" -initrd "$T_TMP/img/initrd" \
    -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -device virtio-net-device,netdev=n0 \
    -append "$KARGS tsc_early_khz=${KHZ:-2000000} netdev.ip=10.75.0.2/24:10.75.0.1:10.75.0.1 env.vars=[ \"PYTHONUNBUFFERED=1\" ] -- /usr/bin/python3 /src/server.py" \
    > "$T_TMP/guest.log" 2>&1 &
t_track_pid $!
t_wait_for 90 grep -q 'listening on :8080' "$T_TMP/guest.log" || t_fail "server.py did not start"
body=$(ip netns exec "$T_NS" curl -fsS --max-time 10 http://10.75.0.2:8080/) || t_fail "no HTTP answer"
case $body in "Hello from nubo! (Python 3.11"*) ;; *) t_fail "unexpected body: $body" ;; esac
echo "PASS guest_http_python_e2e"
