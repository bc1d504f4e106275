/* credential.h: Microsoft Entra ID credentials in the C core. A credential knows how to
 * acquire a token (client secret, certificate, client assertion, managed identity, Azure
 * CLI, a chain of those, a static token) and keeps its own token cache. Everything that
 * needs I/O is a sans-I/O op (op.h): the token op below answers from the cache, or
 * acquires and caches a new token. Nothing here reads the environment or the clock: the
 * binding passes configuration in and every step carries `now`. */
#ifndef SR_CREDENTIAL_H
#define SR_CREDENTIAL_H

#include <stddef.h>

#include "error.h"
#include "op.h"

/* What Azure SignalR Service accepts: the scope for Entra token requests, and the resource
 * for managed-identity endpoints (the scope without "/.default"). */
#define SR_SIGNALR_SCOPE "https://signalr.azure.com/.default"
#define SR_SIGNALR_RESOURCE "https://signalr.azure.com"
#define SR_DEFAULT_AUTHORITY "https://login.microsoftonline.com"

typedef struct sr_credential sr_credential;

typedef enum sr_credential_kind {
    SR_CRED_STATIC = 1,         /* a fixed token (tests, custom setups) */
    SR_CRED_FUNCTION,           /* a caller-supplied function returns the token */
    SR_CRED_CLIENT_SECRET,
    SR_CRED_CERTIFICATE,
    SR_CRED_CLIENT_ASSERTION,   /* a caller-supplied assertion (function or file) */
    SR_CRED_WORKLOAD_IDENTITY,  /* Kubernetes: the federated token file */
    SR_CRED_MANAGED_IDENTITY,
    SR_CRED_AZURE_CLI,
    SR_CRED_CHAIN,              /* environment / default: the first credential that works */
    SR_CRED_UNAVAILABLE         /* a credential that is not configured here (in a chain) */
} sr_credential_kind;

/* ---- the contract the REST layer and negotiate rely on ------------------------------ */

/* An op that yields a bearer token for SR_SIGNALR_SCOPE: DONE at the first step, without
 * a request, when the cached token is fresh; otherwise it acquires one (forwarding the
 * credential's requests, sleeps and callbacks) and caches it. A failed refresh while the
 * cached token is still valid is swallowed: the op is DONE with the cached token. The op
 * keeps the credential alive. */
sr_op *sr_credential_token_op_new(sr_credential *c, sr_error *err);
/* After DONE: the token (owned by the op, wiped when it is destroyed). */
const char *sr_token_op_token(const sr_op *op);
/* After DONE: when the token expires (seconds since the epoch). */
double sr_token_op_expires_on(const sr_op *op);
/* After DONE: 1 when the token came from the cache without a request. */
int sr_token_op_from_cache(const sr_op *op);

/* The service rejected the token (401): drop it from the cache so the next op acquires a
 * new one. */
void sr_credential_invalidate(sr_credential *c);

/* ---- lifetime and description --------------------------------------------------------- */

/* Credentials are reference counted: the binding holds one reference, every op another. */
sr_credential *sr_credential_retain(sr_credential *c);
/* Drops a reference; the last one frees the credential and wipes its secrets. */
void sr_credential_release(sr_credential *c);

sr_credential_kind sr_credential_get_kind(const sr_credential *c);
/* The Azure Identity name, e.g. "ClientSecretCredential" (for messages). */
const char *sr_credential_name(const sr_credential *c);
/* The identity, without secrets: "ClientSecretCredential (tenant T, client C)". */
const char *sr_credential_describe(const sr_credential *c);
/* Completed token acquisitions (the cache's refreshes), for diagnostics and specs. */
unsigned long sr_credential_acquisitions(const sr_credential *c);

/* ---- construction --------------------------------------------------------------------- */

/* A fixed token valid until expires_on (0 = no known expiry: used as is until the service
 * rejects it). */
