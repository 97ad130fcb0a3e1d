/* Learning-rate schedules with the step semantics of transformers' LambdaLR schedules. */
#include "train/optim.h"

#include <math.h>

mt_status mt_lr_schedule_check(const mt_lr_schedule *s) {
    if (!s) return mt_fail(MT_ERR_ARG, "lr schedule: null");
    if (s->kind != MT_LR_CONSTANT && s->kind != MT_LR_LINEAR && s->kind != MT_LR_COSINE)
        return mt_fail(MT_ERR_ARG, "lr schedule: unknown kind %d", (int)s->kind);
    if (!(s->base_lr >= 0 && isfinite(s->base_lr)))
        return mt_fail(MT_ERR_ARG, "lr schedule: bad learning rate %g", s->base_lr);
    if (s->warmup_steps < 0) return mt_fail(MT_ERR_ARG, "lr schedule: negative warmup");
    if (!(s->min_ratio >= 0 && s->min_ratio <= 1))
        return mt_fail(MT_ERR_ARG, "lr schedule: min ratio %g outside [0, 1]", s->min_ratio);
    if (s->kind != MT_LR_CONSTANT && s->total_steps < s->warmup_steps)
        return mt_fail(MT_ERR_ARG, "lr schedule: %lld total steps < %lld warmup steps",
                       (long long)s->total_steps, (long long)s->warmup_steps);
    return MT_OK;
}

static double max1(int64_t x) {
    return x > 1 ? (double)x : 1.0;
}

double mt_lr_factor(const mt_lr_schedule *s, int64_t step) {
    if (step < s->warmup_steps) return (double)step / max1(s->warmup_steps);
    const double decay_steps = max1(s->total_steps - s->warmup_steps);
    const double r = s->min_ratio;
    switch (s->kind) {
    case MT_LR_CONSTANT:
        return 1.0;
    case MT_LR_LINEAR: {
        const double f = fmax(0.0, (double)(s->total_steps - step) / decay_steps);
        return r == 0 ? f : f * (1 - r) + r;
    }
    case MT_LR_COSINE: {
        const double progress = (double)(step - s->warmup_steps) / decay_steps;
        /* transformers: num_cycles = 0.5, i.e. cos(pi * 0.5 * 2 * progress). */
        const double f = 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * progress));
        return fmax(0.0, f * (1 - r) + r);
    }
    }
    return 0.0;
}

float mt_lr_at(const mt_lr_schedule *s, int64_t step) {
    return (float)(s->base_lr * mt_lr_factor(s, step));
}
