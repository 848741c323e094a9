/* Kraftfile (spec v0.5-v0.7) reader with libyaml: the fields a runtime-based app uses —
 * name, runtime, rootfs, cmd, env, labels. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "cleanup.h"
#include "cli.h"
#include "util.h"

#define KRAFTFILE_MAX (1u << 20)

void cli_kraftfile_free(struct cli_kraftfile *kf)
{
    cli_strv_free(kf->cmd);
    cli_strv_free(kf->env);
    cli_strv_free(kf->labels);
    kf->cmd = kf->env = kf->labels = NULL;
}

static const char *scalar(yaml_document_t *d, yaml_node_t *n)
{
    (void)d;
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static yaml_node_t *map_get(yaml_document_t *d, yaml_node_t *m, const char *key)
{
    if (!m || m->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        const char *k = scalar(d, yaml_document_get_node(d, p->key));
        if (k && strcmp(k, key) == 0)
            return yaml_document_get_node(d, p->value);
    }
    return NULL;
}

static int line_of(yaml_node_t *n)
{
    return n ? (int)n->start_mark.line + 1 : 0;
}

static bool label_key_ok(const char *k)
{
    if (!*k)
        return false;
    for (; *k; k++)
        if (!(isalnum((unsigned char)*k) || strchr("._-/", *k)))
            return false;
    return true;
}

/* "K=V" list from a sequence of "K=V" strings or a mapping. */
static int kv_list(yaml_document_t *d, yaml_node_t *n, const char *fname, const char *field,
                   bool labels, char ***out, struct nubo_err *err)
{
    if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top;
             i++) {
            yaml_node_t *it = yaml_document_get_node(d, *i);
            const char *s = scalar(d, it);
            if (!s || !strchr(s, '=') || s[0] == '=')
                return nubo_error(err, 0, "%s:%d: %s entries must be KEY=VALUE strings", fname,
                                  line_of(it), field);
            cli_strv_push(out, s);
        }
        return 0;
    }
    if (n->type != YAML_MAPPING_NODE)
        return nubo_error(err, 0, "%s:%d: %s must be a list of KEY=VALUE or a mapping", fname,
                          line_of(n), field);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(d, p->key);
        const char *k = scalar(d, kn);
        const char *v = scalar(d, yaml_document_get_node(d, p->value));
        if (!k || !v)
            return nubo_error(err, 0, "%s:%d: %s values must be plain strings", fname,
                              line_of(kn), field);
        if (labels && !label_key_ok(k))
            return nubo_error(err, 0, "%s:%d: label key '%s' may only use [a-zA-Z0-9._/-]",
                              fname, line_of(kn), k);
        size_t l = strlen(k) + strlen(v) + 2;
        char *kv = malloc(l);
        snprintf(kv, l, "%s=%s", k, v);
        cli_strv_push(out, kv);
        free(kv);
    }
    return 0;
}

