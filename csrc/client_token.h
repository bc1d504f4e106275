/* client_token.h: the access token a browser presents to the service (HS256/HS512 JWT).
 * Claims are written straight into JSON as the caller supplies them; reserved names are
 * renamed asrs.u.<name> so a caller cannot override aud, exp and the like. */
#ifndef SR_CLIENT_TOKEN_H
#define SR_CLIENT_TOKEN_H

#include <stddef.h>

#include "buf.h"
#include "endpoint.h"
#include "error.h"
#include "hmac.h"

/* The service refuses longer tokens ("AccessToken must not be longer than 4K."). */
#define SR_CLIENT_TOKEN_MAX 4096
#define SR_CLAIMS_MAX_NAMES 64

typedef struct sr_claims {
    sr_buf json;                /* "{" then members */
    int count;
    int in_array;
    int array_len;
    int failed;                 /* an add failed; err holds why */
    sr_error *err;
    const char *names[SR_CLAIMS_MAX_NAMES]; /* names written, for duplicate detection */
    size_t name_lens[SR_CLAIMS_MAX_NAMES];
    sr_buf name_store;          /* renamed names live here */
} sr_claims;

/* A signing key: an access key, or a temporary key from the Entra accessKey API. */
/* The last tokens signed for repeated claims: a JWT is a pure function of its header,
 * claims and key, so a payload seen before gets the same token without HMAC or base64.
 * REST calls sign `{aud, iat, exp, nameid}` with whole seconds: at any rate above one call
 * per second per URL most of them repeat. */
#define SR_TOKEN_MEMO 8

typedef struct sr_token_memo {
    char *payload;              /* the claims JSON */
    size_t payload_len;
    char *token;                /* wiped when replaced or freed */
    size_t token_len;
    int alg;
} sr_token_memo;

typedef struct sr_signing_key {
    char *kid;                  /* NULL for a plain access key */
    sr_hmac hmac[2];            /* indexed by sr_hs_alg, prepared once */
    char *header[2];            /* base64url JWT header per algorithm */
    sr_token_memo memo[SR_TOKEN_MEMO];
    unsigned memo_next;
} sr_signing_key;

/* Prepares HS256 and HS512 states for `key` (the UTF-8 bytes of the key string, not
 * base64-decoded, as the service expects). */
int sr_signing_key_init(sr_signing_key *k, const char *kid, const void *key, size_t len, sr_error *err);
/* Idempotent. */
void sr_signing_key_free(sr_signing_key *k);
/* Appends the JWT for `payload` (claims JSON) to out, from the memo when the same claims
 * were signed lately. */
int sr_signing_key_sign(sr_signing_key *k, sr_hs_alg alg, const char *payload, size_t n, sr_buf *out,
                        sr_error *err);

typedef struct sr_client_token_params {
    const sr_endpoint *endpoint;
    const char *hub;
    size_t hub_len;
    long long now;              /* seconds since the epoch */
    long long lifetime;         /* seconds, > 0 */
    sr_hs_alg alg;
    sr_signing_key *key;
} sr_client_token_params;

void sr_claims_init(sr_claims *c, sr_error *err);
void sr_claims_free(sr_claims *c);
/* Each add returns 1, or 0 with err set (invalid UTF-8, duplicate or reserved name). */
int sr_claims_add_string(sr_claims *c, const char *name, size_t nlen, const char *v, size_t vlen);
int sr_claims_add_number(sr_claims *c, const char *name, size_t nlen, double v);
int sr_claims_add_integer(sr_claims *c, const char *name, size_t nlen, long long v);
int sr_claims_add_bool(sr_claims *c, const char *name, size_t nlen, int v);
/* Arrays: begin, then add values with a NULL name, then end. */
int sr_claims_begin_array(sr_claims *c, const char *name, size_t nlen);
int sr_claims_end_array(sr_claims *c);
/* The user id claims: asrs.s.uid (server SDK) and nameid (management SDK). */
int sr_claims_add_user_id(sr_claims *c, const char *v, size_t vlen);

/* Appends nbf/iat/exp/iss/aud, signs, and writes the token to out and the client URL to url. */
int sr_client_token_sign(sr_claims *c, const sr_client_token_params *p, sr_buf *out, sr_buf *url);

#endif
