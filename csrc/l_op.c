/* l_op.c: drivers for sans-I/O ops. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "l_op.h"

l_op *l_op_new(lua_State *L)
{
    l_op *u = lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    u->ref = LUA_NOREF;
    sr_response_init(&u->resp);
    luaL_getmetatable(L, SR_OP_MT);
    lua_setmetatable(L, -2);
    return u;
}

static void sleep_for(double seconds)
{
    if (seconds <= 0) return;
    struct timespec ts = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
}

void l_op_run_callback(lua_State *L, sr_op *op, int ref)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    if (lua_pcall(L, 0, 2, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        op->type->feed(op, NULL, 0, msg ? msg : "the function raised an error");
        lua_pop(L, 1);
        return;
    }
    if (lua_type(L, -2) == LUA_TSTRING) {
        size_t n;
        const char *v = lua_tolstring(L, -2, &n);
        op->type->feed(op, v, n, NULL);
    } else {
        const char *why = lua_tostring(L, -1);
        op->type->feed(op, NULL, 0, why ? why : "the function did not return a string");
    }
    lua_pop(L, 2);
}

static int finish(lua_State *L, l_op *u, sr_step_kind kind)
{
    u->finished = 1;
    if (kind == SR_STEP_DONE) return u->push(L, u);
    return l_push_error(L, &u->op->err);
}

int l_op_run(lua_State *L, l_op *u, sr_transport *t, double (*now)(lua_State *, void *), void *clock_ud)
{
    sr_response *resp = NULL;
    for (;;) {
        sr_step st;
        memset(&st, 0, sizeof st);
        sr_step_kind kind = sr_op_step(u->op, now(L, clock_ud), resp, &st);
        resp = NULL;
        switch (kind) {
        case SR_STEP_REQUEST:
            sr_transport_perform(t, st.request, &u->resp);
            resp = &u->resp;
            break;
        case SR_STEP_SLEEP:
            sleep_for(st.seconds);
            break;
        case SR_STEP_CALLBACK:
            l_op_run_callback(L, u->op, st.callback);
            break;
        case SR_STEP_DONE:
        case SR_STEP_FAILED:
            return finish(L, u, kind);
        }
    }
}

/* ---- op:step(now [, response]) for Lua drivers --------------------------------------- */

static const char *const tx_names[] = { "ok", "timeout", "connect", "reset", "tls", "other", NULL };

static void read_response(lua_State *L, int idx, sr_response *r)
{
    sr_response_reset(r);
    lua_getfield(L, idx, "error");
    if (!lua_isnil(L, -1)) {
        r->tx_error = (sr_tx_error)luaL_checkoption(L, -1, "other", tx_names);
        if (r->tx_error == SR_TX_OK) r->tx_error = SR_TX_OTHER;
        lua_getfield(L, idx, "message");
        const char *m = lua_tostring(L, -1);
        if (m) strncpy(r->tx_message, m, sizeof r->tx_message - 1);
        lua_pop(L, 2);
        return;
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "status");
    r->status = (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, idx, "headers");
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
                size_t nl, vl;
                const char *n = lua_tolstring(L, -2, &nl), *v = lua_tolstring(L, -1, &vl);
                sr_response_add_header(r, n, nl, v, vl);
            }
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "body");
    size_t bl = 0;
    const char *b = lua_tolstring(L, -1, &bl);
    if (b) sr_buf_add(&r->body, b, bl);
    lua_pop(L, 1);
}

static void push_request(lua_State *L, const sr_request *q)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, q->method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, q->url);
    lua_setfield(L, -2, "url");
    lua_createtable(L, 0, (int)q->nheaders);
    for (size_t i = 0; i < q->nheaders; i++) {
        lua_pushstring(L, q->headers[i].value);
        lua_setfield(L, -2, q->headers[i].name);
    }
    lua_setfield(L, -2, "headers");
    if (q->body) {
        lua_pushlstring(L, q->body, q->body_len);
        lua_setfield(L, -2, "body");
    }
    if (q->timeout > 0) {
        lua_pushnumber(L, q->timeout);
        lua_setfield(L, -2, "timeout");
    }
    if (q->connect_timeout > 0) {
        lua_pushnumber(L, q->connect_timeout);
        lua_setfield(L, -2, "connect_timeout");
    }
}

static l_op *check_op(lua_State *L)
{
    l_op *u = luaL_checkudata(L, 1, SR_OP_MT);
    if (!u->op) luaL_argerror(L, 1, "the operation was released");
    return u;
}

static int op_step(lua_State *L)
{
    l_op *u = check_op(L);
    if (u->finished) luaL_argerror(L, 1, "the operation has already finished");
    double now = luaL_checknumber(L, 2);
    sr_response *resp = NULL;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        read_response(L, 3, &u->resp);
        resp = &u->resp;
    }
    sr_step st;
    memset(&st, 0, sizeof st);
    sr_step_kind kind = sr_op_step(u->op, now, resp, &st);
    switch (kind) {
    case SR_STEP_REQUEST:
        lua_pushliteral(L, "request");
        push_request(L, st.request);
        return 2;
    case SR_STEP_SLEEP:
        lua_pushliteral(L, "sleep");
        lua_pushnumber(L, st.seconds);
        return 2;
    case SR_STEP_CALLBACK:
        lua_pushliteral(L, "callback");
        lua_rawgeti(L, LUA_REGISTRYINDEX, st.callback);
        return 2;
    case SR_STEP_DONE:
    case SR_STEP_FAILED: {
        lua_pushstring(L, kind == SR_STEP_DONE ? "done" : "failed");
        int n = finish(L, u, kind);
        if (kind == SR_STEP_FAILED) { /* "failed", err (drop the nil) */
            lua_remove(L, -2);
            return 2;
        }
        return n + 1;
    }
    }
    return 0;
}

static int op_feed(lua_State *L)
{
    l_op *u = check_op(L);
    size_t n = 0;
    const char *v = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &n) : NULL;
    const char *why = v ? NULL : luaL_optstring(L, 3, "the function did not return a string");
    u->op->type->feed(u->op, v, n, why);
    return 0;
}

/* op:again(): true when the method that returned this op must be called again once the
 * op is done (the op only fetched what that method needs). */
static int op_again(lua_State *L)
{
    l_op *u = luaL_checkudata(L, 1, SR_OP_MT);
    lua_pushboolean(L, u->again);
    return 1;
}

static int op_gc(lua_State *L)
{
    l_op *u = luaL_checkudata(L, 1, SR_OP_MT);
    if (u->op) {
        u->op->type->destroy(u->op);
        u->op = NULL;
        sr_response_free(&u->resp);
    }
    if (u->ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, u->ref);
        u->ref = LUA_NOREF;
    }
    return 0;
}

static int op_tostring(lua_State *L)
{
    l_op *u = luaL_checkudata(L, 1, SR_OP_MT);
    lua_pushfstring(L, "signalr.op (%s)", u->op ? u->op->type->name : "released");
    return 1;
}

/* core.is_op(v) */
static int op_is(lua_State *L)
{
    lua_pushboolean(L, luaL_testudata(L, 1, SR_OP_MT) != NULL);
    return 1;
}

void l_op_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "step", op_step },
        { "feed", op_feed },
        { "again", op_again },
        { NULL, NULL },
    };
    l_class(L, SR_OP_MT, methods, op_gc, op_tostring);
    lua_pushcfunction(L, op_is);
    lua_setfield(L, -2, "is_op");
}
