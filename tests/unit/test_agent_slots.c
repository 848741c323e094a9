/* Unit tests of the warm-slot take path's layout (agent/slots.c): what is written where in a
 * slot's guest RAM for a PVH kernel (mailbox, hvm_start_info, memory map, command line,
 * segments and their bss), what it refuses, the slot's domain XML, and - as root with qemu
 * installed - the slot firmware jumping into a kernel written into a paused qemu's RAM, bare
 * and through libvirt (when a libvirtd answers at qemu:///system). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "agent_core.h"

extern char **environ;

#define RAM_MB 4
#define SEG_PA 0x100000u
#define ENTRY 0x100010u

/* A PVH ELF: NLOAD PT_LOADs (16 bytes of 0xC0.. on file, 4096 in memory, one page apart from
 * seg_pa) and a Xen PHYS32_ENTRY note (descsz 8, as our guests and qemu's own write it). */
#define DATA_OFF 2048
#define NOTE_OFF 2100
static void write_elf_n(const char *path, uint64_t seg_pa, bool note, unsigned char cls, int nload)
{
    unsigned char f[4096] = {0};
    Elf64_Ehdr eh = {0};
    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = cls;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = EM_X86_64;
    eh.e_phoff = sizeof(eh);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = (uint16_t)(nload + 1);
    memcpy(f, &eh, sizeof(eh));
    for (int i = 0; i < nload; i++) {
        Elf64_Phdr load = {.p_type = PT_LOAD, .p_offset = DATA_OFF,
                           .p_paddr = seg_pa + (uint64_t)i * 4096,
                           .p_vaddr = seg_pa + (uint64_t)i * 4096, .p_filesz = 16, .p_memsz = 4096};
        memcpy(f + sizeof(eh) + (size_t)i * sizeof(load), &load, sizeof(load));
    }
    Elf64_Phdr nt = {.p_type = note ? PT_NOTE : PT_NULL, .p_offset = NOTE_OFF, .p_filesz = 24};
    memcpy(f + sizeof(eh) + (size_t)nload * sizeof(nt), &nt, sizeof(nt));
    for (int i = 0; i < 16; i++)
        f[DATA_OFF + i] = (unsigned char)(0xc0 + i);
    uint32_t hdr[3] = {4, 8, 18};
    uint64_t entry = ENTRY;
    memcpy(f + NOTE_OFF, hdr, sizeof(hdr));
    memcpy(f + NOTE_OFF + 12, "Xen", 4);
    memcpy(f + NOTE_OFF + 16, &entry, 8);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(f, 1, sizeof(f), fp), sizeof(f));
    fclose(fp);
}

static void write_elf(const char *path, uint64_t seg_pa, bool note, unsigned char cls)
{
    write_elf_n(path, seg_pa, note, cls, 1);
}

struct ram {
    unsigned char *mem;
    size_t size;
    uint64_t last_gpa;
};

static int ram_write(void *ctx, uint64_t gpa, const void *data, size_t len, struct nubo_err *err)
{
    struct ram *r = ctx;
    if (gpa + len > r->size)
        return nubo_error(err, 0, "out of RAM");
    if (data)
        memcpy(r->mem + gpa, data, len);
    else
        memset(r->mem + gpa, 0, len);
    r->last_gpa = gpa;
    return 0;
}

