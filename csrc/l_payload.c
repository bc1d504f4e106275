/* l_payload.c: Lua values to JSON for message arguments, and JSON answers back to Lua.
 *
 * Encoding rules (documented in the README):
 * - nil and signalr.null (a NULL light userdata, the same value as cjson.null) -> null;
 *   booleans, numbers (integers exactly; NaN and infinities are refused), strings (must be
 *   valid UTF-8).
 * - A table marked with signalr.array(t) / signalr.object(t) (any metatable whose
 *   __jsontype field is "array" or "object", as dkjson uses) is encoded as that.
 * - Otherwise a table whose keys are exactly 1..n is an array; a table whose keys are all
 *   strings is an object; an EMPTY table is an object `{}` (as lua-cjson does by default):
 *   use signalr.array() or signalr.array({}) for `[]`. Mixed or sparse tables are refused.
 * - Nesting deeper than 100 levels is refused (it is almost always a cycle). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "l_hub.h"

#define MAX_DEPTH 100

static const char ARRAY_MT_KEY = 'a';   /* registry keys: addresses of these */
static const char OBJECT_MT_KEY = 'o';

/* Where the encoder is: one step per nesting level, formatted only when a value fails
 * (building the text for every element would cost more than encoding it). */
typedef struct path_step {
    const char *key;            /* object key (anchored on the Lua stack), or NULL */
    size_t key_len;
    long long index;            /* array index when key is NULL */
} path_step;

typedef struct enc {
    lua_State *L;
    sr_buf *b;
    size_t limit;
    l_json_error *e;
    const char *root;
    path_step steps[MAX_DEPTH + 2];
    int depth;
} enc;

static void format_path(enc *x, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "%s", x->root);
    for (int i = 0; i < x->depth && n < size - 1; i++) {
        const path_step *st = &x->steps[i];
        size_t room = size - n;
        int w;
        if (!st->key) {
            w = snprintf(out + n, room, "[%lld]", st->index);
        } else {
            int ident = st->key_len > 0 && st->key_len < 40;
            for (size_t k = 0; ident && k < st->key_len; k++) {
                char c = st->key[k];
                ident = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (k && c >= '0' && c <= '9');
            }
            w = ident ? snprintf(out + n, room, ".%.*s", (int)st->key_len, st->key)
                      : snprintf(out + n, room, "[\"%.*s\"]", (int)(st->key_len > 40 ? 40 : st->key_len), st->key);
        }
        if (w < 0) break;
        n += (size_t)w < room ? (size_t)w : room - 1;
    }
}

static l_json_status fail(enc *x, const char *why)
{
    format_path(x, x->e->path, sizeof x->e->path);
    snprintf(x->e->why, sizeof x->e->why, "%s", why);
    return L_JSON_BAD_VALUE;
}

static void path_push_index(enc *x, long long i)
{
    path_step *st = &x->steps[x->depth++];
    st->key = NULL;
    st->index = i;
}

static void path_push_key(enc *x, const char *k, size_t n)
{
    path_step *st = &x->steps[x->depth++];
    st->key = k;
    st->key_len = n;
}

static void path_pop(enc *x) { x->depth--; }

/* "array", "object" or NULL from a __jsontype metatable field. */
static const char *json_type_mark(lua_State *L, int idx)
{
    const char *mark = NULL;
    if (lua_getmetatable(L, idx)) {
        lua_getfield(L, -1, "__jsontype");
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *s = lua_tostring(L, -1);
            if (strcmp(s, "array") == 0) mark = "array";
            else if (strcmp(s, "object") == 0) mark = "object";
        }
        lua_pop(L, 2);
    }
    return mark;
}

static l_json_status encode(enc *x, int idx, int depth);

static l_json_status encode_number(enc *x, int idx)
{
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(x->L, idx)) {
        sr_buf_addint(x->b, (long long)lua_tointeger(x->L, idx));
        return L_JSON_OK;
    }
#endif
    if (!sr_json_add_number(x->b, lua_tonumber(x->L, idx)))
        return fail(x, "is NaN or infinite, which JSON cannot carry");
    return L_JSON_OK;
}

