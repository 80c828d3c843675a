/* load.c: the MySQL/MariaDB full load: reader threads, each on a consistent snapshot, read
 * key ranges into chunk files for cdc/load.c; the snapshot's binlog position becomes the
 * stream's start. Not for the stream (stream.c) or the chunk queue (cdc/load.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "cdc/load.h"
#include "cdc/mysql/mysql_int.h"

/* ---- full load (cdc/load.h) ----
 * LOAD_READERS connections each hold a consistent snapshot (START TRANSACTION WITH
 * CONSISTENT SNAPSHOT) and take tables in turn, streaming rows (mysql_use_result) into
 * CSV chunk files that the calling thread loads while reading goes on. Reader 0's
 * snapshot is the stream's start: its binlog position is where streaming begins, and
 * tables without a usable key are read by it alone. The other readers' snapshots are a
 * little later; a table they read gets the changes between the two positions again from
 * the stream, which converge to the source (an insert replaces the row of its key, a
 * delete of a missing key does nothing; a key-less table matches rows on all columns). A table with a primary key of orderable types is
 * read in key ranges, `key > bound ORDER BY key LIMIT n`, each range committed with its
 * last key, so an interrupted load continues after it; a restart reads with new
 * snapshots and streams from the first run's position, which converges the same way. */

#define LOAD_READERS 2

struct myload_table {
    struct binlog_column *cols;
    char *select_list, *from, *order;
    size_t *key_col;      /* row field of each key column (in key order) */
};

struct myload {
    struct mysrc *m;
    MYSQL *first;         /* reader 0's snapshot connection (opened by full_load), or NULL */
};

/* The spill files are written by one thread each: the unlocked stdio calls. */
void mysrc_csv_field(FILE *f, const char *s, size_t n)
{
    putc_unlocked('"', f);
    while (n > 0) {
        const char *q = memchr(s, '"', n);
        size_t k = q ? (size_t)(q - s) + 1 : n;
        fwrite_unlocked(s, 1, k, f);
        if (q)
            putc_unlocked('"', f); /* a quote doubled */
        s += k;
        n -= k;
    }
    putc_unlocked('"', f);
}

bool mysrc_zero_date(const char *s)
{
    /* '0000-00-00', or a month or day of 00 (allowed without NO_ZERO_IN_DATE) */
    return strlen(s) >= 10 && (!strncmp(s + 5, "00", 2) || !strncmp(s + 8, "00", 2));
}

/* The SELECT expression giving column c's canonical text (cdc/change.h forms). */
char *mysrc_select_expr(struct arena *a, const struct binlog_column *c)
{
    char *id = mysrc_ident(a, c->name);
    switch (c->type) {
    case BL_BIT:
        return arena_printf(a, "CAST(%s AS UNSIGNED)", id);
    case BL_FLOAT: /* the float's exact value as a double: casts back to the same float */
        return arena_printf(a, "(%s + 0e0)", id);
    case BL_TIMESTAMP2:
        return arena_printf(a, "CONCAT(%s, '+00')", id);
    case BL_GEOMETRY:
        return arena_printf(a, "HEX(%s)", id);
    case BL_STRING: case BL_VARCHAR: case BL_BLOB:
        return c->collation == 63 ? arena_printf(a, "HEX(%s)", id) : id;
    default:
        return id;
    }
}

static bool binary_text(const struct binlog_column *c)
{
    return (c->type == BL_STRING || c->type == BL_VARCHAR || c->type == BL_BLOB) && c->collation == 63;
}

/* Whether ranges over a key column compare as its index orders: the literal written by
 * key_literal compares like the column (ENUM/SET order by index but compare as text;
 * floats do not round-trip exactly; JSON and geometry are no keys). */
static bool rangeable(const struct binlog_column *c)
{
    switch (c->type) {
    case BL_TINY: case BL_SHORT: case BL_INT24: case BL_LONG: case BL_LONGLONG: case BL_YEAR:
    case BL_NEWDECIMAL: case BL_DECIMAL: case BL_BIT:
    case BL_DATE: case BL_NEWDATE: case BL_DATETIME2: case BL_TIME2: case BL_TIMESTAMP2:
    case BL_STRING: case BL_VARCHAR: case BL_VAR_STRING:
        return true;
    case BL_BLOB: /* VARBINARY/TEXT keys are prefix keys unless binary VARCHAR */
        return false;
    default:
        return false;
    }
}

