/* The libvirt side: one long-lived connection (opened once, not per call: libvirt's open and
 * capability probing are the expensive part of its start path), its default event loop on a
 * thread of its own, keepalive, a close callback that reconnects with back-off, lifecycle
 * events forwarded to the main thread, and the domain XML of an instance. */
#include "agent_core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "cleanup.h"
#include "log.h"

#define VIRT_BACKOFF_MIN_MS 100
#define VIRT_BACKOFF_MAX_MS 5000

struct virt_event {
    char uuid[NUBO_UUID_STR_LEN + 1];
    int event, detail;
};

/* libvirt prints every error on stderr by default; we report them where they matter. */
static void virt_quiet(void *opaque, virErrorPtr e)
{
    (void)opaque;
    if (e && e->level >= VIR_ERR_ERROR)
        log_debug("libvirt: %s", e->message ? e->message : "?");
}

static void *virt_loop(void *arg)
{
    struct agent *ag = arg;
    while (!ag->virt.closing) {
        if (virEventRunDefaultImpl() < 0)
            log_warnx("libvirt event loop: %s", virGetLastErrorMessage());
    }
    return NULL;
}

static void on_event_main(struct agent *ag, void *arg)
{
    struct virt_event *ev = arg;
    if (ag->events.domain_event)
        ag->events.domain_event(ag, ev->uuid, ev->event, ev->detail);
    free(ev);
}

/* Runs on the libvirt event thread: copy and hand over, never touch agent state here. */
static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
    (void)conn;
    struct agent *ag = opaque;
    const char *name = virDomainGetName(dom);
    if (!name || !nubo_uuid_valid(name))
        return 0;
    struct virt_event *ev = calloc(1, sizeof(*ev));
    if (!ev)
        return 0;
    snprintf(ev->uuid, sizeof(ev->uuid), "%s", name);
    ev->event = event;
    ev->detail = detail;
    agent_post_main(ag, on_event_main, ev);
    return 0;
}

static void virt_connect_try(struct agent *ag);
static void virt_drop(struct agent *ag);
static bool virt_tcg_rdseed(virConnectPtr c);

static void on_reconnect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    virt_connect_try(arg);
}

static void virt_schedule_reconnect(struct agent *ag)
{
    struct agent_virt *v = &ag->virt;
    if (v->closing)
        return;
    struct timeval tv = {v->backoff_ms / 1000, (v->backoff_ms % 1000) * 1000};
    evtimer_add(v->reconnect_ev, &tv);
    v->backoff_ms = v->backoff_ms * 2 > VIRT_BACKOFF_MAX_MS ? VIRT_BACKOFF_MAX_MS
                                                            : v->backoff_ms * 2;
}

static void on_closed_main(struct agent *ag, void *arg)
{
    (void)arg;
    if (ag->virt.closing)
        return;
    log_warnx("libvirt connection to %s lost; reconnecting", ag->cfg.libvirt_uri);
    virt_drop(ag);
    ag->virt.backoff_ms = VIRT_BACKOFF_MIN_MS;
    virt_schedule_reconnect(ag);
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
    (void)conn;
    (void)reason;
    agent_post_main(opaque, on_closed_main, NULL);
}

static void virt_drop(struct agent *ag)
{
    struct agent_virt *v = &ag->virt;
    if (!v->conn)
        return;
    if (v->lifecycle_cb >= 0)
        virConnectDomainEventDeregisterAny(v->conn, v->lifecycle_cb);
    v->lifecycle_cb = -1;
    virConnectUnregisterCloseCallback(v->conn, on_close);
    virConnectClose(v->conn);
    v->conn = NULL;
}

static void virt_connect_try(struct agent *ag)
{
    struct agent_virt *v = &ag->virt;
    if (v->conn || v->closing)
        return;
    virConnectPtr c = virConnectOpen(ag->cfg.libvirt_uri);
    if (!c) {
        log_warnx("cannot connect to libvirt at %s: %s; retrying in %lld ms",
                  ag->cfg.libvirt_uri, virGetLastErrorMessage(), (long long)v->backoff_ms);
        virt_schedule_reconnect(ag);
        return;
    }
    /* Keepalive notices a dead daemon even when we are not calling it. test:/// has none. */
    if (strncmp(ag->cfg.libvirt_uri, "test:", 5) != 0 && virConnectSetKeepAlive(c, 5, 3) < 0)
        log_warnx("libvirt keepalive: %s", virGetLastErrorMessage());
    if (virConnectRegisterCloseCallback(c, on_close, ag, NULL) < 0)
        log_warnx("libvirt close callback: %s", virGetLastErrorMessage());
    v->lifecycle_cb = virConnectDomainEventRegisterAny(
        c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), ag, NULL);
    if (v->lifecycle_cb < 0) {
        log_warnx("cannot subscribe to libvirt lifecycle events: %s; retrying",
                  virGetLastErrorMessage());
        virConnectClose(c);
        virt_schedule_reconnect(ag);
        return;
    }
    v->tcg_rdseed = virt_tcg_rdseed(c);
    virConnectGetLibVersion(c, &v->lib_version);
    virConnectGetVersion(c, &v->hv_version);
    v->conn = c;
    v->backoff_ms = VIRT_BACKOFF_MIN_MS;
    log_info("connected to libvirt %s (libvirt %lu.%lu.%lu, hypervisor %lu.%lu.%lu)",
             ag->cfg.libvirt_uri, v->lib_version / 1000000, v->lib_version / 1000 % 1000,
             v->lib_version % 1000, v->hv_version / 1000000, v->hv_version / 1000 % 1000,
             v->hv_version % 1000);
    if (ag->events.domains_resync)
        ag->events.domains_resync(ag);
}

