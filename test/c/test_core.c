/* test_core.c: C-level tests of the core (no Lua): encoders, HMAC vectors, URL and
 * connection-string parsing, endpoint URLs, client-token assembly.
 * Prints one line per failure and a final "c: N passed, N failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "buf.h"
#include "client_token.h"
#include "connstr.h"
#include "endpoint.h"
#include "hmac.h"
#include "http.h"
#include "json.h"
#include "jwt.h"
#include "url.h"

/* A test is one function; it passes when every CHECK in it holds. */
static int passed, failed, checks_failed;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            checks_failed++;                                                            \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);             \
        }                                                                               \
    } while (0)

#define CHECK_STR(got, want)                                                            \
    do {                                                                                \
        const char *g_ = (got), *w_ = (want);                                           \
        if (!(g_ && w_ && strcmp(g_, w_) == 0)) {                                       \
            checks_failed++;                                                            \
            fprintf(stderr, "FAIL %s:%d: got \"%s\", want \"%s\"\n", __FILE__, __LINE__, \
                    g_ ? g_ : "(null)", w_ ? w_ : "(null)");                            \
        }                                                                               \
    } while (0)

static void test_b64url(void)
{
    static const struct { const char *in, *out; } v[] = {
        { "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" }, { "foob", "Zm9vYg" },
        { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" }, { "\xfb\xff", "-_8" },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        sr_buf b, d;
        sr_buf_init(&b);
        sr_buf_init(&d);
        sr_b64url_encode(&b, v[i].in, strlen(v[i].in));
        CHECK_STR(b.data, v[i].out);
        CHECK(sr_b64url_decode(&d, b.data, b.len) && d.len == strlen(v[i].in) &&
              memcmp(d.data, v[i].in, d.len) == 0);
        sr_buf_free(&b, 0);
        sr_buf_free(&d, 0);
    }
    static const char *bad[] = { "Zg=", "Z", "Zm9v+", "Zm/v", "Zh" /* non-zero padding bits */, "Zm 9" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sr_buf d;
        sr_buf_init(&d);
        CHECK(!sr_b64url_decode(&d, bad[i], strlen(bad[i])));
        sr_buf_free(&d, 0);
    }
    /* Large input crosses the inline buffer. */
    char big[3000];
    memset(big, 'x', sizeof big);
    sr_buf b;
    sr_buf_init(&b);
    sr_b64url_encode(&b, big, sizeof big);
    CHECK(b.len == 4000 && strlen(b.data) == 4000);
    sr_buf_free(&b, 0);
}

static void test_json(void)
{
    sr_buf b;
    sr_buf_init(&b);
    CHECK(sr_json_add_string(&b, "a\"b\\c\n\x01/\xc3\xa9", 10));
    CHECK_STR(b.data, "\"a\\\"b\\\\c\\n\\u0001/\xc3\xa9\"");
    sr_buf_reset(&b);
    CHECK(!sr_json_add_string(&b, "\xff", 1));
    CHECK(!sr_json_add_string(&b, "\xc0\xaf", 2));          /* overlong */
    CHECK(!sr_json_add_string(&b, "\xed\xa0\x80", 3));      /* surrogate */
    CHECK(sr_utf8_valid("\xf0\x9f\x98\x80", 4));
    sr_buf_reset(&b);
    sr_json_add_number(&b, 42);
    sr_buf_addc(&b, ' ');
    sr_json_add_number(&b, -1.5);
    sr_buf_addc(&b, ' ');
    sr_json_add_number(&b, 0.1);
    CHECK_STR(b.data, "42 -1.5 0.1");
    CHECK(!sr_json_add_number(&b, 0.0 / 0.0));
    sr_buf_reset(&b);
    sr_buf_addint(&b, -9223372036854775807LL - 1);
    CHECK_STR(b.data, "-9223372036854775808");
    sr_buf_free(&b, 0);
}

static void hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
}

