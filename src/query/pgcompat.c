/* pgcompat.c: enough of PostgreSQL's catalog for psql (\dn, \dt, \d) and JDBC
 * DatabaseMetaData to list the lake. Catalog queries of administrators are rewritten to
 * read a per-session schema __pg whose pg_namespace / pg_class / pg_attribute / pg_type
 * describe the lake tables (as relkind 'r', with PostgreSQL type OIDs and typmods), and
 * whose macros stand in for pg_get_userbyid, format_type and friends. PostgreSQL
 * spellings DuckDB lacks (OPERATOR(pg_catalog.~), COLLATE pg_catalog.default, ::regclass,
 * partial-match ~) are rewritten in the text. Not a general PostgreSQL catalog: anything
 * beyond listing schemas, tables and columns is out of scope. */
#include "query/internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"

static const char *const shadowed[] = {"pg_namespace", "pg_class", "pg_attribute", "pg_type", "pg_description",
                                       "pg_am", "pg_attrdef", "pg_collation", "pg_get_userbyid",
                                       "pg_table_is_visible", "format_type", "pg_get_expr", "obj_description",
                                       "col_description", "pg_encoding_to_char", "pg_get_indexdef",
                                       "pg_get_constraintdef", "pg_tables", NULL};

/* The session's shadow catalog, rebuilt from the lake for each catalog query. */
static const char *const build_sql =
    "CREATE SCHEMA IF NOT EXISTS __pg;"
    "CREATE OR REPLACE TABLE __pg.rels AS "
    "  SELECT CASE WHEN database_name = 'memory' THEN schema_name ELSE database_name || '.' || schema_name END "
    "         AS nspname, view_name AS relname, database_name AS db, schema_name AS sch "
    "  FROM duckdb_views() WHERE NOT internal AND NOT temporary AND database_name NOT IN ('system', 'temp') "
    "    AND schema_name NOT IN ('__pg', 'main', 'pg_catalog', 'information_schema') "
    "    AND view_name NOT LIKE '%@%';"
    "CREATE OR REPLACE TABLE __pg.pg_namespace AS "
    "  SELECT 11::INTEGER AS oid, 'pg_catalog' AS nspname, 10::INTEGER AS nspowner, NULL::VARCHAR AS nspacl "
    "  UNION ALL SELECT (20000 + row_number() OVER (ORDER BY nspname))::INTEGER, nspname, 10, NULL "
    "  FROM (SELECT DISTINCT nspname FROM __pg.rels);"
    "CREATE OR REPLACE TABLE __pg.pg_class AS "
    "  SELECT (30000 + row_number() OVER (ORDER BY r.nspname, r.relname))::INTEGER AS oid, r.relname, "
    "    n.oid AS relnamespace, 0 AS reltype, 0 AS reloftype, 10 AS relowner, 2 AS relam, 0 AS relfilenode, "
    "    0 AS reltablespace, 0 AS relpages, -1.0::REAL AS reltuples, 0 AS relallvisible, 0 AS reltoastrelid, "
    "    false AS relhasindex, false AS relisshared, 'p' AS relpersistence, 'r' AS relkind, "
    "    (SELECT count(*) FROM duckdb_columns() c WHERE c.database_name = r.db AND c.schema_name = r.sch "
    "       AND c.table_name = r.relname)::SMALLINT AS relnatts, 0::SMALLINT AS relchecks, false AS relhasrules, "
    "    false AS relhastriggers, false AS relhassubclass, false AS relrowsecurity, "
    "    false AS relforcerowsecurity, true AS relispopulated, 'd' AS relreplident, false AS relispartition, "
    "    0 AS relrewrite, 0 AS relfrozenxid, 0 AS relminmxid, NULL::VARCHAR[] AS relacl, "
    "    NULL::VARCHAR[] AS reloptions, NULL::VARCHAR AS relpartbound, false AS relhasoids, r.db, r.sch "
    "  FROM __pg.rels r JOIN __pg.pg_namespace n ON n.nspname = r.nspname;"
    "CREATE OR REPLACE TABLE __pg.pg_attribute AS "
    "  SELECT c.oid AS attrelid, col.column_name AS attname, "
    "    CASE WHEN col.data_type = 'BOOLEAN' THEN 16 WHEN col.data_type IN ('TINYINT', 'SMALLINT', 'UTINYINT') "
    "      THEN 21 WHEN col.data_type IN ('INTEGER', 'USMALLINT') THEN 23 "
    "      WHEN col.data_type IN ('BIGINT', 'UINTEGER') THEN 20 WHEN col.data_type = 'FLOAT' THEN 700 "
    "      WHEN col.data_type = 'DOUBLE' THEN 701 WHEN col.data_type LIKE 'DECIMAL%' "
    "        OR col.data_type IN ('HUGEINT', 'UBIGINT') THEN 1700 "
    "      WHEN col.data_type = 'VARCHAR' THEN 1043 WHEN col.data_type = 'BLOB' THEN 17 "
    "      WHEN col.data_type = 'DATE' THEN 1082 WHEN col.data_type = 'TIME' THEN 1083 "
    "      WHEN col.data_type = 'TIMESTAMP WITH TIME ZONE' THEN 1184 WHEN col.data_type LIKE 'TIMESTAMP%' THEN 1114 "
    "      WHEN col.data_type = 'UUID' THEN 2950 WHEN col.data_type = 'JSON' THEN 114 "
    "      WHEN col.data_type = 'INTERVAL' THEN 1186 ELSE 25 END AS atttypid, "
    "    0 AS attstattarget, -1::SMALLINT AS attlen, col.column_index::SMALLINT AS attnum, 0 AS attndims, "
    "    -1 AS attcacheoff, CASE WHEN col.data_type LIKE 'DECIMAL%' "
    "      THEN ((col.numeric_precision << 16) | col.numeric_scale) + 4 ELSE -1 END AS atttypmod, "
    "    false AS attbyval, 'i' AS attalign, 'p' AS attstorage, '' AS attcompression, "
    "    NOT col.is_nullable AS attnotnull, false AS atthasdef, false AS atthasmissing, '' AS attidentity, "
    "    '' AS attgenerated, false AS attisdropped, true AS attislocal, 0 AS attinhcount, 0 AS attcollation, "
    "    NULL::VARCHAR[] AS attacl, NULL::VARCHAR[] AS attoptions, NULL::VARCHAR[] AS attfdwoptions "
    "  FROM __pg.pg_class c JOIN duckdb_columns() col ON col.database_name = c.db AND col.schema_name = c.sch "
    "    AND col.table_name = c.relname;"
    "CREATE OR REPLACE TABLE __pg.pg_type AS "
    "  SELECT t.oid::INTEGER AS oid, t.typname, 11 AS typnamespace, 10 AS typowner, t.typlen::SMALLINT AS typlen, "
    "    t.typlen > 0 AS typbyval, 'b' AS typtype, 'U' AS typcategory, false AS typispreferred, "
    "    true AS typisdefined, ',' AS typdelim, 0 AS typrelid, 0 AS typelem, 0 AS typarray, "
    "    t.typname || 'in' AS typinput, t.typname || 'out' AS typoutput, 'i' AS typalign, 'p' AS typstorage, "
    "    false AS typnotnull, 0 AS typbasetype, -1 AS typtypmod, 0 AS typndims, "
    "    CASE WHEN t.oid IN (25, 1043) THEN 100 ELSE 0 END AS typcollation, NULL AS typdefault "
    "  FROM (VALUES (16, 'bool', 1), (17, 'bytea', -1), (20, 'int8', 8), (21, 'int2', 2), (23, 'int4', 4), "
    "    (25, 'text', -1), (114, 'json', -1), (700, 'float4', 4), (701, 'float8', 8), (1043, 'varchar', -1), "
    "    (1082, 'date', 4), (1083, 'time', 8), (1114, 'timestamp', 8), (1184, 'timestamptz', 8), "
    "    (1186, 'interval', 16), (1700, 'numeric', -1), (2950, 'uuid', 16)) t(oid, typname, typlen);"
    "CREATE OR REPLACE TABLE __pg.pg_description (objoid INTEGER, classoid INTEGER, objsubid INTEGER, "
    "  description VARCHAR);"
    "CREATE OR REPLACE TABLE __pg.pg_attrdef (oid INTEGER, adrelid INTEGER, adnum SMALLINT, adbin VARCHAR);"
    "CREATE OR REPLACE TABLE __pg.pg_am AS SELECT 2 AS oid, 'heap' AS amname, 't' AS amtype;"
    "CREATE OR REPLACE TABLE __pg.pg_collation AS SELECT 100 AS oid, 'default' AS collname;"
    "CREATE OR REPLACE VIEW __pg.pg_tables AS SELECT n.nspname AS schemaname, c.relname AS tablename, "
    "  'loch' AS tableowner, NULL AS tablespace, false AS hasindexes, false AS hasrules, false AS hastriggers, "
    "  false AS rowsecurity FROM __pg.pg_class c JOIN __pg.pg_namespace n ON n.oid = c.relnamespace;"
    "CREATE OR REPLACE MACRO __pg.pg_get_userbyid(x) AS 'loch';"
    "CREATE OR REPLACE MACRO __pg.pg_table_is_visible(x) AS true;"
    "CREATE OR REPLACE MACRO __pg.pg_get_expr(a, b, c := NULL) AS NULL::VARCHAR;"
    "CREATE OR REPLACE MACRO __pg.obj_description(a, b := NULL) AS NULL::VARCHAR;"
    "CREATE OR REPLACE MACRO __pg.col_description(a, b) AS NULL::VARCHAR;"
    "CREATE OR REPLACE MACRO __pg.pg_encoding_to_char(x) AS 'UTF8';"
    "CREATE OR REPLACE MACRO __pg.pg_get_indexdef(a, b := NULL, c := NULL) AS NULL::VARCHAR;"
    "CREATE OR REPLACE MACRO __pg.pg_get_constraintdef(a, b := NULL) AS NULL::VARCHAR;"
    "CREATE OR REPLACE MACRO __pg.format_type(t, m) AS CASE t WHEN 16 THEN 'boolean' WHEN 17 THEN 'bytea' "
    "  WHEN 20 THEN 'bigint' WHEN 21 THEN 'smallint' WHEN 23 THEN 'integer' WHEN 25 THEN 'text' "
    "  WHEN 114 THEN 'json' WHEN 700 THEN 'real' WHEN 701 THEN 'double precision' "
    "  WHEN 1043 THEN 'character varying' WHEN 1082 THEN 'date' WHEN 1083 THEN 'time without time zone' "
    "  WHEN 1114 THEN 'timestamp without time zone' WHEN 1184 THEN 'timestamp with time zone' "
    "  WHEN 1186 THEN 'interval' WHEN 2950 THEN 'uuid' "
    "  WHEN 1700 THEN CASE WHEN m >= 4 THEN 'numeric(' || ((m - 4) >> 16) || ',' || ((m - 4) & 65535) || ')' "
    "    ELSE 'numeric' END ELSE 'text' END;";

