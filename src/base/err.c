/* err.c: the error table look-ups and the loch_err helpers (see err.h). */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void loch_err_clear(struct loch_err *e)
{
    if (!e)
        return;
    e->code = 0;
    e->msg[0] = e->detail[0] = e->hint[0] = '\0';
}

int loch_errf(struct loch_err *e, int code, const char *fmt, ...)
{
    if (!e)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    e->detail[0] = e->hint[0] = '\0';
    return code;
}

int loch_err_detail(struct loch_err *e, const char *fmt, ...)
{
    if (!e)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof e->detail, fmt, ap);
    va_end(ap);
    return e->code;
}

int loch_err_hint(struct loch_err *e, const char *fmt, ...)
{
    if (!e)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->hint, sizeof e->hint, fmt, ap);
    va_end(ap);
    return e->code;
}

int loch_err_prefix(struct loch_err *e, const char *fmt, ...)
{
    if (!e)
        return 0;
    char pre[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    size_t n = strlen(pre);
    if (n > sizeof e->msg - 3)
        n = sizeof e->msg - 3;
    memcpy(e->msg, pre, n);
    memcpy(e->msg + n, ": ", 2);
    size_t rest = sizeof e->msg - n - 3;
    size_t m = strlen(old);
    if (m > rest)
        m = rest;
    memcpy(e->msg + n + 2, old, m);
    e->msg[n + 2 + m] = '\0';
    return e->code;
}

struct row {
    int code;
    const char *name, *state, *msg;
    int http;
};

static const struct row rows[] = {
#define LOCH_ERR_ROW(name, num, state, http, msg) {-(num), "LOCH_" #name, state, msg, http},
    LOCH_ERRNO_MAP(LOCH_ERR_ROW)
#undef LOCH_ERR_ROW
};

static const struct row *find(int code)
{
    static const struct row ok = {0, "LOCH_OK", "00000", "ok", 200};
    static const struct row unknown = {0, "LOCH_EUNKNOWN", "XX000", "unknown error", 500};
    if (code == 0)
        return &ok;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].code == code)
            return &rows[i];
    return &unknown;
}

const char *loch_err_name(int code) { return find(code)->name; }
const char *loch_err_sqlstate(int code) { return find(code)->state; }
int loch_err_http(int code) { return find(code)->http; }
const char *loch_strerror(int code) { return find(code)->msg; }

void loch_err_print(const struct loch_err *e, void *file)
{
    FILE *f = file;
    fprintf(f, "error: %s\n", e->msg[0] ? e->msg : loch_strerror(e->code));
    if (e->detail[0])
        fprintf(f, "DETAIL: %s\n", e->detail);
    if (e->hint[0])
        fprintf(f, "HINT: %s\n", e->hint);
}

_Noreturn void loch_panic(const char *file, int line, const char *cond, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "loch: PANIC at %s:%d: invariant (%s) broken: %s\n", file, line, cond, msg);
    fflush(stderr);
    abort();
}
