/* replicate.c: `loch replicate [--source NAME] [--catch-up]` (interim version on the
 * cdc-mysql branch; cdc-pg's replicate.c replaces it on merge). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cdc/source.h"
#include "cmd/cmd.h"

static atomic_bool stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_flag, true);
}

int cmd_replicate(struct app *app, int argc, char **argv)
{
    const char *name = NULL;
    bool catch_up = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--source") && i + 1 < argc)
            name = argv[++i];
        else if (!strcmp(argv[i], "--catch-up"))
            catch_up = true;
        else {
            fprintf(stderr, "usage: loch replicate [--source NAME] [--catch-up]\n");
            return 2;
        }
    }
    if (app_open(app, true))
        return 1;
    const struct loch_source *src = NULL;
    for (size_t i = 0; i < app->cfg->n_sources; i++)
        if (!name || !strcmp(app->cfg->sources[i].name, name)) {
            src = &app->cfg->sources[i];
            break;
        }
    if (!src) {
        fprintf(stderr, "loch: no source%s%s in %s\n", name ? " named " : "", name ? name : "", app->cfg->path);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct cdc_run r = {.cfg = app->cfg, .src = src, .cat = app->cat, .st = app->st, .eng = app->eng,
                        .catch_up = catch_up, .stop = &stop_flag, .progress = true};
    struct loch_err err;
    loch_err_clear(&err);
    int rc = cdc_source_run(&r, &err);
    if (rc) {
        app_fail(&err);
        return 1;
    }
    return 0;
}

int cdc_source_run(struct cdc_run *r, struct loch_err *err)
{
    if (!strcmp(r->src->type, "mysql"))
        return cdc_mysql_run(r, err);
    return loch_errf(err, LOCH_EUNSUPPORTED, "source type %s is not supported here", r->src->type);
}
