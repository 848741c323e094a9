# Stock Unikraft kernels (tests/fixtures/unikraft, built unmodified from Unikraft 0.17.0) through
# nubo pkg --kernel + nubo run on a private dev cluster (TCG): boot to running with a boot time,
# args and env as kraftkit passes them, exit code, crash, restart policy, stop without the
# shutdown grace, the TCG RDSEED limit stated on the instance, and a Firecracker-platform kernel
# refused at once with its reason. Also the node's guest CPU in GET /v1/nodes.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/lib_cluster.sh"
FX=$NUBO_SRC/tests/fixtures/unikraft
[ -f "$FX/nubohello_qemu-x86_64" ] || t_fail "fixture missing: $FX/nubohello_qemu-x86_64"
t_cluster_up fra:1
REG=http://$NUBO_DEVCLUSTER_REGISTRY
cd "$T_TMP"

pkg() { # kernel ref [pkg args...]
    "$NUBO" pkg --kernel "$FX/$1" --output "$2" --push --registry "$REG" -q "${@:3}" \
        > "$T_TMP/pkg.log" 2>&1 || { cat "$T_TMP/pkg.log" >&2; t_fail "nubo pkg $1 failed"; }
}
pkg nubohello_qemu-x86_64 demo/ukhello:latest --env FROM_IMAGE=yes --arg default-arg
pkg helloworld_qemu-x86_64 demo/ukhw:latest
pkg helloworld-norandom_qemu-x86_64 demo/ukhw-norandom:latest
pkg helloworld_fc-x86_64 demo/ukhw-fc:latest
pkg httpreply_qemu-x86_64 demo/ukhttp:latest --label org.nubo.ready=port

get() { "$NUBO" instances get "$1" -o json; }
# Unikraft's serial console ends lines with CRLF, and pads an over-long printk line with NULs.
logs_of() { "$NUBO" instances logs "$1" | tr -d '\r\0'; }
field() { get "$1" | t_json "d[0].get('$2')"; }
stopped() { "$NUBO" instances wait "$1" --until stopped --timeout "${2:-60s}" > /dev/null || t_fail "$1 did not stop: $(get "$1")"; }

# --- the node says which guest CPU it gives (TCG: qemu64 + the RNG instructions it can emulate)
cpu=$(curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" "$API/v1/nodes" | t_json 'd["data"]["nodes"][0]["guest_cpu"]')
case $cpu in qemu64+rdrand|qemu64+rdrand+rdseed|host-passthrough) ;; *) t_fail "node guest_cpu: '$cpu'" ;; esac
t_log "node guest CPU: $cpu"

# --- exit code, args, env: kraftkit's cmdline contract read by uklibparam + posix-environ
"$NUBO" run --metro=fra -m 64Mi --name uk-exit -e GREETING="hi there" --image=demo/ukhello:latest -- first exit=3 > /dev/null || true
stopped uk-exit
j=$(get uk-exit)
t_log "uk-exit: $j"
[ "$(t_json 'd[0]["exit_code"]' <<<"$j")" = 3 ] || t_fail "exit_code should be 3: $j"
[ "$(t_json 'd[0]["stop_reason"]' <<<"$j")" = 3 ] || t_fail "stop_reason should be 3 (---AK, the app exited): $j"
[ "$(t_json 'd[0]["boot_time_us"] > 0' <<<"$j")" = True ] || t_fail "no boot time: $j"
logs=$(logs_of uk-exit)
grep -q '^Hello from stock Unikraft (nubohello)' <<<"$logs" || t_fail "no hello line: $logs"
grep -qx 'arg\[1\]=first' <<<"$logs" || t_fail "args not passed: $logs"
grep -qx 'arg\[2\]=exit=3' <<<"$logs" || t_fail "args not passed: $logs"
grep -q '^argc=3' <<<"$logs" || t_fail "netdev.ip/env.vars leaked into argv: $logs"
grep -qx 'env GREETING=hi there' <<<"$logs" || t_fail "instance env not delivered: $logs"
grep -qx 'env FROM_IMAGE=yes' <<<"$logs" || t_fail "image env not delivered: $logs"
grep -q 'tsc_early_khz' <<<"$logs" && t_fail "a Linux-only parameter reached a Unikraft kernel: $logs"

# --- the image's default args; exit 0
"$NUBO" run --metro=fra -m 64Mi --name uk-default --image=demo/ukhello:latest > /dev/null || true
stopped uk-default
j=$(get uk-default)
[ "$(t_json 'd[0]["exit_code"]' <<<"$j")" = 0 ] || t_fail "exit_code should be 0: $j"
logs_of uk-default | grep -qx 'arg\[1\]=default-arg' || t_fail "image args not used"

# --- a crash (page fault -> pvpanic) is a crash, not an exit
"$NUBO" run --metro=fra -m 64Mi --name uk-crash --image=demo/ukhello:latest -- crash > /dev/null || true
stopped uk-crash
j=$(get uk-crash)
t_log "uk-crash: $j"
[ "$(t_json 'd[0]["stop_reason"]' <<<"$j")" = 1 ] || t_fail "a crash should be stop_reason 1: $j"
t_json 'd[0].get("exit_code")' <<<"$j" | grep -qx None || t_fail "a crash has no exit code: $j"
t_json 'd[0].get("message") or ""' <<<"$j" | grep -q crashed || t_fail "no crash message: $j"

