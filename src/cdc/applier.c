/* applier.c: whole source transactions -> lake commits (see change.h). Not for talking
 * to sources (cdc/pg/, cdc/mysql/).
 *
 * How a flush works, per touched table (all inside DuckDB, on temp tables):
 *   stg_*  every staged change, integer columns as BIGINT, the rest as text (_seq, _op,
 *          _ts, _pos, _txid, _u = unchanged column list or NULL, c<i> = after image (D:
 *          before image), ok<k> = old key, lk<k> = key under which the lake holds the
 *          row an unchanged value comes from)
 *   kx     the primary-key index (keyidx.h, in memory): key (integers as 8 bytes, other
 *          types as DuckDB's text of the typed value) -> (fid, pos) of the live row; fid
 *          numbers the table's data files (fpath). Read back from the file a clean
 *          stop saved when it still matches the table, else built from the lake (live
 *          files, deletes applied, plus files loaded but not committed yet), by the first
 *          flush that needs it. Insert-only tables keep none.
 * The typed changes (ty) give the live rows (lv: for each key touched, the last put,
 * unless a later change killed it), position deletes for every indexed row whose key
 * was touched, and the _changes rows. All tables + the checkpoint go in one sink_commit;
 * the index moves only after that commit succeeded.
 *
 * Two batches alternate (struct batch, struct tstage; staging tables stg_<id>_<no>_<set>
 * are plain tables of the in-memory database, appended on the staging connection): the
 * source stages into one while a flush thread writes the other (cdc_applier_flush_start),
 * so receiving never waits on the lake. Flushes run one at a time and in order; every
 * call that changes tables or the index (table, rename, drop, load, flush) first waits
 * for the flush in the air. The flush thread owns the work connections, the catalog and
 * store handles (ap->conn, conn2, fcat, fst) while it runs; the source thread touches only
 * the staging connection then. A flush writes the files of its tables on two threads at
 * once, each with its work connection (see flush_tables); everything on that path runs
 * its SQL through wconn(), the connection of the thread it runs on. */
#include "cdc/applier.h"
#include "cdc/keyidx.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"
#include "catalog/catalog.h"
#include "iceberg/table.h"
#include "sink/sink.h"

#define KV_MAX 1024

/* In-batch map: key text -> latest after image, so an unchanged (TOASTed) value can be
 * taken from an earlier change of the same flush. Chained, newest first, so a rollback
 * can pop the open transaction's entries. */
struct mentry {
    struct mentry *next;
    uint64_t h;
    char *key;
    size_t key_len;
    int64_t seq;
    struct cdc_value *row; /* n_columns values (arena copies); unchanged ones still marked */
    char **lk;             /* lake key texts for values still unchanged */
};

/* What one table has staged in one batch. */
struct tstage {
    int64_t n_staged, n_unresolved, trunc_seq;
    size_t n_buckets;
    struct mentry **buckets;         /* in the batch arena */
    struct iceberg_data_file *loads; /* batch arena */
    size_t n_loads, cap_loads;
};

struct atable {
    struct cdc_table t;
    char *ns, *name, *cname;
    int no;                  /* temp table suffix */
    int lock_fd, lock_fd_c;
    size_t *key;             /* column indexes: primary key, all columns (full identity), none */
    size_t n_key;
    bool kills;              /* updates/deletes are applied (has key or full identity) */
    struct engine_appender *app[2]; /* per batch, on the staging connection */
    size_t *sc;              /* staging column of each t column (c<sc[i]>) */
    int *rev;                /* t column of each staging column, -1 = dropped since */
    bool *sint;              /* staging column holds BIGINT (integer columns), else VARCHAR */
    bool *kint;              /* the same for ok<k>, per key column */
    size_t stg_nc;
    bool drop_after_flush;
    int64_t next_fid;        /* data files numbered so far (fpath) */
    struct keyidx *kx;
    bool need_index;         /* kx is to be built from the lake before it is used */
    char **fpath;            /* malloc'd URIs, by fid */
    size_t cap_fil;
    struct preload *pre;     /* the index saved at the last stop, being read on its own thread */
    struct tstage s[2];      /* per batch */
    bool dropped;
    /* lake state, reloaded after each commit */
    struct arena *md_arena;
    const char *loc, *cloc;
    struct iceberg_metadata *md, *cmd;
};

/* A saved key index read on its own thread from the moment its table is declared, so
 * the first flush finds it ready (restore_index takes it). */
struct preload {
    pthread_t thread;
    char *path, *tag;
    struct keyidx *kx;
    char **names;
    size_t n_names;
    int rc;
    struct loch_err err;
};

/* One batch: what is staged between two flushes. */
struct batch {
    struct arena *arena;       /* lifetime: until the batch's flush ends */
    char *checkpoint;          /* of the last whole transaction staged */
    int64_t last_ts, first_ms;
    int64_t first_commit_us;   /* source commit time of the oldest staged transaction */
    size_t n_changes;
    size_t n_txn;
    char **pos;                /* position of each staged transaction, by ordinal */
    size_t cap_pos;
    struct catalog_kv kv[KV_MAX];
    size_t n_kv;
};

struct cdc_applier {
    struct cdc_applier_options o;
    struct catalog *fcat;      /* the applier's own handles (the flush thread uses them) */
    struct store *fst;
    struct engine_conn *conn;  /* work: index, flush SQL, loads */
    struct engine_conn *conn2; /* work of the flush's second thread (flush_tables) */
    struct engine_conn *sconn; /* staging appenders */
    int id;                    /* staging table names are unique per applier */
    struct arena *arena;       /* lifetime: the applier */
    struct arena *arena2;      /* lifetime: one flush (what its second thread wrote) */
    struct batch bt[2];
    int cur;                   /* the batch being staged; the other may be in flight */
    struct atable **tables;
    size_t n_tables, cap_tables;
    int next_no;
    int64_t seq;
    bool in_txn;
    int64_t txn_first_seq;
    char *txid;
    int64_t ts;
    int64_t flush_ewma_ms;     /* how long flushes take (moving average) */
    int threads;               /* DuckDB threads last set: 0 unknown */
    /* the flush in the air (batch 1 - cur) */
    bool flying;
    pthread_t flight;
    atomic_bool landed;
    int flight_rc;
    int64_t flight_ms;
    struct loch_err flight_err;
    char *durable;             /* a checkpoint made durable and not yet reported (malloc'd) */
    bool broken;               /* a flush failed: key indexes may not match the lake */
    struct atable *last;       /* the table of the last change, and the source's handle */
    const struct cdc_table *last_t; /* for it (saves a look-up by name per change) */
    struct cdc_applier_stats stats;
};

static atomic_int applier_ids;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t fnv(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 1099511628211ULL;
    return h;
}

static char *qi(struct arena *a, const char *s)
{
    struct buf b = {0};
    buf_sql_ident(&b, s);
    char *o = arena_strdup(a, b.data);
    buf_free(&b);
    return o;
}

void cdc_cast_sql(struct buf *b, const char *expr, const struct iceberg_type *t);

/* Iceberg int and long: staged as BIGINT (an appended string costs DuckDB string storage
 * and statistics per value, and integers are most keys) and indexed as 8 bytes. */
static bool int_type(const struct iceberg_type *t) { return t->id == ICEBERG_INT || t->id == ICEBERG_LONG; }

static void cast_expr(struct buf *b, const char *x, const struct iceberg_type *t)
{
    char duck[64];
    if (t->id == ICEBERG_BINARY || t->id == ICEBERG_FIXED)
        buf_printf(b, "from_hex(%s)", x);
    else
        buf_printf(b, "CAST(%s AS %s)", x, iceberg_type_duckdb(t, duck, sizeof duck));
}

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

/* The work connection of the calling thread: conn2 on the flush's second thread (it sets
 * work_conn), ap->conn everywhere else. Temp tables live per connection: a table's flush
 * and its index update after the commit run on the same one (struct pending). */
static _Thread_local struct engine_conn *work_conn;

static struct engine_conn *wconn(const struct cdc_applier *ap) { return work_conn ? work_conn : ap->conn; }

static int exec(struct cdc_applier *ap, const char *sql, struct loch_err *err)
{
    return engine_exec(wconn(ap), sql, err);
}

static int execb(struct cdc_applier *ap, struct buf *b, struct loch_err *err)
{
    int rc = engine_exec(wconn(ap), b->data, err);
    buf_free(b);
    return rc;
}

/* The flush's work tables are per source table (__ty -> __ty_<no>), because the index
 * moves only after every table's files are written. Rewrites b in place. */
static void sfx(struct buf *b, int no)
{
    static const char *names[] = {"__ty", "__ev", "__lv", "__need", "__oldv"};
    struct buf o = {0};
    for (size_t i = 0; i < b->len;) {
        bool hit = false;
        for (size_t k = 0; k < sizeof names / sizeof names[0] && !hit; k++) {
            size_t l = strlen(names[k]);
            char nx = i + l < b->len ? b->data[i + l] : 0;
            if (i + l <= b->len && !memcmp(b->data + i, names[k], l) && !(nx == '_' || (nx >= 'a' && nx <= 'z'))) {
                buf_printf(&o, "%s_%d", names[k], no);
                i += l;
                hit = true;
            }
        }
        if (!hit)
            buf_putc(&o, b->data[i++]);
    }
    buf_free(b);
    *b = o;
}

static int execs(struct cdc_applier *ap, struct buf *b, int no, struct loch_err *err)
{
    sfx(b, no);
    int64_t t0 = now_ms();
    char head[72];
    snprintf(head, sizeof head, "%s", b->data);
    int rc = execb(ap, b, err);
    log_debug("applier: %lld ms: %s", (long long)(now_ms() - t0), head);
    return rc;
}

/* ---- open / close ---- */

/* DuckDB's threads for this applier's work: every core while loading (converting source
 * rows to Parquet is the load's work), one while streaming (see app_replication_engine).
 * A setting the engine refuses (a locked configuration) is left as it is. */
static void use_threads(struct cdc_applier *ap, bool all)
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

static void stg_name(char *out, size_t n, const struct cdc_applier *ap, const struct atable *at, int set)
{
    snprintf(out, n, "stg_%d_%d_%d", ap->id, at->no, set);
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

/* Waits for the flush in the air, if any; its checkpoint becomes ap->durable. Returns
 * the flush's result (its error in err). */
static int land(struct cdc_applier *ap, struct loch_err *err);
/* Drops the key index and the file numbering of a table. */
static void forget_files(struct atable *at);
/* Saves the key index of a table for the next start, when it matches the lake. */
static void save_index(struct cdc_applier *ap, struct atable *at);
/* Waits for the table's preload, if any, and hands it over (at->pre is then NULL). */
static struct preload *preload_join(struct atable *at);
static void preload_free(struct preload *p);

static void table_close(struct cdc_applier *ap, struct atable *at)
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
    forget_files(at);
    preload_free(preload_join(at));
}

