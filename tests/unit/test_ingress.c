/* nubo-ingress: plan, HAProxy config text (golden), runtime API commands and the INI file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ingress_core.h"
#include "pjson.h"

#define SVC "11111111-2222-3333-4444-555555555555"
#define I1 "aaaaaaaa-0000-0000-0000-000000000001"
#define I2 "aaaaaaaa-0000-0000-0000-000000000002"
#define I3 "aaaaaaaa-0000-0000-0000-000000000003"
#define I4 "aaaaaaaa-0000-0000-0000-000000000004"

static const char *backend_json(const char *inst, const char *node, const char *ip,
                                const char *state, char *buf, size_t n)
{
    snprintf(buf, n,
             "{\"instance\":\"%s\",\"name\":\"app-%c\",\"node\":\"%s\",\"ip\":\"%s\","
             "\"state\":\"%s\"}",
             inst, inst[35], node, ip, state);
    return buf;
}

/* A watch reply: the web service with the given backends (JSON array text), its domains, and
 * a TCP+TLS service on 5432. */
static void reply(struct nubo_ingress_watch_resp *w, long long version, const char *backends,
                  const char *domains)
{
    char *j = NULL;
    int n = asprintf(
        &j,
        "{\"version\":%lld,\"metro\":\"fra\",\"domain_suffix\":\"fra.nubo.local\","
        "\"services\":[{\"uuid\":\"" SVC "\",\"name\":\"young-night-5fpf0jj8\","
        "\"soft_limit\":1,\"hard_limit\":100,"
        "\"ports\":[{\"port\":443,\"destination_port\":8080,\"handlers\":[\"http\",\"tls\"]},"
        "{\"port\":80,\"destination_port\":443,\"handlers\":[\"http\",\"redirect\"]}],"
        "\"domains\":%s,\"backends\":%s},"
        "{\"uuid\":\"99999999-2222-3333-4444-555555555555\",\"name\":\"db-proxy\","
        "\"soft_limit\":1,\"hard_limit\":65535,"
        "\"ports\":[{\"port\":5432,\"destination_port\":5432,\"handlers\":[\"tls\"]}],"
        "\"domains\":[{\"fqdn\":\"db-proxy.fra.nubo.local\",\"certificate\":null}],"
        "\"backends\":[]}],\"certificates\":[]}",
        version, domains, backends);
    assert_true(n > 0);
    json_t *root = NULL;
    struct nubo_err err = {0};
    assert_int_equal(pj_parse(j, strlen(j), NUBO_INGRESS_MAX_BODY, &root, &err), 0);
    int rc = nubo_ingress_watch_resp_decode(root, w, &err);
    if (rc < 0)
        fprintf(stderr, "decode: %s\n", err.msg);
    assert_int_equal(rc, 0);
    json_decref(root);
    free(j);
}

#define DOM1 "[{\"fqdn\":\"young-night-5fpf0jj8.fra.nubo.local\",\"certificate\":null}]"
#define DOM2                                                                                   \
    "[{\"fqdn\":\"young-night-5fpf0jj8.fra.nubo.local\",\"certificate\":null},"              \
    "{\"fqdn\":\"WWW.Example.com\",\"certificate\":null}]"

static void config(struct ing_config *c)
{
    ing_config_defaults(c);
    snprintf(c->metro, sizeof(c->metro), "fra");
    snprintf(c->runtime_dir, sizeof(c->runtime_dir), "/run/ingt");
    c->http_port = 18080;
    c->https_port = 18443;
    c->nodes = calloc(2, sizeof(*c->nodes));
    c->n_nodes = 2;
    snprintf(c->nodes[0].node, sizeof(c->nodes[0].node), "fra-1");
    snprintf(c->nodes[0].netns, sizeof(c->nodes[0].netns), "nubo-dc-fra-1");
    snprintf(c->nodes[1].node, sizeof(c->nodes[1].node), "fra-2"); /* direct */
}

