/* sink_types.c: DuckDB column types -> Iceberg types, and schemas inferred from a query.
 * Not for Iceberg -> DuckDB (iceberg_type_duckdb). */
#include "sink/sink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sink_type_from_duckdb(const char *d, const char *column, struct iceberg_type *out, struct loch_err *err)
{
    static const struct {
        const char *duck;
        enum iceberg_type_id id;
    } simple[] = {
        {"BOOLEAN", ICEBERG_BOOLEAN},   {"TINYINT", ICEBERG_INT},       {"SMALLINT", ICEBERG_INT},
        {"INTEGER", ICEBERG_INT},       {"UTINYINT", ICEBERG_INT},      {"USMALLINT", ICEBERG_INT},
        {"BIGINT", ICEBERG_LONG},       {"UINTEGER", ICEBERG_LONG},     {"FLOAT", ICEBERG_FLOAT},
        {"DOUBLE", ICEBERG_DOUBLE},     {"DATE", ICEBERG_DATE},         {"TIME", ICEBERG_TIME},
        {"TIMESTAMP", ICEBERG_TIMESTAMP}, {"TIMESTAMP_S", ICEBERG_TIMESTAMP},
        {"TIMESTAMP_MS", ICEBERG_TIMESTAMP}, {"TIMESTAMP_NS", ICEBERG_TIMESTAMP},
        {"TIMESTAMPTZ", ICEBERG_TIMESTAMPTZ}, {"TIMESTAMP WITH TIME ZONE", ICEBERG_TIMESTAMPTZ},
        {"VARCHAR", ICEBERG_STRING},    {"JSON", ICEBERG_STRING},       {"ENUM", ICEBERG_STRING},
        {"BLOB", ICEBERG_BINARY},       {"UUID", ICEBERG_UUID},
    };
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
        if (!strcmp(d, simple[i].duck)) {
            out->id = simple[i].id;
            return 0;
        }
    int p, s;
    if (sscanf(d, "DECIMAL(%d,%d)", &p, &s) == 2 && p >= 1 && p <= 38 && s >= 0 && s <= p) {
        out->id = ICEBERG_DECIMAL;
        out->precision = p;
        out->scale = s;
        return 0;
    }
    if (!strcmp(d, "UBIGINT")) { /* 0..2^64-1 fits decimal(20,0) exactly */
        out->id = ICEBERG_DECIMAL;
        out->precision = 20;
        return 0;
    }
    if (!strcmp(d, "HUGEINT") || !strcmp(d, "UHUGEINT")) {
        out->id = ICEBERG_DECIMAL;
        out->precision = 38;
        return 0;
    }
    loch_errf(err, LOCH_EUNSUPPORTED, "column \"%s\" has type %s, which loch cannot store in an Iceberg table yet",
              column, d);
    return loch_err_hint(err, "cast it in the source, e.g. CAST(\"%s\" AS VARCHAR), or leave the column out", column);
}

int sink_schema_of_query(struct engine_conn *c, const char *select_sql, struct arena *a,
                         struct iceberg_schema **out, struct loch_err *err)
{
    char *sql = arena_printf(a, "SELECT * FROM (%s) LIMIT 0", select_sql);
    struct engine_rows *r;
    int rc = engine_query(c, sql, &r, err);
    if (rc)
        return rc;
    size_t n = engine_rows_ncols(r);
    struct iceberg_schema *s = arena_alloc(a, sizeof *s);
    s->fields = arena_alloc(a, (n ? n : 1) * sizeof *s->fields);
    for (size_t i = 0; i < n; i++) {
        struct iceberg_field *f = &s->fields[i];
        f->id = (int)i + 1;
        f->name = arena_strdup(a, engine_rows_name(r, i));
        for (size_t j = 0; j < i; j++)
            if (!strcasecmp(s->fields[j].name, f->name)) {
                engine_rows_free(r);
                return loch_errf(err, LOCH_EINVAL, "column name \"%s\" appears twice", f->name);
            }
        char *t = engine_rows_type(r, i, a);
        rc = sink_type_from_duckdb(t, f->name, &f->type, err);
        if (rc) {
            engine_rows_free(r);
            return rc;
        }
    }
    s->n_fields = n;
    engine_rows_free(r);
    if (n == 0)
        return loch_errf(err, LOCH_EINVAL, "the source has no columns");
    *out = s;
    return 0;
}
