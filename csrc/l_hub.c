/* l_hub.c: svc:hub(name) and every data-plane REST operation on it. Argument types are
 * checked (a wrong type raises, naming the argument); everything else returns the
 * operation's results or nil, err. */
#include <math.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "l_hub.h"

/* ---- per-process identity and jitter seeds ------------------------------------------ */

/* nameid of access-key tokens: "{host}_{random}", as the management SDK names a server. */
static const char *server_name(void)
{
    static char name[96];
    if (!name[0]) {
        char host[64] = "lua";
        if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "lua");
        host[sizeof host - 1] = '\0';
        unsigned char r[8] = { 0 };
        RAND_bytes(r, sizeof r);
        snprintf(name, sizeof name, "%s_%02x%02x%02x%02x%02x%02x%02x%02x", host, r[0], r[1], r[2], r[3], r[4],
                 r[5], r[6], r[7]);
        /* Host names are [A-Za-z0-9.-]; anything else becomes '_', so the name goes into
         * JSON without escaping (rest.c relies on it). */
        for (char *p = name; *p; p++) {
            char c = *p;
            int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                     c == '-' || c == '_';
            if (!ok) *p = '_';
        }
    }
    return name;
}

static unsigned long long next_seed(double now)
{
    static uint64_t counter;
    uint64_t z = (uint64_t)(now * 1e6) + (++counter) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL; /* splitmix64 finaliser */
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double l_hub_now(lua_State *L, l_service *s)
{
    if (s->clock_ref == LUA_NOREF) return l_now();
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->clock_ref);
    double t = l_now();
    if (lua_pcall(L, 0, 1, 0) == 0 && lua_type(L, -1) == LUA_TNUMBER) t = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return t;
}

/* ---- hub objects -------------------------------------------------------------------- */

l_hub *l_hub_push(lua_State *L, int svc_idx, int batch_idx, const char *name, size_t len)
{
    svc_idx = sr_absindex(L, svc_idx);
    batch_idx = batch_idx ? sr_absindex(L, batch_idx) : 0;
    l_hub *h = lua_newuserdata(L, sizeof *h);
    memset(h, 0, sizeof *h);
    h->svc_ref = LUA_NOREF;
    h->batch_ref = LUA_NOREF;
    h->scratch_ref = LUA_NOREF;
    luaL_getmetatable(L, SR_HUB_MT);
    lua_setmetatable(L, -2);
    h->svc = lua_touserdata(L, svc_idx);
    lua_pushvalue(L, svc_idx);
    h->svc_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (batch_idx) {
        lua_pushvalue(L, batch_idx);
        h->batch_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    memcpy(h->name, name, len);
    h->name[len] = '\0';
    h->len = len;
    return h;
}

/* svc:hub(name) -> hub | nil, err */
static int service_hub(lua_State *L)
{
    l_service_check(L, 1);
    size_t n;
    const char *name = l_check_string(L, 2, 2, "hub", &n);
    sr_error err;
    sr_error_clear(&err);
    if (!sr_check_name(name, n, "hub", &err)) return l_push_error(L, &err);
    l_hub_push(L, 1, 0, name, n);
    return 1;
}

static l_hub *check_hub(lua_State *L)
{
    l_hub *h = luaL_checkudata(L, 1, SR_HUB_MT);
    if (!h->svc || !h->svc->ready) luaL_argerror(L, 1, "the hub (or its service) is closed");
    return h;
}

/* ---- argument reading ----------------------------------------------------------------- */

static sr_str arg_string(lua_State *L, int idx, const char *what)
{
    sr_str s;
    s.s = l_check_string(L, idx, idx, what, &s.n);
    return s;
}

/* Options: a table of known names (unknown ones raise, listing the known). Fills slots[i]
 * with the stack index of option names[i], or 0. */
static void read_options(lua_State *L, int idx, const char *const names[], int slots[], const char *known)
{
    for (int i = 0; names[i]; i++) slots[i] = 0;
    if (lua_isnoneornil(L, idx)) return;
    if (lua_type(L, idx) != LUA_TTABLE) l_type_error(L, idx, "options", "a table", idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        size_t n;
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
        int found = 0;
        for (int i = 0; k && names[i]; i++) found |= strlen(names[i]) == n && memcmp(names[i], k, n) == 0;
        if (!found) {
            if (!k) luaL_argerror(L, idx, "option names must be strings");
            luaL_argerror(L, idx, lua_pushfstring(L, "unknown option '%s' (known: %s)", k, known));
        }
    }
    for (int i = 0; names[i]; i++) {
        lua_getfield(L, idx, names[i]);
        if (lua_isnil(L, -1)) lua_pop(L, 1);
        else slots[i] = lua_gettop(L); /* stays on the stack: anchors strings we point into */
    }
}

/* A list of strings (or one string) -> sr_strv in a userdata the GC frees. */
static sr_strv read_string_list(lua_State *L, int idx, int arg, const char *what)
{
    sr_strv v = { NULL, 0 };
    if (!idx) return v;
    if (lua_type(L, idx) == LUA_TSTRING) {
        sr_str *one = lua_newuserdata(L, sizeof *one);
        one->s = lua_tolstring(L, idx, &one->n);
        v.v = one;
        v.n = 1;
        return v;
    }
    if (lua_type(L, idx) != LUA_TTABLE) l_type_error(L, arg, what, "a list of strings", idx);
    size_t n = (size_t)lua_rawlen(L, idx);
    sr_str *list = lua_newuserdata(L, (n ? n : 1) * sizeof *list);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, idx, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_argerror(L, arg, lua_pushfstring(L, "%s[%d] must be a string, got %s", what, (int)i + 1,
                                                  luaL_typename(L, -1)));
        list[i].s = lua_tolstring(L, -1, &list[i].n); /* anchored by the list table */
        lua_pop(L, 1);
    }
    v.v = list;
    v.n = n;
    return v;
}

