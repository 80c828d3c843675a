/* stream.c: prepared statements, parameters, streamed results chunk by chunk, values read
 * from chunks and their Arrow form (engine.h). Not for materialised results (result.c). */
#include "engine/engine_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

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
        int rc = engine_map_error(&res, err);
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
            return engine_map_error(s->res, err);
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
    return m && *m ? engine_map_error(s->res, err) : 0;
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

