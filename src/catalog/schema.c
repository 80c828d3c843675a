/* schema.c: the one list of catalog.db's schema versions (PRAGMA user_version): the
 * Iceberg JDBC catalog's tables and every loch_* table, whoever reads and writes them
 * (access/, server/history.c). A module that needs a new table or column adds a
 * migration here; it never creates tables itself. Not for the rows (catalog.c, sql.c). */
#include "catalog/internal.h"

#include <stdio.h>

/* Migration 1 is the baseline. Catalogs from before versioning (user_version 0) hold any
 * subset of it: the JDBC tables made by loch or by PyIceberg (without iceberg_type), and
 * whichever loch_* tables a module had made on first use. So every statement of it says
 * IF NOT EXISTS; later migrations run exactly once and need not.
 *
 * The JDBC catalog's DDL is Iceberg core's JdbcUtil and PyIceberg's pyiceberg/catalog/
 * sql.py, with Java's schema-version V1 column iceberg_type ('TABLE' | 'VIEW' | NULL) so
 * Java runs in V1 mode; PyIceberg selects its own columns and ignores it. */
static const char *const BASELINE[] = {
    "CREATE TABLE IF NOT EXISTS iceberg_tables ("
    " catalog_name VARCHAR(255) NOT NULL,"
    " table_namespace VARCHAR(255) NOT NULL,"
    " table_name VARCHAR(255) NOT NULL,"
    " metadata_location VARCHAR(1000),"
    " previous_metadata_location VARCHAR(1000),"
    " iceberg_type VARCHAR(5),"
    " PRIMARY KEY (catalog_name, table_namespace, table_name))",
    "CREATE TABLE IF NOT EXISTS iceberg_namespace_properties ("
    " catalog_name VARCHAR(255) NOT NULL,"
    " namespace VARCHAR(255) NOT NULL,"
    " property_key VARCHAR(255) NOT NULL,"
    " property_value VARCHAR(1000),"
    " PRIMARY KEY (catalog_name, namespace, property_key))",
    /* checkpoints written by catalog_commit (a source's replication position) */
    "CREATE TABLE IF NOT EXISTS loch_kv ("
    " key TEXT NOT NULL PRIMARY KEY,"
    " value TEXT NOT NULL)",
    /* access/principal.c: users and roles; scram holds a verifier, never a password */
    "CREATE TABLE IF NOT EXISTS loch_principals ("
    " name TEXT NOT NULL PRIMARY KEY,"
    " kind TEXT NOT NULL CHECK (kind IN ('user', 'role')),"
    " can_login INTEGER NOT NULL DEFAULT 0,"
    " scram TEXT NULL,"
    " created_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS loch_role_members ("
    " role TEXT NOT NULL,"
    " member TEXT NOT NULL,"
    " PRIMARY KEY (role, member))",
    /* access/token.c: bearer tokens as SHA-256 hashes; expires_at 0 is a token made
     * before tokens always expired */
    "CREATE TABLE IF NOT EXISTS loch_tokens ("
    " id TEXT NOT NULL PRIMARY KEY,"
    " hash TEXT NOT NULL UNIQUE,"
    " user_name TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL DEFAULT 0,"
    " last_used_at INTEGER NOT NULL DEFAULT 0)",
    /* server/history.c: the bounded query history */
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
    " error TEXT NULL)",
    "CREATE INDEX IF NOT EXISTS loch_query_history_user ON loch_query_history (user_name, id)",
    NULL,
};

/* A catalog created by PyIceberg has iceberg_tables without iceberg_type: add it the
 * way Java's JdbcCatalog does (ALTER TABLE ... ADD COLUMN). SQL alone cannot say "add a
 * column unless it is there", hence a step in C. */
static int add_iceberg_type(struct catalog *c, struct loch_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM pragma_table_info('iceberg_tables') WHERE name = 'iceberg_type'",
                           -1, &st, NULL) != SQLITE_OK)
        return cat_db_err(c, err, "cannot read the iceberg_tables columns");
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step == SQLITE_ROW)
        return 0;
    if (step != SQLITE_DONE)
        return cat_db_err(c, err, "cannot read the iceberg_tables columns");
    return cat_exec(c, "ALTER TABLE iceberg_tables ADD COLUMN iceberg_type VARCHAR(5)", err,
                    "cannot add the iceberg_type column");
}

/* Migration N (1-based) is MIGRATIONS[N - 1]: its statements in order, then its step in
 * C (NULL: none), in one transaction that also sets user_version to N. Append only:
 * a released migration never changes, since catalogs out there already ran it. */
static const struct migration {
    const char *const *sql;
    int (*step)(struct catalog *c, struct loch_err *err);
} MIGRATIONS[] = {
    {BASELINE, add_iceberg_type},
};

_Static_assert(sizeof MIGRATIONS / sizeof MIGRATIONS[0] == CATALOG_SCHEMA_VERSION,
               "CATALOG_SCHEMA_VERSION is the number of migrations");

static int read_version(struct catalog *c, int *out, struct loch_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return cat_db_err(c, err, "cannot read the schema version");
    int step = sqlite3_step(st);
    *out = step == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return step == SQLITE_ROW ? 0 : cat_db_err(c, err, "cannot read the schema version");
}

static int too_new(struct catalog *c, int v, struct loch_err *err)
{
    loch_errf(err, LOCH_EUNSUPPORTED, "catalog %s has schema version %d; this loch knows up to %d", c->path, v,
              CATALOG_SCHEMA_VERSION);
    return loch_err_hint(err, "a newer loch wrote it: run that version, or restore the catalog from before it ran");
}

/* Applies migration n (1-based) in a transaction of its own, unless another process did
 * while this one waited for the write lock. */
static int apply(struct catalog *c, int n, struct loch_err *err)
{
    int rc = cat_exec(c, "BEGIN IMMEDIATE", err, "cannot start the schema transaction");
    if (rc)
        return rc;
    int v = 0;
    if ((rc = read_version(c, &v, err)) || v >= n)
        goto out;
    const struct migration *m = &MIGRATIONS[n - 1];
    for (const char *const *s = m->sql; *s && !rc; s++)
        rc = cat_exec(c, *s, err, "cannot create the catalog tables");
    if (!rc && m->step)
        rc = m->step(c, err);
    char set[40];
    snprintf(set, sizeof set, "PRAGMA user_version = %d", n);
    if (!rc)
        rc = cat_exec(c, set, err, "cannot set the schema version");
out:
    if (!rc)
        rc = cat_exec(c, "COMMIT", err, "cannot commit the catalog schema");
    if (rc) {
        cat_rollback(c);
        loch_err_prefix(err, "catalog schema version %d", n);
    }
    return rc;
}

int cat_schema_migrate(struct catalog *c, struct loch_err *err)
{
    int v = 0;
    int rc = read_version(c, &v, err);
    if (rc)
        return rc;
    if (v > CATALOG_SCHEMA_VERSION)
        return too_new(c, v, err);
    /* A current catalog is only read: opening takes no write lock. */
    for (int n = v + 1; n <= CATALOG_SCHEMA_VERSION && !rc; n++)
        rc = apply(c, n, err);
    return rc;
}
