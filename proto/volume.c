/* Volume codecs: see volume.h. Public-API decoders are strict and give one-line errors naming
 * the field; agent-message decoders bound every length and count. */
#include "volume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const vol_states[NUBO_VOL__COUNT] = {
    "uninitialized", "initialized", "available", "idle", "mounted", "busy", "error",
};

const char *nubo_volume_state_name(enum nubo_volume_state s)
{
    return (unsigned)s < NUBO_VOL__COUNT ? vol_states[s] : "error";
}

int nubo_volume_state_parse(const char *s, enum nubo_volume_state *out)
{
    for (int i = 0; i < NUBO_VOL__COUNT; i++)
        if (strcmp(s, vol_states[i]) == 0) {
            *out = (enum nubo_volume_state)i;
            return 0;
        }
    return -1;
}

/* ---- the API object ------------------------------------------------------------------ */

static json_t *users_json(const struct nubo_volume_user *u, size_t n, bool ro)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_t *o = json_pack("{s:s, s:s}", "uuid", u[i].uuid, "name", u[i].name);
        if (o && ro)
            json_object_set_new(o, "readonly", json_boolean(u[i].readonly));
        json_array_append_new(a, o);
    }
    return a;
}

json_t *nubo_volume_encode(const struct nubo_volume *v, bool item)
{
    char created[32];
    nubo_time_iso8601(v->created_at_us, created);
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:b, s:s, s:o, s:o}", "uuid", v->uuid, "name",
                          v->name, "size_mb", (json_int_t)v->size_mb, "state",
                          nubo_volume_state_name(v->state), "persistent", v->persistent,
                          "created_at", created, "attached_to",
                          users_json(v->attached_to, v->n_attached, false), "mounted_by",
                          users_json(v->mounted_by, v->n_mounted, true));
    if (o == NULL)
        return NULL;
    if (item)
        json_object_set_new(o, "status", json_string("success"));
    if (v->node[0])
        json_object_set_new(o, "node", json_string(v->node));
    if (v->metro[0])
        json_object_set_new(o, "metro", json_string(v->metro));
    if (v->message[0])
        json_object_set_new(o, "message", json_string(v->message));
    return o;
}

static void users_decode(json_t *a, struct nubo_volume_user *u, size_t *n)
{
    size_t i;
    json_t *e;
    *n = 0;
    json_array_foreach(a, i, e)
    {
        if (*n >= NUBO_VOLUME_MAX_USERS || !json_is_object(e))
            break;
        struct nubo_err ignore = {0};
        pj_str(e, "", "uuid", false, u[*n].uuid, sizeof(u[*n].uuid), &ignore);
        pj_str(e, "", "name", false, u[*n].name, sizeof(u[*n].name), &ignore);
        pj_bool(e, "", "readonly", false, &u[*n].readonly, &ignore);
        (*n)++;
    }
}

int nubo_volume_decode(json_t *j, struct nubo_volume *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "volume: must be an object");
    char state[24] = "";
    if (pj_str(j, "volume", "uuid", false, out->uuid, sizeof(out->uuid), err) < 0 ||
        pj_str(j, "volume", "name", false, out->name, sizeof(out->name), err) < 0 ||
        pj_int(j, "volume", "size_mb", false, 0, NUBO_VOLUME_MAX_MB, &out->size_mb, err) < 0 ||
        pj_str(j, "volume", "state", false, state, sizeof(state), err) < 0 ||
        pj_bool(j, "volume", "persistent", false, &out->persistent, err) < 0 ||
        pj_time(j, "volume", "created_at", false, &out->created_at_us, err) < 0 ||
        pj_str(j, "volume", "node", false, out->node, sizeof(out->node), err) < 0 ||
        pj_str(j, "volume", "metro", false, out->metro, sizeof(out->metro), err) < 0 ||
        pj_str(j, "volume", "message", false, out->message, sizeof(out->message), err) < 0)
        return -1;
    if (state[0] && nubo_volume_state_parse(state, &out->state) < 0)
        out->state = NUBO_VOL_ERROR;
    users_decode(json_object_get(j, "attached_to"), out->attached_to, &out->n_attached);
    users_decode(json_object_get(j, "mounted_by"), out->mounted_by, &out->n_mounted);
    return 0;
}

