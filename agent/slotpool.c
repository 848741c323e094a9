/* The warm-slot pool: per shape (memory_mb x vcpus) `[slots] size` domains launched paused
 * with the slot firmware (slots.c), so an instance that fits starts without libvirt's launch
 * cost. Launches run on workers, at most two at a time, and refill after every take or loss
 * once the takes have settled (a launch is seconds of libvirtd and qemu CPU: it must not
 * compete with a burst's takes and guest boots); the bookkeeping lives on the main thread like
 * all node state. A slot's tap is attached to
 * the bridge at launch but has no rules, so it passes nothing (firewall.c, rule 6) until an
 * instance takes it. Slots are not instances: never reported, never in state.json; their
 * metadata (node, shape) lets a restarted agent put a still-paused one back in the pool. */
#include "agent_core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "cleanup.h"
#include "log.h"

#define SLOT_LAUNCH_PARALLEL 2
#define SLOT_BACKOFF_MIN_MS 1000
#define SLOT_BACKOFF_MAX_MS 60000
/* Refill waits until no take is in flight and none began or ended for this long: the guests
 * of a burst boot in the second after their takes (measured, agent/README.md). */
#define SLOT_REFILL_SETTLE_MS 1000

int agent_slot_shapes_parse(const char *list, struct agent_slot_shape *out, size_t max,
                            size_t *n_out, struct nubo_err *err)
{
    size_t n = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        long long mb = strtoll(p, &end, 10);
        if (end == p || *end != 'x' || errno || mb < 1 || mb > (1 << 20))
            return nubo_error(err, 0, "slot shape '%.32s': want <memory_mb>x<vcpus>, e.g. 16x1",
                              p);
        p = end + 1;
        long long vc = strtoll(p, &end, 10);
        if (end == p || errno || vc < 1 || vc > 256 || (*end && *end != ',' && *end != ' '))
            return nubo_error(err, 0, "slot shape '%.32s': want <memory_mb>x<vcpus>, e.g. 16x1",
                              p);
        if (n >= max)
            return nubo_error(err, 0, "more than %zu slot shapes", max);
        for (size_t i = 0; i < n; i++)
            if (out[i].memory_mb == mb && out[i].vcpus == vc)
                return nubo_error(err, 0, "slot shape %lldx%lld given twice", mb, vc);
        out[n].memory_mb = mb;
        out[n].vcpus = vc;
        n++;
        p = end;
    }
    *n_out = n;
    return 0;
}

void agent_slot_shape_name(const struct agent_slot_shape *s, char out[32])
{
    snprintf(out, 32, "%lldx%lld", (long long)s->memory_mb, (long long)s->vcpus);
}

int agent_slot_shape_find(const struct agent_config *c, int64_t memory_mb, int64_t vcpus)
{
    for (size_t i = 0; i < c->n_slot_shapes; i++)
        if (c->slot_shapes[i].memory_mb == memory_mb && c->slot_shapes[i].vcpus == vcpus)
            return (int)i;
    return -1;
}

int agent_slot_count(const struct agent_slot_list *l, size_t shape, bool warm_only)
{
    int n = 0;
    struct agent_slot *s;
    LIST_FOREACH(s, l, link)
    if (s->shape == shape && (!warm_only || s->state == AGENT_SLOT_WARM))
        n++;
    return n;
}

struct agent_slot *agent_slot_pick(struct agent_slot_list *l, size_t shape)
{
    struct agent_slot *s, *last = NULL;
    /* the oldest warm slot: new ones go to the head */
    LIST_FOREACH(s, l, link)
    if (s->shape == shape && s->state == AGENT_SLOT_WARM)
        last = s;
    return last;
}

int64_t agent_slots_reserved_mb(const struct agent_config *c)
{
    int64_t mb = 0;
    for (size_t i = 0; i < c->n_slot_shapes; i++)
        mb += c->slot_shapes[i].memory_mb * c->slot_pool_size;
    return mb;
}

