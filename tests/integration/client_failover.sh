#!/usr/bin/env bash
# Controller URL lists in the clients (issue 17, common/http_targets.c) against the real
# controller: the CLI and nubo-ingress are given a dead controller first and a follower (a
# python fixture answering every call with 307 to the real controller, as a follower does);
# their calls and the ingress's long poll succeed through the list, the CLI's POST keeping its
# body: the 307 is followed (the listed fixture after the follower is never reached). A
# follower redirecting to a host outside the list is never followed: that host sees no
# request and no token. (Two real controllers and a takeover: the leader election tests.)
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/controller-env.sh"
t_need_root
CLI=$NUBO_BUILD/cli/nubo
[ -x "$CLI" ] || t_skip "nubo CLI not built ($CLI)"

ctl_start

# One python process serves every fixture, each "MODE PORT TARGET LOG" on its own port:
# follower: 307 to TARGET + the same path and query, for every method (as a follower does);
# record: answers 200 and writes "METHOD PATH AUTHORIZATION" lines to LOG.
cat > "$T_TMP/fixture.py" <<'PY'
import http.server, sys, threading
def serve(mode, port, target, log):
    class H(http.server.BaseHTTPRequestHandler):
        def any(self):
            n = int(self.headers.get('Content-Length') or 0)
            if n:
                self.rfile.read(n)
            if mode == 'follower':
                self.send_response(307)
                self.send_header('Location', target + self.path)
            else:
                with open(log, 'a') as f:
                    f.write('%s %s %s\n' % (self.command, self.path, self.headers.get('Authorization', '-')))
                self.send_response(200)
            self.send_header('Content-Length', '0')
            self.end_headers()
        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = any
        def log_message(self, *a):
            pass
    return http.server.ThreadingHTTPServer(('127.0.0.1', int(port)), H)
servers = [serve(*spec.split(' ')) for spec in sys.argv[1:]]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
PY
DEAD=$(t_free_port)      # nothing listens there: a controller whose machine is gone
FOLLOWER=$(t_free_port)  # a follower: 307 to the leader, the real controller
NEXT=$(t_free_port)      # listed after the follower: reached only if the 307 were not followed
EVIL=$(t_free_port)      # not listed: must never be reached
ASTRAY=$(t_free_port)    # a follower redirecting there
python3 "$T_TMP/fixture.py" "follower $FOLLOWER $CTL_URL -" "record $NEXT - $T_TMP/next.log" \
    "record $EVIL - $T_TMP/evil.log" "follower $ASTRAY http://127.0.0.1:$EVIL -" \
    >> "$T_TMP/fixture.log" 2>&1 &
t_track_pid $!
for p in "$FOLLOWER" "$NEXT" "$EVIL" "$ASTRAY"; do
    t_wait_for 60 curl -sS -o /dev/null "http://127.0.0.1:$p/" || t_fail "fixture on port $p did not start"
done
rm -f "$T_TMP/next.log" "$T_TMP/evil.log" # the start-up probes
LIST="http://127.0.0.1:$DEAD, http://127.0.0.1:$FOLLOWER, http://127.0.0.1:$NEXT, $CTL_URL"

cli() { HOME=$T_TMP NUBO_CONFIG=$T_TMP/no-profile "$CLI" --token "$ADMIN" "$@"; }
users() { curl -fsS -H "Authorization: Bearer $ADMIN" "$CTL_URL/v1/users"; }

t_log "CLI: dead controller first, then a follower: a POST with its body reaches the leader"
cli --api "$LIST" users create alice > "$T_TMP/cli.out" 2>&1 || t_fail "users create through the list: $(cat "$T_TMP/cli.out")"
users | grep -q '"alice"' || t_fail "alice was not created: $(users)"
cli --api "$LIST" users list > "$T_TMP/cli.out" 2>&1 || t_fail "users list: $(cat "$T_TMP/cli.out")"
grep -q alice "$T_TMP/cli.out" || t_fail "users list through the list: $(cat "$T_TMP/cli.out")"
NUBO_API="http://127.0.0.1:$DEAD,$CTL_URL" cli nodes list > "$T_TMP/cli.out" 2>&1 \
    || t_fail "NUBO_API list: $(cat "$T_TMP/cli.out")"

t_log "CLI: a 307 to a host outside the list is not followed"
if cli --api "http://127.0.0.1:$ASTRAY" users list > "$T_TMP/cli.out" 2>&1; then
    t_fail "a redirect to an unlisted host was followed: $(cat "$T_TMP/cli.out")"
fi
grep -q "no listed controller leads" "$T_TMP/cli.out" || t_fail "unexpected error: $(cat "$T_TMP/cli.out")"
cli --api "http://127.0.0.1:$ASTRAY, $CTL_URL" users create bob > "$T_TMP/cli.out" 2>&1 \
    || t_fail "the next listed controller was not asked: $(cat "$T_TMP/cli.out")"
users | grep -q '"bob"' || t_fail "bob was not created"
[ ! -s "$T_TMP/evil.log" ] || t_fail "the unlisted host got requests: $(cat "$T_TMP/evil.log")"
[ ! -s "$T_TMP/next.log" ] || t_fail "the follower's 307 was not followed: $(cat "$T_TMP/next.log")"
if cli --api "http://127.0.0.1:$DEAD" users list > "$T_TMP/cli.out" 2>&1; then t_fail "a dead API answered"; fi
grep -q "cannot reach the nubo API" "$T_TMP/cli.out" || t_fail "dead API: $(cat "$T_TMP/cli.out")"

t_log "ingress: its watch (a long poll) and its reports go through the same list"
source "$NUBO_SRC/tests/tools/ingress-env.sh"
t_netns ing
ING_CONTROLLER="url = $LIST" ing_start "fra0-1:$T_NS"
t_wait_for 30 grep -q "applied version" "$T_TMP/ingress.log" \
    || t_fail "the ingress got no watch answer through the list"
# long polls come back every watch_timeout_ms (5 s) and are asked again through the list
sleep 6
! grep -qi "watch.*\(error\|fail\)\|cannot" "$T_TMP/ingress.log" \
    || t_fail "ingress errors: $(grep -i 'error\|fail\|cannot' "$T_TMP/ingress.log" | head -3)"
[ ! -s "$T_TMP/evil.log" ] || t_fail "the unlisted host got requests: $(cat "$T_TMP/evil.log")"
[ ! -s "$T_TMP/next.log" ] || t_fail "the follower's 307 was not followed: $(cat "$T_TMP/next.log")"
t_log "PASS: lists fail over past a dead controller and follow a follower's 307 to listed hosts only"
