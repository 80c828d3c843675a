/* serve.c: `loch serve`: the SQL (pgwire) listener and, later, HTTP and background
 * replication, until SIGINT or SIGTERM. Not for protocol code (server/). */
#include "cmd/cmd.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
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

    if (app_open(app, true))
        return 1;
    struct loch_err err;
    loch_err_clear(&err);
    struct pgwire_options po = {app->cfg, app->eng,
                                arena_printf(app->a, "%s/catalog.db", app->cfg->state_dir)};
    struct pgwire_server *pg = NULL;
    if (pgwire_server_start(&po, &pg, &err) != 0) {
        app_fail(&err);
        return 1;
    }
    struct http_options ho = {app->cfg, app->eng, po.catalog_path, NULL, 0};
    struct http_server *http = NULL;
    if (http_server_start(&ho, &http, &err) != 0) {
        app_fail(&err);
        pgwire_server_stop(pg);
        return 1;
    }
    log_info("loch serve: SQL on %s (tls %s), config %s", app->cfg->sql_listen, app->cfg->tls_mode,
             app->cfg->path);
    log_info("loch serve: HTTP on %s (port %d)", app->cfg->http_listen, http_server_port(http));
    struct replication *rep = replication_start(app);
    int sig = 0;
    sigwait(&set, &sig);
    log_info("loch serve: %s received, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    replication_stop(rep);
    http_server_stop(http);
    pgwire_server_stop(pg);
    log_info("loch serve: stopped");
    return 0;
}
