#!/bin/bash
# Out of file descriptors (more clients than `ulimit -n`), the controller pauses accepting and
# says so once, instead of spinning on accept() with a warning each time; when the clients go,
# it serves again.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"

ulimit -n 64 # soft and hard: the controller cannot raise it
ctl_start
python3 - "$CTL_PORT" > "$T_TMP/hold.log" 2>&1 <<'PY' &
import socket, sys, time
conns = []
for _ in range(120):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
        conns.append(s)
    except OSError as e:
        print("connect:", e)
        break
print("holding", len(conns), flush=True)
time.sleep(4)
PY
HOLDER=$!
t_track_pid "$HOLDER"
t_wait_for 20 grep -q "holding" "$T_TMP/hold.log" || t_fail "client did not connect: $(cat "$T_TMP/hold.log")"
t_wait_for 10 grep -q "cannot accept connections: Too many open files" "$T_TMP/controller.log" ||
    t_fail "no warning about the descriptors: $(tail -5 "$T_TMP/controller.log")"
wait "$HOLDER" 2>/dev/null || true
t_wait_for 20 curl -fsS -m 2 "$CTL_URL/v1/healthz" || t_fail "controller does not serve after the clients left"
WARN=$(grep -c "cannot accept connections\|Error from accept" "$T_TMP/controller.log")
[ "$WARN" -le 2 ] || t_fail "accept errors logged $WARN times (a busy loop)"
t_log "controller fd exhaustion: ok ($(cat "$T_TMP/hold.log"), $WARN warning(s))"
