/* l_credential.c: credential userdata: signalr.credential.access_key(key) and the
 * Microsoft Entra ID credentials (client_secret, certificate, client_assertion,
 * workload_identity, managed_identity, environment, azure_cli, chain, static,
 * from_function). Options are read and checked here; the work is in the C core. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "assertion.h"
#include "connstr.h"
#include "l_credential.h"
#include "l_op.h"

/* ---- userdata ---------------------------------------------------------------------------- */

static l_credential *push_credential(lua_State *L)
{
    /* The userdata and its metatable come first, so __gc frees whatever is set up later. */
    l_credential *c = lua_newuserdata(L, sizeof *c);
    memset(c, 0, sizeof *c);
    c->callback_ref = LUA_NOREF;
    c->anchors_ref = LUA_NOREF;
    luaL_getmetatable(L, SR_CREDENTIAL_MT);
    lua_setmetatable(L, -2);
    return c;
}

l_credential *l_credential_push_access_key(lua_State *L, const char *key, size_t len, sr_error *err)
{
    l_credential *c = push_credential(L);
    c->kind = L_CRED_ACCESS_KEY;
    c->lua_kind = "access_key";
    if (len == 0) {
        sr_error_set(err, SR_E_INVALID_ARGUMENT, "the access key is empty");
        return NULL;
    }
    if (!sr_signing_key_init(&c->key, NULL, key, len, err)) return NULL;
    c->ready = 1;
    return c;
}

l_credential *l_credential_push_entra(lua_State *L, const char *lua_kind)
{
    l_credential *c = push_credential(L);
    c->kind = L_CRED_ENTRA;
    c->lua_kind = lua_kind;
    return c;
}

l_credential *l_credential_check(lua_State *L, int idx, int arg, const char *what)
{
    l_credential *c = luaL_testudata(L, idx, SR_CREDENTIAL_MT);
    if (!c) l_type_error(L, arg, what, "a credential from signalr.credential", idx);
    return c;
}

/* Finishes an Entra constructor: the userdata is on top; `cred` NULL means err says why. */
static int finish_entra(lua_State *L, l_credential *c, sr_credential *cred, sr_error *err)
{
    if (!cred) return l_push_error(L, err); /* __gc releases the callback ref */
    c->entra = cred;
    c->ready = 1;
    return 1;
}

/* ---- options ----------------------------------------------------------------------------- */

/* Refuses option names not in `known` (a NULL-terminated list), naming the argument. */
static void check_known(lua_State *L, int idx, const char *const *known)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, 1, "option names must be strings");
        const char *k = lua_tostring(L, -1);
        int found = 0;
        for (int i = 0; known[i] && !found; i++) found = strcmp(k, known[i]) == 0;
        if (!found) luaL_argerror(L, 1, lua_pushfstring(L, "unknown option '%s'", k));
    }
}

/* options[name] as a string (left on the stack as an anchor), or NULL when absent. */
static const char *opt_string(lua_State *L, int idx, const char *name, size_t *len)
{
    lua_getfield(L, idx, name);
    if (lua_isnil(L, -1)) return NULL;
    if (lua_type(L, -1) != LUA_TSTRING) {
        char what[64];
        snprintf(what, sizeof what, "options.%s", name);
        l_type_error(L, 1, what, "a string", -1);
    }
    return lua_tolstring(L, -1, len);
}

static int opt_bool(lua_State *L, int idx, const char *name)
{
    lua_getfield(L, idx, name);
    int t = lua_type(L, -1);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN) {
        char what[64];
        snprintf(what, sizeof what, "options.%s", name);
        l_type_error(L, 1, what, "a boolean", -1);
    }
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* An options table at argument 1 (nil = empty); returns its index. */
static int opts_table(lua_State *L, int required)
{
    if (lua_isnoneornil(L, 1)) {
        if (required) l_type_error(L, 1, "options", "a table", 1);
        lua_settop(L, 0);
        lua_newtable(L);
        return 1;
    }
    if (lua_type(L, 1) != LUA_TTABLE) l_type_error(L, 1, "options", "a table", 1);
    lua_settop(L, 1);
    return 1;
}

/* Environment variables: the process environment, or options.env (a table) for tests and
 * custom setups. */
