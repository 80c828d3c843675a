/* predicates.c: the part of a SELECT's WHERE that can prune a lake table's files, taken
 * from DuckDB's own parse tree (json_serialize_sql) and turned into an iceberg_expr.
 * Not for deciding which files go (iceberg/prune.c) or for making views (view.c).
 *
 * Only what is certainly a filter on the table's rows is taken: the WHERE of the SELECT
 * whose FROM is the table reference alone, its AND-ed (or OR-ed) comparisons, BETWEEN,
 * IN and IS [NOT] NULL of one of the table's columns with constants. A constant is a
 * literal or a CAST of one (no functions: now() would differ between here and the run),
 * of a type DuckDB compares with the column by casting the constant, never the column
 * in a lossy way (so no DOUBLE constant against an integer or decimal column). DuckDB
 * itself casts each constant to the column's type (TRY_CAST, in this session: its time
 * zone), and a constant the cast changes (5.5 for an integer column) is not used. */
#include "query/internal.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "iceberg/prune.h"

struct lit {
    json_t *node;               /* the constant (borrowed) */
    struct iceberg_expr *leaf;  /* field_id set to -1 when the constant cannot be used */
    struct iceberg_value *dst;
};

struct ctx {
    struct arena *a;
    const struct iceberg_schema *sc;
    const char *qual; /* the reference's alias, or its table name */
    struct lit *lits;
    size_t n_lits, cap;
};

static const char *str(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }
static bool is(json_t *o, const char *k, const char *v)
{
    const char *s = str(o, k);
    return s && !strcmp(s, v);
}

/* The field a COLUMN_REF names in the table, or NULL (another table's, ambiguous). */
static const struct iceberg_field *column(struct ctx *c, json_t *j)
{
    if (!is(j, "class", "COLUMN_REF"))
        return NULL;
    json_t *names = json_object_get(j, "column_names");
    size_t n = json_array_size(names);
    const char *name = json_string_value(json_array_get(names, n - 1));
    if (!name || n < 1 || n > 2)
        return NULL;
    if (n == 2 && strcasecmp(json_string_value(json_array_get(names, 0)) ?: "", c->qual))
        return NULL;
    const struct iceberg_field *found = NULL;
    for (size_t i = 0; i < c->sc->n_fields; i++)
        if (!strcasecmp(c->sc->fields[i].name, name)) {
            if (found)
                return NULL; /* "A" and "a": let DuckDB sort it out, unpruned */
            found = &c->sc->fields[i];
        }
    return found && iceberg_prune_type_ok(&found->type) ? found : NULL;
}

/* The DuckDB type id of a constant expression (a literal, or CASTs of one); NULL when j
 * is something else or a NULL literal. *string_lit: a bare string literal, which DuckDB
 * casts to the other side's type. */
static const char *const_type(json_t *j, bool *string_lit)
{
    *string_lit = false;
    if (is(j, "class", "CONSTANT")) {
        json_t *v = json_object_get(j, "value");
        if (json_is_true(json_object_get(v, "is_null")))
            return NULL;
        const char *id = str(json_object_get(v, "type"), "id");
        *string_lit = id && !strcmp(id, "VARCHAR");
        return id;
    }
    if (is(j, "class", "CAST") && !json_is_true(json_object_get(j, "try_cast"))) {
        bool inner;
        if (!const_type(json_object_get(j, "child"), &inner))
            return NULL;
        return str(json_object_get(j, "cast_type"), "id");
    }
    return NULL;
}

static bool one_of(const char *id, const char *const *ids)
{
    for (; *ids; ids++)
        if (!strcmp(id, *ids))
            return true;
    return false;
}

/* Whether DuckDB compares a column of type t with this constant by casting the constant
 * (or by an exact widening of the column). */
