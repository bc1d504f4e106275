/* jwt.h: compact JWS assembly for HS256/HS512 tokens. */
#ifndef SR_JWT_H
#define SR_JWT_H

#include <stddef.h>

#include "buf.h"
#include "error.h"
#include "hmac.h"

/* Appends the base64url header for alg (and kid, when not NULL) to out. */
void sr_jwt_add_header(sr_buf *out, sr_hs_alg alg, const char *kid);

/* out holds "<b64 header>"; appends ".<b64 payload>.<b64 signature>". */
int sr_jwt_finish(sr_buf *out, sr_hmac *key, const char *payload, size_t payload_len,
                  sr_error *err);
/* The same when the header starts at out->data + start (e.g. after "Bearer "). */
int sr_jwt_finish_from(sr_buf *out, size_t start, sr_hmac *key, const char *payload, size_t payload_len,
                       sr_error *err);

#endif
