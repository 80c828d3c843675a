/* encode.c: JSON and CSV renderings of results (encode.h), shared by HTTP (http_sql.c)
 * and `loch sql` (cmd/sql.c) so the same query gives the same JSON at every door.
 * Not for deciding formats (Accept headers, --format): the callers do that. */
#include "server/encode.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/pgwire_types.h"

void encode_type_name(const struct engine_col *c, char out[48])
{
    static const char *names[] = {
        [ENGINE_T_OTHER] = "VARCHAR", [ENGINE_T_BOOL] = "BOOLEAN", [ENGINE_T_INT16] = "SMALLINT",
        [ENGINE_T_INT32] = "INTEGER", [ENGINE_T_INT64] = "BIGINT", [ENGINE_T_HUGEINT] = "HUGEINT",
        [ENGINE_T_FLOAT] = "FLOAT", [ENGINE_T_DOUBLE] = "DOUBLE", [ENGINE_T_DECIMAL] = "DECIMAL",
        [ENGINE_T_TEXT] = "VARCHAR", [ENGINE_T_JSON] = "JSON", [ENGINE_T_BLOB] = "BLOB", [ENGINE_T_DATE] = "DATE",
        [ENGINE_T_TIME] = "TIME", [ENGINE_T_TIMESTAMP] = "TIMESTAMP",
        [ENGINE_T_TIMESTAMPTZ] = "TIMESTAMP WITH TIME ZONE", [ENGINE_T_UUID] = "UUID",
        [ENGINE_T_INTERVAL] = "INTERVAL",
    };
    const char *n = (size_t)c->type < sizeof names / sizeof names[0] && names[c->type] ? names[c->type] : "VARCHAR";
    if (c->type == ENGINE_T_DECIMAL)
        snprintf(out, 48, "DECIMAL(%d,%d)", c->width, c->scale);
    else
        snprintf(out, 48, "%s", n);
}

void encode_value_text(struct buf *b, const struct engine_col *c, const struct engine_val *v)
{
    if (c->type == ENGINE_T_BOOL)
        buf_puts(b, v->i ? "true" : "false");
    else
        pgwire_encode_text(b, c, v);
}

void encode_value_json(struct buf *b, struct buf *tmp, const struct engine_col *c, const struct engine_val *v)
{
    if (!v) {
        buf_puts(b, "null");
        return;
    }
    json_t *j;
    bool number = c->type == ENGINE_T_INT16 || c->type == ENGINE_T_INT32 || c->type == ENGINE_T_INT64;
    bool real = (c->type == ENGINE_T_FLOAT || c->type == ENGINE_T_DOUBLE) && isfinite(v->f);
    if (c->type == ENGINE_T_BOOL) {
        j = json_boolean(v->i);
    } else if (number) {
        j = json_integer(v->i);
    } else if (real) {
        j = json_real(v->f);
    } else { /* decimals (exact), NaN/infinities and everything else as text */
        buf_reset(tmp);
        encode_value_text(tmp, c, v);
        j = json_stringn(tmp->data ? tmp->data : "", tmp->len);
        if (!j) /* not valid UTF-8 */
            j = json_string("\ufffd");
    }
    char *text = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(17));
    json_decref(j);
    buf_puts(b, text ? text : "null");
    free(text);
}

static bool is_int_type(const char *t)
{
    static const char *ints[] = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT",
                                 "UINTEGER", "UBIGINT", "HUGEINT", "UHUGEINT", NULL};
    for (int i = 0; ints[i]; i++)
        if (!strcmp(t, ints[i]))
            return true;
    return false;
}

json_t *encode_json_text(const char *type, const char *text)
{
    if (!text)
        return json_null();
    if (!strcmp(type, "BOOLEAN"))
        return json_boolean(!strcmp(text, "true"));
    if (is_int_type(type)) {
        errno = 0;
        char *end;
        long long v = strtoll(text, &end, 10);
        if (!errno && !*end)
            return json_integer(v);
        return json_string(text); /* beyond 64 bits: exact as text */
    }
    if (!strcmp(type, "DOUBLE") || !strcmp(type, "FLOAT")) {
        double d = strtod(text, NULL);
        if (isfinite(d))
            return json_real(d);
        return json_string(text);
    }
    json_t *j = json_string(text); /* DECIMAL (exact), dates, text, ... */
    return j ? j : json_string("\ufffd"); /* not valid UTF-8 */
}

json_t *encode_json_result(struct engine_rows *r, const char *tag, struct arena *a)
{
    json_t *res = json_object(), *cols = json_array(), *rows = json_array();
    if (r) {
        size_t nc = engine_rows_ncols(r), nr = engine_rows_count(r);
        char **types = arena_alloc(a, (nc ? nc : 1) * sizeof *types);
        for (size_t c = 0; c < nc; c++) {
            types[c] = engine_rows_type(r, c, a);
            json_t *col = json_object();
            json_object_set_new(col, "name", json_string(engine_rows_name(r, c)));
            json_object_set_new(col, "type", json_string(types[c]));
            json_array_append_new(cols, col);
        }
        for (size_t row = 0; row < nr; row++) {
            json_t *jr = json_array();
            for (size_t c = 0; c < nc; c++)
                json_array_append_new(jr, encode_json_text(types[c], engine_rows_text(r, c, row, a)));
            json_array_append_new(rows, jr);
        }
    }
    json_object_set_new(res, "columns", cols);
    json_object_set_new(res, "rows", rows);
    json_object_set_new(res, "tag", json_string(tag ? tag : ""));
    return res;
}

void encode_csv_field(struct buf *b, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        buf_puts(b, s);
        return;
    }
    buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"')
            buf_putc(b, '"');
        buf_putc(b, *s);
    }
    buf_putc(b, '"');
}

void encode_csv_result(struct buf *b, struct engine_rows *r, const char *eol, struct arena *a)
{
    size_t nc = engine_rows_ncols(r), nr = engine_rows_count(r);
    for (size_t c = 0; c < nc; c++) {
        if (c)
            buf_putc(b, ',');
        encode_csv_field(b, engine_rows_name(r, c));
    }
    buf_puts(b, eol);
    for (size_t row = 0; row < nr; row++) {
        for (size_t c = 0; c < nc; c++) {
            if (c)
                buf_putc(b, ',');
            char *v = engine_rows_text(r, c, row, a);
            if (v)
                encode_csv_field(b, v);
        }
        buf_puts(b, eol);
        if ((row & 1023) == 1023)
            arena_reset(a);
    }
}
