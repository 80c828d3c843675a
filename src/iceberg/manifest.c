/* manifest.c: Iceberg v2 manifests (record manifest_entry) and manifest lists (record
 * manifest_file) as Avro files, written exactly as Java's V2Metadata lays them out and
 * read tolerantly from any writer. Not for the container framing (avro.c), for single
 * values inside bounds (bounds.c) or for deciding what goes into a snapshot (table.c).
 *
 * Spec: format/spec.md "Manifests", "Manifest Lists", "Sequence Number Inheritance",
 * Appendix A "Avro" (field ids, int-keyed maps as arrays of k/v records). */
#include "iceberg/iceberg.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "iceberg/avro.h"

/* ---- Avro schemas, written verbatim into avro.schema ----
 * Field order and ids follow Java's V2Metadata (MANIFEST_LIST_SCHEMA, entrySchema,
 * fileType). Record names manifest_entry / r2 / r102 / manifest_file / r508 are what
 * Java 1.4 renames to its classes: other names make Spark fail with a ClassCastException. */

#define Q(s) "\"" s "\""
#define FIELD(name, type, id) "{\"name\":" Q(name) ",\"type\":" type ",\"field-id\":" #id "}"
#define OPT(name, type, id) \
    "{\"name\":" Q(name) ",\"type\":[\"null\"," type "],\"default\":null,\"field-id\":" #id "}"
