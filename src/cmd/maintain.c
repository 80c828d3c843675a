/* maintain.c: `loch maintain [NS.TABLE ...]`: its arguments and its report. The work
 * (snapshot expiry, the sweep of expired and orphan files) is maint/'s. */
#include "cmd/cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maint/maint.h"
#include "query/query.h"

static void progress(void *ctx, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "loch maintain: %s\n", msg);
}

static int maintain_one(struct app *app, const char *ns, const char *name, const struct maint_options *o,
                        struct loch_err *err)
{
    struct maint_report r;
    int rc = maint_table(app->cat, app->st, app->cfg->state_dir, ns, name, o, app->a, &r, err);
    if (rc)
        return rc;
    if (o->conn && (r.n_rewritten || r.n_deletes_removed))
        printf("%s.%s: %scompaction: %zu data file(s) (%.1f MB) rewritten into %zu, %zu delete file(s) dropped; "
               "%zu live files -> %zu%s\n",
               ns, name, o->dry_run ? "[dry run] " : "", r.n_rewritten, (double)r.bytes_rewritten / 1e6,
               r.n_written, r.n_deletes_removed, r.files_before, r.files_after,
               r.n_retries ? arena_printf(app->a, " (%zu retries after concurrent commits)", r.n_retries) : "");
    else if (o->conn)
        printf("%s.%s: compaction: nothing to rewrite (%zu live files)\n", ns, name, r.files_before);
    if (o->dry_run)
        printf("%s.%s: [dry run] %zu snapshot(s) would expire, %zu kept; %zu orphan file(s) would be removed "
               "(%.1f MB)\n",
               ns, name, r.n_expired, r.n_kept, r.n_orphans, (double)r.bytes / 1e6);
    else
        printf("%s.%s: %zu snapshot(s) expired, %zu kept; removed %zu file(s) of expired snapshots and %zu "
               "orphan file(s) (%.1f MB)%s\n",
               ns, name, r.n_expired, r.n_kept, r.n_expired_files, r.n_orphans, (double)r.bytes / 1e6,
               r.n_failed ? "; some could not be removed, see the warnings above" : "");
    return 0;
}

int cmd_maintain(struct app *app, int argc, char **argv)
{
    struct maint_options o = {.expire_ms = 5 * 86400000LL, .orphan_ms = 3 * 86400000LL, .retain_last = 1,
                              .target_bytes = MAINT_TARGET_BYTES, .delete_ratio = MAINT_DELETE_RATIO,
                              .locked_max_bytes = 256LL << 20,
                              .progress = progress};
    bool compact = true;
    const char *usage = "usage: loch maintain [NS.TABLE ...] [--expire-older-than AGE] [--retain-last N]\n"
                        "                     [--orphans-older-than AGE] [--target-file-size BYTES]\n"
                        "                     [--delete-ratio R] [--no-compact] [--dry-run]\n"
                        "  AGE: 90s, 30m, 12h, 7d; defaults: snapshots 5d (keeping the newest 1), orphans 3d\n"
                        "  compaction: files under 3/4 of the target size (256 MB, or the table's\n"
                        "  write.target-file-size-bytes) and files with R (0.1) of their rows deleted are\n"
                        "  rewritten; --dry-run reports what would be done, and changes nothing\n";
    int n_tables = 0;
    char **tables = argv; /* table names are compacted to the front of argv */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--dry-run")) {
            o.dry_run = true;
        } else if (!strcmp(a, "--no-compact")) {
            compact = false;
        } else if (!strcmp(a, "--target-file-size") && i + 1 < argc) {
            char *end;
            o.target_bytes = strtoll(argv[++i], &end, 10);
            o.target_from_cli = true;
            if (*end || o.target_bytes < 1) {
                fprintf(stderr, "loch: --target-file-size wants a number of bytes, not \"%s\"\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(a, "--delete-ratio") && i + 1 < argc) {
            char *end;
            o.delete_ratio = strtod(argv[++i], &end);
            if (*end || o.delete_ratio <= 0 || o.delete_ratio > 1) {
                fprintf(stderr, "loch: --delete-ratio wants a fraction in (0, 1], not \"%s\"\n", argv[i]);
                return 2;
            }
        } else if ((!strcmp(a, "--expire-older-than") || !strcmp(a, "--orphans-older-than")) && i + 1 < argc) {
            int64_t v = maint_parse_age(argv[++i]);
            if (v < 0) {
                fprintf(stderr, "loch: %s wants an age like 90s, 30m, 12h or 7d, not \"%s\"\n", a, argv[i]);
                return 2;
            }
            *(a[2] == 'e' ? &o.expire_ms : &o.orphan_ms) = v;
        } else if (!strcmp(a, "--retain-last") && i + 1 < argc) {
            char *end;
            o.retain_last = strtol(argv[++i], &end, 10);
            if (*end || o.retain_last < 1) {
                fprintf(stderr, "loch: --retain-last wants a whole number of at least 1, not \"%s\"\n", argv[i]);
                return 2;
            }
        } else if (a[0] == '-') {
            fputs(usage, stderr);
            return 2;
        } else {
            tables[n_tables++] = argv[i];
        }
    }
    if (app_open(app, compact))
        return 1;
    struct loch_err err;
    loch_err_clear(&err);
    struct engine_conn *conn = NULL;
    if (compact && engine_connect(app->eng, &conn, &err)) {
        app_fail(&err);
        return 1;
    }
    o.conn = conn;
    int failed = 0;
    if (n_tables) {
        for (int i = 0; i < n_tables; i++) {
            char *ns, *name;
            int rc = query_split_name(app->a, tables[i], &ns, &name, &err);
            if (!rc)
                rc = maintain_one(app, ns, name, &o, &err);
            if (rc) {
                app_fail(&err);
                failed = 1;
            }
        }
        engine_disconnect(conn);
        return failed;
    }
    struct catalog_table *t;
    size_t n;
    if (catalog_list_tables(app->cat, NULL, app->a, &t, &n, &err)) {
        app_fail(&err);
        engine_disconnect(conn);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        if (maintain_one(app, t[i].ns, t[i].name, &o, &err)) {
            app_fail(&err);
            failed = 1;
            loch_err_clear(&err);
        }
    engine_disconnect(conn);
    return failed;
}
