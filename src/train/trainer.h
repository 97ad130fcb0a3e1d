/* The training loop: batches from a dataset, forward + loss + backward, gradient
 * accumulation, clipping, AdamW with a schedule, checkpoints and exact resume,
 * metrics.jsonl and a progress bar. */
#ifndef MT_TRAIN_TRAINER_H
#define MT_TRAIN_TRAINER_H

#include <stdint.h>

#include "core/report.h"
#include "train/data.h"
#include "train/loss.h"
#include "train/optim.h"
#include "train/trainable.h"

typedef enum { MT_LOSS_SFT = 0, MT_LOSS_MARGIN, MT_LOSS_DPO } mt_loss_kind;

typedef struct {
    const char *out_dir;
    mt_loss_kind loss;
    mt_pref_params pref;  /* margin / beta / sft weight for preference losses */
    mt_lr_schedule sched; /* total_steps filled in by the trainer when 0 */
    mt_adamw_params adam;
    double max_grad_norm; /* 0: no clipping */
    mt_batch_opts batch;
    int grad_accum;
    int epochs;
    int64_t max_steps; /* 0: epochs decide */
    int save_every;    /* optimiser steps between checkpoints; 0: only at the end */
    int recompute;     /* recompute every block's activations in backward (less memory) */
    /* Or only some blocks: "0-5,12,20-" (ranges of layer indices, open ends allowed);
     * NULL or "" for none beyond what recompute says. */
    const char *recompute_layers;
    int train_prompt;
    int resume;
    /* Continue an earlier job: start from the weights, AdamW moments and step of the
     * checkpoint it wrote (same model and trainable set; NULL: start from t as it is). The
     * data cursor starts afresh. Steps then count on from the checkpoint's: AdamW's bias
     * correction sees the cumulative step (the moments have been averaging since the first
     * job), the checkpoints, metrics and summary carry it, while the learning-rate schedule
     * (warmup, decay, total_steps) and save_every count this job's own steps from 0. */
    const char *init_checkpoint;
    /* The trained set in words ("lora rank 8 alpha 16 q_proj,v_proj", "full"), recorded in
     * checkpoints so a continued job can refuse another set by name ("": not recorded). */
    char trainable[160];
    const mt_reporter *rep; /* progress (NULL: silent) */
    char run_key[64];
} mt_train_opts;

/* Steps are cumulative (see init_checkpoint): this job trained steps - init_step of them,
 * this process steps - start_step. */
typedef struct {
    int64_t steps;      /* the step reached */
    int64_t start_step; /* the step this process started at (resumed, continued or 0) */
    int64_t init_step;  /* the init checkpoint's step (0 without one) */
    double first_loss, last_loss;
    double tokens_per_second;
    int64_t tokens;
} mt_train_summary;

/* Parses a layer list ("all", "none", "0-5,12,20-") into mask[0..n_layer). */
mt_status mt_parse_layer_list(const char *spec, int n_layer, unsigned char *mask);

/* Paths of the run's files inside out_dir. */
void mt_train_path(const mt_train_opts *o, const char *file, char *buf, size_t cap);

mt_status mt_train(const mt_model *m, mt_trainable *t, const mt_dataset *d, const mt_train_opts *o,
                   mt_train_summary *out);

#endif