static const char golden_config[] =
    "# nubo-ingress, metro fra: generated on every change, do not edit\n"
    "global\n"
    "    master-worker\n"
    "    stats socket /run/ingt/runtime.sock mode 600 level admin expose-fd listeners\n"
    "    stats timeout 10s\n"
    "    hard-stop-after 60s\n"
    "    ssl-default-bind-options ssl-min-ver TLSv1.2\n"
    "\n"
    "defaults\n"
    "    timeout connect 5s\n"
    "    timeout client 60s\n"
    "    timeout server 60s\n"
    "    timeout http-request 10s\n"
    "    timeout http-keep-alive 10s\n"
    "    timeout queue 1\n"
    "    retries 3\n"
    "    option redispatch 1\n"
    "\n"
    "frontend fe_80\n"
    "    mode http\n"
    "    bind 127.0.0.1:18080\n"
    "    use_backend %[req.hdr(host),field(1,:),lower,map(/run/ingt/maps/fe_80.map,nubo_no_route)]\n"
    "\n"
    "frontend fe_443\n"
    "    mode http\n"
    "    bind 127.0.0.1:18443 ssl crt-list /run/ingt/crt-list alpn h2,http/1.1\n"
    "    tcp-request session track-sc2 ssl_fc_sni,lower,map(/run/ingt/maps/fe_443.map) table nubo_conns\n"
    "    use_backend %[req.hdr(host),field(1,:),lower,map(/run/ingt/maps/fe_443.map,nubo_no_route)]\n"
    "\n"
    "frontend fe_5432\n"
    "    mode tcp\n"
    "    bind 127.0.0.1:5432 ssl crt-list /run/ingt/crt-list\n"
    "    option contstats\n"
    "    use_backend %[ssl_fc_sni,lower,map(/run/ingt/maps/fe_5432.map,nubo_no_route_tcp)]\n"
    "\n"
    "backend nubo_no_route\n"
    "    mode http\n"
    "    http-request return status 503 content-type text/plain string \"no service for this host\"\n"
    "\n"
    "backend nubo_conns\n"
    "    stick-table type string len 96 size 100k expire 10m store conn_cur\n\n"
    "backend nubo_no_route_tcp\n"
    "    mode tcp\n"
    "    tcp-request content reject\n"
    "\n"
    "backend nubo_redirect\n"
    "    mode http\n"
    "    http-request redirect location https://%[req.hdr(host),field(1,:)]:18443%[capture.req.uri] code 301\n"
    "\n"
    "# service young-night-5fpf0jj8 (" SVC "): public port 443 -> 8080; soft_limit 1, hard_limit 100\n"
    "backend be_" SVC "_443\n"
    "    mode http\n"
    "    balance roundrobin\n"
    "    retry-on conn-failure empty-response\n"
    "    server fra-1-1 10.64.0.2:8080 namespace nubo-dc-fra-1 maxconn 100\n"
    "    server fra-1-2 0.0.0.0:8080 namespace nubo-dc-fra-1 maxconn 100 disabled\n"
    "    server fra-2-1 10.64.1.2:8080 maxconn 100\n"
    "    server fra-2-2 0.0.0.0:8080 maxconn 100 disabled\n"
    "    server nubo-activator unix@/run/ingt/act/fb5c0f999bb6e853.sock backup\n"
    "\n"
    /* the current worker's way in for a request the activator held (activator.c) */
    "frontend be_" SVC "_443_in\n"
    "    mode http\n"
    "    bind unix@/run/ingt/act/fb5c0f999bb6e853.in.sock\n"
    "    default_backend be_" SVC "_443\n"
    "\n";

static void check_text(const char *what, const char *got, const char *want)
{
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "--- %s: got\n%s--- want\n%s---\n", what, got, want);
        fail();
    }
}

static void two_backends(char *buf, size_t n)
{
    char a[256], b[256];
    snprintf(buf, n, "[%s,%s]", backend_json(I1, "fra-1", "10.64.0.2", "running", a, sizeof(a)),
             backend_json(I2, "fra-2", "10.64.1.2", "running", b, sizeof(b)));
}

static void test_render_golden(void **state)
{
    (void)state;
    struct ing_config c;
    config(&c);
    struct nubo_ingress_watch_resp w;
    char be[1024];
    two_backends(be, sizeof(be));
    reply(&w, 7, be, DOM1);
    struct ing_plan p;
    struct nubo_err err = {0};
    assert_int_equal(ing_plan_build(&c, &w, NULL, &p, &err), 0);
    char *text = ing_render_config(&c, &p, false);
    /* The 5432 backend (no instances) is the last block; compare everything before it. */
    char *db = strstr(text, "# service db-proxy");
    assert_non_null(db);
    /* a TCP backend keeps a silent connection up to its tunnel timeout, and its re-entry
     * frontend counts bytes while a session lasts (activator.c) */
    const char *tcp_be = "    mode tcp\n    balance roundrobin\n    timeout tunnel 1h\n";
    assert_non_null(strstr(db, tcp_be));
    assert_non_null(strstr(db, "_5432_in\n    mode tcp\n    option contstats\n"));
    *db = 0;
    check_text("config", text, golden_config);
    free(text);
    char *m = ing_render_map(&p, 80);
    check_text("map 80", m,
               "# nubo-ingress: domain -> backend for public port 80\n"
               "young-night-5fpf0jj8.fra.nubo.local nubo_redirect\n");
    free(m);
    m = ing_render_map(&p, 443);
    check_text("map 443", m,
               "# nubo-ingress: domain -> backend for public port 443\n"
               "young-night-5fpf0jj8.fra.nubo.local be_" SVC "_443\n");
    free(m);
    m = ing_render_crt_list(&c, &p);
    check_text("crt-list", m, "/run/ingt/certs/metro.pem\n");
    free(m);
    ing_plan_free(&p);
    nubo_ingress_watch_resp_free(&w);
    ing_config_free(&c);
}

