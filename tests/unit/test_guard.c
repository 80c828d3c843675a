/* test_guard.c: the statement check for non-administrators (query/guard.c) and where their
 * statements run. What the guard allows runs, as DuckDB's text of the checked tree; what
 * it refuses is 42501 naming it; comments, CTE scopes and multi-statement tricks change
 * nothing; loch answers client SETs and transaction control itself; and a session whose
 * admin role is revoked runs on the restricted engine from its next statement. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access/principal.h"
#include "query/query.h"

static char dir[128];
static struct catalog *cat;
static struct store *st;
static struct engine *eng, *reng;

static int setup(void **state)
{
    (void)state;
    struct loch_err err = {0};
    snprintf(dir, sizeof dir, "/tmp/loch-guard-test-%ld", (long)getpid());
    char cmd[700], path[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s/warehouse'", dir, dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/catalog.db", dir);
    if (catalog_open(path, true, &cat, &err) || principal_ensure_schema(cat, &err))
        return -1;
    snprintf(path, sizeof path, "%s/warehouse", dir);
    if (store_open(path, &st, &err) || engine_open(NULL, &eng, &err))
        return -1;
    snprintf(path, sizeof path, "%s/restricted", dir);
    struct engine_options o = {.threads = 1, .restricted_dir = path};
    if (engine_open(&o, &reng, &err))
        return -1;
    if (principal_create(cat, "admin", PRINCIPAL_ROLE, false, NULL, &err) && err.code != LOCH_EDUPROLE)
        return -1;
    if (principal_create(cat, "eve", PRINCIPAL_USER, true, "pw-eve-1", &err) ||
        principal_create(cat, "ann", PRINCIPAL_USER, true, "pw-ann-1", &err))
        return -1;
    return principal_grant_role(cat, "admin", "ann", &err) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    engine_close(reng);
    engine_close(eng);
    store_close(st);
    catalog_close(cat);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

struct got {
    char tag[64];
    char first[256];
};

static int emit(void *ctx, const struct query_result *r)
{
    struct got *g = ctx;
    snprintf(g->tag, sizeof g->tag, "%s", r->tag ? r->tag : "");
    g->first[0] = '\0';
    if (r->rows && engine_rows_count(r->rows) && engine_rows_ncols(r->rows)) {
        struct arena *a = arena_new();
        char *v = engine_rows_text(r->rows, 0, 0, a);
        snprintf(g->first, sizeof g->first, "%s", v ? v : "NULL");
        arena_free(a);
    }
    return 0;
}

static int run_as(const char *user, const char *sql, struct got *g, struct loch_err *err)
{
    struct query_env env = {cat, st, eng, dir, reng};
    struct query_session *s;
    int rc = query_session_open_as(&env, user, &s, err);
    if (!rc)
        rc = query_run(s, sql, emit, g, err);
    query_session_close(s);
    return rc;
}

static void test_allowed_statements_run(void **state)
{
    (void)state;
    struct got g;
    struct loch_err err = {0};
    assert_int_equal(run_as("eve", "SELECT sum(i) FROM range(10) t(i)", &g, &err), 0);
    assert_string_equal(g.first, "45");
    assert_int_equal(run_as("eve", "WITH t AS (SELECT 41 AS x) SELECT x + 1 FROM t", &g, &err), 0);
    assert_string_equal(g.first, "42");
    assert_int_equal(run_as("eve", "/* a /* nested */ comment */ SELECT 'ok'", &g, &err), 0);
    assert_string_equal(g.first, "ok");
    assert_int_equal(run_as("eve", "SELECT count(*) FROM pg_type", &g, &err), 0);
    /* answered by loch, not DuckDB (the restricted engine's configuration is locked) */
    assert_int_equal(run_as("eve", "SET application_name = 'x'", &g, &err), 0);
    assert_string_equal(g.tag, "SET");
    assert_int_equal(run_as("eve", "BEGIN", &g, &err), 0);
    assert_string_equal(g.tag, "BEGIN");
}

static void expect_denied(const char *sql, const char *what)
{
    struct got g = {0};
    struct loch_err err = {0};
    int rc = run_as("eve", sql, &g, &err);
    if (rc != LOCH_EPERM && rc != LOCH_ESYNTAX)
        fail_msg("%s: expected a refusal, got %d (%s) first=%s", sql, rc, err.msg, g.first);
    if (what && !strstr(err.msg, what))
        fail_msg("%s: message \"%s\" does not name %s", sql, err.msg, what);
}

static void test_refusals_name_what_was_refused(void **state)
{
    (void)state;
    expect_denied("SELECT * FROM core.public.loans", "relation core.public.loans");
    expect_denied("SELECT * FROM '/etc/passwd'", "file");
    expect_denied("SELECT * FROM read_csv('/etc/passwd')", "function read_csv");
    expect_denied("SELECT current_setting('allowed_directories')", "function current_setting");
    expect_denied("SELECT * FROM duckdb_settings()", "duckdb_settings");
    expect_denied("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY");
    expect_denied("CREATE MACRO m() AS 1", "CREATE");
    expect_denied("SET enable_external_access = true", NULL);
    expect_denied("SET timezone = 'UTC' */ SELECT 1", NULL);
    /* comments nest: the SET is inside the comment, the SELECT is what DuckDB sees */
    expect_denied("/* /* */ SET timezone = 'UTC' */ SELECT * FROM core.public.loans", "core.public.loans");
    /* a CTE inside a subquery does not cover the outer reference */
    expect_denied("SELECT * FROM t, (WITH t AS (SELECT 1) SELECT 1) x", "relation t");
    expect_denied("SELECT * FROM '/etc/passwd', (WITH \"/etc/passwd\" AS (SELECT 1) SELECT 1) x", "file");
}

static void test_admin_revoked_mid_session_runs_restricted(void **state)
{
    (void)state;
    struct loch_err err = {0};
    struct query_env env = {cat, st, eng, dir, reng};
    struct query_session *s;
    struct got g;
    assert_int_equal(query_session_open_as(&env, "ann", &s, &err), 0);
    /* as an administrator, on the process engine: a DuckDB object can be made there */
    assert_int_equal(query_run(s, "SELECT current_database()", emit, &g, &err), 0);
    assert_string_equal(g.first, "memory");
    assert_int_equal(principal_revoke_role(cat, "admin", "ann", &err), 0);
    assert_int_not_equal(query_run(s, "SELECT current_database()", emit, &g, &err), 0);
    assert_int_equal(err.code, LOCH_EPERM);
    assert_int_equal(query_run(s, "SELECT 7", emit, &g, &err), 0);
    assert_string_equal(g.first, "7");
    assert_int_not_equal(query_run(s, "CREATE TABLE x AS SELECT 1", emit, &g, &err), 0);
    /* granted again: still restricted until the next session */
    assert_int_equal(principal_grant_role(cat, "admin", "ann", &err), 0);
    query_session_close(s);
    struct query_session *s2;
    assert_int_equal(query_session_open_as(&env, "eve", &s2, &err), 0);
    assert_int_equal(principal_grant_role(cat, "admin", "eve", &err), 0);
    assert_int_not_equal(query_run(s2, "CREATE TABLE x AS SELECT 1", emit, &g, &err), 0);
    query_session_close(s2);
    assert_int_equal(principal_revoke_role(cat, "admin", "eve", &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed_statements_run),
        cmocka_unit_test(test_refusals_name_what_was_refused),
        cmocka_unit_test(test_admin_revoked_mid_session_runs_restricted),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
