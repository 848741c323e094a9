/* The controller's REST API (Unikraft Cloud v1 envelope) from the CLI: one request, one
 * bounded JSON answer, one-line errors that say what to do. The envelope is read with
 * proto's client half (nubo_envelope_*). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "http.h"

struct nu_http_targets *cli_api_targets(struct cli_ctx *ctx, struct nubo_err *err)
{
    if (ctx->api.n && strcmp(ctx->api_parsed, ctx->api_url) == 0)
        return &ctx->api;
    if (nu_http_targets_parse(&ctx->api, ctx->api_url, NULL, err) < 0) {
        ctx->api.n = 0;
        nubo_error_wrap(err, "the API URL (--api, NUBO_API or the profile's api)");
        return NULL;
    }
    snprintf(ctx->api_parsed, sizeof(ctx->api_parsed), "%s", ctx->api_url);
    return &ctx->api;
}

int cli_api(struct cli_ctx *ctx, const char *method, const char *path, json_t *body,
            json_t **out, struct nubo_err *err)
{
    struct nu_http_targets *api = cli_api_targets(ctx, err);
    if (!api)
        return -1;
    cleanup_free char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct nu_http_req rq;
    nu_http_req_init(&rq, method, path);
    rq.bearer = ctx->token;
    rq.ca_file = ctx->ca_file;
    rq.user_agent = "nubo-cli/0.1";
    nu_http_req_header(&rq, "Accept: application/json");
    if (payload) {
        nu_http_req_header(&rq, "Content-Type: application/json");
        rq.body = payload;
        rq.body_len = strlen(payload);
    }
    rq.max_body = CLI_API_BODY_MAX;
    /* Waits are bounded by the server (timeout_ms); a dead server still ends the call. */
    rq.timeout_ms = 15L * 60 * 1000;
    struct nu_http_resp rs;
    struct nubo_err herr = {0};
    int rc = nu_http_targets_do(api, &rq, &rs, &herr);
    long status = rs.status;
    cleanup_free char *text = rs.body;
    if (rc < 0) {
        if (rs.fail == NU_HTTP_TOO_BIG)
            return nubo_error(err, 0, "%s %s: answer larger than %u bytes", method, path,
                              CLI_API_BODY_MAX);
        if (rs.fail == NU_HTTP_UNREACHABLE)
            return nubo_error_http(err, 503,
                                   "cannot reach the nubo API at %s (%s): is nubo-controller "
                                   "running? set --api or NUBO_API",
                                   ctx->api_url, rs.why);
        return nubo_error_http(err, 502, "%s %s at %s failed: %s", method, path, ctx->api_url,
                               rs.why);
    }
    json_error_t jerr;
    json_t *j = text ? json_loadb(text, rs.len, 0, &jerr) : NULL;
    char msg[NUBO_ERR_MSG_MAX];
    nubo_envelope_message(j, msg, sizeof(msg));
    if (status == 401 || status == 403) {
        nubo_error_http(err, (int)status,
                        "the nubo API at %s refused the token (HTTP %ld%s%s): run 'nubo login "
                        "--api \"%s\" --token TOKEN' or set NUBO_TOKEN",
                        ctx->api_url, status, msg[0] ? ": " : "", msg, ctx->api_url);
        json_decref(j);
        return -1;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        return nubo_error_http(err, status >= 400 ? (int)status : 502,
                               "%s %s: the API at %s answered HTTP %ld without a JSON envelope",
                               method, path, ctx->api_url, status);
    }
    if (status >= 400 || nubo_envelope_failed(j)) {
        /* the first item's message names the object */
        nubo_error_http(err, status >= 400 ? (int)status : 400, "%s",
                        msg[0] ? msg : "the API reported an error without a message");
        json_decref(j);
        return -1;
    }
    *out = j;
    return 0;
}
