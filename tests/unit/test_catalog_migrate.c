/* test_catalog_migrate.c: catalog_open upgrades a catalog.db made before the schema was
 * versioned (tables created ad hoc by each module, no user_version) in place, keeps its
 * rows, and leaves a current one untouched. Not for the rows' semantics (test_catalog.c,
 * test_principal.c, test_server_history.c). */
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

#include <sqlite3.h>

#include "access/principal.h"
#include "access/token.h"
#include "base/mem.h"
#include "catalog/catalog.h"
#include "server/history.h"

/* The schema as the code before versioning created it, copied here on purpose: it is
 * what catalogs in the field hold. catalog.c made the JDBC tables and loch_kv on open;
 * principal.c, token.c and history.c made theirs on first use. */
static const char OLD_CATALOG_SQL[] =
    "CREATE TABLE IF NOT EXISTS iceberg_tables ("
    " catalog_name VARCHAR(255) NOT NULL,"
    " table_namespace VARCHAR(255) NOT NULL,"
    " table_name VARCHAR(255) NOT NULL,"
    " metadata_location VARCHAR(1000),"
    " previous_metadata_location VARCHAR(1000),"
    " iceberg_type VARCHAR(5),"
    " PRIMARY KEY (catalog_name, table_namespace, table_name));"
    "CREATE TABLE IF NOT EXISTS iceberg_namespace_properties ("
    " catalog_name VARCHAR(255) NOT NULL,"
    " namespace VARCHAR(255) NOT NULL,"
    " property_key VARCHAR(255) NOT NULL,"
    " property_value VARCHAR(1000),"
    " PRIMARY KEY (catalog_name, namespace, property_key));"
    "CREATE TABLE IF NOT EXISTS loch_kv ("
    " key TEXT NOT NULL PRIMARY KEY,"
    " value TEXT NOT NULL);";
static const char OLD_ACCESS_SQL[] =
    "CREATE TABLE IF NOT EXISTS loch_principals ("
    " name TEXT NOT NULL PRIMARY KEY,"
    " kind TEXT NOT NULL CHECK (kind IN ('user', 'role')),"
    " can_login INTEGER NOT NULL DEFAULT 0,"
    " scram TEXT NULL,"
    " created_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS loch_role_members ("
    " role TEXT NOT NULL,"
    " member TEXT NOT NULL,"
    " PRIMARY KEY (role, member));";
static const char OLD_TOKEN_SQL[] =
    "CREATE TABLE IF NOT EXISTS loch_tokens ("
    " id TEXT NOT NULL PRIMARY KEY,"
    " hash TEXT NOT NULL UNIQUE,"
    " user_name TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL DEFAULT 0,"
    " last_used_at INTEGER NOT NULL DEFAULT 0);";
static const char OLD_HISTORY_SQL[] =
    "CREATE TABLE IF NOT EXISTS loch_query_history ("
    " id INTEGER PRIMARY KEY,"
    " user_name TEXT NOT NULL,"
    " protocol TEXT NOT NULL,"
    " sql TEXT NOT NULL,"
    " started_ms INTEGER NOT NULL,"
    " duration_ms INTEGER NOT NULL,"
    " rows INTEGER NOT NULL,"
    " bytes_scanned INTEGER NOT NULL,"
    " status TEXT NOT NULL,"
    " sqlstate TEXT NULL,"
    " error TEXT NULL);"
    "CREATE INDEX IF NOT EXISTS loch_query_history_user ON loch_query_history (user_name, id);";
