/* test_catalog.c: the SQLite catalog: namespaces, tables, the atomic multi-table commit
 * and kvs. Not for PyIceberg/Spark interop (tests/integration opens the same file). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "base/mem.h"
#include "catalog/catalog.h"

struct fixture {
    char dir[64];
    char *path;
    struct catalog *c;
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
    strcpy(fx->dir, "/tmp/loch-cat-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->path = xasprintf("%s/catalog.db", fx->dir);
    struct loch_err err;
    assert_int_equal(catalog_open(fx->path, true, &fx->c, &err), 0);
    fx->a = arena_new();
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    catalog_close(fx->c);
    arena_free(fx->a);
    nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(fx->path);
    free(fx);
    return 0;
}

static void create(struct fixture *fx, const char *ns, const char *name, const char *loc)
{
    struct loch_err err;
    struct catalog_update u = {ns, name, NULL, loc};
    assert_int_equal(catalog_commit(fx->c, &u, 1, NULL, 0, &err), 0);
}

static void test_open_missing(void **state)
{
    struct fixture *fx = *state;
    struct catalog *c = NULL;
    struct loch_err err;
    char *p = xasprintf("%s/nope.db", fx->dir);
    assert_int_equal(catalog_open(p, false, &c, &err), LOCH_ENOENT);
    assert_null(c);
    assert_non_null(strstr(err.hint, "loch init"));
    free(p);
    /* reopening an existing catalog keeps its contents and schema */
    create(fx, "core.public", "loans", "file:///l/m1.json");
    assert_int_equal(catalog_open(fx->path, false, &c, &err), 0);
    struct catalog_table t;
    assert_int_equal(catalog_load_table(c, "core.public", "loans", fx->a, &t, &err), 0);
    assert_string_equal(t.metadata_location, "file:///l/m1.json");
    catalog_close(c);
}

