/* Runtime API commands that turn the running plan into the next one without a reload: server
 * slots get an address and `ready`, `drain` or `maint`; domains are map entries. */
#include "ingress_core.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ing_cmds_free(struct ing_cmds *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i]);
    free(c->v);
    c->v = NULL;
    c->n = 0;
}

__attribute__((format(printf, 3, 4))) static int cmd_add(struct ing_cmds *c,
                                                         struct nubo_err *err, const char *fmt,
                                                         ...)
{
    char buf[ING_CMD_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return nubo_error(err, 0, "runtime command longer than %d bytes", ING_CMD_MAX);
    char **nv = realloc(c->v, (c->n + 1) * sizeof(*nv));
    if (!nv)
        return nubo_error(err, ENOMEM, "runtime command");
    c->v = nv;
    if (!(c->v[c->n] = strdup(buf)))
        return nubo_error(err, ENOMEM, "runtime command");
    c->n++;
    return 0;
}

static const char *slot_state(const struct ing_slot *s)
{
    if (!s || !s->instance[0])
        return "maint";
    return s->draining ? "drain" : "ready";
}

static int backend_cmds(const struct ing_backend *pb, const struct ing_backend *b,
                        struct ing_cmds *out, struct nubo_err *err)
{
    for (size_t i = 0; i < b->n_nodes; i++) {
        const struct ing_node_slots *ns = &b->nodes[i];
        const struct ing_node_slots *pns = NULL;
        for (size_t j = 0; pb && j < pb->n_nodes; j++)
            if (strcmp(pb->nodes[j].node, ns->node) == 0)
                pns = &pb->nodes[j];
        for (size_t k = 0; k < ns->n_slots; k++) {
            const struct ing_slot *s = &ns->slots[k];
            const struct ing_slot *ps = pns && k < pns->n_slots ? &pns->slots[k] : NULL;
            bool addr_changed = false;
            if (s->instance[0] && (!ps || !ps->instance[0] || strcmp(ps->ip, s->ip) != 0)) {
                if (cmd_add(out, err, "set server %s/%s-%zu addr %s port %lld", b->name, ns->node,
                            k + 1, s->ip, (long long)b->dest_port) < 0)
                    return -1;
                addr_changed = true;
            }
            const char *want = slot_state(s), *had = slot_state(ps);
            if (addr_changed || strcmp(want, had) != 0)
                if (cmd_add(out, err, "set server %s/%s-%zu state %s", b->name, ns->node, k + 1,
                            want) < 0)
                    return -1;
        }
    }
    return 0;
}

static const struct ing_map_entry *map_find(const struct ing_plan *p, int64_t port,
                                            const char *key)
{
    for (size_t i = 0; p && i < p->n_maps; i++)
        if (p->maps[i].port == port && strcmp(p->maps[i].key, key) == 0)
            return &p->maps[i];
    return NULL;
}

int ing_runtime_cmds(const struct ing_config *cfg, const struct ing_plan *prev,
                     const struct ing_plan *next, struct ing_cmds *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    char path[ING_PATH_MAX + 64];
    /* Servers first, so a domain added below finds its instances ready. */
    for (size_t i = 0; i < next->n_backends; i++)
        if (backend_cmds(ing_plan_backend(prev, next->backends[i].name), &next->backends[i], out,
                         err) < 0)
            goto fail;
    for (size_t i = 0; i < next->n_maps; i++) {
        const struct ing_map_entry *e = &next->maps[i];
        const struct ing_map_entry *pe = map_find(prev, e->port, e->key);
        ing_map_path(cfg, e->port, path, sizeof(path));
        if (!pe) {
            if (cmd_add(out, err, "add map %s %s %s", path, e->key, e->value) < 0)
                goto fail;
        } else if (strcmp(pe->value, e->value) != 0) {
            if (cmd_add(out, err, "set map %s %s %s", path, e->key, e->value) < 0)
                goto fail;
        }
    }
    for (size_t i = 0; prev && i < prev->n_maps; i++) {
        const struct ing_map_entry *pe = &prev->maps[i];
        if (map_find(next, pe->port, pe->key))
            continue;
        ing_map_path(cfg, pe->port, path, sizeof(path));
        if (cmd_add(out, err, "del map %s %s", path, pe->key) < 0)
            goto fail;
    }
    return 0;
fail:
    ing_cmds_free(out);
    return -1;
}

bool ing_runtime_reply_ok(const char *cmd, const char *reply)
{
    if (!reply)
        return false;
    if (strncmp(cmd, "set server ", 11) == 0 && strstr(cmd, " addr "))
        return strstr(reply, "changed from") || strstr(reply, "no need to change");
    for (const char *c = reply; *c; c++)
        if (*c != '\n' && *c != '\r' && *c != ' ')
            return false;
    return true;
}
