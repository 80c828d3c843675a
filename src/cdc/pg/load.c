/* load.c: the PostgreSQL full load: reader threads COPY key ranges of the slot's exported
 * snapshot into chunk files for cdc/load.c; tables that appear while streaming are copied
 * at the stream's position. Not for the stream (stream.c) or the chunk queue (cdc/load.c). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "cdc/load.h"
#include "cdc/pg/pg_int.h"

/* ---- the full load ---- */

static int load_table(struct pgsrc *s, PGconn *c, const struct srctab *st, struct loch_err *err)
{
    struct arena *a = arena_new();
    struct cdc_table t;
    enum pgsrc_conv *conv;
    int rc = pgsrc_describe(s, st, a, &t, &conv, err);
    if (!rc)
        rc = cdc_applier_table(s->ap, &t, err);
    if (rc) {
        arena_free(a);
        return rc;
    }
    /* estimated rows, for the ETA */
    char q[256];
    snprintf(q, sizeof q, "SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = %u", st->oid);
    int64_t est = 0;
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        est = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    struct buf sql = {0};
    buf_puts(&sql, "COPY (SELECT ");
    for (size_t i = 0; i < t.n_columns; i++)
        buf_printf(&sql, "%s%s", i ? ", " : "",
                   pgsrc_copy_expr(conv[i], arena_sql_ident(a, t.columns[i].name), a));
    buf_printf(&sql, " FROM ONLY %s.%s) TO STDOUT (FORMAT csv)", arena_sql_ident(a, st->schema),
               arena_sql_ident(a, st->name));
    r = PQexec(c, sql.data);
    buf_free(&sql);
    if (PQresultStatus(r) != PGRES_COPY_OUT) {
        rc = pgsrc_fail(s, r, arena_printf(a, "reading table %s.%s", st->schema, st->name), err);
        arena_free(a);
        return rc;
    }
    PQclear(r);
    char *dir = arena_printf(a, "%s/spill", s->r->cfg->state_dir);
    if ((rc = util_mkdirs(dir, err))) {
        arena_free(a);
        return rc;
    }
    char *path = arena_printf(a, "%s/%s-%s.%s.csv", dir, s->src->name, st->schema, st->name);
    /* Chunks of ~256 MB of CSV: each becomes one Parquet file, so memory stays bounded. */
    const int64_t chunk_bytes = 256LL << 20;
    int64_t rows = 0, bytes = 0, chunk = 0, loaded = 0;
    double t0 = util_mono_s(), last = t0;
    FILE *f = fopen(path, "w");
    if (!f) {
        arena_free(a);
        return loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
    }
    struct buf sel = {0};
    buf_puts(&sel, "SELECT * FROM read_csv(");
    buf_sql_str(&sel, path);
    buf_printf(&sel, ", header = false, all_varchar = true, allow_quoted_nulls = false, delim = ',', quote = '\"', "
                     "escape = '\"', new_line = '\\n', parallel = true, columns = {");
    for (size_t i = 0; i < t.n_columns; i++)
        buf_printf(&sel, "%s'c%zu': 'VARCHAR'", i ? ", " : "", i);
    buf_puts(&sel, "})");
    for (;;) {
        char *line = NULL;
        int n = PQgetCopyData(c, &line, 0);
        if (n > 0) {
            if (fwrite(line, 1, (size_t)n, f) != (size_t)n)
                rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
            PQfreemem(line);
            rows++;
            bytes += n;
            chunk += n;
        }
        bool end = n < 0;
        if (!rc && (chunk >= chunk_bytes || (end && chunk > 0))) {
            if (fclose(f) != 0)
                rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
            f = NULL;
            int64_t got = 0;
            if (!rc)
                rc = cdc_applier_load(s->ap, &t, sel.data, &got, err);
            loaded += got;
            chunk = 0;
            if (!rc && !end && !(f = fopen(path, "w")))
                rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
        }
        double now = util_mono_s();
        if (s->r->progress && (now - last >= 1.0 || end)) {
            double rate = rows / (now - t0 > 0 ? now - t0 : 1e-9);
            if (est > rows && !end)
                fprintf(stderr, "loch: %s %s.%s: %" PRId64 " rows, %.1f MB, %.0f rows/s, ETA %.0f s\n", s->src->name,
                        st->schema, st->name, rows, bytes / 1e6, rate, (est - rows) / (rate > 0 ? rate : 1));
            else
                fprintf(stderr, "loch: %s %s.%s: %" PRId64 " rows, %.1f MB, %.0f rows/s%s\n", s->src->name, st->schema,
                        st->name, rows, bytes / 1e6, rate, end ? " (done)" : "");
            last = now;
        }
        if (end || rc) {
            if (!end) { /* drain the COPY so the connection stays usable */
                while ((n = PQgetCopyData(c, &line, 0)) > 0)
                    PQfreemem(line);
            }
            if (n == -2 && !rc)
                rc = loch_errf(err, LOCH_ESOURCE, "source %s: reading %s.%s failed: %s", s->src->name, st->schema,
                               st->name, PQerrorMessage(c));
            PGresult *fin;
            while ((fin = PQgetResult(c))) {
                if (PQresultStatus(fin) != PGRES_COMMAND_OK && !rc)
                    rc = pgsrc_fail(s, fin, arena_printf(a, "reading table %s.%s", st->schema, st->name), err);
                else
                    PQclear(fin);
            }
            break;
        }
    }
    if (f)
        fclose(f);
    unlink(path);
    buf_free(&sel);
    if (!rc && loaded != rows)
        rc = loch_errf(err, LOCH_EINTERNAL, "loading %s.%s: read %" PRId64 " rows but %" PRId64 " reached the lake",
                       st->schema, st->name, rows, loaded);
    arena_free(a);
    return rc;
}


