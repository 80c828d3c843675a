/* checks.c: what the PostgreSQL source must be and have: server settings and privileges,
 * the selected tables and their columns, the two publications and the replication slot.
 * Not for reading rows (load.c, stream.c). */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "cdc/pg/pg_int.h"

/* ---- checks ---- */

int pgsrc_check_server(struct pgsrc *s, struct loch_err *err)
{
    PGresult *r = NULL;
    int rc = pgsrc_query(s, s->sql,
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

int pgsrc_list_tables(struct pgsrc *s, struct arena *a, struct srctab **out, size_t *n_out, struct loch_err *err)
{
    PGresult *r = NULL;
    int rc = pgsrc_query(s, s->sql,
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
int pgsrc_describe(struct pgsrc *s, const struct srctab *st, struct arena *a, struct cdc_table *t,
                   enum pgsrc_conv **conv, struct loch_err *err)
{
    char q[1024];
    snprintf(q, sizeof q,
             "SELECT a.attname, a.atttypid, a.atttypmod, a.attnotnull, EXISTS (SELECT 1 FROM pg_index i WHERE "
             "i.indrelid = a.attrelid AND a.attnum = ANY (i.indkey) AND ((c.relreplident = 'd' AND i.indisprimary) "
             "OR (c.relreplident = 'i' AND i.indisreplident))) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
             "WHERE a.attrelid = %u AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
             st->oid);
    PGresult *r = NULL;
    int rc = pgsrc_query(s, s->sql, q, "describing a table", &r, err);
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
        struct pgsrc_coltype ct;
        c->name = arena_strdup(a, PQgetvalue(r, i, 0));
        rc = pgsrc_type_map(s->sql, (uint32_t)strtoul(PQgetvalue(r, i, 1), NULL, 10),
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
    int rc = pgsrc_query(s, s->sql, b.data, "looking up the publication", &r, err);
    buf_free(&b);
    if (rc)
        return rc;
    bool exists = atoi(PQgetvalue(r, 0, 0)) > 0;
    PQclear(r);
    if (!exists) {
        snprintf(q, sizeof q, "CREATE PUBLICATION %s WITH (publish = '%s')", arena_sql_ident(a, pub),
                 inserts_only ? "insert, truncate" : "insert, update, delete, truncate");
        if ((rc = pgsrc_exec(s, s->sql, q, "creating the publication", err))) {
            loch_err_hint(err, "the role needs CREATE on the database; or create publication %s yourself", pub);
            return rc;
        }
        log_info("source %s: created publication %s", s->src->name, pub);
    }
    buf_puts(&b, "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = ");
    buf_sql_str(&b, pub);
    rc = pgsrc_query(s, s->sql, b.data, "listing the publication's tables", &r, err);
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
        char *sql = arena_printf(a, "ALTER PUBLICATION %s ADD TABLE %s.%s", arena_sql_ident(a, pub),
                                 arena_sql_ident(a, t[i].schema), arena_sql_ident(a, t[i].name));
        if ((rc = pgsrc_exec(s, s->sql, sql, "adding a table to the publication", err)))
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
        char *sql = arena_printf(a, "ALTER PUBLICATION %s DROP TABLE %s.%s", arena_sql_ident(a, pub),
                                 arena_sql_ident(a, sch), arena_sql_ident(a, nm));
        rc = pgsrc_exec(s, s->sql, sql, "removing a table from the publication", err);
    }
    PQclear(r);
    return rc;
}

int pgsrc_setup_publications(struct pgsrc *s, struct srctab *t, size_t n, struct loch_err *err)
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
                     s->src->name, t[i].schema, t[i].name, arena_sql_ident(s->arena, t[i].schema),
                     arena_sql_ident(s->arena, t[i].name));
    }
    int rc = sync_publication(s, s->pub, false, t, n, err);
    if (!rc)
        rc = sync_publication(s, s->pub_ins, true, t, n, err);
    return rc;
}

/* ---- slot ---- */


int pgsrc_slot_info(struct pgsrc *s, struct slotinfo *o, struct loch_err *err)
{
    struct buf b = {0};
    buf_puts(&b, "SELECT active, coalesce(active_pid, 0), plugin, database = current_database() "
                 "FROM pg_replication_slots WHERE slot_name = ");
    buf_sql_str(&b, s->slot);
    PGresult *r = NULL;
    int rc = pgsrc_query(s, s->sql, b.data, "looking up the replication slot", &r, err);
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

int pgsrc_drop_slot(struct pgsrc *s, struct loch_err *err)
{
    struct buf b = {0};
    buf_puts(&b, "SELECT pg_drop_replication_slot(");
    buf_sql_str(&b, s->slot);
    buf_puts(&b, ")");
    int rc = pgsrc_exec(s, s->sql, b.data, "dropping a stale replication slot", err);
    buf_free(&b);
    return rc;
}