static long long opt_whole(lua_State *L, int idx, int arg, const char *what)
{
    if (!sr_isinteger(L, idx)) l_type_error(L, arg, what, "a whole number", idx);
    return sr_tointeger(L, idx);
}

/* ---- running a call ------------------------------------------------------------------- */

static void init_call(sr_rest_call *c, const l_hub *h, sr_rest_kind kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->hub.s = h->name;
    c->hub.n = h->len;
    c->ttl = -1;
}

/* credential.h through the rest.h function table (rest.c stays free of credential types). */
static sr_op *entra_token_op(void *c, sr_error *err) { return sr_credential_token_op_new(c, err); }
static void *entra_retain(void *c) { return sr_credential_retain(c); }
static void entra_release(void *c) { sr_credential_release(c); }
static void entra_invalidate(void *c) { sr_credential_invalidate(c); }

static void fill_auth(l_service *s, sr_rest_auth *a)
{
    memset(a, 0, sizeof *a);
    if (!s->cred || !s->cred->ready) return;
    if (s->cred->kind == L_CRED_ACCESS_KEY) {
        a->key = &s->cred->key;
        a->server_name = server_name();
    } else if (s->cred->entra) {
        a->credential = s->cred->entra;
        a->token_op_new = entra_token_op;
        a->token_of = sr_token_op_token;
        a->retain = entra_retain;
        a->release = entra_release;
        a->invalidate = entra_invalidate;
    }
}

/* What a hub's reusable op userdata holds between calls: nothing to free, but not NULL, so
 * the userdata's __gc still frees the response buffers it keeps. */
static sr_step_kind parked_step(sr_op *op, double now, sr_response *r, sr_step *out)
{
    (void)now, (void)r;
    sr_error_set(&op->err, SR_E_INTERNAL, "this operation has finished");
    return out->kind = SR_STEP_FAILED;
}
static void parked_feed(sr_op *op, const char *v, size_t n, const char *e) { (void)op, (void)v, (void)n, (void)e; }
static void parked_destroy(sr_op *op) { (void)op; }
static const sr_op_type parked_type = { "finished", parked_step, parked_feed, parked_destroy };
static sr_op parked = { &parked_type, { SR_OK, 0, -1, "", "", "" } };

sr_op *l_hub_make_op(l_service *s, const sr_rest_call *c, int checked, double now, sr_error *err)
{
    sr_rest_auth auth;
    fill_auth(s, &auth);
    sr_retry_policy policy = { s->max_retries, s->retry_delay, s->max_retry_delay };
    if (checked && (auth.key || auth.credential)) /* the service's credential is still there */
        return sr_rest_op_new_checked(&s->ep, c, &auth, &policy, now, next_seed(now), err);
    return sr_rest_op_new(&s->ep, c, &auth, &policy, now, next_seed(now), err);
}

/* Creates the op for call c (body: encoded JSON or NULL, freed here) in the op userdata at
 * u_idx, then runs it; a batch's hub checks the call and queues it instead (the batch
 * makes the op when the call's turn comes). */
