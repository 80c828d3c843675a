/* applier_table.c: declaring source tables to the applier: the two lake tables of each
 * (created, evolved to the source's columns by name), its staging tables and appenders,
 * column renames and drops. Not for renaming whole tables (applier_rename.c) or the key
 * index (applier_index.c). */
#include "cdc/applier_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "iceberg/table.h"
#include "sink/sink.h"

struct atable *applier_find_table(struct cdc_applier *ap, const char *schema, const char *name)
{
    for (size_t i = 0; i < ap->n_tables; i++) {
        struct atable *at = ap->tables[i];
        if (!at->dropped && !strcmp(at->t.schema, schema) && !strcmp(at->t.name, name))
            return at;
    }
    return NULL;
}

static void copy_table(struct arena *a, struct cdc_table *dst, const struct cdc_table *src)
{
    *dst = *src;
    dst->source = arena_strdup(a, src->source);
    dst->schema = arena_strdup(a, src->schema);
    dst->name = arena_strdup(a, src->name);
    dst->columns = arena_alloc(a, (src->n_columns ? src->n_columns : 1) * sizeof *dst->columns);
    for (size_t i = 0; i < src->n_columns; i++) {
        dst->columns[i] = src->columns[i];
        dst->columns[i].name = arena_strdup(a, src->columns[i].name);
        dst->columns[i].source_type = arena_strdup(a, src->columns[i].source_type);
    }
}

static struct iceberg_schema *schema_for(struct arena *a, const struct cdc_table *t, bool changes,
                                         const struct iceberg_type *pos_type, const char *pos_col)
{
    struct iceberg_schema *s = arena_alloc(a, sizeof *s);
    size_t n = t->n_columns + (changes ? 4 : 0);
    s->fields = arena_alloc(a, n * sizeof *s->fields);
    s->identifier_ids = arena_alloc(a, (t->n_columns + 1) * sizeof *s->identifier_ids);
    for (size_t i = 0; i < t->n_columns; i++) {
        struct iceberg_field *f = &s->fields[s->n_fields++];
        f->id = (int)s->n_fields;
        f->name = t->columns[i].name;
        f->type = t->columns[i].type;
        f->required = !changes && t->columns[i].key && t->has_key;
        if (f->required)
            s->identifier_ids[s->n_identifier_ids++] = f->id;
    }
    if (changes) {
        static const struct iceberg_type str = {ICEBERG_STRING, 0, 0, 0}, tstz = {ICEBERG_TIMESTAMPTZ, 0, 0, 0};
        const char *names[4] = {"_op", "_commit_ts", pos_col, "_txid"};
        const struct iceberg_type *types[4] = {&str, &tstz, pos_type, &str};
        for (int i = 0; i < 4; i++) {
            struct iceberg_field *f = &s->fields[s->n_fields++];
            f->id = (int)s->n_fields;
            f->name = names[i];
            f->type = *types[i];
        }
    }
    return s;
}

int applier_load_md(struct cdc_applier *ap, struct atable *at, struct loch_err *err)
{
    /* the writer locks are the applier's (taken when the table was declared) */
    struct arena *a = arena_new();
    struct sink_table t, c;
    int rc = sink_table_open(ap->fcat, ap->fst, at->ns, at->name, a, &t, err);
    if (!rc)
        rc = sink_table_open(ap->fcat, ap->fst, at->ns, at->cname, a, &c, err);
    if (rc) {
        arena_free(a);
        return rc;
    }
    at->md = t.md;
    at->cmd = c.md;
    at->loc = t.location;
    at->cloc = c.location;
    arena_free(at->md_arena);
    at->md_arena = a;
    return 0;
}

/* Metadata files past the catalog's pointer are orphans of a writer that died between
 * writing them and its catalog commit (kill -9 during a flush). We hold the table's
 * writer lock, so no live writer owns them; the next commit needs their version number. */
static void remove_orphans(struct cdc_applier *ap, const struct iceberg_metadata *m, const char *loc)
{
    const char *slash = strrchr(loc, '/');
    long v = slash && slash[1] == 'v' ? strtol(slash + 2, NULL, 10) : -1;
    for (long k = 1; v > 0 && k <= 64; k++) {
        char *uri = xasprintf("%s/metadata/v%ld.metadata.json", m->location, v + k);
        int64_t size;
        struct loch_err e;
        bool there = store_size(ap->fst, uri, &size, &e) == 0;
        if (there) {
            log_warn("removing %s: written by a flush that never committed", uri);
            store_delete(ap->fst, uri, &e);
        }
        free(uri);
        if (!there)
            break;
    }
}

