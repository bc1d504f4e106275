/* credential_mi.c: managed identity: IMDS, App Service (2019 and 2017), Cloud Shell and
 * Azure Arc endpoints, with the retry policy MSAL uses for them (404/408/429/5xx backoff
 * 1-2-4 s honouring Retry-After; IMDS 410 "updating" retried every 10 s for 70 s). */
#include "credential_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "form.h"
#include "url.h"

#define IMDS_HOST "http://169.254.169.254"
#define IMDS_PATH "/metadata/identity/oauth2/token"
#define IMDS_API "2018-02-01"
#define APP_SERVICE_API "2019-08-01"
#define APP_SERVICE_2017_API "2017-09-01"
#define ARC_API "2019-11-01"
#define ARC_DEFAULT_ENDPOINT "http://127.0.0.1:40342/metadata/identity/oauth2/token"
#define ARC_AGENT "/opt/azcmagent/bin/himds"
#define ARC_KEY_DIR "/var/opt/azcmagent/tokens"
#define ARC_KEY_MAX 4096

#define MI_RETRIES 3            /* after the first attempt */
#define MI_RETRY_BASE 1.0
#define MI_RETRY_CAP 4.0
#define IMDS_GONE_INTERVAL 10.0 /* 410: IMDS is being updated */
#define IMDS_GONE_PATIENCE 70.0
#define IMDS_PROBE_TIMEOUT 1.0
#define IMDS_CONNECT_TIMEOUT 2.0

typedef enum mi_source { MI_IMDS, MI_APP_SERVICE, MI_APP_SERVICE_2017, MI_CLOUD_SHELL, MI_ARC } mi_source;

static const char *const source_names[] = { "IMDS", "App Service", "App Service (2017)", "Cloud Shell", "Azure Arc" };

typedef struct mi_impl {
    mi_source source;
    sr_mi_id_kind id_kind;
    char *id;
    char *endpoint;             /* the full token URL, without query */
    char *secret;               /* IDENTITY_HEADER or MSI_SECRET */
    char *arc_key_dir;
    char label[64];             /* "ManagedIdentityCredential (IMDS)" */
    int probed;                 /* IMDS answered once: no more 1 s probes */
} mi_impl;

static void mi_free(void *p)
{
    mi_impl *m = p;
    if (!m) return;
    free(m->id);
    free(m->endpoint);
    sr_secret_free(m->secret);
    free(m->arc_key_dir);
    free(m);
}

/* ---- requests --------------------------------------------------------------------------- */

/* The user-assigned selector's parameter name for this source. */
static const char *id_param(const mi_impl *m)
{
    static const char *const imds[] = { NULL, "client_id", "object_id", "msi_res_id" };
    static const char *const app[] = { NULL, "client_id", "principal_id", "mi_res_id" };
    if (m->id_kind == SR_MI_SYSTEM) return NULL;
    switch (m->source) {
    case MI_IMDS: return imds[m->id_kind];
    case MI_APP_SERVICE: return app[m->id_kind];
    case MI_APP_SERVICE_2017: return m->id_kind == SR_MI_CLIENT_ID ? "clientid" : NULL;
    default: return NULL;
    }
}

