/* libFuzzer target: the public API request decoders (create objects, batch items, image
 * references) on arbitrary bytes. Must never crash, leak or accept out-of-range values. */
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
        const char *s = json_string_value(json_object_get(e, "image"));
        struct nubo_api_image_ref ref;
        if (s)
            nubo_api_image_ref_parse(s, &ref, NULL);
    }
    json_decref(j);
    return 0;
}
