/* nubo-init: /init of nubo's Linux runtimes. Loads the virtio modules, mounts the basics,
 * configures lo/eth0 from netdev.ip=, sets env.vars, mounts the volumes of vfs.fstab=, prints
 * NUBO_READY, runs the app args and powers off after printing NUBO_EXIT <code>. Static, no dependencies beyond libc. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <grp.h>
#include <time.h>
#include <unistd.h>

#include "cmdline.h"

#define MODULE_DIR "/lib/modules/nubo"
#define KEY_POWER_CODE 116
#define PARAM_MAX 1024

/* Dependency order (this-machine.md); modules missing from the image are skipped. */
static const char *const guest_modules[] = {
	"virtio_ring", "virtio", "failover", "net_failover", "virtio_pci_legacy_dev",
	"virtio_pci_modern_dev", "virtio_pci", "virtio_mmio", "virtio_net",
	/* volumes: the agent attaches each as a virtio-blk disk (mount_volumes) */
	"virtio_blk",
	/* Entropy from the host when the VMM gives a virtio-rng: without it the first getrandom()
	 * (python's startup, TLS) waits ~1 s for jitter entropy under TCG. */
	"virtio_rng",
	/* The ACPI power button (qemu system_powerdown, libvirt's graceful shutdown) as input
	 * events, so a platform stop reaches the app as SIGTERM instead of waiting for a kill. */
	"button", "evdev",
	/* The environment arrives as a fw_cfg file (fw_cfg_env), not on the command line that
	 * every user of the host sees in `ps`. */
	"qemu_fw_cfg",
};

#define STOP_GRACE_MS 10000 /* SIGTERM -> SIGKILL after a power-button stop */
/* The platform's scale-to-zero disable counter (Unikraft Cloud's libukp file): the app writes
 * "+", "-" or "=N"; while it is above 0 the instance never goes to standby. A FIFO the init
 * reads; every change goes to the agent as a console line NUBO_S2Z_DISABLE <n>. */
#define S2Z_DISABLE_DIR "/uk/libukp"
#define S2Z_DISABLE_FILE S2Z_DISABLE_DIR "/scale_to_zero_disable"
#define S2Z_DISABLE_MAX 1000000
#define MAX_INPUTS 8

struct init_ctx {
	struct guest_cmdline cmd;
	char line[GUEST_CMDLINE_MAX];
	int verbose;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	/* Straight to the console: the markers must not sit in a stdio buffer. */
	ssize_t off = 0;
	while (off < n) {
		ssize_t w = write(STDOUT_FILENO, buf + off, (size_t)(n - off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += w;
	}
}

static void setup_console(void)
{
	/* The kernel opens /dev/console for us when the initramfs has it; make sure anyway. */
	if (fcntl(STDOUT_FILENO, F_GETFD) < 0) {
		int fd = open("/dev/console", O_RDWR | O_NOCTTY);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
			if (fd > 2)
				close(fd);
		}
	}
}

static void do_mount(const char *src, const char *dst, const char *type, unsigned long flags,
		     const char *data)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, flags, data) < 0 && errno != EBUSY)
		say("nubo-init: cannot mount %s on %s: %s", type, dst, strerror(errno));
}

/* Module parameters given on the kernel command line as <module>.<param>=<value> are applied
 * by modprobe, not by the kernel; we are the modprobe here (e.g. virtio_mmio.device=). */
static void module_params(const char *line, const char *mod, char *out, size_t out_len)
{
	size_t mlen = strlen(mod), used = 0;
	out[0] = '\0';
	for (const char *p = line; *p;) {
		while (*p == ' ')
			p++;
		const char *start = p;
		int quoted = 0;
		while (*p && (quoted || *p != ' ')) {
			if (*p == '"')
				quoted = !quoted;
			p++;
		}
		size_t tlen = (size_t)(p - start);
		if (tlen > mlen + 1 && start[mlen] == '.') {
			int match = 1;
			for (size_t i = 0; i < mlen && match; i++) {
				char a = start[i] == '-' ? '_' : start[i];
				match = a == mod[i];
			}
			size_t plen = tlen - mlen - 1;
			if (match && used + plen + 2 < out_len) {
				if (used)
					out[used++] = ' ';
				memcpy(out + used, start + mlen + 1, plen);
				used += plen;
				out[used] = '\0';
			}
		}
		if (tlen == 2 && start[0] == '-' && start[1] == '-')
			break;
	}
}

