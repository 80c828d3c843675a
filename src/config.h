/* config.h: loch.yaml -> struct loch_config, with errors that name file, line and what is
 * expected. Not for runtime state (catalog/). */
#ifndef LOCH_CONFIG_H
#define LOCH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/mem.h"

struct loch_source {
    const char *name;         /* first namespace level */
    const char *type;         /* "postgres" | "mysql" */
    const char *url;
    const char *password_env; /* may be NULL */
    const char **tables;      /* include globs */
    size_t n_tables;
    const char **exclude;
    size_t n_exclude;
    const char *slot, *publication; /* postgres; NULL = derived */
    int64_t server_id;              /* mysql; 0 = derived */
};

/* One entry of query.roles: limits for a role (its members) or a user. A key that is
 * not set does not apply (has_* false); 0 means "no limit" (see config_query_limits). */
struct loch_query_role {
    const char *name;           /* role or user name */
    int64_t timeout_ms, memory_mb;
    bool has_timeout, has_memory;
};

struct loch_config {
    const char *path;       /* the file read (absolute) */
    const char *warehouse;  /* absolute path or URI */
    const char *state_dir;  /* absolute path */
    const char *sql_listen; /* default 127.0.0.1:5433 */
    const char *http_listen;/* default 127.0.0.1:8181 */
    const char *tls_mode;   /* "off" | "optional" | "required"; default "off" */
    const char *tls_cert, *tls_key;
    /* pgwire slots (see pgwire.c): */
    int64_t max_connections;            /* default 512 */
    int64_t reserved_admin_connections; /* of max_connections, for administrators; default 3 */
    int64_t startup_per_address;        /* connections not logged in yet, per address; default 16 */
    int64_t login_timeout_ms;           /* from connect to logged in, both servers; default 60000 */
    int64_t login_backoff_ms;           /* first back-off after a failed login; 0 = none; default 1000 */
    int64_t login_backoff_max_ms;       /* longest back-off; default 60000 */
    int64_t http_max_connections;       /* default 256 */
    int64_t http_per_address;           /* default 64 */
    bool metrics_open;                  /* GET /metrics without a token; default false */
    int64_t flush_interval_ms;  /* default 1000 */
    /* maintenance: (loch serve and loch replicate maintain tables by themselves) */
    struct loch_maintenance {
        bool enabled;              /* default true */
        int64_t interval_s;        /* look at the tables every interval_s; default 60 */
        int64_t min_files;         /* compact once a table has this many live files; default 32 */
        double small_file_ratio;   /* ... and this fraction of its data files is small; default 0.5 */
        double delete_ratio;       /* or this fraction of its rows is deleted; default 0.1 */
        int64_t snapshot_age_s;    /* snapshots older than this expire; default 3600 */
        int64_t orphan_age_s;      /* unreferenced files older than this go; default 86400 */
        int64_t target_file_size;  /* bytes; default 268435456 (256 MB) */
    } maintenance;
    int64_t query_timeout_ms;   /* 0 = none */
    int64_t query_memory_mb;    /* 0 = DuckDB default */
    int64_t non_admin_timeout_ms; /* default for non-administrators; 0 = none; default 300000 */
    int64_t non_admin_memory_mb;  /* default for non-administrators; 0 = none; default half the RAM */
    int threads;                /* DuckDB threads; 0 = all cores */
    int64_t token_default_expiry_days; /* auth.token_default_expiry_days; default 30 */
    int64_t token_max_expiry_days;     /* auth.token_max_expiry_days; default 365 */
    struct loch_query_role *query_roles; /* query.roles, in file order */
    size_t n_query_roles;
    struct loch_source *sources;
    size_t n_sources;
};

/* The config file to use: explicit (if non-NULL), else $LOCH_CONFIG, else ./loch.yaml. */
const char *config_default_path(const char *explicit_path);

/* Reads and validates path. Relative warehouse/state paths are resolved against the
 * config file's folder. On error: LOCH_ECONFIG with msg "FILE:LINE: what is wrong" and a
 * hint with what is expected; LOCH_ENOENT when the file is missing (hint: loch init). */
int config_load(const char *path, struct arena *a, struct loch_config **out, struct loch_err *err);

/* A user's effective query limits and the config key each came from (for messages:
 * "query.timeout_ms", "query.roles.analysts.timeout_ms"). 0 = no limit (memory: DuckDB's
 * default). */
struct config_limits {
    int64_t timeout_ms, memory_mb;
    char timeout_from[160], memory_from[160];
};

/* Resolves user's limits, each key on its own: the entry of query.roles named user when it
 * sets the key; else, among the entries of roles user is a member of (member_of(ctx, name)
 * true; the caller decides membership, transitive or not), the most restrictive non-zero
 * value, or 0 when every such entry says 0; else the global query.timeout_ms / memory_mb,
 * and for a user who is not an administrator (admin false) the stricter of that and
 * query.non_admin_timeout_ms / non_admin_memory_mb (safe defaults: an unconfigured user
 * cannot run an unbounded statement). member_of is called only for entries that could
 * apply; it may be NULL (no roles). */
void config_query_limits(const struct loch_config *cfg, const char *user, bool admin,
                         bool (*member_of)(void *, const char *), void *ctx, struct config_limits *out);

/* Writes a fresh, commented loch.yaml at path with warehouse and state (refuses to
 * overwrite: LOCH_EEXIST). */
int config_write_default(const char *path, const char *warehouse, const char *state_dir,
                         struct loch_err *err);

#endif
