/* limits.h: the query limits of a session's user (query.timeout_ms / memory_mb and their
 * query.roles entries, with role membership from access/) and the engine that carries
 * the memory limit. Shared by both servers. Not for enforcing time limits (each server
 * watches its own statements) or for parsing the config (config.c). */
#ifndef LOCH_SERVER_LIMITS_H
#define LOCH_SERVER_LIMITS_H

#include "base/err.h"
#include "catalog/catalog.h"
#include "config.h"
#include "engine/engine.h"

/* Resolves user's limits (config_query_limits; membership is principal_member_of, so
 * transitive; non-administrators get query.non_admin_* as defaults) into *out, and picks the engines its sessions connect to (query_env): for
 * an administrator, *eng_out is the pool's engine for out->memory_mb (the process engine
 * when that is the global value), or eng itself when pool is NULL; for everyone, and
 * administrators too (a session whose admin role is revoked goes on there),
 * *restricted_out is the pool's restricted engine for that limit (NULL without a pool).
 * A non-administrator's *eng_out is NULL: nothing of theirs runs on the process engine.
 * On error (an engine that cannot be opened) LOCH_EENGINE with the limit named. */
int limits_resolve(const struct loch_config *cfg, struct catalog *cat, const char *user, struct engine *eng,
                   struct engine_pool *pool, struct config_limits *out, struct engine **eng_out,
                   struct engine **restricted_out, struct loch_err *err);

#endif
