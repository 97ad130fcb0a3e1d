/* AdamW, learning-rate schedules, global-norm gradient clipping and gradient-accumulation
 * helpers. Each matches its PyTorch / transformers counterpart so oracle tests can compare
 * step by step (see tests/oracle/test_train_math.py). */
#ifndef MT_TRAIN_OPTIM_H
#define MT_TRAIN_OPTIM_H

#include <stdint.h>

#include "core/status.h"
#include "train/param.h"

/* Hyper-parameters of torch.optim.AdamW (lr is passed per step because the schedule owns it). */
typedef struct {
    double beta1, beta2, eps, weight_decay;
} mt_adamw_params;

/* torch.optim.AdamW's defaults: betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2. */
mt_adamw_params mt_adamw_defaults(void);

/* The optimiser's own state is the step count; the moments live in each mt_param. To checkpoint,
 * save `step` and every param's m and v; to resume, restore them and set `step` back. */
typedef struct {
    mt_adamw_params hp;
    int64_t step; /* optimiser steps taken so far */
} mt_adamw;

/* Validates hp (0 <= beta < 1, eps >= 0, weight_decay >= 0, all finite) and sets step to 0. */
mt_status mt_adamw_init(mt_adamw *opt, const mt_adamw_params *hp);

/* One step of torch.optim.AdamW (non-amsgrad, non-maximize, single-tensor path): increments
 * opt->step, then per element w *= 1 - lr*wd (only if p->decay), m = lerp(m, g, 1-beta1),
 * v = beta2*v + (1-beta2)*g^2, w -= lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps). */
mt_status mt_adamw_step(mt_adamw *opt, mt_param *params, int n_params, float lr);

/* Zeroes m and v of every param (a fresh optimiser state). */
void mt_adamw_zero_moments(mt_param *params, int n_params);

typedef enum { MT_LR_CONSTANT, MT_LR_LINEAR, MT_LR_COSINE } mt_lr_kind;

/* Linear warmup from 0 over warmup_steps, then constant / linear / half-cosine decay reaching
 * min_ratio * base_lr at total_steps. With min_ratio 0 these are transformers'
 * get_{constant,linear,cosine}_schedule_with_warmup; cosine with min_ratio > 0 is
 * get_cosine_with_min_lr_schedule_with_warmup(min_lr_rate=min_ratio); linear with min_ratio > 0
 * blends the same way (factor*(1-min_ratio) + min_ratio). min_ratio does not affect constant. */
typedef struct {
    mt_lr_kind kind;
    double base_lr;
    int64_t warmup_steps;
    int64_t total_steps; /* unused by MT_LR_CONSTANT */
    double min_ratio;    /* in [0, 1] */
} mt_lr_schedule;

/* Rejects negative or non-finite values, min_ratio outside [0, 1] and, for the decaying kinds,
 * total_steps < warmup_steps. */
mt_status mt_lr_schedule_check(const mt_lr_schedule *s);

/* The multiplier of base_lr at `step` = optimiser steps already taken (opt->step before calling
 * mt_adamw_step), the value LambdaLR hands the optimizer.step() that follows. Like transformers
 * the cosine keeps following the cosine past total_steps; the trainer never goes there. */
double mt_lr_factor(const mt_lr_schedule *s, int64_t step);

/* base_lr * mt_lr_factor(s, step), rounded to float for mt_adamw_step. */
float mt_lr_at(const mt_lr_schedule *s, int64_t step);

/* The L2 norm of all gradients together, accumulated in double in a fixed order (the same
 * result for any thread count). */
double mt_grad_norm(const mt_param *params, int n_params);

/* torch.nn.utils.clip_grad_norm_: returns the total norm before clipping and multiplies every
 * gradient by min(1, max_norm / (norm + 1e-6)). Two deliberate differences: max_norm <= 0 only
 * measures (no clipping), and a non-finite norm leaves the gradients untouched so the caller can
 * stop on the returned NaN/inf instead of training on poisoned gradients. */
double mt_clip_grad_norm(mt_param *params, int n_params, double max_norm);

/* Sets every gradient to zero (start of an accumulation window). */
void mt_zero_grads(mt_param *params, int n_params);

/* Multiplies every gradient by `scale`. */
void mt_scale_grads(mt_param *params, int n_params, float scale);

/* Turns the sum of `accum_steps` micro-batch gradients into their mean (scale by 1/steps). */
mt_status mt_grad_accum_finish(mt_param *params, int n_params, int accum_steps);

#endif
