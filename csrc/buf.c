/* buf.c: growable byte buffer with an inline first block. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sr_buf_init(sr_buf *b)
{
    b->data = b->inline_;
    b->len = 0;
    b->cap = sizeof b->inline_;
    b->oom = 0;
    b->inline_[0] = '\0';
}

void sr_buf_free(sr_buf *b, int wipe)
{
    if (wipe) sr_wipe(b->data, b->cap);
    if (b->data != b->inline_) free(b->data);
    sr_buf_init(b);
}

void sr_buf_reset(sr_buf *b)
{
    b->len = 0;
    b->data[0] = '\0';
}

int sr_buf_reserve(sr_buf *b, size_t extra)
{
    if (b->oom) return 0;
    if (b->len + extra + 1 <= b->cap) return 1;
    size_t cap = b->cap * 2;
    while (cap < b->len + extra + 1) cap *= 2;
    char *p;
    if (b->data == b->inline_) {
        p = malloc(cap);
        if (p) memcpy(p, b->data, b->len + 1);
    } else {
        p = realloc(b->data, cap);
    }
    if (!p) {
        b->oom = 1;
        return 0;
    }
    b->data = p;
    b->cap = cap;
    return 1;
}

void sr_buf_adds(sr_buf *b, const char *s) { sr_buf_add(b, s, strlen(s)); }

void sr_buf_addf(sr_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !sr_buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sr_buf_addint(sr_buf *b, long long v)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    sr_buf_add(b, p, (size_t)(tmp + sizeof tmp - p));
}
