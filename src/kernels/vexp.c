#include "kernels/vexp.h"

#include <math.h>

#include "kernels/cpu.h"
#include "kernels/qdot.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TGT __attribute__((target("avx2,fma")))
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

#if HAVE_X86
/* e^x = 2^k · e^r with k = round(x / ln 2) and |r| <= ln2 / 2, ln 2 split in two parts so
 * r is exact; e^r by the Cephes expf polynomial. min/max take x second so a NaN passes
 * through; below the smallest normal result the value is 0 (as expf(-inf)). */
TGT static inline __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.3365447504f);
    const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_set1_ps(88.3762626647949f), x);
    x = _mm256_max_ps(lo, x);
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    const __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

TGT static int exp_shift_avx2(float *y, const float *x, int n, float shift) {
    const __m256 s = _mm256_set1_ps(shift);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s)));
    return i;
}

TGT static int exp_store_sum_avx2(float *y, const float *x, int n, float shift, float *sum) {
    const __m256 s = _mm256_set1_ps(shift);
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
        _mm256_storeu_ps(y + i, v);
        acc = _mm256_add_ps(acc, v);
    }
    float l[8];
    _mm256_storeu_ps(l, acc);
    *sum = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
    return i;
}

TGT static int dot_avx2(const float *a, const float *b, int n, float *dot) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    float l[8];
    _mm256_storeu_ps(l, _mm256_add_ps(acc0, acc1));
    *dot = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
    return i;
}

/* Σ a·b·c (c may be NULL: Σ a·b) in double, four lanes at a time. */
TGT static int dot3_f64_avx2(const float *a, const float *b, const float *c, int n, double *out) {
    __m256d acc0 = _mm256_setzero_pd(), acc1 = acc0;
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256d lo = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + i)),
                                   _mm256_cvtps_pd(_mm_loadu_ps(b + i)));
        __m256d hi = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(a + i + 4)),
                                   _mm256_cvtps_pd(_mm_loadu_ps(b + i + 4)));
        if (c) {
            lo = _mm256_mul_pd(lo, _mm256_cvtps_pd(_mm_loadu_ps(c + i)));
            hi = _mm256_mul_pd(hi, _mm256_cvtps_pd(_mm_loadu_ps(c + i + 4)));
        }
        acc0 = _mm256_add_pd(acc0, lo);
        acc1 = _mm256_add_pd(acc1, hi);
    }
    double l[4];
    _mm256_storeu_pd(l, _mm256_add_pd(acc0, acc1));
    *out = (l[0] + l[1]) + (l[2] + l[3]);
    return i;
}

TGT static int exp_sum_avx2(const float *x, int n, float shift, double *sum) {
    const __m256 s = _mm256_set1_ps(shift);
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(a0, a1));
    *sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    return i;
}

TGT static int sigmoid_avx2(float *y, const float *x, int n) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp8(_mm256_sub_ps(zero, _mm256_loadu_ps(x + i)));
        _mm256_storeu_ps(y + i, _mm256_div_ps(one, _mm256_add_ps(one, e)));
    }
    return i;
}

TGT static int max_avx2(const float *x, int n, float *mx) {
    if (n < 8) return 0;
    __m256 m = _mm256_loadu_ps(x);
    int i = 8;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    float l[8];
    _mm256_storeu_ps(l, m);
    float best = l[0];
    for (int j = 1; j < 8; j++) best = l[j] > best ? l[j] : best;
    *mx = best;
    return i;
}

/* AVX-512: exp8's operations sixteen lanes at a time, so every element gets the bits the
 * AVX2 code gives it; after the 16-wide steps one 8-wide step, so the same elements are
 * left to the scalar tail; sums take the two halves in the order eight-wide steps
 * would. Twice the elements per instruction: the softmax of attention and the gates'
 * sigmoid were 3% of training. */
#define TGT512 __attribute__((target("avx512f,avx512dq,avx2,fma")))

TGT512 static inline __m512 exp16(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-87.3365447504f);
    const __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    x = _mm512_min_ps(_mm512_set1_ps(88.3762626647949f), x);
    x = _mm512_max_ps(lo, x);
    const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    const __m512i e =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mov_ps((__mmask16)~under, _mm512_mul_ps(p, _mm512_castsi512_ps(e)));
}

TGT512 static int exp_shift_avx512(float *y, const float *x, int n, float shift) {
    const __m512 s = _mm512_set1_ps(shift);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), s)));
    return i + exp_shift_avx2(y + i, x + i, n - i, shift);
}

