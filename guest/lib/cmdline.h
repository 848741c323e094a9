/* Parser for the Unikraft-style kernel command line nubo's agent builds, shared by the hello
 * unikernel (freestanding) and the Linux runtimes' /init (static libc): no allocation, no libc. */
#ifndef NUBO_GUEST_CMDLINE_H
#define NUBO_GUEST_CMDLINE_H

#include <stdint.h>

#define GUEST_CMDLINE_MAX 4096 /* bytes kept from the line; the rest is dropped and flagged */
#define GUEST_MAX_ARGS 64
#define GUEST_MAX_ENV 64
#define GUEST_MAX_FSTAB 16

struct guest_netdev {
	int present;
	uint32_t ip;	   /* host byte order */
	int prefix;	   /* 0..32 */
	uint32_t gateway;  /* 0 if absent */
	uint32_t dns;	   /* 0 if absent */
};

struct guest_cmdline {
	char buf[GUEST_CMDLINE_MAX]; /* token storage; argv/env point into it */
	struct guest_netdev net;
	const char *netdev_raw; /* the netdev.ip= value as given, NULL if absent */
	const char *env[GUEST_MAX_ENV];
	int nenv;
	const char *argv[GUEST_MAX_ARGS];
	int argc;
	/* vfs.fstab=["<device>:<mountpoint>:<fs>[:<flags>]", ...] (Unikraft's shape; nubo's
	 * agent puts a virtio-blk serial as the device) */
	const char *fstab[GUEST_MAX_FSTAB];
	int nfstab;
	int truncated; /* line, env or args did not fit */
	int bad_netdev; /* netdev.ip= present but unparsable */
};

/* Parses LINE (NUL-terminated, any length). Unknown kernel parameters before `--` are
 * skipped. Never fails: problems are flagged in the struct. */
void guest_cmdline_parse(struct guest_cmdline *c, const char *line);

/* Parses a dotted quad; returns the number of characters consumed, 0 on error. */
int guest_parse_ipv4(const char *s, uint32_t *out);

#endif