static int run_call(lua_State *L, l_hub *h, int u_idx, sr_rest_call *c, sr_buf *body)
{
    l_service *s = h->svc;
    l_op *u = lua_touserdata(L, u_idx);
    if (body) {
        c->body.s = body->data;
        c->body.n = body->len;
    }
    sr_error err;
    sr_error_clear(&err);
    if (h->batch_ref != LUA_NOREF) {
        sr_rest_auth auth;
        fill_auth(s, &auth);
        int n = sr_rest_call_check(c, &auth, &err) ? l_batch_enqueue(L, h, c, u->push) : l_push_error(L, &err);
        if (body) sr_buf_free(body, 0);
        return n;
    }
    u->op = l_hub_make_op(s, c, 0, l_hub_now(L, s), &err);
    if (body) sr_buf_free(body, 0);
    if (!u->op) {
        if (u == h->scratch) u->op = &parked;
        return l_push_error(L, &err);
    }
    if (u != h->scratch) return l_service_run_op(L, s, u, u_idx);
    h->scratch_busy = 1;
    int n = l_service_run_op(L, s, u, u_idx);
    /* The results are on the stack: the op can go; the response keeps its buffers for the
     * next call (the parked op lets the userdata's __gc free them). */
    u->op->type->destroy(u->op);
    u->op = &parked;
    sr_response_reset(&u->resp);
    h->scratch_busy = 0;
    return n;
}

/* Pushes the op userdata for a call: the hub's reusable one for a blocking call or a
 * queued one (no allocation, no finaliser per call), a fresh one for Lua drivers and for
 * ops returned to Lua (both keep the op) and for calls made from inside a running call. */
static l_op *new_op(lua_State *L, int (*push)(lua_State *, l_op *), int *u_idx)
{
    l_hub *h = lua_touserdata(L, 1);
    l_op *u;
    if (h->batch_ref != LUA_NOREF ||
        (h->svc->driver_ref == LUA_NOREF && !h->svc->return_ops && !h->scratch_busy)) {
        if (h->scratch_ref == LUA_NOREF) {
            h->scratch = l_op_new(L);
            lua_pushvalue(L, -1);
            h->scratch_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        } else {
            lua_rawgeti(L, LUA_REGISTRYINDEX, h->scratch_ref);
        }
        u = h->scratch;
        u->finished = 0;
    } else {
        u = l_op_new(L);
    }
    *u_idx = lua_gettop(L);
    u->push = push;
    return u;
}

int l_hub_push_true(lua_State *L, l_op *u)
{
    (void)u;
    lua_pushboolean(L, 1);
    return 1;
}

int l_hub_push_bool(lua_State *L, l_op *u)
{
    lua_pushboolean(L, sr_rest_result_bool(u->op));
    return 1;
}

static int push_token(lua_State *L, l_op *u)
{
    double exp;
    const char *tok = sr_rest_result_token(u->op, &exp);
    lua_pushstring(L, tok);
#if LUA_VERSION_NUM >= 503
    if (exp == floor(exp)) lua_pushinteger(L, (lua_Integer)exp);
    else
#endif
        lua_pushnumber(L, exp);
    lua_pushstring(L, sr_rest_result_client_url(u->op));
    return 3;
}

static int push_invoke(lua_State *L, l_op *u)
{
    const cJSON *doc = sr_rest_result_json(u->op);
    l_json_push(L, cJSON_GetObjectItemCaseSensitive(doc, "result"));
    return 1;
}

/* A page: { { connection_id =, user_id = }, ... } and the nextLink (or nil). */
static int push_page(lua_State *L, l_op *u)
{
    const cJSON *doc = sr_rest_result_json(u->op);
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(doc, "value");
    lua_createtable(L, cJSON_GetArraySize(value), 0);
    int i = 1;
    for (const cJSON *c = value ? value->child : NULL; c; c = c->next) {
        lua_createtable(L, 0, 2);
        const char *id = sr_json_get_string(c, "connectionId");
        const char *user = sr_json_get_string(c, "userId");
        if (id) {
            lua_pushstring(L, id);
            lua_setfield(L, -2, "connection_id");
        }
        if (user) {
            lua_pushstring(L, user);
            lua_setfield(L, -2, "user_id");
        }
        lua_rawseti(L, -2, i++);
    }
    const char *next = sr_json_get_string(doc, "nextLink");
    if (next && *next) lua_pushstring(L, next);
    else lua_pushnil(L);
    return 2;
}

/* ---- messages --------------------------------------------------------------------------- */

/* Encodes {"target": .., "arguments": [..]} from the target at t_idx and the argument list
 * at a_idx. Returns 1, or 0 with err set (empty target, more than 1 MB); raises (after
 * freeing b) for values JSON cannot carry. */
