/* OCI distribution client (libcurl): the one way every nubo binary talks to a registry.
 * Blocking calls; callers that live in an event loop run them on a worker thread. */
#ifndef NUBO_REGISTRY_H
#define NUBO_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "http.h"

#define NUBO_MEDIA_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define NUBO_MEDIA_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define NUBO_MEDIA_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define NUBO_MEDIA_OCI_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"
#define NUBO_MEDIA_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define NUBO_MEDIA_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"

#define NUBO_MANIFEST_MAX (4u << 20) /* a manifest or index larger than this is refused */
#define NUBO_REGISTRY_TOKEN_MAX 8192 /* a bearer token (JWT) from a token service */

/* Supplies a registry bearer token for a challenge (the distribution token scheme) instead of
 * asking the realm over HTTP: the controller signs its own, the agent asks through its
 * controller connection. scope is one or more space-separated "repository:<name>:<actions>".
 * Returns 0 with out set, or -1 with err. Called from the thread running the registry call. */
typedef int (*nubo_registry_token_fn)(void *opaque, const char *realm, const char *service,
                                      const char *scope, char *out, size_t size,
                                      struct nubo_err *err);

/* Where a registry is: base URL ("http://127.0.0.1:5000") and optionally a unix socket
 * that carries the HTTP (then the URL's host is only the Host header). */
struct nubo_registry {
    char url[256];
    char unix_path[108];
    char user[128];     /* basic auth (to the registry, or to its token realm), optional */
    char password[256];
    /* Offered to the token realm as "Authorization: Bearer" when no user is set: the nubo API
     * token (the controller's realm accepts it). Never sent to the registry itself. */
    char realm_token[512];
    /* Ask the token service here instead of at the challenge's realm: a node in a namespace
     * reaches the controller only over its socket. "" = the realm the registry names. */
    char realm_url[256];
    char realm_unix_path[108];
    /* Or the controllers' token service (/registry/token) through a controller list (http.h):
     * whichever controller answers. Not owned; outlives the registry calls. */
    struct nu_http_targets *realm_targets;
    char ca_file[256]; /* https (the registry or its token realm): trust this CA; "" = system's */
    nubo_registry_token_fn token_fn; /* non-NULL: tokens come from here, not the realm */
    void *token_opaque;
    long timeout_ms;    /* whole-request cap for small requests; 0 = 30 s */
    int retries;        /* retries on connect errors and 5xx; 0 = 2 */
};

/* A parsed reference: "acme/app:latest", "acme/app@sha256:…", "127.0.0.1:5000/acme/app:tag". */
struct nubo_image_ref {
    char host[256];       /* empty when none was given */
    char repo[256];       /* "acme/app" */
    char tag[128];        /* empty when a digest was given */
    char digest[80];      /* "sha256:…" or empty */
};
int nubo_image_ref_parse(const char *s, struct nubo_image_ref *out, struct nubo_err *err);
/* "repo@digest" or "repo:tag" (no host). */
void nubo_image_ref_format(const struct nubo_image_ref *ref, char *buf, size_t size);

/* GET a manifest or index by tag or digest with OCI + Docker Accept headers.
 * On success *body (malloc'd, NUL-terminated), *media_type (malloc'd) and digest_out
 * ("sha256:…", computed from the body and checked against the reference when it is a
 * digest) are set. HTTP 404 -> err->http_status = 404. */
int nubo_registry_get_manifest(const struct nubo_registry *reg, const char *repo,
                               const char *tag_or_digest, char **body, size_t *len,
                               char **media_type, char digest_out[80], struct nubo_err *err);

/* Stream a blob into fd, verifying its sha256 while it streams; at most max_bytes
 * (0 = no limit). A mismatch or a short body fails with a message naming the digest. */
int nubo_registry_get_blob_fd(const struct nubo_registry *reg, const char *repo,
                              const char *digest, int fd, uint64_t max_bytes, uint64_t *size_out,
                              struct nubo_err *err);
/* Small blobs (configs) into memory, verified; at most max_bytes. */
int nubo_registry_get_blob_mem(const struct nubo_registry *reg, const char *repo,
                               const char *digest, size_t max_bytes, char **out, size_t *len,
                               struct nubo_err *err);

/* HEAD a blob: 1 = present, 0 = absent, -1 = error. */
int nubo_registry_blob_exists(const struct nubo_registry *reg, const char *repo,
                              const char *digest, struct nubo_err *err);

/* Upload a blob from a file (chunked PATCH uploads, then PUT ?digest=); skips the upload
 * when HEAD says the registry has it. progress may be NULL. */
typedef void (*nubo_progress_fn)(void *opaque, uint64_t done, uint64_t total);
int nubo_registry_put_blob_file(const struct nubo_registry *reg, const char *repo,
                                const char *path, const char *digest, nubo_progress_fn progress,
                                void *opaque, struct nubo_err *err);
int nubo_registry_put_blob_mem(const struct nubo_registry *reg, const char *repo,
                               const void *data, size_t len, const char *digest,
                               struct nubo_err *err);

/* PUT a manifest or index under a tag or digest. */
int nubo_registry_put_manifest(const struct nubo_registry *reg, const char *repo,
                               const char *tag_or_digest, const char *media_type,
                               const void *body, size_t len, struct nubo_err *err);

/* DELETE a manifest by digest. */
int nubo_registry_delete_manifest(const struct nubo_registry *reg, const char *repo,
                                  const char *digest, struct nubo_err *err);

/* GET /v2/_catalog and /v2/<repo>/tags/list: malloc'd JSON text. */
int nubo_registry_get_json(const struct nubo_registry *reg, const char *path, char **out,
                           struct nubo_err *err);

/* Cross-repository blob mount (distribution API): an app image reuses its runtime's kernel layer
 * without uploading it again. POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<from_repo>.
 * 1 = the blob is now in repo, 0 = the registry would not mount it (any upload session it
 * opened instead is cancelled), -1 = error. */
int nubo_registry_mount_blob(const struct nubo_registry *reg, const char *repo,
                             const char *digest, const char *from_repo, struct nubo_err *err);

#endif