/* Creates ns.name when the lake lacks it (the applier holds its writer lock). */
static int create_lake_table(struct cdc_applier *ap, const char *ns, const char *name,
                             const struct iceberg_schema *s, struct loch_err *err)
{
    struct arena *a = arena_new();
    int rc = sink_table_create(ap->fcat, ap->fst, ns, name, s, NULL, a, NULL, err);
    if (rc == LOCH_EEXIST) {
        loch_err_clear(err);
        rc = 0;
    }
    arena_free(a);
    return rc;
}

/* Brings the lake table at (current or changes) to the columns of t by name. */
static int evolve_one(struct cdc_applier *ap, struct atable *at, bool changes, struct loch_err *err)
{
    struct arena *a = arena_new();
    const struct iceberg_metadata *m = changes ? at->cmd : at->md;
    const char *loc = changes ? at->cloc : at->loc;
    const char *name = changes ? at->cname : at->name;
    struct iceberg_schema *cur = iceberg_schema_copy(a, iceberg_metadata_current_schema(m));
    bool changed = false;
    int rc = 0;
    /* A renamed column (seen first after a restart, so no stream message told the old
     * name): a source column the lake lacks, where the lake has a column at the same
     * place that the source lacks, of the same type. Renaming keeps the field id, so old
     * files keep their values (and a key keeps its identity). */
    for (size_t i = 0; i < at->t.n_columns && i < cur->n_fields && !rc; i++) {
        const struct cdc_column *c = &at->t.columns[i];
        const struct iceberg_field *f = &cur->fields[i];
        if (iceberg_schema_find(cur, c->name) || !iceberg_type_equal(&f->type, &c->type))
            continue;
        bool in_source = false;
        for (size_t k = 0; k < at->t.n_columns && !in_source; k++)
            in_source = !strcmp(at->t.columns[k].name, f->name);
        if (in_source || (changes && f->name[0] == '_'))
            continue;
        struct iceberg_schema *next = NULL;
        log_info("%s.%s: column %s is now %s", at->ns, name, f->name, c->name);
        rc = iceberg_schema_rename_column(a, cur, f->name, c->name, &next, err);
        if (next) {
            cur = next;
            changed = true;
        }
    }
    for (size_t i = 0; i < at->t.n_columns && !rc; i++) {
        const struct cdc_column *c = &at->t.columns[i];
        const struct iceberg_field *f = iceberg_schema_find(cur, c->name);
        struct iceberg_schema *next = NULL;
        if (!f) {
            rc = iceberg_schema_add_column(a, m, cur, c->name, &c->type, &next, err);
        } else if (!iceberg_type_equal(&f->type, &c->type) && !iceberg_type_promotable(&c->type, &f->type)) {
            /* (a narrower source type than the lake's, e.g. a stream replayed after a crash
             * from before a widening, fits as is) */
            if (!iceberg_type_promotable(&f->type, &c->type)) {
                char t1[64], t2[64];
                iceberg_type_format(&f->type, t1, sizeof t1);
                iceberg_type_format(&c->type, t2, sizeof t2);
                rc = loch_errf(err, LOCH_EUNSUPPORTED, "column \"%s\" of %s.%s changed type from %s to %s (%s)",
                               c->name, at->ns, name, t1, t2, c->source_type ? c->source_type : "?");
                loch_err_hint(err, "Iceberg only widens int->long, float->double and decimal precision; "
                                   "re-create the lake table to take the new type");
            } else {
                rc = iceberg_schema_alter_type(a, cur, c->name, &c->type, &next, err);
            }
        }
        if (next) {
            cur = next;
            changed = true;
        }
    }
    for (size_t i = 0; i < cur->n_fields && !rc;) {
        const char *fname = cur->fields[i].name;
        bool keep = changes && (!strcmp(fname, "_op") || !strcmp(fname, "_commit_ts") ||
                                !strcmp(fname, ap->o.position_column) || !strcmp(fname, "_txid"));
        for (size_t k = 0; k < at->t.n_columns && !keep; k++)
            keep = !strcmp(at->t.columns[k].name, fname);
        if (keep) {
            i++;
            continue;
        }
        struct iceberg_schema *next = NULL;
        /* A key column that left the table: make it plain first, so it can be dropped. */
        if (cur->n_identifier_ids) {
            struct iceberg_schema *c2 = iceberg_schema_copy(a, cur);
            c2->n_identifier_ids = 0;
            for (size_t k = 0; k < c2->n_fields; k++)
                c2->fields[k].required = false;
            cur = c2;
        }
        rc = iceberg_schema_drop_column(a, cur, fname, &next, err);
        if (!rc) {
            cur = next;
            changed = true;
        }
    }
    if (!rc && changed) {
        struct iceberg_change *ch = iceberg_change_begin(a, m, loc);
        iceberg_change_set_schema(ch, cur);
        struct sink_table_change tc = {at->ns, name, loc, ch};
        rc = sink_commit(ap->fcat, ap->fst, &tc, 1, NULL, 0, a, err);
        if (!rc)
            log_info("%s.%s: schema evolved to the source's columns", at->ns, name);
    }
    arena_free(a);
    return rc;
}

