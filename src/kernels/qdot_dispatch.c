#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>

#include "core/log.h"
#include "kernels/cpu.h"
#include "kernels/qdot.h"
#include "kernels/qdot_internal.h"

/* -1 until first use, so AUTO is resolved lazily without a constructor; atomic because
 * that first use may come from several kernel threads at once (all store the same). */
static atomic_int current = -1;

int mt_qdot_avx2_available(void) {
    return mt_cpu_avx2();
}

/* The AVX2 kernels still serve float rows under the AVX-512 choice: mt_cpu_avx512
 * includes AVX2. */
int mt_qdot_avx512_available(void) {
    return mt_cpu_avx512_vnni();
}

const char *mt_qdot_impl_name(mt_qdot_impl impl) {
    switch (impl) {
    case MT_QDOT_AUTO:
        return "auto";
    case MT_QDOT_SCALAR:
        return "scalar";
    case MT_QDOT_AVX2:
        return "avx2";
    case MT_QDOT_AVX512:
        return "avx512";
    }
    return "unknown";
}

mt_status mt_qdot_set_impl(mt_qdot_impl impl) {
    switch (impl) {
    case MT_QDOT_AUTO:
        atomic_store_explicit(&current,
                              mt_qdot_avx512_available() ? MT_QDOT_AVX512
                              : mt_qdot_avx2_available() ? MT_QDOT_AVX2
                                                         : MT_QDOT_SCALAR,
                              memory_order_relaxed);
        return MT_OK;
    case MT_QDOT_AVX512:
        if (!mt_qdot_avx512_available())
            return mt_fail(MT_ERR_UNSUPPORTED, "this CPU lacks AVX-512 F/BW/DQ/VL/VNNI");
        atomic_store_explicit(&current, MT_QDOT_AVX512, memory_order_relaxed);
        return MT_OK;
    case MT_QDOT_SCALAR:
        atomic_store_explicit(&current, MT_QDOT_SCALAR, memory_order_relaxed);
        return MT_OK;
    case MT_QDOT_AVX2:
        if (!mt_qdot_avx2_available())
            return mt_fail(MT_ERR_UNSUPPORTED, "this CPU lacks AVX2/FMA/F16C");
        atomic_store_explicit(&current, MT_QDOT_AVX2, memory_order_relaxed);
        return MT_OK;
    }
    return mt_fail(MT_ERR_ARG, "unknown quantised-dot implementation %d", (int)impl);
}

/* METEOR_QDOT=scalar|avx2|avx512 picks the first implementation (to compare kernels, or
 * to run what a CPU without AVX-512 runs); anything else, or one this CPU cannot run,
 * leaves the choice to AUTO with a warning. */
static mt_qdot_impl impl_from_env(void) {
    const char *env = getenv("METEOR_QDOT");
    if (!env || !*env) return MT_QDOT_AUTO;
    const mt_qdot_impl named = !strcmp(env, "scalar")   ? MT_QDOT_SCALAR
                               : !strcmp(env, "avx2")   ? MT_QDOT_AVX2
                               : !strcmp(env, "avx512") ? MT_QDOT_AVX512
                                                        : MT_QDOT_AUTO;
    if (named == MT_QDOT_AUTO || (named == MT_QDOT_AVX2 && !mt_qdot_avx2_available()) ||
        (named == MT_QDOT_AVX512 && !mt_qdot_avx512_available())) {
        MT_WARN("METEOR_QDOT=%s: not scalar, avx2 or avx512 this CPU runs; using the best "
                "it runs",
                env);
        return MT_QDOT_AUTO;
    }
    return named;
}

mt_qdot_impl mt_qdot_get_impl(void) {
    int c = atomic_load_explicit(&current, memory_order_relaxed);
    if (c < 0) {
        mt_qdot_set_impl(impl_from_env());
        c = atomic_load_explicit(&current, memory_order_relaxed);
    }
    return (mt_qdot_impl)c;
}

/* The AVX-512 kernel for t when that implementation is in use and has one. */
static mt_qdot_rows_fn rows_fn(mt_qdot_impl impl, mt_dtype t) {
    return impl == MT_QDOT_AVX512 ? mt_qdot_avx512_fn(t) : NULL;
}

/* Otherwise a one-row kernel: AVX-512 falls back to AVX2 for the float types. */
static mt_qdot_row_fn row_fn(mt_qdot_impl impl, mt_dtype t) {
    if (impl == MT_QDOT_AVX2 || impl == MT_QDOT_AVX512) {
        mt_qdot_row_fn f = mt_qdot_avx2_fn(t);
        if (f) return f;
    }
    return mt_qdot_scalar_fn(t);
}

float mt_vec_dot(mt_dtype t, int64_t n, const void *w_row, const void *x_q, const float *x_f32) {
    const mt_qdot_impl impl = mt_qdot_get_impl();
    float y = 0.0f;
    mt_qdot_rows_fn fr = rows_fn(impl, t);
    if (fr) {
        fr(n, w_row, 0, 1, 1, x_q, 0, &y, 0);
        return y;
    }
    mt_qdot_row_fn f = row_fn(impl, t);
    if (f) f(n, w_row, 1, x_q, 0, x_f32, 0, &y, 0);
    return y;
}

void mt_matmul_q(const mt_tensor *w, int n_tok, const void *xq, const float *xf, float *y,
                 int64_t row0, int64_t row1) {
    if (n_tok <= 0 || row1 <= row0) return;
    const mt_qdot_impl impl = mt_qdot_get_impl();
    const int64_t n = w->ne[0], rows = mt_tensor_nelements(w) / n;
    const size_t row_bytes = mt_dtype_row_bytes(w->type, n);
    const size_t act = mt_act_bytes(w->type, n);
    const uint8_t *base = w->data;
    mt_qdot_rows_fn fr = rows_fn(impl, w->type);
    if (fr) {
        fr(n, base + (size_t)row0 * row_bytes, row_bytes, row1 - row0, n_tok, xq, act, y + row0,
           rows);
        return;
    }
    mt_qdot_row_fn f = row_fn(impl, w->type);
    if (!f) return;
    for (int64_t r = row0; r < row1; r++)
        f(n, base + (size_t)r * row_bytes, n_tok, xq, act, xf, n, y + r, rows);
}

void mt_matvec_q(const mt_tensor *w, const void *x_q, const float *x_f32, float *y, int64_t row0,
                 int64_t row1) {
    mt_matmul_q(w, 1, x_q, x_f32, y, row0, row1);
}
