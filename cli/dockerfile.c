/* The Dockerfile subset nubo builds itself, with no daemon: FROM scratch / FROM <runtime>,
 * COPY/ADD of local files, ENV, WORKDIR, CMD/ENTRYPOINT, LABEL, ARG. RUN and multi-stage
 * builds are handed to buildah (daemonless, --isolation chroot). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "cleanup.h"
#include "cli.h"
#include "oci_image.h"
#include "util.h"

#define DF_MAX_BYTES (1u << 20)
#define DF_MAX_INSTR 4096

void cli_dockerfile_free(struct cli_dockerfile *df)
{
    for (size_t i = 0; i < df->n; i++) {
        cli_strv_free(df->ins[i].args);
        cli_strv_free(df->ins[i].flags);
        free(df->ins[i].raw);
    }
    free(df->ins);
    df->ins = NULL;
    df->n = 0;
}

void cli_df_result_free(struct cli_df_result *r)
{
    cli_strv_free(r->cmd);
    cli_strv_free(r->env);
    cli_strv_free(r->labels);
    free(r->user);
    memset(r, 0, sizeof(*r));
}

static const struct {
    const char *kw;
    enum cli_df_kind kind;
} keywords[] = {
    {"FROM", CLI_DF_FROM},
    {"COPY", CLI_DF_COPY},
    {"ADD", CLI_DF_ADD},
    {"ENV", CLI_DF_ENV},
    {"WORKDIR", CLI_DF_WORKDIR},
    {"CMD", CLI_DF_CMD},
    {"ENTRYPOINT", CLI_DF_ENTRYPOINT},
    {"LABEL", CLI_DF_LABEL},
    {"ARG", CLI_DF_ARG},
    {"RUN", CLI_DF_RUN},
    {"EXPOSE", CLI_DF_OTHER},
    {"USER", CLI_DF_USER},
    {"VOLUME", CLI_DF_OTHER},
    {"STOPSIGNAL", CLI_DF_OTHER},
    {"HEALTHCHECK", CLI_DF_OTHER},
    {"SHELL", CLI_DF_OTHER},
    {"ONBUILD", CLI_DF_OTHER},
    {"MAINTAINER", CLI_DF_OTHER},
};

static int parse_instr(char *text, int line, const char *fname, struct cli_df_instr *in,
                       struct nubo_err *err)
{
    memset(in, 0, sizeof(*in));
    in->line = line;
    char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    char *kw = p;
    while (*p && !isspace((unsigned char)*p))
        p++;
    size_t kl = (size_t)(p - kw);
    if (kl >= sizeof(in->keyword))
        return nubo_error(err, 0, "%s:%d: unknown instruction '%.*s'", fname, line, (int)kl, kw);
    for (size_t i = 0; i < kl; i++)
        in->keyword[i] = (char)toupper((unsigned char)kw[i]);
    in->keyword[kl] = '\0';
    bool known = false;
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
        if (!strcmp(keywords[i].kw, in->keyword)) {
            in->kind = keywords[i].kind;
            known = true;
        }
    if (!known)
        return nubo_error(err, 0, "%s:%d: unknown instruction '%s'", fname, line, in->keyword);
    while (isspace((unsigned char)*p))
        p++;
    size_t rl = strlen(p);
    while (rl && isspace((unsigned char)p[rl - 1]))
        p[--rl] = '\0';
    in->raw = strdup(p);
    in->args = calloc(1, sizeof(char *));
    in->flags = calloc(1, sizeof(char *));
    /* Leading --flags (COPY --from=, --chmod=, FROM --platform=, RUN --mount=). */
    while (strncmp(p, "--", 2) == 0 && in->kind != CLI_DF_CMD && in->kind != CLI_DF_ENTRYPOINT) {
        char *e = p;
        while (*e && !isspace((unsigned char)*e))
            e++;
        char save = *e;
        *e = '\0';
        cli_strv_push(&in->flags, p);
        *e = save;
        p = e;
        while (isspace((unsigned char)*p))
            p++;
    }
    if (*p == '[') {
        json_error_t jerr;
        json_t *j = json_loads(p, 0, &jerr);
        bool ok = json_is_array(j);
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) ok &= json_is_string(v);
        if (ok) {
            in->json_form = true;
            json_array_foreach(j, i, v) cli_strv_push(&in->args, json_string_value(v));
        }
        json_decref(j);
        if (ok)
            return 0;
    }
    if (in->kind == CLI_DF_RUN || in->kind == CLI_DF_OTHER) {
        cli_strv_push(&in->args, p);
        return 0;
    }
    char **words = cli_shell_split(p, err);
    if (!words)
        return nubo_error_wrap(err, "%s:%d", fname, line);
    cli_strv_free(in->args);
    in->args = words;
    return 0;
}

