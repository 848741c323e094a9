/* A string-keyed hash map (FNV-1a, chained, doubling) for the controller's working set. */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

void *ctl_map_get(const struct ctl_map *m, const char *key)
{
    if (m->nb == 0)
        return NULL;
    uint64_t h = fnv(key);
    for (struct ctl_map_ent *e = m->b[h & (m->nb - 1)]; e; e = e->next)
        if (e->hash == h && strcmp(e->key, key) == 0)
            return e->val;
    return NULL;
}

static void grow(struct ctl_map *m)
{
    size_t nb = m->nb ? m->nb * 2 : 64;
    struct ctl_map_ent **b = xcalloc(nb, sizeof(*b));
    for (size_t i = 0; i < m->nb; i++)
        for (struct ctl_map_ent *e = m->b[i], *nx; e; e = nx) {
            nx = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

void ctl_map_put(struct ctl_map *m, const char *key, void *val)
{
    if (m->n + 1 > m->nb)
        grow(m);
    uint64_t h = fnv(key);
    struct ctl_map_ent **slot = &m->b[h & (m->nb - 1)];
    for (struct ctl_map_ent *e = *slot; e; e = e->next)
        if (e->hash == h && strcmp(e->key, key) == 0) {
            e->val = val;
            return;
        }
    size_t kl = strlen(key);
    struct ctl_map_ent *e = xmalloc(sizeof(*e) + kl + 1);
    e->hash = h;
    e->val = val;
    memcpy(e->key, key, kl + 1);
    e->next = *slot;
    *slot = e;
    m->n++;
}

void *ctl_map_del(struct ctl_map *m, const char *key)
{
    if (m->nb == 0)
        return NULL;
    uint64_t h = fnv(key);
    for (struct ctl_map_ent **pp = &m->b[h & (m->nb - 1)]; *pp; pp = &(*pp)->next) {
        struct ctl_map_ent *e = *pp;
        if (e->hash == h && strcmp(e->key, key) == 0) {
            void *v = e->val;
            *pp = e->next;
            free(e);
            m->n--;
            return v;
        }
    }
    return NULL;
}

void ctl_map_clear(struct ctl_map *m)
{
    for (size_t i = 0; i < m->nb; i++)
        for (struct ctl_map_ent *e = m->b[i], *nx; e; e = nx) {
            nx = e->next;
            free(e);
        }
    free(m->b);
    memset(m, 0, sizeof(*m));
}
