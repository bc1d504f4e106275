/* l_op.h: running sans-I/O ops from Lua: the blocking libcurl driver, and op userdata
 * that a Lua driver (OpenResty cosockets) steps itself. */
#ifndef SR_L_OP_H
#define SR_L_OP_H

#include "l_common.h"
#include "op.h"
#include "transport.h"

#define SR_OP_MT "signalr.op"

typedef struct l_op l_op;
struct l_op {
    sr_op *op;                  /* owned; destroyed by __gc */
    int (*push)(lua_State *L, l_op *u); /* pushes a DONE op's results, returns their number */
    int ref;                    /* a registry reference the pusher may use, or LUA_NOREF */
    sr_response resp;
    int finished;
    int again;                  /* after driving it, call the method again (it only
                                 * prepared what the method needs, e.g. a temporary key) */
};

/* Pushes an empty op userdata (metatable set) so the op it will own is freed on any error. */
SR_HIDDEN l_op *l_op_new(lua_State *L);
/* Drives u->op to completion with transport t; pushes the op's results or nil, err. */
SR_HIDDEN int l_op_run(lua_State *L, l_op *u, sr_transport *t, double (*now)(lua_State *, void *), void *clock_ud);
/* Calls the Lua function behind a CALLBACK step (registry ref) and feeds its string
 * result, or why there is none, to the op. */
SR_HIDDEN void l_op_run_callback(lua_State *L, sr_op *op, int ref);
SR_HIDDEN void l_op_open(lua_State *L);

#endif
