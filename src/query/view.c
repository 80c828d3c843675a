/* view.c: a lake table as a DuckDB view: read_parquet over the snapshot's live data
 * files with columns mapped by Iceberg field id (so files written before a rename, an
 * added column or a widening read right), and its position deletes applied per data file
 * as a row mask (engine_mask_build + loch_keep(mask, file_row_number)). Not for planning
 * (iceberg/table.h) or access rules. */
#include "query/internal.h"

#include <pthread.h>

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "iceberg/prune.h"

/* Namespaces map to DuckDB names: "core.public" -> catalog "core", schema "public";
 * deeper ones keep the rest as one schema ("a.b.c" -> catalog a, schema "b.c"); a
 * one-level namespace is a schema of the default catalog. */
static void split_ns(struct arena *a, const char *ns, char **cat, char **schema)
{
    const char *dot = strchr(ns, '.');
    if (!dot) {
        *cat = NULL;
        *schema = arena_strdup(a, ns);
        return;
    }
    *cat = arena_strndup(a, ns, (size_t)(dot - ns));
    *schema = arena_strdup(a, dot + 1);
}

char *lake_view_ident(struct query_session *s, const char *ns, const char *view_name)
{
    struct arena *a = s->stmt_arena;
    char *cat, *schema;
    split_ns(a, ns, &cat, &schema);
    struct buf b = {0};
    if (cat) {
        buf_sql_ident(&b, cat);
        buf_putc(&b, '.');
    }
    buf_sql_ident(&b, schema);
    buf_putc(&b, '.');
    buf_sql_ident(&b, view_name);
    char *out = arena_strdup(a, b.data);
    buf_free(&b);
    return out;
}

static int ensure_schema(struct query_session *s, const char *ns, struct loch_err *err)
{
    struct arena *a = s->stmt_arena;
    char *cat, *schema;
    split_ns(a, ns, &cat, &schema);
    struct buf q = {0};
    if (cat) {
        bool have = false;
        for (size_t i = 0; i < s->n_attached && !have; i++)
            have = !strcmp(s->attached[i], cat);
        if (!have) {
            buf_puts(&q, "ATTACH IF NOT EXISTS ':memory:' AS ");
            buf_sql_ident(&q, cat);
            int rc = engine_exec(s->conn, q.data, err);
            buf_reset(&q);
            if (rc) {
                buf_free(&q);
                return rc;
            }
            s->attached = xrealloc(s->attached, (s->n_attached + 1) * sizeof *s->attached);
            s->attached[s->n_attached++] = xstrdup(cat);
        }
    }
    buf_puts(&q, "CREATE SCHEMA IF NOT EXISTS ");
    if (cat) {
        buf_sql_ident(&q, cat);
        buf_putc(&q, '.');
    }
    buf_sql_ident(&q, schema);
    int rc = engine_exec(s->conn, q.data, err);
    buf_free(&q);
    return rc;
}

static void file_list(struct buf *b, const struct iceberg_data_file *f, size_t n)
{
    buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_putc(b, ',');
        buf_sql_str(b, f[i].path);
    }
    buf_putc(b, ']');
}

/* True when f was written under a schema that names and types every field of sc as sc
 * does (looked up through the snapshot that added it): then its Parquet columns can be
 * read by name, which DuckDB does faster than a field-id mapped read. */
static bool plain_readable(const struct iceberg_metadata *m, const struct iceberg_schema *sc,
                           const struct iceberg_data_file *f)
{
    const struct iceberg_snapshot *snap = iceberg_metadata_snapshot(m, f->snapshot_id);
    if (!snap || snap->schema_id < 0)
        return false;
    const struct iceberg_schema *ws = iceberg_metadata_schema(m, snap->schema_id);
    if (!ws)
        return false;
    for (size_t i = 0; i < sc->n_fields; i++) {
        const struct iceberg_field *w = iceberg_schema_field(ws, sc->fields[i].id);
        if (!w || strcmp(w->name, sc->fields[i].name) || !iceberg_type_equal(&w->type, &sc->fields[i].type))
            return false;
    }
    return true;
}

/* A relation over files with the columns of sc: read by name when plain (the files
 * carry sc's names and types), else mapped by field id through read_parquet's schema
 * option (renames, added and widened columns). pos adds file_row_number (POS_ROW) and
 * filename (POS_FILE_ROW); generating file names per row is not free, so only DML asks. */
enum pos_cols { POS_NONE, POS_ROW, POS_FILE_ROW };

