/* Dequantisation speed per type and SIMD level (scalar / AVX2 / AVX-512), one thread.
 *
 *   dequant_bench [elements [min_ms]]
 *
 * Each type decodes `elements` values (default 65536: 256 KiB of f32, the size of a
 * slab that stays in L2, as in training's slab-by-slab dequantisation) from random
 * blocks with finite scales, repeated for at least min_ms (default 200) per point; the
 * best of five such runs is reported as ns per block, output GB/s (f32 written) and the
 * speedup over scalar. Pin it to one core, e.g. `taskset -c 1`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/dequant.h"

static uint64_t rng = 0x2545f4914f6cdd1du;

static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Small normal halves, as real scales are. */
static void put_scale(uint8_t *p) {
    uint16_t h = (uint16_t)(0x1c00 + rnd() % 0x1000) | (uint16_t)(rnd() & 0x8000);
    p[0] = (uint8_t)h, p[1] = (uint8_t)(h >> 8);
}

/* Seconds per call, best of five runs of at least min_s each. */
static double time_one(mt_dtype t, const uint8_t *src, float *dst, int64_t n, double min_s) {
    double best = 1e30;
    for (int run = 0; run < 5; run++) {
        long calls = 0;
        double t0 = now_s(), el;
        do {
            mt_dequantize(t, src, dst, n);
            calls++;
            el = now_s() - t0;
        } while (el < min_s);
        if (el / (double)calls < best) best = el / (double)calls;
    }
    return best;
}

int main(int argc, char **argv) {
    int64_t n = argc > 1 ? atoll(argv[1]) : 65536;
    double min_s = (argc > 2 ? atof(argv[2]) : 200.0) / 1000.0;
    n = (n + 255) / 256 * 256;
    if (n <= 0) {
        fprintf(stderr, "usage: dequant_bench [elements [min_ms]]\n");
        return 2;
    }
    static const struct {
        mt_dtype t;
        int s0, s1; /* f16 scale offsets in a block; s1 -1: none */
    } types[] = {
        {MT_Q4_0, 0, -1}, {MT_Q4_1, 0, 2}, {MT_Q5_0, 0, -1},   {MT_Q5_1, 0, 2},  {MT_Q8_0, 0, -1},
        {MT_Q4_K, 0, 2},  {MT_Q5_K, 0, 2}, {MT_Q6_K, 208, -1}, {MT_F16, -1, -1}, {MT_BF16, -1, -1},
    };
    int top = mt_dequant_set_simd(2);
    static const char *level_name[] = {"scalar", "avx2", "avx512"};
    printf("%lld elements per call, best of 5 x %.0f ms; SIMD levels up to %s\n", (long long)n,
           min_s * 1000, level_name[top]);
    printf("%-5s %-7s %10s %9s %8s\n", "type", "path", "ns/block", "GB/s out", "speedup");
    float *dst = malloc((size_t)n * sizeof *dst);
    if (!dst) return 1;
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        mt_dtype t = types[k].t;
        int64_t be = mt_dtype_block_elems(t);
        size_t bb = mt_dtype_block_bytes(t), bytes = mt_dtype_row_bytes(t, n);
        uint8_t *src = malloc(bytes);
        if (!src) return 1;
        for (size_t i = 0; i < bytes; i++) src[i] = (uint8_t)rnd();
        if (t == MT_F16)
            for (size_t i = 1; i < bytes; i += 2) src[i] &= 0x3f; /* finite, |x| < 2 */
        for (int64_t b = 0; b < n / be && types[k].s0 >= 0; b++) {
            put_scale(src + (size_t)b * bb + types[k].s0);
            if (types[k].s1 >= 0) put_scale(src + (size_t)b * bb + types[k].s1);
        }
        double scalar = 0;
        for (int level = 0; level <= top; level++) {
            mt_dequant_set_simd(level);
            double s = time_one(t, src, dst, n, min_s);
            if (level == 0) scalar = s;
            printf("%-5s %-7s %10.2f %9.2f %7.2fx\n", mt_dtype_name(t), level_name[level],
                   s * 1e9 / (double)(n / be), (double)n * 4 / s * 1e-9, scalar / s);
        }
        free(src);
    }
    mt_dequant_set_simd(2);
    free(dst);
    return 0;
}
