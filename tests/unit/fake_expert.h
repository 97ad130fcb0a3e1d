/* A scripted expert for unit tests: no model, no server. A C callback decides each
 * request's reply or failure; the fake reports them in a chosen completion order (so a test
 * can prove results never depend on it), stops at a request budget exactly as expert.h
 * documents, counts tokens and cost, and keeps a copy of every request it received so a
 * test can assert what was sent and how often. Header-only like the other test helpers. */
#ifndef TESTS_UNIT_FAKE_EXPERT_H
#define TESTS_UNIT_FAKE_EXPERT_H

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/status.h"
#include "expert/expert.h"

/* Decides one request. Return 0 with *content (malloc'ed) for a reply, non-zero for a
 * failure with *error (malloc'ed, or NULL for a generic message). request_number counts
 * every request this fake received, from 0, across all runs, in sending order (which is
 * the batch's order, whatever the completion order). */
typedef int (*fake_answer_fn)(void *user, const mt_expert_req *req, int request_number,
                              char **content, char **error);

typedef enum {
    FAKE_ORDER_IN = 0,   /* replies complete in the order requests were sent */
    FAKE_ORDER_REVERSED, /* last sent completes first */
    FAKE_ORDER_SHUFFLED  /* a permutation drawn from seed and the run number (runs) */
} fake_order;

/* One request as received: copies, so it outlives the caller's batch. */
typedef struct {
    char **roles, **contents;
    int n_msgs;
    char *schema_name; /* NULL when the request had none */
    int run;           /* which run() call received it, from 0 */
} fake_received;

typedef struct {
    mt_expert base; /* first, so the mt_expert * the code under test holds is this fake */
    fake_answer_fn answer;
    void *user;
    fake_order order;
    uint64_t seed;
    /* Requests this fake may send over its whole life (0: no limit), checked against
     * base.requests_sent like the remote expert's budget; raise it between runs to go on. */
    int64_t max_requests;
    double cost_per_1k_prompt, cost_per_1k_completion;
    fake_received *received;
    int n_received, cap_received;
    int runs;
} fake_expert;

typedef struct {
    int ok;
    char *content, *error;
} fake_outcome;