static int build_request(sr_request *req, const mi_impl *m, const char *arc_key, int probe, sr_error *err)
{
    static const char *const apis[] = { IMDS_API, APP_SERVICE_API, APP_SERVICE_2017_API, NULL, ARC_API };
    sr_buf url;
    sr_buf_init(&url);
    sr_buf_adds(&url, m->endpoint);
    if (m->source != MI_CLOUD_SHELL) {
        sr_buf_addc(&url, strchr(m->endpoint, '?') ? '&' : '?');
        sr_buf_addf(&url, "api-version=%s&resource=", apis[m->source]);
        sr_url_add_escaped(&url, SR_SIGNALR_RESOURCE, strlen(SR_SIGNALR_RESOURCE));
        const char *p = id_param(m);
        if (p) {
            sr_buf_addf(&url, "&%s=", p);
            sr_url_add_escaped(&url, m->id, strlen(m->id));
        }
    }
    sr_request_free(req);
    int ok = !url.oom && sr_request_init(req, m->source == MI_CLOUD_SHELL ? "POST" : "GET", url.data, err);
    sr_buf_free(&url, 0);
    if (!ok) return url.oom ? sr_error_set(err, SR_E_NO_MEMORY, "out of memory") : 0;
    int hdr = 1;
    switch (m->source) {
    case MI_IMDS:
    case MI_CLOUD_SHELL:
    case MI_ARC:
        hdr = sr_request_add_header(req, "Metadata", "true", 0);
        break;
    case MI_APP_SERVICE:
        hdr = sr_request_add_header(req, "X-IDENTITY-HEADER", m->secret, 1);
        break;
    case MI_APP_SERVICE_2017:
        hdr = sr_request_add_header(req, "secret", m->secret, 1);
        break;
    }
    if (hdr && arc_key) {
        sr_buf auth;
        sr_buf_init(&auth);
        sr_buf_reserve(&auth, strlen(arc_key) + 16);
        sr_buf_adds(&auth, "Basic ");
        sr_buf_adds(&auth, arc_key);
        hdr = !auth.oom && sr_request_add_header(req, "Authorization", auth.data, 1);
        sr_buf_free(&auth, 1);
    }
    if (hdr && m->source == MI_CLOUD_SHELL) {
        sr_buf body;
        sr_buf_init(&body);
        sr_form_adds(&body, "resource", SR_SIGNALR_RESOURCE);
        hdr = sr_request_add_header(req, "Content-Type", "application/x-www-form-urlencoded", 0) &&
              sr_request_set_body(req, body.data, body.len, 0);
        sr_buf_free(&body, 0);
    }
    if (!hdr) return sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    if (m->source == MI_IMDS) {
        req->connect_timeout = probe ? IMDS_PROBE_TIMEOUT : IMDS_CONNECT_TIMEOUT;
        if (probe) req->timeout = IMDS_PROBE_TIMEOUT;
    }
    return 1;
}

/* Azure Arc: the challenge names a key file, which must be a .key file directly in the
 * agent's token directory and at most 4 KiB (what MSAL checks before trusting it). */
