#!/bin/bash
# The registry client and OCI code against a real docker-registry: nubo pkg --push, nubo pull
# byte for byte, HEAD-skipped re-push, and the failures that must be caught: a corrupted blob
# (digest mismatch), a truncated body, a path-traversal layer, a registry that is down.
source "$NUBO_SRC/tests/lib.sh"
NUBO=$NUBO_BUILD/cli/nubo
[ -x "$NUBO" ] || t_fail "nubo not built at $NUBO"
t_start_registry
export HOME=$T_TMP/home XDG_CACHE_HOME=$T_TMP/cache XDG_CONFIG_HOME=$T_TMP/config
export NUBO_REGISTRY=$T_REGISTRY_URL
cd "$T_TMP"

# A 9 MB "kernel" (ELF x86_64 header + random bytes: more than one 8 MiB upload chunk) and a
# small cpio initrd.
python3 - <<'PY'
import os, struct
hdr = b'\x7fELF' + bytes([2, 1, 1]) + bytes(9) + struct.pack('<HH', 2, 62)
open('kernel', 'wb').write(hdr + os.urandom(9 * 1024 * 1024 - len(hdr)))
PY
mkdir -p rootfs/etc && echo hello > rootfs/etc/motd
(cd rootfs && find . | cpio -o -H newc > ../initrd.cpio 2>/dev/null)

out=$("$NUBO" pkg --kernel kernel --initrd initrd.cpio --arg /bin/app --arg --flag \
      --env A=1 --label org.nubo.kernel.args="console=ttyS0" --output acme/app:v1 --push -o json)
digest=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
[[ $digest == sha256:* ]] || t_fail "pkg -o json gave no digest: $out"
t_log "pushed acme/app:v1 = $digest"

# The tag resolves to exactly that digest, and the body hashes to it.
curl -fsS -H 'Accept: application/vnd.oci.image.index.v1+json' \
    "$T_REGISTRY_URL/v2/acme/app/manifests/v1" -o index.json
[ "sha256:$(sha256sum < index.json | cut -d' ' -f1)" = "$digest" ] || t_fail "index digest mismatch"
grep -q '"sh.kraftkit.version"' index.json || t_fail "index lacks sh.kraftkit.version"
grep -q '"architecture":"x86_64"' index.json || t_fail "index lacks the x86_64 platform"

# Read back byte for byte.
"$NUBO" pull acme/app:v1 --dir pulled -o json > pull.json
cmp kernel pulled/kernel || t_fail "kernel differs after the round trip"
cmp initrd.cpio pulled/initrd || t_fail "initrd differs after the round trip"
python3 - <<'PY' || t_fail "pull -o json does not describe the image"
import json
j = json.load(open('pull.json'))
assert j['args'] == ['/bin/app', '--flag'], j
assert 'org.nubo.kernel.args=console=ttyS0' in j['labels'], j
assert j['size_in_bytes'] > 9 * 1024 * 1024, j
PY

# Re-push: every blob is HEAD-skipped (no new upload session on the registry).
# (The registry writes its access log asynchronously: wait for the 3 uploads of the first push
# — kernel layer, initrd layer, config — to show before counting.)
uploads() { grep -c 'POST /v2/acme/app/blobs/uploads' "$T_TMP/registry.log" || true; }
t_wait_for 10 test "$(uploads)" -ge 3 || t_fail "the registry log shows $(uploads) uploads, want 3"
uploads_before=$(uploads)
"$NUBO" push acme/app:v1 -q
curl -fsS "$T_REGISTRY_URL/v2/" > /dev/null   # a later request: earlier log lines are out
sleep 0.5
uploads_after=$(uploads)
[ "$uploads_before" = 3 ] && [ "$uploads_before" = "$uploads_after" ] \
    || t_fail "re-push uploaded blobs again ($uploads_before -> $uploads_after)"

# Same inputs, same digests (reproducible packing).
out2=$("$NUBO" pkg --kernel kernel --initrd initrd.cpio --arg /bin/app --arg --flag --env A=1 \
       --label org.nubo.kernel.args="console=ttyS0" --output acme/app:v1 --oci-dir again -o json)