/* Appendix A: a map with non-string keys is an array of records k<K>_v<V>, logicalType map. */
#define INT_MAP(name, id, kid, vid, vtype)                                                   \
    OPT(name,                                                                                \
        "{\"type\":\"array\",\"logicalType\":\"map\",\"items\":{\"type\":\"record\",\"name\":" \
        Q("k" #kid "_v" #vid) ",\"fields\":[" FIELD("key", Q("int"), kid) ","                \
        FIELD("value", vtype, vid) "]}}",                                                    \
        id)
#define LIST(item, eid) "{\"type\":\"array\",\"items\":" item ",\"element-id\":" #eid "}"

static const char MANIFEST_ENTRY_SCHEMA[] =
    "{\"type\":\"record\",\"name\":\"manifest_entry\",\"fields\":["
    FIELD("status", Q("int"), 0) ","
    OPT("snapshot_id", Q("long"), 1) ","
    OPT("sequence_number", Q("long"), 3) ","
    OPT("file_sequence_number", Q("long"), 4) ","
    FIELD("data_file",
          "{\"type\":\"record\",\"name\":\"r2\",\"fields\":["
          FIELD("content", Q("int"), 134) ","
          FIELD("file_path", Q("string"), 100) ","
          FIELD("file_format", Q("string"), 101) ","
          FIELD("partition", "{\"type\":\"record\",\"name\":\"r102\",\"fields\":[]}", 102) ","
          FIELD("record_count", Q("long"), 103) ","
          FIELD("file_size_in_bytes", Q("long"), 104) ","
          INT_MAP("column_sizes", 108, 117, 118, Q("long")) ","
          INT_MAP("value_counts", 109, 119, 120, Q("long")) ","
          INT_MAP("null_value_counts", 110, 121, 122, Q("long")) ","
          INT_MAP("nan_value_counts", 137, 138, 139, Q("long")) ","
          INT_MAP("lower_bounds", 125, 126, 127, Q("bytes")) ","
          INT_MAP("upper_bounds", 128, 129, 130, Q("bytes")) ","
          OPT("key_metadata", Q("bytes"), 131) ","
          OPT("split_offsets", LIST(Q("long"), 133), 132) ","
          OPT("equality_ids", LIST(Q("int"), 136), 135) ","
          OPT("sort_order_id", Q("int"), 140) ","
          OPT("referenced_data_file", Q("string"), 143)
          "]}",
          2)
    "]}";

static const char MANIFEST_FILE_SCHEMA[] =
    "{\"type\":\"record\",\"name\":\"manifest_file\",\"fields\":["
    FIELD("manifest_path", Q("string"), 500) ","
    FIELD("manifest_length", Q("long"), 501) ","
    FIELD("partition_spec_id", Q("int"), 502) ","
    FIELD("content", Q("int"), 517) ","
    FIELD("sequence_number", Q("long"), 515) ","
    FIELD("min_sequence_number", Q("long"), 516) ","
    FIELD("added_snapshot_id", Q("long"), 503) ","
    FIELD("added_files_count", Q("int"), 504) ","
    FIELD("existing_files_count", Q("int"), 505) ","
    FIELD("deleted_files_count", Q("int"), 506) ","
    FIELD("added_rows_count", Q("long"), 512) ","
    FIELD("existing_rows_count", Q("long"), 513) ","
    FIELD("deleted_rows_count", Q("long"), 514) ","
    OPT("partitions",
        LIST("{\"type\":\"record\",\"name\":\"r508\",\"fields\":["
             FIELD("contains_null", Q("boolean"), 509) ","
             OPT("contains_nan", Q("boolean"), 518) ","
             OPT("lower_bound", Q("bytes"), 510) ","
             OPT("upper_bound", Q("bytes"), 511) "]}",
             508),
        507) ","
    OPT("key_metadata", Q("bytes"), 519)
    "]}";

/* ---- writing values with avro-c ----
 * Our schemas are constants, so an avro-c failure here is a bug in this file, not bad
 * input: the setters record it in *bad and the caller reports one internal error. */

static avro_value_t child(avro_value_t *rec, const char *name, int *bad)
{
    avro_value_t f;
    memset(&f, 0, sizeof f);
    if (avro_value_get_by_name(rec, name, &f, NULL))
        *bad = 1;
    return f;
}

static void set_int(avro_value_t *rec, const char *name, int32_t v, int *bad)
{
    avro_value_t f = child(rec, name, bad);
    if (!*bad && avro_value_set_int(&f, v))
        *bad = 1;
}

static void set_long(avro_value_t *rec, const char *name, int64_t v, int *bad)
{
    avro_value_t f = child(rec, name, bad);
    if (!*bad && avro_value_set_long(&f, v))
        *bad = 1;
}

static void set_str(avro_value_t *rec, const char *name, const char *v, int *bad)
{
    avro_value_t f = child(rec, name, bad);
    if (!*bad && avro_value_set_string(&f, v))
        *bad = 1;
}

/* Optional fields are ["null", T]: branch 0 is null, branch 1 the value. */
static void set_null(avro_value_t *rec, const char *name, int *bad)
{
    avro_value_t f = child(rec, name, bad), b;
    if (!*bad && (avro_value_set_branch(&f, 0, &b) || avro_value_set_null(&b)))
        *bad = 1;
}

static avro_value_t set_some(avro_value_t *rec, const char *name, int *bad)
{
    avro_value_t f = child(rec, name, bad), b;
    memset(&b, 0, sizeof b);
    if (!*bad && avro_value_set_branch(&f, 1, &b))
        *bad = 1;
    return b;
}

static void set_opt_long(avro_value_t *rec, const char *name, bool present, int64_t v, int *bad)
{
    if (!present) {
        set_null(rec, name, bad);
        return;
    }
    avro_value_t b = set_some(rec, name, bad);
    if (!*bad && avro_value_set_long(&b, v))
        *bad = 1;
}

enum stat_kind { ST_SIZE, ST_VALUES, ST_NULLS, ST_NANS, ST_LOWER, ST_UPPER };

static bool stat_present(const struct iceberg_column_stats *s, enum stat_kind k)
{
    switch (k) {
    case ST_SIZE: return s->column_size >= 0;
    case ST_VALUES: return s->value_count >= 0;
    case ST_NULLS: return s->null_count >= 0;
    case ST_NANS: return s->nan_count >= 0;
    case ST_LOWER: return s->lower != NULL;
    case ST_UPPER: return s->upper != NULL;
    }
    return false;
}

/* One int-keyed stats map; null when no column has the metric. */
static void set_stats_map(avro_value_t *df, const char *name, const struct iceberg_data_file *f,
                          enum stat_kind k, int *bad)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n_stats; i++)
        n += stat_present(&f->stats[i], k);
    if (n == 0) {
        set_null(df, name, bad);
        return;
    }
    avro_value_t arr = set_some(df, name, bad);
    for (size_t i = 0; i < f->n_stats && !*bad; i++) {
        const struct iceberg_column_stats *s = &f->stats[i];
        if (!stat_present(s, k))
            continue;
        avro_value_t kv, v;
        if (avro_value_append(&arr, &kv, NULL)) {
            *bad = 1;
            break;
        }
        set_int(&kv, "key", s->field_id, bad);
        v = child(&kv, "value", bad);
        if (*bad)
            break;
        int rc;
        switch (k) {
        case ST_SIZE: rc = avro_value_set_long(&v, s->column_size); break;
        case ST_VALUES: rc = avro_value_set_long(&v, s->value_count); break;
        case ST_NULLS: rc = avro_value_set_long(&v, s->null_count); break;
        case ST_NANS: rc = avro_value_set_long(&v, s->nan_count); break;
        case ST_LOWER: rc = avro_value_set_bytes(&v, (void *)(uintptr_t)s->lower, s->lower_len); break;
        default: rc = avro_value_set_bytes(&v, (void *)(uintptr_t)s->upper, s->upper_len); break;
        }
        if (rc)
            *bad = 1;
    }
}

