/* AdamW, written to follow torch.optim.AdamW's single-tensor path operation by operation (same
 * float32 rounding points), so meteor and PyTorch agree to a few ulps over many steps. */
#include "train/optim.h"

#include <math.h>
#include <string.h>

#include "core/pool.h"

/* Below this many elements a parallel loop costs more than it saves. */
#define PAR_MIN 65536

mt_adamw_params mt_adamw_defaults(void) {
    return (mt_adamw_params){.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 1e-2};
}

mt_status mt_adamw_init(mt_adamw *opt, const mt_adamw_params *hp) {
    if (!opt || !hp) return mt_fail(MT_ERR_ARG, "adamw: null argument");
    if (!(hp->beta1 >= 0 && hp->beta1 < 1) || !(hp->beta2 >= 0 && hp->beta2 < 1))
        return mt_fail(MT_ERR_ARG, "adamw: betas (%g, %g) must lie in [0, 1)", hp->beta1,
                       hp->beta2);
    if (!(hp->eps >= 0 && isfinite(hp->eps)))
        return mt_fail(MT_ERR_ARG, "adamw: eps %g must be finite and >= 0", hp->eps);
    if (!(hp->weight_decay >= 0 && isfinite(hp->weight_decay)))
        return mt_fail(MT_ERR_ARG, "adamw: weight_decay %g must be finite and >= 0",
                       hp->weight_decay);
    opt->hp = *hp;
    opt->step = 0;
    return MT_OK;
}

/* The per-step scalars, in float exactly where ATen casts its Python-float operands. */
typedef struct {
    float decay_mul; /* 1 - lr*wd */
    float w1;        /* lerp weight 1 - beta1 */
    float beta2, w2; /* beta2, 1 - beta2 */
    float bc2_sqrt;  /* sqrt(1 - beta2^t) */
    float eps;
    float neg_step; /* -lr / (1 - beta1^t) */
} adamw_consts;

static adamw_consts adamw_consts_at(const mt_adamw_params *hp, int64_t t, float lr) {
    const double bc1 = 1.0 - pow(hp->beta1, (double)t);
    const double bc2 = 1.0 - pow(hp->beta2, (double)t);
    return (adamw_consts){
        .decay_mul = (float)(1.0 - (double)lr * hp->weight_decay),
        .w1 = (float)(1.0 - hp->beta1),
        .beta2 = (float)hp->beta2,
        .w2 = (float)(1.0 - hp->beta2),
        .bc2_sqrt = (float)sqrt(bc2),
        .eps = (float)hp->eps,
        .neg_step = (float)(-((double)lr / bc1)),
    };
}

typedef struct {
    const adamw_consts *c;
    mt_param *p;
    int decay;
} adamw_job;

static void adamw_range(void *ctx, int64_t i0, int64_t i1) {
    const adamw_job *j = ctx;
    const adamw_consts *c = j->c;
    float *restrict w = j->p->w, *restrict m = j->p->m, *restrict v = j->p->v;
    const float *restrict g = j->p->g;
    const float dm = j->decay ? c->decay_mul : 1.0f;
    /* torch's lerp switches formula at weight 0.5 for accuracy; the branch is per step. */
    const int lerp_lo = fabsf(c->w1) < 0.5f;
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
        const float gi = g[i];
        w[i] = w[i] * dm;
        m[i] = lerp_lo ? m[i] + c->w1 * (gi - m[i]) : gi - (gi - m[i]) * (1.0f - c->w1);
        v[i] = v[i] * c->beta2 + c->w2 * gi * gi;
        const float denom = sqrtf(v[i]) / c->bc2_sqrt + c->eps;
        w[i] = w[i] + c->neg_step * (m[i] / denom);
    }
}

static void adamw_update(const adamw_consts *c, mt_param *p, int decay) {
    adamw_job j = {.c = c, .p = p, .decay = decay};
    if (p->n >= PAR_MIN)
        mt_pool_for(p->n, PAR_MIN / 4, adamw_range, &j);
    else
        adamw_range(&j, 0, p->n);
}

static mt_status check_params(const mt_param *params, int n_params) {
    if (n_params < 0 || (n_params > 0 && !params))
        return mt_fail(MT_ERR_ARG, "optimizer: bad parameter list (%d entries)", n_params);
    for (int i = 0; i < n_params; i++) {
        const mt_param *p = &params[i];
        if (p->n < 0 || (p->n > 0 && (!p->w || !p->g || !p->m || !p->v)))
            return mt_fail(MT_ERR_ARG, "optimizer: parameter %d (%s) lacks storage", i,
                           p->name ? p->name : "unnamed");
    }
    return MT_OK;
}

mt_status mt_adamw_step(mt_adamw *opt, mt_param *params, int n_params, float lr) {
    if (!opt) return mt_fail(MT_ERR_ARG, "adamw: null optimizer");
    if (!(lr >= 0 && isfinite(lr))) return mt_fail(MT_ERR_ARG, "adamw: bad learning rate %g", lr);
    mt_status st = check_params(params, n_params);
    if (st) return st;
    opt->step++;
    const adamw_consts c = adamw_consts_at(&opt->hp, opt->step, lr);
    const int any_decay = opt->hp.weight_decay != 0;
    for (int i = 0; i < n_params; i++) adamw_update(&c, &params[i], any_decay && params[i].decay);
    return MT_OK;
}

void mt_adamw_zero_moments(mt_param *params, int n_params) {
    for (int i = 0; i < n_params; i++) {
        if (params[i].n <= 0) continue;
        memset(params[i].m, 0, (size_t)params[i].n * sizeof(float));
        memset(params[i].v, 0, (size_t)params[i].n * sizeof(float));
    }
}
