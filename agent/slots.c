/* Warm slots, the take path: a slot is a domain libvirt launched paused (before its first
 * instruction) with our slot firmware (agent/slotfw/) as its only firmware and its RAM in a
 * shared memfd, so libvirt's ~0.3 s launch cost is paid before any request. Taking it writes
 * the guest's PVH kernel, an hvm_start_info, its command line and the firmware's mailbox into
 * the paused qemu's guest RAM (/proc/<pid>/mem), then the caller resumes the domain. Nothing
 * else writes guest RAM before the firmware jumps, so the layout below cannot be clobbered. */
#include "agent_core.h"

#include <ctype.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC 0x336ec578u
#define E820_RAM 1
#define E820_RESERVED 2

#define PUT(buf, off, v) memcpy((buf) + (off), &(v), sizeof(v))

static int add_write(struct agent_slot_image *im, uint64_t gpa, const void *data, size_t len,
                     struct nubo_err *err)
{
    if (im->n_writes >= AGENT_SLOT_WRITES_MAX)
        return nubo_error(err, 0, "more than %d writes into a slot", AGENT_SLOT_WRITES_MAX);
    im->writes[im->n_writes++] = (struct agent_slot_write){gpa, data, len};
    return 0;
}

/* A segment the firmware's layout, the legacy hole or the end of RAM would cut. */
static int check_range(uint64_t gpa, uint64_t len, uint64_t ram, struct nubo_err *err)
{
    if (gpa < AGENT_SLOT_KERNEL_MIN || gpa + len < gpa || gpa + len > ram ||
        gpa + len > AGENT_SLOT_KERNEL_MAX)
        return nubo_error(err, 0,
                          "the kernel loads at 0x%llx-0x%llx, outside what a slot of %llu MiB "
                          "offers (0x%x up to the end of RAM, below 1 GiB)",
                          (unsigned long long)gpa, (unsigned long long)(gpa + len),
                          (unsigned long long)(ram >> 20), AGENT_SLOT_KERNEL_MIN);
    return 0;
}

static int pvh_entry(const unsigned char *k, uint64_t off, uint64_t size, uint32_t *entry)
{
    uint64_t p = off, end = off + size;
    while (p + 12 <= end) {
        uint32_t namesz, descsz, type;
        memcpy(&namesz, k + p, 4);
        memcpy(&descsz, k + p + 4, 4);
        memcpy(&type, k + p + 8, 4);
        uint64_t name = p + 12, desc = name + ((namesz + 3u) & ~3u);
        uint64_t next = desc + ((descsz + 3u) & ~3u);
        if (namesz > 64 || descsz > 64 || next > end)
            return -1;
        if (namesz == 4 && memcmp(k + name, "Xen", 4) == 0 && type == XEN_ELFNOTE_PHYS32_ENTRY) {
            uint64_t e = 0;
            if (descsz == 8)
                memcpy(&e, k + desc, 8);
            else if (descsz == 4) {
                uint32_t e32;
                memcpy(&e32, k + desc, 4);
                e = e32;
            } else
                return -1;
            if (e > UINT32_MAX)
                return -1;
            *entry = (uint32_t)e;
            return 1;
        }
        p = next;
    }
    return 0;
}

/* qemu's microvm (hw/i386/microvm.h): the generic event device's registers, where its FADT
 * puts sleep control/status and reset (hw/i386/acpi-microvm.c). */
#define MICROVM_GED_REGS 0xfea00200ull
#define GED_REG_SLEEP_CTL 0
#define GED_REG_SLEEP_STS 1
#define GED_REG_RESET 2
#define GED_RESET_VALUE 0x42
#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_F_HW_REDUCED_ACPI (1u << 20)
/* offsets inside AGENT_SLOT_ACPI_PADDR's page */
#define ACPI_RSDP 0x000
#define ACPI_XSDT 0x040
#define ACPI_FADT 0x080
#define ACPI_FADT_LEN 268 /* revision 5 */
#define ACPI_DSDT 0x200
#define ACPI_DSDT_LEN 36  /* a header, no AML: no devices described */

