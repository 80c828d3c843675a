/* mysql.h: the MySQL/MariaDB source's pieces below cdc_mysql_run (source.h): connection
 * settings from `url:` + `password_env:`, server checks with refusals that name the
 * setting to change, table selection by database.table globs, the mapping of
 * information_schema columns to the binlog column model, checkpoint text, and DDL
 * statement recognition. Not for the binlog byte layouts (binlog.h) or the lake
 * (cdc/change.h). */
#ifndef LOCH_CDC_MYSQL_MYSQL_H
#define LOCH_CDC_MYSQL_MYSQL_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "base/mem.h"
#include "cdc/mysql/binlog.h"

struct mysql_params {
    const char *host;  /* default 127.0.0.1 */
    unsigned port;     /* default 3306 */
    const char *user;
    const char *password; /* NULL = none */
    const char *tls;   /* NULL/"off", "require" (encrypt), "verify" (encrypt + verify cert and host) */
};

/* Parses mysql://user[:password]@host[:port][/][?tls=off|require|verify]; the password
 * from the environment variable password_env (may be NULL) wins over one in the URL.
 * Strings live in a. LOCH_ECONFIG naming what is wrong. */
int mysql_params_parse(const char *url, const char *password_env, struct arena *a,
                       struct mysql_params *out, struct loch_err *err);

/* A binlog position as saved in the checkpoint: "FILE:POS" with an optional " gtid=G"
 * (MariaDB domain-server-seq list or MySQL uuid:n). */
struct mysql_pos {
    char file[256];
    uint64_t pos;
    char gtid[512]; /* "" when unknown */
};
int mysql_pos_parse(const char *text, struct mysql_pos *out, struct loch_err *err);
/* Formats p into a. */
char *mysql_pos_format(const struct mysql_pos *p, struct arena *a);
/* Orders two positions of the same server by file sequence number, then offset. */
int mysql_pos_cmp(const struct mysql_pos *a, const struct mysql_pos *b);

/* True when db.table matches one of the include globs and none of the exclude globs
 * (fnmatch; a glob without '.' matches the database with any table). */
bool mysql_table_selected(const char *db, const char *table, const char **include, size_t n_include,
                          const char **exclude, size_t n_exclude);

/* Fills c from information_schema.COLUMNS fields (DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION,
 * NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_SET_NAME, CHARACTER_MAXIMUM_LENGTH/OCTET
 * length), so a fully loaded table has the shape its binlog TABLE_MAP will have.
 * is_mariadb: JSON is LONGTEXT there. LOCH_EUNSUPPORTED naming the type. */
int mysql_column_from_schema(const char *data_type, const char *column_type, int64_t precision,
                             int64_t scale, int64_t dt_precision, const char *charset,
                             int64_t octet_len, bool is_mariadb, struct arena *a,
                             struct binlog_column *c, struct loch_err *err);

/* What a QUERY event's statement does to tables loch follows. */
enum mysql_ddl_kind {
    MYSQL_DDL_NONE,       /* not a table DDL loch acts on (BEGIN, COMMIT, GRANT, ...) */
    MYSQL_DDL_BEGIN,
    MYSQL_DDL_COMMIT,
    MYSQL_DDL_TRUNCATE,   /* tables[0] */
    MYSQL_DDL_DROP,       /* tables[0..n) */
    MYSQL_DDL_ALTER,      /* tables[0]; renames[] column renames in order */
    MYSQL_DDL_RENAME,     /* tables[2i] -> tables[2i+1] */
    MYSQL_DDL_CREATE,     /* tables[0] */
};

struct mysql_ddl {
    enum mysql_ddl_kind kind;
    size_t n_tables;
    const char **dbs, **tables; /* db NULL = the event's default database */
    size_t n_renames;
    const char **rename_from, **rename_to;
};

/* Recognises the statement (comments and backquoted names handled). Unknown statements
 * are MYSQL_DDL_NONE, never an error. Output in a. */
void mysql_ddl_parse(const char *sql, struct arena *a, struct mysql_ddl *out);

/* Derived replica server id (when server_id: is not configured): stable for a source
 * name and host, in 0x40000000..0x7fffffff so it stays clear of small hand-set ids. */
uint32_t mysql_derive_server_id(const char *source_name);

#endif
