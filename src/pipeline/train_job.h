/* One fine-tuning job as `meteor train` and the pipeline phases run it: settings in plain
 * fields, the dataset read from a JSONL file, LoRA (or full) training with the trainer,
 * then the result written where other tools load it (a PEFT adapter folder, or for full
 * fine-tuning an F32 GGUF). */
#ifndef MT_PIPELINE_TRAIN_JOB_H
#define MT_PIPELINE_TRAIN_JOB_H

#include <stdint.h>

#include "core/report.h"
#include "core/status.h"
#include "infer/session.h"
#include "train/trainer.h"

typedef struct {
    const char *data;   /* JSONL file */
    const char *out;    /* folder for checkpoint.safetensors and metrics.jsonl */
    const char *result; /* adapter folder / model file; NULL: OUT/adapter or OUT/model.gguf */
    const char *loss, *targets, *schedule;
    const char *recompute_layers; /* "0-5,12,20-" etc.; NULL: none (unless recompute) */
    int full, rank, batch, accum, epochs, max_len, save_every, warmup, recompute, train_prompt;
    int resume, max_batch_tokens, max_steps;
    /* Where training starts (at most one; NULL: a fresh LoRA, or the model's weights):
     * init_checkpoint continues an earlier job's checkpoint.safetensors (same model and
     * trainable set) with its weights, AdamW moments and step, as mt_train_opts describes;
     * init_adapter starts the LoRA from a PEFT folder with zero moments at step 0 (its rank,
     * alpha and targets must be the job's; LoRA only). Either one is part of the resume key. */
    const char *init_checkpoint, *init_adapter;
    const mt_reporter *rep; /* progress and notes (NULL: silent) */
    float alpha, dropout, lr, min_lr_ratio, wd, clip, margin, beta, sft_weight;
    uint64_t seed;
} mt_train_job;

/* Defaults of `meteor train` (LoRA rank 8 on every projection, SFT, cosine, ...). lr < 0
 * means 2e-4 for LoRA and 2e-5 for full fine-tuning. */
void mt_train_job_defaults(mt_train_job *j);

/* Trains the session's model on j->data. The session keeps its model unchanged
 * afterwards (a LoRA adapter is detached before returning). model_path names the model in
 * the resume key. */
mt_status mt_train_job_run(mt_session *s, const char *model_path, const mt_train_job *j,
                           mt_train_summary *sum);

#endif
