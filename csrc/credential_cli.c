/* credential_cli.c: the Azure CLI's signed-in account (`az account get-access-token`).
 * Running a process is I/O the core does not do: the op asks the binding's runner through
 * a CALLBACK step (blocking io.popen by default; under OpenResty a runner may use
 * ngx.pipe) and parses the JSON it returns. */
#include "credential_impl.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"

#define UNAVAILABLE_PREFIX "unavailable: "

typedef struct cli_impl {
    char *tenant;
    int callback_ref;
} cli_impl;

static void cli_free(void *p)
{
    cli_impl *c = p;
    if (!c) return;
    free(c->tenant);
    free(c);
}

typedef struct cli_acquire {
    sr_acquire a;
    sr_credential *c;
    int asked;
    int answered;
} cli_acquire;

static sr_step_kind cli_step(sr_op *op, double now, sr_response *resp, sr_step *out)
{
    cli_acquire *q = (cli_acquire *)op;
    (void)now, (void)resp;
    if (!q->asked) {
        q->asked = 1;
        out->callback = ((cli_impl *)q->c->impl)->callback_ref;
        return out->kind = SR_STEP_CALLBACK;
    }
    if (!q->answered && op->err.kind == SR_OK)
        sr_error_set(&op->err, SR_E_INTERNAL, "AzureCliCredential: the az runner was not called");
    return out->kind = op->err.kind == SR_OK ? SR_STEP_DONE : SR_STEP_FAILED;
}

/* Older az prints only expiresOn, in local time: "2023-10-31 12:00:00.000000". */
static int local_time(const char *s, double *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
    if (!rest) return 0;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    if (t == (time_t)-1) return 0;
    *out = (double)t;
    return 1;
}

static void cli_feed(sr_op *op, const char *v, size_t n, const char *error)
{
    cli_acquire *q = (cli_acquire *)op;
    q->answered = 1;
    if (!v) {
        const char *why = error ? error : "az failed";
        int unavailable = strncmp(why, UNAVAILABLE_PREFIX, strlen(UNAVAILABLE_PREFIX)) == 0;
        if (unavailable) why += strlen(UNAVAILABLE_PREFIX);
        sr_error_set(&op->err, unavailable ? SR_E_CREDENTIAL_UNAVAILABLE : SR_E_AUTHENTICATION_FAILED,
                     "AzureCliCredential: %s", why);
        if (unavailable) sr_error_hint(&op->err, "install the Azure CLI and run 'az login'");
        return;
    }
    sr_buf body;
    sr_buf_init(&body);
    sr_buf_add(&body, v, n);
    /* expires_on (epoch, az >= 2.54) first; the token's "now" does not matter for it. */
    if (!sr_token_parse(&body, "accessToken", 0, &q->a.token, "AzureCliCredential", &op->err)) {
        cJSON *root = cJSON_ParseWithLength(v, n);
        const char *tok = root ? sr_json_get_string(root, "accessToken") : NULL;
        const char *exp = root ? sr_json_get_string(root, "expiresOn") : NULL;
        double t;
        if (tok && *tok && exp && local_time(exp, &t) && (q->a.token.value = strdup(tok))) {
            q->a.token.len = strlen(tok);
            q->a.token.expires_on = t;
            sr_error_clear(&op->err);
        }
        if (tok) sr_wipe((char *)tok, strlen(tok));
        cJSON_Delete(root);
    }
    sr_buf_free(&body, 1);
}

static void cli_destroy(sr_op *op)
{
    sr_acquire_destroy_base((sr_acquire *)op);
    free(op);
}

static const sr_op_type cli_acquire_type = { "azure_cli", cli_step, cli_feed, cli_destroy };

static sr_op *cli_acquire_new(sr_credential *c, const sr_acquire_ctx *ctx, sr_error *err)
{
    (void)ctx;
    cli_acquire *q = (cli_acquire *)sr_acquire_alloc(sizeof *q, &cli_acquire_type, err);
    if (!q) return NULL;
    q->c = c;
    return &q->a.base;
}

static const sr_credential_vt cli_vt = { SR_CRED_AZURE_CLI, "AzureCliCredential", cli_acquire_new, cli_free, 0 };

sr_credential *sr_credential_azure_cli_new(const char *tenant_id, int callback_ref, sr_error *err)
{
    cli_impl *c = calloc(1, sizeof *c);
    if (!c || (tenant_id && !(c->tenant = strdup(tenant_id)))) {
        free(c);
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    c->callback_ref = callback_ref;
    sr_credential *cred = sr_credential_alloc(&cli_vt, c, tenant_id, err);
    if (cred) {
        if (tenant_id) sr_credential_set_description(cred, "AzureCliCredential (tenant %s)", tenant_id);
        else sr_credential_set_description(cred, "AzureCliCredential (the signed-in account's tenant)");
    }
    return cred;
}
