/* l_service.c: signalr.new{...} and svc:negotiate(hub, opts). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "connstr.h"
#include "health.h"
#include "l_entra.h"
#include "l_service.h"

#define MAX_LIFETIME (365LL * 24 * 3600)

l_service *l_service_check(lua_State *L, int idx)
{
    l_service *s = luaL_checkudata(L, idx, SR_SERVICE_MT);
    if (!s->ready) luaL_argerror(L, idx, "the service is closed");
    return s;
}

double l_service_now(lua_State *L, l_service *s)
{
    if (s->clock_ref == LUA_NOREF) return l_now();
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->clock_ref);
    lua_call(L, 0, 1);
    if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "the service's clock function must return a number");
    double t = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return t;
}

/* ---- signalr.new ---------------------------------------------------------------- */

typedef struct new_opts {
    int connection_string, endpoint, credential, application, clock;
    int ca_file, timeout, connect_timeout, max_retries, retry_delay, max_retry_delay;
} new_opts;

static int key_is(const char *k, size_t n, const char *name)
{
    return strlen(name) == n && memcmp(k, name, n) == 0;
}

/* One pass over the options: remember where each known one is, refuse unknown ones. */
static void read_new_opts(lua_State *L, new_opts *o)
{
    static const char *const known[] = {
        "connection_string", "endpoint", "credential", "application", "clock",
        "temporary_key", /* Entra: { refresh_after, max_age, retry_interval } (l_service_entra.c) */
        /* transport options, used by the REST and Entra layers */
        "ca_file", "timeout", "connect_timeout", "max_retries", "retry_delay", "max_retry_delay",
        NULL,
    };
    memset(o, 0, sizeof *o);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING) luaL_argerror(L, 1, "option names must be strings");
        size_t n;
        const char *k = lua_tolstring(L, -2, &n);
        int found = 0;
        for (int i = 0; known[i]; i++) found |= key_is(k, n, known[i]);
        if (!found) luaL_argerror(L, 1, lua_pushfstring(L, "unknown option '%s'", k));
        lua_pop(L, 1);
    }
    lua_getfield(L, 1, "connection_string");
    o->connection_string = lua_isnil(L, -1) ? 0 : lua_gettop(L);
    lua_getfield(L, 1, "endpoint");
    o->endpoint = lua_isnil(L, -1) ? 0 : lua_gettop(L);
    lua_getfield(L, 1, "credential");
    o->credential = lua_isnil(L, -1) ? 0 : lua_gettop(L);
    lua_getfield(L, 1, "application");
    o->application = lua_isnil(L, -1) ? 0 : lua_gettop(L);
    lua_getfield(L, 1, "clock");
    o->clock = lua_isnil(L, -1) ? 0 : lua_gettop(L);
    const char *const rest[] = { "ca_file", "timeout", "connect_timeout", "max_retries", "retry_delay",
                                 "max_retry_delay" };
    int *slots[] = { &o->ca_file, &o->timeout, &o->connect_timeout, &o->max_retries, &o->retry_delay,
                     &o->max_retry_delay };
    for (int i = 0; i < 6; i++) {
        lua_getfield(L, 1, rest[i]);
        *slots[i] = lua_isnil(L, -1) ? 0 : lua_gettop(L);
    }
}

static double opt_seconds(lua_State *L, int idx, const char *what, double dflt)
{
    if (!idx) return dflt;
    if (lua_type(L, idx) != LUA_TNUMBER) l_type_error(L, 1, what, "a number of seconds", idx);
    double v = lua_tonumber(L, idx);
    if (!(v > 0) || v > 86400) luaL_argerror(L, 1, lua_pushfstring(L, "%s must be between 0 and 86400 seconds", what));
    return v;
}