static int encode_message(lua_State *L, int t_idx, int a_idx, sr_buf *b, const char *op_name, sr_error *err)
{
    size_t tn;
    const char *target = l_check_string(L, t_idx, t_idx, "target", &tn);
    if (!lua_isnoneornil(L, a_idx) && lua_type(L, a_idx) != LUA_TTABLE)
        l_type_error(L, a_idx, "args", "a list (table) of arguments or nil", a_idx);
    if (tn == 0) return sr_error_set(err, SR_E_INVALID_ARGUMENT, "%s: the target (method name) is empty", op_name);
    sr_buf_adds(b, "{\"target\":");
    if (!sr_json_add_string(b, target, tn)) {
        sr_buf_free(b, 0);
        luaL_argerror(L, t_idx, "target is not valid UTF-8");
    }
    sr_buf_adds(b, ",\"arguments\":");
    l_json_error je;
    l_json_status st = l_json_encode_args(L, a_idx, b, SR_REST_MAX_BODY, "args", &je);
    if (st == L_JSON_BAD_VALUE) {
        sr_buf_free(b, 0);
        luaL_argerror(L, a_idx, lua_pushfstring(L, "%s %s", je.path, je.why));
    }
    sr_buf_addc(b, '}');
    if (st == L_JSON_TOO_LARGE || b->len > SR_REST_MAX_BODY)
        return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                            "%s: the message is more than 1 MB of JSON; the service accepts at most 1 MB "
                            "(%u bytes) per request", op_name, SR_REST_MAX_BODY);
    if (st != L_JSON_OK || b->oom) return sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    return 1;
}

static const char *const EXCLUDED_OPTS[] = { "excluded", NULL };
static const char *const NO_OPTS[] = { NULL };

/* Shared by the four sends: (hub, [id,] target, args [, options]). */
static int send_message(lua_State *L, sr_rest_kind kind, int has_id, const char *id_what)
{
    l_hub *h = check_hub(L);
    sr_rest_call c;
    init_call(&c, h, kind);
    int t_idx = has_id ? 3 : 2, a_idx = t_idx + 1, o_idx = a_idx + 1;
    lua_settop(L, o_idx); /* absent arguments become nil: later pushes go above them */
    if (has_id) {
        sr_str id = arg_string(L, 2, id_what);
        if (kind == SR_REST_SEND_TO_USER) c.user = id;
        else if (kind == SR_REST_SEND_TO_GROUP) c.group = id;
        else c.connection = id;
    }
    int with_excluded = kind == SR_REST_SEND_TO_ALL || kind == SR_REST_SEND_TO_GROUP;
    int slots[2];
    read_options(L, o_idx, with_excluded ? EXCLUDED_OPTS : NO_OPTS, slots, with_excluded ? "excluded" : "none");
    if (with_excluded) c.excluded = read_string_list(L, slots[0], o_idx, "options.excluded");
    int u_idx;
    new_op(L, l_hub_push_true, &u_idx);
    sr_buf body;
    sr_buf_init(&body);
    sr_error err;
    sr_error_clear(&err);
    if (!encode_message(L, t_idx, a_idx, &body, sr_rest_kind_name(kind), &err)) {
        sr_buf_free(&body, 0);
        return l_push_error(L, &err);
    }
    return run_call(L, h, u_idx, &c, &body);
}

/* hub:send_to_all(target, args [, { excluded = { id, ... } }]) -> true | nil, err */
static int hub_send_to_all(lua_State *L) { return send_message(L, SR_REST_SEND_TO_ALL, 0, NULL); }
/* hub:send_to_user(user_id, target, args) */
static int hub_send_to_user(lua_State *L) { return send_message(L, SR_REST_SEND_TO_USER, 1, "user_id"); }
/* hub:send_to_group(group, target, args [, { excluded = {...} }]) */
static int hub_send_to_group(lua_State *L) { return send_message(L, SR_REST_SEND_TO_GROUP, 1, "group"); }
/* hub:send_to_connection(connection_id, target, args) */
static int hub_send_to_connection(lua_State *L)
{
    return send_message(L, SR_REST_SEND_TO_CONNECTION, 1, "connection_id");
}

/* ---- calls without a body ------------------------------------------------------------- */

enum { A_NONE = 0, A_USER = 1, A_GROUP = 2, A_CONN = 4 };

/* Reads the positional ids an operation takes, in the order given by `order` (e.g.
 * "cg" = connection_id, group), starting at argument 2. Returns the next argument index. */
static int read_ids(lua_State *L, sr_rest_call *c, const char *order)
{
    int idx = 2;
    for (const char *p = order; *p; p++, idx++) {
        if (*p == 'u') c->user = arg_string(L, idx, "user_id");
        else if (*p == 'g') c->group = arg_string(L, idx, "group");
        else c->connection = arg_string(L, idx, "connection_id");
    }
    return idx;
}

