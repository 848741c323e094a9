/* libFuzzer entry for the CLI's Dockerfile-subset parser, the buildah decision and the flag
 * parsers (ports, shell words): any bytes, no crash, no leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct cli_dockerfile df;
    struct nubo_err err = {0};
    if (cli_dockerfile_parse(text, "Dockerfile", &df, &err) == 0) {
        char why[256];
        cli_dockerfile_needs_buildah(&df, "python:3.12", why, sizeof(why));
        cli_dockerfile_free(&df);
    }
    char **words = cli_shell_split(text, &err);
    cli_strv_free(words);
    if (size < 64) {
        struct cli_port ports[16];
        int n = 0;
        cli_parse_port(text, ports, &n, 16, &err);
    }
    free(text);
    return 0;
}
