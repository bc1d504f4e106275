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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "l_hub.h"

#define DEFAULT_IN_FLIGHT 16

enum q_state {
    Q_WAITING = 0,              /* not run (yet) */
    Q_BOOL,                     /* done; its one boolean result is in `result`, its op is gone */
    Q_DONE,                     /* done; `op` holds what push() reads */
    Q_FAILED,                   /* `op->err` says why */
    Q_NOT_MADE                  /* the op could not be made: `err` says why */
};

/* A queued call: a copy of its sr_rest_call in the list's arena, and once it has run,
 * what became of it. The op is made only when the call's turn comes and, for calls whose
 * result is one boolean (sends, existence checks), destroyed as soon as it is over: a
 * batch of thousands holds only the ops in flight, and their memory is reused at once. */
typedef struct queued {
    size_t call_at;             /* the sr_rest_call's offset in the arena */
    int (*push)(lua_State *L, l_op *u);
    sr_op *op;
    sr_error *err;              /* Q_NOT_MADE */
    enum q_state state;
    int result;                 /* Q_BOOL */
} queued;

/* The calls' parameters and strings, one block reused from run to run (no allocation per
 * call once it is large enough). Pointers in the copies are offsets + 1 until the run
 * turns them into addresses: the block may move while calls are queued. */
typedef struct arena {
    char *data;
    size_t len, cap;
} arena;

typedef struct op_list {
    queued *v;
    size_t n, cap;
    arena a;
} op_list;

typedef struct l_batch {
    l_service *svc;             /* kept alive by svc_ref */
    int svc_ref;
    op_list queue;              /* waiting for run() */
    op_list running;            /* taken by run(); emptied when run() is done (or at __gc) */
    int max_in_flight;
    int in_run;                 /* run() is under way (a callback must not start another) */
} l_batch;

/* Empties the list (ops destroyed, errors freed), keeping its memory for the next calls;
 * with `release`, frees that too. */
static void list_clear(op_list *l, int release)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i].op) l->v[i].op->type->destroy(l->v[i].op);
        free(l->v[i].err);
    }
    l->n = 0;
    l->a.len = 0;
    if (release) {
        free(l->v);
        free(l->a.data);
        memset(l, 0, sizeof *l);
    }
}

/* ---- copies of calls ------------------------------------------------------------------ */

/* Room for n more bytes at an 8-byte boundary; the offset, or (size_t)-1 when out of
 * memory. */
static size_t arena_alloc(arena *a, size_t n)
{
    size_t at = (a->len + 7) & ~(size_t)7;
    if (at + n > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < at + n) cap *= 2;
        char *p = realloc(a->data, cap);
        if (!p) return (size_t)-1;
        a->data = p;
        a->cap = cap;
    }
    a->len = at + n;
    return at;
}

#define AS_OFFSET(at) ((const char *)(uintptr_t)((at) + 1))
#define FROM_OFFSET(base, p) ((base) + ((uintptr_t)(p) - 1))

/* Copies s's bytes (and a NUL) and makes s point at the copy's offset. */
static int save_str(arena *a, sr_str *s)
{
    if (!s->s) return 1;
    size_t at = arena_alloc(a, s->n + 1);
    if (at == (size_t)-1) return 0;
    memcpy(a->data + at, s->s, s->n);
    a->data[at + s->n] = '\0';
    s->s = AS_OFFSET(at);
    return 1;
}

static int save_strv(arena *a, sr_strv *v)
{
    if (!v->v) return 1;
    size_t at = arena_alloc(a, (v->n ? v->n : 1) * sizeof(sr_str));
    if (at == (size_t)-1) return 0;
    for (size_t i = 0; i < v->n; i++) {
        sr_str one = v->v[i];
        if (!save_str(a, &one)) return 0;
        ((sr_str *)(a->data + at))[i] = one; /* after the copy: the block may have moved */
    }
    v->v = (const sr_str *)AS_OFFSET(at);
    return 1;
}

/* Every string and string list a call holds: what a copy must carry. */
enum { CALL_STRS = 8, CALL_STRVS = 3 };
static void call_fields(sr_rest_call *c, sr_str *strs[CALL_STRS], sr_strv *strvs[CALL_STRVS])
{
    sr_str *s[CALL_STRS] = { &c->hub, &c->user, &c->group, &c->connection, &c->reason,
                             &c->body, &c->next_link, &c->filter };
    sr_strv *v[CALL_STRVS] = { &c->excluded, &c->roles, &c->groups };
    memcpy(strs, s, sizeof s);
    memcpy(strvs, v, sizeof v);
}