static void test_hmac(void)
{
    /* RFC 4231 test case 2, and the same key reused: the prepared state must not drift. */
    sr_hmac h;
    sr_error err;
    unsigned char mac[SR_HMAC_MAX];
    char out[2 * SR_HMAC_MAX + 1];
    CHECK(sr_hmac_init(&h, SR_HS256, "Jefe", 4, &err));
    for (int round = 0; round < 3; round++) {
        size_t n = sr_hmac_sign(&h, "what do ya want for nothing?", 28, mac);
        CHECK(n == 32);
        hex(mac, n, out);
        CHECK_STR(out, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
    sr_hmac_free(&h);
    sr_hmac_free(&h); /* idempotent */
    CHECK(sr_hmac_init(&h, SR_HS512, "Jefe", 4, &err));
    size_t n = sr_hmac_sign(&h, "what do ya want for nothing?", 28, mac);
    CHECK(n == 64);
    hex(mac, n, out);
    CHECK_STR(out, "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737");
    sr_hmac_free(&h);
    /* RFC 4231 test case 6: a key longer than the block size. */
    unsigned char key[131];
    memset(key, 0xaa, sizeof key);
    CHECK(sr_hmac_init(&h, SR_HS256, key, sizeof key, &err));
    const char *msg = "Test Using Larger Than Block-Size Key - Hash Key First";
    n = sr_hmac_sign(&h, msg, strlen(msg), mac);
    hex(mac, n, out);
    CHECK_STR(out, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    sr_hmac_free(&h);
}

static void test_url(void)
{
    sr_url u;
    sr_error err;
    CHECK(sr_url_parse("HTTPS://Example.COM:8443/a/b/", 29, &u, "endpoint", &err));
    CHECK_STR(u.scheme, "https");
    CHECK_STR(u.host, "example.com");
    CHECK(u.port == 8443 && u.port_explicit);
    CHECK_STR(u.path, "/a/b");
    sr_url_free(&u);
    CHECK(sr_url_parse("http://[::1]:80", 15, &u, "endpoint", &err));
    CHECK_STR(u.host, "[::1]");
    sr_buf b;
    sr_buf_init(&b);
    sr_url_add_origin(&b, &u);
    CHECK_STR(b.data, "http://[::1]"); /* default port dropped */
    sr_url_free(&u);
    static const char *bad[] = {
        "ftp://x", "x.service.signalr.net", "https://", "https://:443", "https://x:0", "https://x:65536",
        "https://x:12a", "https://user:pw@x", "https://x?q=1", "https://x#f", "https://x y", "https://[zz]",
        "https://x:", "https://ex%ample",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sr_error_clear(&err);
        int ok = sr_url_parse(bad[i], strlen(bad[i]), &u, "endpoint", &err);
        CHECK(!ok && err.kind == SR_E_INVALID_ARGUMENT && strstr(err.message, "endpoint"));
        if (ok) sr_url_free(&u);
    }
    sr_buf_reset(&b);
    sr_url_add_escaped(&b, "a b/c?d=é~", 11);
    CHECK_STR(b.data, "a%20b%2Fc%3Fd%3D%C3%A9~");
    sr_buf_free(&b, 0);
}

static void test_connstr(void)
{
    sr_connstr cs;
    sr_error err;
    const char *s = " endpoint = https://X.service.signalr.net/path/ ; ACCESSKEY= abc=def= ;Version=1.0;;junk;Port=444;"
                    "ClientEndpoint=https://proxy.contoso.com/p;ServerEndpoint=http://internal:8080/base/;Unknown=1";
    CHECK(sr_connstr_parse(s, strlen(s), &cs, &err));
    CHECK_STR(cs.endpoint.host, "x.service.signalr.net");
    CHECK(cs.endpoint.port == 444);
    CHECK_STR(cs.endpoint.path, "");
    CHECK_STR(cs.access_key, "abc=def=");
    CHECK_STR(cs.version, "1.0");
    CHECK(cs.auth_type == SR_AUTH_ACCESS_KEY && cs.has_client_endpoint && cs.has_server_endpoint);
    CHECK_STR(cs.server_endpoint.path, "/base");

    sr_endpoint ep;
    CHECK(sr_endpoint_init(&ep, &cs.endpoint, &cs.client_endpoint, &cs.server_endpoint, "MyApp", 5, &err));
    sr_buf b;
    sr_buf_init(&b);
    sr_endpoint_client_url(&b, &ep, "Chat", 4);
    CHECK_STR(b.data, "https://proxy.contoso.com/p/client/?hub=myapp_chat");
    sr_buf_reset(&b);
    sr_endpoint_client_audience(&b, &ep, "Chat", 4);
    CHECK_STR(b.data, "https://x.service.signalr.net/client/?hub=myapp_chat");
    sr_buf_reset(&b);
    sr_endpoint_access_key_url(&b, &ep);
    CHECK_STR(b.data, "http://internal:8080/base/api/v1/auth/accessKey");
    CHECK_STR(ep.origin, "https://x.service.signalr.net:444");
    sr_buf_free(&b, 0);
    sr_endpoint_free(&ep);
    sr_endpoint_free(&ep); /* idempotent */
    sr_connstr_free(&cs);
    sr_connstr_free(&cs);

    static const struct { const char *s; const char *needle; } bad[] = {
        { "AccessKey=SECRETKEY", "Endpoint" },
        { "Endpoint=https://x;AccessKey=SECRETKEY;endpoint=https://y", "Duplicate" },
        { "Endpoint=https://x", "AccessKey" },
        { "Endpoint=https://x;AccessKey=SECRETKEY;Port=0", "Port" },
        { "Endpoint=https://x;AccessKey=SECRETKEY;Version=2.0", "Version" },
        { "Endpoint=x SECRETKEY;AccessKey=SECRETKEY", "Endpoint" },
        { "Endpoint=https://x;AuthType=azure.app;ClientId=c", "TenantId" },
        { "Endpoint=https://x;AuthType=azure.app;ClientId=c;TenantId=t", "ClientSecret" },
        { "Endpoint=https://x;AuthType=nope;AccessKey=SECRETKEY", "AuthType" },
        { "Endpoint=https://x;AccessKey=SECRETKEY;ClientEndpoint=ftp://SECRETKEY", "ClientEndpoint" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sr_error_clear(&err);
        int ok = sr_connstr_parse(bad[i].s, strlen(bad[i].s), &cs, &err);
        CHECK(!ok);
        CHECK(strcasestr(err.message, bad[i].needle) != NULL);
        CHECK(strstr(err.message, "SECRETKEY") == NULL);
        if (ok) sr_connstr_free(&cs);
    }
}

static void test_client_token(void)
{
    sr_error err;
    sr_url u;
    sr_endpoint ep;
    sr_signing_key key;
    CHECK(sr_url_parse("https://x.service.signalr.net", 29, &u, "endpoint", &err));
    CHECK(sr_endpoint_init(&ep, &u, NULL, NULL, NULL, 0, &err));
    CHECK(sr_signing_key_init(&key, NULL, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 36, &err));
    sr_claims c;
    sr_claims_init(&c, &err);
    CHECK(sr_claims_add_user_id(&c, "alice", 5));
    CHECK(sr_claims_add_string(&c, "aud", 3, "evil", 4)); /* renamed */
    CHECK(!sr_claims_add_string(&c, "asrs.u.aud", 10, "x", 1)); /* duplicate after renaming */
    sr_claims_free(&c);

    sr_claims_init(&c, &err);
    CHECK(sr_claims_add_user_id(&c, "alice", 5));
    sr_client_token_params p = { &ep, "Chat", 4, 1700000000, 3600, SR_HS256, &key };
    sr_buf tok, url;
    sr_buf_init(&tok);
    sr_buf_init(&url);
    CHECK(sr_client_token_sign(&c, &p, &tok, &url));
    CHECK_STR(url.data, "https://x.service.signalr.net/client/?hub=chat");
    /* The payload segment decodes to exactly the claims we expect, in order. */
    const char *dot1 = strchr(tok.data, '.'), *dot2 = strrchr(tok.data, '.');
    sr_buf payload;
    sr_buf_init(&payload);
    CHECK(sr_b64url_decode(&payload, dot1 + 1, (size_t)(dot2 - dot1 - 1)));
    CHECK_STR(payload.data, "{\"asrs.s.uid\":\"alice\",\"nameid\":\"alice\",\"nbf\":1700000000,\"exp\":1700003600,"
                            "\"iat\":1700000000,\"iss\":\"azure-signalr\","
                            "\"aud\":\"https://x.service.signalr.net/client/?hub=chat\"}");
    /* Header: HS256, no kid for a plain access key. */
    sr_buf header;
    sr_buf_init(&header);
    CHECK(sr_b64url_decode(&header, tok.data, (size_t)(dot1 - tok.data)));
    CHECK_STR(header.data, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
    /* Signature: HMAC-SHA256 over header.payload with a freshly keyed context. */
    sr_hmac h;
    unsigned char mac[SR_HMAC_MAX];
    CHECK(sr_hmac_init(&h, SR_HS256, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 36, &err));
    size_t n = sr_hmac_sign(&h, tok.data, (size_t)(dot2 - tok.data), mac);
    sr_buf sig;
    sr_buf_init(&sig);
    sr_b64url_encode(&sig, mac, n);
    CHECK_STR(dot2 + 1, sig.data);
    sr_hmac_free(&h);
    sr_buf_free(&sig, 0);
    sr_buf_free(&header, 0);
    sr_buf_free(&payload, 0);
    sr_buf_free(&tok, 1);
    sr_buf_free(&url, 0);
    sr_claims_free(&c);

    /* A token over 4096 characters is an error, never a truncated token. */
    sr_claims_init(&c, &err);
    char big[4000];
    memset(big, 'v', sizeof big);
    CHECK(sr_claims_add_string(&c, "big", 3, big, sizeof big));
    sr_buf_init(&tok);
    CHECK(!sr_client_token_sign(&c, &p, &tok, NULL));
    CHECK(err.kind == SR_E_INVALID_ARGUMENT && strstr(err.message, "4096"));
    sr_buf_free(&tok, 1);
    sr_claims_free(&c);

    sr_signing_key_free(&key);
    sr_signing_key_free(&key);
    sr_endpoint_free(&ep);
    sr_url_free(&u);
}

static void test_token_memo(void)
{
    sr_error err;
    sr_signing_key key;
    CHECK(sr_signing_key_init(&key, NULL, "memo-key", 8, &err));
    /* Ten distinct payloads (more than the memo holds), each signed twice: every token is
     * the same as a fresh, unmemoised signature of the same payload. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 10; i++) {
            char payload[64];
            int n = snprintf(payload, sizeof payload, "{\"aud\":\"https://x/%d\",\"iat\":1700000000}", i);
            sr_buf memo, fresh;
            sr_buf_init(&memo);
            sr_buf_init(&fresh);
            CHECK(sr_signing_key_sign(&key, SR_HS256, payload, (size_t)n, &memo, &err));
            sr_buf_adds(&fresh, key.header[SR_HS256]);
            CHECK(sr_jwt_finish(&fresh, &key.hmac[SR_HS256], payload, (size_t)n, &err));
            CHECK_STR(memo.data, fresh.data);
            sr_buf_free(&memo, 0);
            sr_buf_free(&fresh, 0);
        }
    }
    /* Signing after a prefix (as "Bearer <token>" is built) signs the token alone, fresh
     * and from the memo. */
    for (int round = 0; round < 2; round++) {
        sr_buf bearer, fresh;
        sr_buf_init(&bearer);
        sr_buf_init(&fresh);
        sr_buf_adds(&bearer, "Bearer ");
        CHECK(sr_signing_key_sign(&key, SR_HS256, "{\"p\":1}", 7, &bearer, &err));
        sr_buf_adds(&fresh, "Bearer ");
        sr_buf_adds(&fresh, key.header[SR_HS256]);
        CHECK(sr_jwt_finish_from(&fresh, 7, &key.hmac[SR_HS256], "{\"p\":1}", 7, &err));
        CHECK_STR(bearer.data, fresh.data);
        sr_buf_free(&bearer, 0);
        sr_buf_free(&fresh, 0);
    }
    /* The algorithm is part of the memo key. */
    sr_buf a, b;
    sr_buf_init(&a);
    sr_buf_init(&b);
    CHECK(sr_signing_key_sign(&key, SR_HS256, "{}", 2, &a, &err));
    CHECK(sr_signing_key_sign(&key, SR_HS512, "{}", 2, &b, &err));
    CHECK(strcmp(a.data, b.data) != 0);
    sr_buf_free(&a, 0);
    sr_buf_free(&b, 0);
    sr_signing_key_free(&key);
}

static void test_names(void)
{
    CHECK(sr_name_valid("a", 1));
    CHECK(sr_name_valid("Chat_1`,.[]", 11));
    CHECK(!sr_name_valid("", 0));
    CHECK(!sr_name_valid("1chat", 5));
    CHECK(!sr_name_valid("chat-room", 9));
    char longname[130];
    memset(longname, 'a', sizeof longname);
    CHECK(sr_name_valid(longname, 128));
    CHECK(!sr_name_valid(longname, 129));
}

static void test_http(void)
{
    sr_response r;
    sr_response_init(&r);
    CHECK(sr_response_add_header(&r, "Retry-After", 11, "7", 1));
    CHECK(sr_response_retry_after(&r, 0) == 7);
    CHECK_STR(sr_response_header(&r, "retry-after"), "7");
    sr_response_reset(&r);
    CHECK(sr_response_add_header(&r, "retry-after", 11, "Wed, 21 Oct 2015 07:28:00 GMT", 29));
    CHECK(sr_response_retry_after(&r, 1445412470.0) == 10);
    sr_response_free(&r);
    sr_request q;
    sr_error err;
    CHECK(sr_request_init(&q, "POST", "https://h/p/x?access_token=SECRET", &err));
    sr_buf d;
    sr_buf_init(&d);
    sr_request_describe(&d, &q);
    CHECK_STR(d.data, "POST https://h/p/x");
    sr_buf_free(&d, 0);
    sr_request_free(&q);
}

static void run(const char *name, void (*fn)(void))
{
    int before = checks_failed;
    fn();
    if (checks_failed == before) passed++;
    else {
        failed++;
        fprintf(stderr, "not ok: %s\n", name);
    }
}

#define RUN(fn) run(#fn, fn)

int main(void)
{
    RUN(test_b64url);
    RUN(test_json);
    RUN(test_hmac);
    RUN(test_url);
    RUN(test_connstr);
    RUN(test_client_token);
    RUN(test_token_memo);
    RUN(test_names);
    RUN(test_http);
    printf("c: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
