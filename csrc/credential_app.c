/* credential_app.c: app registrations, the client credentials grant: a client secret, a
 * certificate (signed assertion), or a client assertion from a file (workload identity)
 * or a caller function. POST {authority}/{tenant}/oauth2/v2.0/token. */
#include "credential_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assertion.h"
#include "form.h"
#include "url.h"

#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
/* The federated token file rotates; Azure Identity re-reads it at most every 10 minutes. */
#define ASSERTION_FILE_TTL 600.0
#define ASSERTION_FILE_MAX (64 * 1024)
/* Token endpoint retries on transient failures (the Azure SDK pipeline's shape). */
#define TOKEN_ATTEMPTS 3
#define TOKEN_RETRY_BASE 0.8
#define TOKEN_RETRY_CAP 8.0

typedef enum app_mode { APP_SECRET, APP_CERT, APP_ASSERTION } app_mode;

typedef struct app_impl {
    app_mode mode;
    char *tenant, *client_id;
    char *authority;            /* scheme://host[:port][/path], no trailing slash */
    char *secret;               /* APP_SECRET */
    sr_client_cert *cert;       /* APP_CERT */
    char *file;                 /* APP_ASSERTION from a file (workload identity) */
    int callback_ref;           /* APP_ASSERTION from a function, or -1 */
    char *file_assertion;       /* the file's contents, re-read every 10 minutes */
    double file_read_at;
} app_impl;

static void app_free(void *p)
{
    app_impl *a = p;
    if (!a) return;
    free(a->tenant);
    free(a->client_id);
    free(a->authority);
    sr_secret_free(a->secret);
    sr_client_cert_free(a->cert);
    free(a->file);
    sr_secret_free(a->file_assertion);
    free(a);
}

/* ---- the acquisition -------------------------------------------------------------------- */

typedef enum app_phase { PH_START, PH_ASKED, PH_SENT, PH_RETRY } app_phase;

typedef struct app_acquire {
    sr_acquire a;
    sr_credential *c;           /* not retained: the token op holds the credential */
    app_impl *impl;
    char *tenant;
    app_phase phase;
    int attempt;
    char *assertion;            /* from the caller's function */
    int answered;
    sr_request req;
} app_acquire;

static const char *hint_for(const char *code)
{
    static const struct { const char *code, *hint; } hints[] = {
        { "AADSTS7000215", "the client secret is wrong: use the secret's value (not its ID) from the app registration" },
        { "AADSTS7000222", "the client secret has expired: create a new one in the app registration" },
        { "AADSTS700016", "the application was not found in this tenant: check the client id and tenant id; a "
                          "multitenant app must first be provisioned (admin consent) in the tenant it signs in to" },
        { "AADSTS90002", "the tenant was not found: check the tenant id and the authority host (sovereign clouds "
                         "have their own, e.g. login.microsoftonline.us, login.chinacloudapi.cn)" },
        { "AADSTS900023", "the tenant id must be a GUID or a verified domain name" },
        { "AADSTS700024", "the client assertion is expired or not yet valid: check the clock, and that the "
                          "federated token file is being refreshed" },
        { "AADSTS700027", "the certificate is not registered on the app registration, or the signature is invalid" },
        { "AADSTS70021", "no federated identity credential on the app matches the assertion's issuer, subject "
                         "and audience" },
        { "AADSTS50012", "the client assertion's audience must be the token endpoint" },
        { "AADSTS7000112", "the application is disabled" },
        { "AADSTS53003", "access was blocked by a Conditional Access policy" },
        { "AADSTS70011", "the scope is invalid: Azure SignalR Service takes https://signalr.azure.com/.default" },
        { "AADSTS500011", "the resource principal (Azure SignalR Service) was not found in the tenant" },
    };
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++)
        if (strcmp(code, hints[i].code) == 0) return hints[i].hint;
    return NULL;
}

static void token_url(sr_buf *b, const app_impl *impl, const char *tenant)
{
    sr_buf_adds(b, impl->authority);
    sr_buf_addc(b, '/');
    sr_url_add_escaped(b, tenant, strlen(tenant));
    sr_buf_adds(b, "/oauth2/v2.0/token");
}

