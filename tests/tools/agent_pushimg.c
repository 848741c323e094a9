/* Test tool for the agent's tests and benchmark: push a unikernel image to a registry and
 * print "repo@sha256:…" (the index digest).
 *   agent_pushimg --registry URL --repo R --tag T --kernel FILE [--initrd FILE]
 *                 [--label K=V]... [--arg A]... [--env K=V]...      (packed by common/oci_image)
 *   agent_pushimg --registry URL --repo R --tag T --kernel-tar TAR  (layer pushed as given, to
 *                 test what the agent does with hostile layers) */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "oci_image.h"
#include "registry.h"
#include "util.h"

#define MAXV 32

static int raw_push(const struct nubo_registry *reg, const char *repo, const char *tag,
                    const char *tar, char out_digest[80], struct nubo_err *err)
{
    char *text = NULL;
    size_t len = 0;
    if (nubo_read_file(tar, 64u << 20, &text, &len, err) < 0)
        return -1;
    char hex[65], ldig[80], cdig[80], mdig[80], idig[80];
    nubo_sha256_hex(text, len, hex);
    snprintf(ldig, sizeof(ldig), "sha256:%s", hex);
    if (nubo_registry_put_blob_mem(reg, repo, text, len, ldig, err) < 0)
        return -1;
    size_t tar_len = len;
    free(text);
    const char *cfg = "{\"architecture\":\"x86_64\",\"os\":\"qemu\",\"config\":{},"
                      "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
    nubo_sha256_hex(cfg, strlen(cfg), hex);
    snprintf(cdig, sizeof(cdig), "sha256:%s", hex);
    if (nubo_registry_put_blob_mem(reg, repo, cfg, strlen(cfg), cdig, err) < 0)
        return -1;
    json_t *man = json_pack(
        "{s:i, s:s, s:{s:s, s:s, s:I}, s:[{s:s, s:s, s:I, s:{s:s}}]}", "schemaVersion", 2,
        "mediaType", NUBO_MEDIA_OCI_MANIFEST, "config", "mediaType", NUBO_MEDIA_OCI_CONFIG,
        "digest", cdig, "size", (json_int_t)strlen(cfg), "layers", "mediaType",
        NUBO_MEDIA_OCI_LAYER_TAR, "digest", ldig, "size", (json_int_t)tar_len, "annotations",
        NUBO_ANNOT_KERNEL, NUBO_PATH_KERNEL);
    char *mt = json_dumps(man, JSON_COMPACT);
    nubo_sha256_hex(mt, strlen(mt), hex);
    snprintf(mdig, sizeof(mdig), "sha256:%s", hex);
    if (nubo_registry_put_manifest(reg, repo, mdig, NUBO_MEDIA_OCI_MANIFEST, mt, strlen(mt), err) <
        0)
        return -1;
    json_t *idx = json_pack("{s:i, s:s, s:[{s:s, s:s, s:I, s:{s:s, s:s}}]}", "schemaVersion", 2,
                            "mediaType", NUBO_MEDIA_OCI_INDEX, "manifests", "mediaType",
                            NUBO_MEDIA_OCI_MANIFEST, "digest", mdig, "size",
                            (json_int_t)strlen(mt), "platform", "architecture", "x86_64", "os",
                            "qemu");
    char *it = json_dumps(idx, JSON_COMPACT);
    nubo_sha256_hex(it, strlen(it), hex);
    snprintf(idig, sizeof(idig), "sha256:%s", hex);
    if (nubo_registry_put_manifest(reg, repo, tag, NUBO_MEDIA_OCI_INDEX, it, strlen(it), err) < 0)
        return -1;
    snprintf(out_digest, 80, "%s", idig);
    free(mt);
    free(it);
    json_decref(man);
    json_decref(idx);
    return 0;
}

int main(int argc, char **argv)
{
    struct nubo_registry reg = {0};
    const char *repo = NULL, *tag = "latest", *kernel = NULL, *initrd = NULL, *ktar = NULL;
    const char *labels[MAXV + 1] = {0}, *args[MAXV + 1] = {0}, *env[MAXV + 1] = {0};
    int nl = 0, na = 0, ne = 0;
    static const struct option opts[] = {
        {"registry", required_argument, NULL, 'r'}, {"repo", required_argument, NULL, 'p'},
        {"tag", required_argument, NULL, 't'},      {"kernel", required_argument, NULL, 'k'},
        {"initrd", required_argument, NULL, 'i'},   {"kernel-tar", required_argument, NULL, 'K'},
        {"label", required_argument, NULL, 'l'},    {"arg", required_argument, NULL, 'a'},
        {"env", required_argument, NULL, 'e'},      {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'r': snprintf(reg.url, sizeof(reg.url), "%s", optarg); break;
        case 'p': repo = optarg; break;
        case 't': tag = optarg; break;
        case 'k': kernel = optarg; break;
        case 'i': initrd = optarg; break;
        case 'K': ktar = optarg; break;
        case 'l': if (nl < MAXV) labels[nl++] = optarg; break;
        case 'a': if (na < MAXV) args[na++] = optarg; break;
        case 'e': if (ne < MAXV) env[ne++] = optarg; break;
        default: return 2;
        }
    }
    if (!reg.url[0] || !repo || (!kernel && !ktar)) {
        fprintf(stderr, "usage: agent_pushimg --registry URL --repo R [--tag T] "
                        "(--kernel F [--initrd F] | --kernel-tar TAR) ...\n");
        return 2;
    }
    struct nubo_err err = {0};
    char digest[80];
    if (ktar) {
        if (raw_push(&reg, repo, tag, ktar, digest, &err) < 0) {
            fprintf(stderr, "agent_pushimg: %s\n", err.msg);
            return 1;
        }
    } else {
        char layout[] = "/tmp/agent-pushimg.XXXXXX";
        if (!mkdtemp(layout)) {
            perror("mkdtemp");
            return 1;
        }
        char ref[512];
        snprintf(ref, sizeof(ref), "%s:%s", repo, tag);
        struct nubo_image_spec spec = {.kernel_path = kernel,
                                       .initrd_path = initrd,
                                       .cmd = na ? args : NULL,
                                       .env = ne ? env : NULL,
                                       .labels = nl ? labels : NULL,
                                       .ref_name = ref};
        struct nubo_image_info info = {0}, pinfo = {0};
        int rc = nubo_oci_pack(&spec, layout, &pinfo, &err);
        if (rc == 0)
            rc = nubo_oci_push(layout, &reg, repo, tag, NULL, NULL, &info, &err);
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", layout);
        if (system(cmd) != 0)
            fprintf(stderr, "agent_pushimg: could not remove %s\n", layout);
        if (rc < 0) {
            fprintf(stderr, "agent_pushimg: %s\n", err.msg);
            return 1;
        }
        snprintf(digest, sizeof(digest), "%s", info.index_digest);
        nubo_image_info_free(&info);
        nubo_image_info_free(&pinfo);
    }
    printf("%s@%s\n", repo, digest);
    return 0;
}
