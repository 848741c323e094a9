/* hello's network: a polled virtio-net (virtio-mmio, modern) driver and just enough
 * ARP/IPv4/ICMP/TCP to answer HTTP GET with a fixed body. Single-threaded, no interrupts. */
#ifndef NUBO_GUEST_HELLO_NET_H
#define NUBO_GUEST_HELLO_NET_H

#include <stdint.h>

/* What the kernel (hello.c) lends the network code: it sits above, so it hands these down. */
struct guest_net_host {
	void (*puts)(const char *s);
	void (*putu)(uint64_t v);
	/* Sleeps until the next timer tick (interrupts enabled only inside). */
	void (*wait_tick)(void);
	/* True once the VMM asked for a graceful stop (ACPI power button). */
	int (*stop_requested)(void);
};

/* Finds and initialises the first virtio-net device; 0 on success, <0 with a message printed
 * through host. host must outlive the network code. */
int guest_net_init(const struct guest_net_host *host, uint32_t ip, int prefix);
/* Serves GET on PORT with BODY (answers ARP and ping too) until a stop is requested. */
void guest_net_serve_http(uint16_t port, const char *body);

#endif
