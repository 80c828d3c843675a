/* table.c: Iceberg tables through a store: load and create metadata files, stage a change
 * and write it as manifests + manifest list + the next metadata file, plan scans.
 * Not for moving the catalog pointer (catalog/) or encoding Avro (manifest.c).
 *
 * Commit protocol (spec "Commits", "Sequence Numbers"): every object is written under a
 * fresh name; the metadata file v<N+1>.metadata.json is created with STORE_NO_OVERWRITE
 * (the next free version when a killed writer left v<N+1> behind). Of two writers racing
 * from the same base, the catalog's compare-and-swap on the pointer lets exactly one win. */
#include "iceberg/table.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* Above this many manifests of one content kind in a snapshot, the parent's manifests of
 * that kind are merged into one, so planning a scan reads a bounded number of files. */
#define MAX_MANIFESTS_PER_KIND 64

struct iceberg_change {
    struct arena *a;
    const struct iceberg_metadata *base;
    const char *base_location;
    size_t n_data, cap_data;
    struct iceberg_data_file *data;
    size_t n_deletes, cap_deletes;
    struct iceberg_data_file *deletes;
    struct iceberg_schema *schema; /* NULL: unchanged */
    size_t n_summary;
    struct iceberg_kv *summary;
    size_t n_removed, cap_removed;
    struct iceberg_data_file *removed; /* files this change removes (a rewrite) */
    int64_t data_seq;              /* data sequence number of added data files, -1 = new */
    bool expire;                   /* iceberg_change_expire_snapshots was called */
    int64_t expire_before_ms;
    size_t retain_last;
    bool set_order;                /* iceberg_change_set_sort_order was called */
    size_t n_order;
    struct iceberg_sort_field *order;
};

/* ------------------------------------------------------------------ helpers */

/* The version N of a metadata file name: "v12.metadata.json" (file-system tables) or
 * "00012-<uuid>.metadata.json" (catalog tables written by Java). -1 when neither. */
static long metadata_version(const char *location)
{
    if (!location)
        return -1;
    const char *name = strrchr(location, '/');
    name = name ? name + 1 : location;
    if (*name == 'v')
        name++;
    char *end;
    if (*name < '0' || *name > '9')
        return -1;
    long v = strtol(name, &end, 10);
    if (end == name || (*end != '.' && *end != '-'))
        return -1;
    return v;
}

static const char *kv_get(const struct iceberg_kv *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(kv[i].key, key))
            return kv[i].value;
    return NULL;
}

/* Sets key in a growable kv array (capacity = *n rounded, so it is regrown each time). */
static void kv_set(struct arena *a, struct iceberg_kv **kv, size_t *n, const char *key,
                   const char *value)
{
    for (size_t i = 0; i < *n; i++) {
        if (!strcmp((*kv)[i].key, key)) {
            (*kv)[i].value = arena_strdup(a, value);
            return;
        }
    }
    *kv = arena_grow(a, *kv, *n, *n + 1, sizeof **kv);
    (*kv)[*n].key = arena_strdup(a, key);
    (*kv)[*n].value = arena_strdup(a, value);
    (*n)++;
}

static void copy_file(struct arena *a, struct iceberg_data_file *dst, const struct iceberg_data_file *f)
{
    *dst = *f;
    dst->path = arena_strdup(a, f->path);
    dst->referenced_data_file = arena_strdup(a, f->referenced_data_file);
    dst->stats = arena_alloc(a, (f->n_stats ? f->n_stats : 1) * sizeof *dst->stats);
    for (size_t i = 0; i < f->n_stats; i++) {
        dst->stats[i] = f->stats[i];
        if (f->stats[i].lower)
            dst->stats[i].lower = arena_memdup(a, f->stats[i].lower, f->stats[i].lower_len);
        if (f->stats[i].upper)
            dst->stats[i].upper = arena_memdup(a, f->stats[i].upper, f->stats[i].upper_len);
    }
}

static void push_file(struct arena *a, struct iceberg_data_file **arr, size_t *n, size_t *cap,
                      const struct iceberg_data_file *f)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        *arr = arena_grow(a, *arr, *n, nc, sizeof **arr);
        *cap = nc;
    }
    (*arr)[(*n)++] = *f;
}

static bool schemas_same_fields(const struct iceberg_schema *x, const struct iceberg_schema *y)
{
    if (x->n_fields != y->n_fields || x->n_identifier_ids != y->n_identifier_ids)
        return false;
    for (size_t i = 0; i < x->n_fields; i++) {
        const struct iceberg_field *f = &x->fields[i], *g = &y->fields[i];
        if (f->id != g->id || strcmp(f->name, g->name) || f->required != g->required ||
            !iceberg_type_equal(&f->type, &g->type) ||
            ((f->doc == NULL) != (g->doc == NULL)) || (f->doc && strcmp(f->doc, g->doc)))
            return false;
    }
    for (size_t i = 0; i < x->n_identifier_ids; i++)
        if (x->identifier_ids[i] != y->identifier_ids[i])
            return false;
    return true;
}

/* ------------------------------------------------------------------ load / create */

