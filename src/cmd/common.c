/* common.c: what every command opens (config, catalog, store, engine) and how it fails. */
#include "cmd/cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void app_fail(const struct loch_err *err)
{
    fprintf(stderr, "loch: ");
    loch_err_print(err, stderr);
}

/* An engine on app's lake: threads as given, the configured memory limit, confined to
 * the lake's folders when app->confine. *opts: what it was opened with (strings in app->a,
 * kept for the engines opened later: engine_pool). */
static int open_engine(struct app *app, int threads, bool confine, struct engine_options *opts,
                       struct engine **out, struct loch_err *err)
{
    struct engine_options o = {.threads = threads, .memory_mb = app->cfg->query_memory_mb};
    const char **dirs = arena_alloc(app->a, 4 * sizeof *dirs);
    dirs[0] = dirs[1] = dirs[3] = NULL;
    dirs[2] = app->cfg->state_dir;
    if (confine) {
        /* the warehouse as DuckDB sees it named: by URI (lake views) and as a folder */
        dirs[0] = arena_printf(app->a, "%s/", app->st->root);
        char *local = store_local_root(app->st);
        dirs[1] = local ? arena_strdup(app->a, local) : app->cfg->state_dir;
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
