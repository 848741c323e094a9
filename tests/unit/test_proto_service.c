/* Unit tests for proto/service.c: the handler rules, create and patch decoders, domain and cn
 * matching; every rejection is one line naming the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service.h"

static json_t *parse(const char *s)
{
    json_t *j = NULL;
    struct nubo_err err = {0};
    assert_int_equal(pj_parse(s, strlen(s), 1 << 20, &j, &err), 0);
    return j;
}

static int create(const char *text, bool inl, struct nubo_svc_create_req *out,
                  struct nubo_err *err)
{
    json_t *j = parse(text);
    int rc = nubo_svc_create_req_decode(j, inl, out, err);
    json_decref(j);
    return rc;
}

static void expect_bad(const char *text, bool inl, const char *needle)
{
    struct nubo_svc_create_req r;
    struct nubo_err err = {0};
    assert_int_equal(create(text, inl, &r, &err), -1);
    assert_int_equal(err.http_status, 400);
    assert_null(strchr(err.msg, '\n'));
    if (strstr(err.msg, needle) == NULL)
        fail_msg("error '%s' does not mention '%s'", err.msg, needle);
}

static void test_rules(void **state)
{
    (void)state;
    struct nubo_ingress_port p = {80, 8080, NUBO_HANDLER_HTTP};
    struct nubo_err err = {0};
    assert_int_equal(nubo_svc_port_check(&p, "p", &err), 0);
    p.handlers = NUBO_HANDLER_HTTP | NUBO_HANDLER_REDIRECT;
    assert_int_equal(nubo_svc_port_check(&p, "p", &err), 0);
    p.handlers = NUBO_HANDLER_HTTP | NUBO_HANDLER_TLS;
    assert_int_equal(nubo_svc_port_check(&p, "p", &err), -1);
    p.handlers = NUBO_HANDLER_TLS;
    assert_int_equal(nubo_svc_port_check(&p, "p", &err), -1);
    p = (struct nubo_ingress_port){443, 8080, NUBO_HANDLER_HTTP | NUBO_HANDLER_TLS};
    assert_int_equal(nubo_svc_port_check(&p, "p", &err), 0);
    p.handlers = NUBO_HANDLER_HTTP;
    assert_int_equal(nubo_svc_port_check(&p, "p", &err), -1);
    p.handlers = NUBO_HANDLER_HTTP | NUBO_HANDLER_TLS | NUBO_HANDLER_REDIRECT;
    assert_int_equal(nubo_svc_port_check(&p, "p", &err), -1);
    assert_non_null(strstr(err.msg, "redirect"));
    p = (struct nubo_ingress_port){5432, 5432, NUBO_HANDLER_TLS};
    assert_int_equal(nubo_svc_port_check(&p, "p", &err), 0);
    p.handlers = NUBO_HANDLER_TLS | NUBO_HANDLER_HTTP;
    assert_int_equal(nubo_svc_port_check(&p, "p", &err), -1);
    p.handlers = 0;
    assert_int_equal(nubo_svc_port_check(&p, "p", &err), -1);
    p = (struct nubo_ingress_port){0, 1, NUBO_HANDLER_TLS};
    assert_int_equal(nubo_svc_port_check(&p, "p", &err), -1);
    assert_int_equal(nubo_svc_default_handlers(80), NUBO_HANDLER_HTTP);
    assert_int_equal(nubo_svc_default_handlers(443), NUBO_HANDLER_HTTP | NUBO_HANDLER_TLS);
    assert_int_equal(nubo_svc_default_handlers(9000), NUBO_HANDLER_TLS);
}

static void test_create(void **state)
{
    (void)state;
    struct nubo_svc_create_req r;
    struct nubo_err err = {0};
    assert_int_equal(
        create("{\"name\":\"web\",\"services\":[{\"port\":443,\"destination_port\":8080},"
               "{\"port\":80,\"destination_port\":443,\"handlers\":[\"http\",\"redirect\"]}],"
               "\"domains\":[{\"name\":\"shop\"},{\"fqdn\":\"API.Example.com\",\"certificate\":"
               "{\"name\":\"ex\"}}],\"hard_limit\":100}",
               false, &r, &err),
        0);
    assert_string_equal(r.name, "web");
    assert_int_equal(r.n_ports, 2);
    assert_int_equal(r.ports[0].handlers, NUBO_HANDLER_HTTP | NUBO_HANDLER_TLS);
    assert_int_equal(r.ports[1].destination_port, 443);
    assert_int_equal(r.n_domains, 2);
    assert_false(r.domains[0].is_fqdn);
    assert_true(r.domains[1].is_fqdn);
    assert_string_equal(r.domains[1].name, "api.example.com");
    assert_string_equal(r.domains[1].cert_name, "ex");
    assert_int_equal(r.soft_limit, 1);
    assert_int_equal(r.hard_limit, 100);
    /* defaults and the round trip of the encoder */
    assert_int_equal(create("{\"services\":[{\"port\":9000}]}", true, &r, &err), 0);
    assert_int_equal(r.ports[0].destination_port, 9000);
    assert_int_equal(r.ports[0].handlers, NUBO_HANDLER_TLS);
    assert_false(r.has_domains);
    json_t *j = nubo_svc_create_req_encode(&r, true);
    struct nubo_svc_create_req r2;
    assert_int_equal(nubo_svc_create_req_decode(j, true, &r2, &err), 0);
    json_decref(j);
    assert_int_equal(r2.ports[0].port, 9000);
    assert_int_equal(r2.ports[0].handlers, NUBO_HANDLER_TLS);

    expect_bad("{\"services\":[{\"port\":80,\"handlers\":[\"tls\"]}]}", false, "services[0]");
    expect_bad("{\"services\":[{\"port\":443,\"handlers\":[\"http\"]}]}", false, "443");
    expect_bad("{\"services\":[{\"port\":22,\"handlers\":[\"http\",\"tls\"]}]}", false, "raw TCP");
    expect_bad("{\"services\":[{\"port\":443},{\"port\":443}]}", false, "twice");
    expect_bad("{\"services\":[{\"port\":443,\"handlers\":[\"tls\",\"tls\"]}]}", false, "twice");
    expect_bad("{\"services\":[{\"port\":65536}]}", false, "port");
    expect_bad("{\"services\":[]}", false, "at least one");
    expect_bad("{}", false, "at least one");
    expect_bad("{\"services\":[{\"port\":443}],\"soft_limit\":0}", false, "soft_limit");
    expect_bad("{\"services\":[{\"port\":443}],\"soft_limit\":10,\"hard_limit\":5}", false,
               "exceed");
    expect_bad("{\"services\":[{\"port\":443}],\"name\":\"Bad_Name\"}", false, "name");
    expect_bad("{\"services\":[{\"port\":443}],\"name\":\"x\"}", true, "name");
    expect_bad("{\"services\":[{\"port\":443}],\"domains\":[{\"name\":\"a b\"}]}", false,
               "domains[0]");
    expect_bad("{\"services\":[{\"port\":443}],\"domains\":[{\"name\":\"a\",\"fqdn\":\"a.b\"}]}",
               false, "not both");
    expect_bad("{\"services\":[{\"port\":443}],\"domains\":[\"x\",\"x\"]}", false, "twice");
    expect_bad("{\"services\":[{\"port\":443,\"color\":1}]}", false, "color");
}

