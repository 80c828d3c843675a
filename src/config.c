/* config.c: reads loch.yaml with libyaml's document API into struct loch_config and
 * validates it, naming file, line and what was expected in every error; also writes the
 * commented default file for `loch init`. Not for runtime state (catalog/) or CLI flags. */
#include "config.h"

#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#define DEFAULT_SQL_LISTEN "127.0.0.1:5433"
#define DEFAULT_HTTP_LISTEN "127.0.0.1:8181"
#define DEFAULT_FLUSH_MS 1000
#define DEFAULT_TOKEN_EXPIRY_DAYS 30
#define DEFAULT_TOKEN_MAX_EXPIRY_DAYS 365
#define DEFAULT_NON_ADMIN_TIMEOUT_MS 300000 /* 5 minutes */

/* Half the machine's memory, in MB: every non-administrator's running statements together
 * (they share one engine of this limit), leaving the rest to administrators, replication
 * and the OS. 0 (no limit) if the size is unknown. */
static int64_t default_non_admin_memory_mb(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0)
        return 0;
    int64_t mb = (int64_t)pages / 1024 * page / 1024 / 2;
    return mb > 0 ? mb : 1;
}

const char *config_default_path(const char *explicit_path)
{
    if (explicit_path && *explicit_path)
        return explicit_path;
    const char *env = getenv("LOCH_CONFIG");
    if (env && *env)
        return env;
    return "loch.yaml";
}

struct ctx {
    const char *file; /* as the user named it, for messages */
    const char *dir;  /* absolute folder of the file, for relative paths */
    yaml_document_t *doc;
    struct arena *a;
    struct loch_err *err;
};

static int line_of(const yaml_node_t *n) { return (int)n->start_mark.line + 1; }

/* Sets LOCH_ECONFIG with "FILE:LINE: message". */
static int fail(struct ctx *c, const yaml_node_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct ctx *c, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return loch_errf(c->err, LOCH_ECONFIG, "%s:%d: %s", c->file, n ? line_of(n) : 1, msg);
}

static const char *kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a value";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

static const char *sval(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

/* `key:` with nothing, `~` or `null` (unquoted) mean "not set". */
static bool is_null(const yaml_node_t *n)
{
    if (!n)
        return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = sval(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* Edit distance, for "did you mean" on unknown keys. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 99;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Checks that n is a mapping whose keys are all in keys[] and appear once; vals[i] gets
 * the value node of keys[i] (NULL when absent). where names the place for messages. */
static int read_map(struct ctx *c, yaml_node_t *n, const char *where, const char *const *keys, size_t n_keys,
                    yaml_node_t **vals)
{
    for (size_t i = 0; i < n_keys; i++)
        vals[i] = NULL;
    if (n->type != YAML_MAPPING_NODE) {
        fail(c, n, "expected a mapping (key: value lines) for %s, got %s", where, kind(n));
        return loch_err_hint(c->err, "indent the keys of %s under it", where);
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        if (k->type != YAML_SCALAR_NODE)
            return fail(c, k, "expected a plain key in %s, got %s", where, kind(k));
        size_t i = 0;
        while (i < n_keys && strcmp(keys[i], sval(k)) != 0)
            i++;
        if (i == n_keys) {
            char list[400] = "";
            const char *best = NULL;
            size_t best_d = 3;
            for (size_t j = 0; j < n_keys; j++) {
                size_t used = strlen(list);
                snprintf(list + used, sizeof list - used, "%s%s", j ? ", " : "", keys[j]);
                size_t d = distance(sval(k), keys[j]);
                if (d < best_d) {
                    best_d = d;
                    best = keys[j];
                }
            }
            fail(c, k, "unknown key \"%s\" in %s", sval(k), where);
            if (best)
                return loch_err_hint(c->err, "did you mean \"%s\"? valid keys in %s: %s", best, where, list);
            return loch_err_hint(c->err, "valid keys in %s: %s", where, list);
        }
        if (vals[i])
            return fail(c, k, "key \"%s\" appears twice in %s", keys[i], where);
        vals[i] = v;
    }
    return 0;
}

/* A string value; NULL (not an error) when unset. */
static int get_str(struct ctx *c, yaml_node_t *n, const char *name, const char **out)
{
    *out = NULL;
    if (is_null(n))
        return 0;
    if (n->type != YAML_SCALAR_NODE)
        return fail(c, n, "expected a string for %s, got %s", name, kind(n));
    *out = arena_strdup(c->a, sval(n));
    return 0;
}

static int get_int(struct ctx *c, yaml_node_t *n, const char *name, int64_t lo, int64_t hi, int64_t *out)
{
    if (is_null(n))
        return 0; /* keep the default */
    if (n->type != YAML_SCALAR_NODE)
        return fail(c, n, "expected a number for %s, got %s", name, kind(n));
    const char *s = sval(n);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno == ERANGE) {
        fail(c, n, "expected a number for %s, got \"%s\"", name, s);
        return loch_err_hint(c->err, "write a whole number between %lld and %lld, without units", (long long)lo,
                             (long long)hi);
    }
    if (v < lo || v > hi)
        return fail(c, n, "%s must be between %lld and %lld, got %lld", name, (long long)lo, (long long)hi, v);
    *out = v;
    return 0;
}

/* A fraction in (0, 1]; the default when unset. */
static int get_ratio(struct ctx *c, yaml_node_t *n, const char *name, double *out)
{
    if (is_null(n))
        return 0;
    const char *s = n->type == YAML_SCALAR_NODE ? sval(n) : "";
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v > 0 && v <= 1)) {
        fail(c, n, "expected a fraction for %s, got \"%s\"", name, s);
        return loch_err_hint(c->err, "write a number above 0 and at most 1, e.g. 0.1");
    }
    *out = v;
    return 0;
}

