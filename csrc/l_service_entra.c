/* l_service_entra.c: services authenticated with Microsoft Entra ID: the temporary access
 * key manager per service endpoint, svc:get_token(), svc:entra_status(). */
#include <string.h>

#include "l_entra.h"
#include "temp_key.h"

static double policy_seconds(lua_State *L, int tbl, const char *name, double dflt, double max)
{
    lua_getfield(L, tbl, name);
    double v = dflt;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            l_type_error(L, 1, lua_pushfstring(L, "options.temporary_key.%s", name), "a number of seconds", -2);
        v = lua_tonumber(L, -1);
        if (!(v > 0) || v > max)
            luaL_argerror(L, 1, lua_pushfstring(L, "options.temporary_key.%s must be between 0 and %d seconds", name,
                                                (int)max));
    }
    lua_pop(L, 1);
    return v;
}

/* options.temporary_key = { refresh_after = s, max_age = s, retry_interval = s }: the
 * service honours a key 90 minutes, so max_age can only be lowered. */
static void read_policy(lua_State *L, int opts_idx, sr_temp_key_policy *p, int *given)
{
    sr_temp_key_policy_default(p);
    lua_getfield(L, opts_idx, "temporary_key");
    *given = !lua_isnil(L, -1);
    if (*given) {
        int t = lua_gettop(L);
        if (lua_type(L, t) != LUA_TTABLE) l_type_error(L, 1, "options.temporary_key", "a table", t);
        lua_pushnil(L);
        while (lua_next(L, t)) {
            lua_pop(L, 1);
            const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
            if (strcmp(k, "refresh_after") && strcmp(k, "max_age") && strcmp(k, "retry_interval"))
                luaL_argerror(L, 1, lua_pushfstring(L, "unknown option 'temporary_key.%s' (known: refresh_after, "
                                                       "max_age, retry_interval)", k));
        }
        p->max_age = policy_seconds(L, t, "max_age", p->max_age, p->max_age);
        p->refresh_after = policy_seconds(L, t, "refresh_after", p->refresh_after < p->max_age ? p->refresh_after
                                                                                              : p->max_age / 2,
                                          p->max_age);
        p->retry_interval = policy_seconds(L, t, "retry_interval", p->retry_interval, 60);
        if (p->refresh_after >= p->max_age)
            luaL_argerror(L, 1, "options.temporary_key.refresh_after must be less than max_age");
    }
    lua_pop(L, 1);
}

int l_entra_service_init(lua_State *L, l_service *s, int opts_idx, sr_error *err)
{
    sr_temp_key_policy p;
    int given;
    read_policy(L, opts_idx, &p, &given);
    if (!s->cred || s->cred->kind != L_CRED_ENTRA) {
        if (given) luaL_argerror(L, 1, "options.temporary_key applies to Microsoft Entra ID credentials only");
        return 1;
    }
    sr_buf url;
    sr_buf_init(&url);
    sr_endpoint_access_key_url(&url, &s->ep);
    s->temp_key = url.oom ? NULL : sr_temp_key_new(s->cred->entra, url.data, &p, err);
    if (url.oom) sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    sr_buf_free(&url, 0);
    return s->temp_key != NULL;
}

static int push_true(lua_State *L, l_op *u)
{
    (void)u;
    lua_pushboolean(L, 1);
    return 1;
}

/* A new op userdata that keeps the service (so its credential and driver) alive. */
static l_op *new_op(lua_State *L, int svc_idx, int (*push)(lua_State *, l_op *))
{
    l_op *u = l_op_new(L);
    u->push = push;
    lua_pushvalue(L, svc_idx);
    u->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return u;
}

