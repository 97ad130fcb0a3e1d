/* Small AVX-512 helpers for the kernels compiled per function for AVX-512
 * (qdot_avx512.c); not for use outside src/kernels/. Callers' target
 * attributes include avx512f, so these inline into them. */
#ifndef MT_KERNELS_AVX512_UTIL_H
#define MT_KERNELS_AVX512_UTIL_H

#if defined(__x86_64__)

#include <immintrin.h>

/* A 4 x 4 transpose of dwords within each 128-bit lane: dword j of lane m of x[i] goes
 * to dword i of lane m of x[j]. */
static inline __attribute__((always_inline, target("avx512f"))) void
mt_transpose4_epi32(__m512i x[4]) {
    const __m512i t0 = _mm512_unpacklo_epi32(x[0], x[1]);
    const __m512i t1 = _mm512_unpackhi_epi32(x[0], x[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(x[2], x[3]);
    const __m512i t3 = _mm512_unpackhi_epi32(x[2], x[3]);
    x[0] = _mm512_unpacklo_epi64(t0, t2);
    x[1] = _mm512_unpackhi_epi64(t0, t2);
    x[2] = _mm512_unpacklo_epi64(t1, t3);
    x[3] = _mm512_unpackhi_epi64(t1, t3);
}

#endif

#endif