int cli_dockerfile_parse(const char *text, const char *fname, struct cli_dockerfile *df,
                         struct nubo_err *err)
{
    memset(df, 0, sizeof(*df));
    snprintf(df->path, sizeof(df->path), "%s", fname);
    if (strlen(text) > DF_MAX_BYTES)
        return nubo_error(err, 0, "%s is larger than %u bytes", fname, DF_MAX_BYTES);
    char *copy = strdup(text);
    char *acc = NULL;
    size_t acc_len = 0;
    int acc_line = 0, line = 0, rc = 0;
    char *save = NULL;
    /* Walk lines by hand: strtok would merge empty lines and break the numbering. */
    for (char *s = copy; s && rc == 0;) {
        char *nl = strchr(s, '\n');
        if (nl)
            *nl = '\0';
        line++;
        char *l = s;
        s = nl ? nl + 1 : NULL;
        size_t ll = strlen(l);
        if (ll && l[ll - 1] == '\r')
            l[--ll] = '\0';
        char *t = l;
        while (isspace((unsigned char)*t))
            t++;
        if (*t == '#')
            continue; /* comments and parser directives */
        if (!acc && *t == '\0')
            continue;
        bool cont = ll > 0 && l[ll - 1] == '\\';
        if (cont)
            l[--ll] = '\0';
        if (!acc) {
            acc_line = line;
            acc = calloc(1, 1);
            acc_len = 0;
        }
        char *n2 = realloc(acc, acc_len + ll + 2);
        acc = n2;
        memcpy(acc + acc_len, l, ll);
        acc_len += ll;
        acc[acc_len++] = cont ? ' ' : '\0';
        acc[acc_len] = '\0';
        if (cont && s)
            continue;
        if (df->n >= DF_MAX_INSTR) {
            rc = nubo_error(err, 0, "%s: more than %d instructions", fname, DF_MAX_INSTR);
            break;
        }
        df->ins = realloc(df->ins, (df->n + 1) * sizeof(*df->ins));
        rc = parse_instr(acc, acc_line, fname, &df->ins[df->n], err);
        if (rc == 0)
            df->n++;
        else {
            cli_strv_free(df->ins[df->n].args);
            cli_strv_free(df->ins[df->n].flags);
            free(df->ins[df->n].raw);
        }
        free(acc);
        acc = NULL;
    }
    (void)save;
    free(acc);
    free(copy);
    if (rc == 0 && (df->n == 0 || (df->ins[0].kind != CLI_DF_FROM && df->ins[0].kind != CLI_DF_ARG)))
        rc = nubo_error(err, 0, "%s:%d: a Dockerfile starts with FROM (FROM scratch for an app "
                        "layer on the runtime)", fname, df->n ? df->ins[0].line : 1);
    if (rc < 0)
        cli_dockerfile_free(df);
    return rc;
}

/* "python:3.12", "official/python", "unikraft.org/python3:latest" -> "python" */
static void image_basename(const char *s, char *out, size_t size)
{
    const char *slash = strrchr(s, '/');
    const char *b = slash ? slash + 1 : s;
    snprintf(out, size, "%s", b);
    char *c = strpbrk(out, ":@");
    if (c)
        *c = '\0';
}

static bool is_runtime_from(const char *img, const char *runtime_name)
{
    if (!strcmp(img, "scratch"))
        return true;
    if (!runtime_name || !*runtime_name)
        return false;
    char a[256], b[256];
    image_basename(img, a, sizeof(a));
    image_basename(runtime_name, b, sizeof(b));
    if (strcmp(a, b) != 0)
        return false;
    /* python:alpine is a container image, not the python runtime: tags must agree. */
    const char *ta = strrchr(img, ':'), *tb = strrchr(runtime_name, ':');
    if (ta && strchr(ta, '/'))
        ta = NULL;
    if (tb && strchr(tb, '/'))
        tb = NULL;
    return !ta || !tb || strcmp(ta, tb) == 0;
}

int cli_dockerfile_needs_buildah(const struct cli_dockerfile *df, const char *runtime_name,
                                 char *why, size_t why_size)
{
    int froms = 0;
    for (size_t i = 0; i < df->n; i++) {
        const struct cli_df_instr *in = &df->ins[i];
        if (in->kind == CLI_DF_RUN) {
            snprintf(why, why_size, "RUN");
            return in->line;
        }
        if (in->kind == CLI_DF_FROM) {
            if (++froms > 1) {
                snprintf(why, why_size, "a multi-stage build (second FROM)");
                return in->line;
            }
            const char *img = in->args[0] ? in->args[0] : "";
            if (!is_runtime_from(img, runtime_name)) {
                snprintf(why, why_size, "FROM %s (a base image other than scratch or the runtime)",
                         img);
                return in->line;
            }
        }
        if (in->kind == CLI_DF_COPY || in->kind == CLI_DF_ADD)
            for (size_t f = 0; in->flags[f]; f++)
                if (!strncmp(in->flags[f], "--from", 6)) {
                    snprintf(why, why_size, "COPY %s", in->flags[f]);
                    return in->line;
                }
    }
    return 0;
}

/* ---------------------------------------------------------------- interpreter */

struct df_state {
    const struct cli_dockerfile *df;
    char ctx_real[PATH_MAX];
    const char *root;
    char workdir[PATH_MAX];
    char **vars;      /* ARG and ENV, "K=V" */
    char **ignore;    /* .dockerignore patterns, "!" = re-include */
    struct cli_df_result *res;
};

/* .dockerignore: a path (relative to the context) is left out when the last pattern that
 * matches it, or one of its parent directories, is not negated. */