sr_credential *sr_credential_static_new(const char *token, size_t len, double expires_on, sr_error *err);

/* Asks a caller function (a CALLBACK step with this registry reference) for the token. The
 * callback's value is "<expires_on> <token>" (expires_on 0 = do not cache). */
sr_credential *sr_credential_function_new(int callback_ref, sr_error *err);

/* A credential that is not configured here: its token op fails with
 * SR_E_CREDENTIAL_UNAVAILABLE and `reason` (so a chain can skip it and say why). */
sr_credential *sr_credential_unavailable_new(const char *name, const char *reason, sr_error *err);

/* App registrations (client credentials grant against {authority}/{tenant}/oauth2/v2.0/token). */
typedef struct sr_app_config {
    const char *tenant_id;      /* GUID or domain name */
    const char *client_id;
    const char *authority_host; /* https URL; NULL = SR_DEFAULT_AUTHORITY */
    const char *name;           /* Azure Identity name for messages; NULL = the kind's own */
} sr_app_config;

sr_credential *sr_credential_client_secret_new(const sr_app_config *app, const char *secret, size_t len,
                                               sr_error *err);

typedef struct sr_client_cert sr_client_cert; /* assertion.h */
/* Takes ownership of cert (freed on failure too). */
sr_credential *sr_credential_certificate_new(const sr_app_config *app, sr_client_cert *cert, sr_error *err);

/* A client assertion read from `file` (re-read at most every 10 minutes: it rotates), or
 * from a CALLBACK (callback_ref >= 0) returning the assertion; exactly one of the two.
 * `workload` names it WorkloadIdentityCredential. */
sr_credential *sr_credential_client_assertion_new(const sr_app_config *app, const char *file, int callback_ref,
                                                  int workload, sr_error *err);

/* Reads a variable: a getenv-like lookup the binding supplies (the process environment,
 * or a table for tests). Returns NULL when unset or empty. */
typedef const char *(*sr_env_fn)(void *ud, const char *name);

typedef enum sr_mi_id_kind { SR_MI_SYSTEM = 0, SR_MI_CLIENT_ID, SR_MI_OBJECT_ID, SR_MI_RESOURCE_ID } sr_mi_id_kind;

typedef struct sr_mi_options {
    sr_mi_id_kind id_kind;
    const char *id;             /* client id, object (principal) id or resource id */
    const char *arc_key_dir;    /* where Azure Arc keeps its key files; NULL = the platform's */
    const char *authority_host; /* for the workload identity form; NULL = the default */
} sr_mi_options;

/* Detects the managed-identity source from the environment, first match wins: App Service
 * (IDENTITY_ENDPOINT + IDENTITY_HEADER), Azure Arc (IDENTITY_ENDPOINT + IMDS_ENDPOINT),
 * MSI_ENDPOINT (Cloud Shell, or App Service 2017 with MSI_SECRET), workload identity
 * variables (then it is a workload identity credential named ManagedIdentityCredential),
 * else IMDS (host from AZURE_POD_IDENTITY_AUTHORITY_HOST). Inside a chain, IMDS is probed
 * once with a 1 s timeout and no retries, and "no answer" means unavailable. */
sr_credential *sr_credential_managed_identity_new(const sr_mi_options *o, sr_env_fn env, void *env_ud,
                                                  sr_error *err);

/* `az account get-access-token`: runs through a CALLBACK (the binding's runner returns the
 * command's JSON output, or an error starting "unavailable: " when az is missing or not
 * logged in). */
sr_credential *sr_credential_azure_cli_new(const char *tenant_id, int callback_ref, sr_error *err);

/* A chain: the first member that yields a token wins and is used from then on; members
 * that are unavailable are skipped; any other failure stops the chain. The final error
 * lists every member tried and why. Retains the members. */
sr_credential *sr_credential_chain_new(const char *name, sr_credential **members, size_t n, sr_error *err);

#endif
