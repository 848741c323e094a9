/* The state an instance is in, derived from what was asked (intent) and what its node last
 * reported (observation): the ground floor every part of the model reads, calling nothing. */
#include "ctl.h"

enum nubo_state ctl_instance_state(const struct ctl_instance *in)
{
    if (in->node && !in->node->ready)
        return NUBO_STATE_UNAVAILABLE;
    bool want_run = in->row.desired == NUBO_DESIRED_RUNNING;
    if (!in->has_obs || in->obs.start_seq < in->row.start_seq) {
        /* the node has not acted on the latest start yet */
        if (want_run)
            return NUBO_STATE_STARTING;
        if (!in->has_obs)
            return NUBO_STATE_STOPPED;
    }
    enum nubo_state s = in->obs.state;
    if (!want_run && (s == NUBO_STATE_STARTING || s == NUBO_STATE_RUNNING))
        return NUBO_STATE_STOPPING; /* asked to stop; the node has not reported it yet */
    /* stopped by scale-to-zero: the next request through the ingress starts it */
    if (!want_run && in->row.standby && s == NUBO_STATE_STOPPED)
        return NUBO_STATE_STANDBY;
    return s;
}

bool ctl_instance_holds(const struct ctl_instance *in)
{
    /* meant to run (starting, running, crashed with a restart to come) */
    if (in->row.desired == NUBO_DESIRED_RUNNING)
        return true;
    /* asked to stop: the guest occupies its node until the node reports it stopped. Stopped
     * and standby instances (stateless: the guest is gone) hold nothing; a start finds them
     * room (model_place.c). */
    return in->has_obs && in->obs.state != NUBO_STATE_STOPPED;
}

bool ctl_instance_sleeping(const struct ctl_instance *in)
{
    enum nubo_state s = ctl_instance_state(in);
    return s == NUBO_STATE_STANDBY || (in->row.standby && s == NUBO_STATE_STOPPING);
}

bool ctl_instance_hopeless(const struct ctl_instance *in, enum nubo_state want)
{
    /* Waiting for running is hopeless once the node acted on the latest start and the
     * instance stopped with nothing scheduled to start it again (no restart pending, still
     * meant to run: a crash or a failed start, not a user's stop). */
    return want == NUBO_STATE_RUNNING && in->row.desired == NUBO_DESIRED_RUNNING && in->has_obs &&
           in->obs.start_seq >= in->row.start_seq && in->row.start_seq > 0 &&
           ctl_instance_state(in) == NUBO_STATE_STOPPED && in->obs.restart_next_at_us == 0;
}