static bool pattern_hits(const char *pat, const char *rel)
{
    char prefix[PATH_MAX];
    size_t n = strlen(rel);
    for (size_t i = 0; i <= n; i++) {
        if (rel[i] != '/' && rel[i] != '\0')
            continue;
        snprintf(prefix, sizeof(prefix), "%.*s", (int)i, rel);
        if (fnmatch(pat, prefix, FNM_PATHNAME) == 0)
            return true;
        if (strncmp(pat, "**/", 3) == 0) {
            /* "**" spans directories: try the pattern's rest on every tail of the path. */
            for (const char *t = prefix; t; t = strchr(t, '/') ? strchr(t, '/') + 1 : NULL)
                if (fnmatch(pat + 3, t, FNM_PATHNAME) == 0)
                    return true;
        }
    }
    return false;
}

static bool ignored(char **pats, const char *ctx_real, const char *abs_path)
{
    size_t cl = strlen(ctx_real);
    if (!pats || strncmp(abs_path, ctx_real, cl) != 0 || abs_path[cl] != '/')
        return false;
    const char *rel = abs_path + cl + 1;
    bool out = false;
    for (size_t i = 0; pats[i]; i++) {
        const char *p = pats[i];
        bool neg = p[0] == '!';
        if (neg)
            p++;
        if (pattern_hits(p, rel))
            out = !neg;
    }
    return out;
}

static char **load_dockerignore(const char *ctx_real)
{
    char path[PATH_MAX];
    if (nubo_snprintf(path, sizeof(path), "%s/.dockerignore", ctx_real) < 0)
        return NULL;
    char *text = NULL;
    size_t len;
    if (nubo_read_file(path, 1u << 20, &text, &len, NULL) < 0)
        return NULL;
    char **pats = calloc(1, sizeof(char *));
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        while (isspace((unsigned char)*l))
            l++;
        size_t ll = strlen(l);
        while (ll && isspace((unsigned char)l[ll - 1]))
            l[--ll] = '\0';
        if (!*l || *l == '#')
            continue;
        char buf[PATH_MAX];
        bool neg = *l == '!';
        const char *p = neg ? l + 1 : l;
        while (p[0] == '.' && p[1] == '/')
            p += 2;
        while (*p == '/')
            p++;
        size_t pl = strlen(p);
        snprintf(buf, sizeof(buf), "%s%.*s", neg ? "!" : "", (int)(pl && p[pl - 1] == '/' ? pl - 1 : pl), p);
        cli_strv_push(&pats, buf);
    }
    free(text);
    return pats;
}

static void kv_set(char ***list, const char *key, const char *val)
{
    size_t kl = strlen(key);
    for (size_t i = 0; *list && (*list)[i]; i++)
        if (!strncmp((*list)[i], key, kl) && (*list)[i][kl] == '=') {
            free((*list)[i]);
            size_t l = kl + strlen(val) + 2;
            (*list)[i] = malloc(l);
            snprintf((*list)[i], l, "%s=%s", key, val);
            return;
        }
    size_t l = kl + strlen(val) + 2;
    char *kv = malloc(l);
    snprintf(kv, l, "%s=%s", key, val);
    cli_strv_push(list, kv);
    free(kv);
}

static const char *kv_get(char **list, const char *key, size_t kl)
{
    for (size_t i = 0; list && list[i]; i++)
        if (!strncmp(list[i], key, kl) && list[i][kl] == '=')
            return list[i] + kl + 1;
    return NULL;
}

/* $VAR, ${VAR}, ${VAR:-default}; unknown variables expand to "". */
static char *expand(struct df_state *st, const char *s)
{
    size_t cap = strlen(s) + 256, n = 0;
    char *out = malloc(cap);
    for (const char *p = s; *p;) {
        const char *val = NULL;
        char defbuf[256] = "";
        size_t adv = 1;
        if (p[0] == '\\' && p[1] == '$') {
            val = "$";
            adv = 2;
        } else if (p[0] == '$' && p[1] == '{') {
            const char *e = strchr(p, '}');
            if (e) {
                const char *name = p + 2;
                size_t nl = (size_t)(e - name);
                const char *dash = memchr(name, ':', nl);
                if (dash && dash[1] == '-') {
                    snprintf(defbuf, sizeof(defbuf), "%.*s", (int)(e - dash - 2), dash + 2);
                    nl = (size_t)(dash - name);
                }
                val = kv_get(st->vars, name, nl);
                if (!val || !*val)
                    val = defbuf;
                adv = (size_t)(e - p) + 1;
            }
        } else if (p[0] == '$' && (isalpha((unsigned char)p[1]) || p[1] == '_')) {
            const char *e = p + 1;
            while (isalnum((unsigned char)*e) || *e == '_')
                e++;
            val = kv_get(st->vars, p + 1, (size_t)(e - p - 1));
            if (!val)
                val = "";
            adv = (size_t)(e - p);
        }
        const char *add = val ? val : p;
        size_t al = val ? strlen(val) : 1;
        if (n + al + 1 > cap) {
            cap = (n + al + 1) * 2;
            out = realloc(out, cap);
        }
        memcpy(out + n, add, al);
        n += al;
        p += adv;
    }
    out[n] = '\0';
    return out;
}

