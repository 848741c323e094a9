#!/bin/bash
# The buildah path of nubo build, offline: a base image made locally from busybox-static, a
# multi-stage Dockerfile with RUN (which nubo hands to buildah --isolation chroot), the result
# exported as the app's cpio, pushed to a real registry and read back.
source "$NUBO_SRC/tests/lib.sh"
NUBO=$NUBO_BUILD/cli/nubo
[ -x "$NUBO" ] || t_fail "nubo not built at $NUBO"
command -v buildah >/dev/null || t_skip "buildah is not installed (deploy/install-deps installs it)"
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] && file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' \
    || t_skip "busybox-static is not installed"
t_need_root
t_start_registry
export HOME=$T_TMP/home XDG_CACHE_HOME=$T_TMP/cache XDG_CONFIG_HOME=$T_TMP/config
export NUBO_REGISTRY=$T_REGISTRY_URL NUBO_API=http://127.0.0.1:1
cd "$T_TMP"

# buildah's storage stays inside this test (vfs: works without overlay support).
cat > storage.conf <<CONF
[storage]
driver = "vfs"
graphroot = "$T_TMP/containers/graph"
runroot = "$T_TMP/containers/run"
CONF
export CONTAINERS_STORAGE_CONF=$T_TMP/storage.conf
t_on_exit "buildah rm --all >/dev/null 2>&1; buildah rmi --all --force >/dev/null 2>&1; rm -rf '$T_TMP/containers' 2>/dev/null || true"

ctr=$(buildah from scratch) || t_skip "buildah cannot create containers here"
mnt=$(buildah mount "$ctr")
mkdir -p "$mnt/bin"
cp "$BUSYBOX" "$mnt/bin/busybox"
for t in sh mkdir echo cat; do ln -s busybox "$mnt/bin/$t"; done
buildah umount "$ctr" >/dev/null
buildah config --cmd '["/bin/sh"]' "$ctr"
buildah commit -q "$ctr" localhost/nubo-busybox:test >/dev/null
buildah rm "$ctr" >/dev/null

python3 - <<'PY'
import os, struct
hdr = b'\x7fELF' + bytes([2, 1, 1]) + bytes(9) + struct.pack('<HH', 2, 62)
open('kernel', 'wb').write(hdr + os.urandom(4096))
PY
mkdir -p rt/usr/bin && printf 'python' > rt/usr/bin/python3
(cd rt && find . | sort | cpio -o -H newc > ../runtime.cpio 2>/dev/null)
"$NUBO" pkg --kernel kernel --initrd runtime.cpio --output official/base:latest --push -q

mkdir -p app
echo data > app/data.txt
cat > app/Dockerfile <<'D'
FROM localhost/nubo-busybox:test AS build
RUN mkdir -p /out && echo built-by-run > /out/result.txt
FROM localhost/nubo-busybox:test
COPY --from=build /out/result.txt /app/result.txt
COPY data.txt /app/data.txt
CMD ["/bin/cat", "/app/result.txt"]
D
printf 'spec: v0.6\nruntime: base:latest\nrootfs: ./Dockerfile\n' > app/Kraftfile
"$NUBO" build app --output acme/multistage:latest -q 2> build.err || t_fail "buildah build failed: $(cat build.err)"
grep -q 'Dockerfile:1: FROM localhost/nubo-busybox:test' build.err || t_fail "no notice naming the line: $(cat build.err)"
"$NUBO" pull acme/multistage:latest --dir pulled -o json > pull.json
python3 - <<'PY' || t_fail "the buildah-built image lacks what its Dockerfile made"
import json
j = json.load(open('pull.json'))
assert j['args'] == ['/bin/cat', '/app/result.txt'], j
assert not any(l.startswith('io.buildah.') for l in j['labels']), j['labels']
ini = open('pulled/initrd', 'rb').read()
assert b'app/result.txt' in ini and b'built-by-run\n' in ini, 'RUN output missing'
assert b'app/data.txt' in ini and b'bin/busybox' in ini, 'COPY/base missing'
PY
[ -z "$(buildah containers -q)" ] || t_fail "nubo left buildah containers behind"
t_log "ok"
