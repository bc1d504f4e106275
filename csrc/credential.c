/* credential.c: the credential object, the caching token op, and the simplest kinds
 * (static token, caller function, unavailable). */
#include "credential_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a token op waits for another op's refresh of an expired token. */
#define WAIT_FOR_REFRESH_MAX 120.0
#define WAIT_FOR_REFRESH_POLL 0.05
/* "No known expiry" for static tokens: an instant far enough never to matter. */
#define NO_EXPIRY 1e12

/* ---- helpers ---------------------------------------------------------------------------- */

char *sr_strdup_or_null(const char *s) { return s ? strdup(s) : NULL; }

void sr_secret_free(char *s)
{
    if (!s) return;
    sr_wipe(s, strlen(s));
    free(s);
}

sr_acquire *sr_acquire_alloc(size_t size, const sr_op_type *type, sr_error *err)
{
    sr_acquire *a = calloc(1, size);
    if (!a) {
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    a->base.type = type;
    sr_error_clear(&a->base.err);
    return a;
}

void sr_acquire_destroy_base(sr_acquire *a) { sr_token_free(&a->token); }

/* ---- the credential object -------------------------------------------------------------- */

sr_credential *sr_credential_alloc(const sr_credential_vt *vt, void *impl, const char *tenant, sr_error *err)
{
    sr_credential *c = calloc(1, sizeof *c);
    if (!c || (tenant && !(c->tenant = strdup(tenant)))) {
        free(c);
        if (vt->free) vt->free(impl);
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    c->refs = 1;
    c->vt = vt;
    c->impl = impl;
    c->name = vt->name;
    sr_token_cache_init(&c->cache);
    return c;
}

void sr_credential_set_description(sr_credential *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    char *d = malloc((size_t)n + 1);
    if (!d) return;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    free(c->description);
    c->description = d;
}

int sr_credential_set_name(sr_credential *c, const char *name)
{
    char *n = strdup(name);
    if (!n) return 0;
    free(c->name_owned);
    c->name_owned = n;
    c->name = n;
    return 1;
}

sr_credential *sr_credential_retain(sr_credential *c)
{
    if (c) c->refs++;
    return c;
}

void sr_credential_release(sr_credential *c)
{
    if (!c || --c->refs > 0) return;
    if (c->vt->free) c->vt->free(c->impl);
    sr_token_cache_free(&c->cache);
    free(c->description);
    free(c->name_owned);
    free(c->tenant);
    free(c);
}

sr_credential_kind sr_credential_get_kind(const sr_credential *c) { return c->vt->kind; }
const char *sr_credential_name(const sr_credential *c) { return c->name; }
const char *sr_credential_describe(const sr_credential *c) { return c->description ? c->description : c->name; }

unsigned long sr_credential_acquisitions(const sr_credential *c)
{
    unsigned long n = 0;
    for (const sr_token_entry *e = c->cache.entries; e; e = e->next) n += e->refreshes;
    return n;
}

sr_op *sr_credential_acquire_op(sr_credential *c, const sr_acquire_ctx *ctx, sr_error *err)
{
    return c->vt->acquire(c, ctx, err);
}

void sr_credential_invalidate(sr_credential *c)
{
    for (sr_token_entry *e = c->cache.entries; e; e = e->next) sr_token_entry_clear(e);
}

/* ---- the token op: cache first, then one acquisition ------------------------------------ */

typedef struct token_op {
    sr_op base;
    sr_credential *c;
    sr_token_entry *entry;
    sr_op *sub;                 /* the acquisition in progress */
    unsigned long ticket;       /* our claim on the entry's refresh slot */
    sr_token out;               /* the token handed out (a copy) */
    int from_cache;
    int waiting;
    double wait_started;
} token_op;

static int copy_token(token_op *t, const sr_token *src)
{
    sr_token_free(&t->out);
    t->out.value = malloc(src->len + 1);
    if (!t->out.value) return sr_error_set(&t->base.err, SR_E_NO_MEMORY, "out of memory");
    memcpy(t->out.value, src->value, src->len);
    t->out.value[src->len] = '\0';
    t->out.len = src->len;
    t->out.expires_on = src->expires_on;
    return 1;
}

static sr_step_kind serve_cached(token_op *t, sr_step *out)
{
    t->from_cache = 1;
    return out->kind = copy_token(t, &t->entry->token) ? SR_STEP_DONE : SR_STEP_FAILED;
}

static void end_refresh(token_op *t)
{
    if (t->ticket) sr_token_entry_end_refresh(t->entry, t->ticket);
    t->ticket = 0;
}

static void drop_sub(token_op *t)
{
    if (t->sub) t->sub->type->destroy(t->sub);
    t->sub = NULL;
}

/* The acquisition finished: cache its token, or fall back to the still-valid cached one. */
static sr_step_kind finish_sub(token_op *t, sr_step_kind k, double now, sr_step *out)
{
    sr_acquire *a = (sr_acquire *)t->sub;
    if (k == SR_STEP_DONE) {
        int ok = copy_token(t, &a->token);
        if (a->token.expires_on > 0) sr_token_entry_store(t->entry, &a->token, now, t->c->vt->half_life);
        else t->entry->refreshes++; /* uncacheable (a function without expiry) */
        end_refresh(t);
        drop_sub(t);
        return out->kind = ok ? SR_STEP_DONE : SR_STEP_FAILED;
    }
    sr_token_entry_failed(t->entry, now);
    end_refresh(t);
    if (sr_token_entry_state(t->entry, now) != SR_TOKEN_MISSING) {
        /* Keep serving the valid token; the failure is retried after the pause. */
        drop_sub(t);
        return serve_cached(t, out);
    }
    t->base.err = t->sub->err;
    drop_sub(t);
    return out->kind = SR_STEP_FAILED;
}

static sr_step_kind token_step(sr_op *op, double now, sr_response *resp, sr_step *out)
{
    token_op *t = (token_op *)op;
    if (t->sub) {
        sr_step_kind k = sr_op_step(t->sub, now, resp, out);
        if (k == SR_STEP_DONE || k == SR_STEP_FAILED) return finish_sub(t, k, now, out);
        return k;
    }
    switch (sr_token_entry_state(t->entry, now)) {
    case SR_TOKEN_FRESH:
    case SR_TOKEN_REFRESH_WAIT:
        return serve_cached(t, out);
    case SR_TOKEN_REFRESH_DUE:
        if (!(t->ticket = sr_token_entry_begin_refresh(t->entry, now))) return serve_cached(t, out);
        break;
    case SR_TOKEN_MISSING:
        if (!(t->ticket = sr_token_entry_begin_refresh(t->entry, now))) {
            /* Another op (another coroutine under OpenResty) is fetching it: wait for it. */
            if (!t->waiting) {
                t->waiting = 1;
                t->wait_started = now;
            } else if (now - t->wait_started > WAIT_FOR_REFRESH_MAX) {
                sr_error_set(&op->err, SR_E_TIMEOUT, "%s: gave up waiting for another token request to finish",
                             t->c->name);
                return out->kind = SR_STEP_FAILED;
            }
            out->seconds = WAIT_FOR_REFRESH_POLL;
            return out->kind = SR_STEP_SLEEP;
        }
        break;
    }
    sr_acquire_ctx ctx = { .tenant = t->c->tenant, .scope = SR_SIGNALR_SCOPE, .in_chain = 0 };
    if (!(t->sub = sr_credential_acquire_op(t->c, &ctx, &op->err))) {
        sr_token_entry_failed(t->entry, now);
        end_refresh(t);
        return out->kind = SR_STEP_FAILED;
    }
    sr_step_kind k = sr_op_step(t->sub, now, NULL, out);
    if (k == SR_STEP_DONE || k == SR_STEP_FAILED) return finish_sub(t, k, now, out);
    return k;
}

static void token_feed(sr_op *op, const char *v, size_t n, const char *error)
{
    token_op *t = (token_op *)op;
    if (t->sub) t->sub->type->feed(t->sub, v, n, error);
}

static void token_destroy(sr_op *op)
{
    token_op *t = (token_op *)op;
    end_refresh(t);
    drop_sub(t);
    sr_token_free(&t->out);
    sr_credential_release(t->c);
    free(t);
}

static const sr_op_type token_type = { "entra_token", token_step, token_feed, token_destroy };

sr_op *sr_credential_token_op_new(sr_credential *c, sr_error *err)
{
    token_op *t = calloc(1, sizeof *t);
    if (!t) {
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    t->base.type = &token_type;
    sr_error_clear(&t->base.err);
    if (!(t->entry = sr_token_cache_entry(&c->cache, c->tenant, SR_SIGNALR_SCOPE))) {
        free(t);
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    t->c = sr_credential_retain(c);
    return &t->base;
}

const char *sr_token_op_token(const sr_op *op) { return ((const token_op *)op)->out.value; }
double sr_token_op_expires_on(const sr_op *op) { return ((const token_op *)op)->out.expires_on; }
int sr_token_op_from_cache(const sr_op *op) { return ((const token_op *)op)->from_cache; }

/* ---- static token ------------------------------------------------------------------------ */

typedef struct static_impl {
    char *token;
    size_t len;
    double expires_on;
} static_impl;

static void immediate_feed(sr_op *op, const char *v, size_t n, const char *error)
{
    (void)op, (void)v, (void)n, (void)error;
}

static void plain_acquire_destroy(sr_op *op)
{
    sr_acquire_destroy_base((sr_acquire *)op);
    free(op);
}

static sr_step_kind static_step(sr_op *op, double now, sr_response *resp, sr_step *out)
{
    (void)now, (void)resp, (void)op;
    return out->kind = SR_STEP_DONE; /* the token was set when the op was made */
}

static const sr_op_type static_acquire_type = { "static_token", static_step, immediate_feed, plain_acquire_destroy };

static sr_op *static_acquire(sr_credential *c, const sr_acquire_ctx *ctx, sr_error *err)
{
    (void)ctx;
    static_impl *s = c->impl;
    sr_acquire *a = sr_acquire_alloc(sizeof *a, &static_acquire_type, err);
    if (!a) return NULL;
    if (!(a->token.value = malloc(s->len + 1))) {
        free(a);
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    memcpy(a->token.value, s->token, s->len + 1);
    a->token.len = s->len;
    a->token.expires_on = s->expires_on;
    return &a->base;
}

static void static_free(void *impl)
{
    static_impl *s = impl;
    if (!s) return;
    if (s->token) sr_wipe(s->token, s->len);
    free(s->token);
    free(s);
}

static const sr_credential_vt static_vt = { SR_CRED_STATIC, "StaticTokenCredential", static_acquire, static_free, 0 };

sr_credential *sr_credential_static_new(const char *token, size_t len, double expires_on, sr_error *err)
{
    if (len == 0) {
        sr_error_set(err, SR_E_INVALID_ARGUMENT, "the static token is empty");
        return NULL;
    }
    static_impl *s = calloc(1, sizeof *s);
    if (!s || !(s->token = malloc(len + 1))) {
        free(s);
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    memcpy(s->token, token, len);
    s->token[len] = '\0';
    s->len = len;
    s->expires_on = expires_on > 0 ? expires_on : NO_EXPIRY;
    sr_credential *c = sr_credential_alloc(&static_vt, s, NULL, err);
    if (c) sr_credential_set_description(c, "StaticTokenCredential");
    return c;
}

/* ---- caller function ---------------------------------------------------------------------- */

typedef struct function_acquire {
    sr_acquire a;
    int ref;
    int asked;
    int answered;
} function_acquire;

static sr_step_kind function_step(sr_op *op, double now, sr_response *resp, sr_step *out)
{
    function_acquire *f = (function_acquire *)op;
    (void)resp, (void)now;
    if (!f->asked) {
        f->asked = 1;
        out->callback = f->ref;
        return out->kind = SR_STEP_CALLBACK;
    }
    if (op->err.kind != SR_OK) return out->kind = SR_STEP_FAILED;
    if (!f->answered) {
        sr_error_set(&op->err, SR_E_INTERNAL, "the token function was not called");
        return out->kind = SR_STEP_FAILED;
    }
    return out->kind = SR_STEP_DONE;
}

/* value: "<expires_on> <token>" as the binding's wrapper encodes it. */
static void function_feed(sr_op *op, const char *v, size_t n, const char *error)
{
    function_acquire *f = (function_acquire *)op;
    f->answered = 1;
    if (!v) {
        sr_error_set(&op->err, SR_E_CREDENTIAL_UNAVAILABLE, "the token function failed: %s", error);
        return;
    }
    const char *sp = memchr(v, ' ', n);
    if (!sp || sp + 1 == v + n) {
        sr_error_set(&op->err, SR_E_CREDENTIAL_UNAVAILABLE, "the token function returned an empty token");
        return;
    }
    char num[32];
    size_t nl = (size_t)(sp - v);
    if (nl >= sizeof num) nl = sizeof num - 1;
    memcpy(num, v, nl);
    num[nl] = '\0';
    size_t tl = n - (size_t)(sp + 1 - v);
    if (!(f->a.token.value = malloc(tl + 1))) {
        sr_error_set(&op->err, SR_E_NO_MEMORY, "out of memory");
        return;
    }
    memcpy(f->a.token.value, sp + 1, tl);
    f->a.token.value[tl] = '\0';
    f->a.token.len = tl;
    f->a.token.expires_on = strtod(num, NULL);
}

static const sr_op_type function_acquire_type = { "token_function", function_step, function_feed, plain_acquire_destroy };

static sr_op *function_acquire_new(sr_credential *c, const sr_acquire_ctx *ctx, sr_error *err)
{
    (void)ctx;
    function_acquire *f = (function_acquire *)sr_acquire_alloc(sizeof *f, &function_acquire_type, err);
    if (!f) return NULL;
    f->ref = *(int *)c->impl;
    return &f->a.base;
}

static const sr_credential_vt function_vt = { SR_CRED_FUNCTION, "FunctionCredential", function_acquire_new, free, 0 };

sr_credential *sr_credential_function_new(int callback_ref, sr_error *err)
{
    int *ref = malloc(sizeof *ref);
    if (!ref) {
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    *ref = callback_ref;
    sr_credential *c = sr_credential_alloc(&function_vt, ref, NULL, err);
    if (c) sr_credential_set_description(c, "FunctionCredential");
    return c;
}

/* ---- unavailable -------------------------------------------------------------------------- */

static sr_step_kind unavailable_step(sr_op *op, double now, sr_response *resp, sr_step *out)
{
    (void)now, (void)resp, (void)op;
    return out->kind = SR_STEP_FAILED;
}

static const sr_op_type unavailable_type = { "unavailable", unavailable_step, immediate_feed, plain_acquire_destroy };

static sr_op *unavailable_acquire(sr_credential *c, const sr_acquire_ctx *ctx, sr_error *err)
{
    (void)ctx;
    sr_acquire *a = sr_acquire_alloc(sizeof *a, &unavailable_type, err);
    if (!a) return NULL;
    sr_error_set(&a->base.err, SR_E_CREDENTIAL_UNAVAILABLE, "%s: %s", c->name, (const char *)c->impl);
    return &a->base;
}

static const sr_credential_vt unavailable_vt = { SR_CRED_UNAVAILABLE, "UnavailableCredential", unavailable_acquire,
                                                 free, 0 };

sr_credential *sr_credential_unavailable_new(const char *name, const char *reason, sr_error *err)
{
    char *r = strdup(reason);
    if (!r) {
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    sr_credential *c = sr_credential_alloc(&unavailable_vt, r, NULL, err);
    if (c && !sr_credential_set_name(c, name)) {
        sr_credential_release(c);
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    return c;
}
