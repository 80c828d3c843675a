/* write.c: write statements on lake tables, each one Iceberg commit:
 *   CREATE TABLE ns.t (cols, PRIMARY KEY (...)) | CREATE TABLE ns.t AS query
 *   INSERT INTO ns.t ...          -> a new data file (append)
 *   DELETE FROM ns.t [WHERE ...]  -> a position-delete file
 *   UPDATE ns.t SET ... [WHERE]   -> position deletes + a data file of new row versions
 *   ALTER TABLE ns.t ADD|DROP|RENAME COLUMN, ALTER COLUMN .. TYPE -> schema evolution
 *   ALTER TABLE ns.t WRITE ORDERED BY c [, ...] | WRITE UNORDERED -> the sort order
 *   DROP TABLE ns.t
 * DuckDB does the parsing that matters: column definitions, INSERT bodies and
 * expressions run inside DuckDB against stand-in tables; this file only finds the
 * statement kind and its target. Not for reads (session.c, view.c). */
#include "query/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "sink/sink.h"

/* Splits a dotted name into namespace + table when it names a lake table (has a dot). */
static bool lake_name(struct arena *a, const char *full, char **ns, char **name)
{
    struct loch_err e;
    return strchr(full, '.') && query_split_name(a, full, ns, name, &e) == 0;
}

/* For the statements that make or remove a lake table's name: a dotted name that does
 * not split into namespace and table (core."..": "core...") is refused as a name rather
 * than handed to DuckDB as one of its own tables. */
static int bad_lake_name(const char *full, bool *handled, struct loch_err *err)
{
    if (!strchr(full, '.'))
        return 0;
    *handled = true;
    loch_errf(err, LOCH_ENAME, "invalid table name %s: it does not split into namespace and table", full);
    return loch_err_hint(err, "lake tables are named namespace.table, e.g. core.public.loans; names may not "
                              "contain \".\"");
}

/* Commits one table's change under its writer lock. */
static int commit_one(struct query_session *s, struct lake_table *t, struct iceberg_change *ch, struct loch_err *err)
{
    struct sink_table_change tc = {t->ns, t->name, t->location, ch};
    return sink_commit(s->env.cat, s->env.st, &tc, 1, NULL, 0, s->stmt_arena, err);
}

/* Loads a lake table under its writer lock (*fd); the caller unlocks. */
static int lock_load(struct query_session *s, const char *ns, const char *name, struct lake_table *t, int *fd,
                     struct loch_err *err)
{
    struct sink_table st;
    int rc = sink_table_open_locked(s->env.cat, s->env.st, s->env.state_dir, ns, name, s->stmt_arena, &st, err);
    *fd = st.lock_fd;
    if (!rc)
        *t = (struct lake_table){st.ns, st.name, st.location, st.md};
    return rc;
}

/* DuckDB's canonical spelling of a SQL type text, mapped to an Iceberg type. */
static int parse_type(struct query_session *s, const char *text, const char *column, struct iceberg_type *out,
                      struct loch_err *err)
{
    char *sql = arena_printf(s->stmt_arena, "SELECT CAST(NULL AS %s)", text);
    struct engine_rows *r;
    int rc = engine_query(s->conn, sql, &r, err);
    if (rc)
        return loch_err_prefix(err, "type \"%s\" of column \"%s\"", text, column);
    char *duck = engine_rows_type(r, 0, s->stmt_arena);
    engine_rows_free(r);
    return sink_type_from_duckdb(duck, column, out, err);
}

static char *drop_semicolon_rest(struct arena *a, const char *rest)
{
    char *r = arena_strdup(a, rest);
    size_t n = strlen(r);
    while (n && (r[n - 1] == ' ' || r[n - 1] == '\n' || r[n - 1] == '\t'))
        r[--n] = '\0';
    return r;
}

/* ---- CREATE TABLE ---- */

