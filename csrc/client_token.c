/* client_token.c: claims writer and client-token signing. */
#include "client_token.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "jwt.h"

/* Claim names the SDK sets itself; a caller's claim of the same name is renamed. */
#define NAME(s) { s, sizeof(s) - 1 }
static const struct { const char *name; size_t len; } reserved[] = {
    NAME("aud"), NAME("exp"), NAME("iat"), NAME("nbf"), NAME("iss"), NAME("actort"),
    NAME("acr"), NAME("azp"), NAME("c_hash"), NAME("jti"), NAME("nonce"),
};
#undef NAME

int sr_signing_key_init(sr_signing_key *k, const char *kid, const void *key, size_t len, sr_error *err)
{
    memset(k, 0, sizeof *k);
    if (kid && !(k->kid = strdup(kid))) return sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    for (int alg = SR_HS256; alg <= SR_HS512; alg++) {
        sr_buf h;
        sr_buf_init(&h);
        sr_jwt_add_header(&h, (sr_hs_alg)alg, kid);
        k->header[alg] = h.oom ? NULL : strdup(h.data);
        sr_buf_free(&h, 0);
        if (!k->header[alg]) {
            sr_signing_key_free(k);
            return sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        }
        if (!sr_hmac_init(&k->hmac[alg], (sr_hs_alg)alg, key, len, err)) {
            sr_signing_key_free(k);
            return 0;
        }
    }
    return 1;
}

static void memo_clear(sr_token_memo *m)
{
    if (m->token) sr_wipe(m->token, m->token_len);
    free(m->token);
    free(m->payload);
    memset(m, 0, sizeof *m);
}

int sr_signing_key_sign(sr_signing_key *k, sr_hs_alg alg, const char *payload, size_t n, sr_buf *out,
                        sr_error *err)
{
    for (int i = 0; i < SR_TOKEN_MEMO; i++) {
        sr_token_memo *m = &k->memo[i];
        if (m->token && m->alg == (int)alg && m->payload_len == n && memcmp(m->payload, payload, n) == 0) {
            sr_buf_add(out, m->token, m->token_len);
            return out->oom ? sr_error_set(err, SR_E_NO_MEMORY, "out of memory while signing a token") : 1;
        }
    }
    size_t at = out->len;
    sr_buf_adds(out, k->header[alg]);
    if (!sr_jwt_finish_from(out, at, &k->hmac[alg], payload, n, err)) return 0;
    sr_token_memo *m = &k->memo[k->memo_next++ % SR_TOKEN_MEMO];
    memo_clear(m);
    m->payload = malloc(n);
    m->token = malloc(out->len - at);
    if (m->payload && m->token) {
        memcpy(m->payload, payload, n);
        m->payload_len = n;
        memcpy(m->token, out->data + at, out->len - at);
        m->token_len = out->len - at;
        m->alg = (int)alg;
    } else {
        memo_clear(m); /* no memo this time; the token itself is fine */
    }
    return 1;
}

void sr_signing_key_free(sr_signing_key *k)
{
    for (int i = 0; i < SR_TOKEN_MEMO; i++) memo_clear(&k->memo[i]);
    for (int alg = SR_HS256; alg <= SR_HS512; alg++) {
        sr_hmac_free(&k->hmac[alg]);
        free(k->header[alg]);
        k->header[alg] = NULL;
    }
    free(k->kid);
    k->kid = NULL;
}

void sr_claims_init(sr_claims *c, sr_error *err)
{
    sr_buf_init(&c->json);
    sr_buf_init(&c->name_store);
    sr_buf_reserve(&c->name_store, 384); /* renamed names must not move once stored */
    sr_buf_addc(&c->json, '{');
    c->count = 0;
    c->in_array = 0;
    c->array_len = 0;
    c->failed = 0;
    c->err = err;
}

void sr_claims_free(sr_claims *c)
{
    sr_buf_free(&c->json, 0);
    sr_buf_free(&c->name_store, 0);
}

