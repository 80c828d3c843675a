/* init.c: `loch init DIR`: a config, a warehouse folder and an empty catalog. */
#include "cmd/cmd.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/util.h"

int cmd_init(struct app *app, int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: loch init DIR\n");
        return 2;
    }
    struct loch_err err;
    loch_err_clear(&err);
    char *dir = util_abspath(argv[1]);
    char *cfg = xasprintf("%s/loch.yaml", dir);
    char *wh = xasprintf("%s/warehouse", dir);
    char *state = xasprintf("%s/state", dir);
    char *db = xasprintf("%s/catalog.db", state);
    struct catalog *cat = NULL;
    int rc = util_mkdirs(dir, &err);
    if (!rc)
        rc = util_mkdirs(wh, &err);
    if (!rc)
        rc = util_mkdirs(state, &err);
    if (!rc)
        rc = config_write_default(cfg, "warehouse", "state", &err);
    if (!rc)
        rc = catalog_open(db, true, &cat, &err);
    catalog_close(cat);
    if (rc) {
        app_fail(&err);
    } else {
        printf("created %s\n  warehouse: %s\n  catalog:   %s\n", cfg, wh, db);
        printf("next: cd %s && loch load demo.accounts accounts.csv\n", dir);
    }
    free(dir);
    free(cfg);
    free(wh);
    free(state);
    free(db);
    return rc ? 1 : 0;
}
