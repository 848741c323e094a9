#!/usr/bin/env bash
# Agent image pulls against a real docker-registry, each with its expected outcome: a good image
# boots (real libvirtd, TCG); a corrupt blob (digest mismatch), a truncated blob, an unknown
# digest and a path-traversal layer each fail only their instance with a clear message; with
# the registry down an uncached image fails the same way while the agent keeps serving; two
# instances of one image share one pull; a cached image needs no registry.
source "$NUBO_SRC/tests/lib.sh"
source "$NUBO_SRC/tests/tools/agent_lib.sh"
t_need_root
ag_need_bins
t_need_libvirt
t_start_registry

good=$(ag_image test/good v1) || t_fail "push good image"
corrupt=$(ag_image test/corrupt v1 corrupt) || t_fail "push"
trunc=$(ag_image test/trunc v1 truncated-blob) || t_fail "push"
unknown="test/good@sha256:$(printf 'x%.0s' {1..64} | sha256sum | cut -c1-64)"
# a layer whose tar tries to write outside the extraction directory
python3 - "$T_TMP/evil.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.USTAR_FORMAT) as t:
    data = b"pwned\n"
    i = tarfile.TarInfo("../../../../tmp/nubo-agent-evil")
    i.size = len(data)
    t.addfile(i, io.BytesIO(data))
    i = tarfile.TarInfo("unikraft/bin/kernel")
    i.size = len(data)
    t.addfile(i, io.BytesIO(data))
PY
evil=$("$AG_PUSH" --registry "$T_REGISTRY_URL" --repo test/evil --tag v1 --kernel-tar "$T_TMP/evil.tar") \
    || t_fail "push evil image"

# damage blobs in the registry's storage: same size but other bytes, and half the bytes
cl=$(ag_blob_file "$(ag_kernel_layer "$corrupt")")
python3 - "$cl" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
for i in range(600, 700):
    b[i] ^= 0xff
open(p, "wb").write(bytes(b))
PY
tl=$(ag_blob_file "$(ag_kernel_layer "$trunc")")
truncate -s $(( $(stat -c %s "$tl") / 2 )) "$tl"

ag_config pull
ag_start

G1=a0000001-0000-4000-8000-000000000001
G2=a0000001-0000-4000-8000-000000000002
C=a0000001-0000-4000-8000-00000000000c
T=a0000001-0000-4000-8000-00000000000d
U=a0000001-0000-4000-8000-00000000000e
E=a0000001-0000-4000-8000-00000000000f
ag_inst $G1 "$good" running 1
ag_inst $G2 "$good" running 1
ag_inst $C "$corrupt" running 1
ag_inst $T "$trunc" running 1
ag_inst $U "$unknown" running 1
ag_inst $E "$evil" running 1
ag_push

ag_wait $G1 state running 60
ag_wait $G2 state running 60
t_log "good image: running, boot_time_us=$(ag_get $G1 boot_time_us)"
[ "$(grep -c 'pulling' "$AG_DIR/agent.log")" -ge 1 ] || t_fail "no pull logged"
[ "$(grep -c "image $good: pulling" "$AG_DIR/agent.log")" = 1 ] \
    || t_fail "two instances of one image pulled it twice (no coalescing)"

for u in $C $T $U $E; do
    ag_wait $u state stopped 30
    [ "$(ag_get $u stop_reason)" = 4 ] || t_fail "failed pull: stop_reason $(ag_get $u stop_reason), want 4 (--P--)"
done
msg() { ag_get "$1" message; }
t_log "corrupt: $(msg $C)"
t_log "truncated: $(msg $T)"
t_log "unknown: $(msg $U)"
t_log "evil: $(msg $E)"
msg $C | has -i 'test/corrupt' || t_fail "corrupt blob message does not name the image"
msg $C | has -iE 'digest|sha256|mismatch' || t_fail "corrupt blob message does not say digest mismatch"
msg $T | has -iE 'short|truncat|size|mismatch|digest|length|verification' || t_fail "truncated blob message unclear"
msg $U | has -iE '404|unknown|not found' || t_fail "unknown digest message unclear"
msg $E | has -iE '\.\.|travers|refus|unsafe|outside' || t_fail "path traversal not refused clearly"
[ ! -e /tmp/nubo-agent-evil ] || t_fail "the traversal layer wrote outside its directory"
ls "$AG_DIR/cache/images" | has "${good##*sha256:}" || t_fail "good image not in the cache"
[ "$(ls "$AG_DIR/cache/images" | wc -l)" = 1 ] || t_fail "a failed pull left an image in the cache"
[ -z "$(ls -A "$AG_DIR/cache/tmp")" ] || t_fail "a failed pull left temporary files"

# registry down: an uncached image fails its instance; the cached one still starts
other=$(ag_image test/other v1 other) || t_fail "push"
kill "$T_REGISTRY_PID"; wait "$T_REGISTRY_PID" 2>/dev/null || true
D=a0000001-0000-4000-8000-0000000000d0
ag_inst $D "$other" running 1
ag_inst $G2 "$good" running 2     # a start request while running changes nothing
ag_push
ag_wait $D state stopped 60
t_log "registry down: $(msg $D)"
msg $D | has -iE 'connect|refused|unreachable|registry' || t_fail "registry-down message unclear"
kill -0 "$AG_PID" || t_fail "agent died"
ag_wait $G1 state running 5
ag_wait $G2 state running 5
[ "$(ag_get $G2 start_count)" = 1 ] || t_fail "a start request restarted a running instance"
t_log "PASS"