static int create_table(struct query_session *s, const char *ns, const char *name, struct iceberg_schema *schema,
                        const char *as_query, bool if_not_exists, const char **tag, struct loch_err *err)
{
    struct arena *a = s->stmt_arena;
    int fd;
    int rc = sink_lock(s->env.state_dir, ns, name, &fd, err); /* checks the names first */
    if (rc)
        return rc;
    struct sink_first_rows rows = {s->conn, as_query};
    int64_t n_rows = 0;
    rc = sink_table_create(s->env.cat, s->env.st, ns, name, schema, as_query ? &rows : NULL, a, &n_rows, err);
    if (rc == LOCH_EEXIST && if_not_exists) {
        loch_err_clear(err);
        rc = 0;
        as_query = NULL; /* nothing written: the tag of a bare CREATE */
    }
    *tag = as_query ? arena_printf(a, "SELECT %lld", (long long)n_rows) : "CREATE TABLE";
    sink_unlock(fd);
    return rc;
}

/* CREATE TABLE ns.t (...): DuckDB parses the definitions into a stand-in temp table;
 * its columns and PRIMARY KEY become the Iceberg schema and identifier fields. */
static int schema_from_ddl(struct query_session *s, const char *defs, struct iceberg_schema **out,
                           struct loch_err *err)
{
    struct arena *a = s->stmt_arena;
    engine_exec(s->conn, "DROP TABLE IF EXISTS temp.__loch_ddl", NULL);
    int rc = engine_exec(s->conn, arena_printf(a, "CREATE TEMP TABLE __loch_ddl %s", defs), err);
    if (rc)
        return rc;
    rc = sink_schema_of_query(s->conn, "SELECT * FROM temp.__loch_ddl", a, out, err);
    struct engine_rows *r = NULL;
    if (!rc)
        rc = engine_query(s->conn,
                          "SELECT unnest(constraint_column_names) FROM duckdb_constraints() WHERE "
                          "table_name = '__loch_ddl' AND constraint_type = 'PRIMARY KEY'",
                          &r, err);
    if (!rc) {
        size_t n = engine_rows_count(r);
        (*out)->identifier_ids = arena_alloc(a, (n ? n : 1) * sizeof(int));
        for (size_t i = 0; i < n; i++) {
            const char *col = engine_rows_text(r, 0, i, a);
            for (size_t j = 0; j < (*out)->n_fields; j++)
                if (!strcmp((*out)->fields[j].name, col)) {
                    (*out)->fields[j].required = true;
                    (*out)->identifier_ids[(*out)->n_identifier_ids++] = (*out)->fields[j].id;
                }
        }
        engine_rows_free(r);
    }
    engine_exec(s->conn, "DROP TABLE IF EXISTS temp.__loch_ddl", NULL);
    return rc;
}

static int do_create(struct query_session *s, const struct stmt *st, bool *handled, const char **tag,
                     struct loch_err *err)
{
    struct arena *a = s->stmt_arena;
    size_t i = 2;
    bool ine = false;
    if (lex_is(st, i, "IF") && lex_is(st, i + 1, "NOT") && lex_is(st, i + 2, "EXISTS")) {
        ine = true;
        i += 3;
    }
    char *full = lex_name(a, st, &i), *ns, *name;
    if (!full || !lake_name(a, full, &ns, &name))
        return full ? bad_lake_name(full, handled, err) : 0;
    *handled = true;
    /* a name is checked before any path or object is made of it */
    int rc0 = catalog_check_name(ns, name, err);
    if (rc0)
        return loch_err_prefix(err, "cannot create table");
    struct iceberg_schema *schema;
    int rc;
    if (lex_is(st, i, "AS")) {
        const char *q = drop_semicolon_rest(a, lex_rest(st, i + 1));
        rc = lake_view_all(s, err);
        if (!rc)
            rc = sink_schema_of_query(s->conn, q, a, &schema, err);
        if (!rc)
            rc = create_table(s, ns, name, schema, q, ine, tag, err);
        return rc;
    }
    if (!lex_punct(st, i, '('))
        return loch_errf(err, LOCH_ESYNTAX, "expected \"(\" or AS after CREATE TABLE %s", full);
    rc = schema_from_ddl(s, lex_rest(st, i), &schema, err);
    if (!rc)
        rc = create_table(s, ns, name, schema, NULL, ine, tag, err);
    return rc;
}

/* ---- INSERT ---- */

/* The DuckDB column list of schema: "a" BIGINT, "b" VARCHAR ... */
static void column_defs(struct buf *b, const struct iceberg_schema *sc)
{
    for (size_t i = 0; i < sc->n_fields; i++) {
        char duck[64];
        iceberg_type_duckdb(&sc->fields[i].type, duck, sizeof duck);
        if (i)
            buf_puts(b, ", ");
        buf_sql_ident(b, sc->fields[i].name);
        buf_printf(b, " %s", duck);
    }
}

