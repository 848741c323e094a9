#!/bin/bash
# Heartbeats scale with the cluster: with [agent] max_heartbeats_per_second = 20 and 40 nodes
# configured to beat every 200 ms (200/s together), the controller tells every node a 2 s
# interval in its status replies, the nodes slow down, none is declared unavailable for beating
# slowly, and a node that really stops is still found out (after the stretched grace).
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"

CTL_HB_MS=200 CTL_GRACE_MS=1000 ctl_start "[agent]
max_heartbeats_per_second = 20"
fake_start 40 --boot-ms 50
t_wait_for 10 grep -q "fake-0: heartbeat interval now 2000 ms" "$T_TMP/fake-agent.log" ||
    t_fail "fake-0 was not told the stretched interval: $(tail -5 "$T_TMP/fake-agent.log")"

status_count() {
    curl -fsS -H "Authorization: Bearer $ADMIN" "$CTL_URL/metrics" |
        awk -F' ' '/^nubo_api_requests_total\{route="agent_status"/ { s += $2 } END { print s + 0 }'
}
sleep 3 # every node has been told by now (its first beat came within 200 ms)
C0=$(status_count)
sleep 6
C1=$(status_count)
BEATS=$((C1 - C0))
t_log "40 nodes, 6 s: $BEATS status requests (at most 20/s wanted; 200/s unstretched)"
# 20/s over 6 s is 120; timers that fired before the told interval took effect add a few
[ "$BEATS" -le 180 ] || t_fail "heartbeats not stretched: $BEATS status requests in 6 s"
[ "$BEATS" -ge 40 ] || t_fail "nodes stopped beating: $BEATS status requests in 6 s"
nodes_ready_at_least 40 || t_fail "nodes beating at the told interval were declared unavailable"

# the grace stretched with the interval (1000 ms * 2000 / 200 = 10 s), and still ends
kill -STOP "$FAKE_PID"
t_on_exit "kill -CONT $FAKE_PID 2>/dev/null"
sleep 4
nodes_ready_at_least 40 || t_fail "a node was declared unavailable before its stretched grace"
none_ready() { ! nodes_ready_at_least 1; }
t_wait_for 20 none_ready || t_fail "stopped nodes never became unavailable"
kill -CONT "$FAKE_PID"
t_wait_for 20 nodes_ready_at_least 40 || t_fail "nodes did not come back"
t_log "controller heartbeat rate: ok"
