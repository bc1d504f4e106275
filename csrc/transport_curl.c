/* transport_curl.c: performs request descriptions with libcurl.
 *
 * Each easy handle is configured once (TLS verification, protocols, callbacks, the shared
 * caches); a request then sets only what varies (URL, method, body, headers, timeouts), so
 * the per-call cost stays close to a bare libcurl loop. Header lines are laid out in a
 * buffer the handle owns and linked through its own list nodes: no allocation per call,
 * and the bearer token is wiped from that buffer as soon as the exchange is over. */
#include "transport.h"

#include <curl/curl.h>
#include <curl/header.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef SIGNALR_VERSION
#define SIGNALR_VERSION "0.1.0"
#endif

/* Bodies larger than this are refused: no service answer we read comes near it. */
#define MAX_RESPONSE_BODY (16u * 1024 * 1024)

struct sr_easy {
    CURL *curl;
    sr_buf lines;               /* "Name: value\0" per header; holds the bearer: wiped after use */
    struct curl_slist *nodes;   /* our own list nodes pointing into `lines` (curl never frees them) */
    size_t nnodes;
    char errbuf[CURL_ERROR_SIZE];
    /* What the handle was last given, so a request sets only what differs (a batch sends
     * the same kind of request again and again on each handle). */
    struct {
        void *resp;
        long total_ms, connect_ms;
        int mode;               /* 0 none yet, 1 body, 2 GET, 3 HEAD */
        char custom[8];         /* CUSTOMREQUEST, "" for none */
        struct curl_slist *headers;
    } last;
};

struct sr_transport {
    sr_easy *easy;              /* sr_transport_perform's handle */
    CURLSH *share;              /* connections, DNS and TLS sessions shared by all handles */
    CURLM *multi;               /* batches; created on first use */
    sr_easy **pool;             /* idle handles for batches */
    size_t npool, pool_cap;
    size_t keep;                /* MAXCONNECTS set on the multi handle */
    char *ca_file;
    sr_transport_opts opts;
};

static int curl_ready;

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    sr_response *r = ud;
    size_t len = size * n;
    if (r->body.len + len > MAX_RESPONSE_BODY) return 0; /* aborts the transfer */
    sr_buf_add(&r->body, data, len);
    return r->body.oom ? 0 : len;
}

/* The answer headers protocol code reads, and only on answers that are not 2xx (error
 * codes, Retry-After, challenges): libcurl keeps every header of an exchange itself (its
 * header API, 7.83+), so a successful call costs no header work at all. A Lua driver
 * passes all headers. */
static const char *const KEPT_HEADERS[] = {
    "x-ms-error-code", "retry-after", "www-authenticate", "content-type", "x-ms-request-id", "location", NULL,
};

static void read_headers(CURL *c, sr_response *resp)
{
    for (int i = 0; KEPT_HEADERS[i]; i++) {
        struct curl_header *h = NULL;
        if (curl_easy_header(c, KEPT_HEADERS[i], 0, CURLH_HEADER, -1, &h) == CURLHE_OK && h && h->value)
            sr_response_add_header(resp, KEPT_HEADERS[i], strlen(KEPT_HEADERS[i]), h->value, strlen(h->value));
    }
}

/* ---- handles ------------------------------------------------------------------------ */

static void easy_free(sr_easy *e)
{
    if (!e) return;
    if (e->curl) curl_easy_cleanup(e->curl);
    sr_buf_free(&e->lines, 1);
    free(e->nodes);
    free(e);
}

/* A handle with everything that never changes set once. */
static sr_easy *easy_new(sr_transport *t)
{
    sr_easy *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    sr_buf_init(&e->lines);
    if (!(e->curl = curl_easy_init())) {
        easy_free(e);
        return NULL;
    }
    CURL *c = e->curl;
    curl_easy_setopt(c, CURLOPT_SHARE, t->share);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (t->opts.ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, t->opts.ca_file);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "azure-signalr-lua/" SIGNALR_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, e->errbuf);
    /* The receive buffer, which curl allocates when a transfer starts and frees when it
     * is done: the service's answers are small (an empty 202, a JSON error, a token), and
     * at 1 KB the buffer comes from glibc's per-thread cache. At curl's 16 KB it comes
     * from the heap, and under a batch's churn its free lands at the top of the heap often
     * enough that glibc returns the top to the system and faults it back at the next
     * transfer (measured: 4,000 brk calls and 30,000 page faults per 64,000 sends at 64 in
     * flight; 30 and 1,700 with 1 KB). Larger answers take more reads, nothing else. */
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 1024L);
    return e;
}

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
    if (!(t->easy = easy_new(t))) goto oom;
    return t;
oom:
    sr_transport_free(t);
    sr_error_set(err, SR_E_NO_MEMORY, "out of memory");
    return NULL;
}

void sr_transport_free(sr_transport *t)
{
    if (!t) return;
    /* Easy handles first, then the multi handle, then the share they all used. */
    easy_free(t->easy);
    for (size_t i = 0; i < t->npool; i++) easy_free(t->pool[i]);
    free(t->pool);
    if (t->multi) curl_multi_cleanup(t->multi);
    if (t->share) curl_share_cleanup(t->share);
    free(t->ca_file);
    free(t);
}

const sr_transport_opts *sr_transport_options(const sr_transport *t) { return &t->opts; }

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

sr_easy *sr_transport_easy_acquire(sr_transport *t)
{
    if (t->npool) return t->pool[--t->npool];
    return easy_new(t);
}