static void load_modules(const struct init_ctx *ctx)
{
	for (size_t i = 0; i < sizeof(guest_modules) / sizeof(guest_modules[0]); i++) {
		char path[256], params[PARAM_MAX];
		snprintf(path, sizeof(path), MODULE_DIR "/%s.ko", guest_modules[i]);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		module_params(ctx->line, guest_modules[i], params, sizeof(params));
		if (syscall(SYS_finit_module, fd, params, 0) < 0 && errno != EEXIST)
			say("nubo-init: cannot load module %s: %s", guest_modules[i], strerror(errno));
		close(fd);
	}
}

static int if_ioctl(int sock, unsigned long req, struct ifreq *ifr, const char *what)
{
	if (ioctl(sock, req, ifr) < 0) {
		say("nubo-init: cannot %s on %s: %s", what, ifr->ifr_name, strerror(errno));
		return -1;
	}
	return 0;
}

static void set_sin(struct sockaddr *sa, uint32_t addr_host)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(addr_host)};
	memcpy(sa, &sin, sizeof(sin));
}

static int link_up(int sock, const char *name)
{
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (if_ioctl(sock, SIOCGIFFLAGS, &ifr, "read flags") < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	return if_ioctl(sock, SIOCSIFFLAGS, &ifr, "bring up");
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, text, strlen(text)) < 0)
		say("nubo-init: cannot write %s: %s", path, strerror(errno));
	close(fd);
}

static void configure_network(const struct init_ctx *ctx)
{
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		say("nubo-init: no IPv4 socket: %s", strerror(errno));
		return;
	}
	link_up(sock, "lo");
	const struct guest_netdev *net = &ctx->cmd.net;
	if (ctx->cmd.bad_netdev)
		say("nubo-init: ignoring unparsable netdev.ip=%s", ctx->cmd.netdev_raw);
	if (!net->present) {
		close(sock);
		return;
	}
	/* virtio_net probes synchronously in finit_module, but give a late device a moment. */
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "eth0");
	for (int i = 0; i < 200 && ioctl(sock, SIOCGIFFLAGS, &ifr) < 0; i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	uint32_t mask = net->prefix ? 0xffffffffu << (32 - net->prefix) : 0;
	set_sin(&ifr.ifr_addr, net->ip);
	if (if_ioctl(sock, SIOCSIFADDR, &ifr, "set address") < 0)
		goto out;
	set_sin(&ifr.ifr_netmask, mask);
	if (if_ioctl(sock, SIOCSIFNETMASK, &ifr, "set netmask") < 0)
		goto out;
	if (link_up(sock, "eth0") < 0)
		goto out;
	if (net->gateway) {
		struct rtentry rt = {0};
		set_sin(&rt.rt_dst, 0);
		set_sin(&rt.rt_genmask, 0);
		set_sin(&rt.rt_gateway, net->gateway);
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		rt.rt_dev = (char *)"eth0";
		if (ioctl(sock, SIOCADDRT, &rt) < 0)
			say("nubo-init: cannot add the default route: %s", strerror(errno));
	}
	if (net->dns) {
		char text[64];
		snprintf(text, sizeof(text), "nameserver %u.%u.%u.%u\n", net->dns >> 24,
			 (net->dns >> 16) & 0xff, (net->dns >> 8) & 0xff, net->dns & 0xff);
		mkdir("/etc", 0755);
		write_file("/etc/resolv.conf", text);
	}
	say("nubo-init: eth0 %u.%u.%u.%u/%d gw %u.%u.%u.%u", net->ip >> 24, (net->ip >> 16) & 0xff,
	    (net->ip >> 8) & 0xff, net->ip & 0xff, net->prefix, net->gateway >> 24,
	    (net->gateway >> 16) & 0xff, (net->gateway >> 8) & 0xff, net->gateway & 0xff);
out:
	close(sock);
}