static l_json_status encode_array(enc *x, int idx, long long n, int depth)
{
    lua_State *L = x->L;
    sr_buf_addc(x->b, '[');
    for (long long i = 1; i <= n; i++) {
        if (i > 1) sr_buf_addc(x->b, ',');
        lua_rawgeti(L, idx, (int)i);
        path_push_index(x, i);
        l_json_status st = encode(x, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
        if (st) return st;
        path_pop(x);
    }
    sr_buf_addc(x->b, ']');
    return L_JSON_OK;
}

static l_json_status encode_object(enc *x, int idx, int depth)
{
    lua_State *L = x->L;
    int first = 1;
    sr_buf_addc(x->b, '{');
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 2);
            return fail(x, "is an object with a key that is not a string");
        }
        size_t kn;
        const char *k = lua_tolstring(L, -2, &kn);
        if (!first) sr_buf_addc(x->b, ',');
        first = 0;
        path_push_key(x, k, kn);
        if (!sr_json_add_string(x->b, k, kn)) {
            lua_pop(L, 2);
            return fail(x, "is a key that is not valid UTF-8");
        }
        sr_buf_addc(x->b, ':');
        l_json_status st = encode(x, lua_gettop(L), depth + 1);
        if (st) {
            lua_pop(L, 2);
            return st;
        }
        path_pop(x);
        lua_pop(L, 1);
    }
    sr_buf_addc(x->b, '}');
    return L_JSON_OK;
}

enum shape { SHAPE_EMPTY, SHAPE_ARRAY, SHAPE_OBJECT };

/* Which shape an unmarked table has: array (keys exactly 1..n), object (string keys),
 * empty, or neither (an error). */
static l_json_status table_shape(enc *x, int idx, enum shape *shape, long long *n)
{
    lua_State *L = x->L;
    long long count = 0, max = 0;
    int strings = 0, numbers = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
        if (lua_type(L, -1) == LUA_TSTRING) {
            strings++;
        } else if (lua_type(L, -1) == LUA_TNUMBER) {
            lua_Number k = lua_tonumber(L, -1);
            if (k < 1 || k != floor(k)) {
                lua_pop(L, 1);
                return fail(x, "has a number key that is not a positive integer, which JSON cannot carry");
            }
            numbers++;
            if (k > (lua_Number)max) max = (long long)k;
        } else {
            lua_pop(L, 1);
            return fail(x, "has a key that is neither a string nor a positive integer");
        }
    }
    *n = count;
    if (count == 0) *shape = SHAPE_EMPTY;
    else if (strings && numbers) return fail(x, "mixes array items and named keys; JSON needs one or the other");
    else if (strings) *shape = SHAPE_OBJECT;
    else if (max != count)
        return fail(x, "is a sparse array (it has holes); fill them with signalr.null");
    else *shape = SHAPE_ARRAY;
    return L_JSON_OK;
}

static l_json_status encode_table(enc *x, int idx, int depth)
{
    lua_State *L = x->L;
    if (depth > MAX_DEPTH) return fail(x, "nests more than 100 levels deep (a table that contains itself?)");
    luaL_checkstack(L, 4, "JSON encoding");
    const char *mark = json_type_mark(L, idx);
    if (mark && mark[0] == 'a') return encode_array(x, idx, (long long)lua_rawlen(L, idx), depth);
    if (mark) return encode_object(x, idx, depth);
    enum shape shape;
    long long n;
    l_json_status st = table_shape(x, idx, &shape, &n);
    if (st) return st;
    if (shape == SHAPE_EMPTY) {
        sr_buf_add(x->b, "{}", 2); /* lua-cjson's default; signalr.array() for [] */
        return L_JSON_OK;
    }
    return shape == SHAPE_OBJECT ? encode_object(x, idx, depth) : encode_array(x, idx, n, depth);
}

