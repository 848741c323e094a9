#!/usr/bin/env bash
# nubo pkg against the guests' real artifacts and broken look-alikes: the PVH ELF (hello,
# vmlinux), the bzImage and our cpio are accepted; a text file, a non-x86_64 ELF, a truncated
# kernel and a non-cpio initrd are refused with one clear line and no image.
source "$NUBO_SRC/tests/lib.sh"
NUBO=$NUBO_BUILD/cli/nubo
[ -x "$NUBO" ] || t_skip "$NUBO not built (CLI)"
"$NUBO" pkg --help >/dev/null 2>&1 || t_skip "the CLI has no 'pkg' command yet"
HELLO=$NUBO_BUILD/guest/hello/hello
RT=$NUBO_BUILD/guest/runtimes/base
MKCPIO=$NUBO_BUILD/guest/runtimes/guest_mkcpio
[ -f "$HELLO" ] && [ -x "$MKCPIO" ] || t_fail "guest_hello / guest_mkcpio not built"

printf '%s\n' "dir /src 0755" "file /src/x 0644 $NUBO_SRC/examples/http-python/server.py" | "$MKCPIO" "$T_TMP/ok.cpio"
pkg() { "$NUBO" pkg "$@" --output acme/t:latest --oci-dir "$T_TMP/oci" > "$T_TMP/pkg.out" 2> "$T_TMP/pkg.err"; }
accept() { rm -rf "$T_TMP/oci"; pkg "$@" || t_fail "refused good input ($*): $(cat "$T_TMP/pkg.err")"; }
refuse() { # WHAT ARGS...
    local what=$1; shift
    rm -rf "$T_TMP/oci"
    if pkg "$@"; then t_fail "accepted $what"; fi
    [ "$(grep -c . "$T_TMP/pkg.err")" = 1 ] || t_fail "$what: error is not one line: $(cat "$T_TMP/pkg.err")"
    [ ! -f "$T_TMP/oci/index.json" ] || t_fail "$what: an image was written anyway"
    t_log "$what -> $(cat "$T_TMP/pkg.err")"
}

accept --kernel "$HELLO"
accept --kernel "$HELLO" --initrd "$T_TMP/ok.cpio"
if [ -f "$RT/vmlinuz" ]; then
    accept --kernel "$RT/vmlinuz" --initrd "$RT/initrd.cpio"
    [ -f "$RT/vmlinux" ] && accept --kernel "$RT/vmlinux" --initrd "$RT/initrd.cpio"
else
    t_log "base runtime not built: bzImage/vmlinux cases not run"
fi

echo "not a kernel" > "$T_TMP/text"
refuse "a text file as kernel" --kernel "$T_TMP/text"
cp "$HELLO" "$T_TMP/arm"
printf '\xb7\x00' | dd of="$T_TMP/arm" bs=1 seek=18 conv=notrunc status=none # e_machine = aarch64
refuse "an aarch64 ELF as kernel" --kernel "$T_TMP/arm"
head -c 4 "$HELLO" > "$T_TMP/stub"
refuse "a 4-byte kernel" --kernel "$T_TMP/stub"
refuse "a text file as initrd" --kernel "$HELLO" --initrd "$T_TMP/text"
gzip -c "$T_TMP/ok.cpio" > "$T_TMP/ok.cpio.gz"
refuse "a gzip-compressed cpio as initrd" --kernel "$HELLO" --initrd "$T_TMP/ok.cpio.gz"
refuse "a missing kernel" --kernel "$T_TMP/nope"
echo "PASS guest_pkg_inputs"