static void read_transport_opts(lua_State *L, l_service *s, const new_opts *o)
{
    if (o->ca_file) {
        const char *ca = l_check_string(L, o->ca_file, 1, "options.ca_file", NULL);
        if (!(s->topts.ca_file = strdup(ca))) luaL_error(L, "out of memory");
    }
    s->topts.timeout = opt_seconds(L, o->timeout, "options.timeout", 30);
    s->topts.connect_timeout = opt_seconds(L, o->connect_timeout, "options.connect_timeout", 10);
    s->retry_delay = opt_seconds(L, o->retry_delay, "options.retry_delay", 0.8);
    s->max_retry_delay = opt_seconds(L, o->max_retry_delay, "options.max_retry_delay", 60);
    s->max_retries = 3;
    if (o->max_retries) {
        if (!sr_isinteger(L, o->max_retries) || sr_tointeger(L, o->max_retries) < 0 ||
            sr_tointeger(L, o->max_retries) > 10)
            luaL_argerror(L, 1, "options.max_retries must be a whole number from 0 to 10");
        s->max_retries = (int)sr_tointeger(L, o->max_retries);
    }
}

static l_service *push_service(lua_State *L)
{
    l_service *s = lua_newuserdata(L, sizeof *s);
    memset(s, 0, sizeof *s);
    s->cred_ref = LUA_NOREF;
    s->clock_ref = LUA_NOREF;
    s->driver_ref = LUA_NOREF;
    s->url_cache_hub_ref = LUA_NOREF;
    s->url_cache_url_ref = LUA_NOREF;
    luaL_getmetatable(L, SR_SERVICE_MT);
    lua_setmetatable(L, -2);
    return s;
}

/* The service keeps its credential alive through a registry reference. */
static void adopt_credential(lua_State *L, l_service *s, int cred_idx)
{
    lua_pushvalue(L, cred_idx);
    s->cred_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    s->cred = lua_touserdata(L, cred_idx);
}

static int from_connection_string(lua_State *L, l_service *s, const new_opts *o,
                                  const char *app, size_t app_len, sr_error *err)
{
    size_t len;
    const char *cs_text = l_check_string(L, o->connection_string, 1, "options.connection_string", &len);
    sr_connstr cs;
    if (!sr_connstr_parse(cs_text, len, &cs, err)) return 0;
    int ok = 0;
    /* AuthType azure / azure.msi / azure.app / aad: the Microsoft Entra ID credential it names. */
    if (cs.auth_type != SR_AUTH_ACCESS_KEY ? !l_credential_push_for_connstr(L, &cs, err)
                                           : !l_credential_push_access_key(L, cs.access_key, strlen(cs.access_key), err))
        goto done;
    adopt_credential(L, s, lua_gettop(L));
    lua_pop(L, 1);
    ok = sr_endpoint_init(&s->ep, &cs.endpoint, cs.has_client_endpoint ? &cs.client_endpoint : NULL,
                          cs.has_server_endpoint ? &cs.server_endpoint : NULL, app, app_len, err);
done:
    sr_connstr_free(&cs);
    return ok;
}

static int from_endpoint(lua_State *L, l_service *s, const new_opts *o, const char *app,
                         size_t app_len, sr_error *err)
{
    size_t len;
    const char *text = l_check_string(L, o->endpoint, 1, "options.endpoint", &len);
    if (!o->credential)
        luaL_argerror(L, 1, "options.credential is required with options.endpoint "
                            "(e.g. signalr.credential.access_key(key))");
    l_credential_check(L, o->credential, 1, "options.credential");
    sr_url url;
    if (!sr_url_parse(text, len, &url, "endpoint", err)) return 0;
    url.path[0] = '\0'; /* the service endpoint is scheme://host[:port] */
    int ok = sr_endpoint_init(&s->ep, &url, NULL, NULL, app, app_len, err);
    sr_url_free(&url);
    if (ok) adopt_credential(L, s, o->credential);
    return ok;
}