static int do_insert(struct query_session *s, const struct stmt *st, bool *handled, const char **tag,
                     struct loch_err *err)
{
    struct arena *a = s->stmt_arena;
    size_t i = 2, name_start = 2;
    char *full = lex_name(a, st, &i), *ns, *name;
    if (!full || !lake_name(a, full, &ns, &name))
        return 0;
    if (!sink_table_exists(s->env.cat, ns, name, a))
        return 0; /* not a lake table: DuckDB reports it */
    *handled = true;
    struct lake_table t;
    int fd;
    int rc = lake_view_all(s, err);
    if (rc)
        return rc;
    rc = lock_load(s, ns, name, &t, &fd, err);
    if (rc)
        return rc;
    const struct iceberg_schema *sc = iceberg_metadata_current_schema(t.md);
    struct buf q = {0};
    engine_exec(s->conn, "DROP TABLE IF EXISTS temp.__loch_ins", NULL);
    buf_puts(&q, "CREATE TEMP TABLE __loch_ins (");
    column_defs(&q, sc);
    buf_puts(&q, ")");
    rc = engine_exec(s->conn, q.data, err);
    buf_reset(&q);
    if (!rc) {
        /* The user's INSERT, aimed at the stand-in table. */
        buf_append(&q, st->text, st->tok[name_start].off);
        buf_puts(&q, "temp.__loch_ins ");
        buf_puts(&q, lex_rest(st, i));
        rc = engine_exec(s->conn, q.data, err);
    }
    buf_free(&q);
    struct iceberg_data_file f;
    if (!rc)
        rc = sink_write_data(s->conn, s->env.st, t.md, "SELECT * FROM temp.__loch_ins", a, &f, err);
    if (!rc && f.record_count > 0) {
        struct iceberg_change *ch = iceberg_change_begin(a, t.md, t.location);
        iceberg_change_add_file(ch, &f);
        rc = commit_one(s, &t, ch, err);
    }
    engine_exec(s->conn, "DROP TABLE IF EXISTS temp.__loch_ins", NULL);
    sink_unlock(fd);
    if (!rc)
        *tag = arena_printf(a, "INSERT 0 %lld", (long long)f.record_count);
    return rc;
}

/* ---- DELETE and UPDATE ---- */

/* Reads "[AS] alias" at *i when present. */
static const char *alias_at(struct arena *a, const struct stmt *st, size_t *i, const char *dflt)
{
    static const char *stop[] = {"WHERE", "SET", "USING", "RETURNING", NULL};
    size_t j = *i;
    if (lex_is(st, j, "AS"))
        j++;
    if (j < st->n_tok && (st->tok[j].kind == TOK_WORD || st->tok[j].kind == TOK_QIDENT)) {
        for (int k = 0; stop[k]; k++)
            if (lex_is(st, j, stop[k]))
                return dflt;
        *i = j + 1;
        return lex_ident(a, st, j);
    }
    return dflt;
}

/* UPDATE's SET list from token *i on: "a = expr, b = expr" split at top-level commas into
 * repl ("(expr) AS a, (expr) AS b", for SELECT * REPLACE) and the column names (in a).
 * *i ends at WHERE or the end. LOCH_ESYNTAX / LOCH_EUNSUPPORTED (FROM, RETURNING) naming
 * the table full. */
