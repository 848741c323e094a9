/* Unit tests for proto/ingress.c: the ingress watch reply round-trips; bad input fails with one
 * line naming the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingress.h"
#include "service.h"

#define UUID1 "0b0f5c4e-3a55-4c1b-9d63-8f1e2a7b9c01"
#define UUID2 "7d2a1e90-5b1f-4e5c-8a4b-2c3d4e5f6a7b"
#define UUID3 "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"

static json_t *parse(const char *s)
{
    json_t *j = NULL;
    struct nubo_err err = {0};
    assert_int_equal(pj_parse(s, strlen(s), NUBO_INGRESS_MAX_BODY, &j, &err), 0);
    return j;
}

static void test_watch_roundtrip(void **state)
{
    (void)state;
    struct nubo_ingress_port ports[2] = {
        {443, 8080, NUBO_HANDLER_HTTP | NUBO_HANDLER_TLS},
        {80, 443, NUBO_HANDLER_HTTP | NUBO_HANDLER_REDIRECT},
    };
    struct nubo_ingress_domain doms[2] = {{.fqdn = "young-night-5fpf0jj8.fra.nubo.local"},
                                          {.fqdn = "www.example.com", .certificate = UUID3}};
    struct nubo_ingress_backend be = {.instance = UUID2, .name = "web-ab12c", .node = "fra-1",
                                      .ip = "10.64.0.2", .state = NUBO_STATE_DRAINING};
    struct nubo_ingress_service svc = {.uuid = UUID1, .name = "young-night-5fpf0jj8",
                                       .soft_limit = 1, .hard_limit = 65535, .ports = ports,
                                       .n_ports = 2, .domains = doms, .n_domains = 2,
                                       .backends = &be, .n_backends = 1};
    struct nubo_ingress_cert cert = {.uuid = UUID3, .name = "ex", .cn = "*.example.com",
                                     .chain = "-----BEGIN CERTIFICATE-----\n",
                                     .pkey = "-----BEGIN PRIVATE KEY-----\n"};
    struct nubo_ingress_watch_resp w = {.version = 7, .metro = "fra",
                                        .domain_suffix = "fra.nubo.local", .services = &svc,
                                        .n_services = 1, .certificates = &cert,
                                        .n_certificates = 1};
    json_t *j = nubo_ingress_watch_resp_encode(&w);
    assert_non_null(j);
    /* The wire shape of PROTOCOL.md. */
    json_t *s0 = json_array_get(json_object_get(j, "services"), 0);
    json_t *h = json_object_get(json_array_get(json_object_get(s0, "ports"), 1), "handlers");
    assert_string_equal(json_string_value(json_array_get(h, 0)), "http");
    assert_string_equal(json_string_value(json_array_get(h, 1)), "redirect");
    assert_true(json_is_null(
        json_object_get(json_array_get(json_object_get(s0, "domains"), 0), "certificate")));
    char *text = pj_dump(j);
    json_decref(j);
    j = parse(text);
    free(text);
    struct nubo_ingress_watch_resp got;
    struct nubo_err err = {0};
    assert_int_equal(nubo_ingress_watch_resp_decode(j, &got, &err), 0);
    json_decref(j);
    assert_int_equal(got.version, 7);
    assert_string_equal(got.metro, "fra");
    assert_string_equal(got.domain_suffix, "fra.nubo.local");
    assert_int_equal(got.n_services, 1);
    assert_int_equal(got.services[0].n_ports, 2);
    assert_int_equal(got.services[0].ports[0].destination_port, 8080);
    assert_int_equal(got.services[0].ports[0].handlers, NUBO_HANDLER_HTTP | NUBO_HANDLER_TLS);
    assert_int_equal(got.services[0].ports[1].handlers, NUBO_HANDLER_HTTP | NUBO_HANDLER_REDIRECT);
    assert_string_equal(got.services[0].domains[0].certificate, "");
    assert_string_equal(got.services[0].domains[1].certificate, UUID3);
    assert_int_equal(got.services[0].backends[0].state, NUBO_STATE_DRAINING);
    assert_string_equal(got.services[0].backends[0].ip, "10.64.0.2");
    assert_int_equal(got.services[0].hard_limit, 65535);
    assert_int_equal(got.n_certificates, 1);
    assert_string_equal(got.certificates[0].cn, "*.example.com");
    assert_string_equal(got.certificates[0].pkey, "-----BEGIN PRIVATE KEY-----\n");
    nubo_ingress_watch_resp_free(&got);
}

