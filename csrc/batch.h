/* batch.h: the curl multi driver. Runs many ops concurrently on the transport's multi
 * handle (sharing the keep-alive connections of single calls), at most `max_in_flight`
 * at a time; an op sleeping before a retry keeps its place, so throttling slows the batch
 * down instead of letting it pile up more requests. */
#ifndef SR_BATCH_H
#define SR_BATCH_H

#include <stddef.h>

#include "op.h"
#include "transport.h"

#define SR_BATCH_MAX_IN_FLIGHT 1024

typedef struct sr_batch_hooks {
    double (*now)(void *ud);                        /* the time ops see (injectable) */
    void (*callback)(void *ud, sr_op *op, int ref); /* performs a CALLBACK step and feeds it */
    /* Makes op i when a slot is free for it (so a batch of thousands holds only the ops in
     * flight): NULL with err set when it cannot be made. */
    sr_op *(*make)(void *ud, size_t i, double now, sr_error *err);
    /* Op i is over: kind is SR_STEP_DONE or SR_STEP_FAILED (op->err says why). op is NULL
     * when make failed (err says why). The hook owns op from here. */
    void (*finish)(void *ud, size_t i, sr_op *op, sr_step_kind kind, const sr_error *err);
    void *ud;
} sr_batch_hooks;

/* Runs ops 0..n-1 to completion, each made and finished through the hooks, in order of
 * index as slots free up. Returns 0 with err set only when the driver itself cannot run
 * (out of memory, no multi handle): then no op was made. */
int sr_batch_run(sr_transport *t, size_t n, size_t max_in_flight, const sr_batch_hooks *hooks, sr_error *err);

#endif
