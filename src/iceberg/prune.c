/* prune.c: file pruning from column metrics (spec "Scan Planning", bounds in Appendix D's
 * single-value encoding). Not for building filters from SQL (query/predicates.c).
 *
 * Bounds are decoded leniently for the column's type as read: a file written when an int
 * column was int carries 4-byte bounds after its promotion to long (float: 4 bytes after
 * double), so integers and floats are read by length. A bound that cannot be decoded, or
 * a NaN bound, counts as absent. */
#include "iceberg/prune.h"

#include <math.h>
#include <string.h>

bool iceberg_prune_type_ok(const struct iceberg_type *t)
{
    switch (t->id) {
    case ICEBERG_BOOLEAN: case ICEBERG_INT: case ICEBERG_LONG: case ICEBERG_FLOAT: case ICEBERG_DOUBLE:
    case ICEBERG_DECIMAL: case ICEBERG_DATE: case ICEBERG_TIMESTAMP: case ICEBERG_TIMESTAMPTZ:
    case ICEBERG_STRING: case ICEBERG_BINARY:
        return true;
    default:
        return false;
    }
}

enum family { FAM_NONE, FAM_INT, FAM_FLOAT, FAM_DEC, FAM_BYTES, FAM_BOOL };

static enum family family(const struct iceberg_type *t)
{
    switch (t->id) {
    case ICEBERG_INT: case ICEBERG_LONG: case ICEBERG_DATE: case ICEBERG_TIMESTAMP: case ICEBERG_TIMESTAMPTZ:
        return FAM_INT;
    case ICEBERG_FLOAT: case ICEBERG_DOUBLE:
        return FAM_FLOAT;
    case ICEBERG_DECIMAL:
        return FAM_DEC;
    case ICEBERG_STRING: case ICEBERG_BINARY:
        return FAM_BYTES;
    case ICEBERG_BOOLEAN:
        return FAM_BOOL;
    default:
        return FAM_NONE;
    }
}

static uint64_t get_le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Decodes a bound into the literal representation of its family; false when absent or
 * unusable (wrong length, NaN). */
static bool decode(enum family fam, const uint8_t *p, size_t len, struct iceberg_value *out)
{
    if (!p)
        return false;
    memset(out, 0, sizeof *out);
    switch (fam) {
    case FAM_INT:
        if (len == 4)
            out->v.i64 = (int32_t)(uint32_t)get_le(p, 4);
        else if (len == 8)
            out->v.i64 = (int64_t)get_le(p, 8);
        else
            return false;
        return true;
    case FAM_FLOAT:
        if (len == 4) {
            uint32_t u = (uint32_t)get_le(p, 4);
            float f;
            memcpy(&f, &u, sizeof f);
            out->v.f64 = f;
        } else if (len == 8) {
            uint64_t u = get_le(p, 8);
            memcpy(&out->v.f64, &u, sizeof out->v.f64);
        } else {
            return false;
        }
        return !isnan(out->v.f64);
    case FAM_DEC: {
        /* big-endian two's complement, minimum bytes (spec Appendix D) */
        if (len < 1 || len > 16)
            return false;
        unsigned __int128 u = (p[0] & 0x80) ? ~(unsigned __int128)0 : 0;
        for (size_t i = 0; i < len; i++)
            u = (u << 8) | p[i];
        out->v.dec.hi = (int64_t)(u >> 64);
        out->v.dec.lo = (uint64_t)u;
        return true;
    }
    case FAM_BYTES:
        out->v.bytes.p = p;
        out->v.bytes.len = len;
        return true;
    case FAM_BOOL:
        if (len != 1)
            return false;
        out->v.b = p[0] != 0;
        return true;
    default:
        return false;
    }
}

static int cmp_bytes(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return al < bl ? -1 : al > bl;
}

/* <0, 0, >0 as a compares to b, both of family fam. */
static int cmp(enum family fam, const struct iceberg_value *a, const struct iceberg_value *b)
{
    switch (fam) {
    case FAM_INT:
        return a->v.i64 < b->v.i64 ? -1 : a->v.i64 > b->v.i64;
    case FAM_FLOAT: /* -0.0 == 0.0 here as in DuckDB; neither is NaN */
        return a->v.f64 < b->v.f64 ? -1 : a->v.f64 > b->v.f64;
    case FAM_DEC:
        if (a->v.dec.hi != b->v.dec.hi)
            return a->v.dec.hi < b->v.dec.hi ? -1 : 1;
        return a->v.dec.lo < b->v.dec.lo ? -1 : a->v.dec.lo > b->v.dec.lo;
    case FAM_BYTES:
        return cmp_bytes(a->v.bytes.p, a->v.bytes.len, b->v.bytes.p, b->v.bytes.len);
    case FAM_BOOL:
        return (int)a->v.b - (int)b->v.b;
    default:
        return 0;
    }
}

/* The file may hold a value >= v (ge) or > v (!ge), given upper bound u. A string or
 * binary upper bound that is a prefix of v may be a truncation that was not incremented
 * (the spec asks writers to increment; not all do): values starting with it may still
 * exceed v. */
