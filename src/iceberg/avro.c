/* avro.c: Avro object container framing for Iceberg manifests (see avro.h): header,
 * metadata map, sync markers, null/deflate blocks, and a bounds-checked walk of every
 * record before avro-c decodes it. Not for manifest semantics (manifest.c).
 *
 * Format: Avro 1.11 specification, "Object Container Files" and "Binary Encoding". */
#include "iceberg/avro.h"

#include <string.h>
#include <zlib.h>

#include "base/util.h"

static const uint8_t MAGIC[4] = {'O', 'b', 'j', 1};
#define SYNC_LEN 16
/* A manifest is kilobytes to a few megabytes; refuse to inflate beyond this so a
 * hostile file cannot exhaust memory (a "deflate bomb"). */
#define MAX_DECOMPRESSED ((size_t)1 << 30)
/* Schemas nest a handful of levels (entry > data_file > map > kv record). */
#define MAX_DEPTH 64

/* ---- writing ---- */

int iceberg_avro_writer_init(struct iceberg_avro_writer *w, const char *schema_json,
                             struct loch_err *err)
{
    memset(w, 0, sizeof *w);
    w->schema_json = schema_json;
    if (avro_schema_from_json_length(schema_json, strlen(schema_json), &w->schema))
        return loch_errf(err, LOCH_EINTERNAL, "avro-c rejects the manifest schema: %s",
                         avro_strerror());
    w->iface = avro_generic_class_from_schema(w->schema);
    if (!w->iface) {
        avro_schema_decref(w->schema);
        return loch_errf(err, LOCH_EINTERNAL, "avro-c cannot build a value class: %s",
                         avro_strerror());
    }
    if (avro_generic_value_new(w->iface, &w->rec)) {
        avro_value_iface_decref(w->iface);
        avro_schema_decref(w->schema);
        return loch_errf(err, LOCH_EINTERNAL, "avro-c cannot allocate a record: %s",
                         avro_strerror());
    }
    return 0;
}

int iceberg_avro_writer_append(struct iceberg_avro_writer *w, struct loch_err *err)
{
    size_t size = 0;
    if (avro_value_sizeof(&w->rec, &size))
        return loch_errf(err, LOCH_EINTERNAL, "avro-c cannot size record %lld: %s",
                         (long long)w->n_records, avro_strerror());
    buf_reserve(&w->data, size);
    avro_writer_t aw = avro_writer_memory(w->data.data + w->data.len, (int64_t)size);
    int rc = avro_value_write(aw, &w->rec);
    avro_writer_free(aw);
    if (rc)
        return loch_errf(err, LOCH_EINTERNAL, "avro-c cannot encode record %lld: %s",
                         (long long)w->n_records, avro_strerror());
    w->data.len += size;
    w->data.data[w->data.len] = '\0';
    w->n_records++;
    avro_value_reset(&w->rec);
    return 0;
}

static void put_avro_bytes(struct buf *out, const void *p, size_t n)
{
    buf_put_varlong(out, (int64_t)n);
    buf_append(out, p, n);
}

/* Raw deflate (RFC 1951, no zlib header), which is what Avro's "deflate" codec means. */
static int deflate_raw(const uint8_t *in, size_t n, struct buf *out, struct loch_err *err)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return loch_errf(err, LOCH_ENOMEM, "zlib deflateInit2 failed");
    size_t bound = deflateBound(&zs, (uLong)n);
    buf_reserve(out, bound);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = (Bytef *)out->data + out->len;
    zs.avail_out = (uInt)bound;
    int rc = deflate(&zs, Z_FINISH);
    size_t produced = bound - zs.avail_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END)
        return loch_errf(err, LOCH_EINTERNAL, "zlib deflate failed (%d)", rc);
    out->len += produced;
    out->data[out->len] = '\0';
    return 0;
}

int iceberg_avro_writer_finish(struct iceberg_avro_writer *w, const struct iceberg_kv *meta,
                               size_t n_meta, struct buf *out, struct loch_err *err)
{
    if (w->data.len > UINT32_MAX)
        return loch_errf(err, LOCH_EUNSUPPORTED, "manifest block of %zu bytes is too large",
                         w->data.len);
    buf_append(out, MAGIC, sizeof MAGIC);
    /* File metadata is an Avro map<bytes>: one block of all entries, then 0. */
    buf_put_varlong(out, (int64_t)(2 + n_meta));
    put_avro_bytes(out, "avro.schema", 11);
    put_avro_bytes(out, w->schema_json, strlen(w->schema_json));
    put_avro_bytes(out, "avro.codec", 10);
    put_avro_bytes(out, "deflate", 7);
    for (size_t i = 0; i < n_meta; i++) {
        put_avro_bytes(out, meta[i].key, strlen(meta[i].key));
        put_avro_bytes(out, meta[i].value, strlen(meta[i].value));
    }
    buf_put_varlong(out, 0);

    uint8_t sync[SYNC_LEN];
    for (int i = 0; i < SYNC_LEN; i += 8) {
        uint64_t r = (uint64_t)util_random_id() ^ ((uint64_t)util_random_id() << 1);
        memcpy(sync + i, &r, 8);
    }
    buf_append(out, sync, SYNC_LEN);
    if (w->n_records == 0)
        return 0; /* a container with no blocks is a valid empty file */

    struct buf z = {0};
    int rc = deflate_raw((const uint8_t *)w->data.data, w->data.len, &z, err);
    if (rc == 0) {
        buf_put_varlong(out, w->n_records);
        put_avro_bytes(out, z.data, z.len);
        buf_append(out, sync, SYNC_LEN);
    }
    buf_free(&z);
    return rc;
}

