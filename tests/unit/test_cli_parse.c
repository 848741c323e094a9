/* Table-driven tests of the CLI's flag parsers: ports (with the platform's handler rules),
 * env, shell words, run options (sizes, replicas), Kraftfiles and the Dockerfile subset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static void test_ports(void **state)
{
    static const struct {
        const char *in;
        const char *want; /* "port:dest/h+h,..." of everything published; NULL = error */
    } cases[] = {
        {"443:8080/http+tls", "443:8080/http+tls"},
        {"443:8080", "443:8080/http+tls,80:443/http+redirect"},
        {"443", "443:443/http+tls,80:443/http+redirect"},
        {"80:8080/http", "80:8080/http"},
        {"80:443/http+redirect", "80:443/http+redirect"},
        {"8443:8080/tls", "8443:8080/tls"},
        {"5432:5432", "5432:5432/tls"},
        {"443:8080/tls+http", "443:8080/tls+http"},
        {"", NULL},
        {"443:", NULL},
        {":8080", NULL},
        {"0:8080", NULL},
        {"65536:80", NULL},
        {"443:8080/", NULL},
        {"443:8080/http", NULL},          /* 443 needs http+tls */
        {"80:8080/http+tls", NULL},       /* 80 must not have tls */
        {"8080:8080/http", NULL},         /* other ports: tls only */
        {"443:8080/http+tls+redirect", NULL}, /* redirect only on 80 */
        {"443:8080/http+gzip", NULL},
        {"443:8080/http++tls", NULL},
        {"443:8080/http+http", NULL},
        {"abc:80", NULL},
        {"443:8080:1", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cli_port ports[16];
        int n = 0;
        struct nubo_err err = {0};
        int rc = cli_parse_port(cases[i].in, ports, &n, 16, &err);
        if (!cases[i].want) {
            if (rc == 0)
                fail_msg("port '%s' parsed but must not", cases[i].in);
            assert_true(strlen(err.msg) > 0);
            assert_null(strchr(err.msg, '\n'));
            continue;
        }
        if (rc != 0)
            fail_msg("port '%s': %s", cases[i].in, err.msg);
        char got[256] = "";
        for (int k = 0; k < n; k++) {
            char one[64];
            int l = snprintf(one, sizeof(one), "%s%d:%d/", k ? "," : "", ports[k].port,
                             ports[k].destination_port);
            for (int h = 0; h < ports[k].n_handlers; h++)
                l += snprintf(one + l, sizeof(one) - (size_t)l, "%s%s", h ? "+" : "",
                              ports[k].handlers[h]);
            strcat(got, one);
        }
        assert_string_equal(got, cases[i].want);
    }
    /* Publishing 80 explicitly suppresses the implied redirect; the same port twice fails. */
    struct cli_port ports[16];
    int n = 0;
    assert_int_equal(cli_parse_port("80:8080/http", ports, &n, 16, NULL), 0);
    assert_int_equal(cli_parse_port("443:8080", ports, &n, 16, NULL), 0);
    assert_int_equal(n, 2);
    assert_int_equal(cli_parse_port("443:9090/http+tls", ports, &n, 16, NULL), -1);
    struct nubo_ingress_port pp[16];
    cli_ports_proto(ports, n, pp);
    json_t *j = nubo_svc_ports_encode(pp, (size_t)n);
    char *s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "[{\"port\":80,\"destination_port\":8080,\"handlers\":[\"http\"]},"
                           "{\"port\":443,\"destination_port\":8080,\"handlers\":[\"http\",\"tls\"]}]");
    free(s);
    json_decref(j);
}

