/* Element-wise and row-wise f32 kernels of the transformer forward pass. */
#ifndef MT_KERNELS_OPS_H
#define MT_KERNELS_OPS_H

#include <stdint.h>

/* out = x / rms(x) * w over n elements (out may alias x); w == NULL means unit weight. */
void mt_rmsnorm(float *out, const float *x, const float *w, int n, float eps);

/* y += x / rms(x) * w (x unchanged). */
void mt_rmsnorm_add(float *y, const float *x, const float *w, int n, float eps);

/* RoPE inverse frequencies base^(-2i/dim), i < dim/2, computed once per pass. */
void mt_rope_freqs(float *inv_freq, int dim, float base);
/* Rotates x by angle p·inv_freq[i] per pair (by the opposite angle when inverse). */
void mt_rope_rotate(float *x, int dim, float p, const float *inv_freq, int neox, int inverse);
/* The same in two halves, so the heads of one token share one set of angles: cs gets
 * cos and sin of p·inv_freq[i] (dim floats, interleaved), mt_rope_apply rotates by them. */
void mt_rope_angles(float *cs, int dim, float p, const float *inv_freq);
void mt_rope_apply(float *x, int dim, const float *cs, int neox, int inverse);

/* Rotates one head vector of `dim` elements in place for position `pos`.
 * neox: pairs (i, i + dim/2); otherwise adjacent pairs (2i, 2i+1).
 * inv_scale divides the position (linear RoPE scaling). */
void mt_rope(float *x, int dim, int pos, float base, float inv_scale, int neox);

/* x[i] = act(gate[i]) * up[i], in place in gate. */
void mt_silu_mul(float *gate, const float *up, int n);
void mt_gelu_tanh_mul(float *gate, const float *up, int n);
/* s[i] = 0.5 (1 + tanh u(g[i])) = sigmoid(2 u), u = sqrt(2/pi) (g + 0.044715 g^3): the
 * factor GELU-tanh multiplies g by, shared by the forward and backward passes. */
void mt_gelu_tanh_factor(float *s, const float *g, int n);

/* Inverted dropout with a counter-based mask: element i is kept when a hash of (key, i)
 * clears p, so the backward pass regenerates the same mask from the key alone.
 * out[i] = keep ? x[i] / (1 - p) : 0 */
void mt_dropout(float *out, const float *x, long n, float p, uint64_t key);
/* dx[i] += keep ? g[i] / (1 - p) : 0, with the mask mt_dropout(key) used. */
void mt_dropout_backward_add(float *dx, const float *g, long n, float p, uint64_t key);
/* Mixes two values into a key (for per-layer, per-module dropout streams). */
uint64_t mt_mix_key(uint64_t a, uint64_t b);

/* In-place softmax over n values. */
void mt_softmax(float *x, int n);

/* y[i] += x[i] */
void mt_add(float *y, const float *x, int n);
/* x[i] *= s */
void mt_scale(float *x, float s, int n);
/* x[i] = cap * tanh(x[i] / cap) */
void mt_softcap(float *x, float cap, int n);

#endif