int iceberg_table_load(struct store *s, const char *metadata_location, struct arena *a,
                       struct iceberg_metadata **out, struct loch_err *err)
{
    char *data = NULL;
    size_t len = 0;
    int rc = store_get(s, metadata_location, &data, &len, err);
    if (rc)
        return rc;
    rc = iceberg_metadata_from_json(data, len, a, out, err);
    free(data);
    if (rc)
        loch_err_prefix(err, "loading %s", metadata_location);
    return rc;
}

/* Writes m as metadata version `version` (or, when that name is taken, the next free one
 * up to MAX_VERSION_SKIP further: a writer killed between writing its metadata file and
 * the catalog commit leaves an orphan that must not block the table forever). Which of
 * two racing writers wins is decided by the catalog's compare-and-swap, not by the name. */
#define MAX_VERSION_SKIP 64

static int put_metadata(struct store *s, const struct iceberg_metadata *m, long version, long max_skip,
                        struct arena *a, const char **out_location, struct loch_err *err)
{
    struct buf json = {0};
    int rc = iceberg_metadata_to_json(m, &json, err);
    if (rc) {
        buf_free(&json);
        return rc;
    }
    const char *uri = NULL;
    for (long v = version; v <= version + max_skip; v++) {
        uri = arena_printf(a, "%s/metadata/v%ld.metadata.json", m->location, v);
        rc = store_put(s, uri, json.data, json.len, STORE_NO_OVERWRITE, err);
        if (rc != LOCH_EEXIST)
            break;
    }
    buf_free(&json);
    if (rc == LOCH_EEXIST) {
        loch_errf(err, LOCH_EEXIST, "metadata version%s %ld%s of table %s already exist%s", max_skip ? "s" : "",
                  version, max_skip ? arena_printf(a, " to %ld", version + max_skip) : "", m->location,
                  max_skip ? "" : "s");
        loch_err_detail(err, "%s already exists", uri);
        return loch_err_hint(err, "remove unreferenced metadata files with: loch maintain");
    }
    if (rc)
        return rc;
    *out_location = uri;
    return 0;
}

int iceberg_table_create(struct store *s, struct iceberg_metadata *m, struct arena *a,
                         const char **out_location, struct loch_err *err)
{
    /* A location that already holds metadata (a dropped table's files, which stay until
     * maintenance, or a create that crashed before its catalog entry) is left alone: the
     * new table gets a location of its own beside it. */
    const char *base = m->location;
    for (int attempt = 0; attempt < 8; attempt++) {
        const char *v1 = arena_printf(a, "%s/metadata/v1.metadata.json", m->location);
        int64_t size;
        struct loch_err probe;
        loch_err_clear(&probe);
        int rc = store_size(s, v1, &size, &probe);
        if (rc == LOCH_ENOENT) {
            rc = put_metadata(s, m, 1, 0, a, out_location, err);
            if (rc != LOCH_EEXIST)
                return rc;
        } else if (rc) {
            *err = probe;
            return rc;
        }
        m->location = arena_printf(a, "%s-%08llx", base, (unsigned long long)(util_random_id() & 0xffffffffu));
    }
    return loch_errf(err, LOCH_EEXIST, "no free location for a new table at %s", base);
}

int iceberg_table_write_hint(struct store *s, const struct iceberg_metadata *m,
                             const char *metadata_location, struct loch_err *err)
{
    long v = metadata_version(metadata_location);
    if (v < 0)
        return loch_errf(err, LOCH_EINVAL, "cannot tell the version of metadata file %s",
                         metadata_location);
    char text[32], uri[4096];
    int n = snprintf(text, sizeof text, "%ld", v);
    snprintf(uri, sizeof uri, "%s/metadata/version-hint.text", m->location);
    return store_put(s, uri, text, (size_t)n, STORE_NO_SYNC, err); /* a hint: the catalog is the truth */
}

/* ------------------------------------------------------------------ staging */

struct iceberg_change *iceberg_change_begin(struct arena *a, const struct iceberg_metadata *base,
                                            const char *base_location)
{
    struct iceberg_change *c = arena_alloc(a, sizeof *c);
    c->a = a;
    c->base = base;
    c->base_location = arena_strdup(a, base_location);
    c->data_seq = -1;
    return c;
}

void iceberg_change_remove_file(struct iceberg_change *c, const struct iceberg_data_file *f)
{
    struct iceberg_data_file copy;
    copy_file(c->a, &copy, f);
    push_file(c->a, &c->removed, &c->n_removed, &c->cap_removed, &copy);
}

void iceberg_change_set_data_sequence(struct iceberg_change *c, int64_t seq)
{
    c->data_seq = seq;
}

static bool is_removed(const struct iceberg_change *c, const char *path)
{
    for (size_t i = 0; i < c->n_removed; i++)
        if (!strcmp(c->removed[i].path, path))
            return true;
    return false;
}