/* The SQL literal of key value v (canonical text as read) of column c. */
static void key_literal(struct buf *b, MYSQL *conn, const struct binlog_column *c, const char *v)
{
    size_t n = strlen(v);
    if (binary_text(c)) { /* HEX() text */
        buf_puts(b, "X'");
        buf_append(b, v, n);
        buf_putc(b, '\'');
        return;
    }
    if (c->type == BL_TIMESTAMP2 && n >= 3 && !strcmp(v + n - 3, "+00"))
        n -= 3;
    bool number = n > 0 && strspn(v, "0123456789.-") == n && (c->type == BL_TINY || c->type == BL_SHORT ||
        c->type == BL_INT24 || c->type == BL_LONG || c->type == BL_LONGLONG || c->type == BL_YEAR ||
        c->type == BL_NEWDECIMAL || c->type == BL_DECIMAL || c->type == BL_BIT);
    if (number) { /* never quoted: MySQL compares an integer column with a string as double */
        buf_append(b, v, n);
        return;
    }
    char *esc = xmalloc(2 * n + 1);
    mysql_real_escape_string(conn, esc, v, (unsigned long)n);
    buf_printf(b, "'%s'", esc);
    free(esc);
}

/* `(k1 > v1) OR (k1 = v1 AND k2 > v2) OR ...`: the rows after key `after`, in a form the
 * range optimizer turns into index ranges. */
static void after_cond(struct buf *b, MYSQL *conn, const struct cdc_load_table *lt, char *const *after)
{
    const struct myload_table *mt = lt->user;
    for (size_t k = 0; k < lt->n_key; k++) {
        buf_puts(b, k ? " OR (" : "(");
        for (size_t j = 0; j <= k; j++) {
            const struct binlog_column *c = &mt->cols[mt->key_col[j]];
            buf_puts(b, j ? " AND " : "");
            mysrc_buf_ident(b, c->name);
            buf_puts(b, j == k ? " > " : " = ");
            key_literal(b, conn, c, after[j]);
        }
        buf_puts(b, ")");
    }
}

/* Runs one SELECT of table ti into chunk files of CDC_LOAD_RANGE_ROWS rows. keyed: the
 * SELECT is one key range (LIMIT CDC_LOAD_RANGE_ROWS); its chunk carries the range's bound
 * and *next the key to continue after (NULL when the range was the last). Else the last
 * chunk ends the table. */
static int read_select(struct mysrc *m, struct cdc_load *L, MYSQL *c, size_t ti, const char *sql, bool keyed,
                       char ***next, struct loch_err *err)
{
    const struct cdc_load_table *lt = cdc_load_table(L, ti);
    const struct myload_table *mt = lt->user;
    size_t ncols = lt->t->n_columns;
    if (mysql_real_query(c, sql, strlen(sql)) != 0)
        return mysrc_conn_error(c, m, "reading a table for the full load", err);
    MYSQL_RES *res = mysql_use_result(c);
    if (!res)
        return mysrc_conn_error(c, m, "reading a table for the full load", err);
    char *fbuf = xmalloc(1 << 20);
    FILE *f = NULL;
    char *path = NULL;
    char **key = keyed ? xcalloc(lt->n_key, sizeof *key) : NULL;
    int64_t rows = 0, total = 0, bytes = 0;
    int rc = 0;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        if (!f) {
            path = cdc_load_chunk_path(L);
            if (!(f = fopen(path, "w"))) {
                rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
                break;
            }
            setvbuf(f, fbuf, _IOFBF, 1 << 20);
        }
        unsigned long *lens = mysql_fetch_lengths(res);
        for (size_t i = 0; i < ncols; i++) {
            if (i)
                putc_unlocked(',', f);
            bytes += lens[i] + 1;
            if (!row[i])
                continue;
            uint8_t ty = mt->cols[i].type;
            if ((ty == BL_DATE || ty == BL_DATETIME2 || ty == BL_TIMESTAMP2) && mysrc_zero_date(row[i]))
                continue;
            mysrc_csv_field(f, row[i], lens[i]);
        }
        putc_unlocked('\n', f);
        rows++;
        total++;
        if (keyed && total == CDC_LOAD_RANGE_ROWS) /* the range's last row: its key is the bound */
            for (size_t k = 0; k < lt->n_key; k++) {
                const char *v = row[mt->key_col[k]];
                key[k] = xstrdup(v ? v : "");
            }
        if ((total & 4095) == 0) {
            cdc_load_count(L, ti, 4096, bytes);
            bytes = 0;
            if (cdc_load_aborted(L)) {
                rc = LOCH_ECANCELED;
                break;
            }
        }
        if (!keyed && rows == CDC_LOAD_RANGE_ROWS) {
            int cl = fclose(f);
            f = NULL;
            if (cl != 0) {
                rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
                break;
            }
            bool ok = cdc_load_push(L, ti, path, rows, false, NULL);
            path = NULL;
            rows = 0;
            if (!ok) {
                rc = LOCH_ECANCELED;
                break;
            }
        }
    }
    cdc_load_count(L, ti, total & 4095, bytes);
    if (!rc && mysql_errno(c))
        rc = mysrc_conn_error(c, m, "reading a table for the full load", err);
    mysql_free_result(res); /* reads what is left when stopped early */
    if (f && fclose(f) != 0 && !rc)
        rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
    free(fbuf); /* every FILE using it is closed above */
    bool done = !keyed || total < CDC_LOAD_RANGE_ROWS;
    if (rc) {
        if (path)
            unlink(path);
        free(path);
        cdc_load_key_free(key, lt->n_key);
        return rc;
    }
    char *bound = done ? xstrdup("\"done\"") : cdc_load_bound(key, lt->n_key);
    if (done)
        cdc_load_key_free(key, lt->n_key);
    else if (next)
        *next = key;
    if (!cdc_load_push(L, ti, path, rows, done, bound)) {
        if (!done && next) {
            cdc_load_key_free(*next, lt->n_key);
            *next = NULL;
        }
        return LOCH_ECANCELED;
    }
    return 0;
}