void cdc_applier_close(struct cdc_applier *ap)
{
    if (!ap)
        return;
    struct loch_err e;
    if (land(ap, &e))
        ap->broken = true;
    for (size_t i = 0; i < ap->n_tables; i++) {
        if (!ap->broken)
            save_index(ap, ap->tables[i]);
        table_close(ap, ap->tables[i]);
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

static char *ckpt_key(struct arena *a, const char *source) { return arena_printf(a, "cdc.%s.checkpoint", source); }

int cdc_applier_checkpoint(struct catalog *cat, const char *source, struct arena *a, char **out,
                           struct loch_err *err)
{
    return catalog_get_kv(cat, ckpt_key(a, source), a, out, err);
}

int cdc_applier_set_checkpoint(struct catalog *cat, const char *source, const char *checkpoint,
                               struct loch_err *err)
{
    struct arena *a = arena_new();
    struct catalog_kv kv = {ckpt_key(a, source), checkpoint};
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

void cdc_applier_stats(const struct cdc_applier *ap, struct cdc_applier_stats *out) { *out = ap->stats; }

/* ---- tables ---- */

static struct atable *find_table(struct cdc_applier *ap, const char *schema, const char *name)
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

static int load_md(struct cdc_applier *ap, struct atable *at, struct loch_err *err)
{
    struct arena *a = arena_new();
    struct catalog_table ct, cc;
    int rc = catalog_load_table(ap->fcat, at->ns, at->name, a, &ct, err);
    if (!rc)
        rc = catalog_load_table(ap->fcat, at->ns, at->cname, a, &cc, err);
    if (!rc)
        rc = iceberg_table_load(ap->fst, ct.metadata_location, a, &at->md, err);
    if (!rc)
        rc = iceberg_table_load(ap->fst, cc.metadata_location, a, &at->cmd, err);
    if (rc) {
        arena_free(a);
        return rc;
    }
    at->loc = ct.metadata_location;
    at->cloc = cc.metadata_location;
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

static int create_lake_table(struct cdc_applier *ap, const char *ns, const char *name,
                             const struct iceberg_schema *s, struct loch_err *err)
{
    struct arena *a = arena_new();
    struct catalog_table ct;
    struct loch_err e2;
    int rc = 0;
    if (catalog_load_table(ap->fcat, ns, name, a, &ct, &e2) != 0) {
        char *location = sink_table_location(a, ap->fst->root, ns, name);
        struct iceberg_metadata *md = iceberg_metadata_new(a, location, s);
        const char *v1;
        rc = iceberg_table_create(ap->fst, md, a, &v1, err);
        if (!rc) {
            struct catalog_update u = {ns, name, NULL, v1};
            rc = catalog_commit(ap->fcat, &u, 1, NULL, 0, err);
        }
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

/* ---- the key index ---- */

/* Appends one key column's text as the index joins them ("N|" for NULL, else "<len>:"). */
static void key_part(struct buf *b, const char *p, size_t len, bool null)
{
    if (null) {
        buf_append(b, "N|", 2);
        return;
    }
    char num[24];
    buf_append(b, num, util_u64_dec(num, len));
    buf_putc(b, ':');
    buf_append(b, p, len);
}

/* How the index reads a key column: integers as BIGINT (compared as 8 bytes: no text to
 * make for the common key type), everything else as DuckDB's text of the typed value. */
static void key_sql(struct buf *b, const char *expr, const struct iceberg_type *t)
{
    bool integer = int_type(t);
    buf_printf(b, "CAST(%s AS %s)", expr, integer ? "BIGINT" : "VARCHAR");
}

/* Runs sql, whose columns are the n_key key columns (key_sql) then n_int integers, and
 * calls fn with the rows of each result chunk: e[i] the row's joined key (its fid and pos
 * free for fn to fill), ints[i] its integers (-1 for NULL). Batches let the index overlap
 * its cache misses (keyidx_*_many). Streams in O(1) memory, unless fn uses the connection
 * (an appender's flush would end the stream): buffered. */
typedef void (*key_rows_fn)(void *ctx, struct keyidx_entry *e, const int64_t (*ints)[4], size_t n);

static int each_key(struct cdc_applier *ap, const char *sql, size_t n_key, size_t n_int, bool buffered,
                    key_rows_fn fn, void *ctx, struct loch_err *err)
{
    struct engine_stmt *st = NULL;
    struct engine_stream *es = NULL;
    int rc = engine_prepare(wconn(ap), sql, &st, err);
    if (!rc)
        rc = engine_execute(st, &es, err);
    if (!rc && buffered)
        rc = engine_stream_buffer(es, err);
    struct buf kb = {0};
    struct keyidx_entry *e = NULL;
    int64_t (*ints)[4] = NULL;
    size_t cap = 0;
    bool integer[64] = {false};
    for (size_t k = 0; !rc && k < n_key && k < 64; k++) {
        enum engine_type t = engine_stream_col(es, k)->type;
        integer[k] = t == ENGINE_T_INT16 || t == ENGINE_T_INT32 || t == ENGINE_T_INT64;
    }
    while (!rc) {
        struct engine_chunk *ch = NULL;
        rc = engine_stream_next(es, &ch, err);
        if (rc || !ch)
            break;
        size_t n = engine_chunk_rows(ch);
        if (n > cap) {
            cap = n;
            e = xrealloc(e, cap * sizeof *e);
            ints = xrealloc(ints, cap * sizeof *ints);
        }
        buf_reset(&kb);
        for (size_t r = 0; r < n; r++) {
            size_t at = kb.len;
            for (size_t k = 0; k < n_key; k++) {
                struct engine_val v;
                bool have = engine_chunk_get(ch, k, r, &v);
                if (have && k < 64 && integer[k]) {
                    char raw[9] = {'I'};
                    memcpy(raw + 1, &v.i, 8);
                    buf_append(&kb, raw, sizeof raw);
                } else {
                    key_part(&kb, have ? v.p : NULL, have ? v.len : 0, !have);
                }
            }
            /* the key's offset in kb while kb may still move; made a pointer below */
            e[r] = (struct keyidx_entry){NULL, kb.len - at, 0, (int64_t)at};
            for (size_t i = 0; i < 4; i++) {
                struct engine_val v;
                ints[r][i] = i < n_int && engine_chunk_get(ch, n_key + i, r, &v) ? v.i : -1;
            }
        }
        for (size_t r = 0; r < n; r++) {
            e[r].key = kb.data ? kb.data + e[r].pos : "";
            e[r].pos = 0;
        }
        fn(ctx, e, (const int64_t (*)[4])ints, n);
    }
    free(e);
    free(ints);
    buf_free(&kb);
    engine_stream_free(es);
    engine_stmt_free(st);
    return rc;
}

static void forget_files(struct atable *at)
{
    for (int64_t i = 0; i < at->next_fid; i++)
        free(at->fpath[i]);
    free(at->fpath);
    at->fpath = NULL;
    at->cap_fil = 0;
    at->next_fid = 0;
    keyidx_free(at->kx);
    at->kx = NULL;
}

/* Numbers a data file of the table (path: its URI) for the index. */
static int32_t add_file(struct atable *at, const char *path)
{
    if ((size_t)at->next_fid == at->cap_fil) {
        at->cap_fil = at->cap_fil ? 2 * at->cap_fil : 64;
        at->fpath = xrealloc(at->fpath, at->cap_fil * sizeof *at->fpath);
    }
    at->fpath[at->next_fid] = xstrdup(path);
    return (int32_t)at->next_fid++;
}

struct add_ctx {
    struct keyidx *kx;
    int32_t fid;
};

static void add_rows(void *ctx, struct keyidx_entry *e, const int64_t (*ints)[4], size_t n)
{
    struct add_ctx *c = ctx;
    for (size_t i = 0; i < n; i++) {
        e[i].fid = c->fid;
        e[i].pos = ints[i][0];
    }
    keyidx_add_many(c->kx, e, n);
}

/* Indexes the rows of data file fid: key columns read as `cols` (SQL of the key columns,
 * each cast to VARCHAR), positions by file_row_number; `where` (may be empty) filters. */
static int index_file(struct cdc_applier *ap, struct atable *at, int32_t fid, const char *cols,
                      const char *read_opts, const char *where, struct loch_err *err)
{
    struct buf b = {0};
    buf_printf(&b, "SELECT %s%sfile_row_number FROM read_parquet(", cols, *cols ? ", " : "");
    buf_sql_str(&b, at->fpath[fid]);
    buf_printf(&b, ", file_row_number = true%s)%s", read_opts, where);
    struct add_ctx c = {at->kx, fid};
    int rc = each_key(ap, b.data, at->n_key, 1, false, add_rows, &c, err);
    buf_free(&b);
    return rc;
}

/* The key columns of a file written with the current schema, as VARCHAR. */
static char *key_cols_by_name(struct atable *at, struct arena *a)
{
    struct buf b = {0};
    for (size_t k = 0; k < at->n_key; k++) {
        struct buf id = {0};
        buf_sql_ident(&id, at->t.columns[at->key[k]].name);
        if (k)
            buf_puts(&b, ", ");
        key_sql(&b, id.data, &at->t.columns[at->key[k]].type);
        buf_free(&id);
    }
    char *o = arena_strdup(a, b.data ? b.data : "");
    buf_free(&b);
    return o;
}

/* Rebuilds the key index from the live files of the current-state table. */
static int build_index(struct cdc_applier *ap, struct atable *at, struct loch_err *err)
{
    int64_t t_start = now_ms();
    struct arena *a = arena_new();
    struct buf b = {0};
    forget_files(at);
    at->kx = keyidx_new();
    at->need_index = false;
    struct iceberg_scan *scan = NULL;
    int rc = iceberg_scan_plan(ap->fst, at->md, -1, a, &scan, err);
    if (!rc && scan->n_deletes) {
        buf_puts(&b, "CREATE OR REPLACE TEMP TABLE __loch_dl AS SELECT file_path, pos FROM read_parquet([");
        for (size_t i = 0; i < scan->n_deletes; i++) {
            char *lp = xstrdup(scan->deletes[i].path);
            if (i)
                buf_puts(&b, ", ");
            buf_sql_str(&b, lp ? lp : scan->deletes[i].path);
            free(lp);
        }
        buf_puts(&b, "])");
        rc = execb(ap, &b, err);
    }
    /* key columns by field id: files written before a rename carry the old name */
    struct buf cols = {0}, opts = {0};
    const struct iceberg_schema *cur = iceberg_metadata_current_schema(at->md);
    for (size_t k = 0; k < at->n_key; k++) {
        const struct iceberg_field *f = iceberg_schema_find(cur, at->t.columns[at->key[k]].name);
        char duck[64];
        char kx[32];
        snprintf(kx, sizeof kx, "k%zu", k);
        if (k)
            buf_puts(&cols, ", ");
        key_sql(&cols, kx, &at->t.columns[at->key[k]].type);
        buf_printf(&opts, "%s%d: {name: 'k%zu', type: ", k ? ", " : ", schema = MAP {", f ? f->id : -1, k);
        buf_sql_str(&opts, iceberg_type_duckdb(&at->t.columns[at->key[k]].type, duck, sizeof duck));
        buf_puts(&opts, ", default_value: NULL}");
    }
    if (at->n_key)
        buf_puts(&opts, "}");
    int64_t rows = 0;
    for (size_t i = 0; !rc && i < scan->n_data; i++)
        rows += scan->data[i].record_count;
    if (!rc)
        keyidx_reserve(at->kx, (size_t)rows);
    for (size_t i = 0; !rc && i < scan->n_data; i++) {
        int32_t fid = add_file(at, scan->data[i].path);
        buf_reset(&b);
        if (scan->n_deletes) {
            buf_puts(&b, " WHERE file_row_number NOT IN (SELECT pos FROM __loch_dl WHERE file_path = ");
            buf_sql_str(&b, scan->data[i].path);
            buf_puts(&b, ")");
        }
        rc = index_file(ap, at, fid, cols.data ? cols.data : "", opts.data ? opts.data : "", b.data ? b.data : "",
                        err);
    }
    buf_free(&cols);
    buf_free(&opts);
    log_debug("applier: %lld ms: key index of %s.%s: %zu keys in %lld files", (long long)(now_ms() - t_start),
              at->ns, at->name, keyidx_count(at->kx), (long long)at->next_fid);
    engine_exec(ap->conn, "DROP TABLE IF EXISTS temp.__loch_dl", NULL);
    buf_free(&b);
    arena_free(a);
    if (rc)
        loch_err_prefix(err, "building the key index of %s.%s", at->ns, at->name);
    return rc;
}

/* ---- the key index across restarts ----
 * A clean stop saves each built index to <state>/keyidx/<table uuid>.kx, tagged with the
 * table state it matches: snapshot, schema and how keys are rendered. The first flush of
 * the next start that needs the index loads it when the tag still holds (nothing else
 * committed to the table since), else rebuilds it from the lake. The file is removed once
 * read, so a crash later never meets an index it did not save. */

static char *index_path(struct cdc_applier *ap, struct atable *at)
{
    return xasprintf("%s/keyidx/%s.kx", ap->o.state_dir, at->md->table_uuid);
}

static char *index_tag(struct atable *at, struct arena *a)
{
    return arena_printf(a, "v1 %s %lld %d %s", at->md->table_uuid, (long long)at->md->current_snapshot_id,
                        at->md->current_schema_id, key_cols_by_name(at, a));
}

static void save_index(struct cdc_applier *ap, struct atable *at)
{
    if (at->dropped || !at->kx || at->need_index || !at->md || !at->kills)
        return;
    int64_t t0 = now_ms();
    struct arena *a = arena_new();
    struct loch_err e;
    char *dir = xasprintf("%s/keyidx", ap->o.state_dir);
    char *path = index_path(ap, at);
    int rc = util_mkdirs(dir, &e);
    if (!rc)
        rc = keyidx_save(at->kx, path, index_tag(at, a), at->fpath, (size_t)at->next_fid, &e);
    if (rc)
        log_warn("applier: the key index of %s.%s is not saved (the next start rebuilds it): %s", at->ns,
                 at->name, e.msg);
    else
        log_debug("applier: %lld ms: saved the key index of %s.%s (%zu keys)", (long long)(now_ms() - t0), at->ns,
                  at->name, keyidx_count(at->kx));
    free(path);
    free(dir);
    arena_free(a);
}

static void *preload_main(void *arg)
{
    struct preload *p = arg;
    p->rc = keyidx_load(p->kx, p->path, p->tag, &p->names, &p->n_names, &p->err);
    return NULL;
}

/* Starts reading the index saved for a table just declared, when there is one. */
static void preload_start(struct cdc_applier *ap, struct atable *at)
{
    if (at->pre || !at->kills || !at->md)
        return;
    struct arena *a = arena_new();
    struct preload *p = xcalloc(1, sizeof *p);
    p->path = index_path(ap, at);
    p->tag = xstrdup(index_tag(at, a));
    p->kx = keyidx_new();
    arena_free(a);
    if (!util_exists(p->path) || pthread_create(&p->thread, NULL, preload_main, p)) {
        preload_free(p);
        return;
    }
    at->pre = p;
}

static struct preload *preload_join(struct atable *at)
{
    struct preload *p = at->pre;
    if (p)
        pthread_join(p->thread, NULL);
    at->pre = NULL;
    return p;
}

static void preload_free(struct preload *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_names; i++)
        free(p->names[i]);
    free(p->names);
    keyidx_free(p->kx);
    free(p->path);
    free(p->tag);
    free(p);
}

/* Takes the index saved at the last clean stop (read ahead by preload_start, or read
 * now); false (rebuild) when there is none that matches the table now. */
static bool restore_index(struct cdc_applier *ap, struct atable *at)
{
    int64_t t0 = now_ms();
    struct arena *a = arena_new();
    char *tag = index_tag(at, a);
    struct preload *p = preload_join(at);
    if (!p) {
        p = xcalloc(1, sizeof *p);
        p->path = index_path(ap, at);
        p->tag = xstrdup(tag);
        p->kx = keyidx_new();
        preload_main(p);
    } else if (strcmp(p->tag, tag)) { /* the table moved on since it was declared */
        p->rc = loch_errf(&p->err, LOCH_ENOENT, "the saved key index is of another table state");
    }
    if (p->rc == LOCH_ECORRUPT || p->rc == LOCH_EIO)
        log_warn("applier: rebuilding the key index of %s.%s from the lake: %s", at->ns, at->name, p->err.msg);
    bool ok = p->rc == 0;
    if (ok) {
        forget_files(at);
        at->kx = p->kx;
        p->kx = NULL;
        for (size_t i = 0; i < p->n_names; i++)
            add_file(at, p->names[i]);
        at->need_index = false;
        log_debug("applier: %lld ms: key index of %s.%s: %zu keys, saved at the last stop", (long long)(now_ms() - t0),
                  at->ns, at->name, keyidx_count(at->kx));
    }
    unlink(p->path); /* taken, stale or damaged: no later start may meet it */
    preload_free(p);
    arena_free(a);
    return ok;
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
    struct atable *at = find_table(ap, t->schema, t->name);
    if (at && same_shape(&at->t, t))
        return 0;
    int rc = land(ap, err);
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
    if (!rc)
        rc = load_md(ap, at, err);
    if (!rc && fresh) {
        remove_orphans(ap, at->md, at->loc);
        remove_orphans(ap, at->cmd, at->cloc);
    }
    if (!rc)
        rc = evolve_one(ap, at, false, err);
    if (!rc)
        rc = evolve_one(ap, at, true, err);
    if (!rc)
        rc = load_md(ap, at, err);
    if (!rc)
        rc = keep_stage ? extend_stage(ap, at, &old, old_sc, err) : create_stage(ap, at, err);
    if (!rc && (fresh || !key_same)) {
        /* built by the next flush (on the flush thread, while the stream is received) */
        forget_files(at);
        preload_free(preload_join(at));
        at->need_index = true;
        if (fresh)
            preload_start(ap, at);
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
    struct atable *at = find_table(ap, schema, table);
    if (!at)
        return loch_errf(err, LOCH_EINVAL, "rename of column %s in undeclared table %s.%s", from, schema, table);
    int rc = land(ap, err);
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
        rc = load_md(ap, at, err);
    for (size_t i = 0; !rc && i < at->t.n_columns; i++)
        if (!strcmp(at->t.columns[i].name, from))
            at->t.columns[i].name = arena_strdup(ap->arena, to);
    return rc;
}

int cdc_applier_drop_table(struct cdc_applier *ap, const char *schema, const char *table, struct loch_err *err)
{
    struct atable *at = find_table(ap, schema, table);
    if (!at)
        return 0;
    int rc = land(ap, err);
    if (rc)
        return rc;
    if (at->md) { /* an index saved at the last stop would outlive the table */
        char *path = index_path(ap, at);
        unlink(path);
        free(path);
    }
    if (at->s[ap->cur].n_staged || ap->in_txn) {
        at->drop_after_flush = true;
        return 0;
    }
    table_close(ap, at);
    at->dropped = true;
    log_info("%s.%s: source table dropped; the lake table stays", at->ns, at->name);
    return 0;
}

/* ---- table renames ---- */

static bool same_name(const char *ns1, const char *n1, const char *ns2, const char *n2)
{
    return !strcmp(ns1, ns2) && !strcmp(n1, n2);
}

/* The lock fd held for ns.name among the renamed tables' old locks (taken out: -1 left). */
static int take_lock(int *fds, char **names, size_t n, const char *ns, const char *name, struct arena *a)
{
    char *want = arena_printf(a, "%s.%s", ns, name);
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0 && !strcmp(names[i], want)) {
            int fd = fds[i];
            fds[i] = -1;
            return fd;
        }
    return -1;
}

/* After a failed rename: lets go of the locks taken for new names (those that are still
 * a renamed table's own stay). */
static void release_new_locks(struct atable **at, size_t n, const int *new_fd)
{
    for (size_t j = 0; j < 2 * n; j++) {
        bool held = new_fd[j] < 0;
        for (size_t i = 0; i < n && !held; i++)
            held = at[i] && (at[i]->lock_fd == new_fd[j] || at[i]->lock_fd_c == new_fd[j]);
        if (!held)
            sink_unlock(new_fd[j]);
    }
}

/* Adds the move of a lake table kept under a target name to `aside`, when there is one.
 * (It is no source of this rename and no followed table: a dropped table's history.) */
static int stale_aside(struct cdc_applier *ap, const char *ns, const char *name, const char *aside,
                       struct catalog_rename *out, size_t *n_out, struct arena *a, struct loch_err *err)
{
    struct catalog_table ct;
    struct loch_err e;
    int rc = catalog_load_table(ap->fcat, ns, name, a, &ct, &e);
    if (rc == LOCH_ENOENT)
        return 0;
    if (rc) {
        *err = e;
        return rc;
    }
    log_warn("%s.%s: a lake table kept from a dropped source table is in the way of a rename; it is now %s.%s",
             ns, name, ns, aside);
    out[(*n_out)++] = (struct catalog_rename){ns, name, ns, aside};
    return 0;
}

int cdc_applier_rename_tables(struct cdc_applier *ap, const struct cdc_rename *r, size_t n, const char *checkpoint,
                              struct loch_err *err)
{
    if (ap->in_txn)
        return loch_errf(err, LOCH_EINVAL, "rename of %s.%s inside a transaction", n ? r[0].schema : "?",
                         n ? r[0].from : "?");
    int rc = land(ap, err);
    if (rc || n == 0)
        return rc;
    struct arena *a = arena_new();
    struct atable **at = arena_alloc(a, n * sizeof *at);
    const char **ns_to = arena_alloc(a, n * sizeof *ns_to);
    for (size_t i = 0; i < n && !rc; i++) {
        at[i] = find_table(ap, r[i].schema, r[i].from);
        ns_to[i] = arena_printf(a, "%s.%s", ap->o.source, r[i].schema_to);
        if (!at[i])
            rc = loch_errf(err, LOCH_EINVAL, "rename of undeclared table %s.%s", r[i].schema, r[i].from);
    }
    /* A target that is a followed table not renamed away: the source and the lake disagree. */
    for (size_t i = 0; i < n && !rc; i++) {
        struct atable *t = find_table(ap, r[i].schema_to, r[i].to);
        if (t && t->drop_after_flush)
            t = NULL; /* dropped by this very flush (e.g. renamed out of the followed set first) */
        bool moving = false;
        for (size_t k = 0; k < n && t && !moving; k++)
            moving = at[k] == t;
        if (t && !moving) {
            loch_errf(err, LOCH_EEXIST, "cannot rename %s.%s to %s.%s: replication still follows a table of that name",
                      at[i]->ns, at[i]->name, ns_to[i], r[i].to);
            loch_err_hint(err, "the source renamed onto a table the lake still follows; re-snapshot the source");
        }
        if (t && !moving)
            rc = LOCH_EEXIST;
    }
    /* The flush of what is staged (the source flushed what preceded the DDL: only its own
     * changes, e.g. emptying a table that left the followed set), the renames and the
     * checkpoint: one catalog transaction. */
    struct arena *ta = arena_new();
    char *done = NULL;
    bool in_tx = false;
    if (!rc && !(rc = catalog_tx_begin(ap->fcat, err))) {
        in_tx = true;
        rc = cdc_applier_flush(ap, ta, &done, err);
    }
    int *new_fd = arena_alloc(a, 2 * n * sizeof *new_fd);
    for (size_t j = 0; j < 2 * n; j++)
        new_fd[j] = -1;
    /* The catalog renames: each table and its _changes, then lake tables in the way. */
    struct catalog_rename *cr = arena_alloc(a, (4 * n + 1) * sizeof *cr);
    size_t n_cr = 0;
    char stamp[32];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tmv);
    for (size_t i = 0; i < n && !rc; i++) {
        cr[n_cr++] = (struct catalog_rename){at[i]->ns, at[i]->name, ns_to[i], r[i].to};
        cr[n_cr++] = (struct catalog_rename){at[i]->ns, at[i]->cname, ns_to[i], arena_printf(a, "%s_changes", r[i].to)};
    }
    for (size_t i = 0; i < n && !rc; i++) {
        bool vacated = false;
        for (size_t k = 0; k < n && !vacated; k++)
            vacated = same_name(at[k]->ns, at[k]->name, ns_to[i], r[i].to);
        if (vacated)
            continue;
        char *aside = arena_printf(a, "%s_dropped_%s", r[i].to, stamp);
        rc = stale_aside(ap, ns_to[i], r[i].to, aside, cr, &n_cr, a, err);
        if (!rc)
            rc = stale_aside(ap, ns_to[i], arena_printf(a, "%s_changes", r[i].to),
                             arena_printf(a, "%s_changes", aside), cr, &n_cr, a, err);
    }
    /* Writer locks under the new names: a name that stays among the renamed tables keeps
     * its lock (flock would wait on our own), the others are taken, the vacated let go. */
    int *old_fd = arena_alloc(a, 2 * n * sizeof *old_fd);
    char **old_name = arena_alloc(a, 2 * n * sizeof *old_name);
    for (size_t i = 0; i < n; i++) {
        old_fd[2 * i] = at[i] ? at[i]->lock_fd : -1;
        old_fd[2 * i + 1] = at[i] ? at[i]->lock_fd_c : -1;
        old_name[2 * i] = at[i] ? arena_printf(a, "%s.%s", at[i]->ns, at[i]->name) : "";
        old_name[2 * i + 1] = at[i] ? arena_printf(a, "%s.%s", at[i]->ns, at[i]->cname) : "";
    }
    for (size_t j = 0; j < 2 * n && !rc; j++) {
        const char *name = cr[j].name_to;
        new_fd[j] = take_lock(old_fd, old_name, 2 * n, cr[j].ns_to, name, a);
        if (new_fd[j] < 0)
            rc = sink_lock(ap->o.state_dir, cr[j].ns_to, name, &new_fd[j], err);
    }
    struct catalog_kv kv = {ckpt_key(a, ap->o.source), checkpoint};
    if (!rc)
        rc = catalog_rename_tables(ap->fcat, cr, n_cr, &kv, checkpoint ? 1 : 0, err);
    if (in_tx) {
        int rc2 = catalog_tx_end(ap->fcat, rc == 0, rc ? NULL : err);
        if (!rc)
            rc = rc2;
        if (rc)
            ap->broken = true; /* a flush may have moved key indexes past what the lake has */
    }
    if (!rc && (checkpoint || done)) {
        free(ap->durable);
        ap->durable = xstrdup(checkpoint ? checkpoint : done);
    }
    arena_free(ta);
    /* The locks now: on failure the tables keep theirs (the new ones go); on success the
     * tables take the new ones (the vacated go). */
    if (rc)
        release_new_locks(at, n, new_fd);
    for (size_t j = 0; j < 2 * n && !rc; j++)
        if (old_fd[j] >= 0)
            sink_unlock(old_fd[j]);
    for (size_t i = 0; i < n && !rc; i++) {
        struct atable *t = at[i];
        log_info("%s.%s: source table renamed; the lake tables are now %s.%s and %s.%s_changes", t->ns, t->name,
                 ns_to[i], r[i].to, ns_to[i], r[i].to);
        t->lock_fd = new_fd[2 * i];
        t->lock_fd_c = new_fd[2 * i + 1];
        t->ns = arena_strdup(ap->arena, ns_to[i]);
        t->name = arena_strdup(ap->arena, r[i].to);
        t->cname = arena_printf(ap->arena, "%s_changes", r[i].to);
        t->t.schema = arena_strdup(ap->arena, r[i].schema_to);
        t->t.name = t->name;
    }
    for (size_t i = 0; i < n && !rc; i++)
        rc = load_md(ap, at[i], err);
    arena_free(a);
    return rc;
}

/* ---- full load ---- */

static int write_file(struct cdc_applier *ap, struct atable *at, bool changes, const char *sql, struct arena *a,
                      struct iceberg_data_file *f, struct loch_err *err)
{
    int64_t t0 = now_ms();
    int rc = sink_write_data(wconn(ap), ap->fst, changes ? at->cmd : at->md, sql, a, f, err);
    log_debug("applier: %lld ms: write %s%s (%lld rows)", (long long)(now_ms() - t0), at->name, changes ? " changes" : "",
              (long long)f->record_count);
    return rc;
}

static void add_load(struct cdc_applier *ap, struct atable *at, const struct iceberg_data_file *f)
{
    struct tstage *S = &at->s[ap->cur];
    if (S->n_loads == S->cap_loads) {
        size_t n = S->cap_loads ? 2 * S->cap_loads : 8;
        S->loads = arena_grow(ap->bt[ap->cur].arena, S->loads, S->n_loads, n, sizeof *S->loads);
        S->cap_loads = n;
    }
    S->loads[S->n_loads++] = *f;
}

/* Columns of the current schema in order, each from t's column of that name as
 * <prefix><i>, NULL when t has no such column. */
static void select_cols(struct buf *b, struct atable *at, const struct iceberg_schema *s, const char *prefix,
                        size_t limit, struct arena *a)
{
    for (size_t f = 0; f < s->n_fields && f < limit; f++) {
        if (f)
            buf_puts(b, ", ");
        size_t i = 0;
        while (i < at->t.n_columns && strcmp(at->t.columns[i].name, s->fields[f].name))
            i++;
        if (i < at->t.n_columns)
            buf_printf(b, "%s%zu AS %s", prefix, i, qi(a, s->fields[f].name));
        else
            buf_printf(b, "NULL AS %s", qi(a, s->fields[f].name));
    }
}

int cdc_applier_load(struct cdc_applier *ap, const struct cdc_table *t, const char *select_sql, int64_t *n_rows,
                     struct loch_err *err)
{
    struct atable *at = find_table(ap, t->schema, t->name);
    if (!at)
        return loch_errf(err, LOCH_EINVAL, "load of undeclared table %s.%s", t->schema, t->name);
    if (ap->in_txn)
        return loch_errf(err, LOCH_EINVAL, "load of %s.%s inside a transaction", t->schema, t->name);
    int rc = land(ap, err);
    use_threads(ap, true);
    if (rc)
        return rc;
    struct arena *a = ap->bt[ap->cur].arena;
    struct buf q = {0};
    buf_puts(&q, "SELECT ");
    const struct iceberg_schema *s = iceberg_metadata_current_schema(at->md);
    select_cols(&q, at, s, "c", s->n_fields, a);
    buf_printf(&q, " FROM (SELECT ");
    for (size_t i = 0; i < at->t.n_columns; i++) {
        char src[32];
        snprintf(src, sizeof src, "__s%zu", i);
        if (i)
            buf_puts(&q, ", ");
        cast_expr(&q, src, &at->t.columns[i].type);
        buf_printf(&q, " AS c%zu", i);
    }
    buf_printf(&q, " FROM (%s) AS __s(", select_sql);
    for (size_t i = 0; i < at->t.n_columns; i++)
        buf_printf(&q, "%s__s%zu", i ? ", " : "", i);
    buf_puts(&q, "))");
    struct iceberg_data_file f;
    rc = write_file(ap, at, false, q.data, a, &f, err);
    buf_free(&q);
    if (rc)
        return loch_err_prefix(err, "loading %s.%s", at->ns, at->name);
    *n_rows = f.record_count;
    if (f.record_count == 0)
        return 0;
    add_load(ap, at, &f);
    /* The file is committed by the next flush; the key index is built (from the lake and
     * files still to commit) when a flush first needs it, not while loading. */
    forget_files(at);
    at->need_index = true;
    if (!ap->bt[ap->cur].first_ms)
        ap->bt[ap->cur].first_ms = now_ms();
    ap->stats.rows_loaded += f.record_count;
    return rc;
}

/* ---- transactions ---- */

int cdc_applier_begin(struct cdc_applier *ap, const char *txid, int64_t commit_ts_us, struct loch_err *err)
{
    if (ap->in_txn)
        return loch_errf(err, LOCH_EINVAL, "transaction %s begins inside transaction %s", txid, ap->txid);
    ap->in_txn = true;
    ap->txn_first_seq = ap->seq;
    ap->txid = arena_strdup(ap->bt[ap->cur].arena, txid);
    ap->ts = commit_ts_us;
    return 0;
}

/* The in-batch map's key: each key value as its length (4 bytes; all ones for NULL) and
 * its bytes. Called per change: no printf. */
static size_t key_text(struct atable *at, const struct cdc_value *v, struct buf *out)
{
    buf_reset(out);
    for (size_t k = 0; k < at->n_key; k++) {
        const struct cdc_value *x = &v[at->key[k]];
        uint32_t len = x->text ? (uint32_t)x->len : UINT32_MAX;
        buf_append(out, &len, sizeof len);
        if (x->text)
            buf_append(out, x->text, x->len);
    }
    return out->len;
}

static struct mentry *map_find(struct tstage *S, const char *key, size_t len, uint64_t h)
{
    if (!S->n_buckets)
        return NULL;
    for (struct mentry *e = S->buckets[h % S->n_buckets]; e; e = e->next)
        if (e->h == h && e->key_len == len && !memcmp(e->key, key, len))
            return e;
    return NULL;
}

static void map_put(struct arena *a, struct tstage *S, const char *key, size_t len, uint64_t h, int64_t seq,
                    struct cdc_value *row, char **lk)
{
    if (!S->n_buckets) {
        S->n_buckets = 4096;
        S->buckets = arena_alloc(a, S->n_buckets * sizeof *S->buckets);
    }
    struct mentry *e = arena_alloc(a, sizeof *e);
    e->h = h;
    e->key = arena_memdup(a, key, len);
    e->key_len = len;
    e->seq = seq;
    e->row = row;
    e->lk = lk;
    size_t b = h % S->n_buckets;
    e->next = S->buckets[b];
    S->buckets[b] = e;
}

static void app_text(struct engine_appender *app, const struct cdc_value *v)
{
    if (!v || !v->text || v->unchanged)
        engine_append_text(app, NULL, 0);
    else
        engine_append_text(app, v->text, v->len);
}

/* The integer a BIGINT staging column gets: the source's canonical decimal text, checked.
 * false when the text is not one. */
static bool parse_int(const struct cdc_value *v, int64_t *out)
{
    const char *p = v->text, *end = v->text + v->len;
    bool neg = p < end && *p == '-';
    p += neg;
    if (p == end || end - p > 19)
        return false;
    uint64_t x = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return false;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    if (x > (uint64_t)INT64_MAX + neg)
        return false;
    *out = neg ? (int64_t)(0 - x) : (int64_t)x;
    return true;
}

static bool int_ok(const struct cdc_value *v)
{
    int64_t x;
    return !v || !v->text || v->unchanged || parse_int(v, &x);
}

static void app_int(struct engine_appender *app, const struct cdc_value *v)
{
    int64_t x;
    if (!v || !v->text || v->unchanged || !parse_int(v, &x))
        engine_append_text(app, NULL, 0);
    else
        engine_append_int(app, x);
}

int cdc_applier_change(struct cdc_applier *ap, const struct cdc_change *c, struct loch_err *err)
{
    if (!ap->in_txn)
        return loch_errf(err, LOCH_EINVAL, "change outside a transaction");
    struct atable *at = ap->last && ap->last_t == c->table && !ap->last->dropped ? ap->last : NULL;
    if (!at)
        at = find_table(ap, c->table->schema, c->table->name);
    if (!at)
        return loch_errf(err, LOCH_EINVAL, "change for undeclared table %s.%s", c->table->schema, c->table->name);
    ap->last = at;
    ap->last_t = c->table;
    size_t n = at->t.n_columns;
    if ((c->op == CDC_INSERT && !c->after) || (c->op == CDC_UPDATE && !c->after) || (c->op == CDC_DELETE && !c->before))
        return loch_errf(err, LOCH_EINVAL, "%c change for %s.%s without its row image", c->op, at->ns, at->name);
    if (!at->kills && (c->op == CDC_UPDATE || c->op == CDC_DELETE))
        return 0; /* insert-only table: the source should not send these */
    int64_t seq = ap->seq++;
    struct batch *B = &ap->bt[ap->cur];
    struct tstage *S = &at->s[ap->cur];
    struct arena *a = B->arena;
    struct cdc_value *row = NULL;
    char **lk = NULL;
    const struct cdc_value *old = c->before ? c->before : c->after;
    struct buf kb = {0}, u = {0};
    int rc = 0;
    if (c->op == CDC_INSERT || c->op == CDC_UPDATE) {
        row = arena_alloc(a, (n ? n : 1) * sizeof *row);
        bool any_unch = false;
        for (size_t i = 0; i < n; i++) {
            row[i] = c->after[i];
            if (row[i].text && !row[i].unchanged)
                row[i].text = arena_memdup(a, row[i].text, row[i].len);
            any_unch |= row[i].unchanged;
        }
        if (any_unch && c->before) {
            /* a full old row (REPLICA IDENTITY FULL) holds the value */
            for (size_t i = 0; i < n; i++)
                if (row[i].unchanged && !c->before[i].unchanged) {
                    row[i] = c->before[i];
                    if (row[i].text)
                        row[i].text = arena_memdup(a, row[i].text, row[i].len);
                }
        }
        any_unch = false;
        for (size_t i = 0; i < n; i++)
            any_unch |= row[i].unchanged;
        if (any_unch && at->n_key) {
            size_t kl = key_text(at, old, &kb);
            struct mentry *e = map_find(S, kb.data, kl, fnv(kb.data, kl));
            if (e) {
                for (size_t i = 0; i < n; i++)
                    if (row[i].unchanged)
                        row[i] = e->row[i];
                lk = e->lk;
            }
        }
        any_unch = false;
        for (size_t i = 0; i < n; i++)
            if (row[i].unchanged) {
                if (!any_unch)
                    buf_putc(&u, ',');
                buf_printf(&u, "%zu,", at->sc[i]);
                any_unch = true;
            }
        if (any_unch && !lk) {
            lk = arena_alloc(a, (at->n_key + 1) * sizeof *lk);
            for (size_t k = 0; k < at->n_key; k++) {
                const struct cdc_value *x = &old[at->key[k]];
                lk[k] = x->text ? arena_strndup(a, x->text, x->len) : NULL;
            }
        }
        if (any_unch)
            S->n_unresolved++;
        if (at->n_key) {
            size_t kl = key_text(at, row, &kb);
            map_put(a, S, kb.data, kl, fnv(kb.data, kl), seq, row, any_unch ? lk : NULL);
        }
    }
    /* the value of each column as staged: checked before the row is begun, so a bad one
     * leaves no partial row behind */
    const struct cdc_value *okv = c->op == CDC_TRUNCATE ? NULL : old;
    for (size_t k = 0; k < at->n_key && okv; k++)
        if (at->kint[k] && !int_ok(&okv[at->key[k]]))
            rc = loch_errf(err, LOCH_ECONVERT, "%s.%s: key column %s: \"%.*s\" is not an integer", at->ns,
                           at->name, at->t.columns[at->key[k]].name, (int)okv[at->key[k]].len, okv[at->key[k]].text);
    for (size_t j = 0; j < at->stg_nc && !rc; j++) {
        int i = at->rev[j];
        const struct cdc_value *v = i < 0 ? NULL : row ? &row[i] : c->op == CDC_DELETE ? &c->before[i] : NULL;
        if (at->sint[j] && !int_ok(v))
            rc = loch_errf(err, LOCH_ECONVERT, "%s.%s: column %s: \"%.*s\" is not an integer", at->ns, at->name,
                           at->t.columns[i].name, (int)v->len, v->text);
    }
    if (rc) {
        buf_free(&kb);
        buf_free(&u);
        return rc;
    }
    struct engine_appender *app = at->app[ap->cur];
    engine_append_int(app, seq);
    char op = (char)c->op;
    engine_append_text(app, &op, 1);
    engine_append_int(app, ap->ts);
    engine_append_int(app, (int64_t)B->n_txn); /* -> its position at flush */
    engine_append_text(app, ap->txid, strlen(ap->txid));
    engine_append_text(app, u.len ? u.data : NULL, u.len); /* NULL: nothing unchanged */
    for (size_t k = 0; k < at->n_key; k++) {
        if (c->op == CDC_TRUNCATE)
            engine_append_text(app, NULL, 0);
        else if (at->kint[k])
            app_int(app, &old[at->key[k]]);
        else
            app_text(app, &old[at->key[k]]);
        if (lk && lk[k])
            engine_append_text(app, lk[k], strlen(lk[k]));
        else
            engine_append_text(app, NULL, 0);
    }
    for (size_t j = 0; j < at->stg_nc; j++) {
        int i = at->rev[j];
        const struct cdc_value *v = i < 0 ? NULL : row ? &row[i] : c->op == CDC_DELETE ? &c->before[i] : NULL;
        if (at->sint[j])
            app_int(app, v);
        else
            app_text(app, v);
    }
    rc = engine_append_end_row(app, err);
    if (c->op == CDC_TRUNCATE) {
        S->trunc_seq = seq;
        S->n_buckets = 0; /* nothing earlier in the batch survives */
        S->buckets = NULL;
    }
    S->n_staged++;
    B->n_changes++;
    ap->stats.changes++;
    buf_free(&kb);
    buf_free(&u);
    if (rc)
        return loch_err_prefix(err, "staging a change of %s.%s", at->ns, at->name);
    return 0;
}

int cdc_applier_commit(struct cdc_applier *ap, const char *position, const char *checkpoint, struct loch_err *err)
{
    if (!ap->in_txn)
        return loch_errf(err, LOCH_EINVAL, "commit outside a transaction");
    ap->in_txn = false;
    struct batch *B = &ap->bt[ap->cur];
    if (B->n_txn == B->cap_pos) {
        size_t nc = B->cap_pos ? 2 * B->cap_pos : 1024;
        B->pos = arena_grow(B->arena, B->pos, B->n_txn, nc, sizeof *B->pos);
        B->cap_pos = nc;
    }
    B->pos[B->n_txn] = arena_strdup(B->arena, position);
    B->checkpoint = arena_strdup(B->arena, checkpoint);
    B->last_ts = ap->ts;
    B->n_txn++;
    ap->stats.transactions++;
    if (!B->first_ms)
        B->first_ms = now_ms();
    if (!B->first_commit_us)
        B->first_commit_us = ap->ts;
    return 0;
}

void cdc_applier_rollback(struct cdc_applier *ap)
{
    if (!ap->in_txn)
        return;
    ap->in_txn = false;
    for (size_t i = 0; i < ap->n_tables; i++) {
        struct atable *at = ap->tables[i];
        struct tstage *S = &at->s[ap->cur];
        if (at->dropped || !at->app[ap->cur])
            continue;
        struct loch_err e;
        engine_appender_flush(at->app[ap->cur], &e);
        char sql[256], name[64];
        stg_name(name, sizeof name, ap, at, ap->cur);
        snprintf(sql, sizeof sql, "DELETE FROM memory.main.%s WHERE _seq >= %lld", name, (long long)ap->txn_first_seq);
        engine_exec(ap->sconn, sql, NULL);
        for (size_t b = 0; b < S->n_buckets; b++)
            while (S->buckets[b] && S->buckets[b]->seq >= ap->txn_first_seq)
                S->buckets[b] = S->buckets[b]->next;
        if (S->trunc_seq >= ap->txn_first_seq)
            S->trunc_seq = -1; /* an earlier truncate of this batch would be lost; see flush */
    }
    ap->seq = ap->txn_first_seq;
}

static bool batch_pending(const struct cdc_applier *ap, int set)
{
    const struct batch *B = &ap->bt[set];
    if (B->n_txn > 0 || B->n_kv > 0 || B->checkpoint)
        return true;
    for (size_t i = 0; i < ap->n_tables; i++)
        if (ap->tables[i]->s[set].n_loads > 0)
            return true;
    return false;
}

bool cdc_applier_pending(const struct cdc_applier *ap)
{
    return ap->flying || ap->durable || batch_pending(ap, ap->cur);
}

/* The interval is a bound on the time from source commit to lake commit: the batch is
 * flushed when its oldest transaction, counted from its commit at the source, would
 * otherwise wait longer than the interval minus what a flush takes (moving average). A
 * quarter interval of local time at least, so a lagging or skewed source clock cannot
 * cause a flush storm; at most the interval of local time. */
bool cdc_applier_flush_idle(const struct cdc_applier *ap) { return !ap->flying || atomic_load(&ap->landed); }

bool cdc_applier_flush_due(const struct cdc_applier *ap)
{
    const struct batch *B = &ap->bt[ap->cur];
    if (ap->in_txn || !B->first_ms)
        return false;
    int64_t local = now_ms() - B->first_ms, iv = ap->o.flush_interval_ms;
    if (B->n_changes >= ap->o.flush_max_changes || local >= iv)
        return true;
    if (ap->o.flush_min_changes && B->n_changes >= ap->o.flush_min_changes && cdc_applier_flush_idle(ap))
        return true;
    if (!B->first_commit_us || local < iv / 4)
        return false;
    int64_t since_commit = (util_now_us() - B->first_commit_us) / 1000;
    return since_commit >= iv - ap->flush_ewma_ms;
}

/* ---- flush ---- */

static void keymatch(struct buf *b, struct atable *at, const char *l, const char *lp, bool lnew, const char *r,
                     const char *rp, bool rnew)
{
    if (!at->n_key)
        buf_puts(b, "true");
    for (size_t k = 0; k < at->n_key; k++) {
        if (k)
            buf_puts(b, " AND ");
        if (lnew)
            buf_printf(b, "%s.c%zu", l, at->key[k]);
        else
            buf_printf(b, "%s.%s%zu", l, lp, k);
        buf_puts(b, " IS NOT DISTINCT FROM ");
        if (rnew)
            buf_printf(b, "%s.c%zu", r, at->key[k]);
        else
            buf_printf(b, "%s.%s%zu", r, rp, k);
    }
}

struct pending {
    struct atable *at;
    struct engine_conn *conn;  /* the work connection its files were written on */
    struct arena *a;           /* what they were written into (the writing thread's) */
    struct iceberg_data_file data, del, chg;
    bool truncated;
};

/* Calls fn for each distinct key the batch touched (__ev_<no>: deleted, moved or put). */
static int each_touched_key(struct cdc_applier *ap, struct atable *at, bool buffered, key_rows_fn fn, void *ctx,
                            struct loch_err *err)
{
    struct buf b = {0};
    buf_puts(&b, "SELECT DISTINCT ");
    for (size_t k = 0; k < at->n_key; k++) {
        char kx[32];
        snprintf(kx, sizeof kx, "k%zu", k);
        if (k)
            buf_puts(&b, ", ");
        key_sql(&b, kx, &at->t.columns[at->key[k]].type);
    }
    buf_puts(&b, " FROM __ev");
    sfx(&b, at->no);
    int rc = each_key(ap, b.data, at->n_key, 0, buffered, fn, ctx, err);
    buf_free(&b);
    return rc;
}

struct need_ctx {
    struct cdc_applier *ap;
    struct atable *at;
    struct engine_appender *app;
    bool failed;
};

/* Staged rows whose unchanged values come from the lake rows under their keys. */
static void need_rows(void *ctx, struct keyidx_entry *e, const int64_t (*ints)[4], size_t n)
{
    struct need_ctx *c = ctx;
    for (size_t i = 0; i < n; i++) {
        int32_t fid;
        int64_t pos;
        if (!keyidx_get(c->at->kx, e[i].key, e[i].len, &fid, &pos))
            continue;
        engine_append_int(c->app, ints[i][0]);
        engine_append_text(c->app, c->at->fpath[fid], strlen(c->at->fpath[fid]));
        engine_append_int(c->app, pos);
        struct loch_err err;
        if (engine_append_end_row(c->app, &err))
            c->failed = true;
    }
}

/* Position deletes gathered from the index, written sorted as the spec asks (by file
 * path, then position): sorting here costs a few ms where DuckDB's ORDER BY on the path
 * strings cost ~50 ms per 50k rows. */
struct del_pos {
    int32_t fid;
    int64_t pos;
};

struct del_ctx {
    struct del_pos *v;
    size_t n, cap;
};

static void del_pos(void *ctx, int32_t fid, int64_t pos)
{
    struct del_ctx *c = ctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        c->v = xrealloc(c->v, c->cap * sizeof *c->v);
    }
    c->v[c->n++] = (struct del_pos){fid, pos};
}

/* Keys the batch touched: every indexed row of them gets a position delete. */
static void del_keys(void *ctx, struct keyidx_entry *e, const int64_t (*ints)[4], size_t n)
{
    struct atable *at = ((void **)ctx)[0];
    (void)ints;
    keyidx_find_many(at->kx, e, n, del_pos, ((void **)ctx)[1]);
}

static _Thread_local char **sort_paths; /* for by_path: qsort takes no context */

static int by_path(const void *a, const void *b)
{
    return strcmp(sort_paths[*(const int32_t *)a], sort_paths[*(const int32_t *)b]);
}

static int by_rank(const void *a, const void *b)
{
    const struct del_pos *x = a, *y = b; /* fid holds the file's rank by path here */
    if (x->fid != y->fid)
        return x->fid < y->fid ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Fills __del with dc's positions in (path, pos) order; *single is the one data file they
 * all reference, or NULL. */
static int stage_deletes(struct cdc_applier *ap, struct atable *at, struct del_ctx *dc, const char **single,
                         struct loch_err *err)
{
    size_t nf = (size_t)at->next_fid;
    int32_t *order = xmalloc((nf ? nf : 1) * sizeof *order), *rank = xmalloc((nf ? nf : 1) * sizeof *rank);
    for (size_t i = 0; i < nf; i++)
        order[i] = (int32_t)i;
    sort_paths = at->fpath;
    qsort(order, nf, sizeof *order, by_path);
    for (size_t i = 0; i < nf; i++)
        rank[order[i]] = (int32_t)i;
    for (size_t i = 0; i < dc->n; i++)
        dc->v[i].fid = rank[dc->v[i].fid];
    if (dc->n) /* dc->v is NULL when nothing is deleted */
        qsort(dc->v, dc->n, sizeof *dc->v, by_rank);
    *single = dc->n && dc->v[0].fid == dc->v[dc->n - 1].fid ? at->fpath[order[dc->v[0].fid]] : NULL;
    struct engine_appender *app = NULL;
    int rc = exec(ap, "CREATE OR REPLACE TEMP TABLE __del (path VARCHAR, pos BIGINT)", err);
    if (!rc)
        rc = engine_appender_open(wconn(ap), "temp", "__del", &app, err);
    for (size_t i = 0; i < dc->n && !rc; i++) {
        const char *path = at->fpath[order[dc->v[i].fid]];
        engine_append_text(app, path, strlen(path));
        engine_append_int(app, dc->v[i].pos);
        rc = engine_append_end_row(app, err);
    }
    if (app && !rc)
        rc = engine_appender_flush(app, err);
    engine_appender_close(app);
    free(order);
    free(rank);
    return rc;
}

/* Writes the files of one table's batch `set` (its staging rows are committed); fills p. */
static int flush_files(struct cdc_applier *ap, struct atable *at, int set, struct pending *p, struct loch_err *err)
{
    struct arena *a = p->a;
    struct tstage *S = &at->s[set];
    int no = at->no;
    size_t n = at->t.n_columns;
    struct buf b = {0};
    int rc = 0;
    char stg[64];
    stg_name(stg, sizeof stg, ap, at, set);
    /* 1. values the source did not send (TOAST): from the lake rows they left unchanged */
    bool toast = S->n_unresolved > 0 && at->n_key;
    if (!rc && toast) {
        /* the lake rows those values come from: the index, by the key they had there */
        struct need_ctx nc = {ap, at, NULL, 0};
        char need[32];
        snprintf(need, sizeof need, "__need_%d", no);
        buf_printf(&b, "CREATE OR REPLACE TEMP TABLE %s (_seq BIGINT, local VARCHAR, _pos BIGINT)", need);
        rc = execb(ap, &b, err);
        if (!rc)
            rc = engine_appender_open(wconn(ap), "temp", need, &nc.app, err);
        buf_puts(&b, "SELECT ");
        for (size_t k = 0; k < at->n_key; k++) {
            char x[32];
            snprintf(x, sizeof x, "s.lk%zu", k);
            struct buf typed = {0};
            cast_expr(&typed, x, &at->t.columns[at->key[k]].type);
            key_sql(&b, typed.data, &at->t.columns[at->key[k]].type);
            buf_puts(&b, ", ");
            buf_free(&typed);
        }
        buf_printf(&b, "s._seq FROM memory.main.%s s WHERE s._u <> ''", stg);
        if (!rc)
            rc = each_key(ap, b.data, at->n_key, 1, true, need_rows, &nc, err);
        buf_free(&b);
        if (!rc && nc.failed)
            rc = loch_errf(err, LOCH_EENGINE, "staging the rows unchanged values come from");
        if (nc.app && !rc)
            rc = engine_appender_flush(nc.app, err);
        engine_appender_close(nc.app);
        struct engine_rows *r = NULL;
        buf_puts(&b, "SELECT DISTINCT local FROM __need");
        sfx(&b, no);
        if (!rc)
            rc = engine_query(wconn(ap), b.data, &r, err);
        buf_free(&b);
        if (!rc) {
            size_t nf = engine_rows_count(r);
            buf_puts(&b, "CREATE OR REPLACE TEMP TABLE __oldv AS SELECT n._seq");
            for (size_t i = 0; i < n; i++)
                buf_printf(&b, ", r.%s AS c%zu", qi(a, at->t.columns[i].name), i);
            if (nf) {
                buf_puts(&b, " FROM __need n JOIN read_parquet([");
                for (size_t i = 0; i < nf; i++) {
                    if (i)
                        buf_puts(&b, ", ");
                    buf_sql_str(&b, engine_rows_text(r, 0, i, a));
                }
                buf_puts(&b, "], filename = true, file_row_number = true, union_by_name = true) r "
                             "ON r.filename = n.local AND r.file_row_number = n._pos");
            } else {
                buf_puts(&b, " FROM __need n, (SELECT ");
                for (size_t i = 0; i < n; i++) {
                    char duck[64];
                    buf_printf(&b, "%sNULL::%s AS %s", i ? ", " : "",
                               iceberg_type_duckdb(&at->t.columns[i].type, duck, sizeof duck),
                               qi(a, at->t.columns[i].name));
                }
                buf_puts(&b, ") r WHERE false");
            }
            rc = execs(ap, &b, no, err);
        }
        engine_rows_free(r);
    }
    /* 2. typed changes */
    if (!rc) {
        buf_puts(&b, "CREATE OR REPLACE TEMP TABLE __ty AS SELECT s._seq, s._op, s._ts, __pos.pos AS _pos, s._txid");
        for (size_t i = 0; i < n; i++) {
            char x[32];
            snprintf(x, sizeof x, "s.c%zu", at->sc[i]);
            buf_puts(&b, ", ");
            if (toast)
                buf_printf(&b, "CASE WHEN contains(s._u, ',%zu,') THEN o.c%zu ELSE ", at->sc[i], i);
            cast_expr(&b, x, &at->t.columns[i].type);
            buf_printf(&b, "%s AS c%zu", toast ? " END" : "", i);
        }
        for (size_t k = 0; k < at->n_key; k++) {
            char x[32];
            snprintf(x, sizeof x, "s.ok%zu", k);
            buf_puts(&b, ", ");
            cast_expr(&b, x, &at->t.columns[at->key[k]].type);
            buf_printf(&b, " AS ok%zu", k);
        }
        buf_printf(&b, " FROM memory.main.%s s LEFT JOIN memory.main.__pos_%d AS __pos ON __pos.ord = s._tx%s", stg, ap->id,
                   toast ? " LEFT JOIN __oldv o ON o._seq = s._seq" : "");
        rc = execs(ap, &b, no, err);
        if (rc)
            loch_err_prefix(err, "converting the changes of %s.%s to their lake types", at->ns, at->name);
    }
    /* 3. live rows */
    if (!rc && at->kills) {
        buf_puts(&b, "CREATE OR REPLACE TEMP TABLE __ev AS SELECT ");
        for (size_t k = 0; k < at->n_key; k++)
            buf_printf(&b, "ok%zu AS k%zu, ", k, k);
        buf_puts(&b, "_seq, false AS put FROM __ty WHERE _op = 'D' OR (_op = 'U' AND NOT (");
        keymatch(&b, at, "__ty", "ok", false, "__ty", NULL, true);
        buf_puts(&b, ")) UNION ALL SELECT ");
        for (size_t k = 0; k < at->n_key; k++)
            buf_printf(&b, "c%zu AS k%zu, ", at->key[k], k);
        buf_puts(&b, "_seq, true FROM __ty WHERE _op IN ('I', 'U')");
        rc = execs(ap, &b, no, err);
        if (!rc) {
            buf_puts(&b, "CREATE OR REPLACE TEMP TABLE __lv AS SELECT t.* FROM __ty t JOIN (SELECT ");
            for (size_t k = 0; k < at->n_key; k++)
                buf_printf(&b, "k%zu, ", k);
            buf_puts(&b, "max(_seq) AS _ms FROM __ev GROUP BY ALL) m ON ");
            keymatch(&b, at, "t", NULL, true, "m", "k", false);
            buf_printf(&b, " AND t._seq = m._ms WHERE t._op IN ('I', 'U') AND t._seq > %lld", (long long)S->trunc_seq);
            rc = execs(ap, &b, no, err);
        }
    } else if (!rc) {
        buf_printf(&b, "CREATE OR REPLACE TEMP TABLE __lv AS SELECT * FROM __ty WHERE _op = 'I' AND _seq > %lld",
                   (long long)S->trunc_seq);
        rc = execs(ap, &b, no, err);
    }
    /* 4. position deletes of indexed rows whose key was touched (all on truncate) */
    p->truncated = S->trunc_seq >= 0;
    if (!rc && (at->kills || p->truncated)) {
        struct del_ctx dc = {0};
        if (p->truncated) {
            keyidx_each(at->kx, del_pos, &dc);
        } else {
            void *ctx[2] = {at, &dc};
            rc = each_touched_key(ap, at, false, del_keys, ctx, err);
        }
        struct sink_deletes_known known = {NULL};
        if (!rc)
            rc = stage_deletes(ap, at, &dc, &known.single_file, err);
        int64_t t0 = now_ms();
        if (!rc)
            rc = sink_write_deletes(wconn(ap), ap->fst, at->md, "SELECT path, pos FROM __del", &known, a, &p->del,
                                    err);
        free(dc.v);
        log_debug("applier: %lld ms: deletes %s (%lld rows)", (long long)(now_ms() - t0), at->name,
                  (long long)p->del.record_count);
    }
    /* 5. the new live rows (in any order: the index reads their positions back from the file) */
    const struct iceberg_schema *s = iceberg_metadata_current_schema(at->md);
    if (!rc) {
        buf_puts(&b, "SELECT ");
        select_cols(&b, at, s, "c", s->n_fields, a);
        buf_puts(&b, " FROM __lv");
        sfx(&b, no);
        rc = write_file(ap, at, false, b.data, a, &p->data, err);
        buf_free(&b);
    }
    /* 6. the change log */
    if (!rc) {
        const struct iceberg_schema *cs = iceberg_metadata_current_schema(at->cmd);
        buf_puts(&b, "SELECT ");
        for (size_t f = 0; f < cs->n_fields; f++) {
            const char *fn = cs->fields[f].name;
            if (f)
                buf_puts(&b, ", ");
            if (!strcmp(fn, "_op"))
                buf_puts(&b, "_op");
            else if (!strcmp(fn, "_commit_ts"))
                buf_puts(&b, "make_timestamptz(_ts)"); /* exact; a TIMESTAMP cast goes through ICU */
            else if (!strcmp(fn, ap->o.position_column))
                cast_expr(&b, "_pos", &ap->o.position_type);
            else if (!strcmp(fn, "_txid"))
                buf_puts(&b, "_txid");
            else {
                size_t i = 0;
                while (i < n && strcmp(at->t.columns[i].name, fn))
                    i++;
                if (i < n)
                    buf_printf(&b, "c%zu", i);
                else
                    buf_puts(&b, "NULL");
            }
            buf_printf(&b, " AS %s", qi(a, fn));
        }
        buf_puts(&b, " FROM __ty ORDER BY _seq");
        sfx(&b, no);
        rc = write_file(ap, at, true, b.data, a, &p->chg, err);
        buf_free(&b);
    }
    buf_free(&b);
    if (rc)
        loch_err_prefix(err, "flushing %s.%s", at->ns, at->name);
    return rc;
}

static void take_keys(void *ctx, struct keyidx_entry *e, const int64_t (*ints)[4], size_t n)
{
    (void)ints;
    keyidx_take_many(ctx, e, n);
}

/* After the commit: the index follows the lake. */
static int advance_index(struct cdc_applier *ap, struct atable *at, int set, struct pending *p, struct loch_err *err)
{
    struct buf b = {0};
    int no = at->no;
    int rc = 0;
    char stg[64];
    stg_name(stg, sizeof stg, ap, at, set);
    if (!at->kills || at->need_index) {
        /* insert-only tables keep no index between flushes (a TRUNCATE builds one for its
         * flush): it would only grow */
        forget_files(at);
        at->need_index = true;
    } else if (p->truncated) {
        keyidx_clear(at->kx);
    } else {
        rc = each_touched_key(ap, at, false, take_keys, at->kx, err);
    }
    if (!rc && p->data.record_count > 0 && !at->need_index) {
        struct arena *a = arena_new();
        int32_t fid = add_file(at, p->data.path);
        rc = index_file(ap, at, fid, key_cols_by_name(at, a), "", "", err);
        arena_free(a);
    }
    buf_printf(&b, "DELETE FROM memory.main.%s; DROP TABLE IF EXISTS __ty; DROP TABLE IF EXISTS __ev; "
               "DROP TABLE IF EXISTS __lv; DROP TABLE IF EXISTS __need; DROP TABLE IF EXISTS __oldv; "
               "DROP TABLE IF EXISTS __del", stg);
    if (!rc)
        rc = execs(ap, &b, no, err);
    buf_free(&b);
    return rc;
}

/* The tables of one flush, shared by its two threads: each takes the next table (the
 * most staged first, so the two finish close together) and writes its files on its own
 * work connection into its own arena. */
struct flush_work {
    struct cdc_applier *ap;
    int set;
    struct pending **order;
    size_t n;
    atomic_size_t next;
    atomic_bool failed;
    int rc2;                   /* the second thread's result */
    struct loch_err err2;
};

static int work_tables(struct flush_work *w, struct engine_conn *conn, struct arena *a, struct loch_err *err)
{
    for (;;) {
        size_t i = atomic_fetch_add(&w->next, 1);
        if (i >= w->n || atomic_load(&w->failed))
            return 0;
        struct pending *pp = w->order[i];
        pp->conn = conn;
        pp->a = a;
        int rc = flush_files(w->ap, pp->at, w->set, pp, err);
        if (rc) {
            atomic_store(&w->failed, true);
            return rc;
        }
    }
}

static void *second_main(void *arg)
{
    struct flush_work *w = arg;
    work_conn = w->ap->conn2;
    loch_err_clear(&w->err2);
    w->rc2 = work_tables(w, w->ap->conn2, w->ap->arena2, &w->err2);
    work_conn = NULL;
    return NULL;
}

static size_t staged_of(const struct pending *p, int set) { return p->at->s[set].n_staged; }

static _Thread_local int sort_set; /* for by_staged: qsort takes no context */

static int by_staged(const void *a, const void *b)
{
    size_t x = staged_of(*(struct pending *const *)a, sort_set), y = staged_of(*(struct pending *const *)b, sort_set);
    return x < y ? 1 : x > y ? -1 : 0;
}

/* flush_files of every pending table with staged changes, on this thread (ap->conn, the
 * batch's arena) and a second one (conn2, arena2) at once: a flush is mostly single-
 * threaded DuckDB statements, one table's after another, so two tables at a time use
 * both cores where one thread left the second to the receiving thread's spare time. */
static int flush_tables(struct cdc_applier *ap, int set, struct pending *p, size_t n_p, struct loch_err *err)
{
    struct arena *a = ap->bt[set].arena;
    struct flush_work w = {.ap = ap, .set = set};
    w.order = arena_alloc(a, (n_p + 1) * sizeof *w.order);
    for (size_t i = 0; i < n_p; i++)
        if (staged_of(&p[i], set))
            w.order[w.n++] = &p[i];
    sort_set = set;
    if (w.n > 1)
        qsort(w.order, w.n, sizeof *w.order, by_staged);
    atomic_init(&w.next, 0);
    atomic_init(&w.failed, false);
    arena_reset(ap->arena2);
    pthread_t th;
    bool two = w.n > 1 && pthread_create(&th, NULL, second_main, &w) == 0;
    int rc = work_tables(&w, ap->conn, a, err);
    if (two) {
        pthread_join(th, NULL);
        if (!rc && w.rc2) {
            rc = w.rc2;
            *err = w.err2;
        }
    }
    return rc;
}

/* Writes and commits batch `set` (its staging rows committed). Runs on the flush thread
 * or the caller's; touches only the work connection, fcat, fst, the batch and the tables'
 * stage `set`, index and metadata. */
static int flush_batch(struct cdc_applier *ap, int set, struct loch_err *err)
{
    int64_t t_start = now_ms();
    struct batch *B = &ap->bt[set];
    struct arena *a = B->arena;
    struct pending *p = arena_alloc(a, (ap->n_tables + 1) * sizeof *p);
    struct sink_table_change *tc = arena_alloc(a, (2 * ap->n_tables + 1) * sizeof *tc);
    size_t n_p = 0, n_tc = 0;
    int rc = 0;
    for (size_t i = 0; i < ap->n_tables && !rc; i++) {
        struct atable *at = ap->tables[i];
        struct tstage *S = &at->s[set];
        if (at->dropped || !at->need_index || !S->n_staged || (!at->kills && S->trunc_seq < 0))
            continue; /* an index nobody needs yet waits (insert-only tables: until a TRUNCATE) */
        if (!restore_index(ap, at))
            rc = build_index(ap, at, err);
        for (size_t k = 0; k < S->n_loads && !rc; k++) { /* loaded in this batch, not committed yet */
            struct arena *ka = arena_new();
            int32_t fid = add_file(at, S->loads[k].path);
            rc = index_file(ap, at, fid, key_cols_by_name(at, ka), "", "", err);
            arena_free(ka);
        }
    }
    if (!rc)
        rc = exec(ap, arena_printf(a, "CREATE OR REPLACE TABLE memory.main.__pos_%d (ord BIGINT, pos VARCHAR)", ap->id),
                  err);
    struct engine_appender *pa = NULL;
    if (!rc && B->n_txn)
        rc = engine_appender_open(ap->conn, "memory", arena_printf(a, "__pos_%d", ap->id), &pa, err);
    for (size_t i = 0; i < B->n_txn && !rc; i++) {
        engine_append_int(pa, (int64_t)i);
        engine_append_text(pa, B->pos[i], strlen(B->pos[i]));
        rc = engine_append_end_row(pa, err);
    }
    if (pa && !rc)
        rc = engine_appender_flush(pa, err);
    engine_appender_close(pa);
    for (size_t i = 0; i < ap->n_tables && !rc; i++) {
        struct atable *at = ap->tables[i];
        struct tstage *S = &at->s[set];
        if (at->dropped || (!S->n_staged && !S->n_loads))
            continue;
        p[n_p++] = (struct pending){.at = at, .conn = ap->conn, .a = a};
    }
    if (!rc)
        rc = flush_tables(ap, set, p, n_p, err);
    for (size_t i = 0; i < n_p && !rc; i++) {
        struct pending *pp = &p[i];
        struct atable *at = pp->at;
        struct tstage *S = &at->s[set];
        struct iceberg_change *ch = iceberg_change_begin(a, at->md, at->loc);
        for (size_t k = 0; k < S->n_loads; k++)
            iceberg_change_add_file(ch, &S->loads[k]);
        if (pp->data.record_count > 0)
            iceberg_change_add_file(ch, &pp->data);
        if (pp->del.record_count > 0)
            iceberg_change_add_file(ch, &pp->del);
        if (!iceberg_change_empty(ch))
            tc[n_tc++] = (struct sink_table_change){at->ns, at->name, at->loc, ch};
        if (pp->chg.record_count > 0) {
            struct iceberg_change *cc = iceberg_change_begin(a, at->cmd, at->cloc);
            iceberg_change_add_file(cc, &pp->chg);
            tc[n_tc++] = (struct sink_table_change){at->ns, at->cname, at->cloc, cc};
        }
    }
    struct catalog_kv kv[KV_MAX + 1];
    size_t n_kv = 0;
    for (size_t i = 0; i < B->n_kv; i++)
        kv[n_kv++] = B->kv[i];
    if (B->checkpoint)
        kv[n_kv++] = (struct catalog_kv){ckpt_key(a, ap->o.source), B->checkpoint};
    if (!rc)
        for (size_t i = 0; i < n_tc; i++) {
            char num[32];
            if (B->checkpoint)
                iceberg_change_set_summary(tc[i].change, "loch.source-position", B->checkpoint);
            snprintf(num, sizeof num, "%lld", (long long)B->n_txn);
            iceberg_change_set_summary(tc[i].change, "loch.source-transactions", num);
        }
    int64_t t_files = now_ms();
    if (!rc)
        rc = sink_commit(ap->fcat, ap->fst, tc, n_tc, kv, n_kv, a, err);
    int64_t t_commit = now_ms();
    for (size_t i = 0; i < n_p && !rc; i++) {
        if (p[i].at->s[set].n_staged) { /* on the connection holding the table's flush tables */
            work_conn = p[i].conn == ap->conn ? NULL : p[i].conn;
            rc = advance_index(ap, p[i].at, set, &p[i], err);
            work_conn = NULL;
        }
        if (!rc)
            rc = load_md(ap, p[i].at, err);
    }
    if (!rc)
        log_debug("%s: flushed %zu transactions, %zu changes, %zu lake tables in %lld ms (files %lld, commit %lld, "
                  "index %lld)", ap->o.source, B->n_txn, B->n_changes, n_tc, (long long)(now_ms() - t_start),
                  (long long)(t_files - t_start), (long long)(t_commit - t_files), (long long)(now_ms() - t_commit));
    if (rc)
        ap->broken = true;
    return rc;
}

/* After batch `set` was flushed (on this thread): counters, the durable checkpoint, and
 * the batch emptied for reuse. */
static void flushed(struct cdc_applier *ap, int set, int64_t took)
{
    struct batch *B = &ap->bt[set];
    if (B->checkpoint) {
        free(ap->durable);
        ap->durable = xstrdup(B->checkpoint);
    }
    if (B->n_txn)
        ap->stats.last_commit_ts_us = B->last_ts;
    ap->stats.flushes++;
    for (size_t i = 0; i < ap->n_tables; i++) {
        struct atable *at = ap->tables[i];
        at->s[set] = (struct tstage){.trunc_seq = -1};
        if (at->drop_after_flush && !at->dropped && !at->s[ap->cur].n_staged && !ap->in_txn) {
            table_close(ap, at);
            at->dropped = true;
        }
    }
    ap->flush_ewma_ms = ap->flush_ewma_ms ? (3 * ap->flush_ewma_ms + took) / 4 : took;
    if (ap->flush_ewma_ms > ap->o.flush_interval_ms * 3 / 4)
        ap->flush_ewma_ms = ap->o.flush_interval_ms * 3 / 4;
    struct arena *keep = B->arena;
    arena_reset(keep);
    *B = (struct batch){.arena = keep};
}

static void *flight_main(void *arg)
{
    struct cdc_applier *ap = arg; /* ap->cur does not change while a flush is in the air */
    int64_t t0 = now_ms();
    loch_err_clear(&ap->flight_err);
    ap->flight_rc = flush_batch(ap, 1 - ap->cur, &ap->flight_err);
    ap->flight_ms = now_ms() - t0;
    atomic_store(&ap->landed, true);
    return NULL;
}

static int land(struct cdc_applier *ap, struct loch_err *err)
{
    ap->last = NULL; /* every call that changes tables comes through here */
    if (!ap->flying)
        return 0;
    pthread_join(ap->flight, NULL);
    ap->flying = false;
    atomic_store(&ap->landed, false);
    if (ap->flight_rc) {
        *err = ap->flight_err;
        return ap->flight_rc;
    }
    flushed(ap, 1 - ap->cur, ap->flight_ms);
    return 0;
}

/* Reports ap->durable (copied into a) and forgets it. */
static void report(struct cdc_applier *ap, struct arena *a, char **checkpoint_out)
{
    if (checkpoint_out && ap->durable)
        *checkpoint_out = arena_strdup(a, ap->durable);
    free(ap->durable);
    ap->durable = NULL;
}

int cdc_applier_flush(struct cdc_applier *ap, struct arena *out_arena, char **checkpoint_out, struct loch_err *err)
{
    if (checkpoint_out)
        *checkpoint_out = NULL;
    if (ap->in_txn)
        return loch_errf(err, LOCH_EINVAL, "flush inside a transaction");
    int rc = land(ap, err);
    if (rc)
        return rc;
    if (batch_pending(ap, ap->cur)) {
        int64_t t0 = now_ms();
        for (size_t i = 0; i < ap->n_tables && !rc; i++)
            if (!ap->tables[i]->dropped && ap->tables[i]->app[ap->cur])
                rc = engine_appender_flush(ap->tables[i]->app[ap->cur], err);
        if (!rc)
            rc = flush_batch(ap, ap->cur, err);
        if (rc)
            return rc;
        flushed(ap, ap->cur, now_ms() - t0);
    }
    report(ap, out_arena, checkpoint_out);
    return 0;
}

int cdc_applier_flush_start(struct cdc_applier *ap, struct loch_err *err)
{
    if (ap->in_txn)
        return loch_errf(err, LOCH_EINVAL, "flush inside a transaction");
    int rc = land(ap, err);
    if (rc || !batch_pending(ap, ap->cur))
        return rc;
    use_threads(ap, false); /* streaming (the flush thread is idle now) */
    for (size_t i = 0; i < ap->n_tables && !rc; i++)
        if (!ap->tables[i]->dropped && ap->tables[i]->app[ap->cur])
            rc = engine_appender_flush(ap->tables[i]->app[ap->cur], err);
    if (rc)
        return rc;
    ap->cur = 1 - ap->cur;
    atomic_store(&ap->landed, false);
    if (pthread_create(&ap->flight, NULL, flight_main, ap)) {
        ap->cur = 1 - ap->cur;
        return loch_errf(err, LOCH_EINTERNAL, "cannot start the flush thread");
    }
    ap->flying = true;
    return 0;
}

int cdc_applier_flush_poll(struct cdc_applier *ap, struct arena *out_arena, char **checkpoint_out,
                           struct loch_err *err)
{
    if (checkpoint_out)
        *checkpoint_out = NULL;
    if (ap->flying && atomic_load(&ap->landed)) {
        int rc = land(ap, err);
        if (rc)
            return rc;
    }
    report(ap, out_arena, checkpoint_out);
    return 0;
}