static void expect_bad(const char *text, const char *needle)
{
    json_t *j = parse(text);
    struct nubo_ingress_watch_resp got;
    struct nubo_err err = {0};
    assert_int_equal(nubo_ingress_watch_resp_decode(j, &got, &err), -1);
    json_decref(j);
    assert_null(strchr(err.msg, '\n'));
    if (strstr(err.msg, needle) == NULL)
        fail_msg("error '%s' does not name '%s'", err.msg, needle);
    assert_null(got.services);
}

static void test_watch_bad(void **state)
{
    (void)state;
    expect_bad("{\"metro\":\"fra\"}", "version");
    expect_bad("{\"version\":1,\"metro\":\"fra\",\"services\":[{\"uuid\":\"" UUID1
               "\",\"ports\":[{\"port\":0,\"destination_port\":1}]}]}",
               "services[0].ports[0].port");
    expect_bad("{\"version\":1,\"metro\":\"fra\",\"services\":[{\"uuid\":\"" UUID1
               "\",\"ports\":[{\"port\":443,\"destination_port\":1,\"handlers\":[\"tls\",\"gzip\"]}]}]}",
               "handlers[1]");
    expect_bad("{\"version\":1,\"metro\":\"fra\",\"services\":[{\"uuid\":\"" UUID1
               "\",\"backends\":[{\"instance\":\"" UUID2 "\",\"ip\":\"10.1.2\"}]}]}",
               "backends[0].ip");
    expect_bad("{\"version\":1,\"metro\":\"fra\",\"services\":[{\"uuid\":\"" UUID1
               "\"}, {\"uuid\":\"x\"}]}",
               "services[1].uuid");
    expect_bad("{\"version\":1,\"metro\":\"fra\",\"certificates\":[{\"uuid\":\"" UUID1
               "\",\"cn\":\"a\",\"chain\":\"c\"}]}",
               "certificates[0].pkey");
}