void iceberg_change_add_file(struct iceberg_change *c, const struct iceberg_data_file *f)
{
    struct iceberg_data_file copy;
    copy_file(c->a, &copy, f);
    /* New files are ADDED by the snapshot this change becomes; their sequence numbers
     * are inherited from the manifest-list row (spec "Sequence Number Inheritance").
     * The snapshot id is filled in at write time (see write_snapshot). */
    copy.status = ICEBERG_ADDED;
    copy.snapshot_id = -1;
    copy.sequence_number = -1;
    copy.file_sequence_number = -1;
    if (f->content == ICEBERG_CONTENT_DATA)
        push_file(c->a, &c->data, &c->n_data, &c->cap_data, &copy);
    else
        push_file(c->a, &c->deletes, &c->n_deletes, &c->cap_deletes, &copy);
}

void iceberg_change_set_schema(struct iceberg_change *c, const struct iceberg_schema *s)
{
    c->schema = iceberg_schema_copy(c->a, s);
}

void iceberg_change_set_sort_order(struct iceberg_change *c, const struct iceberg_sort_field *f, size_t n)
{
    c->set_order = true;
    c->n_order = n;
    c->order = arena_alloc(c->a, (n ? n : 1) * sizeof *c->order);
    if (n)
        memcpy(c->order, f, n * sizeof *f);
}

/* The new default sort order: an equal existing order is reused (Java does the same),
 * else appended with max id + 1. */
static void apply_sort_order(struct iceberg_metadata *m, struct arena *a, const struct iceberg_change *c)
{
    if (!c->n_order) {
        m->default_sort_order_id = 0;
        return;
    }
    int max_id = 0;
    for (size_t i = 0; i < m->n_sort_orders; i++) {
        const struct iceberg_sort_order *so = &m->sort_orders[i];
        if (so->order_id > max_id)
            max_id = so->order_id;
        bool same = so->n_fields == c->n_order;
        for (size_t j = 0; same && j < c->n_order; j++)
            same = so->fields[j].source_id == c->order[j].source_id && so->fields[j].desc == c->order[j].desc &&
                   so->fields[j].nulls_first == c->order[j].nulls_first;
        if (same) {
            m->default_sort_order_id = so->order_id;
            return;
        }
    }
    m->sort_orders = arena_grow(a, m->sort_orders, m->n_sort_orders, m->n_sort_orders + 1,
                                sizeof *m->sort_orders);
    m->sort_orders[m->n_sort_orders++] =
        (struct iceberg_sort_order){max_id + 1, c->n_order, c->order};
    m->default_sort_order_id = max_id + 1;
}

void iceberg_change_set_summary(struct iceberg_change *c, const char *key, const char *value)
{
    kv_set(c->a, &c->summary, &c->n_summary, key, value);
}

void iceberg_change_expire_snapshots(struct iceberg_change *c, int64_t before_ms, size_t retain_last)
{
    c->expire = true;
    c->expire_before_ms = before_ms;
    c->retain_last = retain_last;
}

static int cmp_ts_desc(const void *x, const void *y)
{
    const struct iceberg_snapshot *a = *(const struct iceberg_snapshot *const *)x;
    const struct iceberg_snapshot *b = *(const struct iceberg_snapshot *const *)y;
    return a->timestamp_ms < b->timestamp_ms ? 1 : a->timestamp_ms > b->timestamp_ms ? -1 : 0;
}

/* Marks in drop[] (indexed like m->snapshots) the snapshots that expire: older than
 * before_ms, not current, not among the newest retain_last. Returns how many. */
static size_t expire_plan(const struct iceberg_metadata *m, int64_t before_ms, size_t retain_last, bool *drop)
{
    const struct iceberg_snapshot **by_age = xmalloc((m->n_snapshots + 1) * sizeof *by_age);
    for (size_t i = 0; i < m->n_snapshots; i++)
        by_age[i] = &m->snapshots[i];
    qsort(by_age, m->n_snapshots, sizeof *by_age, cmp_ts_desc);
    size_t n = 0;
    for (size_t i = 0; i < m->n_snapshots; i++) {
        const struct iceberg_snapshot *sn = by_age[i];
        bool d = i >= retain_last && sn->snapshot_id != m->current_snapshot_id && sn->timestamp_ms < before_ms;
        drop[sn - m->snapshots] = d;
        n += d;
    }
    free(by_age);
    return n;
}

size_t iceberg_change_expiring(const struct iceberg_change *c)
{
    if (!c->expire || !c->base->n_snapshots)
        return 0;
    bool *drop = xcalloc(c->base->n_snapshots, sizeof *drop);
    size_t n = expire_plan(c->base, c->expire_before_ms, c->retain_last, drop);
    free(drop);
    return n;
}

const char *iceberg_change_file(const struct iceberg_change *c, size_t i)
{
    if (i < c->n_data)
        return c->data[i].path;
    i -= c->n_data;
    return i < c->n_deletes ? c->deletes[i].path : NULL;
}

bool iceberg_change_empty(const struct iceberg_change *c)
{
    return !c->n_data && !c->n_deletes && !c->n_removed && !c->schema && !c->set_order &&
           !iceberg_change_expiring(c);
}

/* Removes expired snapshots from m (arrays copied into a, base untouched). The snapshot
 * log keeps only entries after the newest one that names a removed snapshot, so it
 * stays a history of snapshots that exist (as Java writes it). */
