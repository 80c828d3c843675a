/* sql.c: `loch sql [--format table|csv|json] [--as USER] "SQL"` (or SQL on stdin) as the
 * local administrator (or, with --as, with the rights of principal USER), and `loch load NS.TABLE FILE`, which is SQL under the hood. */
#include "cmd/cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/util.h"
#include "query/query.h"

enum format { FMT_TABLE, FMT_CSV, FMT_JSON };

struct out {
    enum format fmt;
    const char *as_user; /* --as USER: run as that principal (NULL: local administrator) */
    struct arena *a;
    bool quiet_tags;
};

static size_t utf8_width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

static void pad(size_t n)
{
    while (n--)
        putchar(' ');
}

static void print_table(struct engine_rows *r, struct arena *a)
{
    size_t nc = engine_rows_ncols(r), nr = engine_rows_count(r);
    size_t *w = xcalloc(nc ? nc : 1, sizeof *w);
    for (size_t c = 0; c < nc; c++)
        w[c] = utf8_width(engine_rows_name(r, c));
    for (size_t row = 0; row < nr; row++)
        for (size_t c = 0; c < nc; c++) {
            char *v = engine_rows_text(r, c, row, a);
            size_t l = v ? utf8_width(v) : 0;
            if (l > w[c])
                w[c] = l;
        }
    for (size_t c = 0; c < nc; c++) {
        const char *h = engine_rows_name(r, c);
        printf("%s %s", c ? " |" : "", h);
        pad(w[c] - utf8_width(h));
    }
    putchar('\n');
    for (size_t c = 0; c < nc; c++) {
        printf("%s", c ? "-+-" : "-");
        for (size_t k = 0; k < w[c]; k++)
            putchar('-');
    }
    printf("-\n");
    for (size_t row = 0; row < nr; row++) {
        for (size_t c = 0; c < nc; c++) {
            char *v = engine_rows_text(r, c, row, a);
            const char *s = v ? v : "";
            bool right = engine_rows_kind(r, c) == ENGINE_KIND_NUMBER;
            printf("%s ", c ? " |" : "");
            if (right)
                pad(w[c] - utf8_width(s));
            fputs(s, stdout);
            if (!right)
                pad(w[c] - utf8_width(s));
        }
        putchar('\n');
    }
    printf("(%zu row%s)\n", nr, nr == 1 ? "" : "s");
    free(w);
}

static void csv_field(const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static void print_csv(struct engine_rows *r, struct arena *a)
{
    size_t nc = engine_rows_ncols(r), nr = engine_rows_count(r);
    for (size_t c = 0; c < nc; c++) {
        if (c)
            putchar(',');
        csv_field(engine_rows_name(r, c));
    }
    putchar('\n');
    for (size_t row = 0; row < nr; row++) {
        for (size_t c = 0; c < nc; c++) {
            if (c)
                putchar(',');
            char *v = engine_rows_text(r, c, row, a);
            if (v)
                csv_field(v);
        }
        putchar('\n');
    }
}

static void json_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        default:
            if (*p < 0x20)
                printf("\\u%04x", *p);
            else
                putchar(*p);
        }
    }
    putchar('"');
}

/* One JSON object per row, in an array. Numbers stay numbers (decimals keep every digit
 * as DuckDB prints them); NaN and infinities become strings. */
static void print_json(struct engine_rows *r, struct arena *a)
{
    size_t nc = engine_rows_ncols(r), nr = engine_rows_count(r);
    putchar('[');
    for (size_t row = 0; row < nr; row++) {
        printf("%s{", row ? ",\n " : "");
        for (size_t c = 0; c < nc; c++) {
            if (c)
                putchar(',');
            json_str(engine_rows_name(r, c));
            putchar(':');
            char *v = engine_rows_text(r, c, row, a);
            enum engine_kind k = engine_rows_kind(r, c);
            if (!v)
                fputs("null", stdout);
            else if (k == ENGINE_KIND_BOOL)
                fputs(v, stdout);
            else if (k == ENGINE_KIND_NUMBER && strcasecmp(v, "nan") && strcasecmp(v, "inf") && strcasecmp(v, "-inf") &&
                     strcasecmp(v, "infinity") && strcasecmp(v, "-infinity"))
                fputs(v, stdout);
            else
                json_str(v);
        }
        putchar('}');
    }
    printf("]\n");
}

static int emit(void *ctx, const struct query_result *res)
{
    struct out *o = ctx;
    if (res->rows) {
        arena_reset(o->a);
        if (o->fmt == FMT_TABLE)
            print_table(res->rows, o->a);
        else if (o->fmt == FMT_CSV)
            print_csv(res->rows, o->a);
        else
            print_json(res->rows, o->a);
    } else if (!o->quiet_tags) {
        printf("%s\n", res->tag);
    }
    fflush(stdout);
    return 0;
}

static int run_sql(struct app *app, const char *sql, struct out *o)
{
    struct loch_err err;
    loch_err_clear(&err);
    struct query_env env = {app->cat, app->st, app->eng, app->cfg->state_dir, NULL};
    struct query_session *s = NULL;
    int rc = 0;
    if (o->as_user) {
        rc = app_restricted_engine(app, &err);
        env.restricted = app->xeng;
    }
    if (!rc)
        rc = o->as_user ? query_session_open_as(&env, o->as_user, &s, &err) : query_session_open(&env, &s, &err);
    if (!rc)
        rc = query_run(s, sql, emit, o, &err);
    query_session_close(s);
    if (rc) {
        app_fail(&err);
        fprintf(stderr, "SQLSTATE: %s\n", loch_err_sqlstate(rc));
    }
    return rc ? 1 : 0;
}