static int simple_call(lua_State *L, sr_rest_kind kind, const char *order, int (*push)(lua_State *, l_op *))
{
    l_hub *h = check_hub(L);
    lua_settop(L, 2 + (int)strlen(order));
    sr_rest_call c;
    init_call(&c, h, kind);
    int o_idx = read_ids(L, &c, order);
    if (!lua_isnoneornil(L, o_idx)) {
        int slots[1];
        read_options(L, o_idx, NO_OPTS, slots, "none");
    }
    int u_idx;
    new_op(L, push, &u_idx);
    return run_call(L, h, u_idx, &c, NULL);
}

static int hub_connection_exists(lua_State *L) { return simple_call(L, SR_REST_CONNECTION_EXISTS, "c", l_hub_push_bool); }
static int hub_user_exists(lua_State *L) { return simple_call(L, SR_REST_USER_EXISTS, "u", l_hub_push_bool); }
static int hub_group_exists(lua_State *L) { return simple_call(L, SR_REST_GROUP_EXISTS, "g", l_hub_push_bool); }
static int hub_user_in_group(lua_State *L) { return simple_call(L, SR_REST_USER_IN_GROUP, "ug", l_hub_push_bool); }
/* -> true, or false when the connection does not exist (404 Error.Connection.NotExisted) */
static int hub_add_connection_to_group(lua_State *L)
{
    return simple_call(L, SR_REST_ADD_CONNECTION_TO_GROUP, "cg", l_hub_push_bool);
}
static int hub_remove_connection_from_group(lua_State *L)
{
    return simple_call(L, SR_REST_REMOVE_CONNECTION_FROM_GROUP, "cg", l_hub_push_bool);
}
static int hub_remove_connection_from_all_groups(lua_State *L)
{
    return simple_call(L, SR_REST_REMOVE_CONNECTION_FROM_ALL_GROUPS, "c", l_hub_push_true);
}
static int hub_remove_user_from_group(lua_State *L)
{
    return simple_call(L, SR_REST_REMOVE_USER_FROM_GROUP, "ug", l_hub_push_true);
}
static int hub_remove_user_from_all_groups(lua_State *L)
{
    return simple_call(L, SR_REST_REMOVE_USER_FROM_ALL_GROUPS, "u", l_hub_push_true);
}

/* hub:add_user_to_group(user_id, group [, { ttl = seconds }]) */
static int hub_add_user_to_group(lua_State *L)
{
    static const char *const names[] = { "ttl", NULL };
    l_hub *h = check_hub(L);
    lua_settop(L, 4);
    sr_rest_call c;
    init_call(&c, h, SR_REST_ADD_USER_TO_GROUP);
    read_ids(L, &c, "ug");
    int slots[2];
    read_options(L, 4, names, slots, "ttl");
    int u_idx;
    new_op(L, l_hub_push_true, &u_idx);
    if (slots[0]) {
        c.ttl = opt_whole(L, slots[0], 4, "options.ttl");
        if (c.ttl < 0) {
            sr_error err;
            sr_error_clear(&err);
            sr_error_set(&err, SR_E_INVALID_ARGUMENT, "add_user_to_group: options.ttl must be 0 or more seconds");
            return l_push_error(L, &err);
        }
    }
    return run_call(L, h, u_idx, &c, NULL);
}

/* Closes: (hub, [id,] [options]) with reason (and excluded except for one connection). */
static int close_call(lua_State *L, sr_rest_kind kind, const char *order)
{
    static const char *const with_excluded[] = { "reason", "excluded", NULL };
    static const char *const reason_only[] = { "reason", NULL };
    l_hub *h = check_hub(L);
    lua_settop(L, 2 + (int)strlen(order));
    sr_rest_call c;
    init_call(&c, h, kind);
    int o_idx = read_ids(L, &c, order);
    int one = kind == SR_REST_CLOSE_CONNECTION;
    int slots[3];
    read_options(L, o_idx, one ? reason_only : with_excluded, slots, one ? "reason" : "reason, excluded");
    if (slots[0]) c.reason.s = l_check_string(L, slots[0], o_idx, "options.reason", &c.reason.n);
    if (!one) c.excluded = read_string_list(L, slots[1], o_idx, "options.excluded");
    int u_idx;
    new_op(L, l_hub_push_true, &u_idx);
    return run_call(L, h, u_idx, &c, NULL);
}

/* hub:close_connection(connection_id [, { reason = }]) */
static int hub_close_connection(lua_State *L) { return close_call(L, SR_REST_CLOSE_CONNECTION, "c"); }
/* hub:close_all_connections([{ reason =, excluded = }]) */
static int hub_close_all_connections(lua_State *L) { return close_call(L, SR_REST_CLOSE_ALL, ""); }
static int hub_close_user_connections(lua_State *L) { return close_call(L, SR_REST_CLOSE_USER, "u"); }
static int hub_close_group_connections(lua_State *L) { return close_call(L, SR_REST_CLOSE_GROUP, "g"); }

