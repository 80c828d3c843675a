/* applier.c: the applier's front door (applier.h): open and close, checkpoints and staged
 * key/values, counters, and the cast of canonical text to lake types shared with
 * validation. Not for tables (applier_table.c), staging (applier_stage.c), the key index
 * (applier_index.c) or flushing (applier_flush.c, applier_write.c). */
#include "cdc/applier_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "iceberg/table.h"

static atomic_int applier_ids;

void cdc_cast_sql(struct buf *b, const char *expr, const struct iceberg_type *t) { cast_expr(b, expr, t); }

int cdc_csv_to_temp_table(struct engine_conn *conn, const char *name, const struct cdc_table *t,
                          const char *csv_path, struct loch_err *err)
{
    struct buf b = {0};
    buf_puts(&b, "CREATE OR REPLACE TEMP TABLE ");
    buf_sql_ident(&b, name);
    buf_puts(&b, " AS SELECT ");
    for (size_t k = 0; k < t->n_columns; k++) {
        char x[32];
        snprintf(x, sizeof x, "c%zu", k);
        if (k)
            buf_puts(&b, ", ");
        cdc_cast_sql(&b, x, &t->columns[k].type);
        buf_puts(&b, " AS ");
        buf_sql_ident(&b, t->columns[k].name);
    }
    buf_puts(&b, " FROM read_csv(");
    buf_sql_str(&b, csv_path);
    buf_puts(&b, ", header = false, all_varchar = true, allow_quoted_nulls = false, delim = ',', quote = '\"', "
                 "escape = '\"', new_line = '\\n', auto_detect = false, columns = {");
    for (size_t k = 0; k < t->n_columns; k++)
        buf_printf(&b, "%s'c%zu': 'VARCHAR'", k ? ", " : "", k);
    buf_puts(&b, "})");
    int rc = engine_exec(conn, b.data, err);
    buf_free(&b);
    return rc;
}

/* ---- open / close ---- */

/* DuckDB's threads for this applier's work: every core while loading (converting source
 * rows to Parquet is the load's work), one while streaming (see app_replication_engine).
 * A setting the engine refuses (a locked configuration) is left as it is. */
void applier_use_threads(struct cdc_applier *ap, bool all)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int n = all ? (int)(cores > 0 ? cores : 1) : 1;
    if (ap->threads == n)
        return;
    char sql[128];
    snprintf(sql, sizeof sql, "SET threads = %d; SET preserve_insertion_order = %s", n, all ? "false" : "true");
    struct loch_err e;
    if (engine_exec(ap->conn, sql, &e) != 0)
        log_debug("applier: %s: %s", sql, e.msg);
    ap->threads = n; /* set, or not settable here: either way not tried again */
}

int cdc_applier_open(const struct cdc_applier_options *o, struct catalog *cat, struct store *st,
                     struct engine *eng, struct cdc_applier **out, struct loch_err *err)
{
    struct cdc_applier *ap = xcalloc(1, sizeof *ap);
    ap->o = *o;
    if (ap->o.flush_interval_ms <= 0)
        ap->o.flush_interval_ms = 1000;
    if (!ap->o.flush_max_changes)
        ap->o.flush_max_changes = 500000;
    ap->id = atomic_fetch_add(&applier_ids, 1);
    ap->arena = arena_new();
    ap->bt[0].arena = arena_new();
    ap->bt[1].arena = arena_new();
    ap->arena2 = arena_new();
    ap->o.source = arena_strdup(ap->arena, o->source);
    ap->o.state_dir = arena_strdup(ap->arena, o->state_dir);
    ap->o.position_column = arena_strdup(ap->arena, o->position_column);
    ap->cat = cat;
    ap->st = st;
    int rc = catalog_open(catalog_path(cat), false, &ap->fcat, err);
    if (!rc)
        rc = store_open(st->root, &ap->fst, err);
    if (!rc)
        rc = engine_connect(eng, &ap->conn, err);
    if (!rc)
        rc = engine_connect(eng, &ap->conn2, err);
    if (!rc)
        rc = engine_connect(eng, &ap->sconn, err);
    if (rc) {
        cdc_applier_close(ap);
        return rc;
    }
    *out = ap;
    return 0;
}