#define FW_CFG_ENV "/sys/firmware/qemu_fw_cfg/by_name/opt/org.nubo/env/raw"
#define FW_CFG_ENV_MAX (4u << 20) /* 256 entries of 4 KiB names and values, and then some */

/* The environment nubo's agent hands over as the fw_cfg file opt/org.nubo/env: "K=V\0" entries
 * (values may hold spaces, quotes, newlines). Absent when the agent put env.vars on the command
 * line instead (an older agent). */
static void fw_cfg_env(void)
{
	int fd = open(FW_CFG_ENV, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char *buf = malloc(FW_CFG_ENV_MAX + 1);
	size_t len = 0;
	ssize_t r = 0;
	while (buf && len < FW_CFG_ENV_MAX &&
	       ((r = read(fd, buf + len, FW_CFG_ENV_MAX - len)) > 0 || (r < 0 && errno == EINTR)))
		len += r > 0 ? (size_t)r : 0;
	close(fd);
	if (!buf || r < 0 || len >= FW_CFG_ENV_MAX) {
		say("nubo-init: cannot read the environment from fw_cfg%s", buf ? "" : ": out of memory");
		free(buf);
		return;
	}
	buf[len] = '\0';
	for (size_t off = 0; off < len;) {
		char *kv = buf + off;
		size_t l = strlen(kv);
		off += l + 1;
		char *eq = strchr(kv, '=');
		if (!eq || eq == kv) {
			say("nubo-init: ignoring env entry without a name");
			continue;
		}
		*eq = '\0';
		setenv(kv, eq + 1, 1);
		say("nubo-init: env %s", kv); /* names only: values may be secrets */
	}
	free(buf);
}

static void setup_env(const struct init_ctx *ctx)
{
	clearenv();
	setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
	setenv("HOME", "/", 1);
	setenv("TERM", "linux", 1);
	setenv("LANG", "C.UTF-8", 1);
	for (int i = 0; i < ctx->cmd.nenv; i++) {
		const char *kv = ctx->cmd.env[i];
		const char *eq = strchr(kv, '=');
		if (!eq || eq == kv) {
			say("nubo-init: ignoring env entry without a name: %s", kv);
			continue;
		}
		char name[256];
		size_t nlen = (size_t)(eq - kv);
		if (nlen >= sizeof(name)) {
			say("nubo-init: ignoring env entry with an over-long name");
			continue;
		}
		memcpy(name, kv, nlen);
		name[nlen] = '\0';
		setenv(name, eq + 1, 1);
		say("nubo-init: env %s", name); /* names only: values may be secrets */
	}
	fw_cfg_env();
}

/* ---- the app's user: the image's config.User (nubo.user= on the command line), else an
 * unprivileged one, so raw sockets and the rest of root's powers are an explicit choice. */

#define APP_DEFAULT_USER "nobody"
#define APP_USER_MAX 64

struct app_user {
	uid_t uid;
	gid_t gid;
	char spec[APP_USER_MAX + 1];
};

/* The first nubo.user= token before `--`, outside quotes (an env value cannot smuggle one). */
static int find_user_param(const char *line, char *out, size_t out_len)
{
	static const char key[] = "nubo.user=";
	int quoted = 0;
	for (const char *p = line; *p; p++) {
		if (quoted) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '"')
				quoted = 0;
			continue;
		}
		if (*p == '"') {
			quoted = 1;
			continue;
		}
		if (p != line && p[-1] != ' ' && p[-1] != '\t')
			continue;
		if (p[0] == '-' && p[1] == '-' && (p[2] == ' ' || p[2] == '\0'))
			return 0;
		if (strncmp(p, key, sizeof(key) - 1) == 0) {
			const char *v = p + sizeof(key) - 1;
			size_t n = strcspn(v, " \t");
			if (n == 0 || n >= out_len)
				return 0;
			memcpy(out, v, n);
			out[n] = '\0';
			return 1;
		}
	}
	return 0;
}

