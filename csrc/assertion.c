/* assertion.c: certificate loading and RS256/PS256 client assertions (OpenSSL 3 EVP). */
#include "assertion.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "json.h"

#define MAX_CHAIN 10

struct sr_client_cert {
    EVP_PKEY *key;
    X509 *leaf;
    X509 *chain[MAX_CHAIN];     /* intermediates, in the order given */
    int nchain;
    char x5t[32];               /* base64url SHA-1 of the leaf's DER */
    char x5t256[48];            /* base64url SHA-256 */
    char thumbprint[41];        /* hex SHA-1 */
    sr_assertion_alg alg;
    int send_chain;
};

/* OpenSSL's reason for the last failure, then a clean queue (luaossl's habit). */
static int ssl_error(sr_error *err, sr_kind kind, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char reason[160] = "";
    if (e) ERR_error_string_n(e, reason, sizeof reason);
    ERR_clear_error();
    return sr_error_set(err, kind, "%s%s%s", what, reason[0] ? ": " : "", reason);
}

static int password_cb(char *buf, int size, int rwflag, void *ud)
{
    (void)rwflag;
    const char *pw = ud;
    if (!pw) return 0;
    int n = (int)strlen(pw);
    if (n > size) n = size;
    memcpy(buf, pw, (size_t)n);
    return n;
}

void sr_client_cert_free(sr_client_cert *c)
{
    if (!c) return;
    EVP_PKEY_free(c->key);
    X509_free(c->leaf);
    for (int i = 0; i < c->nchain; i++) X509_free(c->chain[i]);
    sr_wipe(c, sizeof *c);
    free(c);
}

static int looks_pem(const void *p, size_t n)
{
    const char *s = p;
    for (size_t i = 0; i + 10 < n && i < 4096; i++)
        if (memcmp(s + i, "-----BEGIN", 10) == 0) return 1;
    return 0;
}

static int has_pem_key(const void *p, size_t n)
{
    const char *s = p, *end = s + n;
    for (const char *q = s; q + 16 < end; q++)
        if (memcmp(q, "-----BEGIN ", 11) == 0 && memchr(q, '\n', (size_t)(end - q))) {
            const char *eol = memchr(q, '\n', (size_t)(end - q));
            for (const char *k = q; k + 3 <= eol; k++)
                if (memcmp(k, "KEY", 3) == 0) return 1;
        }
    return 0;
}

/* Every certificate in a PEM text, in order (PEM readers skip blocks of other types). */
static int read_pem_certs(X509 **certs, int *ncerts, const void *data, size_t len, sr_error *err)
{
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    if (!bio) return sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    X509 *x;
    int ok = 1;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        if (*ncerts >= MAX_CHAIN) {
            X509_free(x);
            ok = sr_error_set(err, SR_E_INVALID_ARGUMENT, "the certificate holds more than %d certificates", MAX_CHAIN);
            break;
        }
        certs[(*ncerts)++] = x;
    }
    BIO_free(bio);
    ERR_clear_error(); /* the loop ends on "no start line" */
    return ok;
}

static int read_key(sr_client_cert *c, const void *data, size_t len, const char *password, sr_error *err)
{
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    if (!bio) return sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    c->key = PEM_read_bio_PrivateKey(bio, NULL, password_cb, (void *)password);
    BIO_free(bio);
    if (!c->key)
        return ssl_error(err, SR_E_INVALID_ARGUMENT,
                         "the private key is not a PEM private key (or its password is wrong)");
    return 1;
}

static int read_pkcs12(sr_client_cert *c, X509 **certs, int *ncerts, const void *data, size_t len,
                       const char *password, sr_error *err)
{
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    if (!bio) return sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    PKCS12 *p12 = d2i_PKCS12_bio(bio, NULL);
    BIO_free(bio);
    if (!p12) return ssl_error(err, SR_E_INVALID_ARGUMENT, "the certificate is neither PEM nor PKCS#12");
    X509 *leaf = NULL;
    STACK_OF(X509) *ca = NULL;
    int ok = PKCS12_parse(p12, password ? password : "", &c->key, &leaf, &ca);
    PKCS12_free(p12);
    if (!ok) return ssl_error(err, SR_E_INVALID_ARGUMENT, "cannot open the PKCS#12 certificate (wrong password?)");
    if (leaf) certs[(*ncerts)++] = leaf;
    while (ca && sk_X509_num(ca) > 0 && *ncerts < MAX_CHAIN) certs[(*ncerts)++] = sk_X509_shift(ca);
    sk_X509_pop_free(ca, X509_free);
    return 1;
}