static void test_env(void **state)
{
    json_t *o = json_object();
    assert_int_equal(cli_parse_env("A=1", o, NULL), 0);
    assert_int_equal(cli_parse_env("B=x=y", o, NULL), 0);
    assert_int_equal(cli_parse_env("EMPTY=", o, NULL), 0);
    setenv("NUBO_TEST_FROM_ENV", "v", 1);
    assert_int_equal(cli_parse_env("NUBO_TEST_FROM_ENV", o, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(o, "B")), "x=y");
    assert_string_equal(json_string_value(json_object_get(o, "EMPTY")), "");
    assert_string_equal(json_string_value(json_object_get(o, "NUBO_TEST_FROM_ENV")), "v");
    struct nubo_err err = {0};
    assert_int_equal(cli_parse_env("=1", o, &err), -1);
    assert_int_equal(cli_parse_env("A B=1", o, &err), -1);
    unsetenv("NUBO_NOT_SET_ANYWHERE");
    assert_int_equal(cli_parse_env("NUBO_NOT_SET_ANYWHERE", o, &err), -1);
    assert_non_null(strstr(err.msg, "-e NUBO_NOT_SET_ANYWHERE=VALUE"));
    json_decref(o);
}

static void test_shell_split(void **state)
{
    static const struct {
        const char *in;
        const char *want; /* words joined by '|'; NULL = error */
    } cases[] = {
        {"/usr/bin/python3 /src/server.py", "/usr/bin/python3|/src/server.py"},
        {"  a   b  ", "a|b"},
        {"echo 'a b' \"c d\"", "echo|a b|c d"},
        {"a\\ b c", "a b|c"},
        {"\"x\\\"y\"", "x\"y"},
        {"''", ""},
        {"", ""},
        {"'open", NULL},
        {"\"open", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct nubo_err err = {0};
        char **v = cli_shell_split(cases[i].in, &err);
        if (!cases[i].want) {
            assert_null(v);
            continue;
        }
        assert_non_null(v);
        char got[256] = "";
        for (size_t k = 0; v[k]; k++) {
            if (k)
                strcat(got, "|");
            strcat(got, v[k]);
        }
        assert_string_equal(got, cases[i].want);
        cli_strv_free(v);
    }
}

static void test_run_opts(void **state)
{
    static const struct {
        int opt;
        const char *arg;
        int64_t mb; /* for -m; -1 = must fail */
    } sizes[] = {
        {'m', "512", 512}, {'m', "512Mi", 512}, {'m', "512MiB", 512}, {'M', "512M", 512},
        {'M', "1Gi", 1024}, {'m', "0", -1}, {'m', "12x", -1}, {'m', "-1", -1}, {'m', "1.5Gi", -1},
    };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct cli_run_opts o;
        cli_run_opts_init(&o);
        struct nubo_err err = {0};
        int rc = cli_run_opt(&o, sizes[i].opt, sizes[i].arg, &err);
        if (sizes[i].mb < 0) {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(err.msg, "--memory"));
        } else {
            assert_int_equal(rc, 1);
            assert_int_equal(o.memory_mb, sizes[i].mb);
        }
        cli_run_opts_free(&o);
    }
    struct cli_run_opts o;
    cli_run_opts_init(&o);
    struct nubo_err err = {0};
    assert_int_equal(cli_run_opt(&o, 'R', "2", &err), 1);
    assert_int_equal(cli_run_opt(&o, 'R', "254", &err), -1);
    assert_int_equal(cli_run_opt(&o, 'n', "Bad_Name", &err), -1);
    assert_int_equal(cli_run_opt(&o, 'n', "web-1", &err), 1);
    assert_int_equal(cli_run_opt(&o, CLI_RUN_OPT_RESTART, "sometimes", &err), -1);
    assert_int_equal(cli_run_opt(&o, 'p', "443:8080", &err), 1);
    assert_int_equal(cli_run_opt(&o, 'e', "K=V", &err), 1);
    assert_int_equal(cli_run_opt(&o, 'z', "x", &err), 0);
    snprintf(o.image, sizeof(o.image), "acme/app:latest");
    o.memory_mb = 512;
    struct cli_ctx ctx;
    cli_ctx_init(&ctx);
    snprintf(ctx.metro, sizeof(ctx.metro), "fra");
    json_t *req = cli_run_request(&ctx, &o);
    char *s = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(
        s, "{\"autostart\":true,\"env\":{\"K\":\"V\"},\"image\":\"acme/app:latest\","
           "\"memory_mb\":512,\"metro\":\"fra\",\"name\":\"web-1\",\"replicas\":2,"
           "\"service_group\":{\"services\":[{\"destination_port\":8080,\"handlers\":[\"http\","
           "\"tls\"],\"port\":443},{\"destination_port\":443,\"handlers\":[\"http\","
           "\"redirect\"],\"port\":80}]},\"service_ports\":[8080]}");
    free(s);
    json_decref(req);
    cli_run_opts_free(&o);
}

