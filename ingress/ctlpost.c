/* The ingress's calls to the controller outside the watch (traffic reports, wakes, left-out
 * ports): one POST helper, below the daemon and the activator that both use it. */
#include "ingress_core.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "http.h"
#include "pjson.h"

int ing_controller_post(struct ing_config *cfg, const char *token, const char *path, json_t *body,
                        json_t **reply, struct nubo_err *err)
{
    cleanup_free char *text = pj_dump(body);
    json_decref(body);
    if (!text)
        return nubo_error(err, ENOMEM, "%s", path);
    char url[ING_PATH_MAX + 128]; /* path and query: for whichever controller answers */
    snprintf(url, sizeof(url), "%s?metro=%s", path, cfg->metro);
    struct nu_http_req rq;
    nu_http_req_init(&rq, "POST", url);
    rq.ca_file = cfg->controller_ca;
    rq.bearer = token;
    rq.headers[0] = "Content-Type: application/json";
    rq.body = text;
    rq.body_len = strlen(text);
    rq.connect_timeout_ms = 2000;
    rq.timeout_ms = 5000;
    rq.max_body = 1u << 20;
    struct nu_http_resp r;
    int rc = nu_http_targets_do(&cfg->controllers, &rq, &r, err);
    if (rc == 0 && r.status != 200)
        rc = nubo_error(err, 0, "%s: HTTP %ld: %.200s", path, r.status, r.body ? r.body : "");
    if (rc == 0 && reply)
        rc = pj_parse(r.body ? r.body : "", r.len, 1u << 20, reply, err);
    nu_http_resp_free(&r);
    return rc;
}
