/* catalog.c: the table catalog on SQLite, in the Iceberg JDBC catalog's own tables so
 * PyIceberg's SqlCatalog and Spark's JdbcCatalog read it unchanged; the multi-table commit
 * (pointers + kvs in one transaction) is what makes exactly-once possible.
 * Not for metadata files (iceberg/) or for access rules (access/ keeps its own tables). */
#include "catalog/catalog.h"

#include "base/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"

struct catalog {
    sqlite3 *db;
    char *path;
    bool outer; /* catalog_tx_begin opened a transaction: writes are savepoints in it */
};

/* The JDBC catalog's DDL (Iceberg core JdbcUtil, PyIceberg pyiceberg/catalog/sql.py),
 * with Java's schema-version V1 column iceberg_type ('TABLE' | 'VIEW' | NULL) so Java runs
 * in V1 mode; PyIceberg selects its own columns and ignores it. */
static const char SCHEMA_SQL[] =
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

/* Tables only; Spark may keep views in the same table. */
#define IS_TABLE "(iceberg_type = 'TABLE' OR iceberg_type IS NULL)"

static int db_err(struct catalog *c, struct loch_err *err, const char *what)
{
    int code = sqlite3_errcode(c->db);
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
        loch_errf(err, LOCH_ECONFLICT, "catalog %s: %s: the database stayed locked", c->path, what);
        loch_err_hint(err, "another loch process holds the catalog; retry, or stop the other writer");
        return LOCH_ECONFLICT;
    }
    return loch_errf(err, LOCH_EIO, "catalog %s: %s: %s", c->path, what, sqlite3_errmsg(c->db));
}

static int prep(struct catalog *c, const char *sql, sqlite3_stmt **st, struct loch_err *err)
{
    if (sqlite3_prepare_v2(c->db, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return db_err(c, err, "cannot prepare a statement");
    }
    return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static int exec(struct catalog *c, const char *sql, struct loch_err *err, const char *what)
{
    if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_err(c, err, what);
    return 0;
}

static void rollback(struct catalog *c)
{
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Each write (a commit, a rename) starts a transaction of its own, or a savepoint inside
 * the caller's (catalog_tx_begin), and step_end ends it: all of it or none of it. */
static int step_begin(struct catalog *c, struct loch_err *err)
{
    if (c->outer)
        return exec(c, "SAVEPOINT loch_step", err, "cannot start a savepoint");
    return exec(c, "BEGIN IMMEDIATE", err, "cannot start a transaction");
}

/* Ends the step begun by step_begin: commits (or releases the savepoint) when rc is 0,
 * else undoes it. Returns rc, or the commit's error. */
static int step_end(struct catalog *c, int rc, struct loch_err *err)
{
    if (c->outer) {
        if (rc) {
            sqlite3_exec(c->db, "ROLLBACK TO loch_step", NULL, NULL, NULL);
            sqlite3_exec(c->db, "RELEASE loch_step", NULL, NULL, NULL);
            return rc;
        }
        return exec(c, "RELEASE loch_step", err, "cannot release a savepoint");
    }
    if (rc == 0)
        rc = exec(c, "COMMIT", err, "cannot commit");
    if (rc)
        rollback(c);
    return rc;
}

int catalog_tx_begin(struct catalog *c, struct loch_err *err)
{
    if (c->outer) {
        loch_errf(err, LOCH_EINVAL, "catalog %s: a transaction is already open on this handle", c->path);
        return loch_err_hint(err, "this is a bug in the caller: end the open transaction first");
    }
    int rc = exec(c, "BEGIN IMMEDIATE", err, "cannot start a transaction");
    if (!rc)
        c->outer = true;
    return rc;
}

int catalog_tx_end(struct catalog *c, bool commit, struct loch_err *err)
{
    if (!c->outer)
        return 0;
    c->outer = false;
    int rc = commit ? exec(c, "COMMIT", err, "cannot commit") : 0;
    if (rc || !commit)
        rollback(c);
    return rc;
}

/* A dotted namespace with non-empty levels: "core.public". */
static int check_ns(const char *ns, struct loch_err *err)
{
    size_t n = ns ? strlen(ns) : 0;
    if (n == 0 || ns[0] == '.' || ns[n - 1] == '.' || strstr(ns, "..")) {
        loch_errf(err, LOCH_EINVAL, "invalid namespace \"%s\"", ns ? ns : "");
        return loch_err_hint(err, "a namespace is one or more non-empty names joined by dots, e.g. core.public");
    }
    return 0;
}

static int check_name(const char *ns, const char *name, struct loch_err *err)
{
    int rc = check_ns(ns, err);
    if (rc)
        return rc;
    if (!name || !*name) {
        loch_errf(err, LOCH_EINVAL, "empty table name in namespace %s", ns);
        return loch_err_hint(err, "give the table a name");
    }
    return 0;
}

/* Upgrades a catalog created by PyIceberg (no iceberg_type column) the way Java's
 * JdbcCatalog does (ALTER TABLE ... ADD COLUMN). */
static int ensure_type_column(struct catalog *c, struct loch_err *err)
{
    sqlite3_stmt *st;
    int rc = prep(c, "SELECT 1 FROM pragma_table_info('iceberg_tables') WHERE name = 'iceberg_type'", &st, err);
    if (rc)
        return rc;
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step == SQLITE_ROW)
        return 0;
    if (step != SQLITE_DONE)
        return db_err(c, err, "cannot read the iceberg_tables columns");
    return exec(c, "ALTER TABLE iceberg_tables ADD COLUMN iceberg_type VARCHAR(5)", err,
                "cannot add the iceberg_type column");
}

const char *catalog_path(const struct catalog *c) { return c->path; }

/* The catalog holds SCRAM verifiers and token hashes: the owner's alone (0600). A new one
 * is made 0600 before SQLite opens it (SQLite gives its -wal and -shm files the database
 * file's mode); an existing one readable by others is made 0600, with a log line. */
static int private_file(const char *path, bool create, struct loch_err *err)
{
    static const char *const suffix[] = {"", "-wal", "-shm"};
    if (create) {
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0)
            close(fd);
        else if (errno != EEXIST)
            return loch_errf(err, LOCH_EIO, "cannot create catalog %s: %s", path, strerror(errno));
    }
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        char *p = xasprintf("%s%s", path, suffix[i]);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077)) {
            if (chmod(p, 0600) == 0)
                log_warn("%s was readable by others (mode %04o): made it 0600", p, (unsigned)(st.st_mode & 07777));
            else
                log_warn("%s is readable by others (mode %04o) and cannot be made 0600: %s", p,
                         (unsigned)(st.st_mode & 07777), strerror(errno));
        }
        free(p);
    }
    return 0;
}