/* Scale-to-zero's two messages: traffic reports and wake requests/replies. */
static void test_s2z_messages(void **state)
{
    (void)state;
    struct nubo_ingress_traffic_item items[2] = {
        {UUID1, .current = 0, .idle_ms = 1500, .silent_ms = 1500, .quiet_ms = 7000},
        {UUID2, .current = 3, .idle_ms = 0}};
    struct nubo_ingress_traffic t = {"fra", items, 2}, back;
    struct nubo_err err = {0};
    json_t *j = nubo_ingress_traffic_encode(&t);
    assert_int_equal(nubo_ingress_traffic_decode(j, &back, &err), 0);
    assert_string_equal(back.metro, "fra");
    assert_int_equal(back.n_instances, 2);
    assert_string_equal(back.instances[1].instance, UUID2);
    assert_int_equal(back.instances[1].current, 3);
    assert_int_equal(back.instances[0].idle_ms, 1500);
    assert_int_equal(back.instances[0].quiet_ms, 7000);
    nubo_ingress_traffic_free(&back);
    json_decref(j);
    /* an older ingress: no silent_ms nor quiet_ms */
    j = parse("{\"metro\":\"fra\",\"instances\":[{\"instance\":\"" UUID1
              "\",\"current\":0,\"idle_ms\":9}]}");
    assert_int_equal(nubo_ingress_traffic_decode(j, &back, &err), 0);
    assert_int_equal(back.instances[0].silent_ms, -1);
    assert_int_equal(back.instances[0].quiet_ms, -1);
    nubo_ingress_traffic_free(&back);
    json_decref(j);
    static const char *bad[] = {
        "{\"instances\":[]}",
        "{\"metro\":\"fra\"}",
        "{\"metro\":\"fra\",\"instances\":[{\"instance\":\"x\",\"current\":0,\"idle_ms\":0}]}",
        "{\"metro\":\"fra\",\"instances\":[{\"instance\":\"" UUID1 "\",\"current\":-1,\"idle_ms\":0}]}",
        "{\"metro\":\"fra\",\"instances\":[{\"instance\":\"" UUID1 "\",\"current\":0}]}",
        "{\"metro\":\"fra\",\"instances\":[5]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *b = parse(bad[i]);
        struct nubo_err e = {0};
        if (nubo_ingress_traffic_decode(b, &back, &e) == 0)
            fail_msg("accepted: %s", bad[i]);
        assert_null(strchr(e.msg, '\n'));
        json_decref(b);
    }
    struct nubo_ingress_wake_req wr = {.service = UUID3}, wr2;
    j = nubo_ingress_wake_req_encode(&wr);
    assert_int_equal(nubo_ingress_wake_req_decode(j, &wr2, &err), 0);
    assert_string_equal(wr2.service, UUID3);
    assert_string_equal(wr2.instance, "");
    assert_null(json_object_get(j, "instance")); /* optional: an older controller ignores it */
    json_decref(j);
    /* the wake of one instance, for bytes on its sleeping slot */
    struct nubo_ingress_wake_req wi = {UUID3, UUID1};
    j = nubo_ingress_wake_req_encode(&wi);
    assert_int_equal(nubo_ingress_wake_req_decode(j, &wr2, &err), 0);
    assert_string_equal(wr2.service, UUID3);
    assert_string_equal(wr2.instance, UUID1);
    json_decref(j);
    j = parse("{\"service\":\"not-a-uuid\"}");
    assert_int_equal(nubo_ingress_wake_req_decode(j, &wr2, &err), -1);
    json_decref(j);
    j = parse("{\"service\":\"" UUID3 "\",\"instance\":\"nope\"}");
    assert_int_equal(nubo_ingress_wake_req_decode(j, &wr2, &err), -1);
    assert_null(strchr(err.msg, '\n'));
    json_decref(j);
    struct nubo_ingress_wake_resp rs = {1, 1}, rs2;
    j = nubo_ingress_wake_resp_encode(&rs);
    assert_int_equal(nubo_ingress_wake_resp_decode(j, &rs2, &err), 0);
    assert_int_equal(rs2.woken, 1);
    assert_int_equal(rs2.starting, 1);
    json_decref(j);
}

/* The traffic report's instance metrics: they round-trip, are optional (an older ingress sends
 * none) and bounded. */
static void test_traffic_counters(void **state)
{
    (void)state;
    struct nubo_ingress_traffic_item it = {UUID1, 2, 0, .nconns = 1, .nreqs = 2, .nqueued = 3,
                                           .ntotal = INT64_C(5000000000)};
    struct nubo_ingress_traffic t = {"fra", &it, 1}, back;
    struct nubo_err err = {0};
    json_t *j = nubo_ingress_traffic_encode(&t);
    assert_int_equal(nubo_ingress_traffic_decode(j, &back, &err), 0);
    assert_int_equal(back.instances[0].nconns, 1);
    assert_int_equal(back.instances[0].nreqs, 2);
    assert_int_equal(back.instances[0].nqueued, 3);
    assert_int_equal(back.instances[0].ntotal, INT64_C(5000000000));
    nubo_ingress_traffic_free(&back);
    json_decref(j);
    j = parse("{\"metro\":\"fra\",\"instances\":[{\"instance\":\"" UUID1
              "\",\"current\":0,\"idle_ms\":7}]}");
    assert_int_equal(nubo_ingress_traffic_decode(j, &back, &err), 0);
    assert_int_equal(back.instances[0].idle_ms, 7);
    assert_int_equal(back.instances[0].ntotal, 0);
    nubo_ingress_traffic_free(&back);
    json_decref(j);
    static const char *bad[] = {"\"nconns\":-1", "\"nreqs\":\"2\"", "\"nqueued\":1.5",
                                "\"ntotal\":-5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[256];
        snprintf(buf, sizeof(buf),
                 "{\"metro\":\"fra\",\"instances\":[{\"instance\":\"" UUID1
                 "\",\"current\":0,\"idle_ms\":0,%s}]}",
                 bad[i]);
        json_t *b = parse(buf);
        struct nubo_err e = {0};
        if (nubo_ingress_traffic_decode(b, &back, &e) == 0)
            fail_msg("accepted: %s", buf);
        assert_non_null(strstr(e.msg, "instances[0]"));
        json_decref(b);
    }
}

