/* l_connstr.c: signalr.parse_connection_string(s): what a connection string says,
 * without its secrets (has_access_key / has_client_secret say whether they are there). */
#include <string.h>

#include "connstr.h"
#include "l_common.h"

static void set_url(lua_State *L, const char *field, const sr_url *u, int with_path)
{
    sr_buf b;
    sr_buf_init(&b);
    sr_url_add_origin(&b, u);
    if (with_path) sr_buf_adds(&b, u->path);
    lua_pushlstring(L, b.data, b.len);
    lua_setfield(L, -2, field);
    sr_buf_free(&b, 0);
}

static void set_string(lua_State *L, const char *field, const char *v)
{
    if (!v) return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, field);
}

static int parse_connection_string(lua_State *L)
{
    size_t len;
    const char *s = l_check_string(L, 1, 1, "connection string", &len);
    sr_connstr cs;
    sr_error err;
    sr_error_clear(&err);
    if (!sr_connstr_parse(s, len, &cs, &err)) return l_push_error(L, &err);
    lua_createtable(L, 0, 12);
    set_url(L, "endpoint", &cs.endpoint, 0);
    lua_pushinteger(L, cs.endpoint.port);
    lua_setfield(L, -2, "port");
    if (cs.has_client_endpoint) set_url(L, "client_endpoint", &cs.client_endpoint, 1);
    if (cs.has_server_endpoint) set_url(L, "server_endpoint", &cs.server_endpoint, 1);
    set_string(L, "auth_type", sr_auth_type_name(cs.auth_type));
    set_string(L, "version", cs.version);
    set_string(L, "client_id", cs.client_id);
    set_string(L, "tenant_id", cs.tenant_id);
    set_string(L, "client_cert", cs.client_cert);
    lua_pushboolean(L, cs.access_key != NULL);
    lua_setfield(L, -2, "has_access_key");
    lua_pushboolean(L, cs.client_secret != NULL);
    lua_setfield(L, -2, "has_client_secret");
    sr_connstr_free(&cs);
    return 1;
}

void l_connstr_open(lua_State *L)
{
    lua_pushcfunction(L, parse_connection_string);
    lua_setfield(L, -2, "parse_connection_string");
}
