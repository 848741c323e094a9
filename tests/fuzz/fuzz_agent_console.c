/* Fuzz the agent's parsers of guest-controlled text: console marker lines (what a guest prints
 * decides state, exit code and messages) and the XML escaping of strings that reach domain XML
 * (an escaped string must never contain markup characters). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent_core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    for (char *line = s, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        int code = 0;
        const char *text = NULL;
        enum agent_marker m = agent_console_match(line, &code, &text);
        if (m == AGENT_MARK_CRASH && (!text || text < line || text > line + strlen(line)))
            abort();
    }
    memcpy(s, data, size);
    char *e = agent_xml_escape(s);
    if (e && (strchr(e, '<') || strchr(e, '>') || strchr(e, '"') || strchr(e, '\'')))
        abort();
    free(e);
    free(s);
    return 0;
}