static bool upper_allows(enum family fam, const struct iceberg_value *u, const struct iceberg_value *v, bool ge)
{
    int c = cmp(fam, u, v);
    if (ge ? c >= 0 : c > 0)
        return true;
    return fam == FAM_BYTES && u->v.bytes.len <= v->v.bytes.len &&
           (u->v.bytes.len == 0 || !memcmp(u->v.bytes.p, v->v.bytes.p, u->v.bytes.len));
}

static const struct iceberg_column_stats *stats_of(const struct iceberg_data_file *f, int field_id)
{
    for (size_t i = 0; i < f->n_stats; i++)
        if (f->stats[i].field_id == field_id)
            return &f->stats[i];
    return NULL;
}

static bool leaf_may_match(const struct iceberg_expr *e, const struct iceberg_data_file *f)
{
    enum family fam = family(&e->type);
    const struct iceberg_column_stats *st = stats_of(f, e->field_id);
    if (!st || fam == FAM_NONE)
        return true; /* no metrics (another writer, a column added later): keep */
    bool all_null = st->null_count >= 0 && st->value_count >= 0 && st->null_count == st->value_count;
    if (e->op == ICEBERG_EXPR_IS_NULL)
        return st->null_count != 0;
    if (e->op == ICEBERG_EXPR_NOT_NULL)
        return !all_null;
    if (all_null && f->record_count >= 0 && st->value_count == f->record_count)
        return false; /* only NULLs: no comparison is true */
    struct iceberg_value lo, hi;
    bool has_lo = decode(fam, st->lower, st->lower_len, &lo);
    bool has_hi = decode(fam, st->upper, st->upper_len, &hi);
    /* DuckDB orders NaN above every number: a file that may hold NaN matches > and >=. */
    bool may_nan = fam == FAM_FLOAT && st->nan_count != 0;
    for (size_t i = 0; i < e->n_values; i++) {
        const struct iceberg_value *v = &e->values[i];
        bool ok = true;
        switch (e->op) {
        case ICEBERG_EXPR_EQ:
        case ICEBERG_EXPR_IN:
            ok = !(has_lo && cmp(fam, &lo, v) > 0) && !(has_hi && !upper_allows(fam, &hi, v, true));
            break;
        case ICEBERG_EXPR_LT:
            ok = !(has_lo && cmp(fam, &lo, v) >= 0);
            break;
        case ICEBERG_EXPR_LE:
            ok = !(has_lo && cmp(fam, &lo, v) > 0);
            break;
        case ICEBERG_EXPR_GT:
            ok = may_nan || !(has_hi && !upper_allows(fam, &hi, v, false));
            break;
        case ICEBERG_EXPR_GE:
            ok = may_nan || !(has_hi && !upper_allows(fam, &hi, v, true));
            break;
        default:
            break;
        }
        if (ok)
            return true;
    }
    return e->n_values == 0; /* a comparison with no value is malformed: keep */
}

bool iceberg_expr_may_match(const struct iceberg_expr *e, const struct iceberg_data_file *f)
{
    if (!e)
        return true;
    switch (e->op) {
    case ICEBERG_EXPR_AND:
        for (size_t i = 0; i < e->n_children; i++)
            if (!iceberg_expr_may_match(&e->children[i], f))
                return false;
        return true;
    case ICEBERG_EXPR_OR:
        for (size_t i = 0; i < e->n_children; i++)
            if (iceberg_expr_may_match(&e->children[i], f))
                return true;
        return e->n_children == 0;
    default:
        return leaf_may_match(e, f);
    }
}

void iceberg_scan_prune(struct iceberg_scan *plan, const struct iceberg_expr *e, struct iceberg_prune_stats *out)
{
    struct iceberg_prune_stats ps = {.n_data_before = plan->n_data, .n_deletes_before = plan->n_deletes};
    for (size_t i = 0; i < plan->n_data; i++)
        ps.data_bytes_before += plan->data[i].file_size > 0 ? plan->data[i].file_size : 0;
    for (size_t i = 0; i < plan->n_deletes; i++)
        ps.delete_bytes_before += plan->deletes[i].file_size > 0 ? plan->deletes[i].file_size : 0;
    size_t n = 0;
    plan->total_records = 0;
    for (size_t i = 0; i < plan->n_data; i++) {
        if (!iceberg_expr_may_match(e, &plan->data[i]))
            continue;
        plan->data[n++] = plan->data[i];
        plan->total_records += plan->data[i].record_count > 0 ? plan->data[i].record_count : 0;
        ps.data_bytes_after += plan->data[i].file_size > 0 ? plan->data[i].file_size : 0;
    }
    plan->n_data = n;
    size_t k = 0;
    for (size_t i = 0; i < plan->n_deletes; i++) {
        const char *ref = plan->deletes[i].referenced_data_file;
        bool keep = n > 0 && !ref;
        for (size_t j = 0; j < n && !keep; j++)
            keep = !strcmp(ref, plan->data[j].path);
        if (!keep)
            continue;
        plan->deletes[k++] = plan->deletes[i];
        ps.delete_bytes_after += plan->deletes[i].file_size > 0 ? plan->deletes[i].file_size : 0;
    }
    plan->n_deletes = k;
    ps.n_data_after = n;
    ps.n_deletes_after = k;
    if (out)
        *out = ps;
}