/* ---- parallel full load (cdc/load.h): readers COPY into chunk files ----
 *
 * LOAD_READERS connections import the slot's snapshot and take tables in turn; each COPY
 * is cut into CSV chunk files of LOAD_CHUNK bytes. A table with a primary key is read in
 * key ranges of CDC_LOAD_RANGE_ROWS rows, `key > previous bound ORDER BY key LIMIT n`
 * (an index range scan), its bound read from the last row the range gave. */
#define LOAD_READERS 2
#define LOAD_CHUNK (48LL << 20)

struct pgload_table {
    char *copy_sql;            /* whole table (no key) */
    char *select_list, *from, *key_list; /* key-ranged tables */
    size_t *key_col;           /* field of each key column in a COPY row */
    enum pgsrc_conv *key_conv;
};

struct pgload {
    struct pgsrc *s;
    const char *snap;          /* NULL: resuming (the first run's snapshot is gone) */
};

static void key_literals(struct buf *b, PGconn *c, const struct cdc_load_table *lt, char *const *vals,
                         struct arena *a)
{
    const struct pgload_table *pt = lt->user;
    buf_puts(b, "(");
    for (size_t k = 0; k < lt->n_key; k++) {
        char *lit = PQescapeLiteral(c, vals[k], strlen(vals[k]));
        buf_printf(b, "%s%s", k ? ", " : "", lit ? pgsrc_copy_literal(pt->key_conv[k], lit, a) : "NULL");
        PQfreemem(lit);
    }
    buf_puts(b, ")");
}

/* Splits one row of the CSV our COPYs produce (',' between fields, '"' around a field
 * that needs it with '""' inside, '\n' at the end) and returns field `want` unquoted,
 * malloc'd; NULL when the row has fewer fields or is malformed. */
static char *csv_field(const char *row, size_t len, size_t want)
{
    if (len && row[len - 1] == '\n')
        len--;
    size_t i = 0;
    for (size_t f = 0; i <= len; f++) {
        struct buf v = {0};
        if (i < len && row[i] == '"') {
            for (i++;; i++) {
                if (i >= len) {
                    buf_free(&v);
                    return NULL; /* unterminated quote */
                }
                if (row[i] == '"') {
                    if (i + 1 < len && row[i + 1] == '"')
                        i++;
                    else
                        break;
                }
                buf_putc(&v, row[i]);
            }
            i++; /* the closing quote */
            if (i < len && row[i] != ',') {
                buf_free(&v);
                return NULL;
            }
        } else {
            while (i < len && row[i] != ',')
                buf_putc(&v, row[i++]);
        }
        if (f == want)
            return buf_take(&v);
        buf_free(&v);
        i++; /* the comma */
    }
    return NULL;
}

