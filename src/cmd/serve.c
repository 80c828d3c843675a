/* serve.c: `loch serve`: the SQL (pgwire) listener, HTTP and background replication of
 * every configured source, until SIGINT or SIGTERM. Not for protocol code (server/). */
#include "cmd/cmd.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "cdc/runner.h"
#include "maint/maint.h"
#include "server/http.h"
#include "server/pgwire.h"

int cmd_serve(struct app *app, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "usage: loch serve\n");
        return 2;
    }
    /* Every thread started from here inherits this mask: only sigwait below sees
     * SIGINT/SIGTERM, and a client that hangs up never kills the process via SIGPIPE. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    app->confine = true; /* clients' SQL reaches no file outside the lake */
    if (app_open(app, true))
        return 1;
    struct loch_err err;
    loch_err_clear(&err);
    /* One DuckDB database per distinct memory limit (query.roles): a role's members share
     * its budget. The process engine serves the global limit. */
    struct engine_options pool_opts = app->eng_opts;
    /* Non-administrators' statements run on restricted engines (one per memory limit too),
     * whose empty read-only database file and spill folders live here. */
    pool_opts.restricted_dir = arena_printf(app->a, "%s/restricted", app->cfg->state_dir);
    struct engine_pool *pool = engine_pool_new(app->eng, &pool_opts);
    struct pgwire_options po = {app->cfg, app->eng,
                                arena_printf(app->a, "%s/catalog.db", app->cfg->state_dir), pool};
    struct pgwire_server *pg = NULL;
    if (pgwire_server_start(&po, &pg, &err) != 0) {
        app_fail(&err);
        engine_pool_free(pool);
        return 1;
    }
    struct http_options ho = {app->cfg, app->eng, po.catalog_path, NULL, 0, pool};
    struct http_server *http = NULL;
    if (http_server_start(&ho, &http, &err) != 0) {
        app_fail(&err);
        pgwire_server_stop(pg);
        engine_pool_free(pool);
        return 1;
    }
    log_info("loch serve: SQL on %s (tls %s), config %s", app->cfg->sql_listen, app->cfg->tls_mode,
             app->cfg->path);
    log_info("loch serve: HTTP on %s (port %d)", app->cfg->http_listen, http_server_port(http));
    /* background replication: a source that fails is logged; the server keeps serving */
    struct cdc_runner *rep = NULL;
    if (app->cfg->n_sources) {
        struct cdc_runner_options ro = {app->cfg, NULL, app->st, NULL, false, false, true};
        if (app_replication_engine(app, &err) == 0) {
            ro.eng = app->reng;
            if (cdc_runner_start(&ro, &rep, &err) == 0)
                for (size_t i = 0; i < app->cfg->n_sources; i++)
                    log_info("loch serve: replicating source %s", app->cfg->sources[i].name);
        }
        if (!rep)
            log_error("loch serve: no replication: %s", err.msg);
    }
    struct maint_sched *ms = rep ? app_maint_start(app) : NULL;
    int sig = 0;
    sigwait(&set, &sig);
    log_info("loch serve: %s received, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    maint_sched_stop(ms);
    cdc_runner_stop(rep);
    cdc_runner_wait(rep, NULL, NULL, NULL);
    http_server_stop(http);
    pgwire_server_stop(pg);
    engine_pool_free(pool); /* after every session of the servers has closed */
    log_info("loch serve: stopped");
    return 0;
}
