/* l_credential.c: credential userdata: signalr.credential.access_key(key). */
#include <string.h>

#include "l_credential.h"

static const char *kind_name(const l_credential *c)
{
    switch (c->kind) {
    case L_CRED_ACCESS_KEY: return "access_key";
    }
    return "unknown";
}

l_credential *l_credential_push_access_key(lua_State *L, const char *key, size_t len, sr_error *err)
{
    /* The userdata and its metatable come first, so __gc frees whatever is set up later. */
    l_credential *c = lua_newuserdata(L, sizeof *c);
    memset(c, 0, sizeof *c);
    luaL_getmetatable(L, SR_CREDENTIAL_MT);
    lua_setmetatable(L, -2);
    c->kind = L_CRED_ACCESS_KEY;
    if (len == 0) {
        sr_error_set(err, SR_E_INVALID_ARGUMENT, "the access key is empty");
        return NULL;
    }
    if (!sr_signing_key_init(&c->key, NULL, key, len, err)) return NULL;
    c->ready = 1;
    return c;
}

l_credential *l_credential_check(lua_State *L, int idx, int arg, const char *what)
{
    l_credential *c = luaL_testudata(L, idx, SR_CREDENTIAL_MT);
    if (!c) l_type_error(L, arg, what, "a credential from signalr.credential", idx);
    return c;
}

static int credential_access_key(lua_State *L)
{
    size_t len;
    const char *key = l_check_string(L, 1, 1, "access key", &len);
    sr_error err;
    sr_error_clear(&err);
    if (!l_credential_push_access_key(L, key, len, &err)) return l_push_error(L, &err);
    return 1;
}

static int credential_gc(lua_State *L)
{
    l_credential *c = luaL_checkudata(L, 1, SR_CREDENTIAL_MT);
    if (c->ready) {
        sr_signing_key_free(&c->key); /* cleanses the key material */
        c->ready = 0;
    }
    return 0;
}

static int credential_tostring(lua_State *L)
{
    l_credential *c = luaL_checkudata(L, 1, SR_CREDENTIAL_MT);
    lua_pushfstring(L, "signalr.credential.%s", kind_name(c));
    return 1;
}

static int credential_kind(lua_State *L)
{
    l_credential *c = luaL_checkudata(L, 1, SR_CREDENTIAL_MT);
    lua_pushstring(L, kind_name(c));
    return 1;
}

void l_credential_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "kind", credential_kind },
        { NULL, NULL },
    };
    luaL_newmetatable(L, SR_CREDENTIAL_MT);
    lua_pushcfunction(L, credential_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, credential_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, credential_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "signalr.credential");
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "signalr.credential");
    lua_setfield(L, -2, "__metatable");
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_pushcfunction(L, credential_access_key);
    lua_setfield(L, -2, "access_key");
}