static int get_str_list(struct ctx *c, yaml_node_t *n, const char *name, const char ***out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (is_null(n))
        return 0;
    if (n->type != YAML_SEQUENCE_NODE) {
        fail(c, n, "expected a list for %s, got %s", name, kind(n));
        return loch_err_hint(c->err, "write it as %s: [\"schema.table\", \"schema.*\"]", name);
    }
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    const char **v = arena_alloc(c->a, (cnt ? cnt : 1) * sizeof *v);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *it = yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
        if (it->type != YAML_SCALAR_NODE || is_null(it) || !*sval(it))
            return fail(c, it, "expected a non-empty string in %s, got %s", name, kind(it));
        v[i] = arena_strdup(c->a, sval(it));
    }
    *out = v;
    *n_out = cnt;
    return 0;
}

/* Lexically cleans an absolute path: drops "." and empty parts, applies "..". */
static char *clean_path(struct arena *a, const char *p)
{
    size_t n = strlen(p);
    char *out = arena_alloc(a, n + 2);
    size_t o = 0;
    const char *s = p;
    while (*s) {
        while (*s == '/')
            s++;
        const char *e = s;
        while (*e && *e != '/')
            e++;
        size_t len = (size_t)(e - s);
        if (len == 0 || (len == 1 && s[0] == '.')) {
            /* skip */
        } else if (len == 2 && s[0] == '.' && s[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
        } else {
            out[o++] = '/';
            memcpy(out + o, s, len);
            o += len;
        }
        s = e;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return out;
}

/* Resolves a path from the file against the file's folder; URIs ("s3://", "file://")
 * are kept as written. */
static const char *resolve(struct ctx *c, const char *p)
{
    if (!p || strstr(p, "://"))
        return p;
    if (p[0] == '/')
        return clean_path(c->a, p);
    return clean_path(c->a, arena_printf(c->a, "%s/%s", c->dir, p));
}

static int check_listen(struct ctx *c, yaml_node_t *n, const char *name, const char *v)
{
    const char *colon = v ? strrchr(v, ':') : NULL;
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == v || !colon[1] || *end || port < 1 || port > 65535) {
        fail(c, n, "expected host:port for %s, got \"%s\"", name, v ? v : "");
        return loch_err_hint(c->err, "e.g. %s: \"127.0.0.1:%s\" (or 0.0.0.0 to listen on every interface)", name,
                             strstr(name, "sql") ? "5433" : "8181");
    }
    return 0;
}

/* A boolean value (true/false, yes/no, on/off); *out keeps its default when unset. */
static int get_bool(struct ctx *c, yaml_node_t *n, const char *name, bool *out)
{
    if (is_null(n))
        return 0;
    const char *s = n->type == YAML_SCALAR_NODE ? sval(n) : "";
    if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
        *out = true;
    else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off"))
        *out = false;
    else {
        fail(c, n, "expected true or false for %s, got %s", name, n->type == YAML_SCALAR_NODE ? s : kind(n));
        return loch_err_hint(c->err, "write %s: true or %s: false", name, name);
    }
    return 0;
}

/* The connection keys of server: slots, login deadline and back-off, HTTP limits. */
static int read_server_limits(struct ctx *c, yaml_node_t **v, struct loch_config *cfg)
{
    int rc;
    if ((rc = get_int(c, v[0], "server.max_connections", 1, 100000, &cfg->max_connections)) ||
        (rc = get_int(c, v[1], "server.reserved_admin_connections", 0, 100000, &cfg->reserved_admin_connections)) ||
        (rc = get_int(c, v[2], "server.startup_connections_per_address", 1, 100000, &cfg->startup_per_address)) ||
        (rc = get_int(c, v[3], "server.login_timeout_ms", 100, 3600000, &cfg->login_timeout_ms)) ||
        (rc = get_int(c, v[4], "server.login_backoff_ms", 0, 3600000, &cfg->login_backoff_ms)) ||
        (rc = get_int(c, v[5], "server.login_backoff_max_ms", 0, 86400000, &cfg->login_backoff_max_ms)) ||
        (rc = get_int(c, v[6], "server.http_max_connections", 1, 100000, &cfg->http_max_connections)) ||
        (rc = get_int(c, v[7], "server.http_connections_per_address", 1, 100000, &cfg->http_per_address)) ||
        (rc = get_bool(c, v[8], "server.metrics_open", &cfg->metrics_open)))
        return rc;
    if (cfg->reserved_admin_connections >= cfg->max_connections) {
        fail(c, v[1] ? v[1] : v[0], "server.reserved_admin_connections (%lld) must be less than "
             "server.max_connections (%lld)", (long long)cfg->reserved_admin_connections,
             (long long)cfg->max_connections);
        return loch_err_hint(c->err, "administrators' reserved slots are part of max_connections");
    }
    if (cfg->login_backoff_max_ms < cfg->login_backoff_ms)
        cfg->login_backoff_max_ms = cfg->login_backoff_ms;
    return 0;
}

static int read_server(struct ctx *c, yaml_node_t *n, struct loch_config *cfg)
{
    static const char *const keys[] = {"sql_listen", "http_listen", "tls", "max_connections",
                                       "reserved_admin_connections", "startup_connections_per_address",
                                       "login_timeout_ms", "login_backoff_ms", "login_backoff_max_ms",
                                       "http_max_connections", "http_connections_per_address", "metrics_open"};
    static const char *const tls_keys[] = {"mode", "cert", "key"};
    yaml_node_t *v[12], *t[3];
    int rc;
    const char *s;
    if ((rc = read_map(c, n, "server", keys, 12, v)) || (rc = read_server_limits(c, v + 3, cfg)))
        return rc;
    if ((rc = get_str(c, v[0], "server.sql_listen", &s)))
        return rc;
    if (s && (rc = check_listen(c, v[0], "server.sql_listen", s)))
        return rc;
    if (s)
        cfg->sql_listen = s;
    if ((rc = get_str(c, v[1], "server.http_listen", &s)))
        return rc;
    if (s && (rc = check_listen(c, v[1], "server.http_listen", s)))
        return rc;
    if (s)
        cfg->http_listen = s;
    if (is_null(v[2]))
        return 0;
    if ((rc = read_map(c, v[2], "server.tls", tls_keys, 3, t)))
        return rc;
    if ((rc = get_str(c, t[0], "server.tls.mode", &s)))
        return rc;
    if (s) {
        if (strcmp(s, "off") && strcmp(s, "optional") && strcmp(s, "required")) {
            fail(c, t[0], "unknown server.tls.mode \"%s\"", s);
            return loch_err_hint(c->err, "use one of: off, optional, required");
        }
        cfg->tls_mode = s;
    }
    if ((rc = get_str(c, t[1], "server.tls.cert", &s)))
        return rc;
    cfg->tls_cert = resolve(c, s);
    if ((rc = get_str(c, t[2], "server.tls.key", &s)))
        return rc;
    cfg->tls_key = resolve(c, s);
    if (strcmp(cfg->tls_mode, "off") != 0 && (!cfg->tls_cert || !cfg->tls_key)) {
        fail(c, t[0] ? t[0] : v[2], "server.tls.mode is \"%s\" but %s not set", cfg->tls_mode,
             !cfg->tls_cert && !cfg->tls_key ? "cert and key are" : !cfg->tls_cert ? "cert is" : "key is");
        return loch_err_hint(c->err, "set server.tls.cert and server.tls.key to PEM files, or mode: \"off\"");
    }
    return 0;
}

#define MAX_TIMEOUT_MS (INT64_C(86400000) * 7)
#define MAX_MEMORY_MB (INT64_C(1) << 40)

/* query.roles: a mapping of role (or user) name -> {timeout_ms, memory_mb}. */
static int read_query_roles(struct ctx *c, yaml_node_t *n, struct loch_config *cfg)
{
    static const char *const keys[] = {"timeout_ms", "memory_mb"};
    if (is_null(n))
        return 0;
    if (n->type != YAML_MAPPING_NODE) {
        fail(c, n, "expected a mapping for query.roles, got %s", kind(n));
        return loch_err_hint(c->err, "write it as query.roles: {analysts: {timeout_ms: 30000, memory_mb: 2048}}");
    }
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    cfg->query_roles = arena_alloc(c->a, (cnt ? cnt : 1) * sizeof *cfg->query_roles);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        if (k->type != YAML_SCALAR_NODE || is_null(k) || !*sval(k))
            return fail(c, k, "expected a role or user name as a key of query.roles, got %s", kind(k));
        const char *name = sval(k);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(cfg->query_roles[j].name, name))
                return fail(c, k, "key \"%s\" appears twice in query.roles", name);
        char *where = arena_printf(c->a, "query.roles.%s", name);
        struct loch_query_role *r = &cfg->query_roles[i];
        *r = (struct loch_query_role){.name = arena_strdup(c->a, name)};
        yaml_node_t *f[2];
        int rc;
        if (is_null(v)) {
            fail(c, v, "%s has no limits", where);
            return loch_err_hint(c->err, "set timeout_ms and/or memory_mb under it, or remove it");
        }
        if ((rc = read_map(c, v, where, keys, 2, f)) ||
            (rc = get_int(c, f[0], arena_printf(c->a, "%s.timeout_ms", where), 0, MAX_TIMEOUT_MS,
                          &r->timeout_ms)) ||
            (rc = get_int(c, f[1], arena_printf(c->a, "%s.memory_mb", where), 0, MAX_MEMORY_MB, &r->memory_mb)))
            return rc;
        r->has_timeout = !is_null(f[0]);
        r->has_memory = !is_null(f[1]);
        cfg->n_query_roles = i + 1;
    }
    return 0;
}

