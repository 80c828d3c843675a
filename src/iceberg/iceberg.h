/* iceberg.h: the Iceberg v2 table model in C: types, schemas, data files, manifests,
 * snapshots, table metadata; their JSON and Avro encodings; single-value bounds.
 * Not for I/O (table.h writes and reads through store/) or for Parquet (DuckDB's job).
 *
 * Memory: every struct reached from a decoder or builder lives in a caller-supplied
 * arena; nothing here is freed piecemeal. Spec references are to the Iceberg table
 * spec (format/spec.md), v2 columns. */
#ifndef LOCH_ICEBERG_ICEBERG_H
#define LOCH_ICEBERG_ICEBERG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/mem.h"

#include "iceberg/iceberg_types.h"

/* ---- schemas ---- */
struct iceberg_field {
    int id;
    const char *name;
    bool required;
    struct iceberg_type type;
    const char *doc; /* may be NULL */
};

struct iceberg_schema {
    int schema_id;
    size_t n_fields;
    struct iceberg_field *fields;
    size_t n_identifier_ids;
    int *identifier_ids; /* identifier-field-ids (the primary key), may be empty */
};

/* Field by id or by name (exact); NULL when absent. */
const struct iceberg_field *iceberg_schema_field(const struct iceberg_schema *s, int id);
const struct iceberg_field *iceberg_schema_find(const struct iceberg_schema *s, const char *name);
/* Deep copy into a. */
struct iceberg_schema *iceberg_schema_copy(struct arena *a, const struct iceberg_schema *s);

/* ---- data and delete files (spec "Manifests", data_file struct r2) ---- */
enum iceberg_content { ICEBERG_CONTENT_DATA = 0, ICEBERG_CONTENT_POSITION_DELETES = 1 };
enum iceberg_entry_status { ICEBERG_EXISTING = 0, ICEBERG_ADDED = 1, ICEBERG_DELETED = 2 };

/* Per-column metrics of one file. Counts of -1 mean "unknown" (not written). */
struct iceberg_column_stats {
    int field_id;
    int64_t column_size, value_count, null_count, nan_count;
    const uint8_t *lower; /* bound in the single-value binary encoding; NULL = none */
    size_t lower_len;
    const uint8_t *upper;
    size_t upper_len;
};

struct iceberg_data_file {
    enum iceberg_content content;
    const char *path;          /* full URI, e.g. file:///lake/core/public/loans/data/x.parquet */
    int64_t record_count;
    int64_t file_size;         /* exact bytes */
    size_t n_stats;
    struct iceberg_column_stats *stats;
    const char *referenced_data_file; /* position deletes pointing at one data file, or NULL */
    /* manifest entry fields (spec manifest_entry); on write, an ADDED entry with
     * sequence_number -1 inherits it from its manifest. */
    enum iceberg_entry_status status;
    int64_t snapshot_id;          /* -1 = inherit */
    int64_t sequence_number;      /* data sequence number, -1 = inherit */
    int64_t file_sequence_number; /* -1 = inherit */
};

/* One row of a manifest list (spec "Manifest Lists", record manifest_file). */
struct iceberg_manifest {
    const char *path;
    int64_t length;
    int spec_id;
    enum iceberg_content content;
    int64_t sequence_number, min_sequence_number;
    int64_t added_snapshot_id;
    int added_files, existing_files, deleted_files;
    int64_t added_rows, existing_rows, deleted_rows;
};

/* ---- snapshots and table metadata (spec "Table Metadata", "Snapshots") ---- */
struct iceberg_kv {
    const char *key, *value;
};

struct iceberg_snapshot {
    int64_t snapshot_id;
    int64_t parent_id; /* -1 = none */
    int64_t sequence_number;
    int64_t timestamp_ms;
    const char *manifest_list;
    int schema_id;     /* -1 = not recorded */
    size_t n_summary;  /* summary: "operation" first */
    struct iceberg_kv *summary;
};

struct iceberg_log_entry {
    int64_t timestamp_ms;
    int64_t snapshot_id;       /* snapshot-log */
    const char *metadata_file; /* metadata-log */
};

/* Sort orders (spec "Sort Orders"): loch keeps identity transforms only. Order id 0 is
 * the unsorted order, always present. */
struct iceberg_sort_field {
    int source_id;
    bool desc;        /* direction "desc" */
    bool nulls_first; /* null-order "nulls-first" */
};
struct iceberg_sort_order {
    int order_id;
    size_t n_fields;
    struct iceberg_sort_field *fields;
};

struct iceberg_metadata {
    char table_uuid[37];
    const char *location;      /* table root URI, no trailing slash */
    int64_t last_sequence_number;
    int64_t last_updated_ms;
    int last_column_id;
    size_t n_schemas;
    struct iceberg_schema *schemas;
    int current_schema_id;
    int last_partition_id;     /* 999 for unpartitioned */
    int64_t current_snapshot_id; /* -1 when empty */
    size_t n_snapshots;
    struct iceberg_snapshot *snapshots;
    size_t n_snapshot_log;
    struct iceberg_log_entry *snapshot_log;
    size_t n_metadata_log;
    struct iceberg_log_entry *metadata_log;
    size_t n_properties;
    struct iceberg_kv *properties;
    size_t n_sort_orders;      /* 0: only the unsorted order 0 (written as such) */
    struct iceberg_sort_order *sort_orders;
    int default_sort_order_id; /* 0: unsorted */
};
/* loch writes unpartitioned tables only: partition-specs [{spec-id 0, fields []}].
 * Sort orders of identity fields are kept; a table read with a partition spec or a sort
 * order of another transform is refused by iceberg_metadata_from_json with
 * LOCH_EUNSUPPORTED. */

