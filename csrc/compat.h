/* compat.h: the few Lua 5.2+ API calls the binding uses, for Lua 5.1 / LuaJIT 2.1.
 * Local to this module (no global monkey-patching), in the manner of lua-cjson. */
#ifndef SR_COMPAT_H
#define SR_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
#define lua_rawlen(L, i) lua_objlen((L), (i))
#define sr_absindex(L, i) \
    (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
#else
#define sr_absindex(L, i) lua_absindex((L), (i))
#endif

#if LUA_VERSION_NUM < 503
/* An integer-valued number (LuaJIT and 5.1 have only doubles). */
static inline int sr_isinteger(lua_State *L, int i)
{
    if (lua_type(L, i) != LUA_TNUMBER) return 0;
    lua_Number n = lua_tonumber(L, i);
    return n == (lua_Number)(long long)n;
}
#define sr_tointeger(L, i) ((long long)lua_tonumber((L), (i)))
#else
#define sr_isinteger(L, i) lua_isinteger((L), (i))
#define sr_tointeger(L, i) ((long long)lua_tointeger((L), (i)))
#endif

#endif
