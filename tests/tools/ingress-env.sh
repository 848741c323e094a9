# Helpers for tests that send traffic through a real nubo-ingress + HAProxy to fake nodes
# (tests/integration/ingress_*.sh). Source after tests/tools/controller-env.sh; the test needs
# root (network namespaces) and haproxy.
command -v haproxy >/dev/null || t_skip "haproxy is not installed (deploy/install-deps installs it)"
command -v openssl >/dev/null || t_skip "openssl missing"
ING_BIN=$NUBO_BUILD/ingress/nubo-ingress
[ -x "$ING_BIN" ] || t_fail "nubo-ingress not built ($ING_BIN)"

# ing_hook NS [APP.py]: writes $T_TMP/hook for the fake agent's --hook: while an instance runs,
# APP (default: the http-python example) serves port 8080 on its private IP inside NS.
ing_hook() {
    local ns=$1 app=${2:-$NUBO_SRC/examples/http-python/server.py}
    cat > "$T_TMP/hook" <<HOOK
#!/bin/bash
# fake agent hook: \$1 start|stop, \$2 instance uuid, \$3 private IP
pidf=$T_TMP/app-\$2.pid
if [ "\$1" = start ]; then
    ip -n $ns addr add "\$3/32" dev lo 2>/dev/null
    ip netns exec $ns setsid python3 -c "
import runpy, http.server
srv = http.server.ThreadingHTTPServer
class Bound(srv):
    def __init__(self, addr, h): super().__init__(('\$3', addr[1]), h)
http.server.ThreadingHTTPServer = Bound
runpy.run_path('$app', run_name='__main__')" \\
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

# ing_start NODE NS [INI-LINES]: nubo-ingress for metro fra0 (domain nubo.test) on a random
# loopback address ($ADDR, ports 80/443) with a self-signed *.fra0.nubo.test ($T_TMP/cert.pem);
# INI-LINES are added to its [ingress] section; ING_CONTROLLER replaces its [controller] url and
# socket lines (default: the controller's unix socket).
ing_start() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=*.fra0.nubo.test" \
        -addext "subjectAltName=DNS:*.fra0.nubo.test" \
        -keyout "$T_TMP/key.pem" -out "$T_TMP/cert.pem" 2>/dev/null || t_fail "certificate"
    ADDR=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
    cat > "$T_TMP/ingress.ini" <<INI
[ingress]
metro = fra0
runtime_dir = $T_TMP/ing
listen_addr = $ADDR
http_port = 80
https_port = 443
watch_timeout_ms = 5000
${3:-}
[controller]
${ING_CONTROLLER:-url = http://controller
socket = $T_TMP/ctl.sock}
token_file = $CTL_DB.ingress-token
[haproxy]
binary = $(command -v haproxy)
[tls]
cert = $T_TMP/cert.pem
key = $T_TMP/key.pem
[nodes]
INI
    local n
    for n in $1; do echo "$n = netns:$2" >> "$T_TMP/ingress.ini"; done # NODE: one or a list
    "$ING_BIN" --config "$T_TMP/ingress.ini" > "$T_TMP/ingress.log" 2>&1 &
    t_track_pid $!
    t_on_exit '[ -s "$T_TMP/ing/haproxy.pid" ] && kill "$(cat "$T_TMP/ing/haproxy.pid")" 2>/dev/null'
}

# ing_get FQDN OUT [PATH]: one HTTPS request through the ingress; prints "code time-to-first-byte".
ing_get() {
    curl -sS --max-time 20 --cacert "$T_TMP/cert.pem" --resolve "$1:443:$ADDR" -o "$2" \
        -w '%{http_code} %{time_starttransfer}' "https://$1${3:-/}"
}
