/* pg.c: one PostgreSQL source: checks, publications and slot, the full load from the
 * slot's exported snapshot, then the pgoutput stream into the applier, acknowledged only
 * after each flush is committed. Not for decoding bytes (pgoutput.c) or type mapping
 * (types.c).
 *
 * Two connections: `sql` (plain: catalog queries, publication management, the full load)
 * and `repl` (replication=database: CREATE_REPLICATION_SLOT, START_REPLICATION). Both
 * run with DateStyle ISO, TimeZone UTC, IntervalStyle iso_8601, bytea_output hex and
 * lc_monetary C, so every value's text is in one known form. */
#include "cdc/source.h"

#include <errno.h>
#include <poll.h>
#include <jansson.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"
#include "cdc/change.h"
#include "cdc/load.h"
#include "cdc/pg/pg.h"
#include "cdc/pg/pgoutput.h"

#define SESSION_OPTIONS \
    "-c datestyle=ISO,YMD -c timezone=UTC -c intervalstyle=iso_8601 -c extra_float_digits=3 " \
    "-c bytea_output=hex -c lc_monetary=C"

struct prel {                  /* a source table as the stream describes it */
    uint32_t relid;
    struct cdc_table t;
    enum pg_conv *conv;
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

static int64_t mono_ms(void) { return (int64_t)(util_mono_s() * 1000.0); }

static bool stopping(struct pgsrc *s) { return s->r->stop && atomic_load(s->r->stop); }

static char *ident_part(struct arena *a, const char *s)
{
    char *o = arena_strdup(a, s);
    for (char *p = o; *p; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z')
            *p = (char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            *p = '_';
    }
    return o;
}

static char *qid(struct arena *a, const char *s)
{
    struct buf b = {0};
    buf_sql_ident(&b, s);
    char *o = arena_strdup(a, b.data);
    buf_free(&b);
    return o;
}

/* ---- connections ---- */

static int connect_pg(struct pgsrc *s, bool replication, PGconn **out, struct loch_err *err)
{
    const char *keys[6], *vals[6];
    int n = 0;
    keys[n] = "dbname"; vals[n++] = s->src->url;
    keys[n] = "options"; vals[n++] = SESSION_OPTIONS;
    keys[n] = "fallback_application_name"; vals[n++] = "loch";
    if (replication) {
        keys[n] = "replication"; vals[n++] = "database";
    }
    if (s->password) {
        keys[n] = "password"; vals[n++] = s->password;
    }
    keys[n] = NULL; vals[n] = NULL;
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        char *m = PQerrorMessage(c);
        size_t l = strlen(m);
        while (l && (m[l - 1] == '\n' || m[l - 1] == ' '))
            m[--l] = 0;
        loch_errf(err, LOCH_ESOURCE, "source %s: cannot connect%s: %s", s->src->name,
                  replication ? " for replication" : "", m);
        if (strstr(m, "replication") && strstr(m, "pg_hba"))
            loch_err_hint(err, "allow replication connections for this role in pg_hba.conf");
        else if (!s->password && strstr(m, "password"))
            loch_err_hint(err, "set password_env: VAR for source %s, or use a .pgpass file", s->src->name);
        PQfinish(c);
        return LOCH_ESOURCE;
    }
    *out = c;
    return 0;
}

static int q_fail(struct pgsrc *s, PGresult *r, const char *what, struct loch_err *err)
{
    const char *m = PQresultErrorMessage(r);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    int code = LOCH_ESOURCE;
    if (state && !strcmp(state, "42501"))
        code = LOCH_EPERM;
    loch_errf(err, code, "source %s: %s: %s", s->src->name, what, m && *m ? m : "connection lost");
    size_t l = strlen(err->msg);
    while (l && err->msg[l - 1] == '\n')
        err->msg[--l] = 0;
    PQclear(r);
    return code;
}

static int run(struct pgsrc *s, PGconn *c, const char *sql, const char *what, struct loch_err *err)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        return q_fail(s, r, what, err);
    PQclear(r);
    return 0;
}

static int query(struct pgsrc *s, PGconn *c, const char *sql, const char *what, PGresult **out,
                 struct loch_err *err)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return q_fail(s, r, what, err);
    *out = r;
    return 0;
}

/* ---- checks ---- */

static int check_server(struct pgsrc *s, struct loch_err *err)
{
    PGresult *r = NULL;
    int rc = query(s, s->sql,
                   "SELECT current_setting('wal_level'), (SELECT rolreplication OR rolsuper FROM pg_roles "
                   "WHERE rolname = current_user), current_user, current_setting('server_version_num')::int",
                   "checking server settings", &r, err);
    if (rc)
        return rc;
    const char *wal = PQgetvalue(r, 0, 0);
    bool repl = PQgetvalue(r, 0, 1)[0] == 't';
    char *user = arena_strdup(s->arena, PQgetvalue(r, 0, 2));
    int ver = atoi(PQgetvalue(r, 0, 3));
    if (strcmp(wal, "logical")) {
        loch_errf(err, LOCH_ECONFIG, "source %s: wal_level is '%s', logical replication needs 'logical'",
                  s->src->name, wal);
        PQclear(r);
        return loch_err_hint(err, "run ALTER SYSTEM SET wal_level = logical; on the source, then restart PostgreSQL");
    }
    PQclear(r);
    if (!repl) {
        loch_errf(err, LOCH_EPERM, "source %s: role \"%s\" lacks the REPLICATION privilege", s->src->name, user);
        return loch_err_hint(err, "run ALTER ROLE \"%s\" REPLICATION; as a superuser on the source", user);
    }
    if (ver < 100000) {
        loch_errf(err, LOCH_EUNSUPPORTED, "source %s: PostgreSQL %d is too old", s->src->name, ver / 10000);
        return loch_err_hint(err, "loch needs PostgreSQL 10 or newer (pgoutput)");
    }
    return 0;
}

/* ---- tables ---- */

struct srctab {
    uint32_t oid;
    char *schema, *name;
    char replident;
    bool has_key;
    bool can_select;
};

static bool selected(const struct loch_source *src, const char *schema, const char *name)
{
    char full[512];
    snprintf(full, sizeof full, "%s.%s", schema, name);
    bool in = src->n_tables == 0;
    for (size_t i = 0; i < src->n_tables && !in; i++)
        in = !fnmatch(src->tables[i], full, 0);
    for (size_t i = 0; i < src->n_exclude && in; i++)
        in = fnmatch(src->exclude[i], full, 0) != 0;
    return in;
}

static int list_tables(struct pgsrc *s, struct arena *a, struct srctab **out, size_t *n_out, struct loch_err *err)
{
    PGresult *r = NULL;
    int rc = query(s, s->sql,
                   "SELECT c.oid, n.nspname, c.relname, c.relreplident, "
                   "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND "
                   "((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))), "
                   "has_table_privilege(c.oid, 'SELECT') "
                   "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                   "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
                   "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
                   "ORDER BY 2, 3",
                   "listing tables", &r, err);
    if (rc)
        return rc;
    int nt = PQntuples(r);
    struct srctab *t = arena_alloc(a, (size_t)(nt + 1) * sizeof *t);
    size_t n = 0;
    for (int i = 0; i < nt; i++) {
        const char *sch = PQgetvalue(r, i, 1), *nm = PQgetvalue(r, i, 2);
        if (!selected(s->src, sch, nm))
            continue;
        t[n].oid = (uint32_t)strtoul(PQgetvalue(r, i, 0), NULL, 10);
        t[n].schema = arena_strdup(a, sch);
        t[n].name = arena_strdup(a, nm);
        t[n].replident = PQgetvalue(r, i, 3)[0];
        t[n].has_key = PQgetvalue(r, i, 4)[0] == 't';
        t[n].can_select = PQgetvalue(r, i, 5)[0] == 't';
        n++;
    }
    PQclear(r);
    *out = t;
    *n_out = n;
    return 0;
}

static bool full_pub(const struct srctab *t) { return t->has_key || t->replident == 'f'; }