static l_json_status encode(enc *x, int idx, int depth)
{
    lua_State *L = x->L;
    if (x->b->oom) return L_JSON_NO_MEMORY;
    if (x->b->len > x->limit) return L_JSON_TOO_LARGE;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        sr_buf_add(x->b, "null", 4);
        return L_JSON_OK;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx)) sr_buf_add(x->b, "true", 4);
        else sr_buf_add(x->b, "false", 5);
        return L_JSON_OK;
    case LUA_TNUMBER:
        return encode_number(x, idx);
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (!sr_json_add_string(x->b, s, n)) return fail(x, "is a string that is not valid UTF-8");
        return L_JSON_OK;
    }
    case LUA_TTABLE:
        return encode_table(x, idx, depth);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            sr_buf_add(x->b, "null", 4);
            return L_JSON_OK;
        }
        /* fall through */
    default: {
        char why[96];
        snprintf(why, sizeof why, "is a %s, which JSON cannot carry", luaL_typename(L, idx));
        return fail(x, why);
    }
    }
}

static l_json_status finish(enc *x, l_json_status st)
{
    if (st == L_JSON_OK && x->b->oom) return L_JSON_NO_MEMORY;
    if (st == L_JSON_OK && x->b->len > x->limit) return L_JSON_TOO_LARGE;
    return st;
}

static void enc_init(enc *x, lua_State *L, sr_buf *b, size_t limit, const char *root, l_json_error *e)
{
    x->L = L;
    x->b = b;
    x->limit = limit;
    x->e = e;
    x->root = root;
    x->depth = 0;
    e->path[0] = e->why[0] = '\0';
}

l_json_status l_json_encode(lua_State *L, int idx, sr_buf *b, size_t limit, const char *root, l_json_error *e)
{
    enc x;
    enc_init(&x, L, b, limit, root, e);
    return finish(&x, encode(&x, sr_absindex(L, idx), 0));
}

l_json_status l_json_encode_args(lua_State *L, int idx, sr_buf *b, size_t limit, const char *root,
                                 l_json_error *e)
{
    enc x;
    enc_init(&x, L, b, limit, root, e);
    idx = sr_absindex(L, idx);
    if (lua_isnoneornil(L, idx)) {
        sr_buf_add(b, "[]", 2);
        return finish(&x, L_JSON_OK);
    }
    /* The usual list first, in one pass: a table without a metatable whose keys are
     * exactly 1..k (lua_next gives a sequence from its array part in order). Anything
     * else (a count `n`, holes, named keys, a value JSON cannot carry) goes through the
     * checks below from a clean buffer, so errors are the same either way. */
    if (!lua_getmetatable(L, idx)) {
        size_t at = b->len;
        long long k = 0;
        int plain = 1;
        sr_buf_addc(b, '[');
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (!sr_isinteger(L, -2) || sr_tointeger(L, -2) != k + 1) {
                lua_pop(L, 2);
                plain = 0;
                break;
            }
            if (k++) sr_buf_addc(b, ',');
            path_push_index(&x, k);
            l_json_status st = encode(&x, lua_gettop(L), 1);
            lua_pop(L, 1);
            if (st) {
                lua_pop(L, 1);
                plain = 0;
                break;
            }
            path_pop(&x);
        }
        if (plain) {
            sr_buf_addc(b, ']');
            return finish(&x, L_JSON_OK);
        }
        b->len = at;
        if (!b->oom) b->data[at] = '\0';
        x.depth = 0;
        e->path[0] = e->why[0] = '\0';
    } else {
        lua_pop(L, 1);
    }
    lua_getfield(L, idx, "n");
    long long n = sr_isinteger(L, -1) && sr_tointeger(L, -1) >= 0 ? sr_tointeger(L, -1) : -1;
    lua_pop(L, 1);
    if (n < 0) {
        /* No explicit count: a list (or an empty table: no arguments). */
        const char *mark = json_type_mark(L, idx);
        if (mark && mark[0] == 'o') return fail(&x, "must be a list of arguments, not an object");
        if (mark) {
            n = (long long)lua_rawlen(L, idx);
        } else {
            enum shape shape;
            l_json_status st = table_shape(&x, idx, &shape, &n);
            if (st) return st;
            if (shape == SHAPE_OBJECT) return fail(&x, "must be a list of arguments (a sequence), not an object");
        }
    }
    return finish(&x, encode_array(&x, idx, n, 0));
}

