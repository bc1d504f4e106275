/* rest.c: data-plane REST operations as ops: request building per operation, the
 * access-key JWT or the Entra bearer, retries, and response mapping. */
#include "rest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "b64url.h"
#include "json.h"
#include "jwt.h"
#include "url.h"

#define V2022 "2022-06-01"              /* what the official management SDK speaks */
#define V2024 "2024-12-01"              /* generate_token, list, invoke, execute */
#define REST_TOKEN_LIFETIME 3600        /* the management SDK's default */

enum result_kind { R_TRUE, R_EXISTS, R_TOKEN, R_JSON };

typedef struct op_spec {
    const char *name;
    const char *method;
    const char *path;           /* after /api/hubs/{hub}; {u} {g} {c} are path segments */
    const char *version;
    sr_retry_class retry;
    enum result_kind result;
    const char *action;         /* data action, named in a 403 hint */
    const char *roles;          /* built-in roles that grant it */
} op_spec;

#define OWNERS "'SignalR REST API Owner' or 'SignalR Service Owner'"
#define READERS "'SignalR REST API Reader', 'SignalR REST API Owner' or 'SignalR Service Owner'"
#define CLOSERS "'SignalR REST API Owner', 'SignalR App Server' or 'SignalR Service Owner'"

/* Indexed by sr_rest_kind. Retry classes: see retry.h (a close or a membership change
 * repeated is the same close or change; a message repeated reaches clients twice). */
static const op_spec SPECS[SR_REST_KIND_COUNT] = {
    { "send_to_all", "POST", "/:send", V2022, SR_RETRY_MESSAGE, R_TRUE, "hub/send/action", OWNERS },
    { "send_to_user", "POST", "/users/{u}/:send", V2022, SR_RETRY_MESSAGE, R_TRUE, "user/send/action", OWNERS },
    { "send_to_group", "POST", "/groups/{g}/:send", V2022, SR_RETRY_MESSAGE, R_TRUE, "group/send/action", OWNERS },
    { "send_to_connection", "POST", "/connections/{c}/:send", V2022, SR_RETRY_MESSAGE, R_TRUE,
      "clientConnection/send/action", OWNERS },
    { "close_all_connections", "POST", "/:closeConnections", V2022, SR_RETRY_IDEMPOTENT, R_TRUE,
      "clientConnection/write", CLOSERS },
    { "close_user_connections", "POST", "/users/{u}/:closeConnections", V2022, SR_RETRY_IDEMPOTENT, R_TRUE,
      "clientConnection/write", CLOSERS },
    { "close_group_connections", "POST", "/groups/{g}/:closeConnections", V2022, SR_RETRY_IDEMPOTENT, R_TRUE,
      "clientConnection/write", CLOSERS },
    { "close_connection", "DELETE", "/connections/{c}", V2022, SR_RETRY_IDEMPOTENT, R_TRUE,
      "clientConnection/write", CLOSERS },
    { "connection_exists", "HEAD", "/connections/{c}", V2022, SR_RETRY_IDEMPOTENT, R_EXISTS,
      "clientConnection/read", READERS },
    { "user_exists", "HEAD", "/users/{u}", V2022, SR_RETRY_IDEMPOTENT, R_EXISTS, "user/read", READERS },
    { "group_exists", "HEAD", "/groups/{g}", V2022, SR_RETRY_IDEMPOTENT, R_EXISTS, "group/read", READERS },
    { "add_connection_to_group", "PUT", "/groups/{g}/connections/{c}", V2022, SR_RETRY_IDEMPOTENT, R_EXISTS,
      "group/write", OWNERS },
    { "remove_connection_from_group", "DELETE", "/groups/{g}/connections/{c}", V2022, SR_RETRY_IDEMPOTENT,
      R_EXISTS, "group/write", OWNERS },
    { "remove_connection_from_all_groups", "DELETE", "/connections/{c}/groups", V2022, SR_RETRY_IDEMPOTENT,
      R_TRUE, "group/write", OWNERS },
    { "add_user_to_group", "PUT", "/users/{u}/groups/{g}", V2022, SR_RETRY_IDEMPOTENT, R_TRUE, "user/write",
      OWNERS },
    { "remove_user_from_group", "DELETE", "/users/{u}/groups/{g}", V2022, SR_RETRY_IDEMPOTENT, R_TRUE,
      "user/write", OWNERS },
    { "user_in_group", "HEAD", "/users/{u}/groups/{g}", V2022, SR_RETRY_IDEMPOTENT, R_EXISTS, "group/read",
      READERS },
    { "remove_user_from_all_groups", "DELETE", "/users/{u}/groups", V2022, SR_RETRY_IDEMPOTENT, R_TRUE,
      "user/write", OWNERS },
    { "generate_token", "POST", "/:generateToken", V2024, SR_RETRY_IDEMPOTENT, R_TOKEN,
      "auth/clientToken/action", OWNERS },
    { "group_connections", "GET", "/groups/{g}/connections", V2024, SR_RETRY_IDEMPOTENT, R_JSON, "group/read",
      READERS },
    { "invoke", "POST", "/connections/{c}/:invoke", V2024, SR_RETRY_MESSAGE, R_JSON,
      "clientConnection/send/action", OWNERS },
    { "execute", "POST", "/:execute", V2024, SR_RETRY_MESSAGE, R_TRUE, "hub/send/action", OWNERS },
};

