/* scram.c: server side of SCRAM-SHA-256 (RFC 5802 section 3 and 5, RFC 7677), with
 * OpenSSL for HMAC, SHA-256, base64 and random nonces. */
#include "server/scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

void scram_b64_encode(struct buf *out, const unsigned char *p, size_t len)
{
    buf_reserve(out, 4 * ((len + 2) / 3) + 1);
    int n = EVP_EncodeBlock((unsigned char *)out->data + out->len, p, (int)len);
    out->len += (size_t)n;
    out->data[out->len] = '\0';
}

int scram_b64_decode(const char *s, size_t len, unsigned char *out)
{
    if (len % 4)
        return -1;
    int n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
    if (n < 0)
        return -1;
    if (len >= 1 && s[len - 1] == '=')
        n--;
    if (len >= 2 && s[len - 2] == '=')
        n--;
    return n;
}

/* A process-wide secret for stand-in verifiers: the salt an unknown user gets is stable
 * across attempts (as a real user's is) but says nothing. */
static unsigned char fake_secret[32];
static pthread_once_t fake_once = PTHREAD_ONCE_INIT;
static void fake_init(void) { RAND_bytes(fake_secret, sizeof fake_secret); }

static void fake_verifier(const char *user, struct scram_verifier *v)
{
    pthread_once(&fake_once, fake_init);
    unsigned char mac[32];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), fake_secret, sizeof fake_secret, (const unsigned char *)user, strlen(user), mac, &ml);
    memset(v, 0, sizeof *v);
    v->iterations = SCRAM_ITERATIONS;
    v->salt_len = SCRAM_SALT_LEN;
    memcpy(v->salt, mac, SCRAM_SALT_LEN);
    RAND_bytes(v->stored_key, sizeof v->stored_key);
    RAND_bytes(v->server_key, sizeof v->server_key);
}

/* The value of attribute `key` ("r=" ...) among the comma-separated attributes of msg,
 * copied (malloc'd), or NULL. */
static char *attr(const char *msg, char key)
{
    const char *p = msg;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l >= 2 && p[0] == key && p[1] == '=')
            return xstrndup(p + 2, l - 2);
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

int scram_server_first(struct scram_state *st, const struct scram_verifier *v, const char *user,
                       const char *client_first, size_t len, struct buf *out, struct loch_err *err)
{
    return scram_server_first_nonce(st, v, user, client_first, len, NULL, out, err);
}

int scram_server_first_nonce(struct scram_state *st, const struct scram_verifier *v, const char *user,
                             const char *client_first, size_t len, const char *server_nonce, struct buf *out,
                             struct loch_err *err)
{
    memset(st, 0, sizeof *st);
    if (memchr(client_first, '\0', len))
        return loch_errf(err, LOCH_EPROTO, "SCRAM client-first message contains a NUL byte");
    char *msg = xstrndup(client_first, len);
    /* gs2 header: "n,," (no channel binding) or "y,," (client could, we do not offer). */
    if (!((msg[0] == 'n' || msg[0] == 'y') && msg[1] == ',')) {
        free(msg);
        return loch_errf(err, LOCH_EPROTO, "SCRAM channel binding is not supported");
    }
    char *second = strchr(msg + 2, ',');
    if (!second) {
        free(msg);
        return loch_errf(err, LOCH_EPROTO, "malformed SCRAM client-first message");
    }
    st->client_first_bare = xstrdup(second + 1);
    char *cnonce = attr(st->client_first_bare, 'r');
    free(msg);
    if (!cnonce || !*cnonce || strncmp(st->client_first_bare, "n=", 2) != 0) {
        free(cnonce);
        return loch_errf(err, LOCH_EPROTO, "malformed SCRAM client-first message (no nonce)");
    }
    if (v) {
        st->v = *v;
        st->known = true;
    } else {
        fake_verifier(user, &st->v);
    }
    struct buf n = {0};
    buf_puts(&n, cnonce);
    if (server_nonce) {
        buf_puts(&n, server_nonce);
    } else {
        unsigned char rnd[18];
        RAND_bytes(rnd, sizeof rnd);
        scram_b64_encode(&n, rnd, sizeof rnd);
    }
    free(cnonce);
    st->nonce = buf_take(&n);
    struct buf sf = {0};
    buf_printf(&sf, "r=%s,s=", st->nonce);
    scram_b64_encode(&sf, st->v.salt, st->v.salt_len);
    buf_printf(&sf, ",i=%d", st->v.iterations);
    buf_append(out, sf.data, sf.len);
    st->server_first = buf_take(&sf);
    return 0;
}

int scram_server_final(struct scram_state *st, const char *client_final, size_t len, struct buf *out,
                       struct loch_err *err)
{
    if (!st->server_first)
        return loch_errf(err, LOCH_EPROTO, "SCRAM client-final message before client-first");
    if (memchr(client_final, '\0', len))
        return loch_errf(err, LOCH_EPROTO, "SCRAM client-final message contains a NUL byte");
    char *msg = xstrndup(client_final, len);
    char *cb = attr(msg, 'c'), *nonce = attr(msg, 'r'), *proof = attr(msg, 'p');
    char *pp = strstr(msg, ",p=");
    int rc = 0;
    unsigned char proof_raw[64];
    int proof_len = -1;
    if (!cb || !nonce || !proof || !pp)
        rc = loch_errf(err, LOCH_EPROTO, "malformed SCRAM client-final message");
    else if (strcmp(cb, "biws") != 0 && strcmp(cb, "eSws") != 0) /* base64 of "n,," / "y,," */
        rc = loch_errf(err, LOCH_EPROTO, "SCRAM channel binding is not supported");
    else if (strcmp(nonce, st->nonce) != 0)
        rc = loch_errf(err, LOCH_EPROTO, "SCRAM nonce does not match");
    else if (strlen(proof) > 88 || (proof_len = scram_b64_decode(proof, strlen(proof), proof_raw)) != 32)
        rc = loch_errf(err, LOCH_EPROTO, "malformed SCRAM client proof");
    if (!rc) {
        /* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
        struct buf am = {0};
        buf_printf(&am, "%s,%s,", st->client_first_bare, st->server_first);
        buf_append(&am, msg, (size_t)(pp - msg));
        unsigned char sig[32], key[32], stored[32];
        unsigned int l = 0;
        HMAC(EVP_sha256(), st->v.stored_key, 32, (unsigned char *)am.data, am.len, sig, &l);
        for (int i = 0; i < 32; i++)
            key[i] = proof_raw[i] ^ sig[i];
        SHA256(key, 32, stored);
        if (CRYPTO_memcmp(stored, st->v.stored_key, 32) != 0 || !st->known) {
            rc = loch_errf(err, LOCH_EAUTH, "password authentication failed");
        } else {
            unsigned char ss[32];
            HMAC(EVP_sha256(), st->v.server_key, 32, (unsigned char *)am.data, am.len, ss, &l);
            buf_puts(out, "v=");
            scram_b64_encode(out, ss, 32);
        }
        buf_free(&am);
    }
    free(cb);
    free(nonce);
    free(proof);
    free(msg);
    return rc;
}

void scram_state_free(struct scram_state *st)
{
    free(st->client_first_bare);
    free(st->server_first);
    free(st->nonce);
    memset(st, 0, sizeof *st);
}
