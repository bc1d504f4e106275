/* hmac.h: an HMAC key prepared once (OpenSSL 3 EVP_MAC) and reused for every token:
 * re-initialising a keyed context costs a fraction of HMAC() with the raw key. */
#ifndef SR_HMAC_H
#define SR_HMAC_H

#include <stddef.h>

#include "error.h"

typedef enum sr_hs_alg { SR_HS256 = 0, SR_HS512 = 1 } sr_hs_alg;

typedef struct sr_hmac {
    void *ctx;          /* EVP_MAC_CTX*, keyed */
    sr_hs_alg alg;
} sr_hmac;

#define SR_HMAC_MAX 64

const char *sr_hs_alg_name(sr_hs_alg alg);
int sr_hmac_init(sr_hmac *h, sr_hs_alg alg, const void *key, size_t keylen, sr_error *err);
/* Writes the MAC into out (SR_HMAC_MAX bytes), returns its length or 0 on failure. */
size_t sr_hmac_sign(sr_hmac *h, const void *data, size_t n, unsigned char *out);
void sr_hmac_free(sr_hmac *h);

#endif
