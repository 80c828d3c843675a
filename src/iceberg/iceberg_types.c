/* iceberg_types.c: Iceberg primitive types (iceberg_types.h: JSON and DuckDB spellings,
 * promotion rules), schema look-ups and copies, metadata look-ups and a fresh table's
 * metadata. Not for JSON documents (metadata.c) or schema evolution rules (evolve.c). */
#include "iceberg/iceberg.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "base/util.h"

static const struct {
    const char *name;
    enum iceberg_type_id id;
    const char *duckdb;
} simple_types[] = {
    {"boolean", ICEBERG_BOOLEAN, "BOOLEAN"},
    {"int", ICEBERG_INT, "INTEGER"},
    {"long", ICEBERG_LONG, "BIGINT"},
    {"float", ICEBERG_FLOAT, "FLOAT"},
    {"double", ICEBERG_DOUBLE, "DOUBLE"},
    {"date", ICEBERG_DATE, "DATE"},
    {"time", ICEBERG_TIME, "TIME"},
    {"timestamp", ICEBERG_TIMESTAMP, "TIMESTAMP"},
    {"timestamptz", ICEBERG_TIMESTAMPTZ, "TIMESTAMPTZ"},
    {"string", ICEBERG_STRING, "VARCHAR"},
    {"uuid", ICEBERG_UUID, "UUID"},
    {"binary", ICEBERG_BINARY, "BLOB"},
};
#define N_SIMPLE (sizeof simple_types / sizeof simple_types[0])

/* Reads a non-negative decimal integer at *p (spaces around allowed), advancing *p. */
static bool read_uint(const char **p, int *out)
{
    const char *s = *p;
    while (*s == ' ')
        s++;
    if (!isdigit((unsigned char)*s))
        return false;
    long v = 0;
    while (isdigit((unsigned char)*s)) {
        v = v * 10 + (*s - '0');
        if (v > 1000000)
            return false;
        s++;
    }
    while (*s == ' ')
        s++;
    *out = (int)v;
    *p = s;
    return true;
}

int iceberg_type_parse(const char *s, struct iceberg_type *out, struct loch_err *err)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return loch_errf(err, LOCH_EUNSUPPORTED, "missing Iceberg type");
    for (size_t i = 0; i < N_SIMPLE; i++) {
        if (!strcmp(s, simple_types[i].name)) {
            out->id = simple_types[i].id;
            return 0;
        }
    }
    const char *p;
    if (!strncmp(s, "decimal(", 8)) {
        p = s + 8;
        int prec, scale;
        if (read_uint(&p, &prec) && *p++ == ',' && read_uint(&p, &scale) && *p++ == ')' &&
            *p == '\0') {
            if (prec < 1 || prec > 38 || scale > prec) {
                loch_errf(err, LOCH_EUNSUPPORTED, "invalid Iceberg type \"%s\"", s);
                return loch_err_hint(err, "decimal precision must be 1..38 and scale 0..precision");
            }
            out->id = ICEBERG_DECIMAL;
            out->precision = prec;
            out->scale = scale;
            return 0;
        }
    } else if (!strncmp(s, "fixed[", 6)) {
        p = s + 6;
        int len;
        if (read_uint(&p, &len) && *p++ == ']' && *p == '\0' && len > 0) {
            out->id = ICEBERG_FIXED;
            out->length = len;
            return 0;
        }
    }
    loch_errf(err, LOCH_EUNSUPPORTED, "unsupported Iceberg type \"%s\"", s);
    return loch_err_hint(err, "loch handles primitive types only (no struct, list, map, variant "
                              "or v3 types)");
}

void iceberg_type_format(const struct iceberg_type *t, char *out, size_t out_len)
{
    if (t->id == ICEBERG_DECIMAL) {
        snprintf(out, out_len, "decimal(%d,%d)", t->precision, t->scale);
        return;
    }
    if (t->id == ICEBERG_FIXED) {
        snprintf(out, out_len, "fixed[%d]", t->length);
        return;
    }
    for (size_t i = 0; i < N_SIMPLE; i++) {
        if (simple_types[i].id == t->id) {
            snprintf(out, out_len, "%s", simple_types[i].name);
            return;
        }
    }
    snprintf(out, out_len, "unknown");
}

const char *iceberg_type_duckdb(const struct iceberg_type *t, char *out, size_t out_len)
{
    if (t->id == ICEBERG_DECIMAL)
        snprintf(out, out_len, "DECIMAL(%d,%d)", t->precision, t->scale);
    else if (t->id == ICEBERG_FIXED)
        snprintf(out, out_len, "BLOB");
    else {
        const char *name = "BLOB";
        for (size_t i = 0; i < N_SIMPLE; i++)
            if (simple_types[i].id == t->id)
                name = simple_types[i].duckdb;
        snprintf(out, out_len, "%s", name);
    }
    return out;
}

