/* pg_types.c: PostgreSQL column types -> Iceberg types, and pgoutput text values -> the
 * canonical literal forms of change.h. Not for the protocol (pgoutput.c) or the session
 * (pg.c). The README's type table lists the same mapping. */
#include "cdc/pg/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Built-in type OIDs (src/include/catalog/pg_type.dat); stable across versions. */
enum {
    OID_BOOL = 16, OID_BYTEA = 17, OID_CHAR = 18, OID_NAME = 19, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23,
    OID_TEXT = 25, OID_OID = 26, OID_JSON = 114, OID_XML = 142, OID_FLOAT4 = 700, OID_FLOAT8 = 701,
    OID_MONEY = 790, OID_BPCHAR = 1042, OID_VARCHAR = 1043, OID_DATE = 1082, OID_TIME = 1083,
    OID_TIMESTAMP = 1114, OID_TIMESTAMPTZ = 1184, OID_INTERVAL = 1186, OID_TIMETZ = 1266, OID_NUMERIC = 1700,
    OID_UUID = 2950, OID_JSONB = 3802,
};

static void set(struct pgsrc_coltype *o, enum iceberg_type_id id, int p, int s, enum pgsrc_conv conv)
{
    o->type.id = id;
    o->type.precision = p;
    o->type.scale = s;
    o->type.length = 0;
    o->conv = conv;
}

int pgsrc_type_map(PGconn *sql, uint32_t oid, int32_t typmod, const char *table, const char *column,
                struct arena *a, struct pgsrc_coltype *out, struct loch_err *err)
{
    memset(out, 0, sizeof *out);
    out->type_name = "?";
    switch (oid) {
    case OID_BOOL: set(out, ICEBERG_BOOLEAN, 0, 0, PGSRC_CONV_NONE); out->type_name = "boolean"; return 0;
    case OID_INT2: set(out, ICEBERG_INT, 0, 0, PGSRC_CONV_NONE); out->type_name = "smallint"; return 0;
    case OID_INT4: set(out, ICEBERG_INT, 0, 0, PGSRC_CONV_NONE); out->type_name = "integer"; return 0;
    case OID_INT8: set(out, ICEBERG_LONG, 0, 0, PGSRC_CONV_NONE); out->type_name = "bigint"; return 0;
    case OID_OID: set(out, ICEBERG_LONG, 0, 0, PGSRC_CONV_NONE); out->type_name = "oid"; return 0;
    case OID_FLOAT4: set(out, ICEBERG_FLOAT, 0, 0, PGSRC_CONV_NONE); out->type_name = "real"; return 0;
    case OID_FLOAT8: set(out, ICEBERG_DOUBLE, 0, 0, PGSRC_CONV_NONE); out->type_name = "double precision"; return 0;
    case OID_MONEY: set(out, ICEBERG_DECIMAL, 19, 2, PGSRC_CONV_MONEY); out->type_name = "money"; return 0;
    case OID_NUMERIC:
        if (typmod >= 4) {
            int p = ((typmod - 4) >> 16) & 0xffff, s = (typmod - 4) & 0x7ff;
            if ((typmod - 4) & 0x400)
                s = -1; /* negative scale (PG15+): no Iceberg decimal holds it */
            out->type_name = arena_printf(a, "numeric(%d,%d)", p, s);
            if (p >= 1 && p <= 38 && s >= 0 && s <= p) {
                set(out, ICEBERG_DECIMAL, p, s, PGSRC_CONV_NONE);
                return 0;
            }
        } else {
            out->type_name = "numeric";
        }
        /* Unconstrained or wider than 38 digits: kept exact as text (see README). */
        set(out, ICEBERG_STRING, 0, 0, PGSRC_CONV_NONE);
        return 0;
    case OID_TEXT: case OID_VARCHAR: case OID_BPCHAR: case OID_NAME: case OID_CHAR:
        set(out, ICEBERG_STRING, 0, 0, PGSRC_CONV_NONE);
        out->type_name = oid == OID_TEXT ? "text" : oid == OID_VARCHAR ? "varchar" : oid == OID_BPCHAR ? "char" : "name";
        return 0;
    case OID_BYTEA: set(out, ICEBERG_BINARY, 0, 0, PGSRC_CONV_BYTEA); out->type_name = "bytea"; return 0;
    case OID_DATE: set(out, ICEBERG_DATE, 0, 0, PGSRC_CONV_NONE); out->type_name = "date"; return 0;
    case OID_TIME: set(out, ICEBERG_TIME, 0, 0, PGSRC_CONV_NONE); out->type_name = "time"; return 0;
    case OID_TIMESTAMP: set(out, ICEBERG_TIMESTAMP, 0, 0, PGSRC_CONV_NONE); out->type_name = "timestamp"; return 0;
    case OID_TIMESTAMPTZ: set(out, ICEBERG_TIMESTAMPTZ, 0, 0, PGSRC_CONV_NONE); out->type_name = "timestamptz"; return 0;
    case OID_UUID: set(out, ICEBERG_UUID, 0, 0, PGSRC_CONV_NONE); out->type_name = "uuid"; return 0;
    case OID_INTERVAL: case OID_TIMETZ: case OID_JSON: case OID_JSONB: case OID_XML:
        set(out, ICEBERG_STRING, 0, 0, PGSRC_CONV_NONE);
        out->type_name = oid == OID_INTERVAL ? "interval" : oid == OID_TIMETZ ? "timetz" : oid == OID_JSON ? "json"
                         : oid == OID_JSONB ? "jsonb" : "xml";
        return 0;
    default:
        break;
    }
    /* Not built in (or not listed): ask the catalog. Domains map to their base type. */
    char q[256];
    snprintf(q, sizeof q,
             "SELECT typtype, typbasetype, typtypmod, typcategory, format_type(oid, NULL) FROM pg_type WHERE oid = %u",
             oid);
    PGresult *r = PQexec(sql, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        loch_errf(err, LOCH_ESOURCE, "cannot look up type %u of column \"%s\" of %s: %s", oid, column, table,
                  PQresultErrorMessage(r));
        PQclear(r);
        return LOCH_ESOURCE;
    }
    char typtype = PQgetvalue(r, 0, 0)[0], cat = PQgetvalue(r, 0, 3)[0];
    uint32_t base = (uint32_t)strtoul(PQgetvalue(r, 0, 1), NULL, 10);
    int32_t base_mod = (int32_t)strtol(PQgetvalue(r, 0, 2), NULL, 10);
    char *name = arena_strdup(a, PQgetvalue(r, 0, 4));
    PQclear(r);
    if (typtype == 'd') {
        int rc = pgsrc_type_map(sql, base, base_mod, table, column, a, out, err);
        if (!rc)
            out->type_name = arena_printf(a, "%s (domain over %s)", name, out->type_name);
        return rc;
    }
    out->type_name = name;
    /* enums, arrays, ranges, network, bit strings and other text-like base types: their
     * text form, exactly as PostgreSQL prints it */
    if (typtype == 'e' || typtype == 'r' || typtype == 'm' || cat == 'A' || cat == 'S' || cat == 'I' ||
        cat == 'V' || cat == 'U' || cat == 'E' || cat == 'R' || cat == 'T' || cat == 'D') {
        set(out, ICEBERG_STRING, 0, 0, PGSRC_CONV_NONE);
        return 0;
    }
    loch_errf(err, LOCH_EUNSUPPORTED, "column \"%s\" of table %s has type %s, which loch cannot replicate", column,
              table, name);
    return loch_err_hint(err, "exclude the table in loch.yaml (exclude: [\"%s\"]) or change the column's type", table);
}