static const char *content_name(enum iceberg_content c)
{
    return c == ICEBERG_CONTENT_DATA ? "data" : "deletes";
}

static int check_file(const struct iceberg_data_file *f, size_t i, enum iceberg_content content,
                      struct loch_err *err)
{
    if (!f->path)
        return loch_errf(err, LOCH_EINVAL, "manifest entry %zu has no file path", i);
    if (f->content != content)
        return loch_errf(err, LOCH_EINVAL,
                         "manifest entry %zu (%s) has content %d in a %s manifest", i, f->path,
                         (int)f->content, content_name(content));
    if (f->status < ICEBERG_EXISTING || f->status > ICEBERG_DELETED)
        return loch_errf(err, LOCH_EINVAL, "manifest entry %zu (%s) has status %d", i, f->path,
                         (int)f->status);
    if (f->record_count < 0 || f->file_size < 0)
        return loch_errf(err, LOCH_EINVAL, "manifest entry %zu (%s) has a negative record count or size",
                         i, f->path);
    /* spec "Sequence Number Inheritance": only ADDED entries may leave them null. */
    if (f->status != ICEBERG_ADDED && (f->sequence_number < 0 || f->file_sequence_number < 0))
        return loch_errf(err, LOCH_EINVAL,
                         "manifest entry %zu (%s) is EXISTING or DELETED without explicit "
                         "sequence numbers",
                         i, f->path);
    for (size_t j = 0; j < f->n_stats; j++)
        if ((f->stats[j].lower_len && !f->stats[j].lower) ||
            (f->stats[j].upper_len && !f->stats[j].upper))
            return loch_errf(err, LOCH_EINVAL, "manifest entry %zu (%s): bound of column %d has a length but no bytes",
                             i, f->path, f->stats[j].field_id);
    return 0;
}

static void encode_entry(avro_value_t *e, const struct iceberg_data_file *f, int *bad)
{
    set_int(e, "status", (int32_t)f->status, bad);
    set_opt_long(e, "snapshot_id", f->snapshot_id >= 0, f->snapshot_id, bad);
    set_opt_long(e, "sequence_number", f->sequence_number >= 0, f->sequence_number, bad);
    set_opt_long(e, "file_sequence_number", f->file_sequence_number >= 0,
                 f->file_sequence_number, bad);

    avro_value_t df = child(e, "data_file", bad);
    if (*bad)
        return;
    set_int(&df, "content", (int32_t)f->content, bad);
    set_str(&df, "file_path", f->path, bad);
    set_str(&df, "file_format", "PARQUET", bad); /* upper case, as Java and PyIceberg write */
    /* partition: r102 is empty for an unpartitioned table; nothing to set. */
    set_long(&df, "record_count", f->record_count, bad);
    set_long(&df, "file_size_in_bytes", f->file_size, bad);
    set_stats_map(&df, "column_sizes", f, ST_SIZE, bad);
    set_stats_map(&df, "value_counts", f, ST_VALUES, bad);
    set_stats_map(&df, "null_value_counts", f, ST_NULLS, bad);
    set_stats_map(&df, "nan_value_counts", f, ST_NANS, bad);
    set_stats_map(&df, "lower_bounds", f, ST_LOWER, bad);
    set_stats_map(&df, "upper_bounds", f, ST_UPPER, bad);
    set_null(&df, "key_metadata", bad);
    set_null(&df, "split_offsets", bad);
    set_null(&df, "equality_ids", bad); /* loch writes no equality deletes */
    /* Data files record sort order 0 (unsorted), as Java does; the spec wants null for
     * position deletes. */
    if (f->content == ICEBERG_CONTENT_DATA) {
        avro_value_t b = set_some(&df, "sort_order_id", bad);
        if (!*bad && avro_value_set_int(&b, 0))
            *bad = 1;
    } else {
        set_null(&df, "sort_order_id", bad);
    }
    if (f->referenced_data_file) {
        avro_value_t b = set_some(&df, "referenced_data_file", bad);
        if (!*bad && avro_value_set_string(&b, f->referenced_data_file))
            *bad = 1;
    } else {
        set_null(&df, "referenced_data_file", bad);
    }
}

