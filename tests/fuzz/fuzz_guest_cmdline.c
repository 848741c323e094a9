/* libFuzzer entry for the guests' kernel command-line parser (guest/lib/cmdline.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../guest/lib/cmdline.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct guest_cmdline c;
	char *line = malloc(size + 1);
	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	guest_cmdline_parse(&c, line);
	/* Every pointer handed out must be a NUL-terminated string inside the buffer. */
	for (int i = 0; i < c.argc; i++)
		if (c.argv[i] < c.buf || c.argv[i] >= c.buf + sizeof(c.buf) || strlen(c.argv[i]) >= sizeof(c.buf))
			abort();
	for (int i = 0; i < c.nenv; i++)
		if (c.env[i] < c.buf || c.env[i] >= c.buf + sizeof(c.buf) || !*c.env[i])
			abort();
	if (c.net.present && c.net.prefix > 32)
		abort();
	free(line);
	return 0;
}
