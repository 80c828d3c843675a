/* metadata.c: table metadata and schema JSON (spec "Table Metadata", Appendix C), both
 * directions, through jansson. Not for file I/O (table.c) or Avro manifests (manifest.c).
 *
 * Writing emits every v2-required field; reading tolerates what Java and PyIceberg write
 * (unknown keys are ignored) but refuses partitioned layouts and sort orders of other
 * than identity transforms, which loch cannot keep. */
#include "iceberg/iceberg.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ writing */

static json_t *schema_to_obj(const struct iceberg_schema *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string("struct"));
    json_object_set_new(o, "schema-id", json_integer(s->schema_id));
    if (s->n_identifier_ids) {
        json_t *ids = json_array();
        for (size_t i = 0; i < s->n_identifier_ids; i++)
            json_array_append_new(ids, json_integer(s->identifier_ids[i]));
        json_object_set_new(o, "identifier-field-ids", ids);
    }
    json_t *fields = json_array();
    for (size_t i = 0; i < s->n_fields; i++) {
        const struct iceberg_field *f = &s->fields[i];
        char type[64];
        iceberg_type_format(&f->type, type, sizeof type);
        json_t *fo = json_object();
        json_object_set_new(fo, "id", json_integer(f->id));
        json_object_set_new(fo, "name", json_string(f->name));
        json_object_set_new(fo, "required", json_boolean(f->required));
        json_object_set_new(fo, "type", json_string(type));
        if (f->doc)
            json_object_set_new(fo, "doc", json_string(f->doc));
        json_array_append_new(fields, fo);
    }
    json_object_set_new(o, "fields", fields);
    return o;
}

/* Dumps o (consumed) to out. Insertion order is kept (JSON_PRESERVE_ORDER), so the
 * output is stable and diffable. */
static void dump_to(json_t *o, struct buf *out)
{
    char *text = json_dumps(o, JSON_PRESERVE_ORDER | JSON_INDENT(2));
    json_decref(o);
    if (text) {
        buf_puts(out, text);
        free(text);
    }
}

void iceberg_schema_to_json(const struct iceberg_schema *s, struct buf *out)
{
    dump_to(schema_to_obj(s), out);
}

static json_t *kv_obj(const struct iceberg_kv *kv, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, kv[i].key, json_string(kv[i].value ? kv[i].value : ""));
    return o;
}

static json_t *snapshot_obj(const struct iceberg_snapshot *sn)
{
    json_t *o = json_object();
    json_object_set_new(o, "snapshot-id", json_integer(sn->snapshot_id));
    if (sn->parent_id >= 0)
        json_object_set_new(o, "parent-snapshot-id", json_integer(sn->parent_id));
    json_object_set_new(o, "sequence-number", json_integer(sn->sequence_number));
    json_object_set_new(o, "timestamp-ms", json_integer(sn->timestamp_ms));
    json_object_set_new(o, "manifest-list", json_string(sn->manifest_list));
    json_t *sum = json_object();
    /* "operation" first: it is the one key every reader looks for. */
    const char *op = "append";
    for (size_t i = 0; i < sn->n_summary; i++)
        if (!strcmp(sn->summary[i].key, "operation"))
            op = sn->summary[i].value;
    json_object_set_new(sum, "operation", json_string(op));
    for (size_t i = 0; i < sn->n_summary; i++)
        if (strcmp(sn->summary[i].key, "operation"))
            json_object_set_new(sum, sn->summary[i].key,
                                json_string(sn->summary[i].value ? sn->summary[i].value : ""));
    json_object_set_new(o, "summary", sum);
    if (sn->schema_id >= 0)
        json_object_set_new(o, "schema-id", json_integer(sn->schema_id));
    return o;
}

/* spec "Sort Orders": order 0 is the unsorted order and is always written, so a table
 * whose order was reset (WRITE UNORDERED) points back at it. */