/* Relations and functions that describe DuckDB's catalog, which holds every lake view of
 * the process (sessions share one database). */
static const char *const catalog_words[] = {"pg_class", "pg_namespace", "pg_attribute", "pg_tables", "pg_views",
                                            "pg_index", "pg_indexes", "pg_proc", "pg_description",
                                            "pg_constraint", "pg_database", "pg_attrdef", "pg_sequences",
                                            "pg_matviews", "duckdb_", NULL};

bool query_is_catalog(const char *sql)
{
    if (strcasestr(sql, "pg_catalog.") || strcasestr(sql, "information_schema."))
        return true;
    for (int i = 0; catalog_words[i]; i++) {
        size_t l = strlen(catalog_words[i]);
        for (const char *p = sql; (p = strcasestr(p, catalog_words[i])); p += l) {
            bool start = p == sql || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
            bool end = catalog_words[i][l - 1] == '_' || !(isalnum((unsigned char)p[l]) || p[l] == '_');
            if (start && end)
                return true;
        }
    }
    return false;
}

static bool word_at(const char *p, const char *w)
{
    size_t l = strlen(w);
    return !strncasecmp(p, w, l) && !(isalnum((unsigned char)p[l]) || p[l] == '_');
}

/* Rewrites sql's PostgreSQL catalog spellings (see the file comment); malloc'd. String
 * literals are copied as they are, except a pattern right after ~ / !~, which is made a
 * partial match (PostgreSQL) for DuckDB's full-match ~. */
