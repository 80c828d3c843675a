/* pgoutput.h: decoder of PostgreSQL's logical replication protocol, version 1
 * ("Logical Replication Message Formats", protocol-logicalrep-message-formats.html) and of
 * the CopyBoth frames around it ("Streaming Replication Protocol": XLogData 'w', primary
 * keepalive 'k'), plus the standby status update we send back. Not for connections or
 * applying changes (stream.c).
 *
 * Every length read from the wire is checked against what is left (base/buf.h cursor):
 * a short or garbage message is LOCH_EPROTO, never a read past the buffer. Decoded
 * strings and tuple values point into the caller's buffer; arrays go into arena a. */
#ifndef LOCH_CDC_PG_PGOUTPUT_H
#define LOCH_CDC_PG_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/mem.h"

/* µs between 1970-01-01 and PostgreSQL's epoch 2000-01-01. */
#define PGO_EPOCH_OFFSET_US INT64_C(946684800000000)

enum pgo_kind {
    PGO_BEGIN = 'B',
    PGO_COMMIT = 'C',
    PGO_ORIGIN = 'O',
    PGO_RELATION = 'R',
    PGO_TYPE = 'Y',
    PGO_INSERT = 'I',
    PGO_UPDATE = 'U',
    PGO_DELETE = 'D',
    PGO_TRUNCATE = 'T',
    PGO_MESSAGE = 'M',
};

/* TupleData column: kind 'n' NULL, 'u' unchanged TOASTed value, 't' text, 'b' binary. */
struct pgo_col {
    char kind;
    const char *data;
    size_t len;
};

struct pgo_tuple {
    size_t n;
    struct pgo_col *cols;
};

struct pgo_relcol {
    uint8_t flags; /* 1 = part of the replica identity key */
    const char *name;
    uint32_t type_oid;
    int32_t typmod;
};

struct pgo_msg {
    enum pgo_kind kind;
    union {
        struct { uint64_t final_lsn; int64_t commit_ts; uint32_t xid; } begin;          /* ts: PG epoch µs */
        struct { uint8_t flags; uint64_t commit_lsn, end_lsn; int64_t commit_ts; } commit;
        struct { uint64_t lsn; const char *name; } origin;
        struct { uint32_t relid; const char *nspname, *relname; char replident; size_t ncols;
                 struct pgo_relcol *cols; } rel;
        struct { uint32_t oid; const char *nspname, *name; } type;
        /* insert: new; update: old_kind 'K'/'O' (old) or 0, new; delete: old_kind, old */
        struct { uint32_t relid; char old_kind; struct pgo_tuple old, new; } dml;
        struct { uint8_t options; size_t nrels; uint32_t *relids; } trunc;
        struct { uint8_t flags; uint64_t lsn; const char *prefix; const uint8_t *content; size_t len; } message;
    } u;
};

/* Decodes one pgoutput message (the payload of an XLogData frame). LOCH_EPROTO naming
 * the message and what was wrong on short, trailing or unknown input. */
int pgoutput_decode(const uint8_t *p, size_t n, struct arena *a, struct pgo_msg *out, struct loch_err *err);

/* A CopyData frame from the walsender. */
struct pgo_frame {
    char kind;            /* 'w' XLogData, 'k' primary keepalive */
    uint64_t wal_start;   /* 'w' only */
    uint64_t wal_end;
    int64_t send_time;    /* PG epoch µs */
    bool reply_requested; /* 'k' only */
    const uint8_t *payload; /* 'w' only */
    size_t payload_len;
};

int pgoutput_decode_frame(const uint8_t *p, size_t n, struct pgo_frame *out, struct loch_err *err);

/* Writes a Standby Status Update ('r', 34 bytes) into out. */
void pgoutput_status_update(uint8_t out[34], uint64_t write_lsn, uint64_t flush_lsn, uint64_t apply_lsn,
                            int64_t now_pg_us, bool reply);

/* "X/Y" text of an LSN into out (at least 32 bytes); parses it back (false on bad text). */
void pgoutput_lsn_format(uint64_t lsn, char *out, size_t out_len);
bool pgoutput_lsn_parse(const char *s, uint64_t *out);

#endif
