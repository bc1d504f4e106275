/* connstr.c: connection-string parsing, following the rules of the official SDK:
 * ';'-separated key=value parts, keys case-insensitive, values trimmed, duplicates rejected. */
#include "connstr.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum field {
    F_ENDPOINT, F_ACCESSKEY, F_VERSION, F_PORT, F_CLIENTENDPOINT, F_SERVERENDPOINT,
    F_AUTHTYPE, F_CLIENTID, F_TENANTID, F_CLIENTSECRET, F_CLIENTCERT, F_COUNT
};

/* Names as the portal spells them; matched case-insensitively. */
static const char *const field_names[F_COUNT] = {
    "Endpoint", "AccessKey", "Version", "Port", "ClientEndpoint", "ServerEndpoint",
    "AuthType", "ClientId", "TenantId", "ClientSecret", "ClientCert",
};

typedef struct span { const char *p; size_t n; int set; } span;

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

static void trim(const char **p, size_t *n)
{
    while (*n && is_space(**p)) (*p)++, (*n)--;
    while (*n && is_space((*p)[*n - 1])) (*n)--;
}

static char *span_dup(span s)
{
    char *p = malloc(s.n + 1);
    if (p) {
        memcpy(p, s.p, s.n);
        p[s.n] = '\0';
    }
    return p;
}

static void free_secret(char **p)
{
    if (*p) {
        sr_wipe(*p, strlen(*p));
        free(*p);
        *p = NULL;
    }
}

void sr_connstr_free(sr_connstr *cs)
{
    sr_url_free(&cs->endpoint);
    sr_url_free(&cs->client_endpoint);
    sr_url_free(&cs->server_endpoint);
    free_secret(&cs->access_key);
    free_secret(&cs->client_secret);
    free(cs->version);
    free(cs->client_id);
    free(cs->tenant_id);
    free(cs->client_cert);
    cs->version = cs->client_id = cs->tenant_id = cs->client_cert = NULL;
}

const char *sr_auth_type_name(sr_auth_type t)
{
    switch (t) {
    case SR_AUTH_AZURE: return "azure";
    case SR_AUTH_AZURE_MSI: return "azure.msi";
    case SR_AUTH_AZURE_APP: return "azure.app";
    case SR_AUTH_AAD: return "aad";
    default: return "accesskey";
    }
}

/* Version must look like 1.x: "1." then digits, then optionally [A-Za-z0-9_.-]+. */
static int version_ok(span v)
{
    if (v.n < 3 || v.p[0] != '1' || v.p[1] != '.') return 0;
    size_t i = 2;
    if (v.p[i] < '0' || v.p[i] > '9') return 0;
    while (i < v.n && v.p[i] >= '0' && v.p[i] <= '9') i++;
    for (; i < v.n; i++) {
        char c = v.p[i];
        int word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        if (!word && c != '-' && c != '.') return 0;
    }
    return 1;
}

static int parse_port(span v, int *port)
{
    long p = 0;
    if (v.n == 0 || v.n > 5) return 0;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9') return 0;
        p = p * 10 + (v.p[i] - '0');
    }
    if (p < 1 || p > 65535) return 0;
    *port = (int)p;
    return 1;
}

static int parse_auth_type(span v, sr_auth_type *t)
{
    static const struct { const char *name; sr_auth_type type; } types[] = {
        { "azure", SR_AUTH_AZURE }, { "azure.msi", SR_AUTH_AZURE_MSI },
        { "azure.app", SR_AUTH_AZURE_APP }, { "aad", SR_AUTH_AAD },
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (strlen(types[i].name) == v.n && strncasecmp(types[i].name, v.p, v.n) == 0) {
            *t = types[i].type;
            return 1;
        }
    }
    return 0;
}

static int split(const char *s, size_t n, span fields[F_COUNT], sr_error *err)
{
    const char *end = s + n;
    while (s < end) {
        const char *semi = memchr(s, ';', (size_t)(end - s));
        const char *part_end = semi ? semi : end;
        const char *eq = memchr(s, '=', (size_t)(part_end - s));
        if (eq) { /* a part without '=' is ignored, as the official SDK does */
            const char *k = s, *v = eq + 1;
            size_t kn = (size_t)(eq - s), vn = (size_t)(part_end - v);
            trim(&k, &kn);
            trim(&v, &vn);
            for (int f = 0; f < F_COUNT; f++) {
                if (strlen(field_names[f]) != kn || strncasecmp(field_names[f], k, kn) != 0) continue;
                if (fields[f].set)
                    return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                                        "duplicate properties found in connection string: %s", field_names[f]);
                fields[f] = (span){ v, vn, 1 };
            }
            /* Unknown keys are ignored, as the official SDK does: newer portals add keys. */
        }
        s = part_end + (semi ? 1 : 0);
    }
    return 1;
}

static int parse_url_field(span v, sr_url *u, const char *what, sr_error *err)
{
    if (v.n == 0)
        return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                            "invalid value for %s in connection string: it is empty", what);
    if (!sr_url_parse(v.p, v.n, u, what, err)) {
        char why[sizeof err->message];
        memcpy(why, err->message, sizeof why);
        return sr_error_set(err, SR_E_INVALID_ARGUMENT, "connection string: %s", why);
    }
    return 1;
}

