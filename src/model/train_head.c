/* The output head of a training step with the vocabulary in slabs and an online softmax.
 *
 * Holding a chunk of rows' logits ([rows x vocab]) needs two passes over the output
 * matrix per chunk, one for the logits and one for dx, each dequantising the whole
 * matrix: for Gemma 3's 262144 x 640 head, 64 rows per chunk, that was two full
 * dequantisations per 64 rows. Here each task takes a fixed range of vocabulary slabs;
 * a slab is dequantised once, its logits computed for every row, and folded into the
 * row's running max m, sum of exponentials z and
 *     U = sum_v exp(l_v - m) * dcap_v * W_v       (dcap = 1 - tanh^2 through a soft cap)
 * rescaled whenever m grows. After the last slab the ranges' partial sums are merged,
 * and per row lse = m + log z, the log-prob is l_target - lse, and the gradient of
 * coef * log-prob with respect to the normed input is
 *     dxn = coef * (dcap_target * W_target - U / z).
 * The matrix is read once per step and no [rows x vocab] buffer exists. The slab ranges
 * (a few per thread) depend on the thread count alone, so a row gets the same bits
 * whichever other rows come with it, with or without gradients. */
#include "model/train_head.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/pool.h"
#include "kernels/dequant.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "kernels/ops_backward.h"
#include "kernels/sgemm.h"
#include "kernels/vexp.h"

/* Vocabulary rows per slab: their f32 copy and the rows' logits stay in L2. */
enum { SLAB = 256 };

/* One thread's running state for every row. */
typedef struct {
    float *m, *z, *u; /* u: rows x d, NULL without gradients */
} partial;

typedef struct {
    const mt_model *m;
    const float *xn;    /* rows x d, normed */
    const int32_t *tgt; /* per row (of the list) */
    int n, d, V, grad;
    float cap;
    float *lt, *dct, *wt; /* target logit, its dcap, dcap-free W_target row (grad) */
} job;

/* Folds one slab's logits lg (n x sv, overwritten by exp(l - m) * dcap) into p. */
static void fold_slab(const job *j, partial *p, const float *wf, float *lg, int v0, int sv) {
    const int d = j->d;
    for (int r = 0; r < j->n; r++) {
        float *row = lg + (size_t)r * sv;
        if (j->cap > 0.0f) mt_softcap(row, j->cap, sv);
        const float mx = mt_row_max(row, sv);
        if (mx > p->m[r]) {
            /* exp(-inf) = 0 for a row's first slab */
            const float scale = expf(p->m[r] - mx);
            p->z[r] *= scale;
            if (p->u)
                for (int i = 0; i < d; i++) p->u[(size_t)r * d + i] *= scale;
            p->m[r] = mx;
        }
        const int tg = j->tgt[r] - v0;
        if (tg >= 0 && tg < sv) {
            j->lt[r] = row[tg];
            if (j->grad) {
                const float th = j->cap > 0.0f ? row[tg] / j->cap : 0.0f;
                j->dct[r] = 1.0f - th * th;
                memcpy(j->wt + (size_t)r * d, wf + (size_t)tg * d, (size_t)d * sizeof(float));
            }
        }
        if (j->grad && j->cap > 0.0f)
            for (int v = 0; v < sv; v++) {
                const float th = row[v] / j->cap;
                row[v] = expf(row[v] - p->m[r]);
                p->z[r] += row[v];
                row[v] *= 1.0f - th * th;
            }
        else
            p->z[r] += mt_exp_shift_store_sum(row, row, sv, p->m[r]);
    }
    if (j->grad) mt_sgemm(0, 0, j->n, d, sv, 1.0f, lg, sv, wf, d, 1.0f, p->u, d);
}

/* Slabs [s0, s1) of the vocabulary into p. */
static int run_slabs(const job *j, partial *p, int s0, int s1) {
    const int d = j->d;
    float *wf = malloc((size_t)SLAB * d * sizeof *wf);
    float *lg = malloc((size_t)j->n * SLAB * sizeof *lg);
    const int ok = wf && lg;
    for (int s = s0; ok && s < s1; s++) {
        const int v0 = s * SLAB, sv = v0 + SLAB <= j->V ? SLAB : j->V - v0;
        for (int v = 0; v < sv; v++) mt_dequantize_row(&j->m->output, v0 + v, wf + (size_t)v * d);
        mt_sgemm(0, 1, j->n, sv, d, 1.0f, j->xn, d, wf, d, 0.0f, lg, sv);
        fold_slab(j, p, wf, lg, v0, sv);
    }
    free(wf);
    free(lg);
    return ok;
}

