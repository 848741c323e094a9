/* The store's side of the user lifecycle (issue 11, observation 8): revoking a token, deleting
 * a user. Statements are prepared per call, as in store_volumes.c: both happen at human speed. */
#include <stdio.h>
#include <string.h>

#include "store.h"

int ctl_store_token_delete(struct ctl_store *s, const char *hash, struct nubo_err *err)
{
    return ctl_store_exec_text(s, "DELETE FROM tokens WHERE hash=?", hash, NULL, "revoking a token",
                               err);
}

int ctl_store_user_delete(struct ctl_store *s, const char *uuid, struct nubo_err *err)
{
    /* the rows that reference the user first (foreign keys are on) */
    if (ctl_store_exec_text(s, "DELETE FROM tokens WHERE user_uuid=?", uuid, NULL,
                            "deleting a user's tokens", err) < 0 ||
        ctl_store_exec_text(s, "DELETE FROM quotas WHERE user_uuid=?", uuid, NULL,
                            "deleting a user's quotas", err) < 0)
        return -1;
    return ctl_store_exec_text(s, "DELETE FROM users WHERE uuid=?", uuid, NULL, "deleting a user",
                               err);
}
