/* mask.c: row masks (position deletes as bitmaps, shared by key across an engine's
 * connections) and the loch_keep(mask, row) scalar function that tests them. Not for
 * deciding which rows are deleted (query/view.c builds the positions). */
#include "engine/engine_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/util.h"

/* ---- row masks and loch_keep(mask, row) ---- */

#define MASK_SLOT(id) ((size_t)((uint64_t)(id) & 0xffffffffu))
#define MASK_GEN(id) ((uint32_t)((uint64_t)(id) >> 32))

/* loch_keep(mask BIGINT, row BIGINT) -> BOOLEAN: false when row is marked in the mask.
 * DuckDB calls it from its worker threads on flattened chunks. */
static void keep_fn(duckdb_function_info info, duckdb_data_chunk input, duckdb_vector output)
{
    struct engine *e = duckdb_scalar_function_get_extra_info(info);
    idx_t n = duckdb_data_chunk_get_size(input);
    duckdb_vector vid = duckdb_data_chunk_get_vector(input, 0), vrow = duckdb_data_chunk_get_vector(input, 1);
    const int64_t *ids = duckdb_vector_get_data(vid), *rows = duckdb_vector_get_data(vrow);
    uint64_t *vval_id = duckdb_vector_get_validity(vid), *vval_row = duckdb_vector_get_validity(vrow);
    bool *out = duckdb_vector_get_data(output);
    pthread_rwlock_rdlock(&e->masks_lock);
    int64_t cur = -1;
    const struct mask_slot *m = NULL;
    for (idx_t i = 0; i < n; i++) {
        if ((vval_id && !duckdb_validity_row_is_valid(vval_id, i)) ||
            (vval_row && !duckdb_validity_row_is_valid(vval_row, i))) {
            out[i] = false;
            continue;
        }
        if (ids[i] != cur || !m) {
            cur = ids[i];
            size_t slot = MASK_SLOT(cur);
            m = slot < e->n_masks && e->masks[slot].bits && e->masks[slot].gen == MASK_GEN(cur) ? &e->masks[slot]
                                                                                                 : NULL;
            if (!m) {
                pthread_rwlock_unlock(&e->masks_lock);
                duckdb_scalar_function_set_error(info, "loch_keep: this row mask has expired; run the statement again");
                return;
            }
        }
        uint64_t r = (uint64_t)rows[i];
        out[i] = rows[i] < 0 || r >= m->nrows || !(m->bits[r >> 6] >> (r & 63) & 1);
    }
    pthread_rwlock_unlock(&e->masks_lock);
}

int engine_register_keep(struct engine *e, struct loch_err *err)
{
    duckdb_connection con;
    if (duckdb_connect(e->db, &con) != DuckDBSuccess)
        return loch_errf(err, LOCH_EENGINE, "cannot open a DuckDB connection");
    duckdb_scalar_function f = duckdb_create_scalar_function();
    duckdb_scalar_function_set_name(f, "loch_keep");
    duckdb_logical_type big = duckdb_create_logical_type(DUCKDB_TYPE_BIGINT);
    duckdb_logical_type boolean = duckdb_create_logical_type(DUCKDB_TYPE_BOOLEAN);
    duckdb_scalar_function_add_parameter(f, big);
    duckdb_scalar_function_add_parameter(f, big);
    duckdb_scalar_function_set_return_type(f, boolean);
    duckdb_scalar_function_set_extra_info(f, e, NULL);
    duckdb_scalar_function_set_function(f, keep_fn);
    duckdb_state st = duckdb_register_scalar_function(con, f);
    duckdb_destroy_logical_type(&big);
    duckdb_destroy_logical_type(&boolean);
    duckdb_destroy_scalar_function(&f);
    duckdb_disconnect(&con);
    if (st != DuckDBSuccess)
        return loch_errf(err, LOCH_EENGINE, "cannot register loch_keep with DuckDB");
    return 0;
}

static int64_t mask_id(const struct engine *e, size_t slot)
{
    return (int64_t)(((uint64_t)e->masks[slot].gen << 32) | slot);
}

/* Under the masks lock (either mode): the live slot built from key for nrows rows. */
static int mask_find(struct engine *e, const char *key, uint64_t nrows)
{
    for (size_t i = 0; i < e->n_masks; i++)
        if (e->masks[i].bits && e->masks[i].nrows == nrows && !strcmp(e->masks[i].key, key))
            return (int)i;
    return -1;
}

