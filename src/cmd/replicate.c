/* replicate.c: `loch replicate [--source NAME] [--catch-up]`: runs every selected source
 * (cdc/runner.h) until SIGINT/SIGTERM (or, with --catch-up, until each has everything
 * committed at the source before it started), then prints what failed. Not for the
 * replication itself (cdc/). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cdc/runner.h"
#include "maint/maint.h"
#include "cmd/cmd.h"

static struct cdc_runner *g_runner;

static void on_signal(int sig)
{
    (void)sig;
    cdc_runner_stop(g_runner); /* an atomic store: safe here */
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
    struct loch_err e;
    if (app_replication_engine(app, &e)) {
        app_fail(&e);
        return 1;
    }
    /* signals are blocked while the runs start, so the handler never sees a half-set g_runner */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    struct cdc_runner_options o = {app->cfg, only, app->st, app->reng, catch_up, true, false};
    if (cdc_runner_start(&o, &g_runner, &e)) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        app_fail(&e);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    struct maint_sched *ms = catch_up ? NULL : app_maint_start(app);
    struct loch_err *failed;
    size_t n_failed;
    int bad = cdc_runner_wait(g_runner, app->a, &failed, &n_failed);
    maint_sched_stop(ms);
    for (size_t i = 0; i < n_failed; i++)
        app_fail(&failed[i]);
    return bad ? 1 : 0;
}