int iceberg_manifest_encode(const struct iceberg_schema *table_schema, enum iceberg_content content,
                            const struct iceberg_data_file *files, size_t n_files, struct buf *out,
                            struct loch_err *err)
{
    if (!table_schema || (n_files && !files) || !out)
        return loch_errf(err, LOCH_EINVAL, "iceberg_manifest_encode: missing argument");
    if (content != ICEBERG_CONTENT_DATA && content != ICEBERG_CONTENT_POSITION_DELETES)
        return loch_errf(err, LOCH_EINVAL, "manifest content %d is not data or position deletes",
                         (int)content);
    for (size_t i = 0; i < n_files; i++) {
        int rc = check_file(&files[i], i, content, err);
        if (rc)
            return rc;
    }

    struct iceberg_avro_writer w;
    int rc = iceberg_avro_writer_init(&w, MANIFEST_ENTRY_SCHEMA, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n_files && rc == 0; i++) {
        int bad = 0;
        encode_entry(&w.rec, &files[i], &bad);
        if (bad)
            rc = loch_errf(err, LOCH_EINTERNAL, "cannot build manifest entry %zu (%s): %s", i,
                           files[i].path, avro_strerror());
        else
            rc = iceberg_avro_writer_append(&w, err);
    }
    if (rc == 0) {
        /* Manifest file metadata (spec "Manifests", v1-v3 table): all values are strings. */
        struct buf schema = {0};
        char schema_id[16];
        iceberg_schema_to_json(table_schema, &schema);
        snprintf(schema_id, sizeof schema_id, "%d", table_schema->schema_id);
        const struct iceberg_kv meta[] = {
            {"schema", schema.data ? schema.data : "{}"},
            {"schema-id", schema_id},
            {"partition-spec", "[]"},
            {"partition-spec-id", "0"},
            {"format-version", "2"},
            {"content", content_name(content)},
        };
        rc = iceberg_avro_writer_finish(&w, meta, sizeof meta / sizeof meta[0], out, err);
        buf_free(&schema);
    }
    iceberg_avro_writer_free(&w);
    return rc;
}

int iceberg_manifest_list_encode(const struct iceberg_manifest *ms, size_t n, int64_t snapshot_id,
                                 int64_t parent_id, int64_t sequence_number, struct buf *out,
                                 struct loch_err *err)
{
    if ((n && !ms) || !out)
        return loch_errf(err, LOCH_EINVAL, "iceberg_manifest_list_encode: missing argument");
    for (size_t i = 0; i < n; i++) {
        if (!ms[i].path)
            return loch_errf(err, LOCH_EINVAL, "manifest list row %zu has no path", i);
        if (ms[i].content != ICEBERG_CONTENT_DATA && ms[i].content != ICEBERG_CONTENT_POSITION_DELETES)
            return loch_errf(err, LOCH_EINVAL, "manifest list row %zu (%s) has content %d", i,
                             ms[i].path, (int)ms[i].content);
        if (ms[i].sequence_number < 0 || ms[i].min_sequence_number < 0)
            return loch_errf(err, LOCH_EINVAL, "manifest list row %zu (%s) has no sequence number",
                             i, ms[i].path);
    }