static int read_query(struct ctx *c, yaml_node_t *n, struct loch_config *cfg)
{
    static const char *const keys[] = {"timeout_ms", "memory_mb", "threads", "roles", "non_admin_timeout_ms",
                                       "non_admin_memory_mb"};
    yaml_node_t *v[6];
    int64_t threads = cfg->threads;
    int rc;
    if ((rc = read_map(c, n, "query", keys, 6, v)) ||
        (rc = get_int(c, v[4], "query.non_admin_timeout_ms", 0, MAX_TIMEOUT_MS, &cfg->non_admin_timeout_ms)) ||
        (rc = get_int(c, v[5], "query.non_admin_memory_mb", 0, MAX_MEMORY_MB, &cfg->non_admin_memory_mb)) ||
        (rc = get_int(c, v[0], "query.timeout_ms", 0, MAX_TIMEOUT_MS, &cfg->query_timeout_ms)) ||
        (rc = get_int(c, v[1], "query.memory_mb", 0, MAX_MEMORY_MB, &cfg->query_memory_mb)) ||
        (rc = get_int(c, v[2], "query.threads", 0, 4096, &threads)) || (rc = read_query_roles(c, v[3], cfg)))
        return rc;
    cfg->threads = (int)threads;
    return 0;
}

/* auth: how long bearer tokens live (days). Tokens always expire: both are at least 1. */
static int read_auth(struct ctx *c, yaml_node_t *n, struct loch_config *cfg)
{
    static const char *const keys[] = {"token_default_expiry_days", "token_max_expiry_days"};
    yaml_node_t *v[2];
    int rc;
    if ((rc = read_map(c, n, "auth", keys, 2, v)) ||
        (rc = get_int(c, v[0], "auth.token_default_expiry_days", 1, 36500, &cfg->token_default_expiry_days)) ||
        (rc = get_int(c, v[1], "auth.token_max_expiry_days", 1, 36500, &cfg->token_max_expiry_days)))
        return rc;
    if (cfg->token_default_expiry_days > cfg->token_max_expiry_days) {
        fail(c, v[0] ? v[0] : n, "auth.token_default_expiry_days (%lld) is above auth.token_max_expiry_days (%lld)",
             (long long)cfg->token_default_expiry_days, (long long)cfg->token_max_expiry_days);
        return loch_err_hint(c->err, "make the default at most the maximum");
    }
    return 0;
}

