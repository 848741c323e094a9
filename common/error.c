/* Error objects: formatted once, carried back to whoever can report them. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 3, 0)))
static void vfill(struct nubo_err *err, int errnum, const char *fmt, va_list ap)
{
    int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    if (n < 0)
        n = 0;
    if (errnum != 0 && (size_t)n < sizeof(err->msg))
        snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, ": %s", strerror(errnum));
    err->errnum = errnum;
}

int nubo_error(struct nubo_err *err, int errnum, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vfill(err, errnum, fmt, ap);
    va_end(ap);
    return -1;
}

int nubo_error_http(struct nubo_err *err, int http_status, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vfill(err, 0, fmt, ap);
    va_end(ap);
    err->http_status = http_status;
    return -1;
}

int nubo_error_wrap(struct nubo_err *err, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    char prev[NUBO_ERR_MSG_MAX];
    memcpy(prev, err->msg, sizeof(prev));
    prev[sizeof(prev) - 1] = '\0';
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    /* Append ": <previous message>", cut at the buffer's end (truncation is fine here). */
    size_t used = (size_t)n < sizeof(err->msg) ? (size_t)n : sizeof(err->msg) - 1;
    size_t room = sizeof(err->msg) - 1 - used;
    size_t plen = strlen(prev);
    if (room >= 2) {
        memcpy(err->msg + used, ": ", 2);
        used += 2;
        room -= 2;
        size_t take = plen < room ? plen : room;
        memcpy(err->msg + used, prev, take);
        used += take;
    }
    err->msg[used] = '\0';
    return -1;
}

void nubo_err_clear(struct nubo_err *err)
{
    if (err) {
        err->errnum = 0;
        err->http_status = 0;
        err->msg[0] = '\0';
    }
}
