/* pg_int.h: private to cdc/pg/: the state of one PostgreSQL source run and the calls its
 * files make of each other (conn.c, checks.c, load.c, stream.c, validate.c). Not for other
 * rooms: they reach the source through cdc/source.h.
 *
 * Two connections: `sql` (plain: catalog queries, publication management, the full load)
 * and `repl` (replication=database: CREATE_REPLICATION_SLOT, START_REPLICATION). Both
 * run with DateStyle ISO, TimeZone UTC, IntervalStyle iso_8601, bytea_output hex and
 * lc_monetary C, so every value's text is in one known form. */
#ifndef LOCH_CDC_PG_PG_INT_H
#define LOCH_CDC_PG_PG_INT_H

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/mem.h"
#include "base/util.h"
#include "cdc/applier.h"
#include "cdc/pg/pg.h"
#include "cdc/pg/pgoutput.h"
#include "cdc/source.h"

#define SESSION_OPTIONS \
    "-c datestyle=ISO,YMD -c timezone=UTC -c intervalstyle=iso_8601 -c extra_float_digits=3 " \
    "-c bytea_output=hex -c lc_monetary=C"

struct prel {                  /* a source table as the stream describes it */
    uint32_t relid;
    struct cdc_table t;
    enum pgsrc_conv *conv;
    bool declared;
};

struct pgsrc {
    struct cdc_run *r;
    const struct loch_source *src;
    struct arena *arena;       /* lifetime: the run */
    const char *password;
    PGconn *sql, *repl;
    char *slot, *pub, *pub_ins;
    struct cdc_applier *ap;
    struct prel *rels;
    size_t n_rels, cap_rels;
    /* positions */
    uint64_t resume_lsn;       /* transactions whose commit is before this were applied */
    uint64_t flushed_lsn;      /* durable in the lake: what we confirm */
    uint64_t server_end;       /* last wal_end the server reported */
    uint64_t catchup_target;   /* 0: not catching up */
    bool in_txn, skip_txn;
    uint64_t txn_commit_lsn;
    uint64_t last_end;         /* end of the last transaction received */
    int64_t last_status_ms, last_poll_ms;
    char **known;              /* "schema.table" of the tables replicated in this session */
    size_t n_known;
    struct arena *msg;         /* lifetime: one message */
};

/* A selected source table as the catalog lists it (checks.c). */
struct srctab {
    uint32_t oid;
    char *schema, *name;
    char replident;
    bool has_key;
    bool can_select;
};

struct slotinfo {
    bool exists, active;
    int active_pid;
};

static inline int64_t mono_ms(void) { return (int64_t)(util_mono_s() * 1000.0); }

static inline bool stopping(struct pgsrc *s) { return s->r->stop && atomic_load(s->r->stop); }

/* ---- conn.c ---- */

/* Opens a connection with loch's session options (replication=database when replication);
 * *out is the caller's to PQfinish. LOCH_ESOURCE with a hint for pg_hba and passwords. */
int pgsrc_connect(struct pgsrc *s, bool replication, PGconn **out, struct loch_err *err);
/* Fills err from a failed result and clears r; returns the code (LOCH_EPERM for 42501,
 * else LOCH_ESOURCE). */
int pgsrc_fail(struct pgsrc *s, PGresult *r, const char *what, struct loch_err *err);
/* Runs a statement whose result is not needed. */
int pgsrc_exec(struct pgsrc *s, PGconn *c, const char *sql, const char *what, struct loch_err *err);
/* Runs a query; *out (rows) is the caller's to PQclear. */
int pgsrc_query(struct pgsrc *s, PGconn *c, const char *sql, const char *what, PGresult **out,
                struct loch_err *err);

/* ---- checks.c ---- */

/* wal_level, the REPLICATION privilege and the server version, refused with the fix. */
int pgsrc_check_server(struct pgsrc *s, struct loch_err *err);
/* The selected tables (tables:/exclude: globs), schema and name order; *out in a. */
int pgsrc_list_tables(struct pgsrc *s, struct arena *a, struct srctab **out, size_t *n_out, struct loch_err *err);
/* The table's columns from the catalog, in attnum order (as pgoutput sends them); *t and
 * *conv (one per column) in a. LOCH_EUNSUPPORTED for a type with no mapping. */
int pgsrc_describe(struct pgsrc *s, const struct srctab *st, struct arena *a, struct cdc_table *t,
                   enum pgsrc_conv **conv, struct loch_err *err);
/* Makes the two publications (full changes; inserts only for tables without a key) hold
 * exactly the tables t. LOCH_EPERM for a table the role cannot read. */
int pgsrc_setup_publications(struct pgsrc *s, struct srctab *t, size_t n, struct loch_err *err);
/* Whether the slot exists; LOCH_ECONFLICT when it is another plugin's, another database's
 * or in use. */
int pgsrc_slot_info(struct pgsrc *s, struct slotinfo *o, struct loch_err *err);
int pgsrc_drop_slot(struct pgsrc *s, struct loch_err *err);

/* ---- load.c ---- */

/* The first session: creates the slot with an exported snapshot (or continues an
 * interrupted load with the existing slot), loads every table, and commits the stream's
 * start position with the last loaded files. */
int pgsrc_initial_sync(struct pgsrc *s, struct srctab *t, size_t n, struct loch_err *err);
/* Loads the tables of t the lake lacks and drops those that left; remembers t. */
int pgsrc_sync_tables(struct pgsrc *s, struct srctab *t, size_t n, struct loch_err *err);
/* pgsrc_sync_tables over the source's current table list. */
int pgsrc_poll_tables(struct pgsrc *s, struct loch_err *err);
/* Remembers t as the tables replicated in this session. */
void pgsrc_remember(struct pgsrc *s, struct srctab *t, size_t n);

/* ---- stream.c ---- */

/* Streams from s->resume_lsn until stopped, caught up (s->catchup_target), or an error;
 * whole transactions received before a dropped connection are flushed. */
int pgsrc_stream(struct pgsrc *s, struct loch_err *err);

#endif
