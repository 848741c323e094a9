/* Autoscale inside nubo-controller: what crosses files, grouped by floor like ctl.h. The model
 * (model_autoscale.c) keeps each configured group's settings, the replicas it made and the
 * last metrics, and a timer that adds replicas cloned from the master or removes them; the
 * store (store_autoscale.c) keeps configurations and the replicas' marks; the handlers
 * (autoscale.c) answer /v1/services/autoscale and /v1/services/{uuid}/autoscale[/policies]. */
#ifndef NUBO_CTL_AUTOSCALE_H
#define NUBO_CTL_AUTOSCALE_H

#include "autoscale.h"
#include "ctl.h"

#define CTL_AS_TICK_MS 250            /* how often the loop looks at every configured group */
#define CTL_AS_SAMPLE_MAX_AGE_MS 3000 /* an ingress or agent figure older than this is unknown */

/* ---- store_autoscale.c (migration 6 -> 7 in store.c) ---- */
/* config: the configuration as nubo_as_config_req_encode writes it (group and master by uuid). */
int ctl_store_as_put(struct ctl_store *s, const char *svc_uuid, const char *config,
                     struct nubo_err *err);
/* The configuration and the marks of its replicas. */
int ctl_store_as_delete(struct ctl_store *s, const char *svc_uuid, struct nubo_err *err);
int ctl_store_as_replica_put(struct ctl_store *s, const char *inst_uuid, const char *svc_uuid,
                             struct nubo_err *err);
int ctl_store_as_replica_delete(struct ctl_store *s, const char *inst_uuid, struct nubo_err *err);
int ctl_store_as_load(struct ctl_store *s,
                      int (*config_cb)(void *arg, const char *svc_uuid, const char *config),
                      int (*replica_cb)(void *arg, const char *inst_uuid, const char *svc_uuid),
                      void *arg, struct nubo_err *err);

/* ---- model_autoscale.c ---- */
struct ctl_as_group; /* one configured group */
/* Load the configurations (after the instances) and start the loop on ctx->base. */
int ctl_autoscale_start(struct ctl_ctx *ctx, struct nubo_err *err);
void ctl_autoscale_free(struct ctl_ctx *ctx);
struct ctl_as_group *ctl_autoscale_of(struct ctl_ctx *ctx, const char *svc_uuid);
/* The configuration of g as the API shows it (out's policies malloc'd: nubo_as_config_free). */
void ctl_autoscale_view(struct ctl_ctx *ctx, const struct ctl_svc *g, struct nubo_as_config *out);
/* Configure g for u from req (validated: master in the group, sizes within the quota);
 * committed before it returns. 409 (code 26) when g has a configuration. */
int ctl_autoscale_create(struct ctl_ctx *ctx, const struct ctl_user_row *u, struct ctl_svc *g,
                         const struct nubo_as_config *req, struct nubo_err *err);
/* Remove g's configuration: its replicas are deleted, a stopped master is started. */
int ctl_autoscale_delete(struct ctl_ctx *ctx, struct ctl_svc *g, struct nubo_err *err);
int ctl_autoscale_policy_add(struct ctl_ctx *ctx, struct ctl_svc *g, const struct nubo_as_policy *p,
                             struct nubo_err *err);
/* 404 when g has no policy named name. */
int ctl_autoscale_policy_delete(struct ctl_ctx *ctx, struct ctl_svc *g, const char *name,
                                struct nubo_err *err);
/* An ingress's traffic report: the in-flight figures of the configured groups' instances. */
void ctl_autoscale_traffic(struct ctl_ctx *ctx, const struct nubo_ingress_traffic *t);
/* One evaluation of every configured group at now_us (the timer's; tests call it). */
void ctl_autoscale_tick(struct ctl_ctx *ctx, int64_t now_us);

/* ---- autoscale.c (handlers) ---- */
/* Is rest (after /v1/services) an autoscale path: /autoscale or /{ref}/autoscale[/...]? */
bool ctl_autoscale_path(const char *rest);
int ctl_handle_autoscale(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                         struct nubo_err *err);

#endif
