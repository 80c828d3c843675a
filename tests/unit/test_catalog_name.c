/* test_catalog_name.c: catalog_check_name, the one check every new namespace and table
 * name passes before a folder, lock file or DuckDB name is made of it, and the catalog
 * calls that create names refusing what it refuses. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "catalog/catalog.h"

static void ok(const char *ns, const char *name)
{
    struct loch_err err;
    loch_err_clear(&err);
    int rc = catalog_check_name(ns, name, &err);
    if (rc)
        fail_msg("%s . %s refused: %s", ns, name ? name : "(none)", err.msg);
}

static void refused(const char *ns, const char *name, const char *msg_part)
{
    struct loch_err err;
    loch_err_clear(&err);
    int rc = catalog_check_name(ns, name, &err);
    if (rc != LOCH_ENAME)
        fail_msg("%s . %s: expected LOCH_ENAME, got %d", ns ? ns : "(null)", name ? name : "(none)", rc);
    assert_string_equal(loch_err_sqlstate(rc), "42602");
    if (!strstr(err.msg, msg_part))
        fail_msg("message \"%s\" does not say \"%s\"", err.msg, msg_part);
    assert_true(err.hint[0] != '\0');
}

static void test_plain_names(void **state)
{
    (void)state;
    ok("core", NULL);
    ok("core.public", "accounts");
    ok("core.public", "order_items_changes");
    ok("a.b.c.d", "t");
    ok("café", "Überweisung");      /* UTF-8 text */
    ok("core.public", "with space"); /* quoted identifiers may hold spaces */
    ok("core.main", "t");            /* main below the first level is a schema of an attached catalog */
    ok("core.temp", "t");
    ok("maintenance", "t");          /* only whole reserved words */
}

static void test_traversal(void **state)
{
    (void)state;
    refused("../../../escape_ns", "t", "\"/\"");
    refused("core", "../x", "\"/\"");
    refused("core", "..", "\"..\"");
    refused("core", ".", "\".\"");
    refused("core.public", "a/b", "\"/\"");
    refused("a\\b", "t", "\"\\\"");
    refused("core", "a\\b", "\"\\\"");
    refused("..", NULL, "empty");
    refused(".core", NULL, "empty");
    refused("core.", NULL, "empty");
    refused("core..public", NULL, "empty");
    refused("/etc", "passwd", "\"/\"");
    refused("core", "a.b", "may not contain \".\"");
}

static void test_bad_bytes(void **state)
{
    (void)state;
    refused("core", "a\nb", "control characters");
    refused("co\tre", "t", "control characters");
    refused("core", "a\x7f", "control characters");
    refused("core", "\xff\xfe", "UTF-8");
    refused("core", "\xc0\xaf", "UTF-8");       /* overlong "/" */
    refused("core", "\xe2\x82", "UTF-8");       /* cut short */
    refused("core", "\xed\xa0\x80", "UTF-8");   /* a surrogate */
    refused("core", "t*", "pattern");
    refused("core", "t?", "pattern");
    refused("co[re]", "t", "pattern");
    refused(NULL, "t", "none given");
    refused("", NULL, "empty");
    refused("core", "", "empty");
}

static void test_reserved(void **state)
{
    (void)state;
    const char *first[] = {"main", "temp", "system", "memory", "pg_catalog", "information_schema", "MAIN", "Temp", NULL};
    for (size_t i = 0; first[i]; i++) {
        refused(first[i], "t", "reserves");
        char *ns = xasprintf("%s.public", first[i]);
        refused(ns, "t", "reserves");
        free(ns);
    }
    refused("core.pg_catalog", "t", "reserves");
    refused("core.INFORMATION_SCHEMA", "t", "reserves");
}

static void test_lengths(void **state)
{
    (void)state;
    char part[CATALOG_NAME_MAX + 2];
    memset(part, 'x', CATALOG_NAME_MAX);
    part[CATALOG_NAME_MAX] = '\0';
    ok(part, NULL);
    ok("core", part);
    part[CATALOG_NAME_MAX] = 'x';
    part[CATALOG_NAME_MAX + 1] = '\0';
    refused(part, NULL, "the most is");
    refused("core", part, "the most is");
    ok("a.b.c.d.e.f.g.h", "t");
    refused("a.b.c.d.e.f.g.h.i", "t", "levels");
    /* <ns>.<name> must fit a lock file's name */
    char ns[CATALOG_NAME_MAX * 2 + 2];
    memset(ns, 'n', sizeof ns - 1);
    ns[CATALOG_NAME_MAX] = '.';
    ns[sizeof ns - 1] = '\0';
    part[CATALOG_NAME_MAX] = '\0';
    refused(ns, part, "with its namespace");
}

/* The catalog calls that bring a new name in refuse it, and write nothing. */
static void test_catalog_refuses(void **state)
{
    (void)state;
    char dir[] = "/tmp/loch-name-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/catalog.db", dir);
    struct catalog *c;
    struct loch_err err;
    assert_int_equal(catalog_open(path, true, &c, &err), 0);
    assert_int_equal(catalog_create_namespace(c, "../up", &err), LOCH_ENAME);
    assert_int_equal(catalog_create_namespace(c, "main", &err), LOCH_ENAME);
    struct catalog_update u = {"core", "../t", NULL, "file:///x/v1.metadata.json"};
    assert_int_equal(catalog_commit(c, &u, 1, NULL, 0, &err), LOCH_ENAME);
    struct catalog_update good = {"core", "t", NULL, "file:///x/v1.metadata.json"};
    assert_int_equal(catalog_commit(c, &good, 1, NULL, 0, &err), 0);
    struct catalog_rename r = {"core", "t", "core", "a/b"};
    assert_int_equal(catalog_rename_tables(c, &r, 1, NULL, 0, &err), LOCH_ENAME);
    struct arena *a = arena_new();
    struct catalog_table *t;
    size_t n;
    assert_int_equal(catalog_list_tables(c, NULL, a, &t, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(t[0].name, "t");
    char **ns;
    assert_int_equal(catalog_list_namespaces(c, a, &ns, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ns[0], "core");
    arena_free(a);
    catalog_close(c);
    char *wal = xasprintf("%s-wal", path), *shm = xasprintf("%s-shm", path);
    unlink(path);
    unlink(wal);
    unlink(shm);
    rmdir(dir);
    free(wal);
    free(shm);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_names),  cmocka_unit_test(test_traversal), cmocka_unit_test(test_bad_bytes),
        cmocka_unit_test(test_reserved),     cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_catalog_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