/* 404 answers that mean "no such thing" rather than "wrong endpoint". */
static const char *const NOT_EXISTED[] = {
    "Warning.Connection.NotExisted", "Warning.User.NotExisted", "Warning.Group.NotExisted",
    "Info.User.NotInGroup", "Error.Connection.NotExisted", NULL,
};

enum state { ST_AUTH, ST_SEND, ST_WAIT, ST_SLEEP };

typedef struct rest_op {
    sr_op base;
    const op_spec *spec;
    sr_rest_kind kind;
    enum state state;
    sr_request req;
    sr_rest_auth auth;          /* Entra mode: credential + token functions */
    int access_key;             /* signed with an access key (else Entra bearer per attempt) */
    sr_op *token_op;            /* Entra token sub-op while one runs */
    sr_retry_policy policy;
    sr_retry_state retry;
    int attempts;
    int reauthorized;           /* a 401 already led to a new Entra token */
    int result;
    char *token;                /* generate_token */
    char *client_url;           /* generate_token: the URL the token is for */
    double expires_at;
    cJSON *json;                /* list, invoke */
} rest_op;

const char *sr_rest_kind_name(sr_rest_kind k)
{
    return (unsigned)k < SR_REST_KIND_COUNT ? SPECS[k].name : "rest";
}

/* ---- argument checks --------------------------------------------------------------- */

static int all_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

/* Which path segments an operation's path names ({u}, {g}, {c}). */
static int path_has(const op_spec *sp, char which)
{
    for (const char *p = sp->path; *p; p++)
        if (p[0] == '{' && p[1] == which) return 1;
    return 0;
}

static int check_call(const op_spec *sp, const sr_rest_call *c, sr_error *err)
{
    if (!sr_check_name(c->hub.s ? c->hub.s : "", c->hub.s ? c->hub.n : 0, "hub", err)) return 0;
    if (path_has(sp, 'u') && (!c->user.s || c->user.n == 0))
        return sr_error_set(err, SR_E_INVALID_ARGUMENT, "%s: the user id is empty", sp->name);
    if (path_has(sp, 'c') && (!c->connection.s || c->connection.n == 0))
        return sr_error_set(err, SR_E_INVALID_ARGUMENT, "%s: the connection id is empty", sp->name);
    if (path_has(sp, 'g')) {
        if (!c->group.s || c->group.n == 0 || all_blank(c->group.s, c->group.n))
            return sr_error_set(err, SR_E_INVALID_ARGUMENT, "%s: the group name is empty or blank", sp->name);
        if (c->group.n > SR_REST_MAX_GROUP)
            return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                                "%s: the group name is %zu characters long; at most %u are allowed", sp->name,
                                c->group.n, SR_REST_MAX_GROUP);
    }
    for (size_t i = 0; i < c->excluded.n; i++)
        if (c->excluded.v[i].n == 0)
            return sr_error_set(err, SR_E_INVALID_ARGUMENT, "%s: excluded[%zu] is an empty connection id",
                                sp->name, i + 1);
    if (c->ttl > 2147483647LL)
        return sr_error_set(err, SR_E_INVALID_ARGUMENT, "%s: ttl must be at most 2147483647 seconds", sp->name);
    if (c->body.n > SR_REST_MAX_BODY)
        return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                            "%s: the message is %zu bytes of JSON; the service accepts at most 1 MB (%u bytes)",
                            sp->name, c->body.n, SR_REST_MAX_BODY);
    if (c->page_size < 0 || c->page_size > 200)
        return sr_error_set(err, SR_E_INVALID_ARGUMENT, "%s: the page size must be from 1 to 200", sp->name);
    if (c->minutes < 0 || c->minutes > 365 * 24 * 60)
        return sr_error_set(err, SR_E_INVALID_ARGUMENT, "%s: the token lifetime must be from 1 minute to 1 year",
                            sp->name);
    return 1;
}