void nubo_volume_free(struct nubo_volume *v)
{
    (void)v;
}

PJ_LIST_CODEC(nubo_volume, struct nubo_volume, nubo_volume_decode, nubo_volume_free)

/* ---- POST /v1/volumes ---------------------------------------------------------------- */

int nubo_volume_create_req_decode(json_t *j, struct nubo_volume_create_req *out,
                                  struct nubo_err *err)
{
    static const char *const keys[] = {"name", "size_mb", "metro", NULL};
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400,
                               "volume: send a JSON object {\"name\", \"size_mb\"} (size_mb "
                               "required)");
    if (pj_only_keys(j, "", keys, err) < 0 ||
        pj_str(j, "", "name", false, out->name, sizeof(out->name), err) < 0 ||
        pj_int(j, "", "size_mb", true, NUBO_VOLUME_MIN_MB, NUBO_VOLUME_MAX_MB, &out->size_mb,
               err) < 0 ||
        pj_str(j, "", "metro", false, out->metro, sizeof(out->metro), err) < 0)
        return -1;
    if (out->name[0] && !nubo_name_valid(out->name))
        return nubo_error_http(err, 400,
                               "name: '%s' must be 1..63 characters of [a-z0-9-], starting with a "
                               "letter or digit",
                               out->name);
    if (out->metro[0] && !nubo_name_valid(out->metro))
        return nubo_error_http(err, 400, "metro: '%s' is not a metro name", out->metro);
    return 0;
}

json_t *nubo_volume_create_req_encode(const struct nubo_volume_create_req *r)
{
    json_t *o = json_pack("{s:I}", "size_mb", (json_int_t)r->size_mb);
    if (o && r->name[0])
        json_object_set_new(o, "name", json_string(r->name));
    if (o && r->metro[0])
        json_object_set_new(o, "metro", json_string(r->metro));
    return o;
}

/* ---- an instance's volumes ----------------------------------------------------------- */

bool nubo_volume_at_valid(const char *at)
{
    size_t len = strlen(at);
    if (len < 2 || len > NUBO_VOLUME_AT_MAX || at[0] != '/')
        return false;
    const char *p = at;
    while (*p) {
        p++; /* past the slash */
        const char *c = p;
        while (*p && *p != '/') {
            char ch = *p;
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == ' ' || ch == '.' || ch == '_' || ch == '-'))
                return false;
            p++;
        }
        size_t n = (size_t)(p - c);
        /* "/data/" (trailing slash), "//", "/./" and "/../" name no new directory */
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return false;
    }
    return true;
}

static int mount_decode(json_t *e, const char *ectx, bool agent, struct nubo_volume_mount *m,
                        struct nubo_err *err)
{
    static const char *const api_keys[] = {"uuid", "name", "size_mb", "at", "readonly", NULL};
    static const char *const agent_keys[] = {"uuid", "at", "readonly", NULL};
    if (!json_is_object(e))
        return nubo_error_http(err, 400, "%s: must be an object {\"name\"|\"uuid\", \"at\"}",
                               ectx);
    if (pj_only_keys(e, ectx, agent ? agent_keys : api_keys, err) < 0 ||
        pj_str(e, ectx, "uuid", agent, m->uuid, sizeof(m->uuid), err) < 0 ||
        pj_str(e, ectx, "at", true, m->at, sizeof(m->at), err) < 0 ||
        pj_bool(e, ectx, "readonly", false, &m->readonly, err) < 0)
        return -1;
    if (!agent && (pj_str(e, ectx, "name", false, m->name, sizeof(m->name), err) < 0 ||
                   pj_int(e, ectx, "size_mb", false, NUBO_VOLUME_MIN_MB, NUBO_VOLUME_MAX_MB,
                          &m->size_mb, err) < 0))
        return -1;
    if (m->uuid[0] && !nubo_uuid_valid(m->uuid))
        return nubo_error_http(err, 400, "%s.uuid: '%s' is not a UUID", ectx, m->uuid);
    int given = (m->uuid[0] != 0) + (m->name[0] != 0) + (m->size_mb > 0);
    if (given != 1)
        return nubo_error_http(err, 400,
                               "%s: give exactly one of uuid, name (an existing volume) or "
                               "size_mb (a new one)",
                               ectx);
    if (!nubo_volume_at_valid(m->at))
        return nubo_error_http(err, 400,
                               "%s.at: '%.100s' must be an absolute path other than / (letters, "
                               "digits, space, . _ - between slashes; no . or .. parts)",
                               ectx, m->at);
    return 0;
}

