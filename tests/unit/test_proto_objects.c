/* Unit tests for the API objects of proto/ (nodes, metros, users, service groups,
 * certificates, per-item status, log windows, the instance's boot phases): each encoder pins
 * the exact JSON the controller emits today (key order included), and each lenient client
 * decoder reads it back to the same value and refuses what breaks a bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cluster.h"
#include "service.h"

#define U1 "0b0f5c4e-3a55-4c1b-9d63-8f1e2a7b9c01"
#define U2 "7c0e1c9a-0000-4000-8000-000000000002"
#define T0 "2026-11-27T02:00:45.000000Z"

static int64_t t0(void)
{
    int64_t us = 0;
    assert_int_equal(nubo_time_parse_iso8601(T0, &us), 0);
    return us;
}

static json_t *parse(const char *s)
{
    json_t *j = NULL;
    assert_int_equal(pj_parse(s, strlen(s), 1 << 20, &j, NULL), 0);
    return j;
}

/* The encoder's compact text, in its own key order, must be want byte for byte. Consumes j. */
static void pin(json_t *j, const char *want)
{
    assert_non_null(j);
    char *got = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (strcmp(got, want) != 0)
        fail_msg("encoding differs.\n got: %s\nwant: %s", got, want);
    free(got);
}

/* decode(encode(x)) encodes to the same text: nothing the API shows is lost by the client. */
#define ROUNDTRIP(T, enc, dec, fini, val)                                                          \
    do {                                                                                           \
        json_t *a = enc(val);                                                                      \
        T back;                                                                                    \
        struct nubo_err e = {0};                                                                   \
        if (dec(a, &back, &e) < 0)                                                                 \
            fail_msg("%s", e.msg);                                                                 \
        json_t *b = enc(&back);                                                                    \
        assert_true(json_equal(a, b));                                                             \
        fini(&back);                                                                               \
        json_decref(a);                                                                            \
        json_decref(b);                                                                            \
    } while (0)

static void no_fini(void *p)
{
    (void)p;
}

static void test_node(void **state)
{
    struct nubo_node n = {.uuid = U1,
                          .name = "node-1",
                          .metro = "fra",
                          .state = "ready",
                          .memory_mb = 4096,
                          .vcpus = 4,
                          .free_memory_mb = 3584,
                          .allocated_memory_mb = 512,
                          .allocated_vcpus = 2,
                          .instances = 2,
                          .accel = "kvm",
                          .subnet = "10.64.3.0/24",
                          .gateway = "10.64.3.1",
                          .agent_version = "0.1.0",
                          .qemu_version = "7.2.0",
                          .created_at_us = t0(),
                          .last_seen_ms = 120,
                          .guest_cpu = "host-passthrough"};
    /* what GET /v1/nodes shows (admin.c node_api) */
    pin(nubo_node_encode(&n),
        "{\"status\":\"success\",\"uuid\":\"" U1 "\",\"name\":\"node-1\",\"metro\":\"fra\","
        "\"state\":\"ready\",\"memory_mb\":4096,\"vcpus\":4,\"free_memory_mb\":3584,"
        "\"allocated_memory_mb\":512,\"allocated_vcpus\":2,\"instances\":2,\"accel\":\"kvm\","
        "\"subnet\":\"10.64.3.0/24\",\"gateway\":\"10.64.3.1\",\"agent_version\":\"0.1.0\","
        "\"qemu_version\":\"7.2.0\",\"created_at\":\"" T0 "\",\"registered_at\":null,"
        "\"last_seen_ms\":120,\"guest_cpu\":\"host-passthrough\"}");
    ROUNDTRIP(struct nubo_node, nubo_node_encode, nubo_node_decode, nubo_node_free, &n);
    /* admin.c node_admin: the drain reply adds the moved instances */
    struct nubo_moved_instance mv = {U2, "web-1", "node-2", "10.64.4.2"};
    n.has_moved = true;
    n.moved = &mv;
    n.n_moved = 1;
    json_t *j = nubo_node_encode(&n);
    char *s = json_dumps(j, JSON_COMPACT);
    assert_non_null(strstr(s, ",\"moved_instances\":[{\"uuid\":\"" U2 "\",\"name\":\"web-1\","
                              "\"node\":\"node-2\",\"private_ip\":\"10.64.4.2\"}]}"));
    free(s);
    struct nubo_node back;
    assert_int_equal(nubo_node_decode(j, &back, NULL), 0);
    assert_true(back.has_moved);
    assert_int_equal(back.n_moved, 1);
    assert_string_equal(back.moved[0].private_ip, "10.64.4.2");
    nubo_node_free(&back);
    json_decref(j);
    n.n_moved = 0;
    j = nubo_node_encode(&n);
    assert_int_equal(nubo_node_decode(j, &back, NULL), 0);
    assert_true(back.has_moved); /* an empty list is still the drain reply */
    nubo_node_free(&back);
    json_decref(j);
}

