/* libFuzzer entry for the CLI renderers: whatever JSON an API answers, the tables and the
 * deploy tree render without crashing (output to /dev/null). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
    if (!j)
        return 0;
    FILE *f = fopen("/dev/null", "w");
    if (f) {
        json_t *arr = json_is_array(j) ? j : NULL;
        json_t *wrapped = arr ? NULL : json_pack("[O]", j);
        json_t *items = arr ? arr : wrapped;
        cli_render_instances(f, items, 1000000000000000LL);
        cli_render_images(f, items);
        cli_render_nodes(f, items, 1000000000000000LL);
        cli_render_metros(f, items);
        cli_render_services(f, items, 1000000000000000LL);
        json_t *first = json_array_get(items, 0);
        if (json_is_object(first)) {
            cli_render_deploy_tree(f, first, true, "nubo");
            cli_render_object(f, first);
        }
        json_decref(wrapped);
        fclose(f);
    }
    json_decref(j);
    return 0;
}
