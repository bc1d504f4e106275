/* retry.c: the retry policy shared by every REST op. */
#include "retry.h"

#include <math.h>

void sr_retry_init(sr_retry_state *s, uint64_t seed)
{
    s->retries = 0;
    s->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
}

/* xorshift64*: jitter needs spread, not secrecy. */
static double next_unit(sr_retry_state *s)
{
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0; /* [0, 1) */
}

int sr_retry_retriable(sr_retry_class cls, const sr_response *resp)
{
    if (cls == SR_RETRY_NEVER) return 0;
    if (resp->status == 0) {
        /* A connection that never opened carried nothing: safe for every class. A timeout
         * or a reset may have reached the service after the request was sent. */
        if (resp->tx_error == SR_TX_CONNECT) return 1;
        if (resp->tx_error == SR_TX_TIMEOUT || resp->tx_error == SR_TX_RESET)
            return cls == SR_RETRY_IDEMPOTENT;
        return 0; /* TLS failures and the like do not heal by waiting */
    }
    int st = resp->status;
    if (st == 429) return 1; /* throttled: the service did not act */
    if (cls == SR_RETRY_MESSAGE) return st == 502 || st == 503 || st == 504;
    return st >= 500 || st == 408;
}

double sr_retry_backoff(const sr_retry_policy *p, int n)
{
    double d = p->base_delay * ldexp(1.0, n > 30 ? 30 : n);
    return d < p->max_delay ? d : p->max_delay;
}

double sr_retry_next(const sr_retry_policy *p, sr_retry_state *s, sr_retry_class cls,
                     const sr_response *resp, double now)
{
    if (s->retries >= p->max_retries || !sr_retry_retriable(cls, resp)) return -1;
    double after = resp->status ? sr_response_retry_after(resp, now) : -1;
    double delay;
    if (after >= 0) {
        /* The service said when: waiting less would be refused again, waiting longer than
         * the caller allows is the caller's decision (the error carries retry_after). */
        if (after > p->max_delay) return -1;
        delay = after;
    } else {
        delay = sr_retry_backoff(p, s->retries) * (0.8 + 0.4 * next_unit(s));
        if (delay > p->max_delay) delay = p->max_delay;
    }
    s->retries++;
    return delay;
}
