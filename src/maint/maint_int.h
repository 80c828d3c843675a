/* maint_int.h: what maint.c and compact.c share inside the room. Not a door: everything
 * outside src/maint/ goes through maint.h. */
#ifndef LOCH_MAINT_MAINT_INT_H
#define LOCH_MAINT_MAINT_INT_H

#include "iceberg/iceberg.h"
#include "maint/maint.h"

/* One maint_table call on one table. */
struct maint_ctx {
    struct catalog *cat;
    struct store *st;
    struct engine_conn *conn;
    const char *state_dir, *ns, *name;
    const struct maint_options *o;
    struct arena *a;
    int64_t target; /* output file size, bytes */
};

/* A table property's value, or NULL. */
const char *maint_prop(const struct iceberg_metadata *m, const char *key);
/* Reports progress through o->progress, when set. */
void maint_progress(struct maint_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Compacts x's table (compact.c): out's compaction fields. LOCH_ECONFLICT when writers
 * kept changing its files through every attempt (nothing committed). */
int maint_compact(struct maint_ctx *x, struct maint_report *out, struct loch_err *err);

#endif
