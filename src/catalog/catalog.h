/* catalog.h: the table catalog in SQLite (state/catalog.db), laid out as the Iceberg JDBC
 * catalog (tables iceberg_tables and iceberg_namespace_properties, catalog name "loch")
 * so PyIceberg's SqlCatalog and Spark's JdbcCatalog open it as is; loch's own tables
 * carry a loch_ prefix. Not for metadata files (iceberg/) or access rules (access/).
 *
 * Namespaces are dotted strings, as the JDBC catalog stores them: "core.public". */
#ifndef LOCH_CATALOG_CATALOG_H
#define LOCH_CATALOG_CATALOG_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"
#include "base/mem.h"

#define CATALOG_NAME "loch"

struct catalog;

/* Limits on names (catalog_check_name): bytes per namespace level or table name, levels
 * per namespace, and bytes of "<ns>.<table>" (its lock file name must fit NAME_MAX). */
#define CATALOG_NAME_MAX 128
#define CATALOG_NS_DEPTH_MAX 8
#define CATALOG_QUALIFIED_MAX 240

/* Checks a namespace (dotted: each level a name) and, unless name is NULL, a table name,
 * before anything is built from them: they become folders under the warehouse, lock
 * files under the state folder and DuckDB catalog and schema names. Every place a new
 * name enters the lake (CREATE TABLE, renames, replicated tables, writer locks, table
 * locations, catalog creates) calls it. A level or table name must be 1..CATALOG_NAME_MAX
 * bytes of UTF-8 text without "/", "\\", control characters (NUL cannot occur), the file
 * pattern characters * ? [ ], and not be "." or ".."; a table name has no "."; a
 * namespace has at most CATALOG_NS_DEPTH_MAX levels, its first level is none of DuckDB's
 * main, temp, system, memory, pg_catalog, information_schema (any case) and no level is
 * pg_catalog or information_schema; "<ns>.<name>" is at most CATALOG_QUALIFIED_MAX bytes.
 * Returns 0, or LOCH_ENAME (SQLSTATE 42602) with a message naming the name and why. */
int catalog_check_name(const char *ns, const char *name, struct loch_err *err);

/* Opens (create=true: creates when missing) the catalog database at path, applies the
 * schema, sets WAL mode and a busy timeout. *out owns a sqlite3 handle; one per thread. */
int catalog_open(const char *path, bool create, struct catalog **out, struct loch_err *err);
void catalog_close(struct catalog *c); /* c may be NULL */
/* The path it was opened with (to open another handle for another thread). */
const char *catalog_path(const struct catalog *c);

/* Creates the namespace (and its parents: "a.b" also creates "a"). Existing is fine. */
int catalog_create_namespace(struct catalog *c, const char *ns, struct loch_err *err);
int catalog_namespace_exists(struct catalog *c, const char *ns, bool *out, struct loch_err *err);
/* All namespaces, sorted; strings in a. */
int catalog_list_namespaces(struct catalog *c, struct arena *a, char ***out, size_t *n_out,
                            struct loch_err *err);

struct catalog_table {
    char *ns, *name;
    char *metadata_location, *previous_metadata_location;
};

/* Tables of ns (NULL: every namespace), sorted by namespace then name. */
int catalog_list_tables(struct catalog *c, const char *ns, struct arena *a, struct catalog_table **out,
                        size_t *n_out, struct loch_err *err);
/* LOCH_ENOENT "table ns.name does not exist" when absent. */
int catalog_load_table(struct catalog *c, const char *ns, const char *name, struct arena *a,
                       struct catalog_table *out, struct loch_err *err);
int catalog_drop_table(struct catalog *c, const char *ns, const char *name, struct loch_err *err);

/* One table's pointer move in a commit: expected NULL means "create; must not exist". */
struct catalog_update {
    const char *ns, *name;
    const char *expected_location;
    const char *new_location;
};

/* A loch_kv row written by a commit (e.g. a source's replication position); a NULL value
 * deletes the key. */
struct catalog_kv {
    const char *key, *value;
};

/* Moves every pointer in u and writes every kv (loch_kv table) in ONE SQLite transaction.
 * Each pointer moves only if its current value equals expected_location (compare-and-
 * swap); if any does not, nothing is written and LOCH_ECONFLICT names the table.
 * Creating a table whose namespace is missing creates the namespace too. */
int catalog_commit(struct catalog *c, const struct catalog_update *u, size_t n_u,
                   const struct catalog_kv *kv, size_t n_kv, struct loch_err *err);
/* One table's new name in catalog_rename_tables. */
struct catalog_rename {
    const char *ns_from, *name_from;
    const char *ns_to, *name_to;
};

/* Renames tables and writes every kv (as catalog_commit does) in ONE SQLite transaction.
 * The renames happen at once: a name another entry moves away is free for a target, so
 * a <-> b is two entries. Each table keeps its metadata location (its files stay where
 * they are; iceberg_table_create gives a later table of the old name a location of its
 * own). A missing target namespace is created. Refuses, writing nothing: LOCH_ENOENT
 * when a source table does not exist, LOCH_EEXIST when a target is taken by a table
 * that stays, LOCH_EINVAL when two entries share a source or a target. */
int catalog_rename_tables(struct catalog *c, const struct catalog_rename *r, size_t n_r,
                          const struct catalog_kv *kv, size_t n_kv, struct loch_err *err);

/* An enclosing transaction: until catalog_tx_end, catalog_commit and
 * catalog_rename_tables on c write inside it (each still all-or-nothing on its own), so
 * several of them land together or not at all, e.g. a flush's commit and the renames of
 * a DDL with its checkpoint. Holds the catalog's write lock until ended: keep it short.
 * LOCH_EINVAL when one is already open on c. */
int catalog_tx_begin(struct catalog *c, struct loch_err *err);
/* commit true: commits the enclosing transaction (on failure everything in it is rolled
 * back and the error returned); false: rolls it back and returns 0. No-op without one. */
int catalog_tx_end(struct catalog *c, bool commit, struct loch_err *err);

/* Reads a kv written by catalog_commit; LOCH_ENOENT when absent. Value in a. */
int catalog_get_kv(struct catalog *c, const char *key, struct arena *a, char **out, struct loch_err *err);

/* The sqlite3 handle, for other loch_ tables' modules (access/, cdc/). */
void *catalog_db(struct catalog *c);

#endif
