/* The evaluation of a run (`meteor eval`, DESIGN.md §2's ablation): every listed model
 * (the base and each phase's adapter) answers the run's held-out test questions greedily,
 * and the judge-free metric is measured: the mean token NLL of each question's reference
 * answer under each model, teacher-forced exactly as training lays the conversation out
 * (train/score.h), with a seeded percentile-bootstrap 95 % interval over questions, and
 * for each model its difference from the base, resampled with the same indices.
 *
 * Answers and NLLs are items of the run store (phase "eval", key "qid/model"), so a rerun
 * computes only what is missing. Writes data/eval-answers.jsonl and eval/summary.json. */
#ifndef MT_PIPELINE_EVAL_H
#define MT_PIPELINE_EVAL_H

#include <stdint.h>

#include "core/report.h"
#include "core/status.h"

typedef struct {
    const char *run_dir;
    const char *model;  /* NULL: the run's weak model (phase 3's, else 2's, else 1's) */
    const char *models; /* comma-separated: base, phase1, phase2, phase3, adapter:PATH;
                           NULL: base and every phase adapter the run has */
    const char *chat_template;
    int threads, precise;
    int max_tokens; /* answer length */
    int slots;      /* answers decoded together */
    int bootstrap;  /* resamples */
    uint64_t seed;  /* of the resampling */
    const mt_reporter *rep;
} mt_eval_opts;

void mt_eval_defaults(mt_eval_opts *o);

mt_status mt_eval(const mt_eval_opts *o);

#endif
