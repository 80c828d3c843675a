/* pgoutput.c: the pgoutput (protocol version 1) and CopyBoth frame decoders (see
 * pgoutput.h). Byte layouts follow PostgreSQL's protocol-logicalrep-message-formats.html
 * and protocol-replication.html; the field order mirrors logicalrep_read_* in
 * src/backend/replication/logical/proto.c. */
#include "cdc/pg/pgoutput.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

static int bad(struct loch_err *err, const char *what)
{
    loch_errf(err, LOCH_EPROTO, "malformed pgoutput message: %s", what);
    return loch_err_hint(err, "the replication stream is corrupt or not pgoutput protocol version 1");
}

/* TupleData: Int16 ncols, then per column Byte1 kind [Int32 len, bytes]. */
static bool read_tuple(struct cursor *c, struct arena *a, struct pgo_tuple *t)
{
    uint16_t n;
    if (!cursor_be16(c, &n))
        return false;
    /* every column takes at least one byte: refuse counts the buffer cannot hold */
    if (n > c->left) {
        c->failed = true;
        return false;
    }
    t->n = n;
    t->cols = arena_alloc(a, (n ? n : 1) * sizeof *t->cols);
    for (size_t i = 0; i < n; i++) {
        uint8_t k;
        if (!cursor_u8(c, &k))
            return false;
        struct pgo_col *col = &t->cols[i];
        col->kind = (char)k;
        col->data = NULL;
        col->len = 0;
        if (k == 'n' || k == 'u')
            continue;
        if (k != 't' && k != 'b') {
            c->failed = true;
            return false;
        }
        uint32_t len;
        const uint8_t *p;
        if (!cursor_be32(c, &len) || !cursor_bytes(c, len, &p))
            return false;
        col->data = (const char *)p;
        col->len = len;
    }
    return true;
}

static bool read_u64(struct cursor *c, uint64_t *v) { return cursor_be64(c, v); }

static bool read_i64(struct cursor *c, int64_t *v)
{
    uint64_t u;
    if (!cursor_be64(c, &u))
        return false;
    memcpy(v, &u, sizeof *v);
    return true;
}

static bool read_str(struct cursor *c, const char **s)
{
    size_t len;
    return cursor_cstr(c, s, &len);
}

/* Relation: id, namespace, name, replica identity, then per column flags (1 = part of
 * the key), name, type OID and typmod (protocol-logicalrep-message-formats). */
static void read_relation(struct cursor *c, struct arena *a, struct pgo_msg *m)
{
    uint8_t ri;
    uint16_t nc;
    cursor_be32(c, &m->u.rel.relid);
    read_str(c, &m->u.rel.nspname);
    read_str(c, &m->u.rel.relname);
    cursor_u8(c, &ri);
    m->u.rel.replident = (char)ri;
    if (!cursor_be16(c, &nc))
        return;
    if (nc > c->left) { /* at least one byte per column */
        c->failed = true;
        return;
    }
    m->u.rel.ncols = nc;
    m->u.rel.cols = arena_alloc(a, (nc ? nc : 1) * sizeof *m->u.rel.cols);
    for (size_t i = 0; i < nc && !c->failed; i++) {
        struct pgo_relcol *rc = &m->u.rel.cols[i];
        uint32_t tm;
        cursor_u8(c, &rc->flags);
        read_str(c, &rc->name);
        cursor_be32(c, &rc->type_oid);
        cursor_be32(c, &tm);
        rc->typmod = (int32_t)tm;
    }
}

/* Truncate: the relation count, options, then the relation ids. */
static void read_truncate(struct cursor *c, struct arena *a, struct pgo_msg *m)
{
    uint32_t nr;
    if (!cursor_be32(c, &nr))
        return;
    cursor_u8(c, &m->u.trunc.options);
    if (nr > c->left / 4) {
        c->failed = true;
        return;
    }
    m->u.trunc.nrels = nr;
    m->u.trunc.relids = arena_alloc(a, (nr ? nr : 1) * sizeof *m->u.trunc.relids);
    for (size_t i = 0; i < nr; i++)
        cursor_be32(c, &m->u.trunc.relids[i]);
}