static void test_patch(void **state)
{
    (void)state;
    struct nubo_svc_patch p;
    struct nubo_err err = {0};
    json_t *j = parse("{\"name\":\"web\",\"prop\":\"services\",\"op\":\"del\",\"value\":[443,"
                      "{\"port\":80}]}");
    assert_int_equal(nubo_svc_patch_decode(j, "", true, &p, &err), 0);
    json_decref(j);
    assert_int_equal(p.prop, NUBO_SVC_PROP_SERVICES);
    assert_int_equal(p.op, NUBO_SVC_OP_DEL);
    assert_int_equal(p.n_ports, 2);
    assert_int_equal(p.ports[1].port, 80);
    j = parse("{\"prop\":\"hard_limit\",\"op\":\"set\",\"value\":10}");
    assert_int_equal(nubo_svc_patch_decode(j, "", false, &p, &err), 0);
    assert_int_equal(p.limit, 10);
    assert_int_equal(nubo_svc_patch_decode(j, "", true, &p, &err), -1); /* no group named */
    json_decref(j);
    const char *bad[] = {
        "{\"name\":\"w\",\"prop\":\"hard_limit\",\"op\":\"add\",\"value\":10}",
        "{\"name\":\"w\",\"prop\":\"soft_limit\",\"op\":\"set\",\"value\":0}",
        "{\"name\":\"w\",\"prop\":\"services\",\"op\":\"add\",\"value\":[{\"port\":80,"
        "\"handlers\":[\"tls\"]}]}",
        "{\"name\":\"w\",\"prop\":\"colour\",\"op\":\"set\",\"value\":1}",
        "{\"name\":\"w\",\"prop\":\"domains\",\"op\":\"swap\",\"value\":[]}",
        "{\"name\":\"w\",\"prop\":\"domains\",\"op\":\"add\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        j = parse(bad[i]);
        assert_int_equal(nubo_svc_patch_decode(j, "[0]", true, &p, &err), -1);
        json_decref(j);
        assert_null(strchr(err.msg, '\n'));
        assert_non_null(strstr(err.msg, "[0]"));
    }
}

