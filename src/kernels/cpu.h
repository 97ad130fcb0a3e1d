/* What this CPU (and the OS, which must save the wider registers) can run, detected once
 * and cached: every SIMD kernel asks before it runs, many times, from many threads. */
#ifndef MT_KERNELS_CPU_H
#define MT_KERNELS_CPU_H

/* AVX2 with FMA and F16C. */
int mt_cpu_avx2(void);
/* AVX-512 F, BW, DQ and VL (and AVX2 as above). */
int mt_cpu_avx512(void);
/* mt_cpu_avx512() and AVX-512 VNNI. */
int mt_cpu_avx512_vnni(void);

#endif
