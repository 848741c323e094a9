/* hello: nubo's own minimal unikernel. Reads the PVH command line, echoes what it parsed on
 * COM1, prints NUBO_READY, then exits, idles or crashes as its arguments say. */
#include <stddef.h>
#include <stdint.h>

#include "cmdline.h"
#include "net.h"

#define COM1 0x3f8
#define PVH_START_MAGIC 0x336ec578u
#define ISA_DEBUG_EXIT_PORT 0x501	 /* qemu's default iobase */
#define ISA_DEBUG_EXIT_PORT_ALT 0xf4 /* the iobase most scripts configure */
/* qemu's microvm constants (hw/i386/microvm.h, hw/acpi/generic_event_device.h), used when the
 * ACPI tables cannot be found. */
#define MICROVM_GED_SLEEP_CTL 0xfea00200ull
#define ACPI_GED_SLP_TYP_S5 5
#define ACPI_SLP_EN_GED 0x20
#define GED_REGS_OFFSET 0x200	/* sleep control sits 0x200 above the event selector */
#define ACPI_GED_PWR_DOWN_EVT 0x2 /* qemu's GED event bit for system_powerdown */

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
} __attribute__((packed));

struct idt_entry {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t ist;
	uint8_t type;
	uint16_t off_mid;
	uint32_t off_hi;
	uint32_t zero;
} __attribute__((packed));

struct idt_ptr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

extern char guest_exc_stubs[];
extern char guest_timer_isr[];
extern char guest_spurious_isr[];
void guest_main(uint32_t start_info_paddr);
void guest_crash(uint64_t vector);

static struct guest_cmdline cmdline;
/* GED event selector (reading returns pending events and clears them); 0 without ACPI. */
static uint64_t ged_event_sel;
static struct idt_entry idt[256] __attribute__((aligned(16)));

/* The compiler may emit calls to these even in freestanding code. */
void *memset(void *d, int ch, size_t n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)ch;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;
	while (n--)
		*dp++ = *sp++;
	return d;
}

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void con_putc(char ch)
{
	/* Bounded wait on THR empty: a missing UART must not hang the guest. */
	for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
		;
	outb(COM1, (uint8_t)ch);
}

static void con_puts(const char *s)
{
	while (*s) {
		if (*s == '\n')
			con_putc('\r');
		con_putc(*s++);
	}
}