static void set_rev(struct cdc_applier *ap, struct atable *at)
{
    at->rev = arena_alloc(ap->arena, (at->stg_nc + 1) * sizeof *at->rev);
    for (size_t j = 0; j < at->stg_nc; j++)
        at->rev[j] = -1;
    for (size_t i = 0; i < at->t.n_columns; i++)
        at->rev[at->sc[i]] = (int)i;
}

/* A column kept across a shape change would change staging type (rows staged in the old
 * type must be flushed first). */
static bool stage_kinds_differ(const struct atable *at, const struct cdc_table *t)
{
    if (!at->sint)
        return false;
    for (size_t i = 0; i < t->n_columns; i++)
        for (size_t k = 0; k < at->t.n_columns; k++)
            if (!strcmp(at->t.columns[k].name, t->columns[i].name) &&
                at->sint[at->sc[k]] != int_type(&t->columns[i].type))
                return true;
    return false;
}

/* Staging layout: _seq, _op, _ts, _tx, _txid, _u, (ok<k>, lk<k>) per key column, then
 * c<j> per column; columns added while rows are staged go at the end (extend_stage).
 * One staging table per batch. */
static int open_appenders(struct cdc_applier *ap, struct atable *at, struct loch_err *err)
{
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        char name[64];
        stg_name(name, sizeof name, ap, at, k);
        rc = engine_appender_open(ap->sconn, "memory", name, &at->app[k], err);
    }
    return rc;
}

static void close_appenders(struct atable *at)
{
    for (int k = 0; k < 2; k++) {
        engine_appender_close(at->app[k]);
        at->app[k] = NULL;
    }
}

static int create_stage(struct cdc_applier *ap, struct atable *at, struct loch_err *err)
{
    close_appenders(at);
    struct buf b = {0};
    at->sc = arena_alloc(ap->arena, (at->t.n_columns + 1) * sizeof *at->sc);
    for (size_t i = 0; i < at->t.n_columns; i++)
        at->sc[i] = i;
    at->stg_nc = at->t.n_columns;
    set_rev(ap, at);
    at->sint = arena_alloc(ap->arena, (at->t.n_columns + 1) * sizeof *at->sint);
    for (size_t i = 0; i < at->t.n_columns; i++)
        at->sint[i] = int_type(&at->t.columns[i].type);
    at->kint = arena_alloc(ap->arena, (at->n_key + 1) * sizeof *at->kint);
    for (size_t k = 0; k < at->n_key; k++)
        at->kint[k] = int_type(&at->t.columns[at->key[k]].type);
    for (int set = 0; set < 2; set++) {
        char name[64];
        stg_name(name, sizeof name, ap, at, set);
        buf_printf(&b, "CREATE OR REPLACE TABLE memory.main.%s (_seq BIGINT, _op VARCHAR, _ts BIGINT, _tx BIGINT, "
                   "_txid VARCHAR, _u VARCHAR", name);
        for (size_t k = 0; k < at->n_key; k++)
            buf_printf(&b, ", ok%zu %s, lk%zu VARCHAR", k, at->kint[k] ? "BIGINT" : "VARCHAR", k);
        for (size_t i = 0; i < at->t.n_columns; i++)
            buf_printf(&b, ", c%zu %s", i, at->sint[i] ? "BIGINT" : "VARCHAR");
        buf_puts(&b, "); ");
    }
    int rc = execb(ap, &b, err);
    if (!rc)
        rc = open_appenders(ap, at, err);
    return rc;
}

