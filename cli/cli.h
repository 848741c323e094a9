/* The nubo CLI: shared context, the API client, parsers and renderers used by the
 * per-subcommand files (cmd_*.c). Everything here lives in nubo_cli_core for the tests. */
#ifndef NUBO_CLI_H
#define NUBO_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "api.h"
#include "cluster.h"
#include "error.h"
#include "http.h"
#include "registry.h"
#include "service.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

#define CLI_DEFAULT_API "http://127.0.0.1:7060"
#define CLI_DEFAULT_REGISTRY "http://127.0.0.1:5000"
#define CLI_API_BODY_MAX (16u << 20)
/* Service groups or certificates one list decodes (a group is ~7 KiB decoded). */
#define CLI_MAX_GROUPS 4096

enum cli_output { CLI_OUT_TABLE = 0, CLI_OUT_JSON };

struct cli_ctx {
    char api_url[512];          /* comma-separated when several controllers share the store */
    struct nu_http_targets api; /* api_url parsed (cli_api_targets) */
    char api_parsed[512];       /* the api_url that api holds */
    char token[1024];
    char ca_file[256]; /* https: the CA of the API (and the registry's token realm); "" = system's */
    char metro[64];
    char org[128];              /* default namespace for images built without an org */
    char config_path[1024];     /* profile file that was read (or would be written) */
    struct nubo_registry reg;
    enum cli_output out;
    bool tty;                   /* stdout is a terminal: colours, progress bars */
    bool quiet;
    FILE *o;                    /* stdout (tests swap it for a memstream) */
    FILE *e;                    /* stderr */
    const char *prog;           /* "nubo" */
    char scratch[256];          /* room for one message built while parsing flags */
};

/* ---- main.c / config.c */
void cli_ctx_init(struct cli_ctx *ctx);
/* Profile (INI, [default] section, or the section named by $NUBO_PROFILE), then env. */
int cli_config_load(struct cli_ctx *ctx, struct nubo_err *err);
int cli_config_path(char *out, size_t size);
/* Default image namespace from a base64("user:secret") token when none was configured. */
void cli_org_from_token(struct cli_ctx *ctx);
int cli_config_write(const char *path, const char *api, const char *token, const char *registry,
                     const char *metro, const char *ca_file, struct nubo_err *err);

/* Global options every subcommand accepts (--api, --token, --ca, --registry, --metro, -o, -q).
 * Returns 1 when opt was one of them, 0 when not, -1 on a bad value (err set). */
#define CLI_GLOBAL_OPTS_BASE 0x1000
int cli_global_opt(struct cli_ctx *ctx, int opt, const char *arg, struct nubo_err *err);
/* Append the global long options to a subcommand's table (returns a malloc'd array). */
struct option;
struct option *cli_opts_with_globals(const struct option *own);
#define CLI_GLOBAL_SHORT "o:q"