static void read_files(struct buf *q, const struct iceberg_schema *sc, const struct iceberg_data_file *f, size_t n,
                       enum pos_cols pos, bool plain)
{
    if (plain) {
        buf_puts(q, "(SELECT ");
        for (size_t i = 0; i < sc->n_fields; i++) {
            if (i)
                buf_puts(q, ", ");
            buf_sql_ident(q, sc->fields[i].name);
        }
        buf_puts(q, pos == POS_FILE_ROW ? ", filename, file_row_number" : pos == POS_ROW ? ", file_row_number" : "");
        buf_puts(q, " FROM read_parquet(");
        file_list(q, f, n);
        buf_puts(q, pos == POS_FILE_ROW ? ", filename = true, file_row_number = true"
                    : pos == POS_ROW    ? ", file_row_number = true" : "");
        buf_puts(q, "))");
        return;
    }
    buf_puts(q, "read_parquet(");
    file_list(q, f, n);
    buf_puts(q, ", schema = MAP {");
    for (size_t i = 0; i < sc->n_fields; i++) {
        char duck[64];
        iceberg_type_duckdb(&sc->fields[i].type, duck, sizeof duck);
        buf_printf(q, "%s%d: {name: ", i ? ", " : "", sc->fields[i].id);
        buf_sql_str(q, sc->fields[i].name);
        buf_puts(q, ", type: ");
        buf_sql_str(q, duck);
        buf_puts(q, ", default_value: NULL}");
    }
    buf_puts(q, "}");
    buf_puts(q, pos == POS_FILE_ROW ? ", filename = true, file_row_number = true"
                : pos == POS_ROW    ? ", file_row_number = true" : "");
    buf_puts(q, ")");
}

/* Views live in the process's one DuckDB database, shared by every session: two sessions
 * replacing the same view at once is a DuckDB write-write conflict. Catalog changes made
 * for reading (views, schemas, pgcompat's tables) therefore take turns. */
static pthread_mutex_t catalog_mu = PTHREAD_MUTEX_INITIALIZER;

void lake_catalog_lock(void) { pthread_mutex_lock(&catalog_mu); }
void lake_catalog_unlock(void) { pthread_mutex_unlock(&catalog_mu); }

static int make_view(struct query_session *s, struct lake_table *t, int64_t snapshot_id, const char *ident,
                     bool temp, const struct iceberg_expr *filter, struct iceberg_scan *plan, bool positional,
                     bool *masked, struct iceberg_prune_stats *ps, struct loch_err *err);

static int64_t stats_bytes(const struct iceberg_prune_stats *ps)
{
    return ps->data_bytes_after + ps->delete_bytes_after;
}

/* What each view of the shared database was last made from (guarded by catalog_mu): a
 * view made from the table's current metadata file need not be made again, which spares
 * every read the metadata load and a catalog change. */
struct made {
    uint64_t eng;
    char *ident, *location;
    int64_t snapshot;
    bool positional;
    bool masked; /* reads row masks: made again per statement, which keeps its masks in use (see engine_masks_trim) */
    struct iceberg_prune_stats ps; /* the files the view reads (nothing pruned) */
};
static struct made *made;
static size_t n_made;

static struct made *made_find(uint64_t eng, const char *ident)
{
    for (size_t i = 0; i < n_made; i++)
        if (made[i].eng == eng && !strcmp(made[i].ident, ident))
            return &made[i];
    return NULL;
}

bool lake_view_fresh(struct query_session *s, const char *ns, const char *view_name, const char *location,
                     struct iceberg_prune_stats *ps)
{
    const char *ident = lake_view_ident(s, ns, view_name);
    lake_catalog_lock();
    struct made *m = made_find(engine_id(s->env.eng), ident);
    bool fresh = m && !m->positional && !m->masked && m->snapshot < 0 && location && !strcmp(m->location, location);
    if (fresh && ps)
        *ps = m->ps;
    lake_catalog_unlock();
    return fresh;
}

int lake_view_pruned(struct query_session *s, struct lake_table *t, int64_t snapshot_id,
                     const struct iceberg_expr *filter, const char *temp_name, struct iceberg_scan *plan,
                     struct iceberg_prune_stats *ps, struct loch_err *err)
{
    struct buf b = {0};
    buf_puts(&b, "temp.main.");
    buf_sql_ident(&b, temp_name);
    char *ident = arena_strdup(s->stmt_arena, b.data);
    buf_free(&b);
    bool masked = false;
    /* a temporary view is this connection's alone: no other session replaces it */
    int rc = make_view(s, t, snapshot_id, ident, true, filter, plan, false, &masked, ps, err);
    if (!rc && s->scanned >= 0)
        s->scanned += stats_bytes(ps);
    return rc;
}