/* The table changed shape while rows of the old shape are staged: keep them, map the
 * columns by name, add staging columns for new ones. */
static int extend_stage(struct cdc_applier *ap, struct atable *at, const struct cdc_table *old, const size_t *old_sc,
                        struct loch_err *err)
{
    int rc = engine_appender_flush(at->app[ap->cur], err);
    close_appenders(at);
    size_t *sc = arena_alloc(ap->arena, (at->t.n_columns + 1) * sizeof *sc);
    bool *sint = arena_alloc(ap->arena, (at->stg_nc + at->t.n_columns + 1) * sizeof *sint);
    memcpy(sint, at->sint, at->stg_nc * sizeof *sint);
    for (size_t i = 0; i < at->t.n_columns && !rc; i++) {
        size_t k = 0;
        while (k < old->n_columns && strcmp(old->columns[k].name, at->t.columns[i].name))
            k++;
        if (k < old->n_columns) {
            sc[i] = old_sc[k];
        } else {
            sint[at->stg_nc] = int_type(&at->t.columns[i].type);
            for (int set = 0; set < 2 && !rc; set++) {
                char sql[256], name[64];
                stg_name(name, sizeof name, ap, at, set);
                snprintf(sql, sizeof sql, "ALTER TABLE memory.main.%s ADD COLUMN c%zu %s", name, at->stg_nc,
                         sint[at->stg_nc] ? "BIGINT" : "VARCHAR");
                rc = exec(ap, sql, err);
            }
            sc[i] = at->stg_nc++;
        }
    }
    at->sc = sc;
    at->sint = sint;
    set_rev(ap, at);
    if (!rc)
        rc = open_appenders(ap, at, err);
    return rc;
}

static bool same_key(const struct cdc_table *a, const struct cdc_table *b)
{
    if (a->n_columns != b->n_columns && (b->full_identity || a->full_identity))
        return false;
    if (a->has_key != b->has_key || a->full_identity != b->full_identity)
        return false;
    size_t na = 0, nb = 0;
    for (size_t i = 0; i < a->n_columns; i++)
        na += a->has_key ? a->columns[i].key : 1;
    for (size_t i = 0; i < b->n_columns; i++)
        nb += b->has_key ? b->columns[i].key : 1;
    if (na != nb)
        return false;
    for (size_t i = 0; i < b->n_columns; i++) {
        if (b->has_key && !b->columns[i].key)
            continue;
        size_t k = 0;
        while (k < a->n_columns && strcmp(a->columns[k].name, b->columns[i].name))
            k++;
        if (k == a->n_columns || !iceberg_type_equal(&a->columns[k].type, &b->columns[i].type) ||
            (a->has_key && !a->columns[k].key))
            return false;
    }
    return true;
}

void applier_table_close(struct cdc_applier *ap, struct atable *at)
{
    for (int k = 0; k < 2; k++) {
        engine_appender_close(at->app[k]);
        at->app[k] = NULL;
    }
    if (at->lock_fd >= 0)
        sink_unlock(at->lock_fd);
    if (at->lock_fd_c >= 0)
        sink_unlock(at->lock_fd_c);
    at->lock_fd = at->lock_fd_c = -1;
    arena_free(at->md_arena);
    at->md_arena = NULL;
    char sql[512], s0[64], s1[64];
    stg_name(s0, sizeof s0, ap, at, 0);
    stg_name(s1, sizeof s1, ap, at, 1);
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS memory.main.%s; DROP TABLE IF EXISTS memory.main.%s", s0, s1);
    engine_exec(ap->conn, sql, NULL);
    applier_forget_files(at);
    applier_preload_free(applier_preload_join(at));
}

/* A source's schema and table names become lake names (<source>.<schema>.<table> and
 * <table>_changes), so they are checked before anything is made of them: a name that
 * could leave the warehouse (a "/", "..") or is not plain text is refused, naming the
 * source table, rather than changed behind the user's back. */
