#include "kernels/ops.h"

#include <math.h>
#include <stddef.h>

#include "kernels/elementwise.h"
#include "kernels/vexp.h"

MT_ELEMENTWISE void mt_rmsnorm(float *out, const float *x, const float *w, int n, float eps) {
    const double ss = mt_dot3_f64(x, x, NULL, n);
    const float r = 1.0f / sqrtf((float)(ss / n) + eps);
    if (w)
        for (int i = 0; i < n; i++) out[i] = x[i] * r * w[i];
    else
        for (int i = 0; i < n; i++) out[i] = x[i] * r;
}

MT_ELEMENTWISE void mt_rmsnorm_add(float *y, const float *x, const float *w, int n, float eps) {
    const double ss = mt_dot3_f64(x, x, NULL, n);
    const float r = 1.0f / sqrtf((float)(ss / n) + eps);
    for (int i = 0; i < n; i++) y[i] += x[i] * r * w[i];
}

void mt_rope_freqs(float *inv_freq, int dim, float base) {
    /* Same formula as transformers: base^(-2i/dim) computed in float. */
    for (int i = 0; i < dim / 2; i++) inv_freq[i] = 1.0f / powf(base, (float)(2 * i) / (float)dim);
}

void mt_rope_angles(float *cs, int dim, float p, const float *inv_freq) {
    for (int i = 0; i < dim / 2; i++) {
        const float theta = p * inv_freq[i];
        cs[2 * i] = cosf(theta);
        cs[2 * i + 1] = sinf(theta);
    }
}

/* Two loops, one per pairing, so each vectorises; -s is s * -1, the same bits. */
MT_ELEMENTWISE void mt_rope_apply(float *x, int dim, const float *cs, int neox, int inverse) {
    const int half = dim / 2;
    const float sign = inverse ? -1.0f : 1.0f;
    if (neox)
        for (int i = 0; i < half; i++) {
            const float c = cs[2 * i], s = sign * cs[2 * i + 1];
            const float x0 = x[i], x1 = x[i + half];
            x[i] = x0 * c - x1 * s;
            x[i + half] = x0 * s + x1 * c;
        }
    else
        for (int i = 0; i < half; i++) {
            const float c = cs[2 * i], s = sign * cs[2 * i + 1];
            const float x0 = x[2 * i], x1 = x[2 * i + 1];
            x[2 * i] = x0 * c - x1 * s;
            x[2 * i + 1] = x0 * s + x1 * c;
        }
}

void mt_rope_rotate(float *x, int dim, float p, const float *inv_freq, int neox, int inverse) {
    float cs[512];
    mt_rope_angles(cs, dim, p, inv_freq);
    mt_rope_apply(x, dim, cs, neox, inverse);
}

void mt_rope(float *x, int dim, int pos, float base, float inv_scale, int neox) {
    float freqs[512];
    mt_rope_freqs(freqs, dim, base);
    mt_rope_rotate(x, dim, (float)pos * inv_scale, freqs, neox, 0);
}

/* The gates go through mt_sigmoid a chunk at a time: expf per element was the largest
 * elementwise cost of training. */
enum { GATE_CHUNK = 256 };

/* gate[i] *= factor(gate)[i] * up[i], the factor computed a chunk at a time. */
MT_ELEMENTWISE static void gate_mul(float *gate, const float *up, int n,
                                    void (*factor)(float *s, const float *g, int n)) {
    float sg[GATE_CHUNK];
    for (int i0 = 0; i0 < n; i0 += GATE_CHUNK) {
        const int len = n - i0 < GATE_CHUNK ? n - i0 : GATE_CHUNK;
        factor(sg, gate + i0, len);
        for (int i = 0; i < len; i++) gate[i0 + i] = gate[i0 + i] * sg[i] * up[i0 + i];
    }
}

void mt_silu_mul(float *gate, const float *up, int n) {
    gate_mul(gate, up, n, mt_sigmoid);
}

/* Through the vectorised sigmoid, not tanhf, whose expm1f was an eighth of Gemma's
 * prefill time. */
MT_ELEMENTWISE void mt_gelu_tanh_factor(float *s, const float *g, int n) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    for (int i = 0; i < n; i++) s[i] = 2.0f * k * (g[i] + 0.044715f * g[i] * g[i] * g[i]);
    mt_sigmoid(s, s, n);
}

void mt_gelu_tanh_mul(float *gate, const float *up, int n) {
    gate_mul(gate, up, n, mt_gelu_tanh_factor);
}

uint64_t mt_mix_key(uint64_t a, uint64_t b) {
    uint64_t z = a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int dropout_keep(uint64_t key, long i, float p) {
    const uint64_t h = mt_mix_key(key, (uint64_t)i);
    return (double)(h >> 11) * (1.0 / 9007199254740992.0) >= (double)p;
}

void mt_dropout(float *out, const float *x, long n, float p, uint64_t key) {
    const float s = 1.0f / (1.0f - p);
    for (long i = 0; i < n; i++) out[i] = dropout_keep(key, i, p) ? x[i] * s : 0.0f;
}

void mt_dropout_backward_add(float *dx, const float *g, long n, float p, uint64_t key) {
    const float s = 1.0f / (1.0f - p);
    for (long i = 0; i < n; i++)
        if (dropout_keep(key, i, p)) dx[i] += g[i] * s;
}

void mt_softmax(float *x, int n) {
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    const float inv = 1.0f / sum;
    for (int i = 0; i < n; i++) x[i] *= inv;
}

MT_ELEMENTWISE void mt_add(float *y, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += x[i];
}

MT_ELEMENTWISE void mt_scale(float *x, float s, int n) {
    for (int i = 0; i < n; i++) x[i] *= s;
}

void mt_softcap(float *x, float cap, int n) {
    for (int i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}
