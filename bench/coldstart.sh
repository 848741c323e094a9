#!/usr/bin/env bash
# Cold start on the dev cluster (image cached on the node): API create -> running for the hello
# unikernel and for a stock Unikraft 0.17 kernel (tests/fixtures/unikraft/nubohello, ready at its
# first console output), N runs, median and p90, against bare qemu booting the same kernel on
# the same accelerator in the same run; then creates per second with 100 instances at once.
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
UKHELLO=$NUBO_SRC/tests/fixtures/unikraft/nubohello_qemu-x86_64
"$NUBO" pkg --kernel "$UKHELLO" --output demo/ukhello:latest --push --registry "http://$NUBO_DEVCLUSTER_REGISTRY" -q > /dev/null

# Warm the node caches: the benchmark is about starting, not pulling.
for n in 1 2; do
    t_api POST /v1/instances '{"autostart":true,"image":"official/hello:latest","memory_mb":16,"args":["--wait"],"metro":"fra","wait_timeout_ms":60000}' > /dev/null
    t_api POST /v1/instances '{"autostart":true,"image":"demo/ukhello:latest","memory_mb":64,"args":["sleep"],"metro":"fra","wait_timeout_ms":60000}' > /dev/null
done
t_api GET /v1/instances | t_json '",".join(i["uuid"] for i in d["data"]["instances"])' > "$T_TMP/warm"
t_api DELETE "/v1/instances?uuid=$(cat "$T_TMP/warm")" > /dev/null

python3 - "$API" "$USER_TOKEN" "$HELLO" "$ACCEL" "$RUNS" "$UKHELLO" <<'PY'
import json, statistics, subprocess, sys, time, urllib.error, urllib.request
base, token, hello, accel, runs, ukhello = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]

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

# What the agent gives each kind: our PVH hello on microvm, ready at NUBO_READY; the Multiboot
# Unikraft kernel on pc with RDRAND (TCG), ready at its first console output.
KINDS = [
    ("hello unikernel", "official/hello:latest", 16, ["--wait"],
     ["-M", "microvm", "-kernel", hello, "-append", "-- --wait"], lambda l: l.startswith(b"NUBO_READY"),
     "NUBO_READY"),
    ("stock Unikraft 0.17 (nubohello)", "demo/ukhello:latest", 64, ["sleep"],
     ["-M", "pc", "-kernel", ukhello, "-append", "-- sleep"] + ([] if accel == "kvm" else ["-cpu", "qemu64,+rdrand"]),
     lambda l: True, "first console output"),
]

def bare_qemu(qargs, ready, mem):
    t0 = time.monotonic()
    q = subprocess.Popen(["qemu-system-x86_64", "-accel", accel, "-nodefaults", "-no-user-config",
                          "-display", "none", "-serial", "stdio", "-no-reboot", "-m", str(mem)] + qargs,
                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    for line in q.stdout:
        if ready(line):
            dt = time.monotonic() - t0
            break
    else:
        dt = None
    q.kill(); q.wait()
    return dt

def api_create(image, mem, args):
    t0 = time.monotonic()
    r = call("POST", "/v1/instances", {"image": image, "memory_mb": mem, "autostart": True,
                                       "args": args, "metro": "fra", "wait_timeout_ms": 60000})
    dt = time.monotonic() - t0
    i = r["data"]["instances"][0]
    assert i["state"] == "running", i
    call("DELETE", "/v1/instances/" + i["uuid"])
    return dt, i["boot_time_us"] / 1e6

ms = lambda x: "%.1f ms" % (x * 1000)
for name, image, mem, args, qargs, ready, what in KINDS:
    qemu, nubo, boot = [], [], []
    for _ in range(runs):
        qemu.append(bare_qemu(qargs, ready, mem))
        a, b = api_create(image, mem, args)
        nubo.append(a); boot.append(b)
        time.sleep(0.3)  # let the deleted guest go before the next start
    print("cold start, %s, accel %s, %d runs (image cached on the node)" % (name, accel, runs))
    print("  bare qemu-system-x86_64 -> %s    median %s  p90 %s" % (what, ms(statistics.median(qemu)), ms(pct(qemu, 90))))
    print("  nubo API create -> running (wall clock)  median %s  p90 %s" % (ms(statistics.median(nubo)), ms(pct(nubo, 90))))
    print("    of which boot_time_us (agent: libvirt start -> %s)  median %s" % (what, ms(statistics.median(boot))))
    print("  ratio nubo / bare qemu (median): %.2f" % (statistics.median(nubo) / statistics.median(qemu)))

# 100 instances requested at once: one create with replicas 99, then one batch wait.
t0 = time.monotonic()
r = call("POST", "/v1/instances", {"image": "official/hello:latest", "memory_mb": 16,
                                   "args": ["--wait"], "metro": "fra", "replicas": 99,
                                   "autostart": True})
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
