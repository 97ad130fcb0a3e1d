#include "kernels/attention.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "kernels/dequant.h"
#include "kernels/elementwise.h"
#include "kernels/ops.h"
#include "kernels/sgemm.h"
#include "kernels/vexp.h"

/* First key row query i may see. */
static int first_key(const mt_attn_shape *s, int i) {
    const int pos = s->n_k - s->n_q + i;
    const int f = s->window > 0 ? pos - s->window + 1 : 0;
    return f > 0 ? f : 0;
}

/* Query rows go through the matrix products in blocks, each against only the keys some
 * row of the block can see: causal attention over a prompt then costs about 0.6 of the
 * full square (the masked triangle is skipped), and everything outside a block's key
 * range is zero in P and dP. A multiple of the GEMM's 12-row tile. */
enum { ROW_BLOCK = 96 };

/* Keys [*lo, *hi) cover what queries [i0, i1) see. */
static void key_range(const mt_attn_shape *s, int i0, int i1, int *lo, int *hi) {
    *lo = first_key(s, i0);
    *hi = s->n_k - s->n_q + i1;
}

/* p = softmax(mask(cap(scale·q·kᵀ))); rows beyond a query's causal range are zero. */
static void weights(const mt_attn_shape *s, const float *q, const float *k, float *p) {
    /* One query (decoding): a matrix-vector product. sgemm's packing of K for a single row
     * cost more than the arithmetic, for every sequence, head and layer of every step. */
    if (s->n_q == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, s->n_k, s->hd, s->scale, k, s->k_stride, q, 1,
                    0.0f, p, 1);
    else
        for (int i0 = 0; i0 < s->n_q; i0 += ROW_BLOCK) {
            const int i1 = i0 + ROW_BLOCK < s->n_q ? i0 + ROW_BLOCK : s->n_q;
            int lo, hi;
            key_range(s, i0, i1, &lo, &hi);
            mt_sgemm(0, 1, i1 - i0, hi - lo, s->hd, s->scale, q + (long)i0 * s->q_stride,
                     s->q_stride, k + (long)lo * s->k_stride, s->k_stride, 0.0f,
                     p + (long)i0 * s->n_k + lo, s->n_k);
        }
    for (int i = 0; i < s->n_q; i++) {
        float *row = p + (long)i * s->n_k;
        const int lo = first_key(s, i), hi = s->n_k - s->n_q + i, len = hi - lo + 1;
        if (s->cap > 0.0f)
            for (int j = lo; j <= hi; j++) row[j] = s->cap * tanhf(row[j] / s->cap);
        const float mx = mt_row_max(row + lo, len);
        memset(row, 0, (size_t)lo * sizeof *row);
        const float inv = 1.0f / mt_exp_shift_store_sum(row + lo, row + lo, len, mx);
        memset(row + hi + 1, 0, (size_t)(s->n_k - hi - 1) * sizeof *row);
        mt_scale(row + lo, inv, len);
    }
}

void mt_attn_forward(const mt_attn_shape *s, const float *q, const float *k, const float *v,
                     float *out, float *p) {
    weights(s, q, k, p);
    if (s->n_q == 1) {
        cblas_sgemv(CblasRowMajor, CblasTrans, s->n_k, s->hd, 1.0f, v, s->k_stride, p, 1, 0.0f, out,
                    1);
        return;
    }
    for (int i0 = 0; i0 < s->n_q; i0 += ROW_BLOCK) {
        const int i1 = i0 + ROW_BLOCK < s->n_q ? i0 + ROW_BLOCK : s->n_q;
        int lo, hi;
        key_range(s, i0, i1, &lo, &hi);
        mt_sgemm(0, 0, i1 - i0, s->hd, hi - lo, 1.0f, p + (long)i0 * s->n_k + lo, s->n_k,
                 v + (long)lo * s->k_stride, s->k_stride, 0.0f, out + (long)i0 * s->o_stride,
                 s->o_stride);
    }
}

/* dS = P ∘ (dP − dot)·scale over one row's visible keys (dr holds dP on entry). */
MT_ELEMENTWISE static void score_grad(float *dr, const float *pr, int n, float dot, float scale) {
    for (int j = 0; j < n; j++) dr[j] = pr[j] * (dr[j] - dot) * scale;
}