typedef struct {
    const job *j;
    partial *p;
    int n_slabs, n_ranges;
} range_job;

/* Range k takes slabs [k n_slabs / n_ranges, (k + 1) n_slabs / n_ranges) into partial k:
 * fixed by the range count, whichever thread runs it. */
static int range_task(void *ctx, int k, int worker) {
    (void)worker;
    const range_job *r = ctx;
    return !run_slabs(r->j, &r->p[k], (int)((long)k * r->n_slabs / r->n_ranges),
                      (int)((long)(k + 1) * r->n_slabs / r->n_ranges));
}

static void partial_free(partial *p) {
    free(p->m);
    free(p->z);
    free(p->u);
}

static int partial_alloc(partial *p, int n, int d, int grad) {
    p->m = malloc((size_t)n * sizeof *p->m);
    p->z = calloc((size_t)n, sizeof *p->z);
    p->u = grad ? calloc((size_t)n * d, sizeof *p->u) : NULL;
    if (!p->m || !p->z || (grad && !p->u)) return 0;
    for (int r = 0; r < n; r++) p->m[r] = -INFINITY;
    return 1;
}

/* Merges the ranges' partials into lse per row and, with gradients, U / z into *p[0].u. */
static void merge(partial *p, int n_ranges, int n, int d, float *lse) {
    for (int r = 0; r < n; r++) {
        float mx = -INFINITY;
        for (int k = 0; k < n_ranges; k++) mx = p[k].m[r] > mx ? p[k].m[r] : mx;
        float *u = p[0].u ? p[0].u + (size_t)r * d : NULL;
        double z = 0.0;
        for (int k = 0; k < n_ranges; k++) {
            const float w = expf(p[k].m[r] - mx);
            z += (double)p[k].z[r] * w;
            if (!u) continue;
            const float *uk = p[k].u + (size_t)r * d;
            for (int i = 0; i < d; i++) u[i] = k ? u[i] + w * uk[i] : u[i] * w;
        }
        lse[r] = mx + (float)log(z);
        for (int i = 0; u && i < d; i++) u[i] /= (float)z;
    }
}

mt_status mt_head_online(const mt_model *m, const float *xn, const int32_t *tgt, int n, float *lse,
                         float *lt, float *dxn, const float *coef) {
    const int d = m->cfg.n_embd, V = m->cfg.n_vocab, grad = dxn != NULL;
    const int n_slabs = (V + SLAB - 1) / SLAB;
    int n_ranges = mt_kernels_threads() * MT_POOL_TASKS_PER_THREAD;
    if (n_ranges > n_slabs) n_ranges = n_slabs;
    partial *p = calloc((size_t)n_ranges, sizeof *p);
    float *dct = grad ? malloc((size_t)n * sizeof *dct) : NULL;
    float *wt = grad ? calloc((size_t)n * d, sizeof *wt) : NULL;
    int ok = p && (!grad || (dct && wt));
    for (int k = 0; ok && k < n_ranges; k++) ok = partial_alloc(&p[k], n, d, grad);
    const job j = {.m = m,
                   .xn = xn,
                   .tgt = tgt,
                   .n = n,
                   .d = d,
                   .V = V,
                   .grad = grad,
                   .cap = m->cfg.final_softcap,
                   .lt = lt,
                   .dct = dct,
                   .wt = wt};
    if (ok) {
        range_job rj = {.j = &j, .p = p, .n_slabs = n_slabs, .n_ranges = n_ranges};
        ok = !mt_pool_run(n_ranges, range_task, &rj);
    }
    if (ok) {
        merge(p, n_ranges, n, d, lse);
        for (int r = 0; grad && r < n; r++) {
            const float c = coef[r];
            float *g = dxn + (size_t)r * d;
            const float *u = p[0].u + (size_t)r * d, *w = wt + (size_t)r * d;
            for (int i = 0; i < d; i++) g[i] = c * (dct[r] * w[i] - u[i]);
        }
    }
    for (int k = 0; p && k < n_ranges; k++) partial_free(&p[k]);
    free(p);
    free(dct);
    free(wt);
    return ok ? MT_OK : mt_fail(MT_ERR_NOMEM, "out of memory in the output head");
}
