/* http.c: request/response descriptions. */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int sr_request_init(sr_request *r, const char *method, const char *url, sr_error *err)
{
    memset(r, 0, sizeof *r);
    snprintf(r->method, sizeof r->method, "%s", method);
    r->url = strdup(url);
    if (!r->url) return sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    return 1;
}

static int add_header(sr_header **hs, size_t *n, size_t *cap, const char *name, size_t nlen,
                      const char *value, size_t vlen, int secret, int lower)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 8;
        sr_header *p = realloc(*hs, c * sizeof *p);
        if (!p) return 0;
        *hs = p;
        *cap = c;
    }
    sr_header *h = &(*hs)[*n];
    /* One block per header: the name, then the value. */
    h->name = malloc(nlen + 1 + vlen + 1);
    if (!h->name) return 0;
    h->value = h->name + nlen + 1;
    if (lower) {
        for (size_t i = 0; i < nlen; i++) {
            char c = name[i];
            h->name[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
    } else {
        memcpy(h->name, name, nlen);
    }
    h->name[nlen] = '\0';
    memcpy(h->value, value, vlen);
    h->value[vlen] = '\0';
    h->secret = secret;
    (*n)++;
    return 1;
}

int sr_request_add_header(sr_request *r, const char *name, const char *value, int secret)
{
    return add_header(&r->headers, &r->nheaders, &r->cap, name, strlen(name), value, strlen(value), secret, 0);
}

int sr_request_set_body(sr_request *r, const void *body, size_t len, int secret)
{
    if (r->body) {
        if (r->body_secret) sr_wipe(r->body, r->body_len);
        free(r->body);
    }
    r->body = malloc(len + 1);
    if (!r->body) return 0;
    memcpy(r->body, body, len);
    r->body[len] = '\0';
    r->body_len = len;
    r->body_secret = secret;
    return 1;
}

void sr_request_free(sr_request *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        if (r->headers[i].secret) sr_wipe(r->headers[i].value, strlen(r->headers[i].value));
        free(r->headers[i].name); /* the value lives in the same block */
    }
    free(r->headers);
    if (r->body && r->body_secret) sr_wipe(r->body, r->body_len);
    free(r->body);
    free(r->url);
    memset(r, 0, sizeof *r);
}

int sr_request_set_header(sr_request *r, const char *name, const char *value, int secret)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        sr_header *h = &r->headers[i];
        if (strcasecmp(h->name, name) != 0) continue;
        size_t nlen = strlen(h->name), vlen = strlen(value);
        char *block = malloc(nlen + 1 + vlen + 1);
        if (!block) return 0;
        memcpy(block, h->name, nlen + 1);
        memcpy(block + nlen + 1, value, vlen + 1);
        if (h->secret) sr_wipe(h->value, strlen(h->value));
        free(h->name);
        h->name = block;
        h->value = block + nlen + 1;
        h->secret = secret;
        return 1;
    }
    return sr_request_add_header(r, name, value, secret);
}

const char *sr_request_header(const sr_request *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
    return NULL;
}

void sr_response_init(sr_response *r)
{
    memset(r, 0, sizeof *r);
    sr_buf_init(&r->body);
}

void sr_response_reset(sr_response *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name); /* the value lives in the same block */
    }
    r->nheaders = 0;
    r->status = 0;
    r->tx_error = SR_TX_OK;
    r->tx_message[0] = '\0';
    /* A response body can hold a token (Entra, accessKey): wipe it before reuse. */
    sr_wipe(r->body.data, r->body.len);
    sr_buf_reset(&r->body);
}

void sr_response_free(sr_response *r)
{
    sr_response_reset(r);
    free(r->headers);
    r->headers = NULL;
    r->cap = 0;
    sr_buf_free(&r->body, 1);
}

int sr_response_add_header(sr_response *r, const char *name, size_t nlen, const char *value, size_t vlen)
{
    return add_header(&r->headers, &r->nheaders, &r->cap, name, nlen, value, vlen, 0, 1);
}

const char *sr_response_header(const sr_response *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
    return NULL;
}

double sr_response_retry_after(const sr_response *r, double now)
{
    const char *v = sr_response_header(r, "retry-after");
    if (!v) return -1;
    char *end;
    double secs = strtod(v, &end);
    if (end != v && *end == '\0' && secs >= 0) return secs;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    /* HTTP-date, e.g. "Wed, 21 Oct 2015 07:28:00 GMT" */
    const char *rest = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!rest || *rest) return -1;
    double at = (double)timegm(&tm);
    return at > now ? at - now : 0;
}

void sr_request_describe(sr_buf *b, const sr_request *r)
{
    sr_buf_adds(b, r->method);
    sr_buf_addc(b, ' ');
    const char *q = strchr(r->url, '?');
    sr_buf_add(b, r->url, q ? (size_t)(q - r->url) : strlen(r->url));
}

int sr_tx_error_set(sr_error *err, const sr_request *req, const sr_response *resp)
{
    sr_buf d;
    sr_buf_init(&d);
    sr_request_describe(&d, req);
    sr_kind kind = resp->tx_error == SR_TX_TIMEOUT ? SR_E_TIMEOUT : SR_E_NETWORK;
    const char *what;
    switch (resp->tx_error) {
    case SR_TX_TIMEOUT: what = "timed out"; break;
    case SR_TX_CONNECT: what = "could not connect"; break;
    case SR_TX_RESET: what = "lost its connection"; break;
    case SR_TX_TLS: what = "failed TLS verification or handshake"; break;
    default: what = "failed"; break;
    }
    sr_error_set(err, kind, "%s %s%s%s", d.data, what, resp->tx_message[0] ? ": " : "", resp->tx_message);
    sr_buf_free(&d, 0);
    return 0;
}