static uint8_t acpi_sum(const unsigned char *p, size_t len)
{
    uint8_t s = 0;
    for (size_t i = 0; i < len; i++)
        s = (uint8_t)(s + p[i]);
    return (uint8_t)(0 - s);
}

static void acpi_header(unsigned char *t, const char sig[4], uint32_t len, uint8_t rev)
{
    memcpy(t, sig, 4);
    PUT(t, 4, len);
    t[8] = rev;
    memcpy(t + 10, "NUBO  ", 6);   /* OEM ID */
    memcpy(t + 16, "NUBOSLOT", 8); /* OEM table ID */
    uint32_t one = 1;
    PUT(t, 24, one);               /* OEM revision */
    memcpy(t + 28, "NUBO", 4);     /* creator ID */
    PUT(t, 32, one);               /* creator revision */
}

static void acpi_gas(unsigned char *g, uint64_t addr)
{
    g[0] = 0; /* system memory */
    g[1] = 8; /* bit width */
    g[2] = 0; /* bit offset */
    g[3] = 1; /* byte access */
    PUT(g, 4, addr);
}

/* A slot's ACPI tables: the firmware loads none of qemu's (its fw_cfg loader script is not run),
 * so the agent writes the part of microvm's that describes its power management - a
 * hardware-reduced FADT with the GED's sleep and reset registers - and points hvm_start_info at
 * it. A guest then finds its power button and poweroff where the plain path's tables show
 * them (hello's graceful stop). */
static void acpi_build(unsigned char *a)
{
    memset(a, 0, AGENT_SLOT_ACPI_SIZE);
    uint64_t base = AGENT_SLOT_ACPI_PADDR;
    unsigned char *d = a + ACPI_DSDT;
    acpi_header(d, "DSDT", ACPI_DSDT_LEN, 2);
    d[9] = acpi_sum(d, ACPI_DSDT_LEN);
    unsigned char *f = a + ACPI_FADT;
    acpi_header(f, "FACP", ACPI_FADT_LEN, 5);
    uint32_t flags = FADT_F_HW_REDUCED_ACPI | FADT_F_RESET_REG_SUP;
    PUT(f, 112, flags);
    acpi_gas(f + 116, MICROVM_GED_REGS + GED_REG_RESET);
    f[128] = GED_RESET_VALUE;
    f[131] = 1; /* FADT minor version (5.1) */
    uint64_t dsdt = base + ACPI_DSDT;
    PUT(f, 140, dsdt); /* X_DSDT */
    acpi_gas(f + 244, MICROVM_GED_REGS + GED_REG_SLEEP_CTL);
    acpi_gas(f + 256, MICROVM_GED_REGS + GED_REG_SLEEP_STS);
    f[9] = acpi_sum(f, ACPI_FADT_LEN);
    unsigned char *x = a + ACPI_XSDT;
    acpi_header(x, "XSDT", 36 + 8, 1);
    uint64_t fadt = base + ACPI_FADT;
    PUT(x, 36, fadt);
    x[9] = acpi_sum(x, 36 + 8);
    unsigned char *r = a + ACPI_RSDP;
    memcpy(r, "RSD PTR ", 8);
    memcpy(r + 9, "NUBO  ", 6);
    r[15] = 2; /* ACPI 2.0+: the XSDT */
    uint32_t rlen = 36;
    PUT(r, 20, rlen);
    uint64_t xsdt = base + ACPI_XSDT;
    PUT(r, 24, xsdt);
    r[8] = acpi_sum(r, 20);
    r[32] = acpi_sum(r, 36);
}