int lake_view(struct query_session *s, struct lake_table *t, int64_t snapshot_id, const char *view_name,
              bool positional, struct iceberg_prune_stats *ps_out, struct loch_err *err)
{
    const char *ident = lake_view_ident(s, t->ns, view_name);
    lake_catalog_lock();
    bool masked = false;
    struct iceberg_prune_stats ps = {0};
    int rc = make_view(s, t, snapshot_id, ident, false, NULL, NULL, positional, &masked, &ps, err);
    if (!rc && s->scanned >= 0)
        s->scanned += stats_bytes(&ps);
    if (!rc && ps_out)
        *ps_out = ps;
    uint64_t eng = engine_id(s->env.eng);
    struct made *m = made_find(eng, ident);
    if (!m && n_made < 4096) {
        made = xrealloc(made, (n_made + 1) * sizeof *made);
        m = &made[n_made++];
        m->eng = eng;
        m->ident = xstrdup(ident);
        m->location = NULL;
    }
    if (m) {
        free(m->location);
        /* a failed attempt may have left the view changed: remember nothing usable */
        m->location = xstrdup(rc || !t->location ? "" : t->location);
        m->snapshot = snapshot_id;
        m->positional = positional;
        m->masked = masked;
        m->ps = ps;
    }
    lake_catalog_unlock();
    return rc;
}

