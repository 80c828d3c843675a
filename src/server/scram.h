/* scram.h: the server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it
 * in SASL authentication (protocol docs 55.3.1): client-first -> server-first ->
 * client-final -> server-final. Channel binding is not offered (no -PLUS mechanism).
 * Not for storing verifiers (access/principal.c). */
#ifndef LOCH_SERVER_SCRAM_H
#define LOCH_SERVER_SCRAM_H

#include <stdbool.h>
#include <stddef.h>

#include "access/principal.h"
#include "base/buf.h"
#include "base/err.h"

struct scram_state {
    struct scram_verifier v;
    bool known;               /* false: a stand-in verifier; the exchange runs, then fails */
    char *client_first_bare;  /* malloc'd */
    char *server_first;       /* malloc'd */
    char *nonce;              /* client nonce + server nonce, malloc'd */
};

/* Starts an exchange. v is the user's verifier, or NULL for an unknown user: then a
 * stand-in derived from the user name is used, so the server-first message looks the same
 * and the exchange fails only at the proof (no user enumeration). Parses client_first
 * ("n,,n=...,r=NONCE"); appends server-first ("r=...,s=...,i=...") to out. LOCH_EPROTO
 * for a malformed message or a channel-binding request. Free st with scram_state_free. */
int scram_server_first(struct scram_state *st, const struct scram_verifier *v, const char *user,
                       const char *client_first, size_t len, struct buf *out, struct loch_err *err);

/* scram_server_first with a given server nonce instead of a random one (tests: RFC
 * 7677's example exchange). */
int scram_server_first_nonce(struct scram_state *st, const struct scram_verifier *v, const char *user,
                             const char *client_first, size_t len, const char *server_nonce, struct buf *out,
                             struct loch_err *err);

/* Checks client-final ("c=biws,r=NONCE,p=PROOF"). 0 and server-final ("v=...") appended to
 * out when the proof matches; LOCH_EAUTH when it does not (or the user was unknown);
 * LOCH_EPROTO when the message is malformed or the nonce differs. */
int scram_server_final(struct scram_state *st, const char *client_final, size_t len, struct buf *out,
                       struct loch_err *err);

void scram_state_free(struct scram_state *st);

/* Base64 helpers (OpenSSL's EVP coder): encode appends to out; decode returns the byte
 * count or -1 for invalid input (out must hold len*3/4+3 bytes). */
void scram_b64_encode(struct buf *out, const unsigned char *p, size_t len);
int scram_b64_decode(const char *s, size_t len, unsigned char *out);

#endif