static void apply_expiry(struct iceberg_metadata *m, struct arena *a, int64_t before_ms, size_t retain_last)
{
    if (!m->n_snapshots)
        return;
    bool *drop = arena_alloc(a, m->n_snapshots * sizeof *drop);
    if (!expire_plan(m, before_ms, retain_last, drop))
        return;
    struct iceberg_snapshot *keep = arena_alloc(a, m->n_snapshots * sizeof *keep);
    size_t n = 0;
    for (size_t i = 0; i < m->n_snapshots; i++)
        if (!drop[i])
            keep[n++] = m->snapshots[i];
    m->snapshots = keep;
    m->n_snapshots = n;
    size_t start = 0;
    for (size_t i = 0; i < m->n_snapshot_log; i++)
        if (!iceberg_metadata_snapshot(m, m->snapshot_log[i].snapshot_id))
            start = i + 1;
    m->snapshot_log += start;
    m->n_snapshot_log -= start;
}

/* ------------------------------------------------------------------ writing */

/* The state of one iceberg_change_write, so helpers share it and failures clean up. */
struct writer {
    struct iceberg_change *c;
    struct store *s;
    struct iceberg_metadata *m; /* the new metadata, built from a copy of base */
    const struct iceberg_schema *schema;
    char uuid[37];
    int64_t snapshot_id, seq;
    size_t n_written;
    const char *written[8]; /* objects to remove if the commit fails */
    struct iceberg_manifest *list;
    size_t n_list;
};

/* Manifests and the manifest list: the metadata file written after them into the same
 * folder makes the folder durable for all three. */
static int put_object(struct writer *w, const char *uri, const struct buf *b, struct loch_err *err)
{
    int rc = store_put(w->s, uri, b->data, b->len, STORE_NO_OVERWRITE | STORE_DIR_SYNC_LATER, err);
    if (!rc && w->n_written < sizeof w->written / sizeof w->written[0])
        w->written[w->n_written++] = uri;
    return rc;
}

static void add_list_row(struct writer *w, const struct iceberg_manifest *row)
{
    w->list = arena_grow(w->c->a, w->list, w->n_list, w->n_list + 1, sizeof *w->list);
    w->list[w->n_list++] = *row;
}

/* Encodes files as a manifest named <uuid>-m<k>.avro and returns its list row. */
static int write_manifest(struct writer *w, enum iceberg_content content,
                          const struct iceberg_data_file *files, size_t n, int k,
                          struct iceberg_manifest *row, struct loch_err *err)
{
    struct buf b = {0};
    int rc = iceberg_manifest_encode(w->schema, content, files, n, &b, err);
    if (rc) {
        buf_free(&b);
        return rc;
    }
    const char *uri = arena_printf(w->c->a, "%s/metadata/%s-m%d.avro", w->m->location, w->uuid, k);
    rc = put_object(w, uri, &b, err);
    memset(row, 0, sizeof *row);
    row->path = uri;
    row->length = (int64_t)b.len;
    buf_free(&b);
    if (rc)
        return rc;
    row->spec_id = 0;
    row->content = content;
    row->sequence_number = w->seq;
    row->added_snapshot_id = w->snapshot_id;
    row->min_sequence_number = w->seq;
    for (size_t i = 0; i < n; i++) {
        if (files[i].status == ICEBERG_ADDED) {
            row->added_files++;
            row->added_rows += files[i].record_count;
        } else if (files[i].status == ICEBERG_EXISTING) {
            row->existing_files++;
            row->existing_rows += files[i].record_count;
        } else {
            row->deleted_files++;
            row->deleted_rows += files[i].record_count;
        }
        if (files[i].sequence_number >= 0 && files[i].sequence_number < row->min_sequence_number)
            row->min_sequence_number = files[i].sequence_number;
    }
    return 0;
}

/* Reads and decodes one manifest (entries in a, inheritance applied by the decoder). */
static int read_manifest(struct store *s, const struct iceberg_manifest *m, struct arena *a,
                         struct iceberg_data_file **out, size_t *n_out, struct loch_err *err)
{
    char *data = NULL;
    size_t len = 0;
    int rc = store_get(s, m->path, &data, &len, err);
    if (rc)
        return rc;
    rc = iceberg_manifest_decode((const uint8_t *)data, len, m, a, out, n_out, err);
    free(data);
    if (rc)
        loch_err_prefix(err, "reading manifest %s", m->path);
    return rc;
}

static int read_manifest_list(struct store *s, const char *uri, struct arena *a,
                              struct iceberg_manifest **out, size_t *n_out, struct loch_err *err)
{
    char *data = NULL;
    size_t len = 0;
    int rc = store_get(s, uri, &data, &len, err);
    if (rc)
        return rc;
    rc = iceberg_manifest_list_decode((const uint8_t *)data, len, a, out, n_out, err);
    free(data);
    if (rc)
        loch_err_prefix(err, "reading manifest list %s", uri);
    return rc;
}

/* Rewrites the parent's manifests of one content kind as one manifest whose live entries
 * are EXISTING with explicit snapshot id and sequence numbers (spec: EXISTING entries
 * must carry them). The new files of this change stay in their own manifest, so the
 * snapshot's added counts keep meaning "added by this snapshot". */
