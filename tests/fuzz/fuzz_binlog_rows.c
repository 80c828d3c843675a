/* fuzz_binlog_rows.c: libFuzzer target for the binlog decoders (src/cdc/mysql/binlog.c,
 * json.c) and the DDL recogniser (util.c). Input: byte 0 picks the rows event type,
 * bytes 1-2 (little-endian) the length of a TABLE_MAP body that follows, the rest is the
 * rows event body decoded against that table map; the whole input is also decoded as
 * MySQL binary JSON, as QUERY/ROTATE/GTID/PREVIOUS_GTIDS bodies, as a DDL statement and as a
 * MySQL GTID set (util.c).
 * Build: make fuzz; run: build/fuzz/fuzz_binlog_rows -max_total_time=60 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cdc/mysql/binlog.h"
#include "cdc/mysql/mysql.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int types[] = {BL_EV_WRITE_ROWS_V1, BL_EV_UPDATE_ROWS_V1, BL_EV_DELETE_ROWS_V1,
                                BL_EV_WRITE_ROWS, BL_EV_UPDATE_ROWS, BL_EV_DELETE_ROWS};
    struct arena *a = arena_new();
    struct loch_err err;
    const char *s1, *s2;
    uint64_t u;
    uint32_t d;
    uint8_t f;
    binlog_json_text(data, size, a, &s1, &err);
    binlog_query_decode(data, size, a, &s1, &s2, &err);
    binlog_rotate_decode(data, size, a, &s1, &u, &err);
    binlog_mariadb_gtid_decode(data, size, &u, &d, &f, &err);
    binlog_mysql_gtid_decode(data, size, a, &s1, &err);
    if (binlog_mysql_previous_gtids_decode(data, size, a, &s1, &err) == 0) {
        struct mysrc_gtid_set ps = {0};
        if (mysrc_gtid_set_parse(s1, &ps, &err) != 0) /* the decoder writes what the parser reads */
            abort();
        mysrc_gtid_set_free(&ps);
    }
    char *text = malloc(size + 1);
    if (size)
        memcpy(text, data, size);
    text[size] = 0;
    struct mysrc_ddl ddl;
    mysrc_ddl_parse(text, a, &ddl);
    struct mysrc_gtid_set gs = {0}, again = {0};
    if (mysrc_gtid_set_parse(text, &gs, &err) == 0) {
        /* canonical text parses back to the same set */
        if (mysrc_gtid_set_parse(mysrc_gtid_set_format(&gs, a), &again, &err) != 0 ||
            !mysrc_gtid_set_subset(&gs, &again) || !mysrc_gtid_set_subset(&again, &gs))
            abort();
    }
    mysrc_gtid_set_free(&gs);
    mysrc_gtid_set_free(&again);
    free(text);
    if (size >= 3) {
        int type = types[data[0] % 6];
        size_t map_len = (size_t)data[1] | (size_t)data[2] << 8;
        if (map_len <= size - 3) {
            struct binlog_table *t;
            if (binlog_table_map_decode(data + 3, map_len, 6, a, &t, &err) == 0) {
                struct binlog_row *rows;
                size_t n;
                const uint8_t *body = data + 3 + map_len;
                binlog_rows_decode(type, body, size - 3 - map_len, 6, t, a, &rows, &n, &err);
                for (size_t i = 0; i < t->n_cols; i++) {
                    struct iceberg_type ty;
                    binlog_column_type(&t->cols[i], &ty, &err);
                }
            }
        }
    }
    arena_free(a);
    return 0;
}