/* ---- request building -------------------------------------------------------------- */

static void add_query(sr_buf *b, const char *name, const char *v, size_t n)
{
    sr_buf_addc(b, '&');
    sr_buf_adds(b, name);
    sr_buf_addc(b, '=');
    sr_url_add_escaped(b, v, n);
}

/* "/api/hubs/{hub}{path}?[application=..&]api-version=..": the part both the request URL
 * and the access-key audience share (the SDK signs only application and api-version). */
static void add_path_and_version(sr_buf *b, const sr_endpoint *ep, const op_spec *sp, const sr_rest_call *c)
{
    sr_buf_adds(b, "/api/hubs/");
    char hub[128];
    size_t hn = c->hub.n < sizeof hub ? c->hub.n : sizeof hub;
    for (size_t i = 0; i < hn; i++) {
        char ch = c->hub.s[i];
        hub[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    sr_url_add_escaped(b, hub, hn);
    for (const char *p = sp->path; *p;) {
        if (p[0] == '{' && p[1] && p[2] == '}') {
            const sr_str *seg = p[1] == 'u' ? &c->user : p[1] == 'g' ? &c->group : &c->connection;
            sr_url_add_escaped(b, seg->s, seg->n);
            p += 3;
        } else {
            sr_buf_addc(b, *p++);
        }
    }
    sr_buf_addc(b, '?');
    if (ep->application) {
        sr_buf_adds(b, "application=");
        sr_url_add_escaped(b, ep->application, strlen(ep->application));
        sr_buf_addc(b, '&');
    }
    sr_buf_adds(b, "api-version=");
    sr_buf_adds(b, sp->version);
}

static void add_extra_query(sr_buf *b, const sr_rest_call *c)
{
    for (size_t i = 0; i < c->excluded.n; i++) add_query(b, "excluded", c->excluded.v[i].s, c->excluded.v[i].n);
    if (c->reason.s) add_query(b, "reason", c->reason.s, c->reason.n);
    if (c->ttl >= 0 && c->kind == SR_REST_ADD_USER_TO_GROUP) sr_buf_addf(b, "&ttl=%lld", c->ttl);
    if (c->kind == SR_REST_GENERATE_TOKEN) {
        if (c->user.s) add_query(b, "userId", c->user.s, c->user.n);
        if (c->minutes > 0) sr_buf_addf(b, "&minutesToExpire=%d", c->minutes);
        for (size_t i = 0; i < c->roles.n; i++) add_query(b, "role", c->roles.v[i].s, c->roles.v[i].n);
        for (size_t i = 0; i < c->groups.n; i++) add_query(b, "group", c->groups.v[i].s, c->groups.v[i].n);
    }
    if (c->kind == SR_REST_LIST_GROUP_CONNECTIONS) {
        if (c->page_size > 0) sr_buf_addf(b, "&maxpagesize=%d", c->page_size);
        if (c->top > 0) sr_buf_addf(b, "&top=%lld", c->top);
    }
    if (c->filter.s) add_query(b, "filter", c->filter.s, c->filter.n);
}

/* A later page: our own path with the query of the service's nextLink, so the bearer never
 * goes to a host the service names. */
static int add_next_link_query(sr_buf *url, size_t query_at, const sr_str *link, sr_error *err)
{
    const char *q = memchr(link->s, '?', link->n);
    if (!q || q + 1 == link->s + link->n)
        return sr_error_set(err, SR_E_SERVICE_ERROR, "group_connections: the service's nextLink has no query");
    q++;
    size_t qn = (size_t)(link->s + link->n - q);
    for (size_t i = 0; i < qn; i++)
        if ((unsigned char)q[i] <= ' ' || q[i] == '#')
            return sr_error_set(err, SR_E_SERVICE_ERROR, "group_connections: the service's nextLink is malformed");
    /* Keep "...?" (plus application and api-version when the link lacks them). */
    int has_version = 0;
    for (size_t i = 0; i + 12 <= qn; i++)
        if ((i == 0 || q[i - 1] == '&') && memcmp(q + i, "api-version=", 12) == 0) has_version = 1;
    if (has_version) {
        url->len = query_at;
        url->data[url->len] = '\0';
    } else {
        sr_buf_addc(url, '&');
    }
    sr_buf_add(url, q, qn);
    return 1;
}

/* Wipes what a buffer holds (a token), then frees it: only its length, not its capacity. */
static void wipe_free(sr_buf *b)
{
    if (b->oom) {
        sr_buf_free(b, 1);
        return;
    }
    sr_wipe(b->data, b->len);
    sr_buf_free(b, 0);
}

static int sign_access_token(rest_op *r, const char *aud, size_t aud_len, double now, sr_error *err)
{
    sr_signing_key *k = r->auth.key;
    long long iat = (long long)floor(now);
    sr_buf payload, bearer;
    sr_buf_init(&payload);
    sr_buf_init(&bearer);
    /* aud is a URL we built (percent-encoded ASCII) and the server name is [A-Za-z0-9._-]:
     * nothing JSON would escape */
    sr_buf_addlit(&payload, "{\"aud\":\"");
    sr_buf_add(&payload, aud, aud_len);
    sr_buf_addlit(&payload, "\",\"iat\":");
    sr_buf_addint(&payload, iat);
    sr_buf_addlit(&payload, ",\"exp\":");
    sr_buf_addint(&payload, iat + REST_TOKEN_LIFETIME);
    if (r->auth.server_name) {
        sr_buf_addlit(&payload, ",\"nameid\":\"");
        sr_buf_adds(&payload, r->auth.server_name);
        sr_buf_addc(&payload, '"');
    }
    sr_buf_addc(&payload, '}');
    sr_buf_addlit(&bearer, "Bearer ");
    int ok = payload.oom ? sr_error_set(err, SR_E_NO_MEMORY, "out of memory")
                         : sr_signing_key_sign(k, SR_HS256, payload.data, payload.len, &bearer, err);
    if (ok && !sr_request_add_header(&r->req, "Authorization", bearer.data, 1))
        ok = sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    sr_buf_free(&payload, 0);
    wipe_free(&bearer);
    return ok;
}

static int build_request(rest_op *r, const sr_endpoint *ep, const sr_rest_call *c, double now, sr_error *err)
{
    const op_spec *sp = r->spec;
    sr_buf url;
    sr_buf_init(&url);
    sr_buf_adds(&url, ep->server_base);
    size_t path_at = url.len;
    add_path_and_version(&url, ep, sp, c);
    size_t path_end = url.len;
    size_t query_at = (size_t)(strchr(url.data + path_at, '?') - url.data) + 1;
    int ok = 1;
    if (c->kind == SR_REST_LIST_GROUP_CONNECTIONS && c->next_link.s)
        ok = add_next_link_query(&url, query_at, &c->next_link, err);
    else
        add_extra_query(&url, c);
    if (ok && url.oom) ok = sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    if (ok) {
        /* sr_request_init, without its printf */
        memset(&r->req, 0, sizeof r->req);
        memcpy(r->req.method, sp->method, strlen(sp->method) + 1);
        r->req.url = malloc(url.len + 1);
        if (r->req.url) memcpy(r->req.url, url.data, url.len + 1);
        else ok = sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    }
    if (ok && c->body.s) {
        ok = sr_request_set_body(&r->req, c->body.s, c->body.n, 0) &&
             sr_request_add_header(&r->req, "Content-Type", "application/json", 0);
        if (!ok) sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    }
    if (ok && r->auth.key) {
        /* aud: the audience base (scheme://host) + the shared path and version part. */
        sr_buf aud;
        sr_buf_init(&aud);
        sr_buf_adds(&aud, ep->audience_base);
        sr_buf_add(&aud, url.data + path_at, path_end - path_at);
        ok = !aud.oom ? sign_access_token(r, aud.data, aud.len, now, err)
                      : sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        sr_buf_free(&aud, 0);
    }
    sr_buf_free(&url, 0);
    return ok;
}

/* Replaces (or adds) the Authorization header: Entra tokens can change between attempts. */
static int set_bearer(sr_request *req, const char *token)
{
    sr_buf v;
    sr_buf_init(&v);
    sr_buf_adds(&v, "Bearer ");
    sr_buf_adds(&v, token);
    int ok = !v.oom && sr_request_set_header(req, "Authorization", v.data, 1);
    wipe_free(&v);
    return ok;
}

/* ---- response mapping -------------------------------------------------------------- */

static int not_existed(const char *code)
{
    if (!code) return 0;
    for (int i = 0; NOT_EXISTED[i]; i++)
        if (strcasecmp(code, NOT_EXISTED[i]) == 0) return 1;
    return 0;
}

/* Copies printable text, at most `max` bytes (cut at a space, marked "..."), for a message. */
static void add_text(sr_buf *b, const char *s, size_t n, size_t max)
{
    int cut = 0;
    if (n > max) {
        n = max;
        while (n > max / 2 && s[n] != ' ') n--;
        cut = 1;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '.')) n--;
    for (size_t i = 0; i < n; i++) sr_buf_addc(b, (unsigned char)s[i] < ' ' ? ' ' : s[i]);
    if (cut) sr_buf_adds(b, "...");
}

static void describe(rest_op *r, sr_buf *d)
{
    sr_buf_adds(d, r->spec->name);
    sr_buf_adds(d, ": ");
    sr_request_describe(d, &r->req);
}

static void set_attempts_note(rest_op *r, sr_buf *m)
{
    if (r->attempts > 1) sr_buf_addf(m, " (after %d attempts)", r->attempts);
}

static void http_error(rest_op *r, const sr_response *resp, double now)
{
    sr_error *e = &r->base.err;
    int st = resp->status;
    const char *header_code = sr_response_header(resp, "x-ms-error-code");
    const char *code = header_code;
    cJSON *body = resp->body.len ? cJSON_ParseWithLength(resp->body.data, resp->body.len) : NULL;
    const char *msg = body ? sr_json_get_string(body, "message") : NULL;
    if (!code && body) code = sr_json_get_string(body, "code");

    sr_kind kind = st == 400 || st == 413 ? SR_E_INVALID_ARGUMENT
                 : st == 401 ? SR_E_UNAUTHORIZED
                 : st == 403 ? SR_E_FORBIDDEN
                 : st == 404 ? SR_E_NOT_FOUND
                 : st == 408 ? SR_E_TIMEOUT
                 : st == 429 ? SR_E_THROTTLED : SR_E_SERVICE_ERROR;
    sr_buf m;
    sr_buf_init(&m);
    describe(r, &m);
    sr_buf_addf(&m, " answered %d", st);
    if (msg && *msg) {
        sr_buf_adds(&m, ": ");
        add_text(&m, msg, strlen(msg), 320);
    } else if (resp->body.len && !body) {
        sr_buf_adds(&m, ": ");
        add_text(&m, resp->body.data, resp->body.len, 200);
    }
    set_attempts_note(r, &m);
    sr_error_set(e, kind, "%s", m.data);
    sr_buf_free(&m, 0);
    e->status = st;
    if (code) snprintf(e->code, sizeof e->code, "%s", code);
    double after = sr_response_retry_after(resp, now);
    if (after >= 0) e->retry_after = after;

    switch (st) {
    case 401:
        if (r->access_key)
            sr_error_hint(e, "the service did not accept the access-key token: check that the AccessKey is the "
                             "resource's current key and that local authentication is enabled on the resource");
        else
            sr_error_hint(e, "the service did not accept the Microsoft Entra token: the credential must belong "
                             "to the resource's tenant and ask for https://signalr.azure.com/.default");
        break;
    case 403:
        sr_error_hint(e, "this call needs the %s role on the resource, for data action "
                         "Microsoft.SignalRService/SignalR/%s; new role assignments can take up to 30 minutes "
                         "to take effect", r->spec->roles, r->spec->action);
        break;
    case 404:
        /* the service names what is missing in x-ms-error-code; without it the path is wrong */
        if (!header_code) sr_error_hint(e, "unable to access SignalR service, check the endpoint");
        break;
    case 413:
        sr_error_hint(e, "the service accepts message bodies up to 1 MB");
        break;
    case 429:
        if (after >= 0) sr_error_hint(e, "the service is throttling: retry after %.0f seconds", after);
        else sr_error_hint(e, "the service is throttling: retry later");
        break;
    default:
        break;
    }
    cJSON_Delete(body);
}

static void transport_error(rest_op *r, const sr_response *resp)
{
    sr_error *e = &r->base.err;
    sr_tx_error_set(e, &r->req, resp);
    sr_buf m;
    sr_buf_init(&m);
    sr_buf_adds(&m, r->spec->name);
    sr_buf_adds(&m, ": ");
    sr_buf_adds(&m, e->message);
    set_attempts_note(r, &m);
    snprintf(e->message, sizeof e->message, "%s", m.data);
    sr_buf_free(&m, 0);
    if (resp->tx_error == SR_TX_TLS)
        sr_error_hint(e, "TLS verification is always on: give the service's CA with the ca_file option "
                         "if it uses a private CA");
}

/* The exp claim of a JWT, or -1. */
static double jwt_exp(const char *token)
{
    const char *a = strchr(token, '.');
    const char *b = a ? strchr(a + 1, '.') : NULL;
    if (!b) return -1;
    sr_buf raw;
    sr_buf_init(&raw);
    double exp = -1;
    if (sr_b64url_decode(&raw, a + 1, (size_t)(b - a - 1)) && !raw.oom) {
        cJSON *claims = cJSON_ParseWithLength(raw.data, raw.len);
        if (claims && !sr_json_get_number(claims, "exp", &exp)) exp = -1;
        cJSON_Delete(claims);
    }
    wipe_free(&raw);
    return exp;
}

static sr_step_kind malformed(rest_op *r, const char *what, sr_step *out)
{
    sr_buf d;
    sr_buf_init(&d);
    describe(r, &d);
    sr_error_set(&r->base.err, SR_E_SERVICE_ERROR, "%s answered %s", d.data, what);
    sr_buf_free(&d, 0);
    return out->kind = SR_STEP_FAILED;
}

static sr_step_kind read_success(rest_op *r, const sr_response *resp, double now, sr_step *out)
{
    r->result = 1;
    if (r->spec->result == R_TOKEN) {
        cJSON *doc = cJSON_ParseWithLength(resp->body.data, resp->body.len);
        const char *tok = doc ? sr_json_get_string(doc, "token") : NULL;
        int has_token = tok && *tok;
        if (has_token) r->token = strdup(tok);
        if (tok) sr_wipe((char *)tok, strlen(tok));
        cJSON_Delete(doc);
        sr_wipe(resp->body.data, resp->body.len);
        if (!has_token) return malformed(r, "without a token", out);
        if (!r->token) return malformed(r, "a token we had no memory for", out);
        r->expires_at = jwt_exp(r->token);
        if (r->expires_at < 0) r->expires_at = floor(now) + 3600;
    } else if (r->spec->result == R_JSON) {
        r->json = cJSON_ParseWithLength(resp->body.data, resp->body.len);
        if (!cJSON_IsObject(r->json)) return malformed(r, "with a body that is not a JSON object", out);
        if (r->kind == SR_REST_LIST_GROUP_CONNECTIONS &&
            !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(r->json, "value")))
            return malformed(r, "without a 'value' list", out);
    }
    return out->kind = SR_STEP_DONE;
}