/* Lexically normalise an in-image path against the workdir: "/" based, ".." stops at "/". */
static void image_path(const char *workdir, const char *p, char *out, size_t size)
{
    char tmp[PATH_MAX * 2];
    if (p[0] == '/')
        snprintf(tmp, sizeof(tmp), "%s", p);
    else
        snprintf(tmp, sizeof(tmp), "%s/%s", workdir, p);
    char *parts[512];
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(tmp, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (!strcmp(t, "."))
            continue;
        if (!strcmp(t, "..")) {
            if (n)
                n--;
            continue;
        }
        if (n < 512)
            parts[n++] = t;
    }
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < n && o < size; i++)
        o += (size_t)snprintf(out + o, size - o, "/%s", parts[i]);
    if (n == 0)
        snprintf(out, size, "/");
}

static int mkdirs_in_root(const char *root, const char *ipath, struct nubo_err *err)
{
    char full[PATH_MAX];
    if (nubo_snprintf(full, sizeof(full), "%s%s", root, ipath) < 0)
        return nubo_error(err, ENAMETOOLONG, "path %s", ipath);
    return nubo_mkdir_p(full, 0755, err);
}

static int copy_file(const char *src, const char *dst, mode_t mode, struct nubo_err *err)
{
    cleanup_close int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return nubo_error(err, errno, "cannot open %s", src);
    unlink(dst);
    cleanup_close int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                                 mode & 07777);
    if (out < 0)
        return nubo_error(err, errno, "cannot create %s", dst);
    if (nubo_copy_fd(in, src, out, dst, err) < 0)
        return -1;
    if (fchmod(out, mode & 07777) < 0)
        return nubo_error(err, errno, "cannot chmod %s", dst);
    return 0;
}

/* Copy src (file, dir contents, symlink) to dst on the host side of the staging root. */
static int copy_tree(const char *src, const char *dst, int chmod_mode, int depth,
                     char **ign, const char *ctx_real, struct nubo_err *err)
{
    if (depth > 64)
        return nubo_error(err, 0, "%s nests too deep", src);
    struct stat st;
    if (lstat(src, &st) < 0)
        return nubo_error(err, errno, "cannot stat %s", src);
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t l = readlink(src, target, sizeof(target) - 1);
        if (l < 0)
            return nubo_error(err, errno, "cannot read link %s", src);
        target[l] = '\0';
        unlink(dst);
        if (symlink(target, dst) < 0)
            return nubo_error(err, errno, "cannot create link %s", dst);
        return 0;
    }
    if (S_ISREG(st.st_mode))
        return copy_file(src, dst, chmod_mode >= 0 ? (mode_t)chmod_mode : st.st_mode, err);
    if (!S_ISDIR(st.st_mode))
        return nubo_error(err, 0, "%s is not a regular file or directory", src);
    if (mkdir(dst, 0755) < 0 && errno != EEXIST)
        return nubo_error(err, errno, "cannot create %s", dst);
    struct stat dst_st;
    if (lstat(dst, &dst_st) < 0 || !S_ISDIR(dst_st.st_mode))
        return nubo_error(err, 0, "cannot copy directory %s over the file %s", src, dst);
    struct dirent **names;
    int n = scandir(src, &names, NULL, alphasort);
    if (n < 0)
        return nubo_error(err, errno, "cannot list %s", src);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *nm = names[i]->d_name;
        if (rc == 0 && strcmp(nm, ".") && strcmp(nm, "..")) {
            char s2[PATH_MAX], d2[PATH_MAX];
            if (nubo_snprintf(s2, sizeof(s2), "%s/%s", src, nm) < 0 ||
                nubo_snprintf(d2, sizeof(d2), "%s/%s", dst, nm) < 0)
                rc = nubo_error(err, ENAMETOOLONG, "path under %s", src);
            else
                rc = ignored(ign, ctx_real, s2)
                         ? 0
                         : copy_tree(s2, d2, chmod_mode, depth + 1, ign, ctx_real, err);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static bool inside(const char *real, const char *base)
{
    size_t bl = strlen(base);
    return strncmp(real, base, bl) == 0 && (real[bl] == '\0' || real[bl] == '/' || bl == 1);
}

static bool is_archive_name(const char *s)
{
    static const char *const ext[] = {".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".txz",
                                      NULL};
    size_t l = strlen(s);
    for (size_t i = 0; ext[i]; i++) {
        size_t el = strlen(ext[i]);
        if (l > el && !strcmp(s + l - el, ext[i]))
            return true;
    }
    return false;
}

/* ADD of a local archive unpacks it (as docker does), refusing paths that leave dst. */
static int unpack_archive(const char *src, const char *dst, struct nubo_err *err)
{
    struct archive *a = archive_read_new();
    struct archive *w = archive_write_disk_new();
    archive_read_support_format_all(a);
    archive_read_support_filter_all(a);
    archive_write_disk_set_options(w, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                          ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                          ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);
    int rc = 0;
    if (archive_read_open_filename(a, src, 65536) != ARCHIVE_OK)
        rc = nubo_error(err, 0, "cannot read archive %s: %s", src, archive_error_string(a));
    struct archive_entry *e;
    while (rc == 0) {
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN) {
            rc = nubo_error(err, 0, "archive %s: %s", src, archive_error_string(a));
            break;
        }
        const char *name = archive_entry_pathname(e);
        if (!name || name[0] == '/' || strstr(name, "..")) {
            rc = nubo_error(err, 0, "archive %s: refusing entry '%s'", src, name ? name : "");
            break;
        }
        char full[PATH_MAX];
        if (nubo_snprintf(full, sizeof(full), "%s/%s", dst, name) < 0) {
            rc = nubo_error(err, ENAMETOOLONG, "archive %s entry", src);
            break;
        }
        archive_entry_set_pathname(e, full);
        const char *hl = archive_entry_hardlink(e);
        if (hl) {
            if (hl[0] == '/' || strstr(hl, "..")) {
                rc = nubo_error(err, 0, "archive %s: refusing link '%s'", src, hl);
                break;
            }
            char hfull[PATH_MAX];
            if (nubo_snprintf(hfull, sizeof(hfull), "%s/%s", dst, hl) < 0) {
                rc = nubo_error(err, ENAMETOOLONG, "archive %s link", src);
                break;
            }
            archive_entry_set_hardlink(e, hfull);
        }
        if (archive_write_header(w, e) != ARCHIVE_OK) {
            rc = nubo_error(err, 0, "archive %s: %s", src, archive_error_string(w));
            break;
        }
        const void *buf;
        size_t sz;
        int64_t off;
        while ((r = archive_read_data_block(a, &buf, &sz, &off)) == ARCHIVE_OK)
            if (archive_write_data_block(w, buf, sz, off) != ARCHIVE_OK)
                break;
        archive_write_finish_entry(w);
    }
    archive_read_free(a);
    archive_write_free(w);
    return rc;
}

