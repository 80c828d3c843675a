/* test_cdc_applier.c: the applier (src/cdc/applier*.c) fed by a scripted fake source
 * into a real lake in a temp folder: a full load, then transactions of inserts, updates
 * (some moving the key, some with values the source did not send), deletes, truncates and
 * rollbacks, flushed on the caller's thread and on the flush thread, across restarts
 * (a clean stop that saves the key index, and one whose saved index is gone, so it is
 * rebuilt from the lake). After every flush the lake, read back through an Iceberg scan,
 * must equal the model the test keeps, and the checkpoint must be the last transaction's.
 * Not for the sources' decoding (their own tests) or PyIceberg's view (integration). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"
#include "catalog/catalog.h"
#include "cdc/applier.h"
#include "engine/engine.h"
#include "iceberg/table.h"

/* ---- the model ---- */

#define NKEYS 48  /* few keys: a batch often touches one key many times */
#define MAX_EV 4096

struct item {
    bool live;
    bool name_null;
    char name[48], qty[24], amount[32];
};

struct event {
    char seq[24], what[32];
};

struct model {
    struct item items[NKEYS + 1]; /* by id, 1..NKEYS */
    struct event ev[MAX_EV];
    size_t n_ev;
    int64_t item_changes, item_deletes, event_changes;
};

/* ---- the fixture: a lake in a temp folder ---- */

struct fx {
    char dir[64];
    char *state;
    struct catalog *cat;
    struct store *st;
    struct engine *eng;
    struct engine_conn *rd; /* reads the lake back */
    struct cdc_applier *ap;
    struct arena *a;
    struct model m;
    uint64_t rng;
    int64_t txn;          /* transactions committed */
    int64_t counter;      /* makes every value written unique */
    struct cdc_column icol[4], ecol[2];
    struct cdc_table items, events;
};

static uint64_t rnd(struct fx *f)
{
    f->rng ^= f->rng << 13;
    f->rng ^= f->rng >> 7;
    f->rng ^= f->rng << 17;
    return f->rng;
}

static unsigned pick(struct fx *f, unsigned n) { return (unsigned)(rnd(f) % n); }

static void declare(struct fx *f)
{
    struct loch_err err;
    int rc = cdc_applier_table(f->ap, &f->items, &err);
    if (rc)
        fail_msg("declare items: %s", err.msg);
    rc = cdc_applier_table(f->ap, &f->events, &err);
    if (rc)
        fail_msg("declare events: %s", err.msg);
}