echo "$out2" | grep -q "$digest" || t_fail "re-packing gave a different digest: $out2"

# Bad inputs: not a kernel, not a cpio -> one line, exit 1.
echo '#!/bin/sh' > script
set +e
msg=$("$NUBO" pkg --kernel script --output acme/bad:v1 2>&1); rc=$?
set -e
[ $rc = 1 ] && [ "$(echo "$msg" | wc -l)" = 1 ] && [[ $msg == *"neither an ELF nor a bzImage"* ]] \
    || t_fail "bad kernel: rc=$rc msg=$msg"

# A corrupted blob in the registry's storage is caught by the streaming sha256.
kdigest=$(python3 -c 'import json; print(json.load(open("pull.json"))["kernel"])')
data=$(find "$T_TMP/registry" -path "*${kdigest#sha256:}*/data" | head -1)
[ -f "$data" ] || t_fail "kernel blob not found in the registry storage"
cp "$data" blob.orig
printf 'X' | dd of="$data" bs=1 seek=4096 conv=notrunc 2>/dev/null
set +e
msg=$("$NUBO" pull acme/app:v1 --dir pulled2 2>&1); rc=$?
set -e
[ $rc = 1 ] && [[ $msg == *"failed verification"* ]] && [[ $msg == *"$kdigest"* ]] \
    || t_fail "corrupted blob not detected: rc=$rc msg=$msg"
cp blob.orig "$data"

# A server that promises more bytes than it sends (truncated body), and one that serves a
# layer escaping with "..": a tiny HTTP server in front of the real registry.
curl -fsS "$T_REGISTRY_URL/v2/acme/app/blobs/$kdigest" -o kernel.tar
port=$(t_free_port)
cat > fake.py <<PY
import hashlib, http.server, io, json, sys, tarfile, urllib.request
REG = "$T_REGISTRY_URL"
KD = "$kdigest"
evil = io.BytesIO()
with tarfile.open(fileobj=evil, mode='w', format=tarfile.USTAR_FORMAT) as t:
    ti = tarfile.TarInfo('../../etc/evil'); data = b'owned'; ti.size = len(data)
    t.addfile(ti, io.BytesIO(data))
evil = evil.getvalue()
ed = 'sha256:' + hashlib.sha256(evil).hexdigest()
idx = urllib.request.urlopen(urllib.request.Request(REG + '/v2/acme/app/manifests/v1',
      headers={'Accept': 'application/vnd.oci.image.index.v1+json'})).read()
md = json.loads(idx)['manifests'][0]['digest']
man = json.loads(urllib.request.urlopen(urllib.request.Request(REG + '/v2/acme/app/manifests/' + md,
      headers={'Accept': 'application/vnd.oci.image.manifest.v1+json'})).read())