static int parse_set_list(struct arena *a, const struct stmt *st, size_t *ip, const char *full, struct buf *repl,
                          char ***cols_out, size_t *n_out, struct loch_err *err)
{
    size_t i = *ip, n_set = 0;
    if (!lex_is(st, i, "SET"))
        return loch_errf(err, LOCH_ESYNTAX, "expected SET after UPDATE %s", full);
    i++;
    char **set_cols = arena_alloc(a, st->n_tok * sizeof *set_cols);
    while (i < st->n_tok && !lex_is(st, i, "WHERE")) {
        size_t c = i;
        if (st->tok[c].kind != TOK_WORD && st->tok[c].kind != TOK_QIDENT)
            return loch_errf(err, LOCH_ESYNTAX, "expected a column name in SET of UPDATE %s", full);
        if (lex_is(st, c, "FROM"))
            return loch_errf(err, LOCH_EUNSUPPORTED, "UPDATE ... FROM is not supported on lake tables");
        char *col = lex_ident(a, st, c);
        if (!lex_punct(st, c + 1, '='))
            return loch_errf(err, LOCH_ESYNTAX, "expected \"=\" after column \"%s\" in UPDATE %s", col, full);
        size_t e = c + 2, depth = 0;
        while (e < st->n_tok) {
            if (lex_punct(st, e, '('))
                depth++;
            else if (lex_punct(st, e, ')'))
                depth--;
            else if (depth == 0 && (lex_punct(st, e, ',') || lex_is(st, e, "WHERE") || lex_is(st, e, "FROM") ||
                                    lex_is(st, e, "RETURNING")))
                break;
            e++;
        }
        if (e == c + 2)
            return loch_errf(err, LOCH_ESYNTAX, "missing value for column \"%s\" in UPDATE %s", col, full);
        size_t from = st->tok[c + 2].off, to = st->tok[e - 1].off + st->tok[e - 1].len;
        buf_printf(repl, "%s(", n_set ? ", " : "");
        buf_append(repl, st->text + from, to - from);
        buf_printf(repl, ") AS %s", arena_sql_ident(a, col));
        set_cols[n_set++] = col;
        i = e;
        if (lex_punct(st, i, ','))
            i++;
        else if (lex_is(st, i, "FROM") || lex_is(st, i, "RETURNING"))
            return loch_errf(err, LOCH_EUNSUPPORTED, "UPDATE ... %s is not supported on lake tables",
                             lex_is(st, i, "FROM") ? "FROM" : "RETURNING");
    }
    *ip = i;
    *cols_out = set_cols;
    *n_out = n_set;
    return 0;
}

static int do_delete_update(struct query_session *s, const struct stmt *st, bool update, bool *handled,
                            const char **tag, struct loch_err *err)
{
    struct arena *a = s->stmt_arena;
    size_t i = update ? 1 : 2;
    char *full = lex_name(a, st, &i), *ns, *name;
    if (!full || !lake_name(a, full, &ns, &name))
        return 0;
    if (!sink_table_exists(s->env.cat, ns, name, a))
        return 0;
    *handled = true;
    const char *alias = alias_at(a, st, &i, name);
    /* UPDATE: SET a = expr, b = expr (split at top-level commas) */
    struct buf repl = {0};
    size_t n_set = 0;
    char **set_cols = NULL;
    if (update) {
        int src = parse_set_list(a, st, &i, full, &repl, &set_cols, &n_set, err);
        if (src) {
            buf_free(&repl);
            return src;
        }
    }
    const char *where = "";
    if (lex_is(st, i, "WHERE"))
        where = drop_semicolon_rest(a, lex_rest(st, i));
    else if (i < st->n_tok) {
        buf_free(&repl);
        return loch_errf(err, LOCH_EUNSUPPORTED, "%s ... %.*s is not supported on lake tables",
                         update ? "UPDATE" : "DELETE", (int)st->tok[i].len, st->text + st->tok[i].off);
    }
    int rc = lake_view_all(s, err);
    struct lake_table t;
    int fd = -1;
    if (!rc)
        rc = lock_load(s, ns, name, &t, &fd, err);
    if (rc) {
        buf_free(&repl);
        return rc;
    }
    const struct iceberg_schema *sc = iceberg_metadata_current_schema(t.md);
    for (size_t k = 0; k < n_set && !rc; k++)
        if (!iceberg_schema_find(sc, set_cols[k]))
            rc = loch_errf(err, LOCH_ENOENT, "column \"%s\" of table %s.%s does not exist", set_cols[k], ns, name);
    const char *pos_view = arena_printf(a, "%s__loch_positions", name);
    if (!rc)
        rc = lake_view(s, &t, -1, pos_view, true, NULL, err);
    char *from =
        arena_printf(a, "%s AS %s %s", lake_view_ident(s, ns, pos_view), arena_sql_ident(a, alias), where);
    struct iceberg_change *ch = iceberg_change_begin(a, t.md, t.location);
    struct iceberg_data_file del = {0}, data = {0};
    if (!rc && update) {
        /* Stage the new row versions with their old positions, so deletes and data
         * come from one read of one snapshot. */
        engine_exec(s->conn, "DROP TABLE IF EXISTS temp.__loch_upd", NULL);
        char *stage = arena_printf(a, "CREATE TEMP TABLE __loch_upd AS SELECT * REPLACE (%s) FROM %s", repl.data, from);
        rc = engine_exec(s->conn, stage, err);
        struct buf cols = {0};
        for (size_t k = 0; k < sc->n_fields; k++) {
            if (k)
                buf_puts(&cols, ", ");
            buf_sql_ident(&cols, sc->fields[k].name);
        }
        if (!rc)
            rc = sink_write_data(s->conn, s->env.st, t.md, arena_printf(a, "SELECT %s FROM temp.__loch_upd", cols.data),
                                 a, &data, err);
        buf_free(&cols);
        if (!rc)
            rc = sink_write_deletes(s->conn, s->env.st, t.md, "SELECT __loch_file, __loch_pos FROM temp.__loch_upd",
                                    NULL, a, &del, err);
        engine_exec(s->conn, "DROP TABLE IF EXISTS temp.__loch_upd", NULL);
    } else if (!rc) {
        rc = sink_write_deletes(s->conn, s->env.st, t.md,
                                arena_printf(a, "SELECT __loch_file, __loch_pos FROM %s", from), NULL, a, &del,
                                err);
    }
    buf_free(&repl);
    if (!rc && del.record_count > 0) {
        iceberg_change_add_file(ch, &del);
        if (data.record_count > 0)
            iceberg_change_add_file(ch, &data);
        rc = commit_one(s, &t, ch, err);
    }
    engine_exec(s->conn, arena_printf(a, "DROP VIEW IF EXISTS %s", lake_view_ident(s, ns, pos_view)), NULL);
    sink_unlock(fd);
    if (!rc)
        *tag = arena_printf(a, "%s %lld", update ? "UPDATE" : "DELETE", (long long)del.record_count);
    return rc;
}

