/* transport.h: the libcurl transport. One per service: an easy handle for one exchange at
 * a time and a multi handle for concurrent batches, sharing one connection cache (and DNS
 * and TLS session caches), so keep-alive connections to the endpoint are reused by both.
 * TLS verification is always on; proxies come from the environment as curl reads them
 * (http_proxy, https_proxy, no_proxy). */
#ifndef SR_TRANSPORT_H
#define SR_TRANSPORT_H

#include "error.h"
#include "http.h"

typedef struct sr_transport_opts {
    const char *ca_file;        /* extra trust anchor file (PEM), NULL = system store */
    double timeout;             /* default total timeout, seconds */
    double connect_timeout;     /* default connect timeout, seconds */
} sr_transport_opts;

typedef struct sr_transport sr_transport;

sr_transport *sr_transport_new(const sr_transport_opts *opts, sr_error *err);
void sr_transport_free(sr_transport *t);
/* Performs req; fills resp (status, body, and on answers other than 2xx the headers
 * protocol code reads: x-ms-error-code, retry-after, www-authenticate, content-type,
 * x-ms-request-id, location) or resp->tx_error. Never fails otherwise. */
void sr_transport_perform(sr_transport *t, const sr_request *req, sr_response *resp);
const sr_transport_opts *sr_transport_options(const sr_transport *t);

/* ---- for the curl multi driver (batch.c) ---- */
/* An easy handle configured for this transport (TLS verification, shared caches). */
typedef struct sr_easy sr_easy;

/* The transport's multi handle (CURLM *), created on first use; NULL when out of memory. */
void *sr_transport_multi(sr_transport *t);
/* Keeps at least n idle connections in the shared cache (the multi handle's MAXCONNECTS). */
void sr_transport_keep_connections(sr_transport *t, size_t n);
/* A handle from the pool, or a new one; NULL when out of memory. */
sr_easy *sr_transport_easy_acquire(sr_transport *t);
/* Gives a handle back to the pool (it must not be in the multi handle any more). */
void sr_transport_easy_release(sr_transport *t, sr_easy *e);
/* The handle's CURL *. */
void *sr_transport_easy_curl(sr_easy *e);
/* Applies the request to the handle (resp receives the answer); 0 when out of memory. The
 * request must stay alive until sr_transport_easy_finish. */
int sr_transport_easy_setup(sr_transport *t, sr_easy *e, const sr_request *req, sr_response *resp);
/* Reads the outcome of the finished exchange into resp and wipes the header lines. */
void sr_transport_easy_finish(sr_easy *e, int curl_code, sr_response *resp);
/* Wipes the header lines of an exchange that will not finish (removed from the multi). */
void sr_transport_easy_done(sr_easy *e);

#endif
