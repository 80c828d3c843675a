/* cdc.c: `loch status` (per replicated table: rows, last source commit, lag) and
 * `loch validate --source NAME [--table SCHEMA.TABLE]` (source vs lake, row by row):
 * arguments and printing; the figures and the comparison are cdc/report.h's, which reads
 * the lake through the query session wired in here. Not for replication (replicate.c). */
#include "cmd/cmd.h"
#include "maint/maint.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cdc/report.h"
#include "query/query.h"

/* ---- the lake, read through a query session (cdc/ may not include query/) ---- */

static int keep_rows(void *ctx, const struct query_result *r)
{
    *(struct engine_rows **)ctx = r->rows;
    return 0;
}

/* cdc_lake_reader.query: the rows stay the session's until its next statement. */
static int lake_rows(void *qs, const char *sql, struct engine_rows **out, struct loch_err *err)
{
    *out = NULL;
    return query_run(qs, sql, keep_rows, out, err);
}

static void utc(char *out, size_t len, int64_t ms)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    strftime(out, len, "%Y-%m-%d %H:%M:%SZ", &tm);
}

/* ---- status ---- */

int cmd_status(struct app *app, int argc, char **argv)
{
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--source") && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: loch status [--source NAME]\n");
            return 2;
        }
    }
    if (app_open(app, true))
        return 1;
    struct loch_err err;
    loch_err_clear(&err);
    struct query_env env = {app->cat, app->st, app->eng, app->cfg->state_dir, NULL};
    struct query_session *qs = NULL;
    struct cdc_status_source *s = NULL;
    size_t n = 0;
    int rc = query_session_open(&env, &qs, &err);
    struct cdc_lake_reader lake = {lake_rows, qs};
    if (!rc)
        rc = cdc_status(app->cfg, app->cat, app->st, &lake, only, app->a, &s, &n, &err);
    for (size_t k = 0; k < n; k++) {
        printf("source %s (%s): %s%s\n", s[k].src->name, s[k].src->type,
               s[k].checkpoint ? "replicated up to " : "not loaded yet", s[k].checkpoint ? s[k].checkpoint : "");
        if (!s[k].checkpoint)
            continue;
        printf("  %-40s | %12s | %-26s | %-26s | %-9s | %5s | %9s | %7s | %s\n", "table", "rows",
               "last source commit", "in lake at", "lag", "files", "avg size", "deleted", "last maintenance");
        for (size_t i = 0; i < s[k].n_tables; i++) {
            const struct cdc_status_table *t = &s[k].tables[i];
            char last[40] = "-", inlake[40] = "-", lag[40] = "-";
            if (t->last_commit_us) {
                utc(last, sizeof last, t->last_commit_us / 1000);
                if (t->lake_ms)
                    snprintf(lag, sizeof lag, "%.3f s", (t->lake_ms * 1000 - t->last_commit_us) / 1e6);
            }
            if (t->lake_ms)
                utc(inlake, sizeof inlake, t->lake_ms);
            char maint[40] = "never", avg[24];
            int64_t mt = maint_last_run(app->cat, t->ns, t->name, app->a);
            if (mt > 0)
                utc(maint, sizeof maint, mt);
            snprintf(avg, sizeof avg, "%.2f MB", (double)t->avg_bytes / 1e6);
            printf("  %-40s | %12s | %-26s | %-26s | %-9s | %5zu | %9s | %6.1f%% | %s\n",
                   arena_printf(app->a, "%s.%s", t->ns, t->name), t->rows, last, inlake, lag, t->n_files, avg,
                   t->delete_ratio * 100, maint);
        }
    }
    query_session_close(qs);
    if (rc) {
        app_fail(&err);
        return 1;
    }
    return 0;
}

/* ---- validate ---- */

static void print_table(void *ctx, const struct cdc_validate_table *t)
{
    (void)ctx;
    for (size_t i = 0; i < t->n_shown; i++)
        printf("  %s: row (%s) %s\n", t->full, t->shown[i].key, t->shown[i].what);
    printf("%s: %" PRId64 " rows at the source, ", t->full, t->n_src);
    if (t->n_diff)
        printf("%" PRId64 " differing rows\n", t->n_diff);
    else
        printf("identical in the lake\n");
}

int cmd_validate(struct app *app, int argc, char **argv)
{
    const char *only_src = NULL, *only_table = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--source") && i + 1 < argc)
            only_src = argv[++i];
        else if (!strcmp(argv[i], "--table") && i + 1 < argc)
            only_table = argv[++i];
        else {
            fprintf(stderr, "usage: loch validate --source NAME [--table SCHEMA.TABLE]\n");
            return 2;
        }
    }
    if (!only_src) {
        fprintf(stderr, "usage: loch validate --source NAME [--table SCHEMA.TABLE]\n");
        return 2;
    }
    if (app_open(app, true))
        return 1;
    struct loch_err err;
    loch_err_clear(&err);
    const struct loch_source *src = NULL;
    for (size_t i = 0; i < app->cfg->n_sources; i++)
        if (!strcmp(app->cfg->sources[i].name, only_src))
            src = &app->cfg->sources[i];
    if (!src) {
        loch_errf(&err, LOCH_ECONFIG, "no source named \"%s\" in the config", only_src);
        app_fail(&err);
        return 1;
    }
    struct engine_conn *conn = NULL;
    struct query_session *qs = NULL;
    struct query_env env = {app->cat, app->st, app->eng, app->cfg->state_dir, NULL};
    struct cdc_run run = {app->cfg, src, app->cat, app->st, app->eng, false, NULL, false};
    int64_t n_diff = 0;
    int rc = engine_connect(app->eng, &conn, &err);
    if (!rc)
        rc = query_session_open(&env, &qs, &err);
    struct cdc_lake_reader lake = {lake_rows, qs};
    if (!rc)
        rc = cdc_validate(&run, conn, &lake, only_table, app->a, print_table, NULL, &n_diff, &err);
    query_session_close(qs);
    engine_disconnect(conn);
    if (rc) {
        app_fail(&err);
        return 1;
    }
    return n_diff ? 1 : 0;
}
