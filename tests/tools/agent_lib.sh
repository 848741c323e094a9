# Shell helpers for the agent's integration tests (sourced after tests/lib.sh). The agent runs
# in standalone mode: the test writes its desired set (watch-response JSON) and reads its
# observed state (status JSON) — the same codecs the controller protocol uses.

AG_BIN=$NUBO_BUILD/agent/nubo-agent
AG_PUSH=$NUBO_BUILD/tests/agent_pushimg
AG_GUEST=$NUBO_BUILD/agent/testguest/testguest
AG_VERSION=0

ag_need_bins() {
    [ -x "$AG_BIN" ] || t_skip "nubo-agent not built ($AG_BIN)"
    [ -x "$AG_PUSH" ] || t_skip "agent_pushimg not built ($AG_PUSH)"
    [ -f "$AG_GUEST" ] || t_skip "agent test guest not built ($AG_GUEST)"
}

# ag_config NAME EXTRA_INI: writes $T_TMP/NAME/agent.ini (state, cache, standalone files).
# The guest bridge always lives in a namespace of this test's ($T_NS, created here unless
# AG_NS is given): never a private address in the root namespace.
ag_config() {
    local name=$1 extra=${2:-}
    if [ -z "${AG_NS:-}" ]; then t_netns "$name"; AG_NS=$T_NS; fi
    AG_DIR=$T_TMP/$name
    mkdir -p "$AG_DIR/assign.d" "$AG_DIR/assign"
    # qemu runs as its own user and must reach the cached kernels below $T_TMP
    chmod 755 "$T_TMP" "$AG_DIR"
    cat > "$AG_DIR/agent.ini" <<INI
[node]
name = $name
metro = test
[standalone]
assignments_file = $AG_DIR/assign/assignments.json
status_file = $AG_DIR/status.json
subnet = ${AG_SUBNET:-10.77.0.0/24}
gateway = ${AG_GATEWAY:-10.77.0.1}
[libvirt]
uri = ${AG_LIBVIRT_URI:-qemu:///system}
accel = tcg
shutdown_timeout = 1s
[registry]
url = ${T_REGISTRY_URL:-http://127.0.0.1:1}
[images]
cache_dir = $AG_DIR/cache
[state]
dir = $AG_DIR/state
[network]
bridge = ${AG_BRIDGE:-nubobr0}
netns = ${AG_NETNS_KEY-$AG_NS}
$extra
INI
}

# ag_start: run the agent (optionally through a wrapper in $AG_WRAP, e.g. nsenter ...).
ag_start() {
    ${AG_WRAP:-} "$AG_BIN" --config "$AG_DIR/agent.ini" --log-level debug >> "$AG_DIR/agent.log" 2>&1 &
    AG_PID=$!
    t_track_pid "$AG_PID"
    cp "$AG_DIR/agent.log" "$T_TMP/agent-$(basename "$AG_DIR").log" 2>/dev/null || true
    t_on_exit "cp '$AG_DIR/agent.log' '$T_TMP/agent-$(basename "$AG_DIR").log' 2>/dev/null"
    t_wait_for 20 test -s "$AG_DIR/status.json" || t_fail "agent did not write its status"
}

# ag_inst UUID IMAGE DESIRED START_SEQ [ARGS_JSON] [POLICY] [FORCE] [IP] [PORTS_JSON]
ag_inst() {
    local uuid=$1 image=$2 desired=$3 seq=$4 args=${5:-[]} policy=${6:-never} force=${7:-false}
    local ip=${8:-10.77.0.$((RANDOM % 200 + 10))} ports=${9:-[]}
    local gw=${AG_GATEWAY:-10.77.0.1}
    t_track_domain "$uuid"
    cat > "$AG_DIR/assign.d/$uuid.json" <<JSON
{"uuid": "$uuid", "name": "i-${uuid:0:8}", "image": "$image", "memory_mb": ${AG_MEM:-64},
 "vcpus": 1, "args": $args, "env": {"NUBO_TEST": "1"}, "desired_state": "$desired",
 "restart_policy": "$policy", "private_ip": "$ip", "prefix": 24, "gateway": "$gw",
 "dns": "$gw", "service_ports": $ports, "start_seq": $seq,
 "stop": {"force": $force, "drain_timeout_ms": 0}}
JSON
}

ag_del() { rm -f "$AG_DIR/assign.d/$1.json"; }

# Publish the desired set (atomically, as a new version).
ag_push() {
    AG_VERSION=$((AG_VERSION + 1))
    python3 - "$AG_DIR" "$AG_VERSION" <<'PY'
import json, os, sys, glob
d, v = sys.argv[1], int(sys.argv[2])
items = [json.load(open(p)) for p in sorted(glob.glob(d + "/assign.d/*.json"))]
tmp = d + "/assign/.tmp"
json.dump({"version": v, "assignments": items}, open(tmp, "w"))
os.rename(tmp, d + "/assign/assignments.json")
PY
}

# ag_get UUID FIELD -> the field of that instance's status ("" when absent/null)
ag_get() {
    python3 - "$AG_DIR/status.json" "$1" "$2" <<'PY'
import json, sys
try:
    s = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(0)
for i in s.get("instances", []):
    if i["uuid"] == sys.argv[2]:
        v = i
        for k in sys.argv[3].split("."):
            v = v.get(k) if isinstance(v, dict) else None
        print("" if v is None else v)
PY
}

ag_is() { [ "$(ag_get "$1" "$2")" = "$3" ]; }

# ag_wait UUID FIELD VALUE [TIMEOUT_S]
ag_wait() {
    t_wait_for "${4:-30}" ag_is "$1" "$2" "$3" \
        || t_fail "instance $1: $2 is '$(ag_get "$1" "$2")', expected '$3' (message: $(ag_get "$1" message))"
}

ag_gone() { ! grep -q "$1" "$AG_DIR/status.json"; }

# ag_image REPO TAG [PAD]: push the test guest (PAD bytes appended make distinct blobs).
ag_image() {
    local repo=$1 tag=$2 pad=${3:-}
    local k="$T_TMP/kernel-${repo//\//_}-$tag"
    cp "$AG_GUEST" "$k"
    [ -n "$pad" ] && printf '%s' "$pad" >> "$k"
    "$AG_PUSH" --registry "$T_REGISTRY_URL" --repo "$repo" --tag "$tag" --kernel "$k" \
        --label "org.nubo.kernel.args=testguest" "${@:4}"
}

# ag_base_runtime: start a registry and push the project's base runtime (a Linux guest) to it
# as official/base:test; sets base to its reference (skips when the runtime is not built).
ag_base_runtime() {
    local rt=${NUBO_AGENT_RUNTIME_DIR:-$NUBO_BUILD/guest/runtimes/base}
    [ -f "$rt/vmlinuz" ] && [ -f "$rt/initrd.cpio" ] \
        || t_skip "base runtime not built ($rt; cmake --build \$build --target guest_runtime_base)"
    t_start_registry
    local args
    args=$(cat "$NUBO_SRC/guest/runtimes/kernel-args" 2>/dev/null || echo "console=ttyS0 quiet")
    base=$("$AG_PUSH" --registry "$T_REGISTRY_URL" --repo official/base --tag test \
        --kernel "$rt/vmlinuz" --initrd "$rt/initrd.cpio" --label "org.nubo.kernel.args=$args") \
        || t_fail "push base runtime"
}

# The registry's file holding a blob (distribution's filesystem layout).
ag_blob_file() { local h=${1#sha256:}; echo "$T_TMP/registry/docker/registry/v2/blobs/sha256/${h:0:2}/$h/data"; }

# The kernel layer digest of an image reference repo@sha256:... (from the registry).
ag_kernel_layer() {
    local repo=${1%@*} dig=${1#*@}
    local idx man
    idx=$(curl -fsS -H 'Accept: application/vnd.oci.image.index.v1+json' "$T_REGISTRY_URL/v2/$repo/manifests/$dig")
    man=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["manifests"][0]["digest"])' "$idx")
    curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$T_REGISTRY_URL/v2/$repo/manifests/$man" |
        python3 -c 'import json,sys; m=json.load(sys.stdin); print([l["digest"] for l in m["layers"] if "org.unikraft.kernel.image" in l.get("annotations",{})][0])'
}

# grep that reads all of its input (grep -q exits early, and under pipefail the writer's
# SIGPIPE would fail the pipeline)
has() { grep "$@" >/dev/null; }