/* The table's columns from the catalog, in attnum order (as pgoutput sends them). */
static int describe(struct pgsrc *s, const struct srctab *st, struct arena *a, struct cdc_table *t, enum pg_conv **conv,
                    struct loch_err *err)
{
    char q[1024];
    snprintf(q, sizeof q,
             "SELECT a.attname, a.atttypid, a.atttypmod, a.attnotnull, EXISTS (SELECT 1 FROM pg_index i WHERE "
             "i.indrelid = a.attrelid AND a.attnum = ANY (i.indkey) AND ((c.relreplident = 'd' AND i.indisprimary) "
             "OR (c.relreplident = 'i' AND i.indisreplident))) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
             "WHERE a.attrelid = %u AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
             st->oid);
    PGresult *r = NULL;
    int rc = query(s, s->sql, q, "describing a table", &r, err);
    if (rc)
        return rc;
    int n = PQntuples(r);
    memset(t, 0, sizeof *t);
    t->source = s->src->name;
    t->schema = st->schema;
    t->name = st->name;
    t->n_columns = (size_t)n;
    t->columns = arena_alloc(a, (size_t)(n + 1) * sizeof *t->columns);
    *conv = arena_alloc(a, (size_t)(n + 1) * sizeof **conv);
    char *full = arena_printf(a, "%s.%s", st->schema, st->name);
    for (int i = 0; i < n && !rc; i++) {
        struct cdc_column *c = &t->columns[i];
        struct pg_coltype ct;
        c->name = arena_strdup(a, PQgetvalue(r, i, 0));
        rc = pg_type_map(s->sql, (uint32_t)strtoul(PQgetvalue(r, i, 1), NULL, 10),
                         (int32_t)strtol(PQgetvalue(r, i, 2), NULL, 10), full, c->name, a, &ct, err);
        c->type = ct.type;
        c->source_type = ct.type_name;
        (*conv)[i] = ct.conv;
        c->nullable = PQgetvalue(r, i, 3)[0] != 't';
        c->key = st->has_key && PQgetvalue(r, i, 4)[0] == 't';
    }
    PQclear(r);
    t->has_key = st->has_key;
    t->full_identity = !st->has_key && st->replident == 'f';
    t->insert_only = !t->has_key && !t->full_identity;
    return rc;
}

/* ---- publications ---- */

static int sync_publication(struct pgsrc *s, const char *pub, bool inserts_only, struct srctab *t, size_t n,
                            struct loch_err *err)
{
    struct arena *a = s->arena;
    char q[512];
    PGresult *r = NULL;
    struct buf b = {0};
    buf_puts(&b, "SELECT count(*) FROM pg_publication WHERE pubname = ");
    buf_sql_str(&b, pub);
    int rc = query(s, s->sql, b.data, "looking up the publication", &r, err);
    buf_free(&b);
    if (rc)
        return rc;
    bool exists = atoi(PQgetvalue(r, 0, 0)) > 0;
    PQclear(r);
    if (!exists) {
        snprintf(q, sizeof q, "CREATE PUBLICATION %s WITH (publish = '%s')", qid(a, pub),
                 inserts_only ? "insert, truncate" : "insert, update, delete, truncate");
        if ((rc = run(s, s->sql, q, "creating the publication", err))) {
            loch_err_hint(err, "the role needs CREATE on the database; or create publication %s yourself", pub);
            return rc;
        }
        log_info("source %s: created publication %s", s->src->name, pub);
    }
    buf_puts(&b, "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = ");
    buf_sql_str(&b, pub);
    rc = query(s, s->sql, b.data, "listing the publication's tables", &r, err);
    buf_free(&b);
    if (rc)
        return rc;
    int nr = PQntuples(r);
    /* add the tables that belong here and are missing */
    for (size_t i = 0; i < n && !rc; i++) {
        if (full_pub(&t[i]) == inserts_only)
            continue;
        bool have = false;
        for (int k = 0; k < nr && !have; k++)
            have = !strcmp(PQgetvalue(r, k, 0), t[i].schema) && !strcmp(PQgetvalue(r, k, 1), t[i].name);
        if (have)
            continue;
        char *sql = arena_printf(a, "ALTER PUBLICATION %s ADD TABLE %s.%s", qid(a, pub), qid(a, t[i].schema),
                                 qid(a, t[i].name));
        if ((rc = run(s, s->sql, sql, "adding a table to the publication", err)))
            loch_err_hint(err, "the role must own %s.%s (or be superuser) to publish it", t[i].schema, t[i].name);
    }
    /* drop the ones that do not (anymore): not selected, or in the wrong publication */
    for (int k = 0; k < nr && !rc; k++) {
        const char *sch = PQgetvalue(r, k, 0), *nm = PQgetvalue(r, k, 1);
        bool keep = false;
        for (size_t i = 0; i < n && !keep; i++)
            keep = !strcmp(sch, t[i].schema) && !strcmp(nm, t[i].name) && full_pub(&t[i]) != inserts_only;
        if (keep)
            continue;
        char *sql = arena_printf(a, "ALTER PUBLICATION %s DROP TABLE %s.%s", qid(a, pub), qid(a, sch), qid(a, nm));
        rc = run(s, s->sql, sql, "removing a table from the publication", err);
    }
    PQclear(r);
    return rc;
}

static int setup_publications(struct pgsrc *s, struct srctab *t, size_t n, struct loch_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!t[i].can_select) {
            loch_errf(err, LOCH_EPERM, "source %s: no SELECT privilege on table %s.%s", s->src->name, t[i].schema,
                      t[i].name);
            return loch_err_hint(err, "GRANT SELECT ON %s.%s TO the replication role, or exclude the table",
                                 t[i].schema, t[i].name);
        }
        if (!full_pub(&t[i]))
            log_warn("source %s: table %s.%s has no primary key: replicated insert-only (updates and deletes are not "
                     "captured). Fix: ALTER TABLE %s.%s REPLICA IDENTITY FULL;",
                     s->src->name, t[i].schema, t[i].name, qid(s->arena, t[i].schema), qid(s->arena, t[i].name));
    }
    int rc = sync_publication(s, s->pub, false, t, n, err);
    if (!rc)
        rc = sync_publication(s, s->pub_ins, true, t, n, err);
    return rc;
}

/* ---- the full load ---- */