static int make_view(struct query_session *s, struct lake_table *t, int64_t snapshot_id, const char *ident,
                     bool temp, const struct iceberg_expr *filter, struct iceberg_scan *plan, bool positional,
                     bool *masked, struct iceberg_prune_stats *ps, struct loch_err *err)
{
    struct arena *a = s->stmt_arena;
    int rc = plan ? 0 : iceberg_scan_plan(s->env.st, t->md, snapshot_id, a, &plan, err);
    if (rc)
        return loch_err_prefix(err, "planning a scan of %s.%s", t->ns, t->name);
    /* What the query's scan of this table covers: the files the filter leaves (with the
     * delete files that apply to them), every live file without one. */
    iceberg_scan_prune(plan, filter, ps);
    *masked = plan->n_deletes > 0;
    rc = temp ? 0 : ensure_schema(s, t->ns, err);
    if (rc)
        return rc;
    /* The current state reads under the current schema (columns added after the last
     * snapshot included); an earlier snapshot under its own. */
    const struct iceberg_schema *sc = snapshot_id < 0 ? iceberg_metadata_current_schema(t->md) : plan->schema;
    struct buf q = {0};
    buf_puts(&q, temp ? "CREATE OR REPLACE TEMP VIEW " : "CREATE OR REPLACE VIEW ");
    buf_puts(&q, ident);
    buf_puts(&q, " AS SELECT ");
    for (size_t i = 0; i < sc->n_fields; i++) {
        if (i)
            buf_puts(&q, ", ");
        buf_puts(&q, "__d.");
        buf_sql_ident(&q, sc->fields[i].name);
    }
    if (positional)
        buf_puts(&q, ", __d.filename AS __loch_file, __d.file_row_number AS __loch_pos");
    if (plan->n_data == 0) {
        /* No file yet: an empty relation of the right shape. */
        buf_puts(&q, " FROM (SELECT ");
        for (size_t i = 0; i < sc->n_fields; i++) {
            char duck[64];
            iceberg_type_duckdb(&sc->fields[i].type, duck, sizeof duck);
            buf_printf(&q, "%sCAST(NULL AS %s) AS ", i ? ", " : "", duck);
            buf_sql_ident(&q, sc->fields[i].name);
        }
        buf_puts(&q, ", CAST(NULL AS VARCHAR) AS filename, CAST(NULL AS BIGINT) AS file_row_number LIMIT 0) AS __d");
    } else {
        /* Deletes are applied per data file, joined on the row position alone (an
         * integer), which is far cheaper than a join on (file name, position). Files
         * without deletes are read together. A delete file that does not name its one
         * data file applies to every file. */
        bool *hit = arena_alloc(a, plan->n_data * sizeof *hit);
        bool any_unreferenced = false;
        for (size_t k = 0; k < plan->n_deletes; k++)
            if (!plan->deletes[k].referenced_data_file)
                any_unreferenced = true;
        size_t n_plain = 0;
        for (size_t i = 0; i < plan->n_data; i++) {
            hit[i] = any_unreferenced;
            for (size_t k = 0; k < plan->n_deletes && !hit[i]; k++)
                hit[i] = !strcmp(plan->deletes[k].referenced_data_file, plan->data[i].path);
            n_plain += !hit[i];
        }
        buf_puts(&q, " FROM (");
        bool first = true;
        /* Files without deletes, in two groups: readable by name, and mapped by id. */
        for (int by_name = 1; by_name >= 0 && n_plain; by_name--) {
            struct iceberg_data_file *group = arena_alloc(a, n_plain * sizeof *group);
            size_t n_group = 0;
            for (size_t i = 0; i < plan->n_data; i++)
                if (!hit[i] && plain_readable(t->md, sc, &plan->data[i]) == (bool)by_name)
                    group[n_group++] = plan->data[i];
            if (!n_group)
                continue;
            buf_puts(&q, first ? "SELECT * FROM " : " UNION ALL BY NAME SELECT * FROM ");
            read_files(&q, sc, group, n_group, positional ? POS_FILE_ROW : POS_NONE, by_name);
            first = false;
        }
        for (size_t i = 0; i < plan->n_data; i++) {
            if (!hit[i])
                continue;
            /* The file's deleted positions become a row mask (a bitmap DuckDB tests per
             * row through loch_keep): far cheaper than an anti join over every row. */
            struct buf pq = {0}, key = {0};
            buf_puts(&key, plan->data[i].path);
            buf_puts(&pq, "SELECT CAST(pos AS BIGINT) FROM read_parquet(");
            size_t n_del = 0;
            for (size_t k = 0; k < plan->n_deletes; k++)
                if (!plan->deletes[k].referenced_data_file ||
                    !strcmp(plan->deletes[k].referenced_data_file, plan->data[i].path))
                    n_del++;
            struct iceberg_data_file *dels = arena_alloc(a, n_del * sizeof *dels);
            for (size_t k = 0, j = 0; k < plan->n_deletes; k++)
                if (!plan->deletes[k].referenced_data_file ||
                    !strcmp(plan->deletes[k].referenced_data_file, plan->data[i].path)) {
                    dels[j++] = plan->deletes[k];
                    buf_printf(&key, "|%s", plan->deletes[k].path);
                }
            file_list(&pq, dels, n_del);
            buf_puts(&pq, ") WHERE file_path = ");
            buf_sql_str(&pq, plan->data[i].path);
            int64_t mask;
            uint64_t nrows = plan->data[i].record_count > 0 ? (uint64_t)plan->data[i].record_count : 0;
            rc = engine_mask_build(s->conn, key.data, pq.data, nrows, &mask, err);
            buf_free(&pq);
            buf_free(&key);
            if (rc) {
                buf_free(&q);
                return loch_err_prefix(err, "reading the position deletes of %s.%s", t->ns, t->name);
            }
            buf_puts(&q, first ? "SELECT __f.* FROM " : " UNION ALL BY NAME SELECT __f.* FROM ");
            first = false;
            read_files(&q, sc, &plan->data[i], 1, positional ? POS_FILE_ROW : POS_ROW,
                       plain_readable(t->md, sc, &plan->data[i]));
            buf_printf(&q, " AS __f WHERE loch_keep(%lld, __f.file_row_number)", (long long)mask);
        }
        buf_puts(&q, ") AS __d");
    }
    rc = engine_exec(s->conn, q.data, err);
    buf_free(&q);
    if (rc)
        return loch_err_prefix(err, "making %s.%s readable", t->ns, t->name);
    return 0;
}

int lake_view_all(struct query_session *s, struct loch_err *err)
{
    struct arena *a = s->stmt_arena;
    struct catalog_table *tabs;
    size_t n;
    s->scanned = -1;
    int rc = catalog_list_tables(s->env.cat, NULL, a, &tabs, &n, err);
    for (size_t i = 0; i < n && !rc; i++) {
        if (lake_view_fresh(s, tabs[i].ns, tabs[i].name, tabs[i].metadata_location, NULL))
            continue;
        struct lake_table t;
        rc = lake_load(s, tabs[i].ns, tabs[i].name, &t, err);
        if (!rc)
            rc = lake_view(s, &t, -1, t.name, false, NULL, err);
    }
    return rc;
}
