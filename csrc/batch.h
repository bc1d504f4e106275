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
    void *ud;
} sr_batch_hooks;

/* Runs ops[0..n) to completion. final[i] receives SR_STEP_DONE or SR_STEP_FAILED (then
 * ops[i]->err says why). Returns 0 with err set only when the driver itself cannot run
 * (out of memory, no multi handle); ops not finished then have final[i] == 0. */
int sr_batch_run(sr_transport *t, sr_op **ops, size_t n, size_t max_in_flight,
                 const sr_batch_hooks *hooks, sr_step_kind *final, sr_error *err);

#endif