void iceberg_avro_writer_free(struct iceberg_avro_writer *w)
{
    if (w->iface) {
        avro_value_decref(&w->rec);
        avro_value_iface_decref(w->iface);
        avro_schema_decref(w->schema);
    }
    buf_free(&w->data);
    memset(w, 0, sizeof *w);
}

/* ---- reading ---- */

/* An Avro string or bytes value: a length, then that many bytes. */
static bool skip_sized(struct cursor *c)
{
    int64_t n;
    const uint8_t *p;
    return cursor_varlong(c, &n) && n >= 0 && (uint64_t)n <= c->left &&
           cursor_bytes(c, (size_t)n, &p);
}

/* Walks one datum of schema s without decoding it, checking every length and index
 * against what is left (spec "Binary Encoding"). avro-c trusts lengths (it allocates
 * before it checks), so nothing reaches it unchecked. */
static bool skip_datum(avro_schema_t s, struct cursor *c, int depth)
{
    int64_t n;
    const uint8_t *p;

    if (depth > MAX_DEPTH)
        return false;
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return true;
    case AVRO_BOOLEAN: {
        uint8_t b;
        return cursor_u8(c, &b) && b <= 1;
    }
    case AVRO_INT32:
        return cursor_varlong(c, &n) && n >= INT32_MIN && n <= INT32_MAX;
    case AVRO_INT64:
        return cursor_varlong(c, &n);
    case AVRO_FLOAT:
        return cursor_bytes(c, 4, &p);
    case AVRO_DOUBLE:
        return cursor_bytes(c, 8, &p);
    case AVRO_STRING:
    case AVRO_BYTES:
        return skip_sized(c);
    case AVRO_FIXED:
        return avro_schema_fixed_size(s) >= 0 &&
               cursor_bytes(c, (size_t)avro_schema_fixed_size(s), &p);
    case AVRO_ENUM:
        return cursor_varlong(c, &n) && n >= 0 && n < avro_schema_enum_number_of_symbols(s);
    case AVRO_UNION:
        if (!cursor_varlong(c, &n) || n < 0 || (uint64_t)n >= avro_schema_union_size(s))
            return false;
        return skip_datum(avro_schema_union_branch(s, (int)n), c, depth + 1);
    case AVRO_RECORD: {
        size_t nf = avro_schema_record_size(s);
        for (size_t i = 0; i < nf; i++)
            if (!skip_datum(avro_schema_record_field_get_by_index(s, (int)i), c, depth + 1))
                return false;
        return true;
    }
    case AVRO_ARRAY:
    case AVRO_MAP: {
        bool is_map = avro_typeof(s) == AVRO_MAP;
        avro_schema_t item = is_map ? avro_schema_map_values(s) : avro_schema_array_items(s);
        for (;;) {
            if (!cursor_varlong(c, &n))
                return false;
            if (n == 0)
                return true;
            if (n < 0) { /* negative count: a block byte size follows */
                int64_t size;
                if (n == INT64_MIN || !cursor_varlong(c, &size) || size < 0)
                    return false;
                n = -n;
            }
            /* Items of zero-size types (null, empty records) would let a tiny input
             * spin for 2^63 rounds; allow them only in sane numbers. */
            if ((uint64_t)n > c->left && n > 4096)
                return false;
            for (int64_t i = 0; i < n; i++) {
                if (is_map && !skip_sized(c))
                    return false;
                if (!skip_datum(item, c, depth + 1))
                    return false;
            }
        }
    }
    case AVRO_LINK:
        return skip_datum(avro_schema_link_target(s), c, depth + 1);
    }
    return false;
}