static int all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* Field 3 (and 4) of the line of NAME in an /etc/passwd-style file; static libc has no NSS. */
static int lookup_id(const char *file, const char *name, long *id, long *id2)
{
	FILE *f = fopen(file, "re");
	if (!f)
		return -1;
	char line[512];
	int found = -1;
	size_t nlen = strlen(name);
	while (found < 0 && fgets(line, sizeof(line), f)) {
		if (strncmp(line, name, nlen) != 0 || line[nlen] != ':')
			continue;
		const char *p = strchr(line + nlen + 1, ':'); /* past the password field */
		if (!p)
			break;
		char *end;
		*id = strtol(p + 1, &end, 10);
		if (end == p + 1 || *end != ':')
			break;
		if (id2) {
			*id2 = strtol(end + 1, &end, 10);
			if (*end != ':')
				break;
		}
		found = 0;
	}
	fclose(f);
	return found;
}

/* "name", "uid", "name:group", "uid:gid" (and mixes), as OCI's config.User. */
static int resolve_user(const char *spec, struct app_user *u)
{
	char buf[APP_USER_MAX + 1];
	snprintf(u->spec, sizeof(u->spec), "%s", spec);
	snprintf(buf, sizeof(buf), "%s", spec);
	char *group = strchr(buf, ':');
	if (group)
		*group++ = '\0';
	long uid = -1, gid = -1;
	if (all_digits(buf)) {
		uid = strtol(buf, NULL, 10);
		gid = uid; /* a bare uid gets the group of the same number, never root's */
	} else if (lookup_id("/etc/passwd", buf, &uid, &gid) < 0) {
		say("nubo-init: user '%s' is not in /etc/passwd", buf);
		return -1;
	}
	if (group && all_digits(group)) {
		gid = strtol(group, NULL, 10);
	} else if (group && lookup_id("/etc/group", group, &gid, NULL) < 0) {
		say("nubo-init: group '%s' is not in /etc/group", group);
		return -1;
	}
	if (uid < 0 || uid > 0x7fffffffL || gid < 0 || gid > 0x7fffffffL) {
		say("nubo-init: user '%s' is out of range", spec);
		return -1;
	}
	u->uid = (uid_t)uid;
	u->gid = (gid_t)gid;
	return 0;
}

static int app_user_from_cmdline(const char *line, struct app_user *u)
{
	char spec[APP_USER_MAX + 1];
	if (!find_user_param(line, spec, sizeof(spec)))
		snprintf(spec, sizeof(spec), "%s", APP_DEFAULT_USER);
	if (resolve_user(spec, u) == 0)
		return 0;
	if (strcmp(spec, APP_DEFAULT_USER) == 0) {
		/* an image without the runtime's /etc/passwd: the conventional nobody */
		u->uid = 65534;
		u->gid = 65534;
		return 0;
	}
	return -1;
}

/* The guest is the app's alone: low ports and ICMP echo sockets need no privilege (raw and
 * packet sockets still do). */
static void allow_unprivileged_net(void)
{
	write_file("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0");
	write_file("/proc/sys/net/ipv4/ping_group_range", "0 2147483647");
}

/* In the app's child, before exec. */
static int drop_privileges(const struct app_user *u)
{
	if (u->uid == 0)
		return 0;
	if (setgroups(1, &u->gid) < 0 || setgid(u->gid) < 0 || setuid(u->uid) < 0)
		return -1;
	/* setuid from root to non-root is irreversible: make sure it was */
	if (setuid(0) == 0)
		return -1;
	return 0;
}

static void read_cmdline(struct init_ctx *ctx)
{
	ctx->line[0] = '\0';
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, ctx->line, sizeof(ctx->line) - 1);
		if (n > 0 && ctx->line[n - 1] == '\n')
			n--; /* /proc/cmdline ends with a newline; a module parameter must not */
		ctx->line[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	guest_cmdline_parse(&ctx->cmd, ctx->line);
}

/* Mounted volumes, unmounted at power-off: a clean ext4 needs no journal replay, which a later
 * read-only attachment could not do. */
static char volume_mounts[GUEST_MAX_FSTAB][320];
static int n_volume_mounts;

