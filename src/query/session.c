/* session.c: a query session: runs statements, making the lake tables they name visible
 * as views first (time travel included). Not for writes (write.c) or view SQL (view.c). */
#include "query/internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "access/principal.h"
#include "base/buf.h"
#include "query/rolestmt.h"

int query_session_open(const struct query_env *env, struct query_session **out, struct loch_err *err)
{
    struct query_session *s = xcalloc(1, sizeof *s);
    s->env = *env;
    int rc = engine_connect(env->eng, &s->conn, err);
    if (rc) {
        free(s);
        return rc;
    }
    s->stmt_arena = arena_new();
    *out = s;
    return 0;
}

int query_session_open_as(const struct query_env *env, const char *user, struct query_session **out,
                          struct loch_err *err)
{
    if (!user || !*user)
        return loch_errf(err, LOCH_EINVAL, "a session needs a user name");
    struct query_session *s = xcalloc(1, sizeof *s);
    s->env = *env;
    s->user = xstrdup(user);
    s->stmt_arena = arena_new();
    /* Only an administrator's session gets a connection to the process engine, where the
     * lake's views and files are; everyone else's statements never reach it. */
    int rc = principal_is_admin(env->cat, user) ? engine_connect(env->eng, &s->conn, err) : 0;
    if (rc) {
        query_session_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

const char *query_session_user(const struct query_session *s)
{
    return s->user ? s->user : PRINCIPAL_ADMIN;
}

char *query_redact(const char *sql) { return rolestmt_redact(sql); }

static bool session_is_admin(struct query_session *s);
bool session_admin(struct query_session *s) { return session_is_admin(s); }

/* The local administrator, or a session opened by a member of admin that is still one. */
static bool session_is_admin(struct query_session *s)
{
    return s->conn && (!s->user || principal_is_admin(s->env.cat, s->user));
}

/* The restricted connection, opened on first use. */
static int restricted_conn(struct query_session *s, struct engine_conn **out, struct loch_err *err)
{
    if (!s->rconn) {
        if (!s->env.restricted) {
            loch_errf(err, LOCH_EPERM, "permission denied: no engine for sessions that are not an administrator's");
            return loch_err_hint(err, "this command runs statements of members of role admin only");
        }
        int rc = engine_connect(s->env.restricted, &s->rconn, err);
        if (rc)
            return rc;
    }
    *out = s->rconn;
    return 0;
}

void query_session_close(struct query_session *s)
{
    if (!s)
        return;
    free(s->user);
    engine_rows_free(s->last);
    engine_disconnect(s->conn);
    engine_disconnect(s->rconn);
    for (size_t i = 0; i < s->n_attached; i++)
        free(s->attached[i]);
    free(s->attached);
    arena_free(s->stmt_arena);
    buf_free(&s->prune_report);
    free(s);
}

int query_split_name(struct arena *a, const char *full, char **ns, char **name, struct loch_err *err)
{
    const char *dot = strrchr(full, '.');
    if (!dot || dot == full || !dot[1]) {
        loch_errf(err, LOCH_EINVAL, "\"%s\" is not a NAMESPACE.TABLE name", full);
        loch_err_hint(err, "lake tables are named namespace.table, e.g. core.public.loans");
        return LOCH_EINVAL; /* err may be NULL: the code must not come from it */
    }
    *ns = arena_strndup(a, full, (size_t)(dot - full));
    *name = arena_strdup(a, dot + 1);
    return 0;
}

int lake_load(struct query_session *s, const char *ns, const char *name, struct lake_table *t,
              struct loch_err *err)
{
    struct sink_table st;
    int rc = sink_table_open(s->env.cat, s->env.st, ns, name, s->stmt_arena, &st, err);
    if (!rc)
        *t = (struct lake_table){st.ns, st.name, st.location, st.md};
    return rc;
}

/* DuckDB writes "no location" as query_location 2^64-1, which jansson cannot hold in a
 * json_int_t; it travels as INT64_MAX through our JSON handling and back. */
#define DUCK_NO_LOCATION "\"query_location\":18446744073709551615"
#define OUR_NO_LOCATION "\"query_location\":9223372036854775807"

static char *replace_all(const char *s, const char *from, const char *to)
{
    struct buf b = {0};
    size_t fl = strlen(from);
    for (const char *p; (p = strstr(s, from)); s = p + fl) {
        buf_append(&b, s, (size_t)(p - s));
        buf_puts(&b, to);
    }
    buf_puts(&b, s);
    return buf_take(&b);
}

json_t *duck_json_parse(const char *text)
{
    char *fixed = replace_all(text ? text : "", DUCK_NO_LOCATION, OUR_NO_LOCATION);
    json_t *j = json_loads(fixed, 0, NULL);
    free(fixed);
    return j;
}

char *duck_json_dump(const json_t *j)
{
    char *out = json_dumps(j, JSON_COMPACT);
    char *fixed = replace_all(out, OUR_NO_LOCATION, DUCK_NO_LOCATION);
    free(out);
    return fixed;
}

/* ---- finding the lake tables a SELECT names ---- */

struct ref {
    json_t *node;      /* the BASE_TABLE object (borrowed from the parsed tree) */
    json_t *select;    /* the SELECT_NODE whose FROM is exactly this reference, or NULL */
};

/* Finds the BASE_TABLE references under j (parent: the object holding j, or NULL);
 * *deep_cols is set when a column is named with three or more parts (catalog.table.col),
 * which a renamed reference would no longer bind. */
static void collect(json_t *j, json_t *parent, struct ref **refs, size_t *n, size_t *cap, bool *deep_cols)
{
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) collect(v, NULL, refs, n, cap, deep_cols);
        return;
    }
    if (!json_is_object(j))
        return;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (type && !strcmp(type, "COLUMN_REF") && json_array_size(json_object_get(j, "column_names")) > 2)
        *deep_cols = true;
    if (type && !strcmp(type, "BASE_TABLE")) {
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 8;
            *refs = xrealloc(*refs, *cap * sizeof **refs);
        }
        const char *pt = parent ? json_string_value(json_object_get(parent, "type")) : NULL;
        bool from = pt && !strcmp(pt, "SELECT_NODE") && json_object_get(parent, "from_table") == j;
        (*refs)[(*n)++] = (struct ref){.node = j, .select = from ? parent : NULL};
    }
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) collect(v, j, refs, n, cap, deep_cols);
}