static sr_step_kind rest_step(sr_op *op, double now, sr_response *resp, sr_step *out);

static sr_step_kind on_response(rest_op *r, double now, sr_response *resp, sr_step *out)
{
    r->attempts++;
    if (resp->tx_error == SR_TX_OK && resp->status >= 200 && resp->status < 300)
        return read_success(r, resp, now, out);
    if (resp->tx_error == SR_TX_OK && resp->status == 404 &&
        not_existed(sr_response_header(resp, "x-ms-error-code"))) {
        if (r->spec->result == R_EXISTS) {
            r->result = 0;
            return out->kind = SR_STEP_DONE;
        }
        if (r->kind == SR_REST_CLOSE_CONNECTION) { /* already gone: the close did its job */
            r->result = 1;
            return out->kind = SR_STEP_DONE;
        }
    }
    if (resp->tx_error == SR_TX_OK && resp->status == 401 && !r->access_key && !r->reauthorized &&
        r->auth.invalidate) {
        /* The token may have been revoked or rotated: drop it and try once with a new one. */
        r->reauthorized = 1;
        r->auth.invalidate(r->auth.credential);
        r->state = ST_AUTH;
        return rest_step(&r->base, now, NULL, out);
    }
    double delay = sr_retry_next(&r->policy, &r->retry, r->spec->retry, resp, now);
    if (delay >= 0) {
        r->state = ST_SLEEP;
        out->seconds = delay;
        return out->kind = SR_STEP_SLEEP;
    }
    if (resp->tx_error != SR_TX_OK) transport_error(r, resp);
    else http_error(r, resp, now);
    return out->kind = SR_STEP_FAILED;
}