static bool const_ok(const struct iceberg_type *t, json_t *j)
{
    static const char *const ints[] = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "DECIMAL", NULL};
    static const char *const nums[] = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "DECIMAL",
                                       "FLOAT", "DOUBLE", NULL};
    static const char *const ts[] = {"DATE", "TIMESTAMP", NULL};
    static const char *const tstz[] = {"DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", NULL};
    bool string_lit;
    const char *id = const_type(j, &string_lit);
    if (!id)
        return false;
    switch (t->id) {
    case ICEBERG_INT: case ICEBERG_LONG: case ICEBERG_DECIMAL:
        return string_lit || one_of(id, ints);
    case ICEBERG_FLOAT: case ICEBERG_DOUBLE:
        return string_lit || one_of(id, nums);
    case ICEBERG_DATE:
        return string_lit || !strcmp(id, "DATE");
    case ICEBERG_TIMESTAMP:
        return string_lit || one_of(id, ts);
    case ICEBERG_TIMESTAMPTZ:
        return string_lit || one_of(id, tstz);
    case ICEBERG_STRING:
        return !strcmp(id, "VARCHAR");
    case ICEBERG_BINARY:
        return string_lit || !strcmp(id, "BLOB");
    case ICEBERG_BOOLEAN:
        return string_lit || !strcmp(id, "BOOLEAN");
    default:
        return false;
    }
}

static struct iceberg_expr *leaf(struct ctx *c, enum iceberg_expr_op op, const struct iceberg_field *f,
                                 json_t *const *consts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!const_ok(&f->type, consts[i]))
            return NULL;
    struct iceberg_expr *e = arena_alloc(c->a, sizeof *e);
    memset(e, 0, sizeof *e);
    e->op = op;
    e->field_id = f->id;
    e->type = f->type;
    e->n_values = n;
    e->values = n ? arena_alloc(c->a, n * sizeof *e->values) : NULL;
    for (size_t i = 0; i < n; i++) {
        memset(&e->values[i], 0, sizeof e->values[i]);
        if (c->n_lits == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 8;
            c->lits = xrealloc(c->lits, c->cap * sizeof *c->lits);
        }
        c->lits[c->n_lits++] = (struct lit){consts[i], e, &e->values[i]};
    }
    return e;
}

static enum iceberg_expr_op flip(enum iceberg_expr_op op)
{
    switch (op) {
    case ICEBERG_EXPR_LT: return ICEBERG_EXPR_GT;
    case ICEBERG_EXPR_LE: return ICEBERG_EXPR_GE;
    case ICEBERG_EXPR_GT: return ICEBERG_EXPR_LT;
    case ICEBERG_EXPR_GE: return ICEBERG_EXPR_LE;
    default: return op;
    }
}

static struct iceberg_expr *node(struct ctx *c, enum iceberg_expr_op op, struct iceberg_expr **kids, size_t n)
{
    struct iceberg_expr *e = arena_alloc(c->a, sizeof *e);
    memset(e, 0, sizeof *e);
    e->op = op;
    e->n_children = n;
    e->children = arena_alloc(c->a, (n ? n : 1) * sizeof *e->children);
    for (size_t i = 0; i < n; i++)
        e->children[i] = *kids[i];
    return e;
}

