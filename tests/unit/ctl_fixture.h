/* The fixture the controller's model tests share (test_ctl_*.c): a temporary directory, a
 * ctl_ctx loaded from a store in it the way the controller starts, registered nodes, the user
 * acme and the image it places from, and the agents' status reports. Include after cmocka.h. */
#ifndef NUBO_TEST_CTL_FIXTURE_H
#define NUBO_TEST_CTL_FIXTURE_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "store_target.h"
#include "util.h"

/* setup: a fresh directory /tmp/nubo-NAME-XXXXXX, its path in dir */
static inline void fix_dir_new(char *dir, size_t size, const char *name)
{
    snprintf(dir, size, "/tmp/nubo-%s-XXXXXX", name);
    assert_non_null(mkdtemp(dir));
}

/* teardown: the directory and all in it gone (0), as cmocka's teardown returns */
static inline int fix_dir_remove(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A context with the default configuration; set what loading needs (events, token files),
 * then fix_ctx_load. */
static inline struct ctl_ctx *fix_ctx_new(void)
{
    struct ctl_ctx *ctx = xcalloc(1, sizeof(*ctx));
    ctl_config_defaults(&ctx->cfg);
    return ctx;
}

/* Open the store named ctl in dir (fresh: an empty one, else what the last context left) and
 * load the working set from it. */
static inline struct ctl_ctx *fix_ctx_load(struct ctl_ctx *ctx, const char *dir, bool fresh)
{
    char path[PATH_MAX];
    struct nubo_err err = {0};
    store_target(path, sizeof(path), dir, "ctl", fresh);
    if (ctl_store_open(&ctx->store, path, false, &err) < 0 || ctl_state_load(ctx, &err) < 0)
        fail_msg("%s", err.msg);
    return ctx;
}

static inline void fix_ctx_free(struct ctl_ctx *ctx)
{
    ctl_state_free(ctx);
    ctl_store_close(&ctx->store);
    free(ctx);
}

/* Register node NAME (4 vcpus, tcg) in METRO; its token authenticates it. */
static inline struct ctl_node *fix_add_node(struct ctl_ctx *ctx, const char *name,
                                            const char *metro, int64_t memory_mb)
{
    struct nubo_register_req rq = {.memory_mb = memory_mb, .vcpus = 4};
    snprintf(rq.name, sizeof(rq.name), "%s", name);
    snprintf(rq.metro, sizeof(rq.metro), "%s", metro);
    snprintf(rq.accel, sizeof(rq.accel), "tcg");
    char token[NUBO_AGENT_TOKEN_MAX];
    struct ctl_node *node = NULL;
    struct nubo_err err = {0};
    assert_int_equal(ctl_node_register(ctx, &rq, NULL, token, &node, &err), 0);
    assert_non_null(node);
    assert_ptr_equal(ctl_auth_node(ctx, token), node);
    return node;
}

/* The user the tests create as, and the image they create from. */
static inline const struct ctl_user_row *fix_acme(void)
{
    static const struct ctl_user_row acme = {.uuid = "u-acme", .name = "acme"};
    return &acme;
}

static inline const struct ctl_image_row *fix_image(void)
{
    static const struct ctl_image_row image = {
        .digest_ref =
            "acme/web@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        .repo = "acme/web",
        .owner = "acme",
    };
    return &image;
}

/* A create request as the API decodes one: NAME from the image, started. */
static inline void fix_create_req(struct nubo_create_req *cr, const char *name)
{
    nubo_create_req_init(cr);
    cr->autostart = true;
    snprintf(cr->name, sizeof(cr->name), "%s", name);
    snprintf(cr->image, sizeof(cr->image), "%s", fix_image()->digest_ref);
}

/* Place cr (freed here) as acme, in service group sg (NULL: none); made[] gets the instances.
 * Returns how many were made, -1 with err set when the create was refused. */
static inline int fix_place(struct ctl_ctx *ctx, struct nubo_create_req *cr, json_t *sg,
                            struct ctl_instance **made, struct nubo_err *err)
{
    size_t n = 0;
    int rc = ctl_place(ctx, fix_acme(), cr, fix_image(), sg, made, &n, err);
    nubo_create_req_free(cr);
    return rc < 0 ? -1 : (int)n;
}

/* The node's report that in is in state st, for this start, started just now. */
static inline struct nubo_status_report fix_report(const struct ctl_instance *in,
                                                   enum nubo_state st)
{
    struct nubo_status_report r = {0};
    memcpy(r.uuid, in->row.uuid, sizeof(r.uuid));
    r.state = st;
    r.start_seq = in->row.start_seq;
    r.start_count = 1;
    r.started_at_us = nubo_now_us();
    return r;
}

#endif
