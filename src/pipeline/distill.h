/* METEOR phase 1, weak-to-strong distillation (DESIGN.md §2): for every training question
 * the weak model writes a guideline (batched generation), the expert answers the question
 * following it, the (question, answer) pairs are exported to DIR/data/distilled.jsonl,
 * optionally scored by the expert as a judge, and the weak model is fine-tuned on them
 * (LoRA by default) into DIR/adapters/phase1. Every step reads and writes the run store,
 * so a rerun picks up where a stopped or killed run left off. */
#ifndef MT_PIPELINE_DISTILL_H
#define MT_PIPELINE_DISTILL_H

#include <stdint.h>

#include "core/report.h"
#include "pipeline/expert_spec.h"
#include "pipeline/train_job.h"

typedef struct {
    const char *run_dir;
    const char *model;     /* the weak model */
    const char *questions; /* file to import (may be NULL when the run has questions) */
    const char *chat_template;
    int threads;
    uint64_t seed;
    double test_fraction;
    int no_guideline, score, no_train;
    const mt_reporter *rep; /* progress, notes, metrics (NULL: silent) */
    /* the expert's answer request carries the question's reference answer, when it has one,
     * as trusted material for the facts */
    int grounded;
    /* generate (guidelines, a local expert's answers) in precise mode too, as
     * `generate --precise` does; training always runs in it */
    int precise;
    /* guidelines by the weak model */
    int guide_max_tokens, slots, guide_top_k;
    float guide_temperature, guide_top_p;
    /* expert requests */
    int answer_max_tokens, score_max_tokens;
    float answer_temperature;
    mt_train_job train; /* data, out and result are set by the pipeline */
} mt_distill_opts;

void mt_distill_defaults(mt_distill_opts *o);

/* MT_ERR_BUDGET: a budget stopped the run cleanly (rerun to continue). Items that failed
 * for good are reported and retried on the next run; training waits until none is left. */
mt_status mt_distill(const mt_distill_opts *o, const mt_expert_spec *expert);

/* What a run would do now, nothing sent: the run directory is opened (questions imported
 * and split as a run would) and the weak model loaded to count prompt tokens. */
typedef struct {
    int questions;           /* in the training split */
    int guidelines_to_write; /* by the weak model */
    int answers_to_request, answers_done;
    int score_requests;        /* at most, with --score */
    int64_t prompt_tokens;     /* about, in the weak model's tokenizer */
    int64_t completion_tokens; /* at most */
    double cost;               /* at most; < 0 when no price applies */
} mt_distill_plan;

mt_status mt_distill_estimate(const mt_distill_opts *o, const mt_expert_spec *expert,
                              mt_distill_plan *plan);

#endif
