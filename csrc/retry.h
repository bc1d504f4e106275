/* retry.h: when a failed exchange is worth repeating, and how long to wait first.
 * Pure policy (no clock, no I/O): every driver (blocking libcurl, curl multi, OpenResty)
 * gets the same behaviour because ops ask this module and return a SLEEP step. */
#ifndef SR_RETRY_H
#define SR_RETRY_H

#include <stdint.h>

#include "http.h"

/* What repeating a call could do twice. */
typedef enum sr_retry_class {
    SR_RETRY_NEVER = 0,
    /* Sends and invokes reach clients: repeat only when the service certainly did not act
     * on the request (429, 502/503/504, no connection). The management SDK leaves 500 out
     * for messages because the service answers 500 for internal timeouts too. */
    SR_RETRY_MESSAGE,
    /* Existence checks, group membership, closes, tokens: repeating is harmless, so also
     * 500, 408, timeouts and dropped connections. */
    SR_RETRY_IDEMPOTENT
} sr_retry_class;

typedef struct sr_retry_policy {
    int max_retries;            /* retries after the first attempt (0 = none) */
    double base_delay;          /* seconds before the first retry, doubled each time */
    double max_delay;           /* no single wait is longer; a longer Retry-After gives up */
} sr_retry_policy;

typedef struct sr_retry_state {
    int retries;                /* retries done so far */
    uint64_t rng;               /* jitter state (xorshift64*), seeded per call */
} sr_retry_state;

void sr_retry_init(sr_retry_state *s, uint64_t seed);

/* Is this outcome (a status or a transport error) worth repeating for this class? */
int sr_retry_retriable(sr_retry_class cls, const sr_response *resp);

/* Seconds to wait before the next attempt, or -1 when the call should not be repeated
 * (not retriable, retries used up, or a Retry-After longer than max_delay). Counts the
 * retry when it returns >= 0. Backoff: base * 2^n with +-20% jitter, capped at max_delay;
 * a Retry-After header (seconds or HTTP date) replaces the backoff when present. */
double sr_retry_next(const sr_retry_policy *p, sr_retry_state *s, sr_retry_class cls,
                     const sr_response *resp, double now);

/* The nominal (jitter-free) backoff before retry number n (0-based). */
double sr_retry_backoff(const sr_retry_policy *p, int n);

#endif
