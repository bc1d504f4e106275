/* health.c: the health probe, the simplest op: one request, no auth, no retry
 * (the caller polls; the management SDK probes every 2 minutes). */
#include "health.h"

#include <stdlib.h>
#include <string.h>

typedef struct health_op {
    sr_op base;
    sr_request req;
    int sent;
    int status;
} health_op;

static sr_step_kind health_step(sr_op *op, double now, sr_response *resp, sr_step *out)
{
    health_op *h = (health_op *)op;
    (void)now;
    if (!h->sent) {
        h->sent = 1;
        out->request = &h->req;
        return out->kind = SR_STEP_REQUEST;
    }
    if (!resp) {
        sr_error_set(&op->err, SR_E_INTERNAL, "health probe stepped without a response");
        return out->kind = SR_STEP_FAILED;
    }
    if (resp->tx_error != SR_TX_OK) {
        sr_tx_error_set(&op->err, &h->req, resp);
        return out->kind = SR_STEP_FAILED;
    }
    h->status = resp->status;
    if (resp->status >= 200 && resp->status < 300) return out->kind = SR_STEP_DONE;
    sr_buf d;
    sr_buf_init(&d);
    sr_request_describe(&d, &h->req);
    sr_error_set(&op->err, resp->status == 404 ? SR_E_NOT_FOUND : SR_E_SERVICE_ERROR,
                 "%s answered %d: the service is not healthy%s", d.data, resp->status,
                 resp->status == 404 ? " (unable to access SignalR service, check the endpoint)" : "");
    op->err.status = resp->status;
    sr_buf_free(&d, 0);
    return out->kind = SR_STEP_FAILED;
}

static void health_feed(sr_op *op, const char *v, size_t n, const char *error)
{
    (void)op, (void)v, (void)n, (void)error;
}

static void health_destroy(sr_op *op)
{
    health_op *h = (health_op *)op;
    sr_request_free(&h->req);
    free(h);
}

static const sr_op_type health_type = { "health", health_step, health_feed, health_destroy };

sr_op *sr_health_op_new(const sr_endpoint *ep, double timeout, sr_error *err)
{
    health_op *h = calloc(1, sizeof *h);
    if (!h) {
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    h->base.type = &health_type;
    sr_error_clear(&h->base.err);
    sr_buf url;
    sr_buf_init(&url);
    sr_buf_adds(&url, ep->server_base);
    sr_buf_adds(&url, "/api/health?api-version=2022-06-01");
    int ok = !url.oom && sr_request_init(&h->req, "HEAD", url.data, err);
    sr_buf_free(&url, 0);
    if (!ok) {
        free(h);
        return NULL;
    }
    h->req.timeout = timeout;
    return &h->base;
}

int sr_health_status(const sr_op *op) { return ((const health_op *)op)->status; }