static int load_table(struct pgsrc *s, PGconn *c, const struct srctab *st, struct loch_err *err)
{
    struct arena *a = arena_new();
    struct cdc_table t;
    enum pg_conv *conv;
    int rc = describe(s, st, a, &t, &conv, err);
    if (!rc)
        rc = cdc_applier_table(s->ap, &t, err);
    if (rc) {
        arena_free(a);
        return rc;
    }
    /* estimated rows, for the ETA */
    char q[256];
    snprintf(q, sizeof q, "SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = %u", st->oid);
    int64_t est = 0;
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        est = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    struct buf sql = {0};
    buf_puts(&sql, "COPY (SELECT ");
    for (size_t i = 0; i < t.n_columns; i++)
        buf_printf(&sql, "%s%s", i ? ", " : "", pg_copy_expr(conv[i], qid(a, t.columns[i].name), a));
    buf_printf(&sql, " FROM ONLY %s.%s) TO STDOUT (FORMAT csv)", qid(a, st->schema), qid(a, st->name));
    r = PQexec(c, sql.data);
    buf_free(&sql);
    if (PQresultStatus(r) != PGRES_COPY_OUT) {
        rc = q_fail(s, r, arena_printf(a, "reading table %s.%s", st->schema, st->name), err);
        arena_free(a);
        return rc;
    }
    PQclear(r);
    char *dir = arena_printf(a, "%s/spill", s->r->cfg->state_dir);
    if ((rc = util_mkdirs(dir, err))) {
        arena_free(a);
        return rc;
    }
    char *path = arena_printf(a, "%s/%s-%s.%s.csv", dir, s->src->name, st->schema, st->name);
    /* Chunks of ~256 MB of CSV: each becomes one Parquet file, so memory stays bounded. */
    const int64_t chunk_bytes = 256LL << 20;
    int64_t rows = 0, bytes = 0, chunk = 0, loaded = 0;
    double t0 = util_mono_s(), last = t0;
    FILE *f = fopen(path, "w");
    if (!f) {
        arena_free(a);
        return loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
    }
    struct buf sel = {0};
    buf_puts(&sel, "SELECT * FROM read_csv(");
    buf_sql_str(&sel, path);
    buf_printf(&sel, ", header = false, all_varchar = true, allow_quoted_nulls = false, delim = ',', quote = '\"', "
                     "escape = '\"', new_line = '\\n', parallel = true, columns = {");
    for (size_t i = 0; i < t.n_columns; i++)
        buf_printf(&sel, "%s'c%zu': 'VARCHAR'", i ? ", " : "", i);
    buf_puts(&sel, "})");
    for (;;) {
        char *line = NULL;
        int n = PQgetCopyData(c, &line, 0);
        if (n > 0) {
            if (fwrite(line, 1, (size_t)n, f) != (size_t)n)
                rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
            PQfreemem(line);
            rows++;
            bytes += n;
            chunk += n;
        }
        bool end = n < 0;
        if (!rc && (chunk >= chunk_bytes || (end && chunk > 0))) {
            if (fclose(f) != 0)
                rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
            f = NULL;
            int64_t got = 0;
            if (!rc)
                rc = cdc_applier_load(s->ap, &t, sel.data, &got, err);
            loaded += got;
            chunk = 0;
            if (!rc && !end && !(f = fopen(path, "w")))
                rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
        }
        double now = util_mono_s();
        if (s->r->progress && (now - last >= 1.0 || end)) {
            double rate = rows / (now - t0 > 0 ? now - t0 : 1e-9);
            if (est > rows && !end)
                fprintf(stderr, "loch: %s %s.%s: %" PRId64 " rows, %.1f MB, %.0f rows/s, ETA %.0f s\n", s->src->name,
                        st->schema, st->name, rows, bytes / 1e6, rate, (est - rows) / (rate > 0 ? rate : 1));
            else
                fprintf(stderr, "loch: %s %s.%s: %" PRId64 " rows, %.1f MB, %.0f rows/s%s\n", s->src->name, st->schema,
                        st->name, rows, bytes / 1e6, rate, end ? " (done)" : "");
            last = now;
        }
        if (end || rc) {
            if (!end) { /* drain the COPY so the connection stays usable */
                while ((n = PQgetCopyData(c, &line, 0)) > 0)
                    PQfreemem(line);
            }
            if (n == -2 && !rc)
                rc = loch_errf(err, LOCH_ESOURCE, "source %s: reading %s.%s failed: %s", s->src->name, st->schema,
                               st->name, PQerrorMessage(c));
            PGresult *fin;
            while ((fin = PQgetResult(c))) {
                if (PQresultStatus(fin) != PGRES_COMMAND_OK && !rc)
                    rc = q_fail(s, fin, arena_printf(a, "reading table %s.%s", st->schema, st->name), err);
                else
                    PQclear(fin);
            }
            break;
        }
    }
    if (f)
        fclose(f);
    unlink(path);
    buf_free(&sel);
    if (!rc && loaded != rows)
        rc = loch_errf(err, LOCH_EINTERNAL, "loading %s.%s: read %" PRId64 " rows but %" PRId64 " reached the lake",
                       st->schema, st->name, rows, loaded);
    arena_free(a);
    return rc;
}

/* ---- slot ---- */

struct slotinfo {
    bool exists, active;
    int active_pid;
};

static int slot_info(struct pgsrc *s, struct slotinfo *o, struct loch_err *err)
{
    struct buf b = {0};
    buf_puts(&b, "SELECT active, coalesce(active_pid, 0), plugin, database = current_database() "
                 "FROM pg_replication_slots WHERE slot_name = ");
    buf_sql_str(&b, s->slot);
    PGresult *r = NULL;
    int rc = query(s, s->sql, b.data, "looking up the replication slot", &r, err);
    buf_free(&b);
    if (rc)
        return rc;
    memset(o, 0, sizeof *o);
    if (PQntuples(r) == 1) {
        o->exists = true;
        o->active = PQgetvalue(r, 0, 0)[0] == 't';
        o->active_pid = atoi(PQgetvalue(r, 0, 1));
        if (strcmp(PQgetvalue(r, 0, 2), "pgoutput") || PQgetvalue(r, 0, 3)[0] != 't') {
            loch_errf(err, LOCH_ECONFLICT, "source %s: replication slot %s exists but is not a pgoutput slot of this "
                      "database", s->src->name, s->slot);
            PQclear(r);
            return loch_err_hint(err, "set another slot: name for the source in loch.yaml");
        }
    }
    PQclear(r);
    if (o->active) {
        loch_errf(err, LOCH_ECONFLICT, "source %s: replication slot %s is in use by process %d", s->src->name, s->slot,
                  o->active_pid);
        return loch_err_hint(err, "another loch replicate (or another consumer) reads this slot; stop it, or set "
                                  "slot: to another name in loch.yaml");
    }
    return 0;
}

static int drop_slot(struct pgsrc *s, struct loch_err *err)
{
    struct buf b = {0};
    buf_puts(&b, "SELECT pg_drop_replication_slot(");
    buf_sql_str(&b, s->slot);
    buf_puts(&b, ")");
    int rc = run(s, s->sql, b.data, "dropping a stale replication slot", err);
    buf_free(&b);
    return rc;
}

/* ---- parallel full load (cdc/load.h): readers COPY into chunk files ----
 *
 * LOAD_READERS connections import the slot's snapshot and take tables in turn; each COPY
 * is cut into CSV chunk files of LOAD_CHUNK bytes. A table with a primary key is read in
 * key ranges of CDC_LOAD_RANGE_ROWS rows, `key > previous bound ORDER BY key LIMIT n`
 * (an index range scan), its bound read from the last row the range gave. */
#define LOAD_READERS 2
#define LOAD_CHUNK (48LL << 20)

struct pgload_table {
    char *copy_sql;            /* whole table (no key) */
    char *select_list, *from, *key_list; /* key-ranged tables */
    size_t *key_col;           /* field of each key column in a COPY row */
    enum pg_conv *key_conv;
};

struct pgload {
    struct pgsrc *s;
    const char *snap;          /* NULL: resuming (the first run's snapshot is gone) */
};

static void key_literals(struct buf *b, PGconn *c, const struct cdc_load_table *lt, char *const *vals,
                         struct arena *a)
{
    const struct pgload_table *pt = lt->user;
    buf_puts(b, "(");
    for (size_t k = 0; k < lt->n_key; k++) {
        char *lit = PQescapeLiteral(c, vals[k], strlen(vals[k]));
        buf_printf(b, "%s%s", k ? ", " : "", lit ? pg_copy_literal(pt->key_conv[k], lit, a) : "NULL");
        PQfreemem(lit);
    }
    buf_puts(b, ")");
}

/* Splits one row of the CSV our COPYs produce (',' between fields, '"' around a field
 * that needs it with '""' inside, '\n' at the end) and returns field `want` unquoted,
 * malloc'd; NULL when the row has fewer fields or is malformed. */
static char *csv_field(const char *row, size_t len, size_t want)
{
    if (len && row[len - 1] == '\n')
        len--;
    size_t i = 0;
    for (size_t f = 0; i <= len; f++) {
        struct buf v = {0};
        if (i < len && row[i] == '"') {
            for (i++;; i++) {
                if (i >= len) {
                    buf_free(&v);
                    return NULL; /* unterminated quote */
                }
                if (row[i] == '"') {
                    if (i + 1 < len && row[i + 1] == '"')
                        i++;
                    else
                        break;
                }
                buf_putc(&v, row[i]);
            }
            i++; /* the closing quote */
            if (i < len && row[i] != ',') {
                buf_free(&v);
                return NULL;
            }
        } else {
            while (i < len && row[i] != ',')
                buf_putc(&v, row[i++]);
        }
        if (f == want)
            return buf_take(&v);
        buf_free(&v);
        i++; /* the comma */
    }
    return NULL;
}

/* Runs one COPY into chunk files of LOAD_CHUNK bytes. keyed: the COPY is one key range
 * of at most CDC_LOAD_RANGE_ROWS rows in key order; its last chunk carries the range's
 * bound (the last row's key, or "done" when the range was short), and *next gets the key
 * texts to continue after (NULL when done; caller frees). Else the last chunk ends the
 * table. */