/* ---- ALTER TABLE / DROP TABLE ---- */

/* Spark's WRITE ORDERED BY col [ASC|DESC] [NULLS FIRST|LAST] [, ...] from token i, into
 * identity sort fields of cur (Iceberg's defaults: ASC, nulls first for ASC and last for
 * DESC). *n_out == 0 for WRITE UNORDERED. */
static int parse_write_order(struct arena *a, const struct stmt *st, size_t i, const struct iceberg_schema *cur,
                             struct iceberg_sort_field **out, size_t *n_out, struct loch_err *err)
{
    *n_out = 0;
    *out = NULL;
    if (lex_is(st, i, "UNORDERED") && i + 1 == st->n_tok)
        return 0;
    if (!lex_is(st, i, "ORDERED") || !lex_is(st, i + 1, "BY") || i + 2 >= st->n_tok) {
        loch_errf(err, LOCH_ESYNTAX, "expected WRITE ORDERED BY col [, ...] or WRITE UNORDERED");
        return loch_err_hint(err, "loch keeps sort orders of plain columns; LOCALLY ORDERED and "
                                  "DISTRIBUTED BY are not supported");
    }
    i += 2;
    *out = arena_alloc(a, st->n_tok * sizeof **out);
    for (;;) {
        if (i >= st->n_tok)
            return loch_errf(err, LOCH_ESYNTAX, "expected a column name in WRITE ORDERED BY");
        char *col = lex_ident(a, st, i++);
        const struct iceberg_field *f = iceberg_schema_find(cur, col);
        if (!f) {
            loch_errf(err, LOCH_ENOENT, "column \"%s\" does not exist", col);
            return loch_err_hint(err, "WRITE ORDERED BY names columns of the table");
        }
        struct iceberg_sort_field sf = {f->id, false, true};
        if (lex_is(st, i, "ASC")) {
            i++;
        } else if (lex_is(st, i, "DESC")) {
            sf.desc = true;
            sf.nulls_first = false;
            i++;
        }
        if (lex_is(st, i, "NULLS") && (lex_is(st, i + 1, "FIRST") || lex_is(st, i + 1, "LAST"))) {
            sf.nulls_first = lex_is(st, i + 1, "FIRST");
            i += 2;
        }
        for (size_t k = 0; k < *n_out; k++)
            if ((*out)[k].source_id == sf.source_id)
                return loch_errf(err, LOCH_EINVAL, "column \"%s\" appears twice in WRITE ORDERED BY", col);
        (*out)[(*n_out)++] = sf;
        if (i == st->n_tok)
            return 0;
        if (!lex_punct(st, i, ','))
            return loch_errf(err, LOCH_ESYNTAX, "unexpected text after column \"%s\" in WRITE ORDERED BY", col);
        i++;
    }
}

