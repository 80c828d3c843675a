/* evolve.c: schema evolution (spec "Schema Evolution"): add, drop, rename and widen
 * columns, each producing a new schema by field id. Not for writing it (table.c's
 * iceberg_change_set_schema assigns the schema-id and records it in metadata). */
#include "iceberg/table.h"

#include <ctype.h>
#include <string.h>

/* Column names are compared without case for clashes: DuckDB and PostgreSQL fold
 * unquoted names, so "Amount" next to "amount" could not be told apart by queries. */
static bool same_name(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return false;
    return *a == *b;
}

static const struct iceberg_field *find_ci(const struct iceberg_schema *s, const char *name,
                                           const struct iceberg_field *except)
{
    for (size_t i = 0; i < s->n_fields; i++)
        if (&s->fields[i] != except && same_name(s->fields[i].name, name))
            return &s->fields[i];
    return NULL;
}

/* Exact match first, then a unique case-insensitive one. */
static int lookup(const struct iceberg_schema *s, const char *name, size_t *idx,
                  struct loch_err *err)
{
    const struct iceberg_field *f = iceberg_schema_find(s, name);
    if (!f)
        f = find_ci(s, name, NULL);
    if (!f) {
        loch_errf(err, LOCH_ENOENT, "column \"%s\" does not exist", name);
        return loch_err_hint(err, "the table has %zu columns; check the name", s->n_fields);
    }
    *idx = (size_t)(f - s->fields);
    return 0;
}

static bool is_identifier(const struct iceberg_schema *s, int id)
{
    for (size_t i = 0; i < s->n_identifier_ids; i++)
        if (s->identifier_ids[i] == id)
            return true;
    return false;
}

static int check_name(const char *name, struct loch_err *err)
{
    if (!name || !*name)
        return loch_errf(err, LOCH_EINVAL, "a column name must not be empty");
    return 0;
}

int iceberg_schema_add_column(struct arena *a, const struct iceberg_metadata *m,
                              const struct iceberg_schema *cur, const char *name,
                              const struct iceberg_type *t, struct iceberg_schema **out,
                              struct loch_err *err)
{
    int rc = check_name(name, err);
    if (rc)
        return rc;
    const struct iceberg_field *clash = find_ci(cur, name, NULL);
    if (clash) {
        loch_errf(err, LOCH_EEXIST, "column \"%s\" already exists", clash->name);
        return loch_err_hint(err, "column names are compared without case; pick another name");
    }
    /* Ids are never reused (spec): above last-column-id, even if a dropped column
     * held the highest id, and above any id in cur in case m lags behind it. */
    int max_id = m ? m->last_column_id : 0;
    for (size_t i = 0; i < cur->n_fields; i++)
        if (cur->fields[i].id > max_id)
            max_id = cur->fields[i].id;
    struct iceberg_schema *s = iceberg_schema_copy(a, cur);
    s->fields = arena_grow(a, s->fields, s->n_fields, s->n_fields + 1, sizeof *s->fields);
    struct iceberg_field *f = &s->fields[s->n_fields++];
    f->id = max_id + 1;
    f->name = arena_strdup(a, name);
    f->required = false; /* existing rows have no value for it */
    f->type = *t;
    f->doc = NULL;
    *out = s;
    return 0;
}

int iceberg_schema_drop_column(struct arena *a, const struct iceberg_schema *cur, const char *name,
                               struct iceberg_schema **out, struct loch_err *err)
{
    size_t idx;
    int rc = lookup(cur, name, &idx, err);
    if (rc)
        return rc;
    const struct iceberg_field *f = &cur->fields[idx];
    if (is_identifier(cur, f->id)) {
        loch_errf(err, LOCH_EINVAL, "cannot drop column \"%s\": it is part of the table's "
                                    "identifier (primary key)", f->name);
        return loch_err_hint(err, "change the source table's primary key first");
    }
    if (cur->n_fields == 1) {
        loch_errf(err, LOCH_EINVAL, "cannot drop column \"%s\": it is the table's last column",
                  f->name);
        return loch_err_hint(err, "drop the table instead");
    }
    struct iceberg_schema *s = iceberg_schema_copy(a, cur);
    memmove(&s->fields[idx], &s->fields[idx + 1], (s->n_fields - idx - 1) * sizeof *s->fields);
    s->n_fields--;
    *out = s;
    return 0;
}

int iceberg_schema_rename_column(struct arena *a, const struct iceberg_schema *cur, const char *from,
                                 const char *to, struct iceberg_schema **out, struct loch_err *err)
{
    size_t idx;
    int rc = lookup(cur, from, &idx, err);
    if (rc)
        return rc;
    if ((rc = check_name(to, err)))
        return rc;
    const struct iceberg_field *clash = find_ci(cur, to, &cur->fields[idx]);
    if (clash) {
        loch_errf(err, LOCH_EEXIST, "cannot rename column \"%s\" to \"%s\": column \"%s\" already "
                                    "exists", cur->fields[idx].name, to, clash->name);
        return loch_err_hint(err, "column names are compared without case; pick another name");
    }
    struct iceberg_schema *s = iceberg_schema_copy(a, cur);
    s->fields[idx].name = arena_strdup(a, to); /* the id stays: data files still match */
    *out = s;
    return 0;
}

int iceberg_schema_alter_type(struct arena *a, const struct iceberg_schema *cur, const char *name,
                              const struct iceberg_type *t, struct iceberg_schema **out,
                              struct loch_err *err)
{
    size_t idx;
    int rc = lookup(cur, name, &idx, err);
    if (rc)
        return rc;
    const struct iceberg_field *f = &cur->fields[idx];
    if (!iceberg_type_promotable(&f->type, t)) {
        char from_s[64], to_s[64];
        iceberg_type_format(&f->type, from_s, sizeof from_s);
        iceberg_type_format(t, to_s, sizeof to_s);
        loch_errf(err, LOCH_EUNSUPPORTED, "cannot change column \"%s\" from %s to %s", f->name,
                  from_s, to_s);
        loch_err_detail(err, "Iceberg data files are not rewritten, so only widenings that "
                             "old files can be read as are allowed");
        return loch_err_hint(err, "allowed: int -> long, float -> double, decimal(P,S) -> "
                                  "decimal(P',S) with P' > P; otherwise add a new column");
    }
    struct iceberg_schema *s = iceberg_schema_copy(a, cur);
    s->fields[idx].type = *t;
    *out = s;
    return 0;
}