typedef struct l_env {
    lua_State *L;
    int table;                  /* stack index of options.env, or 0 */
} l_env;

static const char *env_get(void *ud, const char *name)
{
    l_env *e = ud;
    const char *v;
    if (e->table) {
        lua_getfield(e->L, e->table, name);
        v = lua_type(e->L, -1) == LUA_TSTRING ? lua_tostring(e->L, -1) : NULL;
        lua_pop(e->L, 1); /* the table keeps the string alive */
    } else {
        v = getenv(name);
    }
    return v && *v ? v : NULL;
}

static void env_init(lua_State *L, int opts, l_env *e)
{
    e->L = L;
    e->table = 0;
    lua_getfield(L, opts, "env");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    if (lua_type(L, -1) != LUA_TTABLE) l_type_error(L, 1, "options.env", "a table of variables", -1);
    e->table = lua_gettop(L);
}

/* ---- static, from_function ------------------------------------------------------------------ */

static int credential_static(lua_State *L)
{
    size_t len;
    const char *token = l_check_string(L, 1, 1, "token", &len);
    double expires_on = 0;
    if (!lua_isnoneornil(L, 2)) {
        if (lua_type(L, 2) != LUA_TNUMBER) l_type_error(L, 2, "expires_on", "a number (seconds since the epoch)", 2);
        expires_on = lua_tonumber(L, 2);
    }
    sr_error err;
    sr_error_clear(&err);
    l_credential *c = l_credential_push_entra(L, "static");
    return finish_entra(L, c, sr_credential_static_new(token, len, expires_on, &err), &err);
}

/* Calls the user's function and encodes its answer as "<expires_on> <token>". */
static int function_thunk(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_call(L, 0, 2);
    if (lua_type(L, -2) != LUA_TSTRING) {
        lua_pushnil(L);
        if (lua_isstring(L, -2)) lua_pushvalue(L, -2);
        else lua_pushliteral(L, "the token function did not return a string");
        return 2;
    }
    double exp = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
    char num[40];
    snprintf(num, sizeof num, "%.3f ", exp > 0 ? exp : 0);
    lua_pushstring(L, num);
    lua_pushvalue(L, -3);
    lua_concat(L, 2);
    return 1;
}

static int credential_from_function(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TFUNCTION) l_type_error(L, 1, "token function", "a function", 1);
    sr_error err;
    sr_error_clear(&err);
    l_credential *c = l_credential_push_entra(L, "function");
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, function_thunk, 1);
    c->callback_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return finish_entra(L, c, sr_credential_function_new(c->callback_ref, &err), &err);
}

/* ---- app registrations ----------------------------------------------------------------------- */

/* tenant_id, client_id, authority_host (options, then AZURE_AUTHORITY_HOST). */
static void read_app(lua_State *L, int opts, l_env *env, sr_app_config *app, int from_env)
{
    memset(app, 0, sizeof *app);
    app->tenant_id = opt_string(L, opts, "tenant_id", NULL);
    app->client_id = opt_string(L, opts, "client_id", NULL);
    app->authority_host = opt_string(L, opts, "authority_host", NULL);
    if (from_env) {
        if (!app->tenant_id) app->tenant_id = env_get(env, "AZURE_TENANT_ID");
        if (!app->client_id) app->client_id = env_get(env, "AZURE_CLIENT_ID");
    }
    if (!app->authority_host) app->authority_host = env_get(env, "AZURE_AUTHORITY_HOST");
}

static void require_app(lua_State *L, const sr_app_config *app)
{
    if (!app->tenant_id) luaL_argerror(L, 1, "options.tenant_id is required");
    if (!app->client_id) luaL_argerror(L, 1, "options.client_id is required");
}

static int credential_client_secret(lua_State *L)
{
    static const char *const known[] = { "tenant_id", "client_id", "client_secret", "authority_host", "env", NULL };
    int opts = opts_table(L, 1);
    check_known(L, opts, known);
    l_env env;
    env_init(L, opts, &env);
    sr_app_config app;
    read_app(L, opts, &env, &app, 0);
    require_app(L, &app);
    size_t len;
    const char *secret = opt_string(L, opts, "client_secret", &len);
    if (!secret) luaL_argerror(L, 1, "options.client_secret is required");
    sr_error err;
    sr_error_clear(&err);
    l_credential *c = l_credential_push_entra(L, "client_secret");
    return finish_entra(L, c, sr_credential_client_secret_new(&app, secret, len, &err), &err);
}

