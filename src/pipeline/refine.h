/* METEOR phase 2, iterative refinement with expert feedback (DESIGN.md §2): the model (the
 * weak model with phase 1's adapter) answers each training question with its reasoning
 * steps, the expert returns a verdict under a JSON schema with feedback and hints, the
 * model revises a rejected answer, up to max_iterations judged attempts; only accepted
 * answers are trained on, in rounds, in the same process, so later questions are answered
 * by an already improved model.
 *
 * Determinism: the training split, in import order, is cut into waves of
 * fine_tune_interval questions. Every attempt of a wave uses the adapter version current
 * at the wave's start (version 0: the starting adapter; version r after r rounds). After a
 * wave, when the answers accepted since the last round number fine_tune_interval or more,
 * a round trains the adapter further on every answer accepted so far plus a replay share
 * of phase 1's data, continuing its optimizer state; after the last wave a final round
 * takes what is left. Which version answers which attempt therefore follows from the
 * verdicts alone, never from the timing of replies, and a resumed run is identical. */
#ifndef MT_PIPELINE_REFINE_H
#define MT_PIPELINE_REFINE_H

#include <stdint.h>

#include "core/report.h"
#include "pipeline/expert_spec.h"
#include "pipeline/train_job.h"

typedef enum { MT_ON_REJECT_SKIP = 0, MT_ON_REJECT_EXPERT_ANSWER } mt_on_reject;

typedef struct {
    const char *run_dir;
    const char *model;     /* NULL: the run's phase 1 weak model */
    const char *questions; /* file to import (may be NULL when the run has questions) */
    const char *adapter;   /* PEFT folder to start from; NULL: the run's phase 1 adapter */
    int no_adapter;        /* start from the bare model */
    const char *chat_template;
    int threads, precise;
    uint64_t seed;
    double test_fraction;
    int max_iterations, fine_tune_interval, no_train, grounded;
    double replay; /* share of each round's data drawn from phase 1 */
    mt_on_reject on_reject;
    /* attempts by the model */
    int attempt_max_tokens, slots, top_k;
    float temperature, top_p;
    /* verdicts by the expert */
    int verdict_max_tokens;
    const mt_reporter *rep;
    mt_train_job train; /* data, out, result and starting point are set by the phase */
} mt_refine_opts;

void mt_refine_defaults(mt_refine_opts *o);

/* MT_ERR_BUDGET: a budget stopped the run cleanly (rerun to continue). Verdicts that
 * failed for good stop the phase at the end of their wave (rerun to retry them). */
mt_status mt_refine(const mt_refine_opts *o, const mt_expert_spec *expert);

#endif
