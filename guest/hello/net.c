/* hello's network: virtio-mmio discovery on qemu microvm, a polled virtio-net driver (modern
 * virtio 1.x, no offloads) and a tiny stateless-ish TCP that answers HTTP GET with one segment. */
#include <stddef.h>
#include <stdint.h>

#include "net.h"

#define VIRTIO_MMIO_BASE 0xfeb00000ull /* qemu microvm: transports 512 bytes apart */
#define VIRTIO_MMIO_SLOTS 32
#define VIRTIO_MMIO_STRIDE 0x200

#define VM_MAGIC 0x000
#define VM_VERSION 0x004
#define VM_DEVICE_ID 0x008
#define VM_DEV_FEATURES 0x010
#define VM_DEV_FEATURES_SEL 0x014
#define VM_DRV_FEATURES 0x020
#define VM_DRV_FEATURES_SEL 0x024
#define VM_QUEUE_SEL 0x030
#define VM_QUEUE_NUM_MAX 0x034
#define VM_QUEUE_NUM 0x038
#define VM_GUEST_PAGE_SIZE 0x028 /* legacy */
#define VM_QUEUE_ALIGN 0x03c	 /* legacy */
#define VM_QUEUE_PFN 0x040	 /* legacy */
#define VM_QUEUE_READY 0x044
#define VM_QUEUE_NOTIFY 0x050
#define VM_INT_STATUS 0x060
#define VM_INT_ACK 0x064
#define VM_STATUS 0x070
#define VM_QUEUE_DESC_LO 0x080
#define VM_QUEUE_DESC_HI 0x084
#define VM_QUEUE_AVAIL_LO 0x090
#define VM_QUEUE_AVAIL_HI 0x094
#define VM_QUEUE_USED_LO 0x0a0
#define VM_QUEUE_USED_HI 0x0a4
#define VM_CONFIG 0x100

#define ST_ACK 1
#define ST_DRIVER 2
#define ST_DRIVER_OK 4
#define ST_FEATURES_OK 8

#define VIRTIO_NET_F_MAC 5
#define VIRTIO_F_VERSION_1 32

#define QSIZE 16
#define BUF_SIZE 2048
/* virtio_net_hdr: 12 bytes in virtio 1.x (num_buffers always present), 10 in legacy. */
#define NET_HDR_MAX 12
#define DESC_F_WRITE 2

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vq {
	struct vq_desc desc[QSIZE] __attribute__((aligned(16)));
	struct {
		uint16_t flags, idx, ring[QSIZE], used_event;
	} avail __attribute__((aligned(2)));
	struct {
		uint16_t flags, idx;
		struct {
			uint32_t id, len;
		} ring[QSIZE];
		uint16_t avail_event;
	} used __attribute__((aligned(4096))); /* legacy layout: used ring on the next page */
	uint16_t last_used;
};

struct net_ctx {
	volatile uint8_t *mmio;
	int legacy; /* virtio-mmio version 1 (qemu's default force-legacy=on) */
	uint32_t hdr_len;
	uint8_t mac[6];
	uint32_t ip;
	struct vq rxq __attribute__((aligned(4096)));
	struct vq txq __attribute__((aligned(4096)));
	uint8_t rxbuf[QSIZE][BUF_SIZE] __attribute__((aligned(16)));
	uint8_t txbuf[BUF_SIZE] __attribute__((aligned(16)));
	uint32_t isn_salt;
};

/* The guest's only network state; one device, one thread. */
static struct net_ctx net;
static const struct guest_net_host *host;

static inline void barrier(void)
{
	__asm__ volatile("mfence" ::: "memory");
}

static uint32_t rd(uint32_t off)
{
	return *(volatile uint32_t *)(net.mmio + off);
}

static void wr(uint32_t off, uint32_t v)
{
	*(volatile uint32_t *)(net.mmio + off) = v;
}

static void bzero_(void *p, size_t n)
{
	uint8_t *b = p;
	while (n--)
		*b++ = 0;
}

static void copy(void *d, const void *s, size_t n)
{
	uint8_t *dp = d;
	const uint8_t *sp = s;
	while (n--)
		*dp++ = *sp++;
}

