#!/usr/bin/env bash
# Builds a Linux runtime for nubo (called by guest/runtimes/CMakeLists.txt):
#   mkruntime.sh base   OUTDIR CACHEDIR INIT MKCPIO  -> OUTDIR/vmlinuz, OUTDIR/initrd.cpio
#   mkruntime.sh python OUTDIR CACHEDIR INIT MKCPIO  -> OUTDIR/initrd.cpio (base + python3)
# The kernel comes from Debian's linux-image-cloud-amd64 dependency, downloaded with apt into
# CACHEDIR (never from /boot); OUTDIR/vmlinux is its uncompressed PVH ELF when extractable. The initramfs is written by guest_mkcpio: sorted, 0:0, fixed
# mtimes, so rebuilding gives the same bytes.
set -euo pipefail

kind=${1:?kind}; out=${2:?outdir}; cache=${3:?cachedir}; init=${4:?init}; mkcpio=${5:?mkcpio}
mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd); cache=$(cd "$cache" && pwd)
die() { echo "mkruntime: $*" >&2; exit 1; }

# linux-image-cloud-amd64 -> linux-image-6.1.0-NN-cloud-amd64 (= VERSION), installed or not.
kernel_package() {
    local dep
    dep=$(dpkg-query -W -f='${Depends}' linux-image-cloud-amd64 2>/dev/null || true)
    [ -n "$dep" ] || dep=$(apt-cache show --no-all-versions linux-image-cloud-amd64 2>/dev/null | sed -n 's/^Depends: //p' | head -1)
    [ -n "$dep" ] || die "cannot resolve linux-image-cloud-amd64 (apt-get update? is it in sources.list?)"
    KPKG=$(printf '%s' "$dep" | grep -o 'linux-image-[0-9][^ ,(]*-cloud-amd64' | head -1)
    KVER=$(printf '%s' "$dep" | sed -n 's/.*(= \([^)]*\)).*/\1/p')
    [ -n "$KPKG" ] || die "no linux-image-*-cloud-amd64 in '$dep'"
}

