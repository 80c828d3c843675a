/* writer.c: Parquet data and position-delete files through DuckDB's COPY, with Iceberg
 * field ids and ZSTD, and the file's column metrics read back from its own footer
 * (parquet_metadata) rather than by a second pass over the rows.
 * Not for metadata (iceberg/) or commits (commit.c). */
#include "sink/sink.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"

/* Iceberg reserved field ids of position-delete files (spec "Position Delete Files"). */
#define DELETE_FILE_PATH_ID 2147483546
#define DELETE_POS_ID 2147483545

struct target {
    const char *uri;   /* where the file lives in the lake */
    const char *local; /* where DuckDB writes it */
    bool remote;       /* local is a temp file to upload */
};

static int make_target(struct store *st, const char *location, struct arena *a, struct target *t,
                       struct loch_err *err)
{
    char id[37];
    util_uuid4(id);
    t->uri = arena_printf(a, "%s/data/%s.parquet", location, id);
    char *local = store_local_path(st, t->uri);
    if (local) {
        t->local = arena_strdup(a, local);
        free(local);
        t->remote = false;
        char *dir = arena_strdup(a, t->local);
        *strrchr(dir, '/') = '\0';
        return util_mkdirs(dir, err);
    }
    const char *tmp = getenv("TMPDIR");
    t->local = arena_printf(a, "%s/loch-%s.parquet", tmp ? tmp : "/tmp", id);
    t->remote = true;
    return 0;
}

/* After a successful COPY: upload when remote, learn the exact size. */
/* ZSTD at level 1: a third less CPU than DuckDB's default level for the row shapes loch
 * writes (change logs, sysbench and pgbench rows), and files as small or smaller; any
 * ZSTD level reads the same everywhere. */
#define ZSTD "COMPRESSION zstd, COMPRESSION_LEVEL 1"

static int finish_target(struct store *st, struct target *t, int64_t *size, struct loch_err *err)
{
    struct stat sb;
    if (stat(t->local, &sb) != 0)
        return loch_errf(err, LOCH_EIO, "DuckDB did not write \"%s\": %s", t->local, strerror(errno));
    *size = (int64_t)sb.st_size;
    if (!t->remote)
        return 0;
    char *data;
    size_t len;
    int rc = util_read_file(t->local, &data, &len, err);
    if (rc)
        return rc;
    rc = store_put(st, t->uri, data, len, STORE_NO_OVERWRITE, err);
    free(data);
    unlink(t->local);
    return rc;
}

static void drop_target(struct store *st, struct target *t)
{
    unlink(t->local);
    if (t->remote)
        store_delete(st, t->uri, NULL);
}

/* The SQL expression that turns an aggregated footer value (a VARCHAR statistic cast
 * to the column type) into the canonical text parsed by parse_bound. NULL: no bounds. */