static void test_metro_user(void **state)
{
    struct nubo_metro m = {.uuid = U1,
                           .name = "fra",
                           .state = "online",
                           .nodes = 2,
                           .ready_nodes = 1,
                           .memory_mb = 4096,
                           .free_memory_mb = 4000};
    /* admin.c ctl_handle_metros */
    pin(nubo_metro_encode(&m),
        "{\"status\":\"success\",\"uuid\":\"" U1 "\",\"name\":\"fra\",\"state\":\"online\","
        "\"nodes\":2,\"ready_nodes\":1,\"memory_mb\":4096,\"free_memory_mb\":4000}");
    ROUNDTRIP(struct nubo_metro, nubo_metro_encode, nubo_metro_decode, no_fini, &m);
    struct nubo_user u = {.uuid = U1, .name = "acme", .admin = true, .created_at_us = t0()};
    /* /v1/users (admin.c user_json) */
    pin(nubo_user_encode(&u), "{\"status\":\"success\",\"uuid\":\"" U1 "\",\"name\":\"acme\","
                              "\"admin\":true,\"created_at\":\"" T0 "\"}");
    snprintf(u.token, sizeof(u.token), "YWNtZTpzZWNyZXQ=");
    pin(nubo_user_encode(&u), "{\"status\":\"success\",\"uuid\":\"" U1 "\",\"name\":\"acme\","
                              "\"admin\":true,\"created_at\":\"" T0 "\","
                              "\"token\":\"YWNtZTpzZWNyZXQ=\"}");
    ROUNDTRIP(struct nubo_user, nubo_user_encode, nubo_user_decode, no_fini, &u);
}

static void fill_group(struct nubo_svc_group *g, struct nubo_api_ref *inst)
{
    memset(g, 0, sizeof(*g));
    snprintf(g->uuid, sizeof(g->uuid), U1);
    snprintf(g->name, sizeof(g->name), "young-night");
    g->created_at_us = t0();
    g->soft_limit = 1;
    g->hard_limit = 65535;
    snprintf(g->metro, sizeof(g->metro), "fra");
    g->ports[0] = (struct nubo_ingress_port){443, 8080, NUBO_HANDLER_HTTP | NUBO_HANDLER_TLS};
    g->n_ports = 1;
    g->has_services = true;
    snprintf(g->domains[0].fqdn, sizeof(g->domains[0].fqdn), "young-night.fra.nubo.test");
    snprintf(g->domains[1].fqdn, sizeof(g->domains[1].fqdn), "www.example.com");
    g->domains[1].has_cert = true;
    g->domains[1].cert = (struct nubo_api_ref){U2, "example"};
    snprintf(g->domains[1].cert_state, sizeof(g->domains[1].cert_state), "valid");
    g->n_domains = 2;
    g->instances = inst;
    g->n_instances = 1;
}

static void test_service_group(void **state)
{
    struct nubo_api_ref inst = {U2, "web-1"};
    struct nubo_svc_group g;
    fill_group(&g, &inst);
    const char *domains =
        "\"domains\":[{\"fqdn\":\"young-night.fra.nubo.test\"},"
        "{\"fqdn\":\"www.example.com\",\"certificate\":{\"uuid\":\"" U2 "\",\"name\":\"example\","
        "\"state\":\"valid\"}}]";
    const char *services =
        "\"services\":[{\"port\":443,\"destination_port\":8080,\"handlers\":[\"http\",\"tls\"]}]";
    char want[2048];
    /* services.c svc_json */
    snprintf(want, sizeof(want),
             "{\"status\":\"success\",\"uuid\":\"" U1 "\",\"name\":\"young-night\","
             "\"created_at\":\"" T0 "\",\"persistent\":false,\"autoscale\":false,"
             "\"soft_limit\":1,\"hard_limit\":65535,\"metro\":\"fra\",%s,%s,"
             "\"instances\":[{\"uuid\":\"" U2 "\",\"name\":\"web-1\"}]}",
             services, domains);
    pin(nubo_svc_group_encode(&g), want);
    /* views.c ctl_svc_to_api without instances: the short form an instance carries */
    snprintf(want, sizeof(want), "{\"uuid\":\"" U1 "\",\"name\":\"young-night\",%s,%s}", domains,
             services);
    pin(nubo_svc_group_ref_encode(&g), want);
    ROUNDTRIP(struct nubo_svc_group, nubo_svc_group_encode, nubo_svc_group_decode,
              nubo_svc_group_free, &g);
    /* the short form decodes too; without "services" the client cannot tell http from https */
    json_t *j = parse("{\"uuid\":\"" U1 "\",\"name\":\"g\",\"domains\":[{\"fqdn\":\"a.b\"}]}");
    struct nubo_svc_group back;
    assert_int_equal(nubo_svc_group_decode(j, &back, NULL), 0);
    assert_false(back.has_services);
    assert_int_equal(back.n_domains, 1);
    assert_false(back.domains[0].has_cert);
    nubo_svc_group_free(&back);
    json_decref(j);
}

