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
    /* The trained set in words ("lora rank 8 alpha 16 q_proj,v_proj", "full"); "" where a
     * file from before it was recorded has none. */
    char trainable[160];
} mt_ckpt_meta;

mt_status mt_checkpoint_save(const char *path, const mt_trainable *t, const mt_ckpt_meta *meta);
/* Checks that path is a checkpoint of this run (run key in meta) for t and fills meta,
 * restoring nothing. */
mt_status mt_checkpoint_check(const char *path, const mt_trainable *t, mt_ckpt_meta *meta);
/* Restores weights and moments into t; fails if the tensors or run key do not match. */
mt_status mt_checkpoint_load(const char *path, mt_trainable *t, mt_ckpt_meta *meta);

/* Reads path's metadata into meta, checking nothing against a run. */
mt_status mt_checkpoint_read_meta(const char *path, mt_ckpt_meta *meta);
/* Starts t from a checkpoint another job wrote: restores weights and moments after checking
 * that the file holds exactly t's tensors, each of t's size, and, where both are known, that
 * it trained the same set (trainable, as in mt_ckpt_meta; NULL or "": not compared). The run
 * key is not compared. On failure t is unchanged and the message names the file. */
mt_status mt_checkpoint_load_init(const char *path, mt_trainable *t, const char *trainable,
                                  mt_ckpt_meta *meta);

#endif
