#include "kernels/attention.h"

#include <cblas.h>
#include <math.h>

#include "kernels/vexp.h"

/* First key row query i may see. */
static int first_key(const mt_attn_shape *s, int i) {
    const int pos = s->n_k - s->n_q + i;
    const int f = s->window > 0 ? pos - s->window + 1 : 0;
    return f > 0 ? f : 0;
}

/* p = softmax(mask(cap(scale·q·kᵀ))); rows beyond a query's causal range are zero. */
static void weights(const mt_attn_shape *s, const float *q, const float *k, float *p) {
    /* One query (decoding): a matrix-vector product. sgemm's packing of K for a single row
     * cost more than the arithmetic, for every sequence, head and layer of every step. */
    if (s->n_q == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, s->n_k, s->hd, s->scale, k, s->k_stride, q, 1,
                    0.0f, p, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->n_q, s->n_k, s->hd, s->scale, q,
                    s->q_stride, k, s->k_stride, 0.0f, p, s->n_k);
    for (int i = 0; i < s->n_q; i++) {
        float *row = p + (long)i * s->n_k;
        const int lo = first_key(s, i), hi = s->n_k - s->n_q + i;
        float mx = -INFINITY;
        for (int j = lo; j <= hi; j++) {
            if (s->cap > 0.0f) row[j] = s->cap * tanhf(row[j] / s->cap);
            mx = row[j] > mx ? row[j] : mx;
        }
        float sum = 0.0f;
        for (int j = 0; j < lo; j++) row[j] = 0.0f;
        mt_exp_shift(row + lo, row + lo, hi - lo + 1, mx);
        for (int j = lo; j <= hi; j++) sum += row[j];
        for (int j = hi + 1; j < s->n_k; j++) row[j] = 0.0f;
        const float inv = 1.0f / sum;
        for (int j = lo; j <= hi; j++) row[j] *= inv;
    }
}

void mt_attn_forward(const mt_attn_shape *s, const float *q, const float *k, const float *v,
                     float *out, float *p) {
    weights(s, q, k, p);
    if (s->n_q == 1)
        cblas_sgemv(CblasRowMajor, CblasTrans, s->n_k, s->hd, 1.0f, v, s->k_stride, p, 1, 0.0f, out,
                    1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->n_q, s->hd, s->n_k, 1.0f, p,
                    s->n_k, v, s->k_stride, 0.0f, out, s->o_stride);
}

void mt_attn_backward(const mt_attn_shape *s, const float *q, const float *k, const float *v,
                      const float *dout, float *dq, float *dk, float *dv, int dk_stride, float *p,
                      float *dp) {
    weights(s, q, k, p);
    /* dV += Pᵀ·dO ; dP = dO·Vᵀ */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->n_k, s->hd, s->n_q, 1.0f, p, s->n_k,
                dout, s->o_stride, 1.0f, dv, dk_stride);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->n_q, s->n_k, s->hd, 1.0f, dout,
                s->o_stride, v, s->k_stride, 0.0f, dp, s->n_k);
    /* dS = P ∘ (dP − rowsum(P ∘ dP)), through the softcap, then the scale. */
    for (int i = 0; i < s->n_q; i++) {
        float *pr = p + (long)i * s->n_k, *dr = dp + (long)i * s->n_k;
        const int lo = first_key(s, i), hi = s->n_k - s->n_q + i;
        float dot = 0.0f;
        for (int j = lo; j <= hi; j++) dot += pr[j] * dr[j];
        for (int j = 0; j < s->n_k; j++) {
            if (j < lo || j > hi) {
                dr[j] = 0.0f;
                continue;
            }
            float g = pr[j] * (dr[j] - dot);
            if (s->cap > 0.0f) {
                /* Recompute the capped logit: its tanh gives the cap's derivative. */
                const float *qi = q + (long)i * s->q_stride, *kj = k + (long)j * s->k_stride;
                float raw = 0.0f;
                for (int d = 0; d < s->hd; d++) raw += qi[d] * kj[d];
                const float th = tanhf(raw * s->scale / s->cap);
                g *= 1.0f - th * th;
            }
            dr[j] = g * s->scale;
        }
    }
    /* dQ = dS·K ; dK += dSᵀ·Q */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->n_q, s->hd, s->n_k, 1.0f, dp, s->n_k,
                k, s->k_stride, 0.0f, dq, s->q_stride);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->n_k, s->hd, s->n_q, 1.0f, dp, s->n_k, q,
                s->q_stride, 1.0f, dk, dk_stride);
}
