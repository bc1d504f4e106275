/* l_entra.h: the Microsoft Entra ID side of a service object (l_service_entra.c): the
 * temporary access key negotiate signs with, svc:get_token(), svc:entra_status(). */
#ifndef SR_L_ENTRA_H
#define SR_L_ENTRA_H

#include "l_service.h"

/* After the endpoint and credential are set: reads options.temporary_key (the options
 * table at opts_idx) and, for an Entra credential, creates the temporary key manager.
 * Returns 0 with err set. */
SR_HIDDEN int l_entra_service_init(lua_State *L, l_service *s, int opts_idx, sr_error *err);
/* The key to sign a client token with: fetches one (through the service's driver) when
 * none is valid or the refresh is due. NULL with err set means fail closed. With
 * svc:return_ops(true) a due fetch is not run: NULL with err clear and the fetch op pushed.
 * The service userdata must be at svc_idx. */
SR_HIDDEN sr_signing_key *l_entra_signing_key(lua_State *L, l_service *s, int svc_idx, sr_error *err);
SR_HIDDEN void l_entra_free(l_service *s);
/* svc:get_token() -> token, expires_on | nil, err */
SR_HIDDEN int l_service_get_token(lua_State *L);
/* svc:entra_status() -> { key_id, key_issued_at, key_fetches, next_attempt, last_error, ... } */
SR_HIDDEN int l_service_entra_status(lua_State *L);
/* svc:temporary_key_op() -> op | nil: the fetch negotiate would run now (nil when the key is
 * fresh, or when failing closed). A driver that must not block inside negotiate (OpenResty
 * cosockets cannot yield across a C call) steps this op first; negotiate then signs at once. */
SR_HIDDEN int l_service_temporary_key_op(lua_State *L);

#endif
