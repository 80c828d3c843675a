/* runner.c: a thread per configured source, each running cdc_source_run with its own
 * catalog handle (catalog handles are per thread); stop and wait. Not for what a run does
 * (sources.c and the sources), nor for signals (cmd/). */
#include "cdc/runner.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "catalog/catalog.h"
#include "cdc/source.h"

struct job {
    struct cdc_runner *r;
    struct cdc_run run;
    char catalog_path[4096];
    int rc;
    struct loch_err err;
};

struct cdc_runner {
    atomic_bool stop;
    bool keep_going;
    size_t n;
    struct job *jobs;
    pthread_t *th;
};

static void *job_main(void *arg)
{
    struct job *j = arg;
    loch_err_clear(&j->err);
    j->rc = catalog_open(j->catalog_path, false, &j->run.cat, &j->err);
    if (!j->rc)
        j->rc = cdc_source_run(&j->run, &j->err);
    catalog_close(j->run.cat);
    if (j->rc && j->r->keep_going)
        log_error("replication of source %s stopped: %s%s%s", j->run.src->name, j->err.msg,
                  j->err.hint[0] ? " HINT: " : "", j->err.hint);
    else if (j->rc)
        atomic_store(&j->r->stop, true); /* one source failing stops the others */
    return NULL;
}

int cdc_runner_start(const struct cdc_runner_options *o, struct cdc_runner **out, struct loch_err *err)
{
    *out = NULL;
    const struct loch_config *cfg = o->cfg;
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_sources; i++)
        n += !o->only || !strcmp(o->only, cfg->sources[i].name);
    if (!n) {
        const char *file = cfg->path ? cfg->path : "loch.yaml";
        if (o->only)
            loch_errf(err, LOCH_ECONFIG, "no source named \"%s\" in %s", o->only, file);
        else
            loch_errf(err, LOCH_ECONFIG, "no sources in %s", file);
        return loch_err_hint(err, "add it under sources: in loch.yaml");
    }
    struct cdc_runner *r = xcalloc(1, sizeof *r);
    atomic_init(&r->stop, false);
    r->keep_going = o->keep_going;
    r->jobs = xcalloc(n, sizeof *r->jobs);
    r->th = xcalloc(n, sizeof *r->th);
    for (size_t i = 0; i < cfg->n_sources; i++) {
        const struct loch_source *src = &cfg->sources[i];
        if (o->only && strcmp(o->only, src->name))
            continue;
        struct job *j = &r->jobs[r->n];
        j->r = r;
        j->run = (struct cdc_run){cfg, src, NULL, o->st, o->eng, o->catch_up, &r->stop, o->progress};
        snprintf(j->catalog_path, sizeof j->catalog_path, "%s/catalog.db", cfg->state_dir);
        pthread_create(&r->th[r->n], NULL, job_main, j);
        r->n++;
    }
    *out = r;
    return 0;
}

void cdc_runner_stop(struct cdc_runner *r)
{
    if (r)
        atomic_store(&r->stop, true);
}

int cdc_runner_wait(struct cdc_runner *r, struct arena *a, struct loch_err **failed, size_t *n_failed)
{
    if (failed)
        *failed = NULL;
    if (n_failed)
        *n_failed = 0;
    if (!r)
        return 0;
    int n_bad = 0;
    for (size_t i = 0; i < r->n; i++)
        pthread_join(r->th[i], NULL);
    for (size_t i = 0; i < r->n; i++)
        n_bad += r->jobs[i].rc != 0;
    if (n_bad && failed && a) {
        *failed = arena_alloc(a, (size_t)n_bad * sizeof **failed);
        for (size_t i = 0, k = 0; i < r->n; i++)
            if (r->jobs[i].rc)
                (*failed)[k++] = r->jobs[i].err;
        if (n_failed)
            *n_failed = (size_t)n_bad;
    }
    free(r->th);
    free(r->jobs);
    free(r);
    return n_bad;
}
