/* credential_http.c: what every credential kind reads from an identity endpoint: token
 * responses (all the expiry shapes Azure uses), Entra error bodies, retry delays. */
#include "credential_impl.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"

/* Wipes a string member of a parsed document (a token) before the tree is freed. */
static void wipe_member(cJSON *root, const char *name)
{
    cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
    if (cJSON_IsString(item) && item->valuestring) sr_wipe(item->valuestring, strlen(item->valuestring));
}

static void wipe_tree(cJSON *root)
{
    wipe_member(root, "access_token");
    wipe_member(root, "accessToken");
    wipe_member(root, "AccessKey");
    cJSON_Delete(root);
}

int sr_parse_mi_date(const char *s, double *out)
{
    int mon, day, year, hh, mm, ss, n = 0;
    if (sscanf(s, "%d/%d/%d %d:%d:%d%n", &mon, &day, &year, &hh, &mm, &ss, &n) != 6) return 0;
    const char *p = s + n;
    while (*p == ' ') p++;
    if ((p[0] == 'A' || p[0] == 'P') && p[1] == 'M') {
        if (hh < 1 || hh > 12) return 0;
        if (p[0] == 'A' && hh == 12) hh = 0;
        else if (p[0] == 'P' && hh != 12) hh += 12;
        p += 2;
        while (*p == ' ') p++;
    }
    int off = 0;
    if (*p == '+' || *p == '-') {
        int oh, om, m = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &m) != 2) return 0;
        off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
        p += 1 + m;
    }
    while (*p == ' ') p++;
    if (*p) return 0;
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || year < 1970 || hh > 23 || mm > 59 || ss > 60) return 0;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    *out = (double)timegm(&tm) - off;
    return 1;
}

/* expires_on: epoch seconds (number or numeric string) or a date string. */
static int read_expires_on(const cJSON *root, double *out)
{
    if (sr_json_get_number(root, "expires_on", out)) return 1;
    const char *s = sr_json_get_string(root, "expires_on");
    return s && sr_parse_mi_date(s, out);
}

int sr_token_parse(const sr_buf *body, const char *token_field, double now, sr_token *out, const char *what,
                   sr_error *err)
{
    cJSON *root = cJSON_ParseWithLength(body->data, body->len);
    if (!cJSON_IsObject(root)) {
        if (root) wipe_tree(root);
        return sr_error_set(err, SR_E_SERVICE_ERROR, "%s: the token response is not a JSON object", what);
    }
    const char *tok = sr_json_get_string(root, token_field);
    double exp = 0, v;
    int ok = 0;
    if (!tok || !*tok) {
        sr_error_set(err, SR_E_SERVICE_ERROR, "%s: the token response has no %s", what, token_field);
    } else if (read_expires_on(root, &exp)) {
        ok = 1;
    } else if (sr_json_get_number(root, "expires_in", &v) && v > 0) {
        exp = now + v;
        ok = 1;
    } else {
        sr_error_set(err, SR_E_SERVICE_ERROR, "%s: the token response has no usable expires_in or expires_on", what);
    }
    if (ok) {
        size_t len = strlen(tok);
        if (!(out->value = malloc(len + 1))) {
            ok = sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        } else {
            memcpy(out->value, tok, len + 1);
            out->len = len;
            out->expires_on = exp;
            out->refresh_on = sr_json_get_number(root, "refresh_in", &v) && v > 0 ? now + v : 0;
        }
    }
    wipe_tree(root);
    return ok;
}

/* The first line of an Entra error_description ("AADSTS7000215: Invalid client secret ..."),
 * without the trace and correlation lines that follow. */
static void first_line(char *dst, size_t cap, const char *s)
{
    size_t n = strcspn(s, "\r\n");
    if (n >= cap) n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static sr_kind kind_for_status(int status)
{
    switch (status) {
    case 400:
    case 401: return SR_E_AUTHENTICATION_FAILED;
    case 403: return SR_E_FORBIDDEN;
    case 404: return SR_E_NOT_FOUND;
    case 408: return SR_E_TIMEOUT;
    case 429: return SR_E_THROTTLED;
    default: return status >= 500 ? SR_E_SERVICE_ERROR : SR_E_AUTHENTICATION_FAILED;
    }
}

int sr_credential_http_error(sr_error *err, const char *cred_name, const sr_request *req,
                             const sr_response *resp, const char *secret, double now)
{
    char desc[560] = "", error[64] = "";
    sr_error_clear(err);
    cJSON *root = cJSON_ParseWithLength(resp->body.data, resp->body.len);
    if (cJSON_IsObject(root)) {
        const cJSON *codes = cJSON_GetObjectItemCaseSensitive(root, "error_codes");
        const cJSON *first = cJSON_IsArray(codes) ? cJSON_GetArrayItem(codes, 0) : NULL;
        if (cJSON_IsNumber(first)) snprintf(err->code, sizeof err->code, "AADSTS%.0f", first->valuedouble);
        const char *e = sr_json_get_string(root, "error");
        const cJSON *eobj = cJSON_GetObjectItemCaseSensitive(root, "error");
        if (e) first_line(error, sizeof error, e);
        const char *d = sr_json_get_string(root, "error_description");
        if (!d) d = sr_json_get_string(root, "message");
        if (!d && cJSON_IsObject(eobj)) d = sr_json_get_string(eobj, "message"); /* {"error":{"code","message"}} */
        if (!d && cJSON_IsObject(eobj) && sr_json_get_string(eobj, "code"))
            first_line(error, sizeof error, sr_json_get_string(eobj, "code"));
        if (d) first_line(desc, sizeof desc, d);
        if (!error[0] && sr_json_get_string(root, "code")) /* data-plane shape {code, message} */
            first_line(error, sizeof error, sr_json_get_string(root, "code"));
        if (!err->code[0] && !strncmp(desc, "AADSTS", 6)) {
            size_t n = 6 + strspn(desc + 6, "0123456789");
            if (n > 6 && n < sizeof err->code) {
                memcpy(err->code, desc, n);
                err->code[n] = '\0';
            }
        }
    }
    cJSON_Delete(root);
    const char *xcode = sr_response_header(resp, "x-ms-error-code");
    if (!err->code[0] && xcode) snprintf(err->code, sizeof err->code, "%s", xcode);
    /* Belt and braces: a description echoing the secret (it should never) is dropped. */
    if (secret && *secret && strstr(desc, secret)) desc[0] = '\0';
    for (char *p = desc; *p; p++)
        if ((unsigned char)*p < 0x20) *p = ' ';
    sr_buf d;
    sr_buf_init(&d);
    sr_request_describe(&d, req);
    sr_error_set(err, kind_for_status(resp->status), "%s: %s answered %d%s%s%s%s", cred_name, d.data, resp->status,
                 error[0] ? " " : "", error, desc[0] ? ": " : "", desc);
    sr_buf_free(&d, 0);
    err->status = resp->status;
    err->retry_after = sr_response_retry_after(resp, now);
    return 0;
}

void sr_error_replace_message(sr_error *err, const char *msg)
{
    size_t n = strlen(msg);
    if (n >= sizeof err->message) n = sizeof err->message - 1;
    memmove(err->message, msg, n);
    err->message[n] = '\0';
}

int sr_status_transient(int status) { return status == 408 || status == 429 || status >= 500; }

double sr_retry_delay(const sr_response *resp, double now, int attempt, double base, double cap)
{
    double ra = resp ? sr_response_retry_after(resp, now) : -1;
    if (ra >= 0) return ra < cap * 2 ? ra : cap * 2;
    double d = base * pow(2, attempt - 1);
    return d < cap ? d : cap;
}
