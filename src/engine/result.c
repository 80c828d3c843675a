/* result.c: running SQL on a connection and materialised results (engine.h), and the
 * mapping of DuckDB's errors to loch's. Not for prepared statements or streams
 * (stream.c). */
#include "engine/engine_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

int engine_map_error(duckdb_result *r, struct loch_err *err)
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
        rc = engine_map_error(&r, err);
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
        int rc = engine_map_error(&rows->res, err);
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

