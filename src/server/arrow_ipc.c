/* arrow_ipc.c: Arrow IPC streams (arrow_ipc.h) with nanoarrow's writer. The messages
 * (flatbuffers metadata, 8-byte aligned bodies, continuation markers) are nanoarrow's
 * work; this file only feeds it DuckDB's Arrow arrays and collects the bytes in a buf.
 * Not for choosing Arrow types (DuckDB's conversion does, see engine.h). */
#include "server/arrow_ipc.h"

#include <nanoarrow/nanoarrow.h>
#include <nanoarrow/nanoarrow_ipc.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

struct arrow_ipc {
    struct ArrowIpcWriter writer;
    struct ArrowArrayView view; /* the record batch being written, over DuckDB's array */
    struct engine_stream *es;
};

/* ArrowIpcOutputStream over a struct buf: every write is taken whole. */
static ArrowErrorCode out_write(struct ArrowIpcOutputStream *o, const void *p, int64_t n, int64_t *written,
                                struct ArrowError *error)
{
    (void)error;
    buf_append(o->private_data, p, (size_t)n);
    *written = n;
    return NANOARROW_OK;
}

static void out_release(struct ArrowIpcOutputStream *o) { o->release = NULL; }

static int ipc_error(struct loch_err *err, ArrowErrorCode code, const struct ArrowError *e, const char *what)
{
    loch_errf(err, LOCH_EQUERY, "cannot write %s as Arrow IPC: %s", what,
              e && e->message[0] ? e->message : strerror(code));
    return loch_err_hint(err, "ask for application/json or text/csv instead");
}

static int writer_init(struct ArrowIpcWriter *wr, struct buf *out, struct loch_err *err)
{
    struct ArrowIpcOutputStream o = {.write = out_write, .release = out_release, .private_data = out};
    ArrowErrorCode code = ArrowIpcWriterInit(wr, &o);
    if (code != NANOARROW_OK) { /* only ENOMEM */
        if (o.release)
            o.release(&o);
        return ipc_error(err, code, NULL, "the stream");
    }
    return 0;
}

int arrow_ipc_begin(struct buf *out, struct engine_stream *es, struct arrow_ipc **w, struct loch_err *err)
{
    *w = NULL;
    struct ArrowSchema schema = {.release = NULL};
    int rc = engine_stream_arrow_schema(es, &schema, err);
    if (rc)
        return rc;
    struct arrow_ipc *x = xcalloc(1, sizeof *x);
    x->es = es;
    ArrowArrayViewInitFromType(&x->view, NANOARROW_TYPE_UNINITIALIZED);
    rc = writer_init(&x->writer, out, err);
    if (rc) {
        schema.release(&schema);
        ArrowArrayViewReset(&x->view);
        free(x);
        return rc;
    }
    size_t before = out->len;
    struct ArrowError e = {{0}};
    ArrowErrorCode code = ArrowArrayViewInitFromSchema(&x->view, &schema, &e);
    if (code == NANOARROW_OK)
        code = ArrowIpcWriterWriteSchema(&x->writer, &schema, &e);
    schema.release(&schema);
    if (code != NANOARROW_OK) {
        out->len = before; /* a schema message cut short is no use to anyone */
        if (out->data)
            out->data[before] = '\0';
        arrow_ipc_free(x);
        return ipc_error(err, code, &e, "the result's columns");
    }
    *w = x;
    return 0;
}

int arrow_ipc_chunk(struct arrow_ipc *w, struct engine_chunk *ch, struct loch_err *err)
{
    struct ArrowArray array = {.release = NULL};
    int rc = engine_chunk_to_arrow(w->es, ch, &array, err);
    if (rc)
        return rc;
    struct ArrowError e = {{0}};
    ArrowErrorCode code = ArrowArrayViewSetArray(&w->view, &array, &e);
    if (code == NANOARROW_OK)
        code = ArrowIpcWriterWriteArrayView(&w->writer, &w->view, &e);
    array.release(&array);
    return code == NANOARROW_OK ? 0 : ipc_error(err, code, &e, "a chunk of rows");
}

int arrow_ipc_end(struct arrow_ipc *w, struct loch_err *err)
{
    struct ArrowError e = {{0}};
    ArrowErrorCode code = ArrowIpcWriterWriteArrayView(&w->writer, NULL, &e); /* NULL: end of stream */
    return code == NANOARROW_OK ? 0 : ipc_error(err, code, &e, "the end of the stream");
}

int arrow_ipc_empty(struct buf *out, struct loch_err *err)
{
    struct ArrowIpcWriter wr;
    int rc = writer_init(&wr, out, err);
    if (rc)
        return rc;
    struct ArrowSchema schema;
    ArrowSchemaInit(&schema);
    struct ArrowError e = {{0}};
    ArrowErrorCode code = ArrowSchemaSetTypeStruct(&schema, 0);
    if (code == NANOARROW_OK)
        code = ArrowIpcWriterWriteSchema(&wr, &schema, &e);
    if (code == NANOARROW_OK)
        code = ArrowIpcWriterWriteArrayView(&wr, NULL, &e);
    schema.release(&schema);
    ArrowIpcWriterReset(&wr);
    return code == NANOARROW_OK ? 0 : ipc_error(err, code, &e, "an empty result");
}

void arrow_ipc_free(struct arrow_ipc *w)
{
    if (!w)
        return;
    ArrowIpcWriterReset(&w->writer);
    ArrowArrayViewReset(&w->view);
    free(w);
}