static json_t *sort_orders_arr(const struct iceberg_metadata *m)
{
    json_t *arr = json_array();
    bool have0 = false;
    for (size_t i = 0; i < m->n_sort_orders; i++)
        have0 |= m->sort_orders[i].order_id == 0;
    if (!have0)
        json_array_append_new(arr, json_pack("{s:i, s:[]}", "order-id", 0, "fields"));
    for (size_t i = 0; i < m->n_sort_orders; i++) {
        const struct iceberg_sort_order *so = &m->sort_orders[i];
        json_t *fields = json_array();
        for (size_t j = 0; j < so->n_fields; j++)
            json_array_append_new(fields, json_pack("{s:s, s:i, s:s, s:s}", "transform", "identity",
                                                    "source-id", so->fields[j].source_id, "direction",
                                                    so->fields[j].desc ? "desc" : "asc", "null-order",
                                                    so->fields[j].nulls_first ? "nulls-first" : "nulls-last"));
        json_array_append_new(arr, json_pack("{s:i, s:o}", "order-id", so->order_id, "fields", fields));
    }
    return arr;
}

/* The invariants Java's TableMetadata checks on load; writing a file that breaks them
 * would make the table unreadable, so it is an internal error here. */
static int check_invariants(const struct iceberg_metadata *m, struct loch_err *err)
{
    if (!iceberg_metadata_current_schema(m))
        return loch_errf(err, LOCH_EINTERNAL,
                         "table metadata for %s: current-schema-id %d is not in schemas",
                         m->location, m->current_schema_id);
    if (m->current_snapshot_id != -1 && !iceberg_metadata_snapshot(m, m->current_snapshot_id))
        return loch_errf(err, LOCH_EINTERNAL,
                         "table metadata for %s: current-snapshot-id %lld is not in snapshots",
                         m->location, (long long)m->current_snapshot_id);
    /* Java binds the default sort order to the current schema on load. */
    bool found = m->default_sort_order_id == 0;
    for (size_t i = 0; i < m->n_sort_orders; i++) {
        const struct iceberg_sort_order *so = &m->sort_orders[i];
        if (so->order_id != m->default_sort_order_id)
            continue;
        found = true;
        for (size_t j = 0; j < so->n_fields; j++)
            if (!iceberg_schema_field(iceberg_metadata_current_schema(m), so->fields[j].source_id))
                return loch_errf(err, LOCH_EINTERNAL,
                                 "table metadata for %s: sort order %d names field id %d, which is "
                                 "not in the current schema", m->location, so->order_id,
                                 so->fields[j].source_id);
    }
    if (!found)
        return loch_errf(err, LOCH_EINTERNAL,
                         "table metadata for %s: default-sort-order-id %d is not in sort-orders",
                         m->location, m->default_sort_order_id);
    for (size_t i = 0; i < m->n_snapshots; i++)
        if (m->snapshots[i].sequence_number > m->last_sequence_number)
            return loch_errf(err, LOCH_EINTERNAL,
                             "table metadata for %s: snapshot %lld has sequence number %lld "
                             "greater than last-sequence-number %lld",
                             m->location, (long long)m->snapshots[i].snapshot_id,
                             (long long)m->snapshots[i].sequence_number,
                             (long long)m->last_sequence_number);
    return 0;
}