static int read_table(struct mysrc *m, struct cdc_load *L, MYSQL *c, size_t ti, struct loch_err *err)
{
    const struct cdc_load_table *lt = cdc_load_table(L, ti);
    const struct myload_table *mt = lt->user;
    if (!lt->n_key) {
        char *sql = xasprintf("SELECT %s FROM %s", mt->select_list, mt->from);
        int rc = read_select(m, L, c, ti, sql, false, NULL, err);
        free(sql);
        return rc;
    }
    char **after = cdc_load_key_copy(lt->after, lt->n_key);
    int rc = 0;
    for (;;) {
        struct buf q = {0};
        buf_printf(&q, "SELECT %s FROM %s", mt->select_list, mt->from);
        if (after) {
            buf_puts(&q, " WHERE ");
            after_cond(&q, c, lt, after);
        }
        buf_printf(&q, " ORDER BY %s LIMIT %d", mt->order, CDC_LOAD_RANGE_ROWS);
        cdc_load_key_free(after, lt->n_key);
        after = NULL;
        rc = read_select(m, L, c, ti, q.data, true, &after, err);
        buf_free(&q);
        if (rc || !after)
            break;
    }
    cdc_load_key_free(after, lt->n_key);
    return rc;
}

/* A connection holding a consistent snapshot. start (optional): where the stream starts
 * for it. MariaDB (and Percona) tell the snapshot's own binlog position
 * (Binlog_snapshot_file/position). Stock MySQL has no such status; there start is the
 * server's position read just before the snapshot opens, so the stream replays the few
 * changes between the two over rows that already have them, which converges as for the
 * later readers (see above). No lock is ever taken (FLUSH TABLES WITH READ LOCK would
 * also need the RELOAD privilege). */
