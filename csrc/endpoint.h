/* endpoint.h: the URLs derived from one SignalR endpoint: client URL, token audience,
 * REST base and the accessKey URL, with the hub prefixed by the application name. */
#ifndef SR_ENDPOINT_H
#define SR_ENDPOINT_H

#include <stddef.h>

#include "buf.h"
#include "error.h"
#include "url.h"

typedef struct sr_endpoint {
    char *origin;        /* service endpoint: scheme://host[:port] */
    char *audience_base; /* scheme://host of the service endpoint: no port, no path */
    char *client_base;   /* ClientEndpoint (with its path) or origin; no trailing '/' */
    char *server_base;   /* ServerEndpoint (with its path) or origin; no trailing '/' */
    char *application;   /* lower-cased application name, or NULL */
    /* Prefixes the hub name completes, built once: "{client base}/client/?hub={app_}" and
     * "{audience base}/client/?hub={app_}". */
    char *client_prefix;
    size_t client_prefix_len;
    char *audience_prefix;
    size_t audience_prefix_len;
} sr_endpoint;

/* Hub and application names follow the service's pattern ^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$. */
int sr_name_valid(const char *s, size_t n);
/* Sets err (naming `what`) and returns 0 when the name is not valid. */
int sr_check_name(const char *s, size_t n, const char *what, sr_error *err);

int sr_endpoint_init(sr_endpoint *ep, const sr_url *service, const sr_url *client,
                     const sr_url *server, const char *application, size_t app_len,
                     sr_error *err);
void sr_endpoint_free(sr_endpoint *ep);

/* "{application}_{hub}" lower-cased (or just the hub lower-cased). */
void sr_endpoint_add_hub(sr_buf *b, const sr_endpoint *ep, const char *hub, size_t n);
/* {client base}/client/?hub={prefixed hub} */
void sr_endpoint_client_url(sr_buf *b, const sr_endpoint *ep, const char *hub, size_t n);
/* {scheme}://{host}/client/?hub={prefixed hub} */
void sr_endpoint_client_audience(sr_buf *b, const sr_endpoint *ep, const char *hub, size_t n);
/* {server base}/api/v1/auth/accessKey */
void sr_endpoint_access_key_url(sr_buf *b, const sr_endpoint *ep);

#endif