int agent_virt_start(struct agent *ag, struct nubo_err *err)
{
    struct agent_virt *v = &ag->virt;
    v->lifecycle_cb = -1;
    v->backoff_ms = VIRT_BACKOFF_MIN_MS;
    virSetErrorFunc(NULL, virt_quiet);
    /* The event implementation must exist before the first connection is opened. */
    if (virEventRegisterDefaultImpl() < 0)
        return nubo_error(err, 0, "cannot set up libvirt's event loop: %s",
                          virGetLastErrorMessage());
    if (virInitialize() < 0)
        return nubo_error(err, 0, "libvirt init: %s", virGetLastErrorMessage());
    if (pthread_create(&v->thread, NULL, virt_loop, ag) != 0)
        return nubo_error(err, errno, "cannot start the libvirt event thread");
    v->thread_started = true;
    v->reconnect_ev = evtimer_new(ag->base, on_reconnect_timer, ag);
    virt_connect_try(ag);
    return 0;
}

static void wake_timer(int timer, void *opaque)
{
    (void)timer;
    (void)opaque;
}

void agent_virt_stop(struct agent *ag)
{
    struct agent_virt *v = &ag->virt;
    v->closing = true;
    virt_drop(ag);
    if (v->thread_started) {
        /* A short timer makes virEventRunDefaultImpl return so the thread sees closing. */
        int t = virEventAddTimeout(1, wake_timer, NULL, NULL);
        pthread_join(v->thread, NULL);
        if (t >= 0)
            virEventRemoveTimeout(t);
        v->thread_started = false;
    }
    if (v->reconnect_ev)
        event_free(v->reconnect_ev);
    v->reconnect_ev = NULL;
}

char *agent_xml_escape(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p; p++)
        n += (*p == '&') ? 5 : (*p == '<' || *p == '>') ? 4 : (*p == '"' || *p == '\'') ? 6 : 1;
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        switch (ch) {
        case '&': memcpy(o, "&amp;", 5); o += 5; break;
        case '<': memcpy(o, "&lt;", 4); o += 4; break;
        case '>': memcpy(o, "&gt;", 4); o += 4; break;
        case '"': memcpy(o, "&quot;", 6); o += 6; break;
        case '\'': memcpy(o, "&apos;", 6); o += 6; break;
        default:
            /* XML 1.0 has no representation for most control characters: drop them. */
            if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r')
                *o++ = ' ';
            else
                *o++ = (char)ch;
        }
    }
    *o = '\0';
    return out;
}

const char *agent_guest_cpu(enum agent_accel accel, bool rdseed)
{
    if (accel == AGENT_ACCEL_KVM)
        return "host-passthrough";
    return rdseed ? "qemu64+rdrand+rdseed" : "qemu64+rdrand";
}

/* Can this qemu emulate RDSEED under TCG? libvirt's domain capabilities say so: its host-model
 * CPU for TCG lists the features TCG lacks as policy='disable' (qemu 7.2: rdseed). */
static bool virt_tcg_rdseed(virConnectPtr c)
{
    cleanup_free char *caps = virConnectGetDomainCapabilities(c, NULL, "x86_64", "pc", "qemu", 0);
    if (!caps)
        return false;
    return strstr(caps, "name='rdseed'") && !strstr(caps, "policy='disable' name='rdseed'");
}