/* ---- 2024-12-01 operations ------------------------------------------------------------ */

/* hub:generate_token{ user_id =, lifetime = seconds, roles = {...}, groups = {...} }
 * -> token, expires_at, client_url | nil, err (the service signs it: works with Entra). */
static int hub_generate_token(lua_State *L)
{
    static const char *const names[] = { "user_id", "lifetime", "roles", "groups", NULL };
    l_hub *h = check_hub(L);
    lua_settop(L, 2);
    sr_rest_call c;
    init_call(&c, h, SR_REST_GENERATE_TOKEN);
    int slots[5];
    read_options(L, 2, names, slots, "user_id, lifetime, roles, groups");
    if (slots[0]) c.user.s = l_check_string(L, slots[0], 2, "options.user_id", &c.user.n);
    long long lifetime = 0;
    if (slots[1]) {
        if (lua_type(L, slots[1]) != LUA_TNUMBER) l_type_error(L, 2, "options.lifetime", "a number of seconds", slots[1]);
        double v = lua_tonumber(L, slots[1]);
        lifetime = v > 0 && v <= 366.0 * 86400 ? (long long)ceil(v / 60) : -1;
    }
    c.roles = read_string_list(L, slots[2], 2, "options.roles");
    c.groups = read_string_list(L, slots[3], 2, "options.groups");
    int u_idx;
    new_op(L, push_token, &u_idx);
    if (lifetime < 0 || lifetime > 365 * 24 * 60) {
        sr_error err;
        sr_error_clear(&err);
        sr_error_set(&err, SR_E_INVALID_ARGUMENT,
                     "generate_token: options.lifetime must be from 1 second to 1 year (the service counts "
                     "whole minutes, rounded up)");
        return l_push_error(L, &err);
    }
    c.minutes = (int)lifetime;
    return run_call(L, h, u_idx, &c, NULL);
}

/* hub:invoke(connection_id, target, args) -> the client's result (signalr.null for null) */
static int hub_invoke(lua_State *L)
{
    l_hub *h = check_hub(L);
    lua_settop(L, 4);
    sr_rest_call c;
    init_call(&c, h, SR_REST_INVOKE);
    c.connection = arg_string(L, 2, "connection_id");
    int u_idx;
    new_op(L, push_invoke, &u_idx);
    sr_buf body;
    sr_buf_init(&body);
    sr_error err;
    sr_error_clear(&err);
    if (!encode_message(L, 3, 4, &body, "invoke", &err)) {
        sr_buf_free(&body, 0);
        return l_push_error(L, &err);
    }
    return run_call(L, h, u_idx, &c, &body);
}

static const char *const COMMAND_TYPES[] = { "SendMessage", "JoinGroup", "LeaveGroup", "CloseConnection", NULL };

static void command_error(lua_State *L, sr_buf *b, int i, const char *what)
{
    sr_buf_free(b, 0);
    luaL_argerror(L, 2, lua_pushfstring(L, "commands[%d]%s", i, what));
}

/* One command of :execute, from { type =, target =, arguments = } (SendMessage),
 * { type =, group = } (JoinGroup, LeaveGroup) or { type =, reason = } (CloseConnection). */
