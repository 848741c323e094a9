/* What kind of kernel an image carries, read from the file itself: its boot protocol (Linux
 * bzImage, PVH ELF note, Multiboot v1 header, or Firecracker's bare 64-bit ELF entry), whether
 * it is Linux, and whether the image speaks nubo's console protocol (NUBO_READY). The agent
 * boots each kind the way it can be booted and refuses the rest at once with the reason. */
#include "agent_core.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"

#define MB1_MAGIC 0x1BADB002u
#define MB1_SEARCH 8192 /* the Multiboot v1 header lies 4-aligned in the first 8 KiB */
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define NOTES_MAX 65536
#define MARKER_SCAN_CHUNK (1u << 20)

const char *agent_boot_name(enum agent_boot b)
{
    switch (b) {
    case AGENT_BOOT_BZIMAGE:
        return "linux-bzimage";
    case AGENT_BOOT_PVH:
        return "pvh";
    case AGENT_BOOT_MULTIBOOT:
        return "multiboot";
    case AGENT_BOOT_LINUX64:
        return "linux64-elf";
    default:
        return "unknown";
    }
}

static bool multiboot1_header(const unsigned char *buf, size_t len)
{
    for (size_t off = 0; off + 12 <= len && off < MB1_SEARCH; off += 4) {
        uint32_t magic, flags, sum;
        memcpy(&magic, buf + off, 4);
        if (magic != MB1_MAGIC)
            continue;
        memcpy(&flags, buf + off + 4, 4);
        memcpy(&sum, buf + off + 8, 4);
        if ((uint32_t)(magic + flags + sum) == 0)
            return true;
    }
    return false;
}

/* Walk one PT_NOTE segment: namesz, descsz, type, name (4-aligned), desc (4-aligned). */
static void scan_notes(const unsigned char *notes, size_t len, struct agent_kernel_info *ki)
{
    size_t off = 0;
    while (off + 12 <= len) {
        uint32_t namesz, descsz, type;
        memcpy(&namesz, notes + off, 4);
        memcpy(&descsz, notes + off + 4, 4);
        memcpy(&type, notes + off + 8, 4);
        size_t name_off = off + 12;
        size_t next = name_off + ((namesz + 3u) & ~3u) + ((descsz + 3u) & ~3u);
        if (namesz > 64 || next > len || next <= off)
            return;
        if (namesz == 6 && memcmp(notes + name_off, "Linux", 6) == 0)
            ki->linux_kernel = true;
        if (namesz == 4 && memcmp(notes + name_off, "Xen", 4) == 0 &&
            type == XEN_ELFNOTE_PHYS32_ENTRY)
            ki->pvh = true;
        off = next;
    }
}

/* ELF program headers of either class: the PT_NOTE segments tell PVH and Linux apart. */
static int scan_elf(int fd, const unsigned char *hdr, struct agent_kernel_info *ki)
{
    bool is64 = hdr[EI_CLASS] == ELFCLASS64;
    uint64_t phoff;
    uint16_t phnum, phentsize;
    if (is64) {
        Elf64_Ehdr eh;
        memcpy(&eh, hdr, sizeof(eh));
        phoff = eh.e_phoff, phnum = eh.e_phnum, phentsize = eh.e_phentsize;
        if (phentsize != sizeof(Elf64_Phdr))
            return -1;
    } else {
        Elf32_Ehdr eh;
        memcpy(&eh, hdr, sizeof(eh));
        phoff = eh.e_phoff, phnum = eh.e_phnum, phentsize = eh.e_phentsize;
        if (phentsize != sizeof(Elf32_Phdr))
            return -1;
    }
    if (phnum > 64)
        return -1;
    cleanup_free unsigned char *notes = malloc(NOTES_MAX);
    if (!notes)
        return -1;
    for (uint16_t i = 0; i < phnum; i++) {
        uint64_t type, off, size;
        if (is64) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof(ph), (off_t)(phoff + (uint64_t)i * sizeof(ph))) !=
                (ssize_t)sizeof(ph))
                return -1;
            type = ph.p_type, off = ph.p_offset, size = ph.p_filesz;
        } else {
            Elf32_Phdr ph;
            if (pread(fd, &ph, sizeof(ph), (off_t)(phoff + (uint64_t)i * sizeof(ph))) !=
                (ssize_t)sizeof(ph))
                return -1;
            type = ph.p_type, off = ph.p_offset, size = ph.p_filesz;
        }
        if (type != PT_NOTE || size > NOTES_MAX)
            continue;
        if (pread(fd, notes, size, (off_t)off) != (ssize_t)size)
            return -1;
        scan_notes(notes, size, ki);
    }
    return 0;
}

