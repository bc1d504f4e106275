/* form.c: form encoding. */
#include "form.h"

#include <string.h>

#include "url.h"

void sr_form_add(sr_buf *b, const char *name, const char *value, size_t len)
{
    if (b->len) sr_buf_addc(b, '&');
    sr_url_add_escaped(b, name, strlen(name));
    sr_buf_addc(b, '=');
    sr_url_add_escaped(b, value, len);
}

void sr_form_adds(sr_buf *b, const char *name, const char *value) { sr_form_add(b, name, value, strlen(value)); }
