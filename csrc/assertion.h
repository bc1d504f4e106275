/* assertion.h: client certificates (PEM or PKCS#12) and the signed client assertion an app
 * registration presents instead of a secret: a JWT with aud = the token endpoint, iss = sub
 * = client id, a random jti, nbf/exp 10 minutes apart, signed RS256 with x5t (SHA-1
 * thumbprint) or PS256 with x5t#S256, optionally carrying the chain in x5c. */
#ifndef SR_ASSERTION_H
#define SR_ASSERTION_H

#include <stddef.h>

#include "buf.h"
#include "error.h"

/* Client assertions live 10 minutes (Azure Identity / MSAL). */
#define SR_ASSERTION_LIFETIME 600

typedef struct sr_client_cert sr_client_cert;

typedef enum sr_assertion_alg { SR_ASSERTION_RS256 = 0, SR_ASSERTION_PS256 } sr_assertion_alg;

/* Loads a certificate and its RSA private key. `cert` is PEM text (certificate(s), and
 * the key unless `key` is given) or PKCS#12 (DER) bytes; `password` decrypts a PKCS#12
 * file or an encrypted PEM key (NULL = none). The leaf is the certificate matching the
 * key; the others form the chain. Never echoes key material in an error. */
sr_client_cert *sr_client_cert_load(const void *cert, size_t cert_len, const void *key, size_t key_len,
                                    const char *password, sr_error *err);
/* Frees the key (OpenSSL clears private key material when it frees it). NULL is fine. */
void sr_client_cert_free(sr_client_cert *c);
void sr_client_cert_configure(sr_client_cert *c, sr_assertion_alg alg, int send_chain);
/* Lower-case hex SHA-1 thumbprint of the leaf (what the portal shows), for messages. */
const char *sr_client_cert_thumbprint(const sr_client_cert *c);

/* Appends a signed assertion for client_id to out. */
int sr_client_assertion_sign(const sr_client_cert *c, const char *client_id, const char *audience, double now,
                             sr_buf *out, sr_error *err);

/* A random RFC 4122 version 4 UUID, lower-case (37 bytes with the NUL). */
int sr_uuid4(char out[37]);

#endif
