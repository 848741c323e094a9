#!/usr/bin/env bash
# A Linux guest (the project's base runtime) booted by the agent through real libvirtd (TCG)
# gets its private IP from netdev.ip= on the bridge in the test's namespace: it answers ping
# there (busybox ping inside the namespace), and the agent measures net_time_us against its
# service port (busybox httpd listening on 8080 in the guest); the network survives an agent
# kill -9.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/agent_lib.sh"
t_need_root
ag_need_bins
t_need_libvirt
command -v busybox >/dev/null || t_skip "busybox missing (busybox-static)"
ag_base_runtime
ag_config net
ag_start

N=c0000001-0000-4000-8000-0000000000ee
AG_MEM=256 ag_inst $N "$base" running 1 '["/bin/busybox","httpd","-f","-p","8080","-h","/"]' \
    never false 10.77.0.20 '[8080]'
ag_push
ag_wait $N state running 120
t_log "base runtime running: boot_time_us=$(ag_get $N boot_time_us) (vmm $(ag_get $N phases_us.vmm), guest $(ag_get $N phases_us.guest))"
t_wait_for 30 ip netns exec "$AG_NS" busybox ping -c 1 -W 1 10.77.0.20 \
    || t_fail "guest 10.77.0.20 does not answer ping inside $AG_NS"
ip netns exec "$AG_NS" busybox ping -c 3 10.77.0.20 >&2
has_net_time() { local v; v=$(ag_get $N net_time_us); [ -n "$v" ] && [ "$v" != 0 ]; }
t_wait_for 60 has_net_time || t_fail "no net_time_us although the guest serves port 8080"
t_log "net_time_us=$(ag_get $N net_time_us)"
# the guest's network survives an agent kill -9 and restart (bridge set up again idempotently)
kill -9 "$AG_PID"; wait "$AG_PID" 2>/dev/null || true
ag_start
t_wait_for 20 has "$N.*re-adopted" "$AG_DIR/agent.log" || t_fail "not re-adopted"
ip netns exec "$AG_NS" busybox ping -c 2 -W 1 10.77.0.20 >&2 || t_fail "no ping after the agent restart"
ag_del $N
ag_push
t_wait_for 30 ag_gone $N || t_fail "instance not deleted"
t_log "PASS"