/* Most restrictive of two limits where 0 means none. */
static int64_t stricter(int64_t a, int64_t b) { return !a ? b : !b ? a : a < b ? a : b; }

void config_query_limits(const struct loch_config *cfg, const char *user, bool admin,
                         bool (*member_of)(void *, const char *), void *ctx, struct config_limits *out)
{
    *out = (struct config_limits){cfg->query_timeout_ms, cfg->query_memory_mb, "query.timeout_ms", "query.memory_mb"};
    /* Safe defaults: a user nobody configured gets bounded statements; administrators keep
     * the global values (their own roles entries still apply below). */
    if (!admin && stricter(out->timeout_ms, cfg->non_admin_timeout_ms) != out->timeout_ms) {
        out->timeout_ms = cfg->non_admin_timeout_ms;
        snprintf(out->timeout_from, sizeof out->timeout_from, "query.non_admin_timeout_ms");
    }
    if (!admin && stricter(out->memory_mb, cfg->non_admin_memory_mb) != out->memory_mb) {
        out->memory_mb = cfg->non_admin_memory_mb;
        snprintf(out->memory_from, sizeof out->memory_from, "query.non_admin_memory_mb");
    }
    const struct loch_query_role *own = NULL;
    for (size_t i = 0; i < cfg->n_query_roles; i++)
        if (user && !strcmp(cfg->query_roles[i].name, user))
            own = &cfg->query_roles[i];
    bool t_set = false, m_set = false;
    if (own && own->has_timeout) {
        out->timeout_ms = own->timeout_ms;
        snprintf(out->timeout_from, sizeof out->timeout_from, "query.roles.%s.timeout_ms", own->name);
        t_set = true;
    }
    if (own && own->has_memory) {
        out->memory_mb = own->memory_mb;
        snprintf(out->memory_from, sizeof out->memory_from, "query.roles.%s.memory_mb", own->name);
        m_set = true;
    }
    if (t_set && m_set)
        return;
    /* The roles the user is a member of: the most restrictive non-zero value among their
     * entries; 0 (no limit) only when every applicable entry says 0. */
    bool t_role = false, m_role = false;
    int64_t t = 0, m = 0;
    const char *t_from = NULL, *m_from = NULL;
    for (size_t i = 0; i < cfg->n_query_roles; i++) {
        const struct loch_query_role *r = &cfg->query_roles[i];
        if (r == own || !((!t_set && r->has_timeout) || (!m_set && r->has_memory)))
            continue;
        if (!member_of || !member_of(ctx, r->name))
            continue;
        if (!t_set && r->has_timeout) {
            if (!t_role || stricter(t, r->timeout_ms) != t) {
                t = stricter(t, r->timeout_ms);
                t_from = r->name;
            }
            t_role = true;
        }
        if (!m_set && r->has_memory) {
            if (!m_role || stricter(m, r->memory_mb) != m) {
                m = stricter(m, r->memory_mb);
                m_from = r->name;
            }
            m_role = true;
        }
    }
    if (t_role) {
        out->timeout_ms = t;
        snprintf(out->timeout_from, sizeof out->timeout_from, "query.roles.%s.timeout_ms", t_from);
    }
    if (m_role) {
        out->memory_mb = m;
        snprintf(out->memory_from, sizeof out->memory_from, "query.roles.%s.memory_mb", m_from);
    }
}

