#include "model/linear.h"

#include <stdlib.h>

#include "core/alloc.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

/* y += scale·(x_lora·Aᵀ)·Bᵀ; h (when not NULL) receives x_lora·Aᵀ. */
static mt_status lora_branch(const mt_linear *l, const float *x, const float *x_lora, int n,
                             float *y, float *h) {
    if (!l->a) return MT_OK;
    const int in = mt_linear_in(l), out = mt_linear_out(l), r = l->rank;
    float *hh = h ? h : mt_calloc((size_t)n * r, sizeof *hh);
    if (!hh) return MT_ERR_NOMEM;
    if (!h) {
        /* Generation: each sequence's branch computed alone, so its tokens do not depend on
         * which other sequences share the batch (a resumed run repeats an uninterrupted
         * one); the branch is small next to the base weight's product. */
        mt_gemm_nt_rowwise(n, r, in, 1.0f, x_lora ? x_lora : x, in, l->a, in, 0.0f, hh, r);
        mt_gemm_nt_rowwise(n, out, r, l->scale, hh, r, l->b, r, 1.0f, y, out);
        free(hh);
        return MT_OK;
    }
    mt_gemm(0, 1, n, r, in, 1.0f, x_lora ? x_lora : x, in, l->a, in, 0.0f, hh, r);
    mt_gemm(0, 1, n, out, r, l->scale, hh, r, l->b, r, 1.0f, y, out);
    return MT_OK;
}

mt_status mt_linear_forward(const mt_linear *l, const float *x, const float *x_lora, int n,
                            float *y, float *h) {
    mt_status s = mt_matmul(&l->w, x, n, y);
    return s ? s : lora_branch(l, x, x_lora, n, y, h);
}

mt_status mt_linear_forward_multi(int nl, const mt_linear *const *l, const float *x,
                                  const float *const *x_lora, int n, float *const *y,
                                  float *const *h) {
    if (nl > MT_MATMUL_MAX_WEIGHTS) return mt_fail(MT_ERR_ARG, "too many linears in one pass");
    const mt_tensor *w[MT_MATMUL_MAX_WEIGHTS] = {0};
    for (int i = 0; i < nl; i++) w[i] = &l[i]->w;
    mt_status s = mt_matmul_multi(nl, w, x, n, y);
    for (int i = 0; !s && i < nl; i++) s = lora_branch(l[i], x, x_lora[i], n, y[i], h[i]);
    return s;
}

mt_status mt_linear_backward(const mt_linear *l, const float *x, const float *x_lora,
                             const float *h, const float *dy, int n, float *dx, int accumulate,
                             float *gw, float *ga, float *gb, float *dh, uint64_t drop_key) {
    const int in = mt_linear_in(l), out = mt_linear_out(l), r = l->rank;
    mt_status s = MT_OK;
    if (dx && (s = mt_matmul_dx(&l->w, dy, n, dx, accumulate))) return s;
    if (gw) mt_gemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, gw, in);
    if (!l->a) return MT_OK;
    /* dh = scale·dy·B [n x r] */
    mt_gemm(0, 0, n, r, out, l->scale, dy, out, l->b, r, 0.0f, dh, r);
    if (gb) mt_gemm(1, 0, out, r, n, l->scale, dy, out, h, r, 1.0f, gb, r);
    if (ga) mt_gemm(1, 0, r, in, n, 1.0f, dh, r, x_lora ? x_lora : x, in, 1.0f, ga, in);
    if (!dx) return MT_OK;
    if (!x_lora) {
        mt_gemm(0, 0, n, in, r, 1.0f, dh, r, l->a, in, 1.0f, dx, in);
        return MT_OK;
    }
    /* Dropout on the branch input: the branch's dx passes through the same mask. */
    float *tmp = mt_calloc((size_t)n * in, sizeof *tmp);
    if (!tmp) return MT_ERR_NOMEM;
    mt_gemm(0, 0, n, in, r, 1.0f, dh, r, l->a, in, 0.0f, tmp, in);
    mt_dropout_backward_add(dx, tmp, (long)n * in, l->dropout, drop_key);
    free(tmp);
    return MT_OK;
}
