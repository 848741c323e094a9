/* libFuzzer target: proto's lenient client decoders of the API objects (instances, images,
 * nodes, metros, users, service groups, certificates, item status, log windows) on arbitrary
 * bytes. Whatever decodes must re-encode, decode again and encode to the same JSON: the
 * client loses nothing the encoder wrote. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cluster.h"
#include "service.h"

/* decode -> encode -> decode -> encode; the two encodings must be equal. */
#define ROUNDTRIP(T, dec, enc, fini)                                                               \
    do {                                                                                           \
        T a, b;                                                                                    \
        if (dec(j, &a, NULL) == 0) {                                                               \
            json_t *ea = enc(&a);                                                                  \
            if (ea == NULL || dec(ea, &b, NULL) != 0)                                              \
                abort();                                                                           \
            json_t *eb = enc(&b);                                                                  \
            if (!json_equal(ea, eb))                                                               \
                abort();                                                                           \
            json_decref(ea);                                                                       \
            json_decref(eb);                                                                       \
            fini(&a);                                                                              \
            fini(&b);                                                                              \
        }                                                                                          \
    } while (0)

static json_t *instance_enc(const struct nubo_instance *in)
{
    return nubo_instance_encode(in, true);
}

static void no_fini(void *p)
{
    (void)p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = NULL;
    if (pj_parse((const char *)data, size, NUBO_API_MAX_BODY, &j, NULL) < 0)
        return 0;
    ROUNDTRIP(struct nubo_instance, nubo_instance_decode, instance_enc, nubo_instance_free);
    ROUNDTRIP(struct nubo_image, nubo_image_decode, nubo_image_encode, nubo_image_free);
    ROUNDTRIP(struct nubo_node, nubo_node_decode, nubo_node_encode, nubo_node_free);
    ROUNDTRIP(struct nubo_metro, nubo_metro_decode, nubo_metro_encode, no_fini);
    ROUNDTRIP(struct nubo_user, nubo_user_decode, nubo_user_encode, no_fini);
    ROUNDTRIP(struct nubo_svc_group, nubo_svc_group_decode, nubo_svc_group_encode,
              nubo_svc_group_free);
    ROUNDTRIP(struct nubo_certificate, nubo_certificate_decode, nubo_certificate_encode,
              nubo_certificate_free);
    ROUNDTRIP(struct nubo_item_status, nubo_item_status_decode, nubo_item_status_encode, no_fini);
    ROUNDTRIP(struct nubo_log_window, nubo_log_window_decode, nubo_log_window_encode,
              nubo_log_window_free);
    /* lists and the envelope's client half */
    struct nubo_instance *v;
    size_t n;
    if (nubo_instance_list_decode(j, 64, &v, &n, NULL) == 0)
        nubo_instance_list_free(v, n);
    json_t *items;
    char msg[NUBO_ERR_MSG_MAX];
    nubo_envelope_items(j, "instances", &items, NULL);
    nubo_envelope_failed(j);
    nubo_envelope_message(j, msg, sizeof(msg));
    if (memchr(msg, '\0', sizeof(msg)) == NULL)
        abort();
    json_decref(j);
    return 0;
}