/* Instances come and go within the slots: same shape, runtime commands only. */
static void test_runtime_changes(void **state)
{
    (void)state;
    struct ing_config c;
    config(&c);
    struct nubo_err err = {0};
    struct nubo_ingress_watch_resp w1, w2, w3;
    char be[2048], a[256], b[256], d[256];
    two_backends(be, sizeof(be));
    reply(&w1, 1, be, DOM1);
    /* I1 drains, I2 is gone, I3 joins on fra-2 (slot 1 is free again: I2 left it). */
    snprintf(be, sizeof(be), "[%s,%s]",
             backend_json(I1, "fra-1", "10.64.0.2", "draining", a, sizeof(a)),
             backend_json(I3, "fra-2", "10.64.1.3", "running", b, sizeof(b)));
    reply(&w2, 2, be, DOM2);
    struct ing_plan p1, p2, p3;
    assert_int_equal(ing_plan_build(&c, &w1, NULL, &p1, &err), 0);
    assert_int_equal(ing_plan_build(&c, &w2, &p1, &p2, &err), 0);
    char *s1 = ing_render_config(&c, &p1, true), *s2 = ing_render_config(&c, &p2, true);
    check_text("shape", s2, s1);
    struct ing_cmds cmds;
    assert_int_equal(ing_runtime_cmds(&c, &p1, &p2, &cmds, &err), 0);
    static const char *const want[] = {
        "set server be_" SVC "_443/fra-1-1 state drain",
        "set server be_" SVC "_443/fra-2-1 addr 10.64.1.3 port 8080",
        "set server be_" SVC "_443/fra-2-1 state ready",
        "add map /run/ingt/maps/fe_80.map www.example.com nubo_redirect",
        "add map /run/ingt/maps/fe_443.map www.example.com be_" SVC "_443",
    };
    assert_int_equal(cmds.n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < cmds.n; i++)
        assert_string_equal(cmds.v[i], want[i]);
    ing_cmds_free(&cmds);
    /* Applying the same reply again changes nothing. */
    struct ing_plan p2b;
    assert_int_equal(ing_plan_build(&c, &w2, &p2, &p2b, &err), 0);
    assert_int_equal(ing_runtime_cmds(&c, &p2, &p2b, &cmds, &err), 0);
    assert_int_equal(cmds.n, 0);
    ing_plan_free(&p2b);
    /* Three instances on fra-2: more than its 2 slots, the shape grows (a reload). */
    char e[256];
    snprintf(be, sizeof(be), "[%s,%s,%s]",
             backend_json(I3, "fra-2", "10.64.1.3", "running", a, sizeof(a)),
             backend_json(I2, "fra-2", "10.64.1.2", "running", b, sizeof(b)),
             backend_json(I4, "fra-2", "10.64.1.4", "running", d, sizeof(d)));
    (void)e;
    reply(&w3, 3, be, DOM1);
    assert_int_equal(ing_plan_build(&c, &w3, &p2, &p3, &err), 0);
    char *s3 = ing_render_config(&c, &p3, true);
    assert_string_not_equal(s3, s2);
    const struct ing_backend *b3 = ing_plan_backend(&p3, "be_" SVC "_443");
    assert_non_null(b3);
    assert_int_equal(b3->n_nodes, 2);
    assert_int_equal(b3->nodes[1].n_slots, 4);
    /* I3 kept its slot; fra-1's slots stay (emptied) so the shape does not shrink. */
    assert_string_equal(b3->nodes[1].slots[0].instance, I3);
    assert_string_equal(b3->nodes[0].node, "fra-1");
    assert_string_equal(b3->nodes[0].slots[0].instance, "");
    free(s1);
    free(s2);
    free(s3);
    ing_plan_free(&p1);
    ing_plan_free(&p2);
    ing_plan_free(&p3);
    nubo_ingress_watch_resp_free(&w1);
    nubo_ingress_watch_resp_free(&w2);
    nubo_ingress_watch_resp_free(&w3);
    ing_config_free(&c);
}