static int queue_setup(uint32_t index, struct vq *q)
{
	wr(VM_QUEUE_SEL, index);
	if (!net.legacy && rd(VM_QUEUE_READY))
		return -1;
	if (net.legacy && rd(VM_QUEUE_PFN))
		return -1;
	uint32_t max = rd(VM_QUEUE_NUM_MAX);
	if (max < QSIZE)
		return -1;
	bzero_(q, sizeof(*q));
	wr(VM_QUEUE_NUM, QSIZE);
	if (net.legacy) {
		wr(VM_QUEUE_ALIGN, 4096);
		wr(VM_QUEUE_PFN, (uint32_t)((uint64_t)(uintptr_t)q >> 12));
		return 0;
	}
	uint64_t d = (uint64_t)(uintptr_t)q->desc, a = (uint64_t)(uintptr_t)&q->avail,
		 u = (uint64_t)(uintptr_t)&q->used;
	wr(VM_QUEUE_DESC_LO, (uint32_t)d);
	wr(VM_QUEUE_DESC_HI, (uint32_t)(d >> 32));
	wr(VM_QUEUE_AVAIL_LO, (uint32_t)a);
	wr(VM_QUEUE_AVAIL_HI, (uint32_t)(a >> 32));
	wr(VM_QUEUE_USED_LO, (uint32_t)u);
	wr(VM_QUEUE_USED_HI, (uint32_t)(u >> 32));
	wr(VM_QUEUE_READY, 1);
	return 0;
}

static void rx_post(uint16_t i)
{
	struct vq *q = &net.rxq;
	q->desc[i] = (struct vq_desc){(uint64_t)(uintptr_t)net.rxbuf[i], BUF_SIZE, DESC_F_WRITE, 0};
	q->avail.ring[q->avail.idx % QSIZE] = i;
	barrier();
	q->avail.idx++;
	barrier();
}

int guest_net_init(const struct guest_net_host *h, uint32_t ip, int prefix)
{
	(void)prefix;
	host = h;
	net.ip = ip;
	for (int slot = 0; slot < VIRTIO_MMIO_SLOTS; slot++) {
		volatile uint8_t *m = (volatile uint8_t *)(uintptr_t)(VIRTIO_MMIO_BASE + (uint64_t)slot * VIRTIO_MMIO_STRIDE);
		if (*(volatile uint32_t *)(m + VM_MAGIC) != 0x74726976) /* "virt" */
			break;
		if (*(volatile uint32_t *)(m + VM_DEVICE_ID) == 1) {
			net.mmio = m;
			break;
		}
	}
	if (!net.mmio) {
		host->puts("hello: no virtio-net device (add -device virtio-net-device on microvm)\n");
		return -1;
	}
	uint32_t version = rd(VM_VERSION);
	if (version != 1 && version != 2) {
		host->puts("hello: unknown virtio-mmio version\n");
		return -1;
	}
	net.legacy = version == 1;
	net.hdr_len = net.legacy ? 10 : 12;
	wr(VM_STATUS, 0);
	wr(VM_STATUS, ST_ACK);
	wr(VM_STATUS, ST_ACK | ST_DRIVER);
	wr(VM_DEV_FEATURES_SEL, 0);
	uint32_t f0 = rd(VM_DEV_FEATURES);
	wr(VM_DEV_FEATURES_SEL, 1);
	uint32_t f1 = rd(VM_DEV_FEATURES);
	if (!net.legacy && !(f1 & (1u << (VIRTIO_F_VERSION_1 - 32)))) {
		host->puts("hello: virtio-net lacks VIRTIO_F_VERSION_1\n");
		return -1;
	}
	wr(VM_DRV_FEATURES_SEL, 0);
	wr(VM_DRV_FEATURES, f0 & (1u << VIRTIO_NET_F_MAC));
	if (net.legacy) {
		wr(VM_GUEST_PAGE_SIZE, 4096);
	} else {
		wr(VM_DRV_FEATURES_SEL, 1);
		wr(VM_DRV_FEATURES, 1u << (VIRTIO_F_VERSION_1 - 32));
		wr(VM_STATUS, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
		if (!(rd(VM_STATUS) & ST_FEATURES_OK)) {
			host->puts("hello: virtio-net refused our features\n");
			return -1;
		}
	}
	if (queue_setup(0, &net.rxq) < 0 || queue_setup(1, &net.txq) < 0) {
		host->puts("hello: virtio-net queues unavailable\n");
		return -1;
	}
	if (f0 & (1u << VIRTIO_NET_F_MAC)) {
		for (int i = 0; i < 6; i++)
			net.mac[i] = net.mmio[VM_CONFIG + i];
	} else {
		static const uint8_t fallback[6] = {0x52, 0x54, 0x00, 0x6e, 0x75, 0x62};
		copy(net.mac, fallback, 6);
	}
	for (uint16_t i = 0; i < QSIZE; i++)
		rx_post(i);
	wr(VM_STATUS, ST_ACK | ST_DRIVER | (net.legacy ? 0 : ST_FEATURES_OK) | ST_DRIVER_OK);
	wr(VM_QUEUE_NOTIFY, 0);
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	net.isn_salt = lo ^ hi ^ 0x6e75626f;
	host->puts(net.legacy ? "hello: virtio-net (legacy mmio) up, mac " : "hello: virtio-net up, mac ");
	for (int i = 0; i < 6; i++) {
		static const char hex[] = "0123456789abcdef";
		char s[4] = {hex[net.mac[i] >> 4], hex[net.mac[i] & 15], i < 5 ? ':' : '\n', 0};
		host->puts(s);
	}
	return 0;
}

static void tx(size_t frame_len)
{
	struct vq *q = &net.txq;
	q->desc[0] = (struct vq_desc){(uint64_t)(uintptr_t)net.txbuf, (uint32_t)(net.hdr_len + frame_len), 0, 0};
	q->avail.ring[q->avail.idx % QSIZE] = 0;
	barrier();
	q->avail.idx++;
	barrier();
	wr(VM_QUEUE_NOTIFY, 1);
	/* One buffer in flight: wait until the device hands it back (bounded). */
	for (uint32_t spin = 0; spin < 100000000u; spin++) {
		barrier();
		if (*(volatile uint16_t *)&q->used.idx != q->last_used)
			break;
	}
	q->last_used = *(volatile uint16_t *)&q->used.idx;
	if (rd(VM_INT_STATUS))
		wr(VM_INT_ACK, rd(VM_INT_STATUS));
}

/* --- byte order and checksums --- */
static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v; }

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += be16(p + i);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Frame layout in txbuf: virtio hdr | ethernet (14) | IPv4 (20) | L4. */
static uint8_t *tx_eth(const uint8_t *dst_mac, uint16_t type)
{
	bzero_(net.txbuf, net.hdr_len);
	uint8_t *e = net.txbuf + net.hdr_len;
	copy(e, dst_mac, 6);
	copy(e + 6, net.mac, 6);
	put16(e + 12, type);
	return e + 14;
}