void cdc_applier_close(struct cdc_applier *ap)
{
    if (!ap)
        return;
    struct loch_err e;
    if (applier_land(ap, &e))
        ap->broken = true;
    for (size_t i = 0; i < ap->n_tables; i++) {
        if (!ap->broken)
            applier_save_index(ap, ap->tables[i]);
        applier_table_close(ap, ap->tables[i]);
    }
    free(ap->tables);
    if (ap->conn) {
        char sql[96];
        snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS memory.main.__pos_%d", ap->id);
        engine_exec(ap->conn, sql, NULL);
    }
    engine_disconnect(ap->sconn);
    engine_disconnect(ap->conn2);
    engine_disconnect(ap->conn);
    store_close(ap->fst);
    catalog_close(ap->fcat);
    free(ap->durable);
    arena_free(ap->arena2);
    arena_free(ap->bt[0].arena);
    arena_free(ap->bt[1].arena);
    arena_free(ap->arena);
    free(ap);
}

struct engine_conn *cdc_applier_conn(struct cdc_applier *ap) { return ap->conn; }

char *applier_ckpt_key(struct arena *a, const char *source) { return arena_printf(a, "cdc.%s.checkpoint", source); }

int cdc_applier_checkpoint(struct catalog *cat, const char *source, struct arena *a, char **out,
                           struct loch_err *err)
{
    return catalog_get_kv(cat, applier_ckpt_key(a, source), a, out, err);
}

int cdc_applier_set_checkpoint(struct catalog *cat, const char *source, const char *checkpoint,
                               struct loch_err *err)
{
    struct arena *a = arena_new();
    struct catalog_kv kv = {applier_ckpt_key(a, source), checkpoint};
    int rc = catalog_commit(cat, NULL, 0, &kv, 1, err);
    arena_free(a);
    return rc;
}

void cdc_applier_set_kv(struct cdc_applier *ap, const char *key, const char *value)
{
    struct batch *B = &ap->bt[ap->cur];
    for (size_t i = 0; i < B->n_kv; i++)
        if (!strcmp(B->kv[i].key, key)) {
            B->kv[i].value = arena_strdup(B->arena, value);
            return;
        }
    if (B->n_kv == KV_MAX)
        log_warn("applier: too many staged keys; %s dropped", key);
    else
        B->kv[B->n_kv++] = (struct catalog_kv){arena_strdup(B->arena, key), arena_strdup(B->arena, value)};
}

/* ---- the lake, as a source may see it ---- */

int cdc_applier_get_kv(struct cdc_applier *ap, const char *key, struct arena *a, char **out,
                       struct loch_err *err)
{
    return catalog_get_kv(ap->cat, key, a, out, err);
}

int cdc_applier_put_kv(struct cdc_applier *ap, const char *key, const char *value, struct loch_err *err)
{
    struct catalog_kv kv = {key, value};
    return catalog_commit(ap->cat, NULL, 0, &kv, 1, err);
}

int cdc_applier_lake_table(struct cdc_applier *ap, const char *schema, const char *name, struct arena *a,
                           struct cdc_table *out, struct loch_err *err)
{
    struct catalog_table ct;
    struct iceberg_metadata *md;
    char *ns = arena_printf(a, "%s.%s", ap->o.source, schema);
    int rc = catalog_load_table(ap->cat, ns, name, a, &ct, err);
    if (rc || !out)
        return rc;
    if ((rc = iceberg_table_load(ap->st, ct.metadata_location, a, &md, err)))
        return rc;
    const struct iceberg_schema *sc = iceberg_metadata_current_schema(md);
    memset(out, 0, sizeof *out);
    out->source = ap->o.source;
    out->schema = arena_strdup(a, schema);
    out->name = arena_strdup(a, name);
    out->n_columns = sc->n_fields;
    out->columns = arena_alloc(a, (sc->n_fields ? sc->n_fields : 1) * sizeof *out->columns);
    for (size_t i = 0; i < sc->n_fields; i++) {
        struct cdc_column *c = &out->columns[i];
        c->name = sc->fields[i].name;
        c->type = sc->fields[i].type;
        c->nullable = !sc->fields[i].required;
        c->source_type = "(from the lake)";
        for (size_t k = 0; k < sc->n_identifier_ids; k++)
            if (sc->identifier_ids[k] == sc->fields[i].id)
                c->key = true;
        out->has_key |= c->key;
    }
    return 0;
}

void cdc_applier_stats(const struct cdc_applier *ap, struct cdc_applier_stats *out) { *out = ap->stats; }
