/* b64url.h: base64url without padding (RFC 4648 section 5), as JWTs use it. */
#ifndef SR_B64URL_H
#define SR_B64URL_H

#include <stddef.h>

#include "buf.h"

size_t sr_b64url_encoded_len(size_t n);
void sr_b64url_encode(sr_buf *out, const void *data, size_t n);
/* Strict decode: url alphabet only, no padding, no whitespace. Returns 0 on bad input. */
int sr_b64url_decode(sr_buf *out, const char *s, size_t n);

#endif