static int do_copy(struct df_state *st, const struct cli_df_instr *in, struct nubo_err *err)
{
    const char *fname = st->df->path;
    size_t n = cli_strv_len(in->args);
    if (n < 2)
        return nubo_error(err, 0, "%s:%d: %s needs a source and a destination", fname, in->line,
                          in->keyword);
    int chmod_mode = -1;
    for (size_t f = 0; in->flags[f]; f++) {
        if (!strncmp(in->flags[f], "--chmod=", 8)) {
            char *e;
            long m = strtol(in->flags[f] + 8, &e, 8);
            if (*e || m < 0 || m > 07777)
                return nubo_error(err, 0, "%s:%d: bad %s (expected octal, e.g. --chmod=0755)",
                                  fname, in->line, in->flags[f]);
            chmod_mode = (int)m;
        } else if (strncmp(in->flags[f], "--chown=", 8) && strncmp(in->flags[f], "--link", 6)) {
            return nubo_error(err, 0, "%s:%d: %s %s is not supported", fname, in->line,
                              in->keyword, in->flags[f]);
        }
        /* --chown: every file in a nubo initrd belongs to root; --link changes nothing here. */
    }
    cleanup_free char *dst_raw = expand(st, in->args[n - 1]);
    char dst[PATH_MAX];
    image_path(st->workdir, dst_raw, dst, sizeof(dst));
    size_t dl = strlen(dst_raw);
    bool dst_is_dir = n > 2 || (dl && dst_raw[dl - 1] == '/');
    for (size_t i = 0; i + 1 < n; i++) {
        cleanup_free char *src_raw = expand(st, in->args[i]);
        if (strstr(src_raw, "://"))
            return nubo_error(err, 0, "%s:%d: %s %s: remote sources are not supported (no "
                              "network during builds); download it into the build context",
                              fname, in->line, in->keyword, src_raw);
        char pattern[PATH_MAX];
        if (nubo_snprintf(pattern, sizeof(pattern), "%s/%s", st->ctx_real, src_raw) < 0)
            return nubo_error(err, ENAMETOOLONG, "%s:%d: source path", fname, in->line);
        glob_t g;
        int gr = glob(pattern, GLOB_NOSORT, NULL, &g);
        if (gr != 0) {
            if (gr != GLOB_NOMATCH)
                globfree(&g);
            return nubo_error(err, 0, "%s:%d: %s %s: no such file in the build context %s", fname,
                              in->line, in->keyword, src_raw, st->ctx_real);
        }
        if (g.gl_pathc > 1)
            dst_is_dir = true;
        int rc = 0;
        for (size_t k = 0; k < g.gl_pathc && rc == 0; k++) {
            char real[PATH_MAX];
            if (!realpath(g.gl_pathv[k], real)) {
                rc = nubo_error(err, 0, "%s:%d: %s %s: no such file in the build context %s",
                                fname, in->line, in->keyword, src_raw, st->ctx_real);
                break;
            }
            if (ignored(st->ignore, st->ctx_real, real)) {
                if (g.gl_pathc == 1 && !strpbrk(src_raw, "*?["))
                    rc = nubo_error(err, 0, "%s:%d: %s %s: excluded by .dockerignore", fname,
                                    in->line, in->keyword, src_raw);
                continue;
            }
            if (!inside(real, st->ctx_real)) {
                rc = nubo_error(err, 0, "%s:%d: %s %s: the source is outside the build context "
                                "%s; move it into the context", fname, in->line, in->keyword,
                                src_raw, st->ctx_real);
                break;
            }
            struct stat sst;
            if (stat(real, &sst) < 0) {
                rc = nubo_error(err, errno, "%s:%d: %s", fname, in->line, real);
                break;
            }
            char target_ipath[PATH_MAX];
            if (in->kind == CLI_DF_ADD && S_ISREG(sst.st_mode) && is_archive_name(real)) {
                if (mkdirs_in_root(st->root, dst, err) < 0)
                    return -1;
                char full[PATH_MAX];
                snprintf(full, sizeof(full), "%s%s", st->root, dst);
                rc = unpack_archive(real, full, err);
                if (rc < 0)
                    nubo_error_wrap(err, "%s:%d", fname, in->line);
                continue;
            }
            if (S_ISDIR(sst.st_mode)) {
                snprintf(target_ipath, sizeof(target_ipath), "%s", dst);
            } else if (dst_is_dir) {
                const char *base = strrchr(real, '/');
                if (nubo_snprintf(target_ipath, sizeof(target_ipath), "%s%s%s", dst,
                                  strcmp(dst, "/") ? "/" : "", base ? base + 1 : real) < 0) {
                    rc = nubo_error(err, ENAMETOOLONG, "%s:%d: destination", fname, in->line);
                    break;
                }
            } else {
                snprintf(target_ipath, sizeof(target_ipath), "%s", dst);
            }
            /* Parents of the target. */
            char parent[PATH_MAX];
            snprintf(parent, sizeof(parent), "%s", S_ISDIR(sst.st_mode) ? target_ipath : target_ipath);
            if (!S_ISDIR(sst.st_mode)) {
                char *sl = strrchr(parent, '/');
                if (sl)
                    sl[sl == parent ? 1 : 0] = '\0';
            }
            if (mkdirs_in_root(st->root, parent, err) < 0)
                return -1;
            char full[PATH_MAX];
            if (nubo_snprintf(full, sizeof(full), "%s%s", st->root, target_ipath) < 0)
                return nubo_error(err, ENAMETOOLONG, "%s:%d: destination", fname, in->line);
            /* Follow the top-level source (it was checked to stay inside the context). */
            if (S_ISDIR(sst.st_mode))
                rc = copy_tree(real, full, chmod_mode, 0, st->ignore, st->ctx_real, err);
            else
                rc = copy_file(real, full, chmod_mode >= 0 ? (mode_t)chmod_mode : sst.st_mode, err);
            if (rc < 0)
                nubo_error_wrap(err, "%s:%d: %s %s", fname, in->line, in->keyword, src_raw);
        }
        globfree(&g);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* ENV/LABEL/ARG words: "K=V" pairs, or the legacy "ENV K V..." form. */
static int pairs(struct df_state *st, const struct cli_df_instr *in, char ***into, bool also_var,
                 struct nubo_err *err)
{
    size_t n = cli_strv_len(in->args);
    if (n == 0)
        return nubo_error(err, 0, "%s:%d: %s needs KEY=VALUE", st->df->path, in->line,
                          in->keyword);
    if (!strchr(in->args[0], '=')) {
        if (in->kind == CLI_DF_ARG) {
            /* ARG NAME: no default; a --build-arg may still set it. */
            if (!kv_get(st->vars, in->args[0], strlen(in->args[0])))
                kv_set(&st->vars, in->args[0], "");
            return 0;
        }
        /* Legacy: ENV KEY value with spaces. */
        const char *rest = in->raw + strlen(in->args[0]);
        while (isspace((unsigned char)*rest))
            rest++;
        cleanup_free char *v = expand(st, rest);
        if (into)
            kv_set(into, in->args[0], v);
        if (also_var)
            kv_set(&st->vars, in->args[0], v);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(in->args[i], '=');
        if (!eq || eq == in->args[i])
            return nubo_error(err, 0, "%s:%d: %s '%s' is not KEY=VALUE", st->df->path, in->line,
                              in->keyword, in->args[i]);
        char key[256];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - in->args[i]), in->args[i]);
        cleanup_free char *v = expand(st, eq + 1);
        if (in->kind == CLI_DF_ARG) {
            /* A --build-arg given on the command line wins over the default. */
            if (!kv_get(st->vars, key, strlen(key)))
                kv_set(&st->vars, key, v);
            continue;
        }
        if (into)
            kv_set(into, key, v);
        if (also_var)
            kv_set(&st->vars, key, v);
    }
    return 0;
}

