/* l_error.c: error objects: tables with kind, message, status, code, hint, retry_after,
 * whose tostring is one sentence. */
#include "l_common.h"

static int error_tostring(lua_State *L)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_getfield(L, 1, "message");
    const char *msg = lua_tostring(L, -1);
    lua_pop(L, 1);
    luaL_addstring(&b, msg ? msg : "unknown error");
    lua_getfield(L, 1, "hint");
    const char *hint = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (hint && *hint) {
        luaL_addstring(&b, " (");
        luaL_addstring(&b, hint);
        luaL_addstring(&b, ")");
    }
    luaL_pushresult(&b);
    return 1;
}

int l_push_error(lua_State *L, const sr_error *e)
{
    lua_pushnil(L);
    lua_createtable(L, 0, 6);
    lua_pushstring(L, sr_kind_name(e->kind));
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, e->message);
    lua_setfield(L, -2, "message");
    if (e->status) {
        lua_pushinteger(L, e->status);
        lua_setfield(L, -2, "status");
    }
    if (e->code[0]) {
        lua_pushstring(L, e->code);
        lua_setfield(L, -2, "code");
    }
    if (e->hint[0]) {
        lua_pushstring(L, e->hint);
        lua_setfield(L, -2, "hint");
    }
    if (e->retry_after >= 0) {
        lua_pushnumber(L, e->retry_after);
        lua_setfield(L, -2, "retry_after");
    }
    luaL_getmetatable(L, SR_ERROR_MT);
    lua_setmetatable(L, -2);
    return 2;
}

/* core.error{ kind =, message =, ... }: lets the Lua side build the same objects. */
static int error_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_getmetatable(L, SR_ERROR_MT);
    lua_setmetatable(L, 1);
    return 1;
}

static int error_is(lua_State *L)
{
    int is = 0;
    if (lua_getmetatable(L, 1)) {
        luaL_getmetatable(L, SR_ERROR_MT);
        is = lua_rawequal(L, -1, -2);
    }
    lua_pushboolean(L, is);
    return 1;
}

void l_error_open(lua_State *L)
{
    luaL_newmetatable(L, SR_ERROR_MT);
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushstring(L, "signalr.error");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
    lua_pushcfunction(L, error_new);
    lua_setfield(L, -2, "error");
    lua_pushcfunction(L, error_is);
    lua_setfield(L, -2, "is_error");
}