/* Scale-to-zero: Kraftfile labels, flags over labels, what the create request carries. */
static void test_run_s2z(void **state)
{
    (void)state;
    char *labels[] = {"org.other=1", "cloud.unikraft.v1.instances/scale_to_zero.policy=on",
                      "cloud.unikraft.v1.instances/scale_to_zero.stateful=false",
                      "cloud.unikraft.v1.instances/scale_to_zero.cooldown_time_ms=1000", NULL};
    struct nubo_scale_to_zero z;
    unsigned given;
    struct nubo_err err = {0};
    assert_int_equal(cli_s2z_from_labels(labels, &z, &given, &err), 0);
    assert_int_equal(z.policy, NUBO_S2Z_ON);
    assert_int_equal(given, CLI_S2Z_POLICY | CLI_S2Z_STATEFUL | CLI_S2Z_COOLDOWN);
    char *bad[] = {"cloud.unikraft.v1.instances/scale_to_zero.policy=sometimes", NULL};
    assert_int_equal(cli_s2z_from_labels(bad, &z, &given, &err), -1);
    assert_null(strchr(err.msg, '\n'));
    /* a flag wins over the label; the label fills the rest */
    struct cli_run_opts o;
    cli_run_opts_init(&o);
    assert_int_equal(cli_run_opt(&o, CLI_RUN_OPT_S2Z_COOLDOWN, "2s", &err), 1);
    assert_int_equal(cli_run_opt(&o, CLI_RUN_OPT_S2Z, "sometimes", &err), -1);
    assert_int_equal(cli_s2z_from_labels(labels, &z, &given, &err), 0);
    cli_s2z_merge(&o, &z, given);
    assert_int_equal(o.s2z.policy, NUBO_S2Z_ON);
    assert_int_equal(o.s2z.cooldown_time_ms, 2000);
    snprintf(o.image, sizeof(o.image), "acme/app:latest");
    struct cli_ctx ctx;
    cli_ctx_init(&ctx);
    json_t *req = cli_run_request(&ctx, &o);
    json_t *sz = json_object_get(req, "scale_to_zero");
    assert_string_equal(json_string_value(json_object_get(sz, "policy")), "on");
    assert_int_equal(json_integer_value(json_object_get(sz, "cooldown_time_ms")), 2000);
    json_decref(req);
    cli_run_opts_free(&o);
    /* a cooldown alone means on */
    cli_run_opts_init(&o);
    assert_int_equal(cli_run_opt(&o, CLI_RUN_OPT_S2Z_COOLDOWN, "500ms", &err), 1);
    snprintf(o.image, sizeof(o.image), "acme/app:latest");
    req = cli_run_request(&ctx, &o);
    sz = json_object_get(req, "scale_to_zero");
    assert_string_equal(json_string_value(json_object_get(sz, "policy")), "on");
    json_decref(req);
    cli_run_opts_free(&o);
}