char *agent_domain_xml(const struct agent_domain_spec *s)
{
    cleanup_free char *uuid = agent_xml_escape(s->uuid);
    cleanup_free char *node = agent_xml_escape(s->node);
    cleanup_free char *kernel = agent_xml_escape(s->kernel);
    cleanup_free char *initrd = agent_xml_escape(s->initrd ? s->initrd : "");
    cleanup_free char *cmdline = agent_xml_escape(s->cmdline ? s->cmdline : "");
    cleanup_free char *console = agent_xml_escape(s->console_path);
    cleanup_free char *tap = agent_xml_escape(s->tap ? s->tap : "");
    cleanup_free char *mac = agent_xml_escape(s->mac ? s->mac : "");
    cleanup_free char *env_file = agent_xml_escape(s->env_file ? s->env_file : "");
    cleanup_free char *firmware = agent_xml_escape(s->firmware ? s->firmware : "");
    if (!uuid || !node || !kernel || !initrd || !cmdline || !console || !tap || !mac ||
        !env_file || !firmware)
        return NULL;
    /* The environment as a fw_cfg file (libvirt >= 6.5 labels it for qemu): qemu's command
     * line then names only the file, never a value. */
    char sysinfo_el[AGENT_PATH_MAX * 6 + 128] = "";
    if (env_file[0])
        snprintf(sysinfo_el, sizeof(sysinfo_el),
                 "  <sysinfo type='fwcfg'><entry name='" AGENT_FWCFG_ENV "' file='%s'/>"
                 "</sysinfo>\n",
                 env_file);
    /* Multiboot kernels (Unikraft's qemu platform) get the pc machine, as kraftkit gives
     * them: qemu 7.2's microvm firmware hands Unikraft a memory map it rejects, microvm has
     * no ACPI PM1a block at 0x604 where Unikraft powers off, and no PCI for its virtio
     * drivers. pc also carries the ISA pvpanic device Unikraft signals a crash on (0x505). */
    bool pc = s->boot == AGENT_BOOT_MULTIBOOT;
    const char *mmio = pc ? "" : "<address type='virtio-mmio'/>";
    char initrd_el[AGENT_PATH_MAX * 6 + 32] = "";
    if (initrd[0])
        snprintf(initrd_el, sizeof(initrd_el), "<initrd>%s</initrd>", initrd);
    char net_el[512] = "", mac_el[64] = "";
    if (mac[0]) /* the guest's rules name this MAC (firewall.c) */
        snprintf(mac_el, sizeof(mac_el), "<mac address='%s'/>", mac);
    if (tap[0])
        snprintf(net_el, sizeof(net_el),
                 "    <interface type='ethernet'>%s<target dev='%s' managed='no'/>"
                 "<model type='virtio'/>%s</interface>\n",
                 mac_el, tap, mmio);
    /* Volumes: raw files as virtio-blk disks; the serial is how the guest's /init finds
     * each one (device names follow probe order, serials do not). */
    char disk_el[NUBO_VOLUME_MAX_MOUNTS * (AGENT_PATH_MAX * 6 + 256)] = "";
    for (size_t i = 0, off = 0; i < s->n_disks && i < NUBO_VOLUME_MAX_MOUNTS; i++) {
        cleanup_free char *path = agent_xml_escape(s->disks[i].path);
        cleanup_free char *serial = agent_xml_escape(s->disks[i].serial);
        if (!path || !serial)
            return NULL;
        int w = snprintf(disk_el + off, sizeof(disk_el) - off,
                         "    <disk type='file' device='disk'><driver name='qemu' type='raw'/>"
                         "<source file='%s'/><target dev='vd%c' bus='virtio'/><serial>%s</serial>"
                         "%s%s</disk>\n",
                         path, (char)('a' + i), serial, s->disks[i].readonly ? "<readonly/>" : "",
                         mmio);
        if (w < 0 || (size_t)w >= sizeof(disk_el) - off)
            return NULL;
        off += (size_t)w;
    }
    /* The guest CPU: the host's under KVM; under TCG qemu64 plus the RNG instructions stock
     * unikernels require (Unikraft's ukrandom refuses to start without RDRAND and RDSEED). */
    char cpu_el[256];
    if (s->accel == AGENT_ACCEL_KVM)
        snprintf(cpu_el, sizeof(cpu_el), "  <cpu mode='host-passthrough'/>\n");
    else
        snprintf(cpu_el, sizeof(cpu_el),
                 "  <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>"
                 "qemu64</model><feature policy='require' name='rdrand'/>%s</cpu>\n",
                 s->rdseed ? "<feature policy='require' name='rdseed'/>" : "");
    /* A slot says so in its metadata (its shape): a re-adopting agent puts it back in the pool. */
    char slot_attr[64] = "";
    if (s->slot_shape)
        snprintf(slot_attr, sizeof(slot_attr), " slot='%.30s'", s->slot_shape);
    /* The boot: direct kernel boot, or a slot's firmware with RAM the agent can write. */
    cleanup_free char *boot_el = NULL;
    if ((firmware[0] ? asprintf(&boot_el,
                                "<loader type='rom' readonly='yes'>%s</loader></os>\n"
                                "  <memoryBacking><source type='memfd'/>"
                                "<access mode='shared'/></memoryBacking>",
                                firmware)
                     : asprintf(&boot_el, "<kernel>%s</kernel>%s<cmdline>%s</cmdline></os>",
                                kernel, initrd_el, cmdline)) < 0)
        return NULL;
    char *xml = NULL;
    /* direct kernel boot; acpi so a guest poweroff ends the domain; no USB, no balloon
     * (microvm has no PCI); on microvm every device virtio-mmio; nothing probed per call. */
    int n = asprintf(
        &xml,
        "<domain type='%s'>\n"
        "  <name>%s</name>\n"
        "  <uuid>%s</uuid>\n"
        "  <metadata><nubo:instance xmlns:nubo='" AGENT_METADATA_NS "' node='%s'%s/></metadata>\n"
        "  <memory unit='MiB'>%lld</memory>\n"
        "  <vcpu>%lld</vcpu>\n"
        "%s"
        "  <os><type arch='x86_64' machine='%s'>hvm</type>%s\n"
        "  <features><acpi/></features>\n"
        "%s"
        "  <clock offset='utc'/>\n"
        "  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot>"
        "<on_crash>destroy</on_crash>\n"
        "  <devices>\n"
        "    <controller type='usb' model='none'/>\n"
        "    <memballoon model='none'/>\n"
        /* Entropy from the host: without it a Linux guest's python blocks ~1 s in getrandom. */
        "    <rng model='virtio'><backend model='random'>/dev/urandom</backend>%s</rng>\n"
        "%s%s"
        "    <serial type='file'><source path='%s' append='on'/><target port='0'/></serial>\n"
        "    <console type='file'><source path='%s' append='on'/>"
        "<target type='serial' port='0'/></console>\n"
        "%s"
        "  </devices>\n"
        "</domain>\n",
        s->accel == AGENT_ACCEL_KVM ? "kvm" : "qemu", uuid, uuid, node, slot_attr,
        (long long)s->memory_mb, (long long)s->vcpus, sysinfo_el, pc ? "pc" : "microvm", boot_el,
        cpu_el, mmio, net_el, disk_el, console, console,
        pc ? "    <panic model='isa'><address type='isa' iobase='0x505'/></panic>\n" : "");
    if (n < 0)
        return NULL;
    return xml;
}

