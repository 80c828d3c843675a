/* source.c: picks the source implementation by type (see source.h). */
#include "cdc/source.h"

#include <string.h>

int cdc_source_run(struct cdc_run *r, struct loch_err *err)
{
    if (!strcmp(r->src->type, "postgres"))
        return cdc_pg_run(r, err);
    if (!strcmp(r->src->type, "mysql"))
        return cdc_mysql_run(r, err);
    return loch_errf(err, LOCH_ECONFIG, "source %s: unknown type \"%s\"", r->src->name, r->src->type);
}

int cdc_source_copy(struct cdc_run *r, struct engine_conn *conn, const char *only, struct arena *a,
                    struct cdc_table_list *out, struct loch_err *err)
{
    if (!strcmp(r->src->type, "postgres"))
        return cdc_pg_copy(r, conn, only, a, out, err);
    if (!strcmp(r->src->type, "mysql"))
        return cdc_mysql_copy(r, conn, only, a, out, err);
    return loch_errf(err, LOCH_EUNSUPPORTED, "source %s: validation of %s sources is not built in", r->src->name,
                     r->src->type);
}
