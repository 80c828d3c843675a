/* engine.c: DuckDB database, connections and materialised results (see engine.h). */
#include "engine/engine.h"

#include <duckdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

/* A row mask: the deleted positions of one data file, as bits. A slot is live while
 * bits != NULL; gen changes each time the slot is reused, so a stale id never reads
 * another statement's mask. */
struct mask_slot {
    uint64_t *bits;
    uint64_t nrows;
    uint32_t gen;
    const struct engine_conn *owner;
    char *key;    /* what the mask was built from; a build with the same key reuses it */
};

struct engine {
    duckdb_database db;
    pthread_rwlock_t masks_lock; /* writers: create/drop; readers: loch_keep */
    struct mask_slot *masks;
    size_t n_masks;
};

struct engine_conn {
    duckdb_connection con;
    struct engine *e;
};

struct engine_rows {
    duckdb_result res;
};

static int register_keep(struct engine *e, struct loch_err *err);

int engine_open(const struct engine_options *o, struct engine **out, struct loch_err *err)
{
    duckdb_config cfg;
    if (duckdb_create_config(&cfg) != DuckDBSuccess)
        return loch_errf(err, LOCH_ENOMEM, "cannot create a DuckDB configuration");
    char num[32];
    if (o && o->threads > 0) {
        snprintf(num, sizeof num, "%d", o->threads);
        duckdb_set_config(cfg, "threads", num);
    }
    if (o && o->memory_mb > 0) {
        snprintf(num, sizeof num, "%lldMB", (long long)o->memory_mb);
        duckdb_set_config(cfg, "memory_limit", num);
    }
    if (o && o->temp_dir)
        duckdb_set_config(cfg, "temp_directory", o->temp_dir);
    /* Extensions are compiled in; nothing may be downloaded at run time. */
    duckdb_set_config(cfg, "autoinstall_known_extensions", "false");
    duckdb_set_config(cfg, "autoload_known_extensions", "false");
    struct engine *e = xcalloc(1, sizeof *e);
    char *msg = NULL;
    if (duckdb_open_ext(NULL, &e->db, cfg, &msg) != DuckDBSuccess) {
        loch_errf(err, LOCH_EENGINE, "cannot open DuckDB: %s", msg ? msg : "unknown error");
        duckdb_free(msg);
        duckdb_destroy_config(&cfg);
        free(e);
        return LOCH_EENGINE;
    }
    duckdb_destroy_config(&cfg);
    pthread_rwlock_init(&e->masks_lock, NULL);
    int rc = register_keep(e, err);
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
    duckdb_close(&e->db);
    for (size_t i = 0; i < e->n_masks; i++) {
        free(e->masks[i].bits);
        free(e->masks[i].key);
    }
    free(e->masks);
    pthread_rwlock_destroy(&e->masks_lock);
    free(e);
}

int engine_connect(struct engine *e, struct engine_conn **out, struct loch_err *err)
{
    struct engine_conn *c = xcalloc(1, sizeof *c);
    c->e = e;
    if (duckdb_connect(e->db, &c->con) != DuckDBSuccess) {
        free(c);
        return loch_errf(err, LOCH_EENGINE, "cannot open a DuckDB connection");
    }
    /* Timestamps with time zone print in UTC whatever the machine's zone. */
    int rc = engine_exec(c, "SET TimeZone = 'UTC'", err);
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
    engine_masks_clear(c);
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

int engine_mask_build(struct engine_conn *c, const char *key, const char *positions_sql, uint64_t nrows,
                      int64_t *id_out, struct loch_err *err)
{
    struct engine *e = c->e;
    pthread_rwlock_rdlock(&e->masks_lock);
    for (size_t i = 0; i < e->n_masks; i++)
        if (e->masks[i].bits && e->masks[i].owner == c && e->masks[i].nrows == nrows && !strcmp(e->masks[i].key, key)) {
            *id_out = mask_id(e, i);
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
    m->owner = c;
    m->key = xstrdup(key);
    *id_out = mask_id(e, slot);
    pthread_rwlock_unlock(&e->masks_lock);
    return 0;
}

void engine_masks_clear(struct engine_conn *c)
{
    struct engine *e = c->e;
    pthread_rwlock_wrlock(&e->masks_lock);
    for (size_t i = 0; i < e->n_masks; i++)
        if (e->masks[i].bits && e->masks[i].owner == c) {
            free(e->masks[i].bits);
            free(e->masks[i].key);
            e->masks[i].bits = NULL;
            e->masks[i].key = NULL;
            e->masks[i].owner = NULL;
        }
    pthread_rwlock_unlock(&e->masks_lock);
}

void engine_masks_trim(struct engine_conn *c, size_t max_bytes)
{
    struct engine *e = c->e;
    size_t total = 0;
    pthread_rwlock_rdlock(&e->masks_lock);
    for (size_t i = 0; i < e->n_masks; i++)
        if (e->masks[i].bits && e->masks[i].owner == c)
            total += (size_t)(e->masks[i].nrows / 64 + 1) * sizeof(uint64_t);
    pthread_rwlock_unlock(&e->masks_lock);
    if (total > max_bytes)
        engine_masks_clear(c);
}