/* Points a table reference at another view, keeping the name its columns are qualified
 * with (the alias, else the table name). */
static void retarget(json_t *node, const char *cat, const char *sch, const char *view, const char *tab)
{
    const char *alias = json_string_value(json_object_get(node, "alias"));
    if (!alias || !*alias)
        json_object_set_new(node, "alias", json_string(tab));
    if (cat)
        json_object_set_new(node, "catalog_name", json_string(cat));
    if (sch)
        json_object_set_new(node, "schema_name", json_string(sch));
    json_object_set_new(node, "table_name", json_string(view));
    json_object_set_new(node, "at_clause", json_null());
}

static void human_bytes(struct buf *b, int64_t n)
{
    static const char *unit[] = {"B", "KB", "MB", "GB", "TB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    buf_printf(b, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

/* EXPLAIN's line for one table reference (README.md, "Pruning"). */
static void report(struct query_session *s, const char *ns, const char *tab, int64_t snap,
                   const struct iceberg_prune_stats *ps)
{
    struct buf *b = &s->prune_report;
    buf_printf(b, "lake table %s.%s", ns, tab);
    if (snap >= 0)
        buf_printf(b, " at snapshot %lld", (long long)snap);
    buf_printf(b, ": %zu of %zu data files (", ps->n_data_after, ps->n_data_before);
    human_bytes(b, ps->data_bytes_after);
    buf_puts(b, " of ");
    human_bytes(b, ps->data_bytes_before);
    buf_printf(b, "), %zu of %zu delete files\n", ps->n_deletes_after, ps->n_deletes_before);
}

/* Makes a pruned view of reference r when its SELECT's WHERE filters the table's files;
 * *done is false when there is no such filter (the shared view serves). */
static int pruned_view(struct query_session *s, const struct ref *r, struct lake_table *t, struct plan_entry *pe,
                       int64_t snap, bool *done, struct loch_err *err)
{
    *done = false;
    const struct iceberg_snapshot *sn = snap >= 0 ? iceberg_metadata_snapshot(t->md, snap) : NULL;
    const struct iceberg_schema *sc = sn && sn->schema_id >= 0 ? iceberg_metadata_schema(t->md, sn->schema_id) : NULL;
    if (!sc)
        sc = iceberg_metadata_current_schema(t->md);
    struct iceberg_expr *filter = sc ? query_predicates(s, r->select, r->node, sc) : NULL;
    if (!filter)
        return 0;
    uint64_t seq = s->prune_seq++;
    if (seq >= 256) { /* views of statements long gone; a prepared statement that old fails, never reads wrong */
        char *drop = arena_printf(s->stmt_arena, "DROP VIEW IF EXISTS temp.main.__loch_prune_%llu",
                                  (unsigned long long)(seq - 256));
        struct loch_err e2;
        engine_exec(s->conn, drop, &e2);
    }
    char *name = arena_printf(s->stmt_arena, "__loch_prune_%llu", (unsigned long long)seq);
    struct iceberg_prune_stats ps;
    struct iceberg_scan *plan;
    int rc = lake_plan_scan(s, pe, snap, &plan, err);
    if (rc)
        return loch_err_prefix(err, "planning a scan of %s.%s", t->ns, t->name);
    rc = lake_view_pruned(s, t, snap, filter, name, plan, &ps, err);
    if (rc)
        return rc;
    report(s, t->ns, t->name, snap, &ps);
    retarget(r->node, "temp", "main", name, t->name);
    *done = true;
    return 0;
}

/* Evaluates a serialised expression with DuckDB: "SELECT 1" is serialised, its select
 * list replaced by expr, and the result deserialised back to SQL text and run. */
static int eval_expr(struct query_session *s, json_t *expr, bool as_epoch_ms, struct engine_rows **out,
                     struct loch_err *err)
{
    struct arena *a = s->stmt_arena;
    struct engine_rows *r;
    int rc = engine_query(s->conn, "SELECT json_serialize_sql('SELECT 1')", &r, err);
    if (rc)
        return rc;
    json_t *root = duck_json_parse(engine_rows_text(r, 0, 0, a));
    engine_rows_free(r);
    json_t *list = json_object_get(json_object_get(json_array_get(json_object_get(root, "statements"), 0), "node"),
                                   "select_list");
    if (!json_is_array(list)) {
        json_decref(root);
        return loch_errf(err, LOCH_EINTERNAL, "unexpected parse tree from DuckDB");
    }
    json_array_set(list, 0, expr);
    char *js = duck_json_dump(root);
    json_decref(root);
    struct buf q = {0};
    buf_puts(&q, "SELECT json_deserialize_sql(");
    buf_sql_str(&q, js);
    buf_puts(&q, ")");
    free(js);
    rc = engine_query(s->conn, q.data, &r, err);
    buf_free(&q);
    if (rc)
        return rc;
    char *sel = engine_rows_text(r, 0, 0, a);
    engine_rows_free(r);
    char *sql = as_epoch_ms ? arena_printf(a, "SELECT epoch_ms(CAST((%s) AS TIMESTAMPTZ))", sel ? sel : "NULL")
                            : arena_printf(a, "SELECT CAST((%s) AS BIGINT)", sel ? sel : "NULL");
    return engine_query(s->conn, sql, out, err);
}

/* The snapshot an AT clause selects: VERSION => id, or TIMESTAMP => the snapshot that
 * was current at that time (from the snapshot log). */
static int at_snapshot(struct query_session *s, json_t *at, const struct lake_table *t, int64_t *out,
                       struct loch_err *err)
{
    const char *unit = json_string_value(json_object_get(at, "unit"));
    bool version = unit && !strcasecmp(unit, "VERSION");
    struct engine_rows *r;
    int rc = eval_expr(s, json_object_get(at, "expr"), !version, &r, err);
    if (rc)
        return loch_err_prefix(err, "evaluating AT (%s => ...)", unit ? unit : "?");
    bool null = engine_rows_null(r, 0, 0);
    *out = engine_rows_int(r, 0, 0);
    engine_rows_free(r);
    if (null)
        return loch_errf(err, LOCH_EINVAL, "AT (%s => ...) evaluated to NULL", unit ? unit : "?");
    if (version) {
        if (!iceberg_metadata_snapshot(t->md, *out)) {
            loch_errf(err, LOCH_ENOENT, "table %s.%s has no snapshot %lld", t->ns, t->name, (long long)*out);
            return loch_err_hint(err, "list snapshots with: loch history %s.%s", t->ns, t->name);
        }
        return 0;
    }
    int64_t ts = *out, best = -1;
    for (size_t i = 0; i < t->md->n_snapshot_log; i++)
        if (t->md->snapshot_log[i].timestamp_ms <= ts)
            best = t->md->snapshot_log[i].snapshot_id;
    if (best < 0) {
        loch_errf(err, LOCH_ENOENT, "table %s.%s had no snapshot at that time", t->ns, t->name);
        return loch_err_hint(err, "list snapshots with: loch history %s.%s", t->ns, t->name);
    }
    *out = best;
    return 0;
}

static bool is_duckdb_schema(const char *s)
{
    static const char *own[] = {"main", "temp", "information_schema", "pg_catalog", "memory", "system", NULL};
    for (int i = 0; own[i]; i++)
        if (!strcasecmp(s, own[i]))
            return true;
    return false;
}

/* Resolves every lake table a SELECT names, creates their views, and rewrites AT
 * clauses into snapshot views. *rewritten is NULL when the text can run as is. */
static int prepare_select(struct query_session *s, const char *sql, bool *is_select, char **rewritten,
                          struct loch_err *err)
{
    struct arena *a = s->stmt_arena;
    *rewritten = NULL;
    *is_select = false;
    struct buf q = {0};
    buf_puts(&q, "SELECT json_serialize_sql(");
    buf_sql_str(&q, sql);
    buf_puts(&q, ")");
    struct engine_rows *r;
    int rc = engine_query(s->conn, q.data, &r, err);
    buf_free(&q);
    if (rc)
        return rc;
    char *js = engine_rows_text(r, 0, 0, a);
    engine_rows_free(r);
    json_t *root = duck_json_parse(js);
    if (!root || json_is_true(json_object_get(root, "error"))) {
        json_decref(root);
        return 0; /* not a SELECT (or a syntax error DuckDB will report itself) */
    }
    *is_select = true;
    struct ref *refs = NULL;
    size_t n = 0, cap = 0;
    bool deep_cols = false;
    collect(json_object_get(root, "statements"), NULL, &refs, &n, &cap, &deep_cols);
    bool changed = false;
    for (size_t i = 0; i < n && !rc; i++) {
        json_t *node = refs[i].node;
        const char *cat = json_string_value(json_object_get(node, "catalog_name"));
        const char *sch = json_string_value(json_object_get(node, "schema_name"));
        const char *tab = json_string_value(json_object_get(node, "table_name"));
        tab = tab ? arena_strdup(a, tab) : NULL; /* retarget replaces the node's string */
        if (!tab || !sch || !*sch)
            continue; /* unqualified: a CTE or a DuckDB object, not a lake table */
        char *ns = (cat && *cat) ? arena_printf(a, "%s.%s", cat, sch) : arena_strdup(a, sch);
        struct catalog_table ct;
        struct loch_err e2;
        if (catalog_load_table(s->env.cat, ns, tab, a, &ct, &e2) != 0) {
            if (!(cat && *cat) && is_duckdb_schema(sch))
                continue; /* DuckDB's own objects (information_schema.tables, ...) */
            loch_errf(err, LOCH_ENOENT, "table %s.%s does not exist", ns, tab);
            loch_err_hint(err, "list tables with: loch tables");
            rc = LOCH_ENOENT;
            break;
        }
        json_t *at = json_object_get(node, "at_clause");
        bool has_at = at && !json_is_null(at);
        json_t *where = refs[i].select ? json_object_get(refs[i].select, "where_clause") : NULL;
        bool may_prune = !s->no_prune && where && !json_is_null(where) && !deep_cols;
        struct iceberg_prune_stats ps = {0};
        if (!has_at && !may_prune && lake_view_fresh(s, ns, tab, ct.metadata_location, &ps)) {
            if (s->scanned >= 0)
                s->scanned += ps.data_bytes_after + ps.delete_bytes_after;
            report(s, ns, tab, -1, &ps);
            continue; /* the view already reads the current snapshot */
        }
        /* metadata through the plan cache: a pruned read plans from it too */
        struct lake_table t;
        struct plan_entry *pe = NULL;
        rc = lake_plan_table(s, ns, tab, ct.metadata_location, &t, &pe, err);
        if (rc)
            break;
        int64_t snap = -1;
        bool done = false;
        if (has_at)
            rc = at_snapshot(s, at, &t, &snap, err);
        if (!rc && may_prune)
            rc = pruned_view(s, &refs[i], &t, pe, snap, &done, err);
        if (rc) {
            lake_plan_release(pe);
            break;
        }
        if (done) {
            changed = true;
        } else if (has_at) {
            char *vname = arena_printf(a, "%s@%lld", tab, (long long)snap);
            rc = lake_view(s, &t, snap, vname, false, &ps, err);
            retarget(node, NULL, NULL, vname, tab);
            changed = true;
            if (!rc)
                report(s, ns, tab, snap, &ps);
        } else if (lake_view_fresh(s, ns, tab, ct.metadata_location, &ps)) {
            if (s->scanned >= 0)
                s->scanned += ps.data_bytes_after + ps.delete_bytes_after;
            report(s, ns, tab, -1, &ps);
        } else {
            rc = lake_view(s, &t, -1, tab, false, &ps, err);
            if (!rc)
                report(s, ns, tab, -1, &ps);
        }
        lake_plan_release(pe);
    }
    free(refs);
    if (!rc && changed) {
        char *out = duck_json_dump(root);
        struct buf d = {0};
        buf_puts(&d, "SELECT json_deserialize_sql(");
        buf_sql_str(&d, out);
        buf_puts(&d, ")");
        free(out);
        rc = engine_query(s->conn, d.data, &r, err);
        buf_free(&d);
        if (!rc) {
            *rewritten = engine_rows_text(r, 0, 0, a);
            engine_rows_free(r);
        }
    }
    json_decref(root);
    return rc;
}

/* EXPLAIN [ANALYZE] of a SELECT: a row ("lake_pruning", line) per lake table reference
 * (files and bytes before and after pruning), then DuckDB's plan of the statement as it
 * runs over the pruned views. *sql_out is the text that gives that result, or NULL when
 * st is no such EXPLAIN (then it runs as it is). */
static int explain_select(struct query_session *s, const struct stmt *st, char **sql_out, struct loch_err *err)
{
    *sql_out = NULL;
    if (!lex_is(st, 0, "EXPLAIN"))
        return 0;
    size_t k = lex_is(st, 1, "ANALYZE") || lex_is(st, 1, "ANALYSE") ? 2 : 1;
    if (lex_punct(st, k, '('))
        return 0; /* EXPLAIN (options): DuckDB's own, over the whole tables */
    bool is_select;
    char *rewritten;
    buf_reset(&s->prune_report);
    const char *inner = lex_rest(st, k);
    int rc = prepare_select(s, inner, &is_select, &rewritten, err);
    if (rc || !is_select)
        return rc;
    char *plan_sql = arena_printf(s->stmt_arena, "EXPLAIN %s%s", k == 2 ? "ANALYZE " : "", rewritten ? rewritten : inner);
    struct engine_rows *r;
    rc = engine_query(s->conn, plan_sql, &r, err);
    if (rc)
        return rc;
    struct buf q = {0};
    buf_puts(&q, "SELECT * FROM (VALUES ");
    bool first = true;
    const char *line = s->prune_report.data ? s->prune_report.data : "";
    for (const char *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        buf_puts(&q, first ? "('lake_pruning', " : ", ('lake_pruning', ");
        buf_sql_str(&q, arena_strndup(s->stmt_arena, line, (size_t)(nl - line)));
        buf_putc(&q, ')');
        first = false;
    }
    for (size_t i = 0; i < engine_rows_count(r) && engine_rows_ncols(r) >= 2; i++) {
        buf_puts(&q, first ? "(" : ", (");
        buf_sql_str(&q, engine_rows_text(r, 0, i, s->stmt_arena));
        buf_puts(&q, ", ");
        buf_sql_str(&q, engine_rows_text(r, 1, i, s->stmt_arena));
        buf_putc(&q, ')');
        first = false;
    }
    engine_rows_free(r);
    buf_puts(&q, first ? "('lake_pruning', '')) AS e(explain_key, explain_value)" : ") AS e(explain_key, explain_value)");
    *sql_out = arena_strdup(s->stmt_arena, q.data);
    buf_free(&q);
    return 0;
}

static const char *select_tag(struct arena *a, struct engine_rows *r)
{
    return arena_printf(a, "SELECT %zu", engine_rows_count(r));
}

/* Row masks (position deletes as bitmaps) are shared by all sessions and reused while a
 * table state lasts; past this much memory, those unused for MASK_IDLE_MS go. */
#define MASK_BUDGET ((size_t)256 << 20)
#define MASK_IDLE_MS (15 * 60 * 1000)

/* A statement of a session that is not an administrator's: answered by loch (transaction
 * control, client SETs), or checked and run on the restricted connection as DuckDB's own
 * text of the checked tree. */
static int restricted_statement(struct query_session *s, const struct stmt *st, struct query_result *res,
                                struct loch_err *err)
{
    const char *tag = guard_answer(st);
    if (tag) {
        res->tag = tag;
        return 0;
    }
    struct engine_conn *c;
    char *sql;
    int rc = restricted_conn(s, &c, err);
    if (!rc)
        rc = guard_check(s, c, st, &sql, err);
    if (!rc)
        rc = engine_query_text(c, sql, &s->last, err);
    if (rc)
        return rc;
    res->rows = s->last;
    res->tag = select_tag(s->stmt_arena, s->last);
    return 0;
}

int query_run(struct query_session *s, const char *sql, query_emit_fn emit, void *ctx, struct loch_err *err)
{
    struct arena *script = arena_new(); /* lifetime: this call */
    struct stmt *stmts;
    size_t n, bad;
    if (lex_split(script, sql, &stmts, &n, &bad) != 0) {
        arena_free(script);
        return loch_errf(err, LOCH_ESYNTAX, "unterminated quoted string or comment at position %zu", bad + 1);
    }
    int rc = 0;
    size_t i;
    s->scanned = 0;
    for (i = 0; i < n && !rc; i++) {
        arena_reset(s->stmt_arena);
        engine_rows_free(s->last);
        s->last = NULL;
        if (s->conn)
            engine_masks_trim(s->conn, MASK_BUDGET, MASK_IDLE_MS);
        const struct stmt *st = &stmts[i];
        struct query_result res = {0};
        bool handled = false, admin = session_is_admin(s);
        struct role_stmt role;
        rc = rolestmt_parse(s->stmt_arena, st, &role, &handled, err);
        /* Anyone may change their own password (psql's \password), nothing else. */
        bool own_password = handled && role.op == ROLE_ALTER && s->user && role.n_names == 1 &&
                            !strcmp(role.names[0], s->user) && role.set_password && role.password &&
                            role.login < 0;
        if (!rc && handled && !admin && !own_password) {
            loch_errf(err, LOCH_EPERM, "permission denied to %s", lex_is(st, 0, "GRANT") || lex_is(st, 0, "REVOKE")
                                                                     ? "grant or revoke roles"
                                                                     : "create, alter or drop roles");
            rc = loch_err_hint(err, "only members of role admin manage users and roles");
        }
        if (!rc && handled)
            rc = rolestmt_exec(s->env.cat, &role, &res.tag, err);
        if (rc)
            break;
        if (!handled && !admin) {
            rc = restricted_statement(s, st, &res, err);
            if (rc)
                break;
            handled = true;
        }
        if (!handled)
            rc = query_paths_check(s, st->text, err); /* administrators: files stay in the lake */
        if (!rc && !handled)
            rc = write_try(s, st, &handled, &res.tag, err);
        if (rc)
            break;
        char *explained = NULL;
        if (!handled && (rc = explain_select(s, st, &explained, err)) != 0)
            break;
        if (explained) {
            rc = engine_query_text(s->conn, explained, &s->last, err);
            if (rc)
                break;
            res.rows = s->last;
            res.tag = select_tag(s->stmt_arena, s->last);
        } else if (!handled) {
            bool is_select;
            char *rewritten;
            buf_reset(&s->prune_report);
            rc = prepare_select(s, st->text, &is_select, &rewritten, err);
            if (!rc && !is_select)
                rc = lake_view_all(s, err);
            if (rc)
                break;
            rc = engine_query_text(s->conn, rewritten ? rewritten : st->text, &s->last, err);
            if (rc)
                break;
            res.rows = s->last;
            res.tag = select_tag(s->stmt_arena, s->last);
        }
        if (emit)
            rc = emit(ctx, &res);
        if (rc)
            break;
    }
    if (rc && n > 1 && err && !err->detail[0])
        loch_err_detail(err, "statement %zu of %zu failed; the ones before it took effect", i + 1, n);
    arena_free(script);
    return rc;
}

int query_split(struct arena *a, const char *sql, struct query_piece **out, size_t *n_out, struct loch_err *err)
{
    struct stmt *stmts;
    size_t n, bad;
    if (lex_split(a, sql, &stmts, &n, &bad) != 0)
        return loch_errf(err, LOCH_ESYNTAX, "unterminated quoted string or comment at position %zu", bad + 1);
    struct query_piece *p = arena_alloc(a, (n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        p[i].text = stmts[i].text;
        p[i].off = stmts[i].off;
    }
    *out = p;
    *n_out = n;
    return 0;
}

bool query_is_read(const char *sql)
{
    static const char *kw[] = {"SELECT", "WITH", "VALUES", "TABLE", "FROM", "SHOW", "DESCRIBE", "EXPLAIN",
                               "SUMMARIZE", "PIVOT", "UNPIVOT", "PRAGMA", "CALL", NULL};
    struct arena *a = arena_new();
    struct stmt *st;
    size_t n, bad;
    bool yes = false;
    /* the lexer's tokens skip comments (nested ones included) */
    if (lex_split(a, sql, &st, &n, &bad) == 0 && n >= 1 && st[0].n_tok >= 1) {
        yes = lex_punct(&st[0], 0, '(');
        for (int i = 0; kw[i] && !yes; i++)
            yes = lex_is(&st[0], 0, kw[i]);
    }
    arena_free(a);
    return yes;
}

int query_prepare(struct query_session *s, const char *sql, struct engine_stmt **out, struct loch_err *err)
{
    arena_reset(s->stmt_arena);
    s->scanned = 0;
    engine_rows_free(s->last);
    s->last = NULL;
    if (!session_is_admin(s) && query_is_catalog(sql)) {
        /* DuckDB's catalog lists the lake views every session of the process made: not
         * for principals who may read no lake table (servers answer such queries empty). */
        loch_errf(err, LOCH_EPERM, "permission denied to read the catalog");
        return loch_err_hint(err, "until grants exist, only members of role admin see the lake's tables");
    }
    if (!session_is_admin(s)) { /* deny by default: the guard decides, on the restricted engine */
        struct stmt *stmts;
        size_t n, bad;
        if (lex_split(s->stmt_arena, sql, &stmts, &n, &bad) != 0)
            return loch_errf(err, LOCH_ESYNTAX, "unterminated quoted string or comment at position %zu", bad + 1);
        if (n != 1)
            return loch_errf(err, LOCH_ESYNTAX, "expected one statement, found %zu", n);
        struct engine_conn *c;
        char *checked;
        int rc = restricted_conn(s, &c, err);
        if (!rc)
            rc = guard_check(s, c, &stmts[0], &checked, err);
        return rc ? rc : engine_prepare(c, checked, out, err);
    }
    engine_masks_trim(s->conn, MASK_BUDGET, MASK_IDLE_MS);
    bool is_select;
    char *rewritten;
    int rc = query_paths_check(s, sql, err); /* administrators: files stay in the lake */
    struct stmt *stmts;
    size_t n_st, bad;
    char *explained = NULL;
    if (!rc && lex_split(s->stmt_arena, sql, &stmts, &n_st, &bad) == 0 && n_st == 1)
        rc = explain_select(s, &stmts[0], &explained, err);
    if (!rc && explained)
        return engine_prepare(s->conn, explained, out, err);
    buf_reset(&s->prune_report);
    if (!rc)
        rc = prepare_select(s, sql, &is_select, &rewritten, err);
    if (!rc && !is_select)
        rc = lake_view_all(s, err);
    if (rc)
        return rc;
    return engine_prepare(s->conn, rewritten ? rewritten : sql, out, err);
}

void query_set_pruning(struct query_session *s, bool on) { s->no_prune = !on; }

int query_refresh(struct query_session *s, const char *sql, struct loch_err *err)
{
    if (!session_is_admin(s))
        return 0;
    arena_reset(s->stmt_arena);
    bool no_prune = s->no_prune, is_select;
    char *rewritten;
    s->no_prune = true;
    int rc = prepare_select(s, sql, &is_select, &rewritten, err);
    s->no_prune = no_prune;
    return rc;
}

void query_interrupt(struct query_session *s)
{
    if (s->conn)
        engine_interrupt(s->conn);
    if (s->rconn)
        engine_interrupt(s->rconn);
}

int64_t query_scanned_bytes(const struct query_session *s) { return s->scanned; }
