/* One pass of expert requests over the run store's items: an item already done is
 * skipped, a request answered before (same hash) is served from the store at no cost, the
 * rest go to the expert; every reply is committed the moment it arrives, in one
 * transaction with the item's new state and whatever the caller derives from it (a
 * record), and every HTTP attempt is logged. A kill at any moment therefore loses at most
 * the requests in flight and never stores anything twice. */
#ifndef MT_PIPELINE_EXPERT_PASS_H
#define MT_PIPELINE_EXPERT_PASS_H

#include "core/report.h"
#include "expert/expert.h"
#include "store/store.h"

typedef struct {
    const char *qid;
    mt_expert_req req;
} mt_expert_job;

typedef struct {
    const char *phase, *stage;
    const char *label; /* the task's name in progress reports */
    const mt_reporter *rep;
    /* Inside the transaction that stores job index's accepted reply (may be NULL). */
    mt_status (*on_reply)(void *user, mt_store *s, int index, const char *content);
    void *user;
} mt_expert_pass_opts;

typedef struct {
    int total;       /* jobs given */
    int done_before; /* already done in the store */
    int cached;      /* answered from the request cache */
    int answered;    /* answered by the expert now */
    int failed;      /* failed for good this time (retried on the next run) */
    int unsent;      /* left unsent by a budget stop */
} mt_expert_pass_stats;

/* Returns MT_OK, MT_ERR_BUDGET (stats->unsent > 0; rerun to continue), MT_ERR_REMOTE or
 * another error. Failed items are not an error: see stats->failed. */
mt_status mt_expert_pass(mt_store *s, mt_expert *e, const mt_expert_job *jobs, int n,
                         const mt_expert_pass_opts *o, mt_expert_pass_stats *stats);

#endif