static void test_certificate(void **state)
{
    struct nubo_api_ref grp = {U2, "young-night"};
    struct nubo_certificate c = {.uuid = U1,
                                 .name = "example",
                                 .created_at_us = t0(),
                                 .common_name = "*.example.com",
                                 .state = "valid",
                                 .subject = "CN=*.example.com",
                                 .issuer = "CN=test CA",
                                 .serial_number = "01AB",
                                 .not_before_us = t0(),
                                 .service_groups = &grp,
                                 .n_service_groups = 1};
    /* certificates.c cert_json */
    pin(nubo_certificate_encode(&c),
        "{\"status\":\"success\",\"uuid\":\"" U1 "\",\"name\":\"example\",\"created_at\":\"" T0
        "\",\"common_name\":\"*.example.com\",\"state\":\"valid\",\"subject\":\"CN=*.example."
        "com\",\"issuer\":\"CN=test CA\",\"serial_number\":\"01AB\",\"not_before\":\"" T0
        "\",\"not_after\":null,\"service_groups\":[{\"uuid\":\"" U2
        "\",\"name\":\"young-night\"}]}");
    ROUNDTRIP(struct nubo_certificate, nubo_certificate_encode, nubo_certificate_decode,
              nubo_certificate_free, &c);
    /* the client's request */
    struct nubo_cert_req r = {.name = "example", .cn = "www.example.com"};
    r.chain = "CHAIN";
    r.pkey = "KEY";
    json_t *j = nubo_cert_req_encode(&r);
    struct nubo_cert_req back;
    assert_int_equal(nubo_cert_req_decode(j, &back, NULL), 0);
    assert_string_equal(back.name, "example");
    assert_string_equal(back.pkey, "KEY");
    nubo_cert_req_free(&back);
    json_decref(j);
}

static void test_item_status_and_log(void **state)
{
    /* deletes of instances, groups, certificates (views.c ctl_item_ok): the success item */
    struct nubo_item_status ok = {.ok = true, .uuid = U1, .name = "web-1"};
    pin(nubo_item_status_encode(&ok),
        "{\"status\":\"success\",\"uuid\":\"" U1 "\",\"name\":\"web-1\"}");
    /* waits.c ctl_wait_hopeless_item: the error with the state it stopped in */
    struct nubo_item_status bad = {.uuid = U1,
                                   .name = "web-1",
                                   .message = "instance web-1 stopped",
                                   .error = 409,
                                   .has_state = true,
                                   .state = NUBO_STATE_STOPPED,
                                   .has_stop_reason = true,
                                   .stop_reason = 3};
    pin(nubo_item_status_encode(&bad),
        "{\"status\":\"error\",\"message\":\"instance web-1 stopped\",\"error\":409,\"uuid\":\"" U1
        "\",\"name\":\"web-1\",\"state\":\"stopped\",\"stop_reason\":3}");
    ROUNDTRIP(struct nubo_item_status, nubo_item_status_encode, nubo_item_status_decode, no_fini,
              &bad);
    ROUNDTRIP(struct nubo_item_status, nubo_item_status_encode, nubo_item_status_decode, no_fini,
              &ok);
    /* a listing item carries no status: it is a success */
    json_t *j = parse("{\"uuid\":\"" U1 "\",\"name\":\"web-1\",\"state\":\"running\"}");
    struct nubo_item_status st;
    assert_int_equal(nubo_item_status_decode(j, &st, NULL), 0);
    assert_true(st.ok);
    json_decref(j);

    /* instances.c do_log */
    struct nubo_log_window w = {.uuid = U1,
                                .name = "web-1",
                                .data = (unsigned char *)"hi\n",
                                .len = 3,
                                .available_start = 0,
                                .available_end = 10,
                                .has_range = true,
                                .range_start = 7,
                                .range_end = 10,
                                .state = NUBO_STATE_RUNNING};
    pin(nubo_log_window_encode(&w),
        "{\"status\":\"success\",\"uuid\":\"" U1 "\",\"name\":\"web-1\",\"output\":\"aGkK\","
        "\"available\":{\"start\":0,\"end\":10},\"range\":{\"start\":7,\"end\":10},"
        "\"state\":\"running\"}");
    j = nubo_log_window_encode(&w);
    struct nubo_log_window back;
    assert_int_equal(nubo_log_window_decode(j, &back, NULL), 0);
    assert_int_equal(back.len, 3);
    assert_memory_equal(back.data, "hi\n", 3);
    assert_int_equal(back.range_end, 10);
    assert_int_equal(back.state, NUBO_STATE_RUNNING);
    nubo_log_window_free(&back);
    json_decref(j);
}

