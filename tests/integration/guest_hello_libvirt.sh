#!/usr/bin/env bash
# The hello unikernel as a libvirt microvm domain (TCG): its ACPI poweroff must make the
# domain go away, and --exit N must reach the serial log.
source "$NUBO_SRC/tests/lib.sh"
t_need_root
t_need_libvirt

HELLO=$NUBO_BUILD/guest/hello/hello
[ -f "$HELLO" ] || t_fail "$HELLO missing: build the guest_hello target"
URI=${NUBO_LIBVIRT_URI:-qemu:///system}
# qemu runs as another user and libvirt relabels the kernel: give it copies in a readable dir.
chmod 0755 "$T_TMP"
cp "$HELLO" "$T_TMP/hello"
NAME=nubo-t$$-hello

run_domain() { # run_domain ARGS -> serial in $T_TMP/console.log
    : > "$T_TMP/console.log"
    chmod 0666 "$T_TMP/console.log"
    cat > "$T_TMP/dom.xml" <<XML
<domain type='qemu'>
  <name>$NAME</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>$T_TMP/hello</kernel>
    <cmdline>console=ttyS0 env.vars=[ "A=1" ] -- $1</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <serial type='file'><source path='$T_TMP/console.log'/><target port='0'/></serial>
    <console type='file'><source path='$T_TMP/console.log'/><target type='serial' port='0'/></console>
  </devices>
</domain>
XML
    t_track_domain "$NAME"
    virsh -q -c "$URI" create "$T_TMP/dom.xml" >/dev/null || t_fail "virsh create failed"
}

gone() { ! virsh -q -c "$URI" domstate "$NAME" >/dev/null 2>&1; }

start=${EPOCHREALTIME/./}
run_domain "--exit 4"
t_wait_for 30 grep -q '^NUBO_READY' "$T_TMP/console.log" || t_fail "no NUBO_READY"
ready_us=$(( ${EPOCHREALTIME/./} - start ))
t_wait_for 30 gone || t_fail "domain still running after the guest powered off"
gone_us=$(( ${EPOCHREALTIME/./} - start ))
t_log "hello under libvirt (polled every 0.1 s): virsh create -> NUBO_READY ~${ready_us} us, domain gone ~${gone_us} us"
grep -q '^NUBO_READY' "$T_TMP/console.log" || t_fail "no NUBO_READY in the console log"
grep -q '^NUBO_EXIT 4' "$T_TMP/console.log" || t_fail "no NUBO_EXIT 4 in the console log"

run_domain "--wait"
t_wait_for 30 grep -q '^NUBO_READY' "$T_TMP/console.log" || t_fail "--wait: no NUBO_READY"
sleep 1
gone && t_fail "--wait: domain stopped on its own"
# libvirt's graceful shutdown (ACPI power button) ends the wait with a clean exit.
virsh -q -c "$URI" shutdown "$NAME" >/dev/null || t_fail "virsh shutdown failed"
t_wait_for 30 gone || t_fail "--wait: domain still running after virsh shutdown"
grep -q '^NUBO_EXIT 0' "$T_TMP/console.log" || t_fail "--wait: no NUBO_EXIT 0 after shutdown"
echo "PASS guest_hello_libvirt"
