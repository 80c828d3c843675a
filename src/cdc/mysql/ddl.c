/* ddl.c: what the MySQL/MariaDB source does with a DDL statement from the binlog: truncates,
 * drops, column and table renames and creates of followed tables reach the lake at the
 * event's position. Not for recognising statements (util.c) or other events (stream.c). */
#include <inttypes.h>
#include <string.h>

#include "base/log.h"
#include "cdc/mysql/mysql_int.h"

/* The lake's current shape of db.name (for a DROP or TRUNCATE of a table this run has
 * not declared yet, e.g. right after a restart); LOCH_ENOENT when the lake has no such
 * table. Columns, types and key come from the lake (cdc_applier_lake_table). */
static int lake_shape(struct mysrc *m, const char *db, const char *name, struct arena *a, struct cdc_table *t,
                      struct loch_err *err)
{
    int rc = cdc_applier_lake_table(m->ap, db, name, a, t, err);
    if (rc)
        return rc;
    if (!t->has_key && m->q) {
        /* the lake schema may have lost its identifier fields (a dropped column); the
         * source still knows its primary key */
        char edb[512], ename[512];
        mysql_real_escape_string(m->q, edb, db, (unsigned long)strlen(db));
        mysql_real_escape_string(m->q, ename, name, (unsigned long)strlen(name));
        char *sql = arena_printf(a, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='%s' "
                                    "AND TABLE_NAME='%s' AND COLUMN_KEY='PRI'", edb, ename);
        MYSQL_RES *res = NULL;
        if (mysql_real_query(m->q, sql, strlen(sql)) == 0 && (res = mysql_store_result(m->q))) {
            MYSQL_ROW row;
            while ((row = mysql_fetch_row(res)))
                for (size_t i = 0; i < t->n_columns; i++)
                    if (row[0] && !strcmp(row[0], t->columns[i].name)) {
                        t->columns[i].key = true;
                        t->has_key = true;
                    }
        }
        if (res)
            mysql_free_result(res);
    }
    t->full_identity = !t->has_key;
    return 0;
}

/* Shape s declared to the applier, from the lake when this run has not seen it yet.
 * *found false when the lake has no such table either (nothing to do). */
static int declare_known(struct mysrc *m, const char *db, const char *name, struct shape **out, bool *found,
                         struct loch_err *err)
{
    struct shape *s = mysrc_shape_find(m, db, name);
    *found = true;
    *out = s;
    if (s && s->declared)
        return 0;
    struct cdc_table t;
    int rc = lake_shape(m, db, name, m->tx, &t, err);
    if (rc == LOCH_ENOENT) {
        loch_err_clear(err);
        *found = false;
        return 0;
    }
    if (rc)
        return rc;
    s = mysrc_shape_get(m, db, name);
    *out = s;
    return mysrc_shape_declare(m, s, &t, err);
}

/* A one-change transaction emptying table s, at the current DDL event's position. */
static int commit_truncate(struct mysrc *m, struct shape *s, int64_t ts_us, struct loch_err *err)
{
    char *cp = mysrc_checkpoint_text(m, m->tx);
    char *position = m->gtid_positions ? m->gtid : arena_printf(m->tx, "%s:%" PRIu64, m->pos.file, m->pos.pos);
    int rc = cdc_applier_begin(m->ap, m->gtid[0] ? m->gtid : position, ts_us, err);
    struct cdc_change c = {.op = CDC_TRUNCATE, .table = &s->t};
    if (!rc)
        rc = cdc_applier_change(m->ap, &c, err);
    if (!rc)
        rc = cdc_applier_commit(m->ap, position, cp, err);
    else
        cdc_applier_rollback(m->ap);
    return rc;
}

static bool followed(struct mysrc *m, const char *db, const char *name)
{
    const struct loch_source *src = m->r->src;
    return mysrc_table_selected(db, name, src->tables, src->n_tables, src->exclude, src->n_exclude);
}

/* RENAME TABLE a TO b, c TO d, ... (and ALTER TABLE a RENAME TO b). The server applies the
 * pairs in order; the lake takes their net effect at once (a chain a -> b -> c is a -> c,
 * a swap through a temporary name is a <-> b), so a name vacated by one pair is free for
 * another. For each table, by its name before and after:
 *   followed -> followed      its lake tables are renamed (rows, snapshots, _changes kept),
 *                             with the DDL's position, in one catalog transaction
 *   followed -> not followed  its current state empties (a T change) and it is no longer
 *                             followed, as for DROP; history stays under the old name
 *   not followed -> followed  it starts empty in the lake (no row of it was ever read):
 *                             a warning says to re-snapshot for its earlier rows */
