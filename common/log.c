/* Logging to stderr with a timestamp, the process name and a level. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Process-wide settings, written once at start-up before any thread exists. */
static const char *log_procname = "nubo";
static enum nubo_log_level log_level = NUBO_LOG_INFO;

void log_init(const char *procname, enum nubo_log_level level)
{
    log_procname = procname;
    log_level = level;
}

void log_set_level(enum nubo_log_level level)
{
    log_level = level;
}

enum nubo_log_level log_get_level(void)
{
    return log_level;
}

int log_level_parse(const char *s, enum nubo_log_level *out)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, names[i]) == 0) {
            *out = (enum nubo_log_level)i;
            return 0;
        }
    return -1;
}

__attribute__((format(printf, 3, 0)))
static void vlog(enum nubo_log_level lvl, int errnum, const char *fmt, va_list ap)
{
    static const char *tags[] = {"error", "warn", "info", "debug"};
    if (lvl > log_level)
        return;
    char buf[2048];
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    if (n < 0)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    if (errnum)
        fprintf(stderr, "%02d:%02d:%02d.%03ld %s %s: %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
                ts.tv_nsec / 1000000, log_procname, tags[lvl], buf, strerror(errnum));
    else
        fprintf(stderr, "%02d:%02d:%02d.%03ld %s %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
                ts.tv_nsec / 1000000, log_procname, tags[lvl], buf);
}

void log_warn(const char *fmt, ...)
{
    int e = errno;
    va_list ap;
    va_start(ap, fmt);
    vlog(NUBO_LOG_WARN, e, fmt, ap);
    va_end(ap);
}

void log_warnx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(NUBO_LOG_WARN, 0, fmt, ap);
    va_end(ap);
}

void log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(NUBO_LOG_INFO, 0, fmt, ap);
    va_end(ap);
}

void log_debug(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(NUBO_LOG_DEBUG, 0, fmt, ap);
    va_end(ap);
}
