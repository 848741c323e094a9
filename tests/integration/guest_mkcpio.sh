#!/usr/bin/env bash
# guest_mkcpio (the runtimes' initramfs writer): byte-identical archives whatever the source
# files' mtimes and creation order, entries readable by GNU cpio with their modes and links,
# and one-line errors for bad specs.
source "$NUBO_SRC/tests/lib.sh"
MKCPIO=$NUBO_BUILD/guest/runtimes/guest_mkcpio
[ -x "$MKCPIO" ] || t_fail "$MKCPIO missing: build the guest_mkcpio target"
command -v cpio >/dev/null || t_skip "cpio missing (deploy/install-deps installs it)"

mk_tree() { # mk_tree DIR ORDER: same content, different creation order and mtimes
    local d=$1
    mkdir -p "$d"
    if [ "$2" = a ]; then
        mkdir -p "$d/b/c"; echo one > "$d/a.txt"; echo two > "$d/b/c/z"; ln -s a.txt "$d/link"
    else
        ln -s a.txt "$d/link"; mkdir -p "$d/b/c"; echo two > "$d/b/c/z"; echo one > "$d/a.txt"
        touch -d '2001-02-03 04:05:06' "$d/a.txt" "$d/b/c/z"
    fi
    chmod 0750 "$d/b"; chmod 0600 "$d/b/c/z"
}
mk_tree "$T_TMP/t1" a
sleep 1
mk_tree "$T_TMP/t2" b
spec() { printf '%s\n' "dir /etc 0755" "nod /dev/console 0600 c 5 1" "file /init 0755 $T_TMP/t$1/a.txt" \
    "slink /bin/sh busybox" "tree /app $T_TMP/t$1"; }
spec 1 | "$MKCPIO" "$T_TMP/1.cpio" || t_fail "mkcpio failed"
spec 2 | "$MKCPIO" "$T_TMP/2.cpio" || t_fail "mkcpio failed (second tree)"
cmp "$T_TMP/1.cpio" "$T_TMP/2.cpio" || t_fail "archives differ: not reproducible"

cpio -itv < "$T_TMP/1.cpio" > "$T_TMP/list" 2>/dev/null || t_fail "GNU cpio cannot read the archive"
awk '{print $1, $NF}' "$T_TMP/list" > "$T_TMP/modes"
expected='drwxr-xr-x etc
crw------- dev/console
-rwxr-xr-x init
lrwxrwxrwx busybox
-rw-r--r-- app/a.txt
drwxr-x--- app/b
drwxr-xr-x app/b/c
-rw------- app/b/c/z
lrwxrwxrwx a.txt'
[ "$(cat "$T_TMP/modes")" = "$expected" ] || { cat "$T_TMP/list" >&2; t_fail "unexpected entries/modes"; }
grep -q ' 1970 ' "$T_TMP/list" || t_fail "mtimes are not fixed at the epoch"
mkdir "$T_TMP/x" && (cd "$T_TMP/x" && cpio -id --quiet < "$T_TMP/1.cpio" 2>/dev/null) || true
[ "$(cat "$T_TMP/x/app/b/c/z")" = two ] || t_fail "content did not round-trip"

# Bad specs: one clear line, non-zero exit, no partial output left behind.
for bad in "file /x 0644 $T_TMP/nope" "dir /x 9999" "frob /x" "tree /x $T_TMP/nope"; do
    if echo "$bad" | "$MKCPIO" "$T_TMP/bad.cpio" 2> "$T_TMP/err"; then t_fail "accepted bad spec '$bad'"; fi
    [ "$(wc -l < "$T_TMP/err")" = 1 ] || t_fail "error for '$bad' is not one line: $(cat "$T_TMP/err")"
    [ ! -e "$T_TMP/bad.cpio" ] && [ ! -e "$T_TMP/bad.cpio.tmp" ] || t_fail "partial archive left for '$bad'"
done
echo "PASS guest_mkcpio"
