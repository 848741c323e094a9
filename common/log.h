/* Logging (vmd style): log_warn appends strerror(errno), log_warnx does not. */
#ifndef NUBO_LOG_H
#define NUBO_LOG_H

enum nubo_log_level { NUBO_LOG_ERROR = 0, NUBO_LOG_WARN, NUBO_LOG_INFO, NUBO_LOG_DEBUG };

/* procname prefixes every line; level is the most verbose level printed. */
void log_init(const char *procname, enum nubo_log_level level);
void log_set_level(enum nubo_log_level level);
enum nubo_log_level log_get_level(void);
int log_level_parse(const char *s, enum nubo_log_level *out);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