static int mounts_decode(json_t *a, const char *ctx, bool agent, struct nubo_volume_mount **out,
                         size_t *n_out, struct nubo_err *err)
{
    *out = NULL;
    *n_out = 0;
    if (a == NULL || json_is_null(a))
        return 0;
    if (!json_is_array(a) || json_array_size(a) > NUBO_VOLUME_MAX_MOUNTS)
        return nubo_error_http(err, 400, "%s: must be an array of at most %d volumes", ctx,
                               NUBO_VOLUME_MAX_MOUNTS);
    size_t n = json_array_size(a);
    struct nubo_volume_mount *v = calloc(n + 1, sizeof(*v));
    if (v == NULL)
        return nubo_error_http(err, 500, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char ectx[48];
        snprintf(ectx, sizeof(ectx), "%s[%zu]", ctx, i);
        if (mount_decode(json_array_get(a, i), ectx, agent, &v[i], err) < 0)
            goto fail;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(v[k].at, v[i].at) == 0) {
                nubo_error_http(err, 400, "%s.at: %s is also the mount point of %s[%zu]; one "
                                          "volume per path",
                                ectx, v[i].at, ctx, k);
                goto fail;
            }
            if ((v[i].uuid[0] && strcmp(v[k].uuid, v[i].uuid) == 0) ||
                (v[i].name[0] && strcmp(v[k].name, v[i].name) == 0)) {
                nubo_error_http(err, 400, "%s: names the same volume as %s[%zu]; mount a volume "
                                          "once",
                                ectx, ctx, k);
                goto fail;
            }
        }
    }
    *out = v;
    *n_out = n;
    return 0;
fail:
    free(v);
    return -1;
}

int nubo_volume_mounts_decode(json_t *a, const char *ctx, struct nubo_volume_mount **out,
                              size_t *n_out, struct nubo_err *err)
{
    return mounts_decode(a, ctx, false, out, n_out, err);
}

int nubo_volume_attach_decode(json_t *a, const char *ctx, struct nubo_volume_mount **out,
                              size_t *n_out, struct nubo_err *err)
{
    return mounts_decode(a, ctx, true, out, n_out, err);
}

json_t *nubo_volume_mounts_encode(const struct nubo_volume_mount *m, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_t *o = json_pack("{s:s}", "at", m[i].at);
        if (o == NULL)
            continue;
        if (m[i].uuid[0])
            json_object_set_new(o, "uuid", json_string(m[i].uuid));
        else if (m[i].name[0])
            json_object_set_new(o, "name", json_string(m[i].name));
        else
            json_object_set_new(o, "size_mb", json_integer(m[i].size_mb));
        if (m[i].readonly)
            json_object_set_new(o, "readonly", json_true());
        json_array_append_new(a, o);
    }
    return a;
}

int nubo_volume_mount_parse(const char *s, struct nubo_volume_mount *m, struct nubo_err *err)
{
    memset(m, 0, sizeof(*m));
    const char *colon = strchr(s, ':');
    if (colon == NULL || colon == s)
        return nubo_error_http(err, 400, "-v %s: use <volume>:<path>[:ro], e.g. data:/data", s);
    size_t nlen = (size_t)(colon - s);
    if (nlen >= sizeof(m->name))
        return nubo_error_http(err, 400, "-v %s: the volume name is too long", s);
    memcpy(m->name, s, nlen);
    const char *at = colon + 1;
    const char *ro = strrchr(at, ':');
    size_t alen = ro ? (size_t)(ro - at) : strlen(at);
    if (ro && strcmp(ro, ":ro") != 0 && strcmp(ro, ":rw") != 0)
        return nubo_error_http(err, 400, "-v %s: the third part must be ro or rw", s);
    if (alen >= sizeof(m->at))
        return nubo_error_http(err, 400, "-v %s: the path is too long", s);
    memcpy(m->at, at, alen);
    m->readonly = ro && strcmp(ro, ":ro") == 0;
    if (nubo_uuid_valid(m->name)) { /* a uuid names the volume by uuid */
        memcpy(m->uuid, m->name, sizeof(m->uuid));
        m->name[0] = '\0';
    }
    if (!nubo_volume_at_valid(m->at))
        return nubo_error_http(err, 400, "-v %s: '%s' must be an absolute path other than /", s,
                               m->at);
    return 0;
}