static void test_instance_phases_and_group(void **state)
{
    struct nubo_api_ref inst = {U2, "web-1"};
    struct nubo_svc_group g;
    fill_group(&g, &inst);
    g.n_instances = 0; /* the short form carries none */
    struct nubo_instance in = {
        .uuid = U1,
        .name = "web-1",
        .state = NUBO_STATE_RUNNING,
        .created_at_us = t0(),
        .boot_time_us = 15090,
        .boot_phases = {.image_us = 1200, .domain_us = 800, .vmm_us = 9000, .guest_us = 6090,
                        .slot_us = 0, .copy_us = 0},
        .service_group = &g};
    json_t *j = nubo_instance_encode(&in, true);
    char *s = json_dumps(j, JSON_COMPACT);
    assert_non_null(strstr(s, "\"net_time_us\":0,\"boot_phases\":{\"image_us\":1200,"
                              "\"domain_us\":800,\"vmm_us\":9000,\"guest_us\":6090,"
                              "\"slot_us\":0,\"copy_us\":0},"));
    /* views.c ctl_instance_json: the group comes last */
    assert_non_null(strstr(s, "\"service_group\":{\"uuid\":\"" U1 "\""));
    assert_int_equal(s[strlen(s) - 1], '}');
    free(s);
    struct nubo_instance back;
    assert_int_equal(nubo_instance_decode(j, &back, NULL), 0);
    assert_int_equal(back.boot_phases.vmm_us, 9000);
    assert_int_equal(back.boot_phases.slot_us, 0);
    assert_non_null(back.service_group);
    assert_string_equal(back.service_group->domains[1].cert.name, "example");
    json_t *again = nubo_instance_encode(&back, true);
    assert_true(json_equal(j, again));
    json_decref(again);
    nubo_instance_free(&back);
    json_decref(j);
    /* without details there are no phases */
    j = nubo_instance_encode(&in, false);
    assert_null(json_object_get(j, "boot_phases"));
    json_decref(j);
}

static void test_requests_and_envelope(void **state)
{
    struct nubo_image_query q = {.tag = "acme/app:latest"};
    pin(nubo_image_query_encode(&q), "{\"tag\":\"acme/app:latest\"}");
    snprintf(q.digest, sizeof(q.digest), "acme/app@sha256:aa");
    pin(nubo_image_query_encode(&q), "{\"digest\":\"acme/app@sha256:aa\"}");

    /* a create with an inline group: the platform decides memory, vCPUs and the policy */
    struct nubo_create_req r;
    nubo_create_req_init(&r);
    r.memory_mb = r.vcpus = 0;
    r.autostart = true;
    snprintf(r.image, sizeof(r.image), "acme/app:latest");
    struct nubo_svc_create_req *sg = malloc(sizeof(*sg));
    nubo_svc_create_req_init(sg);
    sg->ports[0] = (struct nubo_ingress_port){443, 8080, NUBO_HANDLER_HTTP | NUBO_HANDLER_TLS};
    sg->n_ports = 1;
    r.service_group = sg;
    pin(nubo_create_req_encode(&r),
        "{\"image\":\"acme/app:latest\",\"autostart\":true,\"service_group\":{\"services\":"
        "[{\"port\":443,\"destination_port\":8080,\"handlers\":[\"http\",\"tls\"]}]}}");
    nubo_create_req_free(&r);

    json_t *env = parse("{\"status\":\"partial_success\",\"message\":\"1 of 2 items failed\","
                        "\"data\":{\"instances\":[{\"status\":\"error\",\"message\":\"instance "
                        "x not found\",\"error\":404},{\"status\":\"success\"}]}}");
    char msg[NUBO_ERR_MSG_MAX];
    assert_false(nubo_envelope_failed(env));
    nubo_envelope_message(env, msg, sizeof(msg));
    assert_string_equal(msg, "instance x not found");
    json_decref(env);
    env = parse("{\"status\":\"error\",\"message\":\"no such endpoint\"}");
    assert_true(nubo_envelope_failed(env));
    nubo_envelope_message(env, msg, sizeof(msg));
    assert_string_equal(msg, "no such endpoint");
    json_decref(env);
}