    struct iceberg_avro_writer w;
    int rc = iceberg_avro_writer_init(&w, MANIFEST_FILE_SCHEMA, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct iceberg_manifest *m = &ms[i];
        avro_value_t *r = &w.rec;
        int bad = 0;
        set_str(r, "manifest_path", m->path, &bad);
        set_long(r, "manifest_length", m->length, &bad);
        set_int(r, "partition_spec_id", m->spec_id, &bad);
        set_int(r, "content", (int32_t)m->content, &bad);
        set_long(r, "sequence_number", m->sequence_number, &bad);
        set_long(r, "min_sequence_number", m->min_sequence_number, &bad);
        set_long(r, "added_snapshot_id", m->added_snapshot_id, &bad);
        set_int(r, "added_files_count", m->added_files, &bad);
        set_int(r, "existing_files_count", m->existing_files, &bad);
        set_int(r, "deleted_files_count", m->deleted_files, &bad);
        set_long(r, "added_rows_count", m->added_rows, &bad);
        set_long(r, "existing_rows_count", m->existing_rows, &bad);
        set_long(r, "deleted_rows_count", m->deleted_rows, &bad);
        /* Unpartitioned: an empty summary list, as Java and PyIceberg write (a summary
         * with contains_null=false and null bounds would make readers skip the manifest). */
        set_some(r, "partitions", &bad);
        set_null(r, "key_metadata", &bad);
        if (bad)
            rc = loch_errf(err, LOCH_EINTERNAL, "cannot build manifest list row %zu (%s): %s", i,
                           m->path, avro_strerror());
        else
            rc = iceberg_avro_writer_append(&w, err);
    }
    if (rc == 0) {
        /* Java's ManifestListWriter.V2Writer keys; PyIceberg writes "null" for no parent. */
        char sid[24], pid[24], seq[24];
        snprintf(sid, sizeof sid, "%lld", (long long)snapshot_id);
        if (parent_id >= 0)
            snprintf(pid, sizeof pid, "%lld", (long long)parent_id);
        else
            snprintf(pid, sizeof pid, "null");
        snprintf(seq, sizeof seq, "%lld", (long long)sequence_number);
        const struct iceberg_kv meta[] = {
            {"snapshot-id", sid},
            {"parent-snapshot-id", pid},
            {"sequence-number", seq},
            {"format-version", "2"},
        };
        rc = iceberg_avro_writer_finish(&w, meta, sizeof meta / sizeof meta[0], out, err);
    }
    iceberg_avro_writer_free(&w);
    return rc;
}

/* ---- reading: by field name on the writer's schema ----
 * Files may come from Java, PyIceberg or DuckDB, whose schemas differ in field order,
 * extra fields and union branch order, so every field is looked up by name and an
 * absent optional field reads as null. */

/* The value of field name in rec, unwrapped from its union; false when the field is
 * absent or null. */
static bool field(avro_value_t *rec, const char *name, avro_value_t *out)
{
    avro_value_t f, b;
    if (avro_value_get_type(rec) != AVRO_RECORD || avro_value_get_by_name(rec, name, &f, NULL))
        return false;
    if (avro_value_get_type(&f) == AVRO_UNION) {
        if (avro_value_get_current_branch(&f, &b))
            return false;
        f = b;
    }
    if (avro_value_get_type(&f) == AVRO_NULL)
        return false;
    *out = f;
    return true;
}

static bool as_long(avro_value_t *v, int64_t *out)
{
    int32_t i;
    switch (avro_value_get_type(v)) {
    case AVRO_INT64: return avro_value_get_long(v, out) == 0;
    case AVRO_INT32:
        if (avro_value_get_int(v, &i))
            return false;
        *out = i;
        return true;
    default: return false;
    }
}

static bool get_long(avro_value_t *rec, const char *name, int64_t *out)
{
    avro_value_t v;
    return field(rec, name, &v) && as_long(&v, out);
}