static void test_kraftfile(void **state)
{
    static const struct {
        const char *text;
        const char *runtime, *rootfs, *cmd, *env, *labels; /* runtime NULL = must fail */
        const char *errpart;
    } cases[] = {
        {"spec: v0.6\nruntime: python:3.12\nrootfs: ./Dockerfile\ncmd: [\"/usr/bin/python3\", \"/src/server.py\"]\n",
         "python:3.12", "./Dockerfile", "/usr/bin/python3|/src/server.py", "", "", NULL},
        {"specification: '0.5'\nname: hello\nruntime: base:latest\ncmd: /bin/app --port 8080\n",
         "base:latest", "", "/bin/app|--port|8080", "", "", NULL},
        {"spec: v0.7\nruntime: base\nrootfs:\n  source:\n    type: dockerfile\n    dockerfile: ./Dockerfile\n  format: cpio\n",
         "base", "./Dockerfile", "-", "", "", NULL},
        {"spec: v0.6\nruntime: base\nenv:\n  A: \"1\"\n  B: two\nlabels:\n  cloud.unikraft.v1.instances/scale_to_zero.policy: \"on\"\n",
         "base", "", "-", "A=1|B=two", "cloud.unikraft.v1.instances/scale_to_zero.policy=on", NULL},
        {"spec: v0.6\nruntime: base\nenv: [\"A=1\", \"B=2\"]\nrootfs: [./rootfs]\n",
         "base", "./rootfs", "-", "A=1|B=2", "", NULL},
        {"spec: v0.6\n", NULL, NULL, NULL, NULL, NULL, "no 'runtime:'"},
        {"spec: v0.6\nunikraft: stable\n", NULL, NULL, NULL, NULL, NULL, "needs kraft"},
        {"spec: v0.6\nruntime: base\nunikraft: stable\n", NULL, NULL, NULL, NULL, NULL, "exactly one"},
        {"spec: v0.4\nruntime: base\n", NULL, NULL, NULL, NULL, NULL, "not supported"},
        {"spec: v0.6\nspecification: v0.6\nruntime: base\n", NULL, NULL, NULL, NULL, NULL, "not both"},
        {"spec: v0.6\nruntime: [a, b]\n", NULL, NULL, NULL, NULL, NULL, "Kraftfile:2"},
        {"spec: v0.6\nruntime: base\nenv: [\"NOEQUALS\"]\n", NULL, NULL, NULL, NULL, NULL, "KEY=VALUE"},
        {"spec: v0.6\nruntime: base\nlabels:\n  \"bad key\": x\n", NULL, NULL, NULL, NULL, NULL, "label key"},
        {"spec: v0.6\nruntime: base\nrootfs:\n  source: x\n  format: erofs\n", NULL, NULL, NULL, NULL, NULL, "erofs"},
        {"spec: v0.6\nruntime: base\ncmd: {a: b}\n", NULL, NULL, NULL, NULL, NULL, "cmd"},
        {"spec: v0.6\n  runtime: : :\n\t- x", NULL, NULL, NULL, NULL, NULL, "YAML error"},
        {"- a\n- b\n", NULL, NULL, NULL, NULL, NULL, "mapping"},
        {"", NULL, NULL, NULL, NULL, NULL, "empty"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cli_kraftfile kf;
        struct nubo_err err = {0};
        int rc = cli_kraftfile_parse(cases[i].text, strlen(cases[i].text), "Kraftfile", &kf, &err);
        if (!cases[i].runtime) {
            if (rc == 0)
                fail_msg("case %zu parsed but must not", i);
            if (!strstr(err.msg, cases[i].errpart))
                fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].errpart);
            assert_null(strchr(err.msg, '\n'));
            continue;
        }
        if (rc != 0)
            fail_msg("case %zu: %s", i, err.msg);
        assert_string_equal(kf.runtime, cases[i].runtime);
        assert_string_equal(kf.rootfs, cases[i].rootfs);
        char buf[512] = "";
        if (!kf.cmd)
            strcpy(buf, "-");
        for (size_t k = 0; kf.cmd && kf.cmd[k]; k++)
            strcat(strcat(buf, k ? "|" : ""), kf.cmd[k]);
        assert_string_equal(buf, cases[i].cmd);
        buf[0] = '\0';
        for (size_t k = 0; kf.env && kf.env[k]; k++)
            strcat(strcat(buf, k ? "|" : ""), kf.env[k]);
        assert_string_equal(buf, cases[i].env);
        buf[0] = '\0';
        for (size_t k = 0; kf.labels && kf.labels[k]; k++)
            strcat(strcat(buf, k ? "|" : ""), kf.labels[k]);
        assert_string_equal(buf, cases[i].labels);
        cli_kraftfile_free(&kf);
    }
}

static char tmp[64];

