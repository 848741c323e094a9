#!/usr/bin/env bash
# Agent lifecycle on real libvirtd + qemu (TCG) with the guest bridge in a test namespace
# (libvirtd in the root namespace, taps moved into the bridge's namespace after start):
# boot to running with boot time and phases; graceful stop (drained, then destroyed); start
# again; force stop; app exit with its code; crash -> stop_reason; restart policy; delete
# (domain and tap gone); agent kill -9 mid-run -> guest keeps running and is re-adopted with
# its report unchanged. (Ping of a guest's private IP: agent_net.sh.)
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/agent_lib.sh"
t_need_root
ag_need_bins
t_need_libvirt
command -v busybox >/dev/null || t_skip "busybox missing (busybox-static)"
t_start_registry
img=$(ag_image test/boot v1) || t_fail "push image"
ag_config boot
ag_start
virsh_q() { virsh -q -c qemu:///system "$@"; }
dom_running() { virsh_q domstate "$1" 2>/dev/null | has running; }

A=b0000001-0000-4000-8000-00000000000a
ag_inst $A "$img" running 1 '["serve"]' never false 10.77.0.10
ag_push
ag_wait $A state running 60
bt=$(ag_get $A boot_time_us)
t_log "running: boot_time_us=$bt phases image=$(ag_get $A phases_us.image) domain=$(ag_get $A phases_us.domain) vmm=$(ag_get $A phases_us.vmm) guest=$(ag_get $A phases_us.guest)"
[ "$bt" -gt 0 ] || t_fail "no boot time"
[ "$(ag_get $A phases_us.vmm)" -gt 0 ] || t_fail "no vmm phase"
dom_running $A || t_fail "domain not running in libvirt"
tap=$(ip -n "$AG_NS" -o link show master nubobr0 | awk -F': ' '{print $2}' | cut -d@ -f1 | head -1)
[ -n "$tap" ] || t_fail "no tap enslaved to the bridge in $AG_NS"
ip -n "$AG_NS" -o addr show nubobr0 | has 10.77.0.1/24 || t_fail "bridge has no gateway address"
ip -o addr | has '10\.77\.' && t_fail "a private address leaked into the root namespace"
cl=$AG_DIR/state/instances/$A/console.log
grep -q 'netdev.ip=10.77.0.10/24:10.77.0.1:10.77.0.1' "$cl" || t_fail "cmdline lacks netdev.ip: $(head -1 "$cl")"
grep -q 'env.vars=\[ "NUBO_TEST=1" \] -- serve' "$cl" || t_fail "cmdline lacks env/args: $(head -1 "$cl")"

# graceful stop: the test guest ignores ACPI, so it is destroyed after shutdown_timeout
ag_inst $A "$img" stopped 1 '["serve"]'
ag_push
ag_wait $A state stopped 30
[ "$(ag_get $A stop_reason)" = 13 ] || t_fail "graceful stop: stop_reason $(ag_get $A stop_reason), want 13 (-UP-K)"
dom_running $A && t_fail "domain still running after stop"
ip -n "$AG_NS" link show "$tap" >/dev/null 2>&1 && t_fail "tap $tap left after stop"

# user start again (start_seq 2), then force stop
ag_inst $A "$img" running 2 '["serve"]'
ag_push
ag_wait $A state running 60
[ "$(ag_get $A start_count)" = 2 ] || t_fail "start_count $(ag_get $A start_count)"
ag_inst $A "$img" stopped 2 '["serve"]' never true
ag_push
ag_wait $A state stopped 20
[ "$(ag_get $A stop_reason)" = 28 ] || t_fail "force stop: stop_reason $(ag_get $A stop_reason), want 28 (FUP--)"

# the app exits with a code
X=b0000001-0000-4000-8000-00000000000b
ag_inst $X "$img" running 1 '["testexit=7"]'
ag_push
ag_wait $X state stopped 60
[ "$(ag_get $X stop_reason)" = 3 ] || t_fail "exit: stop_reason $(ag_get $X stop_reason), want 3 (---AK)"
[ "$(ag_get $X exit_code)" = 7 ] || t_fail "exit code $(ag_get $X exit_code)"

# a crash, with on-failure: reported, then restarted (first restart is immediate)
C=b0000001-0000-4000-8000-00000000000c
ag_inst $C "$img" running 1 '["testcrash"]' on-failure
ag_push
t_wait_for 60 ag_is $C restart_count 1 || t_fail "crash not restarted (restart_count $(ag_get $C restart_count))"
# state, reason and message from one reading of the status file: it crashes again and again,
# and the restart after the back-off clears the message
crash_seen() {
    python3 - "$AG_DIR/status.json" "$C" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
i = next(i for i in s["instances"] if i["uuid"] == sys.argv[2])
r = i.get("restart") or {}
ok = (i.get("state") == "stopped" and i.get("stop_reason") == 1 and
      "testcrash requested" in (i.get("message") or "") and
      r.get("attempt", 0) >= 2 and bool(r.get("next_at")))  # waiting out the 5 s back-off
sys.exit(0 if ok else 1)
PY
}
t_wait_for 30 crash_seen || t_fail "crash not reported as stopped, stop_reason 1 (----K), 'testcrash requested', restart attempt 2+ with next_at: state $(ag_get $C state), reason $(ag_get $C stop_reason), message $(ag_get $C message), attempt $(ag_get $C restart.attempt), next_at $(ag_get $C restart.next_at)"
# a user stop aborts the back-off
ag_inst $C "$img" stopped 1 '["testcrash"]' on-failure
ag_push
t_wait_for 10 ag_is $C restart.next_at "" || t_fail "stop did not abort the restart back-off"

# kill -9 mid-run: the guest keeps running; a new agent re-adopts it, report unchanged
K=b0000001-0000-4000-8000-0000000000a9
ag_inst $K "$img" running 1 '["serve"]'
ag_push
ag_wait $K state running 60
before=$(python3 -c 'import json,sys; print(json.dumps([i for i in json.load(open(sys.argv[1]))["instances"] if i["uuid"]==sys.argv[2]][0], sort_keys=True))' "$AG_DIR/status.json" $K)
kill -9 "$AG_PID"
wait "$AG_PID" 2>/dev/null || true
dom_running $K || t_fail "guest died with the agent"
rm -f "$AG_DIR/status.json"
ag_start
ag_wait $K state running 20
after=$(python3 -c 'import json,sys; print(json.dumps([i for i in json.load(open(sys.argv[1]))["instances"] if i["uuid"]==sys.argv[2]][0], sort_keys=True))' "$AG_DIR/status.json" $K)
[ "$before" = "$after" ] || t_fail "re-adopted report changed: $before -> $after"
grep -q "$K.*re-adopted" "$AG_DIR/agent.log" || t_fail "no re-adoption logged"
# and it is still managed: a stop works through the new agent
ag_inst $K "$img" stopped 1 '["serve"]' never true
ag_push
ag_wait $K state stopped 20
dom_running $K && t_fail "re-adopted guest did not stop"

# delete: gone from libvirt, from the status, and its files
ag_del $K; ag_del $X; ag_del $C; ag_del $A
ag_push
t_wait_for 20 ag_gone $K || t_fail "deleted instance still reported"
[ ! -d "$AG_DIR/state/instances/$K" ] || t_fail "deleted instance's files remain"

t_log "PASS"