static void open_applier(struct fx *f)
{
    struct cdc_applier_options o = {
        .source = "fake",
        .state_dir = f->state,
        .position_column = "_lsn",
        .position_type = {ICEBERG_LONG, 0, 0, 0},
        .flush_interval_ms = 60000,
    };
    struct loch_err err;
    int rc = cdc_applier_open(&o, f->cat, f->st, f->eng, &f->ap, &err);
    if (rc)
        fail_msg("cdc_applier_open: %s", err.msg);
    declare(f);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/loch-applier-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->a = arena_new();
    f->state = arena_printf(f->a, "%s/state", f->dir);
    struct loch_err err;
    assert_int_equal(util_mkdirs(f->state, &err), 0);
    assert_int_equal(catalog_open(arena_printf(f->a, "%s/catalog.db", f->state), true, &f->cat, &err), 0);
    assert_int_equal(store_open(arena_printf(f->a, "%s/lake", f->dir), &f->st, &err), 0);
    struct engine_options eo = {.threads = 2};
    assert_int_equal(engine_open(&eo, &f->eng, &err), 0);
    assert_int_equal(engine_connect(f->eng, &f->rd, &err), 0);
    f->rng = 0x9e3779b97f4a7c15ULL;
    static const struct iceberg_type tlong = {ICEBERG_LONG, 0, 0, 0}, tstr = {ICEBERG_STRING, 0, 0, 0},
                                     tint = {ICEBERG_INT, 0, 0, 0}, tdec = {ICEBERG_DECIMAL, 12, 2, 0};
    f->icol[0] = (struct cdc_column){"id", tlong, false, true, "bigint"};
    f->icol[1] = (struct cdc_column){"name", tstr, true, false, "text"};
    f->icol[2] = (struct cdc_column){"qty", tint, true, false, "integer"};
    f->icol[3] = (struct cdc_column){"amount", tdec, true, false, "numeric(12,2)"};
    f->items = (struct cdc_table){"fake", "shop", "items", 4, f->icol, true, false, false};
    f->ecol[0] = (struct cdc_column){"seq", tlong, true, false, "bigint"};
    f->ecol[1] = (struct cdc_column){"what", tstr, true, false, "text"};
    f->events = (struct cdc_table){"fake", "shop", "events", 2, f->ecol, false, false, true};
    open_applier(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    cdc_applier_close(f->ap);
    engine_disconnect(f->rd);
    engine_close(f->eng);
    store_close(f->st);
    catalog_close(f->cat);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    arena_free(f->a);
    free(f);
    return 0;
}

/* ---- the lake, read back ---- */

/* The live rows of lake table fake.shop.<name> (data files minus position deletes), each
 * column as DuckDB's text, ordered by order_by. */
static struct engine_rows *lake_rows(struct fx *f, const char *name, const char *cols, const char *order_by)
{
    struct arena *a = arena_new();
    struct loch_err err;
    struct catalog_table ct;
    struct iceberg_metadata *md;
    struct iceberg_scan *scan;
    if (catalog_load_table(f->cat, "fake.shop", name, a, &ct, &err) ||
        iceberg_table_load(f->st, ct.metadata_location, a, &md, &err) ||
        iceberg_scan_plan(f->st, md, -1, a, &scan, &err))
        fail_msg("reading %s: %s", name, err.msg);
    struct buf b = {0};
    buf_printf(&b, "SELECT %s FROM (", cols);
    for (size_t i = 0; i < scan->n_data; i++) {
        buf_puts(&b, i ? " UNION ALL " : "");
        buf_printf(&b, "SELECT * EXCLUDE (file_row_number) FROM read_parquet(");
        buf_sql_str(&b, scan->data[i].path);
        buf_puts(&b, ", file_row_number = true)");
        if (scan->n_deletes) {
            buf_puts(&b, " WHERE file_row_number NOT IN (SELECT pos FROM read_parquet([");
            for (size_t k = 0; k < scan->n_deletes; k++) {
                buf_puts(&b, k ? ", " : "");
                buf_sql_str(&b, scan->deletes[k].path);
            }
            buf_puts(&b, "]) WHERE file_path = ");
            buf_sql_str(&b, scan->data[i].path);
            buf_puts(&b, ")");
        }
    }
    if (!scan->n_data) /* no files: an empty relation of the table's columns */
        buf_printf(&b, "SELECT * FROM (SELECT NULL::BIGINT AS id, NULL AS name, NULL AS qty, NULL AS amount, "
                       "NULL::BIGINT AS seq, NULL AS what, NULL AS _op) WHERE false");
    buf_printf(&b, ") ORDER BY %s", order_by);
    struct engine_rows *r;
    if (engine_query(f->rd, b.data, &r, &err))
        fail_msg("%s: %s", b.data, err.msg);
    buf_free(&b);
    arena_free(a);
    return r;
}

static void expect_text(struct engine_rows *r, size_t col, size_t row, const char *want, struct arena *a,
                        const char *what)
{
    const char *got = engine_rows_text(r, col, row, a);
    if ((got == NULL) != (want == NULL) || (got && strcmp(got, want)))
        fail_msg("%s: row %zu column %zu: lake has %s, model has %s", what, row, col, got ? got : "NULL",
                 want ? want : "NULL");
}

/* Flushes everything (landing a flush in the air) and compares the lake with the model. */
static void flush_and_check(struct fx *f)
{
    struct loch_err err;
    struct arena *a = arena_new();
    char *ck = NULL;
    if (cdc_applier_flush(f->ap, a, &ck, &err))
        fail_msg("flush: %s", err.msg);
    assert_false(cdc_applier_pending(f->ap));
    struct engine_rows *r = lake_rows(f, "items", "id, name, CAST(qty AS VARCHAR), CAST(amount AS VARCHAR)", "id");
    size_t row = 0;
    for (int id = 1; id <= NKEYS; id++) {
        const struct item *it = &f->m.items[id];
        if (!it->live)
            continue;
        char idt[16];
        snprintf(idt, sizeof idt, "%d", id);
        expect_text(r, 0, row, idt, a, "items.id");
        expect_text(r, 1, row, it->name_null ? NULL : it->name, a, "items.name");
        expect_text(r, 2, row, it->qty, a, "items.qty");
        expect_text(r, 3, row, it->amount, a, "items.amount");
        row++;
    }
    assert_int_equal(engine_rows_count(r), row);
    engine_rows_free(r);
    r = lake_rows(f, "events", "CAST(seq AS VARCHAR), what", "seq");
    assert_int_equal(engine_rows_count(r), f->m.n_ev);
    for (size_t i = 0; i < f->m.n_ev; i++) { /* seq grows with the counter: model order is seq order */
        expect_text(r, 0, i, f->m.ev[i].seq, a, "events.seq");
        expect_text(r, 1, i, f->m.ev[i].what, a, "events.what");
    }
    engine_rows_free(r);
    /* the change logs hold every change, and the deletes among them */
    r = lake_rows(f, "items_changes", "count(*), count(*) FILTER (WHERE _op = 'D')", "1");
    assert_int_equal(engine_rows_int(r, 0, 0), f->m.item_changes);
    assert_int_equal(engine_rows_int(r, 1, 0), f->m.item_deletes);
    engine_rows_free(r);
    r = lake_rows(f, "events_changes", "count(*)", "1");
    assert_int_equal(engine_rows_int(r, 0, 0), f->m.event_changes);
    engine_rows_free(r);
    /* the checkpoint is the last committed transaction's */
    char *saved = NULL;
    if (f->txn) {
        assert_int_equal(cdc_applier_checkpoint(f->cat, "fake", a, &saved, &err), 0);
        char want[32];
        snprintf(want, sizeof want, "ck-%" PRId64, f->txn);
        assert_string_equal(saved, want);
    }
    arena_free(a);
}

/* ---- the fake source ---- */

static void fill_item(struct fx *f, struct item *it)
{
    int64_t c = ++f->counter;
    it->live = true;
    it->name_null = c % 7 == 0;
    snprintf(it->name, sizeof it->name, "name %" PRId64 " \"quoted\", comma", c);
    snprintf(it->qty, sizeof it->qty, "%" PRId64, (c % 5 ? 1 : -1) * (c * 37 % 100000));
    snprintf(it->amount, sizeof it->amount, "%s%" PRId64 ".%02d", c % 3 ? "" : "-", c * 13 % 1000000, (int)(c % 100));
}

/* v[4] from an item; unchanged_name: the source did not send the name (PG's TOAST). */
static void item_values(const struct item *it, int id, char *idt, struct cdc_value *v, bool unchanged_name)
{
    snprintf(idt, 16, "%d", id);
    v[0] = (struct cdc_value){idt, strlen(idt), false};
    v[1] = it->name_null ? (struct cdc_value){NULL, 0, false} : (struct cdc_value){it->name, strlen(it->name), false};
    if (unchanged_name)
        v[1] = (struct cdc_value){NULL, 0, true};
    v[2] = (struct cdc_value){it->qty, strlen(it->qty), false};
    v[3] = (struct cdc_value){it->amount, strlen(it->amount), false};
}

static void change(struct fx *f, enum cdc_op op, const struct cdc_table *t, const struct cdc_value *before,
                   const struct cdc_value *after)
{
    struct cdc_change c = {op, t, before, after};
    struct loch_err err;
    if (cdc_applier_change(f->ap, &c, &err))
        fail_msg("change %c: %s", op, err.msg);
}

static int free_key(struct fx *f)
{
    for (int tries = 0; tries < 4 * NKEYS; tries++) {
        int id = 1 + (int)pick(f, NKEYS);
        if (!f->m.items[id].live)
            return id;
    }
    return 0;
}

static int live_key(struct fx *f)
{
    for (int tries = 0; tries < 4 * NKEYS; tries++) {
        int id = 1 + (int)pick(f, NKEYS);
        if (f->m.items[id].live)
            return id;
    }
    return 0;
}

/* One change of items, applied to the model as the source would have it. */
static void item_change(struct fx *f)
{
    struct model *m = &f->m;
    char idt[16], idt2[16];
    struct cdc_value before[4], after[4];
    unsigned k = pick(f, 10);
    int id;
    if (k < 4 && (id = free_key(f))) { /* insert */
        fill_item(f, &m->items[id]);
        item_values(&m->items[id], id, idt, after, false);
        change(f, CDC_INSERT, &f->items, NULL, after);
    } else if (k < 8 && (id = live_key(f))) { /* update: sometimes the key moves, sometimes the name is not sent */
        struct item old = m->items[id];
        bool unsent = !old.name_null && pick(f, 3) == 0;
        int to = pick(f, 4) == 0 ? free_key(f) : 0;
        struct item *it = &m->items[to ? to : id];
        if (to)
            m->items[id].live = false;
        fill_item(f, it);
        if (unsent) {
            it->name_null = false;
            memcpy(it->name, old.name, sizeof it->name);
        }
        item_values(it, to ? to : id, idt2, after, unsent);
        if (to) { /* the old key only; the rest was not sent */
            item_values(&old, id, idt, before, false);
            for (int i = 1; i < 4; i++)
                before[i] = (struct cdc_value){NULL, 0, true};
        }
        change(f, CDC_UPDATE, &f->items, to ? before : NULL, after);
    } else if ((id = live_key(f))) { /* delete: the old key */
        item_values(&m->items[id], id, idt, before, false);
        for (int i = 1; i < 4; i++)
            before[i] = (struct cdc_value){NULL, 0, true};
        m->items[id].live = false;
        change(f, CDC_DELETE, &f->items, before, NULL);
        m->item_deletes++;
    } else {
        return;
    }
    m->item_changes++;
}

static void event_insert(struct fx *f)
{
    struct model *m = &f->m;
    if (m->n_ev == MAX_EV)
        return;
    struct event *e = &m->ev[m->n_ev++];
    int64_t c = ++f->counter;
    snprintf(e->seq, sizeof e->seq, "%" PRId64, c);
    snprintf(e->what, sizeof e->what, "event %" PRId64, c);
    struct cdc_value v[2] = {{e->seq, strlen(e->seq), false}, {e->what, strlen(e->what), false}};
    change(f, CDC_INSERT, &f->events, NULL, v);
    m->event_changes++;
}

static void truncate_all(struct fx *f)
{
    change(f, CDC_TRUNCATE, &f->items, NULL, NULL);
    change(f, CDC_TRUNCATE, &f->events, NULL, NULL);
    for (int id = 1; id <= NKEYS; id++)
        f->m.items[id].live = false;
    f->m.n_ev = 0;
    f->m.item_changes++;
    f->m.event_changes++;
}

/* One source transaction of a few changes; rollback: the source aborts it instead. */
static void transaction(struct fx *f, bool rollback, bool truncate)
{
    struct loch_err err;
    char txid[32], pos[32], ck[32];
    snprintf(txid, sizeof txid, "tx%" PRId64, f->txn + 1);
    if (cdc_applier_begin(f->ap, txid, 1700000000000000LL + f->txn * 1000, &err))
        fail_msg("begin: %s", err.msg);
    struct model *keep = NULL;
    if (rollback) {
        keep = malloc(sizeof *keep);
        *keep = f->m;
    }
    if (truncate)
        truncate_all(f);
    unsigned n = 1 + pick(f, 6);
    for (unsigned i = 0; i < n; i++) {
        if (pick(f, 4) == 0)
            event_insert(f);
        else
            item_change(f);
    }
    if (rollback) {
        cdc_applier_rollback(f->ap);
        f->m = *keep;
        free(keep);
        return;
    }
    f->txn++;
    snprintf(pos, sizeof pos, "%" PRId64, 1000 + f->txn);
    snprintf(ck, sizeof ck, "ck-%" PRId64, f->txn);
    if (cdc_applier_commit(f->ap, pos, ck, &err))
        fail_msg("commit: %s", err.msg);
}

/* n transactions, flushed now and then on the caller's thread or the flush thread. */
static void stream(struct fx *f, int n)
{
    struct loch_err err;
    for (int i = 0; i < n; i++) {
        unsigned k = pick(f, 40);
        transaction(f, k == 0, k == 1);
        unsigned fl = pick(f, 8);
        if (fl == 0) {
            if (cdc_applier_flush(f->ap, NULL, NULL, &err))
                fail_msg("flush: %s", err.msg);
        } else if (fl == 1) {
            if (cdc_applier_flush_start(f->ap, &err))
                fail_msg("flush_start: %s", err.msg);
        } else if (fl == 2) {
            struct arena *a = arena_new();
            char *ck;
            if (cdc_applier_flush_poll(f->ap, a, &ck, &err))
                fail_msg("flush_poll: %s", err.msg);
            arena_free(a);
        }
    }
}

/* A full load of the first half of the keys, as a source's snapshot would give them. */
static void full_load(struct fx *f)
{
    struct buf b = {0};
    buf_puts(&b, "SELECT * FROM (VALUES ");
    for (int id = 1; id <= NKEYS / 2; id++) {
        struct item *it = &f->m.items[id];
        fill_item(f, it);
        buf_printf(&b, "%s(%d::VARCHAR, ", id > 1 ? ", " : "", id);
        if (it->name_null)
            buf_puts(&b, "NULL");
        else
            buf_sql_str(&b, it->name);
        buf_puts(&b, ", ");
        buf_sql_str(&b, it->qty);
        buf_puts(&b, ", ");
        buf_sql_str(&b, it->amount);
        buf_puts(&b, ")");
    }
    buf_puts(&b, ")");
    int64_t n = 0;
    struct loch_err err;
    if (cdc_applier_load(f->ap, &f->items, b.data, &n, &err))
        fail_msg("load: %s", err.msg);
    assert_int_equal(n, NKEYS / 2);
    buf_free(&b);
}

static size_t saved_indexes(struct fx *f)
{
    char *dir = arena_printf(f->a, "%s/keyidx", f->state);
    DIR *d = opendir(dir);
    size_t n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strstr(e->d_name, ".kx") != NULL;
    if (d)
        closedir(d);
    return n;
}

static void remove_saved_indexes(struct fx *f)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -f '%s'/keyidx/*.kx", f->state);
    assert_int_equal(system(cmd), 0);
}

/* ---- tests ---- */

static void test_lake_equals_model(void **state)
{
    struct fx *f = *state;
    flush_and_check(f); /* declared: both tables empty */
    full_load(f);
    stream(f, 60); /* the loaded rows change in the load's own batch too */
    flush_and_check(f);
    for (int round = 0; round < 4; round++) {
        stream(f, 80);
        flush_and_check(f);
    }
}

static void test_restarts(void **state)
{
    struct fx *f = *state;
    full_load(f);
    stream(f, 120);
    flush_and_check(f);
    /* a clean stop saves the key index; the next start reads it back */
    cdc_applier_close(f->ap);
    assert_int_equal(saved_indexes(f), 1); /* items only: events is insert-only */
    open_applier(f);
    stream(f, 120);
    flush_and_check(f);
    assert_int_equal(saved_indexes(f), 0); /* taken when read */
    /* a stop whose index is gone (as after a crash): rebuilt from the lake */
    struct model *durable = malloc(sizeof *durable);
    *durable = f->m;
    int64_t durable_txn = f->txn;
    for (int i = 0; i < 30; i++) /* staged, never flushed: lost with the stop, as after a crash */
        transaction(f, false, false);
    cdc_applier_close(f->ap);
    f->m = *durable; /* the source resumes from the checkpoint */
    f->txn = durable_txn;
    free(durable);
    remove_saved_indexes(f);
    open_applier(f);
    stream(f, 150);
    flush_and_check(f);
    /* a stop with a flush in the air: close lands it */
    struct loch_err err;
    stream(f, 20);
    assert_int_equal(cdc_applier_flush_start(f->ap, &err), 0);
    cdc_applier_close(f->ap);
    open_applier(f);
    stream(f, 60);
    flush_and_check(f);
}

/* What a source sees of the lake through the applier: loch_kv keys written at once, and
 * a declared table's shape read back (as MySQL's DDL does after a restart). */
static void test_source_view_of_lake(void **state)
{
    struct fx *f = *state;
    struct arena *a = arena_new();
    struct loch_err err;
    char *v = NULL;
    assert_int_equal(cdc_applier_get_kv(f->ap, "cdc.fake.load", a, &v, &err), LOCH_ENOENT);
    assert_int_equal(cdc_applier_put_kv(f->ap, "cdc.fake.load", "0/16B3748", &err), 0);
    assert_int_equal(catalog_get_kv(f->cat, "cdc.fake.load", a, &v, &err), 0); /* durable now */
    assert_string_equal(v, "0/16B3748");
    assert_int_equal(cdc_applier_put_kv(f->ap, "cdc.fake.load", NULL, &err), 0);
    assert_int_equal(cdc_applier_get_kv(f->ap, "cdc.fake.load", a, &v, &err), LOCH_ENOENT);

    assert_int_equal(cdc_applier_lake_table(f->ap, "shop", "items", a, NULL, &err), 0);
    assert_int_equal(cdc_applier_lake_table(f->ap, "shop", "nope", a, NULL, &err), LOCH_ENOENT);
    struct cdc_table t;
    assert_int_equal(cdc_applier_lake_table(f->ap, "shop", "items", a, &t, &err), 0);
    assert_string_equal(t.source, "fake");
    assert_string_equal(t.schema, "shop");
    assert_string_equal(t.name, "items");
    assert_int_equal(t.n_columns, f->items.n_columns);
    for (size_t i = 0; i < t.n_columns; i++) {
        assert_string_equal(t.columns[i].name, f->items.columns[i].name);
        assert_true(iceberg_type_equal(&t.columns[i].type, &f->items.columns[i].type));
        assert_int_equal(t.columns[i].key, f->items.columns[i].key);
    }
    assert_true(t.has_key);
    assert_int_equal(cdc_applier_lake_table(f->ap, "shop", "events", a, &t, &err), 0);
    assert_false(t.has_key);
    arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lake_equals_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_view_of_lake, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
