/* http.h: descriptions of an HTTP request and its response. Protocol code (credentials,
 * token cache, REST) only builds requests and reads responses; a transport (libcurl, or
 * OpenResty cosockets on the Lua side) performs them. */
#ifndef SR_HTTP_H
#define SR_HTTP_H

#include <stddef.h>

#include "buf.h"
#include "error.h"

typedef struct sr_header {
    char *name;
    char *value;
    int secret;                 /* wiped when freed; never logged */
} sr_header;

typedef struct sr_request {
    char method[8];
    char *url;                  /* may hold a secret-free query only */
    sr_header *headers;
    size_t nheaders, cap;
    char *body;
    size_t body_len;
    int body_secret;            /* the body carries a secret (client_secret, assertion) */
    double timeout;             /* total seconds, 0 = the transport's default */
    double connect_timeout;     /* seconds, 0 = the transport's default */
} sr_request;

typedef enum sr_tx_error {
    SR_TX_OK = 0,
    SR_TX_TIMEOUT,              /* connect or total timeout */
    SR_TX_CONNECT,              /* DNS failure, refused, unreachable */
    SR_TX_RESET,                /* connection dropped or reset, empty reply */
    SR_TX_TLS,                  /* certificate not trusted, handshake failed */
    SR_TX_OTHER
} sr_tx_error;

typedef struct sr_response {
    int status;                 /* 0 when the exchange failed (tx_error says why) */
    sr_tx_error tx_error;
    char tx_message[256];
    sr_header *headers;         /* names lower-cased */
    size_t nheaders, cap;
    sr_buf body;
} sr_response;

int sr_request_init(sr_request *r, const char *method, const char *url, sr_error *err);
int sr_request_add_header(sr_request *r, const char *name, const char *value, int secret);
/* Replaces the value of header `name` (case-insensitive), or adds it. */
int sr_request_set_header(sr_request *r, const char *name, const char *value, int secret);
/* Copies the body; `secret` marks it for wiping. */
int sr_request_set_body(sr_request *r, const void *body, size_t len, int secret);
void sr_request_free(sr_request *r);
const char *sr_request_header(const sr_request *r, const char *name);

void sr_response_init(sr_response *r);
void sr_response_reset(sr_response *r);
void sr_response_free(sr_response *r);
int sr_response_add_header(sr_response *r, const char *name, size_t nlen, const char *value, size_t vlen);
/* Case-insensitive lookup; NULL when absent. */
const char *sr_response_header(const sr_response *r, const char *name);
/* Retry-After in seconds (delta-seconds or an HTTP date), or -1. */
double sr_response_retry_after(const sr_response *r, double now);

/* "METHOD scheme://host/path" for messages: never the query, which may carry a token. */
void sr_request_describe(sr_buf *b, const sr_request *r);
/* Fills err for a failed exchange (timeout, network, TLS), naming the request. */
int sr_tx_error_set(sr_error *err, const sr_request *req, const sr_response *resp);

#endif
