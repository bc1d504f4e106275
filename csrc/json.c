/* json.c: JSON string escaping and number formatting; cJSON accessors. */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sr_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned min;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xe0) == 0xc0) { len = 2; min = 0x80; c &= 0x1f; }
        else if ((c & 0xf0) == 0xe0) { len = 3; min = 0x800; c &= 0x0f; }
        else if ((c & 0xf8) == 0xf0) { len = 4; min = 0x10000; c &= 0x07; }
        else return 0;
        if (i + len > n) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            c = (c << 6) | (s[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
        i += len;
    }
    return 1;
}

int sr_json_add_string(sr_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (!sr_utf8_valid(s, n)) return 0;
    if (!sr_buf_reserve(b, n + 2)) return 1;
    sr_buf_addc(b, '"');
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        sr_buf_add(b, s + start, i - start);
        start = i + 1;
        switch (c) {
        case '"': sr_buf_add(b, "\\\"", 2); break;
        case '\\': sr_buf_add(b, "\\\\", 2); break;
        case '\n': sr_buf_add(b, "\\n", 2); break;
        case '\r': sr_buf_add(b, "\\r", 2); break;
        case '\t': sr_buf_add(b, "\\t", 2); break;
        case '\b': sr_buf_add(b, "\\b", 2); break;
        case '\f': sr_buf_add(b, "\\f", 2); break;
        default: {
            char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            sr_buf_add(b, esc, 6);
        }
        }
    }
    sr_buf_add(b, s + start, n - start);
    sr_buf_addc(b, '"');
    return 1;
}

int sr_json_add_number(sr_buf *b, double v)
{
    if (isnan(v) || isinf(v)) return 0;
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        sr_buf_addint(b, (long long)v);
        return 1;
    }
    /* The shortest of %.15g/%.16g/%.17g that reads back as the same double. */
    char tmp[32];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    /* A locale with ',' as decimal separator must not leak into JSON. */
    for (int i = 0; i < n; i++)
        if (tmp[i] == ',') tmp[i] = '.';
    sr_buf_add(b, tmp, (size_t)n);
    return 1;
}

const char *sr_json_get_string(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

int sr_json_get_number(const cJSON *obj, const char *name, double *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (cJSON_IsNumber(item)) {
        *out = item->valuedouble;
        return 1;
    }
    if (cJSON_IsString(item) && item->valuestring[0]) {
        char *end;
        double v = strtod(item->valuestring, &end);
        if (*end == '\0' && !isnan(v) && !isinf(v)) {
            *out = v;
            return 1;
        }
    }
    return 0;
}
