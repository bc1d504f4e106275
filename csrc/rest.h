/* rest.h: the data-plane REST API as sans-I/O ops: one request per operation (method,
 * path, query, headers, body), the access-key JWT or the Entra bearer, retries through
 * retry.h, and each answer mapped to a result or an error object. */
#ifndef SR_REST_H
#define SR_REST_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "client_token.h"
#include "endpoint.h"
#include "op.h"
#include "retry.h"

/* The service refuses larger bodies (reference: "body 1 MB"). */
#define SR_REST_MAX_BODY (1024u * 1024u)
/* Group names are 1..1024 characters. */
#define SR_REST_MAX_GROUP 1024

typedef enum sr_rest_kind {
    SR_REST_SEND_TO_ALL = 0,
    SR_REST_SEND_TO_USER,
    SR_REST_SEND_TO_GROUP,
    SR_REST_SEND_TO_CONNECTION,
    SR_REST_CLOSE_ALL,
    SR_REST_CLOSE_USER,
    SR_REST_CLOSE_GROUP,
    SR_REST_CLOSE_CONNECTION,
    SR_REST_CONNECTION_EXISTS,
    SR_REST_USER_EXISTS,
    SR_REST_GROUP_EXISTS,
    SR_REST_ADD_CONNECTION_TO_GROUP,
    SR_REST_REMOVE_CONNECTION_FROM_GROUP,
    SR_REST_REMOVE_CONNECTION_FROM_ALL_GROUPS,
    SR_REST_ADD_USER_TO_GROUP,
    SR_REST_REMOVE_USER_FROM_GROUP,
    SR_REST_USER_IN_GROUP,
    SR_REST_REMOVE_USER_FROM_ALL_GROUPS,
    SR_REST_GENERATE_TOKEN,         /* 2024-12-01 (since 2023-07-01) */
    SR_REST_LIST_GROUP_CONNECTIONS, /* 2024-12-01 */
    SR_REST_INVOKE,                 /* 2024-12-01 */
    SR_REST_EXECUTE,                /* 2024-12-01 (since 2023-07-01) */
    SR_REST_KIND_COUNT
} sr_rest_kind;

typedef struct sr_str {
    const char *s;              /* NULL = not given */
    size_t n;
} sr_str;

typedef struct sr_strv {
    const sr_str *v;
    size_t n;
} sr_strv;

/* One call's parameters; each operation reads the ones it needs. Strings are copied. */
typedef struct sr_rest_call {
    sr_rest_kind kind;
    sr_str hub;
    sr_str user;                /* user id (send, groups, generate_token's userId) */
    sr_str group;
    sr_str connection;
    sr_strv excluded;           /* connection ids left out of a send or close */
    sr_str reason;              /* close */
    long long ttl;              /* add_user_to_group: seconds, < 0 = not given */
    sr_str body;                /* JSON body (PayloadMessage or the command list) */
    int minutes;                /* generate_token: minutesToExpire, 0 = service default */
    sr_strv roles, groups;      /* generate_token */
    int page_size;              /* list: maxpagesize, 0 = service default */
    long long top;              /* list: at most this many in all, 0 = no limit */
    sr_str next_link;           /* list: the previous page's nextLink */
    sr_str filter;              /* execute: OData filter */
} sr_rest_call;

/* How the request proves who sends it. */
typedef struct sr_rest_auth {
    /* Access key: an HS256 JWT is signed when the op is created (aud = the request URL up
     * to api-version, as the management SDK signs it; nameid = server_name). */
    sr_signing_key *key;
    const char *server_name;    /* only [A-Za-z0-9._-]: written into JSON as is */
    /* Microsoft Entra ID: a token sub-op per attempt (the credential's cache makes it
     * immediate when a token is fresh); its token is sent as the bearer. */
    void *credential;
    sr_op *(*token_op_new)(void *credential, sr_error *err);
    const char *(*token_of)(const sr_op *token_op);
    /* Optional: the op holds a reference while it lives; a 401 drops the cached token and
     * the call is tried once more with a new one. */
    void *(*retain)(void *credential);
    void (*release)(void *credential);
    void (*invalidate)(void *credential);
} sr_rest_auth;

/* The checks sr_rest_op_new makes before building anything (a batch makes them when a call
 * is queued and builds the op when its turn comes): 1, or 0 with err set. */
int sr_rest_call_check(const sr_rest_call *call, const sr_rest_auth *auth, sr_error *err);
/* Checks the call and builds its op. NULL with err (invalid_argument for a bad user id,
 * group name, connection id, ttl or a body over 1 MB). `now` signs the access-key JWT and
 * seeds nothing else; retry jitter is seeded from `seed`. */
sr_op *sr_rest_op_new(const sr_endpoint *ep, const sr_rest_call *call, const sr_rest_auth *auth,
                      const sr_retry_policy *retry, double now, unsigned long long seed,
                      sr_error *err);

/* sr_rest_op_new for a call that passed sr_rest_call_check already (a batch checks when
 * a call is queued and builds the op when its turn comes). */
sr_op *sr_rest_op_new_checked(const sr_endpoint *ep, const sr_rest_call *call, const sr_rest_auth *auth,
                              const sr_retry_policy *retry, double now, unsigned long long seed,
                              sr_error *err);
/* After DONE. Existence checks, add/remove connection to/from a group: 1 or 0 (a 404
 * with a "does not exist" x-ms-error-code). Other calls: 1. */
int sr_rest_result_bool(const sr_op *op);
/* generate_token: the token and its expiry (epoch seconds, the JWT's exp). */
const char *sr_rest_result_token(const sr_op *op, double *expires_at);
/* generate_token: the client URL the token is for ({client endpoint}/client/?hub=...). */
const char *sr_rest_result_client_url(const sr_op *op);
/* list_group_connections and invoke: the parsed answer (owned by the op). */
const cJSON *sr_rest_result_json(const sr_op *op);
/* How many requests the call took (1 + retries). */
int sr_rest_attempts(const sr_op *op);
sr_rest_kind sr_rest_op_kind(const sr_op *op);

/* The name users see for an operation ("send_to_all", ...). */
const char *sr_rest_kind_name(sr_rest_kind k);

#endif