static void test_decoders_check_bounds(void **state)
{
    static const struct {
        int kind; /* 0 node, 1 metro, 2 group, 3 cert, 4 user, 5 log, 6 instance */
        const char *json;
    } bad[] = {
        {0, "{\"name\":\"a234567890123456789012345678901234567890123456789012345678901234\"}"},
        {0, "{\"memory_mb\":\"4096\"}"},
        {0, "{\"moved_instances\":[1]}"},
        {1, "{\"nodes\":-1}"},
        {1, "[]"},
        {2, "{\"services\":[{\"port\":70000}]}"},
        {2, "{\"services\":[{\"port\":80,\"handlers\":[\"gzip\"]}]}"},
        {2, "{\"domains\":[{\"fqdn\":1}]}"},
        {2, "{\"instances\":[\"web\"]}"},
        {3, "{\"not_after\":\"tomorrow\"}"},
        {3, "{\"service_groups\":{}}"},
        {4, "{\"admin\":\"yes\"}"},
        {5, "{\"output\":\"!!notbase64!!\"}"},
        {5, "{\"range\":{\"end\":-1}}"},
        {6, "{\"boot_phases\":{\"vmm_us\":-1}}"},
        {6, "{\"service_group\":{\"soft_limit\":70000}}"},
        {6, "{\"uuid\":\"0b0f5c4e-3a55-4c1b-9d63-8f1e2a7b9c01-too-long\"}"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = parse(bad[i].json);
        struct nubo_err err = {0};
        int rc = 0;
        union {
            struct nubo_node n;
            struct nubo_metro m;
            struct nubo_svc_group g;
            struct nubo_certificate c;
            struct nubo_user u;
            struct nubo_log_window w;
            struct nubo_instance in;
        } *o = malloc(sizeof(*o));
        switch (bad[i].kind) {
        case 0:
            rc = nubo_node_decode(j, &o->n, &err);
            break;
        case 1:
            rc = nubo_metro_decode(j, &o->m, &err);
            break;
        case 2:
            rc = nubo_svc_group_decode(j, &o->g, &err);
            break;
        case 3:
            rc = nubo_certificate_decode(j, &o->c, &err);
            break;
        case 4:
            rc = nubo_user_decode(j, &o->u, &err);
            break;
        case 5:
            rc = nubo_log_window_decode(j, &o->w, &err);
            break;
        default:
            rc = nubo_instance_decode(j, &o->in, &err);
            break;
        }
        free(o);
        if (rc == 0)
            fail_msg("accepted: %s", bad[i].json);
        assert_true(strlen(err.msg) > 0);
        assert_null(strchr(err.msg, '\n'));
        json_decref(j);
    }
    /* lenient: unknown fields are ignored, missing ones are zero */
    json_t *j = parse("{\"name\":\"n1\",\"future_field\":{\"x\":1}}");
    struct nubo_node n;
    assert_int_equal(nubo_node_decode(j, &n, NULL), 0);
    assert_string_equal(n.name, "n1");
    assert_int_equal(n.memory_mb, 0);
    nubo_node_free(&n);
    json_decref(j);
    /* lists: every element decoded, the failing one named */
    j = parse("[{\"name\":\"a\"},{\"nodes\":\"x\"}]");
    struct nubo_metro *v;
    size_t cnt;
    struct nubo_err err = {0};
    assert_int_equal(nubo_metro_list_decode(j, 8, &v, &cnt, &err), -1);
    assert_non_null(strstr(err.msg, "[1]"));
    assert_int_equal(nubo_metro_list_decode(j, 1, &v, &cnt, &err), -1);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node),
        cmocka_unit_test(test_metro_user),
        cmocka_unit_test(test_service_group),
        cmocka_unit_test(test_certificate),
        cmocka_unit_test(test_item_status_and_log),
        cmocka_unit_test(test_instance_phases_and_group),
        cmocka_unit_test(test_requests_and_envelope),
        cmocka_unit_test(test_decoders_check_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
