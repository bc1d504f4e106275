/* json.h: JSON output straight into a buffer (strings, numbers), and small helpers for
 * reading cJSON documents. Output is written directly rather than through a cJSON tree
 * because negotiate builds one small object per call and a tree costs a malloc per node. */
#ifndef SR_JSON_H
#define SR_JSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "buf.h"

/* Appends a JSON string literal (with quotes). Returns 0 if `s` is not valid UTF-8. */
int sr_json_add_string(sr_buf *b, const char *s, size_t n);
/* Appends a JSON number: integers exactly, others with 17 significant digits.
 * Returns 0 for NaN or infinity (not representable in JSON). */
int sr_json_add_number(sr_buf *b, double v);
int sr_utf8_valid(const char *s, size_t n);

/* cJSON helpers: a string member, or NULL when absent or not a string. */
const char *sr_json_get_string(const cJSON *obj, const char *name);
/* A numeric member: a JSON number, or a string holding a decimal number. */
int sr_json_get_number(const cJSON *obj, const char *name, double *out);

#endif
