/* libFuzzer target: nubo-ingress's plan, HAProxy config text and runtime commands for any
 * watch reply that decodes. Properties: the same reply applied twice gives the same shape and
 * no runtime commands; every generated line is one line (no newline smuggled in by a name). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingress_core.h"
#include "log.h"
#include "pjson.h"

static void one_line(const char *s)
{
    if (strchr(s, '\n') || strchr(s, '\r'))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        log_init("fuzz", NUBO_LOG_ERROR);
        init = 1;
    }
    json_t *j = NULL;
    if (pj_parse((const char *)data, size, NUBO_INGRESS_MAX_BODY, &j, NULL) < 0)
        return 0;
    struct nubo_ingress_watch_resp w;
    if (nubo_ingress_watch_resp_decode(j, &w, NULL) < 0) {
        json_decref(j);
        return 0;
    }
    json_decref(j);
    struct ing_config c;
    ing_config_defaults(&c);
    struct ing_node_reach nodes[2] = {{"fra-1", "nubo-dc-fra-1"}, {"fra-2", ""}};
    c.nodes = nodes;
    c.n_nodes = 2;
    struct ing_plan p1, p2;
    if (ing_plan_build(&c, &w, NULL, &p1, NULL) == 0) {
        if (ing_plan_build(&c, &w, &p1, &p2, NULL) != 0)
            abort();
        char *s1 = ing_render_config(&c, &p1, true), *s2 = ing_render_config(&c, &p2, true);
        char *full = ing_render_config(&c, &p2, false);
        if (!s1 || !s2 || !full || strcmp(s1, s2) != 0)
            abort();
        struct ing_cmds cmds;
        if (ing_runtime_cmds(&c, &p1, &p2, &cmds, NULL) == 0) {
            if (cmds.n != 0)
                abort();
            ing_cmds_free(&cmds);
        }
        /* from nothing to this reply: every command is one line */
        struct ing_plan empty = {0};
        if (ing_runtime_cmds(&c, &empty, &p2, &cmds, NULL) == 0) {
            for (size_t i = 0; i < cmds.n; i++)
                one_line(cmds.v[i]);
            ing_cmds_free(&cmds);
        }
        for (size_t i = 0; i < p2.n_frontends; i++) {
            char *m = ing_render_map(&p2, p2.frontends[i].port);
            if (!m)
                abort();
            free(m);
        }
        free(s1);
        free(s2);
        free(full);
        ing_plan_free(&p1);
        ing_plan_free(&p2);
    }
    nubo_ingress_watch_resp_free(&w);
    return 0;
}
