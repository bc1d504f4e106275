/* l_credential.h: the credential userdata shared by the binding files. */
#ifndef SR_L_CREDENTIAL_H
#define SR_L_CREDENTIAL_H

#include "client_token.h"
#include "credential.h"
#include "l_common.h"

typedef enum l_credential_kind {
    L_CRED_ACCESS_KEY = 1,
    L_CRED_ENTRA                /* any Microsoft Entra ID credential: see `entra` */
} l_credential_kind;

typedef struct l_credential {
    l_credential_kind kind;
    int ready;                  /* the C resources below are initialised */
    sr_signing_key key;         /* access key: HS256/HS512 states, prepared once */
    sr_credential *entra;       /* Entra kinds: the C-core credential and its token cache
                                 * (use sr_credential_token_op_new(entra, &err)) */
    const char *lua_kind;       /* what cred:kind() answers: "client_secret", "default", ... */
    int callback_ref;           /* a Lua function the credential calls (CALLBACK steps), or LUA_NOREF */
    int anchors_ref;            /* a table keeping member credentials alive (chains), or LUA_NOREF */
} l_credential;

/* Creates an access-key credential userdata on the stack; returns NULL with err set. */
SR_HIDDEN l_credential *l_credential_push_access_key(lua_State *L, const char *key, size_t len, sr_error *err);
/* Pushes an empty Entra credential userdata (metatable set); the caller sets `entra`. */
SR_HIDDEN l_credential *l_credential_push_entra(lua_State *L, const char *lua_kind);
SR_HIDDEN l_credential *l_credential_check(lua_State *L, int idx, int arg, const char *what);

/* Builds the credential an Entra connection string names (AuthType azure, azure.msi,
 * azure.app, aad) and pushes it; returns NULL with err set. Reads AZURE_* variables from the
 * process environment (the default chain, managed identity, AZURE_AUTHORITY_HOST). */
struct sr_connstr;
SR_HIDDEN l_credential *l_credential_push_for_connstr(lua_State *L, const struct sr_connstr *cs, sr_error *err);

#endif