/* ---- the op ------------------------------------------------------------------------ */

static sr_step_kind run_token_op(rest_op *r, double now, sr_response *resp, sr_step *out)
{
    if (!r->token_op && !(r->token_op = r->auth.token_op_new(r->auth.credential, &r->base.err)))
        return out->kind = SR_STEP_FAILED;
    sr_step_kind k = sr_op_step(r->token_op, now, resp, out);
    if (k == SR_STEP_REQUEST || k == SR_STEP_SLEEP || k == SR_STEP_CALLBACK) return k;
    if (k == SR_STEP_FAILED) {
        r->base.err = r->token_op->err;
    } else {
        const char *tok = r->auth.token_of(r->token_op);
        if (!tok || !*tok) {
            sr_error_set(&r->base.err, SR_E_CREDENTIAL_UNAVAILABLE, "%s: the credential gave no token",
                         r->spec->name);
            k = SR_STEP_FAILED;
        } else if (!set_bearer(&r->req, tok)) {
            sr_error_set(&r->base.err, SR_E_NO_MEMORY, "out of memory");
            k = SR_STEP_FAILED;
        }
    }
    r->token_op->type->destroy(r->token_op);
    r->token_op = NULL;
    if (k == SR_STEP_FAILED) return out->kind = SR_STEP_FAILED;
    r->state = ST_SEND;
    return SR_STEP_DONE;
}