/* Deleting the service removes its backend (shape change) and its domains. */
static void test_service_gone(void **state)
{
    (void)state;
    struct ing_config c;
    config(&c);
    struct nubo_err err = {0};
    struct nubo_ingress_watch_resp w1, w2;
    char be[1024];
    two_backends(be, sizeof(be));
    reply(&w1, 1, be, DOM1);
    memset(&w2, 0, sizeof(w2));
    w2.version = 2;
    struct ing_plan p1, p2;
    assert_int_equal(ing_plan_build(&c, &w1, NULL, &p1, &err), 0);
    assert_int_equal(ing_plan_build(&c, &w2, &p1, &p2, &err), 0);
    assert_int_equal(p2.n_backends, 0);
    assert_int_equal(p2.n_maps, 0);
    assert_int_equal(p2.n_frontends, 2); /* 80 and 443 always listen */
    struct ing_cmds cmds;
    assert_int_equal(ing_runtime_cmds(&c, &p1, &p2, &cmds, &err), 0);
    assert_int_equal(cmds.n, 3);
    assert_string_equal(cmds.v[0], "del map /run/ingt/maps/fe_80.map young-night-5fpf0jj8.fra.nubo.local");
    ing_cmds_free(&cmds);
    ing_plan_free(&p1);
    ing_plan_free(&p2);
    nubo_ingress_watch_resp_free(&w1);
    ing_config_free(&c);
}

/* An instance on a node the INI does not list gets no slot (and no crash). */
static void test_unknown_node(void **state)
{
    (void)state;
    struct ing_config c;
    config(&c);
    struct nubo_err err = {0};
    struct nubo_ingress_watch_resp w;
    char be[512], a[256];
    snprintf(be, sizeof(be), "[%s]", backend_json(I1, "fra-9", "10.64.9.2", "running", a, sizeof(a)));
    reply(&w, 1, be, DOM1);
    struct ing_plan p;
    assert_int_equal(ing_plan_build(&c, &w, NULL, &p, &err), 0);
    const struct ing_backend *b = ing_plan_backend(&p, "be_" SVC "_443");
    assert_non_null(b);
    assert_int_equal(b->n_nodes, 2); /* the configured nodes' (empty) slots */
    for (size_t i = 0; i < b->n_nodes; i++)
        for (size_t k = 0; k < b->nodes[i].n_slots; k++)
            assert_string_equal(b->nodes[i].slots[k].instance, "");
    ing_plan_free(&p);
    nubo_ingress_watch_resp_free(&w);
    ing_config_free(&c);
}

/* A group's first instances join at runtime: every configured node has slots from the start. */
static void test_first_instance_no_reload(void **state)
{
    (void)state;
    struct ing_config c;
    config(&c);
    struct nubo_err err = {0};
    struct nubo_ingress_watch_resp w1, w2;
    char be[1024];
    reply(&w1, 1, "[]", DOM1);
    two_backends(be, sizeof(be));
    reply(&w2, 2, be, DOM1);
    struct ing_plan p1, p2;
    assert_int_equal(ing_plan_build(&c, &w1, NULL, &p1, &err), 0);
    assert_int_equal(ing_plan_build(&c, &w2, &p1, &p2, &err), 0);
    char *s1 = ing_render_config(&c, &p1, true), *s2 = ing_render_config(&c, &p2, true);
    check_text("shape", s2, s1);
    struct ing_cmds cmds;
    assert_int_equal(ing_runtime_cmds(&c, &p1, &p2, &cmds, &err), 0);
    assert_int_equal(cmds.n, 4); /* addr + ready for each of the two */
    ing_cmds_free(&cmds);
    free(s1);
    free(s2);
    ing_plan_free(&p1);
    ing_plan_free(&p2);
    nubo_ingress_watch_resp_free(&w1);
    nubo_ingress_watch_resp_free(&w2);
    ing_config_free(&c);
}

/* Scale-to-zero: a running instance going to standby is a runtime `maint` (its slot kept, no
 * reload), the plan counts standby and starting instances, and `show stat` rows are read per
 * server. */
