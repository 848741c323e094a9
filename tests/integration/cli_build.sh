#!/bin/bash
# nubo build against a real docker-registry, no controller needed: a runtime packed from a
# kernel fixture, an example app (Kraftfile + Dockerfile subset), the built image read back
# byte for byte (kernel identical, initrd = runtime initrd ++ app cpio), -o json parsed back,
# reproducible digests, and the bad-input errors (one line, exit 1 or 2).
source "$NUBO_SRC/tests/lib.sh"
NUBO=$NUBO_BUILD/cli/nubo
[ -x "$NUBO" ] || t_fail "nubo not built at $NUBO"
t_start_registry
export HOME=$T_TMP/home XDG_CACHE_HOME=$T_TMP/cache XDG_CONFIG_HOME=$T_TMP/config
export NUBO_REGISTRY=$T_REGISTRY_URL NUBO_API=http://127.0.0.1:1
cd "$T_TMP"

# The runtime: a small ELF "kernel" fixture and a base cpio, pushed as official/python:3.11.
python3 - <<'PY'
import os, struct
hdr = b'\x7fELF' + bytes([2, 1, 1]) + bytes(9) + struct.pack('<HH', 2, 62)
open('kernel', 'wb').write(hdr + os.urandom(64 * 1024))
PY
mkdir -p rt/usr/bin && printf 'python' > rt/usr/bin/python3
(cd rt && find . | sort | cpio -o -H newc > ../runtime.cpio 2>/dev/null)
"$NUBO" pkg --kernel kernel --initrd runtime.cpio --arg /usr/bin/python3 \
    --label org.nubo.kernel.args="console=ttyS0 quiet" --output official/python:3.11 --push -q

# The example app, as in the seed (python:3.12 resolves to the 3.11 the cluster has).
mkdir -p app/lib
printf 'print("hello")\n' > app/server.py
printf 'x = 1\n' > app/lib/util.py
cat > app/Kraftfile <<'K'
spec: v0.6
runtime: python:3.12
rootfs: ./Dockerfile
cmd: ["/usr/bin/python3", "/src/server.py"]
labels:
  cloud.unikraft.v1.instances/scale_to_zero.policy: "on"
K
cat > app/Dockerfile <<'D'
FROM scratch
ARG DEST=/src
# Python HTTP server
COPY ./server.py $DEST/server.py
COPY lib/ /src/lib/
ENV PYTHONUNBUFFERED=1
D
"$NUBO" build app --output acme/http-python:latest -o json > build.json 2> build.err
grep -q "using official/python:3.11" build.err || t_fail "no notice about the runtime: $(cat build.err)"
digest=$(python3 -c 'import json; j=json.load(open("build.json")); assert j["pushed"]; print(j["digest"])')
# The kernel layer is the runtime's: mounted across repositories, not uploaded again.
t_wait_for 10 grep -q 'POST /v2/acme/http-python/blobs/uploads/?mount=sha256:[0-9a-f]*&from=official/python HTTP/1.1" 201' \
    "$T_TMP/registry.log" || t_fail "the kernel layer was not mounted from official/python"
t_log "built acme/http-python:latest = $digest"