static void tx_ipv4(const uint8_t *dst_mac, uint32_t dst_ip, uint8_t proto, size_t l4_len)
{
	uint8_t *ip = net.txbuf + net.hdr_len + 14;
	bzero_(ip, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + l4_len));
	put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = proto;
	put32(ip + 12, net.ip);
	put32(ip + 16, dst_ip);
	put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
	(void)dst_mac;
	tx(14 + 20 + l4_len);
}

static void handle_arp(const uint8_t *eth, const uint8_t *a, size_t len)
{
	if (len < 28 || be16(a) != 1 || be16(a + 2) != 0x0800 || be16(a + 6) != 1)
		return;
	if (be32(a + 24) != net.ip)
		return;
	uint8_t *r = tx_eth(eth + 6, 0x0806);
	put16(r, 1);
	put16(r + 2, 0x0800);
	r[4] = 6;
	r[5] = 4;
	put16(r + 6, 2); /* reply */
	copy(r + 8, net.mac, 6);
	put32(r + 14, net.ip);
	copy(r + 18, a + 8, 6);
	copy(r + 24, a + 14, 4);
	tx(14 + 28);
}

static void handle_icmp(const uint8_t *eth, uint32_t src, const uint8_t *p, size_t len)
{
	if (len < 8 || p[0] != 8 || len > BUF_SIZE - NET_HDR_MAX - 34)
		return;
	uint8_t *r = tx_eth(eth + 6, 0x0800) + 20;
	copy(r, p, len);
	r[0] = 0; /* echo reply */
	put16(r + 2, 0);
	put16(r + 2, csum_fold(csum_add(0, r, len)));
	tx_ipv4(eth + 6, src, 1, len);
}

/* --- TCP: one reply segment per request; connections are keyed by peer ip:port. --- */
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define MAX_CONNS 64
#define REQ_MAX 2048