/* Reads a whole file (a certificate or key); NULL with err set. The caller wipes and frees. */
static char *read_file(const char *path, size_t *len, const char *what, sr_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        sr_error_set(err, SR_E_INVALID_ARGUMENT, "cannot open the %s file %s", what, path);
        return NULL;
    }
    size_t cap = 16384, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        if (cap >= (8u << 20)) { /* no certificate is this large */
            sr_wipe(buf, n);
            free(buf);
            buf = NULL;
            fclose(f);
            sr_error_set(err, SR_E_INVALID_ARGUMENT, "the %s file %s is larger than 8 MiB", what, path);
            return NULL;
        }
        /* Grow by copying, so no key material is left in a block realloc would free unwiped. */
        char *bigger = malloc(cap * 2);
        if (bigger) memcpy(bigger, buf, n);
        sr_wipe(buf, n);
        free(buf);
        buf = bigger;
        cap *= 2;
    }
    int failed = ferror(f);
    fclose(f);
    if (!buf) {
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    if (failed) {
        sr_wipe(buf, n);
        free(buf);
        sr_error_set(err, SR_E_INVALID_ARGUMENT, "cannot read the %s file %s", what, path);
        return NULL;
    }
    *len = n;
    return buf;
}

static void wipe_free(char *p, size_t n)
{
    if (!p) return;
    sr_wipe(p, n);
    free(p);
}

/* Loads the client certificate named by the options (path or text, key, password). */
static sr_client_cert *load_cert(lua_State *L, int opts, const char *path, const char *password, sr_error *err)
{
    size_t cert_len = 0, key_len = 0, file_len = 0, key_file_len = 0;
    const char *cert_text = opt_string(L, opts, "certificate", &cert_len);
    const char *key_text = opt_string(L, opts, "private_key", &key_len);
    const char *key_path = opt_string(L, opts, "private_key_path", NULL);
    if ((path != NULL) == (cert_text != NULL))
        luaL_argerror(L, 1, "give options.certificate_path or options.certificate (PEM or PKCS#12 bytes), one of them");
    if (key_text && key_path) luaL_argerror(L, 1, "give options.private_key or options.private_key_path, not both");
    char *file = NULL, *key_file = NULL;
    if (path && !(file = read_file(path, &file_len, "certificate", err))) return NULL;
    if (key_path && !(key_file = read_file(key_path, &key_file_len, "private key", err))) {
        wipe_free(file, file_len);
        return NULL;
    }
    const char *cert = file ? file : cert_text;
    size_t clen = file ? file_len : cert_len;
    const char *key = key_file ? key_file : key_text;
    size_t klen = key_file ? key_file_len : key_len;
    sr_client_cert *cc = sr_client_cert_load(cert, clen, key, klen, password, err);
    wipe_free(file, file_len);
    wipe_free(key_file, key_file_len);
    return cc;
}

static int configure_cert(lua_State *L, int opts, sr_client_cert *cc, int send_chain)
{
    size_t n;
    const char *alg = opt_string(L, opts, "algorithm", &n);
    sr_assertion_alg a = SR_ASSERTION_RS256;
    if (alg && strcmp(alg, "PS256") == 0) a = SR_ASSERTION_PS256;
    else if (alg && strcmp(alg, "RS256") != 0) luaL_argerror(L, 1, "options.algorithm must be \"RS256\" or \"PS256\"");
    sr_client_cert_configure(cc, a, send_chain);
    return 1;
}

