/* engine_int.h: what the files of engine/ share (the handles behind engine.h's opaque
 * types, and the helpers more than one of them calls). Private to the room: nothing
 * outside src/engine/ includes it. */
#ifndef LOCH_ENGINE_ENGINE_INT_H
#define LOCH_ENGINE_ENGINE_INT_H

#include <duckdb.h>
#include <pthread.h>

#include "engine/engine.h"

/* A row mask: the deleted positions of one data file, as bits, shared by every session
 * (it depends only on the files in its key). A slot is live while bits != NULL; gen
 * changes each time the slot is reused, so a stale id never reads another mask. */
struct mask_slot {
    uint64_t *bits;
    uint64_t nrows;
    uint32_t gen;
    char *key;    /* what the mask was built from; a build with the same key reuses it */
    _Atomic int64_t last_used_ms;
};

struct engine {
    duckdb_database db;
    pthread_rwlock_t masks_lock; /* writers: create/drop; readers: loch_keep */
    struct mask_slot *masks;
    size_t n_masks;
    uint64_t id;
    bool confined;   /* configuration locked: no per-connection SET */
    char **folders;  /* confined: the real paths of the folders (NULL-terminated), else NULL */
    bool restricted; /* engine_options.restricted_dir */
    int dir_fd;      /* restricted: the folder DuckDB reaches through /proc/self/fd; else -1 */
    char *spill;     /* restricted: its spill folder (removed at close) */
    bool locks_ready; /* masks_lock initialised */
};

struct engine_conn {
    duckdb_connection con;
    struct engine *e;
};

struct engine_rows {
    duckdb_result res;
};

/* DuckDB's error of a failed result as a loch error (engine_exec's mapping). */
int engine_map_error(duckdb_result *r, struct loch_err *err);
/* Registers loch_keep(mask, row) on e's database (mask.c). */
int engine_register_keep(struct engine *e, struct loch_err *err);

#endif