int iceberg_metadata_to_json(const struct iceberg_metadata *m, struct buf *out, struct loch_err *err)
{
    int rc = check_invariants(m, err);
    if (rc)
        return rc;
    json_t *o = json_object();
    json_object_set_new(o, "format-version", json_integer(2));
    json_object_set_new(o, "table-uuid", json_string(m->table_uuid));
    json_object_set_new(o, "location", json_string(m->location));
    json_object_set_new(o, "last-sequence-number", json_integer(m->last_sequence_number));
    json_object_set_new(o, "last-updated-ms", json_integer(m->last_updated_ms));
    json_object_set_new(o, "last-column-id", json_integer(m->last_column_id));
    json_t *schemas = json_array();
    for (size_t i = 0; i < m->n_schemas; i++)
        json_array_append_new(schemas, schema_to_obj(&m->schemas[i]));
    json_object_set_new(o, "schemas", schemas);
    json_object_set_new(o, "current-schema-id", json_integer(m->current_schema_id));
    json_object_set_new(o, "partition-specs",
                        json_pack("[{s:i, s:[]}]", "spec-id", 0, "fields"));
    json_object_set_new(o, "default-spec-id", json_integer(0));
    json_object_set_new(o, "last-partition-id", json_integer(m->last_partition_id));
    json_object_set_new(o, "sort-orders", sort_orders_arr(m));
    json_object_set_new(o, "default-sort-order-id", json_integer(m->default_sort_order_id));
    json_object_set_new(o, "properties", kv_obj(m->properties, m->n_properties));
    /* -1, not absent, for an empty table: older Trino cannot parse a missing id. */
    json_object_set_new(o, "current-snapshot-id", json_integer(m->current_snapshot_id));
    /* Java's validateRefs: main exists exactly when there is a current snapshot. */
    json_t *refs = json_object();
    if (m->current_snapshot_id != -1)
        json_object_set_new(refs, "main",
                            json_pack("{s:I, s:s}", "snapshot-id", (json_int_t)m->current_snapshot_id,
                                      "type", "branch"));
    json_object_set_new(o, "refs", refs);
    json_t *snaps = json_array();
    for (size_t i = 0; i < m->n_snapshots; i++)
        json_array_append_new(snaps, snapshot_obj(&m->snapshots[i]));
    json_object_set_new(o, "snapshots", snaps);
    json_t *slog = json_array();
    for (size_t i = 0; i < m->n_snapshot_log; i++)
        json_array_append_new(slog, json_pack("{s:I, s:I}", "timestamp-ms",
                                              (json_int_t)m->snapshot_log[i].timestamp_ms,
                                              "snapshot-id",
                                              (json_int_t)m->snapshot_log[i].snapshot_id));
    json_object_set_new(o, "snapshot-log", slog);
    json_t *mlog = json_array();
    for (size_t i = 0; i < m->n_metadata_log; i++)
        json_array_append_new(mlog, json_pack("{s:I, s:s}", "timestamp-ms",
                                              (json_int_t)m->metadata_log[i].timestamp_ms,
                                              "metadata-file", m->metadata_log[i].metadata_file));
    json_object_set_new(o, "metadata-log", mlog);
    dump_to(o, out);
    return 0;
}

/* ------------------------------------------------------------------ reading */

struct rd {
    struct arena *a;
    struct loch_err *err;
    const char *what; /* "table metadata" or "schema" */
};

static int missing(struct rd *r, const char *path)
{
    loch_errf(r->err, LOCH_ECORRUPT, "corrupt %s: missing required field \"%s\"", r->what, path);
    return loch_err_hint(r->err, "the file was not written by an Iceberg v2 writer, or is truncated");
}

static int wrong(struct rd *r, const char *path, const char *expected)
{
    return loch_errf(r->err, LOCH_ECORRUPT, "corrupt %s: field \"%s\" is not %s", r->what, path,
                     expected);
}

/* Field getters: path names the field in errors (e.g. "snapshots[2].manifest-list").
 * With required false, an absent or null field leaves *out untouched and returns 0. */
static int get_i64(struct rd *r, json_t *o, const char *key, const char *path, bool required,
                   int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return required ? missing(r, path) : 0;
    if (!json_is_integer(v))
        return wrong(r, path, "an integer");
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static int get_int(struct rd *r, json_t *o, const char *key, const char *path, bool required,
                   int *out)
{
    int64_t v = *out;
    int rc = get_i64(r, o, key, path, required, &v);
    if (rc)
        return rc;
    if (v < INT32_MIN || v > INT32_MAX)
        return wrong(r, path, "a 32-bit integer");
    *out = (int)v;
    return 0;
}

static int get_str(struct rd *r, json_t *o, const char *key, const char *path, bool required,
                   const char **out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return required ? missing(r, path) : 0;
    if (!json_is_string(v))
        return wrong(r, path, "a string");
    *out = arena_strndup(r->a, json_string_value(v), json_string_length(v));
    return 0;
}

static int get_array(struct rd *r, json_t *o, const char *key, const char *path, bool required,
                     json_t **out)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return required ? missing(r, path) : 0;
    if (!json_is_array(v))
        return wrong(r, path, "an array");
    *out = v;
    return 0;
}

