/* iceberg_types.h: Iceberg primitive types (spec "Schemas and Data Types"): ids, spellings,
 * promotion. The one piece of the Iceberg model that the source-neutral change model
 * (cdc/change.h) shares; not for schemas, files or metadata (iceberg.h). */
#ifndef LOCH_ICEBERG_ICEBERG_TYPES_H
#define LOCH_ICEBERG_ICEBERG_TYPES_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

enum iceberg_type_id {
    ICEBERG_BOOLEAN,
    ICEBERG_INT,
    ICEBERG_LONG,
    ICEBERG_FLOAT,
    ICEBERG_DOUBLE,
    ICEBERG_DECIMAL,     /* precision 1..38, scale 0..precision */
    ICEBERG_DATE,
    ICEBERG_TIME,        /* microseconds since midnight */
    ICEBERG_TIMESTAMP,   /* microseconds since epoch, no zone */
    ICEBERG_TIMESTAMPTZ, /* microseconds since epoch, UTC */
    ICEBERG_STRING,
    ICEBERG_UUID,
    ICEBERG_FIXED,       /* length bytes */
    ICEBERG_BINARY,
};

struct iceberg_type {
    enum iceberg_type_id id;
    int precision, scale; /* decimal only */
    int length;           /* fixed only */
};

/* Parses the JSON spelling ("long", "decimal(18,2)", "fixed[16]", "timestamptz").
 * Returns 0, or LOCH_EUNSUPPORTED naming the type. */
int iceberg_type_parse(const char *s, struct iceberg_type *out, struct loch_err *err);
/* Writes the JSON spelling into out (at least 32 bytes). */
void iceberg_type_format(const struct iceberg_type *t, char *out, size_t out_len);
/* The DuckDB SQL type for t ("BIGINT", "DECIMAL(18,2)", "TIMESTAMPTZ", "UUID", "BLOB"). */
const char *iceberg_type_duckdb(const struct iceberg_type *t, char *out, size_t out_len);
/* True when a column of type from may be promoted to type to (spec "Schema Evolution":
 * int->long, float->double, decimal(P,S)->decimal(P',S) with P'>P) or from equals to. */
bool iceberg_type_promotable(const struct iceberg_type *from, const struct iceberg_type *to);
bool iceberg_type_equal(const struct iceberg_type *a, const struct iceberg_type *b);

#endif