int catalog_open(const char *path, bool create, struct catalog **out, struct loch_err *err)
{
    *out = NULL;
    int prc = private_file(path, create, err);
    if (prc)
        return prc;
    struct catalog *c = xcalloc(1, sizeof *c);
    c->path = xstrdup(path);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int src = sqlite3_open_v2(path, &c->db, flags, NULL);
    int rc = 0;
    if (src != SQLITE_OK) {
        if (!c->db) {
            rc = loch_errf(err, LOCH_ENOMEM, "cannot open catalog %s: out of memory", path);
        } else if (!create && (src == SQLITE_CANTOPEN)) {
            rc = loch_errf(err, LOCH_ENOENT, "catalog %s does not exist", path);
            loch_err_hint(err, "create the lake first with: loch init");
        } else {
            rc = loch_errf(err, LOCH_EIO, "cannot open catalog %s: %s", path, sqlite3_errmsg(c->db));
            loch_err_hint(err, "check that the state folder exists and is writable");
        }
        goto fail;
    }
    sqlite3_busy_timeout(c->db, 10000);
    sqlite3_extended_result_codes(c->db, 0);
    /* WAL lets readers run beside the single writer; synchronous=FULL makes the COMMIT
     * that moves metadata pointers durable before it returns (it is the commit point). */
    if ((rc = exec(c, "PRAGMA journal_mode=WAL", err, "cannot enable WAL")) ||
        (rc = exec(c, "PRAGMA synchronous=FULL", err, "cannot set synchronous=FULL")) ||
        (rc = exec(c, "BEGIN IMMEDIATE", err, "cannot start the schema transaction")))
        goto fail;
    if ((rc = exec(c, SCHEMA_SQL, err, "cannot create the catalog tables")) ||
        (rc = ensure_type_column(c, err)) ||
        (rc = exec(c, "COMMIT", err, "cannot commit the catalog schema"))) {
        rollback(c);
        goto fail;
    }
    *out = c;
    return 0;
fail:
    catalog_close(c);
    return rc;
}

void catalog_close(struct catalog *c)
{
    if (!c)
        return;
    sqlite3_close_v2(c->db);
    free(c->path);
    free(c);
}

