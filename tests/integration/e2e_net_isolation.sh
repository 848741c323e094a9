#!/bin/bash
# Issue 12, observations 1 and 2, on a private dev cluster with one node (TCG guests): user
# demo's guest (the neighbour, default user) and user beta's probe (root, by its image's USER)
# share the node's bridge. The probe reports over its console what it could reach - the
# neighbour's port, the gateway's other ports, a host address, a network behind the node - and
# sends ARP poisoning and forged-source frames; none of it gets through, and the nft counters of
# the probe's own chain show its spoofed frames were dropped at its tap. The node (the path
# HAProxy takes: sockets opened in the node's namespace) still reaches both guests, the
# neighbour runs unprivileged, the rules survive an agent kill -9 without duplicates and go
# with the instance.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/lib_cluster.sh"
command -v nft >/dev/null || t_skip "nft is not installed (deploy/install-deps installs nftables)"
APPS=$NUBO_SRC/tests/integration/netiso
t_cluster_up fra:1
t_cluster_runtimes
NODE=fra-1
NS=${NUBO_DEVCLUSTER_NS_PREFIX}$NODE
[ -e "/run/netns/$NS" ] || t_fail "no namespace $NS for node $NODE"

# A second tenant.
out=$(curl -sS -H "Authorization: Bearer $ADMIN_TOKEN" -d '{"name":"beta"}' "$API/v1/users")
B_TOKEN=$(t_json 'd["data"]["users"][0]["token"]' <<<"$out") || t_fail "cannot create user beta: $out"
nubo_b() { NUBO_TOKEN=$B_TOKEN "$NUBO" "$@"; }

cp -r "$APPS/target" "$T_TMP/target"
cp -r "$APPS/probe" "$T_TMP/probe"
(cd "$T_TMP/target" && "$NUBO" build . --output demo/nettarget:latest) > "$T_TMP/build-target.log" 2>&1 \
    || t_fail "nubo build (target) failed"
(cd "$T_TMP/probe" && nubo_b build . --output beta/netprobe:latest) > "$T_TMP/build-probe.log" 2>&1 \
    || t_fail "nubo build (probe) failed"
