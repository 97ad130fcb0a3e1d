/* Training checkpoints: every trained tensor with its AdamW moments, the optimiser
 * step and the run's identity, in one safetensors file written atomically, so a
 * crash at any moment leaves either the previous checkpoint or the new one. */
#ifndef MT_TRAIN_CHECKPOINT_H
#define MT_TRAIN_CHECKPOINT_H

#include <stdint.h>

#include "train/trainable.h"

typedef struct {
    int64_t step;     /* optimiser steps completed */
    int epoch, batch; /* the next batch of data to train */
    uint64_t seed;    /* data order and initialisation seed of the run */
    char run_key[64]; /* hash of the settings that must not change across a resume */
} mt_ckpt_meta;

mt_status mt_checkpoint_save(const char *path, const mt_trainable *t, const mt_ckpt_meta *meta);
/* Checks that path is a checkpoint of this run (run key in meta) for t and fills meta,
 * restoring nothing. */
mt_status mt_checkpoint_check(const char *path, const mt_trainable *t, mt_ckpt_meta *meta);
/* Restores weights and moments into t; fails if the tensors or run key do not match. */
mt_status mt_checkpoint_load(const char *path, mt_trainable *t, mt_ckpt_meta *meta);

#endif