const struct iceberg_schema *iceberg_metadata_schema(const struct iceberg_metadata *m, int schema_id);
const struct iceberg_schema *iceberg_metadata_current_schema(const struct iceberg_metadata *m);
/* The table's default sort order, or NULL when it is unsorted (no field). */
const struct iceberg_sort_order *iceberg_metadata_sort_order(const struct iceberg_metadata *m);
const struct iceberg_snapshot *iceberg_metadata_snapshot(const struct iceberg_metadata *m, int64_t id);
/* A new empty metadata (uuid generated, no snapshot) for schema s (copied; its field ids
 * must already be assigned from 1). */
struct iceberg_metadata *iceberg_metadata_new(struct arena *a, const char *location,
                                              const struct iceberg_schema *s);

/* ---- JSON (spec Appendix C) ---- */
/* Serialises m as the table metadata JSON (every v2-required field). Appends to out. */
int iceberg_metadata_to_json(const struct iceberg_metadata *m, struct buf *out, struct loch_err *err);
/* Parses table metadata JSON; everything is allocated in a. Returns LOCH_ECORRUPT with
 * the missing or wrong field named on bad input. */
int iceberg_metadata_from_json(const char *text, size_t len, struct arena *a,
                               struct iceberg_metadata **out, struct loch_err *err);
/* Schema object JSON ({"type":"struct","schema-id":..,"fields":[..]}), appended to out. */
void iceberg_schema_to_json(const struct iceberg_schema *s, struct buf *out);
int iceberg_schema_from_json(const char *text, size_t len, struct arena *a,
                             struct iceberg_schema **out, struct loch_err *err);

/* ---- single-value binary encoding (spec Appendix D) ---- */
struct iceberg_value {
    bool is_null;
    union {
        bool b;
        int32_t i32;   /* int, date */
        int64_t i64;   /* long, time, timestamp(tz) */
        float f32;
        double f64;
        struct { int64_t hi; uint64_t lo; } dec; /* decimal unscaled value, 128-bit two's complement */
        struct { const uint8_t *p; size_t len; } bytes; /* string (UTF-8), binary, fixed, uuid (16 raw bytes) */
    } v;
};

/* Encodes v for type t into out (at least 16 bytes, or bytes.len for variable types);
 * *out_len gets the length. Decimal: big-endian two's complement, minimum bytes.
 * uuid: 16 bytes big-endian. Returns LOCH_EINVAL for a null value. */
int iceberg_bound_encode(const struct iceberg_type *t, const struct iceberg_value *v, uint8_t *out,
                         size_t out_cap, size_t *out_len);
/* Decodes; string/binary point into p. Returns LOCH_ECORRUPT on a wrong length. */
int iceberg_bound_decode(const struct iceberg_type *t, const uint8_t *p, size_t len,
                         struct iceberg_value *out);
/* Truncated string bounds (Java's truncate(16)): lower = first n code points; upper =
 * first n code points with the last one incremented (returns false when no valid upper
 * bound exists, then write none). Writes into out (at least 4*n bytes). */
size_t iceberg_bound_truncate_lower(const uint8_t *s, size_t len, size_t n_cp, uint8_t *out);
bool iceberg_bound_truncate_upper(const uint8_t *s, size_t len, size_t n_cp, uint8_t *out, size_t *out_len);

/* ---- Avro manifests (spec "Manifests", "Manifest Lists", Appendix A) ---- */
/* Encodes a manifest (Avro object container, deflate) holding files, all of one content
 * kind. table_schema is written under the "schema" key; snapshot_id is the snapshot that
 * adds the manifest. Record names manifest_entry/r2/r102; field ids on every field.
 * A file's snapshot_id / sequence numbers of -1 are written as null (inherited); that is
 * refused (LOCH_EINVAL) for EXISTING/DELETED entries. Give ADDED entries an explicit
 * snapshot_id anyway: PyIceberg 0.10.0's ManifestEntry.snapshot_id setter writes the
 * status slot, so a null snapshot_id reaches its scans as status = <snapshot id>. */
int iceberg_manifest_encode(const struct iceberg_schema *table_schema, enum iceberg_content content,
                            const struct iceberg_data_file *files, size_t n_files, struct buf *out,
                            struct loch_err *err);
/* Decodes a manifest. Entries whose snapshot_id / sequence numbers are null inherit
 * from m (the manifest-list row), per spec "Sequence Number Inheritance". m may be NULL
 * (nothing inherited, -1 stays); when m->length > 0 it must equal len, else
 * LOCH_ECORRUPT (the only way to see a manifest cut at an Avro block boundary).
 * Returns LOCH_ECORRUPT on bad input, LOCH_EUNSUPPORTED for equality deletes or codecs
 * other than null/deflate; *out is allocated in a. */
int iceberg_manifest_decode(const uint8_t *data, size_t len, const struct iceberg_manifest *m,
                            struct arena *a, struct iceberg_data_file **out, size_t *n_out,
                            struct loch_err *err);
/* Encodes a manifest list (record manifest_file, r508) with Java's file metadata keys. */
int iceberg_manifest_list_encode(const struct iceberg_manifest *ms, size_t n, int64_t snapshot_id,
                                 int64_t parent_id, int64_t sequence_number, struct buf *out,
                                 struct loch_err *err);
int iceberg_manifest_list_decode(const uint8_t *data, size_t len, struct arena *a,
                                 struct iceberg_manifest **out, size_t *n_out, struct loch_err *err);

#endif