static void test_standby(void **state)
{
    (void)state;
    struct ing_config c;
    config(&c);
    struct nubo_err err = {0};
    struct nubo_ingress_watch_resp w1, w2;
    char a[256], b[256], be[600];
    snprintf(be, sizeof(be), "[%s]", backend_json(I1, "fra-1", "10.64.0.2", "running", a, sizeof(a)));
    reply(&w1, 1, be, DOM1);
    snprintf(be, sizeof(be), "[%s,%s]", backend_json(I1, "fra-1", "10.64.0.2", "standby", a, sizeof(a)),
             backend_json(I2, "fra-2", "10.64.1.2", "starting", b, sizeof(b)));
    reply(&w2, 2, be, DOM1);
    struct ing_plan p1, p2;
    assert_int_equal(ing_plan_build(&c, &w1, NULL, &p1, &err), 0);
    assert_int_equal(ing_plan_build(&c, &w2, &p1, &p2, &err), 0);
    const struct ing_backend *web = ing_plan_backend(&p2, "be_" SVC "_443");
    assert_non_null(web);
    assert_int_equal(web->n_standby, 1);
    assert_int_equal(web->n_starting, 1);
    char *s1 = ing_render_config(&c, &p1, true), *s2 = ing_render_config(&c, &p2, true);
    check_text("shape", s2, s1);
    struct ing_cmds cmds;
    assert_int_equal(ing_runtime_cmds(&c, &p1, &p2, &cmds, &err), 0);
    assert_int_equal(cmds.n, 1);
    assert_string_equal(cmds.v[0], "set server be_" SVC "_443/fra-1-1 state maint");
    ing_cmds_free(&cmds);
    free(s1);
    free(s2);
    ing_plan_free(&p1);
    ing_plan_free(&p2);
    nubo_ingress_watch_resp_free(&w1);
    nubo_ingress_watch_resp_free(&w2);

    /* draining for standby: counted, so that a request then is held and asks the wake rather
     * than getting a 503 (activator.c) */
    snprintf(be, sizeof(be), "[%s]", backend_json(I1, "fra-1", "10.64.0.2", "draining", a, sizeof(a)));
    reply(&w1, 3, be, DOM1);
    assert_int_equal(ing_plan_build(&c, &w1, NULL, &p1, &err), 0);
    web = ing_plan_backend(&p1, "be_" SVC "_443");
    assert_non_null(web);
    assert_int_equal(web->n_draining, 1);
    assert_int_equal(web->n_standby + web->n_starting, 0);
    ing_plan_free(&p1);
    nubo_ingress_watch_resp_free(&w1);
    ing_config_free(&c);

    const char *csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq\n"
                      "be_x,fra-1-1,0,0,2,5,,17,1000,2000,0\n"
                      "be_x,fra-1-2,0,0,0,0,,0,0,0,0\n"
                      "be_y,fra-1-1,0,0,1,1,,3,10,20,0\n";
    int64_t cur = 0;
    uint64_t sig = 0;
    assert_int_equal(ing_stat_instance(csv, "be_x", "fra-1-1", &cur, &sig), 1);
    assert_int_equal(ing_stat_instance(csv, "be_y", "fra-1-1", &cur, &sig), 1);
    assert_int_equal(cur, 3);
    assert_int_equal(sig, 17 + 1000 + 2000 + 3 + 10 + 20);
    assert_int_equal(ing_stat_instance(csv, "be_x", "fra-2-1", &cur, &sig), 0);
    /* `show table nubo_conns`: client connections per backend, exact key only */
    const char *tbl = "# table: nubo_conns, type: string, size:102400, used:2\n"
                      "0x55c1: key=be_x_443 use=2 exp=598472 conn_cur=2\n"
                      "0x55c2: key=be_x use=1 exp=598472 conn_cur=1\n";
    assert_int_equal(ing_table_conns(tbl, "be_x"), 1);
    assert_int_equal(ing_table_conns(tbl, "be_x_443"), 2);
    assert_int_equal(ing_table_conns(tbl, "be_y"), 0);

    struct ing_srv_stat st;
    const char *csv2 = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq\n"
                       "be_x,fra-1-1,4,9,2,5,,17,1000,2000,0\n";
    assert_int_equal(ing_stat_server(csv2, "be_x", "fra-1-1", &st), 1);
    assert_int_equal(st.qcur, 4);
    assert_int_equal(st.scur, 2);
    assert_int_equal(st.stot, 17);
    assert_int_equal(ing_stat_server(csv2, "be_x", "fra-1-2", &st), 0);
}

/* A slot keeps the instance in standby (or waking) that had it: others take a free slot first,
 * and the woken instance comes back to it; with no other slot free it is taken, not grown. */
static const struct ing_slot *fra1_slot(const struct ing_plan *p, size_t k)
{
    const struct ing_backend *web = ing_plan_backend(p, "be_" SVC "_443");
    assert_non_null(web);
    assert_string_equal(web->nodes[0].node, "fra-1");
    assert_true(k < web->nodes[0].n_slots);
    return &web->nodes[0].slots[k];
}

