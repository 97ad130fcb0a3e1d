#include "kernels/half.h"

#include "kernels/cpu.h"
#include "kernels/dequant.h"

static void to_f16_scalar(uint16_t *dst, const float *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = mt_fp32_to_fp16(src[i]);
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define HALF_TGT __attribute__((target("avx2,f16c")))

HALF_TGT static void to_f16_f16c(uint16_t *dst, const float *src, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    to_f16_scalar(dst + i, src + i, n - i);
}
#endif

void mt_f32_to_f16_row(uint16_t *dst, const float *src, int n) {
#if defined(__x86_64__) || defined(__i386__)
    if (mt_cpu_avx2()) {
        to_f16_f16c(dst, src, n);
        return;
    }
#endif
    to_f16_scalar(dst, src, n);
}