int pgoutput_decode(const uint8_t *p, size_t n, struct arena *a, struct pgo_msg *m, struct loch_err *err)
{
    struct cursor c = cursor_make(p, n);
    uint8_t kind;
    memset(m, 0, sizeof *m);
    if (!cursor_u8(&c, &kind))
        return bad(err, "empty message");
    m->kind = (enum pgo_kind)kind;
    switch (kind) {
    case 'B':
        read_u64(&c, &m->u.begin.final_lsn);
        read_i64(&c, &m->u.begin.commit_ts);
        cursor_be32(&c, &m->u.begin.xid);
        break;
    case 'C':
        cursor_u8(&c, &m->u.commit.flags);
        read_u64(&c, &m->u.commit.commit_lsn);
        read_u64(&c, &m->u.commit.end_lsn);
        read_i64(&c, &m->u.commit.commit_ts);
        break;
    case 'O':
        read_u64(&c, &m->u.origin.lsn);
        read_str(&c, &m->u.origin.name);
        break;
    case 'R':
        read_relation(&c, a, m);
        break;
    case 'Y':
        cursor_be32(&c, &m->u.type.oid);
        read_str(&c, &m->u.type.nspname);
        read_str(&c, &m->u.type.name);
        break;
    case 'I': {
        uint8_t k;
        cursor_be32(&c, &m->u.dml.relid);
        if (cursor_u8(&c, &k) && k != 'N')
            return bad(err, "insert without a new tuple ('N')");
        read_tuple(&c, a, &m->u.dml.new);
        break;
    }
    case 'U': {
        uint8_t k;
        cursor_be32(&c, &m->u.dml.relid);
        if (!cursor_u8(&c, &k))
            break;
        if (k == 'K' || k == 'O') {
            m->u.dml.old_kind = (char)k;
            if (!read_tuple(&c, a, &m->u.dml.old) || !cursor_u8(&c, &k))
                break;
        }
        if (k != 'N')
            return bad(err, "update without a new tuple ('N')");
        read_tuple(&c, a, &m->u.dml.new);
        break;
    }
    case 'D': {
        uint8_t k;
        cursor_be32(&c, &m->u.dml.relid);
        if (cursor_u8(&c, &k) && k != 'K' && k != 'O')
            return bad(err, "delete without an old key ('K') or old tuple ('O')");
        m->u.dml.old_kind = (char)k;
        read_tuple(&c, a, &m->u.dml.old);
        break;
    }
    case 'T':
        read_truncate(&c, a, m);
        break;
    case 'M': {
        uint32_t len;
        const uint8_t *q;
        cursor_u8(&c, &m->u.message.flags);
        read_u64(&c, &m->u.message.lsn);
        read_str(&c, &m->u.message.prefix);
        if (cursor_be32(&c, &len) && cursor_bytes(&c, len, &q)) {
            m->u.message.content = q;
            m->u.message.len = len;
        }
        break;
    }
    default: {
        char what[64];
        snprintf(what, sizeof what, "unknown message type 0x%02x", kind);
        return bad(err, what);
    }
    }
    if (c.failed) {
        char what[64];
        snprintf(what, sizeof what, "'%c' message is truncated or has a bad length", kind);
        return bad(err, what);
    }
    if (c.left) {
        char what[80];
        snprintf(what, sizeof what, "'%c' message has %zu unexpected trailing bytes", kind, c.left);
        return bad(err, what);
    }
    return 0;
}

int pgoutput_decode_frame(const uint8_t *p, size_t n, struct pgo_frame *f, struct loch_err *err)
{
    struct cursor c = cursor_make(p, n);
    uint8_t k;
    memset(f, 0, sizeof *f);
    if (!cursor_u8(&c, &k))
        return loch_errf(err, LOCH_EPROTO, "empty replication frame");
    f->kind = (char)k;
    if (k == 'w') {
        read_u64(&c, &f->wal_start);
        read_u64(&c, &f->wal_end);
        read_i64(&c, &f->send_time);
        if (c.failed)
            return loch_errf(err, LOCH_EPROTO, "truncated XLogData frame (%zu bytes)", n);
        f->payload = c.p;
        f->payload_len = c.left;
        return 0;
    }
    if (k == 'k') {
        uint8_t r;
        read_u64(&c, &f->wal_end);
        read_i64(&c, &f->send_time);
        cursor_u8(&c, &r);
        if (c.failed || c.left)
            return loch_errf(err, LOCH_EPROTO, "malformed keepalive frame (%zu bytes, expected 18)", n);
        f->reply_requested = r != 0;
        return 0;
    }
    return loch_errf(err, LOCH_EPROTO, "unknown replication frame type 0x%02x", k);
}

static void put_be64(uint8_t *o, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        o[i] = (uint8_t)v;
        v >>= 8;
    }
}

void pgoutput_status_update(uint8_t out[34], uint64_t write_lsn, uint64_t flush_lsn, uint64_t apply_lsn,
                            int64_t now_pg_us, bool reply)
{
    out[0] = 'r';
    put_be64(out + 1, write_lsn);
    put_be64(out + 9, flush_lsn);
    put_be64(out + 17, apply_lsn);
    put_be64(out + 25, (uint64_t)now_pg_us);
    out[33] = reply ? 1 : 0;
}

void pgoutput_lsn_format(uint64_t lsn, char *out, size_t out_len)
{
    snprintf(out, out_len, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
}

bool pgoutput_lsn_parse(const char *s, uint64_t *out)
{
    unsigned int hi, lo;
    int used = 0;
    if (!s || sscanf(s, "%X/%X%n", &hi, &lo, &used) != 2 || s[used])
        return false;
    *out = ((uint64_t)hi << 32) | lo;
    return true;
}