static bool is_ident(const char *s)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

static int read_source(struct ctx *c, yaml_node_t *n, size_t idx, struct loch_source *src)
{
    static const char *const keys[] = {"name",  "type", "url",  "password_env", "tables",
                                       "exclude", "slot", "publication", "server_id"};
    enum { NAME, TYPE, URL, PWENV, TABLES, EXCLUDE, SLOT, PUB, SERVER_ID, N_KEYS };
    yaml_node_t *v[N_KEYS];
    char where[48];
    snprintf(where, sizeof where, "sources item %zu", idx + 1);
    int rc;
    if ((rc = read_map(c, n, where, keys, N_KEYS, v)))
        return rc;
    if ((rc = get_str(c, v[NAME], "name", &src->name)) || (rc = get_str(c, v[TYPE], "type", &src->type)) ||
        (rc = get_str(c, v[URL], "url", &src->url)))
        return rc;
    const char *missing = !src->name ? "name" : !src->type ? "type" : !src->url ? "url" : NULL;
    if (missing) {
        fail(c, n, "missing required key \"%s\" in %s", missing, where);
        return loch_err_hint(c->err, "every source needs name, type (postgres or mysql) and url");
    }
    if (!is_ident(src->name)) {
        fail(c, v[NAME], "source name \"%s\" is not a plain identifier", src->name);
        return loch_err_hint(c->err, "use letters, digits and _ only (it becomes the first namespace level)");
    }
    bool pg = !strcmp(src->type, "postgres"), my = !strcmp(src->type, "mysql");
    if (!pg && !my) {
        fail(c, v[TYPE], "unknown source type \"%s\" for source %s", src->type, src->name);
        return loch_err_hint(c->err, "use type: postgres (PostgreSQL) or type: mysql (MySQL and MariaDB)");
    }
    if ((rc = get_str(c, v[PWENV], "password_env", &src->password_env)) ||
        (rc = get_str_list(c, v[TABLES], "tables", &src->tables, &src->n_tables)) ||
        (rc = get_str_list(c, v[EXCLUDE], "exclude", &src->exclude, &src->n_exclude)) ||
        (rc = get_str(c, v[SLOT], "slot", &src->slot)) || (rc = get_str(c, v[PUB], "publication", &src->publication)) ||
        (rc = get_int(c, v[SERVER_ID], "server_id", 1, UINT32_MAX, &src->server_id)))
        return rc;
    if (!pg && (src->slot || src->publication)) {
        fail(c, v[SLOT] ? v[SLOT] : v[PUB], "%s applies to postgres sources only; %s is %s",
             src->slot ? "slot" : "publication", src->name, src->type);
        return loch_err_hint(c->err, "remove it, or set server_id for a mysql source");
    }
    if (!my && !is_null(v[SERVER_ID])) {
        fail(c, v[SERVER_ID], "server_id applies to mysql sources only; %s is %s", src->name, src->type);
        return loch_err_hint(c->err, "remove it, or set slot/publication for a postgres source");
    }
    return 0;
}

