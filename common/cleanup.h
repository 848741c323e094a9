/* Resources that free themselves: __attribute__((cleanup)) helpers (crun style). */
#ifndef NUBO_CLEANUP_H
#define NUBO_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <jansson.h>

static inline void nubo_freep(void *p)
{
    free(*(void **)p);
}
static inline void nubo_closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
static inline void nubo_fclosep(FILE **f)
{
    if (*f)
        fclose(*f);
}
static inline void nubo_json_decrefp(json_t **j)
{
    if (*j)
        json_decref(*j);
}

#define cleanup_free __attribute__((cleanup(nubo_freep)))
#define cleanup_close __attribute__((cleanup(nubo_closep)))
#define cleanup_fclose __attribute__((cleanup(nubo_fclosep)))
#define cleanup_json __attribute__((cleanup(nubo_json_decrefp)))

/* Hand ownership on: returns the pointer and clears the variable. */
static inline void *nubo_steal(void *pp)
{
    void **p = (void **)pp;
    void *r = *p;
    *p = NULL;
    return r;
}
#define steal_pointer(pp) nubo_steal(pp)

static inline int nubo_steal_fd(int *fd)
{
    int r = *fd;
    *fd = -1;
    return r;
}

#endif
