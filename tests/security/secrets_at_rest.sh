# Issue 11, observation 5 replayed on a private dev cluster: the database and its -wal/-shm,
# the token files and the registry's config (which holds the notification secret) are 0600 in
# 0700 directories, the controller's ini names the secret's file instead of holding it, the
# agent's state dir is 0711 (qemu reaches the env file, nobody lists it), a local user
# (nobody) reads none of it; and the env of a python-runtime instance reaches its app through
# fw_cfg while `ps` on the host shows none of it. Also measures qemu's RSS against the memory
# the node accounts for small instances (printed, not asserted: it depends on the host).
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/lib_cluster.sh"
t_cluster_up fra:1
t_cluster_runtimes
D=$NUBO_DEVCLUSTER_DIR
N=$D/nodes/fra-1

mode_is() { # want path...
    local want=$1 p m; shift
    for p in "$@"; do
        [ -e "$p" ] || t_fail "$p does not exist"
        m=$(stat -c %a "$p")
        [ "$m" = "$want" ] || t_fail "$p is mode $m, not $want"
    done
}
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# Write something so the WAL and its index exist, then check the controller's files.
t_api POST /v1/instances '{"autostart":true,"image":"official/hello:latest","name":"mode-probe","memory_mb":16,"args":["--wait"]}' > /dev/null
mode_is 700 "$D/controller" "$D/registry"
mode_is 600 "$D/controller/nubo.db" "$D/controller/nubo.db-wal" "$D/controller/nubo.db-shm" \
    "$D/controller/admin-token" "$D/controller/join-token" "$D/controller/nubo.db.ingress-token" \
    "$D/registry/notify-token" "$D/registry/tcp.yml" "$D/registry/unix.yml"
secret=$(cat "$D/registry/notify-token")
grep -qF "$secret" "$D/controller/nubo-controller.ini" && t_fail "the controller ini holds the notification secret"
grep -q "^notification_secret_file = $D/registry/notify-token$" "$D/controller/nubo-controller.ini" \
    || t_fail "the controller ini does not name the secret's file"
# The secret still works: a push is indexed from the registry's notification.
grep -q 'official/python@.*indexed' "$D/controller/controller.log" || t_fail "no image indexed from a notification"
mode_is 711 "$N/agent/state" "$N/agent/state/instances"
[ -e "$N/agent/state/state.json" ] && mode_is 600 "$N/agent/state/state.json"
as_nobody cat "$D/controller/nubo.db" > /dev/null 2>&1 && t_fail "nobody can read the database"
as_nobody ls "$N/agent/state/instances" > /dev/null 2>&1 && t_fail "nobody can list the agent's instances"
t_log "file modes ok"

# A python instance with a secret in its env: its app sees it, no host process shows it.
SECRET="s3cr3t-$$-$RANDOM"
args='["/usr/bin/python3","-c","import os,time; print(\"SEEN\", os.environ[\"API_SECRET\"], os.environ[\"SPACED\"], flush=True); time.sleep(600)"]'
t_api POST /v1/instances "{\"autostart\":true,\"image\":\"official/python:latest\",\"name\":\"sec-py\",\"memory_mb\":256,\"args\":$args,\"env\":{\"API_SECRET\":\"$SECRET\",\"SPACED\":\"a b\\\"c\"}}" > "$T_TMP/create.json"
"$NUBO" instances wait sec-py --until running --timeout 120s > /dev/null || t_fail "sec-py did not start: $(cat "$T_TMP/create.json")"
seen() { "$NUBO" instances logs sec-py | tr -d '\r' | grep -qx "SEEN $SECRET a b\"c"; }
t_wait_for 120 seen || t_fail "the app never saw its env: $("$NUBO" instances logs sec-py | tail -5)"
uuid=$("$NUBO" instances get sec-py -o json | t_json 'd[0]["uuid"]')
qpid=$(pgrep -f "guest=$uuid" | head -1)
[ -n "$qpid" ] || t_fail "no qemu process for $uuid"
qargs=$(tr '\0' ' ' < "/proc/$qpid/cmdline")
grep -q 'opt/org.nubo/env' <<<"$qargs" || t_fail "qemu got no fw_cfg env file: $qargs"
grep -q 'env.vars' <<<"$qargs" && t_fail "qemu's command line carries env.vars: $qargs"
ps_shows() { "$@" ps -eo args | grep -F -- "$SECRET" | grep -qv -- 'grep -F'; }
ps_shows env && t_fail "ps shows the secret: $(ps -eo pid,args | grep -F -- "$SECRET")"
ps_shows as_nobody && t_fail "ps as nobody shows the secret"
# The env file lived only until qemu read it.
ls "$N/agent/state/instances/$uuid/env" 2>/dev/null && t_fail "the env file is still on disk"
t_log "env ok: the app saw it, ps does not"

# qemu's RSS against what the node accounts (the instance's memory_mb).
rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$1/status"; }
"$NUBO" instances wait mode-probe --until running --timeout 60s > /dev/null || t_fail "hello did not start"
hpid=$(pgrep -f "guest=$("$NUBO" instances get mode-probe -o json | t_json 'd[0]["uuid"]')" | head -1)
[ -n "$hpid" ] || t_fail "no qemu for mode-probe"
sleep 2
t_log "RSS: official/hello, memory_mb 16: qemu RSS $(rss_kib "$hpid") KiB"
t_log "RSS: official/python, memory_mb 256: qemu RSS $(rss_kib "$qpid") KiB"
t_log "PASS: secrets at rest"