static int thumbprints(sr_client_cert *c, sr_error *err)
{
    unsigned char *der = NULL;
    int n = i2d_X509(c->leaf, &der);
    if (n <= 0) return ssl_error(err, SR_E_INVALID_ARGUMENT, "cannot encode the certificate");
    unsigned char sha1[20], sha256[32];
    unsigned int l1 = 0, l2 = 0;
    int ok = EVP_Digest(der, (size_t)n, sha1, &l1, EVP_sha1(), NULL) &&
             EVP_Digest(der, (size_t)n, sha256, &l2, EVP_sha256(), NULL);
    OPENSSL_free(der);
    if (!ok) return ssl_error(err, SR_E_INTERNAL, "cannot hash the certificate");
    sr_buf b;
    sr_buf_init(&b);
    sr_b64url_encode(&b, sha1, l1);
    snprintf(c->x5t, sizeof c->x5t, "%s", b.data);
    sr_buf_reset(&b);
    sr_b64url_encode(&b, sha256, l2);
    snprintf(c->x5t256, sizeof c->x5t256, "%s", b.data);
    sr_buf_free(&b, 0);
    for (unsigned i = 0; i < l1; i++) snprintf(c->thumbprint + 2 * i, 3, "%02x", sha1[i]);
    return 1;
}

/* Picks the leaf (the certificate whose public key is the private key's), the rest is the chain. */
static int arrange(sr_client_cert *c, X509 **certs, int ncerts, sr_error *err)
{
    if (ncerts == 0) return sr_error_set(err, SR_E_INVALID_ARGUMENT, "no certificate found");
    if (!c->key) return sr_error_set(err, SR_E_INVALID_ARGUMENT, "no private key found (give the key with the certificate)");
    if (EVP_PKEY_get_base_id(c->key) != EVP_PKEY_RSA)
        return sr_error_set(err, SR_E_INVALID_ARGUMENT,
                            "the private key is not RSA: Microsoft Entra ID client assertions need an RSA key");
    int leaf = -1;
    for (int i = 0; i < ncerts && leaf < 0; i++)
        if (X509_check_private_key(certs[i], c->key) == 1) leaf = i;
    ERR_clear_error();
    if (leaf < 0) return sr_error_set(err, SR_E_INVALID_ARGUMENT, "the private key does not match the certificate");
    c->leaf = certs[leaf];
    certs[leaf] = NULL;
    for (int i = 0; i < ncerts; i++)
        if (certs[i]) {
            c->chain[c->nchain++] = certs[i];
            certs[i] = NULL;
        }
    return thumbprints(c, err);
}

sr_client_cert *sr_client_cert_load(const void *cert, size_t cert_len, const void *key, size_t key_len,
                                    const char *password, sr_error *err)
{
    sr_client_cert *c = calloc(1, sizeof *c);
    if (!c) {
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    X509 *certs[MAX_CHAIN] = { 0 };
    int ncerts = 0;
    int ok;
    if (cert_len > 0x7fffffff || key_len > 0x7fffffff) ok = sr_error_set(err, SR_E_INVALID_ARGUMENT, "too large");
    else if (!looks_pem(cert, cert_len)) ok = read_pkcs12(c, certs, &ncerts, cert, cert_len, password, err);
    else if (!(ok = read_pem_certs(certs, &ncerts, cert, cert_len, err))) {}
    else if (key) ok = read_key(c, key, key_len, password, err);
    else if (has_pem_key(cert, cert_len)) ok = read_key(c, cert, cert_len, password, err);
    if (ok) ok = arrange(c, certs, ncerts, err);
    for (int i = 0; i < ncerts; i++) X509_free(certs[i]);
    if (!ok) {
        sr_client_cert_free(c);
        return NULL;
    }
    return c;
}

void sr_client_cert_configure(sr_client_cert *c, sr_assertion_alg alg, int send_chain)
{
    c->alg = alg;
    c->send_chain = send_chain;
}

const char *sr_client_cert_thumbprint(const sr_client_cert *c) { return c->thumbprint; }

int sr_uuid4(char out[37])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) return 0;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
             b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return 1;
}

