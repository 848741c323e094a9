/* CLI configuration: profile file (INI), environment, global flags; one-line error output. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"
#include "config.h"
#include "util.h"

/* One profile: the keys of the section $NUBO_PROFILE names ([default] when unset). */
#define C struct cli_ctx
static const struct nu_cfg_key cli_settings[] = {
    NU_CFG_S(C, NULL, "api", api_url, CLI_DEFAULT_API),
    NU_CFG_S(C, NULL, "token", token, NULL),
    NU_CFG_S(C, NULL, "ca_file", ca_file, NULL),
    NU_CFG_S(C, NULL, "registry", reg.url, CLI_DEFAULT_REGISTRY),
    NU_CFG_S(C, NULL, "registry_socket", reg.unix_path, NULL),
    NU_CFG_S(C, NULL, "registry_user", reg.user, NULL),
    NU_CFG_S(C, NULL, "registry_password", reg.password, NULL),
    NU_CFG_S(C, NULL, "metro", metro, NULL),
    NU_CFG_S(C, NULL, "org", org, "default"),
    {0},
};
#undef C

void cli_ctx_init(struct cli_ctx *ctx)
{
    nu_cfg_init(cli_settings, ctx, sizeof(*ctx));
    ctx->o = stdout;
    ctx->e = stderr;
    ctx->tty = isatty(STDOUT_FILENO) == 1;
    ctx->prog = "nubo";
}

int cli_config_path(char *out, size_t size)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    if (xdg && *xdg)
        return nubo_snprintf(out, size, "%s/nubo/config", xdg);
    const char *home = getenv("HOME");
    if (!home || !*home)
        home = "/root";
    return nubo_snprintf(out, size, "%s/.config/nubo/config", home);
}

/* The user's cache of base layers and build outputs: $XDG_CACHE_HOME/nubo or ~/.cache/nubo. */
int cli_cache_dir(char *out, size_t size, struct nubo_err *err)
{
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int rc = (xdg && *xdg) ? nubo_snprintf(out, size, "%s/nubo", xdg)
                           : nubo_snprintf(out, size, "%s/.cache/nubo", home && *home ? home : "/root");
    if (rc < 0)
        return nubo_error(err, ENAMETOOLONG, "cache directory path");
    return nubo_mkdir_p(out, 0755, err);
}

int cli_config_load(struct cli_ctx *ctx, struct nubo_err *err)
{
    const char *explicit = getenv("NUBO_CONFIG");
    if (explicit && *explicit)
        snprintf(ctx->config_path, sizeof(ctx->config_path), "%s", explicit);
    else if (cli_config_path(ctx->config_path, sizeof(ctx->config_path)) < 0)
        return nubo_error(err, ENAMETOOLONG, "config path too long");
    const char *profile = getenv("NUBO_PROFILE");
    /* Unknown keys are ignored so newer profiles work with older binaries. */
    const struct nu_cfg_opts opts = {.what = "profile",
                                     .section = profile && *profile ? profile : "default",
                                     .ignore_unknown = true,
                                     .hint = ": fix it or run 'nubo login' again"};
    if (access(ctx->config_path, F_OK) == 0 &&
        nu_cfg_load(ctx->config_path, cli_settings, ctx, &opts, err) < 0)
        return -1;
    const char *v;
    if ((v = getenv("NUBO_API")) && *v)
        snprintf(ctx->api_url, sizeof(ctx->api_url), "%s", v);
    if ((v = getenv("NUBO_TOKEN")) && *v)
        snprintf(ctx->token, sizeof(ctx->token), "%s", v);
    if ((v = getenv("NUBO_CA")) && *v)
        snprintf(ctx->ca_file, sizeof(ctx->ca_file), "%s", v);
    /* the registry's token realm is the API: the same CA */
    snprintf(ctx->reg.ca_file, sizeof(ctx->reg.ca_file), "%s", ctx->ca_file);
    if ((v = getenv("NUBO_REGISTRY")) && *v)
        snprintf(ctx->reg.url, sizeof(ctx->reg.url), "%s", v);
    if ((v = getenv("NUBO_METRO")) && *v)
        snprintf(ctx->metro, sizeof(ctx->metro), "%s", v);
    if ((v = getenv("NUBO_ORG")) && *v)
        snprintf(ctx->org, sizeof(ctx->org), "%s", v);
    return 0;
}

void cli_org_from_token(struct cli_ctx *ctx)
{
    /* Tokens are base64("<user>:<secret>") as on Unikraft Cloud: the user is the namespace
     * images are pushed to, unless the profile or NUBO_ORG says otherwise. */
    if (strcmp(ctx->org, "default") != 0 || !ctx->token[0])
        return;
    size_t len = 0;
    unsigned char *raw = nubo_base64_decode(ctx->token, &len);
    if (!raw)
        return;
    char user[128];
    size_t ul = 0;
    while (ul < len && ul < sizeof(user) - 1 && raw[ul] != ':')
        ul++;
    if (ul < len && raw[ul] == ':') {
        memcpy(user, raw, ul);
        user[ul] = '\0';
        if (nubo_name_valid(user))
            snprintf(ctx->org, sizeof(ctx->org), "%s", user);
    }
    free(raw);
}

