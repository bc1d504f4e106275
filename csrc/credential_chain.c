/* credential_chain.c: a chain of credentials (EnvironmentCredential, DefaultAzureCredential):
 * members are tried in order; "unavailable" moves on, any other failure stops the chain;
 * the member that worked is used from then on (as Azure Identity does). */
#include "credential_impl.h"

#include <stdlib.h>
#include <string.h>

#define CHAIN_MAX 16

typedef struct chain_impl {
    sr_credential *members[CHAIN_MAX];
    size_t n;
    int selected;               /* index of the member that worked, or -1 */
} chain_impl;

static void chain_free(void *p)
{
    chain_impl *ch = p;
    if (!ch) return;
    for (size_t i = 0; i < ch->n; i++) sr_credential_release(ch->members[i]);
    free(ch);
}

typedef struct chain_acquire {
    sr_acquire a;
    sr_credential *c;
    chain_impl *ch;
    size_t next;                /* next member to try */
    int current;                /* member in progress, or -1 */
    sr_op *sub;
    sr_buf tried;               /* "Member: why; Member: why" */
} chain_acquire;

static void drop_sub(chain_acquire *q)
{
    if (q->sub) q->sub->type->destroy(q->sub);
    q->sub = NULL;
}

static sr_step_kind all_unavailable(chain_acquire *q, sr_step *out)
{
    sr_error_set(&q->a.base.err, SR_E_CREDENTIAL_UNAVAILABLE, "%s: no credential in the chain could get a token: %s",
                 q->c->name, q->tried.len ? q->tried.data : "the chain is empty");
    sr_error_hint(&q->a.base.err, "configure one of them (see the reasons), e.g. set AZURE_TENANT_ID, "
                                  "AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or run 'az login'");
    return out->kind = SR_STEP_FAILED;
}

/* Starts the next member, skipping those that cannot start. */
static int start_next(chain_acquire *q)
{
    sr_acquire_ctx ctx = { .tenant = NULL, .scope = SR_SIGNALR_SCOPE, .in_chain = 1 };
    while (q->next < q->ch->n) {
        size_t i = q->next++;
        sr_error e;
        sr_error_clear(&e);
        if ((q->sub = sr_credential_acquire_op(q->ch->members[i], &ctx, &e))) {
            q->current = (int)i;
            return 1;
        }
        if (q->tried.len) sr_buf_adds(&q->tried, "; ");
        sr_buf_adds(&q->tried, e.message);
    }
    return 0;
}

static sr_step_kind chain_step(sr_op *op, double now, sr_response *resp, sr_step *out)
{
    chain_acquire *q = (chain_acquire *)op;
    for (;;) {
        if (!q->sub) {
            if (!start_next(q)) return all_unavailable(q, out);
            resp = NULL;
        }
        sr_step_kind k = sr_op_step(q->sub, now, resp, out);
        if (k != SR_STEP_DONE && k != SR_STEP_FAILED) return k;
        sr_acquire *sub = (sr_acquire *)q->sub;
        if (k == SR_STEP_DONE) {
            sr_token_move(&q->a.token, &sub->token);
            q->ch->selected = q->current;
            drop_sub(q);
            return out->kind = SR_STEP_DONE;
        }
        if (sub->base.err.kind != SR_E_CREDENTIAL_UNAVAILABLE) {
            /* A configured credential that failed: stop here, saying which one. */
            q->a.base.err = sub->base.err;
            if (q->tried.len) {
                sr_buf m;
                sr_buf_init(&m);
                sr_buf_addf(&m, "%s: %s (after: %s)", q->c->name, sub->base.err.message, q->tried.data);
                sr_error_replace_message(&q->a.base.err, m.data);
                sr_buf_free(&m, 0);
            }
            drop_sub(q);
            return out->kind = SR_STEP_FAILED;
        }
        if (q->tried.len) sr_buf_adds(&q->tried, "; ");
        sr_buf_adds(&q->tried, sub->base.err.message);
        drop_sub(q);
        if (q->ch->selected >= 0) return all_unavailable(q, out); /* the chosen one is gone */
    }
}

static void chain_feed(sr_op *op, const char *v, size_t n, const char *error)
{
    chain_acquire *q = (chain_acquire *)op;
    if (q->sub) q->sub->type->feed(q->sub, v, n, error);
}

static void chain_destroy(sr_op *op)
{
    chain_acquire *q = (chain_acquire *)op;
    drop_sub(q);
    sr_buf_free(&q->tried, 0);
    sr_acquire_destroy_base(&q->a);
    free(q);
}

static const sr_op_type chain_acquire_type = { "credential_chain", chain_step, chain_feed, chain_destroy };

static sr_op *chain_acquire_new(sr_credential *c, const sr_acquire_ctx *ctx, sr_error *err)
{
    (void)ctx;
    chain_acquire *q = (chain_acquire *)sr_acquire_alloc(sizeof *q, &chain_acquire_type, err);
    if (!q) return NULL;
    q->c = c;
    q->ch = c->impl;
    q->current = -1;
    sr_buf_init(&q->tried);
    if (q->ch->selected >= 0) q->next = (size_t)q->ch->selected;
    return &q->a.base;
}

static const sr_credential_vt chain_vt = { SR_CRED_CHAIN, "ChainedTokenCredential", chain_acquire_new, chain_free, 0 };

sr_credential *sr_credential_chain_new(const char *name, sr_credential **members, size_t n, sr_error *err)
{
    if (n > CHAIN_MAX) {
        sr_error_set(err, SR_E_INVALID_ARGUMENT, "a chain holds at most %d credentials", CHAIN_MAX);
        return NULL;
    }
    chain_impl *ch = calloc(1, sizeof *ch);
    if (!ch) {
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    ch->selected = -1;
    for (size_t i = 0; i < n; i++) ch->members[ch->n++] = sr_credential_retain(members[i]);
    sr_credential *c = sr_credential_alloc(&chain_vt, ch, NULL, err);
    if (!c) return NULL;
    if (name && !sr_credential_set_name(c, name)) {
        sr_credential_release(c);
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    sr_buf d;
    sr_buf_init(&d);
    sr_buf_adds(&d, c->name);
    sr_buf_adds(&d, " [");
    for (size_t i = 0; i < n; i++) {
        if (i) sr_buf_adds(&d, ", ");
        sr_buf_adds(&d, sr_credential_describe(members[i]));
    }
    sr_buf_addc(&d, ']');
    sr_credential_set_description(c, "%s", d.data);
    sr_buf_free(&d, 0);
    return c;
}