/* Runs one COPY into chunk files of LOAD_CHUNK bytes. keyed: the COPY is one key range
 * of at most CDC_LOAD_RANGE_ROWS rows in key order; its last chunk carries the range's
 * bound (the last row's key, or "done" when the range was short), and *next gets the key
 * texts to continue after (NULL when done; caller frees). Else the last chunk ends the
 * table. */
static int copy_chunks(struct pgsrc *s, struct cdc_load *L, PGconn *c, size_t ti, const char *copy_sql,
                       bool keyed, char ***next, struct loch_err *err)
{
    const struct cdc_load_table *lt = cdc_load_table(L, ti);
    const struct pgload_table *pt = lt->user;
    PGresult *r = PQexec(c, copy_sql);
    if (PQresultStatus(r) != PGRES_COPY_OUT)
        return pgsrc_fail(s, r, "reading a table for the full load", err);
    PQclear(r);
    int rc = 0;
    char *fbuf = xmalloc(1 << 20); /* every chunk file's stdio buffer (closed before it is freed) */
    char *path = cdc_load_chunk_path(L);
    FILE *f = fopen(path, "w");
    if (!f)
        rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
    else
        setvbuf(f, fbuf, _IOFBF, 1 << 20);
    int64_t chunk = 0, rows = 0, total = 0, unreported = 0, unreported_bytes = 0;
    char *line, *last = NULL; /* last: the previous row, still to be freed */
    int n, last_n = 0;
    while ((n = PQgetCopyData(c, &line, 0)) > 0) {
        if (!rc && fwrite_unlocked(line, 1, (size_t)n, f) != (size_t)n) /* this thread's file */
            rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
        if (last)
            PQfreemem(last);
        last = line;
        last_n = n;
        chunk += n;
        rows++;
        total++;
        unreported++;
        unreported_bytes += n;
        if (unreported == 4096) {
            cdc_load_count(L, ti, unreported, unreported_bytes);
            unreported = unreported_bytes = 0;
        }
        if (!rc && chunk >= LOAD_CHUNK) {
            if (fclose(f))
                rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
            f = NULL;
            if (!rc && !cdc_load_push(L, ti, path, rows, false, NULL))
                rc = LOCH_ECANCELED;
            path = NULL;
            chunk = rows = 0;
            if (!rc) {
                path = cdc_load_chunk_path(L);
                if (!(f = fopen(path, "w")))
                    rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
                else
                    setvbuf(f, fbuf, _IOFBF, 1 << 20);
            }
        }
        if (rc || ((total & 4095) == 0 && cdc_load_aborted(L))) {
            PQrequestCancel(c);
            if (!rc)
                rc = LOCH_ECANCELED;
        }
    }
    cdc_load_count(L, ti, unreported, unreported_bytes);
    if (n == -2 && !rc)
        rc = loch_errf(err, LOCH_ESOURCE, "source %s: reading %s.%s failed: %s", s->src->name, lt->schema, lt->name,
                       PQerrorMessage(c));
    while ((r = PQgetResult(c))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && !rc)
            rc = pgsrc_fail(s, r, "reading a table for the full load", err);
        else
            PQclear(r);
    }
    if (f && fclose(f) && !rc)
        rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
    free(fbuf);
    /* the range's bound: the key of its last row, unless it was the table's last range */
    char *bound = NULL;
    bool done = !keyed || total < CDC_LOAD_RANGE_ROWS;
    if (!rc && !done) {
        char **key = xcalloc(lt->n_key, sizeof *key);
        for (size_t k = 0; k < lt->n_key && !rc; k++)
            if (!(key[k] = csv_field(last, (size_t)last_n, pt->key_col[k])))
                rc = loch_errf(err, LOCH_EPROTO, "source %s: %s.%s: cannot read the key of the last row of a "
                               "full-load range", s->src->name, lt->schema, lt->name);
        if (!rc) {
            bound = cdc_load_bound(key, lt->n_key);
            *next = key;
        } else {
            cdc_load_key_free(key, lt->n_key);
        }
    } else if (!rc) {
        bound = xstrdup("\"done\"");
    }
    if (last)
        PQfreemem(last);
    if (rc) {
        if (path)
            unlink(path);
        free(path);
        free(bound);
    } else if (!cdc_load_push(L, ti, path, rows, done, bound)) {
        rc = LOCH_ECANCELED;
    }
    if (rc && next && *next) {
        cdc_load_key_free(*next, lt->n_key);
        *next = NULL;
    }
    return rc;
}

