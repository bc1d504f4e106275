/* credential_impl.h: what each credential kind implements (internal to the credential
 * files). A kind supplies an acquire op: one token acquisition, with its own retries,
 * whose result the generic token op (credential.c) caches. */
#ifndef SR_CREDENTIAL_IMPL_H
#define SR_CREDENTIAL_IMPL_H

#include "buf.h"
#include "credential.h"
#include "http.h"
#include "token_cache.h"

/* Context of one acquisition. */
typedef struct sr_acquire_ctx {
    const char *tenant;         /* tenant to request the token from (NULL: the credential's) */
    const char *scope;
    int in_chain;               /* inside a chain: report "not here" as unavailable, probe fast */
} sr_acquire_ctx;

/* Every acquire op starts with this: the token op reads `token` after DONE. */
typedef struct sr_acquire {
    sr_op base;
    sr_token token;
} sr_acquire;

typedef struct sr_credential_vt {
    sr_credential_kind kind;
    const char *name;
    /* An op acquiring one token; NULL with err set when it cannot even start. */
    sr_op *(*acquire)(sr_credential *c, const sr_acquire_ctx *ctx, sr_error *err);
    void (*free)(void *impl);   /* wipes the kind's secrets */
    int half_life;              /* refresh long-lived tokens at half-life (managed identity) */
} sr_credential_vt;

struct sr_credential {
    int refs;
    const sr_credential_vt *vt;
    void *impl;
    const char *name;           /* vt->name, or an override (EnvironmentCredential, ...) */
    char *name_owned;
    char *description;          /* identity without secrets */
    char *tenant;               /* cache key part; NULL when the source has none */
    sr_token_cache cache;
};

/* Builds the shell of a credential (refs = 1); NULL when out of memory. */
sr_credential *sr_credential_alloc(const sr_credential_vt *vt, void *impl, const char *tenant, sr_error *err);
/* Sets the description with printf formatting (never pass a secret). */
void sr_credential_set_description(sr_credential *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
int sr_credential_set_name(sr_credential *c, const char *name);
/* Starts one acquisition (the chain uses it on its members). */
sr_op *sr_credential_acquire_op(sr_credential *c, const sr_acquire_ctx *ctx, sr_error *err);

/* Helpers shared by the kinds. */
char *sr_strdup_or_null(const char *s);
/* Wipes and frees a NUL-terminated secret. */
void sr_secret_free(char *s);
sr_acquire *sr_acquire_alloc(size_t size, const sr_op_type *type, sr_error *err);
void sr_acquire_destroy_base(sr_acquire *a);

/* Reads a token response: access_token plus expires_in or expires_on (epoch seconds as a
 * number or numeric string, or a date such as "06/20/2019 02:57:58 +00:00" or
 * "1/16/2020 5:24:12 AM +00:00"), optional refresh_in. `what` names the source in errors.
 * Access-token names differ (accessToken for az): pass token_field. */
int sr_token_parse(const sr_buf *body, const char *token_field, double now, sr_token *out, const char *what,
                   sr_error *err);
/* Parses "M/D/YYYY H:MM:SS [AM|PM] +HH:MM" into epoch seconds; 0 on failure. */
int sr_parse_mi_date(const char *s, double *out);

/* Fills err for an HTTP answer that is not a success, naming the credential and request:
 * the Entra error code (AADSTSnnnn) and the first line of its description when the body
 * is an Entra error. `secret` (may be NULL) must not appear in the message: a description
 * that contains it is dropped. Returns 0. */
int sr_credential_http_error(sr_error *err, const char *cred_name, const sr_request *req,
                             const sr_response *resp, const char *secret, double now);
/* Delay before retry number `attempt` (1-based) for a transient failure: exponential from
 * `base`, at most `cap`, or the server's Retry-After when given. */
double sr_retry_delay(const sr_response *resp, double now, int attempt, double base, double cap);
/* Replaces err's message with `msg`, truncated to fit (for messages that quote others). */
void sr_error_replace_message(sr_error *err, const char *msg);
/* Statuses worth another try: 408, 429, 5xx (and transport failures). */
int sr_status_transient(int status);

#endif
