#!/usr/bin/env bash
# [network] egress on a real guest (the base runtime, through libvirtd, TCG): the bridge's
# namespace forwards (ip_forward=1) to a network behind it (another namespace of this test);
# with egress = none the guest's connections there are dropped by the agent's rules, after an
# agent restart with egress = nat (the guest keeps running, the ruleset is replaced) they get
# through, masqueraded behind the node.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/agent_lib.sh"
t_need_root
ag_need_bins
t_need_libvirt
command -v nft >/dev/null || t_skip "nft is not installed (deploy/install-deps installs nftables)"
ag_base_runtime
ag_config egress
# the network behind the node: 10.98.0.0/24 in a namespace of its own
t_netns out
OUT=$T_NS
ip link add "eg$$a" type veth peer name "eg$$b"
ip link set "eg$$a" netns "$AG_NS"; ip link set "eg$$b" netns "$OUT"
ip -n "$AG_NS" addr add 10.98.0.1/24 dev "eg$$a"; ip -n "$AG_NS" link set "eg$$a" up
ip -n "$OUT" addr add 10.98.0.2/24 dev "eg$$b"; ip -n "$OUT" link set "eg$$b" up
ip -n "$OUT" route add 10.77.0.0/24 via 10.98.0.1
ip netns exec "$AG_NS" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
ip netns exec "$OUT" python3 -u "$NUBO_SRC/tests/integration/netiso/listener.py" tcp:10.98.0.2:7779 \
    > "$T_TMP/listen.log" 2>&1 &
t_track_pid $!
t_wait_for 60 grep -q LISTENING "$T_TMP/listen.log" || t_fail "listener did not start"
ip netns exec "$AG_NS" busybox nc -w 3 10.98.0.2 7779 < /dev/null || true
t_wait_for 60 grep -q "from 10.98.0.1" "$T_TMP/listen.log" || t_fail "control: the node cannot reach the outside network"
arrived() { grep -c "from $1" "$T_TMP/listen.log" || true; }
controls=$(arrived 10.98.0.1)

ag_start
N=c0000001-0000-4000-8000-0000000000e9
AG_MEM=256 ag_inst $N "$base" running 1 \
    '["/bin/sh","-c","while true; do busybox nc -w 3 10.98.0.2 7779 </dev/null; sleep 1; done"]' \
    never false 10.77.0.30
ag_push
ag_wait $N state running 120
cl=$AG_DIR/state/instances/$N/console.log
t_wait_for 60 grep -q 'nubo-init: app user nobody' "$cl" || t_fail "guest app not started"
# egress = none: the guest keeps trying, nothing arrives, the rule counts the attempts
drops() {
    ip netns exec "$AG_NS" nft list chain inet nubo_agent forward |
        sed -n 's/.*counter packets \([0-9]*\) .*egress = none.*/\1/p'
}
drops_at_least() { [ "$(drops)" -ge "$1" ]; }
t_wait_for 60 drops_at_least 3 \
    || t_fail "no guest connection hit 'egress = none': $(ip netns exec "$AG_NS" nft list table inet nubo_agent)"
[ "$(arrived 10.77.)" = 0 ] && [ "$(arrived 10.98.0.1)" = "$controls" ] \
    || t_fail "egress = none: the guest reached the outside network: $(cat "$T_TMP/listen.log")"
t_log "egress = none: $(drops) connection attempts dropped, none arrived"

# egress = nat: restart the agent with it; the guest keeps running and now gets out
kill "$AG_PID"; wait "$AG_PID" 2>/dev/null || true
printf 'egress = nat\n' >> "$AG_DIR/agent.ini"
ag_start
t_wait_for 30 grep -q "$N.*re-adopted" "$AG_DIR/agent.log" || t_fail "not re-adopted"
masquerades() { ip netns exec "$AG_NS" nft list table inet nubo_agent | grep -q masquerade; }
t_wait_for 30 masquerades || t_fail "no masquerade after egress = nat"
more_arrived() { [ "$(arrived 10.98.0.1)" -gt "$controls" ]; }
t_wait_for 60 more_arrived || t_fail "egress = nat: the guest's connections do not get out"
[ "$(arrived 10.77.)" = 0 ] || t_fail "egress = nat: not masqueraded"
[ "$(ip netns exec "$AG_NS" nft list ruleset | grep -c 'chain forward')" = 1 ] || t_fail "ruleset duplicated"
t_log "egress = nat: the guest reaches 10.98.0.2, seen as 10.98.0.1"
ag_del $N
ag_push
t_wait_for 30 ag_gone $N || t_fail "instance not deleted"
t_log "PASS"
