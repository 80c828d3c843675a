/* loch.c: main: global options and subcommand dispatch only. Each command lives in
 * src/cmd/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cmd.h"

static const struct {
    const char *name;
    int (*fn)(struct app *, int, char **);
    const char *help;
} commands[] = {
    {"init", cmd_init, "init DIR                      create DIR/loch.yaml, a warehouse and an empty catalog"},
    {"load", cmd_load, "load NS.TABLE FILE            create or append to a table from CSV, JSON or Parquet"},
    {"sql", cmd_sql, "sql [--format F] \"SQL\"        run SQL (or SQL on stdin); F = table|csv|json"},
    {"tables", cmd_tables, "tables [NS]                   list tables"},
    {"describe", cmd_describe, "describe NS.TABLE             schema, snapshot, files and rows of a table"},
    {"history", cmd_history, "history NS.TABLE              snapshots of a table"},
    {"maintain", cmd_maintain, "maintain [NS.TABLE ...]       expire old snapshots, remove unreferenced files"},
    {"serve", cmd_serve, "serve                         serve SQL over the PostgreSQL wire protocol (server.sql_listen)"},
    {"token", cmd_token, "token create|list|revoke      HTTP bearer tokens: create --user NAME [--expires DAYS]"},
    {"replicate", cmd_replicate, "replicate [--source NAME] [--catch-up]  copy sources into the lake until stopped"},
    {"status", cmd_status, "status [--source NAME]        replicated tables: rows, last source commit, lag"},
    {"validate", cmd_validate, "validate --source NAME [--table S.T]  compare source and lake row by row"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: loch [-c FILE] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %s\n", commands[i].help);
    fprintf(f, "\n-c FILE picks the config (default: $LOCH_CONFIG, then ./loch.yaml)\n");
}

int main(int argc, char **argv)
{
    struct app app = {0};
    /* Everything loch makes (catalog with password verifiers and token hashes, lake
     * files, spill files, whatever DuckDB or SQLite create) is its owner's alone:
     * files 0600, folders 0700, whatever mode a library asks for. */
    umask(077);
    /* -c FILE / --config FILE may stand anywhere; take it out of argv. */
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc) {
            app.config_path = argv[++i];
            continue;
        }
        argv[n++] = argv[i];
    }
    argc = n;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            int rc = commands[i].fn(&app, argc - 1, argv + 1);
            app_close(&app);
            return rc;
        }
    fprintf(stderr, "loch: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
