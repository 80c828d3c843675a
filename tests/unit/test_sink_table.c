/* test_sink_table.c: the one door to a lake table (sink/table.c): create (empty, with
 * first rows, twice, bad names), open, open under the writer lock. Not for data files or
 * commits of changes (the integration tests read those back with PyIceberg). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"
#include "sink/sink.h"

struct fixture {
    char dir[64];
    char *state;
    struct catalog *cat;
    struct store *st;
    struct engine *eng;
    struct engine_conn *conn;
    struct arena *a;
};

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static int setup(void **state)
{
    struct fixture *fx = xcalloc(1, sizeof *fx);
    strcpy(fx->dir, "/tmp/loch-sink-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->state = xasprintf("%s/state", fx->dir);
    char *wh = xasprintf("%s/warehouse", fx->dir);
    assert_int_equal(mkdir(fx->state, 0700), 0);
    assert_int_equal(mkdir(wh, 0700), 0);
    char *db = xasprintf("%s/catalog.db", fx->state);
    struct loch_err err;
    assert_int_equal(catalog_open(db, true, &fx->cat, &err), 0);
    assert_int_equal(store_open(wh, &fx->st, &err), 0);
    struct engine_options o = {.threads = 1};
    assert_int_equal(engine_open(&o, &fx->eng, &err), 0);
    assert_int_equal(engine_connect(fx->eng, &fx->conn, &err), 0);
    fx->a = arena_new();
    free(db);
    free(wh);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    engine_disconnect(fx->conn);
    engine_close(fx->eng);
    store_close(fx->st);
    catalog_close(fx->cat);
    arena_free(fx->a);
    nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(fx->state);
    free(fx);
    return 0;
}

static struct iceberg_schema *schema(struct arena *a)
{
    struct iceberg_schema *s = arena_alloc(a, sizeof *s);
    memset(s, 0, sizeof *s);
    s->n_fields = 2;
    s->fields = arena_alloc(a, 2 * sizeof *s->fields);
    s->fields[0] = (struct iceberg_field){1, "id", false, {ICEBERG_LONG, 0, 0, 0}, NULL};
    s->fields[1] = (struct iceberg_field){2, "name", false, {ICEBERG_STRING, 0, 0, 0}, NULL};
    return s;
}

static void test_create_then_open(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    assert_false(sink_table_exists(fx->cat, "core.public", "t", fx->a));
    assert_int_equal(sink_table_create(fx->cat, fx->st, "core.public", "t", schema(fx->a), NULL, fx->a, NULL, &err),
                     0);
    assert_true(sink_table_exists(fx->cat, "core.public", "t", fx->a));
    struct sink_table t;
    assert_int_equal(sink_table_open(fx->cat, fx->st, "core.public", "t", fx->a, &t, &err), 0);
    assert_string_equal(t.ns, "core.public");
    assert_string_equal(t.name, "t");
    assert_int_equal(t.lock_fd, -1);
    assert_int_equal(t.md->current_snapshot_id, -1); /* empty: no snapshot */
    char *want = xasprintf("file://%s/warehouse/core/public/t", fx->dir); /* the store root is a URI */
    assert_string_equal(t.md->location, want);
    free(want);
    assert_non_null(strstr(t.location, "/metadata/v1.metadata.json"));
    /* a second create changes nothing */
    assert_int_equal(sink_table_create(fx->cat, fx->st, "core.public", "t", schema(fx->a), NULL, fx->a, NULL, &err),
                     LOCH_EEXIST);
    struct sink_table again;
    assert_int_equal(sink_table_open(fx->cat, fx->st, "core.public", "t", fx->a, &again, &err), 0);
    assert_string_equal(again.location, t.location);
}

static void test_create_with_rows(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    struct sink_first_rows rows = {fx->conn, "SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, NULL))"};
    int64_t n = -1;
    assert_int_equal(sink_table_create(fx->cat, fx->st, "demo", "r", schema(fx->a), &rows, fx->a, &n, &err), 0);
    assert_int_equal(n, 3);
    struct sink_table t;
    assert_int_equal(sink_table_open(fx->cat, fx->st, "demo", "r", fx->a, &t, &err), 0);
    assert_true(t.md->current_snapshot_id >= 0); /* the rows are its first snapshot */
    assert_int_equal(t.md->n_snapshots, 1);
}

static void test_refused_names_and_missing(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    assert_int_equal(sink_table_create(fx->cat, fx->st, "core", "../x", schema(fx->a), NULL, fx->a, NULL, &err),
                     LOCH_ENAME);
    struct sink_table t;
    assert_int_equal(sink_table_open(fx->cat, fx->st, "core", "nope", fx->a, &t, &err), LOCH_ENOENT);
    assert_null(t.md);
    assert_int_equal(sink_table_open_locked(fx->cat, fx->st, fx->state, "core", "nope", fx->a, &t, &err),
                     LOCH_ENOENT);
    assert_int_equal(t.lock_fd, -1);
}

/* Whether another open file description could take the writer lock of ns.name now. */
static bool lock_free(struct fixture *fx, const char *ns, const char *name)
{
    char *path = xasprintf("%s/locks/%s.%s.lock", fx->state, ns, name);
    int fd = open(path, O_RDWR);
    free(path);
    assert_true(fd >= 0);
    bool got = flock(fd, LOCK_EX | LOCK_NB) == 0;
    close(fd); /* releases it again */
    return got;
}

static void test_open_locked(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    assert_int_equal(sink_table_create(fx->cat, fx->st, "demo", "l", schema(fx->a), NULL, fx->a, NULL, &err), 0);
    struct sink_table t;
    assert_int_equal(sink_table_open_locked(fx->cat, fx->st, fx->state, "demo", "l", fx->a, &t, &err), 0);
    assert_true(t.lock_fd >= 0);
    assert_non_null(t.md);
    assert_false(lock_free(fx, "demo", "l"));
    sink_table_close(&t);
    assert_int_equal(t.lock_fd, -1);
    assert_true(lock_free(fx, "demo", "l"));
    sink_table_close(&t); /* twice is harmless */
    sink_table_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_then_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_with_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_names_and_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_locked, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