static void plan_step(const struct ing_config *c, struct ing_plan *p, const char *s1,
                      const char *s2, const char *s3)
{
    char a[256], b[256], d[256], be[900];
    snprintf(be, sizeof(be), "[%s%s%s%s%s]",
             s1 ? backend_json(I1, "fra-1", "10.64.0.2", s1, a, sizeof(a)) : "",
             s1 && s2 ? "," : "", s2 ? backend_json(I2, "fra-1", "10.64.0.3", s2, b, sizeof(b)) : "",
             s3 ? "," : "", s3 ? backend_json(I3, "fra-1", "10.64.0.4", s3, d, sizeof(d)) : "");
    struct nubo_ingress_watch_resp w;
    reply(&w, 1, be, DOM1);
    struct ing_plan next;
    struct nubo_err err = {0};
    assert_int_equal(ing_plan_build(c, &w, p, &next, &err), 0);
    nubo_ingress_watch_resp_free(&w);
    ing_plan_free(p);
    *p = next;
}

static void test_sleeper(void **state)
{
    (void)state;
    struct ing_config c;
    config(&c);
    struct ing_plan p = {0};
    plan_step(&c, &p, "running", NULL, NULL);
    assert_string_equal(fra1_slot(&p, 0)->instance, I1);
    plan_step(&c, &p, "standby", "running", NULL);
    assert_string_equal(fra1_slot(&p, 0)->instance, "");
    assert_string_equal(fra1_slot(&p, 0)->sleeper, I1);
    assert_string_equal(fra1_slot(&p, 1)->instance, I2);
    plan_step(&c, &p, "starting", "running", NULL);
    assert_string_equal(fra1_slot(&p, 0)->sleeper, I1);
    plan_step(&c, &p, "running", "running", NULL);
    assert_string_equal(fra1_slot(&p, 0)->instance, I1);
    assert_string_equal(fra1_slot(&p, 0)->sleeper, "");
    assert_string_equal(fra1_slot(&p, 1)->instance, I2);
    /* no free slot but the sleeper's: taken rather than a reload */
    plan_step(&c, &p, "standby", "running", NULL);
    char *shape = ing_render_config(&c, &p, true);
    plan_step(&c, &p, "standby", "running", "running");
    assert_string_equal(fra1_slot(&p, 0)->instance, I3);
    assert_string_equal(fra1_slot(&p, 0)->sleeper, "");
    char *shape2 = ing_render_config(&c, &p, true);
    check_text("shape", shape2, shape);
    free(shape);
    free(shape2);
    /* an instance listed twice, asleep before running: running wins its slot, every time */
    char a[256], b[256], be[600];
    snprintf(be, sizeof(be), "[%s,%s]", backend_json(I3, "fra-1", "10.64.0.4", "standby", a, sizeof(a)),
             backend_json(I3, "fra-1", "10.64.0.4", "running", b, sizeof(b)));
    struct nubo_ingress_watch_resp w;
    reply(&w, 9, be, DOM1);
    struct nubo_err err = {0};
    for (int round = 0; round < 2; round++) {
        struct ing_plan next;
        assert_int_equal(ing_plan_build(&c, &w, &p, &next, &err), 0);
        struct ing_cmds cmds;
        assert_int_equal(ing_runtime_cmds(&c, &p, &next, &cmds, &err), 0);
        assert_int_equal(cmds.n, round == 0 ? cmds.n : 0);
        ing_cmds_free(&cmds);
        ing_plan_free(&p);
        p = next;
        assert_string_equal(fra1_slot(&p, 0)->instance, I3);
    }
    nubo_ingress_watch_resp_free(&w);
    ing_plan_free(&p);
    ing_config_free(&c);
}

/* ntotal: a slot's sessions belong to whoever held it when they came. */
static void test_slot_total(void **state)
{
    (void)state;
    struct ing_slot_total c = {0};
    const char *A = "11111111-1111-4111-8111-111111111111", *B = "22222222-2222-4222-8222-222222222222";
    assert_int_equal(ing_slot_total_step(&c, A, 5), 5);  /* new slot, new HAProxy: all A's */
    assert_int_equal(ing_slot_total_step(&c, A, 12), 7);
    assert_int_equal(ing_slot_total_step(&c, A, 3), 3);  /* a reload started the counters again */
    assert_int_equal(ing_slot_total_step(&c, B, 9), 0);  /* handed to B: A's last sessions stay A's */
    assert_int_equal(ing_slot_total_step(&c, B, 10), 1);
    assert_int_equal(ing_slot_total_step(&c, "", 10), 0); /* emptied */
    assert_int_equal(ing_slot_total_step(&c, A, 14), 4);  /* from empty: what came is A's */
    struct ing_slot_total e = {0};
    assert_int_equal(ing_slot_total_step(&e, "", 8), 0);
    assert_int_equal(ing_slot_total_step(&e, B, 8), 0);
}

/* Wake on bytes: a move of a slot's bin while its instance sleeps names that instance; the
 * first read after the slot changed hands, and a drop (reload), only set the base. */
