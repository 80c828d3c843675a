/* guard.c: the statement guard for sessions of principals that are not administrators
 * (DESIGN.md, security model). Until grants exist it denies by default: a statement runs
 * only when it is a SELECT (by DuckDB's own parse tree, json_serialize_sql) that names no
 * lake table, no DuckDB object but a few object-free catalog relations (pg_type,
 * pg_settings, ...), no file and no table function outside a short allow-list; or transaction control; or SET of a few
 * client settings. Everything else is 42501. Not for administrators (session.c runs
 * their statements unguarded) or for grants (later, access/). */
#include "query/internal.h"

#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"

struct walk {
    json_t **tables, **funcs;
    size_t n_tables, n_funcs, cap_tables, cap_funcs;
    const char **ctes;
    size_t n_ctes, cap_ctes;
};

static void push(json_t ***v, size_t *n, size_t *cap, json_t *x)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *v = xrealloc(*v, *cap * sizeof **v);
    }
    (*v)[(*n)++] = x;
}

static void walk(json_t *j, struct walk *w)
{
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) walk(v, w);
        return;
    }
    if (!json_is_object(j))
        return;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (type && !strcmp(type, "BASE_TABLE"))
        push(&w->tables, &w->n_tables, &w->cap_tables, j);
    if (type && !strcmp(type, "TABLE_FUNCTION"))
        push(&w->funcs, &w->n_funcs, &w->cap_funcs, j);
    json_t *map = json_object_get(json_object_get(j, "cte_map"), "map");
    if (json_is_array(map)) {
        size_t i;
        json_t *e;
        json_array_foreach(map, i, e)
        {
            const char *k = json_string_value(json_object_get(e, "key"));
            if (!k)
                continue;
            if (w->n_ctes == w->cap_ctes) {
                w->cap_ctes = w->cap_ctes ? w->cap_ctes * 2 : 8;
                w->ctes = xrealloc(w->ctes, w->cap_ctes * sizeof *w->ctes);
            }
            w->ctes[w->n_ctes++] = k;
        }
    }
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) walk(v, w);
}

static bool is_cte(const struct walk *w, const char *name)
{
    for (size_t i = 0; i < w->n_ctes; i++)
        if (!strcasecmp(w->ctes[i], name))
            return true;
    return false;
}

static int deny(struct query_session *s, struct loch_err *err, const char *fmt, const char *what)
{
    loch_errf(err, LOCH_EPERM, fmt, what);
    loch_err_detail(err, "user \"%s\" is not a member of role admin", s->user ? s->user : "?");
    return loch_err_hint(err, "until grants exist, only members of role admin may read lake tables; "
                              "an administrator can run: GRANT admin TO %s",
                         s->user ? s->user : "name");
}

/* DuckDB's catalog lives in the same database as the lake's views, so its listings
 * (information_schema, pg_class, pg_attribute, pg_namespace, duckdb_* functions) would
 * show lake table names, columns and file paths. A non-administrator may read only the
 * catalog relations that list no objects: types and settings, what client libraries
 * look up by themselves. */
static bool harmless_catalog_relation(const char *name)
{
    static const char *ok[] = {"pg_type", "pg_settings", "pg_database", "pg_proc", "pg_am", "pg_collation",
                               "pg_range", "pg_enum", "pg_language", NULL};
    for (int i = 0; ok[i]; i++)
        if (!strcasecmp(name, ok[i]))
            return true;
    return false;
}

/* Relations a non-administrator may name: CTEs, and the harmless catalog relations
 * above (bare or in pg_catalog). */
static int check_table(struct query_session *s, const struct walk *w, json_t *node, struct loch_err *err)
{
    struct arena *a = s->stmt_arena;
    const char *cat = json_string_value(json_object_get(node, "catalog_name"));
    const char *sch = json_string_value(json_object_get(node, "schema_name"));
    const char *tab = json_string_value(json_object_get(node, "table_name"));
    cat = cat ? cat : "";
    sch = sch ? sch : "";
    tab = tab ? tab : "";
    if (!*sch && !*cat) {
        if (is_cte(w, tab) || harmless_catalog_relation(tab))
            return 0;
    } else if (!*cat || !strcasecmp(cat, "system")) {
        if (!strcasecmp(sch, "pg_catalog") && harmless_catalog_relation(tab))
            return 0;
    }
    /* Name the lake table when it is one; anything else is still refused (a file read
     * through a replacement scan, a DuckDB view in main, ...). */
    if (*sch) {
        char *ns = *cat ? arena_printf(a, "%s.%s", cat, sch) : arena_strdup(a, sch);
        struct catalog_table ct;
        struct loch_err e2;
        if (catalog_load_table(s->env.cat, ns, tab, a, &ct, &e2) == 0)
            return deny(s, err, "permission denied for table %s", arena_printf(a, "%s.%s", ns, tab));
        return deny(s, err, "permission denied for relation %s",
                    *cat ? arena_printf(a, "%s.%s.%s", cat, sch, tab) : arena_printf(a, "%s.%s", sch, tab));
    }
    if (strpbrk(tab, "./:\\"))
        return deny(s, err, "permission denied to read file \"%s\"", tab);
    return deny(s, err, "permission denied for relation %s", tab);
}