static void test_names(void **state)
{
    (void)state;
    assert_true(nubo_fqdn_valid("a.b", false));
    assert_true(nubo_fqdn_valid("young-night-5fpf0jj8.fra.nubo.local", false));
    assert_false(nubo_fqdn_valid("nodot", false));
    assert_false(nubo_fqdn_valid("a..b", false));
    assert_false(nubo_fqdn_valid("a.b.", false));
    assert_false(nubo_fqdn_valid("-a.b", false));
    assert_false(nubo_fqdn_valid("*.example.com", false));
    assert_true(nubo_fqdn_valid("*.example.com", true));
    assert_false(nubo_fqdn_valid("a.*.com", true));
    assert_true(nubo_cn_matches("*.example.com", "www.example.com"));
    assert_false(nubo_cn_matches("*.example.com", "a.b.example.com"));
    assert_false(nubo_cn_matches("*.example.com", "example.com"));
    assert_true(nubo_cn_matches("example.com", "example.com"));
    assert_false(nubo_cn_matches("www.example.com", "api.example.com"));
}

static void test_cert_req(void **state)
{
    (void)state;
    struct nubo_cert_req r;
    struct nubo_err err = {0};
    json_t *j = parse("{\"cn\":\"*.Example.com\",\"chain\":\"c\",\"pkey\":\"k\"}");
    assert_int_equal(nubo_cert_req_decode(j, &r, &err), 0);
    json_decref(j);
    assert_string_equal(r.cn, "*.example.com");
    nubo_cert_req_free(&r);
    j = parse("{\"cn\":\"nodot\",\"chain\":\"c\",\"pkey\":\"k\"}");
    assert_int_equal(nubo_cert_req_decode(j, &r, &err), -1);
    json_decref(j);
    j = parse("{\"cn\":\"a.b\",\"chain\":\"c\"}");
    assert_int_equal(nubo_cert_req_decode(j, &r, &err), -1);
    assert_non_null(strstr(err.msg, "pkey"));
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules),    cmocka_unit_test(test_create),
        cmocka_unit_test(test_patch),    cmocka_unit_test(test_names),
        cmocka_unit_test(test_cert_req),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
