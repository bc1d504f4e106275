/* l_credential.h: the credential userdata shared by the binding files. */
#ifndef SR_L_CREDENTIAL_H
#define SR_L_CREDENTIAL_H

#include "client_token.h"
#include "l_common.h"

typedef enum l_credential_kind {
    L_CRED_ACCESS_KEY = 1
} l_credential_kind;

typedef struct l_credential {
    l_credential_kind kind;
    int ready;                  /* the C resources below are initialised */
    sr_signing_key key;         /* access key: HS256/HS512 states, prepared once */
} l_credential;

/* Creates an access-key credential userdata on the stack; returns NULL with err set. */
SR_HIDDEN l_credential *l_credential_push_access_key(lua_State *L, const char *key, size_t len, sr_error *err);
SR_HIDDEN l_credential *l_credential_check(lua_State *L, int idx, int arg, const char *what);

#endif