void mt_attn_backward(const mt_attn_shape *s, const float *q, const float *k, const float *v,
                      const float *dout, float *dq, float *dk, float *dv, int dk_stride, float *p,
                      float *dp) {
    weights(s, q, k, p);
    for (int i0 = 0; i0 < s->n_q; i0 += ROW_BLOCK) {
        const int i1 = i0 + ROW_BLOCK < s->n_q ? i0 + ROW_BLOCK : s->n_q, m = i1 - i0;
        int lo, hi;
        key_range(s, i0, i1, &lo, &hi);
        const float *pb = p + (long)i0 * s->n_k + lo, *dob = dout + (long)i0 * s->o_stride;
        float *dpb = dp + (long)i0 * s->n_k + lo;
        /* dV += Pᵀ·dO ; dP = dO·Vᵀ */
        mt_sgemm(1, 0, hi - lo, s->hd, m, 1.0f, pb, s->n_k, dob, s->o_stride, 1.0f,
                 dv + (long)lo * dk_stride, dk_stride);
        mt_sgemm(0, 1, m, hi - lo, s->hd, 1.0f, dob, s->o_stride, v + (long)lo * s->k_stride,
                 s->k_stride, 0.0f, dpb, s->n_k);
        /* dS = P ∘ (dP − rowsum(P ∘ dP)), through the softcap, then the scale; zero
         * outside each row's keys (and so outside the block's range, never computed). */
        for (int i = i0; i < i1; i++) {
            float *pr = p + (long)i * s->n_k, *dr = dp + (long)i * s->n_k;
            const int rlo = first_key(s, i), rhi = s->n_k - s->n_q + i;
            const float dot = mt_dot(pr + rlo, dr + rlo, rhi - rlo + 1);
            memset(dr, 0, (size_t)rlo * sizeof *dr);
            memset(dr + rhi + 1, 0, (size_t)(s->n_k - rhi - 1) * sizeof *dr);
            if (s->cap <= 0.0f) {
                score_grad(dr + rlo, pr + rlo, rhi - rlo + 1, dot, s->scale);
                continue;
            }
            for (int j = rlo; j <= rhi; j++) {
                float g = pr[j] * (dr[j] - dot);
                /* Recompute the capped logit: its tanh gives the cap's derivative. */
                const float *qi = q + (long)i * s->q_stride, *kj = k + (long)j * s->k_stride;
                float raw = 0.0f;
                for (int d = 0; d < s->hd; d++) raw += qi[d] * kj[d];
                const float th = tanhf(raw * s->scale / s->cap);
                g *= 1.0f - th * th;
                dr[j] = g * s->scale;
            }
        }
        /* dQ = dS·K ; dK += dSᵀ·Q */
        mt_sgemm(0, 0, m, s->hd, hi - lo, 1.0f, dpb, s->n_k, k + (long)lo * s->k_stride,
                 s->k_stride, 0.0f, dq + (long)i0 * s->q_stride, s->q_stride);
        mt_sgemm(1, 0, hi - lo, s->hd, m, 1.0f, dpb, s->n_k, q + (long)i0 * s->q_stride,
                 s->q_stride, 1.0f, dk + (long)lo * dk_stride, dk_stride);
    }
}

/* ---- decoding: one query per head, the heads of a KV group together ------------------ */

/* Scaled, softcapped, masked-free (every key from lo on is visible) scores of each query
 * head against keys [lo, n_k) into p (group rows of n), then softmax per row. */
static void softmax_rows(const mt_attn_shape *s, int group, int n, float *p) {
    for (int g = 0; g < group; g++) {
        float *row = p + (long)g * n;
        if (s->cap > 0.0f)
            for (int j = 0; j < n; j++) row[j] = s->cap * tanhf(row[j] / s->cap);
        const float inv = 1.0f / mt_exp_shift_store_sum(row, row, n, mt_row_max(row, n));
        mt_scale(row, inv, n);
    }
}

/* The decoding kernels read a cache of floats or of IEEE halves (f16); each is written
 * once over `const void *` rows and instantiated per element type by a constant f16
 * flag, so the f32 instances do exactly the arithmetic they did before halves existed. */
#define ATTN_INLINE static inline __attribute__((always_inline))

