/* libFuzzer entry for the CLI renderers: whatever JSON an API answers, what proto's client
 * decoders accept renders as tables and the deploy tree without crashing (output to
 * /dev/null). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

#define NOW 1000000000000000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
    if (!j)
        return 0;
    FILE *f = fopen("/dev/null", "w");
    if (f) {
        json_t *items = json_is_array(j) ? json_incref(j) : json_pack("[O]", j);
        struct nubo_instance *in;
        struct nubo_image *im;
        struct nubo_node *no;
        struct nubo_metro *me;
        struct nubo_svc_group *sg;
        struct nubo_certificate *ce;
        size_t n;
        if (nubo_instance_list_decode(items, 64, &in, &n, NULL) == 0) {
            cli_render_instances(f, in, n, NOW);
            if (n)
                cli_render_deploy_tree(f, &in[0], true, "nubo");
            nubo_instance_list_free(in, n);
        }
        if (nubo_image_list_decode(items, 64, &im, &n, NULL) == 0) {
            cli_render_images(f, im, n);
            nubo_image_list_free(im, n);
        }
        if (nubo_node_list_decode(items, 64, &no, &n, NULL) == 0) {
            cli_render_nodes(f, no, n, NOW);
            nubo_node_list_free(no, n);
        }
        if (nubo_metro_list_decode(items, 64, &me, &n, NULL) == 0) {
            cli_render_metros(f, me, n);
            nubo_metro_list_free(me, n);
        }
        if (nubo_svc_group_list_decode(items, 64, &sg, &n, NULL) == 0) {
            cli_render_services(f, sg, n, NOW);
            nubo_svc_group_list_free(sg, n);
        }
        if (nubo_certificate_list_decode(items, 64, &ce, &n, NULL) == 0) {
            cli_render_certificates(f, ce, n, NOW);
            nubo_certificate_list_free(ce, n);
        }
        json_t *first = json_array_get(items, 0);
        if (json_is_object(first))
            cli_render_object(f, first);
        json_decref(items);
        fclose(f);
    }
    json_decref(j);
    return 0;
}