static int fail(sr_claims *c, sr_kind kind, const char *msg, const char *name, size_t nlen)
{
    c->failed = 1;
    if (name) {
        int shown = nlen > 64 ? 64 : (int)nlen;
        sr_error_set(c->err, kind, "claim '%.*s%s': %s", shown, name, nlen > 64 ? "..." : "", msg);
    } else {
        sr_error_set(c->err, kind, "%s", msg);
    }
    return 0;
}

static int is_reserved(const char *name, size_t n)
{
    if (n < 3 || n > 6) return 0;
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (reserved[i].len == n && memcmp(reserved[i].name, name, n) == 0) return 1;
    return 0;
}

/* Writes `"name":`, renaming reserved names and refusing duplicates. */
static int add_name(sr_claims *c, const char *name, size_t nlen)
{
    if (c->failed) return 0;
    if (c->in_array) return fail(c, SR_E_INTERNAL, "a named claim inside an array", name, nlen);
    if (nlen == 0) return fail(c, SR_E_INVALID_ARGUMENT, "claim names must not be empty", NULL, 0);
    if (nlen >= 6 && memcmp(name, "asrs.s", 6) == 0)
        return fail(c, SR_E_INVALID_ARGUMENT,
                    "names starting with 'asrs.s' are reserved for the service (use the user_id option for the user id)",
                    name, nlen);
    if (!sr_utf8_valid(name, nlen)) return fail(c, SR_E_INVALID_ARGUMENT, "the name is not valid UTF-8", name, nlen);
    if (is_reserved(name, nlen)) {
        size_t at = c->name_store.len;
        if (at + 7 + nlen + 1 > c->name_store.cap)
            return fail(c, SR_E_INVALID_ARGUMENT, "too many reserved claim names", name, nlen);
        sr_buf_add(&c->name_store, "asrs.u.", 7);
        sr_buf_add(&c->name_store, name, nlen);
        sr_buf_addc(&c->name_store, '\0');
        name = c->name_store.data + at;
        nlen += 7;
    }
    if (c->count >= SR_CLAIMS_MAX_NAMES)
        return fail(c, SR_E_INVALID_ARGUMENT, "too many claims (at most 64 names)", NULL, 0);
    for (int i = 0; i < c->count; i++)
        if (c->name_lens[i] == nlen && memcmp(c->names[i], name, nlen) == 0)
            return fail(c, SR_E_INVALID_ARGUMENT, "it is given twice (by an option and by claims?)", name, nlen);
    c->names[c->count] = name;
    c->name_lens[c->count] = nlen;
    if (c->count++) sr_buf_addc(&c->json, ',');
    sr_json_add_string(&c->json, name, nlen);
    sr_buf_addc(&c->json, ':');
    return 1;
}

/* A value either follows its name or is the next element of the open array. */
static int begin_value(sr_claims *c, const char *name, size_t nlen)
{
    if (c->failed) return 0;
    if (name) return add_name(c, name, nlen);
    if (!c->in_array) return fail(c, SR_E_INTERNAL, "a claim value without a name", NULL, 0);
    if (c->array_len++) sr_buf_addc(&c->json, ',');
    return 1;
}

int sr_claims_add_string(sr_claims *c, const char *name, size_t nlen, const char *v, size_t vlen)
{
    if (!begin_value(c, name, nlen)) return 0;
    if (!sr_json_add_string(&c->json, v, vlen))
        return fail(c, SR_E_INVALID_ARGUMENT, "the value is not valid UTF-8", name ? name : "", name ? nlen : 0);
    return 1;
}

int sr_claims_add_number(sr_claims *c, const char *name, size_t nlen, double v)
{
    if (!begin_value(c, name, nlen)) return 0;
    if (!sr_json_add_number(&c->json, v))
        return fail(c, SR_E_INVALID_ARGUMENT, "NaN and infinity cannot be written in JSON", name ? name : "",
                    name ? nlen : 0);
    return 1;
}

int sr_claims_add_integer(sr_claims *c, const char *name, size_t nlen, long long v)
{
    if (!begin_value(c, name, nlen)) return 0;
    sr_buf_addint(&c->json, v);
    return 1;
}

int sr_claims_add_bool(sr_claims *c, const char *name, size_t nlen, int v)
{
    if (!begin_value(c, name, nlen)) return 0;
    sr_buf_adds(&c->json, v ? "true" : "false");
    return 1;
}