static int service_new(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TTABLE) l_type_error(L, 1, "options", "a table", 1);
    lua_settop(L, 1);
    new_opts o;
    read_new_opts(L, &o);
    if (o.connection_string && o.endpoint)
        luaL_argerror(L, 1, "give options.connection_string or options.endpoint, not both");
    if (!o.connection_string && !o.endpoint)
        luaL_argerror(L, 1, "options.connection_string or options.endpoint is required");
    if (o.connection_string && o.credential)
        luaL_argerror(L, 1, "options.credential goes with options.endpoint; a connection string carries its own");
    size_t app_len = 0;
    const char *app = o.application ? l_check_string(L, o.application, 1, "options.application", &app_len) : NULL;
    if (o.clock && lua_type(L, o.clock) != LUA_TFUNCTION) l_type_error(L, 1, "options.clock", "a function", o.clock);

    l_service *s = push_service(L);
    int svc_idx = lua_gettop(L);
    read_transport_opts(L, s, &o);
    sr_error err;
    sr_error_clear(&err);
    int ok = o.connection_string ? from_connection_string(L, s, &o, app, app_len, &err)
                                 : from_endpoint(L, s, &o, app, app_len, &err);
    if (!ok) return l_push_error(L, &err); /* __gc releases whatever was set up */
    s->ready = 1;
    if (o.clock) {
        lua_pushvalue(L, o.clock);
        s->clock_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    if (!l_entra_service_init(L, s, 1, &err)) return l_push_error(L, &err);
    lua_pushvalue(L, svc_idx);
    return 1;
}

/* ---- negotiate -------------------------------------------------------------------- */

typedef struct negotiate_opts {
    int user_id, roles, claims, lifetime, algorithm;
} negotiate_opts;

static void read_negotiate_opts(lua_State *L, int idx, negotiate_opts *o)
{
    memset(o, 0, sizeof *o);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t n;
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &n) : NULL;
        int *slot = NULL;
        if (k) {
            if (key_is(k, n, "user_id")) slot = &o->user_id;
            else if (key_is(k, n, "roles")) slot = &o->roles;
            else if (key_is(k, n, "claims")) slot = &o->claims;
            else if (key_is(k, n, "lifetime")) slot = &o->lifetime;
            else if (key_is(k, n, "algorithm")) slot = &o->algorithm;
        }
        if (!slot) {
            if (!k) luaL_argerror(L, 3, "option names must be strings");
            luaL_argerror(L, 3, lua_pushfstring(L, "unknown option '%s' (known: user_id, roles, claims, "
                                                   "lifetime, algorithm)", k));
        }
        /* Keep the value on the stack (it anchors strings we point into); re-push the key. */
        *slot = lua_gettop(L);
        lua_pushvalue(L, -2);
    }
}

static int claim_type_error(lua_State *L, const char *claim, int idx, const char *expected)
{
    return luaL_argerror(L, 3, lua_pushfstring(L, "options.claims['%s'] must be %s, got %s", claim, expected,
                                               luaL_typename(L, idx)));
}

/* A claim value: string, number or boolean. `name` NULL means an array element; `claim`
 * names the claim in errors. */
static int add_scalar(lua_State *L, sr_claims *c, int idx, const char *name, size_t nlen, const char *claim)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t vlen;
        const char *v = lua_tolstring(L, idx, &vlen);
        return sr_claims_add_string(c, name, nlen, v, vlen);
    }
    case LUA_TNUMBER:
#if LUA_VERSION_NUM >= 503
        /* Integers keep their exact value, beyond 2^53 too. */
        if (lua_isinteger(L, idx)) return sr_claims_add_integer(c, name, nlen, (long long)lua_tointeger(L, idx));
#endif
        return sr_claims_add_number(c, name, nlen, lua_tonumber(L, idx));
    case LUA_TBOOLEAN:
        return sr_claims_add_bool(c, name, nlen, lua_toboolean(L, idx));
    default:
        return claim_type_error(L, claim, idx, "a string, number, boolean or an array of those");
    }
}

