#include "kernels/cpu.h"

#include <stdatomic.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

static int detect_avx2(void) {
#if HAVE_X86
    /* The compiler runtime fills the CPU model in a constructor (and checks that the OS
     * saves YMM state); no __builtin_cpu_init, which would race when kernel threads get
     * here together. F16C from CPUID leaf 1 (ECX bit 29): clang cannot name it. */
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 29))) return 0;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static int detect_avx512(void) {
#if HAVE_X86
    /* Reported only when the OS also saves the ZMM and mask registers (XCR0). */
    return detect_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

static int detect_avx512_vnni(void) {
#if HAVE_X86
    return detect_avx512() && __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

/* Threads that get here together all store the same answer. */
static int cached(atomic_int *slot, int (*detect)(void)) {
    int v = atomic_load_explicit(slot, memory_order_relaxed);
    if (v < 0) {
        v = detect();
        atomic_store_explicit(slot, v, memory_order_relaxed);
    }
    return v;
}

int mt_cpu_avx2(void) {
    static atomic_int known = -1;
    return cached(&known, detect_avx2);
}

int mt_cpu_avx512(void) {
    static atomic_int known = -1;
    return cached(&known, detect_avx512);
}

int mt_cpu_avx512_vnni(void) {
    static atomic_int known = -1;
    return cached(&known, detect_avx512_vnni);
}