static void write_at(const char *rel, const char *text)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", tmp, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_dockerfile_parse(void **state)
{
    static const struct {
        const char *text;
        int buildah_line; /* 0 = nubo builds it; -1 = parse error */
        const char *errpart;
    } cases[] = {
        {"FROM scratch\nCOPY ./server.py /src/server.py\n", 0, NULL},
        {"# comment\n\nFROM python:3.12\nCOPY a b\nCMD [\"x\"]\n", 0, NULL},
        {"ARG V=1\nFROM scratch\nENV A=$V\n", 0, NULL},
        {"FROM scratch\nRUN echo hi\n", 2, "RUN"},
        {"FROM scratch\nCOPY a \\\n  b\nRUN x \\\n  y\n", 4, "RUN"},
        {"FROM python:alpine\nCOPY a b\n", 1, "FROM python:alpine"},
        {"FROM scratch AS build\nCOPY a b\nFROM scratch\nCOPY --from=build /b /b\n", 3, "multi-stage"},
        {"FROM scratch\nCOPY --from=other /x /x\n", 2, "--from"},
        {"COPY a b\n", -1, "starts with FROM"},
        {"FROM scratch\nFROBNICATE x\n", -1, "Dockerfile:2: unknown instruction 'FROBNICATE'"},
        {"", -1, "starts with FROM"},
        {"FROM scratch\nCMD \"unterminated\n", -1, "Dockerfile:2"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cli_dockerfile df;
        struct nubo_err err = {0};
        int rc = cli_dockerfile_parse(cases[i].text, "Dockerfile", &df, &err);
        if (cases[i].buildah_line < 0) {
            if (rc == 0)
                fail_msg("case %zu parsed but must not", i);
            if (!strstr(err.msg, cases[i].errpart))
                fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].errpart);
            continue;
        }
        if (rc != 0)
            fail_msg("case %zu: %s", i, err.msg);
        char why[256] = "";
        int line = cli_dockerfile_needs_buildah(&df, "python:3.12", why, sizeof(why));
        assert_int_equal(line, cases[i].buildah_line);
        if (line)
            assert_non_null(strstr(why, cases[i].errpart));
        cli_dockerfile_free(&df);
    }
}

/* Build a Dockerfile of the subset into a root and check the staged files and defaults. */
static int build_df(const char *text, struct cli_df_result *res, struct nubo_err *err)
{
    struct cli_dockerfile df;
    if (cli_dockerfile_parse(text, "Dockerfile", &df, err) < 0)
        return -1;
    char root[128], cmd[300];
    snprintf(root, sizeof(root), "%s/root", tmp);
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s", root, root);
    assert_int_equal(system(cmd), 0);
    char ctxdir[128];
    snprintf(ctxdir, sizeof(ctxdir), "%s/ctx", tmp);
    char *const args[] = {"GREETING=hej", NULL};
    int rc = cli_dockerfile_build(&df, ctxdir, root, args, res, err);
    cli_dockerfile_free(&df);
    return rc;
}

static bool root_has(const char *rel, const char *content)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/root/%s", tmp, rel);
    FILE *f = fopen(p, "r");
    if (!f)
        return false;
    char buf[256] = "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return content == NULL || strcmp(buf, content) == 0;
}