void *catalog_db(struct catalog *c) { return c->db; }

/* Inserts the ("exists", "true") row the JDBC catalog uses to mark a namespace, for ns and
 * each parent. Runs inside the caller's transaction. */
static int insert_namespace_rows(struct catalog *c, const char *ns, struct loch_err *err)
{
    sqlite3_stmt *st;
    int rc = prep(c,
                  "INSERT OR IGNORE INTO iceberg_namespace_properties"
                  " (catalog_name, namespace, property_key, property_value)"
                  " VALUES ('" CATALOG_NAME "', ?, 'exists', 'true')",
                  &st, err);
    if (rc)
        return rc;
    size_t n = strlen(ns);
    for (size_t i = 1; i <= n && rc == 0; i++) {
        if (i < n && ns[i] != '.')
            continue;
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, ns, (int)i, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = db_err(c, err, "cannot create a namespace");
    }
    sqlite3_finalize(st);
    return rc;
}

int catalog_create_namespace(struct catalog *c, const char *ns, struct loch_err *err)
{
    int rc = catalog_check_name(ns, NULL, err);
    if (rc)
        return rc;
    if ((rc = step_begin(c, err)))
        return rc;
    rc = insert_namespace_rows(c, ns, err);
    if ((rc = step_end(c, rc, err)))
        return loch_err_prefix(err, "namespace %s", ns);
    return 0;
}

int catalog_namespace_exists(struct catalog *c, const char *ns, bool *out, struct loch_err *err)
{
    *out = false;
    int rc = check_ns(ns, err);
    if (rc)
        return rc;
    /* Like PyIceberg and Java: a namespace exists when it, or a child of it, holds a table
     * or a property row (other writers do not always mark parents). */
    sqlite3_stmt *st;
    rc = prep(c,
              "SELECT 1 FROM iceberg_tables WHERE catalog_name = '" CATALOG_NAME "'"
              " AND (table_namespace = ?1 OR substr(table_namespace, 1, length(?1) + 1) = ?1 || '.')"
              " UNION ALL "
              "SELECT 1 FROM iceberg_namespace_properties WHERE catalog_name = '" CATALOG_NAME "'"
              " AND (namespace = ?1 OR substr(namespace, 1, length(?1) + 1) = ?1 || '.')"
              " LIMIT 1",
              &st, err);
    if (rc)
        return rc;
    bind_text(st, 1, ns);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        *out = true;
    else if (step != SQLITE_DONE)
        rc = db_err(c, err, "cannot look up a namespace");
    sqlite3_finalize(st);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int catalog_list_namespaces(struct catalog *c, struct arena *a, char ***out, size_t *n_out,
                            struct loch_err *err)
{
    *out = NULL;
    *n_out = 0;
    sqlite3_stmt *st;
    int rc = prep(c,
                  "SELECT table_namespace FROM iceberg_tables WHERE catalog_name = '" CATALOG_NAME "'"
                  " UNION "
                  "SELECT namespace FROM iceberg_namespace_properties WHERE catalog_name = '" CATALOG_NAME "'",
                  &st, err);
    if (rc)
        return rc;
    char **v = NULL;
    size_t n = 0, cap = 0;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *ns = (const char *)sqlite3_column_text(st, 0);
        if (!ns || !*ns)
            continue;
        /* Each namespace and its parents ("a.b" implies "a"), deduplicated below. */
        size_t len = strlen(ns);
        for (size_t i = 1; i <= len; i++) {
            if (i < len && ns[i] != '.')
                continue;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                v = arena_grow(a, v, cap, ncap, sizeof *v);
                cap = ncap;
            }
            v[n++] = arena_strndup(a, ns, i);
        }
    }
    if (step != SQLITE_DONE)
        rc = db_err(c, err, "cannot list namespaces");
    sqlite3_finalize(st);
    if (rc)
        return rc;
    if (n)
        qsort(v, n, sizeof *v, cmp_str);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || strcmp(v[m - 1], v[i]) != 0)
            v[m++] = v[i];
    *out = v;
    *n_out = m;
    return 0;
}

static void read_table_row(sqlite3_stmt *st, struct arena *a, struct catalog_table *t)
{
    t->ns = arena_strdup(a, (const char *)sqlite3_column_text(st, 0));
    t->name = arena_strdup(a, (const char *)sqlite3_column_text(st, 1));
    t->metadata_location = arena_strdup(a, (const char *)sqlite3_column_text(st, 2));
    t->previous_metadata_location = arena_strdup(a, (const char *)sqlite3_column_text(st, 3));
}

