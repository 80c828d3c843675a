/* pgwire_msg.h: PostgreSQL protocol 3.0 message framing: decoders for what a client sends
 * (startup packets and frontend messages) and encoders for what loch sends back. Pure
 * functions over bytes, no sockets, so the fuzz target and unit tests drive them alone.
 * Not for connection state or SQL (pgwire.c). Reference: PostgreSQL documentation,
 * "Frontend/Backend Protocol", sections 55.2 (flow) and 55.7 (message formats). */
#ifndef LOCH_SERVER_PGWIRE_MSG_H
#define LOCH_SERVER_PGWIRE_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/mem.h"

#define PGWIRE_PROTO_V3 196608u      /* 3.0 */
#define PGWIRE_SSL_REQUEST 80877103u
#define PGWIRE_GSSENC_REQUEST 80877104u
#define PGWIRE_CANCEL_REQUEST 80877102u
#define PGWIRE_MAX_STARTUP 10000u        /* as PostgreSQL: longer startup packets are garbage */
#define PGWIRE_MAX_MESSAGE (64u << 20)   /* largest frontend message body accepted */

/* A startup-phase packet (body = the bytes after its int32 length). */
struct pgwire_startup {
    uint32_t code;            /* PGWIRE_PROTO_V3 or one of the requests */
    int32_t cancel_pid, cancel_key; /* CancelRequest */
    const char **keys, **vals;      /* v3 parameters (user, database, options, ...) */
    size_t n_params;
};

/* Decodes a startup packet whose body is len bytes. Pointers point into body or a. On a
 * malformed packet: LOCH_EPROTO naming the problem (unsupported protocol versions too). */
int pgwire_parse_startup(const uint8_t *body, size_t len, struct arena *a, struct pgwire_startup *out,
                         struct loch_err *err);
/* The value of a startup parameter, or NULL. */
const char *pgwire_startup_get(const struct pgwire_startup *s, const char *key);

struct pgwire_param {
    const uint8_t *data; /* NULL for SQL NULL */
    int32_t len;
};

/* One frontend message of the normal phase, decoded by type byte. */
struct pgwire_msg {
    char type;
    union {
        struct { const char *sql; } query;                                   /* 'Q' */
        struct { const char *name, *sql; uint32_t *types; uint16_t n_types; } parse; /* 'P' */
        struct {
            const char *portal, *stmt;
            int16_t *fmts; uint16_t n_fmts;
            struct pgwire_param *params; uint16_t n_params;
            int16_t *rfmts; uint16_t n_rfmts;
        } bind;                                                              /* 'B' */
        struct { char kind; const char *name; } describe;                    /* 'D', also 'C' close */
        struct { const char *portal; int32_t max_rows; } execute;            /* 'E' */
        struct { const uint8_t *data; size_t len; } raw;                     /* 'p', 'd', ... */
    } u;
};

/* Decodes a frontend message (type byte + body of len bytes, the length word already
 * stripped). Understood: Q P B D C E S H X p (raw) d c f. Every field is checked against
 * the bytes left and the body must be consumed exactly. LOCH_EPROTO names the message
 * and what is wrong; unknown types too. */
int pgwire_parse(char type, const uint8_t *body, size_t len, struct arena *a, struct pgwire_msg *out,
                 struct loch_err *err);

/* SASLInitialResponse: mechanism name and the client-first message. */
int pgwire_parse_sasl_initial(const uint8_t *body, size_t len, const char **mech, const uint8_t **data,
                              size_t *data_len, struct loch_err *err);

/* ---- encoders: each appends one whole backend message to b ---- */

/* Starts a message of the given type; returns the offset to pass to pgwire_end. */
size_t pgwire_begin(struct buf *b, char type);
/* Patches the length word of the message started at mark. */
void pgwire_end(struct buf *b, size_t mark);
void pgwire_put16(struct buf *b, uint16_t v);
void pgwire_put32(struct buf *b, uint32_t v);
void pgwire_put64(struct buf *b, uint64_t v);
void pgwire_putstr(struct buf *b, const char *s); /* with its NUL */

void pgwire_auth(struct buf *b, uint32_t code, const void *data, size_t len); /* 'R' */
void pgwire_param_status(struct buf *b, const char *name, const char *value); /* 'S' */
void pgwire_backend_key(struct buf *b, int32_t pid, int32_t key);           /* 'K' */
void pgwire_ready(struct buf *b, char status);                              /* 'Z': I, T, E */
void pgwire_complete(struct buf *b, const char *tag);                       /* 'C' */
/* 'E' (or 'N' when notice): severity ERROR/FATAL/NOTICE, SQLSTATE, message, optional
 * detail/hint (NULL or ""), position 1-based in characters (0 = none). */
void pgwire_error(struct buf *b, bool notice, const char *severity, const char *sqlstate, const char *msg,
                  const char *detail, const char *hint, size_t position);

#endif
