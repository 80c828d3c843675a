/* engine.c: DuckDB database, connections and materialised results (see engine.h). */
#include "engine/engine.h"

#include <duckdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

struct engine {
    duckdb_database db;
};

struct engine_conn {
    duckdb_connection con;
};

struct engine_rows {
    duckdb_result res;
};

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
    *out = e;
    return 0;
}

void engine_close(struct engine *e)
{
    if (!e)
        return;
    duckdb_close(&e->db);
    free(e);
}

int engine_connect(struct engine *e, struct engine_conn **out, struct loch_err *err)
{
    struct engine_conn *c = xcalloc(1, sizeof *c);
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
