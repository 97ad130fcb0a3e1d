/* MT_ELEMENTWISE marks a function of elementwise loops to be compiled for AVX-512, AVX2
 * and the baseline, one picked when the program loads (GCC's target_clones), with the
 * loops vectorised: -O2 alone leaves loops of unknown length scalar. Every operation
 * keeps its order and rounding (no reassociation, and no contraction of a * b + c into
 * an FMA), so each clone gives the bits the scalar code gives. Not for reductions:
 * those stay scalar here (and have their own kernels). */
#ifndef MT_KERNELS_ELEMENTWISE_H
#define MT_KERNELS_ELEMENTWISE_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MT_ELEMENTWISE                                                                             \
    __attribute__((target_clones("avx512f", "avx2", "default"),                                    \
                   optimize("tree-vectorize", "vect-cost-model=dynamic", "fp-contract=off")))
#else
#define MT_ELEMENTWISE
#endif

#endif
