/* temp_key.h: the temporary access key an Entra-authenticated app server signs client
 * tokens with: GET {server endpoint}/api/v1/auth/accessKey with the Entra token answers
 * {"KeyId","AccessKey"}. The service honours a key for 90 minutes; the C# server SDK
 * fetches a new one every 55 minutes, makes 3 attempts 3 s apart, and waits 5 minutes
 * after an authorization failure. One manager per service endpoint. */
#ifndef SR_TEMP_KEY_H
#define SR_TEMP_KEY_H

#include "client_token.h"
#include "credential.h"
#include "op.h"

typedef struct sr_temp_key_policy {
    double refresh_after;       /* fetch a new key once the current one is this old (3300 s) */
    double max_age;             /* never sign with a key older than this (5400 s) */
    int attempts;               /* attempts per round when no valid key is left (3) */
    double retry_interval;      /* between those attempts (3 s) */
    double unauthorized_wait;   /* after a 401/403 or a credential failure (300 s) */
    double transient_wait;      /* after a round of transient failures (30 s) */
} sr_temp_key_policy;

void sr_temp_key_policy_default(sr_temp_key_policy *p);

typedef struct sr_temp_key sr_temp_key;

/* Retains cred. `url` is the accessKey URL (sr_endpoint_access_key_url). */
sr_temp_key *sr_temp_key_new(sr_credential *cred, const char *url, const sr_temp_key_policy *p, sr_error *err);
/* Reference counted (the service holds one, each op another); the last release wipes the key. */
void sr_temp_key_release(sr_temp_key *k);

/* The key to sign with at `now`, or NULL. *fetch = 1 says a round should run now
 * (sr_temp_key_op_new; then ask again): with a valid key it is the refresh-ahead, without
 * one it is the only way forward. NULL with *fetch = 0 means fail closed: err says what
 * failed, which role is needed, and when the next attempt will be. */
sr_signing_key *sr_temp_key_get(sr_temp_key *k, double now, int *fetch, sr_error *err);

/* One fetch round. With a valid key left it makes a single attempt (negotiate keeps using
 * the old key, the next round comes after a pause); without one it makes up to
 * `attempts`. DONE when a valid key exists afterwards (new, or the old one after a failed
 * refresh), FAILED (op->err) when none does; the caller then asks sr_temp_key_get again. */
sr_op *sr_temp_key_op_new(sr_temp_key *k, sr_error *err);

/* Diagnostics: the current key id (NULL when none), when it was fetched, rounds run. */
const char *sr_temp_key_id(const sr_temp_key *k);
double sr_temp_key_issued_at(const sr_temp_key *k);
double sr_temp_key_next_attempt(const sr_temp_key *k);
unsigned long sr_temp_key_fetches(const sr_temp_key *k);
const sr_error *sr_temp_key_last_error(const sr_temp_key *k);

#endif