/* A table claim value must be a sequence (1..n, no other keys) of scalars. */
static int add_array_values(lua_State *L, sr_claims *c, int idx, const char *claim)
{
    int n = (int)lua_rawlen(L, idx);
    int count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        count++;
        lua_pop(L, 1);
    }
    if (count != n) return claim_type_error(L, claim, idx, "a string, number, boolean or an array (sequence) of those");
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        if (lua_type(L, -1) == LUA_TTABLE)
            luaL_argerror(L, 3, lua_pushfstring(L, "options.claims['%s'] must not hold nested tables", claim));
        int ok = add_scalar(L, c, lua_gettop(L), NULL, 0, claim);
        lua_pop(L, 1);
        if (!ok) return 0;
    }
    return 1;
}

static int add_claim(lua_State *L, sr_claims *c, const char *name, size_t nlen, int idx)
{
    if (lua_type(L, idx) == LUA_TTABLE)
        return sr_claims_begin_array(c, name, nlen) && add_array_values(L, c, idx, name) && sr_claims_end_array(c);
    return add_scalar(L, c, idx, name, nlen, name);
}

/* Collects role values from options.roles and claims.role into one `role` claim:
 * a string for one role, an array for several (repeated claim types become arrays). */
static int count_roles(lua_State *L, int idx, const char *where)
{
    if (!idx) return 0;
    if (lua_type(L, idx) == LUA_TSTRING) return 1;
    if (lua_type(L, idx) != LUA_TTABLE) return l_type_error(L, 3, where, "a string or an array of strings", idx);
    int n = (int)lua_rawlen(L, idx);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_argerror(L, 3, lua_pushfstring(L, "%s[%d] must be a string, got %s", where, i, luaL_typename(L, -1)));
        lua_pop(L, 1);
    }
    return n;
}

static int add_role_values(lua_State *L, sr_claims *c, int idx, int as_array)
{
    if (!idx) return 1;
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t n;
        const char *v = lua_tolstring(L, idx, &n);
        return as_array ? sr_claims_add_string(c, NULL, 0, v, n) : sr_claims_add_string(c, "role", 4, v, n);
    }
    int n = (int)lua_rawlen(L, idx);
    for (int i = 1; i <= n; i++) {
        size_t len;
        lua_rawgeti(L, idx, i);
        const char *v = lua_tolstring(L, -1, &len);
        int ok = as_array ? sr_claims_add_string(c, NULL, 0, v, len) : sr_claims_add_string(c, "role", 4, v, len);
        lua_pop(L, 1);
        if (!ok) return 0;
    }
    return 1;
}

static int add_roles(lua_State *L, sr_claims *c, int roles_idx, int claim_role_idx)
{
    int total = count_roles(L, roles_idx, "options.roles") +
                count_roles(L, claim_role_idx, "options.claims.role");
    if (total == 0) return 1;
    if (total == 1) return add_role_values(L, c, roles_idx, 0) && add_role_values(L, c, claim_role_idx, 0);
    return sr_claims_begin_array(c, "role", 4) && add_role_values(L, c, roles_idx, 1) &&
           add_role_values(L, c, claim_role_idx, 1) && sr_claims_end_array(c);
}

static int add_claims_table(lua_State *L, sr_claims *c, int idx, int *role_idx)
{
    if (lua_type(L, idx) != LUA_TTABLE) return l_type_error(L, 3, "options.claims", "a table", idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, 3, lua_pushfstring(L, "options.claims keys must be strings, got %s",
                                                luaL_typename(L, -2)));
        size_t nlen;
        const char *name = lua_tolstring(L, -2, &nlen);
        if (key_is(name, nlen, "role")) {
            *role_idx = lua_gettop(L); /* merged with options.roles below */
            lua_pushvalue(L, -2);
            continue;
        }
        if (!add_claim(L, c, name, nlen, lua_gettop(L))) return 0;
        lua_pop(L, 1);
    }
    return 1;
}

