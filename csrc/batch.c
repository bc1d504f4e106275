/* batch.c: runs ops concurrently on one curl multi handle. */
#include "batch.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct slot {
    int used;
    size_t index;               /* the op's number */
    sr_op *op;                  /* made when the slot took it, handed to finish() */
    sr_easy *easy;              /* from the transport's pool, kept while the batch runs */
    CURL *curl;                 /* its CURL * */
    int in_multi;
    int sleeping;
    double wake_at;             /* monotonic seconds */
    sr_response resp;
} slot;

typedef struct batch {
    sr_transport *t;
    CURLM *multi;
    const sr_batch_hooks *hooks;
    slot *slots;
    size_t nslots;
    size_t active;              /* slots in use */
    size_t in_multi;            /* requests in flight */
    size_t sleeping;            /* slots waiting before a retry */
    size_t next;                /* the next op to start */
    size_t n;
    double now;                 /* the ops' clock, read once per wakeup */
} batch;

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void release_slot(batch *b, slot *s)
{
    if (s->in_multi) {
        curl_multi_remove_handle(b->multi, s->curl);
        sr_transport_easy_done(s->easy);
        s->in_multi = 0;
        b->in_multi--;
    }
    if (s->sleeping) b->sleeping--;
    s->op = NULL;
    s->used = 0;
    s->sleeping = 0;
    b->active--;
}

/* Steps the op in slot s (with resp, the outcome of its last request, or NULL) until it
 * needs the network or a pause, or finishes. */
static void advance(batch *b, slot *s, sr_response *resp)
{
    sr_op *op = s->op;
    for (;;) {
        sr_step st;
        memset(&st, 0, sizeof st);
        sr_step_kind kind = sr_op_step(op, b->now, resp, &st);
        resp = NULL;
        switch (kind) {
        case SR_STEP_REQUEST: {
            sr_response_reset(&s->resp);
            int ready = sr_transport_easy_setup(b->t, s->easy, st.request, &s->resp);
            if (!ready || curl_multi_add_handle(b->multi, s->curl) != CURLM_OK) {
                sr_transport_easy_done(s->easy);
                s->resp.tx_error = SR_TX_OTHER;
                snprintf(s->resp.tx_message, sizeof s->resp.tx_message, "curl could not start the request");
                resp = &s->resp;
                continue;
            }
            s->in_multi = 1;
            b->in_multi++;
            return;
        }
        case SR_STEP_SLEEP:
            s->sleeping = 1;
            b->sleeping++;
            s->wake_at = mono_now() + (st.seconds > 0 ? st.seconds : 0);
            return;
        case SR_STEP_CALLBACK:
            b->hooks->callback(b->hooks->ud, op, st.callback);
            continue;
        case SR_STEP_DONE:
        case SR_STEP_FAILED: {
            size_t i = s->index;
            release_slot(b, s);
            b->hooks->finish(b->hooks->ud, i, op, kind, &op->err);
            return;
        }
        }
    }
}

/* Gives a free slot the next op, made now, as the raw multi loop re-adds a handle at
 * once. Ops that finish without a request (refused arguments are caught earlier, but a
 * credential can fail at once) free the slot again, so keep going. */
static void start_next(batch *b, slot *s)
{
    while (!s->used && b->next < b->n) {
        size_t i = b->next++;
        sr_error err;
        sr_error_clear(&err);
        sr_op *op = b->hooks->make(b->hooks->ud, i, b->now, &err);
        if (!op) {
            b->hooks->finish(b->hooks->ud, i, NULL, SR_STEP_FAILED, &err);
            continue;
        }
        s->used = 1;
        s->index = i;
        s->op = op;
        b->active++;
        advance(b, s, NULL);
    }
}

static void on_done(batch *b, CURLMsg *msg)
{
    slot *s = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
    if (!s || !s->used) return;
    CURLcode code = msg->data.result;
    curl_multi_remove_handle(b->multi, s->curl);
    s->in_multi = 0;
    b->in_multi--;
    sr_transport_easy_finish(s->easy, (int)code, &s->resp);
    advance(b, s, &s->resp);
    start_next(b, s);
}