/* Reads the federated token file when the cached copy is older than 10 minutes. */
static int file_assertion(app_acquire *q, double now, const char **out, sr_error *err)
{
    app_impl *impl = q->impl;
    if (impl->file_assertion && now - impl->file_read_at < ASSERTION_FILE_TTL && now >= impl->file_read_at) {
        *out = impl->file_assertion;
        return 1;
    }
    FILE *f = fopen(impl->file, "rb");
    if (!f)
        return sr_error_set(err, SR_E_CREDENTIAL_UNAVAILABLE, "%s: cannot read the token file %s: %s", q->c->name,
                            impl->file, strerror(errno));
    char *buf = malloc(ASSERTION_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, ASSERTION_FILE_MAX + 1, f) : 0;
    fclose(f);
    if (!buf) return sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    int ok = 1;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t')) n--;
    if (n > ASSERTION_FILE_MAX)
        ok = sr_error_set(err, SR_E_CREDENTIAL_UNAVAILABLE, "%s: the token file %s is larger than 64 KiB",
                          q->c->name, impl->file);
    else if (n == 0)
        ok = sr_error_set(err, SR_E_CREDENTIAL_UNAVAILABLE, "%s: the token file %s is empty", q->c->name,
                          impl->file);
    if (!ok) {
        sr_wipe(buf, ASSERTION_FILE_MAX + 1);
        free(buf);
        return 0;
    }
    buf[n] = '\0';
    sr_secret_free(impl->file_assertion);
    impl->file_assertion = buf;
    impl->file_read_at = now;
    *out = buf;
    return 1;
}

static int build_request(app_acquire *q, double now, sr_error *err)
{
    app_impl *impl = q->impl;
    sr_buf url, body;
    sr_buf_init(&url);
    sr_buf_init(&body);
    token_url(&url, impl, q->tenant);
    /* Reserve up front so the secret is never left behind in a buffer realloc frees. */
    sr_buf_reserve(&body, 16384);
    sr_form_adds(&body, "client_id", impl->client_id);
    sr_form_adds(&body, "scope", SR_SIGNALR_SCOPE);
    sr_form_adds(&body, "grant_type", "client_credentials");
    int ok = 1;
    const char *assertion = NULL;
    sr_buf signed_jwt;
    sr_buf_init(&signed_jwt);
    switch (impl->mode) {
    case APP_SECRET:
        sr_form_adds(&body, "client_secret", impl->secret);
        break;
    case APP_CERT:
        ok = sr_client_assertion_sign(impl->cert, impl->client_id, url.data, now, &signed_jwt, err);
        assertion = signed_jwt.data;
        break;
    case APP_ASSERTION:
        if (impl->callback_ref >= 0) assertion = q->assertion;
        else ok = file_assertion(q, now, &assertion, err);
        break;
    }
    if (ok && assertion) {
        sr_form_adds(&body, "client_assertion_type", ASSERTION_TYPE);
        sr_form_adds(&body, "client_assertion", assertion);
    }
    sr_buf_free(&signed_jwt, 1);
    if (ok && (url.oom || body.oom)) ok = sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    sr_request_free(&q->req);
    if (ok) ok = sr_request_init(&q->req, "POST", url.data, err);
    if (ok && (!sr_request_add_header(&q->req, "Content-Type", "application/x-www-form-urlencoded", 0) ||
               !sr_request_add_header(&q->req, "Accept", "application/json", 0) ||
               !sr_request_set_body(&q->req, body.data, body.len, 1)))
        ok = sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    sr_buf_free(&url, 0);
    sr_buf_free(&body, 1);
    return ok;
}

static sr_step_kind send(app_acquire *q, double now, sr_step *out)
{
    if (!build_request(q, now, &q->a.base.err)) return out->kind = SR_STEP_FAILED;
    q->attempt++;
    q->phase = PH_SENT;
    out->request = &q->req;
    return out->kind = SR_STEP_REQUEST;
}

static sr_step_kind retry_or_fail(app_acquire *q, const sr_response *resp, double now, sr_step *out)
{
    if (q->attempt < TOKEN_ATTEMPTS) {
        q->phase = PH_RETRY;
        out->seconds = sr_retry_delay(resp && resp->status ? resp : NULL, now, q->attempt, TOKEN_RETRY_BASE,
                                      TOKEN_RETRY_CAP);
        return out->kind = SR_STEP_SLEEP;
    }
    return out->kind = SR_STEP_FAILED;
}