static int encode_command(lua_State *L, int cmd, int i, sr_buf *b, sr_error *err)
{
    if (lua_type(L, cmd) != LUA_TTABLE) command_error(L, b, i, " must be a table");
    lua_getfield(L, cmd, "type");
    const char *type = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    int t = -1;
    for (int k = 0; type && COMMAND_TYPES[k]; k++)
        if (strcmp(type, COMMAND_TYPES[k]) == 0) t = k;
    lua_pop(L, 1);
    if (t < 0) {
        command_error(L, b, i, ".type must be \"SendMessage\", \"JoinGroup\", \"LeaveGroup\" or \"CloseConnection\"");
        return 0; /* not reached: command_error raises */
    }
    sr_buf_addf(b, "{\"type\":\"%s\"", COMMAND_TYPES[t]);
    int top = lua_gettop(L);
    if (t == 0) {
        lua_getfield(L, cmd, "target");
        lua_getfield(L, cmd, "arguments");
        if (lua_type(L, top + 1) != LUA_TSTRING) command_error(L, b, i, ".target must be a string");
        if (!lua_isnil(L, top + 2) && lua_type(L, top + 2) != LUA_TTABLE)
            command_error(L, b, i, ".arguments must be a list or nil");
        size_t tn;
        const char *target = lua_tolstring(L, top + 1, &tn);
        if (tn == 0) command_error(L, b, i, ".target must not be empty");
        sr_buf_adds(b, ",\"message\":{\"target\":");
        if (!sr_json_add_string(b, target, tn)) command_error(L, b, i, ".target is not valid UTF-8");
        sr_buf_adds(b, ",\"arguments\":");
        char root[40];
        snprintf(root, sizeof root, "commands[%d].arguments", i);
        l_json_error je;
        l_json_status st = l_json_encode_args(L, top + 2, b, SR_REST_MAX_BODY, root, &je);
        if (st == L_JSON_BAD_VALUE) {
            sr_buf_free(b, 0);
            luaL_argerror(L, 2, lua_pushfstring(L, "%s %s", je.path, je.why));
        }
        if (st == L_JSON_TOO_LARGE)
            return sr_error_set(err, SR_E_INVALID_ARGUMENT, "execute: the commands are more than 1 MB of JSON");
        sr_buf_addc(b, '}');
    } else if (t == 1 || t == 2) {
        lua_getfield(L, cmd, "group");
        size_t gn;
        const char *g = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &gn) : NULL;
        if (!g) command_error(L, b, i, ".group must be a string");
        sr_buf_adds(b, ",\"group\":");
        if (!sr_json_add_string(b, g, gn)) command_error(L, b, i, ".group is not valid UTF-8");
    } else {
        lua_getfield(L, cmd, "reason");
        if (!lua_isnil(L, -1)) {
            size_t rn;
            const char *r = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &rn) : NULL;
            if (!r) command_error(L, b, i, ".reason must be a string or nil");
            sr_buf_adds(b, ",\"reason\":");
            if (!sr_json_add_string(b, r, rn)) command_error(L, b, i, ".reason is not valid UTF-8");
        }
    }
    lua_settop(L, top);
    sr_buf_addc(b, '}');
    return 1;
}

/* hub:execute(commands [, { filter = "OData filter" }]) -> true | nil, err */
static int hub_execute(lua_State *L)
{
    static const char *const names[] = { "filter", NULL };
    l_hub *h = check_hub(L);
    lua_settop(L, 3);
    sr_rest_call c;
    init_call(&c, h, SR_REST_EXECUTE);
    if (lua_type(L, 2) != LUA_TTABLE) l_type_error(L, 2, "commands", "a list of command tables", 2);
    int slots[2];
    read_options(L, 3, names, slots, "filter");
    if (slots[0]) c.filter.s = l_check_string(L, slots[0], 3, "options.filter", &c.filter.n);
    int u_idx;
    new_op(L, l_hub_push_true, &u_idx);
    luaL_checkstack(L, 8, "execute");
    sr_buf body;
    sr_buf_init(&body);
    sr_error err;
    sr_error_clear(&err);
    int n = (int)lua_rawlen(L, 2), ok = 1;
    sr_buf_addc(&body, '[');
    for (int i = 1; ok && i <= n; i++) {
        if (i > 1) sr_buf_addc(&body, ',');
        lua_rawgeti(L, 2, i);
        ok = encode_command(L, lua_gettop(L), i, &body, &err);
        lua_pop(L, 1);
    }
    sr_buf_addc(&body, ']');
    if (ok && n == 0) ok = sr_error_set(&err, SR_E_INVALID_ARGUMENT, "execute: the command list is empty");
    if (ok && body.len > SR_REST_MAX_BODY)
        ok = sr_error_set(&err, SR_E_INVALID_ARGUMENT, "execute: the commands are more than 1 MB of JSON");
    if (ok && body.oom) ok = sr_error_set(&err, SR_E_NO_MEMORY, "out of memory");
    if (!ok) {
        sr_buf_free(&body, 0);
        return l_push_error(L, &err);
    }
    return run_call(L, h, u_idx, &c, &body);
}

/* ---- listing a group's connections ---------------------------------------------------- */

/* Upvalues: 1 hub, 2 group, 3 page size (or nil), 4 top (or nil), 5 next link (nil before
 * the first page, false when done). */
