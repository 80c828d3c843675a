/* engine.c: DuckDB databases (the process engine, confined or not, and restricted ones),
 * the engine pool and connections (see engine.h). Not for results (result.c, stream.c),
 * row masks (mask.c) or appenders (appender.c). */
#include "engine/engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"

static _Atomic uint64_t next_engine_id = 1;

uint64_t engine_id(const struct engine *e) { return e->id; }

bool engine_is_restricted(const struct engine *e) { return e->restricted; }


/* Locks file access to dirs (see engine_options.confine_to). DuckDB compares path
 * strings: each local folder is given by its real path (a symlink on the way resolved),
 * which is also what engine_confined_folders hands to the checks that resolve the paths
 * a statement names (query/paths.c). */
static int confine(struct engine *e, const char *const *dirs, struct loch_err *err)
{
    struct buf q = {0};
    size_t n_dirs = 0;
    while (dirs[n_dirs])
        n_dirs++;
    e->folders = xcalloc(n_dirs + 1, sizeof *e->folders);
    size_t n_folders = 0;
    buf_puts(&q, "SET GLOBAL TimeZone = 'UTC'; SET GLOBAL allowed_directories = [");
    for (size_t i = 0; dirs[i]; i++) {
        if (i)
            buf_puts(&q, ", ");
        char *real = strstr(dirs[i], "://") ? NULL : realpath(dirs[i], NULL);
        const char *d = real ? real : dirs[i];
        size_t n = strlen(d);
        char *dir = xasprintf("%s%s", d, n && d[n - 1] == '/' ? "" : "/");
        buf_sql_str(&q, dir);
        free(dir);
        bool dup = false;
        for (size_t k = 0; real && k < n_folders && !dup; k++)
            dup = !strcmp(e->folders[k], real);
        if (real && !dup)
            e->folders[n_folders++] = real;
        else
            free(real);
    }
    buf_puts(&q, "]; SET GLOBAL enable_external_access = false; SET GLOBAL lock_configuration = true");
    duckdb_connection con;
    if (duckdb_connect(e->db, &con) != DuckDBSuccess) {
        buf_free(&q);
        return loch_errf(err, LOCH_EENGINE, "cannot open a DuckDB connection");
    }
    duckdb_result r;
    int rc = 0;
    if (duckdb_query(con, q.data, &r) != DuckDBSuccess)
        rc = loch_errf(err, LOCH_EENGINE, "cannot confine DuckDB to the lake's folders: %s", duckdb_result_error(&r));
    duckdb_destroy_result(&r);
    duckdb_disconnect(&con);
    buf_free(&q);
    e->confined = rc == 0;
    return rc;
}

/* The empty database file of restricted engines: made once per folder, atomically (a
 * DuckDB database written under a temporary name, then renamed), never written again:
 * every restricted engine opens it read-only. */
#define RESTRICTED_DB "lake.duckdb"

/* Makes dir/lake.duckdb when missing: an empty DuckDB database written under a temporary
 * name (per process and thread, so engines opened at once do not collide), then renamed. */
static int restricted_make_db(const char *dir, struct loch_err *err)
{
    int rc = 0;
    char *db = xasprintf("%s/" RESTRICTED_DB, dir);
    struct stat sb;
    if (stat(db, &sb) != 0) {
        static _Atomic unsigned long n_made;
        char *tmp = xasprintf("%s/.%s.%ld.%lu.tmp", dir, RESTRICTED_DB, (long)getpid(), n_made++);
        unlink(tmp);
        duckdb_database d;
        char *msg = NULL;
        duckdb_config cfg;
        duckdb_create_config(&cfg);
        duckdb_set_config(cfg, "autoinstall_known_extensions", "false");
        duckdb_set_config(cfg, "autoload_known_extensions", "false");
        if (duckdb_open_ext(tmp, &d, cfg, &msg) != DuckDBSuccess) {
            rc = loch_errf(err, LOCH_EENGINE, "cannot create %s: %s", db, msg ? msg : "unknown error");
            duckdb_free(msg);
        } else {
            duckdb_close(&d);
            chmod(tmp, 0600);
            if (rename(tmp, db) != 0)
                rc = loch_errf(err, LOCH_EIO, "cannot rename %s to %s: %s", tmp, db, strerror(errno));
        }
        duckdb_destroy_config(&cfg);
        free(tmp);
    }
    free(db);
    return rc;
}