/* A JSON object of strings into kv pairs; op_first moves "operation" to the front. */
static int read_kv(struct rd *r, json_t *v, const char *path, bool op_first,
                   struct iceberg_kv **out, size_t *n_out)
{
    if (!json_is_object(v))
        return wrong(r, path, "an object");
    size_t n = json_object_size(v), i = 0;
    struct iceberg_kv *kv = arena_alloc(r->a, (n ? n : 1) * sizeof *kv);
    const char *key;
    json_t *val;
    if (op_first) {
        json_t *op = json_object_get(v, "operation");
        if (op && json_is_string(op)) {
            kv[i].key = arena_strdup(r->a, "operation");
            kv[i].value = arena_strdup(r->a, json_string_value(op));
            i++;
        }
    }
    json_object_foreach(v, key, val)
    {
        if (op_first && !strcmp(key, "operation"))
            continue;
        if (!json_is_string(val)) {
            char p[256];
            snprintf(p, sizeof p, "%s.%s", path, key);
            return wrong(r, p, "a string");
        }
        kv[i].key = arena_strdup(r->a, key);
        kv[i].value = arena_strndup(r->a, json_string_value(val), json_string_length(val));
        i++;
    }
    *out = kv;
    *n_out = i;
    return 0;
}

static int read_schema(struct rd *r, json_t *o, const char *path, bool need_id,
                       struct iceberg_schema *s)
{
    char p[256];
    if (!json_is_object(o))
        return wrong(r, path, "an object");
    const char *type = NULL;
    snprintf(p, sizeof p, "%s.type", path);
    int rc = get_str(r, o, "type", p, false, &type);
    if (rc)
        return rc;
    if (type && strcmp(type, "struct"))
        return wrong(r, p, "\"struct\"");
    s->schema_id = 0;
    snprintf(p, sizeof p, "%s.schema-id", path);
    if ((rc = get_int(r, o, "schema-id", p, need_id, &s->schema_id)))
        return rc;
    json_t *fields, *ids;
    snprintf(p, sizeof p, "%s.fields", path);
    if ((rc = get_array(r, o, "fields", p, true, &fields)))
        return rc;
    s->n_fields = json_array_size(fields);
    s->fields = arena_alloc(r->a, (s->n_fields ? s->n_fields : 1) * sizeof *s->fields);
    for (size_t i = 0; i < s->n_fields; i++) {
        json_t *fo = json_array_get(fields, i);
        struct iceberg_field *f = &s->fields[i];
        snprintf(p, sizeof p, "%s.fields[%zu]", path, i);
        if (!json_is_object(fo))
            return wrong(r, p, "an object");
        char fp[300];
        snprintf(fp, sizeof fp, "%s.id", p);
        if ((rc = get_int(r, fo, "id", fp, true, &f->id)))
            return rc;
        snprintf(fp, sizeof fp, "%s.name", p);
        if ((rc = get_str(r, fo, "name", fp, true, &f->name)))
            return rc;
        json_t *req = json_object_get(fo, "required");
        snprintf(fp, sizeof fp, "%s.required", p);
        if (!req)
            return missing(r, fp);
        if (!json_is_boolean(req))
            return wrong(r, fp, "a boolean");
        f->required = json_is_true(req);
        snprintf(fp, sizeof fp, "%s.type", p);
        json_t *t = json_object_get(fo, "type");
        if (!t)
            return missing(r, fp);
        if (!json_is_string(t)) {
            loch_errf(r->err, LOCH_EUNSUPPORTED, "column \"%s\" has a nested type (struct, list or map)",
                      f->name);
            return loch_err_hint(r->err, "loch reads and writes tables of primitive columns only");
        }
        if ((rc = iceberg_type_parse(json_string_value(t), &f->type, r->err))) {
            loch_err_prefix(r->err, "column \"%s\"", f->name);
            return rc;
        }
        snprintf(fp, sizeof fp, "%s.doc", p);
        if ((rc = get_str(r, fo, "doc", fp, false, &f->doc)))
            return rc;
    }
    snprintf(p, sizeof p, "%s.identifier-field-ids", path);
    if ((rc = get_array(r, o, "identifier-field-ids", p, false, &ids)))
        return rc;
    s->n_identifier_ids = ids ? json_array_size(ids) : 0;
    s->identifier_ids = arena_alloc(r->a, (s->n_identifier_ids ? s->n_identifier_ids : 1) * sizeof(int));
    for (size_t i = 0; i < s->n_identifier_ids; i++) {
        json_t *v = json_array_get(ids, i);
        if (!json_is_integer(v))
            return wrong(r, p, "an array of integers");
        s->identifier_ids[i] = (int)json_integer_value(v);
        if (!iceberg_schema_field(s, s->identifier_ids[i]))
            return loch_errf(r->err, LOCH_ECORRUPT,
                             "corrupt %s: %s names field id %d, which is not in the schema", r->what,
                             p, s->identifier_ids[i]);
    }
    return 0;
}

