/* error.c: error objects and kind names. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void sr_error_clear(sr_error *e)
{
    e->kind = SR_OK;
    e->status = 0;
    e->retry_after = -1;
    e->code[0] = e->message[0] = e->hint[0] = '\0';
}

int sr_error_set(sr_error *e, sr_kind kind, const char *fmt, ...)
{
    va_list ap;
    e->kind = kind;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return 0;
}

void sr_error_hint(sr_error *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->hint, sizeof e->hint, fmt, ap);
    va_end(ap);
}

const char *sr_kind_name(sr_kind k)
{
    switch (k) {
    case SR_OK: return "ok";
    case SR_E_INVALID_ARGUMENT: return "invalid_argument";
    case SR_E_UNAUTHORIZED: return "unauthorized";
    case SR_E_FORBIDDEN: return "forbidden";
    case SR_E_NOT_FOUND: return "not_found";
    case SR_E_THROTTLED: return "throttled";
    case SR_E_TIMEOUT: return "timeout";
    case SR_E_NETWORK: return "network";
    case SR_E_CREDENTIAL_UNAVAILABLE: return "credential_unavailable";
    case SR_E_AUTHENTICATION_FAILED: return "authentication_failed";
    case SR_E_SERVICE_ERROR: return "service_error";
    case SR_E_NO_MEMORY: return "no_memory";
    case SR_E_INTERNAL: return "internal";
    }
    return "internal";
}