static int read_arc_key(const mi_impl *m, const sr_response *resp, char **key, sr_error *err)
{
    const char *h = sr_response_header(resp, "www-authenticate");
    const char *realm = h ? strstr(h, "Basic realm=") : NULL;
    if (!realm)
        return sr_error_set(err, SR_E_AUTHENTICATION_FAILED,
                            "%s: the 401 answer has no WWW-Authenticate: Basic realm=<key file> challenge", m->label);
    const char *path = realm + strlen("Basic realm=");
    const char *base = strrchr(path, '/');
    size_t dirlen = strlen(m->arc_key_dir);
    if (!base || (size_t)(base - path) != dirlen || strncmp(path, m->arc_key_dir, dirlen) != 0 ||
        strlen(base) < 6 || strcmp(base + strlen(base) - 4, ".key") != 0 || strstr(base, ".."))
        return sr_error_set(err, SR_E_AUTHENTICATION_FAILED,
                            "%s: the challenge names a key file outside %s or not ending in .key", m->label,
                            m->arc_key_dir);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return sr_error_set(err, SR_E_AUTHENTICATION_FAILED, "%s: cannot read the key file %s: %s", m->label, path,
                            strerror(errno));
    if (st.st_size > ARC_KEY_MAX)
        return sr_error_set(err, SR_E_AUTHENTICATION_FAILED, "%s: the key file %s is larger than 4 KiB", m->label,
                            path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return sr_error_set(err, SR_E_AUTHENTICATION_FAILED, "%s: cannot read the key file %s: %s", m->label, path,
                            strerror(errno));
    char *buf = calloc(1, ARC_KEY_MAX + 1);
    size_t n = buf ? fread(buf, 1, ARC_KEY_MAX, f) : 0;
    fclose(f);
    if (!buf) return sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = '\0';
    sr_secret_free(*key);
    *key = buf;
    return 1;
}

/* ---- the acquisition ----------------------------------------------------------------------- */

typedef enum mi_phase { MP_START, MP_SENT, MP_SLEEPING } mi_phase;

typedef struct mi_acquire {
    sr_acquire a;
    sr_credential *c;
    mi_impl *m;
    sr_request req;
    mi_phase phase;
    int in_chain;
    int probing;                /* this attempt is the chain's 1 s IMDS probe */
    int retries;
    double first_at;
    char *arc_key;
} mi_acquire;

static sr_step_kind send(mi_acquire *q, sr_step *out)
{
    if (!build_request(&q->req, q->m, q->arc_key, q->probing, &q->a.base.err)) return out->kind = SR_STEP_FAILED;
    q->phase = MP_SENT;
    out->request = &q->req;
    return out->kind = SR_STEP_REQUEST;
}

static sr_step_kind sleep_then_retry(mi_acquire *q, double seconds, sr_step *out)
{
    q->phase = MP_SLEEPING;
    out->seconds = seconds;
    return out->kind = SR_STEP_SLEEP;
}

static sr_step_kind fail(mi_acquire *q, sr_kind kind, const char *hint, sr_step *out)
{
    if (kind != SR_OK) q->a.base.err.kind = kind;
    if (hint) sr_error_hint(&q->a.base.err, "%s", hint);
    return out->kind = SR_STEP_FAILED;
}

static sr_step_kind on_tx_error(mi_acquire *q, sr_response *resp, double now, sr_step *out)
{
    sr_error *err = &q->a.base.err;
    char why[sizeof err->message];
    sr_tx_error_set(err, &q->req, resp);
    snprintf(why, sizeof why, "%s", err->message);
    if (q->probing) {
        sr_error_set(err, SR_E_CREDENTIAL_UNAVAILABLE, "%s: no answer within %.0f s (%s)", q->m->label,
                     IMDS_PROBE_TIMEOUT, why);
        return fail(q, SR_OK, "no managed identity endpoint here (not running on Azure?)", out);
    }
    sr_error_set(err, err->kind, "%s: %s", q->m->label, why);
    if (q->retries < MI_RETRIES) {
        q->retries++;
        return sleep_then_retry(q, sr_retry_delay(NULL, now, q->retries, MI_RETRY_BASE, MI_RETRY_CAP), out);
    }
    return fail(q, q->in_chain ? SR_E_CREDENTIAL_UNAVAILABLE : SR_OK,
                "the managed identity endpoint did not answer: is this running on Azure with an identity?", out);
}

static int retryable(int status) { return status == 404 || status == 408 || status == 429 || status >= 500; }

static sr_step_kind on_response(mi_acquire *q, double now, sr_response *resp, sr_step *out)
{
    sr_error *err = &q->a.base.err;
    if (!resp) {
        sr_error_set(err, SR_E_INTERNAL, "%s: stepped without a response", q->m->label);
        return out->kind = SR_STEP_FAILED;
    }
    if (resp->tx_error != SR_TX_OK) return on_tx_error(q, resp, now, out);
    int was_probe = q->probing;
    if (q->probing) {
        q->m->probed = 1;
        q->probing = 0;
    }
    if (resp->status == 200) {
        sr_error_clear(err);
        if (!sr_token_parse(&resp->body, "access_token", now, &q->a.token, q->m->label, err))
            return out->kind = SR_STEP_FAILED;
        return out->kind = SR_STEP_DONE;
    }
    if (q->m->source == MI_ARC && resp->status == 401 && !q->arc_key) {
        if (!read_arc_key(q->m, resp, &q->arc_key, err)) return out->kind = SR_STEP_FAILED;
        return send(q, out);
    }
    sr_credential_http_error(err, q->m->label, &q->req, resp, q->m->secret, now);
    if (q->m->source == MI_IMDS && resp->status == 410 && now - q->first_at < IMDS_GONE_PATIENCE)
        return sleep_then_retry(q, IMDS_GONE_INTERVAL, out);
    if (retryable(resp->status) && !was_probe && q->retries < MI_RETRIES) {
        q->retries++;
        double d = sr_retry_delay(resp, now, q->retries, MI_RETRY_BASE, MI_RETRY_CAP);
        return sleep_then_retry(q, d > 60 ? 60 : d, out);
    }
    if (resp->status == 400 && (q->m->source == MI_IMDS || q->m->source == MI_ARC))
        return fail(q, SR_E_CREDENTIAL_UNAVAILABLE,
                    q->m->id_kind == SR_MI_SYSTEM
                        ? "no system-assigned managed identity is enabled on this resource"
                        : "no managed identity with this id is assigned to this resource",
                    out);
    if (resp->status == 404 && was_probe) return fail(q, SR_E_CREDENTIAL_UNAVAILABLE, NULL, out);
    return fail(q, SR_OK,
                resp->status == 401 || resp->status == 403 ? "the identity endpoint refused the request's secret "
                                                             "header: check IDENTITY_HEADER / MSI_SECRET"
                                                           : NULL,
                out);
}

static sr_step_kind mi_step(sr_op *op, double now, sr_response *resp, sr_step *out)
{
    mi_acquire *q = (mi_acquire *)op;
    switch (q->phase) {
    case MP_START:
        q->first_at = now;
        q->probing = q->in_chain && q->m->source == MI_IMDS && !q->m->probed;
        return send(q, out);
    case MP_SENT:
        return on_response(q, now, resp, out);
    case MP_SLEEPING:
        sr_secret_free(q->arc_key); /* a new challenge, a new key */
        q->arc_key = NULL;
        return send(q, out);
    }
    return out->kind = SR_STEP_FAILED;
}

static void mi_feed(sr_op *op, const char *v, size_t n, const char *error)
{
    (void)op, (void)v, (void)n, (void)error;
}

static void mi_destroy(sr_op *op)
{
    mi_acquire *q = (mi_acquire *)op;
    sr_request_free(&q->req);
    sr_secret_free(q->arc_key);
    sr_acquire_destroy_base(&q->a);
    free(q);
}

static const sr_op_type mi_acquire_type = { "managed_identity", mi_step, mi_feed, mi_destroy };

static sr_op *mi_acquire_new(sr_credential *c, const sr_acquire_ctx *ctx, sr_error *err)
{
    mi_acquire *q = (mi_acquire *)sr_acquire_alloc(sizeof *q, &mi_acquire_type, err);
    if (!q) return NULL;
    q->c = c;
    q->m = c->impl;
    q->in_chain = ctx->in_chain;
    return &q->a.base;
}

static const sr_credential_vt mi_vt = { SR_CRED_MANAGED_IDENTITY, "ManagedIdentityCredential", mi_acquire_new, mi_free, 1 };

/* ---- detection ------------------------------------------------------------------------------ */

static const char *id_kind_name(sr_mi_id_kind k)
{
    static const char *const names[] = { "system-assigned", "client id", "object id", "resource id" };
    return names[k];
}

static sr_credential *unsupported(const char *reason, sr_error *err)
{
    sr_error_set(err, SR_E_CREDENTIAL_UNAVAILABLE, "ManagedIdentityCredential: %s", reason);
    return NULL;
}

static int http_url_ok(const char *s, const char *var, sr_error *err)
{
    sr_url u;
    if (!sr_url_parse(s, strlen(s), &u, var, err)) {
        /* Endpoints carry a path and sometimes a query: accept what parses up to '?'. */
        const char *q = strchr(s, '?');
        sr_error e2;
        sr_error_clear(&e2);
        if (!q || !sr_url_parse(s, (size_t)(q - s), &u, var, &e2)) return 0;
        sr_error_clear(err);
    }
    sr_url_free(&u);
    return 1;
}

sr_credential *sr_credential_managed_identity_new(const sr_mi_options *o, sr_env_fn env, void *env_ud,
                                                  sr_error *err)
{
    const char *identity_endpoint = env(env_ud, "IDENTITY_ENDPOINT");
    const char *identity_header = env(env_ud, "IDENTITY_HEADER");
    const char *imds_endpoint = env(env_ud, "IMDS_ENDPOINT");
    const char *msi_endpoint = env(env_ud, "MSI_ENDPOINT");
    const char *msi_secret = env(env_ud, "MSI_SECRET");
    const char *token_file = env(env_ud, "AZURE_FEDERATED_TOKEN_FILE");
    const char *tenant = env(env_ud, "AZURE_TENANT_ID");
    const char *env_client = env(env_ud, "AZURE_CLIENT_ID");
    if (o->id_kind != SR_MI_SYSTEM && (!o->id || !*o->id)) {
        sr_error_set(err, SR_E_INVALID_ARGUMENT, "ManagedIdentityCredential: the %s is empty", id_kind_name(o->id_kind));
        return NULL;
    }
    mi_impl *m = calloc(1, sizeof *m);
    if (!m) {
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    m->id_kind = o->id_kind;
    const char *endpoint = NULL, *secret = NULL;
    sr_buf imds;
    sr_buf_init(&imds);
    if (identity_endpoint && identity_header) {
        if (env(env_ud, "IDENTITY_SERVER_THUMBPRINT")) {
            mi_free(m);
            return unsupported("Service Fabric managed identity is not supported (it needs the endpoint's "
                               "certificate pinned by thumbprint)", err);
        }
        m->source = MI_APP_SERVICE;
        endpoint = identity_endpoint;
        secret = identity_header;
    } else if ((identity_endpoint && imds_endpoint) || (!identity_endpoint && access(ARC_AGENT, R_OK) == 0)) {
        m->source = MI_ARC;
        endpoint = identity_endpoint ? identity_endpoint : ARC_DEFAULT_ENDPOINT;
    } else if (msi_endpoint) {
        m->source = msi_secret ? MI_APP_SERVICE_2017 : MI_CLOUD_SHELL;
        endpoint = msi_endpoint;
        secret = msi_secret;
    } else if (token_file && tenant && (env_client || o->id_kind == SR_MI_CLIENT_ID)) {
        mi_free(m);
        if (o->id_kind == SR_MI_OBJECT_ID || o->id_kind == SR_MI_RESOURCE_ID)
            return unsupported("workload identity selects the identity by client id only", err);
        sr_app_config app = { .tenant_id = tenant, .client_id = o->id_kind == SR_MI_CLIENT_ID ? o->id : env_client,
                              .authority_host = o->authority_host, .name = "ManagedIdentityCredential" };
        return sr_credential_client_assertion_new(&app, token_file, -1, 1, err);
    } else {
        m->source = MI_IMDS;
        const char *host = env(env_ud, "AZURE_POD_IDENTITY_AUTHORITY_HOST");
        sr_buf_adds(&imds, host ? host : IMDS_HOST);
        while (imds.len && imds.data[imds.len - 1] == '/') imds.data[--imds.len] = '\0';
        sr_buf_adds(&imds, IMDS_PATH);
        endpoint = imds.data;
    }
    snprintf(m->label, sizeof m->label, "ManagedIdentityCredential (%s)", source_names[m->source]);
    int ok = 1;
    if ((m->source == MI_ARC || m->source == MI_CLOUD_SHELL) && m->id_kind != SR_MI_SYSTEM)
        ok = sr_error_set(err, SR_E_CREDENTIAL_UNAVAILABLE, "%s: only the system-assigned identity is supported here",
                          m->label);
    else if (m->source == MI_APP_SERVICE_2017 && m->id_kind != SR_MI_SYSTEM && m->id_kind != SR_MI_CLIENT_ID)
        ok = sr_error_set(err, SR_E_CREDENTIAL_UNAVAILABLE, "%s: a user-assigned identity is selected by client id only",
                          m->label);
    else if (!http_url_ok(endpoint, "managed identity endpoint", err))
        ok = 0;
    if (ok && (!(m->endpoint = strdup(endpoint)) || (secret && !(m->secret = strdup(secret))) ||
               (o->id && m->id_kind != SR_MI_SYSTEM && !(m->id = strdup(o->id))) ||
               !(m->arc_key_dir = strdup(o->arc_key_dir ? o->arc_key_dir : ARC_KEY_DIR))))
        ok = sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    sr_buf_free(&imds, 0);
    if (!ok) {
        mi_free(m);
        return NULL;
    }
    size_t dl = strlen(m->arc_key_dir);
    while (dl > 1 && m->arc_key_dir[dl - 1] == '/') m->arc_key_dir[--dl] = '\0';
    sr_credential *c = sr_credential_alloc(&mi_vt, m, NULL, err);
    if (!c) return NULL;
    if (m->id_kind == SR_MI_SYSTEM)
        sr_credential_set_description(c, "%s, system-assigned", m->label);
    else
        sr_credential_set_description(c, "%s, %s %s", m->label, id_kind_name(m->id_kind), m->id);
    return c;
}
