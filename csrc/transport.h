/* transport.h: the libcurl transport: one easy handle kept per service so connections
 * (and TLS sessions) are reused, TLS verification always on, proxies from the
 * environment as curl does. */
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
/* Applies the request to a fresh or reused easy handle (for the multi driver). */
void *sr_transport_easy_setup(sr_transport *t, void *easy, const sr_request *req, sr_response *resp);
/* Reads the outcome of a finished easy handle into resp. */
void sr_transport_easy_finish(void *easy, int curl_code, sr_response *resp);
const sr_transport_opts *sr_transport_options(const sr_transport *t);

#endif
