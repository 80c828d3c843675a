/* limits.c: a user's query limits and resource group (limits.h). Not for time-limit
 * enforcement (pgwire.c and http.c watch their statements). */
#include "server/limits.h"

#include "access/principal.h"

struct member_ctx {
    struct catalog *cat;
    const char *user;
};

static bool member_of(void *ctx, const char *role)
{
    struct member_ctx *m = ctx;
    return principal_member_of(m->cat, m->user, role);
}

int limits_resolve(const struct loch_config *cfg, struct catalog *cat, const char *user, struct engine *eng,
                   struct engine_pool *pool, struct config_limits *out, struct engine **eng_out,
                   struct engine **restricted_out, struct loch_err *err)
{
    struct member_ctx m = {cat, user};
    bool admin = principal_is_admin(cat, user);
    config_query_limits(cfg, user, admin, member_of, &m, out);
    *eng_out = NULL;
    *restricted_out = NULL;
    if (!pool) {
        *eng_out = admin ? eng : NULL;
        return 0;
    }
    int rc = admin ? engine_pool_get(pool, out->memory_mb, false, eng_out, err) : 0;
    if (!rc)
        rc = engine_pool_get(pool, out->memory_mb, true, restricted_out, err);
    if (rc)
        loch_err_prefix(err, "opening the query engine for a memory limit of %lld MB (%s)", (long long)out->memory_mb,
                        out->memory_from);
    return rc;
}
