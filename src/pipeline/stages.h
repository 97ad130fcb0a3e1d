/* The stages every phase of the method is made of (DESIGN.md §3): generate with the model
 * over store items, expert requests over items (pipeline/expert_pass.h), export a phase's
 * records as a dataset, train or continue an adapter. Each works on one run context and is
 * idempotent over its items: an item is named by (phase, stage, item key), the key naming
 * the question and, for phases that repeat work, the round and attempt (mt_item_key); a
 * done item is never redone, so a rerun after a stop or a kill only does what is missing. */
#ifndef MT_PIPELINE_STAGES_H
#define MT_PIPELINE_STAGES_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "core/report.h"
#include "infer/sampler.h"
#include "infer/seq.h"
#include "infer/session.h"
#include "pipeline/run_dir.h"
#include "pipeline/train_job.h"
#include "store/store.h"

/* What a phase's stages share. The phase owns everything it points to. */
typedef struct {
    mt_run_dir dir;
    mt_store *store;
    mt_session *model;      /* the model the phase generates with and trains */
    const char *model_path; /* its file, as runs and resume keys name it */
    const mt_question *qs;  /* the questions the phase works on, in import order */
    int n;                  /* how many */
    const mt_reporter *rep; /* NULL: silent */
} mt_run_ctx;

/* The key of the item for question qid in a round and attempt: the question id alone when
 * both are 0 (phase 1's items), else "qid/rR/aA". */
#define MT_ITEM_KEY_MAX 64
void mt_item_key(const char *qid, int round, int attempt, char out[MT_ITEM_KEY_MAX]);

/* ---- the model's mode -------------------------------------------------------------------- */

/* Generation with the PEFT adapter in dir (NULL or "": none) attached to the context's
 * session (as its lora), replacing any adapter it had; weights packed for fast decoding
 * unless precise. */
mt_status mt_stage_to_generation(const mt_run_ctx *c, const char *dir, int precise);
/* Training: no adapter attached (the trainer attaches its own), precise mode, unpacked
 * weights. */
void mt_stage_to_training(const mt_run_ctx *c);

/* ---- questions ------------------------------------------------------------------------- */

/* The run's training split, in import order (free with mt_questions_free). Imports path
 * first when not NULL. draw_split: draw the split of questions that have none, with the
 * seed and test fraction the run pinned (the first phase does; a later phase only when it
 * imports, since its own seed need not be the run's). An empty split is an error that
 * says what to do. */
mt_status mt_stage_questions(const mt_run_ctx *c, const char *path, int draw_split, uint64_t seed,
                             double test_fraction, mt_question **qs, int *n);

/* Whether item (phase, stage, key) is done. */
mt_status mt_stage_item_done(const mt_run_ctx *c, const char *phase, const char *stage,
                             const char *key, int *done);

/* ---- generate with the model ---------------------------------------------------------- */

typedef struct {
    const char *key;         /* item key */
    const mt_chat_msg *msgs; /* the prompt, rendered with the model's chat template */
    int n_msgs;
    uint64_t seed; /* sampling seed of this item, so outputs do not depend on batching */
} mt_gen_job;

/* The jobs of one generate stage call, built one at a time: each job's item key, its one
 * user message, its seed and the caller's question index. */
typedef struct {
    mt_gen_job *jobs;
    mt_chat_msg *msgs;
    char **owned; /* prompt texts the list frees */
    char (*keys)[MT_ITEM_KEY_MAX];
    const char **key_ptrs; /* keys[k], as mt_stage_outputs takes them */
    int *question;
    int n;
} mt_gen_jobs;

mt_status mt_gen_jobs_alloc(mt_gen_jobs *l, int cap);
/* Adds the job of item mt_item_key(qid, round, attempt) for question index `question`,
 * asking `user` (borrowed) or, when user is NULL, `owned` (freed with the list; a NULL
 * owned then means it could not be made: MT_ERR_NOMEM). */
mt_status mt_gen_jobs_add(mt_gen_jobs *l, const char *qid, int round, int attempt, int question,
                          const char *user, char *owned, uint64_t seed);
void mt_gen_jobs_free(mt_gen_jobs *l);

typedef struct {
    const char *phase, *stage;
    const char *label;       /* the task's name in progress reports */
    const char *empty_error; /* the item's error when the model writes nothing */
    int keep_empty;          /* store an empty output as done instead (the phase decides) */
    mt_gen_params params;    /* stop tokens: the model's end-of-turn tokens are added */
    int slots;               /* sequences decoded together */
    /* Inside the transaction that stores job index's output (may be NULL). */
    mt_status (*on_output)(void *user, mt_store *s, int index, const char *text);
    void *user;
} mt_gen_stage_opts;

typedef struct {
    int total;       /* jobs given */
    int done_before; /* already done in the store */
    int written;     /* generated now */
    int empty;       /* the model wrote nothing (item failed; retried on the next run) */
} mt_gen_stage_stats;

/* Generates the output of every job whose item is not done yet, in batches of
 * opts->slots; each output (leading whitespace removed) is committed the moment it is
 * complete, with the caller's on_output in the same transaction. */
mt_status mt_stage_generate(const mt_run_ctx *c, const mt_gen_job *jobs, int n,
                            const mt_gen_stage_opts *o, mt_gen_stage_stats *stats);

/* out[k]: the output of item (phase, stage, keys[k]) when it is done, else NULL (and k
 * listed in missing, when not NULL). Free each with free(). */
mt_status mt_stage_outputs(const mt_run_ctx *c, const char *phase, const char *stage,
                           const char *const *keys, int n, char **out, int *missing,
                           int *n_missing);

/* ---- export ------------------------------------------------------------------------------ */

/* Writes the phase's records (mt_store_records) to the run's rel path (data/X.jsonl) as
 * JSONL, atomically; decorate (may be NULL) may add fields to each record first. */
mt_status mt_stage_export(const mt_run_ctx *c, const char *phase, const char *rel,
                          mt_status (*decorate)(void *user, cJSON *record), void *user,
                          int *n_records);

/* ---- metrics ----------------------------------------------------------------------------- */

/* Records a metric in the store and tells the reporter. */
mt_status mt_stage_metric(const mt_run_ctx *c, const char *phase, const char *name, double value);

/* ---- train -------------------------------------------------------------------------------- */

typedef struct {
    const char *phase, *stage, *item; /* the item that marks the training done */
    const char *data;                 /* dataset, relative to the run (data/X.jsonl) */
    const char *work;                 /* checkpoint and metrics folder, relative (train/<phase>) */
    const char *result;               /* adapter folder, relative (adapters/<phase>) */
    const char *first_loss_metric, *last_loss_metric;
    mt_train_job job; /* data, out, result, resume and reporter are set by the stage */
} mt_train_stage_opts;

/* Trains the context's model on the dataset unless the item is done; resumes from the
 * work folder's checkpoint when a killed run left one. On success stores the summary as
 * the item's output and the first and last loss as metrics, in one transaction.
 * *trained = 0 when the item was already done. */
mt_status mt_stage_train(const mt_run_ctx *c, const mt_train_stage_opts *o, int *trained,
                         mt_train_summary *sum);

#endif