static int open_snapshot(struct mysrc *m, MYSQL **out, struct mysrc_pos *start, struct arena *a,
                         struct loch_err *err)
{
    MYSQL *c = NULL;
    int rc = mysrc_connect(m, &c, err);
    if (rc)
        return rc;
    rc = mysrc_exec(m, c, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", err);
    if (!rc && start && !m->is_mariadb)
        rc = mysrc_server_position(m, c, start, err);
    if (!rc)
        rc = mysrc_exec(m, c, "START TRANSACTION WITH CONSISTENT SNAPSHOT", err);
    if (!rc && start && m->is_mariadb) {
        char *file = NULL, *pos = NULL;
        rc = mysrc_value(m, c, "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
                           "WHERE VARIABLE_NAME = 'BINLOG_SNAPSHOT_FILE'", a, &file, err);
        if (!rc)
            rc = mysrc_value(m, c, "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
                               "WHERE VARIABLE_NAME = 'BINLOG_SNAPSHOT_POSITION'", a, &pos, err);
        if (!rc && (!file || !pos || !*file))
            rc = loch_errf(err, LOCH_ECONFIG, "the server reports no Binlog_snapshot_file/position");
        if (!rc) {
            memset(start, 0, sizeof *start);
            snprintf(start->file, sizeof start->file, "%s", file);
            start->pos = strtoull(pos, NULL, 10);
            /* the GTID position of that file:pos, so a later resume works even when the
             * file is purged (MariaDB's BINLOG_GTID_POS) */
            char esc[600], *g = NULL;
            mysql_real_escape_string(c, esc, file, (unsigned long)strlen(file));
            if (mysrc_value(m, c, arena_printf(a, "SELECT BINLOG_GTID_POS('%s', %s)", esc, pos), a, &g, err) == 0 && g)
                snprintf(start->gtid, sizeof start->gtid, "%s", g);
            loch_err_clear(err);
        }
    }
    if (rc) {
        mysql_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

static int my_reader(void *ctx, struct cdc_load *L, int k, struct loch_err *err)
{
    struct myload *ml = ctx;
    mysql_thread_init();
    MYSQL *c = k == 0 ? ml->first : NULL;
    int rc = 0;
    if (!c) {
        struct arena *a = arena_new(); /* lifetime: opening the snapshot */
        rc = open_snapshot(ml->m, &c, NULL, a, err);
        arena_free(a);
    }
    size_t ti;
    while (!rc && (ti = cdc_load_next(L, k)) != SIZE_MAX)
        rc = read_table(ml->m, L, c, ti, err);
    if (c && c != ml->first)
        mysql_close(c);
    mysql_thread_end();
    return rc;
}

/* The primary key's columns in index order (information_schema.STATISTICS), as indexes
 * into t's columns; *n 0 when the table has no key usable for ranges (none, a prefix
 * key, or a column rangeable() refuses). */
static int range_key(struct mysrc *m, const char *db, const char *name, const struct cdc_table *t,
                     const struct binlog_column *cols, struct arena *a, size_t **out, size_t *n,
                     struct loch_err *err)
{
    *n = 0;
    *out = NULL;
    if (!t->has_key)
        return 0;
    char edb[512], ename[512];
    mysql_real_escape_string(m->q, edb, db, (unsigned long)strlen(db));
    mysql_real_escape_string(m->q, ename, name, (unsigned long)strlen(name));
    char *sql = arena_printf(a, "SELECT COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS "
                                "WHERE TABLE_SCHEMA='%s' AND TABLE_NAME='%s' AND INDEX_NAME='PRIMARY' "
                                "ORDER BY SEQ_IN_INDEX", edb, ename);
    if (mysql_real_query(m->q, sql, strlen(sql)) != 0)
        return mysrc_conn_error(m->q, m, "reading information_schema.STATISTICS", err);
    MYSQL_RES *res = mysql_store_result(m->q);
    if (!res)
        return mysrc_conn_error(m->q, m, "reading information_schema.STATISTICS", err);
    size_t *key = arena_alloc(a, (t->n_columns + 1) * sizeof *key), nk = 0;
    bool ok = true;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        size_t i = 0;
        while (i < t->n_columns && strcmp(t->columns[i].name, row[0]))
            i++;
        if (i == t->n_columns || row[1] || nk == t->n_columns || !rangeable(&cols[i]))
            ok = false;
        else
            key[nk++] = i;
    }
    mysql_free_result(res);
    if (ok && nk > 0) {
        *out = key;
        *n = nk;
    }
    return 0;
}

/* The lake tables of every selected table, loaded; then the stream's start position
 * becomes the checkpoint in the same commit as the last rows. A first run records that
 * position (loch_kv cdc.<source>.load) before loading, so an interrupted load continues
 * from its committed ranges and streams from it. */
int mysrc_full_load(struct mysrc *m, struct mysrc_pos *start, struct loch_err *err)
{
    struct arena *a = arena_new(); /* lifetime: the full load */
    const char *src = m->r->src->name;
    char *load_kv = arena_printf(a, "cdc.%s.load", src), *saved = NULL;
    struct loch_err e2;
    bool resume = cdc_applier_get_kv(m->ap, load_kv, a, &saved, &e2) == 0 && saved;
    struct myload ml = {.m = m};
    int rc = 0;
    if (resume) {
        rc = mysrc_pos_parse(saved, start, err);
        bool exists = false;
        if (!rc)
            rc = mysrc_binlog_exists(m, start->file, &exists, err);
        if (!rc && !exists) {
            loch_errf(err, LOCH_ECONFIG, "source %s: an interrupted full load cannot continue: the binlog file %s "
                      "holding its start %s was purged", src, start->file, saved);
            rc = loch_err_hint(err, "drop the source's lake tables and delete the loch_kv keys cdc.%s.* to load "
                                    "again from scratch; raise the server's binlog retention", src);
        }
        if (!rc)
            log_info("mysql source %s: continuing the interrupted full load (stream from %s)", src, saved);
    } else {
        rc = open_snapshot(m, &ml.first, start, a, err);
        /* From here a restart continues this load instead of starting over. */
        if (!rc)
            rc = cdc_applier_put_kv(m->ap, load_kv, mysrc_pos_format(start, a), err);
    }
    MYSQL_RES *res = NULL;
    struct cdc_load_table *lt = NULL;
    size_t n = 0;
    if (!rc) {
        const char *sql = "SELECT TABLE_SCHEMA, TABLE_NAME, IFNULL(TABLE_ROWS, -1) FROM information_schema.TABLES "
                          "WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME";
        if (mysql_real_query(m->q, sql, strlen(sql)) != 0 || !(res = mysql_store_result(m->q)))
            rc = mysrc_conn_error(m->q, m, "listing tables", err);
    }
    if (!rc) {
        lt = arena_alloc(a, (mysql_num_rows(res) + 1) * sizeof *lt);
        MYSQL_ROW row;
        while ((row = mysql_fetch_row(res)))
            if (mysrc_table_selected(row[0], row[1], m->r->src->tables, m->r->src->n_tables,
                                     m->r->src->exclude, m->r->src->n_exclude)) {
                lt[n].schema = arena_strdup(a, row[0]);
                lt[n].name = arena_strdup(a, row[1]);
                lt[n++].est = strtoll(row[2], NULL, 10);
            }
        mysql_free_result(res);
    }
    /* shapes and key ranges of every table, declared before any reader starts */
    for (size_t i = 0; i < n && !rc; i++) {
        struct myload_table *mt = arena_alloc(a, sizeof *mt);
        struct cdc_table t;
        rc = mysrc_table_from_schema(m, m->q, lt[i].schema, lt[i].name, a, &t, &mt->cols, err);
        struct shape *s = rc ? NULL : mysrc_shape_get(m, lt[i].schema, lt[i].name);
        if (!rc)
            rc = mysrc_shape_declare(m, s, &t, err);
        if (!rc)
            rc = range_key(m, lt[i].schema, lt[i].name, &t, mt->cols, a, &mt->key_col, &lt[i].n_key, err);
        if (rc)
            break;
        lt[i].t = &s->t;
        lt[i].user = mt;
        lt[i].first_reader_only = lt[i].n_key == 0 && !resume;
        struct buf q = {0};
        for (size_t c = 0; c < t.n_columns; c++)
            buf_printf(&q, "%s%s", c ? ", " : "", mysrc_select_expr(a, &mt->cols[c]));
        mt->select_list = arena_strdup(a, q.data);
        buf_free(&q);
        struct buf o = {0};
        for (size_t k = 0; k < lt[i].n_key; k++)
            buf_printf(&o, "%s%s", k ? ", " : "", mysrc_ident(a, mt->cols[mt->key_col[k]].name));
        mt->order = arena_strdup(a, o.data ? o.data : "");
        buf_free(&o);
        mt->from = arena_printf(a, "%s.%s", mysrc_ident(a, lt[i].schema), mysrc_ident(a, lt[i].name));
    }
    if (!rc)
        rc = cdc_load_run(m->r, m->ap, lt, n, resume, LOAD_READERS, my_reader, &ml, err);
    if (ml.first) {
        if (!rc)
            rc = mysrc_exec(m, ml.first, "COMMIT", err);
        mysql_close(ml.first);
    }
    if (!rc) {
        /* The start position becomes the checkpoint with the last loaded rows, in one commit. */
        char *cp = mysrc_pos_format(start, a);
        char *position = m->gtid_positions ? "" : cp;
        cdc_applier_set_kv(m->ap, load_kv, NULL);
        cdc_load_forget(m->ap, src, lt, n);
        rc = cdc_applier_begin(m->ap, "snapshot", util_now_us(), err);
        if (!rc)
            rc = cdc_applier_commit(m->ap, position, cp, err);
        char *done = NULL;
        if (!rc)
            rc = cdc_applier_flush(m->ap, a, &done, err);
        if (!rc)
            log_info("mysql source %s: full load of %zu tables done; streaming from %s", src, n, cp);
    }
    arena_free(a);
    return rc;
}
