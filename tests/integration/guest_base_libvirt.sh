#!/usr/bin/env bash
# The base runtime as a libvirt microvm domain (TCG), the way the agent boots it: the app's exit
# code reaches the console and the guest's ACPI poweroff makes the domain go away.
source "$NUBO_SRC/tests/lib.sh"
t_need_root
t_need_libvirt
RT=$NUBO_BUILD/guest/runtimes/base
mkdir -p "$NUBO_BUILD/guest"
# One build at a time when tests run in parallel (ctest -j): same outputs.
flock "$NUBO_BUILD/guest/build.lock" cmake --build "$NUBO_BUILD" --target guest_runtime_base > "$T_TMP/build.log" 2>&1 \
    || t_fail "cannot build the base runtime (see build.log)"
KERNEL=$RT/vmlinuz
[ -f "$RT/vmlinux" ] && KERNEL=$RT/vmlinux
URI=${NUBO_LIBVIRT_URI:-qemu:///system}
# qemu runs as another user and libvirt relabels kernel/initrd: hand it copies.
chmod 0755 "$T_TMP"
cp "$KERNEL" "$T_TMP/kernel"
cp "$RT/initrd.cpio" "$T_TMP/initrd"
: > "$T_TMP/console.log"
chmod 0666 "$T_TMP/console.log"
NAME=nubo-t$$-base
KHZ=$(awk '/^cpu MHz/ {printf "%d", $4 * 1000; exit}' /proc/cpuinfo)
cat > "$T_TMP/dom.xml" <<XML
<domain type='qemu'>
  <name>$NAME</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>$T_TMP/kernel</kernel>
    <initrd>$T_TMP/initrd</initrd>
    <cmdline>$(cat "$NUBO_SRC/guest/runtimes/kernel-args") tsc_early_khz=${KHZ:-2000000} env.vars=[ "X=libvirt" ] -- /bin/sh -c "echo X=\$X; exit 6"</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend><address type='virtio-mmio'/></rng>
    <serial type='file'><source path='$T_TMP/console.log'/><target port='0'/></serial>
    <console type='file'><source path='$T_TMP/console.log'/><target type='serial' port='0'/></console>
  </devices>
</domain>
XML
t_track_domain "$NAME"
start=${EPOCHREALTIME/./}
virsh -q -c "$URI" create "$T_TMP/dom.xml" >/dev/null || t_fail "virsh create failed"
t_wait_for 60 grep -q '^NUBO_READY' "$T_TMP/console.log" || t_fail "no NUBO_READY"
ready_us=$(( ${EPOCHREALTIME/./} - start ))
gone() { ! virsh -q -c "$URI" domstate "$NAME" >/dev/null 2>&1; }
t_wait_for 60 gone || t_fail "domain still running after the app exited"
grep -q '^X=libvirt' "$T_TMP/console.log" || t_fail "env did not reach the app"
grep -q '^NUBO_EXIT 6' "$T_TMP/console.log" || t_fail "no NUBO_EXIT 6"
t_log "base under libvirt (virsh create -> NUBO_READY, polled): ~${ready_us} us"
echo "PASS guest_base_libvirt"