static void test_dockerfile_build(void **state)
{
    snprintf(tmp, sizeof(tmp), "/tmp/test-cli.XXXXXX");
    assert_non_null(mkdtemp(tmp));
    char p[256];
    snprintf(p, sizeof(p), "%s/ctx/lib/sub", tmp);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s", p);
    assert_int_equal(system(cmd), 0);
    write_at("ctx/server.py", "print('hi')\n");
    write_at("ctx/lib/a.py", "a\n");
    write_at("ctx/lib/sub/b.py", "b\n");
    write_at("ctx/x.txt", "x\n");
    write_at("ctx/y.txt", "y\n");
    write_at("secret", "outside\n");
    snprintf(cmd, sizeof(cmd), "ln -s ../secret %s/ctx/link-out", tmp);
    assert_int_equal(system(cmd), 0);

    struct cli_df_result res;
    struct nubo_err err = {0};
    int rc = build_df("FROM scratch\n"
                      "ARG GREETING=hello\n"
                      "ENV APP_HOME=/app MSG=$GREETING\n"
                      "WORKDIR $APP_HOME\n"
                      "COPY ./server.py /src/server.py\n"
                      "COPY lib ./lib/\n"
                      "COPY *.txt /data/\n"
                      "COPY --chmod=0700 server.py run.py\n"
                      "LABEL org.example.team=\"web team\"\n"
                      "ENTRYPOINT [\"/usr/bin/python3\"]\n"
                      "CMD [\"/src/server.py\"]\n"
                      "USER $GREETING:nogroup\n"
                      "EXPOSE 8080\n",
                      &res, &err);
    if (rc < 0)
        fail_msg("%s", err.msg);
    assert_true(root_has("src/server.py", "print('hi')\n"));
    assert_true(root_has("app/lib/a.py", "a\n"));
    assert_true(root_has("app/lib/sub/b.py", "b\n"));
    assert_true(root_has("data/x.txt", "x\n"));
    assert_true(root_has("data/y.txt", "y\n"));
    assert_true(root_has("app/run.py", NULL));
    struct stat st;
    snprintf(p, sizeof(p), "%s/root/app/run.py", tmp);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_string_equal(res.cmd[0], "/usr/bin/python3");
    assert_string_equal(res.cmd[1], "/src/server.py");
    assert_null(res.cmd[2]);
    assert_string_equal(res.env[0], "APP_HOME=/app");
    assert_string_equal(res.env[1], "MSG=hej"); /* --build-arg beats the ARG default */
    assert_string_equal(res.labels[0], "org.example.team=web team");
    assert_string_equal(res.user, "hej:nogroup"); /* becomes config.User */
    cli_df_result_free(&res);

    /* Bad input: one line naming the Dockerfile line. */
    static const struct {
        const char *text;
        const char *errpart;
    } bad[] = {
        {"FROM scratch\nCOPY ./missing.py /src/\n",
         "Dockerfile:2: COPY ./missing.py: no such file in the build context"},
        {"FROM scratch\nCOPY ../secret /s\n",
         "Dockerfile:2: COPY ../secret: the source is outside the build context"},
        {"FROM scratch\nCOPY link-out /s\n", "outside the build context"},
        {"FROM scratch\nCOPY /etc/passwd /p\n", "no such file in the build context"},
        {"FROM scratch\nADD https://example.com/x /x\n", "remote sources are not supported"},
        {"FROM scratch\nCOPY server.py\n", "needs a source and a destination"},
        {"FROM scratch\nCOPY --chmod=999 server.py /x\n", "--chmod"},
        {"FROM scratch\nRUN make\n", "Dockerfile:2: RUN needs buildah"},
        {"FROM scratch\nUSER \"a b\"\n", "Dockerfile:2: USER takes one name[:group]"},
        {"FROM scratch\nUSER a:b:c\n", "Dockerfile:2: USER takes one"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        nubo_err_clear(&err);
        rc = build_df(bad[i].text, &res, &err);
        if (rc == 0)
            fail_msg("bad case %zu built", i);
        if (!strstr(err.msg, bad[i].errpart))
            fail_msg("bad case %zu: '%s' lacks '%s'", i, err.msg, bad[i].errpart);
        assert_null(strchr(err.msg, '\n'));
    }
    /* A COPY destination with .. stays inside the root. */
    rc = build_df("FROM scratch\nCOPY x.txt /../../../../escaped.txt\n", &res, &err);
    assert_int_equal(rc, 0);
    assert_true(root_has("escaped.txt", "x\n"));
    cli_df_result_free(&res);

    /* The reproducible cpio of the staged root: same bytes twice, even after a touch. */
    char root[128], c1[128], c2[128];
    snprintf(root, sizeof(root), "%s/root", tmp);
    snprintf(c1, sizeof(c1), "%s/1.cpio", tmp);
    snprintf(c2, sizeof(c2), "%s/2.cpio", tmp);
    assert_int_equal(cli_cpio_from_dir(root, c1, &err), 0);
    snprintf(cmd, sizeof(cmd), "touch %s/escaped.txt", root);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(cli_cpio_from_dir(root, c2, &err), 0);
    snprintf(cmd, sizeof(cmd), "cmp -s %s %s", c1, c2);
    assert_int_equal(system(cmd), 0);
    /* .dockerignore: excluded paths stay out of COPY ., "!" brings one back. */
    write_at("ctx/.dockerignore", "# comment\n*.txt\n!y.txt\n./lib/sub/\n**/*.pyc\n");
    write_at("ctx/lib/junk.pyc", "junk\n");
    rc = build_df("FROM scratch\nCOPY . /all/\n", &res, &err);
    if (rc < 0)
        fail_msg("%s", err.msg);
    assert_false(root_has("all/x.txt", NULL));
    assert_true(root_has("all/y.txt", "y\n"));
    assert_true(root_has("all/lib/a.py", "a\n"));
    assert_false(root_has("all/lib/sub/b.py", NULL));
    assert_false(root_has("all/lib/junk.pyc", NULL));
    assert_true(root_has("all/server.py", NULL));
    cli_df_result_free(&res);
    rc = build_df("FROM scratch\nCOPY x.txt /x.txt\n", &res, &err);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err.msg, "Dockerfile:2: COPY x.txt: excluded by .dockerignore"));
    snprintf(p, sizeof(p), "%s/ctx/.dockerignore", tmp);
    unlink(p);

    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
    assert_int_equal(system(cmd), 0);
}

