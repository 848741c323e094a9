/* Allocation that cannot fail (crun's xmalloc, libvirt's g_new0): out of memory aborts with a
 * one-line message, so callers carry no error branch that is never taken. */
#ifndef NUBO_XALLOC_H
#define NUBO_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size) __attribute__((malloc, returns_nonnull));
/* Zeroed n * size bytes; the multiplication is overflow-checked. */
void *xcalloc(size_t n, size_t size) __attribute__((malloc, returns_nonnull));
void *xrealloc(void *p, size_t size) __attribute__((returns_nonnull));
char *xstrdup(const char *s) __attribute__((malloc, returns_nonnull));
char *xstrndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));
char *xasprintf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), malloc, returns_nonnull));
/* Abort with "out of memory" and what was being allocated; for the rare caller of a library
 * that allocates itself (evbuffer_new, json_dumps). */
void *xcheck(void *p, const char *what);

#endif