struct tcp_conn {
	int used;
	uint32_t peer_ip;
	uint16_t peer_port;
	uint32_t snd_isn;   /* our initial sequence number */
	uint32_t rcv_next;  /* next byte expected from the peer */
	uint32_t snd_next;  /* our next sequence number */
	int replied;
	int fin_seen;
	uint64_t last_seen; /* SYN order, for eviction when the table is full */
	size_t req_len;
	char req[REQ_MAX];
};

struct http_srv {
	uint64_t clock;
	uint16_t port;
	const char *body;
	struct tcp_conn conns[MAX_CONNS];
	uint64_t requests;
};

static struct http_srv srv;

static void tcp_send(const uint8_t *eth, uint32_t dst_ip, uint16_t dst_port, uint32_t seq, uint32_t ack,
		     uint8_t flags, const void *data, size_t len)
{
	uint8_t *t = tx_eth(eth + 6, 0x0800) + 20;
	bzero_(t, 20);
	put16(t, srv.port);
	put16(t + 2, dst_port);
	put32(t + 4, seq);
	put32(t + 8, ack);
	t[12] = 5 << 4;
	t[13] = flags;
	put16(t + 14, 65535);
	if (len)
		copy(t + 20, data, len);
	uint8_t pseudo[12];
	put32(pseudo, net.ip);
	put32(pseudo + 4, dst_ip);
	pseudo[8] = 0;
	pseudo[9] = 6;
	put16(pseudo + 10, (uint16_t)(20 + len));
	put16(t + 16, csum_fold(csum_add(csum_add(0, pseudo, 12), t, 20 + len)));
	tx_ipv4(eth + 6, dst_ip, 6, 20 + len);
}