int cli_config_write(const char *path, const char *api, const char *token, const char *registry,
                     const char *metro, const char *ca_file, struct nubo_err *err)
{
    for (const char *const *p = (const char *const[]){api, token, registry, metro, ca_file, NULL};
         *p; p++)
        if (strpbrk(*p, "\r\n"))
            return nubo_error(err, 0, "profile values must be one line");
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        if (nubo_mkdir_p(dir, 0700, err) < 0)
            return -1;
    }
    char text[4096];
    int n = snprintf(text, sizeof(text),
                     "# written by nubo login\n[default]\napi = %s\ntoken = %s\n%s%s%s%s%s%s%s%s%s",
                     api, token, ca_file[0] ? "ca_file = " : "", ca_file, ca_file[0] ? "\n" : "",
                     registry[0] ? "registry = " : "", registry, registry[0] ? "\n" : "",
                     metro[0] ? "metro = " : "", metro, metro[0] ? "\n" : "");
    if (n < 0 || (size_t)n >= sizeof(text))
        return nubo_error(err, 0, "profile values too long");
    return nubo_write_file_atomic(path, text, (size_t)n, 0600, err);
}

enum { OPT_API = CLI_GLOBAL_OPTS_BASE, OPT_TOKEN, OPT_REGISTRY, OPT_METRO, OPT_CA };

static const struct option global_opts[] = {
    {"api", required_argument, NULL, OPT_API},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"registry", required_argument, NULL, OPT_REGISTRY},
    {"metro", required_argument, NULL, OPT_METRO},
    {"ca", required_argument, NULL, OPT_CA},
    {"output", required_argument, NULL, 'o'},
    {"quiet", no_argument, NULL, 'q'},
    {NULL, 0, NULL, 0},
};

struct option *cli_opts_with_globals(const struct option *own)
{
    size_t n = 0, g = sizeof(global_opts) / sizeof(global_opts[0]);
    while (own && own[n].name)
        n++;
    struct option *all = calloc(n + g, sizeof(*all));
    if (!all)
        abort();
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        all[k++] = own[i];
    for (size_t i = 0; i < g; i++) {
        bool dup = false;
        for (size_t j = 0; j < n; j++)
            if (global_opts[i].name && strcmp(global_opts[i].name, own[j].name) == 0)
                dup = true;
        if (!dup)
            all[k++] = global_opts[i];
    }
    return all;
}

int cli_first_word(int argc, char **argv, int from)
{
    int i = from;
    while (i < argc && argv[i][0] == '-' && strcmp(argv[i], "--") != 0) {
        bool takes = strcmp(argv[i], "-o") == 0;
        for (size_t g = 0; global_opts[g].name; g++)
            takes |= global_opts[g].has_arg == required_argument && !strncmp(argv[i], "--", 2) &&
                     strcmp(argv[i] + 2, global_opts[g].name) == 0;
        i += takes ? 2 : 1;
    }
    return i;
}

int cli_global_opt(struct cli_ctx *ctx, int opt, const char *arg, struct nubo_err *err)
{
    switch (opt) {
    case OPT_API:
        if (strlen(arg) >= sizeof(ctx->api_url))
            return nubo_error(err, 0, "--api: longer than %zu bytes", sizeof(ctx->api_url) - 1);
        snprintf(ctx->api_url, sizeof(ctx->api_url), "%s", arg);
        if (!cli_api_targets(ctx, err))
            return -1;
        return 1;
    case OPT_TOKEN:
        snprintf(ctx->token, sizeof(ctx->token), "%s", arg);
        return 1;
    case OPT_REGISTRY:
        if (strncmp(arg, "http://", 7) != 0 && strncmp(arg, "https://", 8) != 0)
            return nubo_error(err, 0, "--registry '%s': expected an http:// or https:// URL", arg);
        snprintf(ctx->reg.url, sizeof(ctx->reg.url), "%s", arg);
        return 1;
    case OPT_METRO:
        snprintf(ctx->metro, sizeof(ctx->metro), "%s", arg);
        return 1;
    case OPT_CA:
        if (access(arg, R_OK) != 0)
            return nubo_error(err, errno, "--ca '%s': cannot read the CA file", arg);
        snprintf(ctx->ca_file, sizeof(ctx->ca_file), "%s", arg);
        snprintf(ctx->reg.ca_file, sizeof(ctx->reg.ca_file), "%s", arg);
        return 1;
    case 'o':
        if (strcmp(arg, "json") == 0)
            ctx->out = CLI_OUT_JSON;
        else if (strcmp(arg, "table") == 0 || strcmp(arg, "text") == 0)
            ctx->out = CLI_OUT_TABLE;
        else
            return nubo_error(err, 0, "-o '%s': expected json or table", arg);
        return 1;
    case 'q':
        ctx->quiet = true;
        return 1;
    default:
        return 0;
    }
}

static void one_line(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
}

int cli_fail(struct cli_ctx *ctx, const char *cmd, struct nubo_err *err)
{
    one_line(err->msg);
    fprintf(ctx->e, "%s%s%s: %s\n", ctx->prog, cmd ? " " : "", cmd ? cmd : "",
            err->msg[0] ? err->msg : "failed");
    return CLI_EXIT_FAIL;
}

const char *cli_unknown_flag(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *a = optind > 0 && optind - 1 < argc ? argv[optind - 1] : "?";
    if (optopt && optopt < 0x100 && optopt != '?')
        snprintf(ctx->scratch, sizeof(ctx->scratch), "flag '-%c' is unknown or lacks its value",
                 optopt);
    else
        snprintf(ctx->scratch, sizeof(ctx->scratch), "flag '%s' is unknown or lacks its value", a);
    return ctx->scratch;
}

int cli_usage(struct cli_ctx *ctx, const char *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    one_line(msg);
    fprintf(ctx->e, "%s %s: %s (see '%s %s --help')\n", ctx->prog, cmd, msg, ctx->prog, cmd);
    return CLI_EXIT_USAGE;
}

void cli_notice(struct cli_ctx *ctx, const char *fmt, ...)
{
    if (ctx->quiet)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(ctx->e, "%s: %s\n", ctx->prog, msg);
}