man['layers'][0]['digest'] = ed; man['layers'][0]['size'] = len(evil)
evil_man = json.dumps(man, separators=(',', ':'), sort_keys=True).encode()
flaky = {'n': 0}
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        p = self.path
        if p.startswith('/v2/flaky/app/'):
            # Two 503s, then the real answer: the client's retries must carry it through.
            flaky['n'] += 1
            if flaky['n'] % 3 != 0:
                self.send_response(503); self.send_header('Content-Length', '0'); self.end_headers()
                return
            p = p.replace('/v2/flaky/app/', '/v2/acme/app/')
            req = urllib.request.Request(REG + p, headers={'Accept': self.headers.get('Accept', '*/*')})
            body = urllib.request.urlopen(req).read()
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            if '/manifests/' in p:
                self.send_header('Content-Type', json.loads(body).get('mediaType', 'application/json'))
            self.end_headers(); self.wfile.write(body); return
        if p == '/v2/evil/app/manifests/v1':
            self.send_response(200)
            self.send_header('Content-Type', 'application/vnd.oci.image.manifest.v1+json')
            self.send_header('Content-Length', str(len(evil_man))); self.end_headers()
            self.wfile.write(evil_man); return
        if p == '/v2/evil/app/blobs/' + ed:
            self.send_response(200); self.send_header('Content-Length', str(len(evil)))
            self.end_headers(); self.wfile.write(evil); return
        if p.startswith('/v2/evil/app/'):
            p = p.replace('/v2/evil/app/', '/v2/acme/app/')
        req = urllib.request.Request(REG + p, headers={'Accept': self.headers.get('Accept', '*/*')})
        body = urllib.request.urlopen(req).read()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        if '/manifests/' in p:
            self.send_header('Content-Type', json.loads(body).get('mediaType', 'application/json'))
        self.end_headers()
        if p.endswith(KD) and self.path.startswith('/v2/acme/'):
            self.wfile.write(body[:len(body) // 2])   # truncated
        else:
            self.wfile.write(body)
http.server.HTTPServer(('127.0.0.1', $port), H).serve_forever()
PY
python3 fake.py > "$T_TMP/fake.log" 2>&1 &
t_track_pid $!
t_wait_for 10 curl -fsS "http://127.0.0.1:$port/v2/acme/app/manifests/v1" -H 'Accept: application/vnd.oci.image.index.v1+json' \
    || t_fail "fake registry did not start"
set +e
msg=$("$NUBO" pull acme/app:v1 --dir pulled3 --registry "http://127.0.0.1:$port" 2>&1); rc=$?
set -e
[ $rc = 1 ] && [[ $msg == *"truncated"* ]] || t_fail "truncated body not detected: rc=$rc msg=$msg"
"$NUBO" pull flaky/app:v1 --dir pulled-flaky -q --registry "http://127.0.0.1:$port" \
    || t_fail "retries on 5xx did not carry the pull through"
cmp kernel pulled-flaky/kernel || t_fail "kernel differs after retried transfers"
set +e
msg=$("$NUBO" pull evil/app:v1 --dir pulled4 --registry "http://127.0.0.1:$port" 2>&1); rc=$?
set -e
[ $rc = 1 ] && [[ $msg == *"refusing entry"* ]] || t_fail "path traversal not refused: rc=$rc msg=$msg"
[ ! -e "$T_TMP/etc/evil" ] && [ ! -e pulled4/kernel ] || t_fail "the evil layer wrote a file"

# The same storage served over a unix socket (how agents in namespaces reach the registry):
# the profile's registry_socket carries the HTTP, the URL is only the Host header.
cat > "$T_TMP/registry-unix.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $T_TMP/registry
http:
  net: unix
  addr: $T_TMP/registry.sock
YML
docker-registry serve "$T_TMP/registry-unix.yml" > "$T_TMP/registry-unix.log" 2>&1 &
t_track_pid $!
t_wait_for 20 test -S "$T_TMP/registry.sock" || t_fail "unix-socket registry did not start"
mkdir -p "$T_TMP/ucfg/nubo"
printf '[default]\nregistry = http://registry.invalid\nregistry_socket = %s\n' "$T_TMP/registry.sock" \
    > "$T_TMP/ucfg/nubo/config"
t_wait_for 20 env -u NUBO_REGISTRY XDG_CONFIG_HOME="$T_TMP/ucfg" "$NUBO" pull acme/app:v1 -q \
    || t_fail "pull over the unix socket failed"
env -u NUBO_REGISTRY XDG_CONFIG_HOME="$T_TMP/ucfg" "$NUBO" pull acme/app:v1 --dir pulled-unix -q
cmp kernel pulled-unix/kernel || t_fail "kernel differs over the unix socket"

# Registry down: one clear line, exit 1.
kill "$T_REGISTRY_PID"; wait "$T_REGISTRY_PID" 2>/dev/null || true
set +e
msg=$("$NUBO" pull acme/app:v1 2>&1); rc=$?
set -e
[ $rc = 1 ] && [ "$(echo "$msg" | wc -l)" = 1 ] && [[ $msg == *"cannot reach registry $T_REGISTRY_URL"* ]] \
    || t_fail "registry down: rc=$rc msg=$msg"
t_log "ok"