/* Element i of a cache row base, as a float. */
ATTN_INLINE float elem(const void *base, int f16, long i) {
    return f16 ? mt_fp16_to_fp32(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

ATTN_INLINE void decode_group_scalar_t(const mt_attn_shape *s, int group, const float *q,
                                       const void *k, const void *v, float *out, float *p,
                                       int f16) {
    const int hd = s->hd, lo = first_key(s, 0), n = s->n_k - lo;
    const long ks = s->k_stride;
    for (int j = 0; j < n; j++) {
        const long kj = (lo + j) * ks;
        for (int g = 0; g < group; g++) {
            float r = 0.0f;
            for (int i = 0; i < hd; i++) r += q[g * hd + i] * elem(k, f16, kj + i);
            p[(long)g * n + j] = s->scale * r;
        }
    }
    softmax_rows(s, group, n, p);
    for (int i = 0; i < group * hd; i++) out[i] = 0.0f;
    for (int j = 0; j < n; j++) {
        const long vj = (lo + j) * ks;
        for (int g = 0; g < group; g++)
            for (int i = 0; i < hd; i++)
                out[g * hd + i] += p[(long)g * n + j] * elem(v, f16, vj + i);
    }
}

static void decode_group_scalar(const mt_attn_shape *s, int group, const float *q, const void *k,
                                const void *v, float *out, float *p, int f16) {
    if (f16)
        decode_group_scalar_t(s, group, q, k, v, out, p, 1);
    else
        decode_group_scalar_t(s, group, q, k, v, out, p, 0);
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "kernels/qdot.h"
#define ATTN_TGT __attribute__((target("avx2,fma,f16c")))

ATTN_TGT static inline float hsum8(__m256 v) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* Eight elements of a cache row from element i, as floats. */
ATTN_TGT ATTN_INLINE __m256 load8(const void *base, int f16, long i) {
    return f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i)))
               : _mm256_loadu_ps((const float *)base + i);
}

/* hd a multiple of 8. Four keys at a time in both loops, so four independent FMA chains
 * hide the FMA latency (one chain per dot product or column strip was 3x slower). */
ATTN_TGT ATTN_INLINE void decode_group_avx2_t(const mt_attn_shape *s, int group, const float *q,
                                              const void *k, const void *v, float *out, float *p,
                                              int f16) {
    const int hd = s->hd, lo = first_key(s, 0), n = s->n_k - lo;
    const long ks = s->k_stride, r0 = (long)lo * ks;
    for (int g = 0; g < group; g++) {
        const float *qg = q + g * hd;
        float *pg = p + (long)g * n;
        int j = 0;
        for (; j + 4 <= n; j += 4) {
            const long a = r0 + j * ks;
            __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
            for (int i = 0; i < hd; i += 8) {
                const __m256 qv = _mm256_loadu_ps(qg + i);
                c0 = _mm256_fmadd_ps(qv, load8(k, f16, a + i), c0);
                c1 = _mm256_fmadd_ps(qv, load8(k, f16, a + ks + i), c1);
                c2 = _mm256_fmadd_ps(qv, load8(k, f16, a + 2 * ks + i), c2);
                c3 = _mm256_fmadd_ps(qv, load8(k, f16, a + 3 * ks + i), c3);
            }
            pg[j] = s->scale * hsum8(c0);
            pg[j + 1] = s->scale * hsum8(c1);
            pg[j + 2] = s->scale * hsum8(c2);
            pg[j + 3] = s->scale * hsum8(c3);
        }
        for (; j < n; j++) {
            __m256 c0 = _mm256_setzero_ps();
            for (int i = 0; i < hd; i += 8)
                c0 = _mm256_fmadd_ps(_mm256_loadu_ps(qg + i), load8(k, f16, r0 + j * ks + i), c0);
            pg[j] = s->scale * hsum8(c0);
        }
    }
    softmax_rows(s, group, n, p);
    for (int g = 0; g < group; g++) {
        const float *pg = p + (long)g * n;
        for (int c = 0; c < hd; c += 8) {
            const long vc = r0 + c;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            int j = 0;
            for (; j + 4 <= n; j += 4) {
                a0 = _mm256_fmadd_ps(_mm256_set1_ps(pg[j]), load8(v, f16, vc + j * ks), a0);
                a1 = _mm256_fmadd_ps(_mm256_set1_ps(pg[j + 1]), load8(v, f16, vc + (j + 1) * ks),
                                     a1);
                a2 = _mm256_fmadd_ps(_mm256_set1_ps(pg[j + 2]), load8(v, f16, vc + (j + 2) * ks),
                                     a2);
                a3 = _mm256_fmadd_ps(_mm256_set1_ps(pg[j + 3]), load8(v, f16, vc + (j + 3) * ks),
                                     a3);
            }
            for (; j < n; j++)
                a0 = _mm256_fmadd_ps(_mm256_set1_ps(pg[j]), load8(v, f16, vc + j * ks), a0);
            _mm256_storeu_ps(out + g * hd + c,
                             _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        }
    }
}

ATTN_TGT static void decode_group_avx2(const mt_attn_shape *s, int group, const float *q,
                                       const void *k, const void *v, float *out, float *p,
                                       int f16) {
    if (f16)
        decode_group_avx2_t(s, group, q, k, v, out, p, 1);
    else
        decode_group_avx2_t(s, group, q, k, v, out, p, 0);
}

#define ATTN512_TGT __attribute__((target("avx512f,fma")))

/* Sixteen elements of a cache row from element i, as floats. */
ATTN512_TGT ATTN_INLINE __m512 load16(const void *base, int f16, long i) {
    return f16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)base + i)))
               : _mm512_loadu_ps((const float *)base + i);
}