int catalog_list_tables(struct catalog *c, const char *ns, struct arena *a, struct catalog_table **out,
                        size_t *n_out, struct loch_err *err)
{
    *out = NULL;
    *n_out = 0;
    int rc = ns ? check_ns(ns, err) : 0;
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = prep(c,
              "SELECT table_namespace, table_name, metadata_location, previous_metadata_location"
              " FROM iceberg_tables WHERE catalog_name = '" CATALOG_NAME "'"
              " AND (?1 IS NULL OR table_namespace = ?1) AND " IS_TABLE
              " ORDER BY table_namespace, table_name",
              &st, err);
    if (rc)
        return rc;
    bind_text(st, 1, ns);
    struct catalog_table *v = NULL;
    size_t n = 0, cap = 0;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            v = arena_grow(a, v, cap, ncap, sizeof *v);
            cap = ncap;
        }
        read_table_row(st, a, &v[n++]);
    }
    if (step != SQLITE_DONE)
        rc = db_err(c, err, "cannot list tables");
    sqlite3_finalize(st);
    if (rc)
        return rc;
    *out = v;
    *n_out = n;
    return 0;
}

static int no_table(struct loch_err *err, const char *ns, const char *name)
{
    loch_errf(err, LOCH_ENOENT, "table %s.%s does not exist", ns, name);
    return loch_err_hint(err, "list tables with: loch tables");
}

