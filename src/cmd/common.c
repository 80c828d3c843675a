/* common.c: what every command opens (config, catalog, store, engine) and how it fails. */
#include "cmd/cmd.h"
#include "maint/maint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "base/util.h"

void app_fail(const struct loch_err *err)
{
    fprintf(stderr, "loch: ");
    loch_err_print(err, stderr);
}

/* The state folder by its real path (a symlink on the way resolved once, at start), so
 * the folders DuckDB is confined to and the paths built under it name what a resolved
 * path names. A missing folder stays as configured: the catalog's open then says so. */
static int real_state_dir(struct app *app, struct loch_err *err)
{
    char *real = realpath(app->cfg->state_dir, NULL);
    if (!real) {
        if (errno == ENOENT)
            return 0;
        return loch_errf(err, LOCH_EIO, "cannot resolve the state folder \"%s\": %s", app->cfg->state_dir,
                         strerror(errno));
    }
    app->cfg->state_dir = arena_strdup(app->a, real);
    free(real);
    return 0;
}

/* DuckDB's spill folder: <state>/tmp/duckdb, absolute (DuckDB's default is ".tmp" in the
 * working directory, which allowed_directories then lets every statement reach), 0700,
 * and a real folder inside the state folder, not a symlink out of it. */
static int temp_dir(struct app *app, const char **out, struct loch_err *err)
{
    char *dir = arena_printf(app->a, "%s/tmp/duckdb", app->cfg->state_dir);
    int rc = util_mkdirs(dir, err);
    if (rc)
        return loch_err_prefix(err, "DuckDB's temp folder");
    struct stat st;
    char *real = realpath(dir, NULL);
    size_t n = strlen(app->cfg->state_dir);
    if (!real || lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || strncmp(real, app->cfg->state_dir, n) ||
        real[n] != '/') {
        free(real);
        loch_errf(err, LOCH_EIO, "DuckDB's temp folder \"%s\" is not a folder inside the state folder", dir);
        return loch_err_hint(err, "remove it (or the symlink on its way); loch creates it at start");
    }
    free(real);
    if ((st.st_mode & 077) && chmod(dir, 0700) != 0)
        return loch_errf(err, LOCH_EIO, "cannot make \"%s\" private (0700): %s", dir, strerror(errno));
    *out = dir;
    return 0;
}

/* An engine on app's lake: threads as given, the configured memory limit, confined to
 * the lake's folders when app->confine. *opts: what it was opened with (strings in app->a,
 * kept for the engines opened later: engine_pool). */
static int open_engine(struct app *app, int threads, bool confine, struct engine_options *opts,
                       struct engine **out, struct loch_err *err)
{
    struct engine_options o = {.threads = threads, .memory_mb = app->cfg->query_memory_mb};
    int rc = temp_dir(app, &o.temp_dir, err);
    if (rc)
        return rc;
    if (confine) {
        /* The warehouse as DuckDB sees it named: by URI (lake views) and as a folder. Never
         * the state folder: a statement that opened and closed catalog.db (read_blob, COPY)
         * would drop the POSIX locks SQLite holds on it for the whole process, and writers
         * in other processes would then corrupt it; its spill folder DuckDB reaches by
         * itself, without the file-access checks. */
        const char **dirs = arena_alloc(app->a, 3 * sizeof *dirs);
        dirs[0] = arena_printf(app->a, "%s/", app->st->root);
        char *local = store_local_root(app->st);
        dirs[1] = local ? arena_strdup(app->a, local) : NULL;
        dirs[2] = NULL;
        free(local);
        o.confine_to = dirs;
    }
    if (opts)
        *opts = o;
    return engine_open(&o, out, err);
}

int app_open(struct app *app, bool with_engine)
{
    struct loch_err err;
    loch_err_clear(&err);
    app->a = app->a ? app->a : arena_new();
    const char *path = config_default_path(app->config_path);
    int rc = config_load(path, app->a, &app->cfg, &err);
    if (!rc)
        rc = real_state_dir(app, &err);
    if (!rc) {
        char *db = arena_printf(app->a, "%s/catalog.db", app->cfg->state_dir);
        rc = catalog_open(db, false, &app->cat, &err);
    }
    if (!rc)
        rc = store_open(app->cfg->warehouse, &app->st, &err);
    if (!rc && with_engine)
        rc = open_engine(app, app->cfg->threads, app->confine, &app->eng_opts, &app->eng, &err);
    if (rc) {
        app_fail(&err);
        return 1;
    }
    return 0;
}

int app_replication_engine(struct app *app, struct loch_err *err)
{
    if (app->reng)
        return 0;
    /* Not confined: only the applier's own SQL runs there (no user SQL), and it sets
     * threads (all cores while loading, one while streaming). */
    return open_engine(app, 1, false, NULL, &app->reng, err);
}

int app_restricted_engine(struct app *app, struct loch_err *err)
{
    if (app->xeng)
        return 0;
    struct engine_options o = {.threads = app->cfg->threads, .memory_mb = app->cfg->query_memory_mb};
    o.restricted_dir = arena_printf(app->a, "%s/restricted", app->cfg->state_dir);
    return engine_open(&o, &app->xeng, err);
}

void app_close(struct app *app)
{
    engine_close(app->xeng);
    engine_close(app->reng);
    engine_close(app->eng);
    store_close(app->st);
    catalog_close(app->cat);
    arena_free(app->a);
    app->a = NULL;
}

struct maint_sched *app_maint_start(struct app *app)
{
    const struct loch_maintenance *m = &app->cfg->maintenance;
    if (!m->enabled || app->cfg->n_sources == 0)
        return NULL;
    struct maint_schedule s = {.interval_ms = m->interval_s * 1000, .min_files = (size_t)m->min_files,
                               .small_file_ratio = m->small_file_ratio, .delete_ratio = m->delete_ratio,
                               .snapshot_age_ms = m->snapshot_age_s * 1000, .orphan_ms = m->orphan_age_s * 1000,
                               .target_bytes = m->target_file_size};
    struct maint_sched *out = NULL;
    struct loch_err err;
    loch_err_clear(&err);
    if (maint_sched_start(&s, arena_printf(app->a, "%s/catalog.db", app->cfg->state_dir), app->cfg->warehouse,
                          app->cfg->state_dir, &out, &err))
        log_warn("maintenance does not run by itself: %s", err.msg);
    else
        log_info("maintenance: every %lld s, compacting tables past %lld files or %.0f%% deleted rows",
                 (long long)m->interval_s, (long long)m->min_files, m->delete_ratio * 100);
    return out;
}
