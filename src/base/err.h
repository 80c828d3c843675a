/* err.h: loch's one error table and the error object every fallible function fills.
 * Not for logging (log.h) or for protocol framing of errors (server/ maps codes there).
 *
 * Convention: functions return 0 or a negative LOCH_E* code, and fill a struct loch_err
 * with a human message (what failed, on which object), an optional detail and a hint
 * (what to do), in PostgreSQL's message style. */
#ifndef LOCH_BASE_ERR_H
#define LOCH_BASE_ERR_H

#include <stddef.h>

/* X(name, number, sqlstate, http status, short message) */
#define LOCH_ERRNO_MAP(X)                                                        \
    X(EINVAL,      1, "22023", 400, "invalid argument")                         \
    X(ENOENT,      2, "42P01", 404, "not found")                                \
    X(EEXIST,      3, "42P07", 409, "already exists")                           \
    X(EIO,         4, "58030", 500, "input/output error")                       \
    X(ENOMEM,      5, "53200", 500, "out of memory")                            \
    X(ECONFLICT,   6, "40001", 409, "concurrent commit conflict")               \
    X(EUNSUPPORTED,7, "0A000", 400, "not supported")                            \
    X(ESYNTAX,     8, "42601", 400, "syntax error")                             \
    X(EPERM,       9, "42501", 403, "permission denied")                        \
    X(EAUTH,      10, "28P01", 401, "authentication failed")                    \
    X(EPROTO,     11, "08P01", 400, "protocol violation")                       \
    X(ECORRUPT,   12, "XX001", 500, "data corrupted")                           \
    X(EENGINE,    13, "XX000", 500, "query engine error")                       \
    X(ESOURCE,    14, "08006", 502, "source unavailable")                       \
    X(ECONFIG,    15, "F0000", 400, "configuration error")                      \
    X(EQUERY,     16, "42000", 400, "query error")                              \
    X(EINTERNAL,  17, "XX000", 500, "internal error")                           \
    X(ECANCELED,  18, "57014", 400, "canceled")                                 \
    X(ENOROLE,    30, "42704", 404, "role does not exist")                      \
    X(EDUPROLE,   31, "42710", 409, "role already exists")                      \
    X(ENOTACCEPT, 32, "0A000", 406, "not acceptable")                           \
    X(ETOOLARGE,  33, "54000", 413, "request too large")                        \
    X(EMETHOD,    34, "0A000", 405, "method not allowed")                       \
    X(ENOROUTE,   35, "0A000", 404, "no such route")                            \
    X(ETOOMANY,   36, "53300", 503, "too many connections")                     \
    X(EDIVZERO,   40, "22012", 400, "division by zero")                         \
    X(ECONVERT,   41, "22P02", 400, "invalid text representation")              \
    X(ERANGE,     42, "22003", 400, "value out of range")                       \
    X(ENOCOLUMN,  43, "42703", 400, "column does not exist")                     \
    X(ENAME,      44, "42602", 400, "invalid name")

enum loch_errno {
    LOCH_OK = 0,
#define LOCH_ERR_ENUM(name, num, state, http, msg) LOCH_##name = -(num),
    LOCH_ERRNO_MAP(LOCH_ERR_ENUM)
#undef LOCH_ERR_ENUM
};

struct loch_err {
    int code;            /* 0 or a LOCH_E* value */
    char msg[1024];      /* primary message: what failed, on which object */
    char detail[1024];   /* optional: more facts */
    char hint[512];      /* optional: what to do */
};

/* Clears e (code 0, empty strings). */
void loch_err_clear(struct loch_err *e);

/* Sets e's code and primary message (printf-style); clears detail and hint.
 * Returns code, so callers can write `return loch_errf(err, LOCH_EINVAL, ...)`.
 * e may be NULL (the message is then dropped). */
int loch_errf(struct loch_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets the detail / hint of an error already set. Returns e->code (0 when e is NULL). */
int loch_err_detail(struct loch_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int loch_err_hint(struct loch_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes e->msg with "context: " (printf-style), for errors passed up a layer. */
int loch_err_prefix(struct loch_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Table look-ups; unknown codes give "LOCH_EUNKNOWN", "XX000", 500, "unknown error". */
const char *loch_err_name(int code);
const char *loch_err_sqlstate(int code);
int loch_err_http(int code);
const char *loch_strerror(int code);

/* Writes "error: msg\nDETAIL: ...\nHINT: ...\n" to stderr-like FILE* (void* to keep
 * stdio out of this header's users that do not need it). */
void loch_err_print(const struct loch_err *e, void *file);

/* LOCH_VERIFY(cond, fmt, ...): an invariant whose breaking would corrupt the lake if loch
 * went on (a sequence number going backwards, a merged manifest losing a live file). When
 * cond is false the process aborts with file:line, the condition and the message: a panic
 * with a message, never silent repair (STYLE.md). Not for bad input, which gets an error. */
#define LOCH_VERIFY(cond, ...)                                                                   \
    do {                                                                                         \
        if (!(cond))                                                                             \
            loch_panic(__FILE__, __LINE__, #cond, __VA_ARGS__);                                  \
    } while (0)
_Noreturn void loch_panic(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
