/* form.h: application/x-www-form-urlencoded bodies (the Entra token request). */
#ifndef SR_FORM_H
#define SR_FORM_H

#include <stddef.h>

#include "buf.h"

/* Appends "&name=value" (no '&' for the first pair), percent-encoding everything but
 * RFC 3986 unreserved characters (a space becomes %20, which form decoders accept). */
void sr_form_add(sr_buf *b, const char *name, const char *value, size_t len);
void sr_form_adds(sr_buf *b, const char *name, const char *value);

#endif
