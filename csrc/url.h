/* url.h: absolute http(s) URL parsing for endpoints, and percent-encoding. */
#ifndef SR_URL_H
#define SR_URL_H

#include <stddef.h>

#include "buf.h"
#include "error.h"

typedef struct sr_url {
    char scheme[6];     /* "http" or "https", lower-case */
    char *host;         /* lower-case; an IPv6 literal keeps its brackets */
    int port;           /* effective port (default for the scheme when not given) */
    int port_explicit;
    char *path;         /* "" or "/a/b", trailing '/' removed, kept as written */
} sr_url;

/* Parses an absolute http/https URL without user info, query or fragment.
 * `what` names the setting in the error ("endpoint", "ClientEndpoint", ...). */
int sr_url_parse(const char *s, size_t n, sr_url *u, const char *what, sr_error *err);
void sr_url_free(sr_url *u);
int sr_url_default_port(const sr_url *u);
/* scheme://host[:port] with the port only when it is not the scheme's default. */
void sr_url_add_origin(sr_buf *b, const sr_url *u);

/* Percent-encodes everything but RFC 3986 unreserved characters. */
void sr_url_add_escaped(sr_buf *b, const char *s, size_t n);

#endif