/* ---- JSON -> Lua ------------------------------------------------------------------- */

static void push_marker_mt(lua_State *L, const char *key)
{
    lua_pushlightuserdata(L, (void *)key);
    lua_rawget(L, LUA_REGISTRYINDEX);
}

void l_json_push(lua_State *L, const cJSON *v)
{
    luaL_checkstack(L, 4, "JSON decoding");
    if (cJSON_IsNull(v) || !v) {
        lua_pushlightuserdata(L, NULL);
    } else if (cJSON_IsBool(v)) {
        lua_pushboolean(L, cJSON_IsTrue(v));
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
#if LUA_VERSION_NUM >= 503
        if (d == floor(d) && fabs(d) < 9007199254740992.0) lua_pushinteger(L, (lua_Integer)d);
        else lua_pushnumber(L, d);
#else
        lua_pushnumber(L, d);
#endif
    } else if (cJSON_IsString(v)) {
        lua_pushstring(L, v->valuestring);
    } else if (cJSON_IsArray(v)) {
        lua_createtable(L, cJSON_GetArraySize(v), 0);
        int i = 1;
        for (const cJSON *c = v->child; c; c = c->next) {
            l_json_push(L, c);
            lua_rawseti(L, -2, i++);
        }
        push_marker_mt(L, &ARRAY_MT_KEY);
        lua_setmetatable(L, -2);
    } else if (cJSON_IsObject(v)) {
        lua_newtable(L);
        for (const cJSON *c = v->child; c; c = c->next) {
            l_json_push(L, c);
            lua_setfield(L, -2, c->string ? c->string : "");
        }
    } else {
        lua_pushlightuserdata(L, NULL);
    }
}

/* ---- signalr.array / signalr.object / signalr.null --------------------------------- */

static int mark_table(lua_State *L, const char *key)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else if (lua_type(L, 1) != LUA_TTABLE) {
        return l_type_error(L, 1, "value", "a table or nil", 1);
    }
    lua_settop(L, 1);
    push_marker_mt(L, key);
    lua_setmetatable(L, 1);
    return 1;
}

static int payload_array(lua_State *L) { return mark_table(L, &ARRAY_MT_KEY); }
static int payload_object(lua_State *L) { return mark_table(L, &OBJECT_MT_KEY); }

/* core.json_encode(value): the encoder on its own, for tests and for callers who want to
 * see what will be sent. Raises on values JSON cannot carry. */
static int payload_encode(lua_State *L)
{
    sr_buf b;
    sr_buf_init(&b);
    l_json_error e;
    luaL_checkany(L, 1);
    l_json_status st = l_json_encode(L, 1, &b, (size_t)-1 / 2, "value", &e);
    if (st == L_JSON_OK) lua_pushlstring(L, b.data, b.len);
    sr_buf_free(&b, 0);
    if (st == L_JSON_BAD_VALUE) return luaL_argerror(L, 1, lua_pushfstring(L, "%s %s", e.path, e.why));
    if (st != L_JSON_OK) return luaL_error(L, "out of memory");
    return 1;
}

static void new_marker_mt(lua_State *L, const char *key, const char *type)
{
    lua_pushlightuserdata(L, (void *)key);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, type);
    lua_setfield(L, -2, "__jsontype");
    lua_pushfstring(L, "signalr.%s", type);
    lua_setfield(L, -2, "__name");
    lua_rawset(L, LUA_REGISTRYINDEX);
}

void l_payload_open(lua_State *L)
{
    new_marker_mt(L, &ARRAY_MT_KEY, "array");
    new_marker_mt(L, &OBJECT_MT_KEY, "object");
    lua_pushcfunction(L, payload_array);
    lua_setfield(L, -2, "array");
    lua_pushcfunction(L, payload_object);
    lua_setfield(L, -2, "object");
    lua_pushcfunction(L, payload_encode);
    lua_setfield(L, -2, "json_encode");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
}
