/* l_util.c: argument checking and time for the binding. */
#include <time.h>

#include "l_common.h"

int l_type_error(lua_State *L, int arg, const char *what, const char *expected, int idx)
{
    const char *got = luaL_typename(L, idx);
    return luaL_argerror(L, arg, lua_pushfstring(L, "%s must be %s, got %s", what, expected, got));
}

const char *l_check_string(lua_State *L, int idx, int arg, const char *what, size_t *len)
{
    if (lua_type(L, idx) != LUA_TSTRING) l_type_error(L, arg, what, "a string", idx);
    return lua_tolstring(L, idx, len);
}

double l_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void l_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc, lua_CFunction tostring)
{
    luaL_newmetatable(L, name);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

void l_class_method(lua_State *L, const char *name, const char *method)
{
    luaL_getmetatable(L, name);
    lua_getfield(L, -1, "__index");
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, method);
    lua_pop(L, 3);
}
