/* guard.c: the statement check for sessions of principals that are not administrators
 * (DESIGN.md, security model). It is the first of two walls, the one that gives clear
 * errors: such a session runs on the restricted engine (engine_options.restricted_dir),
 * which holds no lake data, no file access and no shared object, so what the guard misses
 * still reaches nothing. Until grants exist it denies by default: a statement runs only
 * when DuckDB's own parse of its text (json_serialize_sql) is one SELECT that names no
 * relation but its CTEs (in scope) and a few object-free catalog relations, no table
 * function outside a short allow-list and no function that reads settings, plans or
 * view definitions; what DuckDB then executes is the text DuckDB gives back for that
 * very tree (json_deserialize_sql), never the text the client sent. Transaction control
 * and client SETs are answered by loch without DuckDB. Not for administrators (session.c
 * runs their statements on the process engine) or for grants (later, access/). */
#include "query/internal.h"

#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"

struct walk {
    json_t **tables, **funcs, **scalars;
    size_t n_tables, n_funcs, n_scalars, cap_tables, cap_funcs, cap_scalars;
    /* the CTE names in scope at each table reference, as one string per reference:
     * "\x01name\x01name..." (names cannot hold \x01: DuckDB's parser never makes one) */
    char **scopes;
    size_t cap_scopes;
    struct buf scope; /* CTE names of the enclosing query nodes while walking */
};

static void push(json_t ***v, size_t *n, size_t *cap, json_t *x)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *v = xrealloc(*v, *cap * sizeof **v);
    }
    (*v)[(*n)++] = x;
}

/* Collects table references, table functions and scalar functions. A CTE covers the
 * references inside the query node that defines it (its body, its siblings' bodies and
 * the node's own FROM, WHERE, subqueries ...), never a reference outside that node:
 * DuckDB binds such an outer name as a table or a replacement scan (a file read). */
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
    const char *class = json_string_value(json_object_get(j, "class"));
    if (type && !strcmp(type, "BASE_TABLE")) {
        size_t n = w->n_tables;
        push(&w->tables, &w->n_tables, &w->cap_tables, j);
        if (w->n_tables > w->cap_scopes) {
            w->cap_scopes = w->cap_tables;
            w->scopes = xrealloc(w->scopes, w->cap_scopes * sizeof *w->scopes);
        }
        w->scopes[n] = xstrdup(w->scope.len ? w->scope.data : "");
    }
    if (type && !strcmp(type, "TABLE_FUNCTION"))
        push(&w->funcs, &w->n_funcs, &w->cap_funcs, j);
    if (class && !strcmp(class, "FUNCTION"))
        push(&w->scalars, &w->n_scalars, &w->cap_scalars, j);
    size_t mark = w->scope.len;
    json_t *map = json_object_get(json_object_get(j, "cte_map"), "map");
    if (json_is_array(map)) {
        size_t i;
        json_t *e;
        json_array_foreach(map, i, e)
        {
            const char *k = json_string_value(json_object_get(e, "key"));
            if (k && *k && !strchr(k, '\x01')) {
                buf_putc(&w->scope, '\x01');
                buf_puts(&w->scope, k);
            }
        }
    }
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) walk(v, w);
    w->scope.len = mark;
    if (w->scope.data)
        w->scope.data[mark] = '\0';
}

static bool in_scope(const char *scope, const char *name)
{
    for (const char *p = scope; (p = strchr(p, '\x01')); p++) {
        size_t l = strcspn(p + 1, "\x01");
        if (strlen(name) == l && !strncasecmp(p + 1, name, l))
            return true;
    }
    return false;
}

