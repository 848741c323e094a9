/* Parser for `... netdev.ip=<ip>/<prefix>:<gw>:<dns> env.vars=[ "K=V" ... ] -- args...`.
 * Freestanding on purpose (the hello unikernel has no libc); bounded by GUEST_CMDLINE_MAX. */
#include "cmdline.h"

static int is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static int starts_with(const char *s, const char *prefix)
{
	while (*prefix)
		if (*s++ != *prefix++)
			return 0;
	return 1;
}

int guest_parse_ipv4(const char *s, uint32_t *out)
{
	const char *p = s;
	uint32_t v = 0;
	for (int part = 0; part < 4; part++) {
		if (part > 0) {
			if (*p != '.')
				return 0;
			p++;
		}
		if (*p < '0' || *p > '9')
			return 0;
		unsigned n = 0;
		int digits = 0;
		while (*p >= '0' && *p <= '9') {
			n = n * 10 + (unsigned)(*p - '0');
			if (++digits > 3 || n > 255)
				return 0;
			p++;
		}
		v = (v << 8) | n;
	}
	*out = v;
	return (int)(p - s);
}

/* <ip>/<prefix>[:<gw>[:<dns>[:...]]]; empty gw/dns fields allowed. */
static int parse_netdev(const char *s, struct guest_netdev *net)
{
	int n = guest_parse_ipv4(s, &net->ip);
	if (n == 0)
		return -1;
	s += n;
	net->prefix = 32;
	if (*s == '/') {
		s++;
		if (*s < '0' || *s > '9')
			return -1;
		int prefix = 0;
		while (*s >= '0' && *s <= '9') {
			prefix = prefix * 10 + (*s - '0');
			if (prefix > 32)
				return -1;
			s++;
		}
		net->prefix = prefix;
	}
	if (*s == ':') {
		s++;
		if (*s && *s != ':') {
			n = guest_parse_ipv4(s, &net->gateway);
			if (n == 0)
				return -1;
			s += n;
		}
	}
	if (*s == ':') {
		s++;
		if (*s && *s != ':') {
			n = guest_parse_ipv4(s, &net->dns);
			if (n == 0)
				return -1;
			s += n;
		}
	}
	if (*s != '\0' && *s != ':')
		return -1;
	net->present = 1;
	return 0;
}

struct out {
	struct guest_cmdline *c;
	int used;
};

static int out_putc(struct out *o, char ch)
{
	if (o->used >= GUEST_CMDLINE_MAX - 1) {
		o->c->truncated = 1;
		return -1;
	}
	o->c->buf[o->used++] = ch;
	return 0;
}

/* Reads one word at *pp: quoted parts ("..." with \" and \\ escapes) are joined to bare
 * parts; a bare word ends at whitespace, or at any character of STOPS (may be ""). Stores
 * the word, NUL-terminated, in the buffer and returns it (NULL when the buffer is full). */
static int is_stop(char ch, const char *stops)
{
	for (; *stops; stops++)
		if (ch == *stops)
			return 1;
	return 0;
}

static const char *read_word(struct out *o, const char **pp, const char *stops)
{
	const char *p = *pp;
	int start = o->used;
	int ok = 1;
	while (*p && !is_space(*p) && !is_stop(*p, stops)) {
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
					p++;
				if (out_putc(o, *p++) < 0)
					ok = 0;
			}
			if (*p == '"')
				p++;
		} else if (out_putc(o, *p++) < 0) {
			ok = 0;
		}
	}
	*pp = p;
	if (out_putc(o, '\0') < 0 || !ok) {
		o->used = start;
		o->c->truncated = 1;
		return 0;
	}
	return &o->c->buf[start];
}

static void skip_word(const char **pp)
{
	const char *p = *pp;
	int quoted = 0;
	while (*p && (quoted || !is_space(*p))) {
		if (*p == '"')
			quoted = !quoted;
		p++;
	}
	*pp = p;
}

/* The entries of a `[...]` list (after the bracket) separated by spaces or commas into
 * out (at most max; more flag truncation). -1 when the list never ends: nothing follows. */
static int read_list(struct out *o, const char **pp, const char **out, int max, int *n)
{
	const char *p = *pp;
	for (;;) {
		while (is_space(*p) || *p == ',')
			p++;
		if (!*p) {
			*pp = p;
			return -1;
		}
		if (*p == ']') {
			*pp = p + 1;
			return 0;
		}
		const char *before = p;
		const char *v = read_word(o, &p, "],");
		if (p == before)
			p++; /* cannot happen, but never loop forever */
		if (!v)
			continue;
		if (*n < max && *v)
			out[(*n)++] = v;
		else if (*v)
			o->c->truncated = 1;
	}
}

void guest_cmdline_parse(struct guest_cmdline *c, const char *line)
{
	struct out o = {c, 0};
	const char *p = line;

	c->net = (struct guest_netdev){0};
	c->netdev_raw = 0;
	c->nenv = 0;
	c->nfstab = 0;
	c->argc = 0;
	c->truncated = 0;
	c->bad_netdev = 0;
	c->buf[0] = '\0';

	for (;;) {
		while (is_space(*p))
			p++;
		if (!*p)
			return;
		if (p[0] == '-' && p[1] == '-' && (p[2] == '\0' || is_space(p[2]))) {
			p += 2;
			break;
		}
		if (starts_with(p, "netdev.ip=")) {
			p += 10;
			const char *v = read_word(&o, &p, "");
			if (!v)
				continue;
			c->netdev_raw = v;
			if (parse_netdev(v, &c->net) < 0) {
				c->net = (struct guest_netdev){0};
				c->bad_netdev = 1;
			}
		} else if (starts_with(p, "vfs.fstab=[")) {
			p += 11;
			if (read_list(&o, &p, c->fstab, GUEST_MAX_FSTAB, &c->nfstab) < 0)
				return;
		} else if (starts_with(p, "env.vars=[")) {
			/* Entries are separated by spaces (Unikraft) or commas: `env.vars=["A=1","B=2"]`
			 * is one token to Linux, which would otherwise count every "K=V" against its
			 * 32 init environment slots and panic past them. */
			p += 10;
			if (read_list(&o, &p, c->env, GUEST_MAX_ENV, &c->nenv) < 0)
				return;
		} else {
			skip_word(&p); /* console=, tsc_early_khz=, quiet, ... are the kernel's */
		}
	}

	for (;;) {
		while (is_space(*p))
			p++;
		if (!*p)
			return;
		const char *v = read_word(&o, &p, "");
		if (!v)
			continue;
		if (c->argc < GUEST_MAX_ARGS)
			c->argv[c->argc++] = v;
		else
			c->truncated = 1;
	}
}