int agent_slot_image_build(const char *kernel_path, const char *cmdline, int64_t memory_mb,
                           struct agent_slot_image *im, struct nubo_err *err)
{
    memset(im, 0, sizeof(*im));
    uint64_t ram = (uint64_t)memory_mb << 20;
    size_t cl = strlen(cmdline ? cmdline : "");
    if (cl + 1 > AGENT_SLOT_CMDLINE_MAX)
        return nubo_error(err, 0, "the command line is %zu bytes; a slot takes at most %d", cl,
                          AGENT_SLOT_CMDLINE_MAX - 1);
    if (nubo_read_file(kernel_path, AGENT_SLOT_KERNEL_MAX, &im->kernel, &im->kernel_len, err) < 0)
        return -1;
    const unsigned char *k = (const unsigned char *)im->kernel;
    if (im->kernel_len < sizeof(Elf64_Ehdr) || memcmp(k, ELFMAG, SELFMAG) != 0 ||
        k[EI_CLASS] != ELFCLASS64 || k[EI_DATA] != ELFDATA2LSB)
        return nubo_error(err, 0, "the kernel is not a 64-bit little-endian ELF");
    Elf64_Ehdr eh;
    memcpy(&eh, k, sizeof(eh));
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 64 ||
        eh.e_phoff > im->kernel_len ||
        (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > im->kernel_len - eh.e_phoff)
        return nubo_error(err, 0, "the kernel's ELF program headers are malformed");
    bool found = false;
    int loads = 0;
    for (uint16_t i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, k + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
        if (ph.p_offset > im->kernel_len || ph.p_filesz > im->kernel_len - ph.p_offset)
            return nubo_error(err, 0, "an ELF segment of the kernel lies outside the file");
        if (ph.p_type == PT_NOTE && !found) {
            int r = pvh_entry(k, ph.p_offset, ph.p_filesz, &im->entry);
            if (r < 0)
                return nubo_error(err, 0, "the kernel's ELF notes are malformed");
            found = r == 1;
        }
        if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
            continue;
        if (++loads > AGENT_SLOT_SEGMENTS_MAX)
            return nubo_error(err, 0, "the kernel has more than %d loadable segments",
                              AGENT_SLOT_SEGMENTS_MAX);
        if (ph.p_filesz > ph.p_memsz)
            return nubo_error(err, 0, "an ELF segment of the kernel is larger on file than in memory");
        if (check_range(ph.p_paddr, ph.p_memsz, ram, err) < 0)
            return -1;
        if (ph.p_filesz && add_write(im, ph.p_paddr, k + ph.p_offset, ph.p_filesz, err) < 0)
            return -1;
        if (ph.p_memsz > ph.p_filesz &&
            add_write(im, ph.p_paddr + ph.p_filesz, NULL, ph.p_memsz - ph.p_filesz, err) < 0)
            return -1;
    }
    if (!found)
        return nubo_error(err, 0, "the kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");
    if (im->entry < AGENT_SLOT_KERNEL_MIN || im->entry >= ram)
        return nubo_error(err, 0, "the kernel's PVH entry 0x%x is outside its RAM", im->entry);