static int credential_certificate(lua_State *L)
{
    static const char *const known[] = { "tenant_id", "client_id", "certificate_path", "certificate", "private_key",
                                         "private_key_path", "password", "send_certificate_chain", "algorithm",
                                         "authority_host", "env", NULL };
    int opts = opts_table(L, 1);
    check_known(L, opts, known);
    l_env env;
    env_init(L, opts, &env);
    sr_app_config app;
    read_app(L, opts, &env, &app, 0);
    require_app(L, &app);
    const char *path = opt_string(L, opts, "certificate_path", NULL);
    const char *password = opt_string(L, opts, "password", NULL);
    int send_chain = opt_bool(L, opts, "send_certificate_chain");
    sr_error err;
    sr_error_clear(&err);
    l_credential *c = l_credential_push_entra(L, "certificate");
    int c_idx = lua_gettop(L);
    sr_client_cert *cc = load_cert(L, opts, path, password, &err);
    if (!cc) return l_push_error(L, &err);
    configure_cert(L, opts, cc, send_chain);
    lua_settop(L, c_idx);
    return finish_entra(L, c, sr_credential_certificate_new(&app, cc, &err), &err);
}

static int credential_client_assertion(lua_State *L)
{
    static const char *const known[] = { "tenant_id", "client_id", "assertion", "assertion_file", "authority_host",
                                         "env", NULL };
    int opts = opts_table(L, 1);
    check_known(L, opts, known);
    l_env env;
    env_init(L, opts, &env);
    sr_app_config app;
    read_app(L, opts, &env, &app, 0);
    require_app(L, &app);
    const char *file = opt_string(L, opts, "assertion_file", NULL);
    lua_getfield(L, opts, "assertion");
    int fn = lua_gettop(L);
    if (!lua_isnil(L, fn) && lua_type(L, fn) != LUA_TFUNCTION)
        l_type_error(L, 1, "options.assertion", "a function returning the assertion (or use options.assertion_file)",
                     fn);
    if (lua_isnil(L, fn) == (file == NULL))
        luaL_argerror(L, 1, "give options.assertion (a function) or options.assertion_file, one of them");
    sr_error err;
    sr_error_clear(&err);
    l_credential *c = l_credential_push_entra(L, "client_assertion");
    if (!file) {
        lua_pushvalue(L, fn);
        c->callback_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    return finish_entra(L, c,
                        sr_credential_client_assertion_new(&app, file, file ? -1 : c->callback_ref, 0, &err), &err);
}

/* Workload identity from options or AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE. */
static sr_credential *workload_identity(lua_State *L, int opts, l_env *env, sr_error *err)
{
    sr_app_config app;
    read_app(L, opts, env, &app, 1);
    const char *file = opt_string(L, opts, "token_file_path", NULL);
    if (!file) file = env_get(env, "AZURE_FEDERATED_TOKEN_FILE");
    if (!app.tenant_id || !app.client_id || !file) {
        sr_error_set(err, SR_E_CREDENTIAL_UNAVAILABLE,
                     "WorkloadIdentityCredential: not configured: %s%s%s not set (options or environment)",
                     !app.tenant_id ? "AZURE_TENANT_ID " : "", !app.client_id ? "AZURE_CLIENT_ID " : "",
                     !file ? "AZURE_FEDERATED_TOKEN_FILE" : "");
        return NULL;
    }
    return sr_credential_client_assertion_new(&app, file, -1, 1, err);
}

/* The credentials configured from options and environment variables share this shape. */
typedef sr_credential *(*env_builder)(lua_State *L, int opts, l_env *env, sr_error *err);

static int construct_from_env(lua_State *L, const char *const *known, const char *kind, env_builder build)
{
    int opts = opts_table(L, 0);
    check_known(L, opts, known);
    l_env env;
    env_init(L, opts, &env);
    sr_error err;
    sr_error_clear(&err);
    l_credential *c = l_credential_push_entra(L, kind);
    int c_idx = lua_gettop(L);
    sr_credential *cred = build(L, opts, &env, &err);
    lua_settop(L, c_idx);
    return finish_entra(L, c, cred, &err);
}

static int credential_workload_identity(lua_State *L)
{
    static const char *const known[] = { "tenant_id", "client_id", "token_file_path", "authority_host", "env", NULL };
    return construct_from_env(L, known, "workload_identity", workload_identity);
}

/* ---- managed identity ------------------------------------------------------------------------ */

static sr_credential *managed_identity(lua_State *L, int opts, l_env *env, const char *default_client_id,
                                       sr_error *err)
{
    static const char *const ids[] = { "client_id", "object_id", "resource_id" };
    sr_mi_options o;
    memset(&o, 0, sizeof o);
    for (int i = 0; i < 3; i++) {
        const char *v = opt_string(L, opts, ids[i], NULL);
        if (!v) continue;
        if (o.id) luaL_argerror(L, 1, "give at most one of options.client_id, options.object_id, options.resource_id");
        o.id = v;
        o.id_kind = (sr_mi_id_kind)(SR_MI_CLIENT_ID + i);
    }
    if (!o.id && default_client_id) {
        o.id = default_client_id;
        o.id_kind = SR_MI_CLIENT_ID;
    }
    o.arc_key_dir = opt_string(L, opts, "arc_key_dir", NULL);
    o.authority_host = opt_string(L, opts, "authority_host", NULL);
    if (!o.authority_host) o.authority_host = env_get(env, "AZURE_AUTHORITY_HOST");
    return sr_credential_managed_identity_new(&o, env_get, env, err);
}

static sr_credential *managed_identity_from_options(lua_State *L, int opts, l_env *env, sr_error *err)
{
    return managed_identity(L, opts, env, NULL, err);
}

static int credential_managed_identity(lua_State *L)
{
    static const char *const known[] = { "client_id", "object_id", "resource_id", "arc_key_dir", "authority_host",
                                         "env", NULL };
    return construct_from_env(L, known, "managed_identity", managed_identity_from_options);
}

/* ---- environment ------------------------------------------------------------------------------ */

/* AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET, or + AZURE_CLIENT_CERTIFICATE_PATH
 * (AZURE_CLIENT_CERTIFICATE_PASSWORD, AZURE_CLIENT_SEND_CERTIFICATE_CHAIN). */
static sr_credential *environment(lua_State *L, int opts, l_env *env, sr_error *err)
{
    sr_app_config app;
    read_app(L, opts, env, &app, 1);
    app.name = "EnvironmentCredential";
    const char *secret = env_get(env, "AZURE_CLIENT_SECRET");
    const char *cert = env_get(env, "AZURE_CLIENT_CERTIFICATE_PATH");
    if (!app.tenant_id || !app.client_id || (!secret && !cert)) {
        sr_error_set(err, SR_E_CREDENTIAL_UNAVAILABLE,
                     "EnvironmentCredential: not configured: set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                     "AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH (missing:%s%s%s)",
                     app.tenant_id ? "" : " AZURE_TENANT_ID", app.client_id ? "" : " AZURE_CLIENT_ID",
                     secret || cert ? "" : " AZURE_CLIENT_SECRET/AZURE_CLIENT_CERTIFICATE_PATH");
        return NULL;
    }
    if (secret) return sr_credential_client_secret_new(&app, secret, strlen(secret), err);
    size_t len = 0;
    char *data = read_file(cert, &len, "certificate", err);
    if (!data) return NULL;
    sr_client_cert *cc = sr_client_cert_load(data, len, NULL, 0, env_get(env, "AZURE_CLIENT_CERTIFICATE_PASSWORD"), err);
    wipe_free(data, len);
    if (!cc) return NULL;
    const char *chain = env_get(env, "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN");
    sr_client_cert_configure(cc, SR_ASSERTION_RS256, chain && (!strcmp(chain, "1") || !strcmp(chain, "true")));
    return sr_credential_certificate_new(&app, cc, err);
}

static int credential_environment(lua_State *L)
{
    static const char *const known[] = { "authority_host", "env", NULL };
    return construct_from_env(L, known, "environment", environment);
}

/* ---- Azure CLI ---------------------------------------------------------------------------------- */

static int check_runner(lua_State *L, int opts, const char *name)
{
    lua_getfield(L, opts, name);
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TFUNCTION) {
        char what[64];
        snprintf(what, sizeof what, "options.%s", name);
        l_type_error(L, 1, what, "a function", -1);
    }
    return lua_gettop(L);
}