/* Keys ahead of the score loop whose K and V rows it asks the caches for: each task is
 * short (a sequence's keys for one head), and the hardware prefetchers ramp up too slowly
 * for it; without this the 16-sequence attention region took 0.82 s instead of 0.58.
 * V rows come in with them and stay cached for the value loop after the softmax. */
enum { PREFETCH_KEYS = 8 };

/* Prefetches the K and V slices of four rows from element a on. */
ATTN512_TGT ATTN_INLINE void prefetch_rows(const void *k, const void *v, int f16, long a, long ks,
                                           int hd) {
    const int es = f16 ? 2 : 4;
    for (int r = 0; r < 4; r++)
        for (int b = 0; b < hd * es; b += 64) {
            _mm_prefetch((const char *)k + (a + r * ks) * es + b, _MM_HINT_T0);
            _mm_prefetch((const char *)v + (a + r * ks) * es + b, _MM_HINT_T0);
        }
}

/* hd a multiple of 64, group <= 4. Scores: four keys at a time, each 16-lane piece of
 * them loaded (and widened) once for every query head of the group. Values: a strip of
 * 64 columns for every query head in sixteen accumulators, so each cached V row is read
 * once per strip for all of them (the AVX2 kernel reads it once per head and 8-column
 * strip). Each accumulator sees the same FMAs in the same order as one head alone. The
 * loops over heads and pieces are unrolled so the accumulator arrays live in registers:
 * -O2 kept them on the stack, and each FMA waited for the store of the one before. */