/* The filter j puts on the table's rows, or NULL when it cannot prune. */
static struct iceberg_expr *convert(struct ctx *c, json_t *j)
{
    const char *cls = str(j, "class"), *type = str(j, "type");
    if (!cls || !type)
        return NULL;
    if (!strcmp(cls, "CONJUNCTION")) {
        bool and = !strcmp(type, "CONJUNCTION_AND");
        if (!and && strcmp(type, "CONJUNCTION_OR"))
            return NULL;
        json_t *ch = json_object_get(j, "children");
        size_t n = json_array_size(ch), k = 0;
        struct iceberg_expr **kids = arena_alloc(c->a, (n ? n : 1) * sizeof *kids);
        for (size_t i = 0; i < n; i++) {
            struct iceberg_expr *e = convert(c, json_array_get(ch, i));
            if (e)
                kids[k++] = e;
            else if (!and)
                return NULL; /* one unknown branch of an OR may match anything */
        }
        return k ? node(c, and ? ICEBERG_EXPR_AND : ICEBERG_EXPR_OR, kids, k) : NULL;
    }
    if (!strcmp(cls, "COMPARISON")) {
        static const struct { const char *name; enum iceberg_expr_op op; } ops[] = {
            {"COMPARE_EQUAL", ICEBERG_EXPR_EQ}, {"COMPARE_LESSTHAN", ICEBERG_EXPR_LT},
            {"COMPARE_LESSTHANOREQUALTO", ICEBERG_EXPR_LE}, {"COMPARE_GREATERTHAN", ICEBERG_EXPR_GT},
            {"COMPARE_GREATERTHANOREQUALTO", ICEBERG_EXPR_GE}};
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
            if (strcmp(type, ops[i].name))
                continue;
            json_t *l = json_object_get(j, "left"), *r = json_object_get(j, "right");
            const struct iceberg_field *f = column(c, l);
            if (f)
                return leaf(c, ops[i].op, f, &r, 1);
            f = column(c, r);
            return f ? leaf(c, flip(ops[i].op), f, &l, 1) : NULL;
        }
        return NULL;
    }
    if (!strcmp(cls, "BETWEEN")) {
        const struct iceberg_field *f = column(c, json_object_get(j, "input"));
        json_t *lo = json_object_get(j, "lower"), *hi = json_object_get(j, "upper");
        struct iceberg_expr *kids[2] = {f ? leaf(c, ICEBERG_EXPR_GE, f, &lo, 1) : NULL,
                                        f ? leaf(c, ICEBERG_EXPR_LE, f, &hi, 1) : NULL};
        if (!kids[0] || !kids[1])
            return kids[0] ? kids[0] : kids[1];
        return node(c, ICEBERG_EXPR_AND, kids, 2);
    }
    if (!strcmp(cls, "OPERATOR")) {
        json_t *ch = json_object_get(j, "children");
        size_t n = json_array_size(ch);
        const struct iceberg_field *f = n ? column(c, json_array_get(ch, 0)) : NULL;
        if (!f)
            return NULL;
        if (!strcmp(type, "OPERATOR_IS_NULL") && n == 1)
            return leaf(c, ICEBERG_EXPR_IS_NULL, f, NULL, 0);
        if (!strcmp(type, "OPERATOR_IS_NOT_NULL") && n == 1)
            return leaf(c, ICEBERG_EXPR_NOT_NULL, f, NULL, 0);
        if (!strcmp(type, "COMPARE_IN") && n >= 2 && n <= 1001) {
            json_t **consts = arena_alloc(c->a, (n - 1) * sizeof *consts);
            for (size_t i = 1; i < n; i++)
                consts[i - 1] = json_array_get(ch, i);
            return leaf(c, ICEBERG_EXPR_IN, f, consts, n - 1);
        }
    }
    return NULL;
}

/* Drops leaves whose constants could not be used: from an AND they go, an OR with one
 * goes whole. Returns false when nothing of e is left. */
static bool settle(struct iceberg_expr *e)
{
    if (e->op != ICEBERG_EXPR_AND && e->op != ICEBERG_EXPR_OR)
        return e->field_id >= 0;
    size_t k = 0;
    for (size_t i = 0; i < e->n_children; i++) {
        if (settle(&e->children[i]))
            e->children[k++] = e->children[i];
        else if (e->op == ICEBERG_EXPR_OR)
            return false;
    }
    e->n_children = k;
    return k > 0;
}

/* The SQL giving constant i, cast to the column's type, as text loch parses, and whether
 * the cast kept its value. */
static void canon_sql(struct buf *q, size_t i, const struct iceberg_type *t)
{
    char duck[64];
    iceberg_type_duckdb(t, duck, sizeof duck);
    char *x = NULL;
    if (asprintf(&x, "TRY_CAST(__loch_lit%zu AS %s)", i, duck) < 0)
        abort();
    switch (t->id) {
    case ICEBERG_FLOAT: case ICEBERG_DOUBLE:
        buf_printf(q, "CAST(CAST(%s AS DOUBLE) AS VARCHAR)", x);
        break;
    case ICEBERG_DATE:
        buf_printf(q, "CAST(%s - DATE '1970-01-01' AS VARCHAR)", x);
        break;
    case ICEBERG_TIMESTAMP: case ICEBERG_TIMESTAMPTZ:
        buf_printf(q, "CAST(epoch_us(%s) AS VARCHAR)", x);
        break;
    case ICEBERG_BINARY:
        buf_printf(q, "hex(%s)", x);
        break;
    default:
        buf_printf(q, "CAST(%s AS VARCHAR)", x);
        break;
    }
    buf_printf(q, ", coalesce(%s = __loch_lit%zu, false)", x, i);
    if (t->id == ICEBERG_FLOAT || t->id == ICEBERG_DOUBLE) /* the text gives back the same number */
        buf_printf(q, " AND coalesce(CAST(CAST(CAST(%s AS DOUBLE) AS VARCHAR) AS DOUBLE) = CAST(%s AS DOUBLE), false)",
                   x, x);
    buf_puts(q, ", ");
    free(x);
}

