/* Unit tests for common/oci_image.c: reproducible packing, input checks, safe extraction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>

#include "oci_image.h"
#include "util.h"

static char tmpdir[64];

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static char *path_in(const char *name)
{
    static char buf[16][256];
    static int k;
    k = (k + 1) % 16;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", tmpdir, name);
    return buf[k];
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-oci.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    unsigned char elf[256] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
    elf[18] = 62; /* EM_X86_64 */
    for (size_t i = 64; i < sizeof(elf); i++)
        elf[i] = (unsigned char)i;
    write_file(path_in("kernel"), elf, sizeof(elf));
    const char cpio[] = "07070100000000000000000000000000000000000000010000000000000000"
                        "000000000000000000000000000000000000000b00000000TRAILER!!!\0\0\0\0";
    write_file(path_in("initrd"), cpio, sizeof(cpio));
    write_file(path_in("notakernel"), "#!/bin/sh\necho hi\n", 18);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *const cmd[] = {"/usr/bin/python3", "/src/server.py", NULL};
static const char *const env[] = {"PYTHONUNBUFFERED=1", NULL};
static const char *const labels[] = {"org.nubo.kernel.args=console=ttyS0 quiet",
                                     "cloud.unikraft.v1.instances/scale_to_zero.policy=on", NULL};

static void test_pack_reproducible(void **state)
{
    struct nubo_image_spec spec = {.kernel_path = path_in("kernel"),
                                   .initrd_path = path_in("initrd"),
                                   .cmd = cmd, .env = env, .labels = labels,
                                   .ref_name = "acme/app:latest"};
    struct nubo_image_info a = {0}, b = {0};
    struct nubo_err err = {0};
    if (nubo_oci_pack(&spec, path_in("lay1"), &a, &err) < 0)
        fail_msg("%s", err.msg);
    sleep(1); /* a different wall clock must not change anything */
    if (nubo_oci_pack(&spec, path_in("lay2"), &b, &err) < 0)
        fail_msg("%s", err.msg);
    assert_string_equal(a.index_digest, b.index_digest);
    assert_string_equal(a.manifest_digest, b.manifest_digest);
    assert_string_equal(a.kernel_digest, b.kernel_digest);
    assert_true(nubo_digest_valid(a.initrd_digest));
    assert_true(a.size_in_bytes > 256);
    assert_string_equal(a.cmd[1], "/src/server.py");
    assert_null(a.cmd[2]);

    /* The config says x86_64 / kraftcloud and carries Cmd, Env, Labels, diff_ids. */
    char p[512];
    snprintf(p, sizeof(p), "%s/blobs/sha256/%s", path_in("lay1"), a.config_digest + 7);
    json_error_t jerr;
    json_t *cfg = json_load_file(p, 0, &jerr);
    assert_non_null(cfg);
    assert_string_equal(json_string_value(json_object_get(cfg, "architecture")), "x86_64");
    assert_string_equal(json_string_value(json_object_get(cfg, "os")), "kraftcloud");
    json_t *inner = json_object_get(cfg, "config");
    assert_int_equal(json_array_size(json_object_get(inner, "Cmd")), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(inner, "Labels"),
                                                          "org.nubo.kernel.args")),
                        "console=ttyS0 quiet");
    assert_int_equal(json_array_size(json_object_get(json_object_get(cfg, "rootfs"), "diff_ids")), 2);
    json_decref(cfg);

    /* Manifest: annotations kraftkit looks for; layers annotated with their path. */
    snprintf(p, sizeof(p), "%s/blobs/sha256/%s", path_in("lay1"), a.manifest_digest + 7);
    json_t *man = json_load_file(p, 0, &jerr);
    assert_non_null(man);
    assert_non_null(json_object_get(json_object_get(man, "annotations"), "sh.kraftkit.version"));
    json_t *l0 = json_array_get(json_object_get(man, "layers"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(l0, "annotations"),
                                                          NUBO_ANNOT_KERNEL)),
                        NUBO_PATH_KERNEL);
    json_decref(man);

    /* The kernel comes back out of its layer byte for byte. */
    snprintf(p, sizeof(p), "%s/blobs/sha256/%s", path_in("lay1"), a.kernel_digest + 7);
    if (nubo_oci_extract_layer_file(p, NUBO_PATH_KERNEL, path_in("kernel.out"), 1 << 20, &err) < 0)
        fail_msg("%s", err.msg);
    char *x = NULL, *y = NULL;
    size_t xl, yl;
    assert_int_equal(nubo_read_file(path_in("kernel"), 1 << 20, &x, &xl, NULL), 0);
    assert_int_equal(nubo_read_file(path_in("kernel.out"), 1 << 20, &y, &yl, NULL), 0);
    assert_int_equal(xl, yl);
    assert_memory_equal(x, y, xl);
    free(x);
    free(y);
    /* Asking for the initrd in the kernel layer fails. */
    assert_int_equal(nubo_oci_extract_layer_file(p, NUBO_PATH_INITRD, path_in("x"), 0, &err), -1);
    nubo_image_info_free(&a);
    nubo_image_info_free(&b);
}

