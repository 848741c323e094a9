#!/usr/bin/env bash
# Cold start on the dev cluster (image cached on the node): API create -> running for the hello
# unikernel and for a stock Unikraft 0.17 kernel (tests/fixtures/unikraft/nubohello, ready at its
# first console output), N runs, median and p90, against bare qemu booting the same kernel on
# the same accelerator in the same run; then creates per second with 100 instances at once.
# Hello runs twice: at 16 MiB it takes a warm slot (the cluster's nodes keep SLOTS of shape 16x1
# each), at 24 MiB no slot fits and it takes the plain libvirt path; same for the burst (BURST
# instances, default 100). `virsh create` of the same hello (16 MiB, the agent's domain XML) on the
# host's libvirtd comes from bench_coldstart_agent, run from here in the same run. The burst through
# libvirt is given PLAIN_WAIT_S (default 300) and says how many were running by then; PLAIN_BURST=0
# skips it.
# usage: bench/coldstart.sh [BUILD_DIR] [RUNS]   (root; starts and removes a private cluster)
set -euo pipefail
NUBO_SRC=$(cd "$(dirname "$0")/.." && pwd)
NUBO_BUILD=${1:-$NUBO_SRC/build}
RUNS=${2:-15}
BURST=${BURST:-100}
# per node: half the burst (the scheduler spreads it over the two nodes) and a few spare
SLOTS=${SLOTS:-$(( (BURST + 1) / 2 + 4 > 64 ? 64 : (BURST + 1) / 2 + 4 ))}
export NUBO_SRC NUBO_BUILD
export NUBO_DEVCLUSTER_SLOTS=$SLOTS NUBO_DEVCLUSTER_SLOT_SHAPES=16x1
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/lib_cluster.sh"
t_cluster_up fra:2
# every node's pool full before anything is timed
pool_full() {
    local n
    for n in fra-1 fra-2; do
        [ "$(grep -c 'warm slot .* ready in' "$NUBO_DEVCLUSTER_DIR/nodes/$n/agent.log")" -ge "$SLOTS" ] || return 1
    done
}
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
t_wait_for 1800 pool_full || t_fail "warm slot pools did not fill ($SLOTS per node)"

VIRSH_BENCH=$T_TMP/virsh-bench.txt
"$NUBO_BUILD/bench/bench_coldstart_agent" --runs "$RUNS" --kernel "$HELLO" --append "--wait" --mem 16 \
    > "$VIRSH_BENCH" 2>&1 || echo "bench: bench_coldstart_agent failed: $(tail -2 "$VIRSH_BENCH")" >&2
python3 - "$API" "$USER_TOKEN" "$HELLO" "$ACCEL" "$RUNS" "$UKHELLO" "$BURST" "$NUBO_DEVCLUSTER_DIR" "$SLOTS" "${PLAIN_BURST:-1}" "$ADMIN_TOKEN" "$VIRSH_BENCH" <<'PY'
import json, os, re, ssl, statistics, subprocess, sys, time, urllib.error, urllib.request
base, token, hello, accel, runs, ukhello = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
admin = sys.argv[11]  # the bursts: a user's default quota is 64 live instances, an admin has none
# virsh create of hello, median and p90 in ms, from bench_coldstart_agent's table
virsh = re.search(r"virsh create \(spawn -> READY\)\s+([0-9.]+)\s+([0-9.]+) ms", open(sys.argv[12]).read())
virsh = (float(virsh.group(1)) / 1000, float(virsh.group(2)) / 1000) if virsh else None
burst, dc, slots = int(sys.argv[7]), sys.argv[8], int(sys.argv[9])
plain_burst = sys.argv[10] != "0"
plain_wait = int(os.environ.get("PLAIN_WAIT_S", "300"))  # the burst through libvirt may not finish
tls = ssl.create_default_context(cafile=os.environ.get("NUBO_CA"))  # the dev cluster's CA

def call(method, path, body=None, tok=None, timeout=600):
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + (tok or token),
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=tls) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        sys.exit("bench: %s %s: HTTP %d: %s" % (method, path, e.code, e.read().decode(errors="replace")[:300]))

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