static bool get_int(avro_value_t *rec, const char *name, int *out)
{
    int64_t v;
    if (!get_long(rec, name, &v) || v < INT32_MIN || v > INT32_MAX)
        return false;
    *out = (int)v;
    return true;
}

/* A string or bytes value copied into a (NUL-terminated); *len excludes the NUL. */
static bool as_bytes(avro_value_t *v, struct arena *a, const char **out, size_t *len)
{
    const void *p = NULL;
    size_t n = 0;
    const char *s = NULL;
    switch (avro_value_get_type(v)) {
    case AVRO_STRING:
        if (avro_value_get_string(v, &s, &n))
            return false;
        p = s;
        n = n ? n - 1 : 0; /* avro-c counts the NUL */
        break;
    case AVRO_BYTES:
    case AVRO_FIXED:
        if ((avro_value_get_type(v) == AVRO_BYTES ? avro_value_get_bytes(v, &p, &n)
                                                  : avro_value_get_fixed(v, &p, &n)))
            return false;
        break;
    default: return false;
    }
    char *c = arena_alloc(a, n + 1);
    if (n)
        memcpy(c, p, n);
    *out = c;
    if (len)
        *len = n;
    return true;
}

static bool get_str(avro_value_t *rec, const char *name, struct arena *a, const char **out)
{
    avro_value_t v;
    return field(rec, name, &v) && as_bytes(&v, a, out, NULL);
}

/* Finds or adds the stats slot for field_id. hint speeds up the usual case where every
 * map lists the columns in the same order. */
static struct iceberg_column_stats *stats_slot(struct iceberg_data_file *f, size_t *cap,
                                               size_t *hint, int field_id, struct arena *a)
{
    for (size_t k = 0; k < f->n_stats; k++) {
        size_t i = (*hint + k) % f->n_stats;
        if (f->stats[i].field_id == field_id) {
            *hint = i + 1;
            return &f->stats[i];
        }
    }
    if (f->n_stats == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        f->stats = arena_grow(a, f->stats, f->n_stats, ncap, sizeof *f->stats);
        *cap = ncap;
    }
    struct iceberg_column_stats *s = &f->stats[f->n_stats++];
    memset(s, 0, sizeof *s);
    s->field_id = field_id;
    s->column_size = s->value_count = s->null_count = s->nan_count = -1;
    *hint = f->n_stats;
    return s;
}

static int read_stats_map(avro_value_t *df, const char *name, enum stat_kind k,
                          struct iceberg_data_file *f, size_t *cap, struct arena *a, size_t entry,
                          struct loch_err *err)
{
    avro_value_t arr;
    size_t n = 0, hint = 0;
    if (!field(df, name, &arr))
        return 0; /* optional: absent or null */
    if (avro_value_get_type(&arr) != AVRO_ARRAY || avro_value_get_size(&arr, &n))
        return loch_errf(err, LOCH_ECORRUPT, "manifest entry %zu: %s is not an array of key/value records",
                         entry, name);
    for (size_t i = 0; i < n; i++) {
        avro_value_t kv, v;
        int key;
        if (avro_value_get_by_index(&arr, i, &kv, NULL) || !get_int(&kv, "key", &key) ||
            !field(&kv, "value", &v))
            return loch_errf(err, LOCH_ECORRUPT, "manifest entry %zu: %s item %zu has no key or value",
                             entry, name, i);
        struct iceberg_column_stats *s = stats_slot(f, cap, &hint, key, a);
        bool ok;
        const char *p;
        switch (k) {
        case ST_SIZE: ok = as_long(&v, &s->column_size); break;
        case ST_VALUES: ok = as_long(&v, &s->value_count); break;
        case ST_NULLS: ok = as_long(&v, &s->null_count); break;
        case ST_NANS: ok = as_long(&v, &s->nan_count); break;
        case ST_LOWER:
            ok = as_bytes(&v, a, &p, &s->lower_len);
            s->lower = (const uint8_t *)p;
            break;
        default:
            ok = as_bytes(&v, a, &p, &s->upper_len);
            s->upper = (const uint8_t *)p;
            break;
        }
        if (!ok)
            return loch_errf(err, LOCH_ECORRUPT, "manifest entry %zu: %s value for column %d has the wrong type",
                             entry, name, key);
    }
    return 0;
}