static int hexval(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Parses the text canon_sql gave into v; false when unusable. */
static bool parse_value(struct arena *a, const struct iceberg_type *t, const char *s, struct iceberg_value *v)
{
    char *end;
    errno = 0;
    switch (t->id) {
    case ICEBERG_INT: case ICEBERG_LONG: case ICEBERG_DATE: case ICEBERG_TIMESTAMP: case ICEBERG_TIMESTAMPTZ:
        v->v.i64 = strtoll(s, &end, 10);
        return *s && !*end && !errno;
    case ICEBERG_FLOAT: case ICEBERG_DOUBLE:
        v->v.f64 = strtod(s, &end);
        return *s && !*end && !isnan(v->v.f64);
    case ICEBERG_BOOLEAN:
        v->v.b = !strcmp(s, "true");
        return v->v.b || !strcmp(s, "false");
    case ICEBERG_STRING:
        v->v.bytes.p = (const uint8_t *)arena_strdup(a, s);
        v->v.bytes.len = strlen(s);
        return true;
    case ICEBERG_BINARY: {
        size_t n = strlen(s);
        if (n % 2)
            return false;
        uint8_t *p = arena_alloc(a, n / 2 + 1);
        for (size_t i = 0; i < n / 2; i++) {
            int h = hexval(s[2 * i]), l = hexval(s[2 * i + 1]);
            if (h < 0 || l < 0)
                return false;
            p[i] = (uint8_t)(h << 4 | l);
        }
        v->v.bytes.p = p;
        v->v.bytes.len = n / 2;
        return true;
    }
    case ICEBERG_DECIMAL: { /* DuckDB prints exactly `scale` fractional digits */
        bool neg = *s == '-';
        s += neg;
        unsigned __int128 u = 0;
        int digits = 0, frac = -1;
        for (; *s; s++) {
            if (*s == '.' && frac < 0) {
                frac = 0;
                continue;
            }
            if (*s < '0' || *s > '9' || ++digits > 38)
                return false;
            u = u * 10 + (unsigned)(*s - '0');
            frac += frac >= 0;
        }
        if ((frac < 0 ? 0 : frac) != t->scale || !digits)
            return false;
        __int128 x = neg ? -(__int128)u : (__int128)u;
        v->v.dec.hi = (int64_t)(x >> 64);
        v->v.dec.lo = (uint64_t)x;
        return true;
    }
    default:
        return false;
    }
}

/* Replaces each COLUMN_REF named __loch_lit<i> in j with a copy of constant i. */
static void substitute(json_t *j, const struct lit *lits, size_t n)
{
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++) {
            json_t *v = json_array_get(j, i);
            const char *name = json_string_value(json_array_get(json_object_get(v, "column_names"), 0));
            unsigned long k;
            char *end;
            if (is(v, "class", "COLUMN_REF") && name && !strncmp(name, "__loch_lit", 10) &&
                (k = strtoul(name + 10, &end, 10), !*end) && k < n)
                json_array_set_new(j, i, json_deep_copy(lits[k].node));
            else
                substitute(v, lits, n);
        }
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        const char *name = json_string_value(json_array_get(json_object_get(v, "column_names"), 0));
        unsigned long k;
        char *end;
        if (is(v, "class", "COLUMN_REF") && name && !strncmp(name, "__loch_lit", 10) &&
            (k = strtoul(name + 10, &end, 10), !*end) && k < n)
            json_object_set_new(j, key, json_deep_copy(lits[k].node));
        else
            substitute(v, lits, n);
    }
}

/* An integer literal for an int or long column needs no cast: its value is in the tree
 * (the common case, a key looked up; it spares three round trips to DuckDB). */
static bool direct(const struct lit *l)
{
    json_t *v = json_object_get(l->node, "value");
    const char *id = str(json_object_get(v, "type"), "id");
    json_t *x = json_object_get(v, "value");
    if (!is(l->node, "class", "CONSTANT") || !id || !json_is_integer(x) ||
        (strcmp(id, "INTEGER") && strcmp(id, "BIGINT") && strcmp(id, "SMALLINT") && strcmp(id, "TINYINT")))
        return false;
    json_int_t n = json_integer_value(x);
    if (l->leaf->type.id == ICEBERG_LONG || (l->leaf->type.id == ICEBERG_INT && n >= INT32_MIN && n <= INT32_MAX)) {
        l->dst->v.i64 = (int64_t)n;
        return true;
    }
    return false;
}

