/* One batch on the remote expert: a libcurl multi loop with up to `concurrency` attempts
 * in flight. A job waiting out its backoff is not in flight: it carries a due time and the
 * loop sleeps only until the earliest one, so a slow retry never holds up the others.
 * Budgets are checked before every HTTP request; a refusal (401/403, not OpenAI) cancels
 * whatever is in flight. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "expert/remote_internal.h"
#include "expert/retry.h"

typedef struct {
    remote *r;
    const mt_expert_cb *cb;
    rjob *jobs;
    int n;
    int next_fresh; /* jobs before it have been started */
    int in_flight, waiting;
    int budget_hit;       /* a request was held back by a budget */
    mt_status st;         /* abort: MT_ERR_REMOTE, an on_done status, or out of memory */
    char why[1024];       /* message for st when the abort is ours ("" for on_done's) */
    char budget_why[256]; /* message for the budget stop */
} batch;

static void job_release(rjob *j) {
    if (j->easy) curl_easy_cleanup(j->easy);
    curl_slist_free_all(j->headers);
    free(j->body);
    free(j->resp.data);
    free(j->bad_reply);
    free(j->bad_reason);
    free(j->last_error);
    cJSON_Delete(j->schema);
    memset(j, 0, sizeof *j);
    j->state = JOB_DONE;
}

/* Reports the job (once) and releases it. `content` and `error` are taken over. */
static void finish(batch *b, rjob *j, char *content, char *error) {
    if (j->state == JOB_WAITING) b->waiting--;
    mt_expert_reply *rep = &j->reply;
    rep->ok = content != NULL;
    rep->content = content;
    rep->error = content ? NULL : error ? error : strdup("failed (out of memory)");
    if (content) free(error);
    if (b->cb && b->cb->on_done && !b->st) {
        const int index = j->index;
        mt_status st = b->cb->on_done(b->cb->user, index, rep);
        if (st) b->st = st; /* its message is already recorded */
    }
    mt_expert_reply_free(rep);
    job_release(j);
}

static void fail_bad_schema(batch *b, rjob *j) {
    static const char what[] = "the request's JSON schema does not parse: ";
    const char *schema = j->req->schema_json;
    char *e = malloc(sizeof what + strlen(schema));
    if (e) {
        memcpy(e, what, sizeof what - 1);
        strcpy(e + sizeof what - 1, schema);
    }
    finish(b, j, NULL, e);
}

static void abort_run(batch *b, mt_status st, const char *why) {
    if (b->st) return;
    b->st = st;
    snprintf(b->why, sizeof b->why, "%s", why);
}

static int budget_allows(batch *b) {
    const mt_remote_opts *o = &b->r->o;
    const mt_expert *e = &b->r->base;
    if (o->max_requests > 0 && o->spent_requests + e->requests_sent >= o->max_requests) {
        snprintf(b->budget_why, sizeof b->budget_why,
                 "request budget of %" PRId64 " reached; rerun to continue", o->max_requests);
        return 0;
    }
    if (o->max_cost > 0 && o->spent_cost + e->cost >= o->max_cost) {
        snprintf(b->budget_why, sizeof b->budget_why,
                 "cost budget of %g reached (spent %g); rerun to continue", o->max_cost,
                 o->spent_cost + e->cost);
        return 0;
    }
    return 1;
}

/* Sends the job's next attempt; 0 when a budget held it back. */
static int send_attempt(batch *b, rjob *j) {
    if (!budget_allows(b)) {
        b->budget_hit = 1;
        return 0;
    }
    if (mt_remote_easy(b->r, j) || curl_multi_add_handle(b->r->multi, j->easy) != CURLM_OK) {
        abort_run(b, MT_ERR_NOMEM, "expert: could not start a request (out of memory)");
        return 0;
    }
    if (j->state == JOB_WAITING) b->waiting--;
    j->state = JOB_FLIGHT;
    j->t0 = mt_remote_now();
    j->reply.attempts++;
    b->r->base.requests_sent++;
    b->in_flight++;
    return 1;
}

/* The waiting job due first, if it is due by now. */
static rjob *due_job(batch *b, double now) {
    rjob *best = NULL;
    for (int i = 0; b->waiting && i < b->n; i++) {
        rjob *j = &b->jobs[i];
        if (j->state == JOB_WAITING && j->due <= now && (!best || j->due < best->due)) best = j;
    }
    return best;
}

/* The next request not yet started, its schema parsed; one whose schema is not JSON fails
 * here without being sent. */
static rjob *fresh_job(batch *b) {
    while (b->next_fresh < b->n && !b->st) {
        rjob *j = &b->jobs[b->next_fresh++];
        const char *schema = j->req->schema_json;
        if (!schema || (j->schema = cJSON_Parse(schema)) != NULL) return j;
        fail_bad_schema(b, j);
    }
    return NULL;
}

/* Jobs that went out before and now wait for a retry the budget no longer allows. */
static void fail_waiting(batch *b) {
    for (int i = 0; b->waiting && i < b->n && !b->st; i++) {
        rjob *j = &b->jobs[i];
        if (j->state != JOB_WAITING) continue;
        const char *last = j->last_error ? j->last_error : "?";
        const size_t cap = strlen(b->budget_why) + strlen(last) + 64;
        char *e = malloc(cap);
        if (e)
            snprintf(e, cap, "stopped after %d attempts (%s): last error: %s", j->reply.attempts,
                     b->budget_why, last);
        finish(b, j, NULL, e);
    }
}