static int do_alter(struct query_session *s, const struct stmt *st, bool *handled, const char **tag,
                    struct loch_err *err)
{
    struct arena *a = s->stmt_arena;
    size_t i = 2;
    if (lex_is(st, i, "IF") && lex_is(st, i + 1, "EXISTS"))
        i += 2;
    char *full = lex_name(a, st, &i), *ns, *name;
    if (!full || !lake_name(a, full, &ns, &name))
        return 0;
    *handled = true;
    struct lake_table t;
    int fd;
    int rc = lock_load(s, ns, name, &t, &fd, err);
    if (rc)
        return rc;
    const struct iceberg_schema *cur = iceberg_metadata_current_schema(t.md);
    struct iceberg_schema *next = NULL;
    if (lex_is(st, i, "WRITE")) {
        struct iceberg_sort_field *order;
        size_t n_order;
        rc = parse_write_order(a, st, i + 1, cur, &order, &n_order, err);
        if (!rc) {
            struct iceberg_change *ch = iceberg_change_begin(a, t.md, t.location);
            iceberg_change_set_sort_order(ch, order, n_order);
            rc = commit_one(s, &t, ch, err);
            *tag = "ALTER TABLE";
        }
        goto out;
    } else if (lex_is(st, i, "ADD")) {
        i++;
        if (lex_is(st, i, "COLUMN"))
            i++;
        bool ine = false;
        if (lex_is(st, i, "IF") && lex_is(st, i + 1, "NOT") && lex_is(st, i + 2, "EXISTS")) {
            ine = true;
            i += 3;
        }
        if (i >= st->n_tok) {
            rc = loch_errf(err, LOCH_ESYNTAX, "expected a column name after ADD COLUMN");
            goto out;
        }
        char *col = lex_ident(a, st, i);
        if (ine && iceberg_schema_find(cur, col)) {
            *tag = "ALTER TABLE";
            goto out;
        }
        struct iceberg_type ty;
        rc = parse_type(s, drop_semicolon_rest(a, lex_rest(st, i + 1)), col, &ty, err);
        if (!rc)
            rc = iceberg_schema_add_column(a, t.md, cur, col, &ty, &next, err);
    } else if (lex_is(st, i, "DROP")) {
        i++;
        if (lex_is(st, i, "COLUMN"))
            i++;
        bool ie = false;
        if (lex_is(st, i, "IF") && lex_is(st, i + 1, "EXISTS")) {
            ie = true;
            i += 2;
        }
        if (i >= st->n_tok) {
            rc = loch_errf(err, LOCH_ESYNTAX, "expected a column name after DROP COLUMN");
            goto out;
        }
        char *col = lex_ident(a, st, i);
        if (ie && !iceberg_schema_find(cur, col)) {
            *tag = "ALTER TABLE";
            goto out;
        }
        const struct iceberg_sort_order *so = iceberg_metadata_sort_order(t.md);
        const struct iceberg_field *f = iceberg_schema_find(cur, col);
        for (size_t k = 0; so && f && k < so->n_fields; k++)
            if (so->fields[k].source_id == f->id) {
                rc = loch_errf(err, LOCH_EINVAL, "cannot drop column \"%s\": the table is ordered by it", col);
                loch_err_hint(err, "ALTER TABLE %s.%s WRITE UNORDERED (or ORDERED BY other columns) first", ns, name);
                goto out;
            }
        rc = iceberg_schema_drop_column(a, cur, col, &next, err);
    } else if (lex_is(st, i, "RENAME")) {
        i++;
        if (lex_is(st, i, "COLUMN"))
            i++;
        if (lex_is(st, i, "TO")) {
            /* the new name is checked first, so a later rename support inherits it */
            char *to_name = NULL;
            size_t j = i + 1;
            if (j < st->n_tok)
                to_name = lex_name(a, st, &j);
            if (to_name && (rc = catalog_check_name(ns, to_name, err))) {
                loch_err_prefix(err, "cannot rename table %s.%s", ns, name);
                goto out;
            }
            rc = loch_errf(err, LOCH_EUNSUPPORTED, "renaming lake tables is not supported yet");
            goto out;
        }
        if (i + 2 >= st->n_tok || !lex_is(st, i + 1, "TO")) {
            rc = loch_errf(err, LOCH_ESYNTAX, "expected RENAME COLUMN old TO new");
            goto out;
        }
        rc = iceberg_schema_rename_column(a, cur, lex_ident(a, st, i), lex_ident(a, st, i + 2), &next, err);
    } else if (lex_is(st, i, "ALTER")) {
        i++;
        if (lex_is(st, i, "COLUMN"))
            i++;
        if (i >= st->n_tok) {
            rc = loch_errf(err, LOCH_ESYNTAX, "expected a column name after ALTER COLUMN");
            goto out;
        }
        char *col = lex_ident(a, st, i++);
        if (lex_is(st, i, "SET") && lex_is(st, i + 1, "DATA"))
            i += 2;
        if (!lex_is(st, i, "TYPE")) {
            rc = loch_errf(err, LOCH_EUNSUPPORTED, "only ALTER COLUMN %s TYPE ... is supported on lake tables", col);
            goto out;
        }
        struct iceberg_type ty;
        rc = parse_type(s, drop_semicolon_rest(a, lex_rest(st, i + 1)), col, &ty, err);
        if (!rc)
            rc = iceberg_schema_alter_type(a, cur, col, &ty, &next, err);
    } else {
        rc = loch_errf(err, LOCH_EUNSUPPORTED, "this ALTER TABLE form is not supported on lake tables");
        loch_err_hint(err, "supported: ADD COLUMN, DROP COLUMN, RENAME COLUMN a TO b, ALTER COLUMN c TYPE t, "
                           "WRITE ORDERED BY c [, ...], WRITE UNORDERED");
    }
    if (!rc && next) {
        struct iceberg_change *ch = iceberg_change_begin(a, t.md, t.location);
        iceberg_change_set_schema(ch, next);
        rc = commit_one(s, &t, ch, err);
        *tag = "ALTER TABLE";
    }
out:
    sink_unlock(fd);
    return rc;
}