static int on_rename(struct mysrc *m, const struct mysrc_ddl *d, int64_t ts_us, struct loch_err *err)
{
    size_t np = d->n_tables / 2, n = 0;
    const char **odb = arena_alloc(m->tx, (np + 1) * sizeof *odb), **oname = arena_alloc(m->tx, (np + 1) * sizeof *oname);
    const char **ndb = arena_alloc(m->tx, (np + 1) * sizeof *ndb), **nname = arena_alloc(m->tx, (np + 1) * sizeof *nname);
    for (size_t i = 0; i < np; i++) {
        const char *fdb = d->dbs[2 * i], *fname = d->tables[2 * i];
        size_t k = 0;
        while (k < n && !(!strcmp(ndb[k], fdb) && !strcmp(nname[k], fname)))
            k++;
        if (k == n) {
            odb[n] = fdb;
            oname[n++] = fname;
        }
        ndb[k] = d->dbs[2 * i + 1];
        nname[k] = d->tables[2 * i + 1];
    }
    bool any = false;
    for (size_t k = 0; k < n; k++)
        any |= (followed(m, odb[k], oname[k]) || followed(m, ndb[k], nname[k])) &&
               (strcmp(odb[k], ndb[k]) || strcmp(oname[k], nname[k]));
    if (!any)
        return 0;
    /* what preceded the DDL becomes durable on its own, at its own position */
    int rc = cdc_applier_flush(m->ap, NULL, NULL, err);
    struct cdc_rename *ren = arena_alloc(m->tx, (n + 1) * sizeof *ren);
    struct shape **from = arena_alloc(m->tx, (n + 1) * sizeof *from);
    size_t n_ren = 0;
    for (size_t k = 0; k < n && !rc; k++) {
        bool f = followed(m, odb[k], oname[k]), t = followed(m, ndb[k], nname[k]);
        if (!strcmp(odb[k], ndb[k]) && !strcmp(oname[k], nname[k]))
            continue; /* renamed back within the statement */
        if (!f) {
            if (t)
                log_warn("mysql source %s: %s.%s (not followed) was renamed to %s.%s, which is: it starts empty in "
                         "the lake and gets the rows changed from now on (re-snapshot to load the others)",
                         m->r->src->name, odb[k], oname[k], ndb[k], nname[k]);
            continue;
        }
        struct shape *s;
        bool found;
        rc = declare_known(m, odb[k], oname[k], &s, &found, err);
        if (rc || !found)
            continue; /* never reached the lake: its rows arrive under the new name */
        if (t) {
            ren[n_ren] = (struct cdc_rename){odb[k], oname[k], ndb[k], nname[k]};
            from[n_ren++] = s;
            continue;
        }
        log_warn("mysql source %s: %s.%s was renamed to %s.%s, which is not followed: its current state empties "
                 "in the lake, its history stays under the old name", m->r->src->name, odb[k], oname[k], ndb[k],
                 nname[k]);
        rc = commit_truncate(m, s, ts_us, err);
        if (!rc)
            rc = cdc_applier_drop_table(m->ap, odb[k], oname[k], err);
        s->declared = false;
    }
    if (rc || n_ren == 0)
        return rc;
    rc = cdc_applier_rename_tables(m->ap, ren, n_ren, mysrc_checkpoint_text(m, m->tx), err);
    if (rc)
        return rc;
    /* the shapes follow: each new name has the old one's (declared under the new name),
     * copied first, as a swap's names are each other's */
    struct cdc_table *moved = arena_alloc(m->tx, n_ren * sizeof *moved);
    for (size_t i = 0; i < n_ren; i++) {
        moved[i] = from[i]->t;
        from[i]->declared = false;
    }
    for (size_t i = 0; i < n_ren; i++) {
        struct shape *s = mysrc_shape_get(m, ren[i].schema_to, ren[i].to);
        s->t = moved[i];
        s->t.schema = s->db;
        s->t.name = s->name;
        s->declared = true;
    }
    return 0;
}