fetch_kernel() {
    kernel_package
    local deb
    deb=$(ls "$cache"/"${KPKG}"_"${KVER:-*}"_amd64.deb 2>/dev/null | head -1 || true)
    if [ -z "$deb" ]; then
        echo "mkruntime: downloading $KPKG ${KVER:-} into $cache" >&2
        if ! (cd "$cache" && apt-get download -q "${KPKG}${KVER:+=$KVER}" 2>&1 \
                | grep -v '^W: Download is performed unsandboxed' >&2; exit "${PIPESTATUS[0]}"); then
            # The installed meta-package may name a version the mirror no longer has: take
            # what the mirror's linux-image-cloud-amd64 depends on instead.
            local dep
            dep=$(apt-cache show --no-all-versions linux-image-cloud-amd64 2>/dev/null | sed -n 's/^Depends: //p' | head -1)
            KPKG=$(printf '%s' "$dep" | grep -o 'linux-image-[0-9][^ ,(]*-cloud-amd64' | head -1)
            [ -n "$KPKG" ] || die "apt-get download of the cloud kernel failed and apt knows no other (apt-get update?)"
            echo "mkruntime: falling back to $KPKG" >&2
            (cd "$cache" && apt-get download -q "$KPKG" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2; exit "${PIPESTATUS[0]}") \
                || die "apt-get download $KPKG failed (network? apt-get update?)"
        fi
        deb=$(ls "$cache"/"${KPKG}"_*_amd64.deb | head -1)
    fi
    # Only what the runtimes use is unpacked; the marker changes with the list.
    local want=('./boot/vmlinuz-*' './lib/modules/*/kernel/drivers/virtio/*'
        './lib/modules/*/kernel/drivers/net/*failover*' './lib/modules/*/kernel/drivers/net/virtio_net*'
        './lib/modules/*/kernel/net/core/failover*' './lib/modules/*/kernel/drivers/char/hw_random/virtio-rng*'
        './lib/modules/*/kernel/drivers/acpi/button.ko*' './lib/modules/*/kernel/drivers/input/evdev.ko*'
        './lib/modules/*/kernel/drivers/firmware/qemu_fw_cfg.ko*')
    local marker
    marker=.done-$(printf '%s\n' "${want[@]}" | sha256sum | cut -c1-12)
    KROOT=$cache/root-$(basename "$deb" .deb)
    if [ ! -e "$KROOT/$marker" ]; then
        rm -rf "$KROOT"; mkdir -p "$KROOT"
        dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$KROOT" --wildcards "${want[@]}" \
            || die "cannot unpack $deb"
        touch "$KROOT/$marker"
    fi
    KIMAGE=$(ls "$KROOT"/boot/vmlinuz-* | head -1)
    KMODDIR=$(ls -d "$KROOT"/lib/modules/* | head -1)
}

# Spec lines for the base initramfs, written to stdout.
base_spec() {
    local mods=$1
    printf '%s\n' "dir /bin 0755" "dir /dev 0755" "nod /dev/console 0600 c 5 1" "nod /dev/null 0666 c 1 3" \
        "dir /etc 0755" "file /init 0755 $init" "dir /lib 0755" "dir /lib/modules 0755" \
        "tree /lib/modules $mods" "dir /proc 0555" "dir /root 0700" "dir /run 0755" "dir /sbin 0755" \
        "dir /sys 0555" "dir /tmp 1777" "dir /usr 0755" "dir /usr/bin 0755" "dir /usr/sbin 0755" \
        "file /bin/busybox 0755 $BUSYBOX" "file /etc/passwd 0644 $ETC/passwd" "file /etc/group 0644 $ETC/group" \
        "file /etc/hosts 0644 $ETC/hosts" "file /etc/nsswitch.conf 0644 $ETC/nsswitch.conf"
    # TLS trust: Mozilla's roots from the ca-certificates package where OpenSSL looks for them.
    if [ -f "$ETC/ca-certificates.crt" ]; then
        printf '%s\n' "dir /etc/ssl 0755" "dir /etc/ssl/certs 0755" \
            "file /etc/ssl/certs/ca-certificates.crt 0644 $ETC/ca-certificates.crt" \
            "dir /usr/lib 0755" "dir /usr/lib/ssl 0755" "slink /usr/lib/ssl/certs /etc/ssl/certs" \
            "slink /usr/lib/ssl/cert.pem /etc/ssl/certs/ca-certificates.crt"
    fi
    local a
    for a in sh ash cat cp dmesg echo env grep hostname ifconfig ip kill ls mkdir mount nc ping ps \
             rm route sed sleep sync top umount uname vi wget; do
        echo "slink /bin/$a busybox"
    done
}

prepare_base() {
    fetch_kernel
    BUSYBOX=$(command -v busybox || true)
    [ -n "$BUSYBOX" ] && file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' || BUSYBOX=/bin/busybox
    [ -x "$BUSYBOX" ] || die "busybox (static) missing: apt-get install busybox-static"
    local mods=$out/.stage-modules/nubo
    rm -rf "$out/.stage-modules"; mkdir -p "$mods"
    local m f
    for m in virtio_ring virtio failover net_failover virtio_pci_legacy_dev virtio_pci_modern_dev \
             virtio_pci virtio_mmio virtio_net virtio_rng button evdev qemu_fw_cfg; do
        f=$(find "$KMODDIR" \( -name "$m.ko*" -o -name "${m//_/-}.ko*" \) | head -1)
        [ -n "$f" ] || die "module $m not in the kernel package"
        case $f in
            *.ko) cp "$f" "$mods/$m.ko" ;;
            *.ko.xz) xz -dc "$f" > "$mods/$m.ko" ;;
            *.ko.zst) zstd -qdc "$f" > "$mods/$m.ko" ;;
            *.ko.gz) gzip -dc "$f" > "$mods/$m.ko" ;;
            *) die "unknown module format $f" ;;
        esac
        chmod 0644 "$mods/$m.ko"
    done
    ETC=$out/.stage-etc
    rm -rf "$ETC"; mkdir -p "$ETC"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$ETC/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$ETC/group"
    printf '127.0.0.1 localhost\n::1 localhost\n' > "$ETC/hosts"
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$ETC/nsswitch.conf"
    # Built from the package's certificates, not the host's generated bundle (which may carry
    # local additions): sorted, so the bytes only change with the ca-certificates version.
    if [ -d /usr/share/ca-certificates/mozilla ]; then
        find /usr/share/ca-certificates/mozilla -name '*.crt' | LC_ALL=C sort | xargs cat > "$ETC/ca-certificates.crt"
    else
        echo "mkruntime: ca-certificates not installed: the runtime has no TLS roots" >&2
    fi
}

# python3 (Debian's 3.11), its shared libraries and standard library, staged under $1.
stage_python() {
    local root=$1 py=/usr/bin/python3.11 lib=/usr/lib/python3.11
    [ -x "$py" ] && [ -d "$lib" ] || die "python3.11 missing: apt-get install python3.11"
    rm -rf "$root"; mkdir -p "$root/usr/bin" "$root/usr/lib"
    cp "$py" "$root/usr/bin/python3.11"
    ln -s python3.11 "$root/usr/bin/python3"
    ln -s python3.11 "$root/usr/bin/python"
    # Standard library without tests, GUI, pip bootstrap, 2to3 and the extension modules that
    # drag in big libraries a server app does not use (nis: kerberos; _dbm: libdb; curses and
    # readline: ncurses). Bytecode is compiled below.
    (cd /usr/lib && tar -c --exclude='__pycache__' --exclude='python3.11/test' \
        --exclude='python3.11/idlelib' --exclude='python3.11/tkinter' --exclude='python3.11/turtledemo' \
        --exclude='python3.11/ensurepip' --exclude='python3.11/lib2to3/tests' \
        --exclude='python3.11/unittest/test' --exclude='python3.11/distutils/tests' \
        --exclude='python3.11/config-3.11-x86_64-linux-gnu' --exclude='*.exe' \
        --exclude='python3.11/lib2to3' --exclude='python3.11/pydoc_data' --exclude='python3.11/turtle.py' \
        --exclude='lib-dynload/nis.*' --exclude='lib-dynload/_dbm.*' --exclude='lib-dynload/_curses*' \
        --exclude='lib-dynload/readline.*' python3.11) \
        | tar -x -C "$root/usr/lib"
    # Every shared library the interpreter and its extension modules load (ldd closure).
    local libs
    libs=$( { ldd "$py"; find "$root$lib/lib-dynload" -name '*.so' -exec ldd {} \; ; } 2>/dev/null \
        | awk '/=> \// {print $3} /^\t\/lib64\// {print $1}' | sort -u)
    local l dst
    for l in $libs; do
        dst=$root$(dirname "$l")
        mkdir -p "$dst"
        cp -L "$l" "$dst/"
    done
    # Hash-checked bytecode: valid whatever the (fixed) mtimes, identical on every build.
    SOURCE_DATE_EPOCH=0 "$py" -m compileall -q -j 2 --invalidation-mode unchecked-hash \
        -s "$root" -p / "$root/usr/lib/python3.11" >/dev/null || die "compileall failed"
    find "$root" -type d -exec chmod 0755 {} +
    find "$root" -type f -exec chmod u+w,go-w {} +
}

# The bzImage's payload as an ELF with its PVH note: qemu then loads it directly and the guest
# skips ~0.3 s of decompression under TCG. Debian builds the cloud kernel with LZ4 (legacy
# frame format); anything else keeps the bzImage only.
extract_vmlinux() {
    local bz=$1 dst=$2 off
    rm -f "$dst"
    command -v lz4 >/dev/null || { echo "mkruntime: lz4 missing (apt-get install lz4): no PVH vmlinux, the bzImage is used" >&2; return 0; }
    off=$(LC_ALL=C grep -obUaP '\x02\x21\x4c\x18' "$bz" | head -1 | cut -d: -f1)
    [ -n "$off" ] || { echo "mkruntime: $bz is not LZ4-compressed: no PVH vmlinux, the bzImage is used" >&2; return 0; }
    # lz4 complains about the bytes after the payload; the ELF check below is what counts.
    tail -c +$((off + 1)) "$bz" | lz4 -dc > "$dst.tmp" 2>/dev/null || true
    if [ "$(head -c 4 "$dst.tmp" | od -An -c | tr -d ' ')" = '177ELF' ] \
        && readelf -n "$dst.tmp" 2>/dev/null | grep -q 'Xen.*0x00000012\|PHYS32_ENTRY'; then
        mv "$dst.tmp" "$dst"
    else
        rm -f "$dst.tmp"
        echo "mkruntime: no PVH ELF inside $bz: the bzImage is used" >&2
    fi
}

case $kind in
base)
    prepare_base
    cp "$KIMAGE" "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
    extract_vmlinux "$out/vmlinuz" "$out/vmlinux"
    echo "$(basename "$KIMAGE" | sed 's/^vmlinuz-//')" > "$out/kernel-release"
    base_spec "$out/.stage-modules" | "$mkcpio" "$out/initrd.cpio"
    ;;
python)
    prepare_base
    stage_python "$out/.stage-python"
    { base_spec "$out/.stage-modules"; echo "tree / $out/.stage-python"; } | "$mkcpio" "$out/initrd.cpio"
    ;;
*) die "unknown runtime '$kind' (base|python)" ;;
esac
echo "mkruntime: $kind -> $out ($(du -h "$out/initrd.cpio" | cut -f1) initrd)" >&2
