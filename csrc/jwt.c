/* jwt.c: HS256/HS512 JWTs: header, payload, signature over the prepared key. */
#include "jwt.h"

#include "b64url.h"
#include <string.h>

#include "json.h"

void sr_jwt_add_header(sr_buf *out, sr_hs_alg alg, const char *kid)
{
    sr_buf h;
    sr_buf_init(&h);
    sr_buf_adds(&h, alg == SR_HS512 ? "{\"alg\":\"HS512\",\"typ\":\"JWT\"" : "{\"alg\":\"HS256\",\"typ\":\"JWT\"");
    if (kid) {
        sr_buf_adds(&h, ",\"kid\":");
        sr_json_add_string(&h, kid, strlen(kid));
    }
    sr_buf_addc(&h, '}');
    sr_b64url_encode(out, h.data, h.len);
    sr_buf_free(&h, 0);
}

int sr_jwt_finish(sr_buf *out, sr_hmac *key, const char *payload, size_t payload_len,
                  sr_error *err)
{
    return sr_jwt_finish_from(out, 0, key, payload, payload_len, err);
}

int sr_jwt_finish_from(sr_buf *out, size_t start, sr_hmac *key, const char *payload, size_t payload_len,
                       sr_error *err)
{
    unsigned char mac[SR_HMAC_MAX];
    sr_buf_addc(out, '.');
    sr_b64url_encode(out, payload, payload_len);
    if (out->oom) return sr_error_set(err, SR_E_NO_MEMORY, "out of memory while signing a token");
    size_t n = sr_hmac_sign(key, out->data + start, out->len - start, mac);
    if (!n) return sr_error_set(err, SR_E_INTERNAL, "OpenSSL failed to sign a token");
    sr_buf_addc(out, '.');
    sr_b64url_encode(out, mac, n);
    if (out->oom) return sr_error_set(err, SR_E_NO_MEMORY, "out of memory while signing a token");
    return 1;
}
