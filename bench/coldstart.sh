#!/usr/bin/env bash
# Cold start on the dev cluster (image cached on the node): API create -> running for the hello
# unikernel, N runs, median and p90, against bare qemu booting the same kernel on the same
# accelerator in the same run; then creates per second with 100 instances requested at once.
# usage: bench/coldstart.sh [BUILD_DIR] [RUNS]   (root; starts and removes a private cluster)
set -euo pipefail
NUBO_SRC=$(cd "$(dirname "$0")/.." && pwd)
NUBO_BUILD=${1:-$NUBO_SRC/build}
RUNS=${2:-15}
export NUBO_SRC NUBO_BUILD
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/lib_cluster.sh"
t_cluster_up fra:2
t_cluster_runtimes
HELLO=$NUBO_BUILD/guest/hello/hello
[ -f "$HELLO" ] || t_fail "no $HELLO"
ACCEL=$(curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" "$API/v1/nodes" | t_json 'd["data"]["nodes"][0]["accel"]')

# Warm the node caches: the benchmark is about starting, not pulling.
for n in 1 2; do
    t_api POST /v1/instances '{"image":"official/hello:latest","memory_mb":16,"args":["--wait"],"metro":"fra","wait_timeout_ms":60000}' > /dev/null
done
t_api GET /v1/instances | t_json '",".join(i["uuid"] for i in d["data"]["instances"])' > "$T_TMP/warm"
t_api DELETE "/v1/instances?uuid=$(cat "$T_TMP/warm")" > /dev/null

python3 - "$API" "$USER_TOKEN" "$HELLO" "$ACCEL" "$RUNS" <<'PY'
import json, statistics, subprocess, sys, time, urllib.error, urllib.request
base, token, hello, accel, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])

def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        sys.exit("bench: %s %s: HTTP %d: %s" % (method, path, e.code, e.read().decode(errors="replace")[:300]))

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

def bare_qemu():
    t0 = time.monotonic()
    q = subprocess.Popen(["qemu-system-x86_64", "-M", "microvm", "-accel", accel, "-nodefaults",
                          "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
                          "-m", "16", "-kernel", hello, "-append", "-- --wait"],
                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    for line in q.stdout:
        if line.startswith(b"NUBO_READY"):
            dt = time.monotonic() - t0
            break
    else:
        dt = None
    q.kill(); q.wait()
    return dt

def api_create():
    t0 = time.monotonic()
    r = call("POST", "/v1/instances", {"image": "official/hello:latest", "memory_mb": 16,
                                       "args": ["--wait"], "metro": "fra", "wait_timeout_ms": 60000})
    dt = time.monotonic() - t0
    i = r["data"]["instances"][0]
    assert i["state"] == "running", i
    call("DELETE", "/v1/instances/" + i["uuid"])
    return dt, i["boot_time_us"] / 1e6

qemu, nubo, boot = [], [], []
for _ in range(runs):
    qemu.append(bare_qemu())
    a, b = api_create()
    nubo.append(a); boot.append(b)
    time.sleep(0.3)  # let the deleted guest go before the next start

ms = lambda x: "%.1f ms" % (x * 1000)
print("cold start, hello unikernel, accel %s, %d runs (image cached on the node)" % (accel, runs))
print("  bare qemu-system-x86_64 -> NUBO_READY    median %s  p90 %s" % (ms(statistics.median(qemu)), ms(pct(qemu, 90))))
print("  nubo API create -> running (wall clock)  median %s  p90 %s" % (ms(statistics.median(nubo)), ms(pct(nubo, 90))))
print("    of which boot_time_us (agent: libvirt start -> NUBO_READY)  median %s" % ms(statistics.median(boot)))
print("  ratio nubo / bare qemu (median): %.2f" % (statistics.median(nubo) / statistics.median(qemu)))

# 100 instances requested at once: one create with replicas 99, then one batch wait.
t0 = time.monotonic()
r = call("POST", "/v1/instances", {"image": "official/hello:latest", "memory_mb": 16,
                                   "args": ["--wait"], "metro": "fra", "replicas": 99})
t_ack = time.monotonic() - t0
uuids = [i["uuid"] for i in r["data"]["instances"] if i["status"] == "success"]
w = call("GET", "/v1/instances/wait", [{"uuid": u, "state": "running", "timeout_ms": 300000} for u in uuids])
t_run = time.monotonic() - t0
ok = sum(1 for i in w["data"]["instances"] if i.get("state") == "running")
print("100 instances at once: %d acknowledged in %s (%.0f creates/s); %d running after %.2f s (%.1f instances/s)"
      % (len(uuids), ms(t_ack), len(uuids) / t_ack, ok, t_run, ok / t_run))
for k in range(0, len(uuids), 50):
    call("DELETE", "/v1/instances?uuid=" + ",".join(uuids[k:k + 50]))
PY
