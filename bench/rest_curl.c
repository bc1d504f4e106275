/* rest_curl.c: the raw libcurl peer of the REST benchmark: the same POST (URL, headers,
 * body) the SDK sends, with everything prepared once, so the loop is libcurl alone.
 *   rest_curl easy  URL SECONDS        one easy handle, one request at a time
 *   rest_curl multi URL SECONDS N      N easy handles on one multi handle
 * Prints "<requests per second>". Every answer must be 202. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char BODY[] = "{\"target\":\"newMessage\",\"arguments\":[\"alice\",\"hello\"]}";
/* A realistic bearer (the SDK signs one per call: same length class). */
static const char AUTH[] =
    "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJodHRwOi8vMTI3LjAuMC4xOjE"
    "vYXBpL2h1YnMvYmVuY2gvOnNlbmQ_YXBpLXZlcnNpb249MjAyMi0wNi0wMSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxN"
    "zAwMDAzNjAwLCJuYW1laWQiOiJiZW5jaF8wMTIzNDU2Nzg5YWJjZGVmIn0.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2ln";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t discard(char *p, size_t s, size_t n, void *ud)
{
    (void)p, (void)ud;
    return s * n;
}

static void setup(CURL *e, const char *url, struct curl_slist *headers)
{
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, BODY);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(sizeof BODY - 1));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* what the SDK sets too: the same bytes on the wire, the same timers */
    curl_easy_setopt(e, CURLOPT_USERAGENT, "azure-signalr-lua/0.1.0");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
}

static void check(CURL *e, CURLcode rc)
{
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 202) {
        fprintf(stderr, "rest_curl: %s, status %ld\n", curl_easy_strerror(rc), status);
        exit(1);
    }
}

/* BENCH_COUNT=n: exactly n requests whatever the time (for instruction counts). */
static long fixed_count(void)
{
    const char *v = getenv("BENCH_COUNT");
    return v ? atol(v) : 0;
}

static double run_easy(const char *url, double secs, struct curl_slist *headers)
{
    CURL *e = curl_easy_init();
    setup(e, url, headers);
    long count = 0, fixed = fixed_count();
    double start = now(), t = start;
    while (fixed ? count < fixed : t - start < secs) {
        for (int i = 0; i < 100; i++) check(e, curl_easy_perform(e));
        count += 100;
        t = now();
    }
    curl_easy_cleanup(e);
    return count / (t - start);
}

static double run_multi(const char *url, double secs, int n, struct curl_slist *headers)
{
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)n);
    CURL **easy = calloc((size_t)n, sizeof *easy);
    for (int i = 0; i < n; i++) {
        easy[i] = curl_easy_init();
        setup(easy[i], url, headers);
        curl_multi_add_handle(m, easy[i]);
    }
    long count = 0, fixed = fixed_count();
    double start = now(), t = start;
    int running = n;
    while (fixed ? count < fixed : t - start < secs) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL *e = msg->easy_handle;
            check(e, msg->data.result);
            count++;
            curl_multi_remove_handle(m, e);
            curl_multi_add_handle(m, e); /* again, at once: n always in flight */
        }
        curl_multi_poll(m, NULL, 0, 100, NULL);
        t = now();
    }
    for (int i = 0; i < n; i++) {
        curl_multi_remove_handle(m, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    free(easy);
    curl_multi_cleanup(m);
    return count / (t - start);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: rest_curl easy|multi URL SECONDS [N]\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, AUTH);
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:");
    double secs = atof(argv[3]);
    double rate = strcmp(argv[1], "multi") == 0 ? run_multi(argv[2], secs, argc > 4 ? atoi(argv[4]) : 8, headers)
                                                : run_easy(argv[2], secs, headers);
    printf("%.0f\n", rate);
    curl_slist_free_all(headers);
    curl_global_cleanup();
    return 0;
}
