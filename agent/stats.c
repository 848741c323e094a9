/* Stats of the running domains for the controller's instance metrics: each heartbeat a worker
 * asks libvirt for every domain's CPU time (virDomainGetInfo) and the VMM's resident set
 * (virDomainMemoryStats' rss, which qemu's driver reads from /proc even without a balloon);
 * the next status batch ships them. */
#include "agent_core.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

struct stats_job {
    virConnectPtr conn;
    size_t n;
    struct nubo_instance_stats *s;
};

static void stats_work(void *arg)
{
    struct stats_job *j = arg;
    for (size_t i = 0; i < j->n; i++) {
        virDomainPtr d = virDomainLookupByName(j->conn, j->s[i].uuid);
        if (d == NULL) {
            j->s[i].uuid[0] = '\0';
            continue;
        }
        virDomainInfo info;
        if (virDomainGetInfo(d, &info) == 0)
            j->s[i].cpu_time_ms = (int64_t)(info.cpuTime / 1000000);
        virDomainMemoryStatStruct ms[VIR_DOMAIN_MEMORY_STAT_NR];
        int n = virDomainMemoryStats(d, ms, VIR_DOMAIN_MEMORY_STAT_NR, 0);
        for (int k = 0; k < n; k++)
            if (ms[k].tag == VIR_DOMAIN_MEMORY_STAT_RSS)
                j->s[i].rss_bytes = (int64_t)ms[k].val * 1024;
        virDomainFree(d);
    }
}

static void stats_done(struct agent *ag, void *arg)
{
    struct stats_job *j = arg;
    virConnectClose(j->conn);
    ag->stats_inflight = false;
    for (size_t i = 0; i < j->n; i++) {
        struct agent_instance *in =
            j->s[i].uuid[0] ? agent_instance_find_dom(ag, j->s[i].uuid) : NULL;
        if (in == NULL || !in->domain)
            continue;
        in->rss_bytes = j->s[i].rss_bytes;
        in->cpu_time_ms = j->s[i].cpu_time_ms;
        ag->stats_dirty = true;
    }
    free(j->s);
    free(j);
}

void agent_stats_collect(struct agent *ag)
{
    if (ag->stats_inflight || !ag->virt.conn)
        return;
    size_t n = 0;
    struct agent_instance *in;
    LIST_FOREACH(in, &ag->instances, link)
    n += in->domain;
    if (n == 0)
        return;
    struct stats_job *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->s = calloc(n, sizeof(*j->s))) == NULL) {
        free(j);
        return;
    }
    LIST_FOREACH(in, &ag->instances, link)
    if (in->domain && j->n < n)
        memcpy(j->s[j->n++].uuid, in->dom, sizeof(j->s[0].uuid)); /* the domain's name */
    j->conn = ag->virt.conn;
    virConnectRef(j->conn);
    ag->stats_inflight = true;
    if (agent_spawn(ag, stats_work, stats_done, j) < 0) {
        ag->stats_inflight = false;
        virConnectClose(j->conn);
        free(j->s);
        free(j);
    }
}

size_t agent_stats_report(struct agent *ag, struct nubo_instance_stats **out)
{
    *out = NULL;
    if (!ag->stats_dirty)
        return 0;
    size_t n = 0;
    struct agent_instance *in;
    LIST_FOREACH(in, &ag->instances, link)
    n += in->domain;
    *out = calloc(n + 1, sizeof(**out));
    if (*out == NULL)
        return 0;
    size_t k = 0;
    LIST_FOREACH(in, &ag->instances, link)
    {
        if (!in->domain || k >= n)
            continue;
        memcpy((*out)[k].uuid, in->uuid, sizeof((*out)[k].uuid));
        (*out)[k].rss_bytes = in->rss_bytes;
        (*out)[k++].cpu_time_ms = in->cpu_time_ms;
    }
    ag->stats_dirty = false;
    return k;
}
