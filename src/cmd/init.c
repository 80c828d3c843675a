/* init.c: `loch init DIR`: a config, a warehouse folder, an empty catalog and the
 * administrator `admin` (password from $LOCH_ADMIN_PASSWORD, else generated into
 * state/admin.password, mode 0600). */
#include "cmd/cmd.h"

#include <stdio.h>
#include <stdlib.h>

#include "access/principal.h"
#include "base/util.h"

/* Creates user admin. *where says where its password is ("from $LOCH_ADMIN_PASSWORD"
 * or the file it was written to); malloc'd. */
static int create_admin(struct catalog *cat, const char *state, char **where, struct loch_err *err)
{
    const char *env = getenv("LOCH_ADMIN_PASSWORD");
    char *generated = NULL, *file = NULL;
    const char *pw = env;
    int rc = 0;
    if (!env || !*env) {
        generated = principal_random_password();
        pw = generated;
        file = xasprintf("%s/admin.password", state);
        char line[64];
        int n = snprintf(line, sizeof line, "%s\n", pw);
        rc = util_write_file_atomic(file, line, (size_t)n, 0600, err);
    }
    if (!rc)
        rc = principal_create(cat, PRINCIPAL_ADMIN, PRINCIPAL_USER, true, pw, err);
    if (!rc)
        *where = file ? xasprintf("written to %s (mode 0600)", file) : xstrdup("from $LOCH_ADMIN_PASSWORD");
    free(generated);
    free(file);
    return rc;
}

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
    char *where = NULL;
    if (!rc)
        rc = create_admin(cat, state, &where, &err);
    catalog_close(cat);
    if (rc) {
        app_fail(&err);
    } else {
        printf("created %s\n  warehouse: %s\n  catalog:   %s\n", cfg, wh, db);
        printf("  user admin: password %s\n", where);
        printf("next: cd %s && loch load demo.accounts accounts.csv\n", dir);
    }
    free(where);
    free(dir);
    free(cfg);
    free(wh);
    free(state);
    free(db);
    return rc ? 1 : 0;
}
