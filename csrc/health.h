/* health.h: HEAD {server endpoint}/api/health: is the service reachable (no auth). */
#ifndef SR_HEALTH_H
#define SR_HEALTH_H

#include "endpoint.h"
#include "op.h"

sr_op *sr_health_op_new(const sr_endpoint *ep, double timeout, sr_error *err);
/* After DONE: the HTTP status the service answered (200 when healthy). */
int sr_health_status(const sr_op *op);

#endif
