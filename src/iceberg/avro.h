/* avro.h (internal to src/iceberg): Avro object container files as Iceberg manifests
 * need them. We write the framing ourselves so the schema JSON keeps its "field-id"s
 * and the file metadata carries Iceberg's keys (avro-c 1.11 can do neither); avro-c
 * encodes and decodes the record values. Not for the meaning of manifest fields
 * (manifest.c) or for generic Avro use outside src/iceberg.
 *
 * Format: Avro 1.11 specification, "Object Container Files". */
#ifndef LOCH_ICEBERG_AVRO_H
#define LOCH_ICEBERG_AVRO_H

#include <avro.h>

#include "iceberg/iceberg.h"

/* ---- writing ---- */

/* Builds one file: fill w->rec, call iceberg_avro_writer_append, repeat, then
 * iceberg_avro_writer_finish. */
struct iceberg_avro_writer {
    const char *schema_json; /* borrowed; written verbatim as avro.schema */
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t rec;        /* the record to fill for the next append */
    struct buf data;         /* encoded records so far (uncompressed) */
    int64_t n_records;
};

/* Parses schema_json (kept by pointer, must outlive w) and prepares w->rec.
 * Returns 0 or LOCH_EINTERNAL when avro-c rejects the schema. On error w needs no free. */
int iceberg_avro_writer_init(struct iceberg_avro_writer *w, const char *schema_json,
                             struct loch_err *err);
/* Encodes w->rec as the next record and resets it (unions and arrays start empty). */
int iceberg_avro_writer_append(struct iceberg_avro_writer *w, struct loch_err *err);
/* Appends the whole container to out: magic, metadata (avro.schema, avro.codec=deflate,
 * then meta[0..n_meta)), a random sync marker, and one deflate block of every record. */
int iceberg_avro_writer_finish(struct iceberg_avro_writer *w, const struct iceberg_kv *meta,
                               size_t n_meta, struct buf *out, struct loch_err *err);
/* Frees avro-c objects and buffers; safe after init succeeded, whatever happened next. */
void iceberg_avro_writer_free(struct iceberg_avro_writer *w);

/* ---- reading ---- */

struct iceberg_avro_meta {
    const char *key;     /* NUL-terminated copies in the caller's arena */
    const char *value;   /* NUL-terminated; value_len excludes the NUL */
    size_t value_len;
};

/* An opened file: the header is parsed, every block is decompressed and every record
 * has been checked against the writer schema, so avro-c never sees a length that runs
 * past the data. */
struct iceberg_avro_reader {
    size_t n_meta;
    struct iceberg_avro_meta *meta;
    avro_schema_t schema;     /* the writer schema from avro.schema */
    avro_value_iface_t *iface;
    avro_value_t rec;         /* holds the current record after iceberg_avro_reader_next */
    struct buf data;          /* every block's records, decompressed */
    int64_t n_records, n_read;
    avro_reader_t rd;
};

/* Parses data[0..len) (borrowed only during the call; metadata is copied into a).
 * what names the file kind in error messages ("manifest", "manifest list").
 * Returns 0, LOCH_ECORRUPT ("<what> is truncated at byte N", bad magic, bad sync,
 * a record that does not match the schema), or LOCH_EUNSUPPORTED for codecs other than
 * null and deflate. On error r needs no close. */
int iceberg_avro_reader_open(struct iceberg_avro_reader *r, const uint8_t *data, size_t len,
                             const char *what, struct arena *a, struct loch_err *err);
/* The metadata value for key, or NULL. */
const char *iceberg_avro_reader_meta(const struct iceberg_avro_reader *r, const char *key);
/* Reads the next record into r->rec: returns 1, 0 at the end, or a negative code. */
int iceberg_avro_reader_next(struct iceberg_avro_reader *r, struct loch_err *err);
void iceberg_avro_reader_close(struct iceberg_avro_reader *r);

#endif