static sr_step_kind rest_step(sr_op *op, double now, sr_response *resp, sr_step *out)
{
    rest_op *r = (rest_op *)op;
    for (;;) {
        switch (r->state) {
        case ST_AUTH: {
            sr_step_kind k = run_token_op(r, now, resp, out);
            if (k != SR_STEP_DONE) return k;
            resp = NULL;
            break;
        }
        case ST_SEND:
            r->state = ST_WAIT;
            out->request = &r->req;
            return out->kind = SR_STEP_REQUEST;
        case ST_WAIT:
            if (!resp) {
                sr_error_set(&op->err, SR_E_INTERNAL, "%s stepped without a response", r->spec->name);
                return out->kind = SR_STEP_FAILED;
            }
            return on_response(r, now, resp, out);
        case ST_SLEEP:
            r->state = r->access_key ? ST_SEND : ST_AUTH;
            resp = NULL;
            break;
        }
    }
}

static void rest_feed(sr_op *op, const char *v, size_t n, const char *error)
{
    rest_op *r = (rest_op *)op;
    if (r->token_op) r->token_op->type->feed(r->token_op, v, n, error);
}

static void rest_destroy(sr_op *op)
{
    rest_op *r = (rest_op *)op;
    if (r->token_op) r->token_op->type->destroy(r->token_op);
    if (r->auth.credential && r->auth.release) r->auth.release(r->auth.credential);
    sr_request_free(&r->req);
    if (r->token) {
        sr_wipe(r->token, strlen(r->token));
        free(r->token);
    }
    cJSON_Delete(r->json);
    free(r->client_url);
    free(r);
}

