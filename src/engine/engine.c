/* engine.c: DuckDB database, connections and materialised results (see engine.h). */
#include "engine/engine.h"

#include <duckdb.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "base/buf.h"
#include "base/util.h"

/* A row mask: the deleted positions of one data file, as bits, shared by every session
 * (it depends only on the files in its key). A slot is live while bits != NULL; gen
 * changes each time the slot is reused, so a stale id never reads another mask. */
struct mask_slot {
    uint64_t *bits;
    uint64_t nrows;
    uint32_t gen;
    char *key;    /* what the mask was built from; a build with the same key reuses it */
    _Atomic int64_t last_used_ms;
};

struct engine {
    duckdb_database db;
    pthread_rwlock_t masks_lock; /* writers: create/drop; readers: loch_keep */
    struct mask_slot *masks;
    size_t n_masks;
    uint64_t id;
    bool confined;   /* configuration locked: no per-connection SET */
    char **folders;  /* confined: the real paths of the folders (NULL-terminated), else NULL */
    bool restricted; /* engine_options.restricted_dir */
    int dir_fd;      /* restricted: the folder DuckDB reaches through /proc/self/fd; else -1 */
    char *spill;     /* restricted: its spill folder (removed at close) */
    bool locks_ready; /* masks_lock initialised */
};

static _Atomic uint64_t next_engine_id = 1;

uint64_t engine_id(const struct engine *e) { return e->id; }

bool engine_is_restricted(const struct engine *e) { return e->restricted; }

struct engine_conn {
    duckdb_connection con;
    struct engine *e;
};

struct engine_rows {
    duckdb_result res;
};

static int register_keep(struct engine *e, struct loch_err *err);

/* Locks file access to dirs (see engine_options.confine_to). DuckDB compares path
 * strings: each local folder is given by its real path (a symlink on the way resolved),
 * which is also what engine_confined_folders hands to the checks that resolve the paths
 * a statement names (query/paths.c). */
static int confine(struct engine *e, const char *const *dirs, struct loch_err *err)
{
    struct buf q = {0};
    size_t n_dirs = 0;
    while (dirs[n_dirs])
        n_dirs++;
    e->folders = xcalloc(n_dirs + 1, sizeof *e->folders);
    size_t n_folders = 0;
    buf_puts(&q, "SET GLOBAL TimeZone = 'UTC'; SET GLOBAL allowed_directories = [");
    for (size_t i = 0; dirs[i]; i++) {
        if (i)
            buf_puts(&q, ", ");
        char *real = strstr(dirs[i], "://") ? NULL : realpath(dirs[i], NULL);
        const char *d = real ? real : dirs[i];
        size_t n = strlen(d);
        char *dir = xasprintf("%s%s", d, n && d[n - 1] == '/' ? "" : "/");
        buf_sql_str(&q, dir);
        free(dir);
        bool dup = false;
        for (size_t k = 0; real && k < n_folders && !dup; k++)
            dup = !strcmp(e->folders[k], real);
        if (real && !dup)
            e->folders[n_folders++] = real;
        else
            free(real);
    }
    buf_puts(&q, "]; SET GLOBAL enable_external_access = false; SET GLOBAL lock_configuration = true");
    duckdb_connection con;
    if (duckdb_connect(e->db, &con) != DuckDBSuccess) {
        buf_free(&q);
        return loch_errf(err, LOCH_EENGINE, "cannot open a DuckDB connection");
    }
    duckdb_result r;
    int rc = 0;
    if (duckdb_query(con, q.data, &r) != DuckDBSuccess)
        rc = loch_errf(err, LOCH_EENGINE, "cannot confine DuckDB to the lake's folders: %s", duckdb_result_error(&r));
    duckdb_destroy_result(&r);
    duckdb_disconnect(&con);
    buf_free(&q);
    e->confined = rc == 0;
    return rc;
}

/* The empty database file of restricted engines: made once per folder, atomically (a
 * DuckDB database written under a temporary name, then renamed), never written again:
 * every restricted engine opens it read-only. */
#define RESTRICTED_DB "lake.duckdb"

static int restricted_prepare(struct engine *e, const char *dir, struct loch_err *err)
{
    int rc = util_mkdirs(dir, err);
    if (rc)
        return rc;
    chmod(dir, 0700);
    char *db = xasprintf("%s/" RESTRICTED_DB, dir);
    struct stat sb;
    if (stat(db, &sb) != 0) {
        char *tmp = xasprintf("%s/.%s.%ld.tmp", dir, RESTRICTED_DB, (long)getpid());
        unlink(tmp);
        duckdb_database d;
        char *msg = NULL;
        duckdb_config cfg;
        duckdb_create_config(&cfg);
        duckdb_set_config(cfg, "autoinstall_known_extensions", "false");
        duckdb_set_config(cfg, "autoload_known_extensions", "false");
        if (duckdb_open_ext(tmp, &d, cfg, &msg) != DuckDBSuccess) {
            rc = loch_errf(err, LOCH_EENGINE, "cannot create %s: %s", db, msg ? msg : "unknown error");
            duckdb_free(msg);
        } else {
            duckdb_close(&d);
            chmod(tmp, 0600);
            if (rename(tmp, db) != 0)
                rc = loch_errf(err, LOCH_EIO, "cannot rename %s to %s: %s", tmp, db, strerror(errno));
        }
        duckdb_destroy_config(&cfg);
        free(tmp);
    }
    free(db);
    if (rc)
        return rc;
    e->dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (e->dir_fd < 0)
        return loch_errf(err, LOCH_EIO, "cannot open folder %s: %s", dir, strerror(errno));
    /* a spill folder per engine: DuckDB names its temporary files alike in every database */
    e->spill = xasprintf("%s/spill-%ld-%llu", dir, (long)getpid(), (unsigned long long)e->id);
    if (mkdir(e->spill, 0700) != 0 && errno != EEXIST)
        return loch_errf(err, LOCH_EIO, "cannot create folder %s: %s", e->spill, strerror(errno));
    return 0;
}