sr_signing_key *l_entra_signing_key(lua_State *L, l_service *s, int svc_idx, sr_error *err)
{
    int fetch;
    sr_signing_key *key = sr_temp_key_get(s->temp_key, l_service_now(L, s), &fetch, err);
    if (!fetch) return key;
    int top = lua_gettop(L);
    l_op *u = new_op(L, svc_idx, push_true);
    if (s->return_ops) {
        /* svc:return_ops(true): hand the fetch to the caller (negotiate returns this op);
         * negotiate is called again once it has been driven. */
        if (!(u->op = sr_temp_key_op_new(s->temp_key, err))) {
            lua_settop(L, top);
            return NULL;
        }
        u->again = 1; /* once driven, negotiate runs again and signs */
        sr_error_clear(err);
        return NULL;
    }
    if (!(u->op = sr_temp_key_op_new(s->temp_key, err))) {
        lua_settop(L, top);
        return key;
    }
    if (s->return_ops) {
        /* The caller drives the fetch (OpenResty) and then calls negotiate again: leave
         * the op on the stack, no error. */
        u->again = 1;
        return NULL;
    }
    /* Success or failure, the manager's state now says what negotiate may sign with. */
    l_service_run_op(L, s, u, top + 1);
    lua_settop(L, top);
    key = sr_temp_key_get(s->temp_key, l_service_now(L, s), &fetch, err);
    if (!key && fetch)
        sr_error_set(err, SR_E_TIMEOUT, "no temporary access key yet: another request is still fetching it");
    return key;
}

void l_entra_free(l_service *s)
{
    sr_temp_key_release(s->temp_key);
    s->temp_key = NULL;
}

static int push_token(lua_State *L, l_op *u)
{
    lua_pushstring(L, sr_token_op_token(u->op));
    lua_pushnumber(L, sr_token_op_expires_on(u->op));
    return 2;
}

int l_service_get_token(lua_State *L)
{
    l_service *s = l_service_check(L, 1);
    sr_error err;
    sr_error_clear(&err);
    if (!s->cred || !s->cred->entra) {
        sr_error_set(&err, SR_E_INVALID_ARGUMENT, "this service uses an access key: it has no Microsoft Entra token");
        return l_push_error(L, &err);
    }
    l_op *u = new_op(L, 1, push_token);
    int u_idx = lua_gettop(L);
    if (!(u->op = sr_credential_token_op_new(s->cred->entra, &err))) return l_push_error(L, &err);
    return l_service_run_op(L, s, u, u_idx);
}

int l_service_entra_status(lua_State *L)
{
    l_service *s = l_service_check(L, 1);
    lua_createtable(L, 0, 8);
    if (!s->cred || !s->cred->entra) {
        lua_pushliteral(L, "access_key");
        lua_setfield(L, -2, "auth");
        return 1;
    }
    lua_pushliteral(L, "entra");
    lua_setfield(L, -2, "auth");
    lua_pushstring(L, sr_credential_describe(s->cred->entra));
    lua_setfield(L, -2, "credential");
    lua_pushinteger(L, (lua_Integer)sr_credential_acquisitions(s->cred->entra));
    lua_setfield(L, -2, "token_acquisitions");
    sr_temp_key *k = s->temp_key;
    const char *kid = sr_temp_key_id(k);
    if (kid) {
        lua_pushstring(L, kid);
        lua_setfield(L, -2, "key_id");
        lua_pushnumber(L, sr_temp_key_issued_at(k));
        lua_setfield(L, -2, "key_issued_at");
    }
    lua_pushinteger(L, (lua_Integer)sr_temp_key_fetches(k));
    lua_setfield(L, -2, "key_fetches");
    if (sr_temp_key_next_attempt(k) > 0) {
        lua_pushnumber(L, sr_temp_key_next_attempt(k));
        lua_setfield(L, -2, "next_attempt");
    }
    const sr_error *last = sr_temp_key_last_error(k);
    if (last) {
        l_push_error(L, last); /* nil, err */
        lua_setfield(L, -3, "last_error");
        lua_pop(L, 1);
    }
    return 1;
}

int l_service_temporary_key_op(lua_State *L)
{
    l_service *s = l_service_check(L, 1);
    if (!s->temp_key) return 0;
    int fetch;
    sr_error err;
    sr_error_clear(&err);
    sr_temp_key_get(s->temp_key, l_service_now(L, s), &fetch, &err);
    if (!fetch) return 0;
    l_op *u = new_op(L, 1, push_true);
    if (!(u->op = sr_temp_key_op_new(s->temp_key, &err))) return l_push_error(L, &err);
    return 1;
}