static int credential_azure_cli(lua_State *L)
{
    static const char *const known[] = { "tenant_id", "runner", NULL };
    int opts = opts_table(L, 0);
    check_known(L, opts, known);
    const char *tenant = opt_string(L, opts, "tenant_id", NULL);
    int runner = check_runner(L, opts, "runner");
    if (lua_isnil(L, runner)) luaL_argerror(L, 1, "options.runner is required (signalr.credential.azure_cli supplies one)");
    sr_error err;
    sr_error_clear(&err);
    l_credential *c = l_credential_push_entra(L, "azure_cli");
    lua_pushvalue(L, runner);
    c->callback_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return finish_entra(L, c, sr_credential_azure_cli_new(tenant, c->callback_ref, &err), &err);
}

/* ---- chains ------------------------------------------------------------------------------------ */

static int push_chain(lua_State *L, const char *lua_kind, const char *name, sr_credential **members, size_t n,
                      sr_error *err)
{
    l_credential *c = l_credential_push_entra(L, lua_kind);
    sr_credential *chain = sr_credential_chain_new(name, members, n, err);
    for (size_t i = 0; i < n; i++) sr_credential_release(members[i]);
    return finish_entra(L, c, chain, err);
}

/* signalr.credential.chain{ cred1, cred2, ... }: the first that yields a token wins. */
static int credential_chain(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TTABLE) l_type_error(L, 1, "credentials", "a list of credentials", 1);
    lua_settop(L, 1);
    int n = (int)lua_rawlen(L, 1);
    if (n < 1 || n > 16) luaL_argerror(L, 1, "a chain takes 1 to 16 credentials");
    sr_credential *members[16];
    sr_error err;
    sr_error_clear(&err);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        l_credential *m = luaL_testudata(L, -1, SR_CREDENTIAL_MT);
        if (!m || !m->entra) {
            for (int j = 0; j < i - 1; j++) sr_credential_release(members[j]);
            return luaL_argerror(L, 1, lua_pushfstring(L, "credentials[%d] must be a Microsoft Entra ID credential", i));
        }
        members[i - 1] = sr_credential_retain(m->entra);
        lua_pop(L, 1);
    }
    if (push_chain(L, "chain", "ChainedTokenCredential", members, (size_t)n, &err) != 1) return 2; /* nil, err */
    l_credential *c = lua_touserdata(L, -1);
    lua_pushvalue(L, 1); /* the members (and their callbacks) live as long as the chain */
    c->anchors_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

