/* libFuzzer target: every agent-protocol decoder (register, watch, status, log) on arbitrary
 * bytes; decoded messages must re-encode and decode to the same thing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = NULL;
    if (pj_parse((const char *)data, size, NUBO_AGENT_MAX_BODY, &j, NULL) < 0)
        return 0;
    struct nubo_register_req rq;
    if (nubo_register_req_decode(j, &rq, NULL) == 0) {
        json_t *b = nubo_register_req_encode(&rq);
        struct nubo_register_req r2;
        if (nubo_register_req_decode(b, &r2, NULL) != 0 || r2.n_instances != rq.n_instances)
            abort();
        nubo_register_req_free(&r2);
        json_decref(b);
        nubo_register_req_free(&rq);
    }
    struct nubo_register_resp rs;
    nubo_register_resp_decode(j, &rs, NULL);
    struct nubo_watch_resp w;
    if (nubo_watch_resp_decode(j, &w, NULL) == 0) {
        json_t *b = nubo_watch_resp_encode(&w);
        struct nubo_watch_resp w2;
        if (nubo_watch_resp_decode(b, &w2, NULL) != 0 || w2.n_assignments != w.n_assignments)
            abort();
        nubo_watch_resp_free(&w2);
        json_decref(b);
        nubo_watch_resp_free(&w);
    }
    struct nubo_status_batch sb;
    if (nubo_status_batch_decode(j, &sb, NULL) == 0)
        nubo_status_batch_free(&sb);
    struct nubo_log_batch lb;
    if (nubo_log_batch_decode(j, &lb, NULL) == 0) {
        for (size_t i = 0; i < lb.n_logs; i++)
            if (lb.logs[i].len > NUBO_AGENT_MAX_LOG_CHUNK)
                abort();
        nubo_log_batch_free(&lb);
    }
    json_decref(j);
    return 0;
}