int cmd_sql(struct app *app, int argc, char **argv)
{
    struct out o = {FMT_TABLE, NULL, NULL, false};
    const char *sql = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--format") && i + 1 < argc) {
            const char *f = argv[++i];
            if (!strcmp(f, "table"))
                o.fmt = FMT_TABLE;
            else if (!strcmp(f, "csv"))
                o.fmt = FMT_CSV;
            else if (!strcmp(f, "json"))
                o.fmt = FMT_JSON;
            else {
                fprintf(stderr, "loch sql: unknown format \"%s\" (use table, csv or json)\n", f);
                return 2;
            }
        } else if (!strcmp(argv[i], "--as") && i + 1 < argc) {
            o.as_user = argv[++i];
        } else if (!sql && argv[i][0] != '-') {
            sql = argv[i];
        } else {
            fprintf(stderr, "usage: loch sql [--format table|csv|json] [--as USER] \"SQL\"   (or the SQL on stdin)\n");
            return 2;
        }
    }
    struct buf in = {0};
    if (!sql) {
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
            buf_append(&in, chunk, n);
        sql = in.data ? in.data : "";
    }
    int rc = app_open(app, true);
    if (!rc) {
        o.a = arena_new();
        rc = run_sql(app, sql, &o);
        arena_free(o.a);
    }
    buf_free(&in);
    return rc;
}

/* The DuckDB reader for a file, chosen by its extension (compression suffixes aside). */
static const char *reader_for(const char *path, const char *format)
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
static int csv_decimal_types(struct app *app, const char *path, char **types, struct loch_err *err)
{
    *types = NULL;
    struct engine_conn *c;
    int rc = engine_connect(app->eng, &c, err);
    if (rc)
        return rc;
    struct arena *a = app->a;
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
    engine_disconnect(c);
    return rc;
}

static int keep_tag(void *ctx, const struct query_result *res)
{
    snprintf(ctx, 64, "%s", res->tag ? res->tag : "");
    return 0;
}

int cmd_load(struct app *app, int argc, char **argv)
{
    const char *table = NULL, *file = NULL, *format = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--format") && i + 1 < argc)
            format = argv[++i];
        else if (!table)
            table = argv[i];
        else if (!file)
            file = argv[i];
        else
            table = NULL, i = argc;
    }
    if (!table || !file) {
        fprintf(stderr, "usage: loch load NAMESPACE.TABLE FILE [--format csv|json|parquet]\n");
        return 2;
    }
    const char *reader = reader_for(file, format);
    if (!reader) {
        fprintf(stderr, "loch: error: cannot tell the format of \"%s\"\nHINT: name it .csv, .json or .parquet, "
                        "or pass --format csv|json|parquet\n", file);
        return 2;
    }
    if (!util_exists(file)) {
        fprintf(stderr, "loch: error: file \"%s\" does not exist\n", file);
        return 1;
    }
    int rc = app_open(app, true);
    if (rc)
        return rc;
    struct loch_err err;
    loch_err_clear(&err);
    struct arena *a = app->a;
    char *ns, *name;
    if (query_split_name(a, table, &ns, &name, &err)) {
        app_fail(&err);
        return 2;
    }
    struct buf src = {0}, sql = {0};
    char *abs = util_abspath(file);
    buf_printf(&src, "SELECT * FROM %s(", reader);
    buf_sql_str(&src, abs);
    if (!strcmp(reader, "read_csv")) {
        char *types = NULL;
        rc = csv_decimal_types(app, abs, &types, &err);
        if (rc) {
            app_fail(&err);
            buf_free(&src);
            free(abs);
            return 1;
        }
        if (types)
            buf_printf(&src, ", types = %s", types);
        free(types);
    }
    free(abs);
    buf_puts(&src, ")");
    struct buf target = {0};
    for (const char *p = ns, *dot; p; p = dot ? dot + 1 : NULL) {
        dot = strchr(p, '.');
        buf_sql_ident(&target, arena_strndup(a, p, dot ? (size_t)(dot - p) : strlen(p)));
        buf_putc(&target, '.');
    }
    buf_sql_ident(&target, name);
    struct catalog_table ct;
    bool exists = catalog_load_table(app->cat, ns, name, a, &ct, &err) == 0;
    loch_err_clear(&err);
    if (exists)
        buf_printf(&sql, "INSERT INTO %s BY NAME %s", target.data, src.data);
    else
        buf_printf(&sql, "CREATE TABLE %s AS %s", target.data, src.data);
    double t0 = util_mono_s();
    struct query_env env = {app->cat, app->st, app->eng, app->cfg->state_dir, NULL};
    struct query_session *s = NULL;
    char tag[64] = "";
    rc = query_session_open(&env, &s, &err);
    if (!rc)
        rc = query_run(s, sql.data, keep_tag, tag, &err);
    query_session_close(s);
    if (rc) {
        app_fail(&err);
    } else {
        const char *n = strrchr(tag, ' ');
        printf("%s %s.%s: %s rows from %s in %.2f s\n", exists ? "appended to" : "created", ns, name,
               n ? n + 1 : "?", file, util_mono_s() - t0);
    }
    buf_free(&src);
    buf_free(&sql);
    buf_free(&target);
    return rc ? 1 : 0;
}
