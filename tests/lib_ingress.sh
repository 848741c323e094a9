# Helpers for tests through a metro's real HAProxy (ingress_*.sh): the fake agent's hook that
# serves the python example app on each booted instance's private IP inside a network
# namespace, and nubo-ingress (+ HAProxy) for one metro with a self-signed wildcard
# certificate. Source after tests/lib.sh and tests/tools/controller-env.sh.

ING_BIN=$NUBO_BUILD/ingress/nubo-ingress
command -v haproxy >/dev/null || t_skip "haproxy is not installed (deploy/install-deps installs it)"
command -v openssl >/dev/null || t_skip "openssl missing"
[ -x "$ING_BIN" ] || t_fail "nubo-ingress not built ($ING_BIN)"

# ing_app_hook NS [DELAY_MS]: writes $T_TMP/hook, a fake agent --hook that starts the example
# app (answering each request after DELAY_MS, work to keep requests in flight) on the
# instance's address in netns NS when it boots and kills it when it stops; logs to
# $T_TMP/hook.log, the app's pid in $T_TMP/app-<uuid>.pid.
ing_app_hook() {
    local ns=$1 delay=${2:-0}
    cat > "$T_TMP/hook" <<HOOK
#!/bin/bash
# fake agent hook: \$1 start|stop, \$2 instance uuid, \$3 private IP
pidf=$T_TMP/app-\$2.pid
if [ "\$1" = start ]; then
    ip -n $ns addr add "\$3/32" dev lo 2>/dev/null
    ip netns exec $ns setsid python3 -c "
import runpy, http.server, time
srv = http.server.ThreadingHTTPServer
class Bound(srv):
    def __init__(self, addr, h): super().__init__(('\$3', addr[1]), h)
http.server.ThreadingHTTPServer = Bound
answer = http.server.BaseHTTPRequestHandler.send_response
def slow(self, *a, **k):
    time.sleep($delay / 1000.0)
    answer(self, *a, **k)
http.server.BaseHTTPRequestHandler.send_response = slow
runpy.run_path('$NUBO_SRC/examples/http-python/server.py', run_name='__main__')" \\
        >> "$T_TMP/app-\$2.log" 2>&1 < /dev/null &
    echo \$! > "\$pidf"
    echo "start \$2" >> "$T_TMP/hook.log"
    for i in \$(seq 100); do
        ip netns exec $ns curl -fsS -o /dev/null "http://\$3:8080/" 2>/dev/null && exit 0
        sleep 0.05
    done
    exit 1
fi
[ -s "\$pidf" ] && kill "\$(cat "\$pidf")" 2>/dev/null
rm -f "\$pidf"
echo "stop \$2" >> "$T_TMP/hook.log"
exit 0
HOOK
    chmod +x "$T_TMP/hook"
    t_on_exit 'for f in "$T_TMP"/app-*.pid; do [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null; done'
}

# ing_start METRO NS NODE...: nubo-ingress for METRO (services domain nubo.test), every NODE's
# guests in netns NS, on a loopback address of its own (ADDR) with a wildcard certificate for
# *.METRO.nubo.test ($T_TMP/cert.pem). Reports traffic every 200 ms.
ing_start() {
    local metro=$1 ns=$2 node
    shift 2
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=*.$metro.nubo.test" \
        -addext "subjectAltName=DNS:*.$metro.nubo.test" \
        -keyout "$T_TMP/key.pem" -out "$T_TMP/cert.pem" 2>/dev/null || t_fail "certificate"
    ADDR=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
    cat > "$T_TMP/ingress.ini" <<INI
[ingress]
metro = $metro
runtime_dir = $T_TMP/ing
listen_addr = $ADDR
http_port = 80
https_port = 443
watch_timeout_ms = 5000
traffic_interval_ms = 200
wake_timeout_ms = 10000
[controller]
url = http://controller
socket = $T_TMP/ctl.sock
token_file = $CTL_DB.ingress-token
[haproxy]
binary = $(command -v haproxy)
[tls]
cert = $T_TMP/cert.pem
key = $T_TMP/key.pem
[nodes]
INI
    for node in "$@"; do echo "$node = netns:$ns" >> "$T_TMP/ingress.ini"; done
    "$ING_BIN" --config "$T_TMP/ingress.ini" > "$T_TMP/ingress.log" 2>&1 &
    t_track_pid $!
    t_on_exit '[ -s "$T_TMP/ing/haproxy.pid" ] && kill "$(cat "$T_TMP/ing/haproxy.pid")" 2>/dev/null'
}

# ing_get FQDN OUT: one HTTPS GET of https://FQDN/ through the ingress, body to OUT; prints
# "<http code> <seconds to first byte>".
ing_get() {
    curl -sS --max-time 20 --cacert "$T_TMP/cert.pem" --resolve "$1:443:$ADDR" -o "$2" \
        -w '%{http_code} %{time_starttransfer}' "https://$1/"
}