static int parse_doc(yaml_document_t *d, const char *fname, struct cli_kraftfile *kf,
                     struct nubo_err *err)
{
    yaml_node_t *root = yaml_document_get_root_node(d);
    if (!root)
        return nubo_error(err, 0, "%s is empty: write at least 'spec: v0.6' and 'runtime: "
                          "base:latest'", fname);
    if (root->type != YAML_MAPPING_NODE)
        return nubo_error(err, 0, "%s:%d: the top level must be a mapping (spec:, runtime:, ...)",
                          fname, line_of(root));
    yaml_node_t *spec = map_get(d, root, "spec");
    yaml_node_t *spec2 = map_get(d, root, "specification");
    if (spec && spec2)
        return nubo_error(err, 0, "%s:%d: give 'spec' or 'specification', not both", fname,
                          line_of(spec2));
    if (!spec)
        spec = spec2;
    if (spec) {
        const char *s = scalar(d, spec);
        if (!s)
            return nubo_error(err, 0, "%s:%d: spec must be a version like v0.6", fname,
                              line_of(spec));
        const char *v = s[0] == 'v' ? s + 1 : s;
        if (strcmp(v, "0.5") && strcmp(v, "0.6") && strcmp(v, "0.7"))
            return nubo_error(err, 0, "%s:%d: spec '%s' is not supported (use v0.5, v0.6 or v0.7)",
                              fname, line_of(spec), s);
        snprintf(kf->spec, sizeof(kf->spec), "v%s", v);
    }
    const char *name = scalar(d, map_get(d, root, "name"));
    if (name)
        snprintf(kf->name, sizeof(kf->name), "%s", name);
    yaml_node_t *rt = map_get(d, root, "runtime");
    if (rt) {
        const char *r = scalar(d, rt);
        if (!r || !*r)
            return nubo_error(err, 0, "%s:%d: runtime must be an image name like base:latest",
                              fname, line_of(rt));
        snprintf(kf->runtime, sizeof(kf->runtime), "%s", r);
    }
    yaml_node_t *uk = map_get(d, root, "unikraft");
    yaml_node_t *tpl = map_get(d, root, "template");
    if ((rt != NULL) + (uk != NULL) + (tpl != NULL) > 1)
        return nubo_error(err, 0, "%s: give exactly one of runtime, unikraft or template", fname);
    if (!rt)
        return nubo_error(err, 0,
                          "%s: no 'runtime:' — nubo builds apps on a pre-built runtime (e.g. "
                          "'runtime: base:latest' or 'runtime: python:3.12')%s",
                          fname, uk || tpl ? "; building Unikraft from source needs kraft" : "");
    yaml_node_t *rf = map_get(d, root, "rootfs");
    if (rf) {
        const char *r = scalar(d, rf);
        if (!r && rf->type == YAML_SEQUENCE_NODE && rf->data.sequence.items.start < rf->data.sequence.items.top)
            r = scalar(d, yaml_document_get_node(d, *rf->data.sequence.items.start));
        if (!r && rf->type == YAML_MAPPING_NODE) {
            /* v0.7 long form: rootfs: {source: PATH | {type, path, dockerfile}, format} */
            yaml_node_t *src = map_get(d, rf, "source");
            r = scalar(d, src);
            if (!r && src) {
                r = scalar(d, map_get(d, src, "dockerfile"));
                if (!r)
                    r = scalar(d, map_get(d, src, "path"));
            }
            const char *fmt = scalar(d, map_get(d, rf, "format"));
            if (fmt && strcmp(fmt, "cpio"))
                return nubo_error(err, 0, "%s:%d: rootfs format '%s' is not supported (nubo "
                                  "builds cpio initrds)", fname, line_of(rf), fmt);
        }
        if (!r || !*r)
            return nubo_error(err, 0, "%s:%d: rootfs must name a Dockerfile, a directory or a "
                              "cpio file", fname, line_of(rf));
        snprintf(kf->rootfs, sizeof(kf->rootfs), "%s", r);
    }
    yaml_node_t *cmd = map_get(d, root, "cmd");
    if (cmd) {
        kf->cmd = calloc(1, sizeof(char *));
        if (cmd->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *i = cmd->data.sequence.items.start;
                 i < cmd->data.sequence.items.top; i++) {
                yaml_node_t *it = yaml_document_get_node(d, *i);
                const char *s = scalar(d, it);
                if (!s)
                    return nubo_error(err, 0, "%s:%d: cmd entries must be strings", fname,
                                      line_of(it));
                cli_strv_push(&kf->cmd, s);
            }
        } else if (scalar(d, cmd)) {
            cli_strv_free(kf->cmd);
            kf->cmd = cli_shell_split(scalar(d, cmd), err);
            if (!kf->cmd)
                return nubo_error_wrap(err, "%s:%d: cmd", fname, line_of(cmd));
        } else
            return nubo_error(err, 0, "%s:%d: cmd must be a list or a string", fname,
                              line_of(cmd));
    }
    yaml_node_t *env = map_get(d, root, "env");
    if (env && kv_list(d, env, fname, "env", false, &kf->env, err) < 0)
        return -1;
    yaml_node_t *labels = map_get(d, root, "labels");
    if (labels && kv_list(d, labels, fname, "labels", true, &kf->labels, err) < 0)
        return -1;
    return 0;
}

int cli_kraftfile_parse(const char *text, size_t len, const char *fname,
                        struct cli_kraftfile *kf, struct nubo_err *err)
{
    memset(kf, 0, sizeof(*kf));
    if (len > KRAFTFILE_MAX)
        return nubo_error(err, 0, "%s is larger than %u bytes", fname, KRAFTFILE_MAX);
    yaml_parser_t p;
    yaml_document_t d;
    if (!yaml_parser_initialize(&p))
        return nubo_error(err, ENOMEM, "cannot start the YAML parser");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &d)) {
        int rc = nubo_error(err, 0, "%s:%zu: YAML error: %s", fname, p.problem_mark.line + 1,
                            p.problem ? p.problem : "malformed");
        yaml_parser_delete(&p);
        return rc;
    }
    int rc = parse_doc(&d, fname, kf, err);
    yaml_document_delete(&d);
    yaml_parser_delete(&p);
    if (rc < 0)
        cli_kraftfile_free(kf);
    return rc;
}

int cli_kraftfile_load(const char *dir, const char *explicit_path, struct cli_kraftfile *kf,
                       char *path_out, size_t path_size, struct nubo_err *err)
{
    static const char *const names[] = {"Kraftfile", "kraft.yaml", "kraft.yml", NULL};
    char path[PATH_MAX] = "";
    if (explicit_path)
        snprintf(path, sizeof(path), "%s", explicit_path);
    else
        for (size_t i = 0; names[i]; i++) {
            snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
            if (access(path, F_OK) == 0)
                break;
            path[0] = '\0';
        }
    if (!path[0])
        return nubo_error(err, 0,
                          "no Kraftfile in %s: create one (spec: v0.6, runtime: base:latest, "
                          "rootfs: ./Dockerfile, cmd: [...]) or pass -K FILE",
                          dir);
    cleanup_free char *text = NULL;
    size_t len = 0;
    if (nubo_read_file(path, KRAFTFILE_MAX, &text, &len, err) < 0)
        return -1;
    snprintf(path_out, path_size, "%s", path);
    return cli_kraftfile_parse(text, len, path, kf, err);
}