/* PyIceberg's SqlCatalog (pyiceberg/catalog/sql.py): no iceberg_type column. */
static const char PYICEBERG_SQL[] =
    "CREATE TABLE iceberg_tables ("
    " catalog_name VARCHAR(255) NOT NULL,"
    " table_namespace VARCHAR(255) NOT NULL,"
    " table_name VARCHAR(255) NOT NULL,"
    " metadata_location VARCHAR(1000),"
    " previous_metadata_location VARCHAR(1000),"
    " PRIMARY KEY (catalog_name, table_namespace, table_name));"
    "CREATE TABLE iceberg_namespace_properties ("
    " catalog_name VARCHAR(255) NOT NULL,"
    " namespace VARCHAR(255) NOT NULL,"
    " property_key VARCHAR(255) NOT NULL,"
    " property_value VARCHAR(1000),"
    " PRIMARY KEY (catalog_name, namespace, property_key));";

static const char *const ALL_TABLES[] = {"iceberg_tables",    "iceberg_namespace_properties", "loch_kv",
                                         "loch_principals",   "loch_role_members",            "loch_tokens",
                                         "loch_query_history"};

struct fixture {
    char dir[64];
    char *path;
};

static int setup(void **state)
{
    struct fixture *fx = xcalloc(1, sizeof *fx);
    strcpy(fx->dir, "/tmp/loch-migrate-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->path = xasprintf("%s/catalog.db", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char *cmd = xasprintf("rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(fx->path);
    free(fx);
    return 0;
}

/* Runs sql on a raw SQLite connection to path, as the old code or PyIceberg would. */
static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The whole schema as text, to compare before and after. */
static char *raw_schema(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT group_concat(sql, ';') FROM"
                                            " (SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    char *s = xstrdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return s;
}

static void assert_current(const char *path)
{
    for (size_t i = 0; i < sizeof ALL_TABLES / sizeof ALL_TABLES[0]; i++) {
        char *sql = xasprintf("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '%s'", ALL_TABLES[i]);
        if (raw_int(path, sql) != 1)
            fail_msg("table %s is missing", ALL_TABLES[i]);
        free(sql);
    }
    assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'loch_query_history_user'"), 1);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM pragma_table_info('iceberg_tables')"
                                   " WHERE name = 'iceberg_type'"),
                     1);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), CATALOG_SCHEMA_VERSION);
}