/* Builds one member of the default chain into members[*n]; a failure becomes an
 * unavailable member carrying the reason. */
static void default_member(sr_credential **members, size_t *n, sr_credential *made, const char *name,
                           const sr_error *why)
{
    sr_error e;
    sr_error_clear(&e);
    const char *reason = why->message;
    size_t nl = strlen(name);
    if (strncmp(reason, name, nl) == 0 && reason[nl] == ':') reason += nl + 1 + (reason[nl + 1] == ' ');
    members[*n] = made ? made : sr_credential_unavailable_new(name, reason, &e);
    if (members[*n]) (*n)++;
}

/* DefaultAzureCredential: environment, workload identity, managed identity, Azure CLI.
 * Members that are not configured here become unavailable members carrying the reason. */
static int build_default(lua_State *L, int opts, l_env *env, int runner, sr_error *err)
{
    l_credential *c = l_credential_push_entra(L, "default");
    int c_idx = lua_gettop(L);
    if (runner) {
        lua_pushvalue(L, runner);
        c->callback_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    sr_credential *members[4];
    size_t n = 0;
    sr_error e;
    sr_error_clear(&e);
    default_member(members, &n, environment(L, opts, env, &e), "EnvironmentCredential", &e);
    sr_error_clear(&e);
    default_member(members, &n, workload_identity(L, opts, env, &e), "WorkloadIdentityCredential", &e);
    sr_error_clear(&e);
    const char *mi_client = opt_string(L, opts, "managed_identity_client_id", NULL);
    if (!mi_client) mi_client = env_get(env, "AZURE_CLIENT_ID");
    lua_newtable(L); /* managed_identity() reads its selectors from a table: none here */
    default_member(members, &n, managed_identity(L, lua_gettop(L), env, mi_client, &e), "ManagedIdentityCredential",
                   &e);
    sr_error_clear(&e);
    const char *tenant = opt_string(L, opts, "tenant_id", NULL);
    if (!runner) sr_error_set(&e, SR_E_CREDENTIAL_UNAVAILABLE, "no az runner (signalr.credential.default supplies one)");
    default_member(members, &n, runner ? sr_credential_azure_cli_new(tenant, c->callback_ref, &e) : NULL,
                   "AzureCliCredential", &e);
    lua_settop(L, c_idx);
    sr_credential *chain = sr_credential_chain_new("DefaultAzureCredential", members, n, err);
    for (size_t i = 0; i < n; i++) sr_credential_release(members[i]);
    return finish_entra(L, c, chain, err);
}

static int credential_default(lua_State *L)
{
    static const char *const known[] = { "tenant_id", "managed_identity_client_id", "authority_host", "az_runner",
                                         "env", NULL };
    int opts = opts_table(L, 0);
    check_known(L, opts, known);
    l_env env;
    env_init(L, opts, &env);
    int runner = check_runner(L, opts, "az_runner");
    sr_error err;
    sr_error_clear(&err);
    return build_default(L, opts, &env, lua_isnil(L, runner) ? 0 : runner, &err);
}

/* ---- connection strings -------------------------------------------------------------------------- */

/* The default az runner, from the Lua side (signalr.azure_cli); 0 when it cannot be loaded. */
static int push_default_runner(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "signalr.azure_cli");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || lua_type(L, -1) != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    lua_getfield(L, -1, "runner");
    lua_remove(L, -2);
    if (lua_type(L, -1) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        return 0;
    }
    lua_newtable(L);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || lua_type(L, -1) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        return 0;
    }
    return lua_gettop(L);
}

