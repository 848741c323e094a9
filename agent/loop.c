/* The agent's threading plumbing, below every module: results posted back to the main thread,
 * worker threads, the coalesced state save and inotify watches. The one main thread owns all
 * node state; workers touch none of it and post their results here. The save itself is the
 * state module's, reached through the events hook so this floor calls nothing above it. */
#include "agent_core.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/inotify.h>

#include "log.h"

static void on_posts(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct agent *ag = arg;
    for (;;) {
        pthread_mutex_lock(&ag->post_mu);
        struct agent_post *p = TAILQ_FIRST(&ag->posts);
        if (p)
            TAILQ_REMOVE(&ag->posts, p, link);
        pthread_mutex_unlock(&ag->post_mu);
        if (!p)
            break;
        p->fn(ag, p->arg);
        free(p);
    }
}

void agent_post_main(struct agent *ag, agent_main_fn fn, void *arg)
{
    struct agent_post *p = calloc(1, sizeof(*p));
    if (!p)
        abort(); /* nothing sensible is left to do without memory for a 32-byte message */
    p->fn = fn;
    p->arg = arg;
    pthread_mutex_lock(&ag->post_mu);
    TAILQ_INSERT_TAIL(&ag->posts, p, link);
    pthread_mutex_unlock(&ag->post_mu);
    event_active(ag->post_ev, EV_READ, 0);
}

struct spawn {
    struct agent *ag;
    void (*work)(void *);
    agent_main_fn done;
    void *arg;
};

static void spawn_done(struct agent *ag, void *arg)
{
    struct spawn *s = arg;
    pthread_mutex_lock(&ag->work_mu);
    ag->workers--;
    pthread_cond_broadcast(&ag->work_cv);
    pthread_mutex_unlock(&ag->work_mu);
    if (s->done)
        s->done(ag, s->arg);
    free(s);
}

static void *spawn_main(void *arg)
{
    struct spawn *s = arg;
    s->work(s->arg);
    agent_post_main(s->ag, spawn_done, s);
    return NULL;
}

int agent_spawn(struct agent *ag, void (*work)(void *arg), agent_main_fn done, void *arg)
{
    struct spawn *s = calloc(1, sizeof(*s));
    if (!s)
        return -1;
    *s = (struct spawn){ag, work, done, arg};
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&ag->work_mu);
    ag->workers++;
    pthread_mutex_unlock(&ag->work_mu);
    pthread_t t;
    int rc = pthread_create(&t, &at, spawn_main, s);
    pthread_attr_destroy(&at);
    if (rc != 0) {
        pthread_mutex_lock(&ag->work_mu);
        ag->workers--;
        pthread_mutex_unlock(&ag->work_mu);
        free(s);
        errno = rc;
        return -1;
    }
    return 0;
}

static void on_save(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct agent *ag = arg;
    ag->save_pending = false;
    struct nubo_err err = {0};
    if (ag->events.save && ag->events.save(ag, &err) < 0)
        log_warnx("%s", err.msg);
}

void agent_schedule_save(struct agent *ag)
{
    /* Coalesce the writes of one loop iteration into one file write. */
    if (ag->save_pending)
        return;
    ag->save_pending = true;
    event_active(ag->save_ev, EV_TIMEOUT, 0);
}

int agent_inotify_add(struct agent *ag, const char *dir, uint32_t mask)
{
    return inotify_add_watch(ag->inotify_fd, dir, mask);
}

int agent_loop_init(struct agent *ag, struct nubo_err *err)
{
    TAILQ_INIT(&ag->posts);
    pthread_mutex_init(&ag->post_mu, NULL);
    pthread_mutex_init(&ag->work_mu, NULL);
    pthread_cond_init(&ag->work_cv, NULL);
    ag->post_ev = event_new(ag->base, -1, 0, on_posts, ag);
    ag->save_ev = event_new(ag->base, -1, 0, on_save, ag);
    if (!ag->post_ev || !ag->save_ev)
        return nubo_error(err, 0, "cannot create the main loop's events");
    return 0;
}

void agent_loop_fini(struct agent *ag)
{
    if (ag->post_ev) {
        on_posts(-1, 0, ag); /* free anything left */
        event_free(ag->post_ev);
        ag->post_ev = NULL;
    }
    if (ag->save_ev)
        event_free(ag->save_ev);
    ag->save_ev = NULL;
}