static void unmount_volumes(void)
{
	for (int i = n_volume_mounts - 1; i >= 0; i--)
		if (umount(volume_mounts[i]) < 0 &&
		    mount(NULL, volume_mounts[i], NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
			say("nubo-init: cannot unmount volume %s: %s", volume_mounts[i], strerror(errno));
	n_volume_mounts = 0;
}

static void power_off(int code)
{
	say("NUBO_EXIT %d", code);
	sync();
	unmount_volumes();
	reboot(RB_POWER_OFF);
	/* Only reached if the kernel refused. */
	for (;;)
		pause();
}

/* Input devices that can report KEY_POWER (the ACPI power button), opened non-blocking. */
static int open_power_buttons(struct pollfd *pfd, int max)
{
	int n = 0;
	DIR *d = opendir("/dev/input");
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < max) {
		if (strncmp(de->d_name, "event", 5) != 0)
			continue;
		char path[300];
		snprintf(path, sizeof(path), "/dev/input/%s", de->d_name);
		int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		unsigned long keys[(KEY_MAX + 1) / (8 * sizeof(unsigned long)) + 1] = {0};
		if (ioctl(fd, EVIOCGBIT(EV_KEY, sizeof(keys)), keys) < 0 ||
		    !(keys[KEY_POWER_CODE / (8 * sizeof(unsigned long))] &
		      (1ul << (KEY_POWER_CODE % (8 * sizeof(unsigned long)))))) {
			close(fd);
			continue;
		}
		pfd[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
	}
	closedir(d);
	return n;
}

static int power_pressed(int fd)
{
	struct input_event ev[16];
	ssize_t r;
	int pressed = 0;
	while ((r = read(fd, ev, sizeof(ev))) > 0)
		for (size_t i = 0; i < (size_t)r / sizeof(ev[0]); i++)
			if (ev[i].type == EV_KEY && ev[i].code == KEY_POWER_CODE && ev[i].value == 1)
				pressed = 1;
	return pressed;
}

static void mkdirs(const char *path);

/* The FIFO, world-writable (the app runs unprivileged); opened read-write so the init never
 * sees end-of-file between writers. -1 when it cannot be made. */
static int s2z_disable_open(void)
{
	mkdirs(S2Z_DISABLE_DIR);
	unlink(S2Z_DISABLE_FILE);
	if (mkfifo(S2Z_DISABLE_FILE, 0666) < 0 || chmod(S2Z_DISABLE_FILE, 0666) < 0) {
		say("nubo-init: cannot make %s: %s", S2Z_DISABLE_FILE, strerror(errno));
		return -1;
	}
	return open(S2Z_DISABLE_FILE, O_RDWR | O_NONBLOCK | O_CLOEXEC);
}

/* Apply what writers sent: "+" and "-" step the counter (never below 0), "=N" sets it;
 * blanks and newlines separate, anything else is ignored. Reports a change on the console. */
static void s2z_disable_read(int fd, long *count)
{
	char buf[256];
	ssize_t r;
	long before = *count;
	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] == '+' && *count < S2Z_DISABLE_MAX)
				(*count)++;
			else if (buf[i] == '-' && *count > 0)
				(*count)--;
			else if (buf[i] == '=') {
				long v = 0;
				ssize_t k = i + 1;
				while (k < r && buf[k] >= '0' && buf[k] <= '9' && v <= S2Z_DISABLE_MAX)
					v = v * 10 + (buf[k++] - '0');
				if (k > i + 1)
					*count = v > S2Z_DISABLE_MAX ? S2Z_DISABLE_MAX : v;
				i = k - 1;
			}
		}
	}
	if (*count != before)
		say("NUBO_S2Z_DISABLE %ld", *count);
}

/* PID 1's loop: reap every orphan, turn a power-button press into SIGTERM for the app (then
 * SIGKILL after STOP_GRACE_MS), and power off with the app's status once it is gone. */