/* Removes a spill folder: DuckDB's temporary files, no subfolders. */
static void remove_spill(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        for (struct dirent *de; (de = readdir(d));) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            char *f = xasprintf("%s/%s", dir, de->d_name);
            unlink(f);
            free(f);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* A restricted engine's sessions keep UTC, and nothing may change its configuration. */
static int lock_restricted(struct engine *e, struct loch_err *err)
{
    duckdb_connection con;
    if (duckdb_connect(e->db, &con) != DuckDBSuccess)
        return loch_errf(err, LOCH_EENGINE, "cannot open a DuckDB connection");
    duckdb_result r;
    int rc = 0;
    if (duckdb_query(con, "SET GLOBAL TimeZone = 'UTC'; SET GLOBAL lock_configuration = true", &r) != DuckDBSuccess)
        rc = loch_errf(err, LOCH_EENGINE, "cannot lock the restricted engine's configuration: %s",
                       duckdb_result_error(&r));
    duckdb_destroy_result(&r);
    duckdb_disconnect(&con);
    e->confined = rc == 0;
    return rc;
}

int engine_open(const struct engine_options *o, struct engine **out, struct loch_err *err)
{
    struct engine *e = xcalloc(1, sizeof *e);
    e->dir_fd = -1;
    e->id = next_engine_id++;
    bool restricted = o && o->restricted_dir;
    int rc = 0;
    char *db_path = NULL, *spill_path = NULL;
    if (restricted) {
        e->restricted = true;
        rc = restricted_prepare(e, o->restricted_dir, err);
        if (rc) {
            engine_close(e);
            return rc;
        }
        db_path = xasprintf("/proc/self/fd/%d/" RESTRICTED_DB, e->dir_fd);
        spill_path = xasprintf("/proc/self/fd/%d/%s", e->dir_fd, strrchr(e->spill, '/') + 1);
    }
    duckdb_config cfg;
    if (duckdb_create_config(&cfg) != DuckDBSuccess) {
        free(db_path);
        free(spill_path);
        engine_close(e);
        return loch_errf(err, LOCH_ENOMEM, "cannot create a DuckDB configuration");
    }
    char num[32];
    if (o && o->threads > 0) {
        snprintf(num, sizeof num, "%d", o->threads);
        duckdb_set_config(cfg, "threads", num);
    }
    if (o && o->memory_mb > 0) {
        snprintf(num, sizeof num, "%lldMB", (long long)o->memory_mb);
        duckdb_set_config(cfg, "memory_limit", num);
    }
    if (restricted) {
        duckdb_set_config(cfg, "access_mode", "READ_ONLY");
        duckdb_set_config(cfg, "temp_directory", spill_path);
    } else if (o && o->temp_dir) {
        duckdb_set_config(cfg, "temp_directory", o->temp_dir);
    }
    /* Extensions are compiled in; nothing may be downloaded at run time. */
    duckdb_set_config(cfg, "autoinstall_known_extensions", "false");
    duckdb_set_config(cfg, "autoload_known_extensions", "false");
    if (restricted) { /* after temp_directory: DuckDB refuses to set it once this is off */
        duckdb_set_config(cfg, "enable_external_access", "false");
        duckdb_set_config(cfg, "allow_community_extensions", "false");
    }
    char *msg = NULL;
    if (duckdb_open_ext(db_path, &e->db, cfg, &msg) != DuckDBSuccess) {
        loch_errf(err, LOCH_EENGINE, "cannot open DuckDB: %s", msg ? msg : "unknown error");
        duckdb_free(msg);
        duckdb_destroy_config(&cfg);
        free(db_path);
        free(spill_path);
        e->db = NULL;
        engine_close(e);
        return LOCH_EENGINE;
    }
    duckdb_destroy_config(&cfg);
    free(db_path);
    free(spill_path);
    pthread_rwlock_init(&e->masks_lock, NULL);
    e->locks_ready = true;
    rc = register_keep(e, err);
    if (rc) {
        engine_close(e);
        return rc;
    }
    if (restricted) {
        rc = lock_restricted(e, err);
    } else {
        /* Lake data files never change once written (Iceberg): their Parquet footers can be
         * cached, which spares every query re-reading them. (A Parquet-extension setting:
         * unknown to the open-time config, so set once the database is up.) */
        duckdb_connection con;
        if (duckdb_connect(e->db, &con) == DuckDBSuccess) {
            duckdb_result r;
            duckdb_query(con, "SET GLOBAL parquet_metadata_cache = true", &r);
            duckdb_destroy_result(&r);
            duckdb_disconnect(&con);
        }
        if (o && o->confine_to)
            rc = confine(e, o->confine_to, err);
    }
    if (rc) {
        engine_close(e);
        return rc;
    }
    *out = e;
    return 0;
}

void engine_close(struct engine *e)
{
    if (!e)
        return;
    if (e->db)
        duckdb_close(&e->db);
    for (size_t i = 0; i < e->n_masks; i++) {
        free(e->masks[i].bits);
        free(e->masks[i].key);
    }
    free(e->masks);
    for (size_t i = 0; e->folders && e->folders[i]; i++)
        free(e->folders[i]);
    free(e->folders);
    if (e->locks_ready)
        pthread_rwlock_destroy(&e->masks_lock);
    if (e->spill)
        remove_spill(e->spill);
    free(e->spill);
    if (e->dir_fd >= 0)
        close(e->dir_fd);
    free(e);
}

const char *const *engine_confined_folders(const struct engine *e)
{
    return e && e->confined ? (const char *const *)e->folders : NULL;
}

struct engine_pool {
    pthread_mutex_t mu;
    struct engine_options o;
    struct engine *base;
    struct pool_slot {
        int64_t memory_mb;
        bool restricted;
        struct engine *e;
    } *slots;
    size_t n_slots;
};

struct engine_pool *engine_pool_new(struct engine *base, const struct engine_options *o)
{
    struct engine_pool *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    p->o = *o;
    p->base = base;
    return p;
}

int engine_pool_get(struct engine_pool *p, int64_t memory_mb, bool restricted, struct engine **out,
                    struct loch_err *err)
{
    if (restricted && !p->o.restricted_dir)
        return loch_errf(err, LOCH_EINVAL, "no restricted engine configured");
    if (!restricted && p->base && memory_mb == p->o.memory_mb) {
        *out = p->base;
        return 0;
    }
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    struct engine *e = NULL;
    for (size_t i = 0; i < p->n_slots && !e; i++)
        if (p->slots[i].memory_mb == memory_mb && p->slots[i].restricted == restricted)
            e = p->slots[i].e;
    if (!e) {
        struct engine_options o = p->o;
        o.memory_mb = memory_mb;
        if (!restricted)
            o.restricted_dir = NULL;
        rc = engine_open(&o, &e, err);
        if (!rc) {
            p->slots = xrealloc(p->slots, (p->n_slots + 1) * sizeof *p->slots);
            p->slots[p->n_slots++] = (struct pool_slot){memory_mb, restricted, e};
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (!rc)
        *out = e;
    return rc;
}

void engine_pool_free(struct engine_pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_slots; i++)
        engine_close(p->slots[i].e);
    free(p->slots);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int engine_connect(struct engine *e, struct engine_conn **out, struct loch_err *err)
{
    struct engine_conn *c = xcalloc(1, sizeof *c);
    c->e = e;
    if (duckdb_connect(e->db, &c->con) != DuckDBSuccess) {
        free(c);
        return loch_errf(err, LOCH_EENGINE, "cannot open a DuckDB connection");
    }
    /* Timestamps with time zone print in UTC whatever the machine's zone (a confined
     * engine set that globally before locking its configuration). */
    int rc = e->confined ? 0 : engine_exec(c, "SET TimeZone = 'UTC'", err);
    if (rc) {
        engine_disconnect(c);
        return rc;
    }
    *out = c;
    return 0;
}

void engine_disconnect(struct engine_conn *c)
{
    if (!c)
        return;
    duckdb_disconnect(&c->con);
    free(c);
}

static int map_error(duckdb_result *r, struct loch_err *err)
{
    const char *m = duckdb_result_error(r);
    int code;
    switch (duckdb_result_error_type(r)) {
    case DUCKDB_ERROR_PARSER:
        code = LOCH_ESYNTAX;
        break;
    case DUCKDB_ERROR_CATALOG:
        code = LOCH_ENOENT;
        break;
    case DUCKDB_ERROR_INTERRUPT:
        code = LOCH_ECANCELED;
        break;
    case DUCKDB_ERROR_PERMISSION:
        code = LOCH_EPERM;
        break;
    case DUCKDB_ERROR_OUT_OF_MEMORY:
        code = LOCH_ENOMEM;
        break;
    case DUCKDB_ERROR_DIVIDE_BY_ZERO:
        code = LOCH_EDIVZERO;
        break;
    case DUCKDB_ERROR_CONVERSION:
        code = LOCH_ECONVERT;
        break;
    case DUCKDB_ERROR_OUT_OF_RANGE:
        code = LOCH_ERANGE;
        break;
    case DUCKDB_ERROR_BINDER:
        code = m && strstr(m, "column") && strstr(m, "not found") ? LOCH_ENOCOLUMN : LOCH_EQUERY;
        break;
    default:
        code = LOCH_EQUERY;
    }
    return loch_errf(err, code, "%s", m ? m : "query failed");
}

int engine_exec(struct engine_conn *c, const char *sql, struct loch_err *err)
{
    duckdb_result r;
    int rc = 0;
    if (duckdb_query(c->con, sql, &r) != DuckDBSuccess)
        rc = map_error(&r, err);
    duckdb_destroy_result(&r);
    return rc;
}

/* DuckDB's value-to-text accessor has no time zone context, so a SELECT returning
 * TIMESTAMPTZ or TIMETZ columns is wrapped to cast those to VARCHAR inside the query,
 * where the session's time zone (UTC) applies. Returns NULL when no wrap is needed. */
static char *text_safe_wrap(duckdb_prepared_statement ps, const char *sql)
{
    if (duckdb_prepared_statement_type(ps) != DUCKDB_STATEMENT_TYPE_SELECT)
        return NULL;
    idx_t n = duckdb_prepared_statement_column_count(ps);
    struct buf b = {0};
    for (idx_t i = 0; i < n; i++) {
        duckdb_type t = duckdb_prepared_statement_column_type(ps, i);
        if (t != DUCKDB_TYPE_TIMESTAMP_TZ && t != DUCKDB_TYPE_TIME_TZ)
            continue;
        char *name = (char *)duckdb_prepared_statement_column_name(ps, i); /* ours to free */
        buf_puts(&b, b.len ? ", CAST(" : "SELECT * REPLACE (CAST(");
        buf_sql_ident(&b, name);
        buf_puts(&b, " AS VARCHAR) AS ");
        buf_sql_ident(&b, name);
        duckdb_free(name);
    }
    if (!b.len)
        return NULL;
    buf_printf(&b, ") FROM (%s)", sql);
    return buf_take(&b);
}

static int run_query(struct engine_conn *c, const char *sql, bool for_text, struct engine_rows **out,
                     struct loch_err *err)
{
    char *wrapped = NULL;
    if (for_text) {
        duckdb_prepared_statement ps = NULL;
        if (duckdb_prepare(c->con, sql, &ps) == DuckDBSuccess)
            wrapped = text_safe_wrap(ps, sql);
        duckdb_destroy_prepare(&ps);
    }
    struct engine_rows *rows = xcalloc(1, sizeof *rows);
    if (duckdb_query(c->con, wrapped ? wrapped : sql, &rows->res) != DuckDBSuccess) {
        int rc = map_error(&rows->res, err);
        duckdb_destroy_result(&rows->res);
        free(rows);
        free(wrapped);
        return rc;
    }
    free(wrapped);
    *out = rows;
    return 0;
}

int engine_query(struct engine_conn *c, const char *sql, struct engine_rows **out, struct loch_err *err)
{
    return run_query(c, sql, false, out, err);
}

int engine_query_text(struct engine_conn *c, const char *sql, struct engine_rows **out, struct loch_err *err)
{
    return run_query(c, sql, true, out, err);
}

void engine_interrupt(struct engine_conn *c) { duckdb_interrupt(c->con); }

size_t engine_rows_count(const struct engine_rows *r) { return (size_t)duckdb_row_count((duckdb_result *)&r->res); }
size_t engine_rows_ncols(const struct engine_rows *r) { return (size_t)duckdb_column_count((duckdb_result *)&r->res); }

const char *engine_rows_name(const struct engine_rows *r, size_t col)
{
    return duckdb_column_name((duckdb_result *)&r->res, col);
}

char *engine_rows_type(struct engine_rows *r, size_t col, struct arena *a)
{
    duckdb_logical_type t = duckdb_column_logical_type(&r->res, col);
    char *s = NULL;
    duckdb_type id = duckdb_get_type_id(t);
    if (id == DUCKDB_TYPE_DECIMAL) {
        s = arena_printf(a, "DECIMAL(%d,%d)", duckdb_decimal_width(t), duckdb_decimal_scale(t));
    } else {
        char *alias = duckdb_logical_type_get_alias(t);
        if (alias) {
            s = arena_strdup(a, alias);
            duckdb_free(alias);
        }
    }
    duckdb_destroy_logical_type(&t);
    if (s)
        return s;
    static const struct {
        duckdb_type id;
        const char *name;
    } names[] = {
        {DUCKDB_TYPE_BOOLEAN, "BOOLEAN"},     {DUCKDB_TYPE_TINYINT, "TINYINT"},
        {DUCKDB_TYPE_SMALLINT, "SMALLINT"},   {DUCKDB_TYPE_INTEGER, "INTEGER"},
        {DUCKDB_TYPE_BIGINT, "BIGINT"},       {DUCKDB_TYPE_UTINYINT, "UTINYINT"},
        {DUCKDB_TYPE_USMALLINT, "USMALLINT"}, {DUCKDB_TYPE_UINTEGER, "UINTEGER"},
        {DUCKDB_TYPE_UBIGINT, "UBIGINT"},     {DUCKDB_TYPE_FLOAT, "FLOAT"},
        {DUCKDB_TYPE_DOUBLE, "DOUBLE"},       {DUCKDB_TYPE_TIMESTAMP, "TIMESTAMP"},
        {DUCKDB_TYPE_DATE, "DATE"},           {DUCKDB_TYPE_TIME, "TIME"},
        {DUCKDB_TYPE_INTERVAL, "INTERVAL"},   {DUCKDB_TYPE_HUGEINT, "HUGEINT"},
        {DUCKDB_TYPE_UHUGEINT, "UHUGEINT"},   {DUCKDB_TYPE_VARCHAR, "VARCHAR"},
        {DUCKDB_TYPE_BLOB, "BLOB"},           {DUCKDB_TYPE_TIMESTAMP_S, "TIMESTAMP_S"},
        {DUCKDB_TYPE_TIMESTAMP_MS, "TIMESTAMP_MS"}, {DUCKDB_TYPE_TIMESTAMP_NS, "TIMESTAMP_NS"},
        {DUCKDB_TYPE_ENUM, "ENUM"},           {DUCKDB_TYPE_LIST, "LIST"},
        {DUCKDB_TYPE_STRUCT, "STRUCT"},       {DUCKDB_TYPE_MAP, "MAP"},
        {DUCKDB_TYPE_UUID, "UUID"},           {DUCKDB_TYPE_UNION, "UNION"},
        {DUCKDB_TYPE_BIT, "BIT"},             {DUCKDB_TYPE_TIME_TZ, "TIMETZ"},
        {DUCKDB_TYPE_TIMESTAMP_TZ, "TIMESTAMPTZ"}, {DUCKDB_TYPE_ARRAY, "ARRAY"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].id == id)
            return arena_strdup(a, names[i].name);
    return arena_printf(a, "TYPE%d", (int)id);
}

enum engine_kind engine_rows_kind(struct engine_rows *r, size_t col)
{
    switch (duckdb_column_type(&r->res, col)) {
    case DUCKDB_TYPE_BOOLEAN:
        return ENGINE_KIND_BOOL;
    case DUCKDB_TYPE_TINYINT:
    case DUCKDB_TYPE_SMALLINT:
    case DUCKDB_TYPE_INTEGER:
    case DUCKDB_TYPE_BIGINT:
    case DUCKDB_TYPE_UTINYINT:
    case DUCKDB_TYPE_USMALLINT:
    case DUCKDB_TYPE_UINTEGER:
    case DUCKDB_TYPE_UBIGINT:
    case DUCKDB_TYPE_HUGEINT:
    case DUCKDB_TYPE_UHUGEINT:
    case DUCKDB_TYPE_FLOAT:
    case DUCKDB_TYPE_DOUBLE:
    case DUCKDB_TYPE_DECIMAL:
        return ENGINE_KIND_NUMBER;
    default:
        return ENGINE_KIND_TEXT;
    }
}

bool engine_rows_null(struct engine_rows *r, size_t col, size_t row) { return duckdb_value_is_null(&r->res, col, row); }

char *engine_rows_text(struct engine_rows *r, size_t col, size_t row, struct arena *a)
{
    if (duckdb_value_is_null(&r->res, col, row))
        return NULL;
    char *v = duckdb_value_varchar(&r->res, col, row);
    char *s = arena_strdup(a, v ? v : "");
    duckdb_free(v);
    return s;
}

int64_t engine_rows_int(struct engine_rows *r, size_t col, size_t row) { return duckdb_value_int64(&r->res, col, row); }

int64_t engine_rows_changed(struct engine_rows *r)
{
    if (duckdb_column_count(&r->res) >= 1 && duckdb_row_count(&r->res) >= 1)
        return duckdb_value_int64(&r->res, 0, 0);
    return (int64_t)duckdb_rows_changed(&r->res);
}

void engine_rows_free(struct engine_rows *r)
{
    if (!r)
        return;
    duckdb_destroy_result(&r->res);
    free(r);
}

/* ---- row masks and loch_keep(mask, row) ---- */

#define MASK_SLOT(id) ((size_t)((uint64_t)(id) & 0xffffffffu))
#define MASK_GEN(id) ((uint32_t)((uint64_t)(id) >> 32))

/* loch_keep(mask BIGINT, row BIGINT) -> BOOLEAN: false when row is marked in the mask.
 * DuckDB calls it from its worker threads on flattened chunks. */
static void keep_fn(duckdb_function_info info, duckdb_data_chunk input, duckdb_vector output)
{
    struct engine *e = duckdb_scalar_function_get_extra_info(info);
    idx_t n = duckdb_data_chunk_get_size(input);
    duckdb_vector vid = duckdb_data_chunk_get_vector(input, 0), vrow = duckdb_data_chunk_get_vector(input, 1);
    const int64_t *ids = duckdb_vector_get_data(vid), *rows = duckdb_vector_get_data(vrow);
    uint64_t *vval_id = duckdb_vector_get_validity(vid), *vval_row = duckdb_vector_get_validity(vrow);
    bool *out = duckdb_vector_get_data(output);
    pthread_rwlock_rdlock(&e->masks_lock);
    int64_t cur = -1;
    const struct mask_slot *m = NULL;
    for (idx_t i = 0; i < n; i++) {
        if ((vval_id && !duckdb_validity_row_is_valid(vval_id, i)) ||
            (vval_row && !duckdb_validity_row_is_valid(vval_row, i))) {
            out[i] = false;
            continue;
        }
        if (ids[i] != cur || !m) {
            cur = ids[i];
            size_t slot = MASK_SLOT(cur);
            m = slot < e->n_masks && e->masks[slot].bits && e->masks[slot].gen == MASK_GEN(cur) ? &e->masks[slot]
                                                                                                 : NULL;
            if (!m) {
                pthread_rwlock_unlock(&e->masks_lock);
                duckdb_scalar_function_set_error(info, "loch_keep: this row mask has expired; run the statement again");
                return;
            }
        }
        uint64_t r = (uint64_t)rows[i];
        out[i] = rows[i] < 0 || r >= m->nrows || !(m->bits[r >> 6] >> (r & 63) & 1);
    }
    pthread_rwlock_unlock(&e->masks_lock);
}

static int register_keep(struct engine *e, struct loch_err *err)
{
    duckdb_connection con;
    if (duckdb_connect(e->db, &con) != DuckDBSuccess)
        return loch_errf(err, LOCH_EENGINE, "cannot open a DuckDB connection");
    duckdb_scalar_function f = duckdb_create_scalar_function();
    duckdb_scalar_function_set_name(f, "loch_keep");
    duckdb_logical_type big = duckdb_create_logical_type(DUCKDB_TYPE_BIGINT);
    duckdb_logical_type boolean = duckdb_create_logical_type(DUCKDB_TYPE_BOOLEAN);
    duckdb_scalar_function_add_parameter(f, big);
    duckdb_scalar_function_add_parameter(f, big);
    duckdb_scalar_function_set_return_type(f, boolean);
    duckdb_scalar_function_set_extra_info(f, e, NULL);
    duckdb_scalar_function_set_function(f, keep_fn);
    duckdb_state st = duckdb_register_scalar_function(con, f);
    duckdb_destroy_logical_type(&big);
    duckdb_destroy_logical_type(&boolean);
    duckdb_destroy_scalar_function(&f);
    duckdb_disconnect(&con);
    if (st != DuckDBSuccess)
        return loch_errf(err, LOCH_EENGINE, "cannot register loch_keep with DuckDB");
    return 0;
}

static int64_t mask_id(const struct engine *e, size_t slot)
{
    return (int64_t)(((uint64_t)e->masks[slot].gen << 32) | slot);
}

/* Under the masks lock (either mode): the live slot built from key for nrows rows. */
static int mask_find(struct engine *e, const char *key, uint64_t nrows)
{
    for (size_t i = 0; i < e->n_masks; i++)
        if (e->masks[i].bits && e->masks[i].nrows == nrows && !strcmp(e->masks[i].key, key))
            return (int)i;
    return -1;
}

int engine_mask_build(struct engine_conn *c, const char *key, const char *positions_sql, uint64_t nrows,
                      int64_t *id_out, struct loch_err *err)
{
    struct engine *e = c->e;
    pthread_rwlock_rdlock(&e->masks_lock);
    int hit = mask_find(e, key, nrows);
    if (hit >= 0) {
        e->masks[hit].last_used_ms = util_now_ms();
        *id_out = mask_id(e, (size_t)hit);
        pthread_rwlock_unlock(&e->masks_lock);
        return 0;
    }
    pthread_rwlock_unlock(&e->masks_lock);

    duckdb_result r;
    if (duckdb_query(c->con, positions_sql, &r) != DuckDBSuccess) {
        int rc = map_error(&r, err);
        duckdb_destroy_result(&r);
        return rc;
    }
    if (duckdb_column_count(&r) != 1 || duckdb_column_type(&r, 0) != DUCKDB_TYPE_BIGINT) {
        duckdb_destroy_result(&r);
        return loch_errf(err, LOCH_EINTERNAL, "row mask query must return one BIGINT column");
    }
    size_t words = (size_t)(nrows / 64 + 1);
    uint64_t *bits = xcalloc(words, sizeof *bits);
    duckdb_data_chunk ch;
    while ((ch = duckdb_fetch_chunk(r)) != NULL) {
        idx_t n = duckdb_data_chunk_get_size(ch);
        duckdb_vector v = duckdb_data_chunk_get_vector(ch, 0);
        const int64_t *pos = duckdb_vector_get_data(v);
        uint64_t *valid = duckdb_vector_get_validity(v);
        for (idx_t i = 0; i < n; i++)
            if ((!valid || duckdb_validity_row_is_valid(valid, i)) && pos[i] >= 0 && (uint64_t)pos[i] < nrows)
                bits[(uint64_t)pos[i] >> 6] |= 1ull << ((uint64_t)pos[i] & 63);
        duckdb_destroy_data_chunk(&ch);
    }
    duckdb_destroy_result(&r);

    pthread_rwlock_wrlock(&e->masks_lock);
    hit = mask_find(e, key, nrows); /* another session may have built it meanwhile */
    if (hit >= 0) {
        free(bits);
        e->masks[hit].last_used_ms = util_now_ms();
        *id_out = mask_id(e, (size_t)hit);
        pthread_rwlock_unlock(&e->masks_lock);
        return 0;
    }
    size_t slot = 0;
    while (slot < e->n_masks && e->masks[slot].bits)
        slot++;
    if (slot == e->n_masks) {
        e->masks = xrealloc(e->masks, (e->n_masks + 1) * sizeof *e->masks);
        e->masks[e->n_masks++] = (struct mask_slot){0};
    }
    struct mask_slot *m = &e->masks[slot];
    m->bits = bits;
    m->nrows = nrows;
    m->gen++;
    m->key = xstrdup(key);
    m->last_used_ms = util_now_ms();
    *id_out = mask_id(e, slot);
    pthread_rwlock_unlock(&e->masks_lock);
    return 0;
}

/* Drops the masks last used before cutoff_ms (all when cutoff_ms is INT64_MAX). */
static void masks_drop(struct engine *e, int64_t cutoff_ms)
{
    pthread_rwlock_wrlock(&e->masks_lock);
    for (size_t i = 0; i < e->n_masks; i++)
        if (e->masks[i].bits && e->masks[i].last_used_ms < cutoff_ms) {
            free(e->masks[i].bits);
            free(e->masks[i].key);
            e->masks[i].bits = NULL;
            e->masks[i].key = NULL;
        }
    pthread_rwlock_unlock(&e->masks_lock);
}

void engine_masks_clear(struct engine_conn *c) { masks_drop(c->e, INT64_MAX); }

void engine_masks_trim(struct engine_conn *c, size_t max_bytes, int64_t idle_ms)
{
    struct engine *e = c->e;
    size_t total = 0;
    pthread_rwlock_rdlock(&e->masks_lock);
    for (size_t i = 0; i < e->n_masks; i++)
        if (e->masks[i].bits)
            total += (size_t)(e->masks[i].nrows / 64 + 1) * sizeof(uint64_t);
    pthread_rwlock_unlock(&e->masks_lock);
    if (total > max_bytes)
        masks_drop(e, util_now_ms() - idle_ms);
}

/* ---- Prepared statements and streamed results ---- */

struct engine_stmt {
    struct engine_conn *conn;
    duckdb_prepared_statement ps;
    struct engine_col *cols;
    char **names; /* DuckDB-allocated column names */
    size_t n_cols;
};

struct engine_chunk {
    duckdb_data_chunk dc;
    size_t n_rows;
    void **data;
    uint64_t **valid;
    const struct engine_col *cols;
    const duckdb_type *phys; /* per column: the stored integer width (ints, decimals) */
    const int *units;        /* per column: 0 µs, 1 s, 2 ms, 3 ns (timestamps) */
};

struct engine_stream {
    duckdb_result own;
    duckdb_result *res;
    bool owned;
    struct engine_col *cols;
    size_t n_cols;
    struct engine_chunk ch;
    int *units;     /* per column: 0 µs, 1 s, 2 ms, 3 ns (timestamps) */
    duckdb_type *phys;
    duckdb_arrow_options arrow; /* made by engine_stream_arrow_schema */
    duckdb_data_chunk *buffered; /* engine_stream_buffer: the rest of the result */
    size_t n_buffered, next_buffered;
    bool is_buffered;
};

/* The wire type for a DuckDB logical type; *unit for TIMESTAMP_S/MS/NS. */
static enum engine_type map_type(duckdb_logical_type t, int *width, int *scale, int *unit)
{
    *width = *scale = *unit = 0;
    duckdb_type id = duckdb_get_type_id(t);
    switch (id) {
    case DUCKDB_TYPE_BOOLEAN: return ENGINE_T_BOOL;
    case DUCKDB_TYPE_TINYINT:
    case DUCKDB_TYPE_SMALLINT:
    case DUCKDB_TYPE_UTINYINT: return ENGINE_T_INT16;
    case DUCKDB_TYPE_INTEGER:
    case DUCKDB_TYPE_USMALLINT: return ENGINE_T_INT32;
    case DUCKDB_TYPE_BIGINT:
    case DUCKDB_TYPE_UINTEGER: return ENGINE_T_INT64;
    case DUCKDB_TYPE_HUGEINT: return ENGINE_T_HUGEINT;
    case DUCKDB_TYPE_FLOAT: return ENGINE_T_FLOAT;
    case DUCKDB_TYPE_DOUBLE: return ENGINE_T_DOUBLE;
    case DUCKDB_TYPE_DECIMAL:
        *width = duckdb_decimal_width(t);
        *scale = duckdb_decimal_scale(t);
        return ENGINE_T_DECIMAL;
    case DUCKDB_TYPE_VARCHAR: {
        char *alias = duckdb_logical_type_get_alias(t);
        bool json = alias && !strcmp(alias, "JSON");
        duckdb_free(alias);
        return json ? ENGINE_T_JSON : ENGINE_T_TEXT;
    }
    case DUCKDB_TYPE_BLOB: return ENGINE_T_BLOB;
    case DUCKDB_TYPE_DATE: return ENGINE_T_DATE;
    case DUCKDB_TYPE_TIME: return ENGINE_T_TIME;
    case DUCKDB_TYPE_TIMESTAMP: return ENGINE_T_TIMESTAMP;
    case DUCKDB_TYPE_TIMESTAMP_S: *unit = 1; return ENGINE_T_TIMESTAMP;
    case DUCKDB_TYPE_TIMESTAMP_MS: *unit = 2; return ENGINE_T_TIMESTAMP;
    case DUCKDB_TYPE_TIMESTAMP_NS: *unit = 3; return ENGINE_T_TIMESTAMP;
    case DUCKDB_TYPE_TIMESTAMP_TZ: return ENGINE_T_TIMESTAMPTZ;
    case DUCKDB_TYPE_UUID: return ENGINE_T_UUID;
    case DUCKDB_TYPE_INTERVAL: return ENGINE_T_INTERVAL;
    case DUCKDB_TYPE_INVALID:
    case DUCKDB_TYPE_ANY:
    case DUCKDB_TYPE_SQLNULL:
    case DUCKDB_TYPE_STRING_LITERAL:
    case DUCKDB_TYPE_INTEGER_LITERAL:
        return ENGINE_T_TEXT; /* a parameter's type, known only once it is bound: text */
    default: return ENGINE_T_OTHER;
    }
}

static void stmt_describe(struct engine_stmt *st)
{
    for (size_t i = 0; i < st->n_cols; i++)
        duckdb_free(st->names[i]);
    free(st->names);
    free(st->cols);
    st->n_cols = duckdb_prepared_statement_column_count(st->ps);
    st->cols = xcalloc(st->n_cols ? st->n_cols : 1, sizeof *st->cols);
    st->names = xcalloc(st->n_cols ? st->n_cols : 1, sizeof *st->names);
    for (size_t i = 0; i < st->n_cols; i++) {
        st->names[i] = (char *)duckdb_prepared_statement_column_name(st->ps, i);
        st->cols[i].name = st->names[i] ? st->names[i] : "?column?";
        duckdb_logical_type t = duckdb_prepared_statement_column_logical_type(st->ps, i);
        int unit;
        st->cols[i].type = map_type(t, &st->cols[i].width, &st->cols[i].scale, &unit);
        duckdb_destroy_logical_type(&t);
    }
}

static int prepare_error(duckdb_prepared_statement ps, struct loch_err *err)
{
    const char *m = duckdb_prepare_error(ps);
    int code = LOCH_EQUERY;
    if (m && (!strncmp(m, "Parser Error", 12)))
        code = LOCH_ESYNTAX;
    else if (m && !strncmp(m, "Catalog Error", 13))
        code = LOCH_ENOENT;
    else if (m && !strncmp(m, "Permission Error", 16))
        code = LOCH_EPERM;
    else if (m && !strncmp(m, "INTERRUPT Error", 15))
        code = LOCH_ECANCELED;
    else if (m && !strncmp(m, "Conversion Error", 16))
        code = LOCH_ECONVERT;
    else if (m && !strncmp(m, "Out of Memory Error", 19))
        code = LOCH_ENOMEM;
    else if (m && !strncmp(m, "Binder Error", 12) && strstr(m, "column") && strstr(m, "not found"))
        code = LOCH_ENOCOLUMN;
    return loch_errf(err, code, "%s", m ? m : "cannot prepare the statement");
}

int engine_prepare(struct engine_conn *c, const char *sql, struct engine_stmt **out, struct loch_err *err)
{
    duckdb_prepared_statement ps = NULL;
    if (duckdb_prepare(c->con, sql, &ps) != DuckDBSuccess) {
        int rc = prepare_error(ps, err);
        duckdb_destroy_prepare(&ps);
        return rc;
    }
    struct engine_stmt *st = xcalloc(1, sizeof *st);
    st->conn = c;
    st->ps = ps;
    stmt_describe(st);
    /* Columns the wire cannot carry natively come back as text: cast inside the query. */
    bool other = false;
    for (size_t i = 0; i < st->n_cols; i++)
        other |= st->cols[i].type == ENGINE_T_OTHER;
    if (other && duckdb_prepared_statement_type(ps) == DUCKDB_STATEMENT_TYPE_SELECT) {
        struct buf b = {0};
        for (size_t i = 0; i < st->n_cols; i++) {
            if (st->cols[i].type != ENGINE_T_OTHER)
                continue;
            buf_puts(&b, b.len ? ", CAST(" : "SELECT * REPLACE (CAST(");
            buf_sql_ident(&b, st->cols[i].name);
            buf_puts(&b, " AS VARCHAR) AS ");
            buf_sql_ident(&b, st->cols[i].name);
        }
        buf_printf(&b, ") FROM (%s)", sql);
        duckdb_prepared_statement ps2 = NULL;
        if (duckdb_prepare(c->con, b.data, &ps2) == DuckDBSuccess &&
            duckdb_nparams(ps2) == duckdb_nparams(ps)) {
            duckdb_destroy_prepare(&st->ps);
            st->ps = ps2;
            stmt_describe(st);
        } else {
            duckdb_destroy_prepare(&ps2); /* duplicate names: values then show as text of NULL */
        }
        buf_free(&b);
    }
    *out = st;
    return 0;
}

void engine_stmt_free(struct engine_stmt *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_cols; i++)
        duckdb_free(st->names[i]);
    free(st->names);
    free(st->cols);
    duckdb_destroy_prepare(&st->ps);
    free(st);
}

size_t engine_stmt_nparams(const struct engine_stmt *st) { return duckdb_nparams(st->ps); }

enum engine_type engine_stmt_param_type(const struct engine_stmt *st, size_t i)
{
    duckdb_logical_type t = duckdb_param_logical_type(st->ps, i + 1);
    if (!t)
        return ENGINE_T_OTHER;
    int w, s, u;
    enum engine_type r = map_type(t, &w, &s, &u);
    duckdb_destroy_logical_type(&t);
    return r;
}

size_t engine_stmt_ncols(const struct engine_stmt *st) { return st->n_cols; }
const struct engine_col *engine_stmt_col(const struct engine_stmt *st, size_t i) { return &st->cols[i]; }

bool engine_stmt_returns_rows(const struct engine_stmt *st)
{
    switch (duckdb_prepared_statement_type(st->ps)) {
    case DUCKDB_STATEMENT_TYPE_SELECT:
    case DUCKDB_STATEMENT_TYPE_EXPLAIN:
    case DUCKDB_STATEMENT_TYPE_PRAGMA:
    case DUCKDB_STATEMENT_TYPE_CALL:
    case DUCKDB_STATEMENT_TYPE_RELATION:
    case DUCKDB_STATEMENT_TYPE_LOGICAL_PLAN:
        return st->n_cols > 0;
    default:
        return false;
    }
}

static int bind_rc(struct engine_stmt *st, duckdb_state s, size_t i, struct loch_err *err)
{
    if (s == DuckDBSuccess)
        return 0;
    const char *m = duckdb_prepare_error(st->ps);
    return loch_errf(err, LOCH_EINVAL, "cannot bind parameter $%zu%s%s", i + 1, m ? ": " : "", m ? m : "");
}

int engine_bind_null(struct engine_stmt *st, size_t i, struct loch_err *err)
{
    return bind_rc(st, duckdb_bind_null(st->ps, i + 1), i, err);
}

int engine_bind_text(struct engine_stmt *st, size_t i, const char *s, size_t len, struct loch_err *err)
{
    return bind_rc(st, duckdb_bind_varchar_length(st->ps, i + 1, s, len), i, err);
}

int engine_bind_int(struct engine_stmt *st, size_t i, int64_t v, struct loch_err *err)
{
    return bind_rc(st, duckdb_bind_int64(st->ps, i + 1, v), i, err);
}

int engine_bind_double(struct engine_stmt *st, size_t i, double v, struct loch_err *err)
{
    return bind_rc(st, duckdb_bind_double(st->ps, i + 1, v), i, err);
}

int engine_bind_bool(struct engine_stmt *st, size_t i, bool v, struct loch_err *err)
{
    return bind_rc(st, duckdb_bind_boolean(st->ps, i + 1, v), i, err);
}

int engine_bind_blob(struct engine_stmt *st, size_t i, const void *p, size_t len, struct loch_err *err)
{
    return bind_rc(st, duckdb_bind_blob(st->ps, i + 1, p, len), i, err);
}

int engine_bind_date(struct engine_stmt *st, size_t i, int32_t days, struct loch_err *err)
{
    duckdb_date d = {days};
    return bind_rc(st, duckdb_bind_date(st->ps, i + 1, d), i, err);
}

int engine_bind_timestamp(struct engine_stmt *st, size_t i, int64_t us, bool tz, struct loch_err *err)
{
    duckdb_timestamp t = {us};
    return bind_rc(st, tz ? duckdb_bind_timestamp_tz(st->ps, i + 1, t) : duckdb_bind_timestamp(st->ps, i + 1, t),
                   i, err);
}

static struct engine_stream *stream_make(duckdb_result *res)
{
    struct engine_stream *s = xcalloc(1, sizeof *s);
    s->res = res;
    s->n_cols = duckdb_column_count(res);
    s->cols = xcalloc(s->n_cols ? s->n_cols : 1, sizeof *s->cols);
    s->units = xcalloc(s->n_cols ? s->n_cols : 1, sizeof *s->units);
    s->phys = xcalloc(s->n_cols ? s->n_cols : 1, sizeof *s->phys);
    for (size_t i = 0; i < s->n_cols; i++) {
        s->cols[i].name = duckdb_column_name(res, i);
        duckdb_logical_type t = duckdb_column_logical_type(res, i);
        s->cols[i].type = map_type(t, &s->cols[i].width, &s->cols[i].scale, &s->units[i]);
        s->phys[i] = s->cols[i].type == ENGINE_T_DECIMAL ? duckdb_decimal_internal_type(t) : duckdb_get_type_id(t);
        duckdb_destroy_logical_type(&t);
    }
    s->ch.data = xcalloc(s->n_cols ? s->n_cols : 1, sizeof *s->ch.data);
    s->ch.valid = xcalloc(s->n_cols ? s->n_cols : 1, sizeof *s->ch.valid);
    s->ch.cols = s->cols;
    s->ch.phys = s->phys;
    s->ch.units = s->units;
    return s;
}

int engine_execute(struct engine_stmt *st, struct engine_stream **out, struct loch_err *err)
{
    duckdb_pending_result pending;
    if (duckdb_pending_prepared_streaming(st->ps, &pending) != DuckDBSuccess) {
        const char *m = duckdb_pending_error(pending);
        int rc = loch_errf(err, m && !strncmp(m, "Out of Memory Error", 19) ? LOCH_ENOMEM : LOCH_EQUERY, "%s",
                           m ? m : "cannot execute the statement");
        duckdb_destroy_pending(&pending);
        return rc;
    }
    duckdb_result res;
    if (duckdb_execute_pending(pending, &res) != DuckDBSuccess) {
        int rc = map_error(&res, err);
        duckdb_destroy_result(&res);
        duckdb_destroy_pending(&pending);
        return rc;
    }
    duckdb_destroy_pending(&pending);
    struct engine_stream *s = stream_make(&res);
    s->own = res;
    s->res = &s->own;
    s->owned = true;
    for (size_t i = 0; i < s->n_cols; i++)
        s->cols[i].name = duckdb_column_name(s->res, i);
    *out = s;
    return 0;
}

struct engine_stream *engine_stream_rows(struct engine_rows *r) { return stream_make(&r->res); }
size_t engine_stream_ncols(const struct engine_stream *s) { return s->n_cols; }
const struct engine_col *engine_stream_col(const struct engine_stream *s, size_t i) { return &s->cols[i]; }
int64_t engine_stream_changed(struct engine_stream *s) { return (int64_t)duckdb_rows_changed(s->res); }

int engine_stream_next(struct engine_stream *s, struct engine_chunk **out, struct loch_err *err)
{
    *out = NULL;
    if (s->ch.dc)
        duckdb_destroy_data_chunk(&s->ch.dc);
    s->ch.dc = NULL;
    duckdb_data_chunk dc = NULL;
    if (s->is_buffered) {
        if (s->next_buffered < s->n_buffered) {
            dc = s->buffered[s->next_buffered];
            s->buffered[s->next_buffered++] = NULL;
        }
        if (!dc)
            return 0;
    } else {
        dc = duckdb_fetch_chunk(*s->res);
    }
    if (!dc) {
        const char *m = duckdb_result_error(s->res);
        if (m && *m)
            return map_error(s->res, err);
        return 0;
    }
    s->ch.dc = dc;
    s->ch.n_rows = duckdb_data_chunk_get_size(dc);
    for (size_t i = 0; i < s->n_cols; i++) {
        duckdb_vector v = duckdb_data_chunk_get_vector(dc, i);
        s->ch.data[i] = duckdb_vector_get_data(v);
        s->ch.valid[i] = duckdb_vector_get_validity(v);
    }
    *out = &s->ch;
    return 0;
}

int engine_stream_buffer(struct engine_stream *s, struct loch_err *err)
{
    if (s->is_buffered)
        return 0;
    size_t cap = 0;
    for (;;) {
        duckdb_data_chunk dc = duckdb_fetch_chunk(*s->res);
        if (!dc)
            break;
        if (s->n_buffered == cap) {
            cap = cap ? cap * 2 : 16;
            s->buffered = xrealloc(s->buffered, cap * sizeof *s->buffered);
        }
        s->buffered[s->n_buffered++] = dc;
    }
    s->is_buffered = true;
    const char *m = duckdb_result_error(s->res);
    return m && *m ? map_error(s->res, err) : 0;
}

void engine_stream_free(struct engine_stream *s)
{
    if (!s)
        return;
    for (size_t i = s->next_buffered; i < s->n_buffered; i++)
        if (s->buffered[i])
            duckdb_destroy_data_chunk(&s->buffered[i]);
    free(s->buffered);
    if (s->ch.dc)
        duckdb_destroy_data_chunk(&s->ch.dc);
    if (s->arrow)
        duckdb_destroy_arrow_options(&s->arrow);
    if (s->owned)
        duckdb_destroy_result(&s->own);
    free(s->ch.data);
    free(s->ch.valid);
    free(s->cols);
    free(s->units);
    free(s->phys);
    free(s);
}

size_t engine_chunk_rows(const struct engine_chunk *ch) { return ch->n_rows; }

/* An error DuckDB's Arrow conversion reported (consumes e), or 0. */
static int arrow_error(duckdb_error_data e, const char *what, struct loch_err *err)
{
    if (!e)
        return 0;
    int rc = 0;
    if (duckdb_error_data_has_error(e)) {
        const char *m = duckdb_error_data_message(e);
        rc = loch_errf(err, LOCH_EQUERY, "cannot convert %s to Arrow: %s", what, m ? m : "unknown error");
        loch_err_hint(err, "ask for application/json or text/csv instead");
    }
    duckdb_destroy_error_data(&e);
    return rc;
}

int engine_stream_arrow_schema(struct engine_stream *s, struct ArrowSchema *out, struct loch_err *err)
{
    if (!s->arrow)
        s->arrow = duckdb_result_get_arrow_options(s->res);
    size_t n = s->n_cols;
    duckdb_logical_type *types = xcalloc(n ? n : 1, sizeof *types);
    const char **names = xcalloc(n ? n : 1, sizeof *names);
    for (size_t i = 0; i < n; i++) {
        types[i] = duckdb_column_logical_type(s->res, i);
        names[i] = s->cols[i].name ? s->cols[i].name : "";
    }
    int rc = arrow_error(duckdb_to_arrow_schema(s->arrow, types, names, n, out), "the result's columns", err);
    for (size_t i = 0; i < n; i++)
        duckdb_destroy_logical_type(&types[i]);
    free(types);
    free(names);
    return rc;
}

int engine_chunk_to_arrow(struct engine_stream *s, struct engine_chunk *ch, struct ArrowArray *out,
                          struct loch_err *err)
{
    if (!s->arrow)
        s->arrow = duckdb_result_get_arrow_options(s->res);
    return arrow_error(duckdb_data_chunk_to_arrow(s->arrow, ch->dc, out), "a chunk of rows", err);
}

bool engine_chunk_get(struct engine_chunk *ch, size_t col, size_t row, struct engine_val *v)
{
    if (ch->valid[col] && !duckdb_validity_row_is_valid(ch->valid[col], row))
        return false;
    const struct engine_col *c = &ch->cols[col];
    void *d = ch->data[col];
    memset(v, 0, sizeof *v);
    switch (c->type) {
    case ENGINE_T_BOOL: v->i = ((bool *)d)[row]; break;
    case ENGINE_T_INT16: case ENGINE_T_INT32: case ENGINE_T_INT64: {
        switch (ch->phys[col]) {
        case DUCKDB_TYPE_TINYINT: v->i = ((int8_t *)d)[row]; break;
        case DUCKDB_TYPE_UTINYINT: v->i = ((uint8_t *)d)[row]; break;
        case DUCKDB_TYPE_SMALLINT: v->i = ((int16_t *)d)[row]; break;
        case DUCKDB_TYPE_USMALLINT: v->i = ((uint16_t *)d)[row]; break;
        case DUCKDB_TYPE_INTEGER: v->i = ((int32_t *)d)[row]; break;
        case DUCKDB_TYPE_UINTEGER: v->i = ((uint32_t *)d)[row]; break;
        default: v->i = ((int64_t *)d)[row]; break;
        }
        break;
    }
    case ENGINE_T_HUGEINT:
    case ENGINE_T_UUID: {
        duckdb_hugeint h = ((duckdb_hugeint *)d)[row];
        v->hi = h.upper;
        v->lo = h.lower;
        if (c->type == ENGINE_T_UUID)
            v->hi = (int64_t)((uint64_t)h.upper ^ (UINT64_C(1) << 63)); /* DuckDB flips the top bit to sort */
        break;
    }
    case ENGINE_T_FLOAT: v->f = ((float *)d)[row]; break;
    case ENGINE_T_DOUBLE: v->f = ((double *)d)[row]; break;
    case ENGINE_T_DECIMAL: {
        switch (ch->phys[col]) {
        case DUCKDB_TYPE_SMALLINT: v->i = ((int16_t *)d)[row]; break;
        case DUCKDB_TYPE_INTEGER: v->i = ((int32_t *)d)[row]; break;
        case DUCKDB_TYPE_BIGINT: v->i = ((int64_t *)d)[row]; break;
        default: {
            duckdb_hugeint h = ((duckdb_hugeint *)d)[row];
            v->hi = h.upper;
            v->lo = h.lower;
            v->wide = true;
        }
        }
        break;
    }
    case ENGINE_T_DATE: v->i = ((int32_t *)d)[row]; break;
    case ENGINE_T_TIME: case ENGINE_T_TIMESTAMPTZ: v->i = ((int64_t *)d)[row]; break;
    case ENGINE_T_TIMESTAMP: {
        /* Timestamps in s/ms/ns become µs here, so readers see one unit. The chunk itself
         * keeps DuckDB's unit: engine_chunk_to_arrow hands it on with its own type. */
        int64_t t = ((int64_t *)d)[row];
        int unit = ch->units[col];
        if (unit && t != INT64_MAX && t != -INT64_MAX)
            t = unit == 1 ? t * 1000000 : unit == 2 ? t * 1000 : t / 1000;
        v->i = t;
        break;
    }
    case ENGINE_T_INTERVAL: {
        duckdb_interval iv = ((duckdb_interval *)d)[row];
        v->months = iv.months;
        v->days = iv.days;
        v->i = iv.micros;
        break;
    }
    case ENGINE_T_TEXT: case ENGINE_T_JSON: case ENGINE_T_BLOB: {
        duckdb_string_t *s = &((duckdb_string_t *)d)[row];
        v->len = duckdb_string_t_length(*s);
        v->p = duckdb_string_t_data(s);
        break;
    }
    default:
        v->p = "";
        v->len = 0;
    }
    return true;
}

/* ---- appenders ---- */
struct engine_appender {
    duckdb_appender app;
    bool failed; /* a value was refused; reported at end_row */
};

int engine_appender_open(struct engine_conn *c, const char *catalog, const char *table,
                         struct engine_appender **out, struct loch_err *err)
{
    struct engine_appender *ap = xcalloc(1, sizeof *ap);
    if (duckdb_appender_create_ext(c->con, catalog, NULL, table, &ap->app) != DuckDBSuccess) {
        loch_errf(err, LOCH_EENGINE, "cannot append to %s: %s", table,
                  ap->app ? duckdb_appender_error(ap->app) : "unknown error");
        duckdb_appender_destroy(&ap->app);
        free(ap);
        return LOCH_EENGINE;
    }
    *out = ap;
    return 0;
}

void engine_append_text(struct engine_appender *ap, const char *s, size_t len)
{
    duckdb_state st = s ? duckdb_append_varchar_length(ap->app, s, len) : duckdb_append_null(ap->app);
    if (st != DuckDBSuccess)
        ap->failed = true;
}

void engine_append_int(struct engine_appender *ap, int64_t v)
{
    if (duckdb_append_int64(ap->app, v) != DuckDBSuccess)
        ap->failed = true;
}

int engine_append_end_row(struct engine_appender *ap, struct loch_err *err)
{
    if (ap->failed || duckdb_appender_end_row(ap->app) != DuckDBSuccess) {
        ap->failed = false;
        const char *m = duckdb_appender_error(ap->app);
        return loch_errf(err, LOCH_EENGINE, "cannot append a row: %s", m ? m : "a value did not fit its column");
    }
    return 0;
}

int engine_appender_flush(struct engine_appender *ap, struct loch_err *err)
{
    if (duckdb_appender_flush(ap->app) != DuckDBSuccess) {
        const char *m = duckdb_appender_error(ap->app);
        return loch_errf(err, LOCH_EENGINE, "cannot flush appended rows: %s", m ? m : "unknown error");
    }
    return 0;
}

void engine_appender_close(struct engine_appender *ap)
{
    if (!ap)
        return;
    duckdb_appender_destroy(&ap->app);
    free(ap);
}