static sr_step_kind on_response(app_acquire *q, double now, sr_response *resp, sr_step *out)
{
    sr_error *err = &q->a.base.err;
    if (!resp) {
        sr_error_set(err, SR_E_INTERNAL, "%s: stepped without a response", q->c->name);
        return out->kind = SR_STEP_FAILED;
    }
    if (resp->tx_error != SR_TX_OK) {
        char why[sizeof err->message];
        sr_tx_error_set(err, &q->req, resp);
        snprintf(why, sizeof why, "%s", err->message);
        sr_error_set(err, err->kind, "%s: %s", q->c->name, why);
        return retry_or_fail(q, resp, now, out);
    }
    if (resp->status == 200) {
        return out->kind = sr_token_parse(&resp->body, "access_token", now, &q->a.token, q->c->name, err)
                               ? SR_STEP_DONE
                               : SR_STEP_FAILED;
    }
    const char *secret = q->impl->mode == APP_SECRET ? q->impl->secret : NULL;
    sr_credential_http_error(err, q->c->name, &q->req, resp, secret, now);
    if (sr_status_transient(resp->status)) return retry_or_fail(q, resp, now, out);
    const char *hint = err->code[0] ? hint_for(err->code) : NULL;
    if (hint) sr_error_hint(err, "%s", hint);
    else if (resp->status == 401 || resp->status == 400)
        sr_error_hint(err, "check the tenant id, client id and credential of %s", sr_credential_describe(q->c));
    return out->kind = SR_STEP_FAILED;
}

static sr_step_kind app_step(sr_op *op, double now, sr_response *resp, sr_step *out)
{
    app_acquire *q = (app_acquire *)op;
    switch (q->phase) {
    case PH_START:
        if (q->impl->mode == APP_ASSERTION && q->impl->callback_ref >= 0) {
            q->phase = PH_ASKED;
            out->callback = q->impl->callback_ref;
            return out->kind = SR_STEP_CALLBACK;
        }
        return send(q, now, out);
    case PH_ASKED:
        if (!q->answered && op->err.kind == SR_OK)
            sr_error_set(&op->err, SR_E_INTERNAL, "%s: the assertion function was not called", q->c->name);
        if (op->err.kind != SR_OK) return out->kind = SR_STEP_FAILED;
        return send(q, now, out);
    case PH_SENT:
        return on_response(q, now, resp, out);
    case PH_RETRY:
        sr_error_clear(&op->err);
        return send(q, now, out);
    }
    return out->kind = SR_STEP_FAILED;
}

static void app_feed(sr_op *op, const char *v, size_t n, const char *error)
{
    app_acquire *q = (app_acquire *)op;
    q->answered = 1;
    if (!v) {
        sr_error_set(&op->err, SR_E_CREDENTIAL_UNAVAILABLE, "%s: the assertion function failed: %s", q->c->name,
                     error ? error : "no reason given");
        return;
    }
    if (n == 0) {
        sr_error_set(&op->err, SR_E_CREDENTIAL_UNAVAILABLE, "%s: the assertion function returned an empty string",
                     q->c->name);
        return;
    }
    sr_secret_free(q->assertion);
    if (!(q->assertion = malloc(n + 1))) {
        sr_error_set(&op->err, SR_E_NO_MEMORY, "out of memory");
        return;
    }
    memcpy(q->assertion, v, n);
    q->assertion[n] = '\0';
}

static void app_destroy(sr_op *op)
{
    app_acquire *q = (app_acquire *)op;
    sr_request_free(&q->req);
    sr_secret_free(q->assertion);
    free(q->tenant);
    sr_acquire_destroy_base(&q->a);
    free(q);
}

static const sr_op_type app_acquire_type = { "entra_client_credentials", app_step, app_feed, app_destroy };

static sr_op *app_acquire_new(sr_credential *c, const sr_acquire_ctx *ctx, sr_error *err)
{
    app_impl *impl = c->impl;
    app_acquire *q = (app_acquire *)sr_acquire_alloc(sizeof *q, &app_acquire_type, err);
    if (!q) return NULL;
    q->c = c;
    q->impl = impl;
    if (!(q->tenant = strdup(ctx->tenant ? ctx->tenant : impl->tenant))) {
        free(q);
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    return &q->a.base;
}

/* ---- construction ----------------------------------------------------------------------- */

static const sr_credential_vt secret_vt = { SR_CRED_CLIENT_SECRET, "ClientSecretCredential", app_acquire_new, app_free, 0 };
static const sr_credential_vt cert_vt = { SR_CRED_CERTIFICATE, "ClientCertificateCredential", app_acquire_new, app_free, 0 };
static const sr_credential_vt assertion_vt = { SR_CRED_CLIENT_ASSERTION, "ClientAssertionCredential", app_acquire_new,
                                               app_free, 0 };
static const sr_credential_vt workload_vt = { SR_CRED_WORKLOAD_IDENTITY, "WorkloadIdentityCredential", app_acquire_new,
                                              app_free, 0 };

/* Tenant ids are GUIDs or domain names: they go into the URL path, so nothing else. */
static int tenant_ok(const char *t)
{
    if (!t || !*t || strlen(t) > 256) return 0;
    for (const char *p = t; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '.' || *p == '_'))
            return 0;
    return strcmp(t, ".") && strcmp(t, "..");
}

