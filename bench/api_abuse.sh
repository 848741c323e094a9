#!/usr/bin/env bash
# Issue 11, observation 4, measured: the controller's RSS around 16 concurrent anonymous
# 64 MiB POSTs, and one user's GET p50/p99 alone and while another user sends 0.9 MB bodies
# on 4 connections (bench/api_abuse.py), on a private controller (plain HTTP on loopback, the
# default [controller] limits). Prints the figures and the ratios.
# usage: bench/api_abuse.sh [BUILD_DIR] [GETS]
set -euo pipefail
NUBO_SRC=$(cd "$(dirname "$0")/.." && pwd)
NUBO_BUILD=$(cd "${1:-$NUBO_SRC/build}" && pwd)
export NUBO_SRC NUBO_BUILD
source "$NUBO_SRC/tests/lib.sh"
CTL_BIN=$NUBO_BUILD/controller/nubo-controller
[ -x "$CTL_BIN" ] || t_fail "build nubo-controller first ($CTL_BIN)"
PORT=$(t_free_port)
printf '[controller]\nlog_level = warn\nplain_http = loopback\n[registry]\nurl = http://127.0.0.1:1\n' \
    > "$T_TMP/ctl.ini"
"$CTL_BIN" --listen "127.0.0.1:$PORT" --db "$T_TMP/ctl.db" --config "$T_TMP/ctl.ini" \
    > "$T_TMP/controller.log" 2>&1 &
CTL_PID=$!
t_track_pid "$CTL_PID"
t_wait_for 20 curl -fsS "http://127.0.0.1:$PORT/v1/healthz" || t_fail "controller did not start"
python3 "$NUBO_SRC/bench/api_abuse.py" 127.0.0.1 "$PORT" "$(cat "$T_TMP/ctl.db.admin-token")" \
    "$CTL_PID" "${2:-300}"
kill -0 "$CTL_PID" || t_fail "the controller died under the abuse"