static int do_drop(struct query_session *s, const struct stmt *st, bool *handled, const char **tag,
                   struct loch_err *err)
{
    struct arena *a = s->stmt_arena;
    size_t i = 2;
    bool ie = false;
    if (lex_is(st, i, "IF") && lex_is(st, i + 1, "EXISTS")) {
        ie = true;
        i += 2;
    }
    char *full = lex_name(a, st, &i), *ns, *name;
    if (!full || !lake_name(a, full, &ns, &name))
        return full ? bad_lake_name(full, handled, err) : 0;
    *handled = true;
    /* A name refused here names no table made since names are checked: say why rather
     * than "does not exist". One made before may still be dropped: dropping builds no
     * path, it only removes the catalog's row. */
    int rc = catalog_check_name(ns, name, err);
    if (rc) {
        if (!sink_table_exists(s->env.cat, ns, name, a))
            return loch_err_prefix(err, "cannot drop table");
        loch_err_clear(err);
    }
    rc = catalog_drop_table(s->env.cat, ns, name, err);
    if (rc == LOCH_ENOENT && ie) {
        loch_err_clear(err);
        rc = 0;
    }
    if (!rc)
        *tag = "DROP TABLE";
    return rc;
}

int write_try(struct query_session *s, const struct stmt *st, bool *handled, const char **tag, struct loch_err *err)
{
    *handled = false;
    if (lex_is(st, 0, "CREATE") && lex_is(st, 1, "TABLE"))
        return do_create(s, st, handled, tag, err);
    if (lex_is(st, 0, "INSERT") && lex_is(st, 1, "INTO"))
        return do_insert(s, st, handled, tag, err);
    if (lex_is(st, 0, "DELETE") && lex_is(st, 1, "FROM"))
        return do_delete_update(s, st, false, handled, tag, err);
    if (lex_is(st, 0, "UPDATE"))
        return do_delete_update(s, st, true, handled, tag, err);
    if (lex_is(st, 0, "ALTER") && lex_is(st, 1, "TABLE"))
        return do_alter(s, st, handled, tag, err);
    if (lex_is(st, 0, "DROP") && lex_is(st, 1, "TABLE"))
        return do_drop(s, st, handled, tag, err);
    return 0;
}
