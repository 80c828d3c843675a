/* encode.h: results as JSON and CSV, one encoder for every door: HTTP's /v1/sql (streamed
 * and materialised) and `loch sql --format json|csv`. JSON through jansson: integers and
 * finite floats are numbers, DECIMAL values strings with every digit, booleans and NULL
 * native, everything else text. CSV: RFC 4180 quoting. Not for Arrow (arrow_ipc.h) nor
 * PostgreSQL's wire values (pgwire_types.h). */
#ifndef LOCH_SERVER_ENCODE_H
#define LOCH_SERVER_ENCODE_H

#include <jansson.h>
#include <stdbool.h>

#include "base/buf.h"
#include "base/mem.h"
#include "engine/engine.h"

/* ---- streamed values (engine_stream columns and values) */

/* DuckDB's name of a column type ("INTEGER", "DECIMAL(10,2)"), as materialised results
 * report it; out holds at least 48 bytes. */
void encode_type_name(const struct engine_col *c, char out[48]);
/* Appends v as text: PostgreSQL's text form (exact decimals, ISO dates), booleans as
 * true/false as DuckDB prints them. */
void encode_value_text(struct buf *b, const struct engine_col *c, const struct engine_val *v);
/* Appends v (NULL: SQL NULL) as compact, ASCII-only JSON; tmp is scratch space. */
void encode_value_json(struct buf *b, struct buf *tmp, const struct engine_col *c, const struct engine_val *v);

/* ---- materialised values (engine_rows text and DuckDB type names) */

/* The JSON value (a new reference) of text (NULL: SQL NULL) of a column of DuckDB type
 * type ("BIGINT", "DECIMAL(18,2)", ...), by the rules above; integers beyond 64 bits and
 * non-finite floats stay exact as strings. */
json_t *encode_json_text(const char *type, const char *text);
/* A whole result as {"columns": [{"name", "type"}], "rows": [[...]], "tag": tag} (a new
 * reference); r may be NULL (no result set: empty columns and rows). a holds the
 * rendering's temporaries (reset by the caller). */
json_t *encode_json_result(struct engine_rows *r, const char *tag, struct arena *a);

/* ---- CSV */

/* Appends s as one CSV field: quoted (quotes doubled) when it holds , " CR or LF. */
void encode_csv_field(struct buf *b, const char *s);
/* Appends a whole result: a header line of the column names, then one line per row, each
 * ended by eol ("\r\n" for HTTP as RFC 4180 asks, "\n" for a terminal); NULL is an empty
 * field. a holds temporaries (reset here every 1024 rows). */
void encode_csv_result(struct buf *b, struct engine_rows *r, const char *eol, struct arena *a);

#endif