static int merge_manifests(struct writer *w, const struct iceberg_manifest *parents, size_t n,
                           enum iceberg_content content, int k, struct loch_err *err)
{
    struct arena *a = w->c->a;
    size_t n_files = 0, cap = 0;
    struct iceberg_data_file *files = NULL;
    for (size_t i = 0; i < n; i++) {
        if (parents[i].content != content)
            continue;
        struct iceberg_data_file *entries;
        size_t n_entries;
        int rc = read_manifest(w->s, &parents[i], a, &entries, &n_entries, err);
        if (rc)
            return rc;
        for (size_t j = 0; j < n_entries; j++) {
            struct iceberg_data_file f = entries[j];
            if (f.status == ICEBERG_DELETED)
                continue; /* its deletion was recorded by an earlier snapshot */
            bool gone = is_removed(w->c, f.path);
            f.status = gone ? ICEBERG_DELETED : ICEBERG_EXISTING;
            if (f.snapshot_id < 0 || gone) /* a DELETED entry names the snapshot that removed it */
                f.snapshot_id = gone ? w->snapshot_id : parents[i].added_snapshot_id;
            if (f.snapshot_id < 0)
                f.snapshot_id = parents[i].added_snapshot_id;
            if (f.sequence_number < 0)
                f.sequence_number = parents[i].sequence_number;
            if (f.file_sequence_number < 0)
                f.file_sequence_number = parents[i].sequence_number;
            /* a live file newer than the snapshot being written would be read too early */
            LOCH_VERIFY(f.sequence_number < w->seq, "file %s has sequence number %lld, not below %lld", f.path,
                        (long long)f.sequence_number, (long long)w->seq);
            push_file(a, &files, &n_files, &cap, &f);
        }
    }
    if (!n_files)
        return 0; /* nothing live: the merged manifest would be empty */
    struct iceberg_manifest row;
    int rc = write_manifest(w, content, files, n_files, k, &row, err);
    if (rc)
        return rc;
    /* The merged manifest's min_sequence_number is that of its oldest live entry. */
    row.min_sequence_number = w->seq;
    for (size_t i = 0; i < n_files; i++)
        if (files[i].status != ICEBERG_DELETED && files[i].sequence_number < row.min_sequence_number)
            row.min_sequence_number = files[i].sequence_number;
    add_list_row(w, &row);
    return 0;
}

static int64_t sum_i64(const char *s)
{
    return s ? strtoll(s, NULL, 10) : 0;
}

/* Sets key to (parent's value of key) + added; omitted when the parent has a snapshot
 * whose summary lacks the total (Java does the same: a wrong total is worse than none). */
static void set_total(struct writer *w, const struct iceberg_snapshot *parent, struct iceberg_kv **kv,
                      size_t *n, const char *key, int64_t added)
{
    const char *prev = parent ? kv_get(parent->summary, parent->n_summary, key) : NULL;
    if (parent && !prev)
        return;
    char v[32];
    snprintf(v, sizeof v, "%" PRId64, sum_i64(prev) + added);
    kv_set(w->c->a, kv, n, key, v);
}

static void set_count(struct writer *w, struct iceberg_kv **kv, size_t *n, const char *key,
                      int64_t v)
{
    char s[32];
    snprintf(s, sizeof s, "%" PRId64, v);
    kv_set(w->c->a, kv, n, key, s);
}