static int copy_chunks(struct pgsrc *s, struct cdc_load *L, PGconn *c, size_t ti, const char *copy_sql,
                       bool keyed, char ***next, struct loch_err *err)
{
    const struct cdc_load_table *lt = cdc_load_table(L, ti);
    const struct pgload_table *pt = lt->user;
    PGresult *r = PQexec(c, copy_sql);
    if (PQresultStatus(r) != PGRES_COPY_OUT)
        return q_fail(s, r, "reading a table for the full load", err);
    PQclear(r);
    int rc = 0;
    char *fbuf = xmalloc(1 << 20); /* every chunk file's stdio buffer (closed before it is freed) */
    char *path = cdc_load_chunk_path(L);
    FILE *f = fopen(path, "w");
    if (!f)
        rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
    else
        setvbuf(f, fbuf, _IOFBF, 1 << 20);
    int64_t chunk = 0, rows = 0, total = 0, unreported = 0, unreported_bytes = 0;
    char *line, *last = NULL; /* last: the previous row, still to be freed */
    int n, last_n = 0;
    while ((n = PQgetCopyData(c, &line, 0)) > 0) {
        if (!rc && fwrite_unlocked(line, 1, (size_t)n, f) != (size_t)n) /* this thread's file */
            rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
        if (last)
            PQfreemem(last);
        last = line;
        last_n = n;
        chunk += n;
        rows++;
        total++;
        unreported++;
        unreported_bytes += n;
        if (unreported == 4096) {
            cdc_load_count(L, ti, unreported, unreported_bytes);
            unreported = unreported_bytes = 0;
        }
        if (!rc && chunk >= LOAD_CHUNK) {
            if (fclose(f))
                rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
            f = NULL;
            if (!rc && !cdc_load_push(L, ti, path, rows, false, NULL))
                rc = LOCH_ECANCELED;
            path = NULL;
            chunk = rows = 0;
            if (!rc) {
                path = cdc_load_chunk_path(L);
                if (!(f = fopen(path, "w")))
                    rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
                else
                    setvbuf(f, fbuf, _IOFBF, 1 << 20);
            }
        }
        if (rc || ((total & 4095) == 0 && cdc_load_aborted(L))) {
            PQrequestCancel(c);
            if (!rc)
                rc = LOCH_ECANCELED;
        }
    }
    cdc_load_count(L, ti, unreported, unreported_bytes);
    if (n == -2 && !rc)
        rc = loch_errf(err, LOCH_ESOURCE, "source %s: reading %s.%s failed: %s", s->src->name, lt->schema, lt->name,
                       PQerrorMessage(c));
    while ((r = PQgetResult(c))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && !rc)
            rc = q_fail(s, r, "reading a table for the full load", err);
        else
            PQclear(r);
    }
    if (f && fclose(f) && !rc)
        rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
    free(fbuf);
    /* the range's bound: the key of its last row, unless it was the table's last range */
    char *bound = NULL;
    bool done = !keyed || total < CDC_LOAD_RANGE_ROWS;
    if (!rc && !done) {
        char **key = xcalloc(lt->n_key, sizeof *key);
        for (size_t k = 0; k < lt->n_key && !rc; k++)
            if (!(key[k] = csv_field(last, (size_t)last_n, pt->key_col[k])))
                rc = loch_errf(err, LOCH_EPROTO, "source %s: %s.%s: cannot read the key of the last row of a "
                               "full-load range", s->src->name, lt->schema, lt->name);
        if (!rc) {
            bound = cdc_load_bound(key, lt->n_key);
            *next = key;
        } else {
            cdc_load_key_free(key, lt->n_key);
        }
    } else if (!rc) {
        bound = xstrdup("\"done\"");
    }
    if (last)
        PQfreemem(last);
    if (rc) {
        if (path)
            unlink(path);
        free(path);
        free(bound);
    } else if (!cdc_load_push(L, ti, path, rows, done, bound)) {
        rc = LOCH_ECANCELED;
    }
    if (rc && next && *next) {
        cdc_load_key_free(*next, lt->n_key);
        *next = NULL;
    }
    return rc;
}

static int read_keyed(struct pgsrc *s, struct cdc_load *L, PGconn *c, size_t ti, struct loch_err *err)
{
    const struct cdc_load_table *lt = cdc_load_table(L, ti);
    const struct pgload_table *pt = lt->user;
    struct arena *a = arena_new(); /* lifetime: one range */
    char **after = cdc_load_key_copy(lt->after, lt->n_key);
    int rc = 0;
    for (;;) {
        struct buf q = {0};
        buf_printf(&q, "COPY (SELECT %s FROM %s", pt->select_list, pt->from);
        if (after) {
            buf_printf(&q, " WHERE (%s) > ", pt->key_list);
            key_literals(&q, c, lt, after, a);
        }
        buf_printf(&q, " ORDER BY %s LIMIT %d) TO STDOUT (FORMAT csv)", pt->key_list, CDC_LOAD_RANGE_ROWS);
        cdc_load_key_free(after, lt->n_key);
        after = NULL;
        rc = copy_chunks(s, L, c, ti, q.data, true, &after, err);
        buf_free(&q);
        arena_reset(a);
        if (rc || !after)
            break;
    }
    cdc_load_key_free(after, lt->n_key);
    arena_free(a);
    return rc;
}

static int pg_reader(void *ctx, struct cdc_load *L, int k, struct loch_err *err)
{
    (void)k;
    struct pgload *pl = ctx;
    struct pgsrc *s = pl->s;
    PGconn *c = NULL;
    int rc = connect_pg(s, false, &c, err);
    if (!rc)
        rc = run(s, c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "starting the snapshot transaction", err);
    if (!rc && pl->snap) {
        struct buf b = {0};
        buf_puts(&b, "SET TRANSACTION SNAPSHOT ");
        buf_sql_str(&b, pl->snap);
        rc = run(s, c, b.data, "importing the slot's snapshot", err);
        buf_free(&b);
    }
    size_t ti;
    while (!rc && (ti = cdc_load_next(L, k)) != SIZE_MAX) {
        const struct cdc_load_table *lt = cdc_load_table(L, ti);
        const struct pgload_table *pt = lt->user;
        rc = lt->n_key ? read_keyed(s, L, c, ti, err) : copy_chunks(s, L, c, ti, pt->copy_sql, false, NULL, err);
    }
    if (c)
        PQfinish(c);
    return rc;
}

/* The load of every table; snap NULL: a resumed load (the first run's snapshot is gone):
 * tables done before are skipped, key-ranged ones continue after their last committed
 * range; the stream, which starts at the first run's consistent point, brings every row
 * read later up to date. *lt_out (in a) describes the tables for cdc_load_forget. */