static int decode_entry(avro_value_t *e, size_t i, const struct iceberg_manifest *m,
                        struct arena *a, struct iceberg_data_file *f, struct loch_err *err)
{
    avro_value_t df;
    int status, content = 0;
    memset(f, 0, sizeof *f);

    if (!get_int(e, "status", &status) || status < 0 || status > 2)
        return loch_errf(err, LOCH_ECORRUPT, "manifest entry %zu has no valid status", i);
    f->status = (enum iceberg_entry_status)status;
    if (!get_long(e, "snapshot_id", &f->snapshot_id))
        f->snapshot_id = -1;
    if (!get_long(e, "sequence_number", &f->sequence_number))
        f->sequence_number = -1;
    if (!get_long(e, "file_sequence_number", &f->file_sequence_number))
        f->file_sequence_number = -1;

    if (!field(e, "data_file", &df) || avro_value_get_type(&df) != AVRO_RECORD)
        return loch_errf(err, LOCH_ECORRUPT, "manifest entry %zu has no data_file", i);
    /* content is v2-required; a v1 manifest has none and holds data files only. */
    avro_value_t cv;
    if (field(&df, "content", &cv) && !get_int(&df, "content", &content))
        return loch_errf(err, LOCH_ECORRUPT, "manifest entry %zu has a bad data_file.content", i);
    if (content == 2)
        return loch_errf(err, LOCH_EUNSUPPORTED,
                         "manifest entry %zu is an equality delete file; loch does not read "
                         "equality deletes", i);
    if (content != 0 && content != 1)
        return loch_errf(err, LOCH_ECORRUPT, "manifest entry %zu has data_file.content %d", i,
                         content);
    f->content = (enum iceberg_content)content;
    if (!get_str(&df, "file_path", a, &f->path))
        return loch_errf(err, LOCH_ECORRUPT, "manifest entry %zu has no data_file.file_path", i);
    if (!get_long(&df, "record_count", &f->record_count) ||
        !get_long(&df, "file_size_in_bytes", &f->file_size))
        return loch_errf(err, LOCH_ECORRUPT,
                         "manifest entry %zu (%s) lacks record_count or file_size_in_bytes", i,
                         f->path);
    if (!get_str(&df, "referenced_data_file", a, &f->referenced_data_file))
        f->referenced_data_file = NULL;

    size_t cap = 0;
    static const struct { const char *name; enum stat_kind k; } maps[] = {
        {"column_sizes", ST_SIZE},      {"value_counts", ST_VALUES}, {"null_value_counts", ST_NULLS},
        {"nan_value_counts", ST_NANS},  {"lower_bounds", ST_LOWER},  {"upper_bounds", ST_UPPER},
    };
    for (size_t k = 0; k < sizeof maps / sizeof maps[0]; k++) {
        int rc = read_stats_map(&df, maps[k].name, maps[k].k, f, &cap, a, i, err);
        if (rc)
            return rc;
    }

    /* spec "Sequence Number Inheritance": a null snapshot id always comes from the
     * manifest-list row; null sequence numbers only for ADDED entries. */
    if (m) {
        if (f->snapshot_id < 0)
            f->snapshot_id = m->added_snapshot_id;
        if (f->status == ICEBERG_ADDED) {
            if (f->sequence_number < 0)
                f->sequence_number = m->sequence_number;
            if (f->file_sequence_number < 0)
                f->file_sequence_number = m->sequence_number;
        }
    }
    return 0;
}