/* Builds the snapshot summary (spec Appendix F metrics; all values are strings). */
static void build_summary(struct writer *w, const struct iceberg_snapshot *parent,
                          struct iceberg_snapshot *sn)
{
    struct iceberg_change *c = w->c;
    int64_t data_rows = 0, data_size = 0, del_rows = 0, del_size = 0;
    for (size_t i = 0; i < c->n_data; i++) {
        data_rows += c->data[i].record_count;
        data_size += c->data[i].file_size;
    }
    for (size_t i = 0; i < c->n_deletes; i++) {
        del_rows += c->deletes[i].record_count;
        del_size += c->deletes[i].file_size;
    }
    int64_t rm_data = 0, rm_rows = 0, rm_del = 0, rm_pos = 0, rm_size = 0;
    for (size_t i = 0; i < c->n_removed; i++) {
        bool data = c->removed[i].content == ICEBERG_CONTENT_DATA;
        rm_data += data;
        rm_del += !data;
        *(data ? &rm_rows : &rm_pos) += c->removed[i].record_count;
        rm_size += c->removed[i].file_size;
    }
    struct iceberg_kv *kv = NULL;
    size_t n = 0;
    /* spec "Snapshots": replace = files rewritten, the table's rows unchanged */
    kv_set(c->a, &kv, &n, "operation",
           c->n_removed                 ? "replace"
           : c->n_data && c->n_deletes ? "overwrite"
           : c->n_data                 ? "append"
                                       : "delete");
    if (rm_data) {
        set_count(w, &kv, &n, "deleted-data-files", rm_data);
        set_count(w, &kv, &n, "deleted-records", rm_rows);
    }
    if (rm_del) {
        set_count(w, &kv, &n, "removed-delete-files", rm_del);
        set_count(w, &kv, &n, "removed-position-delete-files", rm_del);
        set_count(w, &kv, &n, "removed-position-deletes", rm_pos);
    }
    if (rm_size)
        set_count(w, &kv, &n, "removed-files-size", rm_size);
    if (c->n_data) {
        set_count(w, &kv, &n, "added-data-files", (int64_t)c->n_data);
        set_count(w, &kv, &n, "added-records", data_rows);
    }
    if (c->n_deletes) {
        set_count(w, &kv, &n, "added-delete-files", (int64_t)c->n_deletes);
        set_count(w, &kv, &n, "added-position-delete-files", (int64_t)c->n_deletes);
        set_count(w, &kv, &n, "added-position-deletes", del_rows);
    }
    set_count(w, &kv, &n, "added-files-size", data_size + del_size);
    set_total(w, parent, &kv, &n, "total-records", data_rows - rm_rows);
    set_total(w, parent, &kv, &n, "total-files-size", data_size + del_size - rm_size);
    set_total(w, parent, &kv, &n, "total-data-files", (int64_t)c->n_data - rm_data);
    set_total(w, parent, &kv, &n, "total-delete-files", (int64_t)c->n_deletes - rm_del);
    set_total(w, parent, &kv, &n, "total-position-deletes", del_rows - rm_pos);
    set_total(w, parent, &kv, &n, "total-equality-deletes", 0);
    for (size_t i = 0; i < c->n_summary; i++)
        if (strcmp(c->summary[i].key, "operation"))
            kv_set(c->a, &kv, &n, c->summary[i].key, c->summary[i].value);
    sn->summary = kv;
    sn->n_summary = n;
}

/* Writes manifests and the manifest list, and adds the snapshot to w->m. */
static int write_snapshot(struct writer *w, int64_t now, struct loch_err *err)
{
    struct iceberg_change *c = w->c;
    struct arena *a = c->a;
    struct iceberg_metadata *m = w->m;
    const struct iceberg_snapshot *parent =
        m->current_snapshot_id != -1 ? iceberg_metadata_snapshot(m, m->current_snapshot_id) : NULL;
    do
        w->snapshot_id = util_random_id();
    while (iceberg_metadata_snapshot(m, w->snapshot_id));
    w->seq = m->last_sequence_number + 1;
    LOCH_VERIFY(!parent || parent->sequence_number < w->seq,
                "snapshot %lld has sequence number %lld, not below the next (%lld)", (long long)parent->snapshot_id,
                (long long)parent->sequence_number, (long long)w->seq);

    struct iceberg_manifest *parents = NULL;
    size_t n_parents = 0;
    int rc;
    if (parent && (rc = read_manifest_list(w->s, parent->manifest_list, a, &parents, &n_parents, err)))
        return rc;

    /* Per content kind: keep the parent's manifests, or merge them when too many. */
    static const enum iceberg_content kinds[] = {ICEBERG_CONTENT_DATA,
                                                 ICEBERG_CONTENT_POSITION_DELETES};
    for (int k = 0; k < 2; k++) {
        size_t n_kind = 0;
        for (size_t i = 0; i < n_parents; i++)
            n_kind += parents[i].content == kinds[k];
        size_t n_new = kinds[k] == ICEBERG_CONTENT_DATA ? c->n_data : c->n_deletes;
        bool removes = false;
        for (size_t i = 0; i < c->n_removed && !removes; i++)
            removes = c->removed[i].content == kinds[k];
        /* A rewrite marks the files it removes DELETED: their manifests are rewritten, all
         * of the kind into one (which is also how small manifests merge). */
        if (removes || n_kind + (n_new ? 1 : 0) > MAX_MANIFESTS_PER_KIND) {
            if ((rc = merge_manifests(w, parents, n_parents, kinds[k], 2 + k, err)))
                return rc;
        } else {
            for (size_t i = 0; i < n_parents; i++)
                if (parents[i].content == kinds[k])
                    add_list_row(w, &parents[i]);
        }
        if (n_new) {
            /* Explicit snapshot ids on ADDED entries, as Java and PyIceberg write them:
             * PyIceberg <= 0.10 corrupts the entry's status when it has to inherit the
             * id (apache/iceberg-python#3256, fixed by PR #3257), and then drops
             * position deletes from scans without an error. */
            struct iceberg_data_file *files = k == 0 ? c->data : c->deletes;
            for (size_t i = 0; i < n_new; i++) {
                files[i].snapshot_id = w->snapshot_id;
                /* Rewritten data keeps the data sequence number of the snapshot it was
                 * read from (spec "Sequence Numbers"; Java's RewriteFiles with
                 * validateFromSnapshot): deletes committed after it still apply. */
                if (k == 0 && c->data_seq >= 0)
                    files[i].sequence_number = c->data_seq;
            }
            struct iceberg_manifest row;
            rc = write_manifest(w, kinds[k], files, n_new, k, &row, err);
            if (rc)
                return rc;
            add_list_row(w, &row);
        }
    }

    struct buf b = {0};
    rc = iceberg_manifest_list_encode(w->list, w->n_list, w->snapshot_id,
                                      parent ? parent->snapshot_id : -1, w->seq, &b, err);
    const char *list_uri = arena_printf(a, "%s/metadata/snap-%" PRId64 "-%s.avro", m->location,
                                        w->snapshot_id, w->uuid);
    if (!rc)
        rc = put_object(w, list_uri, &b, err);
    buf_free(&b);
    if (rc)
        return rc;

    struct iceberg_snapshot sn = {0};
    sn.snapshot_id = w->snapshot_id;
    sn.parent_id = parent ? parent->snapshot_id : -1;
    sn.sequence_number = w->seq;
    sn.timestamp_ms = now;
    sn.manifest_list = list_uri;
    sn.schema_id = m->current_schema_id;
    build_summary(w, parent, &sn);

    m->snapshots = arena_grow(a, m->snapshots, m->n_snapshots, m->n_snapshots + 1, sizeof sn);
    m->snapshots[m->n_snapshots++] = sn;
    m->snapshot_log = arena_grow(a, m->snapshot_log, m->n_snapshot_log, m->n_snapshot_log + 1,
                                 sizeof *m->snapshot_log);
    m->snapshot_log[m->n_snapshot_log++] = (struct iceberg_log_entry){now, sn.snapshot_id, NULL};
    m->current_snapshot_id = sn.snapshot_id;
    m->last_sequence_number = w->seq;
    return 0;
}