    /* hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h) and its memory map: low
     * RAM below the EBDA minus what the firmware's layout occupies, the legacy hole
     * reserved, RAM from 1 MiB. */
    unsigned char *si = im->start_info;
    uint32_t magic = HVM_START_MAGIC, version = 1, zero32 = 0;
    uint64_t cmdline_pa = AGENT_SLOT_CMDLINE_PADDR, memmap_pa = AGENT_SLOT_MEMMAP_PADDR, zero64 = 0;
    uint32_t entries = 4;
    PUT(si, 0, magic);
    PUT(si, 4, version);
    PUT(si, 8, zero32);        /* flags */
    PUT(si, 12, zero32);       /* nr_modules */
    PUT(si, 16, zero64);       /* modlist_paddr */
    PUT(si, 24, cmdline_pa);
    uint64_t rsdp_pa = AGENT_SLOT_ACPI_PADDR + ACPI_RSDP;
    PUT(si, 32, rsdp_pa);
    PUT(si, 40, memmap_pa);
    PUT(si, 48, entries);
    PUT(si, 52, zero32);
    const struct {
        uint64_t addr, size;
        uint32_t type;
    } map[4] = {
        {0, AGENT_SLOT_MAILBOX_PADDR, E820_RAM},
        {AGENT_SLOT_MAILBOX_PADDR, AGENT_SLOT_LAYOUT_END - AGENT_SLOT_MAILBOX_PADDR, E820_RESERVED},
        {AGENT_SLOT_LAYOUT_END, 0x9fc00 - AGENT_SLOT_LAYOUT_END, E820_RAM},
        {AGENT_SLOT_KERNEL_MIN, ram - AGENT_SLOT_KERNEL_MIN, E820_RAM},
    };
    for (int i = 0; i < 4; i++) {
        size_t o = AGENT_SLOT_START_INFO_SIZE + (size_t)i * 24;
        PUT(si, o, map[i].addr);
        PUT(si, o + 8, map[i].size);
        PUT(si, o + 16, map[i].type);
        PUT(si, o + 20, zero32);
    }
    memcpy(im->cmdline, cmdline ? cmdline : "", cl + 1);
    acpi_build(im->acpi);
    uint64_t mb_magic = AGENT_SLOT_MAILBOX_MAGIC;
    uint32_t si_pa = AGENT_SLOT_START_INFO_PADDR;
    PUT(im->mailbox, 0, mb_magic);
    PUT(im->mailbox, 8, im->entry);
    PUT(im->mailbox, 12, si_pa);
    if (add_write(im, AGENT_SLOT_START_INFO_PADDR, im->start_info, sizeof(im->start_info), err) < 0 ||
        add_write(im, AGENT_SLOT_CMDLINE_PADDR, im->cmdline, cl + 1, err) < 0 ||
        add_write(im, AGENT_SLOT_ACPI_PADDR, im->acpi, sizeof(im->acpi), err) < 0 ||
        /* last, so the firmware never sees a mailbox before what it points to */
        add_write(im, AGENT_SLOT_MAILBOX_PADDR, im->mailbox, sizeof(im->mailbox), err) < 0)
        return -1;
    return 0;
}

void agent_slot_image_free(struct agent_slot_image *im)
{
    free(im->kernel);
    im->kernel = NULL;
    im->n_writes = 0;
}

int agent_slot_image_apply(const struct agent_slot_image *im, agent_slot_write_fn fn, void *ctx,
                           struct nubo_err *err)
{
    for (int i = 0; i < im->n_writes; i++)
        if (fn(ctx, im->writes[i].gpa, im->writes[i].data, im->writes[i].len, err) < 0)
            return -1;
    return 0;
}

pid_t agent_slot_qemu_pid(const char *domain_name)
{
    /* libvirt starts qemu with "-name guest=<name>,debug-threads=on" */
    char want[NUBO_UUID_STR_LEN + 16];
    int wl = snprintf(want, sizeof(want), "guest=%s,", domain_name);
    if (wl <= 0 || (size_t)wl >= sizeof(want))
        return -1;
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    pid_t found = -1;
    struct dirent *e;
    while ((e = readdir(d)) && found < 0) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        char path[300];
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        char buf[8192];
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        for (ssize_t off = 0; off < n; off += (ssize_t)strlen(buf + off) + 1)
            if (strncmp(buf + off, want, (size_t)wl) == 0) {
                found = (pid_t)atol(e->d_name);
                break;
            }
    }
    closedir(d);
    return found;
}

