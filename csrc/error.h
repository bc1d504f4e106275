/* error.h: the error object every fallible core function fills in.
 * Messages never contain secrets: callers format only names, statuses and codes. */
#ifndef SR_ERROR_H
#define SR_ERROR_H

typedef enum sr_kind {
    SR_OK = 0,
    SR_E_INVALID_ARGUMENT,
    SR_E_UNAUTHORIZED,
    SR_E_FORBIDDEN,
    SR_E_NOT_FOUND,
    SR_E_THROTTLED,
    SR_E_TIMEOUT,
    SR_E_NETWORK,
    SR_E_CREDENTIAL_UNAVAILABLE,
    SR_E_AUTHENTICATION_FAILED,
    SR_E_SERVICE_ERROR,
    SR_E_NO_MEMORY,
    SR_E_INTERNAL
} sr_kind;

typedef struct sr_error {
    sr_kind kind;
    int status;             /* HTTP status, 0 when none */
    double retry_after;     /* seconds, < 0 when none */
    char code[64];          /* x-ms-error-code or AADSTSnnnn, "" when none */
    char message[768];
    char hint[320];
} sr_error;

void sr_error_clear(sr_error *e);
/* Sets kind and message (printf-style); returns 0 so callers can `return sr_error_set(...)`. */
int sr_error_set(sr_error *e, sr_kind kind, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void sr_error_hint(sr_error *e, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
const char *sr_kind_name(sr_kind k);

#endif