int cli_dockerfile_build(const struct cli_dockerfile *df, const char *context_dir,
                         const char *root_dir, char *const *build_args,
                         struct cli_df_result *res, struct nubo_err *err)
{
    struct df_state st;
    memset(&st, 0, sizeof(st));
    memset(res, 0, sizeof(*res));
    st.df = df;
    st.root = root_dir;
    st.res = res;
    snprintf(st.workdir, sizeof(st.workdir), "/");
    if (!realpath(context_dir, st.ctx_real))
        return nubo_error(err, errno, "build context %s", context_dir);
    st.ignore = load_dockerignore(st.ctx_real);
    for (size_t i = 0; build_args && build_args[i]; i++) {
        const char *eq = strchr(build_args[i], '=');
        if (!eq)
            continue;
        char key[256];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - build_args[i]), build_args[i]);
        kv_set(&st.vars, key, eq + 1);
    }
    char **entry = NULL, **cmd = NULL;
    bool has_entry = false, has_cmd = false;
    int rc = 0;
    for (size_t i = 0; i < df->n && rc == 0; i++) {
        const struct cli_df_instr *in = &df->ins[i];
        switch (in->kind) {
        case CLI_DF_FROM:
        case CLI_DF_OTHER:
            break;
        case CLI_DF_RUN:
            rc = nubo_error(err, 0, "%s:%d: RUN needs buildah", df->path, in->line);
            break;
        case CLI_DF_COPY:
        case CLI_DF_ADD:
            rc = do_copy(&st, in, err);
            break;
        case CLI_DF_ENV:
            rc = pairs(&st, in, &res->env, true, err);
            break;
        case CLI_DF_LABEL:
            rc = pairs(&st, in, &res->labels, false, err);
            break;
        case CLI_DF_ARG:
            rc = pairs(&st, in, NULL, true, err);
            break;
        case CLI_DF_USER: {
            /* The guest's /init runs the app as this user (unprivileged when absent). */
            cleanup_free char *u = in->args[0] && !in->args[1] ? expand(&st, in->args[0]) : NULL;
            if (!u || !nubo_image_user_valid(u)) {
                rc = nubo_error(err, 0, "%s:%d: USER takes one name[:group] or uid[:gid]", df->path,
                                in->line);
                break;
            }
            free(res->user);
            res->user = steal_pointer(&u);
            break;
        }
        case CLI_DF_WORKDIR: {
            if (!in->args[0]) {
                rc = nubo_error(err, 0, "%s:%d: WORKDIR needs a path", df->path, in->line);
                break;
            }
            cleanup_free char *w = expand(&st, in->args[0]);
            char np[PATH_MAX];
            image_path(st.workdir, w, np, sizeof(np));
            snprintf(st.workdir, sizeof(st.workdir), "%s", np);
            rc = mkdirs_in_root(root_dir, st.workdir, err);
            break;
        }
        case CLI_DF_CMD:
        case CLI_DF_ENTRYPOINT: {
            char ***slot = in->kind == CLI_DF_CMD ? &cmd : &entry;
            cli_strv_free(*slot);
            *slot = calloc(1, sizeof(char *));
            /* Shell form is split into words: a unikernel runtime has no /bin/sh to run it. */
            for (size_t k = 0; in->args[k]; k++)
                cli_strv_push(slot, in->args[k]);
            if (in->kind == CLI_DF_CMD)
                has_cmd = true;
            else
                has_entry = true;
            break;
        }
        }
    }
    if (rc == 0 && (has_cmd || has_entry)) {
        res->cmd = calloc(1, sizeof(char *));
        for (size_t k = 0; entry && entry[k]; k++)
            cli_strv_push(&res->cmd, entry[k]);
        for (size_t k = 0; cmd && cmd[k]; k++)
            cli_strv_push(&res->cmd, cmd[k]);
    }
    cli_strv_free(entry);
    cli_strv_free(cmd);
    cli_strv_free(st.vars);
    cli_strv_free(st.ignore);
    if (rc < 0)
        cli_df_result_free(res);
    return rc;
}