int catalog_load_table(struct catalog *c, const char *ns, const char *name, struct arena *a,
                       struct catalog_table *out, struct loch_err *err)
{
    memset(out, 0, sizeof *out);
    int rc = check_name(ns, name, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = prep(c,
              "SELECT table_namespace, table_name, metadata_location, previous_metadata_location"
              " FROM iceberg_tables WHERE catalog_name = '" CATALOG_NAME "'"
              " AND table_namespace = ? AND table_name = ? AND " IS_TABLE,
              &st, err);
    if (rc)
        return rc;
    bind_text(st, 1, ns);
    bind_text(st, 2, name);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        read_table_row(st, a, out);
    else if (step == SQLITE_DONE)
        rc = no_table(err, ns, name);
    else
        rc = db_err(c, err, "cannot load a table");
    sqlite3_finalize(st);
    return rc;
}

int catalog_drop_table(struct catalog *c, const char *ns, const char *name, struct loch_err *err)
{
    int rc = check_name(ns, name, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    rc = prep(c,
              "DELETE FROM iceberg_tables WHERE catalog_name = '" CATALOG_NAME "'"
              " AND table_namespace = ? AND table_name = ? AND " IS_TABLE,
              &st, err);
    if (rc)
        return rc;
    bind_text(st, 1, ns);
    bind_text(st, 2, name);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = db_err(c, err, "cannot drop a table");
    else if (sqlite3_changes(c->db) == 0)
        rc = no_table(err, ns, name);
    sqlite3_finalize(st);
    return rc;
}

/* The current pointer of a table, for conflict messages; "(missing)" when dropped. */
static char *current_location(struct catalog *c, const char *ns, const char *name)
{
    sqlite3_stmt *st;
    struct loch_err ignored;
    if (prep(c,
             "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = '" CATALOG_NAME "'"
             " AND table_namespace = ? AND table_name = ?",
             &st, &ignored))
        return NULL;
    bind_text(st, 1, ns);
    bind_text(st, 2, name);
    char *loc = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        loc = xstrdup(s ? s : "(null)");
    }
    sqlite3_finalize(st);
    return loc;
}

static int apply_update(struct catalog *c, sqlite3_stmt *upd, sqlite3_stmt *ins,
                        const struct catalog_update *u, struct loch_err *err)
{
    int rc = check_name(u->ns, u->name, err);
    if (rc)
        return rc;
    if (!u->new_location || !*u->new_location) {
        loch_errf(err, LOCH_EINVAL, "commit to table %s.%s has no new metadata location", u->ns, u->name);
        return loch_err_hint(err, "this is a bug in the caller: write the metadata file first");
    }
    if (!u->expected_location) {
        if ((rc = catalog_check_name(u->ns, u->name, err)) || (rc = insert_namespace_rows(c, u->ns, err)))
            return rc;
        sqlite3_reset(ins);
        bind_text(ins, 1, u->ns);
        bind_text(ins, 2, u->name);
        bind_text(ins, 3, u->new_location);
        int step = sqlite3_step(ins);
        if (step == SQLITE_CONSTRAINT) {
            loch_errf(err, LOCH_EEXIST, "table %s.%s already exists", u->ns, u->name);
            return loch_err_hint(err, "drop it first, or load it and commit against its current metadata");
        }
        if (step != SQLITE_DONE)
            return db_err(c, err, "cannot create a table");
        return 0;
    }
    sqlite3_reset(upd);
    bind_text(upd, 1, u->new_location);
    bind_text(upd, 2, u->expected_location);
    bind_text(upd, 3, u->ns);
    bind_text(upd, 4, u->name);
    if (sqlite3_step(upd) != SQLITE_DONE)
        return db_err(c, err, "cannot move a table's metadata pointer");
    if (sqlite3_changes(c->db) == 1)
        return 0;
    char *cur = current_location(c, u->ns, u->name);
    if (cur)
        loch_errf(err, LOCH_ECONFLICT, "commit conflict on table %s.%s: it changed since it was read", u->ns,
                  u->name);
    else
        loch_errf(err, LOCH_ECONFLICT, "commit conflict on table %s.%s: it no longer exists", u->ns, u->name);
    loch_err_detail(err, "expected metadata %s, found %s", u->expected_location, cur ? cur : "no table");
    free(cur);
    return loch_err_hint(err, "reload the table and retry the commit; nothing was written");
}

static int prep_kvs(struct catalog *c, sqlite3_stmt **put, sqlite3_stmt **del, struct loch_err *err);

/* Writes kv (a NULL value deletes the key) with the statements of prep_kvs. */
static int write_kvs(struct catalog *c, sqlite3_stmt *put, sqlite3_stmt *del, const struct catalog_kv *kv,
                     size_t n_kv, struct loch_err *err)
{
    for (size_t i = 0; i < n_kv; i++) {
        if (!kv[i].key || !*kv[i].key)
            return loch_errf(err, LOCH_EINVAL, "commit has a kv with an empty key");
        sqlite3_stmt *st = kv[i].value ? put : del;
        sqlite3_reset(st);
        bind_text(st, 1, kv[i].key);
        if (kv[i].value)
            bind_text(st, 2, kv[i].value);
        if (sqlite3_step(st) != SQLITE_DONE)
            return db_err(c, err, "cannot write a checkpoint");
    }
    return 0;
}

int catalog_commit(struct catalog *c, const struct catalog_update *u, size_t n_u,
                   const struct catalog_kv *kv, size_t n_kv, struct loch_err *err)
{
    sqlite3_stmt *upd = NULL, *ins = NULL, *put = NULL, *del = NULL;
    int rc = step_begin(c, err);
    if (rc)
        return rc;
    if ((rc = prep(c,
                   "UPDATE iceberg_tables SET metadata_location = ?1, previous_metadata_location = ?2"
                   " WHERE catalog_name = '" CATALOG_NAME "' AND table_namespace = ?3 AND table_name = ?4"
                   " AND metadata_location = ?2 AND " IS_TABLE,
                   &upd, err)) ||
        (rc = prep(c,
                   "INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name,"
                   " metadata_location, previous_metadata_location, iceberg_type)"
                   " VALUES ('" CATALOG_NAME "', ?, ?, ?, NULL, 'TABLE')",
                   &ins, err)) ||
        (rc = prep_kvs(c, &put, &del, err)))
        goto out;
    for (size_t i = 0; i < n_u && rc == 0; i++)
        rc = apply_update(c, upd, ins, &u[i], err);
    if (rc == 0)
        rc = write_kvs(c, put, del, kv, n_kv, err);
out:
    sqlite3_finalize(upd);
    sqlite3_finalize(ins);
    sqlite3_finalize(put);
    sqlite3_finalize(del);
    return step_end(c, rc, err);
}

/* Prepares the kv writers: put (upsert) and del. */
static int prep_kvs(struct catalog *c, sqlite3_stmt **put, sqlite3_stmt **del, struct loch_err *err)
{
    int rc = prep(c,
                  "INSERT INTO loch_kv (key, value) VALUES (?, ?)"
                  " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                  put, err);
    if (!rc)
        rc = prep(c, "DELETE FROM loch_kv WHERE key = ?", del, err);
    return rc;
}

/* Moves table ns.name to ns_to.name_to (metadata location unchanged). LOCH_ENOENT when
 * there is no such table, LOCH_EEXIST when the target is taken. */
static int move_table(struct catalog *c, sqlite3_stmt *mv, const char *ns, const char *name, const char *ns_to,
                      const char *name_to, struct loch_err *err)
{
    sqlite3_reset(mv);
    bind_text(mv, 1, ns_to);
    bind_text(mv, 2, name_to);
    bind_text(mv, 3, ns);
    bind_text(mv, 4, name);
    int step = sqlite3_step(mv);
    if (step == SQLITE_CONSTRAINT) {
        loch_errf(err, LOCH_EEXIST, "table %s.%s already exists", ns_to, name_to);
        return loch_err_hint(err, "drop or rename that table first, or choose another name");
    }
    if (step != SQLITE_DONE)
        return db_err(c, err, "cannot rename a table");
    if (sqlite3_changes(c->db) == 0)
        return no_table(err, ns, name);
    return 0;
}

int catalog_rename_tables(struct catalog *c, const struct catalog_rename *r, size_t n_r,
                          const struct catalog_kv *kv, size_t n_kv, struct loch_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < n_r && !rc; i++) {
        if ((rc = check_name(r[i].ns_from, r[i].name_from, err)) || (rc = catalog_check_name(r[i].ns_to, r[i].name_to, err)))
            break;
        for (size_t k = 0; k < i && !rc; k++) {
            if (!strcmp(r[k].ns_from, r[i].ns_from) && !strcmp(r[k].name_from, r[i].name_from))
                rc = loch_errf(err, LOCH_EINVAL, "table %s.%s is renamed twice in one rename", r[i].ns_from,
                               r[i].name_from);
            else if (!strcmp(r[k].ns_to, r[i].ns_to) && !strcmp(r[k].name_to, r[i].name_to))
                rc = loch_errf(err, LOCH_EINVAL, "two tables are renamed to %s.%s", r[i].ns_to, r[i].name_to);
        }
    }
    if (rc)
        return rc;
    sqlite3_stmt *mv = NULL, *put = NULL, *del = NULL;
    if ((rc = step_begin(c, err)))
        return rc;
    if ((rc = prep(c,
                   "UPDATE iceberg_tables SET table_namespace = ?1, table_name = ?2"
                   " WHERE catalog_name = '" CATALOG_NAME "' AND table_namespace = ?3 AND table_name = ?4"
                   " AND " IS_TABLE,
                   &mv, err)) ||
        (rc = prep_kvs(c, &put, &del, err)))
        goto out;
    /* All at once: first every source to a name no table can have (a control character),
     * then each to its target, so a name another entry moves away is free. */
    char tmp[48];
    for (size_t i = 0; i < n_r && !rc; i++) {
        snprintf(tmp, sizeof tmp, "\x01loch-rename-%zu", i);
        rc = move_table(c, mv, r[i].ns_from, r[i].name_from, r[i].ns_from, tmp, err);
    }
    for (size_t i = 0; i < n_r && !rc; i++) {
        snprintf(tmp, sizeof tmp, "\x01loch-rename-%zu", i);
        rc = insert_namespace_rows(c, r[i].ns_to, err);
        if (!rc)
            rc = move_table(c, mv, r[i].ns_from, tmp, r[i].ns_to, r[i].name_to, err);
        if (rc == LOCH_EEXIST)
            loch_err_prefix(err, "cannot rename %s.%s to %s.%s", r[i].ns_from, r[i].name_from, r[i].ns_to,
                            r[i].name_to);
    }
    if (!rc)
        rc = write_kvs(c, put, del, kv, n_kv, err);
out:
    sqlite3_finalize(mv);
    sqlite3_finalize(put);
    sqlite3_finalize(del);
    return step_end(c, rc, err);
}

int catalog_get_kv(struct catalog *c, const char *key, struct arena *a, char **out, struct loch_err *err)
{
    *out = NULL;
    sqlite3_stmt *st;
    int rc = prep(c, "SELECT value FROM loch_kv WHERE key = ?", &st, err);
    if (rc)
        return rc;
    bind_text(st, 1, key);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        *out = arena_strdup(a, (const char *)sqlite3_column_text(st, 0));
    else if (step == SQLITE_DONE)
        rc = loch_errf(err, LOCH_ENOENT, "catalog key \"%s\" is not set", key);
    else
        rc = db_err(c, err, "cannot read a key");
    sqlite3_finalize(st);
    return rc;
}