static void con_putu(uint64_t v)
{
	char tmp[24];
	int i = 0;
	do {
		tmp[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (i)
		con_putc(tmp[--i]);
}

static void con_putip(uint32_t ip)
{
	for (int i = 3; i >= 0; i--) {
		con_putu((ip >> (i * 8)) & 0xff);
		if (i)
			con_putc('.');
	}
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static int memeq(const volatile void *a, const char *b, size_t n)
{
	const volatile uint8_t *p = a;
	for (size_t i = 0; i < n; i++)
		if (p[i] != (uint8_t)b[i])
			return 0;
	return 1;
}

/* Parses a decimal exit code; returns -1 when S is not one. */
static int parse_code(const char *s)
{
	int v = 0;
	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > 25)
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v <= 255 ? v : -1;
}

/* Parses a TCP port 1..65535; returns -1 when S is not one. */
static int parse_port(const char *s)
{
	int v = 0;
	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > 6553)
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v >= 1 && v <= 65535 ? v : -1;
}

/* ACPI: RSDP -> XSDT/RSDT -> FADT. Tables sit in guest RAM below 4 GiB (identity-mapped). */
static const volatile uint8_t *acpi_find_rsdp(uint64_t hint)
{
	if (hint && hint < 0x100000000ull && memeq((const volatile void *)hint, "RSD PTR ", 8))
		return (const volatile uint8_t *)hint;
	for (uint64_t a = 0xe0000; a < 0x100000; a += 16)
		if (memeq((const volatile void *)a, "RSD PTR ", 8))
			return (const volatile uint8_t *)a;
	return 0;
}

static uint32_t rd32(const volatile uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const volatile uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static const volatile uint8_t *acpi_find_fadt(uint64_t rsdp_hint)
{
	const volatile uint8_t *rsdp = acpi_find_rsdp(rsdp_hint);
	if (!rsdp)
		return 0;
	uint64_t root = rd32(rsdp + 16);
	int entry_size = 4;
	if (rsdp[15] >= 2 && rd64(rsdp + 24)) {
		root = rd64(rsdp + 24);
		entry_size = 8;
	}
	if (!root || root >= 0x100000000ull)
		return 0;
	const volatile uint8_t *sdt = (const volatile uint8_t *)root;
	uint32_t len = rd32(sdt + 4);
	if (len < 36 || len > 65536)
		return 0;
	for (uint32_t off = 36; off + (uint32_t)entry_size <= len; off += (uint32_t)entry_size) {
		uint64_t t = entry_size == 8 ? rd64(sdt + off) : rd32(sdt + off);
		if (t && t < 0x100000000ull && memeq((const volatile void *)t, "FACP", 4))
			return (const volatile uint8_t *)t;
	}
	return 0;
}

/* qemu's hardware-reduced ACPI (microvm): the GED's registers follow its event selector. */
static void ged_locate(uint64_t rsdp_hint)
{
	const volatile uint8_t *fadt = acpi_find_fadt(rsdp_hint);
	if (!fadt || rd32(fadt + 4) < 256 || fadt[244] != 0)
		return;
	uint64_t sleep_ctl = rd64(fadt + 248);
	if (sleep_ctl > GED_REGS_OFFSET && sleep_ctl < 0x100000000ull)
		ged_event_sel = sleep_ctl - GED_REGS_OFFSET;
}

static int hello_stop_requested(void)
{
	if (!ged_event_sel)
		return 0;
	uint32_t ev = *(volatile uint32_t *)(uintptr_t)ged_event_sel;
	if (ev & ACPI_GED_PWR_DOWN_EVT) {
		con_puts("hello: power button: stopping\n");
		return 1;
	}
	return 0;
}

/* The VMM acts on a poweroff request asynchronously: give it a moment before trying the next
 * method (and before claiming failure). */
static void settle(void)
{
	/* ~0.1 s at the TSC rates qemu hosts run at; no pause: under TCG each one exits to the
	 * main loop and costs about a microsecond. */
	uint64_t start = rdtsc();
	while (rdtsc() - start < 200000000ull)
		;
}

static void guest_poweroff(uint64_t rsdp_hint, int code)
{
	const volatile uint8_t *fadt = acpi_find_fadt(rsdp_hint);
	if (fadt) {
		uint32_t len = rd32(fadt + 4);
		/* Hardware-reduced ACPI (microvm): FADT sleep_control_reg, a generic address. */
		if (len >= 256) {
			uint8_t space = fadt[244];
			uint64_t addr = rd64(fadt + 248);
			uint8_t v = (ACPI_GED_SLP_TYP_S5 << 2) | ACPI_SLP_EN_GED;
			if (addr && space == 0) {
				con_puts("hello: poweroff via the ACPI sleep control register\n");
				*(volatile uint8_t *)addr = v;
				settle();
			}
			else if (addr && space == 1 && addr < 0x10000)
				outb((uint16_t)addr, v);
		}
		/* Legacy PM1a control block (pc/q35): SLP_TYP 0 (qemu's \_S5) | SLP_EN. */
		uint32_t pm1a = len >= 68 ? rd32(fadt + 64) : 0;
		if (pm1a && pm1a < 0x10000) {
			con_puts("hello: poweroff via the ACPI PM1a control block\n");
			outw((uint16_t)pm1a, 1 << 13);
			settle();
		}
	}
	/* microvm with its ACPI tables hidden from us: the GED register at its fixed address. */
	*(volatile uint8_t *)MICROVM_GED_SLEEP_CTL = (ACPI_GED_SLP_TYP_S5 << 2) | ACPI_SLP_EN_GED;
	settle();
	/* isa-debug-exit, when the VMM added one: qemu exits with (code << 1) | 1. */
	outb(ISA_DEBUG_EXIT_PORT, (uint8_t)code);
	outb(ISA_DEBUG_EXIT_PORT_ALT, (uint8_t)code);
	con_puts("hello: poweroff failed; halting\n");
	for (;;)
		__asm__ volatile("cli; hlt");
}

static void idt_set(int v, uint64_t h)
{
	idt[v] = (struct idt_entry){
		.off_lo = (uint16_t)h,
		.sel = 0x08,
		.ist = 0,
		.type = 0x8e, /* present, DPL 0, 64-bit interrupt gate */
		.off_mid = (uint16_t)(h >> 16),
		.off_hi = (uint32_t)(h >> 32),
	};
}

static void idt_install(void)
{
	for (int v = 0; v < 32; v++)
		idt_set(v, (uint64_t)(uintptr_t)guest_exc_stubs + (uint64_t)v * 16);
	idt_set(32, (uint64_t)(uintptr_t)guest_timer_isr);
	idt_set(255, (uint64_t)(uintptr_t)guest_spurious_isr);
	struct idt_ptr p = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};
	__asm__ volatile("lidt %0" : : "m"(p));
}

static void hello_puts(const char *s)
{
	con_puts(s);
}

static void hello_putu(uint64_t v)
{
	con_putu(v);
}

/* A periodic LAPIC tick so the idle loops sleep in hlt instead of spinning a host core and
 * still notice packets and stop requests. qemu's LAPIC counts at 1 GHz with divide-by-1. */
#define LAPIC_BASE 0xfee00000ull
static void lapic_w(uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)(uintptr_t)(LAPIC_BASE + reg) = v;
}

