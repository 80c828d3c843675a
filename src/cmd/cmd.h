/* cmd.h: the CLI commands (one function each) and the context they share: config,
 * catalog, store and engine opened from -c FILE. Not for argument-free library code:
 * everything below cmd/ is usable without a terminal. */
#ifndef LOCH_CMD_CMD_H
#define LOCH_CMD_CMD_H

#include "catalog/catalog.h"
#include "config.h"
#include "engine/engine.h"
#include "store/store.h"

struct app {
    struct arena *a;          /* lifetime: the command */
    const char *config_path;  /* from -c, $LOCH_CONFIG or ./loch.yaml */
    struct loch_config *cfg;
    struct catalog *cat;
    struct store *st;
    struct engine *eng;
    struct engine *reng;      /* replication's (app_replication_engine) */
    struct engine *xeng;      /* non-administrators' (app_restricted_engine) */
    struct engine_options eng_opts; /* what eng was opened with (strings in a) */
    bool confine;             /* set before app_open: the engine may touch only the lake's folders */
};

/* Loads the config, opens catalog and store, and the engine when with_engine. Prints
 * the error and returns non-zero on failure. */
int app_open(struct app *app, bool with_engine);
void app_close(struct app *app);
/* Opens app->reng (once), the engine replication writes through. The applier runs it on
 * every core while loading and single-threaded while streaming, when its receiving and
 * flush threads already keep the cores busy and DuckDB's workers only contend with them
 * (a backlog drained 1.2-1.7x faster). Only loch's own SQL runs there, so it is not
 * confined. */
int app_replication_engine(struct app *app, struct loch_err *err);
/* Starts maintenance that runs itself (maint_sched_start) from the config's maintenance
 * section, when enabled and there are sources to replicate; NULL when it does not run
 * (a failure is logged). Stop it with maint_sched_stop. */
struct maint_sched *app_maint_start(struct app *app);
/* Opens app->xeng (once): the restricted engine on which statements of principals who
 * are not administrators run (`loch sql --as-user`; engine_options.restricted_dir under
 * the state folder). */
int app_restricted_engine(struct app *app, struct loch_err *err);
/* Prints err to stderr as "loch: error: ...", with detail and hint lines. */
void app_fail(const struct loch_err *err);

/* Each command: argv[0] is the command name; returns the process exit code
 * (0 ok, 1 failed, 2 usage). */
int cmd_init(struct app *app, int argc, char **argv);
int cmd_load(struct app *app, int argc, char **argv);
int cmd_sql(struct app *app, int argc, char **argv);
int cmd_tables(struct app *app, int argc, char **argv);
int cmd_describe(struct app *app, int argc, char **argv);
int cmd_history(struct app *app, int argc, char **argv);
int cmd_maintain(struct app *app, int argc, char **argv);
int cmd_serve(struct app *app, int argc, char **argv);
int cmd_token(struct app *app, int argc, char **argv);
int cmd_replicate(struct app *app, int argc, char **argv);
int cmd_status(struct app *app, int argc, char **argv);
int cmd_validate(struct app *app, int argc, char **argv);

#endif
