/* endpoint.c: URL derivation for an endpoint, as the official SDK builds them. */
#include "endpoint.h"

#include <stdlib.h>
#include <string.h>

static int name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '`' || c == ',' || c == '.' || c == '[' || c == ']';
}

int sr_name_valid(const char *s, size_t n)
{
    if (n < 1 || n > 128) return 0;
    unsigned char c0 = (unsigned char)s[0];
    if (!((c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z'))) return 0;
    for (size_t i = 1; i < n; i++)
        if (!name_char((unsigned char)s[i])) return 0;
    return 1;
}

int sr_check_name(const char *s, size_t n, const char *what, sr_error *err)
{
    if (sr_name_valid(s, n)) return 1;
    if (n == 0) return sr_error_set(err, SR_E_INVALID_ARGUMENT, "%s name is empty", what);
    if (n > 128)
        return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                            "%s name is %zu characters long; at most 128 are allowed", what, n);
    return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                        "%s name is not valid: it must start with a letter and hold only letters, "
                        "digits and _ ` , . [ ] (pattern ^[A-Za-z][A-Za-z0-9_`,.[\\]]{0,127}$)", what);
}

static char *buf_take(sr_buf *b)
{
    char *p = malloc(b->len + 1);
    if (p) memcpy(p, b->data, b->len + 1);
    sr_buf_reset(b);
    return p;
}

static char *base_of(const sr_url *u)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_url_add_origin(&b, u);
    sr_buf_adds(&b, u->path);
    char *p = buf_take(&b);
    sr_buf_free(&b, 0);
    return p;
}

void sr_endpoint_free(sr_endpoint *ep)
{
    free(ep->origin);
    free(ep->audience_base);
    free(ep->client_base);
    free(ep->server_base);
    free(ep->application);
    free(ep->client_prefix);
    free(ep->audience_prefix);
    memset(ep, 0, sizeof *ep);
}

int sr_endpoint_init(sr_endpoint *ep, const sr_url *service, const sr_url *client,
                     const sr_url *server, const char *application, size_t app_len,
                     sr_error *err)
{
    memset(ep, 0, sizeof *ep);
    if (application && !sr_check_name(application, app_len, "application", err)) return 0;
    sr_buf b;
    sr_buf_init(&b);
    sr_url_add_origin(&b, service);
    ep->origin = buf_take(&b);
    sr_buf_adds(&b, service->scheme);
    sr_buf_add(&b, "://", 3);
    sr_buf_adds(&b, service->host);
    ep->audience_base = buf_take(&b);
    ep->client_base = client ? base_of(client) : strdup(ep->origin ? ep->origin : "");
    ep->server_base = server ? base_of(server) : strdup(ep->origin ? ep->origin : "");
    if (application) {
        ep->application = malloc(app_len + 1);
        if (ep->application) {
            for (size_t i = 0; i < app_len; i++) {
                char c = application[i];
                ep->application[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
            }
            ep->application[app_len] = '\0';
        }
    }
    if (ep->client_base && ep->audience_base && (!application || ep->application)) {
        sr_buf_adds(&b, ep->client_base);
        sr_buf_addlit(&b, "/client/?hub=");
        if (ep->application) {
            sr_buf_adds(&b, ep->application);
            sr_buf_addc(&b, '_');
        }
        ep->client_prefix_len = b.len;
        ep->client_prefix = buf_take(&b);
        sr_buf_adds(&b, ep->audience_base);
        sr_buf_addlit(&b, "/client/?hub=");
        if (ep->application) {
            sr_buf_adds(&b, ep->application);
            sr_buf_addc(&b, '_');
        }
        ep->audience_prefix_len = b.len;
        ep->audience_prefix = buf_take(&b);
    }
    sr_buf_free(&b, 0);
    if (!ep->origin || !ep->audience_base || !ep->client_base || !ep->server_base ||
        (application && !ep->application) || !ep->client_prefix || !ep->audience_prefix) {
        sr_endpoint_free(ep);
        return sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    }
    return 1;
}

static void add_lower(sr_buf *b, const char *hub, size_t n)
{
    if (!sr_buf_reserve(b, n)) return;
    for (size_t i = 0; i < n; i++) {
        char c = hub[i];
        b->data[b->len + i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    b->len += n;
    b->data[b->len] = '\0';
}

void sr_endpoint_add_hub(sr_buf *b, const sr_endpoint *ep, const char *hub, size_t n)
{
    if (ep->application) {
        sr_buf_adds(b, ep->application);
        sr_buf_addc(b, '_');
    }
    add_lower(b, hub, n);
}

void sr_endpoint_client_url(sr_buf *b, const sr_endpoint *ep, const char *hub, size_t n)
{
    sr_buf_add(b, ep->client_prefix, ep->client_prefix_len);
    add_lower(b, hub, n);
}

void sr_endpoint_client_audience(sr_buf *b, const sr_endpoint *ep, const char *hub, size_t n)
{
    sr_buf_add(b, ep->audience_prefix, ep->audience_prefix_len);
    add_lower(b, hub, n);
}

void sr_endpoint_access_key_url(sr_buf *b, const sr_endpoint *ep)
{
    sr_buf_adds(b, ep->server_base);
    sr_buf_adds(b, "/api/v1/auth/accessKey");
}