TGT512 static int exp_store_sum_avx512(float *y, const float *x, int n, float shift, float *sum) {
    const __m512 s = _mm512_set1_ps(shift);
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), s));
        _mm512_storeu_ps(y + i, v);
        acc = _mm256_add_ps(acc, _mm512_castps512_ps256(v));
        acc = _mm256_add_ps(acc, _mm512_extractf32x8_ps(v, 1));
    }
    if (i + 8 <= n) {
        const __m256 v = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(shift)));
        _mm256_storeu_ps(y + i, v);
        acc = _mm256_add_ps(acc, v);
        i += 8;
    }
    float l[8];
    _mm256_storeu_ps(l, acc);
    *sum = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
    return i;
}

TGT512 static int sigmoid_avx512(float *y, const float *x, int n) {
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 e = exp16(_mm512_sub_ps(zero, _mm512_loadu_ps(x + i)));
        _mm512_storeu_ps(y + i, _mm512_div_ps(one, _mm512_add_ps(one, e)));
    }
    return i + sigmoid_avx2(y + i, x + i, n - i);
}
#endif

void mt_exp_shift(float *y, const float *x, int n, float shift) {
    int i = 0;
#if HAVE_X86
    if (mt_cpu_avx512())
        i = exp_shift_avx512(y, x, n, shift);
    else if (mt_qdot_avx2_available())
        i = exp_shift_avx2(y, x, n, shift);
#endif
    for (; i < n; i++) y[i] = expf(x[i] - shift);
}

float mt_exp_shift_store_sum(float *y, const float *x, int n, float shift) {
    float sum = 0.0f;
    int i = 0;
#if HAVE_X86
    if (mt_cpu_avx512())
        i = exp_store_sum_avx512(y, x, n, shift, &sum);
    else if (mt_qdot_avx2_available())
        i = exp_store_sum_avx2(y, x, n, shift, &sum);
#endif
    for (; i < n; i++) sum += y[i] = expf(x[i] - shift);
    return sum;
}

float mt_dot(const float *a, const float *b, int n) {
    float dot = 0.0f;
    int i = 0;
#if HAVE_X86
    if (mt_qdot_avx2_available()) i = dot_avx2(a, b, n, &dot);
#endif
    for (; i < n; i++) dot += a[i] * b[i];
    return dot;
}

double mt_dot3_f64(const float *a, const float *b, const float *c, int n) {
    double sum = 0.0;
    int i = 0;
#if HAVE_X86
    if (mt_qdot_avx2_available()) i = dot3_f64_avx2(a, b, c, n, &sum);
#endif
    for (; i < n; i++) sum += (double)a[i] * b[i] * (c ? c[i] : 1.0f);
    return sum;
}

double mt_exp_shift_sum(const float *x, int n, float shift) {
    double sum = 0.0;
    int i = 0;
#if HAVE_X86
    if (mt_qdot_avx2_available()) i = exp_sum_avx2(x, n, shift, &sum);
#endif
    for (; i < n; i++) sum += expf(x[i] - shift);
    return sum;
}

#if HAVE_X86
/* First i >= from with x[i] == v, or n. */
TGT static int find_avx2(const float *x, int n, float v) {
    const __m256 vv = _mm256_set1_ps(v);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const int m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), vv, _CMP_EQ_OQ));
        if (m) return i + __builtin_ctz((unsigned)m);
    }
    for (; i < n; i++)
        if (x[i] == v) return i;
    return n;
}
#endif

int mt_row_argmax(const float *x, int n) {
    int best = 0;
#if HAVE_X86
    /* The maximum, then its first position: two vector passes instead of a compare and a
     * branch per element (greedy decoding's argmax over the vocabulary was 8% of a
     * batched decoding step). A NaN anywhere sends the row to the scalar loop. */
    if (mt_qdot_avx2_available() && n >= 8) {
        const float mx = mt_row_max(x, n);
        const int i = isnan(mx) ? n : find_avx2(x, n, mx);
        if (i < n) return i;
    }
#endif
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

void mt_sigmoid(float *y, const float *x, int n) {
    int i = 0;
#if HAVE_X86
    if (mt_cpu_avx512())
        i = sigmoid_avx512(y, x, n);
    else if (mt_qdot_avx2_available())
        i = sigmoid_avx2(y, x, n);
#endif
    for (; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

float mt_row_max(const float *x, int n) {
    float mx = x[0];
    int i = 1;
#if HAVE_X86
    if (mt_qdot_avx2_available()) {
        const int done = max_avx2(x, n, &mx);
        if (done) i = done;
    }
#endif
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}
