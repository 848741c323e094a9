/* The agent's view of a kernel file: boot protocol detection (bzImage, PVH note, Multiboot v1,
 * Firecracker's bare 64-bit ELF) on synthetic files and, when present, on the stock Unikraft
 * fixtures; the refusal message; the NUBO_READY scan; readiness rules; Unikraft's console lines;
 * the guest CPU per accelerator. The command line and domain a stock unikernel gets are in
 * test_agent_core. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_core.h"

static char g_dir[64];

static const char *tmpfile_with(const char *name, const void *data, size_t len)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}

/* A 64-bit ELF with one PT_NOTE segment holding the given note. */
static size_t make_elf64(unsigned char *buf, size_t cap, const char *note_name, uint32_t note_type)
{
    memset(buf, 0, cap);
    Elf64_Ehdr *eh = (Elf64_Ehdr *)buf;
    memcpy(eh->e_ident, ELFMAG, SELFMAG);
    eh->e_ident[EI_CLASS] = ELFCLASS64;
    eh->e_ident[EI_DATA] = ELFDATA2LSB;
    eh->e_type = ET_EXEC;
    eh->e_machine = EM_X86_64;
    eh->e_phoff = sizeof(Elf64_Ehdr);
    eh->e_phentsize = sizeof(Elf64_Phdr);
    eh->e_phnum = 1;
    Elf64_Phdr *ph = (Elf64_Phdr *)(buf + sizeof(Elf64_Ehdr));
    size_t note_off = 0x100;
    uint32_t namesz = note_name ? (uint32_t)strlen(note_name) + 1 : 0, descsz = 4;
    ph->p_type = note_name ? PT_NOTE : PT_LOAD;
    ph->p_offset = note_off;
    ph->p_filesz = 12 + ((namesz + 3) & ~3u) + 4;
    if (note_name) {
        memcpy(buf + note_off, &namesz, 4);
        memcpy(buf + note_off + 4, &descsz, 4);
        memcpy(buf + note_off + 8, &note_type, 4);
        memcpy(buf + note_off + 12, note_name, namesz);
    }
    return 0x200 < cap ? 0x200 : cap;
}

static void test_probe_synthetic(void **state)
{
    (void)state;
    struct agent_kernel_info ki;
    struct nubo_err err = {0};
    unsigned char buf[0x2000];

    memset(buf, 0, sizeof(buf));
    memcpy(buf + 0x202, "HdrS", 4);
    assert_int_equal(agent_kernel_probe(tmpfile_with("bz", buf, 0x400), &ki, &err), 0);
    assert_int_equal(ki.boot, AGENT_BOOT_BZIMAGE);
    assert_true(ki.linux_kernel);

    size_t n = make_elf64(buf, sizeof(buf), "Xen", 18);
    assert_int_equal(agent_kernel_probe(tmpfile_with("pvh", buf, n), &ki, &err), 0);
    assert_int_equal(ki.boot, AGENT_BOOT_PVH);
    assert_false(ki.linux_kernel);

    n = make_elf64(buf, sizeof(buf), "Linux", 1);
    assert_int_equal(agent_kernel_probe(tmpfile_with("lx", buf, n), &ki, &err), 0);
    assert_int_equal(ki.boot, AGENT_BOOT_LINUX64); /* a vmlinux without PVH: not for qemu */
    assert_true(ki.linux_kernel);

    n = make_elf64(buf, sizeof(buf), NULL, 0);
    assert_int_equal(agent_kernel_probe(tmpfile_with("fc", buf, n), &ki, &err), 0);
    assert_int_equal(ki.boot, AGENT_BOOT_LINUX64);
    char why[256];
    assert_int_equal(agent_kernel_refusal(&ki, "kraftcloud", why, sizeof(why)), -1);
    assert_non_null(strstr(why, "Firecracker"));

    /* Multiboot v1: magic + flags + checksum == 0, 4-aligned in the first 8 KiB */
    memset(buf, 0, sizeof(buf));
    uint32_t mb[3] = {0x1BADB002u, 0x00010003u, 0};
    mb[2] = (uint32_t) - (mb[0] + mb[1]);
    memcpy(buf + 0x1000, mb, sizeof(mb));
    assert_int_equal(agent_kernel_probe(tmpfile_with("mb", buf, sizeof(buf)), &ki, &err), 0);
    assert_int_equal(ki.boot, AGENT_BOOT_MULTIBOOT);
    assert_int_equal(agent_kernel_refusal(&ki, "qemu", why, sizeof(why)), 0);
    /* a bad checksum is no header; nor is one misaligned or past 8 KiB */
    mb[2]++;
    memcpy(buf + 0x1000, mb, sizeof(mb));
    assert_int_equal(agent_kernel_probe(tmpfile_with("mb2", buf, sizeof(buf)), &ki, &err), 0);
    assert_int_equal(ki.boot, AGENT_BOOT_UNKNOWN);
    assert_int_equal(agent_kernel_refusal(&ki, "", why, sizeof(why)), -1);
    assert_non_null(strstr(why, "qemu cannot boot it"));

    /* the image config's platform wins: an fc kernel is refused by name */
    ki.boot = AGENT_BOOT_MULTIBOOT;
    assert_int_equal(agent_kernel_refusal(&ki, "fc", why, sizeof(why)), -1);
    assert_non_null(strstr(why, "fc platform"));

    assert_int_equal(agent_kernel_probe("/nonexistent/kernel", &ki, &err), -1);
}

