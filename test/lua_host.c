/* lua_host.c: a minimal Lua interpreter for running specs under AddressSanitizer and
 * UBSan. Linking the sanitizers into the host (instead of LD_PRELOAD into the system
 * interpreter) keeps them out of child processes (python, node, the emulator, openssl).
 * Usage: lua_host script.lua [args...]   (arg[0] = script, like lua(1)) */
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s script.lua [args...]\n", argv[0]);
        return 2;
    }
    lua_State *L = luaL_newstate();
    if (!L) return 1;
    luaL_openlibs(L);
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");
    lua_pushcfunction(L, traceback);
    int status = luaL_loadfile(L, argv[1]);
    if (status == 0) {
        for (int i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
        status = lua_pcall(L, argc - 2, 0, 1);
    }
    if (status != 0) fprintf(stderr, "%s\n", lua_tostring(L, -1));
    lua_close(L);
    return status == 0 ? 0 : 1;
}
