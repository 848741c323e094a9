/* libFuzzer entry for the registry token service's scope parser (controller/regtoken.c): any
 * scope text, for each kind of subject, no crash, no leak; whatever is granted names only the
 * subject's own or official repositories (a user) and never a catalog for a non-admin. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 1024)
        return 0;
    char *scope = malloc(size + 1);
    memcpy(scope, data + 1, size - 1);
    scope[size - 1] = '\0';
    struct ctl_regtoken_who who = {.name = "alice"};
    who.admin = data[0] & 1;
    who.node = data[0] & 2;
    json_t *access = json_array();
    int rc = ctl_regtoken_grant(&who, scope, access);
    if (rc < 0 && json_array_size(access) != 0)
        abort();
    size_t i;
    json_t *a;
    json_array_foreach(access, i, a)
    {
        const char *name = json_string_value(json_object_get(a, "name"));
        const char *type = json_string_value(json_object_get(a, "type"));
        if (!name || !type)
            abort();
        if (!who.admin && strcmp(type, "registry") == 0)
            abort();
        if (!who.admin && !who.node && strcmp(type, "registry") != 0 &&
            strncmp(name, "alice/", 6) != 0 && strncmp(name, "official/", 9) != 0)
            abort();
    }
    json_decref(access);
    free(scope);
    return 0;
}