static uint64_t rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint8_t sum8(const unsigned char *p, size_t len)
{
    uint8_t s = 0;
    for (size_t i = 0; i < len; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

static void test_layout(void **state)
{
    (void)state;
    char path[] = "/tmp/nubo-test-slot.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_elf(path, SEG_PA, true, ELFCLASS64);
    struct agent_slot_image im;
    struct nubo_err err = {0};
    assert_int_equal(agent_slot_image_build(path, "netdev.ip=10.0.0.2/24 -- a b", RAM_MB, &im, &err),
                     0);
    assert_int_equal(im.entry, ENTRY);
    struct ram r = {calloc(1, RAM_MB << 20), RAM_MB << 20, 0};
    memset(r.mem, 0xaa, r.size); /* bss must be zeroed, not assumed zero */
    assert_int_equal(agent_slot_image_apply(&im, ram_write, &r, &err), 0);
    /* the mailbox is written last, so the firmware never sees it half-way */
    assert_int_equal(r.last_gpa, AGENT_SLOT_MAILBOX_PADDR);
    const unsigned char *mb = r.mem + AGENT_SLOT_MAILBOX_PADDR;
    assert_memory_equal(mb, "NUBOSLT0", 8);
    assert_int_equal(rd64(mb), AGENT_SLOT_MAILBOX_MAGIC);
    assert_int_equal(rd32(mb + 8), ENTRY);
    assert_int_equal(rd32(mb + 12), AGENT_SLOT_START_INFO_PADDR);
    const unsigned char *si = r.mem + AGENT_SLOT_START_INFO_PADDR;
    assert_int_equal(rd32(si), 0x336ec578);
    assert_int_equal(rd32(si + 4), 1);
    assert_int_equal(rd32(si + 12), 0);                            /* no modules */
    assert_int_equal(rd64(si + 24), AGENT_SLOT_CMDLINE_PADDR);
    /* ACPI: RSDP -> XSDT -> FADT with microvm's GED sleep control, checksums valid */
    uint64_t rsdp = rd64(si + 32);
    assert_int_equal(rsdp, AGENT_SLOT_ACPI_PADDR);
    const unsigned char *rp = r.mem + rsdp;
    assert_memory_equal(rp, "RSD PTR ", 8);
    assert_int_equal(sum8(rp, 20), 0);
    assert_int_equal(sum8(rp, 36), 0);
    const unsigned char *xs = r.mem + rd64(rp + 24);
    assert_memory_equal(xs, "XSDT", 4);
    assert_int_equal(sum8(xs, rd32(xs + 4)), 0);
    const unsigned char *fa = r.mem + rd64(xs + 36);
    assert_memory_equal(fa, "FACP", 4);
    assert_true(rd32(fa + 4) >= 268);
    assert_int_equal(sum8(fa, rd32(fa + 4)), 0);
    assert_int_equal(fa[244], 0);                                  /* system memory */
    assert_int_equal(rd64(fa + 248), 0xfea00200);                  /* GED sleep control */
    assert_true(rd32(fa + 112) & (1u << 20));                      /* hardware-reduced */
    const unsigned char *ds = r.mem + rd64(fa + 140);
    assert_memory_equal(ds, "DSDT", 4);
    assert_int_equal(sum8(ds, rd32(ds + 4)), 0);
    assert_true(rd64(xs + 36) + rd32(fa + 4) <= AGENT_SLOT_LAYOUT_END);
    assert_int_equal(rd64(si + 40), AGENT_SLOT_MEMMAP_PADDR);
    assert_int_equal(rd32(si + 48), 4);
    const unsigned char *mm = r.mem + AGENT_SLOT_MEMMAP_PADDR;
    /* RAM, the firmware's layout reserved, RAM below the EBDA, RAM from 1 MiB to the end */
    assert_int_equal(rd64(mm + 24), AGENT_SLOT_MAILBOX_PADDR);
    assert_int_equal(rd32(mm + 24 + 16), 2);
    assert_true(rd64(mm + 24) + rd64(mm + 24 + 8) >= AGENT_SLOT_CMDLINE_PADDR + AGENT_SLOT_CMDLINE_MAX);
    assert_int_equal(rd64(mm + 72), 0x100000);
    assert_int_equal(rd64(mm + 72 + 8), (RAM_MB << 20) - 0x100000);
    assert_int_equal(rd32(mm + 72 + 16), 1);
    assert_true(AGENT_SLOT_MEMMAP_PADDR + 4 * 24 <= AGENT_SLOT_CMDLINE_PADDR);
    assert_string_equal((const char *)r.mem + AGENT_SLOT_CMDLINE_PADDR,
                        "netdev.ip=10.0.0.2/24 -- a b");
    for (int i = 0; i < 16; i++)
        assert_int_equal(r.mem[SEG_PA + i], 0xc0 + i);
    for (int i = 16; i < 4096; i++)
        assert_int_equal(r.mem[SEG_PA + i], 0);
    assert_int_equal(r.mem[SEG_PA + 4096], 0xaa); /* nothing past the segment */
    assert_int_equal(r.mem[0x6fff], 0xaa);        /* nothing below the mailbox */
    agent_slot_image_free(&im);
    free(r.mem);
    unlink(path);
}

static void expect_refusal(const char *path, const char *cmdline, int64_t mb, const char *why)
{
    struct agent_slot_image im;
    struct nubo_err err = {0};
    assert_int_equal(agent_slot_image_build(path, cmdline, mb, &im, &err), -1);
    if (!strstr(err.msg, why))
        fail_msg("refusal '%s' does not say '%s'", err.msg, why);
    agent_slot_image_free(&im);
}

static void test_refusals(void **state)
{
    (void)state;
    char path[] = "/tmp/nubo-test-slot.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_elf(path, SEG_PA, false, ELFCLASS64);
    expect_refusal(path, "", RAM_MB, "no PVH entry note");
    write_elf(path, 0x8000, true, ELFCLASS64); /* over the firmware's layout */
    expect_refusal(path, "", RAM_MB, "outside what a slot");
    write_elf(path, (RAM_MB << 20) - 100, true, ELFCLASS64); /* past the end of RAM */
    expect_refusal(path, "", RAM_MB, "outside what a slot");
    write_elf(path, SEG_PA, true, ELFCLASS32);
    expect_refusal(path, "", RAM_MB, "not a 64-bit");
    write_elf(path, SEG_PA, true, ELFCLASS64);
    char *longline = malloc(AGENT_SLOT_CMDLINE_MAX + 1);
    memset(longline, 'x', AGENT_SLOT_CMDLINE_MAX);
    longline[AGENT_SLOT_CMDLINE_MAX] = '\0';
    expect_refusal(path, longline, RAM_MB, "at most");
    longline[AGENT_SLOT_CMDLINE_MAX - 1] = '\0'; /* the longest that fits */
    struct agent_slot_image im;
    struct nubo_err err = {0};
    assert_int_equal(agent_slot_image_build(path, longline, RAM_MB, &im, &err), 0);
    agent_slot_image_free(&im);
    free(longline);
    write_elf_n(path, SEG_PA, true, ELFCLASS64, AGENT_SLOT_SEGMENTS_MAX + 1);
    expect_refusal(path, "", RAM_MB, "more than 16 loadable segments");
    write_elf_n(path, SEG_PA, true, ELFCLASS64, AGENT_SLOT_SEGMENTS_MAX); /* the most it takes */
    assert_int_equal(agent_slot_image_build(path, "", RAM_MB, &im, &err), 0);
    assert_int_equal(im.n_writes, 2 * AGENT_SLOT_SEGMENTS_MAX + 4); /* + start info, cmdline, ACPI, mailbox */
    agent_slot_image_free(&im);
    expect_refusal("/nonexistent/kernel", "", RAM_MB, "");
    unlink(path);
}

static void test_slot_xml(void **state)
{
    (void)state;
    struct agent_domain_spec s = {.uuid = "5a000000-0000-4000-8000-000000000001",
                                  .node = "n1",
                                  .kernel = "",
                                  .console_path = "/tmp/c.log",
                                  .firmware = "/usr/lib/nubo/slotfw.bin",
                                  .memory_mb = 16,
                                  .vcpus = 1,
                                  .accel = AGENT_ACCEL_TCG};
    char *xml = agent_domain_xml(&s);
    assert_non_null(xml);
    assert_non_null(strstr(xml, "<loader type='rom' readonly='yes'>/usr/lib/nubo/slotfw.bin</loader>"));
    assert_non_null(strstr(xml, "<source type='memfd'/><access mode='shared'/>"));
    assert_null(strstr(xml, "<kernel>"));
    assert_null(strstr(xml, "<cmdline>"));
    assert_non_null(strstr(xml, "machine='microvm'"));
    free(xml);
    s.firmware = NULL;
    s.kernel = "/k";
    s.cmdline = "-- x";
    xml = agent_domain_xml(&s);
    assert_non_null(strstr(xml, "<kernel>/k</kernel><cmdline>-- x</cmdline></os>"));
    assert_null(strstr(xml, "memoryBacking"));
    assert_null(strstr(xml, "<loader"));
    free(xml);
}

/* The firmware and the take path for real: qemu -S with a shared memfd, the test guest written
 * into its RAM through /proc/<pid>/mem, then `cont` on its monitor (stdio); the guest echoes
 * the command line it was given. Skipped without root, qemu or the built guest. */
static void test_take_in_qemu(void **state)
{
    (void)state;
    const char *b = getenv("NUBO_BUILD");
    char fw[1024], guest[1024];
    snprintf(fw, sizeof(fw), "%s/agent/slotfw/slotfw.bin", b ? b : "..");
    snprintf(guest, sizeof(guest), "%s/agent/testguest/testguest", b ? b : "..");
    if (geteuid() != 0 || access(fw, R_OK) != 0 || access(guest, R_OK) != 0) {
        print_message("skipped: needs root and %s, %s\n", fw, guest);
        skip();
    }
    int out[2], in[2];
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(in), 0);
    const char *argv[] = {"qemu-system-x86_64", "-M", "microvm", "-accel", "tcg", "-nodefaults",
                          "-no-user-config", "-display", "none", "-bios", fw, "-S", "-object",
                          "memory-backend-memfd,id=ram,size=16M,share=on", "-machine",
                          "memory-backend=ram", "-m", "16", "-serial", "file:/dev/stdout",
                          "-monitor", "stdio", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    pid_t pid;
    if (posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) != 0) {
        print_message("skipped: no qemu-system-x86_64\n");
        skip();
    }
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    close(in[0]);
    /* the monitor's banner: qemu is up, paused before the reset vector */
    char buf[8192] = "";
    size_t have = 0;
    struct nubo_err err = {0};
    struct agent_slot_ram ram;
    int rc = -1;
    for (int i = 0; i < 600 && rc < 0; i++) {
        usleep(50000);
        rc = agent_slot_ram_find(pid, 16, &ram, &err);
    }
    assert_int_equal(rc, 0);
    struct agent_slot_image im;
    assert_int_equal(agent_slot_image_build(guest, "slot-take-test -- serve", 16, &im, &err), 0);
    assert_int_equal(agent_slot_fill(&ram, &im, &err), 0);
    agent_slot_image_free(&im);
    assert_int_equal(write(in[1], "cont\n", 5), 5);
    while (have < sizeof(buf) - 1 && !strstr(buf, "NUBO_READY")) {
        struct pollfd p = {out[0], POLLIN, 0};
        if (poll(&p, 1, 60000) <= 0)
            break;
        ssize_t n = read(out[0], buf + have, sizeof(buf) - 1 - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        buf[have] = '\0';
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(out[0]);
    close(in[1]);
    assert_non_null(strstr(buf, "testguest cmdline: slot-take-test -- serve"));
    assert_non_null(strstr(buf, "NUBO_READY"));
    assert_null(strstr(buf, "no mailbox"));
}

/* The same through libvirt, as the agent does it: the slot domain XML launched paused on
 * qemu:///system, its qemu and RAM found, filled, resumed. Skipped without root, a running
 * libvirtd or the built guest. */
static void test_take_via_libvirt(void **state)
{
    (void)state;
    const char *b = getenv("NUBO_BUILD");
    char fw_built[1024], guest[1024];
    snprintf(fw_built, sizeof(fw_built), "%s/agent/slotfw/slotfw.bin", b ? b : "..");
    snprintf(guest, sizeof(guest), "%s/agent/testguest/testguest", b ? b : "..");
    if (geteuid() != 0 || access(fw_built, R_OK) != 0 || access(guest, R_OK) != 0) {
        print_message("skipped: needs root and %s, %s\n", fw_built, guest);
        skip();
    }
    virConnectPtr c = virConnectOpen("qemu:///system");
    if (!c) {
        print_message("skipped: no libvirtd at qemu:///system\n");
        skip();
    }
    /* libvirt's qemu user must reach the firmware and the console: a 0755 directory of ours */
    char dir[] = "/tmp/nubo-test-slot-lv.XXXXXX";
    assert_non_null(mkdtemp(dir));
    chmod(dir, 0755);
    char fw[1100], con[1100], uuid[40];
    snprintf(fw, sizeof(fw), "%s/slotfw.bin", dir);
    snprintf(con, sizeof(con), "%s/console.log", dir);
    snprintf(uuid, sizeof(uuid), "5a000000-0000-4000-8000-%012d", (int)getpid());
    char *data;
    size_t len;
    struct nubo_err err = {0};
    assert_int_equal(nubo_read_file(fw_built, 1 << 20, &data, &len, &err), 0);
    assert_int_equal(nubo_write_file_atomic(fw, data, len, 0644, &err), 0);
    free(data);
    struct agent_domain_spec sp = {.uuid = uuid, .node = "slot-test", .kernel = "",
                                   .console_path = con, .firmware = fw, .memory_mb = 16,
                                   .vcpus = 1, .accel = AGENT_ACCEL_TCG};
    char *xml = agent_domain_xml(&sp);
    virDomainPtr d = virDomainCreateXML(c, xml, VIR_DOMAIN_START_PAUSED);
    free(xml);
    if (!d)
        fail_msg("slot launch: %s", virGetLastErrorMessage());
    struct agent_slot_ram ram;
    struct agent_slot_image im;
    pid_t pid = agent_slot_qemu_pid(uuid);
    bool ok = pid > 0 && agent_slot_ram_find(pid, 16, &ram, &err) == 0 &&
              agent_slot_image_build(guest, "via-libvirt -- serve", 16, &im, &err) == 0 &&
              agent_slot_fill(&ram, &im, &err) == 0 && virDomainResume(d) == 0;
    if (ok)
        agent_slot_image_free(&im);
    data = NULL;
    for (int i = 0; ok && i < 1200; i++) { /* up to 60 s on a loaded machine */
        free(data);
        data = NULL;
        if (nubo_read_file(con, 1 << 20, &data, &len, NULL) == 0 && strstr(data, "NUBO_READY"))
            break;
        usleep(50000);
    }
    virDomainDestroy(d);
    virDomainFree(d);
    virConnectClose(c);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    if (!ok)
        fail_msg("slot take (qemu pid %d): %s", (int)pid, err.msg);
    assert_non_null(data);
    assert_non_null(strstr(data, "testguest cmdline: via-libvirt -- serve"));
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_slot_xml),
        cmocka_unit_test(test_take_in_qemu),
        cmocka_unit_test(test_take_via_libvirt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