static const sr_op_type rest_type = { "rest", rest_step, rest_feed, rest_destroy };

int sr_rest_call_check(const sr_rest_call *call, const sr_rest_auth *auth, sr_error *err)
{
    if ((unsigned)call->kind >= SR_REST_KIND_COUNT) return sr_error_set(err, SR_E_INTERNAL, "unknown REST operation");
    const op_spec *sp = &SPECS[call->kind];
    if (!check_call(sp, call, err)) return 0;
    if (!auth->key && !(auth->credential && auth->token_op_new && auth->token_of))
        return sr_error_set(err, SR_E_CREDENTIAL_UNAVAILABLE, "%s: the service has no credential for REST calls",
                            sp->name);
    return 1;
}

sr_op *sr_rest_op_new(const sr_endpoint *ep, const sr_rest_call *call, const sr_rest_auth *auth,
                      const sr_retry_policy *retry, double now, unsigned long long seed, sr_error *err)
{
    if (!sr_rest_call_check(call, auth, err)) return NULL;
    return sr_rest_op_new_checked(ep, call, auth, retry, now, seed, err);
}

sr_op *sr_rest_op_new_checked(const sr_endpoint *ep, const sr_rest_call *call, const sr_rest_auth *auth,
                              const sr_retry_policy *retry, double now, unsigned long long seed, sr_error *err)
{
    const op_spec *sp = &SPECS[call->kind];
    rest_op *r = calloc(1, sizeof *r);
    if (!r) {
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    r->base.type = &rest_type;
    sr_error_clear(&r->base.err);
    r->spec = sp;
    r->kind = call->kind;
    r->auth = *auth;
    if (auth->key) r->auth.credential = NULL;
    else if (r->auth.retain) r->auth.credential = r->auth.retain(auth->credential);
    r->policy = *retry;
    sr_retry_init(&r->retry, seed);
    if (!build_request(r, ep, call, now, err)) {
        rest_destroy(&r->base);
        return NULL;
    }
    if (call->kind == SR_REST_GENERATE_TOKEN) {
        sr_buf url;
        sr_buf_init(&url);
        sr_endpoint_client_url(&url, ep, call->hub.s, call->hub.n);
        r->client_url = url.oom ? NULL : strdup(url.data);
        sr_buf_free(&url, 0);
        if (!r->client_url) {
            rest_destroy(&r->base);
            sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
            return NULL;
        }
    }
    /* The signed token is in the request now: the key itself is not kept. */
    r->auth.key = NULL;
    r->access_key = auth->key != NULL;
    r->state = r->access_key ? ST_SEND : ST_AUTH;
    return &r->base;
}

int sr_rest_result_bool(const sr_op *op) { return ((const rest_op *)op)->result; }

const char *sr_rest_result_token(const sr_op *op, double *expires_at)
{
    const rest_op *r = (const rest_op *)op;
    if (expires_at) *expires_at = r->expires_at;
    return r->token;
}

const char *sr_rest_result_client_url(const sr_op *op) { return ((const rest_op *)op)->client_url; }

const cJSON *sr_rest_result_json(const sr_op *op) { return ((const rest_op *)op)->json; }

int sr_rest_attempts(const sr_op *op) { return ((const rest_op *)op)->attempts; }

sr_rest_kind sr_rest_op_kind(const sr_op *op) { return ((const rest_op *)op)->kind; }
