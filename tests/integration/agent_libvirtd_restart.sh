#!/usr/bin/env bash
# libvirtd restarts under a running agent: the guest keeps running, the agent's close callback
# reconnects with back-off, re-adopts the domain with its report unchanged, and still manages it
# (a stop afterwards is carried out and reported from lifecycle events); a warm slot stays in
# the pool across the restart and the next start takes it.
# To restart a libvirtd without disturbing anyone else's, this test runs its own: the dev
# cluster's host layout (a network namespace plus a mount namespace holding private
# /run/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt), with the agent inside.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/agent_lib.sh"
t_need_root
ag_need_bins
t_need_libvirt
command -v unshare >/dev/null && command -v nsenter >/dev/null || t_skip "util-linux unshare/nsenter missing"
t_start_registry
img=$(ag_image test/lvr v1) || t_fail "push image"
# the agent lives in the host's namespace: it reaches the registry over a unix socket
sed -e "s|addr: 127.0.0.1:.*|net: unix\n  addr: $T_TMP/registry.sock|" "$T_TMP/registry.yml" > "$T_TMP/registry-unix.yml"
docker-registry serve "$T_TMP/registry-unix.yml" > "$T_TMP/registry-unix.log" 2>&1 &
t_track_pid $!
t_wait_for 20 curl -fsS --unix-socket "$T_TMP/registry.sock" http://registry/v2/ \
    || t_fail "registry unix listener did not start"

t_netns lvr
AG_NS=$T_NS
LV=$T_TMP/libvirt
mkdir -p "$LV"/{run,lib,log,cache}
[ -d /var/cache/libvirt/qemu ] && cp -a /var/cache/libvirt/qemu "$LV/cache/" 2>/dev/null || true
ip netns exec "$AG_NS" unshare --mount --propagation private -- bash -c '
    set -e
    lv=$1
    mount --bind "$lv/run" /run/libvirt
    mount --bind "$lv/lib" /var/lib/libvirt
    mount --bind "$lv/log" /var/log/libvirt
    mount --bind "$lv/cache" /var/cache/libvirt
    virtlogd -d -p "$lv/virtlogd.pid"
    libvirtd -d -p "$lv/libvirtd.pid"