static char *rewrite(const char *sql)
{
    struct buf b = {0};
    bool after_tilde = false;
    for (const char *p = sql; *p;) {
        if (*p == '\'') {
            const char *q = p + 1;
            while (*q && !(*q == '\'' && q[1] != '\''))
                q += (*q == '\'' && q[1] == '\'') ? 2 : 1;
            size_t len = (size_t)(*q ? q + 1 - p : q - p);
            if (after_tilde && *q) {
                buf_puts(&b, "'(?s).*(?:");
                buf_append(&b, p + 1, len - 2);
                buf_puts(&b, ").*'");
            } else if (!strncasecmp(p, "'pg_class'::regclass", 20)) {
                buf_puts(&b, "1259");
                p += 20;
                after_tilde = false;
                continue;
            } else {
                buf_append(&b, p, len);
            }
            p += len;
            after_tilde = false;
            continue;
        }
        if (!strncasecmp(p, "OPERATOR(pg_catalog.~)", 22)) {
            buf_puts(&b, "~");
            p += 22;
            after_tilde = true;
            continue;
        }
        if (!strncasecmp(p, "OPERATOR(pg_catalog.!~)", 23)) {
            buf_puts(&b, "!~");
            p += 23;
            after_tilde = true;
            continue;
        }
        if (!strncasecmp(p, "COLLATE pg_catalog.default", 26)) {
            p += 26;
            continue;
        }
        if (*p == '~' || (p[0] == '!' && p[1] == '~')) {
            size_t l = *p == '~' ? 1 : 2;
            buf_append(&b, p, l);
            p += l;
            after_tilde = true;
            continue;
        }
        if (p[0] == ':' && p[1] == ':') {
            const char *t = p + 2;
            if (!strncasecmp(t, "pg_catalog.", 11))
                t += 11;
            static const char *regs[] = {"regclass", "regtype", "regproc", "regnamespace", "regprocedure", NULL};
            bool done = false;
            for (int i = 0; regs[i] && !done; i++)
                if (word_at(t, regs[i])) {
                    buf_puts(&b, "::VARCHAR");
                    p = t + strlen(regs[i]);
                    done = true;
                }
            if (done)
                continue;
            if (t != p + 2) { /* ::pg_catalog.text -> ::text */
                buf_puts(&b, "::");
                p = t;
                continue;
            }
        }
        if (!strncasecmp(p, "pg_catalog.", 11) && (p == sql || !(isalnum((unsigned char)p[-1]) || p[-1] == '_' ||
                                                                 p[-1] == '.'))) {
            const char *name = p + 11;
            bool ours = false;
            for (int i = 0; shadowed[i] && !ours; i++)
                ours = word_at(name, shadowed[i]);
            if (ours)
                buf_puts(&b, "__pg.");
            else if (!word_at(name, "pg_settings") && !word_at(name, "pg_database") && !word_at(name, "pg_roles") &&
                     !word_at(name, "pg_user") && !word_at(name, "pg_proc") && !word_at(name, "pg_index") &&
                     !word_at(name, "pg_constraint") && !word_at(name, "pg_inherits"))
                ; /* a function: DuckDB finds it unqualified */
            else
                buf_puts(&b, "pg_catalog.");
            p = name;
            continue;
        }
        if (!isspace((unsigned char)*p))
            after_tilde = false;
        buf_putc(&b, *p++);
    }
    return buf_take(&b);
}

int query_prepare_catalog(struct query_session *s, const char *sql, struct engine_stmt **out, bool *handled,
                          struct loch_err *err)
{
    *handled = false;
    if (!query_is_catalog(sql) || !session_admin(s))
        return 0; /* others read DuckDB's own catalog through the guard: no lake table is in it */
    *handled = true;
    arena_reset(s->stmt_arena);
    int rc = lake_view_all(s, err);
    s->scanned = 0; /* the catalog's description is made from metadata: no data file is read */
    if (!rc) {
        lake_catalog_lock();
        rc = engine_exec(s->conn, build_sql, err);
        lake_catalog_unlock();
    }
    if (rc)
        return rc;
    char *q = rewrite(sql);
    rc = engine_prepare(s->conn, q, out, err);
    free(q);
    return rc;
}