int agent_kernel_probe(const char *path, struct agent_kernel_info *ki, struct nubo_err *err)
{
    memset(ki, 0, sizeof(*ki));
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nubo_error(err, errno, "cannot open the kernel");
    unsigned char hdr[MB1_SEARCH];
    ssize_t n = pread(fd, hdr, sizeof(hdr), 0);
    if (n < 0)
        return nubo_error(err, errno, "cannot read the kernel");
    /* qemu's order (hw/i386/x86.c): a Linux boot header first, then Multiboot, then a PVH
     * note; an ELF with none of them is refused ("without PVH ELF Note"). */
    if (n >= 0x206 && memcmp(hdr + 0x202, "HdrS", 4) == 0) {
        ki->boot = AGENT_BOOT_BZIMAGE;
        ki->linux_kernel = true;
        return 0;
    }
    bool mb1 = multiboot1_header(hdr, (size_t)n);
    bool elf = n >= (ssize_t)sizeof(Elf64_Ehdr) && memcmp(hdr, ELFMAG, SELFMAG) == 0 &&
               (hdr[EI_CLASS] == ELFCLASS64 || hdr[EI_CLASS] == ELFCLASS32);
    if (elf && scan_elf(fd, hdr, ki) < 0 && !mb1)
        return nubo_error(err, 0, "kernel: malformed ELF program headers");
    if (mb1)
        ki->boot = AGENT_BOOT_MULTIBOOT;
    else if (ki->pvh)
        ki->boot = AGENT_BOOT_PVH;
    else if (elf && hdr[EI_CLASS] == ELFCLASS64)
        ki->boot = AGENT_BOOT_LINUX64;
    else
        ki->boot = AGENT_BOOT_UNKNOWN;
    return 0;
}

bool agent_kernel_is_linux(const char *path)
{
    struct agent_kernel_info ki;
    return agent_kernel_probe(path, &ki, NULL) == 0 && ki.linux_kernel;
}

int agent_kernel_refusal(const struct agent_kernel_info *ki, const char *platform, char *why,
                         size_t why_size)
{
    /* kraftkit records the Unikraft platform as the config's "os": qemu and kraftcloud
     * (nubo pkg's) kernels are decided by their file; fc and xen ones need that VMM. */
    if (platform && (strcmp(platform, "fc") == 0 || strcmp(platform, "firecracker") == 0 ||
                     strcmp(platform, "xen") == 0 || strcmp(platform, "linuxu") == 0)) {
        snprintf(why, why_size,
                 "kernel built for the %s platform; nubo boots qemu-platform kernels "
                 "(multiboot, PVH or bzImage): rebuild it for qemu",
                 platform);
        return -1;
    }
    switch (ki->boot) {
    case AGENT_BOOT_BZIMAGE:
    case AGENT_BOOT_PVH:
    case AGENT_BOOT_MULTIBOOT:
        return 0;
    case AGENT_BOOT_LINUX64:
        snprintf(why, why_size,
                 "kernel is a 64-bit ELF with no PVH note and no multiboot header (the "
                 "Firecracker/fc boot protocol); nubo boots qemu-platform kernels: rebuild it "
                 "for qemu");
        return -1;
    default:
        snprintf(why, why_size,
                 "kernel is neither a bzImage nor an ELF with a PVH note or multiboot header; "
                 "qemu cannot boot it");
        return -1;
    }
}

bool agent_file_has_marker(const char *path)
{
    static const char marker[] = "NUBO_READY";
    const size_t ml = sizeof(marker) - 1;
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    cleanup_free char *buf = malloc(MARKER_SCAN_CHUNK + ml);
    if (!buf)
        return false;
    size_t keep = 0;
    for (;;) {
        ssize_t n = read(fd, buf + keep, MARKER_SCAN_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        size_t have = keep + (size_t)n;
        if (memmem(buf, have, marker, ml))
            return true;
        /* A marker split across two reads is found in the next round. */
        keep = have < ml - 1 ? have : ml - 1;
        memmove(buf, buf + have - keep, keep);
    }
}

enum agent_ready agent_ready_rule(const char *label, bool has_marker, const char **pattern)
{
    *pattern = NULL;
    if (label && strcmp(label, "marker") == 0)
        return AGENT_READY_MARKER;
    if (label && strcmp(label, "output") == 0)
        return AGENT_READY_OUTPUT;
    if (label && strcmp(label, "port") == 0)
        return AGENT_READY_PORT;
    if (label && strncmp(label, "line:", 5) == 0 && label[5]) {
        *pattern = label + 5;
        return AGENT_READY_LINE;
    }
    /* Unset or not understood: our own guests print NUBO_READY when their app is up; any
     * other kernel is up when it writes its first console byte. */
    return has_marker ? AGENT_READY_MARKER : AGENT_READY_OUTPUT;
}

const char *agent_ready_name(enum agent_ready r)
{
    switch (r) {
    case AGENT_READY_MARKER:
        return "marker";
    case AGENT_READY_OUTPUT:
        return "output";
    case AGENT_READY_PORT:
        return "port";
    case AGENT_READY_LINE:
        return "line";
    default:
        return "?";
    }
}