static const char *bound_expr(const struct iceberg_type *t, const char *agg, struct arena *a)
{
    char duck[64];
    iceberg_type_duckdb(t, duck, sizeof duck);
    switch (t->id) {
    case ICEBERG_BOOLEAN:
    case ICEBERG_INT:
    case ICEBERG_LONG:
    case ICEBERG_FLOAT:
    case ICEBERG_DOUBLE:
    case ICEBERG_DECIMAL:
    case ICEBERG_UUID:
        return arena_printf(a, "%s(TRY_CAST(stats_%s_value AS %s))::VARCHAR", agg, agg, duck);
    case ICEBERG_DATE:
        return arena_printf(a, "(%s(TRY_CAST(stats_%s_value AS DATE)) - DATE '1970-01-01')::VARCHAR", agg, agg);
    case ICEBERG_TIME:
    case ICEBERG_TIMESTAMP:
    case ICEBERG_TIMESTAMPTZ:
        return arena_printf(a, "epoch_us(%s(TRY_CAST(stats_%s_value AS %s)))::VARCHAR", agg, agg, duck);
    case ICEBERG_STRING:
        return arena_printf(a, "%s(stats_%s_value)", agg, agg);
    case ICEBERG_FIXED:
    case ICEBERG_BINARY:
        return NULL;
    }
    return NULL;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Parses canonical text into a value; false when it cannot be a bound (NaN, junk). */
static bool parse_bound(const struct iceberg_type *t, const char *s, struct iceberg_value *v, bool upper,
                        uint8_t *scratch, size_t scratch_cap)
{
    memset(v, 0, sizeof *v);
    char *end;
    errno = 0;
    switch (t->id) {
    case ICEBERG_BOOLEAN:
        v->v.b = !strcmp(s, "true");
        return !strcmp(s, "true") || !strcmp(s, "false");
    case ICEBERG_INT:
    case ICEBERG_DATE:
        v->v.i32 = (int32_t)strtol(s, &end, 10);
        return *end == '\0' && errno == 0;
    case ICEBERG_LONG:
    case ICEBERG_TIME:
    case ICEBERG_TIMESTAMP:
    case ICEBERG_TIMESTAMPTZ:
        v->v.i64 = strtoll(s, &end, 10);
        return *end == '\0' && errno == 0;
    case ICEBERG_FLOAT:
    case ICEBERG_DOUBLE: {
        double d = strtod(s, &end);
        if (*end != '\0' || d != d)
            return false; /* NaN is never a bound */
        if (t->id == ICEBERG_FLOAT)
            v->v.f32 = (float)d;
        else
            v->v.f64 = d;
        return true;
    }
    case ICEBERG_DECIMAL: {
        /* DuckDB prints exactly `scale` fractional digits: drop the point. */
        bool neg = *s == '-';
        if (neg)
            s++;
        unsigned __int128 u = 0;
        int digits = 0;
        for (; *s; s++) {
            if (*s == '.')
                continue;
            if (*s < '0' || *s > '9' || ++digits > 38)
                return false;
            u = u * 10 + (unsigned)(*s - '0');
        }
        __int128 x = neg ? -(__int128)u : (__int128)u;
        v->v.dec.hi = (int64_t)(x >> 64);
        v->v.dec.lo = (uint64_t)x;
        return true;
    }
    case ICEBERG_UUID: {
        if (scratch_cap < 16)
            return false;
        size_t n = 0;
        for (; *s && n < 32; s++) {
            if (*s == '-')
                continue;
            int h = hexval(*s);
            if (h < 0)
                return false;
            if (n % 2 == 0)
                scratch[n / 2] = (uint8_t)(h << 4);
            else
                scratch[n / 2] |= (uint8_t)h;
            n++;
        }
        v->v.bytes.p = scratch;
        v->v.bytes.len = 16;
        return n == 32 && *s == '\0';
    }
    case ICEBERG_STRING: {
        size_t len = strlen(s);
        /* Java's default metrics mode truncate(16): long strings get short bounds. */
        if (upper) {
            size_t out_len;
            if (!iceberg_bound_truncate_upper((const uint8_t *)s, len, 16, scratch, &out_len))
                return false;
            v->v.bytes.p = scratch;
            v->v.bytes.len = out_len;
        } else {
            v->v.bytes.p = scratch;
            v->v.bytes.len = iceberg_bound_truncate_lower((const uint8_t *)s, len, 16, scratch);
        }
        return true;
    }
    default:
        return false;
    }
}

static const uint8_t *encode_bound(const struct iceberg_type *t, const char *text, bool upper, struct arena *a,
                                   size_t *len)
{
    if (!text)
        return NULL;
    uint8_t scratch[128], out[128];
    struct iceberg_value v;
    if (!parse_bound(t, text, &v, upper, scratch, sizeof scratch))
        return NULL;
    if (iceberg_bound_encode(t, &v, out, sizeof out, len) != 0)
        return NULL;
    return arena_memdup(a, out, *len);
}

/* Reads per-column metrics of a Parquet file written by DuckDB from its footer. Columns
 * appear in field order, one leaf each (loch writes primitive columns only). */
static int footer_stats(struct engine_conn *c, const char *local, const struct iceberg_schema *s,
                        struct arena *a, struct iceberg_data_file *f, struct loch_err *err)
{
    struct buf sql = {0};
    buf_puts(&sql, "SELECT column_id, sum(num_values), sum(stats_null_count), sum(total_compressed_size), "
                   "count(*) FILTER (WHERE stats_null_count IS NULL), CASE column_id");
    for (size_t i = 0; i < s->n_fields; i++) {
        const char *e = bound_expr(&s->fields[i].type, "min", a);
        buf_printf(&sql, " WHEN %zu THEN %s", i, e ? e : "NULL");
    }
    buf_puts(&sql, " END, CASE column_id");
    for (size_t i = 0; i < s->n_fields; i++) {
        const char *e = bound_expr(&s->fields[i].type, "max", a);
        buf_printf(&sql, " WHEN %zu THEN %s", i, e ? e : "NULL");
    }
    buf_puts(&sql, " END FROM parquet_metadata(");
    buf_sql_str(&sql, local);
    buf_puts(&sql, ") GROUP BY column_id ORDER BY column_id");
    struct engine_rows *r;
    int rc = engine_query(c, sql.data, &r, err);
    buf_free(&sql);
    if (rc)
        return loch_err_prefix(err, "reading metrics of \"%s\"", local);
    size_t n = engine_rows_count(r);
    f->stats = arena_alloc(a, (n ? n : 1) * sizeof *f->stats);
    for (size_t row = 0; row < n; row++) {
        int64_t col = engine_rows_int(r, 0, row);
        if (col < 0 || (size_t)col >= s->n_fields)
            continue;
        const struct iceberg_field *fld = &s->fields[col];
        struct iceberg_column_stats *st = &f->stats[f->n_stats++];
        st->field_id = fld->id;
        st->value_count = engine_rows_int(r, 1, row);
        st->null_count = engine_rows_int(r, 4, row) > 0 ? -1 : engine_rows_int(r, 2, row);
        st->column_size = engine_rows_int(r, 3, row);
        st->nan_count = -1;
        st->lower = encode_bound(&fld->type, engine_rows_text(r, 5, row, a), false, a, &st->lower_len);
        st->upper = encode_bound(&fld->type, engine_rows_text(r, 6, row, a), true, a, &st->upper_len);
        if (!st->lower || !st->upper) { /* a bound alone is allowed, but keep them paired */
            st->lower = st->upper = NULL;
            st->lower_len = st->upper_len = 0;
        }
    }
    engine_rows_free(r);
    return 0;
}

static void field_ids(struct buf *b, const struct iceberg_schema *s)
{
    buf_puts(b, "FIELD_IDS {");
    for (size_t i = 0; i < s->n_fields; i++) {
        if (i)
            buf_puts(b, ", ");
        buf_sql_str(b, s->fields[i].name);
        buf_printf(b, ": %d", s->fields[i].id);
    }
    buf_puts(b, "}");
}

/* Runs a COPY that writes t, and starts describing the file it wrote in out (content,
 * an ADDED entry inheriting nothing, the row count). Frees sql. *empty is true when no
 * row was written; the target is then removed. */
static int run_copy(struct engine_conn *c, struct store *st, struct target *t, struct buf *sql,
                    enum iceberg_content content, struct iceberg_data_file *out, bool *empty, struct loch_err *err)
{
    struct engine_rows *r;
    int rc = engine_query(c, sql->data, &r, err);
    buf_free(sql);
    if (rc) {
        drop_target(st, t);
        return rc;
    }
    out->record_count = engine_rows_changed(r);
    engine_rows_free(r);
    out->content = content;
    out->status = ICEBERG_ADDED;
    out->snapshot_id = out->sequence_number = out->file_sequence_number = -1;
    *empty = out->record_count == 0;
    if (*empty)
        drop_target(st, t);
    return 0;
}

int sink_write_data(struct engine_conn *c, struct store *st, const struct iceberg_metadata *m,
                    const char *select_sql, struct arena *a, struct iceberg_data_file *out, struct loch_err *err)
{
    const struct iceberg_schema *s = iceberg_metadata_current_schema(m);
    memset(out, 0, sizeof *out);
    struct target t;
    int rc = make_target(st, m->location, a, &t, err);
    if (rc)
        return rc;
    struct buf sql = {0};
    buf_puts(&sql, "COPY (SELECT ");
    for (size_t i = 0; i < s->n_fields; i++) {
        char duck[64];
        iceberg_type_duckdb(&s->fields[i].type, duck, sizeof duck);
        buf_printf(&sql, "%sCAST(__loch_src.\"#%zu\" AS %s) AS ", i ? ", " : "", i + 1, duck);
        buf_sql_ident(&sql, s->fields[i].name);
    }
    buf_printf(&sql, " FROM (%s) AS __loch_src(", select_sql);
    for (size_t i = 0; i < s->n_fields; i++)
        buf_printf(&sql, "%s\"#%zu\"", i ? ", " : "", i + 1);
    buf_puts(&sql, ")) TO ");
    buf_sql_str(&sql, t.local);
    buf_puts(&sql, " (FORMAT parquet, " ZSTD ", ");
    field_ids(&sql, s);
    buf_puts(&sql, ")");
    bool empty;
    rc = run_copy(c, st, &t, &sql, ICEBERG_CONTENT_DATA, out, &empty, err);
    if (rc || empty)
        return rc;
    rc = footer_stats(c, t.local, s, a, out, err);
    if (!rc)
        rc = finish_target(st, &t, &out->file_size, err);
    if (rc) {
        drop_target(st, &t);
        return rc;
    }
    out->path = t.uri;
    return 0;
}

int sink_write_deletes(struct engine_conn *c, struct store *st, const struct iceberg_metadata *m,
                       const char *select_sql, const struct sink_deletes_known *known, struct arena *a,
                       struct iceberg_data_file *out, struct loch_err *err)
{
    memset(out, 0, sizeof *out);
    struct target t;
    int rc = make_target(st, m->location, a, &t, err);
    if (rc)
        return rc;
    struct buf sql = {0};
    buf_printf(&sql,
               "COPY (SELECT CAST(__d.\"#1\" AS VARCHAR) AS file_path, CAST(__d.\"#2\" AS BIGINT) AS pos "
               "FROM (%s) AS __d(\"#1\", \"#2\")%s) TO ",
               select_sql, known ? "" : " ORDER BY 1, 2");
    buf_sql_str(&sql, t.local);
    buf_printf(&sql, " (FORMAT parquet, " ZSTD ", FIELD_IDS {file_path: %d, pos: %d})", DELETE_FILE_PATH_ID,
               DELETE_POS_ID);
    bool empty;
    rc = run_copy(c, st, &t, &sql, ICEBERG_CONTENT_POSITION_DELETES, out, &empty, err);
    if (rc || empty)
        return rc;
    /* One referenced data file lets readers skip the delete file for every other one. */
    if (known) {
        out->referenced_data_file = known->single_file ? arena_strdup(a, known->single_file) : NULL;
    } else {
        struct engine_rows *r;
        struct buf q = {0};
        buf_puts(&q, "SELECT count(DISTINCT file_path), min(file_path) FROM read_parquet(");
        buf_sql_str(&q, t.local);
        buf_puts(&q, ")");
        rc = engine_query(c, q.data, &r, err);
        buf_free(&q);
        if (!rc) {
            if (engine_rows_int(r, 0, 0) == 1)
                out->referenced_data_file = engine_rows_text(r, 1, 0, a);
            engine_rows_free(r);
        }
    }
    if (!rc)
        rc = finish_target(st, &t, &out->file_size, err);
    if (rc) {
        drop_target(st, &t);
        return rc;
    }
    out->path = t.uri;
    return 0;
}