static int read_keyed(struct pgsrc *s, struct cdc_load *L, PGconn *c, size_t ti, struct loch_err *err)
{
    const struct cdc_load_table *lt = cdc_load_table(L, ti);
    const struct pgload_table *pt = lt->user;
    struct arena *a = arena_new(); /* lifetime: one range */
    char **after = cdc_load_key_copy(lt->after, lt->n_key);
    int rc = 0;
    for (;;) {
        struct buf q = {0};
        buf_printf(&q, "COPY (SELECT %s FROM %s", pt->select_list, pt->from);
        if (after) {
            buf_printf(&q, " WHERE (%s) > ", pt->key_list);
            key_literals(&q, c, lt, after, a);
        }
        buf_printf(&q, " ORDER BY %s LIMIT %d) TO STDOUT (FORMAT csv)", pt->key_list, CDC_LOAD_RANGE_ROWS);
        cdc_load_key_free(after, lt->n_key);
        after = NULL;
        rc = copy_chunks(s, L, c, ti, q.data, true, &after, err);
        buf_free(&q);
        arena_reset(a);
        if (rc || !after)
            break;
    }
    cdc_load_key_free(after, lt->n_key);
    arena_free(a);
    return rc;
}

static int load_reader(void *ctx, struct cdc_load *L, int k, struct loch_err *err)
{
    (void)k;
    struct pgload *pl = ctx;
    struct pgsrc *s = pl->s;
    PGconn *c = NULL;
    int rc = pgsrc_connect(s, false, &c, err);
    if (!rc)
        rc = pgsrc_exec(s, c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "starting the snapshot transaction", err);
    if (!rc && pl->snap) {
        struct buf b = {0};
        buf_puts(&b, "SET TRANSACTION SNAPSHOT ");
        buf_sql_str(&b, pl->snap);
        rc = pgsrc_exec(s, c, b.data, "importing the slot's snapshot", err);
        buf_free(&b);
    }
    size_t ti;
    while (!rc && (ti = cdc_load_next(L, k)) != SIZE_MAX) {
        const struct cdc_load_table *lt = cdc_load_table(L, ti);
        const struct pgload_table *pt = lt->user;
        rc = lt->n_key ? read_keyed(s, L, c, ti, err) : copy_chunks(s, L, c, ti, pt->copy_sql, false, NULL, err);
    }
    if (c)
        PQfinish(c);
    return rc;
}

/* The load of every table; snap NULL: a resumed load (the first run's snapshot is gone):
 * tables done before are skipped, key-ranged ones continue after their last committed
 * range; the stream, which starts at the first run's consistent point, brings every row
 * read later up to date. *lt_out (in a) describes the tables for cdc_load_forget. */
