/* transport_curl.c: performs request descriptions with libcurl. */
#include "transport.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#ifndef SIGNALR_VERSION
#define SIGNALR_VERSION "0.1.0"
#endif

/* Bodies larger than this are refused: no service answer we read comes near it. */
#define MAX_RESPONSE_BODY (16u * 1024 * 1024)

struct sr_transport {
    CURL *easy;                 /* sr_transport_perform's handle */
    CURLSH *share;              /* connections, DNS and TLS sessions shared by all handles */
    CURLM *multi;               /* batches; created on first use */
    CURL **pool;                /* idle easy handles for batches */
    size_t npool, pool_cap;
    size_t keep;                /* MAXCONNECTS set on the multi handle */
    struct curl_slist *headers;
    char *ca_file;
    sr_transport_opts opts;
    char errbuf[CURL_ERROR_SIZE];
};

static int curl_ready;

sr_transport *sr_transport_new(const sr_transport_opts *opts, sr_error *err)
{
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            sr_error_set(err, SR_E_INTERNAL, "libcurl failed to initialise");
            return NULL;
        }
        curl_ready = 1;
    }
    sr_transport *t = calloc(1, sizeof *t);
    if (!t) {
        sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
        return NULL;
    }
    t->opts = *opts;
    if (opts->ca_file && !(t->ca_file = strdup(opts->ca_file))) goto oom;
    t->opts.ca_file = t->ca_file;
    if (t->opts.timeout <= 0) t->opts.timeout = 30;
    if (t->opts.connect_timeout <= 0) t->opts.connect_timeout = 10;
    t->share = curl_share_init();
    if (!t->share) goto oom;
    curl_share_setopt(t->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(t->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(t->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    t->easy = sr_transport_easy_acquire(t);
    if (!t->easy) goto oom;
    return t;
oom:
    sr_transport_free(t);
    sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    return NULL;
}

static void free_headers(struct curl_slist **list)
{
    /* Header values may hold a bearer token: wipe them before they go back to malloc. */
    for (struct curl_slist *h = *list; h; h = h->next) OPENSSL_cleanse(h->data, strlen(h->data));
    curl_slist_free_all(*list);
    *list = NULL;
}

void sr_transport_headers_free(void *headers)
{
    struct curl_slist *list = headers;
    free_headers(&list);
}

void sr_transport_free(sr_transport *t)
{
    if (!t) return;
    /* Easy handles first, then the multi handle, then the share they all used. */
    if (t->easy) curl_easy_cleanup(t->easy);
    for (size_t i = 0; i < t->npool; i++) curl_easy_cleanup(t->pool[i]);
    free(t->pool);
    if (t->multi) curl_multi_cleanup(t->multi);
    if (t->share) curl_share_cleanup(t->share);
    free_headers(&t->headers);
    free(t->ca_file);
    free(t);
}

void *sr_transport_multi(sr_transport *t)
{
    if (!t->multi) t->multi = curl_multi_init();
    return t->multi;
}

void sr_transport_keep_connections(sr_transport *t, size_t n)
{
    if (n <= t->keep || !sr_transport_multi(t)) return;
    t->keep = n;
    curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, (long)n);
}

void *sr_transport_easy_acquire(sr_transport *t)
{
    if (t->npool) return t->pool[--t->npool];
    CURL *easy = curl_easy_init();
    if (easy) curl_easy_setopt(easy, CURLOPT_SHARE, t->share);
    return easy;
}

void sr_transport_easy_release(sr_transport *t, void *easy)
{
    if (!easy) return;
    if (t->npool == t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap * 2 : 16;
        CURL **p = realloc(t->pool, cap * sizeof *p);
        if (!p) {
            curl_easy_cleanup(easy);
            return;
        }
        t->pool = p;
        t->pool_cap = cap;
    }
    t->pool[t->npool++] = easy;
}

const sr_transport_opts *sr_transport_options(const sr_transport *t) { return &t->opts; }

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    sr_response *r = ud;
    size_t len = size * n;
    if (r->body.len + len > MAX_RESPONSE_BODY) return 0; /* aborts the transfer */
    sr_buf_add(&r->body, data, len);
    return r->body.oom ? 0 : len;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    sr_response *r = ud;
    size_t len = size * n;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new status line (after 100 Continue or a proxy's CONNECT): start over. */
        for (size_t i = 0; i < r->nheaders; i++) {
            free(r->headers[i].name);
            free(r->headers[i].value);
        }
        r->nheaders = 0;
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon) return len;
    const char *v = colon + 1, *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    sr_response_add_header(r, data, (size_t)(colon - data), v, (size_t)(end - v));
    return len;
}


