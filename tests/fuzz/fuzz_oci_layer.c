/* libFuzzer entry for what nubo reads from registries: image references and layer tars
 * (nubo_oci_extract_layer_file must refuse or extract, never write outside its out_path). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oci_image.h"
#include "registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 512) {
        char ref[512];
        memcpy(ref, data, size);
        ref[size] = '\0';
        struct nubo_image_ref r;
        if (nubo_image_ref_parse(ref, &r, NULL) == 0) {
            char buf[600];
            nubo_image_ref_format(&r, buf, sizeof(buf));
        }
    }
    char in[] = "/tmp/fuzz-oci-layer-XXXXXX";
    int fd = mkstemp(in);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(in);
        return 0;
    }
    close(fd);
    char out[64];
    snprintf(out, sizeof(out), "%s.out", in);
    struct nubo_err err = {0};
    nubo_oci_extract_layer_file(in, NUBO_PATH_KERNEL, out, 1u << 20, &err);
    unlink(out);
    unlink(in);
    return 0;
}