static int read_lifetime(lua_State *L, int idx, long long *lifetime, sr_error *err)
{
    if (!idx) return 1;
    if (lua_type(L, idx) != LUA_TNUMBER) return l_type_error(L, 3, "options.lifetime", "a number of seconds", idx);
    double v = lua_tonumber(L, idx);
    if (!(v > 0) || v != floor(v) || v > (double)MAX_LIFETIME)
        return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                            "options.lifetime must be a whole number of seconds from 1 to %lld", MAX_LIFETIME);
    *lifetime = (long long)v;
    return 1;
}

static int read_algorithm(lua_State *L, int idx, sr_hs_alg *alg, sr_error *err)
{
    if (!idx) return 1;
    size_t n;
    const char *a = l_check_string(L, idx, 3, "options.algorithm", &n);
    if (key_is(a, n, "HS256")) *alg = SR_HS256;
    else if (key_is(a, n, "HS512")) *alg = SR_HS512;
    else return sr_error_set(err, SR_E_INVALID_ARGUMENT, "options.algorithm must be \"HS256\" or \"HS512\"");
    return 1;
}

static sr_signing_key *signing_key(lua_State *L, l_service *s, sr_error *err)
{
    if (s->cred && s->cred->ready && s->cred->kind == L_CRED_ACCESS_KEY) return &s->cred->key;
    if (s->cred && s->cred->ready && s->temp_key) return l_entra_signing_key(L, s, 1, err); /* Entra: temporary key */
    sr_error_set(err, SR_E_CREDENTIAL_UNAVAILABLE, "the service's credential cannot sign client tokens");
    return NULL;
}

static int build_claims(lua_State *L, sr_claims *c, const negotiate_opts *o)
{
    if (o->user_id) {
        size_t n;
        const char *uid = l_check_string(L, o->user_id, 3, "options.user_id", &n);
        if (n == 0) return sr_error_set(c->err, SR_E_INVALID_ARGUMENT, "options.user_id must not be empty");
        if (!sr_claims_add_user_id(c, uid, n)) return 0;
    }
    int claim_role = 0;
    if (o->claims && !add_claims_table(L, c, o->claims, &claim_role)) return 0;
    return add_roles(L, c, o->roles, claim_role);
}

static void push_client_url(lua_State *L, l_service *s, const char *hub, size_t hub_len)
{
    if (hub == s->url_cache_hub) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->url_cache_url_ref);
        return;
    }
    sr_buf url;
    sr_buf_init(&url);
    sr_endpoint_client_url(&url, &s->ep, hub, hub_len);
    lua_pushlstring(L, url.data, url.len);
    sr_buf_free(&url, 0);
    luaL_unref(L, LUA_REGISTRYINDEX, s->url_cache_url_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, s->url_cache_hub_ref);
    lua_pushvalue(L, -1);
    s->url_cache_url_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 2); /* the hub argument */
    s->url_cache_hub_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    s->url_cache_hub = hub;
}

