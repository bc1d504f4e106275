/* temp_key.c: fetching, caching and expiring the temporary access key. */
#include "temp_key.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credential_impl.h"
#include "json.h"

#define WAIT_POLL 0.05
#define IN_FLIGHT_STALE 600.0

#define ROLE_HINT                                                                                             \
    "the app server's identity needs the 'SignalR App Server' or 'SignalR Service Owner' role on the SignalR " \
    "resource (or its resource group, subscription or management group); new role assignments can take up to 30 minutes to take effect"

void sr_temp_key_policy_default(sr_temp_key_policy *p)
{
    p->refresh_after = 55 * 60;
    p->max_age = 90 * 60;
    p->attempts = 3;
    p->retry_interval = 3;
    p->unauthorized_wait = 5 * 60;
    p->transient_wait = 30;
}

struct sr_temp_key {
    int refs;
    sr_credential *cred;
    char *url;
    sr_temp_key_policy pol;
    int has_key;
    sr_signing_key key;
    double issued_at;
    double next_attempt;        /* no round before this (after a failed round) */
    sr_error last_err;          /* why the last round failed */
    int last_failed;
    int last_failed_token;      /* ... at the Entra token, not at the accessKey request */
    int in_flight;
    double in_flight_since;
    unsigned long ticket;
    unsigned long fetches;
};