static int client_id_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 256) return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x21 || *p == 0x7f) return 0;
    return 1;
}

static int authority_from(const char *host, char **out, sr_error *err)
{
    const char *h = host && *host ? host : SR_DEFAULT_AUTHORITY;
    sr_url u;
    if (!sr_url_parse(h, strlen(h), &u, "authority host", err)) return 0;
    int ok = 1;
    if (strcmp(u.scheme, "https") != 0)
        ok = sr_error_set(err, SR_E_INVALID_ARGUMENT,
                          "the authority host must be an https URL (Microsoft Entra ID is never reached over http)");
    sr_buf b;
    sr_buf_init(&b);
    sr_url_add_origin(&b, &u);
    sr_buf_adds(&b, u.path);
    if (ok && !(*out = strdup(b.data))) ok = sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    sr_buf_free(&b, 0);
    sr_url_free(&u);
    return ok;
}

static app_impl *impl_new(const sr_app_config *app, app_mode mode, sr_error *err)
{
    if (!tenant_ok(app->tenant_id)) {
        sr_error_set(err, SR_E_INVALID_ARGUMENT,
                     "tenant_id must be a tenant GUID or domain name (letters, digits, '-', '.', '_')");
        return NULL;
    }
    if (!client_id_ok(app->client_id)) {
        sr_error_set(err, SR_E_INVALID_ARGUMENT, "client_id must be a non-empty id without spaces");
        return NULL;
    }
    app_impl *a = calloc(1, sizeof *a);
    if (!a) {
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    a->mode = mode;
    a->callback_ref = -1;
    if (!authority_from(app->authority_host, &a->authority, err)) {
        app_free(a);
        return NULL;
    }
    if (!(a->tenant = strdup(app->tenant_id)) || !(a->client_id = strdup(app->client_id))) {
        app_free(a);
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    return a;
}

static sr_credential *finish(const sr_credential_vt *vt, app_impl *a, const sr_app_config *app, const char *extra,
                             sr_error *err)
{
    sr_credential *c = sr_credential_alloc(vt, a, a->tenant, err);
    if (!c) return NULL;
    if (app->name && !sr_credential_set_name(c, app->name)) {
        sr_credential_release(c);
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    sr_credential_set_description(c, "%s (tenant %s, client %s%s%s, authority %s)", c->name, a->tenant,
                                  a->client_id, extra ? ", " : "", extra ? extra : "", a->authority);
    return c;
}

sr_credential *sr_credential_client_secret_new(const sr_app_config *app, const char *secret, size_t len,
                                               sr_error *err)
{
    if (!secret || len == 0 || memchr(secret, '\0', len)) {
        sr_error_set(err, SR_E_INVALID_ARGUMENT, "client_secret must be a non-empty string");
        return NULL;
    }
    app_impl *a = impl_new(app, APP_SECRET, err);
    if (!a) return NULL;
    if (!(a->secret = malloc(len + 1))) {
        app_free(a);
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    memcpy(a->secret, secret, len);
    a->secret[len] = '\0';
    return finish(&secret_vt, a, app, NULL, err);
}

sr_credential *sr_credential_certificate_new(const sr_app_config *app, sr_client_cert *cert, sr_error *err)
{
    app_impl *a = impl_new(app, APP_CERT, err);
    if (!a) {
        sr_client_cert_free(cert);
        return NULL;
    }
    a->cert = cert;
    char extra[64];
    snprintf(extra, sizeof extra, "certificate %s", sr_client_cert_thumbprint(cert));
    return finish(&cert_vt, a, app, extra, err);
}

sr_credential *sr_credential_client_assertion_new(const sr_app_config *app, const char *file, int callback_ref,
                                                  int workload, sr_error *err)
{
    if ((file == NULL) == (callback_ref < 0)) {
        sr_error_set(err, SR_E_INVALID_ARGUMENT, "give the assertion as a function or a token file, not both");
        return NULL;
    }
    app_impl *a = impl_new(app, APP_ASSERTION, err);
    if (!a) return NULL;
    a->callback_ref = callback_ref;
    if (file && !(a->file = strdup(file))) {
        app_free(a);
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    sr_buf extra;
    sr_buf_init(&extra);
    if (file) sr_buf_addf(&extra, "token file %s", file);
    else sr_buf_adds(&extra, "assertion function");
    sr_credential *c = finish(workload ? &workload_vt : &assertion_vt, a, app, extra.data, err);
    sr_buf_free(&extra, 0);
    return c;
}