static int read_sources(struct ctx *c, yaml_node_t *n, struct loch_config *cfg)
{
    if (is_null(n))
        return 0;
    if (n->type != YAML_SEQUENCE_NODE) {
        fail(c, n, "expected a list for sources, got %s", kind(n));
        return loch_err_hint(c->err, "start each source with \"- name: ...\" under sources:");
    }
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    cfg->sources = arena_alloc(c->a, (cnt ? cnt : 1) * sizeof *cfg->sources);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *it = yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
        int rc = read_source(c, it, i, &cfg->sources[i]);
        if (rc)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(cfg->sources[j].name, cfg->sources[i].name)) {
                fail(c, it, "source name \"%s\" is used twice", cfg->sources[i].name);
                return loch_err_hint(c->err, "each source needs its own name: it is the first namespace level");
            }
        cfg->n_sources = i + 1;
    }
    return 0;
}

static int read_maintenance(struct ctx *c, yaml_node_t *n, struct loch_maintenance *m)
{
    static const char *const keys[] = {"enabled", "interval_s", "min_files", "small_file_ratio", "delete_ratio",
                                       "snapshot_age_s", "orphan_age_s", "target_file_size"};
    yaml_node_t *v[8];
    int rc = read_map(c, n, "maintenance", keys, 8, v);
    if (!rc)
        rc = get_bool(c, v[0], "maintenance.enabled", &m->enabled);
    if (!rc)
        rc = get_int(c, v[1], "maintenance.interval_s", 1, 86400 * 7, &m->interval_s);
    if (!rc)
        rc = get_int(c, v[2], "maintenance.min_files", 2, 1000000, &m->min_files);
    if (!rc)
        rc = get_ratio(c, v[3], "maintenance.small_file_ratio", &m->small_file_ratio);
    if (!rc)
        rc = get_ratio(c, v[4], "maintenance.delete_ratio", &m->delete_ratio);
    if (!rc)
        rc = get_int(c, v[5], "maintenance.snapshot_age_s", 0, INT64_MAX / 1000, &m->snapshot_age_s);
    if (!rc)
        rc = get_int(c, v[6], "maintenance.orphan_age_s", 60, INT64_MAX / 1000, &m->orphan_age_s);
    if (!rc)
        rc = get_int(c, v[7], "maintenance.target_file_size", 1 << 20, INT64_MAX / 4, &m->target_file_size);
    return rc;
}

static int read_root(struct ctx *c, yaml_node_t *root, struct loch_config *cfg)
{
    static const char *const keys[] = {"warehouse", "state", "server", "query", "flush_interval_ms", "sources",
                                       "auth", "maintenance"};
    enum { WAREHOUSE, STATE, SERVER, QUERY, FLUSH, SOURCES, AUTH, MAINT, N_KEYS };
    yaml_node_t *v[N_KEYS];
    int rc;
    if (!root || is_null(root)) {
        loch_errf(c->err, LOCH_ECONFIG, "%s:1: the file is empty", c->file);
        return loch_err_hint(c->err, "it needs at least warehouse and state; `loch init` writes a commented example");
    }
    if ((rc = read_map(c, root, "the top level", keys, N_KEYS, v)))
        return rc;
    const char *wh, *st;
    if ((rc = get_str(c, v[WAREHOUSE], "warehouse", &wh)) || (rc = get_str(c, v[STATE], "state", &st)))
        return rc;
    if (!wh || !*wh || !st || !*st) {
        const char *k = !wh || !*wh ? "warehouse" : "state";
        fail(c, v[!wh || !*wh ? WAREHOUSE : STATE] ? v[!wh || !*wh ? WAREHOUSE : STATE] : root,
             "missing required key \"%s\" in the top level", k);
        return loch_err_hint(c->err, "%s",
                             !strcmp(k, "warehouse")
                                 ? "set warehouse: to the lake's folder (e.g. warehouse: ./lake) or a file:// URI"
                                 : "set state: to the folder for loch's own state (e.g. state: ./state)");
    }
    cfg->warehouse = resolve(c, wh);
    if (strstr(st, "://")) {
        fail(c, v[STATE], "state must be a local folder, got \"%s\"", st);
        return loch_err_hint(c->err, "write a path, e.g. state: ./state");
    }
    cfg->state_dir = resolve(c, st);
    if ((v[SERVER] && !is_null(v[SERVER]) && (rc = read_server(c, v[SERVER], cfg))) ||
        (v[QUERY] && !is_null(v[QUERY]) && (rc = read_query(c, v[QUERY], cfg))) ||
        (v[AUTH] && !is_null(v[AUTH]) && (rc = read_auth(c, v[AUTH], cfg))) ||
        (v[MAINT] && !is_null(v[MAINT]) && (rc = read_maintenance(c, v[MAINT], &cfg->maintenance))) ||
        (rc = get_int(c, v[FLUSH], "flush_interval_ms", 1, 86400000, &cfg->flush_interval_ms)) ||
        (rc = read_sources(c, v[SOURCES], cfg)))
        return rc;
    return 0;
}

