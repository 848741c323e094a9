# Helpers for end-to-end tests on a private dev cluster (deploy/nubo-devcluster): its own state
# directory, ports, namespace prefix and CLI profile, all removed when the test exits.
# Source after tests/lib.sh.

t_cluster_up() { # [nodes spec] [--ha: PostgreSQL, two controllers and HAProxy to the leader, nubo-devcluster up --ha]
    local ha=${2:-}
    t_need_root
    t_need_libvirt
    [ -x "$NUBO_BUILD/controller/nubo-controller" ] || t_fail "no nubo-controller in $NUBO_BUILD"
    [ -x "$NUBO_BUILD/agent/nubo-agent" ] || t_fail "no nubo-agent in $NUBO_BUILD"
    chmod 755 "$T_TMP" # qemu (libvirt-qemu) must reach the agents' image caches below it
    export NUBO_DEVCLUSTER_DIR=$T_TMP/dc
    export NUBO_DEVCLUSTER_API=127.0.0.1:$(t_free_port)
    export NUBO_DEVCLUSTER_REGISTRY=127.0.0.1:$(t_free_port)
    export NUBO_DEVCLUSTER_NS_PREFIX=ne$$-
    export NUBO_DEVCLUSTER_NODES=${1:-fra:2,was:1}
    if [ "$ha" = --ha ]; then
        source "$NUBO_SRC/deploy/pg-env.sh"
        pg_available || t_skip "PostgreSQL server binaries missing (apt-get install postgresql-15)"
        command -v haproxy >/dev/null || t_skip "haproxy is not installed (--ha puts it in front of the controllers)"
        export NUBO_DEVCLUSTER_API2=127.0.0.1:$(t_free_port)
        export NUBO_DEVCLUSTER_API_LB=127.0.0.1:$(t_free_port)
    fi
    # Loopback addresses of our own for the metros' ingress, so this cluster never meets
    # another's (a user's quickstart cluster, say) on ports 80/443.
    export NUBO_DEVCLUSTER_INGRESS_NET=${NUBO_DEVCLUSTER_INGRESS_NET:-127.$((RANDOM % 200 + 20)).$((RANDOM % 250 + 1))}
    export XDG_CONFIG_HOME=$T_TMP/config
    export NUBO_SERVICES_STATE=$T_TMP/services
    unset NUBO_API NUBO_TOKEN NUBO_REGISTRY NUBO_METRO NUBO_CA
    DC="$NUBO_SRC/deploy/nubo-devcluster"
    NUBO="$NUBO_BUILD/cli/nubo"
    API=https://$NUBO_DEVCLUSTER_API
    # the controller's certificate is from the cluster's CA: curl and the CLI trust it
    export CURL_CA_BUNDLE=$NUBO_DEVCLUSTER_DIR/ca/ca.pem NUBO_CA=$NUBO_DEVCLUSTER_DIR/ca/ca.pem
    t_on_exit "t_cluster_collect_logs; \"$DC\" down > \"$T_TMP/down.log\" 2>&1"
    "$DC" up ${ha:+--ha} > "$T_TMP/cluster-up.log" 2>&1 || { cat "$T_TMP/cluster-up.log" >&2; t_fail "devcluster up failed"; }
    # the first metro's ingress and the cluster's CA: curl --resolve NAME:443:$ADDR --cacert $CA
    ADDR=$NUBO_DEVCLUSTER_INGRESS_NET.1
    CA=$NUBO_DEVCLUSTER_DIR/ca/ca.pem
    ADMIN_TOKEN=$(cat "$NUBO_DEVCLUSTER_DIR/controller/admin-token")
    USER_TOKEN=$(cat "$NUBO_DEVCLUSTER_DIR/controller/demo-token")
    t_log "cluster up${ha:+ (HA: 2nd controller https://$NUBO_DEVCLUSTER_API2)}: API $API, registry $NUBO_DEVCLUSTER_REGISTRY, nodes $NUBO_DEVCLUSTER_NODES"
}