int sr_claims_begin_array(sr_claims *c, const char *name, size_t nlen)
{
    if (!add_name(c, name, nlen)) return 0;
    sr_buf_addc(&c->json, '[');
    c->in_array = 1;
    c->array_len = 0;
    return 1;
}

int sr_claims_end_array(sr_claims *c)
{
    if (c->failed) return 0;
    sr_buf_addc(&c->json, ']');
    c->in_array = 0;
    return 1;
}

int sr_claims_add_user_id(sr_claims *c, const char *v, size_t vlen)
{
    if (c->failed) return 0;
    if (c->count + 2 > SR_CLAIMS_MAX_NAMES) return fail(c, SR_E_INVALID_ARGUMENT, "too many claims", NULL, 0);
    /* asrs.s.uid is written directly: add_name refuses the asrs.s prefix from callers. */
    for (int i = 0; i < c->count; i++)
        if (c->name_lens[i] == 6 && memcmp(c->names[i], "nameid", 6) == 0)
            return fail(c, SR_E_INVALID_ARGUMENT, "it is given twice (by an option and by claims?)", "nameid", 6);
    c->names[c->count] = "asrs.s.uid";
    c->name_lens[c->count++] = 10;
    c->names[c->count] = "nameid";
    c->name_lens[c->count++] = 6;
    if (c->count > 2) sr_buf_addc(&c->json, ',');
    sr_buf_addlit(&c->json, "\"asrs.s.uid\":");
    size_t at = c->json.len;
    if (!sr_json_add_string(&c->json, v, vlen))
        return fail(c, SR_E_INVALID_ARGUMENT, "user_id is not valid UTF-8", NULL, 0);
    size_t quoted = c->json.len - at;
    /* The same value again under nameid: copy the escaped form rather than escape twice. */
    sr_buf_addlit(&c->json, ",\"nameid\":");
    if (!sr_buf_reserve(&c->json, quoted)) return fail(c, SR_E_NO_MEMORY, "out of memory", NULL, 0);
    sr_buf_add(&c->json, c->json.data + at, quoted);
    return 1;
}

int sr_client_token_sign(sr_claims *c, const sr_client_token_params *p, sr_buf *out, sr_buf *url)
{
    sr_error *err = c->err;
    if (c->failed) return 0;
    if (c->in_array) return sr_error_set(err, SR_E_INTERNAL, "claims array left open");
    sr_hmac *key = &p->key->hmac[p->alg];
    if (!key->ctx) return sr_error_set(err, SR_E_INTERNAL, "no %s key prepared", sr_hs_alg_name(p->alg));
    sr_buf *j = &c->json;
    if (c->count) sr_buf_addc(j, ',');
    sr_buf_addlit(j, "\"nbf\":");
    size_t now_at = j->len;
    sr_buf_addint(j, p->now);
    size_t now_len = j->len - now_at;
    sr_buf_addlit(j, ",\"exp\":");
    sr_buf_addint(j, p->now + p->lifetime);
    sr_buf_addlit(j, ",\"iat\":");
    sr_buf_add(j, j->data + now_at, now_len);
    sr_buf_addlit(j, ",\"iss\":\"azure-signalr\",\"aud\":");
    /* The audience is a URL of ASCII characters that need no JSON escaping: host names,
     * the fixed path and a validated hub name. */
    sr_buf_addc(j, '"');
    sr_endpoint_client_audience(j, p->endpoint, p->hub, p->hub_len);
    sr_buf_addlit(j, "\"}");
    if (j->oom) return sr_error_set(err, SR_E_NO_MEMORY, "out of memory while building claims");

    sr_buf_adds(out, p->key->header[p->alg]);
    if (!sr_jwt_finish(out, key, j->data, j->len, err)) return 0;
    if (out->len > SR_CLIENT_TOKEN_MAX)
        return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                            "the client access token would be %zu characters long; the service accepts at most %d "
                            "(use fewer or shorter claims)",
                            out->len, SR_CLIENT_TOKEN_MAX);
    if (url) sr_endpoint_client_url(url, p->endpoint, p->hub, p->hub_len);
    return 1;
}
