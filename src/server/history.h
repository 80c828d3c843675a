/* history.h: the query history both servers keep (catalog.db table loch_query_history,
 * the newest HISTORY_MAX statements), listed per user by GET /v1/queries. SQL is stored
 * with passwords redacted (query_redact). Not for logs or metrics (metrics.h). */
#ifndef LOCH_SERVER_HISTORY_H
#define LOCH_SERVER_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/mem.h"
#include "catalog/catalog.h"

#define HISTORY_MAX 10000

struct history_entry {
    int64_t id;            /* assigned by history_record */
    const char *user;
    const char *protocol;  /* "pgwire" | "http" */
    const char *sql;       /* as the client sent it: redacted on the way in */
    int64_t started_ms;    /* Unix ms */
    int64_t duration_ms;
    int64_t rows;          /* returned or changed; -1 unknown */
    int64_t bytes_scanned; /* -1 unknown */
    const char *status;    /* "ok" | "error" */
    const char *sqlstate;  /* NULL when ok */
    const char *error;     /* the error message; NULL when ok */
};

/* Appends e (its sql redacted first) and trims the table to the newest HISTORY_MAX rows
 * now and then. Errors are LOCH_EIO; callers log them and go on (history is advisory). */
int history_record(struct catalog *cat, const struct history_entry *e, struct loch_err *err);

/* The newest `limit` entries of user (NULL: everyone), newest first; strings in a. */
int history_list(struct catalog *cat, const char *user, size_t limit, struct arena *a, struct history_entry **out,
                 size_t *n_out, struct loch_err *err);

#endif