/* Gives every constant its value in the column's type, by DuckDB on s's connection;
 * constants it cannot give exactly mark their leaf unusable. Returns false when the
 * evaluation failed as a whole. */
static bool evaluate(struct query_session *s, struct ctx *c)
{
    struct arena *a = c->a;
    size_t n_direct = 0;
    for (size_t i = 0; i < c->n_lits; i++)
        n_direct += direct(&c->lits[i]);
    if (n_direct == c->n_lits)
        return true;
    struct buf q = {0};
    buf_puts(&q, "SELECT ");
    for (size_t i = 0; i < c->n_lits; i++)
        canon_sql(&q, i, &c->lits[i].leaf->type);
    buf_puts(&q, "current_setting('default_collation')");
    struct buf t = {0};
    buf_puts(&t, "SELECT json_serialize_sql(");
    buf_sql_str(&t, q.data);
    buf_puts(&t, ")");
    buf_free(&q);
    struct engine_rows *r;
    struct loch_err err;
    int rc = engine_query(s->conn, t.data, &r, &err);
    buf_free(&t);
    if (rc)
        return false;
    json_t *root = duck_json_parse(engine_rows_text(r, 0, 0, a));
    engine_rows_free(r);
    if (!root || json_is_true(json_object_get(root, "error"))) {
        json_decref(root);
        return false;
    }
    substitute(json_object_get(root, "statements"), c->lits, c->n_lits);
    char *js = duck_json_dump(root);
    json_decref(root);
    buf_puts(&t, "SELECT json_deserialize_sql(");
    buf_sql_str(&t, js);
    buf_puts(&t, ")");
    free(js);
    rc = engine_query(s->conn, t.data, &r, &err);
    buf_free(&t);
    if (rc)
        return false;
    char *sql = engine_rows_text(r, 0, 0, a);
    engine_rows_free(r);
    if (!sql || engine_query(s->conn, sql, &r, &err))
        return false;
    bool ok = engine_rows_count(r) == 1 && engine_rows_ncols(r) == 2 * c->n_lits + 1;
    const char *coll = ok ? engine_rows_text(r, 2 * c->n_lits, 0, a) : NULL;
    for (size_t i = 0; ok && i < c->n_lits; i++) {
        struct lit *l = &c->lits[i];
        const char *text = engine_rows_null(r, 2 * i, 0) ? NULL : engine_rows_text(r, 2 * i, 0, a);
        bool exact = !engine_rows_null(r, 2 * i + 1, 0) && !strcmp(engine_rows_text(r, 2 * i + 1, 0, a), "true");
        /* a collation (SET default_collation) changes how strings compare: not bytes */
        bool collated = l->leaf->type.id == ICEBERG_STRING && coll && *coll;
        if (direct(l))
            continue;
        if (!text || !exact || collated || !parse_value(a, &l->leaf->type, text, l->dst))
            l->leaf->field_id = -1;
    }
    engine_rows_free(r);
    return ok;
}

struct iceberg_expr *query_predicates(struct query_session *s, json_t *select, json_t *ref,
                                      const struct iceberg_schema *sc)
{
    json_t *where = json_object_get(select, "where_clause");
    if (!where || json_is_null(where) || !json_is_null(json_object_get(select, "sample")) ||
        !json_is_null(json_object_get(ref, "sample")))
        return NULL;
    if (json_array_size(json_object_get(ref, "column_name_alias")) > 0)
        return NULL; /* FROM ns.t AS x(a, b): the WHERE's names are not the table's */
    const char *alias = str(ref, "alias");
    struct ctx c = {.a = s->stmt_arena, .sc = sc, .qual = alias && *alias ? alias : str(ref, "table_name")};
    if (!c.qual)
        return NULL;
    struct iceberg_expr *e = convert(&c, where);
    bool ok = e && (c.n_lits == 0 || evaluate(s, &c)) && settle(e);
    free(c.lits);
    return ok ? e : NULL;
}