static int parallel_load(struct pgsrc *s, const char *snap, struct srctab *t, size_t n, struct arena *a,
                         struct cdc_load_table **lt_out, struct loch_err *err)
{
    struct cdc_load_table *lts = arena_alloc(a, (n + 1) * sizeof *lts);
    *lt_out = lts;
    int rc = 0;
    /* describe and declare every table first (catalog look-ups run on the main connection) */
    for (size_t i = 0; i < n && !rc; i++) {
        struct cdc_load_table *lt = &lts[i];
        struct pgload_table *pt = arena_alloc(a, sizeof *pt);
        struct cdc_table *ct = arena_alloc(a, sizeof *ct);
        enum pgsrc_conv *conv;
        rc = pgsrc_describe(s, &t[i], a, ct, &conv, err);
        if (!rc)
            rc = cdc_applier_table(s->ap, ct, err);
        if (rc)
            break;
        lt->schema = t[i].schema;
        lt->name = t[i].name;
        lt->t = ct;
        lt->user = pt;
        lt->est = -1;
        struct buf q = {0}, k = {0};
        pt->key_col = arena_alloc(a, (ct->n_columns + 1) * sizeof *pt->key_col);
        pt->key_conv = arena_alloc(a, (ct->n_columns + 1) * sizeof *pt->key_conv);
        for (size_t c = 0; c < ct->n_columns; c++) {
            buf_printf(&q, "%s%s", c ? ", " : "",
                       pgsrc_copy_expr(conv[c], arena_sql_ident(a, ct->columns[c].name), a));
            if (ct->has_key && ct->columns[c].key) {
                buf_printf(&k, "%s%s", lt->n_key ? ", " : "", arena_sql_ident(a, ct->columns[c].name));
                pt->key_col[lt->n_key] = c;
                pt->key_conv[lt->n_key] = conv[c];
                lt->n_key++;
            }
        }
        pt->select_list = arena_strdup(a, q.data);
        pt->key_list = arena_strdup(a, k.data ? k.data : "");
        pt->from =
            arena_printf(a, "ONLY %s.%s", arena_sql_ident(a, t[i].schema), arena_sql_ident(a, t[i].name));
        pt->copy_sql = arena_printf(a, "COPY (SELECT %s FROM %s) TO STDOUT (FORMAT csv)", pt->select_list, pt->from);
        buf_free(&q);
        buf_free(&k);
        char est[256];
        snprintf(est, sizeof est, "SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = %u", t[i].oid);
        PGresult *r = PQexec(s->sql, est);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            lt->est = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    if (rc)
        return rc;
    struct pgload pl = {s, snap};
    return cdc_load_run(s->r, s->ap, lts, n, snap == NULL, LOAD_READERS, load_reader, &pl, err);
}

/* ---- initial sync: slot with exported snapshot, then every table ---- */

/* The last loaded files and the stream's start position become durable together; the
 * load's progress keys go. */
static int finish_load(struct pgsrc *s, const struct cdc_load_table *lt, size_t n, const char *cp,
                       const char *load_kv, struct loch_err *err)
{
    struct arena *a = arena_new(); /* lifetime: this call */
    cdc_applier_set_kv(s->ap, arena_printf(a, "cdc.%s.checkpoint", s->src->name), cp);
    cdc_applier_set_kv(s->ap, load_kv, NULL);
    cdc_load_forget(s->ap, s->src->name, lt, n);
    int rc = cdc_applier_flush(s->ap, NULL, NULL, err);
    arena_free(a);
    if (!rc) {
        pgoutput_lsn_parse(cp, &s->resume_lsn);
        s->flushed_lsn = s->resume_lsn;
    }
    return rc;
}

int pgsrc_initial_sync(struct pgsrc *s, struct srctab *t, size_t n, struct loch_err *err)
{
    struct slotinfo si;
    int rc = pgsrc_slot_info(s, &si, err);
    char *load_kv = arena_printf(s->arena, "cdc.%s.load", s->src->name), *resume_cp = NULL;
    struct loch_err e2;
    if (!rc && cdc_applier_get_kv(s->ap, load_kv, s->arena, &resume_cp, &e2) == 0 && resume_cp) {
        if (!si.exists) {
            loch_errf(err, LOCH_ECONFIG, "source %s: an interrupted full load cannot continue: slot %s is gone",
                      s->src->name, s->slot);
            return loch_err_hint(err, "drop the source's lake tables and delete the loch_kv keys cdc.%s.* to load "
                                      "again from scratch", s->src->name);
        }
        log_info("source %s: continuing the interrupted full load (stream from %s)", s->src->name, resume_cp);
        struct arena *a = arena_new(); /* lifetime: the load */
        struct cdc_load_table *lt = NULL;
        rc = parallel_load(s, NULL, t, n, a, &lt, err);
        if (!rc)
            rc = finish_load(s, lt, n, resume_cp, load_kv, err);
        arena_free(a);
        return rc;
    }
    if (!rc && si.exists) {
        log_info("source %s: slot %s exists without a lake checkpoint (an unfinished full load); re-creating it",
                 s->src->name, s->slot);
        rc = pgsrc_drop_slot(s, err);
    }
    if (rc)
        return rc;
    char *sql = arena_printf(s->arena, "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput EXPORT_SNAPSHOT",
                             arena_sql_ident(s->arena, s->slot));
    PGresult *r = PQexec(s->repl, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        return pgsrc_fail(s, r, "creating the replication slot", err);
    char *cp = arena_strdup(s->arena, PQgetvalue(r, 0, 1));
    char *snap = arena_strdup(s->arena, PQgetvalue(r, 0, 2));
    PQclear(r);
    log_info("source %s: created slot %s at %s; full load from snapshot %s", s->src->name, s->slot, cp, snap);
    /* From here a restart continues this load (with this slot) instead of starting over. */
    rc = cdc_applier_put_kv(s->ap, load_kv, cp, err);
    struct arena *a = arena_new(); /* lifetime: the load */
    struct cdc_load_table *lt = NULL;
    if (!rc)
        rc = parallel_load(s, snap, t, n, a, &lt, err);
    if (!rc)
        rc = finish_load(s, lt, n, cp, load_kv, err);
    arena_free(a);
    return rc;
}

/* ---- tables that appear or go while replicating ---- */

static bool lake_has(struct pgsrc *s, const struct srctab *t, struct arena *a)
{
    struct loch_err e;
    return cdc_applier_lake_table(s->ap, t->schema, t->name, a, NULL, &e) == 0;
}

void pgsrc_remember(struct pgsrc *s, struct srctab *t, size_t n)
{
    s->known = arena_alloc(s->arena, (n + 1) * sizeof *s->known);
    for (size_t i = 0; i < n; i++)
        s->known[i] = arena_printf(s->arena, "%s.%s", t[i].schema, t[i].name);
    s->n_known = n;
}

/* Loads the selected tables the lake does not have yet (created at the source since the
 * last run, or while this one runs): they are published first, so every change after
 * that reaches the stream; the copy is staged at the current stream position and the
 * changes replayed over it converge to the source (inserts replace rows of the same key).
 * Tables that left the source are forgotten. */
int pgsrc_sync_tables(struct pgsrc *s, struct srctab *t, size_t n, struct loch_err *err)
{
    struct arena *a = arena_new();
    int rc = 0;
    bool any_new = false;
    for (size_t i = 0; i < n && !any_new; i++)
        any_new = !lake_has(s, &t[i], a);
    if (any_new)
        rc = pgsrc_setup_publications(s, t, n, err);
    for (size_t i = 0; i < n && !rc; i++) {
        if (lake_has(s, &t[i], a))
            continue;
        log_info("source %s: new table %s.%s: loading it", s->src->name, t[i].schema, t[i].name);
        rc = load_table(s, s->sql, &t[i], err);
        if (!t[i].has_key && !rc)
            log_warn("source %s: %s.%s has no key: rows inserted while it was being copied may appear twice",
                     s->src->name, t[i].schema, t[i].name);
    }
    for (size_t k = 0; k < s->n_known && !rc; k++) {
        bool still = false;
        for (size_t i = 0; i < n && !still; i++)
            still = !strcmp(s->known[k], arena_printf(a, "%s.%s", t[i].schema, t[i].name));
        if (still)
            continue;
        char *dot = strchr(s->known[k], '.');
        char *sch = arena_strndup(a, s->known[k], (size_t)(dot - s->known[k]));
        log_info("source %s: table %s is gone from the source (or the selection)", s->src->name, s->known[k]);
        rc = cdc_applier_drop_table(s->ap, sch, dot + 1, err);
    }
    if (!rc)
        pgsrc_remember(s, t, n);
    arena_free(a);
    return rc;
}

int pgsrc_poll_tables(struct pgsrc *s, struct loch_err *err)
{
    struct arena *a = arena_new();
    struct srctab *t;
    size_t n;
    int rc = pgsrc_list_tables(s, a, &t, &n, err);
    if (!rc)
        rc = pgsrc_sync_tables(s, t, n, err);
    arena_free(a);
    s->last_poll_ms = mono_ms();
    return rc;
}