/* Appends the raw-deflate stream in[0..n) to out. */
static int inflate_raw(const uint8_t *in, size_t n, struct buf *out, const char *what,
                       size_t at, struct loch_err *err)
{
    if (n > UINT32_MAX)
        return loch_errf(err, LOCH_EUNSUPPORTED, "%s block at byte %zu is larger than 4 GiB", what, at);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -15) != Z_OK)
        return loch_errf(err, LOCH_ENOMEM, "zlib inflateInit2 failed");
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    int rc;
    do {
        if (out->len >= MAX_DECOMPRESSED) {
            inflateEnd(&zs);
            return loch_errf(err, LOCH_EUNSUPPORTED,
                             "%s inflates to more than %zu bytes (block at byte %zu)", what,
                             (size_t)MAX_DECOMPRESSED, at);
        }
        size_t room = n < (1u << 20) ? n * 4 + 4096 : (size_t)1 << 22;
        buf_reserve(out, room);
        zs.next_out = (Bytef *)out->data + out->len;
        zs.avail_out = (uInt)room;
        rc = inflate(&zs, Z_NO_FLUSH);
        out->len += room - zs.avail_out;
        out->data[out->len] = '\0';
    } while (rc == Z_OK);
    inflateEnd(&zs);
    /* Trailing bytes after the end of the stream are tolerated (some writers keep part
     * of a zlib trailer); a stream that stops early is not. */
    if (rc != Z_STREAM_END)
        return loch_errf(err, LOCH_ECORRUPT, "%s has a bad deflate block at byte %zu (zlib %d)",
                         what, at, rc);
    return 0;
}

static int truncated(struct loch_err *err, const char *what, const uint8_t *base,
                     const struct cursor *c)
{
    return loch_errf(err, LOCH_ECORRUPT, "%s is truncated at byte %zu", what,
                     (size_t)(c->p - base));
}

/* Reads an Avro bytes/string value and copies it NUL-terminated into a. */
static bool cursor_avro_str(struct cursor *c, struct arena *a, const char **out, size_t *len)
{
    int64_t n;
    const uint8_t *p;
    if (!cursor_varlong(c, &n) || n < 0 || (uint64_t)n > c->left) {
        c->failed = true;
        return false;
    }
    if (!cursor_bytes(c, (size_t)n, &p))
        return false;
    *out = arena_strndup(a, (const char *)p, (size_t)n);
    if (len)
        *len = (size_t)n;
    return true;
}

static int read_meta(struct iceberg_avro_reader *r, struct cursor *c, const uint8_t *base,
                     const char *what, struct arena *a, struct loch_err *err)
{
    size_t cap = 0;
    for (;;) {
        int64_t n;
        if (!cursor_varlong(c, &n))
            return truncated(err, what, base, c);
        if (n == 0)
            return 0;
        if (n < 0) {
            int64_t size;
            if (n == INT64_MIN || !cursor_varlong(c, &size) || size < 0)
                return truncated(err, what, base, c);
            n = -n;
        }
        if ((uint64_t)n > c->left / 2) /* each entry takes at least two length bytes */
            return truncated(err, what, base, c);
        if (r->n_meta + (size_t)n > cap) {
            size_t ncap = r->n_meta + (size_t)n;
            r->meta = arena_grow(a, r->meta, r->n_meta, ncap, sizeof *r->meta);
            cap = ncap;
        }
        for (int64_t i = 0; i < n; i++) {
            struct iceberg_avro_meta *m = &r->meta[r->n_meta];
            if (!cursor_avro_str(c, a, &m->key, NULL) ||
                !cursor_avro_str(c, a, &m->value, &m->value_len))
                return truncated(err, what, base, c);
            r->n_meta++;
        }
    }
}

const char *iceberg_avro_reader_meta(const struct iceberg_avro_reader *r, const char *key)
{
    for (size_t i = 0; i < r->n_meta; i++)
        if (strcmp(r->meta[i].key, key) == 0)
            return r->meta[i].value;
    return NULL;
}