static void supervise(pid_t app, int s2z_fd)
{
	struct pollfd pfd[2 + MAX_INPUTS];
	long s2z_count = 0;
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0)
		say("nubo-init: signalfd: %s", strerror(errno));
	pfd[0] = (struct pollfd){.fd = sfd, .events = POLLIN};
	int ninputs = open_power_buttons(pfd + 1, MAX_INPUTS);
	pfd[1 + ninputs] = (struct pollfd){.fd = s2z_fd, .events = POLLIN};
	int stopping = 0;
	struct timespec stop_at = {0};

	for (;;) {
		int timeout_ms = sfd < 0 ? 100 : -1;
		if (stopping) {
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			long left = (stop_at.tv_sec - now.tv_sec) * 1000 + (stop_at.tv_nsec - now.tv_nsec) / 1000000;
			if (left <= 0) {
				say("nubo-init: the app ignored SIGTERM for %d ms: killing it", STOP_GRACE_MS);
				if (kill(-app, SIGKILL) < 0)
					kill(app, SIGKILL);
				stopping = 0;
				left = -1;
			}
			timeout_ms = (int)left;
		}
		if (poll(pfd, (nfds_t)(2 + ninputs), timeout_ms) < 0 && errno != EINTR)
			break;
		if (s2z_fd >= 0 && (pfd[1 + ninputs].revents & POLLIN))
			s2z_disable_read(s2z_fd, &s2z_count);
		for (int i = 0; i < ninputs; i++) {
			if (!(pfd[1 + i].revents & POLLIN) || !power_pressed(pfd[1 + i].fd) || stopping)
				continue;
			say("nubo-init: power button: stopping the app (SIGTERM)");
			if (kill(-app, SIGTERM) < 0)
				kill(app, SIGTERM);
			stopping = 1;
			clock_gettime(CLOCK_MONOTONIC, &stop_at);
			stop_at.tv_sec += STOP_GRACE_MS / 1000;
		}
		if (sfd >= 0 && (pfd[0].revents & POLLIN)) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) > 0)
				;
		}
		int status;
		pid_t pid;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			if (pid != app)
				continue;
			int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			/* Give the app's orphans a chance to end before the poweroff. */
			kill(-1, SIGTERM);
			power_off(code);
		}
		if (pid < 0 && errno == ECHILD)
			power_off(1);
	}
	power_off(1);
}

