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