ATTN512_TGT ATTN_INLINE void decode_group_avx512_t(const mt_attn_shape *s, int group,
                                                   const float *q, const void *k, const void *v,
                                                   float *out, float *p, int f16) {
    const int hd = s->hd, lo = first_key(s, 0), n = s->n_k - lo;
    const long ks = s->k_stride, r0 = (long)lo * ks;
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        const long a = r0 + j * ks;
        if (j + PREFETCH_KEYS + 4 <= n) prefetch_rows(k, v, f16, a + PREFETCH_KEYS * ks, ks, hd);
        __m512 c[4][4];
#pragma GCC unroll 4
        for (int g = 0; g < group; g++)
#pragma GCC unroll 4
            for (int x = 0; x < 4; x++) c[g][x] = _mm512_setzero_ps();
        for (int i = 0; i < hd; i += 16) {
            const __m512 k0 = load16(k, f16, a + i), k1 = load16(k, f16, a + ks + i);
            const __m512 k2 = load16(k, f16, a + 2 * ks + i), k3 = load16(k, f16, a + 3 * ks + i);
#pragma GCC unroll 4
            for (int g = 0; g < group; g++) {
                const __m512 qv = _mm512_loadu_ps(q + g * hd + i);
                c[g][0] = _mm512_fmadd_ps(qv, k0, c[g][0]);
                c[g][1] = _mm512_fmadd_ps(qv, k1, c[g][1]);
                c[g][2] = _mm512_fmadd_ps(qv, k2, c[g][2]);
                c[g][3] = _mm512_fmadd_ps(qv, k3, c[g][3]);
            }
        }
#pragma GCC unroll 4
        for (int g = 0; g < group; g++)
#pragma GCC unroll 4
            for (int x = 0; x < 4; x++)
                p[(long)g * n + j + x] = s->scale * _mm512_reduce_add_ps(c[g][x]);
    }
    for (; j < n; j++) {
        __m512 c[4];
#pragma GCC unroll 4
        for (int g = 0; g < group; g++) c[g] = _mm512_setzero_ps();
        for (int i = 0; i < hd; i += 16) {
            const __m512 kv = load16(k, f16, r0 + j * ks + i);
#pragma GCC unroll 4
            for (int g = 0; g < group; g++)
                c[g] = _mm512_fmadd_ps(_mm512_loadu_ps(q + g * hd + i), kv, c[g]);
        }
#pragma GCC unroll 4
        for (int g = 0; g < group; g++) p[(long)g * n + j] = s->scale * _mm512_reduce_add_ps(c[g]);
    }
    softmax_rows(s, group, n, p);
    for (int c = 0; c < hd; c += 64) {
        __m512 acc[4][4];
#pragma GCC unroll 4
        for (int g = 0; g < group; g++)
#pragma GCC unroll 4
            for (int x = 0; x < 4; x++) acc[g][x] = _mm512_setzero_ps();
        for (int j = 0; j < n; j++) {
            const long vr = r0 + j * ks + c;
            const __m512 w0 = load16(v, f16, vr), w1 = load16(v, f16, vr + 16);
            const __m512 w2 = load16(v, f16, vr + 32), w3 = load16(v, f16, vr + 48);
#pragma GCC unroll 4
            for (int g = 0; g < group; g++) {
                const __m512 pj = _mm512_set1_ps(p[(long)g * n + j]);
                acc[g][0] = _mm512_fmadd_ps(pj, w0, acc[g][0]);
                acc[g][1] = _mm512_fmadd_ps(pj, w1, acc[g][1]);
                acc[g][2] = _mm512_fmadd_ps(pj, w2, acc[g][2]);
                acc[g][3] = _mm512_fmadd_ps(pj, w3, acc[g][3]);
            }
        }
#pragma GCC unroll 4
        for (int g = 0; g < group; g++)
#pragma GCC unroll 4
            for (int x = 0; x < 4; x++) _mm512_storeu_ps(out + g * hd + c + 16 * x, acc[g][x]);
    }
}

/* One instance per group size and element type, so the unrolled loops have constant
 * bounds. */
#define AVX512_INSTANCE(G, F16)                                                                    \
    case 2 * (G) + (F16):                                                                          \
        decode_group_avx512_t(s, G, q, k, v, out, p, F16);                                         \
        return;

ATTN512_TGT static void decode_group_avx512(const mt_attn_shape *s, int group, const float *q,
                                            const void *k, const void *v, float *out, float *p,
                                            int f16) {
    switch (2 * group + f16) {
        AVX512_INSTANCE(1, 0)
        AVX512_INSTANCE(1, 1)
        AVX512_INSTANCE(2, 0)
        AVX512_INSTANCE(2, 1)
        AVX512_INSTANCE(3, 0)
        AVX512_INSTANCE(3, 1)
        AVX512_INSTANCE(4, 0)
        AVX512_INSTANCE(4, 1)
    }
}

#endif

/* Picks the kernel for a cache of floats or (f16) halves. */
static void decode_group(const mt_attn_shape *s, int group, const float *q, const void *k,
                         const void *v, float *out, float *p, int f16) {
#if defined(__x86_64__) || defined(__i386__)
    /* The quantised dot products' implementation choice (qdot.h) picks this kernel's too,
     * so a test can run each. */
    const mt_qdot_impl impl = mt_qdot_get_impl();
    if (impl == MT_QDOT_AVX512 && s->hd % 64 == 0 && group <= 4) {
        decode_group_avx512(s, group, q, k, v, out, p, f16);
        return;
    }
    if (impl != MT_QDOT_SCALAR && s->hd % 8 == 0 && mt_qdot_avx2_available()) {
        decode_group_avx2(s, group, q, k, v, out, p, f16);
        return;
    }
#endif
    decode_group_scalar(s, group, q, k, v, out, p, f16);
}

void mt_attn_decode_group(const mt_attn_shape *s, int group, const float *q, const float *k,
                          const float *v, float *out, float *p) {
    decode_group(s, group, q, k, v, out, p, 0);
}

void mt_attn_decode_group_f16(const mt_attn_shape *s, int group, const float *q, const uint16_t *k,
                              const uint16_t *v, float *out, float *p) {
    decode_group(s, group, q, k, v, out, p, 1);
}
