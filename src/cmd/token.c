/* token.c: `loch token create --user NAME [--expires DAYS]` (the token is the last line
 * printed, shown this once; DAYS defaults to auth.token_default_expiry_days and may not
 * pass auth.token_max_expiry_days: tokens always expire), `loch token list [--user
 * NAME]`, `loch token revoke ID`. */
#include "cmd/cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access/token.h"

static int usage(void)
{
    fprintf(stderr, "usage: loch token create --user NAME [--expires DAYS]\n"
                    "       loch token list [--user NAME]\n"
                    "       loch token revoke ID\n");
    return 2;
}

static void fmt_time(int64_t t, char out[32])
{
    if (!t) {
        snprintf(out, 32, "-");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%d %H:%M:%SZ", &tm);
}

int cmd_token(struct app *app, int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *sub = argv[1], *user = NULL, *id = NULL;
    long expires = -1; /* -1: the configured default */
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--user") && i + 1 < argc) {
            user = argv[++i];
        } else if (!strcmp(argv[i], "--expires") && i + 1 < argc) {
            char *end;
            long d = strtol(argv[++i], &end, 10);
            if (*end || end == argv[i] || d < 0 || d > 1000000) {
                fprintf(stderr, "loch token: --expires takes a number of days, not \"%s\"\n", argv[i]);
                return 2;
            }
            expires = d; /* 0 and values past the maximum: refused below, naming it */
        } else if (!id && argv[i][0] != '-') {
            id = argv[i];
        } else {
            return usage();
        }
    }
    bool create = !strcmp(sub, "create"), list = !strcmp(sub, "list"), revoke = !strcmp(sub, "revoke");
    if ((create && (!user || id)) || (list && id) || (revoke && (!id || user)) || (!create && !list && !revoke))
        return usage();
    if (app_open(app, false))
        return 1;
    struct loch_err err;
    loch_err_clear(&err);
    int rc = 0;
    if (create) {
        char *token = NULL, *tid = NULL;
        int days = (int)(expires < 0 ? app->cfg->token_default_expiry_days : expires);
        rc = token_create(app->cat, user, days, (int)app->cfg->token_max_expiry_days, &token, &tid, &err);
        if (!rc) {
            printf("token %s for user %s, expires in %d day%s; keep it secret, it is shown only now:\n", tid, user,
                   days, days == 1 ? "" : "s");
            printf("%s\n", token);
        }
        free(token);
        free(tid);
    } else if (list) {
        struct token_info *t;
        size_t n;
        rc = token_list(app->cat, user, app->a, &t, &n, &err);
        if (!rc) {
            printf("%-12s  %-16s  %-20s  %-20s  %s\n", "id", "user", "created", "expires", "last used");
            for (size_t i = 0; i < n; i++) {
                char c[32], e[32], l[32];
                fmt_time(t[i].created_at, c);
                fmt_time(t[i].expires_at, e);
                fmt_time(t[i].last_used_at, l);
                printf("%-12s  %-16s  %-20s  %-20s  %s\n", t[i].id, t[i].user, c, e, l);
            }
            printf("(%zu token%s)\n", n, n == 1 ? "" : "s");
        }
    } else {
        rc = token_revoke(app->cat, id, &err);
        if (!rc)
            printf("revoked token %s\n", id);
    }
    if (rc)
        app_fail(&err);
    return rc ? 1 : 0;
}