static int unsupported_layout(struct rd *r, const char *what)
{
    loch_errf(r->err, LOCH_EUNSUPPORTED, "partitioned tables are not supported yet");
    loch_err_detail(r->err, "the table metadata has %s", what);
    return loch_err_hint(r->err, "loch reads and writes unpartitioned, unsorted tables only; "
                                 "recreate the table without a partition spec or sort order");
}

/* One sort order (spec "Sort Orders"); identity transforms only. */
static int read_sort_order(struct rd *r, json_t *v, size_t idx, struct iceberg_sort_order *so)
{
    char p[96];
    int rc;
    snprintf(p, sizeof p, "sort-orders[%zu].order-id", idx);
    if ((rc = get_int(r, v, "order-id", p, true, &so->order_id)))
        return rc;
    json_t *f;
    snprintf(p, sizeof p, "sort-orders[%zu].fields", idx);
    if ((rc = get_array(r, v, "fields", p, true, &f)))
        return rc;
    so->n_fields = json_array_size(f);
    so->fields = arena_alloc(r->a, (so->n_fields ? so->n_fields : 1) * sizeof *so->fields);
    for (size_t j = 0; j < so->n_fields; j++) {
        json_t *fo = json_array_get(f, j);
        snprintf(p, sizeof p, "sort-orders[%zu].fields[%zu]", idx, j);
        if (!json_is_object(fo))
            return wrong(r, p, "an object");
        const char *tr = json_string_value(json_object_get(fo, "transform"));
        const char *dir = json_string_value(json_object_get(fo, "direction"));
        const char *no = json_string_value(json_object_get(fo, "null-order"));
        if (!tr || strcmp(tr, "identity"))
            return unsupported_layout(r, "a sort order with a transform other than identity");
        if (!dir || (strcmp(dir, "asc") && strcmp(dir, "desc")))
            return wrong(r, p, "a direction \"asc\" or \"desc\"");
        if (!no || (strcmp(no, "nulls-first") && strcmp(no, "nulls-last")))
            return wrong(r, p, "a null-order \"nulls-first\" or \"nulls-last\"");
        snprintf(p, sizeof p, "sort-orders[%zu].fields[%zu].source-id", idx, j);
        if ((rc = get_int(r, fo, "source-id", p, true, &so->fields[j].source_id)))
            return rc;
        so->fields[j].desc = !strcmp(dir, "desc");
        so->fields[j].nulls_first = !strcmp(no, "nulls-first");
    }
    return 0;
}

/* partition-specs: only the single empty spec with id 0 is kept. sort-orders: kept when
 * made of identity fields. */