/* The committed stock Unikraft kernels (found from this file's path in the source tree). */
static void test_probe_fixtures(void **state)
{
    (void)state;
    char src[400];
    snprintf(src, sizeof(src), "%s", __FILE__);
    char *cut = strstr(src, "/tests/unit/");
    if (!cut) {
        skip();
        return;
    }
    *cut = '\0';
    char p[512];
    snprintf(p, sizeof(p), "%s/tests/fixtures/unikraft/nubohello_qemu-x86_64", src);
    assert_int_equal(access(p, R_OK), 0);
    struct agent_kernel_info ki;
    struct nubo_err err = {0};
    assert_int_equal(agent_kernel_probe(p, &ki, &err), 0);
    assert_int_equal(ki.boot, AGENT_BOOT_MULTIBOOT);
    assert_false(ki.linux_kernel);
    assert_false(agent_file_has_marker(p));
    snprintf(p, sizeof(p), "%s/tests/fixtures/unikraft/helloworld_fc-x86_64", src);
    assert_int_equal(agent_kernel_probe(p, &ki, &err), 0);
    assert_int_equal(ki.boot, AGENT_BOOT_LINUX64);
}

static void test_marker_scan(void **state)
{
    (void)state;
    /* a marker across the scanner's 1 MiB chunk boundary is found */
    size_t len = (1u << 20) + 64;
    char *buf = calloc(1, len);
    assert_non_null(buf);
    memcpy(buf + (1u << 20) - 4, "NUBO_READY", 10);
    assert_true(agent_file_has_marker(tmpfile_with("m1", buf, len)));
    memset(buf, 'x', len);
    assert_false(agent_file_has_marker(tmpfile_with("m2", buf, len)));
    free(buf);
    assert_false(agent_file_has_marker("/nonexistent"));
}

static void test_ready_rule(void **state)
{
    (void)state;
    const char *pat;
    assert_int_equal(agent_ready_rule(NULL, true, &pat), AGENT_READY_MARKER);
    assert_int_equal(agent_ready_rule(NULL, false, &pat), AGENT_READY_OUTPUT);
    assert_int_equal(agent_ready_rule("port", false, &pat), AGENT_READY_PORT);
    assert_int_equal(agent_ready_rule("marker", false, &pat), AGENT_READY_MARKER);
    assert_int_equal(agent_ready_rule("output", true, &pat), AGENT_READY_OUTPUT);
    assert_int_equal(agent_ready_rule("line:Hello world", false, &pat), AGENT_READY_LINE);
    assert_string_equal(pat, "Hello world");
    assert_int_equal(agent_ready_rule("line:", false, &pat), AGENT_READY_OUTPUT);
    assert_int_equal(agent_ready_rule("bogus", true, &pat), AGENT_READY_MARKER);
}

static void test_unikraft_lines(void **state)
{
    (void)state;
    int code = -1;
    assert_int_equal(agent_unikraft_line("[    0.106188] Info: [libukboot] <boot.c @  544> "
                                         "main returned 3",
                                         &code),
                     1);
    assert_int_equal(code, 3);
    assert_int_equal(
        agent_unikraft_line("[    0.1] Info: [libukboot] <boot.c @  544> main returned -1", &code),
        1);
    assert_int_equal(code, -1);
    assert_int_equal(agent_unikraft_line("main returned 3", &code), 0); /* an app's own line */
    assert_int_equal(
        agent_unikraft_line("[    0.1] CRIT: [libkvmplat] <traps.c @ 113> Crashing", &code), 2);
    assert_int_equal(
        agent_unikraft_line("[    0.1] CRIT: [libkvmplat] <trace.c @ 41> RIP: 0", &code), 0);
    assert_int_equal(agent_unikraft_line("[    0.105] ERR:  [libukboot] <boot.c @  427> Init "
                                         "function at 0x125b40 returned error -95",
                                         &code),
                     2);
    assert_int_equal(agent_unikraft_line("Hello world!", &code), 0);
}

static void test_guest_cpu(void **state)
{
    (void)state;
    assert_string_equal(agent_guest_cpu(AGENT_ACCEL_KVM, false), "host-passthrough");
    assert_string_equal(agent_guest_cpu(AGENT_ACCEL_TCG, false), "qemu64+rdrand");
    assert_string_equal(agent_guest_cpu(AGENT_ACCEL_TCG, true), "qemu64+rdrand+rdseed");
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/test_agent_kernel.XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_synthetic), cmocka_unit_test(test_probe_fixtures),
        cmocka_unit_test(test_marker_scan),     cmocka_unit_test(test_ready_rule),
        cmocka_unit_test(test_unikraft_lines),  cmocka_unit_test(test_guest_cpu),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