/* mkdir -p, for a mount point inside the image's tree. */
static void mkdirs(const char *path)
{
	char p[512];
	snprintf(p, sizeof(p), "%s", path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	mkdir(p, 0755);
}

/* The block device whose virtio serial is SERIAL ("vda"), waiting a little for the driver's
 * probe: 0 found, -1 not there. */
static int find_disk(const char *serial, char *dev, size_t dev_len)
{
	for (int tries = 0; tries < 50; tries++) {
		DIR *d = opendir("/sys/block");
		struct dirent *e;
		while (d && (e = readdir(d)) != NULL) {
			if (strncmp(e->d_name, "vd", 2) != 0)
				continue;
			char path[300], got[64] = "";
			snprintf(path, sizeof(path), "/sys/block/%s/serial", e->d_name);
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			ssize_t n = read(fd, got, sizeof(got) - 1);
			close(fd);
			while (n > 0 && (got[n - 1] == '\n' || got[n - 1] == ' '))
				n--;
			got[n > 0 ? n : 0] = '\0';
			if (strcmp(got, serial) == 0) {
				snprintf(dev, dev_len, "/dev/%.16s", e->d_name);
				closedir(d);
				return 0;
			}
		}
		if (d)
			closedir(d);
		usleep(100 * 1000);
	}
	return -1;
}

/* The volumes of vfs.fstab=, before the app starts: a volume that cannot be mounted stops the
 * boot (the app would write into the image's tmpfs and lose it). A fresh volume's root becomes
 * the app user's, so an unprivileged app can write to it. */
static void mount_volumes(const struct init_ctx *ctx, uid_t uid, gid_t gid)
{
	for (int i = 0; i < ctx->cmd.nfstab; i++) {
		char e[320], dev[32];
		snprintf(e, sizeof(e), "%s", ctx->cmd.fstab[i]);
		char *at = strchr(e, ':');
		char *fs = at ? strchr(at + 1, ':') : NULL;
		char *mode = fs ? strchr(fs + 1, ':') : NULL;
		if (!at || !fs || at[1] != '/') {
			say("nubo-init: vfs.fstab entry '%s' is not <device>:<path>:<fs>[:ro|rw]", e);
			power_off(1);
		}
		*at++ = '\0';
		*fs++ = '\0';
		if (mode)
			*mode++ = '\0';
		int ro = mode && strcmp(mode, "ro") == 0;
		if (find_disk(e, dev, sizeof(dev)) < 0) {
			say("nubo-init: volume %s for %s: no disk with that serial", e, at);
			power_off(1);
		}
		mkdirs(at);
		if (mount(dev, at, fs, MS_NOSUID | MS_NODEV | (ro ? MS_RDONLY : 0), NULL) < 0) {
			say("nubo-init: cannot mount volume %s (%s) on %s: %s", e, dev, at, strerror(errno));
			power_off(1);
		}
		struct stat st;
		if (!ro && uid != 0 && stat(at, &st) == 0 && st.st_uid == 0 && chown(at, uid, gid) < 0)
			say("nubo-init: cannot give %s to uid %u: %s", at, (unsigned)uid, strerror(errno));
		if (!ro)
			snprintf(volume_mounts[n_volume_mounts++], sizeof(volume_mounts[0]), "%s", at);
		say("nubo-init: volume %s on %s (%s%s)", dev, at, fs, ro ? ", read-only" : "");
	}
}

int main(int argc, char **argv)
{
	static struct init_ctx ctx;
	(void)argc;
	(void)argv;

	setup_console();
	do_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	do_mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	do_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	/* What udev would add: servers configured to log to /dev/stdout or /dev/stderr (nginx,
	 * mariadb) would otherwise open a new file in devtmpfs and the console would see nothing. */
	symlink("/proc/self/fd", "/dev/fd");
	symlink("/proc/self/fd/0", "/dev/stdin");
	symlink("/proc/self/fd/1", "/dev/stdout");
	symlink("/proc/self/fd/2", "/dev/stderr");
	do_mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	do_mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620");
	setup_console();
	read_cmdline(&ctx);

	load_modules(&ctx);
	configure_network(&ctx);
	setup_env(&ctx);
	for (int i = 0; i < ctx.cmd.argc; i++)
		say("nubo-init: arg[%d] %s", i, ctx.cmd.argv[i]);
	if (ctx.cmd.truncated)
		say("nubo-init: the command line was truncated");
	if (ctx.cmd.argc == 0) {
		say("nubo-init: no application given: put it after `--` on the kernel command line "
		    "(the image's cmd or the instance's args)");
		power_off(1);
	}
	if (chdir("/") < 0)
		say("nubo-init: cannot chdir to /: %s", strerror(errno));

	char *app_argv[GUEST_MAX_ARGS + 1];
	for (int i = 0; i < ctx.cmd.argc; i++)
		app_argv[i] = (char *)ctx.cmd.argv[i];
	app_argv[ctx.cmd.argc] = NULL;

	struct app_user user;
	if (app_user_from_cmdline(ctx.line, &user) < 0) {
		say("nubo-init: cannot run the app as '%s' (the image's user)", user.spec);
		power_off(1);
	}
	mount_volumes(&ctx, user.uid, user.gid);
	allow_unprivileged_net();
	say("nubo-init: app user %s (uid %u, gid %u)", user.spec, (unsigned)user.uid,
	    (unsigned)user.gid);

	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);

	int s2z_fd = s2z_disable_open();
	say("NUBO_READY");
	pid_t app = fork();
	if (app < 0) {
		say("nubo-init: cannot fork: %s", strerror(errno));
		power_off(1);
	}
	if (app == 0) {
		sigprocmask(SIG_UNBLOCK, &chld, NULL);
		setsid();
		/* The console as controlling terminal, so shells and signals behave. */
		ioctl(STDIN_FILENO, TIOCSCTTY, 0);
		if (drop_privileges(&user) < 0) {
			say("nubo-init: cannot switch to uid %u: %s", (unsigned)user.uid, strerror(errno));
			_exit(126);
		}
		execvp(app_argv[0], app_argv);
		int e = errno;
		struct stat st;
		/* ENOENT for a file that is there: its ELF interpreter (or #! program) is not. */
		if (e == ENOENT && strchr(app_argv[0], '/') && stat(app_argv[0], &st) == 0)
			say("nubo-init: cannot run %s: its ELF interpreter or #! program is missing "
			    "(a dynamically linked program needs the base-compat runtime)", app_argv[0]);
		else
			say("nubo-init: cannot run %s: %s", app_argv[0], strerror(e));
		_exit(127);
	}
	supervise(app, s2z_fd);
}