void *sr_transport_easy_setup(sr_transport *t, void *easy_in, const sr_request *req, sr_response *resp)
{
    CURL *easy = easy_in;
    curl_easy_reset(easy); /* keeps live connections, DNS and TLS session caches */
    curl_easy_setopt(easy, CURLOPT_URL, req->url);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
    if (t->opts.ca_file) curl_easy_setopt(easy, CURLOPT_CAINFO, t->opts.ca_file);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "azure-signalr-lua/" SIGNALR_VERSION);
    double total = req->timeout > 0 ? req->timeout : t->opts.timeout;
    double connect = req->connect_timeout > 0 ? req->connect_timeout : t->opts.connect_timeout;
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)(total * 1000));
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(connect * 1000));
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, resp);

    struct curl_slist *list = NULL;
    for (size_t i = 0; i < req->nheaders; i++) {
        size_t n = strlen(req->headers[i].name) + strlen(req->headers[i].value) + 3;
        char *line = malloc(n);
        if (!line) continue;
        snprintf(line, n, "%s: %s", req->headers[i].name, req->headers[i].value);
        struct curl_slist *next = curl_slist_append(list, line);
        OPENSSL_cleanse(line, n);
        free(line);
        if (next) list = next;
    }
    /* No "Expect: 100-continue" round trip before small bodies. */
    struct curl_slist *next = curl_slist_append(list, "Expect:");
    if (next) list = next;
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, list);

    if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(req->method, "POST") != 0) curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
        if (req->body || strcmp(req->method, "POST") == 0) {
            curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
            curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        }
    }
    return list;
}

static sr_tx_error classify(CURLcode code)
{
    switch (code) {
    case CURLE_OK: return SR_TX_OK;
    case CURLE_OPERATION_TIMEDOUT: return SR_TX_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT: return SR_TX_CONNECT;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE: return SR_TX_RESET;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR: return SR_TX_TLS;
    default: return SR_TX_OTHER;
    }
}

void sr_transport_easy_finish(void *easy, int curl_code, sr_response *resp)
{
    CURLcode code = (CURLcode)curl_code;
    if (code == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        resp->status = (int)status;
        return;
    }
    resp->status = 0;
    resp->tx_error = classify(code);
    if (code == CURLE_WRITE_ERROR)
        snprintf(resp->tx_message, sizeof resp->tx_message, "the response was larger than %u bytes",
                 MAX_RESPONSE_BODY);
    else
        snprintf(resp->tx_message, sizeof resp->tx_message, "%s", curl_easy_strerror(code));
}

void sr_transport_perform(sr_transport *t, const sr_request *req, sr_response *resp)
{
    sr_response_reset(resp);
    free_headers(&t->headers);
    t->headers = sr_transport_easy_setup(t, t->easy, req, resp);
    t->errbuf[0] = '\0';
    curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->errbuf);
    CURLcode code = curl_easy_perform(t->easy);
    sr_transport_easy_finish(t->easy, code, resp);
    if (code != CURLE_OK && t->errbuf[0])
        snprintf(resp->tx_message, sizeof resp->tx_message, "%s", t->errbuf);
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, NULL);
    free_headers(&t->headers);
}