/* The copy of c in the arena: its offset, or (size_t)-1 when out of memory. */
static size_t save_call(arena *a, const sr_rest_call *c)
{
    sr_rest_call copy = *c;
    sr_str *strs[CALL_STRS];
    sr_strv *strvs[CALL_STRVS];
    call_fields(&copy, strs, strvs);
    for (int i = 0; i < CALL_STRS; i++)
        if (!save_str(a, strs[i])) return (size_t)-1;
    for (int i = 0; i < CALL_STRVS; i++)
        if (!save_strv(a, strvs[i])) return (size_t)-1;
    size_t at = arena_alloc(a, sizeof copy);
    if (at != (size_t)-1) memcpy(a->data + at, &copy, sizeof copy);
    return at;
}

static void fix_str(const char *base, sr_str *s)
{
    if (s->s) s->s = FROM_OFFSET(base, s->s);
}

static void fix_strv(char *base, sr_strv *v)
{
    if (!v->v) return;
    sr_str *list = (sr_str *)FROM_OFFSET(base, v->v);
    for (size_t i = 0; i < v->n; i++) fix_str(base, &list[i]);
    v->v = list;
}

/* Turns the offsets of every call in l into addresses: the arena no longer moves. */
static void fix_calls(op_list *l)
{
    char *base = l->a.data;
    for (size_t i = 0; i < l->n; i++) {
        sr_rest_call *c = (sr_rest_call *)(base + l->v[i].call_at);
        sr_str *strs[CALL_STRS];
        sr_strv *strvs[CALL_STRVS];
        call_fields(c, strs, strvs);
        for (int k = 0; k < CALL_STRS; k++) fix_str(base, strs[k]);
        for (int k = 0; k < CALL_STRVS; k++) fix_strv(base, strvs[k]);
    }
}

static const sr_rest_call *call_of(const op_list *l, size_t i)
{
    return (const sr_rest_call *)(l->a.data + l->v[i].call_at);
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

int l_batch_enqueue(lua_State *L, l_hub *h, const sr_rest_call *c, int (*push)(lua_State *, l_op *))
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->batch_ref);
    l_batch *b = lua_touserdata(L, -1);
    lua_pop(L, 1);
    op_list *q = &b->queue;
    size_t at = (size_t)-1;
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        queued *v = realloc(q->v, cap * sizeof *v);
        if (v) {
            q->v = v;
            q->cap = cap;
        }
    }
    size_t mark = q->a.len;
    if (q->n < q->cap) at = save_call(&q->a, c);
    if (at == (size_t)-1) {
        q->a.len = mark;
        sr_error err;
        sr_error_clear(&err);
        sr_error_set(&err, SR_E_NO_MEMORY, "out of memory");
        return l_push_error(L, &err);
    }
    queued *e = &q->v[q->n++];
    memset(e, 0, sizeof *e);
    e->call_at = at;
    e->push = push;
    lua_pushinteger(L, (lua_Integer)q->n);
    return 1;
}

/* ---- hooks for the multi driver ---- */