static void test_namespaces(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    char **ns;
    size_t n;
    assert_int_equal(catalog_list_namespaces(fx->c, fx->a, &ns, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(catalog_create_namespace(fx->c, "core.public", &err), 0);
    assert_int_equal(catalog_create_namespace(fx->c, "core.public", &err), 0); /* existing is fine */
    assert_int_equal(catalog_create_namespace(fx->c, "crm", &err), 0);
    assert_int_equal(catalog_create_namespace(fx->c, "a.b.c", &err), 0);
    assert_int_equal(catalog_list_namespaces(fx->c, fx->a, &ns, &n, &err), 0);
    const char *want[] = {"a", "a.b", "a.b.c", "core", "core.public", "crm"};
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(ns[i], want[i]);
    bool ex;
    assert_int_equal(catalog_namespace_exists(fx->c, "core", &ex, &err), 0);
    assert_true(ex);
    assert_int_equal(catalog_namespace_exists(fx->c, "core.public", &ex, &err), 0);
    assert_true(ex);
    assert_int_equal(catalog_namespace_exists(fx->c, "cor", &ex, &err), 0);
    assert_false(ex);
    assert_int_equal(catalog_namespace_exists(fx->c, "core.pub", &ex, &err), 0);
    assert_false(ex);
    assert_int_equal(catalog_create_namespace(fx->c, "bad..ns", &err), LOCH_ENAME);
    assert_int_equal(catalog_create_namespace(fx->c, ".x", &err), LOCH_ENAME);
    assert_int_equal(catalog_create_namespace(fx->c, "", &err), LOCH_ENAME);

    /* the JDBC marker row is there, so Java and PyIceberg see the namespace */
    sqlite3 *db = catalog_db(fx->c);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*) FROM iceberg_namespace_properties WHERE"
                                        " catalog_name='loch' AND namespace='a.b' AND property_key='exists'"
                                        " AND property_value='true'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
}

static void test_tables(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    create(fx, "core.public", "loans", "file:///w/loans/m1.json");
    create(fx, "core.public", "accounts", "file:///w/accounts/m1.json");
    create(fx, "crm.sales", "leads", "file:///w/leads/m1.json");

    /* creating a table created its namespace and parents */
    bool ex;
    assert_int_equal(catalog_namespace_exists(fx->c, "crm", &ex, &err), 0);
    assert_true(ex);

    struct catalog_table *t;
    size_t n;
    assert_int_equal(catalog_list_tables(fx->c, "core.public", fx->a, &t, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(t[0].name, "accounts");
    assert_string_equal(t[1].name, "loans");
    assert_string_equal(t[1].ns, "core.public");
    assert_null(t[1].previous_metadata_location);
    assert_int_equal(catalog_list_tables(fx->c, NULL, fx->a, &t, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(t[2].ns, "crm.sales");
    assert_int_equal(catalog_list_tables(fx->c, "core", fx->a, &t, &n, &err), 0);
    assert_int_equal(n, 0);

    /* create again: EEXIST */
    struct catalog_update u = {"core.public", "loans", NULL, "file:///w/loans/other.json"};
    assert_int_equal(catalog_commit(fx->c, &u, 1, NULL, 0, &err), LOCH_EEXIST);
    assert_non_null(strstr(err.msg, "core.public.loans"));

    /* move the pointer */
    struct catalog_update mv = {"core.public", "loans", "file:///w/loans/m1.json", "file:///w/loans/m2.json"};
    assert_int_equal(catalog_commit(fx->c, &mv, 1, NULL, 0, &err), 0);
    struct catalog_table one;
    assert_int_equal(catalog_load_table(fx->c, "core.public", "loans", fx->a, &one, &err), 0);
    assert_string_equal(one.metadata_location, "file:///w/loans/m2.json");
    assert_string_equal(one.previous_metadata_location, "file:///w/loans/m1.json");

    /* the same move again is stale now */
    assert_int_equal(catalog_commit(fx->c, &mv, 1, NULL, 0, &err), LOCH_ECONFLICT);
    assert_non_null(strstr(err.msg, "core.public.loans"));
    assert_non_null(strstr(err.detail, "m2.json"));

    assert_int_equal(catalog_drop_table(fx->c, "core.public", "loans", &err), 0);
    assert_int_equal(catalog_load_table(fx->c, "core.public", "loans", fx->a, &one, &err), LOCH_ENOENT);
    assert_string_equal(err.msg, "table core.public.loans does not exist");
    assert_non_null(strstr(err.hint, "loch tables"));
    assert_int_equal(catalog_drop_table(fx->c, "core.public", "loans", &err), LOCH_ENOENT);
    assert_int_equal(catalog_list_tables(fx->c, "core.public", fx->a, &t, &n, &err), 0);
    assert_int_equal(n, 1);
}

static void expect_kv(struct fixture *fx, const char *key, const char *want)
{
    struct loch_err err;
    char *v;
    if (!want) {
        assert_int_equal(catalog_get_kv(fx->c, key, fx->a, &v, &err), LOCH_ENOENT);
        assert_null(v);
        return;
    }
    assert_int_equal(catalog_get_kv(fx->c, key, fx->a, &v, &err), 0);
    assert_string_equal(v, want);
}

static void expect_loc(struct fixture *fx, const char *ns, const char *name, const char *want)
{
    struct loch_err err;
    struct catalog_table t;
    assert_int_equal(catalog_load_table(fx->c, ns, name, fx->a, &t, &err), 0);
    assert_string_equal(t.metadata_location, want);
}

static void test_atomic_commit(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    create(fx, "pg.public", "loans", "L1");
    create(fx, "pg.public", "loans_changes", "C1");
    struct catalog_kv kv0 = {"source.pg.lsn", "0/100"};
    assert_int_equal(catalog_commit(fx->c, NULL, 0, &kv0, 1, &err), 0);

    /* both pointers and the position move together */
    struct catalog_update ok[] = {{"pg.public", "loans", "L1", "L2"}, {"pg.public", "loans_changes", "C1", "C2"}};
    struct catalog_kv kv1 = {"source.pg.lsn", "0/200"};
    assert_int_equal(catalog_commit(fx->c, ok, 2, &kv1, 1, &err), 0);
    expect_loc(fx, "pg.public", "loans", "L2");
    expect_loc(fx, "pg.public", "loans_changes", "C2");
    expect_kv(fx, "source.pg.lsn", "0/200");

    /* the second CAS is stale: the first (valid) move, the new table and the kv are all
     * rolled back */
    struct catalog_update bad[] = {{"pg.public", "loans", "L2", "L3"},
                                   {"pg.public", "new_table", NULL, "N1"},
                                   {"pg.public", "loans_changes", "C1", "C3"}};
    struct catalog_kv kv2[] = {{"source.pg.lsn", "0/300"}, {"other", "x"}};
    assert_int_equal(catalog_commit(fx->c, bad, 3, kv2, 2, &err), LOCH_ECONFLICT);
    assert_non_null(strstr(err.msg, "pg.public.loans_changes"));
    expect_loc(fx, "pg.public", "loans", "L2");
    expect_loc(fx, "pg.public", "loans_changes", "C2");
    expect_kv(fx, "source.pg.lsn", "0/200");
    expect_kv(fx, "other", NULL);
    struct catalog_table t;
    assert_int_equal(catalog_load_table(fx->c, "pg.public", "new_table", fx->a, &t, &err), LOCH_ENOENT);

    /* a create that collides also rolls back the whole commit */
    struct catalog_update dup[] = {{"pg.public", "loans", "L2", "L3"}, {"pg.public", "loans_changes", NULL, "X"}};
    assert_int_equal(catalog_commit(fx->c, dup, 2, &kv1, 1, &err), LOCH_EEXIST);
    expect_loc(fx, "pg.public", "loans", "L2");

    /* a dropped table is a conflict too */
    struct catalog_update gone = {"pg.public", "ghost", "G1", "G2"};
    assert_int_equal(catalog_commit(fx->c, &gone, 1, NULL, 0, &err), LOCH_ECONFLICT);
    assert_non_null(strstr(err.msg, "no longer exists"));

    /* the catalog is usable after a failed commit (no transaction left open) */
    struct catalog_update next = {"pg.public", "loans", "L2", "L3"};
    assert_int_equal(catalog_commit(fx->c, &next, 1, NULL, 0, &err), 0);
    expect_loc(fx, "pg.public", "loans", "L3");
}

/* Two handles on one file, as two loch processes: the second writer's stale pointer loses. */
static void test_two_writers(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    create(fx, "pg.public", "loans", "L1");
    struct catalog *other;
    assert_int_equal(catalog_open(fx->path, false, &other, &err), 0);
    struct catalog_update mine = {"pg.public", "loans", "L1", "L2-mine"};
    struct catalog_update theirs = {"pg.public", "loans", "L1", "L2-theirs"};
    struct catalog_kv kv = {"pos", "theirs"};
    assert_int_equal(catalog_commit(fx->c, &mine, 1, NULL, 0, &err), 0);
    assert_int_equal(catalog_commit(other, &theirs, 1, &kv, 1, &err), LOCH_ECONFLICT);
    assert_non_null(strstr(err.detail, "L2-mine"));
    expect_loc(fx, "pg.public", "loans", "L2-mine");
    expect_kv(fx, "pos", NULL);
    catalog_close(other);
}

static void test_kv(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    expect_kv(fx, "k", NULL);
    struct catalog_kv kv[] = {{"k", "v1"}, {"quote'd", "it's \"fine\""}};
    assert_int_equal(catalog_commit(fx->c, NULL, 0, kv, 2, &err), 0);
    expect_kv(fx, "k", "v1");
    expect_kv(fx, "quote'd", "it's \"fine\"");
    struct catalog_kv upd = {"k", "v2"};
    assert_int_equal(catalog_commit(fx->c, NULL, 0, &upd, 1, &err), 0);
    expect_kv(fx, "k", "v2");
    struct catalog_kv del = {"k", NULL};
    assert_int_equal(catalog_commit(fx->c, NULL, 0, &del, 1, &err), 0);
    expect_kv(fx, "k", NULL);
}

static void expect_no_table(struct fixture *fx, const char *ns, const char *name)
{
    struct catalog_table t;
    struct loch_err err;
    assert_int_equal(catalog_load_table(fx->c, ns, name, fx->a, &t, &err), LOCH_ENOENT);
}

/* A rename keeps the metadata location; refusals name the table and write nothing. */
/* One rename, no kv. */
static int rename_one(struct catalog *c, const char *ns, const char *name, const char *ns_to, const char *name_to,
                      struct loch_err *err)
{
    struct catalog_rename r = {ns, name, ns_to, name_to};
    return catalog_rename_tables(c, &r, 1, NULL, 0, err);
}

static void test_rename(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    create(fx, "my.shop", "a", "LA");
    create(fx, "my.shop", "b", "LB");
    assert_int_equal(rename_one(fx->c, "my.shop", "a", "my.shop", "a2", &err), 0);
    expect_loc(fx, "my.shop", "a2", "LA");
    expect_no_table(fx, "my.shop", "a");
    /* later commits move the pointer under the new name */
    struct catalog_update u = {"my.shop", "a2", "LA", "LA2"};
    assert_int_equal(catalog_commit(fx->c, &u, 1, NULL, 0, &err), 0);
    expect_loc(fx, "my.shop", "a2", "LA2");

    assert_int_equal(rename_one(fx->c, "my.shop", "a", "my.shop", "z", &err), LOCH_ENOENT);
    assert_non_null(strstr(err.msg, "my.shop.a does not exist"));
    assert_int_equal(rename_one(fx->c, "my.shop", "a2", "my.shop", "b", &err), LOCH_EEXIST);
    assert_non_null(strstr(err.msg, "my.shop.b already exists"));
    assert_non_null(strstr(err.msg, "rename my.shop.a2 to my.shop.b"));
    expect_loc(fx, "my.shop", "a2", "LA2");
    expect_loc(fx, "my.shop", "b", "LB");

    /* into a namespace that does not exist yet: created */
    assert_int_equal(rename_one(fx->c, "my.shop", "b", "my.archive", "b_old", &err), 0);
    expect_loc(fx, "my.archive", "b_old", "LB");
    bool there = false;
    assert_int_equal(catalog_namespace_exists(fx->c, "my.archive", &there, &err), 0);
    assert_true(there);
    assert_int_equal(rename_one(fx->c, "my.shop", "", "my.shop", "x", &err), LOCH_EINVAL);
}

/* Several renames at once (a swap, a chain), with a kv, in one transaction. */
static void test_rename_many(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    create(fx, "my.db", "a", "LA");
    create(fx, "my.db", "a_changes", "CA");
    create(fx, "my.db", "b", "LB");
    create(fx, "my.db", "c", "LC");
    struct catalog_rename swap[] = {{"my.db", "a", "my.db", "b"}, {"my.db", "b", "my.db", "a"}};
    struct catalog_kv kv = {"cdc.my.checkpoint", "bin.000001:400"};
    assert_int_equal(catalog_rename_tables(fx->c, swap, 2, &kv, 1, &err), 0);
    expect_loc(fx, "my.db", "a", "LB");
    expect_loc(fx, "my.db", "b", "LA");
    expect_kv(fx, "cdc.my.checkpoint", "bin.000001:400");

    /* the last entry collides with a table that stays: nothing moves, the kv is not written */
    struct catalog_rename bad[] = {{"my.db", "b", "my.db", "b2"}, {"my.db", "a_changes", "my.db", "c"}};
    struct catalog_kv kv2 = {"cdc.my.checkpoint", "bin.000001:900"};
    assert_int_equal(catalog_rename_tables(fx->c, bad, 2, &kv2, 1, &err), LOCH_EEXIST);
    expect_loc(fx, "my.db", "b", "LA");
    expect_no_table(fx, "my.db", "b2");
    expect_loc(fx, "my.db", "a_changes", "CA");
    expect_kv(fx, "cdc.my.checkpoint", "bin.000001:400");
    /* a missing source rolls back the renames before it */
    struct catalog_rename gone[] = {{"my.db", "b", "my.db", "b2"}, {"my.db", "nope", "my.db", "n2"}};
    assert_int_equal(catalog_rename_tables(fx->c, gone, 2, NULL, 0, &err), LOCH_ENOENT);
    expect_loc(fx, "my.db", "b", "LA");
    /* one source twice, or two sources onto one target: refused before anything */
    struct catalog_rename twice[] = {{"my.db", "a", "my.db", "x"}, {"my.db", "a", "my.db", "y"}};
    assert_int_equal(catalog_rename_tables(fx->c, twice, 2, NULL, 0, &err), LOCH_EINVAL);
    struct catalog_rename onto[] = {{"my.db", "a", "my.db", "x"}, {"my.db", "b", "my.db", "x"}};
    assert_int_equal(catalog_rename_tables(fx->c, onto, 2, NULL, 0, &err), LOCH_EINVAL);
    /* a chain c -> d, b -> c at once */
    struct catalog_rename chain[] = {{"my.db", "c", "my.db", "d"}, {"my.db", "b", "my.db", "c"}};
    assert_int_equal(catalog_rename_tables(fx->c, chain, 2, NULL, 0, &err), 0);
    expect_loc(fx, "my.db", "d", "LC");
    expect_loc(fx, "my.db", "c", "LA");
    expect_no_table(fx, "my.db", "b");
}

/* An enclosing transaction: a commit and a rename land together, or neither. */
static void test_tx(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    create(fx, "my.db", "a", "L1");
    struct catalog *other;
    assert_int_equal(catalog_open(fx->path, false, &other, &err), 0);

    assert_int_equal(catalog_tx_begin(fx->c, &err), 0);
    assert_int_equal(catalog_tx_begin(fx->c, &err), LOCH_EINVAL);
    struct catalog_update u = {"my.db", "a", "L1", "L2"};
    struct catalog_kv kv = {"pos", "1"};
    assert_int_equal(catalog_commit(fx->c, &u, 1, &kv, 1, &err), 0);
    /* a failed step inside undoes only itself */
    struct catalog_update stale = {"my.db", "a", "L1", "L9"};
    assert_int_equal(catalog_commit(fx->c, &stale, 1, NULL, 0, &err), LOCH_ECONFLICT);
    assert_int_equal(rename_one(fx->c, "my.db", "a", "my.db", "b", &err), 0);
    /* not visible to another handle until the end */
    struct catalog_table t;
    assert_int_equal(catalog_load_table(other, "my.db", "a", fx->a, &t, &err), 0);
    assert_string_equal(t.metadata_location, "L1");
    assert_int_equal(catalog_tx_end(fx->c, true, &err), 0);
    assert_int_equal(catalog_load_table(other, "my.db", "b", fx->a, &t, &err), 0);
    assert_string_equal(t.metadata_location, "L2");
    expect_kv(fx, "pos", "1");

    /* rolled back: the commit and the rename inside are both undone */
    assert_int_equal(catalog_tx_begin(fx->c, &err), 0);
    struct catalog_update u2 = {"my.db", "b", "L2", "L3"};
    struct catalog_kv kv2 = {"pos", "2"};
    assert_int_equal(catalog_commit(fx->c, &u2, 1, &kv2, 1, &err), 0);
    assert_int_equal(rename_one(fx->c, "my.db", "b", "my.db", "c", &err), 0);
    assert_int_equal(catalog_tx_end(fx->c, false, &err), 0);
    expect_loc(fx, "my.db", "b", "L2");
    expect_no_table(fx, "my.db", "c");
    expect_kv(fx, "pos", "1");
    assert_int_equal(catalog_tx_end(fx->c, true, &err), 0); /* none open: no-op */
    catalog_close(other);
}

static void test_invalid(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    struct catalog_update u = {"ns", "", NULL, "x"};
    assert_int_equal(catalog_commit(fx->c, &u, 1, NULL, 0, &err), LOCH_EINVAL);
    struct catalog_update v = {"ns", "t", NULL, NULL};
    assert_int_equal(catalog_commit(fx->c, &v, 1, NULL, 0, &err), LOCH_EINVAL);
    struct catalog_table *t;
    size_t n;
    assert_int_equal(catalog_list_tables(fx->c, "a..b", fx->a, &t, &n, &err), LOCH_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_namespaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tables, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rename_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