int agent_slot_ram_find(pid_t pid, int64_t memory_mb, struct agent_slot_ram *r,
                        struct nubo_err *err)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    cleanup_fclose FILE *f = fopen(path, "re");
    if (!f)
        return nubo_error(err, errno, "cannot read the slot's qemu memory map (pid %d)", (int)pid);
    uint64_t want = (uint64_t)memory_mb << 20;
    int hits = 0;
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        unsigned long long a, b;
        char perms[8];
        if (sscanf(line, "%llx-%llx %7s", &a, &b, perms) != 3 || !strstr(line, "/memfd:"))
            continue;
        if (b - a != want || perms[3] != 's')
            continue;
        r->pid = pid;
        r->hva = a;
        r->size = want;
        hits++;
    }
    if (hits != 1)
        return nubo_error(err, 0, "%s shared guest RAM of %lld MiB in qemu pid %d",
                          hits ? "more than one" : "no", (long long)memory_mb, (int)pid);
    return 0;
}

struct mem_ctx {
    int fd;
    const struct agent_slot_ram *ram;
};

static int mem_write(void *ctx, uint64_t gpa, const void *data, size_t len, struct nubo_err *err)
{
    struct mem_ctx *m = ctx;
    static const unsigned char zeros[65536];
    if (gpa + len < gpa || gpa + len > m->ram->size)
        return nubo_error(err, 0, "write at 0x%llx beyond the slot's RAM",
                          (unsigned long long)gpa);
    while (len > 0) {
        size_t n = data ? len : (len < sizeof(zeros) ? len : sizeof(zeros));
        ssize_t w = pwrite(m->fd, data ? data : zeros, n, (off_t)(m->ram->hva + gpa));
        if (w <= 0)
            return nubo_error(err, w < 0 ? errno : EIO, "cannot write the slot's guest RAM");
        gpa += (uint64_t)w;
        len -= (size_t)w;
        if (data)
            data = (const unsigned char *)data + w;
    }
    return 0;
}

/* The slot's qemu's memory (root; whatever mount namespace libvirtd lives in). */
static int slot_mem_open(const struct agent_slot_ram *ram, int flags, struct nubo_err *err)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/mem", (int)ram->pid);
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return nubo_error(err, errno, "cannot open the slot's guest RAM (qemu pid %d)",
                          (int)ram->pid);
    return fd;
}

int agent_slot_fill(const struct agent_slot_ram *ram, const struct agent_slot_image *im,
                    struct nubo_err *err)
{
    cleanup_close int fd = slot_mem_open(ram, O_RDWR, err);
    if (fd < 0)
        return -1;
    struct mem_ctx m = {fd, ram};
    return agent_slot_image_apply(im, mem_write, &m, err);
}

/* Before the first byte of a guest goes into a slot, its mailbox says "taking": a slot found
 * paused with anything in its mailbox (a take the agent died in) holds some of a guest's data
 * and must never be handed to another instance. The firmware only jumps on the real magic. */
#define SLOT_TAKING_MAGIC 0x30474b54424f554eull /* "NUOBTKG0": not the firmware's magic */

int agent_slot_mark_taking(const struct agent_slot_ram *ram, struct nubo_err *err)
{
    cleanup_close int fd = slot_mem_open(ram, O_RDWR, err);
    if (fd < 0)
        return -1;
    uint64_t m = SLOT_TAKING_MAGIC;
    if (pwrite(fd, &m, sizeof(m), (off_t)(ram->hva + AGENT_SLOT_MAILBOX_PADDR)) != sizeof(m))
        return nubo_error(err, errno, "cannot write the slot's guest RAM");
    return 0;
}

bool agent_slot_is_clean(const struct agent_slot_ram *ram)
{
    cleanup_close int fd = slot_mem_open(ram, O_RDONLY, NULL);
    unsigned char box[16];
    if (fd < 0 || pread(fd, box, sizeof(box), (off_t)(ram->hva + AGENT_SLOT_MAILBOX_PADDR)) !=
                      (ssize_t)sizeof(box))
        return false;
    for (size_t i = 0; i < sizeof(box); i++)
        if (box[i])
            return false;
    return true;
}
