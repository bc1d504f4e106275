/* l_batch.c: svc:batch{ max_in_flight = n }: queue REST calls through batch:hub(name),
 * then batch:run() performs them concurrently on one curl multi handle.
 *
 *   local b = svc:batch{ max_in_flight = 64 }
 *   local chat = b:hub("chat")
 *   chat:send_to_user("alice", "notify", { "hi" })     -- queued: returns its position
 *   chat:user_exists("bob")
 *   for i, r in ipairs(b:run()) do                     -- in queue order
 *     -- r[1], ..., r[r.n]: what the direct call returns; r.err on failure
 *   end
 */
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "l_hub.h"

#define DEFAULT_IN_FLIGHT 16

typedef struct queued {
    sr_op *op;
    int (*push)(lua_State *L, l_op *u);
} queued;

/* Queued ops live in C arrays, not in Lua userdata: a batch of thousands costs no
 * finalisers and no garbage. */
typedef struct op_list {
    queued *v;
    size_t n, cap;
} op_list;

typedef struct l_batch {
    l_service *svc;             /* kept alive by svc_ref */
    int svc_ref;
    op_list queue;              /* waiting for run() */
    op_list running;            /* taken by run(); destroyed when run() is done (or at __gc) */
    int max_in_flight;
} l_batch;

static void list_clear(op_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].op) l->v[i].op->type->destroy(l->v[i].op);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static l_batch *check_batch(lua_State *L)
{
    l_batch *b = luaL_checkudata(L, 1, SR_BATCH_MT);
    if (!b->svc || !b->svc->ready) luaL_argerror(L, 1, "the batch (or its service) is closed");
    return b;
}

/* svc:batch([{ max_in_flight = n }]) */
static int service_batch(lua_State *L)
{
    l_service *s = l_service_check(L, 1);
    int max = DEFAULT_IN_FLIGHT;
    if (!lua_isnoneornil(L, 2)) {
        if (lua_type(L, 2) != LUA_TTABLE) l_type_error(L, 2, "options", "a table", 2);
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, 2, "option names must be strings");
            if (strcmp(lua_tostring(L, -1), "max_in_flight") != 0)
                luaL_argerror(L, 2, lua_pushfstring(L, "unknown option '%s' (known: max_in_flight)",
                                                    lua_tostring(L, -1)));
        }
        lua_getfield(L, 2, "max_in_flight");
        if (!lua_isnil(L, -1)) {
            if (!sr_isinteger(L, -1) || sr_tointeger(L, -1) < 1 || sr_tointeger(L, -1) > SR_BATCH_MAX_IN_FLIGHT)
                luaL_argerror(L, 2, lua_pushfstring(L, "options.max_in_flight must be a whole number from 1 to %d",
                                                    SR_BATCH_MAX_IN_FLIGHT));
            max = (int)sr_tointeger(L, -1);
        }
        lua_pop(L, 1);
    }
    l_batch *b = lua_newuserdata(L, sizeof *b);
    memset(b, 0, sizeof *b);
    b->svc_ref = LUA_NOREF;
    luaL_getmetatable(L, SR_BATCH_MT);
    lua_setmetatable(L, -2);
    b->svc = s;
    b->max_in_flight = max;
    lua_pushvalue(L, 1);
    b->svc_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

/* batch:hub(name) -> a hub whose calls are queued | nil, err */
static int batch_hub(lua_State *L)
{
    l_batch *b = check_batch(L);
    size_t n;
    const char *name = l_check_string(L, 2, 2, "hub", &n);
    sr_error err;
    sr_error_clear(&err);
    if (!sr_check_name(name, n, "hub", &err)) return l_push_error(L, &err);
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->svc_ref);
    l_hub_push(L, lua_gettop(L), 1, name, n);
    return 1;
}

int l_batch_enqueue(lua_State *L, l_hub *h, sr_op *op, int (*push)(lua_State *, l_op *))
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->batch_ref);
    l_batch *b = lua_touserdata(L, -1);
    lua_pop(L, 1);
    op_list *q = &b->queue;
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        queued *v = realloc(q->v, cap * sizeof *v);
        if (!v) {
            op->type->destroy(op);
            sr_error err;
            sr_error_clear(&err);
            sr_error_set(&err, SR_E_NO_MEMORY, "out of memory");
            return l_push_error(L, &err);
        }
        q->v = v;
        q->cap = cap;
    }
    q->v[q->n].op = op;
    q->v[q->n].push = push;
    q->n++;
    lua_pushinteger(L, (lua_Integer)q->n);
    return 1;
}

/* ---- hooks for the multi driver ---- */

typedef struct run_ctx {
    lua_State *L;
    l_service *svc;
} run_ctx;

static double hook_now(void *ud)
{
    run_ctx *c = ud;
    return l_hub_now(c->L, c->svc);
}

/* A CALLBACK step (a credential's Lua function): its string result, or an error text. */
static void hook_callback(void *ud, sr_op *op, int ref)
{
    l_op_run_callback(((run_ctx *)ud)->L, op, ref);
}

