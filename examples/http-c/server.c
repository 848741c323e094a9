/* A tiny HTTP server in C for nubo's base (static build) and base-compat (dynamic build)
 * runtimes: answers every request on port 8080 with a greeting naming how it was linked. */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef LINKAGE
#define LINKAGE "dynamic"
#endif

int main(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(8080)};
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 16) < 0) {
		perror("http-c: cannot listen on :8080");
		return 1;
	}
	printf("listening on :8080 (" LINKAGE ")\n");
	fflush(stdout);
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		char req[2048];
		(void)read(c, req, sizeof(req));
		const char body[] = "Hello from nubo! (C, " LINKAGE ")\n";
		char resp[256];
		int n = snprintf(resp, sizeof(resp),
				 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
				 "Connection: close\r\n\r\n%s",
				 strlen(body), body);
		(void)write(c, resp, (size_t)n);
		close(c);
	}
}