static void test_pack_bad_inputs(void **state)
{
    struct nubo_err err = {0};
    struct nubo_image_spec spec = {.kernel_path = path_in("notakernel")};
    assert_int_equal(nubo_oci_pack(&spec, path_in("bad"), NULL, &err), -1);
    assert_non_null(strstr(err.msg, "neither an ELF nor a bzImage"));
    spec.kernel_path = path_in("kernel");
    spec.initrd_path = path_in("notakernel");
    assert_int_equal(nubo_oci_pack(&spec, path_in("bad"), NULL, &err), -1);
    assert_non_null(strstr(err.msg, "not a cpio archive"));
    spec.initrd_path = path_in("missing");
    assert_int_equal(nubo_oci_pack(&spec, path_in("bad"), NULL, &err), -1);
    if (!strstr(err.msg, "missing"))
        fail_msg("%s", err.msg);
    assert_null(strchr(err.msg, '\n'));
    spec.initrd_path = NULL;
    static const char *const badlabels[] = {"novalue", NULL};
    spec.labels = badlabels;
    assert_int_equal(nubo_oci_pack(&spec, path_in("bad"), NULL, &err), -1);
    assert_non_null(strstr(err.msg, "KEY=VALUE"));
}

enum kind { REG, SYMLINK, HARDLINK, CHARDEV, DIR };

/* A tar with the given entries (name, kind) in order. */
static void make_tar(const char *path, const char *const *names, const enum kind *kinds, size_t n)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, names[i]);
        archive_entry_set_perm(e, 0644);
        switch (kinds[i]) {
        case REG:
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_size(e, 5);
            break;
        case SYMLINK:
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, "/etc/passwd");
            break;
        case HARDLINK:
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, "etc/passwd");
            break;
        case CHARDEV:
            archive_entry_set_filetype(e, AE_IFCHR);
            archive_entry_set_rdev(e, 0x0101);
            break;
        case DIR:
            archive_entry_set_filetype(e, AE_IFDIR);
            break;
        }
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (kinds[i] == REG)
            archive_write_data(a, "hello", 5);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
}

