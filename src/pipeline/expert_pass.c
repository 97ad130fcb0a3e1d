#include "pipeline/expert_pass.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/fault.h"
#include "core/report.h"

typedef struct {
    mt_store *s;
    mt_expert *e;
    const mt_expert_job *jobs;
    const mt_expert_pass_opts *o;
    mt_expert_pass_stats *stats;
    int *send;        /* send[k]: index into jobs of the k-th request sent */
    char (*hash)[65]; /* per job */
    double cost_mark; /* e->cost when the previous reply was stored */
    mt_task task;
    int finished;
} pass;

static mt_status commit_reply(pass *p, int j, const char *content, int64_t pt, int64_t ct,
                              double cost, int attempts, int from_cache) {
    const mt_expert_pass_opts *o = p->o;
    mt_status st = mt_store_begin(p->s);
    if (st) return st;
    if (!from_cache) {
        char *req = mt_expert_request_json(p->e, &p->jobs[j].req);
        st = req ? mt_store_request_put(p->s, p->hash[j], o->phase, req, content, pt, ct, cost,
                                        attempts)
                 : mt_fail(MT_ERR_NOMEM, "out of memory");
        free(req);
    }
    if (!st) st = mt_store_item_done(p->s, o->phase, o->stage, p->jobs[j].qid, content);
    if (!st && o->on_reply) st = o->on_reply(o->user, p->s, j, content);
    if (!st) st = mt_store_commit(p->s);
    if (st) mt_store_rollback(p->s);
    return st;
}

static void bump_progress(pass *p) {
    char status[96];
    p->finished++;
    snprintf(status, sizeof status, "%d answered, %d cached, %d failed", p->stats->answered,
             p->stats->cached, p->stats->failed);
    /* Cached items were counted as done when the task started; leaving them out here
     * made progress jump back by that many at the first reply. */
    mt_task_update(&p->task, p->stats->done_before + p->stats->cached + p->finished, status);
}

static void on_attempt(void *user, int k, int attempt, int http_status, const char *error,
                       double seconds) {
    pass *p = user;
    /* A failed log write must not stop the run: the attempt itself already happened. */
    if (mt_store_attempt_log(p->s, p->hash[p->send[k]], p->o->phase, attempt, http_status, error,
                             seconds))
        mt_report_note(p->o->rep, "warning: could not log an attempt: %s", mt_last_error());
}

static mt_status on_done(void *user, int k, const mt_expert_reply *r) {
    pass *p = user;
    const int j = p->send[k];
    mt_status st;
    if (r->ok) {
        const double cost = p->e->cost - p->cost_mark;
        p->cost_mark = p->e->cost;
        st = commit_reply(p, j, r->content, r->prompt_tokens, r->completion_tokens, cost,
                          r->attempts, 0);
        if (!st) p->stats->answered++;
    } else {
        st = mt_store_item_failed(p->s, p->o->phase, p->o->stage, p->jobs[j].qid,
                                  r->error ? r->error : "failed");
        if (!st) p->stats->failed++;
    }
    if (st) return st;
    bump_progress(p);
    mt_fault_point("expert_done");
    return MT_OK;
}

/* Serves done and cached items; collects the rest into p->send. */
static mt_status triage(pass *p, int n, int *n_send) {
    *n_send = 0;
    for (int j = 0; j < n; j++) {
        mt_item it = {0};
        mt_status st = mt_store_item_get(p->s, p->o->phase, p->o->stage, p->jobs[j].qid, &it);
        const int done = it.state == MT_ITEM_DONE;
        mt_item_free(&it);
        if (st) return st;
        if (done) {
            p->stats->done_before++;
            continue;
        }
        mt_expert_request_hash(p->e, &p->jobs[j].req, p->hash[j]);
        mt_cached_reply c = {0};
        int found = 0;
        if ((st = mt_store_request_get(p->s, p->hash[j], &c, &found))) return st;
        if (found) {
            st = commit_reply(p, j, c.response, 0, 0, 0, 0, 1);
            mt_cached_reply_free(&c);
            if (st) return st;
            p->stats->cached++;
            continue;
        }
        p->send[(*n_send)++] = j;
    }
    return MT_OK;
}

mt_status mt_expert_pass(mt_store *s, mt_expert *e, const mt_expert_job *jobs, int n,
                         const mt_expert_pass_opts *o, mt_expert_pass_stats *stats) {
    memset(stats, 0, sizeof *stats);
    stats->total = n;
    if (n == 0) return MT_OK;
    pass p = {.s = s, .e = e, .jobs = jobs, .o = o, .stats = stats, .cost_mark = e->cost};
    p.send = mt_calloc((size_t)n, sizeof *p.send);
    p.hash = mt_calloc((size_t)n, sizeof *p.hash);
    mt_expert_req *reqs = mt_calloc((size_t)n, sizeof *reqs);
    int n_send = 0;
    mt_status st = p.send && p.hash && reqs ? triage(&p, n, &n_send) : MT_ERR_NOMEM;
    if (!st && n_send) {
        for (int k = 0; k < n_send; k++) reqs[k] = jobs[p.send[k]].req;
        mt_task_start(&p.task, o->rep, o->label, n, stats->done_before + stats->cached);
        mt_expert_cb cb = {.on_attempt = on_attempt, .on_done = on_done, .user = &p};
        st = e->run(e, reqs, n_send, &cb);
        stats->unsent = n_send - p.finished;
        mt_task_finish(&p.task, NULL);
    }
    free(p.send);
    free(p.hash);
    free(reqs);
    return st;
}
