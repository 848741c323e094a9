#!/usr/bin/env bash
# The agent against the real nubo-controller (over its unix socket), real registry, real
# libvirtd + qemu (TCG), guest bridge in a test namespace: the node registers; an instance
# created through the public API boots and shows state running, its private IP and boot time;
# its console reaches the log endpoint; stop and start; the controller restarts (the agent
# registers again and reports its guest unchanged); the agent is killed -9 and restarted without
# its node token file (the guest runs on, re-adopted; its register key makes it the same node);
# delete removes the guest.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/agent_lib.sh"
t_need_root
ag_need_bins
t_need_libvirt
CTL=$NUBO_BUILD/controller/nubo-controller
[ -x "$CTL" ] || t_skip "nubo-controller not built ($CTL)"
t_start_registry
img=$(ag_image official/agenttest v1) || t_fail "push image"

port=$(t_free_port)
API=http://127.0.0.1:$port
mkdir -p "$T_TMP/ctl"
cat > "$T_TMP/ctl/ctl.ini" <<INI
[controller]
plain_http = loopback
[agent]
heartbeat_interval_ms = 1000
grace_ms = 10000
[registry]
url = $T_REGISTRY_URL
INI
ctl_start() {
    "$CTL" --listen 127.0.0.1:$port --db "$T_TMP/ctl/nubo.db" --unix "$T_TMP/ctl/ctl.sock" \
        --config "$T_TMP/ctl/ctl.ini" --bootstrap-token-file "$T_TMP/ctl/admin-token" \
        >> "$T_TMP/controller.log" 2>&1 &
    CTL_PID=$!
    t_track_pid $CTL_PID
    t_wait_for 20 curl -fsS "$API/v1/healthz" || t_fail "controller did not start"
}
ctl_start
TOK=$(cat "$T_TMP/ctl/admin-token")
api() { local m=$1 p=$2; shift 2; curl -sS -X "$m" -H "Authorization: Bearer $TOK" "$API$p" "$@"; }
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
inst() { api GET "/v1/instances/$1" | jq_py "(lambda i: '' if i.get('$2') is None else i.get('$2'))(d['data']['instances'][0])"; }
inst_is() { [ "$(inst "$1" "$2")" = "$3" ]; }

ag_config ctl "[controller]
url = http://controller
socket = $T_TMP/ctl/ctl.sock
join_token_file = $T_TMP/ctl/nubo.db.join-token
watch_timeout = 5s
[standalone]
assignments_file =
status_file ="
t_wait_for 10 test -s "$T_TMP/ctl/nubo.db.join-token" || t_fail "controller wrote no join token"
# controller mode: no status file to wait for
"$AG_BIN" --config "$AG_DIR/agent.ini" --log-level debug >> "$AG_DIR/agent.log" 2>&1 &
AG_PID=$!
t_track_pid $AG_PID
t_on_exit "cp '$AG_DIR/agent.log' '$T_TMP/agent-ctl.log' 2>/dev/null"
node_ready() { api GET /v1/nodes | has '"ctl"'; }
t_wait_for 20 node_ready || t_fail "node did not register: $(api GET /v1/nodes)"
t_log "nodes: $(api GET /v1/nodes | head -c 400)"

out=$(api POST /v1/instances -d '{"autostart":true,"image":"official/agenttest:v1","memory_mb":64,"args":["serve"],"wait_timeout_ms":60000}')
U=$(echo "$out" | jq_py "d['data']['instances'][0]['uuid']") || t_fail "create failed: $out"
t_track_domain "$U"
t_wait_for 60 inst_is "$U" state running || t_fail "not running: $(api GET /v1/instances/$U)"
ip=$(inst "$U" private_ip)
bt=$(inst "$U" boot_time_us)
t_log "instance $U running: private_ip=$ip boot_time_us=$bt"
[ -n "$ip" ] || t_fail "no private ip"
[ "${bt:-0}" -gt 0 ] || t_fail "no boot time"
virsh -q -c qemu:///system domstate "$U" | has running || t_fail "no libvirt domain"
grep -q "netdev.ip=$ip/" "$AG_DIR/state/instances/$U/console.log" || t_fail "guest did not get its ip"
ip -n "$AG_NS" -o addr show nubobr0 | has "inet 10\." || t_fail "bridge has no gateway address"
has_log() { api GET "/v1/instances/$U/log" | jq_py "__import__('base64').b64decode(d['data']['instances'][0]['output']).decode()" | has NUBO_READY; }
t_wait_for 20 has_log || t_fail "console not shipped: $(api GET /v1/instances/$U/log | head -c 300)"

api PUT "/v1/instances/$U/stop" -d '{}' > /dev/null
t_wait_for 30 inst_is "$U" state stopped || t_fail "stop: $(inst "$U" state)"
t_log "stopped: stop_reason=$(inst "$U" stop_reason)"
api PUT "/v1/instances/$U/start" -d '{}' > /dev/null
t_wait_for 60 inst_is "$U" state running || t_fail "start: $(inst "$U" state)"
[ "$(inst "$U" start_count)" = 2 ] || t_fail "start_count $(inst "$U" start_count)"
bt2=$(inst "$U" boot_time_us)

# controller restart: the agent registers again; the guest is reported unchanged
kill "$CTL_PID"; wait "$CTL_PID" 2>/dev/null || true
sleep 1
ctl_start
registered_again() { [ "$(grep -c 'registered as node' "$AG_DIR/agent.log")" -ge 2 ]; }
t_wait_for 30 registered_again || t_fail "agent did not register again after the controller restart"
t_wait_for 30 inst_is "$U" state running || t_fail "after controller restart: $(inst "$U" state)"
[ "$(inst "$U" boot_time_us)" = "$bt2" ] || t_fail "boot time changed across controller restart"

# agent kill -9: the guest runs on and is re-adopted. Its node token file is gone too (as if
# the reply that carried it had been lost): the register key it kept brings it back as the
# same node with the join token, not a 409
kill -9 "$AG_PID"; wait "$AG_PID" 2>/dev/null || true
virsh -q -c qemu:///system domstate "$U" | has running || t_fail "guest died with the agent"
[ "$(stat -c %a "$AG_DIR/state/register-key")" = 600 ] || t_fail "no 0600 register key"
OLD_NODE_TOK=$(cat "$AG_DIR/state/node-token")
rm "$AG_DIR/state/node-token"
"$AG_BIN" --config "$AG_DIR/agent.ini" --log-level debug >> "$AG_DIR/agent.log" 2>&1 &
AG_PID=$!
t_track_pid $AG_PID
t_wait_for 30 grep -q "$U.*re-adopted" "$AG_DIR/agent.log" || t_fail "not re-adopted"
sleep 2
inst_is "$U" state running || t_fail "after agent restart: $(inst "$U" state)"
[ "$(inst "$U" start_count)" = 2 ] || t_fail "agent restart restarted the guest"
[ "$(inst "$U" boot_time_us)" = "$bt2" ] || t_fail "boot time changed across agent restart"
! grep -q "HTTP 409" "$AG_DIR/agent.log" || t_fail "the agent without its node token was refused"
[ -s "$AG_DIR/state/node-token" ] && [ "$(cat "$AG_DIR/state/node-token")" != "$OLD_NODE_TOK" ] ||
    t_fail "the agent did not get a new node token"

api DELETE "/v1/instances/$U" > /dev/null
dom_gone() { ! virsh -q -c qemu:///system domstate "$U" >/dev/null 2>&1; }
t_wait_for 30 dom_gone || t_fail "deleted instance's domain still there"
t_log "PASS"