static int check_source_name(struct cdc_applier *ap, const char *schema, const char *name, struct loch_err *err)
{
    struct arena *a = arena_new();
    struct loch_err e;
    loch_err_clear(&e);
    const char *ns = arena_printf(a, "%s.%s", ap->o.source, schema);
    int rc = strchr(schema, '.') ? loch_errf(&e, LOCH_ENAME, "invalid schema name: it contains \".\", which "
                                                              "would make it two namespace levels")
                                 : catalog_check_name(ns, name, &e);
    if (!rc)
        rc = catalog_check_name(ns, arena_printf(a, "%s_changes", name), &e);
    if (rc) {
        loch_errf(err, rc, "cannot replicate table %s.%s of source %s: %s", schema, name, ap->o.source, e.msg);
        loch_err_hint(err, "rename the table in the source, or leave it out with the source's exclude: [\"%s.%s\"] "
                           "in loch.yaml",
                      schema, name);
    }
    arena_free(a);
    return rc;
}

static bool same_shape(const struct cdc_table *a, const struct cdc_table *b)
{
    if (a->n_columns != b->n_columns || a->has_key != b->has_key || a->full_identity != b->full_identity ||
        a->insert_only != b->insert_only)
        return false;
    for (size_t i = 0; i < a->n_columns; i++)
        if (strcmp(a->columns[i].name, b->columns[i].name) || a->columns[i].key != b->columns[i].key ||
            !iceberg_type_equal(&a->columns[i].type, &b->columns[i].type))
            return false;
    return true;
}

int cdc_applier_table(struct cdc_applier *ap, const struct cdc_table *t, struct loch_err *err)
{
    struct atable *at = applier_find_table(ap, t->schema, t->name);
    if (at && same_shape(&at->t, t))
        return 0;
    int rc;
    if (!at && (rc = check_source_name(ap, t->schema, t->name, err)))
        return rc;
    rc = applier_land(ap, err);
    if (rc)
        return rc;
    bool fresh = !at, key_same = at && same_key(&at->t, t);
    if (at && at->s[ap->cur].n_staged && (!key_same || stage_kinds_differ(at, t))) {
        if (ap->in_txn)
            return loch_errf(err, LOCH_EUNSUPPORTED,
                             "the %s of %s.%s changed inside a transaction that already changed it",
                             key_same ? "type of a column" : "key", t->schema, t->name);
        if ((rc = cdc_applier_flush(ap, NULL, NULL, err)))
            return rc;
    }
    struct cdc_table old = at ? at->t : (struct cdc_table){0};
    const size_t *old_sc = at ? at->sc : NULL;
    bool keep_stage = at && at->s[ap->cur].n_staged;
    if (!at) {
        at = arena_alloc(ap->arena, sizeof *at);
        at->lock_fd = at->lock_fd_c = -1;
        at->no = ap->next_no++;
        at->s[0].trunc_seq = at->s[1].trunc_seq = -1;
        at->ns = arena_printf(ap->arena, "%s.%s", ap->o.source, t->schema);
        at->name = arena_strdup(ap->arena, t->name);
        at->cname = arena_printf(ap->arena, "%s_changes", t->name);
        if (ap->n_tables == ap->cap_tables) {
            ap->cap_tables = ap->cap_tables ? 2 * ap->cap_tables : 16;
            ap->tables = xrealloc(ap->tables, ap->cap_tables * sizeof *ap->tables);
        }
        ap->tables[ap->n_tables++] = at;
        rc = sink_lock(ap->o.state_dir, at->ns, at->name, &at->lock_fd, err);
        if (!rc)
            rc = sink_lock(ap->o.state_dir, at->ns, at->cname, &at->lock_fd_c, err);
        if (rc) {
            at->dropped = true;
            return rc;
        }
    }
    copy_table(ap->arena, &at->t, t);
    at->t.source = ap->o.source;
    at->kills = t->has_key || t->full_identity;
    at->key = arena_alloc(ap->arena, (t->n_columns + 1) * sizeof *at->key);
    at->n_key = 0;
    for (size_t i = 0; i < t->n_columns; i++)
        if ((t->has_key && t->columns[i].key) || (!t->has_key && t->full_identity))
            at->key[at->n_key++] = i;
    struct arena *a = arena_new();
    rc = create_lake_table(ap, at->ns, at->name, schema_for(a, &at->t, false, NULL, NULL), err);
    if (!rc)
        rc = create_lake_table(ap, at->ns, at->cname,
                               schema_for(a, &at->t, true, &ap->o.position_type, ap->o.position_column), err);
    arena_free(a);
    int cl[2] = {-1, -1}; /* no maintenance commit between our look and our schema commits */
    if (!rc)
        rc = applier_commit_lock(ap, at, cl, err);
    if (!rc)
        rc = applier_load_md(ap, at, err);
    if (!rc && fresh) {
        remove_orphans(ap, at->md, at->loc);
        remove_orphans(ap, at->cmd, at->cloc);
    }
    if (!rc)
        rc = evolve_one(ap, at, false, err);
    if (!rc)
        rc = evolve_one(ap, at, true, err);
    if (!rc)
        rc = applier_load_md(ap, at, err);
    sink_unlock(cl[0]);
    sink_unlock(cl[1]);
    if (!rc)
        rc = keep_stage ? extend_stage(ap, at, &old, old_sc, err) : create_stage(ap, at, err);
    if (!rc && (fresh || !key_same)) {
        /* built by the next flush (on the flush thread, while the stream is received) */
        applier_forget_files(at);
        applier_preload_free(applier_preload_join(at));
        at->need_index = true;
        if (fresh)
            applier_preload_start(ap, at);
    }
    /* The in-batch map holds rows of the old shape: forget them (an unchanged value of a
     * row changed earlier in this batch then resolves from the lake). */
    at->s[ap->cur].n_buckets = 0;
    at->s[ap->cur].buckets = NULL;
    return rc;
}

