/* appender.c: DuckDB appenders, fast row loading into staging tables (engine.h). Not for
 * what is staged (cdc/). */
#include "engine/engine_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- appenders ---- */
struct engine_appender {
    duckdb_appender app;
    bool failed; /* a value was refused; reported at end_row */
};

int engine_appender_open(struct engine_conn *c, const char *catalog, const char *table,
                         struct engine_appender **out, struct loch_err *err)
{
    struct engine_appender *ap = xcalloc(1, sizeof *ap);
    if (duckdb_appender_create_ext(c->con, catalog, NULL, table, &ap->app) != DuckDBSuccess) {
        loch_errf(err, LOCH_EENGINE, "cannot append to %s: %s", table,
                  ap->app ? duckdb_appender_error(ap->app) : "unknown error");
        duckdb_appender_destroy(&ap->app);
        free(ap);
        return LOCH_EENGINE;
    }
    *out = ap;
    return 0;
}

void engine_append_text(struct engine_appender *ap, const char *s, size_t len)
{
    duckdb_state st = s ? duckdb_append_varchar_length(ap->app, s, len) : duckdb_append_null(ap->app);
    if (st != DuckDBSuccess)
        ap->failed = true;
}

void engine_append_int(struct engine_appender *ap, int64_t v)
{
    if (duckdb_append_int64(ap->app, v) != DuckDBSuccess)
        ap->failed = true;
}

int engine_append_end_row(struct engine_appender *ap, struct loch_err *err)
{
    if (ap->failed || duckdb_appender_end_row(ap->app) != DuckDBSuccess) {
        ap->failed = false;
        const char *m = duckdb_appender_error(ap->app);
        return loch_errf(err, LOCH_EENGINE, "cannot append a row: %s", m ? m : "a value did not fit its column");
    }
    return 0;
}

int engine_appender_flush(struct engine_appender *ap, struct loch_err *err)
{
    if (duckdb_appender_flush(ap->app) != DuckDBSuccess) {
        const char *m = duckdb_appender_error(ap->app);
        return loch_errf(err, LOCH_EENGINE, "cannot flush appended rows: %s", m ? m : "unknown error");
    }
    return 0;
}

void engine_appender_close(struct engine_appender *ap)
{
    if (!ap)
        return;
    duckdb_appender_destroy(&ap->app);
    free(ap);
}

