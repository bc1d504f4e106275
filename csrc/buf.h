/* buf.h: a growable byte buffer, always NUL-terminated. */
#ifndef SR_BUF_H
#define SR_BUF_H

#include <stddef.h>
#include <string.h>

typedef struct sr_buf {
    char *data;
    size_t len;
    size_t cap;
    int oom;            /* set once an allocation failed; later appends are no-ops */
    char inline_[512];  /* small strings never touch the heap */
} sr_buf;

/* Wipes n bytes that held a secret, with stores the compiler may not drop: glibc's
 * explicit_bzero (a plain memset, vectorised), else OpenSSL's byte loop. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 25))
#define sr_wipe(p, n) explicit_bzero((p), (n))
#else
#include <openssl/crypto.h>
#define sr_wipe(p, n) OPENSSL_cleanse((p), (n))
#endif

void sr_buf_init(sr_buf *b);
/* Frees heap storage; when `wipe` is set the bytes are cleansed first (secrets). */
void sr_buf_free(sr_buf *b, int wipe);
void sr_buf_reset(sr_buf *b);
int sr_buf_reserve(sr_buf *b, size_t extra);
void sr_buf_adds(sr_buf *b, const char *s);

/* The two hot appends are inline: token building calls them many times per token. */
static inline void sr_buf_add(sr_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap && !sr_buf_reserve(b, n)) return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static inline void sr_buf_addc(sr_buf *b, char c)
{
    if (b->len + 2 > b->cap && !sr_buf_reserve(b, 1)) return;
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

/* Appends a string literal without strlen. */
#define sr_buf_addlit(b, lit) sr_buf_add((b), (lit), sizeof(lit) - 1)
void sr_buf_addf(sr_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Decimal integer, no locale. */
void sr_buf_addint(sr_buf *b, long long v);

#endif