int config_load(const char *path, struct arena *a, struct loch_config **out, struct loch_err *err)
{
    *out = NULL;
    char *text;
    size_t len;
    int rc = util_read_file(path, &text, &len, err);
    if (rc == LOCH_ENOENT) {
        loch_errf(err, LOCH_ENOENT, "config file %s does not exist", path);
        return loch_err_hint(err, "create one with: loch init (or point to it with --config or $LOCH_CONFIG)");
    }
    if (rc)
        return rc;
    char *abs = util_abspath(path);
    struct loch_config *cfg = arena_alloc(a, sizeof *cfg);
    cfg->path = clean_path(a, abs);
    free(abs);
    char *slash = strrchr(cfg->path, '/');
    struct ctx c = {path, slash == cfg->path ? "/" : arena_strndup(a, cfg->path, (size_t)(slash - cfg->path)),
                    NULL, a, err};
    cfg->sql_listen = DEFAULT_SQL_LISTEN;
    cfg->http_listen = DEFAULT_HTTP_LISTEN;
    cfg->tls_mode = "off";
    cfg->flush_interval_ms = DEFAULT_FLUSH_MS;
    cfg->maintenance = (struct loch_maintenance){.enabled = true, .interval_s = 60, .min_files = 32,
                                                 .small_file_ratio = 0.5, .delete_ratio = 0.1,
                                                 .snapshot_age_s = 3600, .orphan_age_s = 86400,
                                                 .target_file_size = 256LL << 20};
    cfg->token_default_expiry_days = DEFAULT_TOKEN_EXPIRY_DAYS;
    cfg->token_max_expiry_days = DEFAULT_TOKEN_MAX_EXPIRY_DAYS;
    cfg->max_connections = 512;
    cfg->reserved_admin_connections = 3;
    cfg->startup_per_address = 16;
    cfg->login_timeout_ms = 60000;
    cfg->login_backoff_ms = 1000;
    cfg->login_backoff_max_ms = 60000;
    cfg->http_max_connections = 256;
    cfg->http_per_address = 64;
    cfg->non_admin_timeout_ms = DEFAULT_NON_ADMIN_TIMEOUT_MS;
    cfg->non_admin_memory_mb = default_non_admin_memory_mb();

    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        const yaml_mark_t *m = &parser.problem_mark;
        if (parser.error == YAML_READER_ERROR)
            loch_errf(err, LOCH_ECONFIG, "%s: not valid UTF-8 text near byte %zu: %s", path, parser.problem_offset,
                      parser.problem ? parser.problem : "unreadable");
        else
            loch_errf(err, LOCH_ECONFIG, "%s:%zu:%zu: YAML syntax error: %s", path, m->line + 1, m->column + 1,
                      parser.problem ? parser.problem : "unknown problem");
        if (parser.context)
            loch_err_detail(err, "%s at line %zu, column %zu", parser.context, parser.context_mark.line + 1,
                            parser.context_mark.column + 1);
        if (m->index < len && text[m->index] == '\t')
            loch_err_hint(err, "line %zu has a tab there; YAML indents with spaces only", m->line + 1);
        else
            loch_err_hint(err, "indent with spaces (not tabs), put a space after each colon, and quote values "
                               "that contain \": \" or \" #\"");
        yaml_parser_delete(&parser);
        free(text);
        return LOCH_ECONFIG;
    }
    c.doc = &doc;
    rc = read_root(&c, yaml_document_get_root_node(&doc), cfg);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(text);
    if (rc)
        return rc;
    *out = cfg;
    return 0;
}

