/* Cross-repository blob mounts (distribution API): an app image reuses its runtime's kernel
 * layer without uploading it again. An addition next to registry.h, whose interface is fixed. */
#ifndef NUBO_REGISTRY_MOUNT_H
#define NUBO_REGISTRY_MOUNT_H

#include "registry.h"

/* POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<from_repo>.
 * 1 = the blob is now in repo, 0 = the registry would not mount it (any upload session it
 * opened instead is cancelled), -1 = error. */
int nubo_registry_mount_blob(const struct nubo_registry *reg, const char *repo,
                             const char *digest, const char *from_repo, struct nubo_err *err);

#endif
