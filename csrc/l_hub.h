/* l_hub.h: the REST binding shared by l_hub.c (hub objects), l_batch.c (batches) and
 * l_payload.c (Lua values <-> JSON). */
#ifndef SR_L_HUB_H
#define SR_L_HUB_H

#include <cjson/cJSON.h>

#include "buf.h"
#include "l_service.h"
#include "rest.h"

#define SR_HUB_MT "signalr.hub"
#define SR_BATCH_MT "signalr.batch"

typedef struct l_hub {
    l_service *svc;             /* kept alive by svc_ref */
    int svc_ref;
    int batch_ref;              /* a batch this hub queues into, or LUA_NOREF */
    int scratch_ref;            /* an op userdata reused by blocking calls, or LUA_NOREF */
    l_op *scratch;
    int scratch_busy;           /* a call is running on it (a callback may call again) */
    size_t len;
    char name[132];
} l_hub;

/* ---- JSON payloads (l_payload.c) ---- */
typedef enum l_json_status { L_JSON_OK = 0, L_JSON_BAD_VALUE, L_JSON_TOO_LARGE, L_JSON_NO_MEMORY } l_json_status;

typedef struct l_json_error {
    char path[160];             /* where: "args[2].name" */
    char why[160];              /* what: "is a function, which JSON cannot carry" */
} l_json_error;

/* Appends the JSON for the value at idx. Stops early once the buffer passes `limit`
 * bytes (L_JSON_TOO_LARGE). `root` names the value in errors ("args"). Never raises. */
SR_HIDDEN l_json_status l_json_encode(lua_State *L, int idx, sr_buf *b, size_t limit, const char *root,
                                      l_json_error *e);
/* Encodes an argument list: the table's 1..n (n = t.n when set, else #t), nil as null. */
SR_HIDDEN l_json_status l_json_encode_args(lua_State *L, int idx, sr_buf *b, size_t limit, const char *root,
                                           l_json_error *e);
/* Pushes a JSON value as Lua: objects as tables, arrays as tables marked as arrays,
 * null as signalr.null. */
SR_HIDDEN void l_json_push(lua_State *L, const cJSON *v);
SR_HIDDEN void l_payload_open(lua_State *L);

/* ---- hubs and batches ---- */
/* The service's clock without raising (a failing clock function falls back to the system
 * clock): called while C resources are held. */
SR_HIDDEN double l_hub_now(lua_State *L, l_service *s);
/* Pushes a hub object for `name` bound to the service at svc_idx (and to the batch at
 * batch_idx when not 0). */
SR_HIDDEN l_hub *l_hub_push(lua_State *L, int svc_idx, int batch_idx, const char *name, size_t len);
/* Queues a copy of call c (checked already) in the batch behind hub h, whose results `push`
 * will give; pushes its position, or nil, err when out of memory. */
SR_HIDDEN int l_batch_enqueue(lua_State *L, l_hub *h, const sr_rest_call *c, int (*push)(lua_State *, l_op *));
/* Builds the op for call c with the service's credential and retry policy (`checked`: c
 * passed sr_rest_call_check when it was queued). */
SR_HIDDEN sr_op *l_hub_make_op(l_service *s, const sr_rest_call *c, int checked, double now, sr_error *err);
/* The pushers whose result is one boolean a batch keeps without the op. */
SR_HIDDEN int l_hub_push_bool(lua_State *L, l_op *u);
SR_HIDDEN int l_hub_push_true(lua_State *L, l_op *u);
SR_HIDDEN void l_batch_open(lua_State *L);
SR_HIDDEN void l_hub_open(lua_State *L);

#endif
