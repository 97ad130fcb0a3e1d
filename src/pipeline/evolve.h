/* METEOR phase 3, self-evolution (DESIGN.md §2): with no expert, the model answers each
 * training question cheaply (greedy decoding) and expensively (beam search, or the best
 * of n samples by its own mean token log-probability), prefers the expensive answer, and
 * is trained on those pairs with a preference loss (margin ranking on mean token NLL, or
 * DPO), round after round, so that its greedy answer reaches the quality its search had.
 *
 * Round r generates with the adapter of round r - 1 (round 1: phase 2's adapter, or
 * --adapter, or a fresh LoRA with --from-base) and trains that adapter further into
 * adapters/phase3/round-r. Every generation, pair, drop reason and score is an item of the
 * run store committed as it is made, so a run stopped or killed anywhere continues where
 * it was and ends with the same exports and adapters. */
#ifndef MT_PIPELINE_EVOLVE_H
#define MT_PIPELINE_EVOLVE_H

#include <stdint.h>

#include "core/report.h"
#include "pipeline/train_job.h"

typedef enum { MT_EVOLVE_BEAM = 0, MT_EVOLVE_BEST_OF_N } mt_evolve_strategy;

typedef struct {
    const char *run_dir;
    const char *model;     /* NULL: the run's phase 2 (or phase 1) weak model */
    const char *questions; /* file to import (may be NULL when the run has questions) */
    const char *adapter;   /* PEFT folder to start from; NULL: the run's phase 2 adapter */
    int from_base;         /* start from the bare model with a fresh LoRA */
    const char *chat_template;
    int threads, precise;
    uint64_t seed;
    double test_fraction;
    int rounds;
    mt_evolve_strategy strategy;
    int beams;                /* beam search width */
    int samples;              /* best-of-n: samples per question */
    float length_penalty;     /* beam search */
    int self_check;           /* keep a pair only when the model prefers it in both orders */
    int max_tokens;           /* answer length, both decodings */
    int slots;                /* greedy answers or samples decoded together */
    int beam_questions;       /* questions whose beams are decoded together */
    float temperature, top_p; /* best-of-n sampling */
    int top_k;
    const mt_reporter *rep;
    mt_train_job train; /* loss, margin, beta, sft_weight, ...; data, out, result and the
                           starting point are set by the phase */
} mt_evolve_opts;

void mt_evolve_defaults(mt_evolve_opts *o);

/* Runs the rounds not done yet, then writes the exports and the final adapter. */
mt_status mt_evolve(const mt_evolve_opts *o);

#endif