# --- restart policy on-failure: a non-zero exit restarts, then keeps going
"$NUBO" run --metro=fra -m 64Mi --name uk-restart --restart on-failure --image=demo/ukhello:latest -- exit=1 > /dev/null || true
t_wait_for 60 bash -c "[ \"\$('$NUBO' instances get uk-restart -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0][\"start_count\"])')\" -ge 2 ]" \
    || t_fail "on-failure did not restart after exit 1: $(get uk-restart)"
"$NUBO" instances stop uk-restart --force > /dev/null 2>&1 || "$NUBO" instances stop uk-restart > /dev/null
stopped uk-restart

# --- a long-running guest: running with a boot time; a stop ends it without the ACPI grace
"$NUBO" run --metro=fra -m 64Mi --name uk-sleep --image=demo/ukhello:latest -- sleep > /dev/null || true
"$NUBO" instances wait uk-sleep --until running --timeout 60s > /dev/null || t_fail "uk-sleep not running: $(get uk-sleep)"
[ "$(field uk-sleep boot_time_us)" -gt 0 ] || t_fail "running without a boot time: $(get uk-sleep)"
t_wait_for 30 bash -c "'$NUBO' instances logs uk-sleep | grep -q '^tick 1'" || t_fail "no ticks from uk-sleep"
uuid=$(field uk-sleep uuid)
"$NUBO" instances stop uk-sleep > /dev/null || t_fail "stop failed"
stopped uk-sleep
j=$(get uk-sleep)
[ "$(t_json 'd[0]["stop_reason"]' <<<"$j")" = 13 ] || t_fail "user stop of a guest without ACPI shutdown should be 13: $j"
t_cluster_collect_logs
grep "$uuid" "$T_TMP"/agent-*.log | grep -q 'no shutdown within' && t_fail "the stop waited out the ACPI grace"

# --- app-helloworld as its repository builds it: no uklibparam, so argv is the whole cmdline
"$NUBO" run --metro=fra -m 64Mi --name uk-plain -e K=V --image=demo/ukhw-norandom:latest -- a1 > /dev/null || true
stopped uk-plain
j=$(get uk-plain)
[ "$(t_json 'd[0]["exit_code"]' <<<"$j")" = 0 ] || t_fail "plain helloworld should exit 0: $j"
logs=$(logs_of uk-plain)
grep -q 'Hello world!' <<<"$logs" || t_fail "no Hello world: $logs"
grep -q '"env.vars=\[" "K=V" "\]" "--" "a1"' <<<"$logs" || t_fail "cmdline not as kraftkit writes it: $logs"

# --- with ukrandom (the default) the kernel needs RDSEED: says so when TCG lacks it
"$NUBO" run --metro=fra -m 64Mi --name uk-rng --image=demo/ukhw:latest > /dev/null || true
stopped uk-rng
j=$(get uk-rng)
t_log "uk-rng: $j"
if [ "$cpu" = qemu64+rdrand ]; then
    [ "$(t_json 'd[0]["stop_reason"]' <<<"$j")" = 1 ] || t_fail "failed init should be a crash: $j"
    t_json 'd[0].get("message") or ""' <<<"$j" | grep -q 'Init function' || t_fail "no init failure in message: $j"
else
    [ "$(t_json 'd[0]["exit_code"]' <<<"$j")" = 0 ] || t_fail "helloworld with ukrandom should exit 0 with $cpu: $j"
fi

# --- a network app (app-httpreply on lwip): kraftkit's netdev.ip configures it; running when its
# published port accepts (label org.nubo.ready=port), so boot_time_us = net_time_us
"$NUBO" run --metro=fra -m 64Mi --name uk-http -p 443:8123/http+tls --image=demo/ukhttp:latest > /dev/null || true
"$NUBO" instances wait uk-http --until running --timeout 90s > /dev/null || t_fail "uk-http not running: $(get uk-http)"
j=$(get uk-http)
t_log "uk-http: boot_time_us $(t_json 'd[0]["boot_time_us"]' <<<"$j"), net_time_us $(t_json 'd[0]["net_time_us"]' <<<"$j")"
[ "$(t_json 'd[0]["boot_time_us"] > 0 and d[0]["net_time_us"] > 0' <<<"$j")" = True ] || t_fail "no boot/net time: $j"
ip=$(t_json 'd[0]["private_ip"]' <<<"$j")
body=$(t_node_curl fra-1 "http://$ip:8123/") || t_fail "httpreply did not answer on $ip:8123"
grep -q 'It works!' <<<"$body" || t_fail "unexpected answer: $body"
"$NUBO" instances stop uk-http > /dev/null || t_fail "stop uk-http failed"
stopped uk-http

# --- a Firecracker-platform kernel fails at once, saying why
"$NUBO" run --metro=fra -m 64Mi --name uk-fc --image=demo/ukhw-fc:latest > /dev/null || true
stopped uk-fc 30s
j=$(get uk-fc)
t_log "uk-fc: $j"
t_json 'd[0].get("message") or ""' <<<"$j" | grep -q 'Firecracker' || t_fail "no Firecracker reason: $j"
[ "$(t_json 'd[0]["start_count"]' <<<"$j")" -le 1 ] || t_fail "refused kernel was retried: $j"
t_log "ok"
