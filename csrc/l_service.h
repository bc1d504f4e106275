/* l_service.h: the service userdata (one SignalR endpoint plus its credential). */
#ifndef SR_L_SERVICE_H
#define SR_L_SERVICE_H

#include "endpoint.h"
#include "l_credential.h"
#include "l_op.h"
#include "transport.h"

typedef struct l_service {
    int ready;                  /* endpoint initialised */
    sr_endpoint ep;
    l_credential *cred;         /* kept alive by cred_ref */
    int cred_ref;
    int clock_ref;              /* a Lua clock function, or LUA_NOREF */
    int driver_ref;             /* a Lua op driver called from C, or LUA_NOREF: libcurl */
    int return_ops;             /* I/O methods return the op for Lua to drive (OpenResty:
                                 * cosockets cannot yield across a C call) */
    sr_transport_opts topts;    /* ca_file is owned (strdup) */
    sr_transport *transport;    /* created at the first request */
    struct sr_temp_key *temp_key; /* Entra: the temporary access key manager (l_service_entra.c) */
    /* The client URL of the last hub negotiated: most servers negotiate one hub all day.
     * The hub string is kept referenced, so pointer equality means the same string. */
    const char *url_cache_hub;
    int url_cache_hub_ref, url_cache_url_ref;
    int max_retries;            /* retry policy for calls that are safe to repeat */
    double retry_delay, max_retry_delay;
} l_service;

SR_HIDDEN l_service *l_service_check(lua_State *L, int idx);
/* Seconds since the epoch from the service's clock (injectable for tests). */
SR_HIDDEN double l_service_now(lua_State *L, l_service *s);
/* Runs the op in u (on the stack at u_idx) to completion: with the Lua driver when one is
 * installed, else blocking on libcurl. Pushes the op's results or nil, err. */
SR_HIDDEN int l_service_run_op(lua_State *L, l_service *s, l_op *u, int u_idx);

#endif