"$NUBO" pull acme/http-python:latest --dir pulled -o json > pull.json
cmp kernel pulled/kernel || t_fail "the app's kernel is not the runtime's kernel"
python3 - <<'PY' || t_fail "the pulled image is not what was built"
import json
j = json.load(open('pull.json'))
b = json.load(open('build.json'))
assert j['digest'] == b['digest'], (j, b)
assert j['args'] == ['/usr/bin/python3', '/src/server.py'], j['args']
assert 'org.nubo.kernel.args=console=ttyS0 quiet' in j['labels'], j['labels']
assert 'cloud.unikraft.v1.instances/scale_to_zero.policy=on' in j['labels'], j['labels']
rt = open('runtime.cpio', 'rb').read()
ini = open('pulled/initrd', 'rb').read()
assert ini.startswith(rt), 'initrd does not start with the runtime initrd'
# Walk the appended newc archive: the app's files, owned by root, mtime 0.
off = len(rt); off += (-off) % 4
names = {}
while True:
    h = ini[off:off + 110]
    assert h[:6] == b'070701', (off, h[:6])
    f = [int(h[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
    mode, uid, gid, mtime, size, nsize = f[1], f[2], f[3], f[5], f[6], f[11]
    name = ini[off + 110:off + 110 + nsize - 1].decode()
    off += 110 + nsize; off += (-off) % 4
    data = ini[off:off + size]; off += size; off += (-off) % 4
    if name == 'TRAILER!!!':
        break
    assert uid == 0 and gid == 0 and mtime == 0, (name, uid, gid, mtime)
    names[name] = data
assert names.get('src/server.py') == b'print("hello")\n', names.keys()
assert names.get('src/lib/util.py') == b'x = 1\n', names.keys()
assert list(names) == sorted(names), list(names)
PY

# Reproducible: touching the sources and building again gives the same digest.
touch app/server.py app/lib/util.py
d2=$("$NUBO" build app --output acme/http-python:latest --no-push -q -o json | \
     python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
[ "$d2" = "$digest" ] || t_fail "rebuild changed the digest: $digest -> $d2"

# The repository's examples build as they are (hello: a kernel-only runtime, no rootfs).
"$NUBO" pkg --kernel kernel --output official/hello:latest --push -q
"$NUBO" build "$NUBO_SRC/examples/http-python" --output acme/example-python:latest -q \
    || t_fail "examples/http-python does not build"
"$NUBO" build "$NUBO_SRC/examples/hello" --output acme/example-hello:latest -q \
    || t_fail "examples/hello does not build"
"$NUBO" pull acme/example-hello:latest --dir hello-pulled -o json > hello.json
python3 -c 'import json; j=json.load(open("hello.json")); assert j["initrd"] == "" and j["args"] == ["--http", "8080"], j' \
    || t_fail "examples/hello image is not kernel-only with its args: $(cat hello.json)"
cmp kernel hello-pulled/kernel || t_fail "examples/hello kernel differs"

# A rootfs directory and a cpio file work too.
mkdir -p app2/root/etc && echo hi > app2/root/etc/motd
printf 'spec: v0.7\nname: dirapp\nruntime: official/python:3.11\nrootfs: ./root\n' > app2/Kraftfile
"$NUBO" build app2 -q --no-push --oci-dir app2.oci || t_fail "directory rootfs failed"
[ -f app2.oci/index.json ] || t_fail "no layout written for app2"

# Bad input: one line on stderr each, exit 1 for runtime failures, 2 for usage.
check() { # check RC PATTERN CMD...
    local want=$1 pat=$2; shift 2
    set +e; local msg; msg=$("$@" 2>&1 >/dev/null); local rc=$?; set -e
    [ "$rc" = "$want" ] || t_fail "$* -> rc $rc, want $want ($msg)"
    [ "$(printf '%s\n' "$msg" | wc -l)" = 1 ] || t_fail "$* -> not one line: $msg"
    [[ $msg == *"$pat"* ]] || t_fail "$* -> '$msg' lacks '$pat'"
}
mkdir -p empty
check 1 "no Kraftfile in empty" "$NUBO" build empty
mkdir -p badrt && printf 'spec: v0.6\nruntime: nosuch:1.0\n' > badrt/Kraftfile
check 1 "runtime 'nosuch:1.0' does not exist in this cluster (registry $T_REGISTRY_URL has: hello, python)" \
    "$NUBO" build badrt
mkdir -p badver && printf 'spec: v0.6\nruntime: python:2.7\n' > badver/Kraftfile
check 1 "runtime 'python:2.7' is not in the registry $T_REGISTRY_URL (looked for official/python:2.7)" \
    "$NUBO" build badver
mkdir -p runapp && cp app/server.py runapp/ && printf 'spec: v0.6\nruntime: python:3.11\nrootfs: ./Dockerfile\n' > runapp/Kraftfile
printf 'FROM scratch\nCOPY server.py /s.py\nRUN pip install flask\n' > runapp/Dockerfile
mkdir -p nobuildah && for t in rm cp cpio; do ln -sf "$(command -v $t)" nobuildah/$t; done
check 1 "Dockerfile:3: RUN needs buildah, which is not installed: apt-get install buildah" \
    env PATH="$T_TMP/nobuildah" "$NUBO" build runapp
mkdir -p missing && printf 'spec: v0.6\nruntime: python:3.11\nrootfs: ./Dockerfile\n' > missing/Kraftfile
printf 'FROM scratch\nCOPY ./nothere.py /src/\n' > missing/Dockerfile
check 1 "Dockerfile:2: COPY ./nothere.py: no such file in the build context" "$NUBO" build missing
printf 'FROM scratch\nCOPY ../app/server.py /src/\n' > missing/Dockerfile
check 1 "outside the build context" "$NUBO" build missing
check 2 "--memory: bad size '12x'" "$NUBO" run -m 12x --image acme/x:latest
check 2 "bad port spec '443:8080/http'" "$NUBO" run -p 443:8080/http --image acme/x:latest
check 2 "--image REF is required" "$NUBO" run -m 512
check 1 "cannot reach the nubo API at http://127.0.0.1:1" "$NUBO" run --image acme/x:latest
check 2 "unknown command" "$NUBO" frobnicate
check 2 "flag '--bogus' is unknown" "$NUBO" run --bogus --image acme/x:latest
check 2 "flag '--image' is unknown or lacks its value" "$NUBO" run --image
t_log "ok"
