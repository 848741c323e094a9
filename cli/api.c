/* The controller's REST API (Unikraft Cloud v1 envelope) from the CLI: one request, one
 * bounded JSON answer, one-line errors that say what to do. The envelope is read with
 * proto's client half (nubo_envelope_*). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cleanup.h"
#include "cli.h"

struct body {
    char *data;
    size_t len, cap;
    bool too_big;
};

static size_t body_cb(char *p, size_t sz, size_t nm, void *ud)
{
    struct body *b = ud;
    size_t n = sz * nm;
    if (b->len + n > CLI_API_BODY_MAX) {
        b->too_big = true;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

int cli_api(struct cli_ctx *ctx, const char *method, const char *path, json_t *body,
            json_t **out, struct nubo_err *err)
{
    char url[2048];
    size_t bl = strlen(ctx->api_url);
    while (bl && ctx->api_url[bl - 1] == '/')
        bl--;
    if (snprintf(url, sizeof(url), "%.*s%s", (int)bl, ctx->api_url, path) >= (int)sizeof(url))
        return nubo_error(err, 0, "API URL too long");
    CURL *c = curl_easy_init();
    if (!c)
        return nubo_error(err, ENOMEM, "cannot start an HTTP client");
    cleanup_free char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct curl_slist *h = NULL;
    char auth[1100];
    if (ctx->token[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ctx->token);
        h = curl_slist_append(h, auth);
    }
    h = curl_slist_append(h, "Accept: application/json");
    if (payload)
        h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    struct body b = {0};
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "nubo-cli/0.1");
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Waits are bounded by the server (timeout_ms); a dead server still ends the call. */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15L * 60 * 1000);
    if (payload) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    cleanup_free char *text = b.data;
    if (rc != CURLE_OK) {
        if (b.too_big)
            return nubo_error(err, 0, "%s %s: answer larger than %u bytes", method, path,
                              CLI_API_BODY_MAX);
        if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
            return nubo_error_http(err, 503,
                                   "cannot reach the nubo API at %s (%s): is nubo-controller "
                                   "running? set --api or NUBO_API",
                                   ctx->api_url, cerr[0] ? cerr : curl_easy_strerror(rc));
        return nubo_error_http(err, 502, "%s %s at %s failed: %s", method, path, ctx->api_url,
                               cerr[0] ? cerr : curl_easy_strerror(rc));
    }
    json_error_t jerr;
    json_t *j = text ? json_loadb(text, b.len, 0, &jerr) : NULL;
    char msg[NUBO_ERR_MSG_MAX];
    nubo_envelope_message(j, msg, sizeof(msg));
    if (status == 401 || status == 403) {
        nubo_error_http(err, (int)status,
                        "the nubo API at %s refused the token (HTTP %ld%s%s): run 'nubo login "
                        "--api %s --token TOKEN' or set NUBO_TOKEN",
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