/* The ports an ingress left out, and a group showing one as its port's error. */
static void test_ports_report(void **state)
{
    (void)state;
    struct nubo_ingress_ports_report *r = calloc(1, sizeof(*r)), *back = calloc(1, sizeof(*r));
    snprintf(r->metro, sizeof(r->metro), "fra");
    r->left_out[0].port = 7070;
    snprintf(r->left_out[0].error, sizeof(r->left_out[0].error), "cannot bind 127.0.0.1:7070");
    r->n_left_out = 1;
    struct nubo_err err = {0};
    json_t *j = nubo_ingress_ports_report_encode(r);
    assert_int_equal(nubo_ingress_ports_report_decode(j, back, &err), 0);
    assert_int_equal(back->n_left_out, 1);
    assert_int_equal(back->left_out[0].port, 7070);
    assert_string_equal(back->left_out[0].error, "cannot bind 127.0.0.1:7070");
    json_decref(j);
    static const char *bad[] = {
        "{\"left_out\":[]}",
        "{\"metro\":\"fra\"}",
        "{\"metro\":\"Bad Metro\",\"left_out\":[]}",
        "{\"metro\":\"fra\",\"left_out\":[{\"port\":0,\"error\":\"x\"}]}",
        "{\"metro\":\"fra\",\"left_out\":[{\"port\":80}]}",
        "{\"metro\":\"fra\",\"left_out\":[5]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *b = parse(bad[i]);
        struct nubo_err e = {0};
        if (nubo_ingress_ports_report_decode(b, back, &e) == 0)
            fail_msg("accepted: %s", bad[i]);
        assert_null(strchr(e.msg, '\n'));
        json_decref(b);
    }
    free(r);
    free(back);
    /* the group shows the error on that port only, and a client reads it back */
    struct nubo_svc_group *g = calloc(1, sizeof(*g)), *g2 = calloc(1, sizeof(*g2));
    snprintf(g->uuid, sizeof(g->uuid), UUID1);
    g->ports[0] = (struct nubo_ingress_port){443, 8080, NUBO_HANDLER_HTTP | NUBO_HANDLER_TLS};
    g->ports[1] = (struct nubo_ingress_port){7070, 7070, NUBO_HANDLER_TLS};
    g->n_ports = 2;
    snprintf(g->port_errors[1], sizeof(g->port_errors[1]), "cannot bind");
    j = nubo_svc_group_encode(g);
    json_t *svcs = json_object_get(j, "services");
    assert_null(json_object_get(json_array_get(svcs, 0), "error"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(svcs, 1), "error")),
                        "cannot bind");
    assert_int_equal(nubo_svc_group_decode(j, g2, &err), 0);
    assert_string_equal(g2->port_errors[1], "cannot bind");
    assert_string_equal(g2->port_errors[0], "");
    nubo_svc_group_free(g2);
    json_decref(j);
    free(g);
    free(g2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watch_roundtrip),
        cmocka_unit_test(test_watch_bad),
        cmocka_unit_test(test_s2z_messages),
        cmocka_unit_test(test_traffic_counters),
        cmocka_unit_test(test_ports_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