/* ---- agent messages ------------------------------------------------------------------ */

json_t *nubo_volume_specs_encode(const struct nubo_volume_spec *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_pack("{s:s, s:I}", "uuid", v[i].uuid, "size_mb",
                                           (json_int_t)v[i].size_mb));
    return a;
}

int nubo_volume_specs_decode(json_t *a, const char *ctx, struct nubo_volume_spec **out,
                             size_t *n_out, struct nubo_err *err)
{
    *out = NULL;
    *n_out = 0;
    if (a == NULL || json_is_null(a))
        return 0;
    if (!json_is_array(a) || json_array_size(a) > NUBO_VOLUME_MAX_NODE)
        return nubo_error_http(err, 400, "%s: must be an array of at most %d volumes", ctx,
                               NUBO_VOLUME_MAX_NODE);
    size_t n = json_array_size(a);
    struct nubo_volume_spec *v = calloc(n + 1, sizeof(*v));
    if (v == NULL)
        return nubo_error_http(err, 500, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char ectx[48];
        snprintf(ectx, sizeof(ectx), "%s[%zu]", ctx, i);
        json_t *e = json_array_get(a, i);
        if (!json_is_object(e) ||
            pj_str(e, ectx, "uuid", true, v[i].uuid, sizeof(v[i].uuid), err) < 0 ||
            pj_int(e, ectx, "size_mb", true, NUBO_VOLUME_MIN_MB, NUBO_VOLUME_MAX_MB,
                   &v[i].size_mb, err) < 0 ||
            !nubo_uuid_valid(v[i].uuid)) {
            if (err->msg[0] == '\0' || json_is_object(e))
                nubo_error_http(err, 400, "%s: must be {\"uuid\", \"size_mb\"}", ectx);
            free(v);
            return -1;
        }
    }
    *out = v;
    *n_out = n;
    return 0;
}

json_t *nubo_volume_reports_encode(const struct nubo_volume_report *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_t *o = json_pack("{s:s, s:s}", "uuid", v[i].uuid, "state",
                              nubo_volume_state_name(v[i].state));
        if (o && v[i].message[0])
            json_object_set_new(o, "message", json_string(v[i].message));
        json_array_append_new(a, o);
    }
    return a;
}

int nubo_volume_reports_decode(json_t *a, const char *ctx, struct nubo_volume_report **out,
                               size_t *n_out, struct nubo_err *err)
{
    *out = NULL;
    *n_out = 0;
    if (a == NULL || json_is_null(a))
        return 0;
    if (!json_is_array(a) || json_array_size(a) > NUBO_VOLUME_MAX_NODE)
        return nubo_error_http(err, 400, "%s: must be an array of at most %d volumes", ctx,
                               NUBO_VOLUME_MAX_NODE);
    size_t n = json_array_size(a);
    struct nubo_volume_report *v = calloc(n + 1, sizeof(*v));
    if (v == NULL)
        return nubo_error_http(err, 500, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char ectx[48], state[24];
        snprintf(ectx, sizeof(ectx), "%s[%zu]", ctx, i);
        json_t *e = json_array_get(a, i);
        if (!json_is_object(e)) {
            nubo_error_http(err, 400, "%s: must be an object", ectx);
            goto fail;
        }
        if (pj_str(e, ectx, "uuid", true, v[i].uuid, sizeof(v[i].uuid), err) < 0 ||
            pj_str(e, ectx, "state", true, state, sizeof(state), err) < 0 ||
            pj_str(e, ectx, "message", false, v[i].message, sizeof(v[i].message), err) < 0)
            goto fail;
        if (!nubo_uuid_valid(v[i].uuid) || nubo_volume_state_parse(state, &v[i].state) < 0) {
            nubo_error_http(err, 400, "%s: bad uuid or state '%s'", ectx, state);
            goto fail;
        }
    }
    *out = v;
    *n_out = n;
    return 0;
fail:
    free(v);
    return -1;
}