static inline char *fake_strdup(const char *s) {
    if (!s) return NULL;
    const size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static inline void fake_received_free(fake_received *r) {
    for (int i = 0; i < r->n_msgs; i++) {
        free(r->roles[i]);
        free(r->contents[i]);
    }
    free(r->roles);
    free(r->contents);
    free(r->schema_name);
}

static inline void fake_expert_free_cb(mt_expert *e) {
    fake_expert *f = (fake_expert *)e;
    for (int i = 0; i < f->n_received; i++) fake_received_free(&f->received[i]);
    free(f->received);
    free(f);
}

static inline mt_status fake_record(fake_expert *f, const mt_expert_req *req) {
    if (f->n_received == f->cap_received) {
        const int cap = f->cap_received ? 2 * f->cap_received : 16;
        fake_received *grown = realloc(f->received, (size_t)cap * sizeof *grown);
        if (!grown) return mt_fail(MT_ERR_NOMEM, "fake expert: out of memory");
        f->received = grown;
        f->cap_received = cap;
    }
    fake_received *r = &f->received[f->n_received];
    *r = (fake_received){.n_msgs = req->n_msgs, .run = f->runs};
    r->roles = calloc((size_t)req->n_msgs + 1, sizeof *r->roles);
    r->contents = calloc((size_t)req->n_msgs + 1, sizeof *r->contents);
    int ok = r->roles && r->contents;
    for (int i = 0; ok && i < req->n_msgs; i++) {
        r->roles[i] = fake_strdup(req->msgs[i].role ? req->msgs[i].role : "");
        r->contents[i] = fake_strdup(req->msgs[i].content ? req->msgs[i].content : "");
        ok = r->roles[i] && r->contents[i];
    }
    if (ok && req->schema_name) ok = (r->schema_name = fake_strdup(req->schema_name)) != NULL;
    if (!ok) {
        if (!r->roles || !r->contents) r->n_msgs = 0;
        fake_received_free(r);
        return mt_fail(MT_ERR_NOMEM, "fake expert: out of memory");
    }
    f->n_received++;
    return MT_OK;
}

static inline int64_t fake_prompt_bytes(const mt_expert_req *req) {
    int64_t bytes = 0;
    for (int i = 0; i < req->n_msgs; i++)
        if (req->msgs[i].content) bytes += (int64_t)strlen(req->msgs[i].content);
    return bytes;
}

/* splitmix64: a stream of its own per run, so no state is shared between fakes. */
static inline uint64_t fake_next(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* order[i]: the sent request that completes i-th. */
static inline void fake_completion_order(const fake_expert *f, int n, int *order) {
    for (int i = 0; i < n; i++) order[i] = f->order == FAKE_ORDER_REVERSED ? n - 1 - i : i;
    if (f->order != FAKE_ORDER_SHUFFLED) return;
    uint64_t x = f->seed + (uint64_t)f->runs;
    for (int i = n - 1; i > 0; i--) {
        const int k = (int)(fake_next(&x) % (uint64_t)(i + 1));
        const int t = order[i];
        order[i] = order[k];
        order[k] = t;
    }
}

static inline mt_status fake_run(mt_expert *e, const mt_expert_req *reqs, int n,
                                 const mt_expert_cb *cb) {
    fake_expert *f = (fake_expert *)e;
    if (n <= 0) return MT_OK;
    int n_send = n;
    if (f->max_requests > 0) {
        const int64_t left = f->max_requests - e->requests_sent;
        if (left < n_send) n_send = left > 0 ? (int)left : 0;
    }
    fake_outcome *out = calloc((size_t)n, sizeof *out);
    int *order = calloc((size_t)n, sizeof *order);
    mt_status st = out && order ? MT_OK : mt_fail(MT_ERR_NOMEM, "fake expert: out of memory");
    /* Requests go out (and the script sees them) in batch order, like the remote expert
     * starts its fresh jobs; only their completion is reordered. */
    for (int k = 0; !st && k < n_send; k++) {
        if ((st = fake_record(f, &reqs[k]))) break;
        const int number = (int)e->requests_sent++;
        char *content = NULL, *error = NULL;
        const int failed = f->answer(f->user, &reqs[k], number, &content, &error);
        if (!failed && !content) {
            free(error);
            error = fake_strdup("the script answered with no content");
        }
        out[k].ok = !failed && content;
        out[k].content = out[k].ok ? content : NULL;
        if (!out[k].ok && content) free(content);
        out[k].error = out[k].ok ? NULL : error ? error : fake_strdup("scripted failure");
        if (out[k].ok) free(error);
    }
    if (!st) fake_completion_order(f, n_send, order);
    for (int i = 0; !st && i < n_send; i++) {
        const int k = order[i];
        fake_outcome *o = &out[k];
        mt_expert_reply r = {.ok = o->ok, .attempts = 1, .http_status = o->ok ? 200 : 500};
        if (o->ok) {
            /* Usage is counted when the reply arrives, as the remote expert does, so a caller
             * reading e->cost between replies sees each one's share. */
            r.prompt_tokens = fake_prompt_bytes(&reqs[k]) / 4;
            r.completion_tokens = (int64_t)strlen(o->content) / 4;
            e->prompt_tokens += r.prompt_tokens;
            e->completion_tokens += r.completion_tokens;
            e->cost += r.prompt_tokens / 1000.0 * f->cost_per_1k_prompt +
                       r.completion_tokens / 1000.0 * f->cost_per_1k_completion;
        }
        if (cb && cb->on_attempt)
            cb->on_attempt(cb->user, k, 1, r.http_status, o->ok ? NULL : o->error, 0.0);
        r.content = o->content;
        r.error = o->error;
        if (cb && cb->on_done) st = cb->on_done(cb->user, k, &r);
    }
    for (int k = 0; out && k < n; k++) {
        free(out[k].content);
        free(out[k].error);
    }
    free(out);
    free(order);
    f->runs++;
    if (st) return st;
    if (n_send < n)
        return mt_fail(MT_ERR_BUDGET, "fake expert: request budget of %" PRId64 " reached",
                       f->max_requests);
    return MT_OK;
}

/* A new fake named name (the name is hashed into request keys); free it with
 * mt_expert_free. NULL when out of memory. */
static inline fake_expert *fake_expert_new(const char *name, fake_answer_fn answer, void *user) {
    fake_expert *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->base.name = name;
    f->base.run = fake_run;
    f->base.free = fake_expert_free_cb;
    f->answer = answer;
    f->user = user;
    return f;
}

/* How many received requests have a message whose content is exactly text. */
static inline int fake_expert_count(const fake_expert *f, const char *text) {
    int count = 0;
    for (int i = 0; i < f->n_received; i++) {
        const fake_received *r = &f->received[i];
        for (int m = 0; m < r->n_msgs; m++)
            if (strcmp(r->contents[m], text) == 0) {
                count++;
                break;
            }
    }
    return count;
}

#endif
