/* test_engine_restricted.c: the restricted engine is the wall behind the statement guard.
 * Statements run on it directly, as if the guard had let them through: none reads or
 * writes a file, attaches a database, changes a setting or leaves an object another
 * connection would see; and nothing it shows names the folder it lives in. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"

static char dir[256], secret[300];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/loch-restricted-test-%ld", (long)getpid());
    mkdir(dir, 0700);
    snprintf(secret, sizeof secret, "%s/secret.csv", dir);
    FILE *f = fopen(secret, "w");
    fputs("a\nsecret-value\n", f);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Runs sql; returns 0 when it succeeded, with its first value in *out (malloc'd). */
static int run(struct engine_conn *c, const char *sql, char **out)
{
    struct engine_rows *r;
    struct loch_err err = {0};
    int rc = engine_query(c, sql, &r, &err);
    if (rc)
        return rc;
    struct arena *a = arena_new();
    if (out) {
        char *v = engine_rows_count(r) ? engine_rows_text(r, 0, 0, a) : NULL;
        *out = v ? strdup(v) : NULL;
    }
    arena_free(a);
    engine_rows_free(r);
    return 0;
}

static void test_statements_past_the_guard_reach_nothing(void **state)
{
    (void)state;
    char rdir[300];
    snprintf(rdir, sizeof rdir, "%s/restricted", dir);
    struct engine_options o = {.threads = 1, .memory_mb = 256, .restricted_dir = rdir};
    struct engine *e;
    struct engine_conn *c, *other;
    struct loch_err err = {0};
    assert_int_equal(engine_open(&o, &e, &err), 0);
    assert_true(engine_is_restricted(e));
    assert_int_equal(engine_connect(e, &c, &err), 0);
    assert_int_equal(engine_connect(e, &other, &err), 0);

    char q[1024];
    const char *fmt[] = {
        "SELECT * FROM read_csv('%s')",
        "SELECT content FROM read_text('%s')",
        "SELECT * FROM '%s'",
        "COPY (SELECT 1) TO '%s.out'",
        "ATTACH '%s' AS x",
        "SELECT * FROM glob('%s')",
        NULL,
    };
    for (int i = 0; fmt[i]; i++) {
        snprintf(q, sizeof q, fmt[i], secret);
        assert_int_not_equal(run(c, q, NULL), 0);
    }
    struct stat sb;
    snprintf(q, sizeof q, "%s.out", secret);
    assert_int_not_equal(stat(q, &sb), 0);
    const char *refused[] = {
        "CREATE MACRO lower(x) AS 'FORGED'",
        "CREATE VIEW v AS SELECT 'FORGED' AS x",
        "CREATE TABLE t AS SELECT 'FORGED' AS x",
        "CREATE SCHEMA bank",
        "ATTACH ':memory:' AS evil",
        "SET enable_external_access = true",
        "SET GLOBAL allowed_directories = ['/']",
        "SET lock_configuration = false",
        "SET GLOBAL memory_limit = '100GB'",
        "INSTALL httpfs",
        "LOAD httpfs",
        NULL,
    };
    for (int i = 0; refused[i]; i++) {
        if (run(c, refused[i], NULL) == 0)
            fail_msg("the restricted engine ran: %s", refused[i]);
    }
    /* a connection's temporary objects are its own */
    assert_int_equal(run(c, "CREATE TEMP MACRO lower(x) AS 'FORGED'", NULL), 0);
    char *v = NULL;
    assert_int_equal(run(other, "SELECT lower('ABC')", &v), 0);
    assert_string_equal(v, "abc");
    free(v);
    /* nothing it shows names where it lives */
    const char *shown[] = {"SELECT string_agg(path, ',') FROM duckdb_databases()",
                           "SELECT string_agg(value, ',') FROM duckdb_settings()",
                           "SELECT current_setting('temp_directory')", NULL};
    for (int i = 0; shown[i]; i++) {
        v = NULL;
        assert_int_equal(run(c, shown[i], &v), 0);
        if (v && strstr(v, dir))
            fail_msg("%s shows %s", shown[i], v);
        free(v);
    }
    engine_disconnect(c);
    engine_disconnect(other);
    engine_close(e);
}

static void test_two_restricted_engines_share_the_folder(void **state)
{
    (void)state;
    char rdir[300];
    snprintf(rdir, sizeof rdir, "%s/restricted2", dir);
    struct engine_options o = {.threads = 1, .memory_mb = 128, .restricted_dir = rdir};
    struct engine *a, *b;
    struct loch_err err = {0};
    assert_int_equal(engine_open(&o, &a, &err), 0);
    o.memory_mb = 64;
    assert_int_equal(engine_open(&o, &b, &err), 0);
    struct engine_conn *c;
    assert_int_equal(engine_connect(b, &c, &err), 0);
    char *v = NULL;
    assert_int_equal(run(c, "SELECT sum(i) FROM range(1000) t(i)", &v), 0);
    assert_string_equal(v, "499500");
    free(v);
    engine_disconnect(c);
    engine_close(a);
    engine_close(b);
    /* spill folders go with their engines; the database file stays for the next start */
    char f[400];
    snprintf(f, sizeof f, "%s/lake.duckdb", rdir);
    struct stat sb;
    assert_int_equal(stat(f, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char cmd[500];
    snprintf(cmd, sizeof cmd, "test $(ls '%s' | wc -l) -eq 1", rdir);
    assert_int_equal(system(cmd), 0);
}

static void test_a_damaged_database_file_is_made_again(void **state)
{
    (void)state;
    char rdir[300], f[400];
    snprintf(rdir, sizeof rdir, "%s/restricted3", dir);
    struct engine_options o = {.threads = 1, .memory_mb = 64, .restricted_dir = rdir};
    struct engine *e;
    struct loch_err err = {0};
    assert_int_equal(engine_open(&o, &e, &err), 0);
    engine_close(e);
    /* as if another DuckDB version (or a crash of the disk) had left it unreadable */
    snprintf(f, sizeof f, "%s/lake.duckdb", rdir);
    FILE *fp = fopen(f, "w");
    assert_non_null(fp);
    fputs("not a duckdb database", fp);
    fclose(fp);
    assert_int_equal(engine_open(&o, &e, &err), 0);
    struct engine_conn *c;
    assert_int_equal(engine_connect(e, &c, &err), 0);
    char *v = NULL;
    assert_int_equal(run(c, "SELECT 6 * 7", &v), 0);
    assert_string_equal(v, "42");
    free(v);
    assert_int_not_equal(run(c, "CREATE TABLE t AS SELECT 1", NULL), 0); /* still read-only */
    engine_disconnect(c);
    engine_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statements_past_the_guard_reach_nothing),
        cmocka_unit_test(test_two_restricted_engines_share_the_folder),
        cmocka_unit_test(test_a_damaged_database_file_is_made_again),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