/* Wakes the ops whose pause is over; returns milliseconds until the next one wakes (at
 * most 1 s). */
static int wake_sleepers(batch *b)
{
    if (!b->sleeping) return 1000;
    double now = mono_now(), next = now + 1.0;
    for (size_t i = 0; i < b->nslots; i++) {
        slot *s = &b->slots[i];
        if (!s->used || !s->sleeping) continue;
        if (s->wake_at <= now) {
            s->sleeping = 0;
            b->sleeping--;
            advance(b, s, NULL);
            start_next(b, s);
        } else if (s->wake_at < next) {
            next = s->wake_at;
        }
    }
    double ms = (next - mono_now()) * 1000.0;
    return ms <= 0 ? 0 : (int)(ms + 0.999);
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
}

static void run(batch *b)
{
    b->now = b->hooks->now(b->hooks->ud);
    for (size_t i = 0; i < b->nslots; i++) start_next(b, &b->slots[i]);
    while (b->active > 0) {
        b->now = b->hooks->now(b->hooks->ud);
        if (b->in_multi) {
            int running = 0;
            curl_multi_perform(b->multi, &running);
            CURLMsg *msg;
            int left;
            while ((msg = curl_multi_info_read(b->multi, &left)))
                if (msg->msg == CURLMSG_DONE) on_done(b, msg);
        }
        int ms = wake_sleepers(b);
        if (!b->active) break;
        if (b->in_multi) curl_multi_poll(b->multi, NULL, 0, ms, NULL);
        else if (ms > 0) sleep_ms(ms);
    }
}

int sr_batch_run(sr_transport *t, size_t n, size_t max_in_flight, const sr_batch_hooks *hooks, sr_error *err)
{
    if (n == 0) return 1;
    if (max_in_flight < 1) max_in_flight = 1;
    if (max_in_flight > SR_BATCH_MAX_IN_FLIGHT) max_in_flight = SR_BATCH_MAX_IN_FLIGHT;
    batch b;
    memset(&b, 0, sizeof b);
    b.t = t;
    b.hooks = hooks;
    b.multi = sr_transport_multi(t);
    if (!b.multi) return sr_error_set(err, SR_E_NO_MEMORY, "out of memory (curl multi handle)");
    b.nslots = max_in_flight < n ? max_in_flight : n;
    /* Keep every connection of a full batch alive afterwards: curl's default (4 per easy
     * handle in the multi) would close them as the batch drains, and the next batch would
     * open new ones. The transport keeps the largest batch's count. */
    sr_transport_keep_connections(t, max_in_flight);
    b.slots = calloc(b.nslots, sizeof *b.slots);
    if (!b.slots) return sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    int ok = 1;
    for (size_t i = 0; i < b.nslots; i++) {
        sr_response_init(&b.slots[i].resp);
        if (!(b.slots[i].easy = sr_transport_easy_acquire(t))) ok = 0;
        else {
            b.slots[i].curl = sr_transport_easy_curl(b.slots[i].easy);
            curl_easy_setopt(b.slots[i].curl, CURLOPT_PRIVATE, (void *)&b.slots[i]);
        }
    }
    b.n = n;
    if (ok) run(&b);
    else sr_error_set(err, SR_E_NO_MEMORY, "out of memory (curl easy handles)");
    for (size_t i = 0; i < b.nslots; i++) {
        slot *s = &b.slots[i];
        if (s->used) { /* not reached: run() returns when every op is over */
            sr_op *op = s->op;
            size_t index = s->index;
            release_slot(&b, s);
            sr_error_set(&op->err, SR_E_INTERNAL, "the batch stopped before this call finished");
            hooks->finish(hooks->ud, index, op, SR_STEP_FAILED, &op->err);
        }
        sr_response_free(&s->resp);
        if (s->easy) sr_transport_easy_release(t, s->easy);
    }
    free(b.slots);
    return ok;
}
