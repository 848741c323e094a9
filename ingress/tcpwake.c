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

/* The client's bytes that woke an instance wait in the node kernel's retransmission queue
 * (HAProxy's socket to the sleeping address), whose backoff doubles: after the guest is back,
 * the next retransmission comes at most about the time since the bytes were first sent later
 * (the wake, plus up to 6 s of counter lag before it was asked), and the answer's bytes show in
 * the counters up to 6 s after that (contstats, the report interval). Without the hold a short
 * cooldown put the woken instance back to standby before the bytes reached it, and the client
 * waited for an answer that never came. */
#define ING_WAKE_LAG_US (6 * INT64_C(1000000))
#define ING_WAKE_ASLEEP_MAX_US (120 * INT64_C(1000000)) /* a wake that never comes back */

void ing_wake_hold_start(struct ing_wake_hold *h, const char *instance, int64_t now_us)
{
    if (strcmp(h->instance, instance) == 0 && h->back_us == 0)
        return; /* asked again while it wakes: the first ask counts */
    memset(h, 0, sizeof(*h));
    snprintf(h->instance, sizeof(h->instance), "%s", instance);
    h->asked_us = now_us;
}

bool ing_wake_hold_step(struct ing_wake_hold *h, const char *holder, uint64_t sig, int64_t now_us)
{
    if (!h->instance[0])
        return false;
    bool done;
    if (strcmp(holder, h->instance) != 0) { /* still waking, or gone again (slot lost, stopped) */
        if (h->back_us != 0 || now_us - h->asked_us > ING_WAKE_ASLEEP_MAX_US)
            memset(h, 0, sizeof(*h));
        return false; /* not in the slot: nothing to hold there */
    } else if (h->back_us == 0) {
        h->back_us = now_us;
        h->sig = sig;
        return true;
    } else
        done = sig != h->sig || /* the bytes arrived: what follows is ordinary traffic */
               now_us >= h->back_us + (h->back_us - h->asked_us) + 2 * ING_WAKE_LAG_US;
    if (done)
        memset(h, 0, sizeof(*h));
    return !done;
}
