/* Errors that carry their story (crun style): every fallible function takes a
 * struct nubo_err * last and returns < 0; the message says what was being done. */
#ifndef NUBO_ERROR_H
#define NUBO_ERROR_H

#include <stddef.h>

#define NUBO_ERR_MSG_MAX 512

struct nubo_err {
    int errnum;      /* errno value when the failure came from the OS, else 0 */
    int http_status; /* HTTP-ish classification for API replies (400, 404, ...), 0 = unset */
    char msg[NUBO_ERR_MSG_MAX];
};

/* Fill err (may be NULL) and return -1.  With errnum != 0 ": strerror" is appended. */
int nubo_error(struct nubo_err *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same, also recording an HTTP status for the reply. */
int nubo_error_http(struct nubo_err *err, int http_status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix an existing message: "what I was doing: <previous message>". */
int nubo_error_wrap(struct nubo_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void nubo_err_clear(struct nubo_err *err);

#endif
