/* load.c: `loch load`'s work: a local CSV, JSON or Parquet file into a lake table, with
 * DuckDB's readers (CSV decimals kept exact). Not for argument parsing (cmd/) or for
 * files dropped into the lake (the crawler's, to come). */
#include "query/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/util.h"

/* The DuckDB reader for a file, chosen by its extension (compression suffixes aside). */
const char *query_file_reader(const char *path, const char *format)
{
    if (format)
        return !strcmp(format, "csv") ? "read_csv" : !strcmp(format, "json") ? "read_json_auto"
               : !strcmp(format, "parquet") ? "read_parquet" : NULL;
    char base[4096];
    snprintf(base, sizeof base, "%s", path);
    for (char *dot; (dot = strrchr(base, '.')) && (!strcasecmp(dot, ".gz") || !strcasecmp(dot, ".zst"));)
        *dot = '\0';
    const char *ext = strrchr(base, '.');
    if (!ext)
        return NULL;
    if (!strcasecmp(ext, ".csv") || !strcasecmp(ext, ".tsv") || !strcasecmp(ext, ".txt"))
        return "read_csv";
    if (!strcasecmp(ext, ".json") || !strcasecmp(ext, ".ndjson") || !strcasecmp(ext, ".jsonl"))
        return "read_json_auto";
    if (!strcasecmp(ext, ".parquet"))
        return "read_parquet";
    return NULL;
}

/* DuckDB's CSV sniffer reads 12.34 as DOUBLE. Money must stay exact, so a DOUBLE column
 * whose every value is a plain decimal literal becomes DECIMAL(18,s) (or (38,s) when the
 * digits need it), s being the most fractional digits seen. *types (malloc'd) is a
 * DuckDB struct literal for read_csv's types option, NULL when nothing changes. */
static int csv_decimal_types(struct query_session *s, const char *path, char **types, struct loch_err *err)
{
    *types = NULL;
    struct engine_conn *c = s->conn;
    struct arena *a = s->stmt_arena;
    int rc = 0;
    struct buf q = {0};
    buf_puts(&q, "DESCRIBE SELECT * FROM read_csv(");
    buf_sql_str(&q, path);
    buf_puts(&q, ")");
    struct engine_rows *r;
    rc = engine_query(c, q.data, &r, err);
    buf_reset(&q);
    size_t n_dbl = 0, n_all = 0;
    char **cols = NULL, **all = NULL, **all_types = NULL;
    if (!rc) {
        size_t n = engine_rows_count(r);
        cols = arena_alloc(a, (n ? n : 1) * sizeof *cols);
        all = arena_alloc(a, (n ? n : 1) * sizeof *all);
        all_types = arena_alloc(a, (n ? n : 1) * sizeof *all_types);
        for (size_t i = 0; i < n; i++) {
            char *t = engine_rows_text(r, 1, i, a);
            all[i] = engine_rows_text(r, 0, i, a);
            all_types[i] = t;
            if (t && (!strcmp(t, "DOUBLE") || !strcmp(t, "FLOAT")))
                cols[n_dbl++] = all[i];
        }
        n_all = n;
        engine_rows_free(r);
    }
    if (!rc && n_dbl) {
        buf_puts(&q, "SELECT ");
        for (size_t i = 0; i < n_dbl; i++) {
            struct buf id = {0};
            buf_sql_ident(&id, cols[i]);
            buf_printf(&q,
                       "%sbool_and(%s IS NULL OR regexp_full_match(trim(%s), '-?[0-9]+(\\.[0-9]+)?')), "
                       "max(length(split_part(ltrim(trim(%s), '-'), '.', 1))), "
                       "max(length(split_part(trim(%s), '.', 2)))",
                       i ? ", " : "", id.data, id.data, id.data, id.data);
            buf_free(&id);
        }
        buf_puts(&q, " FROM read_csv(");
        buf_sql_str(&q, path);
        buf_puts(&q, ", all_varchar = true)");
        rc = engine_query(c, q.data, &r, err);
        buf_reset(&q);
        bool changed = false;
        if (!rc) {
            for (size_t i = 0; i < n_dbl; i++) {
                char *ok = engine_rows_text(r, 3 * i, 0, a);
                int64_t digits = engine_rows_int(r, 3 * i + 1, 0), scale = engine_rows_int(r, 3 * i + 2, 0);
                if (!ok || strcmp(ok, "true") || digits + scale > 38)
                    continue;
                for (size_t k = 0; k < n_all; k++)
                    if (all[k] == cols[i])
                        all_types[k] = arena_printf(a, "DECIMAL(%d,%d)", digits + scale > 18 ? 38 : 18, (int)scale);
                changed = true;
            }
            engine_rows_free(r);
            /* Given some types, the sniffer stops detecting the others' formats: pass all. */
            for (size_t k = 0; changed && k < n_all; k++) {
                buf_puts(&q, k ? ", " : "{");
                buf_sql_str(&q, all[k]);
                buf_puts(&q, ": ");
                buf_sql_str(&q, all_types[k]);
            }
            if (q.len) {
                buf_puts(&q, "}");
                *types = buf_take(&q);
            }
        }
    }
    buf_free(&q);
    return rc;
}


static int keep_tag(void *ctx, const struct query_result *res)
{
    snprintf(ctx, 64, "%s", res->tag ? res->tag : "");
    return 0;
}

int query_load_file(struct query_session *s, const char *ns, const char *name, const char *path, const char *format,
                    int64_t *rows, bool *created, struct loch_err *err)
{
    if (!session_admin(s)) {
        loch_errf(err, LOCH_EPERM, "permission denied to load files");
        return loch_err_hint(err, "only members of role admin load files into the lake");
    }
    const char *reader = query_file_reader(path, format);
    if (!reader) {
        loch_errf(err, LOCH_EINVAL, "cannot tell the format of \"%s\"", path);
        return loch_err_hint(err, "name it .csv, .json or .parquet, or pass --format csv|json|parquet");
    }
    if (!util_exists(path))
        return loch_errf(err, LOCH_ENOENT, "file \"%s\" does not exist", path);
    arena_reset(s->stmt_arena);
    struct arena *a = s->stmt_arena;
    struct buf src = {0}, sql = {0}, target = {0};
    char *abs = util_abspath(path);
    buf_printf(&src, "SELECT * FROM %s(", reader);
    buf_sql_str(&src, abs);
    int rc = 0;
    if (!strcmp(reader, "read_csv")) {
        char *types = NULL;
        rc = csv_decimal_types(s, abs, &types, err);
        if (types)
            buf_printf(&src, ", types = %s", types);
        free(types);
    }
    free(abs);
    buf_puts(&src, ")");
    for (const char *p = ns, *dot; p; p = dot ? dot + 1 : NULL) {
        dot = strchr(p, '.');
        buf_sql_ident(&target, arena_strndup(a, p, dot ? (size_t)(dot - p) : strlen(p)));
        buf_putc(&target, '.');
    }
    buf_sql_ident(&target, name);
    *created = !sink_table_exists(s->env.cat, ns, name, a);
    if (*created)
        buf_printf(&sql, "CREATE TABLE %s AS %s", target.data, src.data);
    else
        buf_printf(&sql, "INSERT INTO %s BY NAME %s", target.data, src.data);
    char tag[64] = "";
    if (!rc)
        rc = query_run(s, sql.data, keep_tag, tag, err);
    const char *n = strrchr(tag, ' ');
    *rows = n ? atoll(n + 1) : -1;
    buf_free(&src);
    buf_free(&sql);
    buf_free(&target);
    return rc;
}
