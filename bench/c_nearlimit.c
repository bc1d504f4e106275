/* c_nearlimit.c: the near-physical limit for a negotiate token: a plain C loop that
 * builds the same header and claims with snprintf, base64url-encodes them and signs with
 * a keyed OpenSSL EVP_MAC context prepared once and re-initialised per token.
 * Shares no code with the SDK. Prints "<tokens per second>". */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64url(char *out, const unsigned char *in, size_t n)
{
    char *o = out;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        *o++ = b64[v >> 18], *o++ = b64[(v >> 12) & 63], *o++ = b64[(v >> 6) & 63], *o++ = b64[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        *o++ = b64[v >> 18], *o++ = b64[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        *o++ = b64[v >> 18], *o++ = b64[(v >> 12) & 63], *o++ = b64[(v >> 6) & 63];
    }
    return (size_t)(o - out);
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    const char *key = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                            OSSL_PARAM_construct_end() };
    if (!EVP_MAC_init(ctx, (const unsigned char *)key, strlen(key), params)) return 1;
    const char *header = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char token[2048], claims[1024];
    unsigned char sig[64];
    size_t siglen;
    long count = 0;
    volatile size_t sink = 0;
    double start = now_mono(), end = start + seconds, t = start;
    while (t < end) {
        for (int i = 0; i < 1000; i++) {
            struct timespec wall;
            clock_gettime(CLOCK_REALTIME, &wall);
            long long iat = wall.tv_sec;
            int n = snprintf(claims, sizeof claims,
                             "{\"asrs.s.uid\":\"alice\",\"nameid\":\"alice\",\"role\":\"admin\",\"nbf\":%lld,"
                             "\"exp\":%lld,\"iat\":%lld,\"iss\":\"azure-signalr\","
                             "\"aud\":\"https://demo.service.signalr.net/client/?hub=chat\"}",
                             iat, iat + 3600, iat);
            size_t len = b64url(token, (const unsigned char *)header, strlen(header));
            token[len++] = '.';
            len += b64url(token + len, (const unsigned char *)claims, (size_t)n);
            EVP_MAC_init(ctx, NULL, 0, NULL);
            EVP_MAC_update(ctx, (const unsigned char *)token, len);
            EVP_MAC_final(ctx, sig, &siglen, sizeof sig);
            token[len++] = '.';
            len += b64url(token + len, sig, siglen);
            token[len] = '\0';
            sink += len;
        }
        count += 1000;
        t = now_mono();
    }
    printf("%.0f\n", count / (t - start));
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return sink == 0;
}