/* Profile written by login, read back; env beats the profile; the token names the org. */
static void test_config(void **state)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/tmp/test-cli-cfg.XXXXXX");
    assert_non_null(mkdtemp(dir));
    setenv("XDG_CONFIG_HOME", dir, 1);
    unsetenv("NUBO_CONFIG");
    unsetenv("NUBO_PROFILE");
    unsetenv("NUBO_API");
    unsetenv("NUBO_TOKEN");
    unsetenv("NUBO_REGISTRY");
    unsetenv("NUBO_METRO");
    unsetenv("NUBO_ORG");
    char path[256];
    assert_true(cli_config_path(path, sizeof(path)) >= 0);
    char want[128];
    snprintf(want, sizeof(want), "%s/nubo/config", dir);
    assert_string_equal(path, want);
    struct nubo_err err = {0};
    /* base64("alice:secret") */
    assert_int_equal(cli_config_write(path, "http://10.0.0.1:7060", "YWxpY2U6c2VjcmV0",
                                      "http://127.0.0.1:5000", "fra", "", &err), 0);
    struct cli_ctx ctx;
    cli_ctx_init(&ctx);
    assert_int_equal(cli_config_load(&ctx, &err), 0);
    assert_string_equal(ctx.api_url, "http://10.0.0.1:7060");
    assert_string_equal(ctx.token, "YWxpY2U6c2VjcmV0");
    assert_string_equal(ctx.reg.url, "http://127.0.0.1:5000");
    assert_string_equal(ctx.metro, "fra");
    cli_org_from_token(&ctx);
    assert_string_equal(ctx.org, "alice");
    setenv("NUBO_API", "http://127.0.0.1:9999", 1);
    setenv("NUBO_METRO", "was", 1);
    cli_ctx_init(&ctx);
    assert_int_equal(cli_config_load(&ctx, &err), 0);
    assert_string_equal(ctx.api_url, "http://127.0.0.1:9999");
    assert_string_equal(ctx.metro, "was");
    /* Flags beat both; a bad -o is refused. */
    assert_int_equal(cli_global_opt(&ctx, 'o', "json", &err), 1);
    assert_int_equal(ctx.out, CLI_OUT_JSON);
    assert_int_equal(cli_global_opt(&ctx, 'o', "yaml", &err), -1);
    assert_int_equal(cli_global_opt(&ctx, CLI_GLOBAL_OPTS_BASE, "ftp://x", &err), -1);
    /* A broken profile is one line naming the file and the line. */
    FILE *f = fopen(path, "w");
    fputs("[default]\napi = http://x\nthis is not ini\n", f);
    fclose(f);
    cli_ctx_init(&ctx);
    assert_int_equal(cli_config_load(&ctx, &err), -1);
    assert_non_null(strstr(err.msg, ":3: syntax error: fix it or run 'nubo login' again"));
    unsetenv("NUBO_API");
    unsetenv("NUBO_METRO");
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ports),          cmocka_unit_test(test_env),
        cmocka_unit_test(test_shell_split),    cmocka_unit_test(test_run_opts),
        cmocka_unit_test(test_run_s2z),
        cmocka_unit_test(test_kraftfile),      cmocka_unit_test(test_dockerfile_parse),
        cmocka_unit_test(test_dockerfile_build), cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