static int group_connections_next(lua_State *L)
{
    if (lua_type(L, lua_upvalueindex(5)) == LUA_TBOOLEAN) return 0; /* done */
    lua_settop(L, 0);
    lua_pushvalue(L, lua_upvalueindex(1));
    l_hub *h = check_hub(L);
    for (;;) {
        sr_rest_call c;
        init_call(&c, h, SR_REST_LIST_GROUP_CONNECTIONS);
        c.group.s = lua_tolstring(L, lua_upvalueindex(2), &c.group.n);
        if (!lua_isnil(L, lua_upvalueindex(3))) c.page_size = (int)sr_tointeger(L, lua_upvalueindex(3));
        if (!lua_isnil(L, lua_upvalueindex(4))) c.top = sr_tointeger(L, lua_upvalueindex(4));
        if (lua_type(L, lua_upvalueindex(5)) == LUA_TSTRING)
            c.next_link.s = lua_tolstring(L, lua_upvalueindex(5), &c.next_link.n);
        lua_settop(L, 1);
        int u_idx;
        new_op(L, push_page, &u_idx);
        int n = run_call(L, h, u_idx, &c, NULL);
        int first = lua_gettop(L) - n + 1;
        if (n < 1 || lua_isnil(L, first)) {
            /* failed: yield false, err once, then stop */
            lua_pushboolean(L, 0);
            lua_replace(L, lua_upvalueindex(5));
            lua_pushboolean(L, 0);
            if (n >= 2) lua_pushvalue(L, first + 1);
            else lua_pushnil(L);
            return 2;
        }
        /* page, next link (nil on the last page) */
        lua_settop(L, first + 1);
        if (lua_isnil(L, -1)) lua_pushboolean(L, 0);
        else lua_pushvalue(L, -1);
        lua_replace(L, lua_upvalueindex(5));
        if (lua_rawlen(L, first) > 0) {
            lua_settop(L, first);
            return 1;
        }
        if (lua_type(L, lua_upvalueindex(5)) == LUA_TBOOLEAN) return 0; /* empty last page */
        lua_settop(L, 1);
    }
}

/* for page, err in hub:group_connections(group [, { page_size =, top = }]) do ... end
 * Each page is a list of { connection_id =, user_id = }; a failure yields false, err. */
static int hub_group_connections(lua_State *L)
{
    static const char *const names[] = { "page_size", "top", NULL };
    l_hub *h = check_hub(L);
    if (h->batch_ref != LUA_NOREF) luaL_argerror(L, 1, "group_connections is not available in a batch");
    lua_settop(L, 3);
    l_check_string(L, 2, 2, "group", NULL);
    int slots[3];
    read_options(L, 3, names, slots, "page_size, top");
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    if (slots[0]) opt_whole(L, slots[0], 3, "options.page_size"), lua_pushvalue(L, slots[0]);
    else lua_pushnil(L);
    if (slots[1]) opt_whole(L, slots[1], 3, "options.top"), lua_pushvalue(L, slots[1]);
    else lua_pushnil(L);
    lua_pushnil(L);
    lua_pushcclosure(L, group_connections_next, 5);
    return 1;
}

/* ---- hub object methods ----------------------------------------------------------------- */

static int hub_name(lua_State *L)
{
    l_hub *h = luaL_checkudata(L, 1, SR_HUB_MT);
    lua_pushlstring(L, h->name, h->len);
    return 1;
}

static int hub_gc(lua_State *L)
{
    l_hub *h = luaL_checkudata(L, 1, SR_HUB_MT);
    if (h->svc_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, h->svc_ref);
    if (h->batch_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, h->batch_ref);
    if (h->scratch_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, h->scratch_ref);
    h->svc_ref = h->batch_ref = h->scratch_ref = LUA_NOREF;
    h->scratch = NULL;
    h->svc = NULL;
    return 0;
}

static int hub_tostring(lua_State *L)
{
    l_hub *h = luaL_checkudata(L, 1, SR_HUB_MT);
    lua_pushfstring(L, "signalr.hub (%s%s)", h->name, h->batch_ref != LUA_NOREF ? ", batch" : "");
    return 1;
}

void l_hub_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "name", hub_name },
        { "send_to_all", hub_send_to_all },
        { "send_to_user", hub_send_to_user },
        { "send_to_group", hub_send_to_group },
        { "send_to_connection", hub_send_to_connection },
        { "connection_exists", hub_connection_exists },
        { "user_exists", hub_user_exists },
        { "group_exists", hub_group_exists },
        { "user_in_group", hub_user_in_group },
        { "add_connection_to_group", hub_add_connection_to_group },
        { "remove_connection_from_group", hub_remove_connection_from_group },
        { "remove_connection_from_all_groups", hub_remove_connection_from_all_groups },
        { "add_user_to_group", hub_add_user_to_group },
        { "remove_user_from_group", hub_remove_user_from_group },
        { "remove_user_from_all_groups", hub_remove_user_from_all_groups },
        { "close_connection", hub_close_connection },
        { "close_all_connections", hub_close_all_connections },
        { "close_user_connections", hub_close_user_connections },
        { "close_group_connections", hub_close_group_connections },
        { "generate_token", hub_generate_token },
        { "group_connections", hub_group_connections },
        { "invoke", hub_invoke },
        { "execute", hub_execute },
        { NULL, NULL },
    };
    l_class(L, SR_HUB_MT, methods, hub_gc, hub_tostring);
    /* svc:hub(name) joins the service's methods */
    lua_pushcfunction(L, service_hub);
    l_class_method(L, SR_SERVICE_MT, "hub");

    l_payload_open(L);
    l_batch_open(L);
}