int mysrc_on_ddl(struct mysrc *m, const char *db, const char *stmt, int64_t ts_us, struct loch_err *err)
{
    struct mysrc_ddl d;
    mysrc_ddl_parse(stmt, m->tx, &d);
    const struct loch_source *src = m->r->src;
    int rc = 0;
    for (size_t i = 0; i < d.n_tables; i++)
        if (!d.dbs[i])
            d.dbs[i] = db;
    switch (d.kind) {
    case MYSRC_DDL_TRUNCATE: {
        if (!mysrc_table_selected(d.dbs[0], d.tables[0], src->tables, src->n_tables, src->exclude,
                                  src->n_exclude))
            break;
        struct shape *s;
        bool found;
        rc = declare_known(m, d.dbs[0], d.tables[0], &s, &found, err);
        if (!rc && !found) { /* never loaded (created and truncated before any row): its shape now */
            struct cdc_table t;
            rc = mysrc_table_from_schema(m, m->q, d.dbs[0], d.tables[0], m->tx, &t, NULL, err);
            if (rc == LOCH_ENOENT) {
                loch_err_clear(err);
                rc = 0;
                break;
            }
            s = mysrc_shape_get(m, d.dbs[0], d.tables[0]);
            if (!rc)
                rc = mysrc_shape_declare(m, s, &t, err);
        }
        if (!rc)
            rc = commit_truncate(m, s, ts_us, err);
        break;
    }
    case MYSRC_DDL_DROP:
        /* the current state empties (a T change), history stays in earlier snapshots and
         * in _changes; a table created again under the name continues the lake tables */
        for (size_t i = 0; i < d.n_tables && !rc; i++) {
            struct shape *s;
            bool found;
            if (!mysrc_table_selected(d.dbs[i], d.tables[i], src->tables, src->n_tables, src->exclude,
                                      src->n_exclude))
                continue;
            rc = declare_known(m, d.dbs[i], d.tables[i], &s, &found, err);
            if (rc || !found)
                continue;
            rc = commit_truncate(m, s, ts_us, err);
            if (!rc)
                rc = cdc_applier_drop_table(m->ap, d.dbs[i], d.tables[i], err);
            s->declared = false;
        }
        break;
    case MYSRC_DDL_RENAME:
        rc = on_rename(m, &d, ts_us, err);
        break;
    case MYSRC_DDL_ALTER: {
        if (d.n_renames == 0 || !mysrc_table_selected(d.dbs[0], d.tables[0], src->tables, src->n_tables,
                                                      src->exclude, src->n_exclude))
            break;
        /* a rename must reach the lake even right after a restart (the next table map
         * alone would look like a dropped and an added column) */
        struct shape *s;
        bool found;
        rc = declare_known(m, d.dbs[0], d.tables[0], &s, &found, err);
        for (size_t i = 0; i < d.n_renames && !rc && found; i++) {
            size_t k = 0;
            while (k < s->t.n_columns && strcmp(s->t.columns[k].name, d.rename_from[i]))
                k++;
            if (k == s->t.n_columns)
                continue; /* already renamed in the lake */
            rc = cdc_applier_rename_column(m->ap, d.dbs[0], d.tables[0], d.rename_from[i], d.rename_to[i], err);
            if (!rc)
                s->t.columns[k].name = arena_strdup(m->run, d.rename_to[i]);
        }
        /* other changes (ADD/DROP/MODIFY COLUMN) arrive with the table's next TABLE_MAP */
        break;
    }
    case MYSRC_DDL_CREATE: {
        if (!mysrc_table_selected(d.dbs[0], d.tables[0], src->tables, src->n_tables, src->exclude,
                                  src->n_exclude))
            break;
        struct cdc_table t;
        rc = mysrc_table_from_schema(m, m->q, d.dbs[0], d.tables[0], m->tx, &t, NULL, err);
        if (rc == LOCH_ENOENT || rc == LOCH_EUNSUPPORTED) {
            /* dropped again since, or a type loch refuses: the table map decides later */
            loch_err_clear(err);
            rc = 0;
            break;
        }
        if (!rc)
            rc = mysrc_shape_declare(m, mysrc_shape_get(m, d.dbs[0], d.tables[0]), &t, err);
        break;
    }
    default:
        break;
    }
    return rc;
}