static void walk_free(struct walk *w)
{
    for (size_t i = 0; i < w->n_tables; i++)
        free(w->scopes[i]);
    free(w->scopes);
    free(w->tables);
    free(w->funcs);
    free(w->scalars);
    buf_free(&w->scope);
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

/* Relations a non-administrator may name: CTEs in scope, and the harmless catalog
 * relations above (bare or in pg_catalog). Every other name gets the same answer whether
 * or not a lake table of that name exists (no existence oracle). */
static int check_table(struct query_session *s, const struct walk *w, size_t i, struct loch_err *err)
{
    struct arena *a = s->stmt_arena;
    json_t *node = w->tables[i];
    const char *cat = json_string_value(json_object_get(node, "catalog_name"));
    const char *sch = json_string_value(json_object_get(node, "schema_name"));
    const char *tab = json_string_value(json_object_get(node, "table_name"));
    cat = cat ? cat : "";
    sch = sch ? sch : "";
    tab = tab ? tab : "";
    if (!*sch && !*cat) {
        if (in_scope(w->scopes[i], tab) || harmless_catalog_relation(tab))
            return 0;
    } else if (!*cat || !strcasecmp(cat, "system")) {
        if (!strcasecmp(sch, "pg_catalog") && harmless_catalog_relation(tab))
            return 0;
    }
    if (!*sch && strpbrk(tab, "./:\\"))
        return deny(s, err, "permission denied to read file \"%s\"", tab);
    const char *full = *cat ? arena_printf(a, "%s.%s.%s", cat, sch, tab)
                       : *sch ? arena_printf(a, "%s.%s", sch, tab) : tab;
    return deny(s, err, "permission denied for relation %s", full);
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

/* Scalar functions that describe the engine rather than compute on values: settings,
 * variables, plans, view and object definitions, DuckDB's own listings. On the
 * restricted engine they can show nothing of the lake; refused all the same, so that what
 * a session learns does not depend on where it runs. */
static int check_scalar(struct query_session *s, json_t *node, struct loch_err *err)
{
    static const char *denied[] = {"current_setting", "getvariable", "json_serialize_plan", "pg_get_viewdef",
                                   "pg_get_expr", "pg_get_constraintdef", "pg_get_indexdef",
                                   "pg_get_triggerdef", "pg_get_functiondef", "pg_get_ruledef", "pg_get_userbyid",
                                   "current_schemas", "current_database", "current_catalog", "query",
                                   "query_table", NULL};
    const char *name = json_string_value(json_object_get(node, "function_name"));
    if (!name)
        return 0;
    bool bad = !strncasecmp(name, "duckdb_", 7) || !strncasecmp(name, "pragma_", 7);
    for (int i = 0; denied[i] && !bad; i++)
        bad = !strcasecmp(name, denied[i]);
    return bad ? deny(s, err, "permission denied for function %s", name) : 0;
}

/* SET/RESET of settings a client library sends on its own. loch answers them itself (the
 * restricted engine's configuration is locked; the session stays in UTC). The statement
 * must be exactly SET [SESSION|LOCAL] name {=|TO} value, one value token. */
static bool harmless_set(const struct stmt *st)
{
    static const char *names[] = {"timezone", "datestyle", "application_name", "extra_float_digits",
                                  "client_encoding", "client_min_messages", NULL};
    bool reset = lex_is(st, 0, "RESET");
    if (!reset && !lex_is(st, 0, "SET"))
        return false;
    size_t i = 1;
    if (lex_is(st, i, "SESSION") || lex_is(st, i, "LOCAL"))
        i++;
    if (i >= st->n_tok || st->tok[i].kind != TOK_WORD)
        return false;
    for (int k = 0; names[k]; k++)
        if (lex_is(st, i, names[k])) {
            if (reset)
                return i + 1 == st->n_tok;
            if (!(lex_punct(st, i + 1, '=') || lex_is(st, i + 1, "TO")) || i + 3 != st->n_tok)
                return false;
            enum tok_kind v = st->tok[i + 2].kind;
            return v == TOK_STRING || v == TOK_WORD || v == TOK_NUMBER || v == TOK_QIDENT;
        }
    return false;
}

/* The tag of a transaction-control statement, or NULL. */
static const char *transaction_control(const struct stmt *st)
{
    static const char *words[] = {"BEGIN", "COMMIT", "END", "ROLLBACK", "ABORT", NULL};
    static const char *tags[] = {"BEGIN", "COMMIT", "COMMIT", "ROLLBACK", "ROLLBACK", NULL};
    for (int k = 0; words[k]; k++)
        if (lex_is(st, 0, words[k]) &&
            (st->n_tok == 1 || (st->n_tok == 2 && (lex_is(st, 1, "TRANSACTION") || lex_is(st, 1, "WORK")))))
            return tags[k];
    if (lex_is(st, 0, "START") && lex_is(st, 1, "TRANSACTION") && st->n_tok == 2)
        return "BEGIN";
    return NULL;
}

const char *guard_answer(const struct stmt *st)
{
    const char *tag = transaction_control(st);
    if (tag)
        return tag;
    if (harmless_set(st))
        return lex_is(st, 0, "SET") ? "SET" : "RESET";
    return NULL;
}

/* The parse tree DuckDB makes of text on c: json_serialize_sql, parsed into *out. */
static int parse_tree(struct query_session *s, struct engine_conn *c, const char *text, json_t **out,
                      struct loch_err *err)
{
    struct buf q = {0};
    buf_puts(&q, "SELECT json_serialize_sql(");
    buf_sql_str(&q, text);
    buf_puts(&q, ")");
    struct engine_rows *r;
    int rc = engine_query(c, q.data, &r, err);
    buf_free(&q);
    if (rc)
        return rc;
    *out = duck_json_parse(engine_rows_text(r, 0, 0, s->stmt_arena));
    engine_rows_free(r);
    if (!*out)
        return loch_errf(err, LOCH_EINTERNAL, "unexpected parse tree from DuckDB");
    return 0;
}

int guard_check(struct query_session *s, struct engine_conn *c, const struct stmt *st, char **sql_out,
                struct loch_err *err)
{
    json_t *root;
    int rc = parse_tree(s, c, st->text, &root, err);
    if (rc)
        return rc;
    if (json_is_true(json_object_get(root, "error"))) {
        const char *type = json_string_value(json_object_get(root, "error_type"));
        const char *msg = json_string_value(json_object_get(root, "error_message"));
        if (type && !strcmp(type, "parser"))
            rc = loch_errf(err, LOCH_ESYNTAX, "%s", msg ? msg : "syntax error");
        else
            rc = deny(s, err, "permission denied to run %s statements",
                      st->n_tok ? arena_strndup(s->stmt_arena, st->text + st->tok[0].off, st->tok[0].len)
                                : "such");
        json_decref(root);
        return rc;
    }
    json_t *stmts = json_object_get(root, "statements");
    if (!json_is_array(stmts) || json_array_size(stmts) != 1) {
        size_t n = json_is_array(stmts) ? json_array_size(stmts) : 0;
        json_decref(root);
        return loch_errf(err, LOCH_ESYNTAX, "expected one statement, found %zu", n);
    }
    struct walk w = {0};
    walk(stmts, &w);
    for (size_t i = 0; i < w.n_tables && !rc; i++)
        rc = check_table(s, &w, i, err);
    for (size_t i = 0; i < w.n_funcs && !rc; i++)
        rc = check_function(s, w.funcs[i], err);
    for (size_t i = 0; i < w.n_scalars && !rc; i++)
        rc = check_scalar(s, w.scalars[i], err);
    walk_free(&w);
    if (!rc) { /* what runs is DuckDB's own text for the tree just checked */
        char *js = duck_json_dump(root);
        struct buf q = {0};
        buf_puts(&q, "SELECT json_deserialize_sql(");
        buf_sql_str(&q, js);
        buf_puts(&q, ")");
        free(js);
        struct engine_rows *r;
        rc = engine_query(c, q.data, &r, err);
        buf_free(&q);
        if (!rc) {
            *sql_out = engine_rows_text(r, 0, 0, s->stmt_arena);
            engine_rows_free(r);
            if (!*sql_out)
                rc = loch_errf(err, LOCH_EINTERNAL, "DuckDB gave no text for a checked statement");
        }
    }
    json_decref(root);
    return rc;
}