/* A catalog of the code before versioning, with rows in every table. */
static void test_upgrade_full(void **state)
{
    struct fixture *fx = *state;
    raw_exec(fx->path, OLD_CATALOG_SQL);
    raw_exec(fx->path, OLD_ACCESS_SQL);
    raw_exec(fx->path, OLD_TOKEN_SQL);
    raw_exec(fx->path, OLD_HISTORY_SQL);
    raw_exec(fx->path,
             "INSERT INTO iceberg_tables VALUES ('loch', 'core.public', 'loans', 'file:///w/m1.json', NULL, 'TABLE');"
             "INSERT INTO iceberg_namespace_properties VALUES ('loch', 'core', 'exists', 'true');"
             "INSERT INTO loch_kv VALUES ('cdc.pg.lsn', '0/16B3748');"
             "INSERT INTO loch_principals VALUES ('alice', 'user', 1, NULL, 1700000000);"
             "INSERT INTO loch_principals VALUES ('analysts', 'role', 0, NULL, 1700000000);"
             "INSERT INTO loch_role_members VALUES ('analysts', 'alice');"
             "INSERT INTO loch_tokens VALUES ('0123456789ab', '0123456789abcdef', 'alice', 1700000000, 0, 0);"
             "INSERT INTO loch_query_history (user_name, protocol, sql, started_ms, duration_ms, rows,"
             " bytes_scanned, status) VALUES ('alice', 'http', 'SELECT 1', 1, 2, 1, -1, 'ok');");
    assert_int_equal(raw_int(fx->path, "PRAGMA user_version"), 0);

    struct catalog *c;
    struct loch_err err;
    assert_int_equal(catalog_open(fx->path, false, &c, &err), 0);
    assert_current(fx->path);

    struct arena *a = arena_new();
    struct catalog_table t;
    assert_int_equal(catalog_load_table(c, "core.public", "loans", a, &t, &err), 0);
    assert_string_equal(t.metadata_location, "file:///w/m1.json");
    char *v;
    assert_int_equal(catalog_get_kv(c, "cdc.pg.lsn", a, &v, &err), 0);
    assert_string_equal(v, "0/16B3748");
    assert_true(principal_exists(c, "alice"));
    assert_true(principal_member_of(c, "alice", "analysts"));
    struct token_info *tok;
    size_t n;
    assert_int_equal(token_list(c, "alice", a, &tok, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(tok[0].id, "0123456789ab");
    struct history_entry *h;
    assert_int_equal(history_list(c, "alice", 10, a, &h, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(h[0].sql, "SELECT 1");
    arena_free(a);
    catalog_close(c);
}

/* A catalog PyIceberg made (no iceberg_type), on which loch once created only the access
 * tables (a user, no token ever made, no query served). */
static void test_upgrade_partial(void **state)
{
    struct fixture *fx = *state;
    raw_exec(fx->path, PYICEBERG_SQL);
    raw_exec(fx->path, OLD_ACCESS_SQL);
    raw_exec(fx->path, "INSERT INTO iceberg_tables VALUES ('loch', 'ns', 't', 'file:///w/t/m1.json', NULL);"
                       "INSERT INTO loch_principals VALUES ('admin', 'user', 1, NULL, 1700000000);");

    struct catalog *c;
    struct loch_err err;
    assert_int_equal(catalog_open(fx->path, false, &c, &err), 0);
    assert_current(fx->path);
    struct arena *a = arena_new();
    struct catalog_table t;
    assert_int_equal(catalog_load_table(c, "ns", "t", a, &t, &err), 0); /* iceberg_type NULL is a table */
    assert_string_equal(t.metadata_location, "file:///w/t/m1.json");
    assert_true(principal_is_admin(c, "admin"));
    /* the tables that were missing work */
    struct history_entry e = {.user = "admin", .protocol = "pgwire", .sql = "SELECT 2", .status = "ok"};
    assert_int_equal(history_record(c, &e, &err), 0);
    char *tk, *id;
    assert_int_equal(token_create(c, "admin", 1, 365, &tk, &id, &err), 0);
    free(tk);
    free(id);
    arena_free(a);
    catalog_close(c);
}

/* Opening a current catalog changes nothing and takes no write lock: it opens while
 * another connection holds the write lock. */
static void test_reopen_is_noop(void **state)
{
    struct fixture *fx = *state;
    struct catalog *c;
    struct loch_err err;
    assert_int_equal(catalog_open(fx->path, true, &c, &err), 0);
    catalog_close(c);
    assert_current(fx->path);
    struct stat st;
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *before = raw_schema(fx->path);

    sqlite3 *holder;
    assert_int_equal(sqlite3_open(fx->path, &holder), SQLITE_OK);
    assert_int_equal(sqlite3_exec(holder, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(catalog_open(fx->path, false, &c, &err), 0);
    catalog_close(c);
    assert_int_equal(sqlite3_exec(holder, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(holder);

    assert_int_equal(catalog_open(fx->path, false, &c, &err), 0);
    catalog_close(c);
    char *after = raw_schema(fx->path);
    assert_string_equal(before, after);
    assert_current(fx->path);
    free(before);
    free(after);
}

/* A catalog a newer loch wrote is refused, not written to. */
static void test_newer_refused(void **state)
{
    struct fixture *fx = *state;
    struct catalog *c;
    struct loch_err err;
    assert_int_equal(catalog_open(fx->path, true, &c, &err), 0);
    catalog_close(c);
    char *sql = xasprintf("PRAGMA user_version = %d", CATALOG_SCHEMA_VERSION + 1);
    raw_exec(fx->path, sql);
    free(sql);
    assert_int_equal(catalog_open(fx->path, false, &c, &err), LOCH_EUNSUPPORTED);
    assert_null(c);
    assert_non_null(strstr(err.msg, "schema version"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_upgrade_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_partial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_is_noop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