# index -> manifest -> config: the probe image declares its user
cfg=$(python3 - "$NUBO_DEVCLUSTER_REGISTRY" beta/netprobe latest "$ADMIN_TOKEN" "$NUBO_SRC/tests/tools" <<'PY'
import json, sys
reg, repo, tag, token, tools = sys.argv[1:]
sys.path.insert(0, tools)
import regclient
def get(path, accept):
    st, _, body = regclient.request("GET", f"http://{reg}/v2/{repo}/{path}", token, None, {"Accept": accept})
    assert st == 200, (path, st, body[:200])
    return json.loads(body)
m = get(f"manifests/{tag}", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json")
if "manifests" in m:
    m = get(f"manifests/{m['manifests'][0]['digest']}", "application/vnd.oci.image.manifest.v1+json")
print(json.dumps(get(f"blobs/{m['config']['digest']}", "*/*")))
PY
) || t_fail "cannot read the probe image's config"
[ "$(t_json 'd["config"].get("User")' <<<"$cfg")" = root ] || t_fail "the probe image's config.User is not root: $cfg"

# --- the neighbour (user demo)
"$NUBO" run --metro=fra -m 384MiB --name nettarget --image=demo/nettarget:latest > "$T_TMP/run-target.log" 2>&1 \
    || t_fail "nubo run (target) failed: $(cat "$T_TMP/run-target.log")"
"$NUBO" instances wait nettarget --until running --timeout 180s > /dev/null || t_fail "target not running"
tj=$("$NUBO" instances get nettarget -o json)
T_IP=$(t_json 'd[0]["private_ip"]' <<<"$tj"); T_UUID=$(t_json 'd[0]["uuid"]' <<<"$tj")
[ "$(t_json 'd[0]["node"]' <<<"$tj")" = "$NODE" ] || t_fail "target not on $NODE"
gwcidr=$(ip -n "$NS" -4 -o addr show dev nubobr0 | awk '{print $4}' | head -1)
GW=${gwcidr%/*}
[ -n "$GW" ] || t_fail "no gateway address on the node's bridge"
t_node_curl "$NODE" "http://$T_IP:8080/" | grep -q "^target $T_IP" || t_fail "the node does not reach the target"
t_log "target $T_IP (uuid $T_UUID), gateway $GW"

# --- what a guest must not reach: another port of the gateway, a host address (on lo, as a
# host's public address would be), a network behind the node (another namespace; the node
# forwards, so only the rules stop it)
OUT=nt$$-out
ip netns add "$OUT"; T_NETNS+=("$OUT")
ip -n "$OUT" link set lo up
ip link add "ni$$a" type veth peer name "ni$$b"
ip link set "ni$$a" netns "$NS"; ip link set "ni$$b" netns "$OUT"
ip -n "$NS" addr add 10.98.0.1/24 dev "ni$$a"; ip -n "$NS" link set "ni$$a" up
ip -n "$OUT" addr add 10.98.0.2/24 dev "ni$$b"; ip -n "$OUT" link set "ni$$b" up
ip -n "$OUT" route add 10.64.0.0/16 via 10.98.0.1
ip -n "$NS" addr add 10.99.0.1/32 dev lo
ip netns exec "$NS" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
ip netns exec "$NS" python3 -u "$APPS/listener.py" "tcp:$GW:7777" tcp:10.99.0.1:7778 "udp:$GW:7780" \
    > "$T_TMP/listen-node.log" 2>&1 &
t_track_pid $!
ip netns exec "$OUT" python3 -u "$APPS/listener.py" tcp:10.98.0.2:7779 > "$T_TMP/listen-out.log" 2>&1 &
t_track_pid $!
t_wait_for 60 grep -q LISTENING "$T_TMP/listen-node.log" || t_fail "node listener did not start"
t_wait_for 60 grep -q LISTENING "$T_TMP/listen-out.log" || t_fail "outside listener did not start"
# positive controls: the listeners answer whoever may reach them
for a in "$GW:7777" 10.99.0.1:7778 10.98.0.2:7779; do
    ip netns exec "$NS" python3 -c "import socket,sys; socket.create_connection(('${a%:*}', ${a#*:}), 3)" \
        || t_fail "control: the node cannot reach its own listener $a"
done

# --- the probe (user beta, root by its image)
nubo_b run --metro=fra -m 384MiB --name netprobe -e "NEIGHBOUR=$T_IP" -e "GATEWAY=$GW" \
    -e HOSTADDR=10.99.0.1 -e OUTSIDE=10.98.0.2 --image=beta/netprobe:latest > "$T_TMP/run-probe.log" 2>&1 \
    || t_fail "nubo run (probe) failed: $(cat "$T_TMP/run-probe.log")"
nubo_b instances wait netprobe --until running --timeout 180s > /dev/null || t_fail "probe not running"
pj=$(nubo_b instances get netprobe -o json)
P_IP=$(t_json 'd[0]["private_ip"]' <<<"$pj"); P_UUID=$(t_json 'd[0]["uuid"]' <<<"$pj")
[ "$(t_json 'd[0]["node"]' <<<"$pj")" = "$NODE" ] || t_fail "probe not on $NODE"
t_wait_for 180 bash -c "NUBO_TOKEN=$B_TOKEN '$NUBO' instances logs netprobe | grep -q 'PROBE done'" \
    || t_fail "the probe did not finish: $(nubo_b instances logs netprobe | tail -20)"
nubo_b instances logs netprobe > "$T_TMP/probe-console.log"
"$NUBO" instances logs nettarget > "$T_TMP/target-console.log"
grep PROBE "$T_TMP/probe-console.log" >&2

# privilege: the probe is root because its image says so; the neighbour runs as nobody
grep -q 'nubo-init: app user root (uid 0' "$T_TMP/probe-console.log" || t_fail "probe not run as its image's user root"
grep -q 'PROBE uid=0' "$T_TMP/probe-console.log" || t_fail "probe app is not uid 0"
grep -q 'nubo-init: app user nobody (uid 65534, gid 65534)' "$T_TMP/target-console.log" \
    || t_fail "the target did not get the unprivileged default"
grep -q 'NETTEST uid=65534 gid=65534' "$T_TMP/target-console.log" || t_fail "target app uid: $(grep NETTEST "$T_TMP/target-console.log")"
grep -q 'NETTEST raw=denied' "$T_TMP/target-console.log" || t_fail "an unprivileged app may open raw sockets"

# reachability: every try blocked; the raw frames left the guest
for name in neighbour gateway-port host-address outside; do
    line=$(grep "PROBE tcp $name " "$T_TMP/probe-console.log") || t_fail "no result for $name"
    [[ $line == *" blocked"* ]] || t_fail "guest reached what it must not: $line"
done
for name in arp-spoof forged-ip forged-mac-ip; do
    grep -Eq "PROBE raw $name sent [1-9]" "$T_TMP/probe-console.log" || t_fail "probe could not send $name frames"
done
# (the controls above came from the node's own addresses, never a guest's)
if grep -E "from ($T_IP|$P_IP)(:|\$)" "$T_TMP/listen-node.log" "$T_TMP/listen-out.log"; then
    t_fail "a guest reached a host listener"
fi
if grep 'NETTEST udp' "$T_TMP/target-console.log"; then t_fail "the probe's UDP reached the neighbour"; fi

# the probe's own chain dropped its spoofed frames at its tap
ptap=nt$(printf %s "$P_UUID" | sha256sum | cut -c1-12)
ttap=nt$(printf %s "$T_UUID" | sha256sum | cut -c1-12)
chain=$(ip netns exec "$NS" nft list chain bridge nubo_agent "guest_$ptap") || t_fail "no chain for the probe's tap $ptap"
echo "$chain" > "$T_TMP/probe-chain.log"
counter() { sed -n "s/.*counter packets \([0-9]*\) .*$1.*/\1/p" <<<"$chain"; }
for what in "source MAC is not" "ARP for an address" "source IP is not"; do
    n=$(counter "$what")
    [ "${n:-0}" -gt 0 ] || t_fail "no frame hit '$what' in the probe's chain: $chain"
    t_log "probe chain: $n packets dropped ($what)"
done
grep -q "ether saddr != 02:6e:" <<<"$chain" || t_fail "the chain does not pin the probe's MAC"
for tap in "$ptap" "$ttap"; do
    ip -n "$NS" -d link show dev "$tap" | grep -q 'isolated on' || t_fail "bridge port $tap is not isolated"
done
inet=$(ip netns exec "$NS" nft list table inet nubo_agent)
for what in "guests reach no host service" "egress = none"; do
    n=$(sed -n "s/.*counter packets \([0-9]*\) .*$what.*/\1/p" <<<"$inet")
    [ "${n:-0}" -gt 0 ] || t_fail "nothing hit '$what': $inet"
done
# ARP poisoning did not take: the node still has the neighbour's own MAC for its address
neigh=$(ip -n "$NS" neigh show "$T_IP")
tmac=$(python3 -c "import socket; print(':'.join(['02','6e']+['%02x'%b for b in socket.inet_aton('$T_IP')]))")
[[ -z $neigh || $neigh == *"lladdr $tmac"* ]] || t_fail "ARP for $T_IP poisoned on the node: $neigh"

# --- the ingress path: sockets opened in the node's namespace reach both guests
t_node_curl "$NODE" "http://$T_IP:8080/" | grep -q "^target $T_IP" || t_fail "the node lost the target"
t_node_curl "$NODE" "http://$P_IP:8080/" | grep -q "^probe $P_IP" || t_fail "the node does not reach the probe"
t_log "node reaches target $T_IP and probe $P_IP; nothing of the probe's got through"

# --- agent kill -9 and back: the ruleset is reconciled, not duplicated
"$DC" agent-stop "$NODE" --kill
"$DC" agent-start "$NODE"
t_wait_for 60 bash -c "grep -q 'domain found running, re-adopted' '$NUBO_DEVCLUSTER_DIR/nodes/$NODE/agent.log'" \
    || t_fail "the agent did not re-adopt its guests"
t_wait_for 30 bash -c "[ \$(ip netns exec '$NS' nft list table bridge nubo_agent | grep -c 'chain guest_') = 2 ]" \
    || t_fail "after the restart: $(ip netns exec "$NS" nft list table bridge nubo_agent)"
table=$(ip netns exec "$NS" nft list table bridge nubo_agent)
for tap in "$ptap" "$ttap"; do
    [ "$(grep -c "\"$tap\" : jump guest_$tap" <<<"$table")" = 1 ] || t_fail "tap $tap not mapped once: $table"
done
[ "$(ip netns exec "$NS" nft list ruleset | grep -c 'chain ports')" = 1 ] || t_fail "base chains duplicated"
t_node_curl "$NODE" "http://$T_IP:8080/" | grep -q "^target $T_IP" || t_fail "target lost after the agent restart"
t_node_curl "$NODE" "http://$P_IP:8080/" | grep -q "^probe $P_IP" || t_fail "probe lost after the agent restart"

# --- deleting the probe removes its rules, the neighbour's stay
nubo_b instances rm netprobe > /dev/null || t_fail "rm probe failed"
t_wait_for 60 bash -c "! ip netns exec '$NS' nft list table bridge nubo_agent | grep -q 'guest_$ptap'" \
    || t_fail "the probe's rules outlived it"
ip netns exec "$NS" nft list table bridge nubo_agent | grep -q "chain guest_$ttap" || t_fail "the target's rules went too"
t_log "PASS: guests isolated (no neighbour, gateway port, host address or outside network; no spoofing), node reaches both, unprivileged default"
