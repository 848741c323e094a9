/* Wake on bytes (scale-to-zero policy idle on TCP ports): a stateful instance in standby keeps
 * its established TCP sessions, and their server slot is kept for it (`sleeper`, plan.c).
 * HAProxy forwards such a session's next client bytes to the sleeping address and, with
 * `option contstats`, adds them to the slot's `bin` within 5 s; a move of that counter is the
 * signal to wake that very instance (activator.c posts the wake). Pure: unit-tested. */
#include "ingress_core.h"

#include <stdio.h>
#include <string.h>

const char *ing_slot_bin_step(struct ing_slot_bin *c, const char *instance, const char *sleeper,
                              uint64_t bin)
{
    /* The counter belongs to whoever the slot is for, awake or asleep: the same instance
     * going to standby keeps comparing (bytes counted late, after its stop, were still sent
     * to it); another instance, or a drop (a reload starts the counters again), only sets the
     * base. */
    const char *owner = instance[0] ? instance : sleeper;
    bool moved = c->known && strcmp(c->owner, owner) == 0 && bin > c->last_bin;
    c->known = true;
    c->last_bin = bin;
    snprintf(c->owner, sizeof(c->owner), "%s", owner);
    return moved && !instance[0] && sleeper[0] ? sleeper : NULL;
}