static int check_layouts(struct rd *r, json_t *root, struct iceberg_metadata *m)
{
    json_t *specs, *orders;
    int rc, def_spec = 0, def_order = 0;
    if ((rc = get_array(r, root, "partition-specs", "partition-specs", true, &specs)))
        return rc;
    if ((rc = get_int(r, root, "default-spec-id", "default-spec-id", true, &def_spec)))
        return rc;
    if ((rc = get_array(r, root, "sort-orders", "sort-orders", true, &orders)))
        return rc;
    if ((rc = get_int(r, root, "default-sort-order-id", "default-sort-order-id", true, &def_order)))
        return rc;
    size_t i;
    json_t *v;
    json_array_foreach(specs, i, v)
    {
        json_t *f = json_object_get(v, "fields");
        int id = 0;
        char p[64];
        snprintf(p, sizeof p, "partition-specs[%zu].spec-id", i);
        if ((rc = get_int(r, v, "spec-id", p, true, &id)))
            return rc;
        if (f && json_is_array(f) && json_array_size(f))
            return unsupported_layout(r, "a partition spec with fields");
        if (id != 0)
            return unsupported_layout(r, "a partition spec with id other than 0");
    }
    m->n_sort_orders = json_array_size(orders);
    m->sort_orders = arena_alloc(r->a, (m->n_sort_orders ? m->n_sort_orders : 1) * sizeof *m->sort_orders);
    bool found = false;
    json_array_foreach(orders, i, v)
    {
        if (!json_is_object(v)) {
            char p[64];
            snprintf(p, sizeof p, "sort-orders[%zu]", i);
            return wrong(r, p, "an object");
        }
        if ((rc = read_sort_order(r, v, i, &m->sort_orders[i])))
            return rc;
        found |= m->sort_orders[i].order_id == def_order;
    }
    if (def_spec != 0)
        return unsupported_layout(r, "default-spec-id other than 0");
    if (!found && def_order != 0)
        return loch_errf(r->err, LOCH_ECORRUPT,
                         "corrupt table metadata: default-sort-order-id %d is not in sort-orders",
                         def_order);
    m->default_sort_order_id = def_order;
    return 0;
}

static int read_snapshot(struct rd *r, json_t *o, size_t idx, struct iceberg_snapshot *sn)
{
    char p[96];
    int rc;
    if (!json_is_object(o)) {
        snprintf(p, sizeof p, "snapshots[%zu]", idx);
        return wrong(r, p, "an object");
    }
#define SNAP_PATH(k) (snprintf(p, sizeof p, "snapshots[%zu].%s", idx, k), p)
    if ((rc = get_i64(r, o, "snapshot-id", SNAP_PATH("snapshot-id"), true, &sn->snapshot_id)))
        return rc;
    sn->parent_id = -1;
    if ((rc = get_i64(r, o, "parent-snapshot-id", SNAP_PATH("parent-snapshot-id"), false,
                      &sn->parent_id)))
        return rc;
    if ((rc = get_i64(r, o, "sequence-number", SNAP_PATH("sequence-number"), true,
                      &sn->sequence_number)))
        return rc;
    if ((rc = get_i64(r, o, "timestamp-ms", SNAP_PATH("timestamp-ms"), true, &sn->timestamp_ms)))
        return rc;
    if ((rc = get_str(r, o, "manifest-list", SNAP_PATH("manifest-list"), true, &sn->manifest_list)))
        return rc;
    sn->schema_id = -1;
    if ((rc = get_int(r, o, "schema-id", SNAP_PATH("schema-id"), false, &sn->schema_id)))
        return rc;
    json_t *sum = json_object_get(o, "summary");
    if (!sum)
        return missing(r, SNAP_PATH("summary"));
    if ((rc = read_kv(r, sum, SNAP_PATH("summary"), true, &sn->summary, &sn->n_summary)))
        return rc;
    if (!sn->n_summary || strcmp(sn->summary[0].key, "operation"))
        return missing(r, SNAP_PATH("summary.operation"));
#undef SNAP_PATH
    return 0;
}

