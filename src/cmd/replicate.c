/* replicate.c: `loch replicate [--source NAME] [--catch-up]`: runs every selected source
 * in its own thread until SIGINT/SIGTERM (or, with --catch-up, until each has everything
 * committed at the source before it started). Not for the replication itself (cdc/). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "cdc/source.h"
#include "cmd/cmd.h"

static atomic_bool g_stop;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&g_stop, true);
}

struct job {
    struct cdc_run run;
    char catalog_path[4096];
    int rc;
    struct loch_err err;
};

/* Runs one source with a catalog handle of its own; the result in j->rc / j->err. */
static void job_run(struct job *j)
{
    loch_err_clear(&j->err);
    j->rc = catalog_open(j->catalog_path, false, &j->run.cat, &j->err);
    if (!j->rc)
        j->rc = cdc_source_run(&j->run, &j->err);
    catalog_close(j->run.cat);
}

static void *job_main(void *arg)
{
    struct job *j = arg;
    job_run(j);
    if (j->rc)
        atomic_store(&g_stop, true); /* one source failing stops the command */
    return NULL;
}

int cmd_replicate(struct app *app, int argc, char **argv)
{
    const char *only = NULL;
    bool catch_up = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--source") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--catch-up"))
            catch_up = true;
        else {
            fprintf(stderr, "usage: loch replicate [--source NAME] [--catch-up]\n");
            return 2;
        }
    }
    if (app_open(app, false))
        return 1;
    struct loch_err oe;
    if (app_replication_engine(app, &oe)) {
        app_fail(&oe);
        return 1;
    }
    size_t n = 0;
    struct job *jobs = arena_alloc(app->a, (app->cfg->n_sources + 1) * sizeof *jobs);
    for (size_t i = 0; i < app->cfg->n_sources; i++) {
        const struct loch_source *src = &app->cfg->sources[i];
        if (only && strcmp(only, src->name))
            continue;
        struct job *j = &jobs[n++];
        j->run = (struct cdc_run){app->cfg, src, NULL, app->st, app->reng, catch_up, &g_stop, true};
        snprintf(j->catalog_path, sizeof j->catalog_path, "%s/catalog.db", app->cfg->state_dir);
    }
    if (!n) {
        struct loch_err e;
        loch_errf(&e, LOCH_ECONFIG, only ? "no source named \"%s\" in %s" : "no sources in %s%s",
                  only ? only : app->config_path ? app->config_path : "loch.yaml", only ? "" : "");
        loch_err_hint(&e, "add it under sources: in loch.yaml");
        app_fail(&e);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pthread_t *th = arena_alloc(app->a, n * sizeof *th);
    for (size_t i = 0; i < n; i++)
        pthread_create(&th[i], NULL, job_main, &jobs[i]);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        if (jobs[i].rc) {
            app_fail(&jobs[i].err);
            rc = 1;
        }
    }
    return rc;
}

/* ---- background replication for `loch serve` ---- */

struct replication {
    atomic_bool stop;
    size_t n;
    struct job *jobs;
    pthread_t *th;
};

static void *bg_main(void *arg)
{
    struct job *j = arg;
    job_run(j);
    if (j->rc) /* the server keeps serving; the error is in its log */
        log_error("replication of source %s stopped: %s%s%s", j->run.src->name, j->err.msg,
                  j->err.hint[0] ? " HINT: " : "", j->err.hint);
    return NULL;
}

struct replication *replication_start(struct app *app)
{
    struct replication *r = xcalloc(1, sizeof *r);
    struct loch_err e;
    if (app->cfg->n_sources && app_replication_engine(app, &e)) {
        log_error("loch serve: no replication: %s", e.msg);
        return r;
    }
    atomic_init(&r->stop, false);
    r->n = app->cfg->n_sources;
    r->jobs = xcalloc(r->n + 1, sizeof *r->jobs);
    r->th = xcalloc(r->n + 1, sizeof *r->th);
    for (size_t i = 0; i < r->n; i++) {
        struct job *j = &r->jobs[i];
        j->run = (struct cdc_run){app->cfg, &app->cfg->sources[i], NULL, app->st, app->reng, false, &r->stop, false};
        snprintf(j->catalog_path, sizeof j->catalog_path, "%s/catalog.db", app->cfg->state_dir);
        pthread_create(&r->th[i], NULL, bg_main, j);
        log_info("loch serve: replicating source %s", app->cfg->sources[i].name);
    }
    return r;
}

void replication_stop(struct replication *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, true);
    for (size_t i = 0; i < r->n; i++)
        pthread_join(r->th[i], NULL);
    free(r->th);
    free(r->jobs);
    free(r);
}
