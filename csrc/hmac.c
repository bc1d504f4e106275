/* hmac.c: keyed HMAC contexts for HS256/HS512. */
#include "hmac.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

const char *sr_hs_alg_name(sr_hs_alg alg) { return alg == SR_HS512 ? "HS512" : "HS256"; }

int sr_hmac_init(sr_hmac *h, sr_hs_alg alg, const void *key, size_t keylen, sr_error *err)
{
    h->ctx = NULL;
    h->alg = alg;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac) goto fail;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac); /* the context keeps its own reference */
    if (!ctx) goto fail;
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                         alg == SR_HS512 ? "SHA512" : "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    /* An empty key is legal for HMAC; OpenSSL wants a non-NULL pointer for it. */
    static const unsigned char empty[1];
    if (!EVP_MAC_init(ctx, keylen ? key : empty, keylen, params)) {
        EVP_MAC_CTX_free(ctx);
        goto fail;
    }
    h->ctx = ctx;
    return 1;
fail:
    ERR_clear_error();
    return sr_error_set(err, SR_E_INTERNAL, "OpenSSL could not prepare an HMAC key");
}

size_t sr_hmac_sign(sr_hmac *h, const void *data, size_t n, unsigned char *out)
{
    size_t len = 0;
    EVP_MAC_CTX *ctx = h->ctx;
    /* A NULL key re-initialises the context with the key it already holds. */
    if (!ctx || !EVP_MAC_init(ctx, NULL, 0, NULL) || !EVP_MAC_update(ctx, data, n) ||
        !EVP_MAC_final(ctx, out, &len, SR_HMAC_MAX)) {
        ERR_clear_error();
        return 0;
    }
    return len;
}

void sr_hmac_free(sr_hmac *h)
{
    /* EVP_MAC_CTX_free cleanses the key material it holds. */
    EVP_MAC_CTX_free(h->ctx);
    h->ctx = NULL;
}