int cdc_applier_rename_column(struct cdc_applier *ap, const char *schema, const char *table, const char *from,
                              const char *to, struct loch_err *err)
{
    struct atable *at = applier_find_table(ap, schema, table);
    if (!at)
        return loch_errf(err, LOCH_EINVAL, "rename of column %s in undeclared table %s.%s", from, schema, table);
    int rc = applier_land(ap, err);
    int cl[2] = {-1, -1};
    if (!rc)
        rc = applier_commit_lock(ap, at, cl, err);
    if (!rc)
        rc = applier_load_md(ap, at, err); /* maintenance may have moved it since */
    for (int c = 0; c < 2 && !rc; c++) {
        struct arena *a = arena_new();
        const struct iceberg_metadata *m = c ? at->cmd : at->md;
        const char *loc = c ? at->cloc : at->loc;
        struct iceberg_schema *next;
        rc = iceberg_schema_rename_column(a, iceberg_metadata_current_schema(m), from, to, &next, err);
        if (!rc) {
            struct iceberg_change *ch = iceberg_change_begin(a, m, loc);
            iceberg_change_set_schema(ch, next);
            struct sink_table_change tc = {at->ns, c ? at->cname : at->name, loc, ch};
            rc = sink_commit(ap->fcat, ap->fst, &tc, 1, NULL, 0, a, err);
        }
        arena_free(a);
    }
    if (!rc)
        rc = applier_load_md(ap, at, err);
    sink_unlock(cl[0]);
    sink_unlock(cl[1]);
    for (size_t i = 0; !rc && i < at->t.n_columns; i++)
        if (!strcmp(at->t.columns[i].name, from))
            at->t.columns[i].name = arena_strdup(ap->arena, to);
    return rc;
}

int cdc_applier_drop_table(struct cdc_applier *ap, const char *schema, const char *table, struct loch_err *err)
{
    struct atable *at = applier_find_table(ap, schema, table);
    if (!at)
        return 0;
    int rc = applier_land(ap, err);
    if (rc)
        return rc;
    if (at->md) { /* an index saved at the last stop would outlive the table */
        char *path = applier_index_path(ap, at);
        unlink(path);
        free(path);
    }
    if (at->s[ap->cur].n_staged || ap->in_txn) {
        at->drop_after_flush = true;
        return 0;
    }
    applier_table_close(ap, at);
    at->dropped = true;
    log_info("%s.%s: source table dropped; the lake table stays", at->ns, at->name);
    return 0;
}