static int service_negotiate(lua_State *L)
{
    l_service *s = l_service_check(L, 1);
    luaL_checkstack(L, 40, "negotiate options");
    size_t hub_len;
    const char *hub = l_check_string(L, 2, 2, "hub", &hub_len);
    int has_opts = !lua_isnoneornil(L, 3);
    if (has_opts && lua_type(L, 3) != LUA_TTABLE) l_type_error(L, 3, "options", "a table", 3);
    sr_error err;
    sr_error_clear(&err);
    negotiate_opts o;
    memset(&o, 0, sizeof o);
    if (has_opts) read_negotiate_opts(L, 3, &o);

    sr_client_token_params p = { .endpoint = &s->ep, .hub = hub, .hub_len = hub_len,
                                 .lifetime = 3600, .alg = SR_HS256 };
    if (!sr_check_name(hub, hub_len, "hub", &err) || !read_lifetime(L, o.lifetime, &p.lifetime, &err) ||
        !read_algorithm(L, o.algorithm, &p.alg, &err))
        return l_push_error(L, &err);
    int top = lua_gettop(L);
    if (!(p.key = signing_key(L, s, &err))) {
        /* An op left on the stack: the temporary key must be fetched first (return_ops). */
        if (err.kind == SR_OK && lua_gettop(L) > top) return 1;
        return l_push_error(L, &err);
    }
    p.now = (long long)floor(l_service_now(L, s));

    sr_claims c;
    sr_claims_init(&c, &err);
    sr_buf token;
    sr_buf_init(&token);
    int ok = build_claims(L, &c, &o) && sr_client_token_sign(&c, &p, &token, NULL);
    if (ok) {
        /* Keys come from upvalues: lua_setfield would look each name up again. */
        lua_createtable(L, 0, 2);
        lua_pushvalue(L, lua_upvalueindex(1));
        push_client_url(L, s, hub, hub_len);
        lua_rawset(L, -3);
        lua_pushvalue(L, lua_upvalueindex(2));
        lua_pushlstring(L, token.data, token.len);
        lua_rawset(L, -3);
    }
    sr_claims_free(&c);
    /* Not wiped: the token is no more secret than the copy just handed to Lua. */
    sr_buf_free(&token, 0);
    return ok ? 1 : l_push_error(L, &err);
}

/* ---- running ops -------------------------------------------------------------------- */

static double service_clock(lua_State *L, void *ud) { return l_service_now(L, ud); }

int l_service_run_op(lua_State *L, l_service *s, l_op *u, int u_idx)
{
    if (s->return_ops) {
        lua_pushvalue(L, u_idx);
        return 1;
    }
    if (s->driver_ref != LUA_NOREF) {
        int top = lua_gettop(L);
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->driver_ref);
        lua_pushvalue(L, u_idx);
        lua_call(L, 1, LUA_MULTRET);
        return lua_gettop(L) - top;
    }
    if (!s->transport) {
        sr_error err;
        sr_error_clear(&err);
        if (!(s->transport = sr_transport_new(&s->topts, &err))) return l_push_error(L, &err);
    }
    return l_op_run(L, u, s->transport, service_clock, s);
}

static int push_true(lua_State *L, l_op *u)
{
    (void)u;
    lua_pushboolean(L, 1);
    return 1;
}

static int service_health(lua_State *L)
{
    l_service *s = l_service_check(L, 1);
    double timeout = lua_isnoneornil(L, 2) ? 2 : luaL_checknumber(L, 2);
    l_op *u = l_op_new(L);
    int u_idx = lua_gettop(L);
    u->push = push_true;
    sr_error err;
    sr_error_clear(&err);
    if (!(u->op = sr_health_op_new(&s->ep, timeout, &err))) return l_push_error(L, &err);
    return l_service_run_op(L, s, u, u_idx);
}

/* svc:return_ops(flag): with flag set, every method that needs I/O returns a signalr.op
 * instead of performing it; signalr.resty drives those ops over cosockets from Lua,
 * because a cosocket cannot yield across the C call a driver function would sit in. */
static int service_return_ops(lua_State *L)
{
    l_service *s = l_service_check(L, 1);
    s->return_ops = lua_toboolean(L, 2);
    return 0;
}