typedef struct run_ctx {
    lua_State *L;
    l_service *svc;
    op_list *list;
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

static sr_op *hook_make(void *ud, size_t i, double now, sr_error *err)
{
    run_ctx *c = ud;
    return l_hub_make_op(c->svc, call_of(c->list, i), 1, now, err);
}

/* Keeps what run() will push: a boolean result without its op, or the op, or the error. */
static void hook_finish(void *ud, size_t i, sr_op *op, sr_step_kind kind, const sr_error *err)
{
    queued *q = &((run_ctx *)ud)->list->v[i];
    if (!op) {
        q->state = Q_NOT_MADE;
        if ((q->err = malloc(sizeof *q->err))) *q->err = *err;
        return;
    }
    if (kind == SR_STEP_DONE && (q->push == l_hub_push_true || q->push == l_hub_push_bool)) {
        q->state = Q_BOOL;
        q->result = q->push == l_hub_push_true ? 1 : sr_rest_result_bool(op);
        op->type->destroy(op);
        return;
    }
    q->state = kind == SR_STEP_DONE ? Q_DONE : Q_FAILED;
    q->op = op;
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

/* Pushes what call i gave (its results, or nil, err); `driver_err` for a call the driver
 * never ran. Its op (if kept) is destroyed. */
static void push_outcome(lua_State *L, queued *q, const sr_error *driver_err)
{
    l_op u;
    memset(&u, 0, sizeof u);
    switch (q->state) {
    case Q_BOOL: lua_pushboolean(L, q->result); break;
    case Q_DONE:
        u.op = q->op;
        q->push(L, &u);
        break;
    case Q_FAILED: l_push_error(L, &q->op->err); break;
    case Q_NOT_MADE:
        if (q->err) l_push_error(L, q->err);
        else {
            sr_error oom;
            sr_error_clear(&oom);
            sr_error_set(&oom, SR_E_NO_MEMORY, "out of memory");
            l_push_error(L, &oom);
        }
        break;
    case Q_WAITING: l_push_error(L, driver_err); break;
    }
    if (q->op) q->op->type->destroy(q->op);
    q->op = NULL;
}

/* batch:run() -> { result, ... } in queue order; the batch is empty again afterwards. */
static int batch_run(lua_State *L)
{
    l_batch *b = check_batch(L);
    l_service *s = b->svc;
    if (b->in_run) luaL_argerror(L, 1, "batch:run() was called while this batch runs");
    lua_settop(L, 1);
    int drivers = s->return_ops || s->driver_ref != LUA_NOREF;
    double now = drivers ? l_hub_now(L, s) : 0;
    /* The queue starts afresh (with the memory of the last run): calls made while running
     * go to the next run. */
    list_clear(&b->running, 0);
    op_list done = b->running;
    b->running = b->queue;
    b->queue = done;
    op_list *r = &b->running;
    size_t n = r->n;
    fix_calls(r);
    lua_createtable(L, (int)n, 0);
    int results = 2;
    luaL_checkstack(L, 16, "batch results");
    sr_error err;
    sr_error_clear(&err);

    if (drivers) {
        lua_createtable(L, (int)n, 4);
        int ops = lua_gettop(L);
        /* OpenResty: the ops go back to Lua, which runs them on light threads:
         * { op, ..., n =, max_in_flight =, signalr_ops = true }. A driver function
         * called from C runs each op itself, one after the other. Either way every op is
         * made first, owned by its userdata, so Lua code running them (which may queue
         * and run this batch again) finds no C state in use. */
        for (size_t i = 0; i < n; i++) {
            l_op *u = l_op_new(L);
            u->push = r->v[i].push;
            if (!(u->op = l_hub_make_op(s, call_of(r, i), 1, now, &err))) {
                list_clear(r, 0);
                return l_push_error(L, &err);
            }
            lua_rawseti(L, ops, (int)i + 1);
        }
        list_clear(r, 0);
        if (s->return_ops) {
            lua_pushinteger(L, (lua_Integer)n);
            lua_setfield(L, ops, "n");
            lua_pushinteger(L, b->max_in_flight);
            lua_setfield(L, ops, "max_in_flight");
            lua_pushboolean(L, 1);
            lua_setfield(L, ops, "signalr_ops");
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, ops, (int)i + 1);
            int u_idx = lua_gettop(L);
            l_service_run_op(L, s, lua_touserdata(L, u_idx), u_idx);
            store_result(L, results, (int)i + 1, u_idx + 1);
            lua_settop(L, ops);
        }
        lua_settop(L, results);
        return 1;
    }
    if (!s->transport && !(s->transport = sr_transport_new(&s->topts, &err))) {
        list_clear(r, 0);
        return l_push_error(L, &err);
    }
    run_ctx ctx = { L, s, r };
    sr_batch_hooks hooks = { hook_now, hook_callback, hook_make, hook_finish, &ctx };
    b->in_run = 1;
    sr_batch_run(s->transport, n, (size_t)b->max_in_flight, &hooks, &err);
    b->in_run = 0;
    int base = lua_gettop(L);
    for (size_t i = 0; i < n; i++) {
        push_outcome(L, &r->v[i], &err);
        store_result(L, results, (int)i + 1, base + 1);
        lua_settop(L, base);
    }
    list_clear(r, 0);
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
    list_clear(&b->queue, 1);
    list_clear(&b->running, 1);
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
