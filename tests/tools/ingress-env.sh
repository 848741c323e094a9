# Helpers for tests that send traffic through a real nubo-ingress + HAProxy to fake nodes
# (tests/integration/ingress_*.sh). Source after tests/lib.sh; it brings
# tests/tools/controller-env.sh along. The test needs root (network namespaces) and haproxy.
t_need_root
source "$NUBO_SRC/tests/tools/controller-env.sh"
command -v haproxy >/dev/null || t_skip "haproxy is not installed (deploy/install-deps installs it)"
command -v openssl >/dev/null || t_skip "openssl missing"
ING_BIN=$NUBO_BUILD/ingress/nubo-ingress
[ -x "$ING_BIN" ] || t_fail "nubo-ingress not built ($ING_BIN)"

# ing_hook NS [APP.py]: writes $T_TMP/hook for the fake agent's --hook: while an instance runs,
# APP (default: the http-python example) serves port 8080 on its private IP inside NS. While
# $T_TMP/crash-<uuid> exists, that instance's starts fail (the fake node reports a crash); while
# $T_TMP/hold-<uuid> exists (up to 30 s), its start waits (a slow boot).
ing_hook() {
    local ns=$1 app=${2:-$NUBO_SRC/examples/http-python/server.py}
    cat > "$T_TMP/hook" <<HOOK
#!/bin/bash
# fake agent hook: \$1 start|stop, \$2 instance uuid, \$3 private IP
pidf=$T_TMP/app-\$2.pid
if [ "\$1" = start ]; then
    # a test's crash-<uuid> file: this start fails, and the fake node reports a crash
    [ -e "$T_TMP/crash-\$2" ] && { echo "crash \$2" >> "$T_TMP/hook.log"; exit 1; }
    if [ -e "$T_TMP/hold-\$2" ]; then
        echo "hold \$2" >> "$T_TMP/hook.log"
        for i in \$(seq 300); do [ -e "$T_TMP/hold-\$2" ] || break; sleep 0.1; done
    fi
    ip -n $ns addr add "\$3/32" dev lo 2>/dev/null
    ip netns exec $ns setsid python3 "$NUBO_SRC/tests/tools/app_on.py" "\$3" "$app" \\
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

# ing_fake_cluster N [APP.py]: the controller (domain nubo.test; CTL_* settings apply) and N fake
# nodes whose instances run APP (ing_hook) in one network namespace, $NS; admin/hello:latest is
# indexed. Sets NODE_NAMES ("NAME ...") and ING_NODES ("NAME:NS ...", for ing_start).
ing_fake_cluster() {
    t_netns n0
    NS=$T_NS
    ing_hook "$NS" "${2:-}"
    ctl_start "[services]
domain = nubo.test"
    fake_start "$1" --boot-ms 50 --hook "$T_TMP/hook"
    index_image admin/hello latest
    api GET /v1/nodes
    NODE_NAMES=$(jget '" ".join(n["name"] for n in d["data"]["nodes"])')
    ING_NODES=$(for n in $NODE_NAMES; do printf '%s:%s ' "$n" "$NS"; done)
}

# ing_start NODES [INI-LINES]: nubo-ingress for metro fra0 (domain nubo.test) on a random
# loopback address ($ADDR, ports 80/443), over the controller's unix socket (e2e_services.sh
# uses TCP); sets ING_PID. NODES: "NODE:NETNS ..." (may be empty), the fake nodes and the
# namespaces their instances' addresses live in. INI-LINES are added to its [ingress] section.
# Its certificate: ING_CERT and ING_KEY (and ING_CA, the CA HAProxy sends along), by default a
# self-signed *.fra0.nubo.test made here ($T_TMP/cert.pem, key.pem). ING_CONTROLLER replaces its
# [controller] url and socket lines (default: the controller's unix socket).
ing_start() {
    if [ -z "${ING_CERT:-}" ]; then
        ING_CERT=$T_TMP/cert.pem ING_KEY=$T_TMP/key.pem
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=*.fra0.nubo.test" \
            -addext "subjectAltName=DNS:*.fra0.nubo.test" \
            -keyout "$ING_KEY" -out "$ING_CERT" 2>/dev/null || t_fail "certificate"
    fi
    ADDR=127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))
    cat > "$T_TMP/ingress.ini" <<INI
[ingress]
metro = fra0
runtime_dir = $T_TMP/ing
listen_addr = $ADDR
http_port = 80
https_port = 443
watch_timeout_ms = 5000
${2:-}
[controller]
${ING_CONTROLLER:-url = http://controller
socket = $T_TMP/ctl.sock}
token_file = $CTL_DB.ingress-token
[haproxy]
binary = $(command -v haproxy)
[tls]
cert = $ING_CERT
key = $ING_KEY
${ING_CA:+ca = $ING_CA}
[nodes]
INI
    local n
    for n in $1; do echo "${n%%:*} = netns:${n#*:}" >> "$T_TMP/ingress.ini"; done
    "$ING_BIN" --config "$T_TMP/ingress.ini" > "$T_TMP/ingress.log" 2>&1 &
    ING_PID=$!
    t_track_pid "$ING_PID"
    t_on_exit '[ -s "$T_TMP/ing/haproxy.pid" ] && kill "$(cat "$T_TMP/ing/haproxy.pid")" 2>/dev/null'
}

# ing_get FQDN OUT [PATH]: one HTTPS request through the ingress; prints "code time-to-first-byte".
ing_get() {
    curl -sS --max-time 20 --cacert "$T_TMP/cert.pem" --resolve "$1:443:$ADDR" -o "$2" \
        -w '%{http_code} %{time_starttransfer}' "https://$1${3:-/}"
}