static void lapic_timer_start(uint32_t period_us)
{
	lapic_w(0xf0, 0x100 | 0xff);	  /* enable, spurious vector 255 */
	lapic_w(0x3e0, 0xb);		  /* divide by 1 */
	lapic_w(0x320, 32 | (1u << 17)); /* periodic, vector 32 */
	lapic_w(0x380, period_us * 1000);
}

static void hello_wait_tick(void)
{
	__asm__ volatile("sti; hlt; cli" ::: "memory");
}

static const struct guest_net_host net_host = {
	.puts = hello_puts,
	.putu = hello_putu,
	.wait_tick = hello_wait_tick,
	.stop_requested = hello_stop_requested,
};

void guest_crash(uint64_t vector)
{
	con_puts("NUBO_CRASH ");
	con_putu(vector);
	con_puts("\n");
	/* An empty IDT turns the next exception into a triple fault: the VMM sees a reset. */
	struct idt_ptr none = {0, 0};
	__asm__ volatile("lidt %0; int3" : : "m"(none));
	for (;;)
		__asm__ volatile("cli; hlt");
}

void guest_main(uint32_t start_info_paddr)
{
	uint64_t tsc_start = rdtsc();
	const struct hvm_start_info *si = (const struct hvm_start_info *)(uintptr_t)start_info_paddr;
	const char *line = "";
	uint64_t rsdp = 0;

	con_puts("hello: nubo unikernel\n");
	if (si && si->magic == PVH_START_MAGIC) {
		if (si->cmdline_paddr && si->cmdline_paddr < 0x100000000ull)
			line = (const char *)(uintptr_t)si->cmdline_paddr;
		rsdp = si->rsdp_paddr;
	} else {
		con_puts("hello: no PVH start info; running without a command line\n");
	}

	guest_cmdline_parse(&cmdline, line);
	con_puts("hello: cmdline: ");
	con_puts(line);
	con_puts("\n");
	if (cmdline.net.present) {
		con_puts("hello: netdev.ip ");
		con_putip(cmdline.net.ip);
		con_puts("/");
		con_putu((uint64_t)cmdline.net.prefix);
		con_puts(" gw ");
		con_putip(cmdline.net.gateway);
		con_puts(" dns ");
		con_putip(cmdline.net.dns);
		con_puts("\n");
	} else if (cmdline.bad_netdev) {
		con_puts("hello: ignoring unparsable netdev.ip=");
		con_puts(cmdline.netdev_raw);
		con_puts("\n");
	}
	for (int i = 0; i < cmdline.nenv; i++) {
		con_puts("hello: env ");
		con_puts(cmdline.env[i]);
		con_puts("\n");
	}
	for (int i = 0; i < cmdline.argc; i++) {
		con_puts("hello: arg[");
		con_putu((uint64_t)i);
		con_puts("] ");
		con_puts(cmdline.argv[i]);
		con_puts("\n");
	}
	if (cmdline.truncated)
		con_puts("hello: command line truncated\n");
	con_puts("hello: ready after ");
	con_putu(rdtsc() - tsc_start);
	con_puts(" cycles in guest_main\n");

	/* Decide before printing READY so a bad argument is reported as an exit, not a crash. */
	int code = 0;
	int http_port = 8080;
	enum { ACT_EXIT, ACT_WAIT, ACT_CRASH_PF, ACT_CRASH_UD, ACT_HTTP } act = ACT_EXIT;
	for (int i = 0; i < cmdline.argc; i++) {
		const char *a = cmdline.argv[i];
		if (streq(a, "--wait")) {
			act = ACT_WAIT;
		} else if (streq(a, "--exit")) {
			code = parse_code(i + 1 < cmdline.argc ? cmdline.argv[i + 1] : 0);
			if (code < 0) {
				con_puts("hello: --exit needs a code 0..255\n");
				code = 2;
			} else {
				i++;
			}
			act = ACT_EXIT;
		} else if (streq(a, "--crash")) {
			act = ACT_CRASH_PF;
			if (i + 1 < cmdline.argc && streq(cmdline.argv[i + 1], "ud")) {
				act = ACT_CRASH_UD;
				i++;
			}
		} else if (streq(a, "--http")) {
			act = ACT_HTTP;
			int p = i + 1 < cmdline.argc ? parse_port(cmdline.argv[i + 1]) : -1;
			if (p > 0) {
				http_port = p;
				i++;
			}
		} else if (i == 0 && a[0] != '-') {
			/* argv[0] (the program name) when the caller passes one */
		} else {
			con_puts("hello: ignoring unknown argument ");
			con_puts(a);
			con_puts("\n");
		}
	}

	if (act == ACT_HTTP) {
		if (!cmdline.net.present) {
			con_puts("hello: --http needs netdev.ip=<ip>/<prefix>:<gw>:<dns> on the command line\n");
			act = ACT_EXIT;
			code = 2;
		} else if (guest_net_init(&net_host, cmdline.net.ip, cmdline.net.prefix) < 0) {
			act = ACT_EXIT;
			code = 1;
		}
	}

	con_puts("NUBO_READY\n");

	switch (act) {
	case ACT_WAIT:
		con_puts("hello: waiting for the VMM to stop us\n");
		ged_locate(rsdp);
		if (!ged_event_sel)
			for (;;)
				__asm__ volatile("cli; hlt");
		/* With ACPI, a graceful stop (power button) ends the wait with a clean exit. */
		idt_install();
		lapic_timer_start(10000);
		while (!hello_stop_requested())
			hello_wait_tick();
		break;
	case ACT_CRASH_PF:
		idt_install();
		con_puts("hello: writing through an unmapped address\n");
		*(volatile uint64_t *)0x0000100000000000ull = 1;
		break;
	case ACT_CRASH_UD:
		idt_install();
		con_puts("hello: executing ud2\n");
		__asm__ volatile("ud2");
		break;
	case ACT_HTTP:
		ged_locate(rsdp);
		idt_install();
		lapic_timer_start(1000);
		guest_net_serve_http((uint16_t)http_port, "Hello from nubo's hello unikernel!\n");
		break;
	case ACT_EXIT:
		break;
	}
	con_puts("NUBO_EXIT ");
	con_putu((uint64_t)code);
	con_puts("\n");
	guest_poweroff(rsdp, code);
}
