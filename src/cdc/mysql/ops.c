/* ops.c: how the runner (cdc/sources.c) reaches the MySQL/MariaDB source: its entry
 * points as a struct cdc_source_ops. Not for anything the source does (conn.c and the
 * other files of mysql_int.h). */
#include "cdc/source.h"

#include "cdc/mysql/mysql.h"

const struct cdc_source_ops cdc_mysql_ops = {
    .type = "mysql",
    .run = cdc_mysql_run,
    .copy = cdc_mysql_copy,
};
