/* connstr.h: Azure SignalR connection strings ("Endpoint=...;AccessKey=...;Version=1.0;"). */
#ifndef SR_CONNSTR_H
#define SR_CONNSTR_H

#include <stddef.h>

#include "error.h"
#include "url.h"

typedef enum sr_auth_type {
    SR_AUTH_ACCESS_KEY = 0,
    SR_AUTH_AZURE,          /* default credential chain */
    SR_AUTH_AZURE_MSI,      /* managed identity (ClientId picks a user-assigned one) */
    SR_AUTH_AZURE_APP,      /* app registration: ClientSecret or ClientCert */
    SR_AUTH_AAD             /* legacy: app when a secret/cert is given, else managed identity */
} sr_auth_type;

typedef struct sr_connstr {
    sr_url endpoint;            /* Port applied, path dropped */
    int has_client_endpoint;
    sr_url client_endpoint;
    int has_server_endpoint;
    sr_url server_endpoint;
    sr_auth_type auth_type;
    char *access_key;           /* secret */
    char *version;
    char *client_id;
    char *tenant_id;
    char *client_secret;        /* secret */
    char *client_cert;          /* a certificate file path */
} sr_connstr;

const char *sr_auth_type_name(sr_auth_type t);
/* Never echoes a value in an error: a malformed string may carry the key anywhere. */
int sr_connstr_parse(const char *s, size_t n, sr_connstr *cs, sr_error *err);
/* Frees every field, wiping the secrets. Safe on a zeroed or already freed struct. */
void sr_connstr_free(sr_connstr *cs);

#endif