static int restricted_prepare(struct engine *e, const char *dir, struct loch_err *err)
{
    int rc = util_mkdirs(dir, err);
    if (rc)
        return rc;
    chmod(dir, 0700);
    if ((rc = restricted_make_db(dir, err)) != 0)
        return rc;
    e->dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (e->dir_fd < 0)
        return loch_errf(err, LOCH_EIO, "cannot open folder %s: %s", dir, strerror(errno));
    /* a spill folder per engine: DuckDB names its temporary files alike in every database */
    e->spill = xasprintf("%s/spill-%ld-%llu", dir, (long)getpid(), (unsigned long long)e->id);
    if (mkdir(e->spill, 0700) != 0 && errno != EEXIST)
        return loch_errf(err, LOCH_EIO, "cannot create folder %s: %s", e->spill, strerror(errno));
    return 0;
}

/* Removes a spill folder: DuckDB's temporary files, no subfolders. */
static void remove_spill(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        for (struct dirent *de; (de = readdir(d));) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            char *f = xasprintf("%s/%s", dir, de->d_name);
            unlink(f);
            free(f);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* A restricted engine's sessions keep UTC, and nothing may change its configuration. */
static int lock_restricted(struct engine *e, struct loch_err *err)
{
    duckdb_connection con;
    if (duckdb_connect(e->db, &con) != DuckDBSuccess)
        return loch_errf(err, LOCH_EENGINE, "cannot open a DuckDB connection");
    duckdb_result r;
    int rc = 0;
    if (duckdb_query(con, "SET GLOBAL TimeZone = 'UTC'; SET GLOBAL lock_configuration = true", &r) != DuckDBSuccess)
        rc = loch_errf(err, LOCH_EENGINE, "cannot lock the restricted engine's configuration: %s",
                       duckdb_result_error(&r));
    duckdb_destroy_result(&r);
    duckdb_disconnect(&con);
    e->confined = rc == 0;
    return rc;
}

int engine_open(const struct engine_options *o, struct engine **out, struct loch_err *err)
{
    struct engine *e = xcalloc(1, sizeof *e);
    e->dir_fd = -1;
    e->id = next_engine_id++;
    bool restricted = o && o->restricted_dir;
    int rc = 0;
    char *db_path = NULL, *spill_path = NULL;
    if (restricted) {
        e->restricted = true;
        rc = restricted_prepare(e, o->restricted_dir, err);
        if (rc) {
            engine_close(e);
            return rc;
        }
        db_path = xasprintf("/proc/self/fd/%d/" RESTRICTED_DB, e->dir_fd);
        spill_path = xasprintf("/proc/self/fd/%d/%s", e->dir_fd, strrchr(e->spill, '/') + 1);
    }
    duckdb_config cfg;
    if (duckdb_create_config(&cfg) != DuckDBSuccess) {
        free(db_path);
        free(spill_path);
        engine_close(e);
        return loch_errf(err, LOCH_ENOMEM, "cannot create a DuckDB configuration");
    }
    char num[32];
    if (o && o->threads > 0) {
        snprintf(num, sizeof num, "%d", o->threads);
        duckdb_set_config(cfg, "threads", num);
    }
    if (o && o->memory_mb > 0) {
        snprintf(num, sizeof num, "%lldMB", (long long)o->memory_mb);
        duckdb_set_config(cfg, "memory_limit", num);
    }
    if (restricted) {
        duckdb_set_config(cfg, "access_mode", "READ_ONLY");
        duckdb_set_config(cfg, "temp_directory", spill_path);
    } else if (o && o->temp_dir) {
        duckdb_set_config(cfg, "temp_directory", o->temp_dir);
    }
    /* Extensions are compiled in; nothing may be downloaded at run time. */
    duckdb_set_config(cfg, "autoinstall_known_extensions", "false");
    duckdb_set_config(cfg, "autoload_known_extensions", "false");
    if (restricted) { /* after temp_directory: DuckDB refuses to set it once this is off */
        duckdb_set_config(cfg, "enable_external_access", "false");
        duckdb_set_config(cfg, "allow_community_extensions", "false");
    }
    char *msg = NULL;
    duckdb_state st = duckdb_open_ext(db_path, &e->db, cfg, &msg);
    if (st != DuckDBSuccess && restricted) {
        /* The empty database file holds nothing: one this DuckDB cannot open (written by
         * another version, damaged) is made again, once. */
        log_warn("the restricted engine's database file could not be opened (%s); making it again",
                 msg ? msg : "unknown error");
        duckdb_free(msg);
        msg = NULL;
        char *file = xasprintf("%s/" RESTRICTED_DB, o->restricted_dir);
        unlink(file);
        free(file);
        struct loch_err e2;
        if (restricted_make_db(o->restricted_dir, &e2) == 0)
            st = duckdb_open_ext(db_path, &e->db, cfg, &msg);
    }
    if (st != DuckDBSuccess) {
        loch_errf(err, LOCH_EENGINE, "cannot open DuckDB: %s", msg ? msg : "unknown error");
        duckdb_free(msg);
        duckdb_destroy_config(&cfg);
        free(db_path);
        free(spill_path);
        e->db = NULL;
        engine_close(e);
        return LOCH_EENGINE;
    }
    duckdb_destroy_config(&cfg);
    free(db_path);
    free(spill_path);
    pthread_rwlock_init(&e->masks_lock, NULL);
    e->locks_ready = true;
    rc = engine_register_keep(e, err);
    if (rc) {
        engine_close(e);
        return rc;
    }
    if (restricted) {
        rc = lock_restricted(e, err);
    } else {
        /* Lake data files never change once written (Iceberg): their Parquet footers can be
         * cached, which spares every query re-reading them. (A Parquet-extension setting:
         * unknown to the open-time config, so set once the database is up.) */
        duckdb_connection con;
        if (duckdb_connect(e->db, &con) == DuckDBSuccess) {
            duckdb_result r;
            duckdb_query(con, "SET GLOBAL parquet_metadata_cache = true", &r);
            duckdb_destroy_result(&r);
            duckdb_disconnect(&con);
        }
        if (o && o->confine_to)
            rc = confine(e, o->confine_to, err);
    }
    if (rc) {
        engine_close(e);
        return rc;
    }
    *out = e;
    return 0;
}

void engine_close(struct engine *e)
{
    if (!e)
        return;
    if (e->db)
        duckdb_close(&e->db);
    for (size_t i = 0; i < e->n_masks; i++) {
        free(e->masks[i].bits);
        free(e->masks[i].key);
    }
    free(e->masks);
    for (size_t i = 0; e->folders && e->folders[i]; i++)
        free(e->folders[i]);
    free(e->folders);
    if (e->locks_ready)
        pthread_rwlock_destroy(&e->masks_lock);
    if (e->spill)
        remove_spill(e->spill);
    free(e->spill);
    if (e->dir_fd >= 0)
        close(e->dir_fd);
    free(e);
}

const char *const *engine_confined_folders(const struct engine *e)
{
    return e && e->confined ? (const char *const *)e->folders : NULL;
}

struct engine_pool {
    pthread_mutex_t mu;
    struct engine_options o;
    struct engine *base;
    struct pool_slot {
        int64_t memory_mb;
        bool restricted;
        struct engine *e;
    } *slots;
    size_t n_slots;
};

struct engine_pool *engine_pool_new(struct engine *base, const struct engine_options *o)
{
    struct engine_pool *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    p->o = *o;
    p->base = base;
    return p;
}

int engine_pool_get(struct engine_pool *p, int64_t memory_mb, bool restricted, struct engine **out,
                    struct loch_err *err)
{
    if (restricted && !p->o.restricted_dir)
        return loch_errf(err, LOCH_EINVAL, "no restricted engine configured");
    if (!restricted && p->base && memory_mb == p->o.memory_mb) {
        *out = p->base;
        return 0;
    }
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    struct engine *e = NULL;
    for (size_t i = 0; i < p->n_slots && !e; i++)
        if (p->slots[i].memory_mb == memory_mb && p->slots[i].restricted == restricted)
            e = p->slots[i].e;
    if (!e) {
        struct engine_options o = p->o;
        o.memory_mb = memory_mb;
        if (!restricted)
            o.restricted_dir = NULL;
        rc = engine_open(&o, &e, err);
        if (!rc) {
            p->slots = xrealloc(p->slots, (p->n_slots + 1) * sizeof *p->slots);
            p->slots[p->n_slots++] = (struct pool_slot){memory_mb, restricted, e};
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (!rc)
        *out = e;
    return rc;
}

void engine_pool_free(struct engine_pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_slots; i++)
        engine_close(p->slots[i].e);
    free(p->slots);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int engine_connect(struct engine *e, struct engine_conn **out, struct loch_err *err)
{
    struct engine_conn *c = xcalloc(1, sizeof *c);
    c->e = e;
    if (duckdb_connect(e->db, &c->con) != DuckDBSuccess) {
        free(c);
        return loch_errf(err, LOCH_EENGINE, "cannot open a DuckDB connection");
    }
    /* Timestamps with time zone print in UTC whatever the machine's zone (a confined
     * engine set that globally before locking its configuration). */
    int rc = e->confined ? 0 : engine_exec(c, "SET TimeZone = 'UTC'", err);
    if (rc) {
        engine_disconnect(c);
        return rc;
    }
    *out = c;
    return 0;
}

void engine_disconnect(struct engine_conn *c)
{
    if (!c)
        return;
    duckdb_disconnect(&c->con);
    free(c);
}

