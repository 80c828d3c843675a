/* pgwire_types.h: PostgreSQL type OIDs for engine columns, and the text and binary
 * encodings of values (protocol docs 55.2; the binary forms are PostgreSQL's send/recv
 * functions: int*send, float8send, numeric_send, date_send, timestamp_send, uuid_send).
 * Not for framing (pgwire_msg.h). */
#ifndef LOCH_SERVER_PGWIRE_TYPES_H
#define LOCH_SERVER_PGWIRE_TYPES_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "engine/engine.h"

enum {
    PG_OID_BOOL = 16, PG_OID_BYTEA = 17, PG_OID_NAME = 19, PG_OID_INT8 = 20, PG_OID_INT2 = 21,
    PG_OID_INT4 = 23, PG_OID_TEXT = 25, PG_OID_OID = 26, PG_OID_JSON = 114, PG_OID_FLOAT4 = 700,
    PG_OID_FLOAT8 = 701, PG_OID_UNKNOWN = 705, PG_OID_BPCHAR = 1042, PG_OID_VARCHAR = 1043,
    PG_OID_DATE = 1082, PG_OID_TIME = 1083, PG_OID_TIMESTAMP = 1114, PG_OID_TIMESTAMPTZ = 1184,
    PG_OID_INTERVAL = 1186, PG_OID_NUMERIC = 1700, PG_OID_UUID = 2950, PG_OID_JSONB = 3802,
};

struct pgwire_type {
    uint32_t oid;
    int16_t len;    /* typlen: -1 variable */
    int32_t typmod; /* -1 none; numeric ((p << 16) | s) + 4 */
};

void pgwire_type_of(const struct engine_col *c, struct pgwire_type *out);
/* The PostgreSQL OID for a parameter type DuckDB inferred (text when unknown). */
uint32_t pgwire_param_oid(enum engine_type t);

/* Appends v (a non-NULL value of column c) in PostgreSQL's text output form. */
void pgwire_encode_text(struct buf *b, const struct engine_col *c, const struct engine_val *v);
/* Appends v in PostgreSQL's binary form for the column's OID. */
void pgwire_encode_binary(struct buf *b, const struct engine_col *c, const struct engine_val *v);

/* Binds parameter i of st from the wire: format 0 text / 1 binary, declared oid (0 =
 * unspecified), data NULL for SQL NULL. LOCH_EINVAL (SQLSTATE 22023) names the parameter
 * when the bytes are not a valid value of the type; LOCH_EUNSUPPORTED for a binary type
 * loch does not read. */
int pgwire_bind_param(struct engine_stmt *st, size_t i, uint32_t oid, int format, const uint8_t *data,
                      int32_t len, struct loch_err *err);

#endif
