#!/usr/bin/env bash
# nubo's registry path against skopeo, measured in the same run on the same layout: push of a
# runtime-sized image (cold, then warm = every blob already there), and nubo build + push of
# examples/http-python on it (cold repo, then rebuild). Prints times and ratios.
# usage: bench/cli_push.sh [BUILD_DIR]   (uses BUILD/guest/runtimes when built, else random data)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
export NUBO_SRC=$SRC NUBO_BUILD=${1:-${NUBO_BUILD:-$SRC/build}}
source "$SRC/tests/lib.sh"
NUBO=$NUBO_BUILD/cli/nubo
[ -x "$NUBO" ] || t_fail "nubo not built at $NUBO"
command -v skopeo >/dev/null || t_skip "skopeo (the baseline) is not installed"
t_start_registry
export HOME=$T_TMP/home XDG_CACHE_HOME=$T_TMP/cache XDG_CONFIG_HOME=$T_TMP/config
export NUBO_REGISTRY=$T_REGISTRY_URL NUBO_API=http://127.0.0.1:1
cd "$T_TMP"
RT=$NUBO_BUILD/guest/runtimes
if [ -f "$RT/base/vmlinux" ] && [ -f "$RT/python/initrd.cpio" ]; then
    KERNEL=$RT/base/vmlinux; INITRD=$RT/python/initrd.cpio; what="python runtime"
else
    python3 -c 'import os,struct; h=b"\x7fELF"+bytes([2,1,1])+bytes(9)+struct.pack("<HH",2,62); open("kernel","wb").write(h+os.urandom(50<<20))'
    mkdir -p r && head -c $((45 << 20)) /dev/urandom > r/blob && (cd r && find . | cpio -o -H newc > ../initrd.cpio 2>/dev/null)
    KERNEL=$T_TMP/kernel; INITRD=$T_TMP/initrd.cpio; what="random 50 MB kernel + 45 MB initrd"
fi
"$NUBO" pkg --kernel "$KERNEL" --initrd "$INITRD" --output official/python:3.11 --oci-dir lay -q
size=$(du -sb lay/blobs | cut -f1)
host=${T_REGISTRY_URL#http://}
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }

t0=$(now); skopeo copy -q --all --dest-tls-verify=false oci:lay:official/python:3.11 "docker://$host/sk/python:3.11"; t1=$(now)
sk_cold=$(ms "$t0" "$t1")
t0=$(now); "$NUBO" push "$host/nb/python:3.11" --oci-dir lay -q; t1=$(now)
nb_cold=$(ms "$t0" "$t1")
t0=$(now); skopeo copy -q --all --dest-tls-verify=false oci:lay:official/python:3.11 "docker://$host/sk/python:3.11"; t1=$(now)
sk_warm=$(ms "$t0" "$t1")
t0=$(now); "$NUBO" push "$host/nb/python:3.11" --oci-dir lay -q; t1=$(now)
nb_warm=$(ms "$t0" "$t1")
"$NUBO" push official/python:3.11 --oci-dir lay -q
t0=$(now); "$NUBO" build "$SRC/examples/http-python" --output demo/app:latest -q 2>/dev/null; t1=$(now)
b_cold=$(ms "$t0" "$t1")
t0=$(now); "$NUBO" build "$SRC/examples/http-python" --output demo/app:latest -q 2>/dev/null; t1=$(now)
b_warm=$(ms "$t0" "$t1")

ratio() { python3 -c "print(f'{$1/max($2,1):.2f}')"; }
echo "image: $what, $((size >> 20)) MiB of blobs, registry $T_REGISTRY_URL"
printf 'push cold   nubo %6d ms   skopeo %6d ms   nubo/skopeo %s\n' "$nb_cold" "$sk_cold" "$(ratio "$nb_cold" "$sk_cold")"
printf 'push warm   nubo %6d ms   skopeo %6d ms   nubo/skopeo %s\n' "$nb_warm" "$sk_warm" "$(ratio "$nb_warm" "$sk_warm")"
printf 'build+push  examples/http-python: new repo %d ms, rebuild %d ms (rebuild/new %s)\n' "$b_cold" "$b_warm" "$(ratio "$b_warm" "$b_cold")"