static int read_log(struct rd *r, json_t *root, const char *key, bool metadata_log,
                    struct iceberg_log_entry **out, size_t *n_out)
{
    json_t *arr;
    int rc = get_array(r, root, key, key, false, &arr);
    if (rc)
        return rc;
    size_t n = arr ? json_array_size(arr) : 0;
    struct iceberg_log_entry *e = arena_alloc(r->a, (n ? n : 1) * sizeof *e);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        char p[96];
        snprintf(p, sizeof p, "%s[%zu]", key, i);
        if (!json_is_object(o))
            return wrong(r, p, "an object");
        snprintf(p, sizeof p, "%s[%zu].timestamp-ms", key, i);
        if ((rc = get_i64(r, o, "timestamp-ms", p, true, &e[i].timestamp_ms)))
            return rc;
        e[i].snapshot_id = -1;
        if (metadata_log) {
            snprintf(p, sizeof p, "%s[%zu].metadata-file", key, i);
            rc = get_str(r, o, "metadata-file", p, true, &e[i].metadata_file);
        } else {
            snprintf(p, sizeof p, "%s[%zu].snapshot-id", key, i);
            rc = get_i64(r, o, "snapshot-id", p, true, &e[i].snapshot_id);
        }
        if (rc)
            return rc;
    }
    *out = e;
    *n_out = n;
    return 0;
}

static int read_metadata(struct rd *r, json_t *root, struct iceberg_metadata *m)
{
    int rc;
    if (!json_is_object(root))
        return wrong(r, "(root)", "an object");
    int fv = 0;
    if ((rc = get_int(r, root, "format-version", "format-version", true, &fv)))
        return rc;
    if (fv != 2) {
        loch_errf(r->err, LOCH_EUNSUPPORTED, "Iceberg format-version %d is not supported", fv);
        return loch_err_hint(r->err, "loch reads and writes format-version 2 tables; upgrade the "
                                     "table with ALTER TABLE ... SET TBLPROPERTIES "
                                     "('format-version'='2') in Spark");
    }
    const char *uuid = NULL, *location = NULL;
    if ((rc = get_str(r, root, "table-uuid", "table-uuid", true, &uuid)))
        return rc;
    if (strlen(uuid) != 36)
        return wrong(r, "table-uuid", "a UUID");
    memcpy(m->table_uuid, uuid, 37);
    if ((rc = get_str(r, root, "location", "location", true, &location)))
        return rc;
    size_t len = strlen(location);
    while (len > 1 && location[len - 1] == '/')
        len--;
    m->location = arena_strndup(r->a, location, len);
    if ((rc = get_i64(r, root, "last-sequence-number", "last-sequence-number", true,
                      &m->last_sequence_number)) ||
        (rc = get_i64(r, root, "last-updated-ms", "last-updated-ms", true, &m->last_updated_ms)) ||
        (rc = get_int(r, root, "last-column-id", "last-column-id", true, &m->last_column_id)))
        return rc;

    json_t *schemas;
    if ((rc = get_array(r, root, "schemas", "schemas", true, &schemas)))
        return rc;
    m->n_schemas = json_array_size(schemas);
    m->schemas = arena_alloc(r->a, (m->n_schemas ? m->n_schemas : 1) * sizeof *m->schemas);
    for (size_t i = 0; i < m->n_schemas; i++) {
        char p[64];
        snprintf(p, sizeof p, "schemas[%zu]", i);
        if ((rc = read_schema(r, json_array_get(schemas, i), p, true, &m->schemas[i])))
            return rc;
    }
    if ((rc = get_int(r, root, "current-schema-id", "current-schema-id", true, &m->current_schema_id)))
        return rc;
    if (!iceberg_metadata_current_schema(m))
        return loch_errf(r->err, LOCH_ECORRUPT,
                         "corrupt table metadata: current-schema-id %d is not in schemas",
                         m->current_schema_id);
    if ((rc = get_int(r, root, "last-partition-id", "last-partition-id", true, &m->last_partition_id)))
        return rc;
    if ((rc = check_layouts(r, root, m)))
        return rc;

    json_t *props = json_object_get(root, "properties");
    if (props && !json_is_null(props) &&
        (rc = read_kv(r, props, "properties", false, &m->properties, &m->n_properties)))
        return rc;

    json_t *snaps;
    if ((rc = get_array(r, root, "snapshots", "snapshots", false, &snaps)))
        return rc;
    m->n_snapshots = snaps ? json_array_size(snaps) : 0;
    m->snapshots = arena_alloc(r->a, (m->n_snapshots ? m->n_snapshots : 1) * sizeof *m->snapshots);
    for (size_t i = 0; i < m->n_snapshots; i++) {
        if ((rc = read_snapshot(r, json_array_get(snaps, i), i, &m->snapshots[i])))
            return rc;
        if (m->snapshots[i].sequence_number > m->last_sequence_number)
            return loch_errf(r->err, LOCH_ECORRUPT,
                             "corrupt table metadata: snapshot %lld has sequence number %lld "
                             "greater than last-sequence-number %lld",
                             (long long)m->snapshots[i].snapshot_id,
                             (long long)m->snapshots[i].sequence_number,
                             (long long)m->last_sequence_number);
    }

    /* SPEC Appendix F: readers may take -1 (or an absent id) as "no current snapshot". */
    m->current_snapshot_id = -1;
    if ((rc = get_i64(r, root, "current-snapshot-id", "current-snapshot-id", false,
                      &m->current_snapshot_id)))
        return rc;
    if (m->current_snapshot_id < 0)
        m->current_snapshot_id = -1;
    json_t *refs = json_object_get(root, "refs");
    json_t *main_ref = refs && json_is_object(refs) ? json_object_get(refs, "main") : NULL;
    if (main_ref) {
        int64_t main_id = -1;
        if ((rc = get_i64(r, main_ref, "snapshot-id", "refs.main.snapshot-id", true, &main_id)))
            return rc;
        if (main_id != m->current_snapshot_id)
            return loch_errf(r->err, LOCH_ECORRUPT,
                             "corrupt table metadata: refs.main points to snapshot %lld but "
                             "current-snapshot-id is %lld",
                             (long long)main_id, (long long)m->current_snapshot_id);
    }
    if (m->current_snapshot_id != -1 && !iceberg_metadata_snapshot(m, m->current_snapshot_id))
        return loch_errf(r->err, LOCH_ECORRUPT,
                         "corrupt table metadata: current-snapshot-id %lld is not in snapshots",
                         (long long)m->current_snapshot_id);

    if ((rc = read_log(r, root, "snapshot-log", false, &m->snapshot_log, &m->n_snapshot_log)))
        return rc;
    return read_log(r, root, "metadata-log", true, &m->metadata_log, &m->n_metadata_log);
}

