/* libFuzzer target: the public API request decoders (create objects, batch items, image
 * references, quota changes) on arbitrary bytes. Must never crash, leak or accept out-of-range values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = NULL;
    if (pj_parse((const char *)data, size, NUBO_API_MAX_BODY, &j, NULL) < 0)
        return 0;
    size_t n = json_is_array(j) ? json_array_size(j) : 1;
    for (size_t i = 0; i < n && i < 64; i++) {
        json_t *e = json_is_array(j) ? json_array_get(j, i) : j;
        struct nubo_create_req r;
        struct nubo_err err = {0};
        if (nubo_create_req_decode(e, &r, &err) == 0) {
            if (r.memory_mb < NUBO_API_MIN_MEMORY_MB || r.replicas > NUBO_API_MAX_REPLICAS ||
                r.vcpus < 1 || (r.name[0] && !nubo_name_valid(r.name)))
                abort();
            struct nubo_api_image_ref ref;
            nubo_api_image_ref_parse(r.image, &ref, NULL);
            json_t *back = nubo_create_req_encode(&r);
            struct nubo_create_req r2;
            if (nubo_create_req_decode(back, &r2, NULL) != 0)
                abort(); /* what we encode we must accept */
            nubo_create_req_free(&r2);
            json_decref(back);
            nubo_create_req_free(&r);
        } else if (strchr(err.msg, '\n')) {
            abort(); /* errors are one line */
        }
        for (int k = NUBO_ITEM_REF; k <= NUBO_ITEM_LOG; k++) {
            struct nubo_item it;
            if (nubo_item_decode(e, (enum nubo_item_kind)k, "[0]", &it, NULL) == 0 && !it.uuid[0] &&
                !nubo_name_valid(it.name))
                abort();
        }
        /* an admin's quota change: bounded values, and what we encode we accept */
        struct nubo_quota_set qs;
        struct nubo_err qerr = {0};
        if (nubo_quota_set_decode(e, &qs, &qerr) == 0) {
            for (int q = 0; q < NUBO_QUOTA_N; q++)
                if (qs.given[q] && (qs.hard[q] < -1 || qs.hard[q] > NUBO_QUOTA_UNLIMITED))
                    abort();
            json_t *back = nubo_quota_set_encode(&qs);
            struct nubo_quota_set qs2;
            if (nubo_quota_set_decode(back, &qs2, NULL) != 0 || memcmp(&qs, &qs2, sizeof(qs)))
                abort();
            json_decref(back);
        } else if (strchr(qerr.msg, '\n')) {
            abort();
        }
        const char *s = json_string_value(json_object_get(e, "image"));
        struct nubo_api_image_ref ref;
        if (s)
            nubo_api_image_ref_parse(s, &ref, NULL);
    }
    json_decref(j);
    return 0;
}