static int parallel_load(struct pgsrc *s, const char *snap, struct srctab *t, size_t n, struct arena *a,
                         struct cdc_load_table **lt_out, struct loch_err *err)
{
    struct cdc_load_table *lts = arena_alloc(a, (n + 1) * sizeof *lts);
    *lt_out = lts;
    int rc = 0;
    /* describe and declare every table first (catalog look-ups run on the main connection) */
    for (size_t i = 0; i < n && !rc; i++) {
        struct cdc_load_table *lt = &lts[i];
        struct pgload_table *pt = arena_alloc(a, sizeof *pt);
        struct cdc_table *ct = arena_alloc(a, sizeof *ct);
        enum pg_conv *conv;
        rc = describe(s, &t[i], a, ct, &conv, err);
        if (!rc)
            rc = cdc_applier_table(s->ap, ct, err);
        if (rc)
            break;
        lt->schema = t[i].schema;
        lt->name = t[i].name;
        lt->t = ct;
        lt->user = pt;
        lt->est = -1;
        struct buf q = {0}, k = {0};
        pt->key_col = arena_alloc(a, (ct->n_columns + 1) * sizeof *pt->key_col);
        pt->key_conv = arena_alloc(a, (ct->n_columns + 1) * sizeof *pt->key_conv);
        for (size_t c = 0; c < ct->n_columns; c++) {
            buf_printf(&q, "%s%s", c ? ", " : "", pg_copy_expr(conv[c], qid(a, ct->columns[c].name), a));
            if (ct->has_key && ct->columns[c].key) {
                buf_printf(&k, "%s%s", lt->n_key ? ", " : "", qid(a, ct->columns[c].name));
                pt->key_col[lt->n_key] = c;
                pt->key_conv[lt->n_key] = conv[c];
                lt->n_key++;
            }
        }
        pt->select_list = arena_strdup(a, q.data);
        pt->key_list = arena_strdup(a, k.data ? k.data : "");
        pt->from = arena_printf(a, "ONLY %s.%s", qid(a, t[i].schema), qid(a, t[i].name));
        pt->copy_sql = arena_printf(a, "COPY (SELECT %s FROM %s) TO STDOUT (FORMAT csv)", pt->select_list, pt->from);
        buf_free(&q);
        buf_free(&k);
        char est[256];
        snprintf(est, sizeof est, "SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = %u", t[i].oid);
        PGresult *r = PQexec(s->sql, est);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            lt->est = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    if (rc)
        return rc;
    struct pgload pl = {s, snap};
    return cdc_load_run(s->r, s->ap, lts, n, snap == NULL, LOAD_READERS, pg_reader, &pl, err);
}

/* ---- initial sync: slot with exported snapshot, then every table ---- */

/* The last loaded files and the stream's start position become durable together; the
 * load's progress keys go. */
static int finish_load(struct pgsrc *s, const struct cdc_load_table *lt, size_t n, const char *cp,
                       const char *load_kv, struct loch_err *err)
{
    struct arena *a = arena_new(); /* lifetime: this call */
    cdc_applier_set_kv(s->ap, arena_printf(a, "cdc.%s.checkpoint", s->src->name), cp);
    cdc_applier_set_kv(s->ap, load_kv, NULL);
    cdc_load_forget(s->ap, s->src->name, lt, n);
    int rc = cdc_applier_flush(s->ap, NULL, NULL, err);
    arena_free(a);
    if (!rc) {
        pgoutput_lsn_parse(cp, &s->resume_lsn);
        s->flushed_lsn = s->resume_lsn;
    }
    return rc;
}

static int initial_sync(struct pgsrc *s, struct srctab *t, size_t n, struct loch_err *err)
{
    struct slotinfo si;
    int rc = slot_info(s, &si, err);
    char *load_kv = arena_printf(s->arena, "cdc.%s.load", s->src->name), *resume_cp = NULL;
    struct loch_err e2;
    if (!rc && catalog_get_kv(s->r->cat, load_kv, s->arena, &resume_cp, &e2) == 0 && resume_cp) {
        if (!si.exists) {
            loch_errf(err, LOCH_ECONFIG, "source %s: an interrupted full load cannot continue: slot %s is gone",
                      s->src->name, s->slot);
            return loch_err_hint(err, "drop the source's lake tables and delete the loch_kv keys cdc.%s.* to load "
                                      "again from scratch", s->src->name);
        }
        log_info("source %s: continuing the interrupted full load (stream from %s)", s->src->name, resume_cp);
        struct arena *a = arena_new(); /* lifetime: the load */
        struct cdc_load_table *lt = NULL;
        rc = parallel_load(s, NULL, t, n, a, &lt, err);
        if (!rc)
            rc = finish_load(s, lt, n, resume_cp, load_kv, err);
        arena_free(a);
        return rc;
    }
    if (!rc && si.exists) {
        log_info("source %s: slot %s exists without a lake checkpoint (an unfinished full load); re-creating it",
                 s->src->name, s->slot);
        rc = drop_slot(s, err);
    }
    if (rc)
        return rc;
    char *sql = arena_printf(s->arena, "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput EXPORT_SNAPSHOT",
                             qid(s->arena, s->slot));
    PGresult *r = PQexec(s->repl, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        return q_fail(s, r, "creating the replication slot", err);
    char *cp = arena_strdup(s->arena, PQgetvalue(r, 0, 1));
    char *snap = arena_strdup(s->arena, PQgetvalue(r, 0, 2));
    PQclear(r);
    log_info("source %s: created slot %s at %s; full load from snapshot %s", s->src->name, s->slot, cp, snap);
    /* From here a restart continues this load (with this slot) instead of starting over. */
    struct catalog_kv kv = {load_kv, cp};
    rc = catalog_commit(s->r->cat, NULL, 0, &kv, 1, err);
    struct arena *a = arena_new(); /* lifetime: the load */
    struct cdc_load_table *lt = NULL;
    if (!rc)
        rc = parallel_load(s, snap, t, n, a, &lt, err);
    if (!rc)
        rc = finish_load(s, lt, n, cp, load_kv, err);
    arena_free(a);
    return rc;
}

/* ---- tables that appear or go while replicating ---- */

static bool lake_has(struct pgsrc *s, const struct srctab *t, struct arena *a)
{
    struct catalog_table ct;
    struct loch_err e;
    return catalog_load_table(s->r->cat, arena_printf(a, "%s.%s", s->src->name, t->schema), t->name, a, &ct, &e) == 0;
}

static void remember(struct pgsrc *s, struct srctab *t, size_t n)
{
    s->known = arena_alloc(s->arena, (n + 1) * sizeof *s->known);
    for (size_t i = 0; i < n; i++)
        s->known[i] = arena_printf(s->arena, "%s.%s", t[i].schema, t[i].name);
    s->n_known = n;
}

/* Loads the selected tables the lake does not have yet (created at the source since the
 * last run, or while this one runs): they are published first, so every change after
 * that reaches the stream; the copy is staged at the current stream position and the
 * changes replayed over it converge to the source (inserts replace rows of the same key).
 * Tables that left the source are forgotten. */
static int sync_tables(struct pgsrc *s, struct srctab *t, size_t n, struct loch_err *err)
{
    struct arena *a = arena_new();
    int rc = 0;
    bool any_new = false;
    for (size_t i = 0; i < n && !any_new; i++)
        any_new = !lake_has(s, &t[i], a);
    if (any_new)
        rc = setup_publications(s, t, n, err);
    for (size_t i = 0; i < n && !rc; i++) {
        if (lake_has(s, &t[i], a))
            continue;
        log_info("source %s: new table %s.%s: loading it", s->src->name, t[i].schema, t[i].name);
        rc = load_table(s, s->sql, &t[i], err);
        if (!t[i].has_key && !rc)
            log_warn("source %s: %s.%s has no key: rows inserted while it was being copied may appear twice",
                     s->src->name, t[i].schema, t[i].name);
    }
    for (size_t k = 0; k < s->n_known && !rc; k++) {
        bool still = false;
        for (size_t i = 0; i < n && !still; i++)
            still = !strcmp(s->known[k], arena_printf(a, "%s.%s", t[i].schema, t[i].name));
        if (still)
            continue;
        char *dot = strchr(s->known[k], '.');
        char *sch = arena_strndup(a, s->known[k], (size_t)(dot - s->known[k]));
        log_info("source %s: table %s is gone from the source (or the selection)", s->src->name, s->known[k]);
        rc = cdc_applier_drop_table(s->ap, sch, dot + 1, err);
    }
    if (!rc)
        remember(s, t, n);
    arena_free(a);
    return rc;
}

static int poll_tables(struct pgsrc *s, struct loch_err *err)
{
    struct arena *a = arena_new();
    struct srctab *t;
    size_t n;
    int rc = list_tables(s, a, &t, &n, err);
    if (!rc)
        rc = sync_tables(s, t, n, err);
    arena_free(a);
    s->last_poll_ms = mono_ms();
    return rc;
}

/* ---- streaming ---- */

static int send_status(struct pgsrc *s, bool reply, struct loch_err *err)
{
    uint8_t msg[34];
    int64_t now = util_now_us() - PGO_EPOCH_OFFSET_US;
    pgoutput_status_update(msg, s->flushed_lsn, s->flushed_lsn, s->flushed_lsn, now, reply);
    if (PQputCopyData(s->repl, (const char *)msg, sizeof msg) != 1 || PQflush(s->repl) != 0)
        return loch_errf(err, LOCH_ESOURCE, "source %s: cannot send a status update: %s", s->src->name,
                         PQerrorMessage(s->repl));
    s->last_status_ms = mono_ms();
    return 0;
}

/* A checkpoint the applier made durable: the slot may move there. */
static int durable(struct pgsrc *s, const char *ck, struct loch_err *err)
{
    uint64_t lsn;
    if (!ck || !pgoutput_lsn_parse(ck, &lsn))
        return 0;
    if (lsn > s->flushed_lsn)
        s->flushed_lsn = lsn;
    return send_status(s, false, err);
}

/* Flushes and waits (stop, catch-up target, shape changes, full load). */
static int flush(struct pgsrc *s, struct loch_err *err)
{
    struct arena *a = arena_new();
    char *ck = NULL;
    int rc = cdc_applier_flush(s->ap, a, &ck, err);
    if (!rc)
        rc = durable(s, ck, err);
    arena_free(a);
    return rc;
}

/* Acknowledges what a flush thread made durable since the last look. */
static int poll_flush(struct pgsrc *s, struct loch_err *err)
{
    if (!cdc_applier_pending(s->ap))
        return 0;
    char *ck = NULL;
    int rc = cdc_applier_flush_poll(s->ap, s->msg, &ck, err);
    if (!rc)
        rc = durable(s, ck, err);
    return rc;
}

static struct prel *find_rel(struct pgsrc *s, uint32_t relid)
{
    for (size_t i = 0; i < s->n_rels; i++)
        if (s->rels[i].relid == relid)
            return &s->rels[i];
    return NULL;
}

static int on_relation(struct pgsrc *s, const struct pgo_msg *m, struct loch_err *err)
{
    struct prel *p = find_rel(s, m->u.rel.relid);
    if (!p) {
        if (s->n_rels == s->cap_rels) {
            s->cap_rels = s->cap_rels ? 2 * s->cap_rels : 32;
            s->rels = xrealloc(s->rels, s->cap_rels * sizeof *s->rels);
        }
        p = &s->rels[s->n_rels++];
        memset(p, 0, sizeof *p);
        p->relid = m->u.rel.relid;
    }
    struct arena *a = s->arena;
    struct cdc_table t = {0};
    t.source = s->src->name;
    t.schema = arena_strdup(a, m->u.rel.nspname);
    t.name = arena_strdup(a, m->u.rel.relname);
    t.n_columns = m->u.rel.ncols;
    t.columns = arena_alloc(a, (t.n_columns + 1) * sizeof *t.columns);
    enum pg_conv *conv = arena_alloc(a, (t.n_columns + 1) * sizeof *conv);
    char replident = m->u.rel.replident;
    bool any_key = false;
    for (size_t i = 0; i < t.n_columns; i++)
        any_key |= (m->u.rel.cols[i].flags & 1) != 0;
    t.has_key = any_key && (replident == 'd' || replident == 'i');
    t.full_identity = replident == 'f';
    t.insert_only = !t.has_key && !t.full_identity;
    char *full = arena_printf(a, "%s.%s", t.schema, t.name);
    for (size_t i = 0; i < t.n_columns; i++) {
        struct pg_coltype ct;
        int rc = pg_type_map(s->sql, m->u.rel.cols[i].type_oid, m->u.rel.cols[i].typmod, full, m->u.rel.cols[i].name,
                             a, &ct, err);
        if (rc)
            return rc;
        t.columns[i].name = arena_strdup(a, m->u.rel.cols[i].name);
        t.columns[i].type = ct.type;
        t.columns[i].source_type = ct.type_name;
        t.columns[i].nullable = true;
        t.columns[i].key = t.has_key && (m->u.rel.cols[i].flags & 1);
        conv[i] = ct.conv;
    }
    int rc = 0;
    /* A rename keeps the column's place: one name differs at one position, same type. */
    if (p->declared && (strcmp(p->t.schema, t.schema) || strcmp(p->t.name, t.name))) {
        log_warn("source %s: table %s.%s is now %s; continuing it as a new lake table", s->src->name, p->t.schema,
                 p->t.name, full);
        rc = cdc_applier_drop_table(s->ap, p->t.schema, p->t.name, err);
        p->declared = false;
    } else if (p->declared && p->t.n_columns == t.n_columns) {
        size_t diff = 0, at = 0;
        for (size_t i = 0; i < t.n_columns; i++)
            if (strcmp(p->t.columns[i].name, t.columns[i].name)) {
                diff++;
                at = i;
            }
        if (diff == 1 && iceberg_type_equal(&p->t.columns[at].type, &t.columns[at].type)) {
            bool clash = false;
            for (size_t i = 0; i < p->t.n_columns; i++)
                clash |= !strcmp(p->t.columns[i].name, t.columns[at].name);
            if (!clash) {
                log_info("source %s: %s column %s renamed to %s", s->src->name, full, p->t.columns[at].name,
                         t.columns[at].name);
                rc = cdc_applier_rename_column(s->ap, t.schema, t.name, p->t.columns[at].name, t.columns[at].name, err);
            }
        }
    }
    if (!rc)
        rc = cdc_applier_table(s->ap, &t, err);
    if (!rc) {
        p->t = t;
        p->conv = conv;
        p->declared = true;
    }
    return rc;
}

static struct cdc_value *values(struct pgsrc *s, struct prel *p, const struct pgo_tuple *tu, bool key_only,
                                struct loch_err *err)
{
    if (tu->n != p->t.n_columns) {
        loch_errf(err, LOCH_EPROTO, "source %s: a row of %s.%s has %zu columns, its relation %zu", s->src->name,
                  p->t.schema, p->t.name, tu->n, p->t.n_columns);
        return NULL;
    }
    struct cdc_value *v = arena_alloc(s->msg, (tu->n + 1) * sizeof *v);
    for (size_t i = 0; i < tu->n; i++) {
        const struct pgo_col *c = &tu->cols[i];
        if (key_only && !p->t.columns[i].key) {
            v[i].unchanged = true;
        } else if (c->kind == 'u') {
            v[i].unchanged = true;
        } else if (c->kind == 't') {
            v[i].text = pg_value_canon(p->conv[i], c->data, c->len, s->msg, &v[i].len);
        } else if (c->kind == 'b') {
            loch_errf(err, LOCH_EPROTO, "source %s: binary value in %s.%s (binary mode is not requested)",
                      s->src->name, p->t.schema, p->t.name);
            return NULL;
        }
    }
    return v;
}

static int on_message(struct pgsrc *s, const uint8_t *data, size_t len, struct loch_err *err)
{
    struct pgo_msg m;
    int rc = pgoutput_decode(data, len, s->msg, &m, err);
    if (rc)
        return rc;
    switch (m.kind) {
    case PGO_BEGIN: {
        s->in_txn = true;
        s->txn_commit_lsn = m.u.begin.final_lsn;
        s->skip_txn = m.u.begin.final_lsn < s->resume_lsn;
        if (s->skip_txn)
            return 0;
        char xid[24];
        util_u64_dec(xid, m.u.begin.xid);
        return cdc_applier_begin(s->ap, xid, m.u.begin.commit_ts + PGO_EPOCH_OFFSET_US, err);
    }
    case PGO_COMMIT: {
        s->in_txn = false;
        if (s->skip_txn) {
            s->skip_txn = false;
            return 0;
        }
        char pos[32], ck[32];
        util_u64_dec(pos, m.u.commit.commit_lsn);
        pgoutput_lsn_format(m.u.commit.end_lsn, ck, sizeof ck);
        s->last_end = m.u.commit.end_lsn;
        return cdc_applier_commit(s->ap, pos, ck, err);
    }
    case PGO_RELATION:
        return on_relation(s, &m, err);
    case PGO_INSERT: case PGO_UPDATE: case PGO_DELETE: {
        if (s->skip_txn)
            return 0;
        struct prel *p = find_rel(s, m.u.dml.relid);
        if (!p || !p->declared)
            return loch_errf(err, LOCH_EPROTO, "source %s: change for relation %u before its Relation message",
                             s->src->name, m.u.dml.relid);
        struct cdc_change c = {.op = (enum cdc_op)m.kind, .table = &p->t};
        if (m.kind != PGO_DELETE && !(c.after = values(s, p, &m.u.dml.new, false, err)))
            return err->code;
        if (m.u.dml.old_kind && !(c.before = values(s, p, &m.u.dml.old, m.u.dml.old_kind == 'K', err)))
            return err->code;
        return cdc_applier_change(s->ap, &c, err);
    }
    case PGO_TRUNCATE:
        if (s->skip_txn)
            return 0;
        for (size_t i = 0; i < m.u.trunc.nrels; i++) {
            struct prel *p = find_rel(s, m.u.trunc.relids[i]);
            if (!p || !p->declared)
                continue;
            struct cdc_change c = {.op = CDC_TRUNCATE, .table = &p->t};
            if ((rc = cdc_applier_change(s->ap, &c, err)))
                return rc;
        }
        return 0;
    default: /* Origin, Type (types are looked up by OID), Message */
        return 0;
    }
}

static bool caught_up(struct pgsrc *s)
{
    if (!s->catchup_target || s->in_txn || cdc_applier_pending(s->ap))
        return false;
    return s->flushed_lsn >= s->catchup_target || s->server_end >= s->catchup_target;
}

/* Batch size while catching up: big enough that a flush's fixed costs stay small, small
 * enough that flushing overlaps receiving. And the smallest batch flushed at once when
 * the flush thread is idle (the flush thread then never waits for a full batch). */
#define CATCH_UP_FLUSH_CHANGES 200000
#define MIN_FLUSH_CHANGES 50000

/* Longest wait for more of the stream before taking what has arrived (a bound on the
 * latency the 64 KB receive low-water mark adds). */
#define STREAM_WAIT_MS 20

/* Streams until stopped, caught up, or an error. */
static int stream(struct pgsrc *s, struct loch_err *err)
{
    char lsn[32];
    pgoutput_lsn_format(s->resume_lsn, lsn, sizeof lsn);
    char *cmd = arena_printf(s->arena,
                             "START_REPLICATION SLOT %s LOGICAL %s (proto_version '1', publication_names '%s,%s')",
                             qid(s->arena, s->slot), lsn, s->pub, s->pub_ins);
    PGresult *r = PQexec(s->repl, cmd);
    if (PQresultStatus(r) != PGRES_COPY_BOTH) {
        int rc = q_fail(s, r, "starting replication", err);
        if (strstr(err->msg, "is active for PID"))
            loch_err_hint(err, "another consumer reads slot %s; stop it or set slot: to another name", s->slot);
        return rc == LOCH_ESOURCE && strstr(err->msg, "is active") ? LOCH_ECONFLICT : rc;
    }
    PQclear(r);
    log_info("source %s: streaming from %s", s->src->name, lsn);
    /* The walsender sends every message on its own. Waking for each costs both sides
     * more than the decoding (measured: a TPC-B backlog streamed 2.3x faster, walsender
     * CPU down 60%): wake when 64 KB are waiting, or after STREAM_WAIT_MS whatever came. */
    int lowat = 64 * 1024;
    if (setsockopt(PQsocket(s->repl), SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat))
        log_debug("source %s: SO_RCVLOWAT: %s", s->src->name, strerror(errno));
    int rc = 0;
    bool asked = false;
    while (!rc) {
        char *buf = NULL;
        int n = PQgetCopyData(s->repl, &buf, 1);
        if (n > 0) {
            struct pgo_frame f;
            rc = pgoutput_decode_frame((const uint8_t *)buf, (size_t)n, &f, err);
            if (!rc && f.kind == 'w') {
                rc = on_message(s, f.payload, f.payload_len, err);
                arena_reset(s->msg);
            } else if (!rc && f.kind == 'k') {
                if (f.wal_end > s->server_end)
                    s->server_end = f.wal_end;
                asked = false;
                /* Idle (nothing staged, no open transaction): everything the server sent up
                 * to wal_end is in the lake, so the slot may move there (no WAL pinned by
                 * writes to tables we do not replicate). */
                if (!s->in_txn && !cdc_applier_pending(s->ap) && s->server_end > s->flushed_lsn)
                    s->flushed_lsn = s->server_end;
                if (f.reply_requested)
                    rc = send_status(s, false, err);
            }
            PQfreemem(buf);
            if (!rc && !s->in_txn && cdc_applier_flush_due(s->ap))
                rc = cdc_applier_flush_start(s->ap, err); /* receiving goes on meanwhile */
            if (!rc && !s->in_txn)
                rc = poll_flush(s, err);
            continue;
        }
        if (n == -2 || n == -1) {
            rc = loch_errf(err, LOCH_ESOURCE, "source %s: replication stream ended: %s", s->src->name,
                           PQerrorMessage(s->repl));
            break;
        }
        /* no data right now: flush when due, when stopping, or when catching up and
         * everything up to the target has arrived */
        bool at_target = s->catchup_target && (s->last_end >= s->catchup_target || s->server_end >= s->catchup_target);
        if (!s->in_txn && cdc_applier_pending(s->ap)) {
            if (stopping(s) || at_target)
                rc = flush(s, err);
            else if (cdc_applier_flush_due(s->ap))
                rc = cdc_applier_flush_start(s->ap, err);
            if (!rc)
                rc = poll_flush(s, err);
        }
        if (rc)
            break;
        if (stopping(s) && !s->in_txn)
            break;
        if (caught_up(s)) {
            log_debug("source %s: caught up (flushed %" PRIX64 ", server %" PRIX64 ", target %" PRIX64 ")",
                      s->src->name, s->flushed_lsn, s->server_end, s->catchup_target);
            break;
        }
        int64_t now = mono_ms();
        if (!s->in_txn && now - s->last_poll_ms >= 5000 && (rc = poll_tables(s, err)))
            break;
        if (now - s->last_status_ms >= 10000 || (s->catchup_target && !asked && !s->in_txn)) {
            /* ask for a keepalive: its wal_end tells whether we are caught up */
            rc = send_status(s, s->catchup_target != 0, err);
            asked = true;
            if (rc)
                break;
        }
        /* poll, not select: in `loch serve` this socket can be above FD_SETSIZE (1024),
         * where FD_SET would write past the fd_set */
        struct pollfd pf = {PQsocket(s->repl), POLLIN, 0};
        if (poll(&pf, 1, STREAM_WAIT_MS) < 0 && errno != EINTR) {
            rc = loch_errf(err, LOCH_ESOURCE, "source %s: waiting for the stream: %s", s->src->name, strerror(errno));
            break;
        }
        if (PQconsumeInput(s->repl) != 1) {
            rc = loch_errf(err, LOCH_ESOURCE, "source %s: replication connection lost: %s", s->src->name,
                           PQerrorMessage(s->repl));
            break;
        }
    }
    if (rc && s->in_txn) {
        cdc_applier_rollback(s->ap);
        s->in_txn = false;
    }
    /* whole transactions already received are kept */
    if (rc == LOCH_ESOURCE && cdc_applier_pending(s->ap)) {
        struct loch_err e2;
        loch_err_clear(&e2);
        if (flush(s, &e2))
            log_error("source %s: flushing before reconnect: %s", s->src->name, e2.msg);
    }
    if (!rc) {
        struct loch_err e2;
        send_status(s, false, &e2);
        PQputCopyEnd(s->repl, NULL);
    }
    return rc;
}

static void disconnect(struct pgsrc *s)
{
    PQfinish(s->repl);
    PQfinish(s->sql);
    s->repl = s->sql = NULL;
    s->n_rels = 0; /* Relation messages come again on the next session */
}

static int session(struct pgsrc *s, bool first, struct loch_err *err)
{
    int rc = connect_pg(s, false, &s->sql, err);
    if (!rc)
        rc = check_server(s, err);
    if (rc)
        return rc;
    if (first && s->r->catch_up) {
        PGresult *r = NULL;
        rc = query(s, s->sql, "SELECT pg_current_wal_insert_lsn()::text", "reading the WAL position", &r, err);
        if (rc)
            return rc;
        pgoutput_lsn_parse(PQgetvalue(r, 0, 0), &s->catchup_target);
        if (!s->catchup_target)
            s->catchup_target = 1;
        PQclear(r);
    }
    struct arena *a = arena_new();
    struct srctab *t;
    size_t n;
    rc = list_tables(s, a, &t, &n, err);
    if (!rc)
        rc = setup_publications(s, t, n, err);
    if (!rc)
        rc = connect_pg(s, true, &s->repl, err);
    char *ck = NULL;
    struct loch_err e2;
    bool have = !rc && cdc_applier_checkpoint(s->r->cat, s->src->name, a, &ck, &e2) == 0 && ck;
    if (!rc && !have) {
        rc = initial_sync(s, t, n, err);
        if (!rc)
            remember(s, t, n);
    } else if (!rc) {
        if (!pgoutput_lsn_parse(ck, &s->resume_lsn))
            rc = loch_errf(err, LOCH_ECORRUPT, "source %s: checkpoint \"%s\" is not an LSN", s->src->name, ck);
        if (s->resume_lsn > s->flushed_lsn)
            s->flushed_lsn = s->resume_lsn;
        struct slotinfo si;
        if (!rc)
            rc = slot_info(s, &si, err);
        if (!rc && !si.exists) {
            rc = loch_errf(err, LOCH_ESOURCE, "source %s: replication slot %s is gone; changes after %s are lost to it",
                           s->src->name, s->slot, ck);
            loch_err_hint(err, "to start over with a full load, drop the source's lake tables and delete the "
                               "checkpoint (loch_kv key cdc.%s.checkpoint)", s->src->name);
            rc = LOCH_ECONFIG; /* retrying cannot fix it */
        }
        /* Tables are declared by the stream's Relation messages, which describe them as
         * of each change (the catalog now may be ahead of the resume position); only
         * tables the lake lacks are loaded here. */
        if (!rc)
            rc = sync_tables(s, t, n, err);
    }
    arena_free(a);
    s->last_poll_ms = mono_ms();
    if (!rc)
        rc = stream(s, err);
    return rc;
}

int cdc_pg_run(struct cdc_run *r, struct loch_err *err)
{
    struct pgsrc s = {0};
    s.r = r;
    s.src = r->src;
    s.arena = arena_new();
    s.msg = arena_new();
    if (r->src->password_env) {
        s.password = getenv(r->src->password_env);
        if (!s.password) {
            arena_free(s.arena);
            arena_free(s.msg);
            loch_errf(err, LOCH_ECONFIG, "source %s: environment variable %s (password_env) is not set", r->src->name,
                      r->src->password_env);
            return loch_err_hint(err, "export %s=... before starting loch", r->src->password_env);
        }
    }
    char *base = ident_part(s.arena, r->src->name);
    s.slot = r->src->slot ? arena_strdup(s.arena, r->src->slot) : arena_printf(s.arena, "loch_%s", base);
    s.pub = r->src->publication ? arena_strdup(s.arena, r->src->publication) : arena_printf(s.arena, "loch_%s", base);
    s.pub_ins = arena_printf(s.arena, "%s_ins", s.pub);
    struct cdc_applier_options o = {
        .source = r->src->name,
        .state_dir = r->cfg->state_dir,
        .position_column = "_lsn",
        .position_type = {ICEBERG_LONG, 0, 0, 0},
        .flush_interval_ms = r->cfg->flush_interval_ms,
        .flush_min_changes = MIN_FLUSH_CHANGES,
    };
    /* Catching up is for throughput, not latency: flush by size (the flush thread writes
     * one batch while the next is received) and at the target. */
    if (r->catch_up) {
        o.flush_interval_ms = 3600 * 1000;
        o.flush_max_changes = CATCH_UP_FLUSH_CHANGES;
    }
    int rc = 0;
    int backoff_ms = 500;
    bool first = true;
    while (!stopping(&s)) {
        rc = cdc_applier_open(&o, r->cat, r->st, r->eng, &s.ap, err);
        if (rc)
            break;
        int64_t t0 = mono_ms();
        rc = session(&s, first, err);
        first = false;
        disconnect(&s);
        cdc_applier_close(s.ap);
        s.ap = NULL;
        if (!rc || rc != LOCH_ESOURCE)
            break;
        if (mono_ms() - t0 > 30000)
            backoff_ms = 500;
        log_warn("%s; reconnecting in %.1f s", err->msg, backoff_ms / 1000.0);
        for (int w = 0; w < backoff_ms / 100 && !stopping(&s); w++)
            usleep(100000);
        backoff_ms = backoff_ms * 2 > 30000 ? 30000 : backoff_ms * 2;
        loch_err_clear(err);
        rc = 0;
    }
    if (rc == LOCH_ECANCELED && stopping(&s))
        rc = 0;
    arena_free(s.msg);
    arena_free(s.arena);
    free(s.rels);
    return rc;
}

/* ---- validation: the source's rows, converted as replication converts them ---- */

static int copy_whole(struct pgsrc *s, const struct srctab *st, const struct cdc_table *t, const enum pg_conv *conv,
                      const char *path, struct loch_err *err)
{
    struct arena *a = arena_new();
    struct buf sql = {0};
    buf_puts(&sql, "COPY (SELECT ");
    for (size_t i = 0; i < t->n_columns; i++)
        buf_printf(&sql, "%s%s", i ? ", " : "", pg_copy_expr(conv[i], qid(a, t->columns[i].name), a));
    buf_printf(&sql, " FROM ONLY %s.%s) TO STDOUT (FORMAT csv)", qid(a, st->schema), qid(a, st->name));
    PGresult *r = PQexec(s->sql, sql.data);
    buf_free(&sql);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COPY_OUT) {
        rc = q_fail(s, r, arena_printf(a, "reading table %s.%s", st->schema, st->name), err);
        arena_free(a);
        return rc;
    }
    PQclear(r);
    FILE *f = fopen(path, "w");
    if (!f)
        rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
    char *line;
    int n;
    while ((n = PQgetCopyData(s->sql, &line, 0)) > 0) {
        if (f && !rc && fwrite(line, 1, (size_t)n, f) != (size_t)n)
            rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
        PQfreemem(line);
    }
    if (f && fclose(f) && !rc)
        rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
    if (n == -2 && !rc)
        rc = loch_errf(err, LOCH_ESOURCE, "source %s: reading %s.%s failed: %s", s->src->name, st->schema, st->name,
                       PQerrorMessage(s->sql));
    while ((r = PQgetResult(s->sql))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && !rc)
            rc = q_fail(s, r, "reading a table", err);
        else
            PQclear(r);
    }
    arena_free(a);
    return rc;
}

