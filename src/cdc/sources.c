/* sources.c: the registered sources, and cdc_source_run / cdc_source_copy picking one by
 * the configured type (see source.h). Not for anything a source does: that is behind its
 * ops (cdc/pg/, cdc/mysql/). */
#include "cdc/source.h"

#include <stddef.h>
#include <string.h>

/* Each defined in its room's ops.c. A new source adds its ops here and nowhere else. */
extern const struct cdc_source_ops cdc_pg_ops, cdc_mysql_ops;

static const struct cdc_source_ops *const sources[] = {&cdc_pg_ops, &cdc_mysql_ops};

/* The ops of type, or NULL. */
static const struct cdc_source_ops *find(const char *type)
{
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++)
        if (!strcmp(sources[i]->type, type))
            return sources[i];
    return NULL;
}

int cdc_source_run(struct cdc_run *r, struct loch_err *err)
{
    const struct cdc_source_ops *ops = find(r->src->type);
    if (!ops)
        return loch_errf(err, LOCH_ECONFIG, "source %s: unknown type \"%s\"", r->src->name, r->src->type);
    return ops->run(r, err);
}

int cdc_source_copy(struct cdc_run *r, struct engine_conn *conn, const char *only, struct arena *a,
                    struct cdc_table_list *out, struct loch_err *err)
{
    const struct cdc_source_ops *ops = find(r->src->type);
    if (!ops || !ops->copy)
        return loch_errf(err, LOCH_EUNSUPPORTED, "source %s: validation of %s sources is not built in", r->src->name,
                         r->src->type);
    return ops->copy(r, conn, only, a, out, err);
}