/* Appends s as a YAML double-quoted scalar. */
static void put_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static const char DEFAULT_BODY[] =
    "\n"
    "server:\n"
    "  # PostgreSQL wire protocol endpoint (psql, JDBC/ODBC, BI tools).\n"
    "  sql_listen: \"" DEFAULT_SQL_LISTEN "\"\n"
    "  # HTTP endpoint: Iceberg REST catalog (Spark, Trino, PyIceberg), admin API, metrics.\n"
    "  http_listen: \"" DEFAULT_HTTP_LISTEN "\"\n"
    "  tls:\n"
    "    mode: \"off\"            # off | optional | required\n"
    "    # cert: certs/server.crt  # PEM files; relative to this file\n"
    "    # key: certs/server.key\n"
    "  # Connection limits (defaults shown). Slots reserved for administrators are part of\n"
    "  # max_connections; a login must finish within login_timeout_ms; failed logins back\n"
    "  # off exponentially per user and per address, up to login_backoff_max_ms.\n"
    "  # max_connections: 512\n"
    "  # reserved_admin_connections: 3\n"
    "  # startup_connections_per_address: 16\n"
    "  # login_timeout_ms: 60000\n"
    "  # login_backoff_ms: 1000\n"
    "  # login_backoff_max_ms: 60000\n"
    "  # http_max_connections: 256\n"
    "  # http_connections_per_address: 64\n"
    "  # metrics_open: false   # true: GET /metrics without a bearer token\n"
    "\n"
    "query:\n"
    "  timeout_ms: 0    # 0 = no limit\n"
    "  memory_mb: 0     # 0 = DuckDB's default (80% of RAM)\n"
    "  threads: 0       # 0 = all cores\n"
    "  # Limits per role or user (keys are role or user names). A user's limit is their own\n"
    "  # entry if there is one, else the most restrictive non-zero value among the entries of\n"
    "  # the roles they are a member of (directly or through roles; 0 there = no limit only\n"
    "  # when no other applicable entry is stricter), else the value above. A role's memory_mb\n"
    "  # bounds all of its members' running queries together.\n"
    "  # roles:\n"
    "  #   analysts: {timeout_ms: 30000, memory_mb: 2048}\n"
    "  #   etl: {timeout_ms: 0}\n"
    "  # Users who are not administrators and have no entry above get at most these\n"
    "  # (the stricter of them and the value above; 0 = no such default):\n"
    "  # non_admin_timeout_ms: 300000   # 5 minutes\n"
    "  # non_admin_memory_mb: ...       # default: half of the machine's memory\n"
    "\n"
    "# How often replicated changes are committed to the lake, in milliseconds.\n"
    "flush_interval_ms: 1000\n"
    "\n"
    "# Maintenance that runs itself in loch serve and loch replicate (defaults shown): every\n"
    "# interval_s each table is looked at; it is compacted once it has min_files live files\n"
    "# of which small_file_ratio are under 3/4 of target_file_size, or once delete_ratio of\n"
    "# its rows are deleted; snapshots older than snapshot_age_s expire.\n"
    "# maintenance:\n"
    "#   enabled: true\n"
    "#   interval_s: 60\n"
    "#   min_files: 32\n"
    "#   small_file_ratio: 0.5\n"
    "#   delete_ratio: 0.1\n"
    "#   snapshot_age_s: 3600\n"
    "#   orphan_age_s: 86400\n"
    "#   target_file_size: 268435456\n"
    "\n"
    "# Databases to replicate. Each source is the first namespace level:\n"
    "# SELECT * FROM core.public.loans\n"
    "# sources:\n"
    "#   - name: core\n"
    "#     type: postgres                  # postgres | mysql (also MariaDB)\n"
    "#     url: postgresql://loch@db1:5432/core\n"
    "#     password_env: LOCH_CORE_PASSWORD # read the password from this variable\n"
    "#     tables: [\"public.*\"]            # schema.table globs to include\n"
    "#     exclude: [\"public.tmp_*\"]\n"
    "#     # slot: loch_core               # default: derived from name\n"
    "#     # publication: loch_core\n"
    "#   - name: cards\n"
    "#     type: mysql\n"
    "#     url: mysql://loch@db2:3306/cards\n"
    "#     password_env: LOCH_CARDS_PASSWORD\n"
    "#     tables: [\"cards.*\"]\n"
    "#     # server_id: 4242               # default: derived from name\n";

int config_write_default(const char *path, const char *warehouse, const char *state_dir, struct loch_err *err)
{
    if (util_exists(path)) {
        loch_errf(err, LOCH_EEXIST, "config file %s already exists", path);
        return loch_err_hint(err, "edit it, or remove it first to start over");
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return loch_errf(err, LOCH_ENOMEM, "cannot build %s", path);
    fputs("# loch.yaml: configuration of one loch lake (written by `loch init`).\n"
          "# Relative paths are resolved against the folder of this file.\n"
          "\n"
          "# Where tables live (Iceberg metadata + Parquet): a folder or a file:// URI.\n"
          "warehouse: ",
          f);
    put_quoted(f, warehouse);
    fputs("\n# Where loch keeps its own state: the catalog (catalog.db) and more.\nstate: ", f);
    put_quoted(f, state_dir);
    fputs("\n", f);
    fputs(DEFAULT_BODY, f);
    fclose(f);

    /* Temp file + link(): the file appears whole or not at all, and an existing file
     * (created meanwhile) is never replaced. */
    char *tmp = xasprintf("%s.tmp-%d", path, (int)getpid());
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = loch_errf(err, errno == ENOENT ? LOCH_ENOENT : LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
        loch_err_hint(err, "check that the folder exists and is writable");
        goto out;
    }
    ssize_t w = write(fd, buf, len);
    if (w != (ssize_t)len || fsync(fd) != 0) {
        rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    if (link(tmp, path) != 0) {
        if (errno == EEXIST) {
            rc = loch_errf(err, LOCH_EEXIST, "config file %s already exists", path);
            loch_err_hint(err, "edit it, or remove it first to start over");
        } else {
            rc = loch_errf(err, LOCH_EIO, "cannot create %s: %s", path, strerror(errno));
        }
    }
    unlink(tmp);
out:
    free(tmp);
    free(buf);
    return rc;
}