void sr_transport_easy_release(sr_transport *t, sr_easy *e)
{
    if (!e) return;
    if (t->npool == t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap * 2 : 16;
        sr_easy **p = realloc(t->pool, cap * sizeof *p);
        if (!p) {
            easy_free(e);
            return;
        }
        t->pool = p;
        t->pool_cap = cap;
    }
    t->pool[t->npool++] = e;
}

void *sr_transport_easy_curl(sr_easy *e) { return e->curl; }

/* ---- one exchange --------------------------------------------------------------------- */

/* Lays out "Name: value" lines (plus "Expect:", which stops a 100-continue round trip, and
 * "Content-Type:" when a body goes without one, which stops curl's form default) and links
 * them. Returns the list, or NULL when out of memory. */
static struct curl_slist *header_list(sr_easy *e, const sr_request *req, int body)
{
    size_t n = req->nheaders + 2;
    if (n > e->nnodes) {
        struct curl_slist *p = realloc(e->nodes, n * sizeof *p);
        if (!p) return NULL;
        e->nodes = p;
        e->nnodes = n;
    }
    sr_buf_reset(&e->lines);
    size_t offsets[64], *off = n <= 64 ? offsets : malloc(n * sizeof *off);
    if (!off) return NULL;
    size_t count = 0;
    int has_type = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        off[count++] = e->lines.len;
        sr_buf_adds(&e->lines, req->headers[i].name);
        sr_buf_add(&e->lines, ": ", 2);
        sr_buf_adds(&e->lines, req->headers[i].value);
        sr_buf_addc(&e->lines, '\0');
        if (strcasecmp(req->headers[i].name, "Content-Type") == 0) has_type = 1;
    }
    off[count++] = e->lines.len;
    sr_buf_add(&e->lines, "Expect:", 8);
    if (body && !has_type) {
        off[count++] = e->lines.len;
        sr_buf_add(&e->lines, "Content-Type:", 14);
    }
    struct curl_slist *list = NULL;
    if (!e->lines.oom) {
        /* Pointers only now: the buffer may have moved while it grew. */
        for (size_t i = 0; i < count; i++) {
            e->nodes[i].data = e->lines.data + off[i];
            e->nodes[i].next = i + 1 < count ? &e->nodes[i + 1] : NULL;
        }
        list = e->nodes;
    }
    if (off != offsets) free(off);
    return list;
}

int sr_transport_easy_setup(sr_transport *t, sr_easy *e, const sr_request *req, sr_response *resp)
{
    CURL *c = e->curl;
    e->errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    if (e->last.resp != resp) curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)resp);
    e->last.resp = resp;
    double total = req->timeout > 0 ? req->timeout : t->opts.timeout;
    double connect = req->connect_timeout > 0 ? req->connect_timeout : t->opts.connect_timeout;
    long total_ms = (long)(total * 1000), connect_ms = (long)(connect * 1000);
    if (e->last.total_ms != total_ms) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, total_ms);
    if (e->last.connect_ms != connect_ms) curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    e->last.total_ms = total_ms;
    e->last.connect_ms = connect_ms;

    /* The method: each mode sets what the previous request on this handle may have left
     * (HTTPGET clears NOBODY and a POST body; CUSTOMREQUEST NULL clears a verb). */
    const char *m = req->method;
    int is_get = strcmp(m, "GET") == 0, is_head = strcmp(m, "HEAD") == 0, is_post = strcmp(m, "POST") == 0;
    int body = !is_get && !is_head && (req->body || is_post || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0);
    int mode = body ? 1 : is_head ? 3 : 2;
    if (body) {
        if (e->last.mode != 1) curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    } else if (e->last.mode != mode) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        if (is_head) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    }
    e->last.mode = mode;
    const char *custom = is_get || is_head || is_post ? "" : m;
    if (strcmp(custom, e->last.custom) != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, *custom ? custom : NULL);
        snprintf(e->last.custom, sizeof e->last.custom, "%s", custom);
    }

    struct curl_slist *list = header_list(e, req, body);
    if (list != e->last.headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    e->last.headers = list;
    return list != NULL;
}

void sr_transport_easy_done(sr_easy *e)
{
    sr_wipe(e->lines.data, e->lines.len);
    sr_buf_reset(&e->lines);
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

void sr_transport_easy_finish(sr_easy *e, int curl_code, sr_response *resp)
{
    CURLcode code = (CURLcode)curl_code;
    sr_transport_easy_done(e);
    if (code == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &status);
        resp->status = (int)status;
        if (status < 200 || status > 299) read_headers(e->curl, resp);
        return;
    }
    resp->status = 0;
    resp->tx_error = classify(code);
    if (code == CURLE_WRITE_ERROR)
        snprintf(resp->tx_message, sizeof resp->tx_message, "the response was larger than %u bytes",
                 MAX_RESPONSE_BODY);
    else
        snprintf(resp->tx_message, sizeof resp->tx_message, "%s", e->errbuf[0] ? e->errbuf : curl_easy_strerror(code));
}

void sr_transport_perform(sr_transport *t, const sr_request *req, sr_response *resp)
{
    sr_response_reset(resp);
    if (!sr_transport_easy_setup(t, t->easy, req, resp)) {
        sr_transport_easy_done(t->easy);
        resp->tx_error = SR_TX_OTHER;
        snprintf(resp->tx_message, sizeof resp->tx_message, "out of memory");
        return;
    }
    sr_transport_easy_finish(t->easy, curl_easy_perform(t->easy->curl), resp);
}