int engine_mask_build(struct engine_conn *c, const char *key, const char *positions_sql, uint64_t nrows,
                      int64_t *id_out, struct loch_err *err)
{
    struct engine *e = c->e;
    pthread_rwlock_rdlock(&e->masks_lock);
    int hit = mask_find(e, key, nrows);
    if (hit >= 0) {
        e->masks[hit].last_used_ms = util_now_ms();
        *id_out = mask_id(e, (size_t)hit);
        pthread_rwlock_unlock(&e->masks_lock);
        return 0;
    }
    pthread_rwlock_unlock(&e->masks_lock);

    duckdb_result r;
    if (duckdb_query(c->con, positions_sql, &r) != DuckDBSuccess) {
        int rc = engine_map_error(&r, err);
        duckdb_destroy_result(&r);
        return rc;
    }
    if (duckdb_column_count(&r) != 1 || duckdb_column_type(&r, 0) != DUCKDB_TYPE_BIGINT) {
        duckdb_destroy_result(&r);
        return loch_errf(err, LOCH_EINTERNAL, "row mask query must return one BIGINT column");
    }
    size_t words = (size_t)(nrows / 64 + 1);
    uint64_t *bits = xcalloc(words, sizeof *bits);
    duckdb_data_chunk ch;
    while ((ch = duckdb_fetch_chunk(r)) != NULL) {
        idx_t n = duckdb_data_chunk_get_size(ch);
        duckdb_vector v = duckdb_data_chunk_get_vector(ch, 0);
        const int64_t *pos = duckdb_vector_get_data(v);
        uint64_t *valid = duckdb_vector_get_validity(v);
        for (idx_t i = 0; i < n; i++)
            if ((!valid || duckdb_validity_row_is_valid(valid, i)) && pos[i] >= 0 && (uint64_t)pos[i] < nrows)
                bits[(uint64_t)pos[i] >> 6] |= 1ull << ((uint64_t)pos[i] & 63);
        duckdb_destroy_data_chunk(&ch);
    }
    duckdb_destroy_result(&r);

    pthread_rwlock_wrlock(&e->masks_lock);
    hit = mask_find(e, key, nrows); /* another session may have built it meanwhile */
    if (hit >= 0) {
        free(bits);
        e->masks[hit].last_used_ms = util_now_ms();
        *id_out = mask_id(e, (size_t)hit);
        pthread_rwlock_unlock(&e->masks_lock);
        return 0;
    }
    size_t slot = 0;
    while (slot < e->n_masks && e->masks[slot].bits)
        slot++;
    if (slot == e->n_masks) {
        e->masks = xrealloc(e->masks, (e->n_masks + 1) * sizeof *e->masks);
        e->masks[e->n_masks++] = (struct mask_slot){0};
    }
    struct mask_slot *m = &e->masks[slot];
    m->bits = bits;
    m->nrows = nrows;
    m->gen++;
    m->key = xstrdup(key);
    m->last_used_ms = util_now_ms();
    *id_out = mask_id(e, slot);
    pthread_rwlock_unlock(&e->masks_lock);
    return 0;
}

/* Drops the masks last used before cutoff_ms (all when cutoff_ms is INT64_MAX). */
static void masks_drop(struct engine *e, int64_t cutoff_ms)
{
    pthread_rwlock_wrlock(&e->masks_lock);
    for (size_t i = 0; i < e->n_masks; i++)
        if (e->masks[i].bits && e->masks[i].last_used_ms < cutoff_ms) {
            free(e->masks[i].bits);
            free(e->masks[i].key);
            e->masks[i].bits = NULL;
            e->masks[i].key = NULL;
        }
    pthread_rwlock_unlock(&e->masks_lock);
}

void engine_masks_clear(struct engine_conn *c) { masks_drop(c->e, INT64_MAX); }

void engine_masks_trim(struct engine_conn *c, size_t max_bytes, int64_t idle_ms)
{
    struct engine *e = c->e;
    size_t total = 0;
    pthread_rwlock_rdlock(&e->masks_lock);
    for (size_t i = 0; i < e->n_masks; i++)
        if (e->masks[i].bits)
            total += (size_t)(e->masks[i].nrows / 64 + 1) * sizeof(uint64_t);
    pthread_rwlock_unlock(&e->masks_lock);
    if (total > max_bytes)
        masks_drop(e, util_now_ms() - idle_ms);
}

