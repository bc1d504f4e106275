/* l_module.c: luaopen_signalr_core, the one exported symbol. */
#include "l_common.h"
#include "l_hub.h"

#ifndef SIGNALR_VERSION
#define SIGNALR_VERSION "0.1.0"
#endif

__attribute__((visibility("default"))) int luaopen_signalr_core(lua_State *L)
{
    lua_newtable(L);
    l_error_open(L);
    l_credential_open(L);
    l_service_open(L);
    l_connstr_open(L);
    l_op_open(L);
    l_hub_open(L); /* svc:hub, svc:batch, array/object/null */
    lua_pushliteral(L, SIGNALR_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