int cdc_pg_copy(struct cdc_run *r, struct engine_conn *conn, const char *only, struct arena *a,
                struct cdc_table_list *out, struct loch_err *err)
{
    struct pgsrc s = {0};
    s.r = r;
    s.src = r->src;
    s.arena = a;
    if (r->src->password_env)
        s.password = getenv(r->src->password_env);
    int rc = connect_pg(&s, false, &s.sql, err);
    struct srctab *t = NULL;
    size_t n = 0;
    if (!rc)
        rc = list_tables(&s, a, &t, &n, err);
    out->t = arena_alloc(a, (n + 1) * sizeof *out->t);
    out->n = 0;
    char *dir = arena_printf(a, "%s/spill", r->cfg->state_dir);
    if (!rc)
        rc = util_mkdirs(dir, err);
    bool found = !only;
    for (size_t i = 0; i < n && !rc; i++) {
        char *full = arena_printf(a, "%s.%s", t[i].schema, t[i].name);
        if (only && strcmp(only, full))
            continue;
        found = true;
        struct cdc_table *ct = &out->t[out->n];
        enum pg_conv *conv;
        rc = describe(&s, &t[i], a, ct, &conv, err);
        char *path = arena_printf(a, "%s/validate-%s-%zu.csv", dir, r->src->name, out->n);
        if (!rc)
            rc = copy_whole(&s, &t[i], ct, conv, path, err);
        if (!rc)
            rc = cdc_csv_to_temp_table(conn, arena_printf(a, "__src_%zu", out->n), ct, path, err);
        unlink(path);
        if (!rc)
            out->n++;
    }
    if (!rc && !found) {
        loch_errf(err, LOCH_ENOENT, "source %s has no replicated table %s", r->src->name, only);
        loch_err_hint(err, "name it as SCHEMA.TABLE, as the source spells it; it must match tables: and not exclude:");
        rc = LOCH_ENOENT;
    }
    PQfinish(s.sql);
    return rc;
}