/* Stores the values [first, top] as { ..., n = count, err = <err on failure> }. */
static void store_result(lua_State *L, int results, int i, int first)
{
    int top = lua_gettop(L);
    while (top > first && lua_isnil(L, top)) top--; /* a Lua driver may return padding nils */
    int n = top - first + 1;
    lua_settop(L, top);
    lua_createtable(L, n, 2);
    for (int k = 0; k < n; k++) {
        lua_pushvalue(L, first + k);
        lua_rawseti(L, -2, k + 1);
    }
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
    if (n == 2 && lua_isnil(L, first)) {
        lua_pushvalue(L, first + 1);
        lua_setfield(L, -2, "err");
    }
    lua_rawseti(L, results, i);
    lua_settop(L, first - 1);
}

/* batch:run() -> { result, ... } in queue order; the batch is empty again afterwards. */
static int batch_run(lua_State *L)
{
    l_batch *b = check_batch(L);
    l_service *s = b->svc;
    lua_settop(L, 1);
    /* the queue starts afresh: calls made while running go to the next run */
    list_clear(&b->running);
    b->running = b->queue;
    memset(&b->queue, 0, sizeof b->queue);
    op_list *r = &b->running;
    size_t n = r->n;
    lua_createtable(L, (int)n, 0);
    int results = 2;
    luaL_checkstack(L, 16, "batch results");

    if (s->return_ops) {
        /* OpenResty: the ops go back to Lua, which runs them on light threads:
         * { op, ..., n =, max_in_flight =, signalr_ops = true }. */
        for (size_t i = 0; i < n; i++) {
            l_op *u = l_op_new(L);
            u->op = r->v[i].op; /* the userdata owns it from here */
            u->push = r->v[i].push;
            r->v[i].op = NULL;
            lua_rawseti(L, results, (int)i + 1);
        }
        lua_pushinteger(L, (lua_Integer)n);
        lua_setfield(L, results, "n");
        lua_pushinteger(L, b->max_in_flight);
        lua_setfield(L, results, "max_in_flight");
        lua_pushboolean(L, 1);
        lua_setfield(L, results, "signalr_ops");
        list_clear(r);
        return 1;
    }
    if (s->driver_ref != LUA_NOREF) {
        /* A driver function called from C runs each op itself, one after the other. */
        for (size_t i = 0; i < n; i++) {
            l_op *u = l_op_new(L);
            int u_idx = lua_gettop(L);
            u->op = r->v[i].op; /* the userdata owns it from here */
            u->push = r->v[i].push;
            r->v[i].op = NULL;
            l_service_run_op(L, s, u, u_idx);
            store_result(L, results, (int)i + 1, u_idx + 1);
            lua_settop(L, results);
        }
        list_clear(r);
        return 1;
    }
    sr_error err;
    sr_error_clear(&err);
    if (!s->transport && !(s->transport = sr_transport_new(&s->topts, &err))) return l_push_error(L, &err);
    sr_op **ops = lua_newuserdata(L, (n ? n : 1) * sizeof *ops);
    sr_step_kind *final = lua_newuserdata(L, (n ? n : 1) * sizeof *final);
    for (size_t i = 0; i < n; i++) ops[i] = r->v[i].op;
    run_ctx ctx = { L, s };
    sr_batch_hooks hooks = { hook_now, hook_callback, &ctx };
    sr_batch_run(s->transport, ops, n, (size_t)b->max_in_flight, &hooks, final, &err);
    int base = lua_gettop(L);
    l_op u;
    memset(&u, 0, sizeof u);
    for (size_t i = 0; i < n; i++) {
        u.op = r->v[i].op;
        if (final[i] == SR_STEP_DONE) r->v[i].push(L, &u);
        else l_push_error(L, final[i] == SR_STEP_FAILED ? &u.op->err : &err);
        store_result(L, results, (int)i + 1, base + 1);
        lua_settop(L, base);
    }
    list_clear(r);
    lua_settop(L, results);
    return 1;
}

static int batch_len(lua_State *L)
{
    l_batch *b = luaL_checkudata(L, 1, SR_BATCH_MT);
    lua_pushinteger(L, (lua_Integer)b->queue.n);
    return 1;
}

static int batch_gc(lua_State *L)
{
    l_batch *b = luaL_checkudata(L, 1, SR_BATCH_MT);
    if (b->svc_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, b->svc_ref);
    b->svc_ref = LUA_NOREF;
    b->svc = NULL;
    list_clear(&b->queue);
    list_clear(&b->running);
    return 0;
}

static int batch_tostring(lua_State *L)
{
    l_batch *b = luaL_checkudata(L, 1, SR_BATCH_MT);
    lua_pushfstring(L, "signalr.batch (%d queued, %d in flight at most)", (int)b->queue.n, b->max_in_flight);
    return 1;
}

void l_batch_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "hub", batch_hub },
        { "run", batch_run },
        { "size", batch_len },
        { NULL, NULL },
    };
    l_class(L, SR_BATCH_MT, methods, batch_gc, batch_tostring);
    luaL_getmetatable(L, SR_BATCH_MT);
    lua_pushcfunction(L, batch_len);
    lua_setfield(L, -2, "__len");
    lua_pop(L, 1);
    lua_pushcfunction(L, service_batch);
    l_class_method(L, SR_SERVICE_MT, "batch");
}