/* The value of attr='...' or attr="..." in the metadata element (bounded copy). */
static bool meta_attr(const char *md, const char *attr, char *out, size_t size)
{
    char key[32];
    snprintf(key, sizeof(key), " %s=", attr);
    const char *p = strstr(md, key);
    if (!p)
        return false;
    p += strlen(key);
    char q = *p++;
    const char *end = (q == '"' || q == '\'') ? strchr(p, q) : NULL;
    if (!end || (size_t)(end - p) >= size)
        return false;
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
    return true;
}

bool agent_domain_meta(virDomainPtr dom, const char *node, char slot[32],
                       char instance[NUBO_UUID_STR_LEN + 1])
{
    slot[0] = instance[0] = '\0';
    if (!agent_domain_is_ours(dom, node))
        return false;
    cleanup_free char *md =
        virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, AGENT_METADATA_NS, 0);
    if (md) {
        if (!meta_attr(md, "slot", slot, 32))
            slot[0] = '\0';
        if (!meta_attr(md, "instance", instance, NUBO_UUID_STR_LEN + 1) ||
            !nubo_uuid_valid(instance))
            instance[0] = '\0';
    }
    return true;
}

int agent_domain_meta_take(virDomainPtr dom, const char *node, const char *slot,
                           const char *instance)
{
    cleanup_free char *esc = agent_xml_escape(node);
    cleanup_free char *sl = agent_xml_escape(slot);
    if (!esc || !sl)
        return -1;
    char md[512];
    if (nubo_snprintf(md, sizeof(md), "<instance node='%s' slot='%s' instance='%s'/>", esc, sl,
                      instance) < 0)
        return -1;
    return virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, md, "nubo", AGENT_METADATA_NS,
                                VIR_DOMAIN_AFFECT_LIVE);
}

bool agent_domain_is_ours(virDomainPtr dom, const char *node)
{
    char *md = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, AGENT_METADATA_NS, 0);
    if (!md)
        return false;
    cleanup_free char *esc = agent_xml_escape(node);
    char want[256];
    snprintf(want, sizeof(want), "node=\"%s\"", esc ? esc : "");
    char want2[256];
    snprintf(want2, sizeof(want2), "node='%s'", esc ? esc : "");
    bool ours = strstr(md, want) || strstr(md, want2);
    free(md);
    return ours;
}