/* Applies a staged schema: reuses an identical existing schema, else adds one with the
 * next schema-id. */
static void apply_schema(struct iceberg_metadata *m, struct arena *a, struct iceberg_schema *s)
{
    int max_sid = -1;
    for (size_t i = 0; i < m->n_schemas; i++) {
        if (schemas_same_fields(&m->schemas[i], s)) {
            m->current_schema_id = m->schemas[i].schema_id;
            goto ids;
        }
        if (m->schemas[i].schema_id > max_sid)
            max_sid = m->schemas[i].schema_id;
    }
    s->schema_id = max_sid + 1;
    m->schemas = arena_grow(a, m->schemas, m->n_schemas, m->n_schemas + 1, sizeof *m->schemas);
    m->schemas[m->n_schemas++] = *s;
    m->current_schema_id = s->schema_id;
ids:
    for (size_t i = 0; i < s->n_fields; i++)
        if (s->fields[i].id > m->last_column_id)
            m->last_column_id = s->fields[i].id;
}

int iceberg_change_write(struct iceberg_change *c, struct store *s, const char **out_location,
                         struct iceberg_metadata **out_metadata, struct loch_err *err)
{
    if (iceberg_change_empty(c)) {
        loch_errf(err, LOCH_EINVAL, "nothing to write for table %s", c->base->location);
        return loch_err_hint(err, "check iceberg_change_empty before writing");
    }
    struct arena *a = c->a;
    struct writer w = {.c = c, .s = s};
    util_uuid4(w.uuid);

    /* The new metadata shares base's unchanged parts; arrays that grow are copied by
     * arena_grow before they are appended to, so base is never modified. */
    struct iceberg_metadata *m = arena_alloc(a, sizeof *m);
    *m = *c->base;
    w.m = m;
    int64_t now = util_now_ms();
    if (now < c->base->last_updated_ms)
        now = c->base->last_updated_ms; /* logs must stay sorted even if the clock steps back */

    if (c->schema)
        apply_schema(m, a, c->schema);
    if (c->set_order)
        apply_sort_order(m, a, c);
    w.schema = iceberg_metadata_current_schema(m);

    int rc = 0;
    if (c->n_data || c->n_deletes || c->n_removed)
        rc = write_snapshot(&w, now, err);
    if (!rc && c->expire)
        apply_expiry(m, a, c->expire_before_ms, c->retain_last);

    if (!rc) {
        if (c->base_location) {
            m->metadata_log = arena_grow(a, m->metadata_log, m->n_metadata_log,
                                         m->n_metadata_log + 1, sizeof *m->metadata_log);
            m->metadata_log[m->n_metadata_log++] =
                (struct iceberg_log_entry){c->base->last_updated_ms, -1, c->base_location};
            /* Like Java (write.metadata.previous-versions-max, default 100), keep the
             * newest entries only, so metadata files do not grow with every commit. */
            const char *p = kv_get(m->properties, m->n_properties,
                                   "write.metadata.previous-versions-max");
            size_t keep = p && atol(p) > 0 ? (size_t)atol(p) : 100;
            if (m->n_metadata_log > keep) {
                m->metadata_log += m->n_metadata_log - keep;
                m->n_metadata_log = keep;
            }
        }
        m->last_updated_ms = now;
        long v = metadata_version(c->base_location);
        if (v < 0)
            v = (long)c->base->n_metadata_log + 1;
        rc = put_metadata(s, m, v + 1, MAX_VERSION_SKIP, a, out_location, err);
    }
    if (rc) {
        /* Nothing references these objects: remove them, best effort. */
        for (size_t i = 0; i < w.n_written; i++)
            store_delete(s, w.written[i], NULL);
        return rc;
    }
    *out_metadata = m;
    return 0;
}