static int app_from_connstr(lua_State *L, int opts, l_env *env, const sr_connstr *cs, sr_error *err)
{
    sr_app_config app;
    read_app(L, opts, env, &app, 0);
    l_credential *c = l_credential_push_entra(L, cs->client_secret ? "client_secret" : "certificate");
    if (cs->client_secret)
        return finish_entra(L, c, sr_credential_client_secret_new(&app, cs->client_secret, strlen(cs->client_secret), err),
                            err);
    size_t len = 0;
    char *data = read_file(cs->client_cert, &len, "ClientCert certificate", err);
    sr_client_cert *cc = data ? sr_client_cert_load(data, len, NULL, 0, NULL, err) : NULL;
    wipe_free(data, len);
    return finish_entra(L, c, cc ? sr_credential_certificate_new(&app, cc, err) : NULL, err);
}

l_credential *l_credential_push_for_connstr(lua_State *L, const sr_connstr *cs, sr_error *err)
{
    int top = lua_gettop(L);
    l_env env = { L, 0 }; /* the process environment */
    lua_createtable(L, 0, 2);
    int opts = lua_gettop(L);
    if (cs->tenant_id) {
        lua_pushstring(L, cs->tenant_id);
        lua_setfield(L, opts, "tenant_id");
    }
    if (cs->client_id) {
        lua_pushstring(L, cs->client_id);
        lua_setfield(L, opts, "client_id");
    }
    int app = cs->auth_type == SR_AUTH_AZURE_APP ||
              (cs->auth_type == SR_AUTH_AAD && (cs->client_secret || cs->client_cert));
    int pushed;
    if (cs->auth_type == SR_AUTH_AZURE) {
        lua_pushnil(L);
        lua_setfield(L, opts, "client_id"); /* AuthType=azure is the default chain, as in the C# SDK */
        pushed = build_default(L, opts, &env, push_default_runner(L), err);
    } else if (app) {
        pushed = app_from_connstr(L, opts, &env, cs, err);
    } else { /* azure.msi, or aad without an app secret: managed identity, ClientId = user-assigned */
        l_credential *c = l_credential_push_entra(L, "managed_identity");
        int c_idx = lua_gettop(L);
        lua_createtable(L, 0, 1);
        if (cs->client_id) {
            lua_pushstring(L, cs->client_id);
            lua_setfield(L, -2, "client_id");
        }
        sr_credential *cred = managed_identity(L, lua_gettop(L), &env, NULL, err);
        lua_settop(L, c_idx);
        pushed = finish_entra(L, c, cred, err);
    }
    if (pushed != 1) {
        lua_settop(L, top);
        return NULL;
    }
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return lua_touserdata(L, top + 1);
}

