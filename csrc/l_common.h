/* l_common.h: shared pieces of the Lua binding (only luaopen_signalr_core is exported). */
#ifndef SR_L_COMMON_H
#define SR_L_COMMON_H

#include "compat.h"
#include "error.h"

#define SR_HIDDEN __attribute__((visibility("hidden")))

#define SR_ERROR_MT "signalr.error"
#define SR_CREDENTIAL_MT "signalr.credential"
#define SR_SERVICE_MT "signalr.service"

/* Pushes nil and an error object; returns 2 for `return l_push_error(L, &err);`. */
SR_HIDDEN int l_push_error(lua_State *L, const sr_error *e);
SR_HIDDEN void l_error_open(lua_State *L);
SR_HIDDEN void l_credential_open(lua_State *L);
SR_HIDDEN void l_service_open(lua_State *L);
SR_HIDDEN void l_connstr_open(lua_State *L);
SR_HIDDEN void l_op_open(lua_State *L);

/* Raises "bad argument" for a value of the wrong type, naming what was expected. */
SR_HIDDEN int l_type_error(lua_State *L, int arg, const char *what, const char *expected, int idx);
/* The string at idx, or raise naming `what`; numbers are refused (no silent coercion). */
SR_HIDDEN const char *l_check_string(lua_State *L, int idx, int arg, const char *what, size_t *len);
/* Registers class `name` (its metatable in the registry): __gc and __close call `gc`
 * (which must be idempotent), __tostring, __name, and `methods` as __index. */
SR_HIDDEN void l_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                       lua_CFunction tostring);
/* Pops the function on top of the stack into class `name`'s methods as `method`. */
SR_HIDDEN void l_class_method(lua_State *L, const char *name, const char *method);
/* Current time in seconds: the service's clock function when set, else the system clock. */
SR_HIDDEN double l_now(void);

/* The module's entry point, the only exported symbol. */
int luaopen_signalr_core(lua_State *L);

#endif