static int require(span *fields, int f, const char *auth, sr_error *err)
{
    if (fields[f].set && fields[f].n) return 1;
    return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                        "connection string missing required property %s (needed by AuthType=%s)",
                        field_names[f], auth);
}

static int check_app_secret(span *fields, sr_connstr *cs, sr_error *err)
{
    if (!(fields[F_CLIENTSECRET].set && fields[F_CLIENTSECRET].n) &&
        !(fields[F_CLIENTCERT].set && fields[F_CLIENTCERT].n))
        return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                            "connection string missing required property ClientSecret or ClientCert "
                            "(needed by AuthType=%s with a ClientId and TenantId)",
                            sr_auth_type_name(cs->auth_type));
    return 1;
}

static int check_credentials(span *fields, sr_connstr *cs, sr_error *err)
{
    switch (cs->auth_type) {
    case SR_AUTH_ACCESS_KEY:
        if (!fields[F_ACCESSKEY].set || fields[F_ACCESSKEY].n == 0)
            return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                                "connection string missing required property AccessKey "
                                "(or give an AuthType such as azure, azure.msi or azure.app for Microsoft Entra ID)");
        return 1;
    case SR_AUTH_AZURE_APP:
        if (!require(fields, F_CLIENTID, "azure.app", err) || !require(fields, F_TENANTID, "azure.app", err))
            return 0;
        return check_app_secret(fields, cs, err);
    case SR_AUTH_AAD:
        /* aad without both ClientId and TenantId means managed identity */
        if (!(fields[F_CLIENTID].n && fields[F_TENANTID].n)) return 1;
        return check_app_secret(fields, cs, err);
    default:
        return 1;
    }
}

static int take_strings(span *fields, sr_connstr *cs, sr_error *err)
{
    struct { int f; char **dst; } strs[] = {
        { F_ACCESSKEY, &cs->access_key }, { F_VERSION, &cs->version },
        { F_CLIENTID, &cs->client_id }, { F_TENANTID, &cs->tenant_id },
        { F_CLIENTSECRET, &cs->client_secret }, { F_CLIENTCERT, &cs->client_cert },
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (!fields[strs[i].f].set || fields[strs[i].f].n == 0) continue;
        *strs[i].dst = span_dup(fields[strs[i].f]);
        if (!*strs[i].dst) return sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    }
    return 1;
}

int sr_connstr_parse(const char *s, size_t n, sr_connstr *cs, sr_error *err)
{
    span fields[F_COUNT];
    memset(fields, 0, sizeof fields);
    memset(cs, 0, sizeof *cs);
    if (!split(s, n, fields, err)) return 0;
    if (!fields[F_ENDPOINT].set || fields[F_ENDPOINT].n == 0)
        return sr_error_set(err, SR_E_INVALID_ARGUMENT, "connection string missing required property Endpoint");
    if (!parse_url_field(fields[F_ENDPOINT], &cs->endpoint, "Endpoint", err)) goto fail;
    /* The service endpoint is scheme://host[:port]; a path on it is dropped. */
    cs->endpoint.path[0] = '\0';
    if (fields[F_PORT].set) {
        int port;
        if (!parse_port(fields[F_PORT], &port)) {
            sr_error_set(err, SR_E_INVALID_ARGUMENT,
                         "invalid value for Port in connection string: it must be a whole number from 1 to 65535");
            goto fail;
        }
        cs->endpoint.port = port;
        cs->endpoint.port_explicit = 1;
    }
    if (fields[F_VERSION].set && !version_ok(fields[F_VERSION])) {
        sr_error_set(err, SR_E_INVALID_ARGUMENT,
                     "invalid value for Version in connection string: only service version 1.x is supported (e.g. Version=1.0)");
        goto fail;
    }
    if (fields[F_CLIENTENDPOINT].set) {
        if (!parse_url_field(fields[F_CLIENTENDPOINT], &cs->client_endpoint, "ClientEndpoint", err)) goto fail;
        cs->has_client_endpoint = 1;
    }
    if (fields[F_SERVERENDPOINT].set) {
        if (!parse_url_field(fields[F_SERVERENDPOINT], &cs->server_endpoint, "ServerEndpoint", err)) goto fail;
        cs->has_server_endpoint = 1;
    }
    cs->auth_type = SR_AUTH_ACCESS_KEY;
    if (fields[F_AUTHTYPE].set && !parse_auth_type(fields[F_AUTHTYPE], &cs->auth_type)) {
        sr_error_set(err, SR_E_INVALID_ARGUMENT,
                     "invalid value for AuthType in connection string: use azure, azure.msi, azure.app or aad "
                     "(or leave it out and give an AccessKey)");
        goto fail;
    }
    if (!check_credentials(fields, cs, err) || !take_strings(fields, cs, err)) goto fail;
    return 1;
fail:
    sr_connstr_free(cs);
    return 0;
}