static void test_extract_refusals(void **state)
{
    static const struct {
        const char *names[3];
        enum kind kinds[3];
        size_t n;
        const char *msg; /* NULL = must succeed */
    } cases[] = {
        {{"unikraft/bin/kernel"}, {REG}, 1, NULL},
        {{"/unikraft/bin/kernel"}, {REG}, 1, NULL},
        {{"./unikraft/", "./unikraft/bin/kernel"}, {DIR, REG}, 2, NULL},
        {{"../unikraft/bin/kernel"}, {REG}, 1, "'..'"},
        {{"unikraft/bin/../../../etc/x"}, {REG}, 1, "'..'"},
        {{"unikraft/bin/kernel", "etc/passwd"}, {REG, REG}, 2, "unexpected file"},
        {{"/etc/passwd"}, {REG}, 1, "unexpected file"},
        {{"unikraft/bin/kernel"}, {SYMLINK}, 1, "link"},
        {{"unikraft/bin/kernel"}, {HARDLINK}, 1, "link"},
        {{"unikraft/bin/kernel"}, {CHARDEV}, 1, "special file"},
        {{"unikraft/bin/kernel", "unikraft/bin/kernel"}, {REG, REG}, 2, "twice"},
        {{"unikraft/bin/other"}, {REG}, 1, "unexpected file"},
        {{"unikraft/"}, {DIR}, 1, "does not contain"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        make_tar(path_in("t.tar"), cases[i].names, cases[i].kinds, cases[i].n);
        unlink(path_in("t.out"));
        struct nubo_err err = {0};
        int rc = nubo_oci_extract_layer_file(path_in("t.tar"), NUBO_PATH_KERNEL, path_in("t.out"),
                                             1 << 20, &err);
        if (cases[i].msg == NULL) {
            if (rc != 0)
                fail_msg("case %zu: %s", i, err.msg);
            char *d = NULL;
            size_t l;
            assert_int_equal(nubo_read_file(path_in("t.out"), 100, &d, &l, NULL), 0);
            assert_string_equal(d, "hello");
            free(d);
        } else {
            if (rc == 0)
                fail_msg("case %zu (%s) extracted but must be refused", i, cases[i].names[0]);
            if (!strstr(err.msg, cases[i].msg))
                fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].msg);
            assert_int_equal(access(path_in("t.out"), F_OK), -1);
        }
    }
    /* Not a tar at all. */
    struct nubo_err err = {0};
    assert_int_equal(nubo_oci_extract_layer_file(path_in("notakernel"), NUBO_PATH_KERNEL,
                                                 path_in("t.out"), 1 << 20, &err),
                     -1);
}

/* A gzip layer of 16 MiB of zeros (about 16 KB compressed). */
static void make_bomb(const char *path, int64_t size)
{
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_gzip(a);
    assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "unikraft/bin/kernel");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0755);
    archive_entry_set_size(e, size);
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    static char zeros[65536];
    for (int64_t left = size; left > 0; left -= (int64_t)sizeof(zeros))
        archive_write_data(a, zeros, left < (int64_t)sizeof(zeros) ? (size_t)left : sizeof(zeros));
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
}

static void test_extract_cap(void **state)
{
    (void)state;
    const int64_t size = 16 << 20;
    make_bomb(path_in("bomb.tar.gz"), size);
    struct stat st;
    assert_int_equal(stat(path_in("bomb.tar.gz"), &st), 0);
    assert_true(st.st_size < (1 << 20)); /* small on the wire */
    /* Over the cap: refused (413), nothing left behind, no host path in the message. */
    unlink(path_in("bomb.out"));
    struct nubo_err err = {0};
    assert_int_equal(nubo_oci_extract_layer_file(path_in("bomb.tar.gz"), NUBO_PATH_KERNEL,
                                                 path_in("bomb.out"), 1 << 20, &err),
                     -1);
    assert_int_equal(err.http_status, 413);
    if (!strstr(err.msg, "limit of 1048576 bytes"))
        fail_msg("'%s' does not name the limit", err.msg);
    if (strstr(err.msg, tmpdir))
        fail_msg("'%s' shows a host path", err.msg);
    assert_int_equal(access(path_in("bomb.out"), F_OK), -1);
    /* One byte under its size is still refused; at its size it unpacks whole. */
    assert_int_equal(nubo_oci_extract_layer_file(path_in("bomb.tar.gz"), NUBO_PATH_KERNEL,
                                                 path_in("bomb.out"), (uint64_t)size - 1, &err),
                     -1);
    assert_int_equal(nubo_oci_extract_layer_file(path_in("bomb.tar.gz"), NUBO_PATH_KERNEL,
                                                 path_in("bomb.out"), (uint64_t)size, &err),
                     0);
    assert_int_equal(stat(path_in("bomb.out"), &st), 0);
    assert_int_equal(st.st_size, size);
    unlink(path_in("bomb.out"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_reproducible),
        cmocka_unit_test(test_pack_bad_inputs),
        cmocka_unit_test(test_extract_refusals),
        cmocka_unit_test(test_extract_cap),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