' _ "$LV" || t_fail "cannot start a private libvirtd"
t_wait_for 20 test -s "$LV/libvirtd.pid" || t_fail "private libvirtd did not start"
VLPID=$(cat "$LV/virtlogd.pid")
LVPID=$(cat "$LV/libvirtd.pid")
t_track_pid "$VLPID"
t_track_pid "$LVPID"
in_host() { nsenter --net=/run/netns/"$AG_NS" --mount=/proc/"$VLPID"/ns/mnt -- "$@"; }
lvsh() { in_host virsh -q -c qemu:///system "$@"; }
# On exit: end this host's guests through its own libvirtd, then whatever is left inside.
# (The agent and the daemons are stopped by PID first; the sweep is for a stray qemu.)
host_cleanup() {
    for d in $(lvsh list --name 2>/dev/null); do lvsh destroy "$d" >/dev/null 2>&1; done
    for p in ${AG_PID:-} $LVPID $VLPID; do kill "$p" 2>/dev/null; done
    for p in ${AG_PID:-} $LVPID $VLPID; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    done
    for p in $(ip netns pids "$AG_NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
}
t_on_exit host_cleanup
t_wait_for 60 lvsh version || t_fail "private libvirtd does not answer (see $LV/log)"

AG_NETNS_KEY=""   # the bridge lives in the agent's own namespace: the host's
AG_WRAP="nsenter --net=/run/netns/$AG_NS --mount=/proc/$VLPID/ns/mnt --"
ag_config lvr "[registry]
url = http://registry
socket = $T_TMP/registry.sock
[slots]
size = 1
shapes = 64x1"
ag_start
# a warm slot rides the restart out too (agent/README.md, "Warm slots")
t_wait_for 120 grep -q 'warm slot .* ready in' "$AG_DIR/agent.log" || t_fail "no warm slot launched"
slot=$(grep 'warm slot .* ready in' "$AG_DIR/agent.log" | head -1 | awk '{for(i=1;i<=NF;i++) if($i=="slot"){print $(i+1); exit}}')

R=d0000001-0000-4000-8000-0000000000aa
ag_inst $R "$img" running 1 '["serve"]' never false 10.77.0.30
ag_push
ag_wait $R state running 60
t_wait_for 20 grep -q "instance $R: started from warm slot $slot" "$AG_DIR/agent.log" || t_fail "R did not take the warm slot"
t_wait_for 120 bash -c "[ \$(grep -c 'warm slot .* ready in' '$AG_DIR/agent.log') -ge 2 ]" || t_fail "the pool did not refill"
slot=$(grep 'warm slot .* ready in' "$AG_DIR/agent.log" | tail -1 | awk '{for(i=1;i<=NF;i++) if($i=="slot"){print $(i+1); exit}}')
before=$(python3 -c 'import json,sys; print(json.dumps([i for i in json.load(open(sys.argv[1]))["instances"] if i["uuid"]==sys.argv[2]][0], sort_keys=True))' "$AG_DIR/status.json" $R)
qpid=$(pgrep -f "guest=$(python3 -c 'import json,sys; print([i.get("domain_name",sys.argv[2]) for i in json.load(open(sys.argv[1]))["instances"] if i["uuid"]==sys.argv[2]][0])' "$AG_DIR/state/state.json" $R)," | head -1)
[ -n "$qpid" ] || t_fail "no qemu process for $R"
t_log "guest running (qemu pid $qpid); restarting libvirtd (pid $LVPID)"

kill "$LVPID"
for _ in $(seq 100); do kill -0 "$LVPID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$LVPID" 2>/dev/null && t_fail "libvirtd did not stop"
t_wait_for 20 grep -q "libvirt connection to .* lost" "$AG_DIR/agent.log" \
    || t_fail "agent did not notice libvirtd going away"
kill -0 "$qpid" || t_fail "guest died with libvirtd"
sleep 1   # a few reconnect attempts fail meanwhile
rm -f "$LV/libvirtd.pid"
in_host libvirtd -d -p "$LV/libvirtd.pid" || t_fail "cannot restart libvirtd"
t_wait_for 20 test -s "$LV/libvirtd.pid" || t_fail "libvirtd did not restart"
LVPID=$(cat "$LV/libvirtd.pid")
t_track_pid "$LVPID"
t_wait_for 60 grep -q "re-adopted" "$AG_DIR/agent.log" || t_fail "agent did not reconnect and re-adopt"
kill -0 "$qpid" || t_fail "guest died across the libvirtd restart"
grep -q "instance $R: domain found running in warm slot" "$AG_DIR/agent.log" || t_fail "R not re-adopted in its slot domain"
lvsh domstate "$slot" | has paused || t_fail "the warm slot $slot did not survive the restart"
grep -q "replacing it" "$AG_DIR/agent.log" && t_fail "a warm slot was replaced across the restart"
after=$(python3 -c 'import json,sys; print(json.dumps([i for i in json.load(open(sys.argv[1]))["instances"] if i["uuid"]==sys.argv[2]][0], sort_keys=True))' "$AG_DIR/status.json" $R)
[ "$before" = "$after" ] || t_fail "report changed across the libvirtd restart: $before -> $after"

# still managed: a force stop goes through the new connection and its event comes back
ag_inst $R "$img" stopped 1 '["serve"]' never true 10.77.0.30
ag_push
ag_wait $R state stopped 30
[ "$(ag_get $R stop_reason)" = 28 ] || t_fail "stop_reason $(ag_get $R stop_reason)"
kill -0 "$qpid" 2>/dev/null && t_fail "guest still running after stop"
# the slot kept across the restart is taken by the next start
S=d0000001-0000-4000-8000-0000000000ab
ag_inst $S "$img" running 1 '["serve"]' never false 10.77.0.31
ag_push
ag_wait $S state running 60
t_wait_for 20 grep -q "instance $S: started from warm slot $slot" "$AG_DIR/agent.log" || t_fail "S did not take the slot kept across the restart"
t_log "PASS"
