#include "kernels/ops_backward.h"

#include "kernels/ops.h"

#include <math.h>
#include <string.h>

#include "kernels/elementwise.h"
#include "kernels/vexp.h"

MT_ELEMENTWISE void mt_rmsnorm_backward(float *dx, float *dw, const float *x, const float *w,
                                        const float *dy, int n, float eps, int accumulate) {
    const double ss = mt_dot3_f64(x, x, NULL, n);
    const float r = 1.0f / sqrtf((float)(ss / n) + eps);
    const double dot = mt_dot3_f64(dy, x, w, n);
    /* d/dx of x·r: r·g − x·r³·(x·g)/n with g = w ∘ dy */
    const float k = (float)(dot * r * r * r / n);
    /* dw first: dx may alias dy. */
    if (dw)
        for (int i = 0; i < n; i++) dw[i] += dy[i] * x[i] * r;
    for (int i = 0; i < n; i++) {
        const float g = (w ? w[i] : 1.0f) * dy[i];
        const float v = r * g - x[i] * k;
        dx[i] = accumulate ? dx[i] + v : v;
    }
}

void mt_rope_backward(float *dx, int dim, int pos, float base, float inv_scale, int neox) {
    float freqs[512];
    mt_rope_freqs(freqs, dim, base);
    mt_rope_rotate(dx, dim, (float)pos * inv_scale, freqs, neox, 1);
}

MT_ELEMENTWISE void mt_silu_mul_backward(float *dgate, float *dup, const float *gate,
                                         const float *up, const float *dact, int n) {
    enum { CHUNK = 256 };
    float sgb[CHUNK];
    for (int i0 = 0; i0 < n; i0 += CHUNK) {
        const int len = n - i0 < CHUNK ? n - i0 : CHUNK;
        mt_sigmoid(sgb, gate + i0, len);
        for (int j = 0; j < len; j++) {
            const int i = i0 + j;
            const float g = gate[i], sg = sgb[j];
            const float silu = g * sg;
            const float da = dact[i], u = up[i];
            dup[i] = da * silu;
            dgate[i] = da * u * (sg * (1.0f + g * (1.0f - sg)));
        }
    }
}

MT_ELEMENTWISE void mt_gelu_tanh_mul_backward(float *dgate, float *dup, const float *gate,
                                              const float *up, const float *dact, int n) {
    /* As in the forward pass, 0.5 (1 + tanh u) = s, and 1 - tanh^2 u = 4 s (1 - s): the
     * vectorised sigmoid instead of tanhf, whose expm1f was 5% of training Gemma 3. */
    enum { CHUNK = 256 };
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    float sg[CHUNK];
    for (int i0 = 0; i0 < n; i0 += CHUNK) {
        const int len = n - i0 < CHUNK ? n - i0 : CHUNK;
        mt_gelu_tanh_factor(sg, gate + i0, len);
        for (int j = 0; j < len; j++) {
            const int i = i0 + j;
            const float g = gate[i], sj = sg[j];
            const float gelu = g * sj;
            const float dgelu =
                sj + 2.0f * g * sj * (1.0f - sj) * k * (1.0f + 3.0f * 0.044715f * g * g);
            dup[i] = dact[i] * gelu;
            dgate[i] = dact[i] * up[i] * dgelu;
        }
    }
}

float mt_logsumexp(const float *x, int n) {
    const float mx = mt_row_max(x, n);
    return mx + (float)log(mt_exp_shift_sum(x, n, mx));
}

MT_ELEMENTWISE void mt_xent_grad_row(float *x, int n, int target, float lse, float coef) {
    mt_exp_shift(x, x, n, lse);
    for (int i = 0; i < n; i++) x[i] *= -coef;
    x[target] += coef;
}