/* ------------------------------------------------------------------ scans */

int iceberg_scan_plan(struct store *s, const struct iceberg_metadata *m, int64_t snapshot_id,
                      struct arena *a, struct iceberg_scan **out, struct loch_err *err)
{
    struct iceberg_scan *scan = arena_alloc(a, sizeof *scan);
    scan->snapshot_id = -1;
    scan->schema = iceberg_metadata_current_schema(m);
    if (snapshot_id == -1 && m->current_snapshot_id == -1) {
        *out = scan; /* an empty table */
        return 0;
    }
    if (snapshot_id == -1)
        snapshot_id = m->current_snapshot_id;
    const struct iceberg_snapshot *sn = iceberg_metadata_snapshot(m, snapshot_id);
    if (!sn) {
        loch_errf(err, LOCH_ENOENT, "snapshot %" PRId64 " of table %s does not exist", snapshot_id,
                  m->location);
        return loch_err_hint(err, "it may have been expired; list the table's snapshots");
    }
    scan->snapshot_id = snapshot_id;
    if (sn->schema_id >= 0 && iceberg_metadata_schema(m, sn->schema_id))
        scan->schema = iceberg_metadata_schema(m, sn->schema_id);

    struct iceberg_manifest *list;
    size_t n_list;
    int rc = read_manifest_list(s, sn->manifest_list, a, &list, &n_list, err);
    if (rc)
        return rc;
    size_t cap_data = 0, cap_del = 0;
    for (size_t i = 0; i < n_list; i++) {
        struct iceberg_data_file *entries;
        size_t n_entries;
        if ((rc = read_manifest(s, &list[i], a, &entries, &n_entries, err)))
            return rc;
        for (size_t j = 0; j < n_entries; j++) {
            const struct iceberg_data_file *f = &entries[j];
            if (f->status == ICEBERG_DELETED)
                continue;
            if (f->content == ICEBERG_CONTENT_DATA) {
                push_file(a, &scan->data, &scan->n_data, &cap_data, f);
                scan->total_records += f->record_count;
            } else {
                push_file(a, &scan->deletes, &scan->n_deletes, &cap_del, f);
            }
        }
    }
    *out = scan;
    return 0;
}

/* ------------------------------------------------------------------ references */

static int cmp_cstr(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

struct refs {
    struct arena *a;
    const char **v;
    size_t n, cap;
};

static void refs_add(struct refs *r, const char *uri)
{
    if (!uri)
        return;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        r->v = arena_grow(r->a, r->v, r->cap, cap, sizeof *r->v);
        r->cap = cap;
    }
    r->v[r->n++] = uri;
}

static bool refs_has(const struct refs *r, const char *uri)
{
    return r->n && bsearch(&uri, r->v, r->n, sizeof *r->v, cmp_cstr) != NULL; /* bsearch(NULL, 0) is UB */
}

int iceberg_table_references(struct store *s, const struct iceberg_metadata *m, const char *metadata_location,
                             struct arena *a, const char ***out, size_t *n_out, struct loch_err *err)
{
    struct refs r = {.a = a};
    refs_add(&r, arena_strdup(a, metadata_location));
    refs_add(&r, arena_printf(a, "%s/metadata/version-hint.text", m->location));
    for (size_t i = 0; i < m->n_metadata_log; i++)
        refs_add(&r, m->metadata_log[i].metadata_file);
    /* Manifests are shared between snapshots: each is read once. */
    struct refs seen = {.a = a};
    for (size_t i = 0; i < m->n_snapshots; i++) {
        refs_add(&r, m->snapshots[i].manifest_list);
        struct iceberg_manifest *ms;
        size_t n_ms;
        int rc = read_manifest_list(s, m->snapshots[i].manifest_list, a, &ms, &n_ms, err);
        if (rc)
            return loch_err_prefix(err, "reading snapshot %" PRId64, m->snapshots[i].snapshot_id);
        for (size_t j = 0; j < n_ms; j++) {
            bool dup = false;
            for (size_t k = 0; k < seen.n && !dup; k++)
                dup = !strcmp(seen.v[k], ms[j].path);
            if (dup)
                continue;
            refs_add(&seen, ms[j].path);
            refs_add(&r, ms[j].path);
            struct iceberg_data_file *files;
            size_t n_files;
            if ((rc = read_manifest(s, &ms[j], a, &files, &n_files, err)))
                return loch_err_prefix(err, "reading manifest %s", ms[j].path);
            for (size_t k = 0; k < n_files; k++)
                refs_add(&r, files[k].path);
        }
    }
    qsort(r.v, r.n, sizeof *r.v, cmp_cstr);
    size_t u = 0;
    for (size_t i = 0; i < r.n; i++)
        if (!u || strcmp(r.v[u - 1], r.v[i]))
            r.v[u++] = r.v[i];
    *out = r.v;
    *n_out = u;
    return 0;
}

bool iceberg_references_has(const char *const *refs, size_t n, const char *uri)
{
    struct refs r = {.v = (const char **)refs, .n = n};
    return refs_has(&r, uri);
}