static int check_function(struct query_session *s, json_t *node, struct loch_err *err)
{
    static const char *allowed[] = {"range", "generate_series", "unnest", NULL};
    json_t *fn = json_object_get(node, "function");
    const char *name = json_string_value(json_object_get(fn, "function_name"));
    const char *schema = json_string_value(json_object_get(fn, "schema"));
    const char *catalog = json_string_value(json_object_get(fn, "catalog"));
    name = name ? name : "?";
    bool bare = (!schema || !*schema) && (!catalog || !*catalog);
    for (int i = 0; bare && allowed[i]; i++)
        if (!strcasecmp(name, allowed[i]))
            return 0;
    return deny(s, err, "permission denied for function %s", name);
}

/* SET/RESET of settings a client library sends on its own; every other setting could
 * widen what the session reaches (search_path, file access, extensions). */
static bool harmless_set(const struct stmt *st)
{
    static const char *names[] = {"timezone", "datestyle", "application_name", "extra_float_digits",
                                  "client_encoding", "client_min_messages", NULL};
    size_t i = 1;
    if (lex_is(st, i, "SESSION") || lex_is(st, i, "LOCAL"))
        i++;
    if (i >= st->n_tok || st->tok[i].kind != TOK_WORD)
        return false;
    for (int k = 0; names[k]; k++)
        if (lex_is(st, i, names[k]))
            return i + 1 == st->n_tok || lex_punct(st, i + 1, '=') || lex_is(st, i + 1, "TO");
    return false;
}

static bool transaction_control(const struct stmt *st)
{
    static const char *words[] = {"BEGIN", "COMMIT", "END", "ROLLBACK", "ABORT", NULL};
    for (int k = 0; words[k]; k++)
        if (lex_is(st, 0, words[k]))
            return st->n_tok == 1 || lex_is(st, 1, "TRANSACTION") || lex_is(st, 1, "WORK");
    return lex_is(st, 0, "START") && lex_is(st, 1, "TRANSACTION") && st->n_tok == 2;
}

int guard_check(struct query_session *s, const struct stmt *st, struct loch_err *err)
{
    if (transaction_control(st))
        return 0;
    if ((lex_is(st, 0, "SET") || lex_is(st, 0, "RESET")) && harmless_set(st))
        return 0;
    struct buf q = {0};
    buf_puts(&q, "SELECT json_serialize_sql(");
    buf_sql_str(&q, st->text);
    buf_puts(&q, ")");
    struct engine_rows *r;
    int rc = engine_query(s->conn, q.data, &r, err);
    buf_free(&q);
    if (rc)
        return rc;
    json_t *root = duck_json_parse(engine_rows_text(r, 0, 0, s->stmt_arena));
    engine_rows_free(r);
    if (!root)
        return loch_errf(err, LOCH_EINTERNAL, "unexpected parse tree from DuckDB");
    if (json_is_true(json_object_get(root, "error"))) {
        const char *type = json_string_value(json_object_get(root, "error_type"));
        const char *msg = json_string_value(json_object_get(root, "error_message"));
        if (type && !strcmp(type, "parser"))
            rc = loch_errf(err, LOCH_ESYNTAX, "%s", msg ? msg : "syntax error");
        else
            rc = deny(s, err, "permission denied to run %s statements",
                      arena_strndup(s->stmt_arena, st->text + st->tok[0].off, st->tok[0].len));
        json_decref(root);
        return rc;
    }
    struct walk w = {0};
    walk(json_object_get(root, "statements"), &w);
    for (size_t i = 0; i < w.n_tables && !rc; i++)
        rc = check_table(s, &w, w.tables[i], err);
    for (size_t i = 0; i < w.n_funcs && !rc; i++)
        rc = check_function(s, w.funcs[i], err);
    free(w.tables);
    free(w.funcs);
    free(w.ctes);
    json_decref(root);
    return rc;
}