int iceberg_manifest_decode(const uint8_t *data, size_t len, const struct iceberg_manifest *m,
                            struct arena *a, struct iceberg_data_file **out, size_t *n_out,
                            struct loch_err *err)
{
    /* An Avro container cut at a block boundary is still a valid file with fewer
     * records, so the exact length from the manifest list is the only truncation check. */
    if (m && m->length > 0 && (uint64_t)m->length != len)
        return loch_errf(err, LOCH_ECORRUPT, "manifest %s is %zu bytes but the manifest list says %lld",
                         m->path ? m->path : "(unnamed)", len, (long long)m->length);
    struct iceberg_avro_reader r;
    int rc = iceberg_avro_reader_open(&r, data, len, "manifest", a, err);
    if (rc)
        return rc;
    struct iceberg_data_file *files = NULL;
    size_t n = 0;
    size_t cap = 0;
    while ((rc = iceberg_avro_reader_next(&r, err)) == 1) {
        if (n == cap) { /* grown as records decode, so a bogus count costs nothing */
            cap = cap ? cap * 2 : 8;
            files = arena_grow(a, files, n, cap, sizeof *files);
        }
        rc = decode_entry(&r.rec, n, m, a, &files[n], err);
        if (rc)
            break;
        n++;
    }
    iceberg_avro_reader_close(&r);
    if (rc)
        return rc;
    *out = files;
    *n_out = n;
    return 0;
}

static int decode_manifest_row(avro_value_t *rec, size_t i, struct arena *a,
                               struct iceberg_manifest *m, struct loch_err *err)
{
    int content = 0;
    memset(m, 0, sizeof *m);
    if (!get_str(rec, "manifest_path", a, &m->path) ||
        !get_long(rec, "manifest_length", &m->length) ||
        !get_int(rec, "partition_spec_id", &m->spec_id) ||
        !get_long(rec, "added_snapshot_id", &m->added_snapshot_id))
        return loch_errf(err, LOCH_ECORRUPT,
                         "manifest list row %zu lacks manifest_path, manifest_length, "
                         "partition_spec_id or added_snapshot_id", i);
    /* v1 lists have no content or sequence numbers: data, sequence number 0. */
    avro_value_t v;
    if (field(rec, "content", &v) && !get_int(rec, "content", &content))
        return loch_errf(err, LOCH_ECORRUPT, "manifest list row %zu has a bad content", i);
    if (content != 0 && content != 1)
        return loch_errf(err, LOCH_ECORRUPT, "manifest list row %zu (%s) has content %d", i,
                         m->path, content);
    m->content = (enum iceberg_content)content;
    if (!get_long(rec, "sequence_number", &m->sequence_number))
        m->sequence_number = 0;
    if (!get_long(rec, "min_sequence_number", &m->min_sequence_number))
        m->min_sequence_number = 0;
    /* Very old Java wrote added_data_files_count etc. (apache/iceberg #907). */
    if (!get_int(rec, "added_files_count", &m->added_files) &&
        !get_int(rec, "added_data_files_count", &m->added_files))
        m->added_files = 0;
    if (!get_int(rec, "existing_files_count", &m->existing_files) &&
        !get_int(rec, "existing_data_files_count", &m->existing_files))
        m->existing_files = 0;
    if (!get_int(rec, "deleted_files_count", &m->deleted_files) &&
        !get_int(rec, "deleted_data_files_count", &m->deleted_files))
        m->deleted_files = 0;
    if (!get_long(rec, "added_rows_count", &m->added_rows))
        m->added_rows = 0;
    if (!get_long(rec, "existing_rows_count", &m->existing_rows))
        m->existing_rows = 0;
    if (!get_long(rec, "deleted_rows_count", &m->deleted_rows))
        m->deleted_rows = 0;
    return 0;
}

int iceberg_manifest_list_decode(const uint8_t *data, size_t len, struct arena *a,
                                 struct iceberg_manifest **out, size_t *n_out, struct loch_err *err)
{
    struct iceberg_avro_reader r;
    int rc = iceberg_avro_reader_open(&r, data, len, "manifest list", a, err);
    if (rc)
        return rc;
    struct iceberg_manifest *ms = NULL;
    size_t n = 0;
    size_t cap = 0;
    while ((rc = iceberg_avro_reader_next(&r, err)) == 1) {
        if (n == cap) { /* grown as records decode, so a bogus count costs nothing */
            cap = cap ? cap * 2 : 8;
            ms = arena_grow(a, ms, n, cap, sizeof *ms);
        }
        rc = decode_manifest_row(&r.rec, n, a, &ms[n], err);
        if (rc)
            break;
        n++;
    }
    iceberg_avro_reader_close(&r);
    if (rc)
        return rc;
    *out = ms;
    *n_out = n;
    return 0;
}