static json_t *load(struct rd *r, const char *text, size_t len)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root) {
        loch_errf(r->err, LOCH_ECORRUPT, "corrupt %s: invalid JSON at line %d column %d: %s", r->what,
                  je.line, je.column, je.text);
    }
    return root;
}

int iceberg_metadata_from_json(const char *text, size_t len, struct arena *a,
                               struct iceberg_metadata **out, struct loch_err *err)
{
    struct rd r = {a, err, "table metadata"};
    json_t *root = load(&r, text, len);
    if (!root)
        return LOCH_ECORRUPT;
    struct iceberg_metadata *m = arena_alloc(a, sizeof *m);
    int rc = read_metadata(&r, root, m);
    json_decref(root);
    if (rc)
        return rc;
    *out = m;
    return 0;
}

int iceberg_schema_from_json(const char *text, size_t len, struct arena *a,
                             struct iceberg_schema **out, struct loch_err *err)
{
    struct rd r = {a, err, "schema"};
    json_t *root = load(&r, text, len);
    if (!root)
        return LOCH_ECORRUPT;
    struct iceberg_schema *s = arena_alloc(a, sizeof *s);
    /* A schema on its own (REST create-table) may leave schema-id out; 0 then. */
    int rc = read_schema(&r, root, "schema", false, s);
    json_decref(root);
    if (rc)
        return rc;
    *out = s;
    return 0;
}
