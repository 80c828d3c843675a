/* internal.h: shared inside catalog/ only: the handle's fields and the SQLite error
 * mapping that catalog.c (the Iceberg tables), schema.c (migrations) and sql.c (the
 * statement door for loch_* tables) all use. Nothing outside src/catalog/ includes it. */
#ifndef LOCH_CATALOG_INTERNAL_H
#define LOCH_CATALOG_INTERNAL_H

#include <sqlite3.h>

#include "catalog/catalog.h"

struct catalog {
    sqlite3 *db;
    char *path;
    bool outer; /* catalog_tx_begin opened a transaction: writes are savepoints in it */
};

/* Maps the handle's last SQLite error onto err: busy or locked is LOCH_ECONFLICT (with a
 * hint), a duplicate key (primary or unique) is LOCH_EEXIST, anything else LOCH_EIO; the message names the
 * catalog's path and `what`. Returns the code. */
int cat_db_err(struct catalog *c, struct loch_err *err, const char *what);
/* Runs parameterless SQL (one or more statements); errors through cat_db_err. */
int cat_exec(struct catalog *c, const char *sql, struct loch_err *err, const char *what);
/* Rolls back the open transaction, if any. */
void cat_rollback(struct catalog *c);

/* Brings the schema to the newest version of the migration list (schema.c) under one
 * write lock, or leaves it untouched when it is current. LOCH_EUNSUPPORTED when the file
 * was written by a newer loch. */
int cat_schema_migrate(struct catalog *c, struct loch_err *err);

#endif