/* One-line error reporting: "nubo <cmd>: <msg>" on stderr; returns the exit code. */
int cli_fail(struct cli_ctx *ctx, const char *cmd, struct nubo_err *err);
/* "unknown flag '--x' or missing value" for the option getopt just refused. */
const char *cli_unknown_flag(struct cli_ctx *ctx, int argc, char **argv);
int cli_usage(struct cli_ctx *ctx, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cli_notice(struct cli_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- api.c: the controller's REST API */
/* method + path ("/v1/instances"), optional JSON body (borrowed). On success *out holds the
 * parsed envelope. A top-level "error" status, HTTP >= 400 or no answer -> -1, one line. */
int cli_api(struct cli_ctx *ctx, const char *method, const char *path, json_t *body,
            json_t **out, struct nubo_err *err);
/* The controllers api_url names, parsed on first use (a list: http.h fails over). */
struct nu_http_targets *cli_api_targets(struct cli_ctx *ctx, struct nubo_err *err);
/* cli_api, then borrow data.<collection> (nubo_envelope_items): *resp owns *items. */
int cli_api_list(struct cli_ctx *ctx, const char *method, const char *path, json_t *body,
                 const char *collection, json_t **resp, json_t **items, struct nubo_err *err);

/* ---- parse.c */
struct cli_port {
    int port, destination_port;
    char handlers[3][16];
    int n_handlers;
};
/* "443:8080/http+tls", "443:8080" (adds 80:443/http+redirect), "8080". Appends to ports
 * (max 16); n in/out. */
int cli_parse_port(const char *s, struct cli_port *ports, int *n, int max, struct nubo_err *err);
/* The parsed ports as proto's published ports (handler names to bits). */
void cli_ports_proto(const struct cli_port *ports, int n, struct nubo_ingress_port *out);
/* "K=V" into obj; "K" alone takes the value from the environment. */
int cli_parse_env(const char *s, json_t *obj, struct nubo_err *err);
/* Shell-like split of a command string (quotes, backslashes). NULL-terminated, malloc'd. */
char **cli_shell_split(const char *s, struct nubo_err *err);
void cli_strv_free(char **v);
size_t cli_strv_len(char *const *v);
int cli_strv_push(char ***v, const char *s);

/* ---- render.c (pure: proto's types in, text out; golden-tested) */
/* "45 seconds ago", "3 minutes ago", "2 hours ago", "5 days ago" */
void cli_time_ago(int64_t then_us, int64_t now_us, char *out, size_t size);
/* go-humanize style SI bytes: "77 MB", "7.7 MB", "512 B" */
void cli_human_bytes(uint64_t b, char *out, size_t size);
/* Stop reason bits as "FUPAK" with '-' for unset bits plus a few words; inst (may be NULL)
 * adds its exit code and message. */
void cli_stop_reason(int64_t reason, const struct nubo_instance *inst, char *out, size_t size);

struct cli_table;
struct cli_table *cli_table_new(const char *const *headers);
void cli_table_add(struct cli_table *t, const char *const *cells);
void cli_table_print(struct cli_table *t, FILE *f);
void cli_table_free(struct cli_table *t);

void cli_render_instances(FILE *f, const struct nubo_instance *v, size_t n, int64_t now_us);
void cli_render_images(FILE *f, const struct nubo_image *v, size_t n);
void cli_render_nodes(FILE *f, const struct nubo_node *v, size_t n, int64_t now_us);
void cli_render_metros(FILE *f, const struct nubo_metro *v, size_t n);
void cli_render_tokens(FILE *f, const struct nubo_token *v, size_t n, int64_t now_us);
void cli_render_services(FILE *f, const struct nubo_svc_group *v, size_t n, int64_t now_us);
void cli_render_certificates(FILE *f, const struct nubo_certificate *v, size_t n,
                             int64_t now_us);
/* The "[●] Deployed successfully!" tree for one instance (as GET returns it). color adds
 * ANSI colours to the title. prog names the CLI in the logs hint. */
void cli_render_deploy_tree(FILE *f, const struct nubo_instance *in, bool color,
                            const char *prog);
/* "key: value" lines for one object, keys sorted (images get, instances get ...); takes the
 * object as proto's encoder writes it. */
void cli_render_object(FILE *f, json_t *obj);
void cli_print_json(FILE *f, json_t *j);

/* ---- kraftfile.c */
struct cli_kraftfile {
    char spec[16];
    char name[128];
    char runtime[256];
    char rootfs[1024];        /* as written, relative to the Kraftfile's directory */
    char **cmd;               /* NULL when absent */
    char **env;               /* "K=V" */
    char **labels;            /* "K=V" */
};
int cli_kraftfile_parse(const char *text, size_t len, const char *fname,
                        struct cli_kraftfile *kf, struct nubo_err *err);
int cli_kraftfile_load(const char *dir, const char *explicit_path, struct cli_kraftfile *kf,
                       char *path_out, size_t path_size, struct nubo_err *err);
void cli_kraftfile_free(struct cli_kraftfile *kf);

/* ---- dockerfile.c: the subset nubo builds itself */
enum cli_df_kind {
    CLI_DF_FROM,
    CLI_DF_COPY,
    CLI_DF_ADD,
    CLI_DF_ENV,
    CLI_DF_WORKDIR,
    CLI_DF_CMD,
    CLI_DF_ENTRYPOINT,
    CLI_DF_LABEL,
    CLI_DF_ARG,
    CLI_DF_RUN,
    CLI_DF_USER,
    CLI_DF_OTHER
};
struct cli_df_instr {
    enum cli_df_kind kind;
    int line;
    char keyword[16];
    char **args;              /* words (JSON form or split); flags (--from=…) kept in flags */
    char **flags;
    bool json_form;
    char *raw;                /* the text after the keyword */
};
struct cli_dockerfile {
    struct cli_df_instr *ins;
    size_t n;
    char path[1024];
};
int cli_dockerfile_parse(const char *text, const char *fname, struct cli_dockerfile *df,
                         struct nubo_err *err);
void cli_dockerfile_free(struct cli_dockerfile *df);

/* What a Dockerfile build yields: a staged root directory and the image defaults. */
struct cli_df_result {
    char **cmd;     /* ENTRYPOINT + CMD, NULL if neither */
    char **env;
    char **labels;
    char *user; /* USER (the image's config.User), NULL if none */
};
void cli_df_result_free(struct cli_df_result *r);
/* Line of the first instruction nubo cannot build itself (RUN, multi-stage, COPY --from,
 * FROM of something other than scratch/runtime), 0 if none; why is filled. */
int cli_dockerfile_needs_buildah(const struct cli_dockerfile *df, const char *runtime_name,
                                 char *why, size_t why_size);
/* Interpret the subset: stage files into root_dir. build_args "K=V". */
int cli_dockerfile_build(const struct cli_dockerfile *df, const char *context_dir,
                         const char *root_dir, char *const *build_args,
                         struct cli_df_result *res, struct nubo_err *err);
/* Hand the Dockerfile to buildah and export its rootfs into root_dir. */
int cli_dockerfile_buildah(const struct cli_dockerfile *df, const char *context_dir,
                           const char *root_dir, char *const *build_args, int line,
                           const char *why, struct cli_df_result *res, struct nubo_err *err);

/* ---- cpio.c: reproducible newc archives */
/* Archive the tree under root_dir (sorted, mtime 0, uid/gid 0) into out_path. */
int cli_cpio_from_dir(const char *root_dir, const char *out_path, struct nubo_err *err);
/* out = a ++ b (a may be NULL). */
int cli_concat_files(const char *a, const char *b, const char *out_path, struct nubo_err *err);

/* ---- build.c: runtime resolution, the build pipeline shared by build/deploy */
struct cli_build_opts {
    const char *dir;              /* context with the Kraftfile */
    const char *kraftfile;        /* -K */
    const char *output;           /* ORG/NAME:TAG, may be NULL (then org/name:latest) */
    const char *runtime;          /* --runtime overrides the Kraftfile's */
    const char *rootfs;           /* --rootfs overrides */
    char **build_args;
    const char *oci_dir;
    bool push;
};
struct cli_build_result {
    char ref[512];                /* repo:tag pushed/packed */
    char repo[256], tag[128];
    char digest[80];              /* index digest */
    uint64_t size_in_bytes;
    struct nubo_scale_to_zero s2z; /* from the image's labels (Kraftfile) */
    unsigned s2z_given;            /* CLI_S2Z_* bits the labels set */
};
int cli_build(struct cli_ctx *ctx, const struct cli_build_opts *o, struct cli_build_result *res,
              struct nubo_err *err);
/* build/deploy flags (-o NAME or -o json|table, -K, --runtime, --rootfs, --build-arg,
 * --oci-dir, --no-push): 1 consumed, 0 not ours, -1 bad value. */
int cli_build_opt(struct cli_ctx *ctx, struct cli_build_opts *o, int c, const char *arg,
                  struct nubo_err *err);
/* "pushed acme/app:latest (acme/app@sha256:…, 12 MB)" or the JSON object. */
void cli_print_build(struct cli_ctx *ctx, const struct cli_build_result *res, bool pushed);
/* "python:3.12" -> repo official/python, tag 3.12; nearest available tag chosen with a notice
 * when the exact one is missing. Fills repo/tag actually used. */
int cli_resolve_runtime(struct cli_ctx *ctx, const char *runtime, char *repo, size_t repo_size,
                        char *tag, size_t tag_size, struct nubo_err *err);
/* Push a layout with a progress bar on a tty. */
int cli_push_layout(struct cli_ctx *ctx, const char *layout, const char *repo, const char *tag,
                    char digest_out[80], struct nubo_err *err);
/* Wait (bounded) until the controller lists repo:tag at digest. */
int cli_wait_image_listed(struct cli_ctx *ctx, const char *ref, const char *digest,
                          int64_t timeout_ms, struct nubo_err *err);
/* Registry for a reference: its host if it names one, else ctx->reg. */
void cli_registry_for(struct cli_ctx *ctx, const struct nubo_image_ref *ref,
                      struct nubo_registry *out);
int cli_cache_dir(char *out, size_t size, struct nubo_err *err);
/* The index of argv's first word from `from` on that is neither a global flag nor its value
 * (argc when none): how a command finds its subcommand behind `--api URL` and the like. */
int cli_first_word(int argc, char **argv, int from);
/* Where pkg/build keep the layout for repo:tag unless --oci-dir says otherwise. */
int cli_default_layout(const char *repo, const char *tag, char *out, size_t size,
                       struct nubo_err *err);

/* ---- cmd_common.c: what the object subcommands share */
/* Parse only the global flags (and -h); positional args stay in argv[optind..]. */
int cli_simple_opts(struct cli_ctx *ctx, const char *cmd, int argc, char **argv, bool *help);
/* Shows what a get or list answered (decode with proto, render); -1 with err when the answer
 * does not decode. */
typedef int (*cli_show_fn)(struct cli_ctx *ctx, json_t *j, struct nubo_err *err);
/* `<cmd> list`: GET path, then data.<collection> as JSON (-o json) or through render. */
int cli_list(struct cli_ctx *ctx, const char *cmd, const char *path, const char *collection,
             cli_show_fn render);
/* `<cmd> get|rm WHO` for services and certificates: one reference, one item back. */
int cli_get_or_remove(struct cli_ctx *ctx, const char *cmd, const char *path,
                      const char *collection, bool get, const char *who, cli_show_fn show);
/* `<cmd> create`'s request: POST body (taken) to path, then the created item as JSON, its
 * name (-q) or through render. */
int cli_create_reply(struct cli_ctx *ctx, const char *cmd, const char *path,
                     const char *collection, json_t *body, cli_show_fn render);
/* `<cmd> [list]|get WHO|rm WHO` of a named collection (create is the caller's). */
struct cli_named {
    const char *cmd, *usage, *path, *collection, *noun;
    cli_show_fn show_list, show_one;
};
int cli_named_main(struct cli_ctx *ctx, const struct cli_named *n, int argc, char **argv);
/* The same once the options are parsed (argv[optind] is the subcommand). */
int cli_named_dispatch(struct cli_ctx *ctx, const struct cli_named *n, int argc, char **argv);

/* ---- subcommands */
int cmd_build(struct cli_ctx *ctx, int argc, char **argv);
int cmd_pkg(struct cli_ctx *ctx, int argc, char **argv);
int cmd_push(struct cli_ctx *ctx, int argc, char **argv);
int cmd_pull(struct cli_ctx *ctx, int argc, char **argv);
int cmd_run(struct cli_ctx *ctx, int argc, char **argv);
int cmd_deploy(struct cli_ctx *ctx, int argc, char **argv);
int cmd_images(struct cli_ctx *ctx, int argc, char **argv);
int cmd_users(struct cli_ctx *ctx, int argc, char **argv);
int cmd_tokens(struct cli_ctx *ctx, int argc, char **argv);
int cmd_instances(struct cli_ctx *ctx, int argc, char **argv);
int cmd_nodes(struct cli_ctx *ctx, int argc, char **argv);
int cmd_metros(struct cli_ctx *ctx, int argc, char **argv);
int cmd_services(struct cli_ctx *ctx, int argc, char **argv);
/* `services [flags] autoscale ...` (cmd_autoscale.c): the first word is "autoscale". */
int cmd_services_autoscale(struct cli_ctx *ctx, int argc, char **argv);
int cmd_certificates(struct cli_ctx *ctx, int argc, char **argv);
int cmd_volumes(struct cli_ctx *ctx, int argc, char **argv);
void cli_render_volumes(FILE *f, const struct nubo_volume *v, size_t n, int64_t now_us);
void cli_render_metrics(FILE *f, const struct nubo_instance_metrics *v, size_t n);
int cmd_login(struct cli_ctx *ctx, int argc, char **argv);

/* Shared by run and deploy: the instance flags and the create+wait+print flow. */
struct cli_run_opts {
    char image[512];
    char name[64];
    int64_t memory_mb;            /* 0 = platform default */
    int64_t vcpus;
    int64_t replicas;
    json_t *env;                  /* object */
    struct cli_port ports[16];
    int n_ports;
    char **args;                  /* after "--" */
    bool has_args;
    bool start;                   /* autostart */
    char restart[16];
    int64_t timeout_ms;           /* wait bound */
    struct nubo_volume_mount volumes[NUBO_VOLUME_MAX_MOUNTS]; /* -v name:/path[:ro] */
    size_t n_volumes;
    /* --scale-to-zero*: what the flags gave (CLI_S2Z_* bits in s2z_given) wins over the
     * Kraftfile's labels */
    struct nubo_scale_to_zero s2z;
    unsigned s2z_given;
};
#define CLI_S2Z_POLICY 0x1u
#define CLI_S2Z_COOLDOWN 0x2u
#define CLI_S2Z_STATEFUL 0x4u
enum {
    CLI_RUN_OPT_IMAGE = 0x2000,
    CLI_RUN_OPT_NO_START,
    CLI_RUN_OPT_RESTART,
    CLI_RUN_OPT_TIMEOUT,
    CLI_RUN_OPT_S2Z,
    CLI_RUN_OPT_S2Z_COOLDOWN,
    CLI_RUN_OPT_S2Z_STATEFUL,
};
/* The scale_to_zero the Kraftfile labels ask for ("K=V" strings,
 * cloud.unikraft.v1.instances/scale_to_zero.{policy,stateful,cooldown_time_ms}) into *out
 * (bits of what they set in *given); -1 with a one-line error for a bad value. */
int cli_s2z_from_labels(char **labels, struct nubo_scale_to_zero *out, unsigned *given,
                        struct nubo_err *err);
/* Flags over labels: the labels' settings (given_l) under the flags' (o->s2z_given). */
void cli_s2z_merge(struct cli_run_opts *o, const struct nubo_scale_to_zero *labels,
                   unsigned given_l);
#define CLI_RUN_SHORT "n:m:M:p:e:R:SV:v:"
#define CLI_RUN_LONGOPTS                                                                          \
    {"name", required_argument, NULL, 'n'}, {"memory", required_argument, NULL, 'M'},             \
        {"port", required_argument, NULL, 'p'}, {"env", required_argument, NULL, 'e'},            \
        {"replicas", required_argument, NULL, 'R'}, {"start", no_argument, NULL, 'S'},            \
        {"vcpus", required_argument, NULL, 'V'}, {"volume", required_argument, NULL, 'v'},        \
        {"no-start", no_argument, NULL, CLI_RUN_OPT_NO_START},                                    \
        {"restart", required_argument, NULL, CLI_RUN_OPT_RESTART},                                \
        {"timeout", required_argument, NULL, CLI_RUN_OPT_TIMEOUT},                                \
        {"scale-to-zero", required_argument, NULL, CLI_RUN_OPT_S2Z},                              \
        {"scale-to-zero-cooldown", required_argument, NULL, CLI_RUN_OPT_S2Z_COOLDOWN},            \
        {"scale-to-zero-stateful", no_argument, NULL, CLI_RUN_OPT_S2Z_STATEFUL}
void cli_run_opts_init(struct cli_run_opts *o);
void cli_run_opts_free(struct cli_run_opts *o);
/* Handle one run/instance flag; 1 = consumed, 0 = not ours, -1 = bad value. */
int cli_run_opt(struct cli_run_opts *o, int opt, const char *arg, struct nubo_err *err);
json_t *cli_run_request(struct cli_ctx *ctx, const struct cli_run_opts *o);
int cli_run_create(struct cli_ctx *ctx, const struct cli_run_opts *o, struct nubo_err *err);

#endif