static void test_slot_bin(void **state)
{
    (void)state;
    struct ing_slot_bin c = {0};
    const char *A = "11111111-1111-4111-8111-111111111111", *B = "22222222-2222-4222-8222-222222222222";
    assert_null(ing_slot_bin_step(&c, A, "", 100)); /* first read */
    assert_null(ing_slot_bin_step(&c, A, "", 150)); /* awake: HAProxy delivers */
    assert_null(ing_slot_bin_step(&c, "", A, 150)); /* asleep, silent */
    assert_null(ing_slot_bin_step(&c, "", A, 150));
    assert_string_equal(ing_slot_bin_step(&c, "", A, 162), A); /* the client's next bytes */
    assert_null(ing_slot_bin_step(&c, "", A, 162));            /* asked once per move */
    assert_string_equal(ing_slot_bin_step(&c, "", A, 170), A);
    assert_null(ing_slot_bin_step(&c, A, "", 170)); /* woken: its slot again */
    assert_null(ing_slot_bin_step(&c, A, "", 190));
    /* bytes counted late (contstats: up to 5 s) after its stop were still sent to it */
    assert_string_equal(ing_slot_bin_step(&c, "", A, 230), A);
    /* the slot changed hands: B's first read sets the base, whatever A's sessions sent */
    assert_null(ing_slot_bin_step(&c, B, "", 400));
    assert_null(ing_slot_bin_step(&c, "", B, 400));
    assert_null(ing_slot_bin_step(&c, "", A, 500)); /* back to A asleep: base again */
    assert_string_equal(ing_slot_bin_step(&c, "", A, 501), A);
    /* a reload starts the counters again: a drop is no move, the next rise is */
    assert_null(ing_slot_bin_step(&c, "", A, 3));
    assert_string_equal(ing_slot_bin_step(&c, "", A, 9), A);
    /* an empty slot nobody keeps wakes nobody */
    struct ing_slot_bin e = {0};
    assert_null(ing_slot_bin_step(&e, "", "", 5));
    assert_null(ing_slot_bin_step(&e, "", "", 50));
    assert_null(ing_slot_bin_step(&e, "", B, 60)); /* kept for B from here: base */
    assert_string_equal(ing_slot_bin_step(&e, "", B, 61), B);
}

/* A name that is not DNS never reaches a map file or a runtime command. */
static void test_bad_domain(void **state)
{
    (void)state;
    struct ing_config c;
    config(&c);
    struct nubo_err err = {0};
    struct nubo_ingress_watch_resp w;
    reply(&w, 1, "[]", "[{\"fqdn\":\"evil.example.com x\\nadd map\",\"certificate\":null}]");
    struct ing_plan p;
    assert_int_equal(ing_plan_build(&c, &w, NULL, &p, &err), 0);
    for (size_t i = 0; i < p.n_maps; i++)
        assert_string_equal(p.maps[i].key, "db-proxy.fra.nubo.local");
    ing_plan_free(&p);
    nubo_ingress_watch_resp_free(&w);
    ing_config_free(&c);
}

/* A user certificate is listed only with its own domains as SNI filters (HAProxy would pick it
 * for any name it carries otherwise: another tenant's, or the metro wildcard for every
 * ECDSA-capable client), and one no domain names is not listed at all. */
static void test_cert_sni_filters(void **state)
{
    (void)state;
    struct ing_config c;
    config(&c);
#define CA "cccccccc-0000-0000-0000-00000000000a"
#define CB "cccccccc-0000-0000-0000-00000000000b"
    const char *j =
        "{\"version\":3,\"metro\":\"fra\",\"domain_suffix\":\"fra.nubo.local\",\"services\":["
        "{\"uuid\":\"" SVC "\",\"name\":\"shop\",\"soft_limit\":1,\"hard_limit\":10,"
        "\"ports\":[{\"port\":443,\"destination_port\":8080,\"handlers\":[\"http\",\"tls\"]}],"
        "\"domains\":[{\"fqdn\":\"shop.fra.nubo.local\",\"certificate\":null},"
        "{\"fqdn\":\"www.acme.test\",\"certificate\":\"" CA "\"},"
        "{\"fqdn\":\"API.acme.test\",\"certificate\":\"" CA "\"}],\"backends\":[]}],"
        "\"certificates\":[{\"uuid\":\"" CA "\",\"name\":\"a\",\"cn\":\"*.acme.test\","
        "\"chain\":\"CHAIN-A\\n\",\"pkey\":\"KEY-A\\n\"},"
        "{\"uuid\":\"" CB "\",\"name\":\"b\",\"cn\":\"*.fra.nubo.local\","
        "\"chain\":\"CHAIN-B\\n\",\"pkey\":\"KEY-B\\n\"}]}";
    json_t *root = NULL;
    struct nubo_err err = {0};
    assert_int_equal(pj_parse(j, strlen(j), NUBO_INGRESS_MAX_BODY, &root, &err), 0);
    struct nubo_ingress_watch_resp w;
    assert_int_equal(nubo_ingress_watch_resp_decode(root, &w, &err), 0);
    json_decref(root);
    struct ing_plan p;
    assert_int_equal(ing_plan_build(&c, &w, NULL, &p, &err), 0);
    assert_int_equal(p.n_certs, 1);
    char *m = ing_render_crt_list(&c, &p);
    check_text("crt-list", m,
               "/run/ingt/certs/metro.pem\n"
               "/run/ingt/certs/" CA ".pem www.acme.test api.acme.test\n");
    free(m);
    /* the filters are part of the shape: a domain moving to another certificate reloads */
    char *shape = ing_render_config(&c, &p, true);
    assert_non_null(strstr(shape, "for www.acme.test api.acme.test\n"));
    free(shape);
    ing_plan_free(&p);
    nubo_ingress_watch_resp_free(&w);
    ing_config_free(&c);
#undef CA
#undef CB
}

