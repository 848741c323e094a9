/* libFuzzer entry for the CLI's Kraftfile reader (libyaml underneath): any bytes, no crash,
 * no leak, and a failure always comes with a one-line message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cli_kraftfile kf;
    struct nubo_err err = {0};
    if (cli_kraftfile_parse((const char *)data, size, "Kraftfile", &kf, &err) == 0)
        cli_kraftfile_free(&kf);
    else if (err.msg[0] == '\0')
        abort();
    return 0;
}