bool iceberg_type_equal(const struct iceberg_type *a, const struct iceberg_type *b)
{
    if (a->id != b->id)
        return false;
    if (a->id == ICEBERG_DECIMAL)
        return a->precision == b->precision && a->scale == b->scale;
    if (a->id == ICEBERG_FIXED)
        return a->length == b->length;
    return true;
}

bool iceberg_type_promotable(const struct iceberg_type *from, const struct iceberg_type *to)
{
    if (iceberg_type_equal(from, to))
        return true;
    if (from->id == ICEBERG_INT && to->id == ICEBERG_LONG)
        return true;
    if (from->id == ICEBERG_FLOAT && to->id == ICEBERG_DOUBLE)
        return true;
    /* spec "Schema Evolution": decimal(P,S) to decimal(P',S) if P' > P; scale is fixed. */
    if (from->id == ICEBERG_DECIMAL && to->id == ICEBERG_DECIMAL)
        return to->scale == from->scale && to->precision > from->precision;
    return false;
}

const struct iceberg_field *iceberg_schema_field(const struct iceberg_schema *s, int id)
{
    for (size_t i = 0; i < s->n_fields; i++)
        if (s->fields[i].id == id)
            return &s->fields[i];
    return NULL;
}

const struct iceberg_field *iceberg_schema_find(const struct iceberg_schema *s, const char *name)
{
    for (size_t i = 0; i < s->n_fields; i++)
        if (!strcmp(s->fields[i].name, name))
            return &s->fields[i];
    return NULL;
}

struct iceberg_schema *iceberg_schema_copy(struct arena *a, const struct iceberg_schema *s)
{
    struct iceberg_schema *c = arena_alloc(a, sizeof *c);
    c->schema_id = s->schema_id;
    c->n_fields = s->n_fields;
    c->fields = arena_alloc(a, (s->n_fields ? s->n_fields : 1) * sizeof *c->fields);
    for (size_t i = 0; i < s->n_fields; i++) {
        c->fields[i] = s->fields[i];
        c->fields[i].name = arena_strdup(a, s->fields[i].name);
        c->fields[i].doc = arena_strdup(a, s->fields[i].doc);
    }
    c->n_identifier_ids = s->n_identifier_ids;
    c->identifier_ids = arena_alloc(a, (s->n_identifier_ids ? s->n_identifier_ids : 1) * sizeof(int));
    if (s->n_identifier_ids)
        memcpy(c->identifier_ids, s->identifier_ids, s->n_identifier_ids * sizeof(int));
    return c;
}

const struct iceberg_schema *iceberg_metadata_schema(const struct iceberg_metadata *m, int schema_id)
{
    for (size_t i = 0; i < m->n_schemas; i++)
        if (m->schemas[i].schema_id == schema_id)
            return &m->schemas[i];
    return NULL;
}

const struct iceberg_schema *iceberg_metadata_current_schema(const struct iceberg_metadata *m)
{
    return iceberg_metadata_schema(m, m->current_schema_id);
}

const struct iceberg_snapshot *iceberg_metadata_snapshot(const struct iceberg_metadata *m, int64_t id)
{
    for (size_t i = 0; i < m->n_snapshots; i++)
        if (m->snapshots[i].snapshot_id == id)
            return &m->snapshots[i];
    return NULL;
}

const struct iceberg_sort_order *iceberg_metadata_sort_order(const struct iceberg_metadata *m)
{
    for (size_t i = 0; i < m->n_sort_orders; i++)
        if (m->sort_orders[i].order_id == m->default_sort_order_id)
            return m->sort_orders[i].n_fields ? &m->sort_orders[i] : NULL;
    return NULL;
}

struct iceberg_metadata *iceberg_metadata_new(struct arena *a, const char *location,
                                              const struct iceberg_schema *s)
{
    struct iceberg_metadata *m = arena_alloc(a, sizeof *m);
    util_uuid4(m->table_uuid);
    size_t len = strlen(location);
    while (len > 1 && location[len - 1] == '/')
        len--; /* the header promises no trailing slash */
    m->location = arena_strndup(a, location, len);
    m->last_sequence_number = 0;
    m->last_updated_ms = util_now_ms();
    m->n_schemas = 1;
    m->schemas = iceberg_schema_copy(a, s);
    m->schemas[0].schema_id = 0;
    m->current_schema_id = 0;
    int max_id = 0;
    for (size_t i = 0; i < s->n_fields; i++)
        if (s->fields[i].id > max_id)
            max_id = s->fields[i].id;
    m->last_column_id = max_id;
    m->last_partition_id = 999;
    m->current_snapshot_id = -1;
    return m;
}