static void test_reply_ok(void **state)
{
    (void)state;
    assert_true(ing_runtime_reply_ok("set server b/s addr 10.0.0.1 port 80",
                                     "IP changed from '0.0.0.0' to '10.0.0.1', no need to change "
                                     "the port by 'stats socket command'\n\n"));
    assert_false(ing_runtime_reply_ok("set server b/s addr 10.0.0.1 port 80", "No such server.\n"));
    assert_true(ing_runtime_reply_ok("set server b/s state ready", "\n"));
    assert_false(ing_runtime_reply_ok("set server b/nope state ready", "No such server.\n\n"));
    assert_false(ing_runtime_reply_ok("add map /x a b", "Unknown map identifier.\n"));
    assert_false(ing_runtime_reply_ok("add map /x a b", NULL));
}

static void write_tmp(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_config_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_ingress.XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/i.ini", dir);
    write_tmp(path, "[ingress]\nmetro = was\nlisten_addr = 127.0.0.2\nhttp_port = 8080\n"
                    "https_port = 8443\n[controller]\nurl = http://controller\n"
                    "socket = /run/c.sock\ntoken_file = /t\n[haproxy]\nbinary = /usr/sbin/haproxy\n"
                    "[tls]\ncert = /c.pem\nkey = /k.pem\n[nodes]\nwas-1 = netns:nubo-dc-was-1\n"
                    "was-2 = direct\n");
    struct ing_config c;
    struct nubo_err err = {0};
    ing_config_defaults(&c);
    assert_int_equal(ing_config_load(path, &c, &err), 0);
    assert_string_equal(c.metro, "was");
    assert_int_equal(c.https_port, 8443);
    assert_int_equal(c.n_nodes, 2);
    assert_string_equal(ing_config_node(&c, "was-1")->netns, "nubo-dc-was-1");
    assert_string_equal(ing_config_node(&c, "was-2")->netns, "");
    assert_null(ing_config_node(&c, "fra-1"));
    ing_config_free(&c);

    write_tmp(path, "[tls]\ncert = /c.pem\nkey = /k.pem\n[nodes]\nfra-1 = nowhere\n");
    ing_config_defaults(&c);
    assert_int_equal(ing_config_load(path, &c, &err), -1);
    assert_non_null(strstr(err.msg, "want netns:<namespace> or direct"));
    assert_null(strchr(err.msg, '\n'));
    ing_config_free(&c);

    write_tmp(path, "[ingress]\nmetro = fra\n");
    ing_config_defaults(&c);
    assert_int_equal(ing_config_load(path, &c, &err), -1);
    assert_non_null(strstr(err.msg, "[tls] cert and key"));
    ing_config_free(&c);

    write_tmp(path, "[ingress]\nbogus = 1\n");
    ing_config_defaults(&c);
    assert_int_equal(ing_config_load(path, &c, &err), -1);
    assert_non_null(strstr(err.msg, ":2: unknown setting [ingress] bogus"));
    ing_config_free(&c);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_golden),   cmocka_unit_test(test_runtime_changes),
        cmocka_unit_test(test_service_gone),    cmocka_unit_test(test_unknown_node),
        cmocka_unit_test(test_reply_ok),
        cmocka_unit_test(test_first_instance_no_reload),
        cmocka_unit_test(test_slot_total),      cmocka_unit_test(test_slot_bin),
        cmocka_unit_test(test_bad_domain),        cmocka_unit_test(test_standby),
        cmocka_unit_test(test_sleeper),
        cmocka_unit_test(test_config_file),       cmocka_unit_test(test_cert_sni_filters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