sr_temp_key *sr_temp_key_new(sr_credential *cred, const char *url, const sr_temp_key_policy *p, sr_error *err)
{
    sr_temp_key *k = calloc(1, sizeof *k);
    if (!k || !(k->url = strdup(url))) {
        free(k);
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    k->refs = 1;
    k->cred = sr_credential_retain(cred);
    if (p) k->pol = *p;
    else sr_temp_key_policy_default(&k->pol);
    sr_error_clear(&k->last_err);
    return k;
}

static void drop_key(sr_temp_key *k)
{
    if (k->has_key) sr_signing_key_free(&k->key);
    k->has_key = 0;
}

void sr_temp_key_release(sr_temp_key *k)
{
    if (!k || --k->refs > 0) return;
    drop_key(k);
    sr_credential_release(k->cred);
    free(k->url);
    free(k);
}

static int key_valid(const sr_temp_key *k, double now)
{
    return k->has_key && now - k->issued_at < k->pol.max_age;
}

static int round_in_flight(const sr_temp_key *k, double now)
{
    return k->in_flight && now - k->in_flight_since < IN_FLIGHT_STALE;
}

sr_signing_key *sr_temp_key_get(sr_temp_key *k, double now, int *fetch, sr_error *err)
{
    *fetch = 0;
    if (key_valid(k, now)) {
        *fetch = now - k->issued_at >= k->pol.refresh_after && now >= k->next_attempt && !round_in_flight(k, now);
        return &k->key;
    }
    if (k->has_key) drop_key(k); /* past its 90 minutes: never used again */
    if (round_in_flight(k, now) || now >= k->next_attempt) {
        *fetch = 1;
        return NULL;
    }
    *err = k->last_err;
    sr_buf m;
    sr_buf_init(&m);
    if (k->last_failed_token)
        sr_buf_addf(&m, "no valid temporary access key (next attempt in %.0f s): the Microsoft Entra token for "
                        "GET %s could not be obtained: %s",
                    k->next_attempt - now, k->url, k->last_err.message);
    else
        sr_buf_addf(&m, "no valid temporary access key (next attempt in %.0f s): %s", k->next_attempt - now,
                    k->last_err.message);
    sr_error_replace_message(err, m.data);
    sr_buf_free(&m, 0);
    return NULL;
}

/* ---- the fetch round --------------------------------------------------------------------- */

typedef enum tk_phase { TK_START, TK_WAIT_OTHER, TK_TOKEN, TK_SENT, TK_SLEEP } tk_phase;

typedef struct tk_op {
    sr_op base;
    sr_temp_key *k;
    tk_phase phase;
    unsigned long ticket;
    int attempts_left;
    double wait_started;
    double sent_at;
    sr_op *token;
    sr_request req;
} tk_op;

static void end_round(tk_op *t)
{
    if (t->ticket && t->k->ticket == t->ticket) t->k->in_flight = 0;
    t->ticket = 0;
}

static void drop_token_op(tk_op *t)
{
    if (t->token) t->token->type->destroy(t->token);
    t->token = NULL;
}

static int is_transient(const sr_error *e)
{
    return e->kind == SR_E_NETWORK || e->kind == SR_E_TIMEOUT || e->kind == SR_E_SERVICE_ERROR ||
           e->kind == SR_E_THROTTLED;
}

/* The round failed: keep the old key if it is valid, remember why, pause. */
static sr_step_kind round_failed(tk_op *t, double now, sr_step *out)
{
    sr_temp_key *k = t->k;
    int transient = is_transient(&t->base.err);
    if (transient && t->attempts_left > 0) {
        t->phase = TK_SLEEP;
        out->seconds = k->pol.retry_interval;
        return out->kind = SR_STEP_SLEEP;
    }
    double wait = transient ? k->pol.transient_wait : k->pol.unauthorized_wait;
    if (t->base.err.retry_after > wait) wait = t->base.err.retry_after;
    k->last_err = t->base.err;
    k->last_failed = 1;
    k->last_failed_token = t->phase == TK_TOKEN;
    k->next_attempt = now + wait;
    end_round(t);
    /* A failed refresh is not a failure while the current key is still valid. */
    return out->kind = key_valid(k, now) ? SR_STEP_DONE : SR_STEP_FAILED;
}

/* Starts an attempt with a token op (from the credential's cache, usually). */
static int start_attempt(tk_op *t)
{
    t->attempts_left--;
    sr_error_clear(&t->base.err);
    drop_token_op(t);
    if (!(t->token = sr_credential_token_op_new(t->k->cred, &t->base.err))) return 0;
    t->phase = TK_TOKEN;
    return 1;
}

static int build_request(tk_op *t, const char *token, sr_error *err)
{
    sr_buf auth;
    sr_buf_init(&auth);
    sr_buf_reserve(&auth, strlen(token) + 16);
    sr_buf_adds(&auth, "Bearer ");
    sr_buf_adds(&auth, token);
    sr_request_free(&t->req);
    int ok = !auth.oom && sr_request_init(&t->req, "GET", t->k->url, err) &&
             sr_request_add_header(&t->req, "Authorization", auth.data, 1) &&
             sr_request_add_header(&t->req, "Accept", "application/json", 0);
    sr_buf_free(&auth, 1);
    if (!ok && err->kind == SR_OK) sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    return ok;
}

/* {"KeyId": "...", "AccessKey": "..."}: both required non-empty strings. */
static int install_key(tk_op *t, const sr_response *resp, sr_error *err)
{
    cJSON *root = cJSON_ParseWithLength(resp->body.data, resp->body.len);
    const char *kid = cJSON_IsObject(root) ? sr_json_get_string(root, "KeyId") : NULL;
    const char *key = cJSON_IsObject(root) ? sr_json_get_string(root, "AccessKey") : NULL;
    int ok;
    if (!cJSON_IsObject(root))
        ok = sr_error_set(err, SR_E_SERVICE_ERROR, "GET %s answered 200 with a body that is not a JSON object",
                          t->k->url);
    else if (!kid || !*kid || !key || !*key)
        ok = sr_error_set(err, SR_E_SERVICE_ERROR, "GET %s answered 200 without the required %s field", t->k->url,
                          !kid || !*kid ? "KeyId" : "AccessKey");
    else {
        sr_signing_key fresh;
        memset(&fresh, 0, sizeof fresh);
        ok = sr_signing_key_init(&fresh, kid, key, strlen(key), err);
        if (ok) {
            drop_key(t->k);
            t->k->key = fresh;
            t->k->has_key = 1;
            t->k->issued_at = t->sent_at; /* conservative: the service issued it after we asked */
            t->k->fetches++;
            t->k->last_failed = 0;
            t->k->next_attempt = 0;
            sr_error_clear(&t->k->last_err);
        }
    }
    if (key) sr_wipe((char *)key, strlen(key));
    cJSON_Delete(root);
    return ok;
}

static void http_failure(tk_op *t, const sr_response *resp, double now)
{
    sr_error *err = &t->base.err;
    sr_credential_http_error(err, "temporary access key", &t->req, resp, NULL, now);
    switch (resp->status) {
    case 401:
        err->kind = SR_E_UNAUTHORIZED;
        sr_error_hint(err, "Azure SignalR Service rejected the Microsoft Entra token of %s: check that the "
                           "credential's tenant is the resource's tenant and the authority host is right; %s",
                      sr_credential_describe(t->k->cred), ROLE_HINT);
        sr_credential_invalidate(t->k->cred); /* the next round asks Entra again */
        break;
    case 403:
        err->kind = SR_E_FORBIDDEN;
        sr_error_hint(err, "%s", ROLE_HINT);
        break;
    case 404:
        err->kind = SR_E_NOT_FOUND;
        sr_error_hint(err, "unable to access SignalR service: check the endpoint");
        break;
    default:
        break;
    }
}

static sr_step_kind tk_step(sr_op *op, double now, sr_response *resp, sr_step *out)
{
    tk_op *t = (tk_op *)op;
    sr_temp_key *k = t->k;
    for (;;) {
        switch (t->phase) {
        case TK_START:
            if (round_in_flight(k, now)) {
                t->phase = TK_WAIT_OTHER;
                t->wait_started = now;
                continue;
            }
            k->in_flight = 1;
            k->in_flight_since = now;
            if (++k->ticket == 0) k->ticket = 1;
            t->ticket = k->ticket;
            t->attempts_left = key_valid(k, now) ? 1 : (k->pol.attempts > 0 ? k->pol.attempts : 1);
            if (!start_attempt(t)) return round_failed(t, now, out);
            resp = NULL;
            continue;
        case TK_WAIT_OTHER:
            /* Another coroutine is fetching: when it is done the caller asks again. */
            if (!round_in_flight(k, now)) return out->kind = SR_STEP_DONE;
            out->seconds = WAIT_POLL;
            return out->kind = SR_STEP_SLEEP;
        case TK_SLEEP:
            if (!start_attempt(t)) return round_failed(t, now, out);
            resp = NULL;
            continue;
        case TK_TOKEN: {
            sr_step_kind sk = sr_op_step(t->token, now, resp, out);
            if (sk != SR_STEP_DONE && sk != SR_STEP_FAILED) return sk;
            if (sk == SR_STEP_FAILED) {
                t->base.err = t->token->err;
                drop_token_op(t);
                return round_failed(t, now, out);
            }
            int ok = build_request(t, sr_token_op_token(t->token), &t->base.err);
            drop_token_op(t);
            if (!ok) return round_failed(t, now, out);
            t->phase = TK_SENT;
            t->sent_at = now;
            out->request = &t->req;
            return out->kind = SR_STEP_REQUEST;
        }
        case TK_SENT:
            if (!resp) {
                sr_error_set(&op->err, SR_E_INTERNAL, "the access key fetch was stepped without a response");
                return round_failed(t, now, out);
            }
            if (resp->tx_error != SR_TX_OK) {
                sr_tx_error_set(&op->err, &t->req, resp);
                return round_failed(t, now, out);
            }
            if (resp->status == 200) {
                if (!install_key(t, resp, &op->err)) return round_failed(t, now, out);
                end_round(t);
                return out->kind = SR_STEP_DONE;
            }
            http_failure(t, resp, now);
            return round_failed(t, now, out);
        }
    }
}

static void tk_feed(sr_op *op, const char *v, size_t n, const char *error)
{
    tk_op *t = (tk_op *)op;
    if (t->token) t->token->type->feed(t->token, v, n, error);
}

static void tk_destroy(sr_op *op)
{
    tk_op *t = (tk_op *)op;
    end_round(t);
    drop_token_op(t);
    sr_request_free(&t->req);
    sr_temp_key_release(t->k);
    free(t);
}

static const sr_op_type tk_type = { "temporary_access_key", tk_step, tk_feed, tk_destroy };

sr_op *sr_temp_key_op_new(sr_temp_key *k, sr_error *err)
{
    tk_op *t = calloc(1, sizeof *t);
    if (!t) {
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    t->base.type = &tk_type;
    sr_error_clear(&t->base.err);
    k->refs++;
    t->k = k;
    return &t->base;
}

const char *sr_temp_key_id(const sr_temp_key *k) { return k->has_key ? k->key.kid : NULL; }
double sr_temp_key_issued_at(const sr_temp_key *k) { return k->has_key ? k->issued_at : 0; }
double sr_temp_key_next_attempt(const sr_temp_key *k) { return k->next_attempt; }
unsigned long sr_temp_key_fetches(const sr_temp_key *k) { return k->fetches; }
const sr_error *sr_temp_key_last_error(const sr_temp_key *k) { return k->last_failed ? &k->last_err : NULL; }