/* ---- methods ------------------------------------------------------------------------------ */

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
    if (c->ready && c->kind == L_CRED_ACCESS_KEY) sr_signing_key_free(&c->key); /* cleanses the key material */
    sr_credential_release(c->entra); /* wipes secrets when the last op is done with it */
    c->entra = NULL;
    c->ready = 0;
    if (c->callback_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, c->callback_ref);
        c->callback_ref = LUA_NOREF;
    }
    if (c->anchors_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, c->anchors_ref);
        c->anchors_ref = LUA_NOREF;
    }
    return 0;
}

static const char *kind_name(const l_credential *c) { return c->lua_kind ? c->lua_kind : "unknown"; }

static int credential_tostring(lua_State *L)
{
    l_credential *c = luaL_checkudata(L, 1, SR_CREDENTIAL_MT);
    if (c->entra) lua_pushfstring(L, "signalr.credential.%s (%s)", kind_name(c), sr_credential_describe(c->entra));
    else lua_pushfstring(L, "signalr.credential.%s", kind_name(c));
    return 1;
}

static int credential_kind(lua_State *L)
{
    l_credential *c = luaL_checkudata(L, 1, SR_CREDENTIAL_MT);
    lua_pushstring(L, kind_name(c));
    return 1;
}

/* cred:describe(): the identity (tenant, client, source), never a secret. */
static int credential_describe(lua_State *L)
{
    l_credential *c = luaL_checkudata(L, 1, SR_CREDENTIAL_MT);
    if (c->entra) lua_pushstring(L, sr_credential_describe(c->entra));
    else lua_pushstring(L, kind_name(c));
    return 1;
}

/* cred:acquisitions(): how many tokens the credential has acquired (not served from cache). */
static int credential_acquisitions(lua_State *L)
{
    l_credential *c = luaL_checkudata(L, 1, SR_CREDENTIAL_MT);
    lua_pushinteger(L, c->entra ? (lua_Integer)sr_credential_acquisitions(c->entra) : 0);
    return 1;
}

static int push_token(lua_State *L, l_op *u)
{
    lua_pushstring(L, sr_token_op_token(u->op));
    lua_pushnumber(L, sr_token_op_expires_on(u->op));
    return 2;
}

/* cred:token_op(): a sans-I/O op yielding (token, expires_on), for a Lua driver to step
 * (op:step(now [, response]) / op:feed(value)); specs drive the cache with it. */
static int credential_token_op(lua_State *L)
{
    l_credential *c = luaL_checkudata(L, 1, SR_CREDENTIAL_MT);
    if (!c->entra) luaL_argerror(L, 1, "only Microsoft Entra ID credentials have tokens");
    l_op *u = l_op_new(L);
    u->push = push_token;
    lua_pushvalue(L, 1); /* the op keeps the credential (and its callbacks) alive */
    u->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    sr_error err;
    sr_error_clear(&err);
    if (!(u->op = sr_credential_token_op_new(c->entra, &err))) return l_push_error(L, &err);
    return 1;
}

void l_credential_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "kind", credential_kind },
        { "token_op", credential_token_op },
        { "describe", credential_describe },
        { "acquisitions", credential_acquisitions },
        { NULL, NULL },
    };
    static const luaL_Reg constructors[] = {
        { "access_key", credential_access_key },
        { "static_token", credential_static },
        { "from_function", credential_from_function },
        { "client_secret", credential_client_secret },
        { "certificate", credential_certificate },
        { "client_assertion", credential_client_assertion },
        { "workload_identity", credential_workload_identity },
        { "managed_identity", credential_managed_identity },
        { "environment", credential_environment },
        { "azure_cli", credential_azure_cli },
        { "chain", credential_chain },
        { "default", credential_default },
        { NULL, NULL },
    };
    l_class(L, SR_CREDENTIAL_MT, methods, credential_gc, credential_tostring);
    luaL_getmetatable(L, SR_CREDENTIAL_MT);
    lua_pushliteral(L, "signalr.credential");
    lua_setfield(L, -2, "__metatable"); /* getmetatable() shows no internals */
    lua_pop(L, 1);
    luaL_setfuncs(L, constructors, 0); /* into the module table */
}
