/* op.h: a sans-I/O operation. An op never performs I/O: each call to step() says what it
 * needs next (an HTTP exchange, a pause, a value from a caller-supplied Lua function) or
 * that it is done. A driver performs the need and calls step() again with the outcome:
 * the blocking libcurl driver in C, a curl-multi batch driver, or the OpenResty driver in
 * Lua over cosockets. Time is an input (`now`), so tests can move the clock. */
#ifndef SR_OP_H
#define SR_OP_H

#include "error.h"
#include "http.h"

typedef enum sr_step_kind {
    SR_STEP_REQUEST = 1,        /* perform step.request, then step(op, now, &response) */
    SR_STEP_SLEEP,              /* wait step.seconds, then step(op, now, NULL) */
    SR_STEP_CALLBACK,           /* call the caller's function step.callback, feed the result */
    SR_STEP_DONE,               /* finished: the binding reads the result with the op's accessor */
    SR_STEP_FAILED              /* finished: op->err says why */
} sr_step_kind;

typedef struct sr_op sr_op;

typedef struct sr_step {
    sr_step_kind kind;
    sr_request *request;        /* REQUEST: owned by the op, valid until the next step */
    double seconds;             /* SLEEP */
    int callback;               /* CALLBACK: a registry reference the binding resolves */
} sr_step;

typedef struct sr_op_type {
    const char *name;
    /* `response` is the outcome of the last REQUEST, NULL otherwise. */
    sr_step_kind (*step)(sr_op *op, double now, sr_response *response, sr_step *out);
    /* CALLBACK outcome: a string (ok) or an error message (value NULL). */
    void (*feed)(sr_op *op, const char *value, size_t len, const char *error);
    void (*destroy)(sr_op *op);
} sr_op_type;

struct sr_op {
    const sr_op_type *type;
    sr_error err;
};

static inline sr_step_kind sr_op_step(sr_op *op, double now, sr_response *resp, sr_step *out)
{
    return op->type->step(op, now, resp, out);
}

#endif