void agent_slot_net_names(const char *name, char tap[AGENT_TAP_MAX], char mac[AGENT_MAC_STR_MAX])
{
    agent_net_tap_name(name, tap);
    /* 02:6f: (locally administered, apart from the IP-derived 02:6e:) + 4 bytes of its hash */
    char hex[NUBO_SHA256_HEX_LEN + 1];
    nubo_sha256_hex(name, strlen(name), hex);
    snprintf(mac, AGENT_MAC_STR_MAX, "02:6f:%.2s:%.2s:%.2s:%.2s", hex + 20, hex + 22, hex + 24,
             hex + 26);
}

static void slot_console_path(const struct agent *ag, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/slots/%s.log", ag->cfg.state_dir, name);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    agent_slots_refill(arg);
}

int agent_slots_init(struct agent *ag, struct nubo_err *err)
{
    ag->slots = calloc(1, sizeof(*ag->slots));
    if (!ag->slots)
        return nubo_error(err, ENOMEM, "out of memory");
    LIST_INIT(&ag->slots->list);
    ag->slots->backoff_ms = SLOT_BACKOFF_MIN_MS;
    ag->slots->retry_ev = evtimer_new(ag->base, on_retry, ag);
    if (ag->cfg.slot_pool_size == 0)
        return 0;
    char p[AGENT_PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/slots", ag->cfg.state_dir);
    if (nubo_mkdir_p(p, 0700, err) < 0)
        return nubo_error_wrap(err, "slots dir");
    if (!ag->cfg.slot_firmware[0]) {
        /* next to the binary, as the build lays it out (agent/slotfw/slotfw.bin) */
        char exe[AGENT_PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n > 0) {
            exe[n] = '\0';
            char *slash = strrchr(exe, '/');
            if (slash)
                *slash = '\0';
            snprintf(ag->cfg.slot_firmware, sizeof(ag->cfg.slot_firmware),
                     "%.400s/slotfw/slotfw.bin", exe);
        }
    }
    if (access(ag->cfg.slot_firmware, R_OK) < 0)
        return nubo_error(err, errno, "[slots] firmware %s: set it to agent/slotfw/slotfw.bin "
                          "of the build, or [slots] size = 0", ag->cfg.slot_firmware);
    char names[AGENT_SLOT_SHAPES_MAX * 32] = "";
    for (size_t i = 0, off = 0; i < ag->cfg.n_slot_shapes; i++) {
        char sn[32];
        agent_slot_shape_name(&ag->cfg.slot_shapes[i], sn);
        off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s", i ? ", " : "", sn);
    }
    log_info("warm slots: %lld per shape (%s), %lld MiB held for them", (long long)ag->cfg.slot_pool_size,
             names, (long long)agent_slots_reserved_mb(&ag->cfg));
    return 0;
}

static void slot_forget(struct agent *ag, struct agent_slot *s)
{
    LIST_REMOVE(s, link);
    char p[AGENT_PATH_MAX + 64];
    slot_console_path(ag, s->name, p, sizeof(p));
    unlink(p);
    free(s);
}

void agent_slots_free(struct agent *ag)
{
    if (!ag->slots)
        return;
    struct agent_slot *s;
    /* the domains stay (a restarted agent adopts them); only the bookkeeping goes */
    while ((s = LIST_FIRST(&ag->slots->list))) {
        LIST_REMOVE(s, link);
        free(s);
    }
    if (ag->slots->retry_ev)
        event_free(ag->slots->retry_ev);
    free(ag->slots);
    ag->slots = NULL;
}

/* ---- launch ---- */

struct launch_job {
    char name[NUBO_UUID_STR_LEN + 1];
    virConnectPtr conn;
    struct agent_config cfg;
    char *xml;
    char tap[AGENT_TAP_MAX];
    int64_t memory_mb;
    struct agent_slot_ram ram;
    int64_t took_us;
    int rc;
    char error[AGENT_MSG_MAX];
};

static void launch_work(void *arg)
{
    struct launch_job *j = arg;
    struct nubo_err err = {0};
    int64_t t0 = nubo_mono_us();
    if (agent_net_tap_create(&j->cfg, j->tap, &err) < 0) {
        snprintf(j->error, sizeof(j->error), "%s", err.msg);
        j->rc = -1;
        return;
    }
    virDomainPtr d = virDomainCreateXML(j->conn, j->xml, VIR_DOMAIN_START_PAUSED);
    if (!d) {
        snprintf(j->error, sizeof(j->error), "%s", virGetLastErrorMessage());
        agent_net_tap_remove(&j->cfg, j->tap);
        j->rc = -1;
        return;
    }
    pid_t pid = agent_slot_qemu_pid(j->name);
    /* Attached now, without rules: the catch-all drops whatever it might carry until an
     * instance takes the slot and its rules go in (one nftables transaction at take). */
    if (pid <= 0 || agent_slot_ram_find(pid, j->memory_mb, &j->ram, &err) < 0 ||
        agent_net_tap_attach(&j->cfg, j->tap, &err) < 0) {
        snprintf(j->error, sizeof(j->error), "%s",
                 pid <= 0 ? "cannot find the slot's qemu process" : err.msg);
        virDomainDestroy(d);
        agent_net_tap_remove(&j->cfg, j->tap);
        j->rc = -1;
    }
    virDomainFree(d);
    j->took_us = nubo_mono_us() - t0;
}

static void launch_done(struct agent *ag, void *arg)
{
    struct launch_job *j = arg;
    virConnectClose(j->conn);
    free(j->xml);
    struct agent_slots *p = ag->slots;
    p->launching--;
    struct agent_slot *s;
    LIST_FOREACH(s, &p->list, link)
    if (strcmp(s->name, j->name) == 0)
        break;
    if (!s) { /* forgotten meanwhile (its domain was seen to end): nothing to keep */
        free(j);
        return;
    }
    if (j->rc < 0) {
        log_warnx("warm slot %s: cannot launch: %s; retrying in %lld ms", j->name, j->error,
                  (long long)p->backoff_ms);
        slot_forget(ag, s);
        struct timeval tv = {p->backoff_ms / 1000, (p->backoff_ms % 1000) * 1000};
        evtimer_add(p->retry_ev, &tv);
        p->backoff_ms = p->backoff_ms * 2 > SLOT_BACKOFF_MAX_MS ? SLOT_BACKOFF_MAX_MS
                                                                : p->backoff_ms * 2;
        free(j);
        return;
    }
    p->backoff_ms = SLOT_BACKOFF_MIN_MS;
    s->ram = j->ram;
    s->state = AGENT_SLOT_WARM;
    p->launched++;
    char sn[32];
    agent_slot_shape_name(&ag->cfg.slot_shapes[s->shape], sn);
    log_info("warm slot %s (%s) ready in %lld ms (qemu pid %d)", s->name, sn,
             (long long)(j->took_us / 1000), (int)s->ram.pid);
    free(j);
    agent_slots_refill(ag);
}

static int slot_launch(struct agent *ag, size_t shape)
{
    struct agent_slots *p = ag->slots;
    struct agent_slot *s = calloc(1, sizeof(*s));
    struct launch_job *j = calloc(1, sizeof(*j));
    if (!s || !j) {
        free(s);
        free(j);
        return -1;
    }
    nubo_uuid_new(s->name);
    s->shape = shape;
    s->state = AGENT_SLOT_LAUNCHING;
    agent_slot_net_names(s->name, s->tap, s->mac);
    char console[AGENT_PATH_MAX + 64], sn[32];
    slot_console_path(ag, s->name, console, sizeof(console));
    agent_slot_shape_name(&ag->cfg.slot_shapes[shape], sn);
    struct agent_domain_spec spec = {
        .uuid = s->name,
        .node = ag->cfg.node_name,
        .kernel = "",
        .console_path = console,
        .tap = s->tap,
        .mac = s->mac,
        .firmware = ag->cfg.slot_firmware,
        .slot_shape = sn,
        .memory_mb = ag->cfg.slot_shapes[shape].memory_mb,
        .vcpus = ag->cfg.slot_shapes[shape].vcpus,
        .accel = ag->accel,
        .boot = AGENT_BOOT_PVH,
        .rdseed = ag->virt.tcg_rdseed,
    };
    j->xml = agent_domain_xml(&spec);
    if (!j->xml) {
        free(s);
        free(j);
        return -1;
    }
    snprintf(j->name, sizeof(j->name), "%s", s->name);
    snprintf(j->tap, sizeof(j->tap), "%s", s->tap);
    j->cfg = ag->cfg;
    j->memory_mb = spec.memory_mb;
    j->conn = ag->virt.conn;
    virConnectRef(j->conn);
    LIST_INSERT_HEAD(&p->list, s, link);
    p->launching++;
    if (agent_spawn(ag, launch_work, launch_done, j) < 0) {
        p->launching--;
        LIST_REMOVE(s, link);
        virConnectClose(j->conn);
        free(j->xml);
        free(j);
        free(s);
        return -1;
    }
    log_debug("warm slot %s (%s): launching", s->name, sn);
    return 0;
}

void agent_slots_refill(struct agent *ag)
{
    struct agent_slots *p = ag->slots;
    if (!p || ag->cfg.slot_pool_size == 0 || !ag->virt.conn || !ag->bridge_ready ||
        ag->stopping || evtimer_pending(p->retry_ev, NULL))
        return;
    if (p->taking > 0)
        return; /* agent_slots_take_done calls again */
    int64_t quiet_us = nubo_mono_us() - p->last_take_mono_us;
    if (p->last_take_mono_us > 0 && quiet_us < SLOT_REFILL_SETTLE_MS * 1000) {
        int64_t left = SLOT_REFILL_SETTLE_MS * 1000 - quiet_us;
        struct timeval tv = {left / 1000000, left % 1000000};
        evtimer_add(p->retry_ev, &tv);
        return;
    }
    /* Round robin over the shapes, so one shape's refill does not starve another's. */
    bool more = true;
    while (more && p->launching < SLOT_LAUNCH_PARALLEL) {
        more = false;
        for (size_t i = 0; i < ag->cfg.n_slot_shapes && p->launching < SLOT_LAUNCH_PARALLEL;
             i++) {
            if (agent_slot_count(&p->list, i, false) >= ag->cfg.slot_pool_size)
                continue;
            if (slot_launch(ag, i) < 0)
                return;
            more = true;
        }
    }
}

struct agent_slot *agent_slots_take(struct agent *ag, int64_t memory_mb, int64_t vcpus)
{
    struct agent_slots *p = ag->slots;
    int shape = agent_slot_shape_find(&ag->cfg, memory_mb, vcpus);
    if (!p || shape < 0)
        return NULL;
    struct agent_slot *s = agent_slot_pick(&p->list, (size_t)shape);
    if (!s)
        return NULL;
    LIST_REMOVE(s, link);
    p->taken++;
    p->taking++;
    p->last_take_mono_us = nubo_mono_us();
    return s;
}

void agent_slots_take_done(struct agent *ag)
{
    struct agent_slots *p = ag->slots;
    if (!p || p->taking <= 0)
        return;
    p->taking--;
    p->last_take_mono_us = nubo_mono_us();
    agent_slots_refill(ag);
}

/* ---- losses and re-adoption ---- */

static struct agent_slot *slot_find(struct agent *ag, const char *name)
{
    struct agent_slot *s;
    LIST_FOREACH(s, &ag->slots->list, link)
    if (strcmp(s->name, name) == 0)
        return s;
    return NULL;
}

static void slot_lost(struct agent *ag, struct agent_slot *s, const char *why)
{
    log_warnx("warm slot %s: %s; replacing it", s->name, why);
    agent_net_tap_remove(&ag->cfg, s->tap);
    ag->slots->replaced++;
    slot_forget(ag, s);
    agent_slots_refill(ag);
}

int agent_slots_on_event(struct agent *ag, const char *name, int event)
{
    if (!ag->slots)
        return 0;
    struct agent_slot *s = slot_find(ag, name);
    if (!s)
        return 0;
    /* A launching slot's end is launch_done's to find (its pid or RAM lookup fails). */
    if (s->state == AGENT_SLOT_WARM &&
        (event == VIR_DOMAIN_EVENT_STOPPED || event == VIR_DOMAIN_EVENT_CRASHED ||
         event == VIR_DOMAIN_EVENT_SHUTDOWN))
        slot_lost(ag, s, "its qemu ended");
    return 1;
}

static void destroy_now(virDomainPtr dom, const char *name, const char *why)
{
    log_info("warm slot %s: destroyed (%s)", name, why);
    if (virDomainDestroy(dom) < 0)
        log_warnx("warm slot %s: destroy: %s", name, virGetLastErrorMessage());
}

int agent_slots_adopt(struct agent *ag, virDomainPtr dom, const char *shape)
{
    const char *name = virDomainGetName(dom);
    if (!ag->slots || !name)
        return 0;
    struct agent_slot *s = slot_find(ag, name);
    if (s)
        return 1; /* still ours (a libvirt reconnect) */
    char tap[AGENT_TAP_MAX], mac[AGENT_MAC_STR_MAX];
    agent_slot_net_names(name, tap, mac);
    int state = 0, reason = 0;
    int idx = -1;
    for (size_t i = 0; i < ag->cfg.n_slot_shapes; i++) {
        char sn[32];
        agent_slot_shape_name(&ag->cfg.slot_shapes[i], sn);
        if (strcmp(sn, shape) == 0)
            idx = (int)i;
    }
    if (idx < 0 || agent_slot_count(&ag->slots->list, (size_t)idx, false) >=
                       ag->cfg.slot_pool_size) {
        destroy_now(dom, name, idx < 0 ? "its shape is no longer configured" : "pool is full");
        agent_net_tap_remove(&ag->cfg, tap);
        return 0;
    }
    /* Only a slot still paused before its first instruction can be taken. */
    if (virDomainGetState(dom, &state, &reason, 0) < 0 || state != VIR_DOMAIN_PAUSED) {
        destroy_now(dom, name, "no longer paused");
        agent_net_tap_remove(&ag->cfg, tap);
        return 0;
    }
    struct nubo_err err = {0};
    struct agent_slot_ram ram;
    pid_t pid = agent_slot_qemu_pid(name);
    if (pid <= 0 || agent_slot_ram_find(pid, ag->cfg.slot_shapes[idx].memory_mb, &ram, &err) < 0) {
        destroy_now(dom, name, pid <= 0 ? "its qemu is not found" : err.msg);
        agent_net_tap_remove(&ag->cfg, tap);
        return 0;
    }
    if (!agent_slot_is_clean(&ram)) {
        destroy_now(dom, name, "a take was under way: it may hold a guest's data");
        agent_net_tap_remove(&ag->cfg, tap);
        return 0;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return 0;
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->shape = (size_t)idx;
    s->state = AGENT_SLOT_WARM;
    s->ram = ram;
    snprintf(s->tap, sizeof(s->tap), "%s", tap);
    snprintf(s->mac, sizeof(s->mac), "%s", mac);
    LIST_INSERT_HEAD(&ag->slots->list, s, link);
    log_info("warm slot %s (%s): adopted from libvirt (qemu pid %d)", name, shape, (int)pid);
    return 1;
}

void agent_slots_resync_done(struct agent *ag, virDomainPtr *doms, int n)
{
    if (!ag->slots)
        return;
    struct agent_slot *s, *tmp;
    for (s = LIST_FIRST(&ag->slots->list); s; s = tmp) {
        tmp = LIST_NEXT(s, link);
        if (s->state != AGENT_SLOT_WARM)
            continue;
        bool found = false;
        for (int i = 0; i < n && !found; i++) {
            const char *name = virDomainGetName(doms[i]);
            found = name && strcmp(name, s->name) == 0;
        }
        if (!found)
            slot_lost(ag, s, "its domain ended while libvirt was away");
    }
    agent_slots_refill(ag);
}