static size_t fmt_u(char *out, uint64_t v)
{
	char tmp[24];
	size_t i = 0, n = 0;
	do {
		tmp[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (i)
		out[n++] = tmp[--i];
	return n;
}

static size_t append(char *out, size_t at, size_t cap, const char *s)
{
	while (*s && at < cap)
		out[at++] = *s++;
	return at;
}

static int request_complete(const struct tcp_conn *c)
{
	for (size_t i = 3; i < c->req_len; i++)
		if (c->req[i - 3] == '\r' && c->req[i - 2] == '\n' && c->req[i - 1] == '\r' && c->req[i] == '\n')
			return 1;
	return c->req_len >= REQ_MAX;
}

static void http_reply(const uint8_t *eth, struct tcp_conn *c)
{
	static char resp[1400];
	size_t body_len = 0, n = 0;
	while (srv.body[body_len])
		body_len++;
	int is_get = c->req_len >= 4 && c->req[0] == 'G' && c->req[1] == 'E' && c->req[2] == 'T' && c->req[3] == ' ';
	if (is_get) {
		char num[24];
		num[fmt_u(num, body_len)] = 0;
		n = append(resp, n, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: ");
		n = append(resp, n, sizeof(resp), num);
		n = append(resp, n, sizeof(resp), "\r\n\r\n");
		n = append(resp, n, sizeof(resp), srv.body);
	} else {
		n = append(resp, n, sizeof(resp), "HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
	}
	tcp_send(eth, c->peer_ip, c->peer_port, c->snd_next, c->rcv_next, TCP_ACK | TCP_PSH | TCP_FIN, resp, n);
	c->snd_next += (uint32_t)n + 1;
	c->replied = 1;
	srv.requests++;
}

static void handle_tcp(const uint8_t *eth, uint32_t src, const uint8_t *t, size_t len)
{
	if (len < 20)
		return;
	size_t off = (size_t)(t[12] >> 4) * 4;
	if (off < 20 || off > len || be16(t + 2) != srv.port)
		return;
	uint16_t sport = be16(t);
	uint32_t seq = be32(t + 4), ack = be32(t + 8);
	uint8_t flags = t[13];
	const uint8_t *data = t + off;
	size_t dlen = len - off;

	struct tcp_conn *c = 0, *free_slot = 0;
	for (int i = 0; i < MAX_CONNS; i++) {
		if (srv.conns[i].used && srv.conns[i].peer_ip == src && srv.conns[i].peer_port == sport)
			c = &srv.conns[i];
		else if (!srv.conns[i].used && !free_slot)
			free_slot = &srv.conns[i];
	}
	if (flags & TCP_RST) {
		if (c)
			c->used = 0;
		return;
	}
	if (flags & TCP_SYN) {
		if (!c) {
			if (!free_slot) /* full: evict the oldest, answered ones first */
				for (int i = 0; i < MAX_CONNS; i++) {
					struct tcp_conn *e = &srv.conns[i];
					if (!free_slot || (e->replied && !free_slot->replied) ||
					    (e->replied == free_slot->replied && e->last_seen < free_slot->last_seen))
						free_slot = e;
				}
			c = free_slot;
			bzero_(c, sizeof(*c));
			c->used = 1;
			c->peer_ip = src;
			c->peer_port = sport;
			c->snd_isn = net.isn_salt ^ (src * 2654435761u) ^ ((uint32_t)sport << 16);
			c->rcv_next = seq + 1;
			c->snd_next = c->snd_isn + 1;
			c->last_seen = ++srv.clock;
		}
		/* (Re)send SYN-ACK; a retransmitted SYN gets the same answer. */
		tcp_send(eth, src, sport, c->snd_isn, c->rcv_next, TCP_SYN | TCP_ACK, 0, 0);
		return;
	}
	if (!c) {
		if (!(flags & TCP_ACK))
			return;
		tcp_send(eth, src, sport, ack, 0, TCP_RST, 0, 0);
		return;
	}
	if (dlen && seq == c->rcv_next && !c->replied) {
		size_t room = REQ_MAX - c->req_len;
		size_t take = dlen < room ? dlen : room;
		copy(c->req + c->req_len, data, take);
		c->req_len += take;
		c->rcv_next += (uint32_t)dlen;
		if (request_complete(c))
			http_reply(eth, c);
		else
			tcp_send(eth, src, sport, c->snd_next, c->rcv_next, TCP_ACK, 0, 0);
	} else if (dlen && c->replied) {
		/* The peer resent its request: our answer was lost; send it again. */
		c->snd_next = c->snd_isn + 1;
		http_reply(eth, c);
		srv.requests--;
	}
	if (flags & TCP_FIN) {
		if (seq + (uint32_t)dlen == c->rcv_next && !c->fin_seen) {
			c->rcv_next++;
			c->fin_seen = 1;
		}
		tcp_send(eth, src, sport, c->snd_next, c->rcv_next, TCP_ACK, 0, 0);
	}
	/* Done when both FINs are through and ours is acknowledged. */
	if (c->replied && c->fin_seen && (flags & TCP_ACK) && ack == c->snd_next)
		c->used = 0;
}

static void handle_frame(const uint8_t *f, size_t len)
{
	if (len < 14)
		return;
	uint16_t type = be16(f + 12);
	if (type == 0x0806) {
		handle_arp(f, f + 14, len - 14);
		return;
	}
	if (type != 0x0800 || len < 34)
		return;
	const uint8_t *ip = f + 14;
	size_t ihl = (size_t)(ip[0] & 15) * 4;
	size_t tot = be16(ip + 2);
	if ((ip[0] >> 4) != 4 || ihl < 20 || tot < ihl || 14 + tot > len)
		return;
	if (be32(ip + 16) != net.ip || (be16(ip + 6) & 0x3fff)) /* not ours, or a fragment */
		return;
	uint32_t src = be32(ip + 12);
	if (ip[9] == 1)
		handle_icmp(f, src, ip + ihl, tot - ihl);
	else if (ip[9] == 6)
		handle_tcp(f, src, ip + ihl, tot - ihl);
}

void guest_net_serve_http(uint16_t port, const char *body)
{
	srv.port = port;
	srv.body = body;
	host->puts("hello: serving HTTP on port ");
	host->putu(port);
	host->puts("\n");
	struct vq *q = &net.rxq;
	for (;;) {
		barrier();
		uint16_t used = *(volatile uint16_t *)&q->used.idx;
		if (used == q->last_used) {
			if (host->stop_requested())
				return;
			host->wait_tick();
			continue;
		}
		while (q->last_used != used) {
			uint32_t id = q->used.ring[q->last_used % QSIZE].id;
			uint32_t len = q->used.ring[q->last_used % QSIZE].len;
			if (id < QSIZE && len > net.hdr_len && len <= BUF_SIZE)
				handle_frame(net.rxbuf[id] + net.hdr_len, len - net.hdr_len);
			q->last_used++;
			if (id < QSIZE)
				rx_post((uint16_t)id);
		}
		wr(VM_QUEUE_NOTIFY, 0);
		if (rd(VM_INT_STATUS))
			wr(VM_INT_ACK, rd(VM_INT_STATUS));
	}
}
