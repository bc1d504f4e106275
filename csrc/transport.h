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
/* Performs req; fills resp (status, headers, body) or resp->tx_error. Never fails otherwise. */
void sr_transport_perform(sr_transport *t, const sr_request *req, sr_response *resp);
/* Applies the request to a fresh or reused easy handle (for the multi driver). Returns the
 * header list to release with sr_transport_easy_done once the exchange is over. */
void *sr_transport_easy_setup(sr_transport *t, void *easy, const sr_request *req, sr_response *resp);
/* Reads the outcome of a finished easy handle into resp. */
void sr_transport_easy_finish(void *easy, int curl_code, sr_response *resp);
const sr_transport_opts *sr_transport_options(const sr_transport *t);

/* ---- for the curl multi driver (batch.c) ---- */
/* The transport's multi handle (CURLM *), created on first use; NULL when out of memory. */
void *sr_transport_multi(sr_transport *t);
/* An easy handle (CURL *) attached to the shared caches: reused from a pool when one is
 * free. NULL when out of memory. */
void *sr_transport_easy_acquire(sr_transport *t);
/* Gives an easy handle back to the pool (it must not be in the multi handle any more). */
void sr_transport_easy_release(sr_transport *t, void *easy);
/* Keeps at least n idle connections in the shared cache (the multi handle's MAXCONNECTS). */
void sr_transport_keep_connections(sr_transport *t, size_t n);
/* Frees a header list from sr_transport_easy_setup (values are wiped first). */
void sr_transport_headers_free(void *headers);

#endif
