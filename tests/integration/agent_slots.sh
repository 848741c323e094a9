#!/usr/bin/env bash
# Warm slots wired into instance starts (agent/README.md "Warm slots") on real libvirtd + qemu
# (TCG), the guest bridge in a test namespace: a create takes a warm slot and boots with its own
# args/env/IP (two instances from consecutive slots each see only their own), its isolation
# rules name the slot's MAC, the pool refills after a take, a slot whose qemu is killed is
# replaced, an app exit from a slot keeps its code, hello in a slot stops gracefully (its power
# button, stop_reason 15), agent kill -9 with slots warm re-adopts
# both the instance and the warm slot, and pool size 0 takes the plain path again (the
# leftover slot is destroyed).
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/agent_lib.sh"
t_need_root
ag_need_bins
t_need_libvirt
[ -f "$NUBO_BUILD/agent/slotfw/slotfw.bin" ] || t_skip "slot firmware not built"
t_start_registry
img=$(ag_image test/slots v1) || t_fail "push image"
NODE=slots$$
ag_config slots "[slots]
size = 2
shapes = 64x1"
# hello's graceful stop below must not be cut short by the test config's 1 s grace
sed -i 's/^shutdown_timeout = .*/shutdown_timeout = 30s/' "$AG_DIR/agent.ini"
sed -i "s/^name = slots$/name = $NODE/" "$AG_DIR/agent.ini"
# every domain this node made (slots have names of their own), destroyed by name at exit once
# the agent is gone (it would refill the pool; it finishes an in-flight launch first)
t_on_exit "for d in \$(virsh -q -c qemu:///system list --name 2>/dev/null); do virsh -q -c qemu:///system dumpxml \$d 2>/dev/null | grep -q \"node=.$NODE.\" && virsh -q -c qemu:///system destroy \$d >/dev/null 2>&1; done"
# (cleanups run last-added first: the agent goes before the domains are destroyed)
t_on_exit "kill \$AG_PID 2>/dev/null; for _ in \$(seq 300); do kill -0 \$AG_PID 2>/dev/null || break; sleep 0.1; done"
ag_start
virsh_q() { virsh -q -c qemu:///system "$@"; }
slots_ready() { [ "$(grep -c 'warm slot .* ready in' "$AG_DIR/agent.log")" -ge "$1" ]; }
t_wait_for 120 slots_ready 2 || t_fail "no warm slot launched: $(grep -i slot "$AG_DIR/agent.log" | tail -3)"

# two instances at once take the two consecutive slots
A=b0000005-0000-4000-8000-00000000000a
B=b0000005-0000-4000-8000-00000000000b
ag_inst $A "$img" running 1 '["serve-a"]' never false 10.77.0.10
ag_inst $B "$img" running 1 '["serve-b"]' never false 10.77.0.11
ag_push
ag_wait $A state running 60
ag_wait $B state running 60
t_wait_for 20 grep -q "instance $A: started from warm slot" "$AG_DIR/agent.log" || t_fail "A did not start from a slot: $(grep "$A" "$AG_DIR/agent.log" | tail -3)"
t_log "A: boot_time_us=$(ag_get $A boot_time_us) slot=$(ag_get $A phases_us.slot) copy=$(ag_get $A phases_us.copy) guest=$(ag_get $A phases_us.guest)"
[ "$(ag_get $A phases_us.slot)" -gt 0 ] || t_fail "no slot phase"
[ "$(ag_get $A phases_us.vmm)" = 0 ] || t_fail "a slot start reported a vmm phase"
ca=$AG_DIR/state/instances/$A/console.log
grep -q 'netdev.ip=10.77.0.10/24:10.77.0.1:10.77.0.1' "$ca" || t_fail "A's cmdline lacks its netdev.ip: $(head -c 300 "$ca")"
grep -q 'env.vars=\[ "NUBO_TEST=1" \] -- serve-a' "$ca" || t_fail "A's cmdline lacks env/args: $(head -c 300 "$ca")"
# its rules name the slot's MAC (02:6f:...) and its own IP, on the slot's tap
rules=$(ip netns exec "$AG_NS" nft list table bridge nubo_agent)
echo "$rules" | has 'ether saddr != 02:6f:' || t_fail "no rule with a slot MAC: $rules"
echo "$rules" | has 'ip saddr 10.77.0.10 accept' || t_fail "no rule for A's IP"

# B sees only its own settings, A only its own
t_wait_for 20 grep -q "instance $B: started from warm slot" "$AG_DIR/agent.log" || t_fail "B did not start from a slot"
cb=$AG_DIR/state/instances/$B/console.log
grep -q 'netdev.ip=10.77.0.11/24' "$cb" || t_fail "B's cmdline lacks its IP"
grep -q -- '-- serve-b' "$cb" || t_fail "B's cmdline lacks its args"
grep -q 'serve-a\|10\.77\.0\.10' "$cb" && t_fail "B sees A's settings: $(cat "$cb")"
grep -q 'serve-b\|10\.77\.0\.11' "$ca" && t_fail "A sees B's settings"
dom_b=$(python3 -c 'import json,sys; print([i.get("domain_name","") for i in json.load(open(sys.argv[1]))["instances"] if i["uuid"]==sys.argv[2]][0])' "$AG_DIR/state/state.json" $B)
[ -n "$dom_b" ] && [ "$dom_b" != "$B" ] || t_fail "B's slot domain not in state.json"
virsh_q domstate "$dom_b" | has running || t_fail "B's slot domain $dom_b not running"

# the pool refills; a warm slot whose qemu is killed is replaced
t_wait_for 120 slots_ready 4 || t_fail "the pool did not refill after the takes"
pid=$(grep 'warm slot .* ready in' "$AG_DIR/agent.log" | tail -1 | sed 's/.*qemu pid \([0-9]*\).*/\1/')
[ -n "$pid" ] && kill -0 "$pid" || t_fail "no warm slot qemu to kill"
kill -9 "$pid"
t_wait_for 30 grep -q 'its qemu ended; replacing it' "$AG_DIR/agent.log" || t_fail "killed slot not noticed"
t_wait_for 120 slots_ready 5 || t_fail "killed slot not replaced"

# an app exit from a slot: stop_reason 3 with its code
X=b0000005-0000-4000-8000-0000000000e7
ag_inst $X "$img" running 1 '["testexit=7"]' never false 10.77.0.12
ag_push
ag_wait $X state stopped 60
t_wait_for 20 grep -q "instance $X: started from warm slot" "$AG_DIR/agent.log" || t_fail "X did not start from a slot"
[ "$(ag_get $X stop_reason)" = 3 ] || t_fail "exit: stop_reason $(ag_get $X stop_reason), want 3"
[ "$(ag_get $X exit_code)" = 7 ] || t_fail "exit code $(ag_get $X exit_code)"

# a graceful stop of hello in a slot: the agent's ACPI tables show it microvm's power button,
# so it exits cleanly as on the plain path (stop_reason 15), not destroyed after the grace
HELLO=$NUBO_BUILD/guest/hello/hello
if [ -f "$HELLO" ]; then
    hello_img=$("$AG_PUSH" --registry "$T_REGISTRY_URL" --repo test/slothello --tag v1 --kernel "$HELLO") || t_fail "push hello"
    H=b0000005-0000-4000-8000-0000000000a1
    ag_inst $H "$hello_img" running 1 '["--wait"]' never false 10.77.0.14
    ag_push
    ag_wait $H state running 60
    t_wait_for 20 grep -q "instance $H: started from warm slot" "$AG_DIR/agent.log" || t_fail "hello did not start from a slot"
    ag_inst $H "$hello_img" stopped 1 '["--wait"]' never false 10.77.0.14
    ag_push
    ag_wait $H state stopped 60
    [ "$(ag_get $H stop_reason)" = 15 ] || t_fail "graceful stop from a slot: stop_reason $(ag_get $H stop_reason), want 15: $(tail -c 300 "$AG_DIR/state/instances/$H/console.log")"
    grep -q 'power button' "$AG_DIR/state/instances/$H/console.log" || t_fail "hello saw no power button"
    SLOTS_HELLO=1
else
    t_log "hello not built: graceful stop from a slot not checked"
    SLOTS_HELLO=0
fi

# a force stop of A ends its slot's domain and its tap
ag_inst $A "$img" stopped 1 '["serve-a"]' never true 10.77.0.10
ag_push
ag_wait $A state stopped 30
[ "$(ag_get $A stop_reason)" = 28 ] || t_fail "force stop: stop_reason $(ag_get $A stop_reason), want 28"

# agent kill -9 with a slot warm: B is re-adopted in its slot domain, the warm slot back in
# the pool (not relaunched), and B still stops through the new agent
t_wait_for 120 slots_ready $((6 + SLOTS_HELLO)) || t_fail "the pool did not refill after X"
before=$(grep -c 'warm slot .* ready in' "$AG_DIR/agent.log")
# the warm ones: launched, not taken, not lost
warm=$(python3 - "$AG_DIR/agent.log" <<'PY'
import re, sys
log = open(sys.argv[1]).read()
ready = re.findall(r"warm slot (\S+) \(\S+\) ready in", log)
gone = set(re.findall(r"started from warm slot (\S+)", log)) | set(re.findall(r"warm slot (\S+): its qemu ended", log))
print(" ".join(n for n in ready if n not in gone))
PY
)
[ "$(echo $warm | wc -w)" = 2 ] || t_fail "want 2 warm slots before the kill, have '$warm'"
kill -9 "$AG_PID"
wait "$AG_PID" 2>/dev/null || true
ag_start
ag_wait $B state running 30
grep -q "instance $B: domain found running in warm slot $dom_b, re-adopted" "$AG_DIR/agent.log" || t_fail "B not re-adopted"
for w in $warm; do
    t_wait_for 20 grep -q "warm slot $w (64x1): adopted from libvirt" "$AG_DIR/agent.log" || t_fail "warm slot $w not adopted: $(grep -i slot "$AG_DIR/agent.log" | tail -4)"
done
[ "$(grep -c 'warm slot .* ready in' "$AG_DIR/agent.log")" = "$before" ] || t_fail "a slot was relaunched although one was warm"
ag_inst $B "$img" stopped 1 '["serve-b"]' never true 10.77.0.11
ag_push
ag_wait $B state stopped 30
virsh_q domstate "$dom_b" 2>/dev/null | has running && t_fail "B's slot domain still running after stop"

# pool 0: the agent destroys the leftover slot and starts the plain way
kill "$AG_PID"; wait "$AG_PID" 2>/dev/null || true
sed -i 's/^size = 2$/size = 0/' "$AG_DIR/agent.ini"
ag_start
for w in $warm; do
    t_wait_for 20 grep -q "warm slot $w: destroyed" "$AG_DIR/agent.log" || t_fail "leftover slot $w not destroyed with size 0"
done
C=b0000005-0000-4000-8000-00000000000c
ag_inst $C "$img" running 1 '["serve-c"]' never false 10.77.0.13
ag_push
ag_wait $C state running 60
grep -q "instance $C: started from warm slot" "$AG_DIR/agent.log" && t_fail "C took a slot with size 0"
virsh_q domstate $C | has running || t_fail "C's plain domain not running"
[ "$(ag_get $C phases_us.vmm)" -gt 0 ] || t_fail "plain start without a vmm phase"

ag_del $A; ag_del $B; ag_del $C; ag_del $X; [ "$SLOTS_HELLO" = 1 ] && ag_del $H
ag_push
t_wait_for 30 ag_gone $C || t_fail "deleted instance still reported"
t_log "PASS"