# What the agent gives each kind: our PVH hello on microvm, ready at NUBO_READY; the Multiboot
# Unikraft kernel on pc with RDRAND (TCG), ready at its first console output.
KINDS = [
    ("hello unikernel, warm slot (16 MiB)", "official/hello:latest", 16, ["--wait"],
     ["-M", "microvm", "-kernel", hello, "-append", "-- --wait"], lambda l: l.startswith(b"NUBO_READY"),
     "NUBO_READY"),
    ("hello unikernel, no slot (24 MiB: no slot shape)", "official/hello:latest", 24, ["--wait"],
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
    # a guest ready before libvirt's start call returned is reported running before the agent
    # knows the launch's phases; they follow in its next report
    for _ in range(30):
        ph = i.get("boot_phases") or {}
        if ph.get("vmm_us") or ph.get("slot_us"):
            break
        time.sleep(0.1)
        i = call("GET", "/v1/instances/" + i["uuid"])["data"]["instances"][0]
    call("DELETE", "/v1/instances/" + i["uuid"])
    return dt, i["boot_time_us"] / 1e6, i.get("boot_phases") or {}

def pool_full():
    for n in ("fra-1", "fra-2"):
        log = open("%s/nodes/%s/agent.log" % (dc, n)).read()
        warm = len(re.findall(r"warm slot \S+ \(\S+\) ready in", log)) - \
               len(re.findall(r"started from warm slot", log)) - len(re.findall(r"its qemu ended", log))
        if warm < slots:
            return False
    return True

def wait_pool():
    end = time.monotonic() + 1800
    while not pool_full() and time.monotonic() < end:
        time.sleep(1)

ms = lambda x: "%.1f ms" % (x * 1000)
results = {}
for name, image, mem, args, qargs, ready, what in KINDS:
    qemu, nubo, boot, phases = [], [], [], []
    for _ in range(runs):
        if "warm slot" in name:
            wait_pool()  # time a take, not a start that found the pool still refilling
        qemu.append(bare_qemu(qargs, ready, mem))
        a, b, ph = api_create(image, mem, args)
        nubo.append(a); boot.append(b); phases.append(ph)
        time.sleep(0.3)  # let the deleted guest go before the next start
    print("cold start, %s, accel %s, %d runs (image cached on the node)" % (name, accel, runs))
    print("  bare qemu-system-x86_64 -> %s    median %s  p90 %s" % (what, ms(statistics.median(qemu)), ms(pct(qemu, 90))))
    print("  nubo API create -> running (wall clock)  median %s  p90 %s" % (ms(statistics.median(nubo)), ms(pct(nubo, 90))))
    print("    of which boot_time_us (agent: libvirt start -> %s)  median %s" % (what, ms(statistics.median(boot))))
    print("  ratio nubo / bare qemu (median): %.2f" % (statistics.median(nubo) / statistics.median(qemu)))
    med = lambda k: statistics.median([p.get(k, 0) for p in phases]) / 1e3
    print("    boot_phases medians (ms): image %.1f, domain prep %.1f, vmm (libvirt start) %.1f, "
          "slot take %.1f (RAM copy %.2f), guest %.1f" % (med("image_us"), med("domain_us"),
          med("vmm_us"), med("slot_us"), med("copy_us"), med("guest_us")))
    results[name] = (statistics.median(nubo), pct(nubo, 90), statistics.median(qemu), pct(qemu, 90))

# BURST instances requested at once: one create with replicas BURST-1, then one batch wait;
# at 16 MiB from the warm slots, at 24 MiB through libvirt.
def run_burst(mem, label, wait_s):
    t0 = time.monotonic()
    r = call("POST", "/v1/instances", {"image": "official/hello:latest", "memory_mb": mem,
                                       "args": ["--wait"], "metro": "fra", "replicas": burst - 1,
                                       "autostart": True}, admin)
    t_ack = time.monotonic() - t0
    uuids = [i["uuid"] for i in r["data"]["instances"] if i["status"] == "success"]
    if not uuids:
        sys.exit("bench: the burst's create failed: %s" % json.dumps(r)[:300])
    # the wait answers at wait_s whatever is running by then (the count says how many were)
    w = call("GET", "/v1/instances/wait", [{"uuid": u, "state": "running", "timeout_ms": wait_s * 1000}
                                          for u in uuids], admin, timeout=wait_s + 120)
    t_run = time.monotonic() - t0
    ok = sum(1 for i in w["data"]["instances"] if i.get("state") == "running")
    print("%d instances at once, %s: %d acknowledged in %s (%.0f creates/s); %d running after %.2f s (%.1f instances/s)"
          % (burst, label, len(uuids), ms(t_ack), len(uuids) / t_ack, ok, t_run, ok / t_run))
    for k in range(0, len(uuids), 50):
        call("DELETE", "/v1/instances?uuid=" + ",".join(uuids[k:k + 50]), None, admin)
    return ok / t_run

wait_pool()
with_slots = run_burst(16, "from warm slots (16 MiB)", 600)
without = run_burst(24, "no slot (24 MiB, libvirt)", plain_wait) if plain_burst else 0
if virsh:
    print("virsh create of hello (16 MiB, host libvirtd, same domain XML) -> NUBO_READY  median %s  p90 %s"
          % (ms(virsh[0]), ms(virsh[1])))
s_med, s_p90, q_s, _ = results["hello unikernel, warm slot (16 MiB)"]
p_med, p_p90, q_p, _ = results["hello unikernel, no slot (24 MiB: no slot shape)"]
print("summary, hello, median (p90): bare qemu %s (%s); virsh create %s; nubo without slots %s (%s) = "
      "%.2f x bare qemu%s; nubo with slots %s (%s) = %.2f x bare qemu%s; burst of %d: %.1f/s with slots, "
      "%.1f/s without (%.1f x)"
      % (ms(q_s), ms(results["hello unikernel, warm slot (16 MiB)"][3]),
         "%s (%s)" % (ms(virsh[0]), ms(virsh[1])) if virsh else "n/a",
         ms(p_med), ms(p_p90), p_med / q_p, ", %.2f x virsh" % (p_med / virsh[0]) if virsh else "",
         ms(s_med), ms(s_p90), s_med / q_s, ", %.2f x virsh" % (s_med / virsh[0]) if virsh else "",
         burst, with_slots, without, with_slots / without if without else 0))
PY
