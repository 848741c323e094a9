/* libFuzzer target: the service-group, certificate, ingress-watch and scale-to-zero
 * (traffic, wake) and left-out ports decoders on arbitrary bytes; what decodes must re-encode and decode to the same thing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingress.h"
#include "service.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = NULL;
    if (pj_parse((const char *)data, size, NUBO_INGRESS_MAX_BODY, &j, NULL) < 0)
        return 0;
    for (int inl = 0; inl < 2; inl++) {
        struct nubo_svc_create_req r, r2;
        if (nubo_svc_create_req_decode(j, inl, &r, NULL) == 0) {
            json_t *b = nubo_svc_create_req_encode(&r, inl);
            if (nubo_svc_create_req_decode(b, inl, &r2, NULL) != 0 || r2.n_ports != r.n_ports ||
                r2.n_domains != r.n_domains || r2.hard_limit != r.hard_limit ||
                memcmp(r2.ports, r.ports, r.n_ports * sizeof(r.ports[0])) != 0)
                abort();
            json_decref(b);
        }
    }
    struct nubo_svc_patch p;
    nubo_svc_patch_decode(j, "", true, &p, NULL);
    nubo_svc_patch_decode(j, "", false, &p, NULL);
    struct nubo_cert_req c;
    if (nubo_cert_req_decode(j, &c, NULL) == 0)
        nubo_cert_req_free(&c);
    struct nubo_ingress_watch_resp w;
    if (nubo_ingress_watch_resp_decode(j, &w, NULL) == 0) {
        json_t *b = nubo_ingress_watch_resp_encode(&w);
        struct nubo_ingress_watch_resp w2;
        if (nubo_ingress_watch_resp_decode(b, &w2, NULL) != 0 || w2.n_services != w.n_services ||
            w2.n_certificates != w.n_certificates || w2.version != w.version)
            abort();
        nubo_ingress_watch_resp_free(&w2);
        json_decref(b);
        nubo_ingress_watch_resp_free(&w);
    }
    struct nubo_ingress_traffic t;
    if (nubo_ingress_traffic_decode(j, &t, NULL) == 0) {
        json_t *b = nubo_ingress_traffic_encode(&t);
        struct nubo_ingress_traffic t2;
        if (nubo_ingress_traffic_decode(b, &t2, NULL) != 0 || t2.n_instances != t.n_instances ||
            (t.n_instances &&
             memcmp(t2.instances, t.instances, t.n_instances * sizeof(t.instances[0])) != 0))
            abort();
        nubo_ingress_traffic_free(&t2);
        json_decref(b);
        nubo_ingress_traffic_free(&t);
    }
    static struct nubo_ingress_ports_report pr, pr2;
    if (nubo_ingress_ports_report_decode(j, &pr, NULL) == 0) {
        json_t *b = nubo_ingress_ports_report_encode(&pr);
        if (nubo_ingress_ports_report_decode(b, &pr2, NULL) != 0 ||
            pr2.n_left_out != pr.n_left_out ||
            memcmp(pr2.left_out, pr.left_out, pr.n_left_out * sizeof(pr.left_out[0])) != 0)
            abort();
        json_decref(b);
    }
    struct nubo_ingress_wake_req wr;
    struct nubo_ingress_wake_resp ws;
    nubo_ingress_wake_req_decode(j, &wr, NULL);
    nubo_ingress_wake_resp_decode(j, &ws, NULL);
    json_decref(j);
    return 0;
}
