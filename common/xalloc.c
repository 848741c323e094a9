/* Allocation that cannot fail: see xalloc.h. */
#include "xalloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(const char *what, size_t size) __attribute__((noreturn));
static void oom(const char *what, size_t size)
{
    /* No allocation from here on: stderr is unbuffered and the message is fixed. */
    fprintf(stderr, "fatal: out of memory (%s, %zu bytes)\n", what, size);
    abort();
}

void *xcheck(void *p, const char *what)
{
    if (p == NULL)
        oom(what, 0);
    return p;
}

void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        oom("malloc", size);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        oom("calloc overflow", SIZE_MAX);
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom("calloc", n * size);
    return p;
}

void *xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL)
        oom("realloc", size);
    return q;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        oom("strdup", strlen(s) + 1);
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (p == NULL)
        oom("strndup", n + 1);
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom("asprintf", 0);
    return s;
}