const char *pgsrc_value_canon(enum pgsrc_conv conv, const char *s, size_t len, struct arena *a, size_t *out_len)
{
    switch (conv) {
    case PGSRC_CONV_BYTEA:
        /* bytea_output = hex: "\x0a1b" -> "0a1b" */
        if (len >= 2 && s[0] == '\\' && s[1] == 'x') {
            *out_len = len - 2;
            return s + 2;
        }
        break;
    case PGSRC_CONV_MONEY: {
        /* lc_monetary = C: "$1,234.56", "-$1,234.56" (or "($1.00)" in other locales) */
        char *o = arena_alloc(a, len + 2);
        size_t n = 0;
        bool neg = false;
        for (size_t i = 0; i < len; i++) {
            char c = s[i];
            if (c == '-' || c == '(')
                neg = true;
            else if ((c >= '0' && c <= '9') || c == '.')
                o[n++ + 1] = c;
        }
        o[0] = '-';
        *out_len = n + (neg ? 1 : 0);
        o[n + 1] = 0;
        return neg ? o : o + 1;
    }
    default:
        break;
    }
    *out_len = len;
    return s;
}

const char *pgsrc_copy_expr(enum pgsrc_conv conv, const char *quoted_col, struct arena *a)
{
    switch (conv) {
    case PGSRC_CONV_BYTEA:
        return arena_printf(a, "encode(%s, 'hex')", quoted_col);
    case PGSRC_CONV_MONEY:
        return arena_printf(a, "%s::numeric", quoted_col);
    default:
        return quoted_col;
    }
}

const char *pgsrc_copy_literal(enum pgsrc_conv conv, const char *literal, struct arena *a)
{
    switch (conv) {
    case PGSRC_CONV_BYTEA:
        return arena_printf(a, "decode(%s, 'hex')", literal);
    case PGSRC_CONV_MONEY:
        return arena_printf(a, "(%s::numeric)::money", literal);
    default:
        return literal;
    }
}