/* svc:set_driver(fn): C calls fn(op) to step each op (scripted drivers in specs). */
static int service_set_driver(lua_State *L)
{
    l_service *s = l_service_check(L, 1);
    if (!lua_isnil(L, 2) && lua_type(L, 2) != LUA_TFUNCTION) l_type_error(L, 2, "driver", "a function or nil", 2);
    if (s->driver_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, s->driver_ref);
    s->driver_ref = LUA_NOREF;
    if (!lua_isnil(L, 2)) {
        lua_pushvalue(L, 2);
        s->driver_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    return 0;
}

/* ---- info, tostring, gc ------------------------------------------------------------ */

static int service_info(lua_State *L)
{
    l_service *s = l_service_check(L, 1);
    lua_createtable(L, 0, 8);
    lua_pushstring(L, s->ep.origin);
    lua_setfield(L, -2, "endpoint");
    lua_pushstring(L, s->ep.client_base);
    lua_setfield(L, -2, "client_endpoint");
    lua_pushstring(L, s->ep.server_base);
    lua_setfield(L, -2, "server_endpoint");
    lua_pushstring(L, s->ep.audience_base);
    lua_setfield(L, -2, "audience_base");
    if (s->ep.application) {
        lua_pushstring(L, s->ep.application);
        lua_setfield(L, -2, "application");
    }
    sr_buf b;
    sr_buf_init(&b);
    sr_endpoint_access_key_url(&b, &s->ep);
    lua_pushlstring(L, b.data, b.len);
    lua_setfield(L, -2, "access_key_url");
    if (lua_type(L, 2) == LUA_TSTRING) {
        size_t n;
        const char *hub = lua_tolstring(L, 2, &n);
        sr_buf_reset(&b);
        sr_endpoint_client_url(&b, &s->ep, hub, n);
        lua_pushlstring(L, b.data, b.len);
        lua_setfield(L, -2, "client_url");
        sr_buf_reset(&b);
        sr_endpoint_client_audience(&b, &s->ep, hub, n);
        lua_pushlstring(L, b.data, b.len);
        lua_setfield(L, -2, "audience");
    }
    sr_buf_free(&b, 0);
    lua_pushstring(L, s->cred && s->cred->kind == L_CRED_ACCESS_KEY ? "access_key" : "entra");
    lua_setfield(L, -2, "auth");
    return 1;
}

static int service_gc(lua_State *L)
{
    l_service *s = luaL_checkudata(L, 1, SR_SERVICE_MT);
    if (s->ready || s->ep.origin) sr_endpoint_free(&s->ep);
    s->ready = 0;
    l_entra_free(s); /* the temporary key (wiped); before the credential goes */
    if (s->cred_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, s->cred_ref);
        s->cred_ref = LUA_NOREF;
        s->cred = NULL;
    }
    if (s->clock_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, s->clock_ref);
        s->clock_ref = LUA_NOREF;
    }
    if (s->driver_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, s->driver_ref);
        s->driver_ref = LUA_NOREF;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, s->url_cache_url_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, s->url_cache_hub_ref);
    s->url_cache_url_ref = s->url_cache_hub_ref = LUA_NOREF;
    s->url_cache_hub = NULL;
    sr_transport_free(s->transport);
    s->transport = NULL;
    free((char *)s->topts.ca_file);
    s->topts.ca_file = NULL;
    return 0;
}

static int service_tostring(lua_State *L)
{
    l_service *s = luaL_checkudata(L, 1, SR_SERVICE_MT);
    if (!s->ready) lua_pushliteral(L, "signalr.service (closed)");
    else lua_pushfstring(L, "signalr.service (%s)", s->ep.origin);
    return 1;
}

void l_service_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "info", service_info },
        { "health", service_health },
        { "set_driver", service_set_driver },
        { "return_ops", service_return_ops },
        { "get_token", l_service_get_token },
        { "entra_status", l_service_entra_status },
        { "temporary_key_op", l_service_temporary_key_op },
        { "close", service_gc },
        { NULL, NULL },
    };
    l_class(L, SR_SERVICE_MT, methods, service_gc, service_tostring);
    /* negotiate's result keys come from upvalues (see service_negotiate) */
    lua_pushliteral(L, "url");
    lua_pushliteral(L, "accessToken");
    lua_pushcclosure(L, service_negotiate, 2);
    l_class_method(L, SR_SERVICE_MT, "negotiate");
    lua_pushcfunction(L, service_new);
    lua_setfield(L, -2, "new");
}
