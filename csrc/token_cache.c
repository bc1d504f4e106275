/* token_cache.c: refresh policy for cached Entra tokens. */
#include "token_cache.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

void sr_token_free(sr_token *t)
{
    if (t->value) {
        sr_wipe(t->value, t->len);
        free(t->value);
    }
    memset(t, 0, sizeof *t);
}

void sr_token_move(sr_token *dst, sr_token *src)
{
    sr_token_free(dst);
    *dst = *src;
    memset(src, 0, sizeof *src);
}

void sr_token_cache_init(sr_token_cache *c) { c->entries = NULL; }

void sr_token_cache_free(sr_token_cache *c)
{
    sr_token_entry *e = c->entries;
    while (e) {
        sr_token_entry *next = e->next;
        sr_token_free(&e->token);
        free(e->key);
        free(e);
        e = next;
    }
    c->entries = NULL;
}

sr_token_entry *sr_token_cache_entry(sr_token_cache *c, const char *tenant, const char *scope)
{
    size_t tl = tenant ? strlen(tenant) : 0, sl = strlen(scope);
    for (sr_token_entry *e = c->entries; e; e = e->next) {
        if (strncmp(e->key, tenant ? tenant : "", tl) == 0 && e->key[tl] == '\n' && strcmp(e->key + tl + 1, scope) == 0)
            return e;
    }
    sr_token_entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->key = malloc(tl + sl + 2);
    if (!e->key) {
        free(e);
        return NULL;
    }
    if (tl) memcpy(e->key, tenant, tl);
    e->key[tl] = '\n';
    memcpy(e->key + tl + 1, scope, sl + 1);
    e->next = c->entries;
    c->entries = e;
    return e;
}

static int refresh_in_flight(const sr_token_entry *e, double now)
{
    return e->refreshing && now - e->refresh_started < SR_TOKEN_REFRESH_STALE;
}

sr_token_state sr_token_entry_state(const sr_token_entry *e, double now)
{
    if (!e->token.value || now >= e->token.expires_on - SR_TOKEN_EXPIRY_MARGIN) return SR_TOKEN_MISSING;
    if (now < e->refresh_at) return SR_TOKEN_FRESH;
    if (refresh_in_flight(e, now)) return SR_TOKEN_REFRESH_WAIT;
    if (e->failed_at > 0 && now < e->failed_at + SR_TOKEN_RETRY_AFTER_FAILURE) return SR_TOKEN_REFRESH_WAIT;
    return SR_TOKEN_REFRESH_DUE;
}

void sr_token_entry_store(sr_token_entry *e, sr_token *t, double now, int half_life)
{
    double life = t->expires_on - now;
    double at = t->expires_on - SR_TOKEN_REFRESH_AHEAD;
    if (t->refresh_on > 0) {
        if (t->refresh_on < at) at = t->refresh_on;
    } else if (half_life && life >= SR_TOKEN_HALF_LIFE_MIN) {
        at = now + life / 2;
    }
    sr_token_move(&e->token, t);
    e->refresh_at = at;
    e->failed_at = 0;
    e->refreshes++;
}

void sr_token_entry_failed(sr_token_entry *e, double now) { e->failed_at = now; }

void sr_token_entry_clear(sr_token_entry *e)
{
    sr_token_free(&e->token);
    e->refresh_at = 0;
}

unsigned long sr_token_entry_begin_refresh(sr_token_entry *e, double now)
{
    if (refresh_in_flight(e, now)) return 0;
    e->refreshing = 1;
    e->refresh_started = now;
    if (++e->ticket == 0) e->ticket = 1;
    return e->ticket;
}

void sr_token_entry_end_refresh(sr_token_entry *e, unsigned long ticket)
{
    if (e->refreshing && e->ticket == ticket) e->refreshing = 0;
}
