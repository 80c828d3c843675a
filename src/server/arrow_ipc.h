/* arrow_ipc.h: an engine result as an Arrow IPC stream (the "IPC Streaming Format" of
 * https://arrow.apache.org/docs/format/Columnar.html#ipc-streaming-format: a schema
 * message, one record batch per chunk, the end-of-stream marker), written by nanoarrow's
 * IPC writer into a struct buf, chunk by chunk, so a result is never held whole.
 * Not for converting values (DuckDB does, through engine_chunk_to_arrow) nor for HTTP. */
#ifndef LOCH_SERVER_ARROW_IPC_H
#define LOCH_SERVER_ARROW_IPC_H

#include "base/buf.h"
#include "base/err.h"
#include "engine/engine.h"

struct arrow_ipc; /* one stream being written */

/* Starts a stream for the rows of es: appends the schema message to *out. out and es are
 * borrowed and must outlive the writer; the caller may send and reset out's bytes between
 * calls (the writer only appends). On error (LOCH_EQUERY: a column Arrow cannot carry)
 * *w is NULL and out is unchanged; the error tells the client to ask for JSON or CSV. */
int arrow_ipc_begin(struct buf *out, struct engine_stream *es, struct arrow_ipc **w, struct loch_err *err);

/* Appends one record batch with the rows of ch (the current chunk of the stream's es).
 * Errors as arrow_ipc_begin; after an error the stream must not be ended (a reader then
 * sees it cut short, never a well-formed partial result). */
int arrow_ipc_chunk(struct arrow_ipc *w, struct engine_chunk *ch, struct loch_err *err);

/* Appends the end-of-stream marker. */
int arrow_ipc_end(struct arrow_ipc *w, struct loch_err *err);

/* A complete stream of no columns and no rows (for statements without a result set). */
int arrow_ipc_empty(struct buf *out, struct loch_err *err);

void arrow_ipc_free(struct arrow_ipc *w); /* w may be NULL */

#endif