# Skip unless the metros' ingress can run: HAProxy installed, nubo-ingress built.
t_need_ingress() {
    command -v haproxy >/dev/null || t_skip "haproxy is not installed (deploy/install-deps installs it)"
    [ -x "$NUBO_BUILD/ingress/nubo-ingress" ] || t_fail "nubo-ingress not built"
}

# t_cluster_build DIR IMAGE: `nubo build` the app in DIR and push it as IMAGE.
t_cluster_build() {
    (cd "$1" && "$NUBO" build . --output "$2") > "$T_TMP/build.log" 2>&1 \
        || { tail -20 "$T_TMP/build.log" >&2; t_fail "nubo build $2 failed"; }
}

t_cluster_runtimes() { # [build-runtimes options, e.g. --runtimes base]
    # official/* takes the admin's token (registry auth: users push only <user>/*)
    NUBO_TOKEN=$ADMIN_TOKEN "$NUBO_SRC/guest/build-runtimes" --build "$NUBO_BUILD" --registry "http://$NUBO_DEVCLUSTER_REGISTRY" "$@" \
        > "$T_TMP/runtimes.log" 2>&1 || { tail -30 "$T_TMP/runtimes.log" >&2; t_fail "build-runtimes failed"; }
}

# Copy the dev cluster's component logs into T_TMP so a failure shows them.
t_cluster_collect_logs() {
    local d=$NUBO_DEVCLUSTER_DIR
    [ -f "$d/controller/controller.log" ] && cp "$d/controller/controller.log" "$T_TMP/controller.log"
    [ -f "$d/controller2/controller.log" ] && cp "$d/controller2/controller.log" "$T_TMP/controller2.log"
    [ -f "$d/pg/postgres.log" ] && cp "$d/pg/postgres.log" "$T_TMP/postgres.log"
    [ -f "$d/apilb/haproxy.log" ] && cp "$d/apilb/haproxy.log" "$T_TMP/apilb-haproxy.log"
    [ -f "$d/registry/tcp.log" ] && cp "$d/registry/tcp.log" "$T_TMP/registry.log"
    for n in "$d"/nodes/*/; do
        [ -f "$n/agent.log" ] && cp "$n/agent.log" "$T_TMP/agent-$(basename "$n").log"
    done
    for n in "$d"/ingress/*/; do
        [ -f "$n/ingress.log" ] && cp "$n/ingress.log" "$T_TMP/ingress-$(basename "$n").log"
    done
    return 0
}

# --ha: "ROLE EPOCH LEADER_URL" of a controller's /healthz (tests/integration/controller_ha.sh)
role_of() {
    curl -fsS --max-time 5 "$1/healthz" |
        sed -E 's/.*"role":"([a-z]*)".*"epoch":([0-9]*).*"leader_url":"([^"]*)".*/\1 \2 \3/'
}
is_leader() { [ "$(role_of "$1" | cut -d' ' -f1)" = leader ]; }
is_follower() { [ "$(role_of "$1" | cut -d' ' -f1)" = follower ]; }

# API call as the demo user: t_api METHOD PATH [BODY]
t_api() {
    curl -sS -X "$1" -H "Authorization: Bearer $USER_TOKEN" -H 'Content-Type: application/json' \
        ${3:+--data "$3"} "$API$2"
}

# Read a field from JSON on stdin: t_json 'expr over d' (tests/lib.sh's jget)
t_json() { local BODY; IFS= read -r -d '' BODY || :; jget "$1"; }

# HTTP from inside a node's network namespace (where private IPs live).
t_node_curl() { # node url
    # Any error is retried: until the guest answers ARP the connect fails with "no route to host".
    "$DC" exec "$1" curl -sS --max-time 5 --retry 60 --retry-all-errors --retry-delay 1 "$2"
}