static int read_blocks(struct iceberg_avro_reader *r, struct cursor *c, const uint8_t *base,
                       const uint8_t *sync, bool deflated, const char *what,
                       struct loch_err *err)
{
    while (c->left > 0) {
        size_t at = (size_t)(c->p - base);
        int64_t count, size;
        const uint8_t *blk, *mark;
        if (!cursor_varlong(c, &count) || !cursor_varlong(c, &size))
            return truncated(err, what, base, c);
        if (count < 0 || size < 0)
            return loch_errf(err, LOCH_ECORRUPT, "%s has a negative block count or size at byte %zu",
                             what, at);
        if ((uint64_t)size > c->left || !cursor_bytes(c, (size_t)size, &blk))
            return truncated(err, what, base, c);
        if (!cursor_bytes(c, SYNC_LEN, &mark))
            return truncated(err, what, base, c);
        if (memcmp(mark, sync, SYNC_LEN) != 0)
            return loch_errf(err, LOCH_ECORRUPT, "%s has a wrong sync marker after the block at byte %zu",
                             what, at);

        size_t start = r->data.len;
        if (deflated) {
            int rc = inflate_raw(blk, (size_t)size, &r->data, what, at, err);
            if (rc)
                return rc;
        } else {
            buf_append(&r->data, blk, (size_t)size);
        }
        size_t got = r->data.len - start;
        if ((uint64_t)count > got && count > 4096)
            return loch_errf(err, LOCH_ECORRUPT, "%s block at byte %zu claims %lld records in %zu bytes",
                             what, at, (long long)count, got);
        struct cursor dc = cursor_make(r->data.data + start, got);
        for (int64_t i = 0; i < count; i++)
            if (!skip_datum(r->schema, &dc, 0))
                return loch_errf(err, LOCH_ECORRUPT,
                                 "%s record %lld does not match its schema (block at byte %zu, "
                                 "record byte %zu)",
                                 what, (long long)(r->n_records + i), at, got - dc.left);
        if (dc.left != 0)
            return loch_errf(err, LOCH_ECORRUPT, "%s block at byte %zu has %zu bytes after its %lld records",
                             what, at, dc.left, (long long)count);
        r->n_records += count;
    }
    return 0;
}

int iceberg_avro_reader_open(struct iceberg_avro_reader *r, const uint8_t *data, size_t len,
                             const char *what, struct arena *a, struct loch_err *err)
{
    memset(r, 0, sizeof *r);
    struct cursor c = cursor_make(data, len);
    const uint8_t *p, *sync;

    if (!cursor_bytes(&c, sizeof MAGIC, &p))
        return truncated(err, what, data, &c);
    if (memcmp(p, MAGIC, sizeof MAGIC) != 0)
        return loch_errf(err, LOCH_ECORRUPT, "%s is not an Avro object container file (bad magic)",
                         what);
    int rc = read_meta(r, &c, data, what, a, err);
    if (rc)
        return rc;
    if (!cursor_bytes(&c, SYNC_LEN, &sync))
        return truncated(err, what, data, &c);

    const char *codec = iceberg_avro_reader_meta(r, "avro.codec");
    bool deflated = false;
    if (codec && strcmp(codec, "deflate") == 0)
        deflated = true;
    else if (codec && strcmp(codec, "null") != 0)
        return loch_errf(err, LOCH_EUNSUPPORTED, "%s uses Avro codec \"%s\"; loch reads null and deflate",
                         what, codec);
    const char *schema_json = NULL;
    size_t schema_len = 0;
    for (size_t i = 0; i < r->n_meta; i++)
        if (strcmp(r->meta[i].key, "avro.schema") == 0) {
            schema_json = r->meta[i].value;
            schema_len = r->meta[i].value_len;
        }
    if (!schema_json)
        return loch_errf(err, LOCH_ECORRUPT, "%s has no avro.schema in its file metadata", what);
    if (avro_schema_from_json_length(schema_json, schema_len, &r->schema))
        return loch_errf(err, LOCH_ECORRUPT, "%s has an invalid avro.schema: %s", what,
                         avro_strerror());
    if (avro_typeof(r->schema) != AVRO_RECORD) {
        avro_schema_decref(r->schema);
        return loch_errf(err, LOCH_ECORRUPT, "%s schema is not a record", what);
    }

    rc = read_blocks(r, &c, data, sync, deflated, what, err);
    if (rc == 0) {
        r->iface = avro_generic_class_from_schema(r->schema);
        if (!r->iface || avro_generic_value_new(r->iface, &r->rec)) {
            if (r->iface)
                avro_value_iface_decref(r->iface);
            r->iface = NULL;
            rc = loch_errf(err, LOCH_EINTERNAL, "avro-c cannot build a reader for the %s schema: %s",
                           what, avro_strerror());
        }
    }
    if (rc) {
        avro_schema_decref(r->schema);
        buf_free(&r->data);
        return rc;
    }
    r->rd = avro_reader_memory(r->data.data ? r->data.data : "", (int64_t)r->data.len);
    return 0;
}

int iceberg_avro_reader_next(struct iceberg_avro_reader *r, struct loch_err *err)
{
    if (r->n_read >= r->n_records)
        return 0;
    avro_value_reset(&r->rec);
    if (avro_value_read(r->rd, &r->rec))
        return loch_errf(err, LOCH_ECORRUPT, "avro-c cannot decode record %lld: %s",
                         (long long)r->n_read, avro_strerror());
    r->n_read++;
    return 1;
}

void iceberg_avro_reader_close(struct iceberg_avro_reader *r)
{
    if (r->rd)
        avro_reader_free(r->rd);
    if (r->iface) {
        avro_value_decref(&r->rec);
        avro_value_iface_decref(r->iface);
    }
    if (r->schema)
        avro_schema_decref(r->schema);
    buf_free(&r->data);
    memset(r, 0, sizeof *r);
}
