/* token_cache.h: cached Microsoft Entra tokens and when to refresh them. Pure policy over
 * an injected `now`: refresh-ahead (refresh_on, 5 minutes before expiry, half-life for
 * long managed-identity tokens), a 30 s pause after a failed refresh while the cached token
 * is still served, and one refresh in flight per entry. Facts from Azure Identity / MSAL. */
#ifndef SR_TOKEN_CACHE_H
#define SR_TOKEN_CACHE_H

#include <stddef.h>

/* Refresh when less than this remains (Azure Identity's refresh-ahead window). */
#define SR_TOKEN_REFRESH_AHEAD 300.0
/* A token with less than this left is never handed out: it could expire in flight. */
#define SR_TOKEN_EXPIRY_MARGIN 30.0
/* Minimum pause between failed refresh attempts while a valid token is cached. */
#define SR_TOKEN_RETRY_AFTER_FAILURE 30.0
/* Tokens living at least this long without refresh_in are refreshed at half-life (MSAL). */
#define SR_TOKEN_HALF_LIFE_MIN 7200.0
/* An in-flight refresh older than this is presumed abandoned and may be taken over. */
#define SR_TOKEN_REFRESH_STALE 180.0

/* One token as a credential acquired it. */
typedef struct sr_token {
    char *value;                /* secret: wiped when freed */
    size_t len;
    double expires_on;          /* seconds since the epoch */
    double refresh_on;          /* from refresh_in; 0 when the service gave none */
} sr_token;

void sr_token_free(sr_token *t);
/* Moves src into dst (dst freed first); src is left empty. */
void sr_token_move(sr_token *dst, sr_token *src);

typedef enum sr_token_state {
    SR_TOKEN_FRESH = 0,         /* use it */
    SR_TOKEN_REFRESH_DUE,       /* still valid: use it, but a refresh should start */
    SR_TOKEN_REFRESH_WAIT,      /* still valid, refresh due but paused/in flight: use it */
    SR_TOKEN_MISSING            /* none, or expired: a refresh is needed before use */
} sr_token_state;

typedef struct sr_token_entry {
    struct sr_token_entry *next;
    char *key;                  /* "tenant\nscope"; the credential identity is the cache's owner */
    sr_token token;             /* value NULL when none */
    double refresh_at;          /* when a refresh becomes due */
    double failed_at;           /* last failed refresh, or 0 */
    int refreshing;             /* one refresh in flight */
    double refresh_started;
    unsigned long ticket;       /* identifies the refresh in flight */
    unsigned long refreshes;    /* completed refreshes (diagnostics, specs) */
} sr_token_entry;

/* One cache per credential: entries keyed by tenant and scope, never shared between
 * credentials (two credentials with one client id but different secrets must not share). */
typedef struct sr_token_cache {
    sr_token_entry *entries;
} sr_token_cache;

void sr_token_cache_init(sr_token_cache *c);
/* Frees every entry, wiping tokens. */
void sr_token_cache_free(sr_token_cache *c);
/* The entry for (tenant, scope), created on first use; NULL when out of memory. Entries
 * live as long as the cache, so ops may keep a pointer. */
sr_token_entry *sr_token_cache_entry(sr_token_cache *c, const char *tenant, const char *scope);

sr_token_state sr_token_entry_state(const sr_token_entry *e, double now);
/* Stores a fresh token (moved from t) and schedules its refresh. `half_life` enables the
 * managed-identity half-life rule. */
void sr_token_entry_store(sr_token_entry *e, sr_token *t, double now, int half_life);
void sr_token_entry_failed(sr_token_entry *e, double now);
/* Drops the cached token (e.g. the service rejected it). */
void sr_token_entry_clear(sr_token_entry *e);
/* Claims the single refresh slot: returns a ticket, or 0 when another refresh is in
 * flight. Ending with a stale ticket (a refresh that was taken over) changes nothing. */
unsigned long sr_token_entry_begin_refresh(sr_token_entry *e, double now);
void sr_token_entry_end_refresh(sr_token_entry *e, unsigned long ticket);

#endif