/* ---------------------------------------------------------------- buildah */

static bool in_path(const char *prog, char *out, size_t size)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    char *save = NULL;
    for (char *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, size, "%s/%s", d, prog);
        if (access(out, X_OK) == 0)
            return true;
    }
    return false;
}

/* Run argv, stdout into *out (bounded) when out != NULL, stderr into log_path. */
static int run_cmd(char *const argv[], const char *log_path, char **out, struct nubo_err *err)
{
    int pfd[2] = {-1, -1};
    if (out && pipe2(pfd, O_CLOEXEC) < 0)
        return nubo_error(err, errno, "pipe");
    pid_t pid = fork();
    if (pid < 0)
        return nubo_error(err, errno, "cannot start %s", argv[0]);
    if (pid == 0) {
        int lfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        if (lfd >= 0) {
            dup2(lfd, 2);
            if (!out)
                dup2(lfd, 1);
        }
        if (out)
            dup2(pfd[1], 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    size_t n = 0, cap = 0;
    char *buf = NULL;
    if (out) {
        close(pfd[1]);
        char tmp[4096];
        ssize_t r;
        while ((r = read(pfd[0], tmp, sizeof(tmp))) > 0 || (r < 0 && errno == EINTR)) {
            if (r < 0)
                continue;
            if (n + (size_t)r + 1 > cap && n < (4u << 20)) {
                cap = (n + (size_t)r + 1) * 2;
                buf = realloc(buf, cap);
            }
            if (n + (size_t)r + 1 <= cap) {
                memcpy(buf + n, tmp, (size_t)r);
                n += (size_t)r;
                buf[n] = '\0';
            }
        }
        close(pfd[0]);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        free(buf);
        /* The last line of the tool's output says what went wrong. */
        char last[400] = "";
        FILE *f = fopen(log_path, "r");
        if (f) {
            char line[400];
            while (fgets(line, sizeof(line), f))
                if (line[0] != '\n')
                    snprintf(last, sizeof(last), "%s", line);
            fclose(f);
        }
        size_t ll = strlen(last);
        while (ll && (last[ll - 1] == '\n' || last[ll - 1] == '\r'))
            last[--ll] = '\0';
        return nubo_error(err, 0, "%s %s failed%s%s (log: %s)", argv[0], argv[1] ? argv[1] : "",
                          last[0] ? ": " : "", last, log_path);
    }
    if (out) {
        if (!buf)
            buf = calloc(1, 1);
        size_t l = strlen(buf);
        while (l && (buf[l - 1] == '\n' || buf[l - 1] == ' '))
            buf[--l] = '\0';
        *out = buf;
    }
    return 0;
}

int cli_dockerfile_buildah(const struct cli_dockerfile *df, const char *context_dir,
                           const char *root_dir, char *const *build_args, int line,
                           const char *why, struct cli_df_result *res, struct nubo_err *err)
{
    memset(res, 0, sizeof(*res));
    char bpath[PATH_MAX];
    if (!in_path("buildah", bpath, sizeof(bpath)))
        return nubo_error(err, 0,
                          "%s:%d: %s needs buildah, which is not installed: apt-get install "
                          "buildah (or use only FROM scratch, COPY, ENV, WORKDIR, CMD, LABEL, ARG)",
                          df->path, line, why);
    fprintf(stderr, "nubo: %s:%d: %s: building with buildah\n", df->path, line, why);
    char tag[64], rnd[9], log_path[PATH_MAX];
    nubo_random_alnum(rnd, 8);
    snprintf(tag, sizeof(tag), "localhost/nubo-build-%s", rnd);
    /* The log outlives the build directory, so the error can point at it. */
    char cache[PATH_MAX];
    if (cli_cache_dir(cache, sizeof(cache), err) < 0)
        return -1;
    if (nubo_snprintf(log_path, sizeof(log_path), "%s/buildah-%s.log", cache, rnd) < 0)
        return nubo_error(err, ENAMETOOLONG, "buildah log path");
    char **argv = NULL;
    const char *fixed[] = {"buildah", "bud", "--isolation", "chroot", "--pull=false",
                           "--layers=false", "-f", df->path, "-t", tag, NULL};
    for (size_t i = 0; fixed[i]; i++)
        cli_strv_push(&argv, fixed[i]);
    for (size_t i = 0; build_args && build_args[i]; i++) {
        cli_strv_push(&argv, "--build-arg");
        cli_strv_push(&argv, build_args[i]);
    }
    cli_strv_push(&argv, context_dir);
    int rc = run_cmd(argv, log_path, NULL, err);
    cli_strv_free(argv);
    if (rc < 0)
        return nubo_error_wrap(err, "%s:%d: building %s with buildah", df->path, line, why);

    cleanup_free char *ctr = NULL;
    cleanup_free char *mnt = NULL;
    cleanup_free char *cfg = NULL;
    char *from_argv[] = {"buildah", "from", "--pull=false", tag, NULL};
    rc = run_cmd(from_argv, log_path, &ctr, err);
    if (rc == 0) {
        char *mount_argv[] = {"buildah", "mount", ctr, NULL};
        rc = run_cmd(mount_argv, log_path, &mnt, err);
    }
    if (rc == 0) {
        char src[PATH_MAX];
        snprintf(src, sizeof(src), "%s/.", mnt);
        char *cp_argv[] = {"cp", "-a", src, (char *)root_dir, NULL};
        rc = run_cmd(cp_argv, log_path, NULL, err);
    }
    if (rc == 0) {
        char *insp_argv[] = {"buildah", "inspect", "--type", "image", tag, NULL};
        rc = run_cmd(insp_argv, log_path, &cfg, err);
    }
    if (ctr) {
        char *um[] = {"buildah", "umount", ctr, NULL};
        char *rmc[] = {"buildah", "rm", ctr, NULL};
        struct nubo_err ignore = {0};
        run_cmd(um, log_path, NULL, &ignore);
        run_cmd(rmc, log_path, NULL, &ignore);
    }
    char *rmi[] = {"buildah", "rmi", tag, NULL};
    struct nubo_err ignore = {0};
    run_cmd(rmi, log_path, NULL, &ignore);
    if (rc < 0)
        return nubo_error_wrap(err, "%s: exporting the buildah result", df->path);
    unlink(log_path);
    json_error_t jerr;
    json_t *all = json_loads(cfg, 0, &jerr);
    json_t *c = json_incref(json_object_get(json_object_get(all, "OCIv1"), "config"));
    json_decref(all);
    json_t *ep = json_object_get(c, "Entrypoint"), *cm = json_object_get(c, "Cmd");
    if (json_array_size(ep) || json_array_size(cm)) {
        res->cmd = calloc(1, sizeof(char *));
        size_t i;
        json_t *v;
        json_array_foreach(ep, i, v) cli_strv_push(&res->cmd, json_string_value(v));
        json_array_foreach(cm, i, v) cli_strv_push(&res->cmd, json_string_value(v));
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(c, "Env"), i, v)
    {
        /* The base image's PATH is a container convention, not the app's. */
        const char *s = json_string_value(v);
        if (s && strncmp(s, "PATH=", 5))
            cli_strv_push(&res->env, s);
    }
    const char *k;
    json_object_foreach(json_object_get(c, "Labels"), k, v)
    {
        if (!json_string_value(v) || !strncmp(k, "io.buildah.", 11))
            continue; /* the builder's own stamp is not the app's */
        kv_set(&res->labels, k, json_string_value(v));
    }
    json_decref(c);
    return 0;
}