static void dispatch(batch *b) {
    const double now = mt_remote_now();
    while (b->in_flight < b->r->o.concurrency && !b->budget_hit && !b->st) {
        rjob *j = due_job(b, now);
        if (!j && !(j = fresh_job(b))) break;
        if (!send_attempt(b, j)) break;
    }
    if (b->budget_hit) fail_waiting(b);
}

static void wait_until(batch *b, rjob *j, double due) {
    j->state = JOB_WAITING;
    j->due = due;
    b->waiting++;
}

static void retry_later(batch *b, rjob *j, const outcome *o, double now) {
    const mt_remote_opts *ro = &b->r->o;
    if (j->retries >= ro->max_retries) {
        const char *last = o->error ? o->error : "out of memory";
        const size_t cap = strlen(last) + 64;
        char *e = malloc(cap);
        if (e)
            snprintf(e, cap, "gave up after %d attempts: last error: %s", j->reply.attempts, last);
        finish(b, j, NULL, e);
        return;
    }
    const double delay =
        o->retry_after >= 0
            ? o->retry_after
            : mt_backoff_delay(&b->r->rng, j->retries, ro->backoff_base_s, ro->backoff_max_s);
    j->retries++;
    wait_until(b, j, now + delay);
}

/* A transfer ended: read it, log the attempt, then answer, retry, resend or give up. */
static void on_transfer_done(batch *b, CURL *easy, CURLcode res) {
    char *priv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    rjob *j = (rjob *)(void *)priv;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    const double now = mt_remote_now();
    curl_multi_remove_handle(b->r->multi, easy);
    curl_easy_cleanup(easy);
    curl_slist_free_all(j->headers);
    free(j->body);
    j->easy = NULL;
    j->headers = NULL;
    j->body = NULL;
    b->in_flight--;
    j->reply.http_status = (int)status;

    outcome o = mt_remote_outcome(b->r, j, res, status);
    if (b->cb && b->cb->on_attempt)
        b->cb->on_attempt(b->cb->user, j->index, j->reply.attempts, (int)status,
                          o.kind == OUT_DONE ? NULL
                          : o.error          ? o.error
                                             : "out of memory",
                          now - j->t0);
    if (o.kind != OUT_DONE) {
        free(j->last_error);
        j->last_error = o.error ? strdup(o.error) : NULL;
    }
    switch (o.kind) {
    case OUT_DONE:
        finish(b, j, o.content, o.content ? o.error : strdup("out of memory storing the reply"));
        return;
    case OUT_RETRY:
        retry_later(b, j, &o, now);
        break;
    case OUT_RESEND:
        wait_until(b, j, now);
        break;
    case OUT_FAIL:
        finish(b, j, NULL, o.error);
        return;
    case OUT_FATAL:
        abort_run(b, MT_ERR_REMOTE, o.error ? o.error : "the expert refused the request");
        break;
    }
    free(o.error);
    free(o.content);
}

/* Handles every transfer that ended; returns how many did. */
static int read_finished(batch *b) {
    CURLMsg *m;
    int left, n = 0;
    while (!b->st && (m = curl_multi_info_read(b->r->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) continue;
        on_transfer_done(b, m->easy_handle, m->data.result);
        n++;
    }
    return n;
}

/* Milliseconds to sleep: until the earliest retry is due, at most a second. */
static int poll_ms(const batch *b) {
    double first = INFINITY;
    for (int i = 0; b->waiting && i < b->n; i++)
        if (b->jobs[i].state == JOB_WAITING && b->jobs[i].due < first) first = b->jobs[i].due;
    if (first == INFINITY) return 1000;
    const double ms = (first - mt_remote_now()) * 1000.0;
    return ms <= 0 ? 0 : ms >= 1000 ? 1000 : (int)ceil(ms);
}

static int finished(const batch *b) {
    if (b->st) return 1;
    if (b->in_flight || b->waiting) return 0;
    return b->next_fresh >= b->n || b->budget_hit;
}

/* Cancels transfers still in flight (no on_done for them) and frees every job. */
static void cleanup(batch *b) {
    for (int i = 0; i < b->n; i++) {
        rjob *j = &b->jobs[i];
        if (j->easy) curl_multi_remove_handle(b->r->multi, j->easy);
        mt_expert_reply_free(&j->reply);
        if (j->state != JOB_DONE) job_release(j);
    }
    free(b->jobs);
}

mt_status mt_remote_run(mt_expert *e, const mt_expert_req *reqs, int n, const mt_expert_cb *cb) {
    remote *r = (remote *)e;
    if (n <= 0) return MT_OK;
    batch b = {.r = r, .cb = cb, .n = n};
    b.jobs = mt_calloc((size_t)n, sizeof *b.jobs);
    if (!b.jobs) return MT_ERR_NOMEM;
    for (int i = 0; i < n; i++) b.jobs[i] = (rjob){.index = i, .req = &reqs[i]};
    for (;;) {
        dispatch(&b);
        if (finished(&b)) break;
        int running = 0;
        if (curl_multi_perform(r->multi, &running) != CURLM_OK) {
            abort_run(&b, MT_ERR_INTERNAL, "expert: curl_multi_perform failed");
            break;
        }
        const int ended = read_finished(&b);
        if (finished(&b)) break;
        if (ended) continue; /* fill the freed slots before sleeping */
        curl_multi_poll(r->multi, NULL, 0, poll_ms(&b), NULL);
    }
    cleanup(&b);
    if (b.st) return b.why[0] ? mt_fail(b.st, "%s", b.why) : b.st;
    if (b.budget_hit) return mt_fail(MT_ERR_BUDGET, "%s", b.budget_why);
    return MT_OK;
}
