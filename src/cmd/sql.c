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
    if (!query_file_reader(file, format)) {
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
    char *ns, *name;
    if (query_split_name(app->a, table, &ns, &name, &err)) {
        app_fail(&err);
        return 2;
    }
    double t0 = util_mono_s();
    struct query_env env = {app->cat, app->st, app->eng, app->cfg->state_dir, NULL};
    struct query_session *s = NULL;
    int64_t rows = 0;
    bool created = false;
    rc = query_session_open(&env, &s, &err);
    if (!rc)
        rc = query_load_file(s, ns, name, file, format, &rows, &created, &err);
    query_session_close(s);
    if (rc)
        app_fail(&err);
    else
        printf("%s %s.%s: %lld rows from %s in %.2f s\n", created ? "created" : "appended to", ns, name,
               (long long)rows, file, util_mono_s() - t0);
    return rc ? 1 : 0;
}
