/* url.c: endpoint URL parsing and percent-encoding. */
#include "url.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ASCII classes: <ctype.h> follows the C locale, which a host program may have changed. */
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_alnum(unsigned char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_xdigit(unsigned char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

static char *dup_lower(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) return NULL;
    for (size_t i = 0; i < n; i++) p[i] = to_lower(s[i]);
    p[n] = '\0';
    return p;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static int host_char_ok(unsigned char c)
{
    return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

void sr_url_free(sr_url *u)
{
    free(u->host);
    free(u->path);
    u->host = u->path = NULL;
}

int sr_url_default_port(const sr_url *u) { return strcmp(u->scheme, "https") == 0 ? 443 : 80; }

int sr_url_parse(const char *s, size_t n, sr_url *u, const char *what, sr_error *err)
{
    memset(u, 0, sizeof *u);
    const char *end = s + n, *p;
    if (n > 7 && strncasecmp(s, "http://", 7) == 0) {
        strcpy(u->scheme, "http");
        p = s + 7;
    } else if (n > 8 && strncasecmp(s, "https://", 8) == 0) {
        strcpy(u->scheme, "https");
        p = s + 8;
    } else {
        return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                            "invalid value for %s: it must be an absolute http or https URL", what);
    }
    for (const char *q = p; q < end; q++) {
        if (*q == '?' || *q == '#')
            return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                                "invalid value for %s: a query or fragment is not allowed", what);
        if (*q <= ' ' || (unsigned char)*q >= 0x7f)
            return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                                "invalid value for %s: it contains a space or a non-ASCII character", what);
    }
    const char *auth_end = memchr(p, '/', (size_t)(end - p));
    if (!auth_end) auth_end = end;
    if (memchr(p, '@', (size_t)(auth_end - p)))
        return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                            "invalid value for %s: user information in the URL is not allowed", what);
    const char *host = p, *host_end, *port = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(auth_end - p));
        if (!close || close == p + 1)
            return sr_error_set(err, SR_E_INVALID_ARGUMENT, "invalid value for %s: bad IPv6 host", what);
        for (const char *q = p + 1; q < close; q++)
            if (!is_xdigit((unsigned char)*q) && *q != ':' && *q != '.')
                return sr_error_set(err, SR_E_INVALID_ARGUMENT, "invalid value for %s: bad IPv6 host", what);
        host_end = close + 1;
        if (host_end < auth_end) {
            if (*host_end != ':')
                return sr_error_set(err, SR_E_INVALID_ARGUMENT, "invalid value for %s: bad IPv6 host", what);
            port = host_end + 1;
        }
    } else {
        host_end = memchr(p, ':', (size_t)(auth_end - p));
        if (host_end) port = host_end + 1;
        else host_end = auth_end;
        for (const char *q = host; q < host_end; q++)
            if (!host_char_ok((unsigned char)*q))
                return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                                    "invalid value for %s: the host name has an invalid character", what);
    }
    if (host_end == host)
        return sr_error_set(err, SR_E_INVALID_ARGUMENT, "invalid value for %s: the host is missing", what);
    if (port) {
        long v = 0;
        if (port == auth_end)
            return sr_error_set(err, SR_E_INVALID_ARGUMENT, "invalid value for %s: the port is empty", what);
        for (const char *q = port; q < auth_end; q++) {
            if (!is_digit((unsigned char)*q) || v > 65535) {
                v = -1;
                break;
            }
            v = v * 10 + (*q - '0');
        }
        if (v < 1 || v > 65535)
            return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                                "invalid value for %s: the port must be a number from 1 to 65535", what);
        u->port = (int)v;
        u->port_explicit = 1;
    } else {
        u->port = sr_url_default_port(u);
    }
    const char *path_end = end;
    while (path_end > auth_end && path_end[-1] == '/') path_end--;
    u->host = dup_lower(host, (size_t)(host_end - host));
    u->path = dup_n(auth_end, (size_t)(path_end - auth_end));
    if (!u->host || !u->path) {
        sr_url_free(u);
        return sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    }
    return 1;
}

void sr_url_add_origin(sr_buf *b, const sr_url *u)
{
    sr_buf_adds(b, u->scheme);
    sr_buf_add(b, "://", 3);
    sr_buf_adds(b, u->host);
    if (u->port != sr_url_default_port(u)) {
        sr_buf_addc(b, ':');
        sr_buf_addint(b, u->port);
    }
}

void sr_url_add_escaped(sr_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!sr_buf_reserve(b, n)) return;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            sr_buf_addc(b, (char)c);
        } else {
            char esc[3] = { '%', hex[c >> 4], hex[c & 15] };
            sr_buf_add(b, esc, 3);
        }
    }
}