/* x5c: standard base64 (not url) DER of the leaf, then the chain. */
static void add_x5c(sr_buf *h, const sr_client_cert *c)
{
    sr_buf_adds(h, ",\"x5c\":[");
    for (int i = -1; i < c->nchain; i++) {
        X509 *x = i < 0 ? c->leaf : c->chain[i];
        unsigned char *der = NULL;
        int n = i2d_X509(x, &der);
        if (n <= 0) continue;
        if (i >= 0) sr_buf_addc(h, ',');
        sr_buf_addc(h, '"');
        if (sr_buf_reserve(h, (size_t)(4 * ((n + 2) / 3) + 1))) {
            int w = EVP_EncodeBlock((unsigned char *)h->data + h->len, der, n);
            h->len += (size_t)w;
            h->data[h->len] = '\0';
        }
        sr_buf_addc(h, '"');
        OPENSSL_free(der);
    }
    sr_buf_addc(h, ']');
}

static int sign(const sr_client_cert *c, const sr_buf *input, unsigned char *sig, size_t *siglen, sr_error *err)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = md && EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, c->key) == 1;
    if (ok && c->alg == SR_ASSERTION_PS256)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
    ok = ok && EVP_DigestSign(md, sig, siglen, (const unsigned char *)input->data, input->len) == 1;
    EVP_MD_CTX_free(md);
    if (!ok) return ssl_error(err, SR_E_INTERNAL, "OpenSSL failed to sign the client assertion");
    return 1;
}

int sr_client_assertion_sign(const sr_client_cert *c, const char *client_id, const char *audience, double now,
                             sr_buf *out, sr_error *err)
{
    char jti[37];
    if (!sr_uuid4(jti)) return ssl_error(err, SR_E_INTERNAL, "no random bytes for the assertion id");
    long long t = (long long)now;
    sr_buf h, p;
    sr_buf_init(&h);
    sr_buf_init(&p);
    if (c->alg == SR_ASSERTION_PS256) sr_buf_addf(&h, "{\"alg\":\"PS256\",\"typ\":\"JWT\",\"x5t#S256\":\"%s\"", c->x5t256);
    else sr_buf_addf(&h, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"x5t\":\"%s\"", c->x5t);
    if (c->send_chain) add_x5c(&h, c);
    sr_buf_addc(&h, '}');
    sr_buf_adds(&p, "{\"aud\":");
    sr_json_add_string(&p, audience, strlen(audience));
    sr_buf_adds(&p, ",\"iss\":");
    sr_json_add_string(&p, client_id, strlen(client_id));
    sr_buf_adds(&p, ",\"sub\":");
    sr_json_add_string(&p, client_id, strlen(client_id));
    sr_buf_addf(&p, ",\"jti\":\"%s\",\"nbf\":%lld,\"iat\":%lld,\"exp\":%lld}", jti, t, t, t + SR_ASSERTION_LIFETIME);
    size_t start = out->len;
    sr_b64url_encode(out, h.data, h.len);
    sr_buf_addc(out, '.');
    sr_b64url_encode(out, p.data, p.len);
    int oom = h.oom || p.oom || out->oom;
    sr_buf_free(&h, 0);
    sr_buf_free(&p, 0);
    if (oom) return sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    unsigned char sig[1024];
    size_t siglen = sizeof sig;
    if ((size_t)EVP_PKEY_get_size(c->key) > siglen)
        return sr_error_set(err, SR_E_INVALID_ARGUMENT, "the RSA key is larger than 8192 bits");
    sr_buf input;
    sr_buf_init(&input);
    sr_buf_add(&input, out->data + start, out->len - start);
    int ok = !input.oom && sign(c, &input, sig, &siglen, err);
    sr_buf_free(&input, 0);
    if (!ok) return 0;
    sr_buf_addc(out, '.');
    sr_b64url_encode(out, sig, siglen);
    return out->oom ? sr_error_set(err, SR_E_NO_MEMORY, "out of memory") : 1;
}
