/* Dot products of quantised weight rows with activations quantised on the fly, for
 * decoding: a weight row is never expanded to f32. Activations for a 32-element block
 * format (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) become int8 blocks of 32 with an f32 scale;
 * for a K-quant (Q4_K, Q5_K, Q6_K), int8 blocks of 256 with an f32 scale and the sums of
 * each 16 values. The block products are then exact integer sums, and only the scaling
 * and the accumulation over blocks are float. F32, F16 and BF16 rows take f32
 * activations as they are.
 *
 * Every kernel has a portable scalar version and an AVX2+FMA+F16C one; the quantised
 * types also have an AVX-512 (F, BW, DQ, VL) + VNNI one, which makes batches of tokens
 * much cheaper per token. The implementation is chosen at run time; implementations
 * differ only in the rounding of their float steps. Within one implementation a token's
 * result does not depend on how many tokens are computed together (mt_vec_dot,
 * mt_matvec_q and mt_matmul_q agree bit for bit), so batched decoding gives the same
 * numbers as decoding alone. */
#ifndef MT_KERNELS_QDOT_H
#define MT_KERNELS_QDOT_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "kernels/dtype.h"

typedef enum {
    MT_QDOT_AUTO = 0, /* the best the CPU runs: AVX512, else AVX2, else scalar */
    MT_QDOT_SCALAR = 1,
    MT_QDOT_AVX2 = 2,
    MT_QDOT_AVX512 = 3, /* AVX-512 VNNI for quantised rows, AVX2 for F32/F16/BF16 */
} mt_qdot_impl;

/* Chooses the implementation for every later call (not while kernels run on other
 * threads). MT_ERR_UNSUPPORTED for MT_QDOT_AVX2 or MT_QDOT_AVX512 on a CPU without
 * it, MT_ERR_ARG for an unknown value; the choice is unchanged on failure. */
mt_status mt_qdot_set_impl(mt_qdot_impl impl);
/* The implementation in use: MT_QDOT_SCALAR, MT_QDOT_AVX2 or MT_QDOT_AVX512, never
 * AUTO. */
mt_qdot_impl mt_qdot_get_impl(void);
/* True when this CPU can run the AVX2 kernels (detected once, then cached). */
int mt_qdot_avx2_available(void);
/* True when this CPU (and OS) can run the AVX-512 kernels: AVX-512 F, BW, DQ, VL and
 * VNNI, plus everything the AVX2 kernels need (detected once, then cached). */
int mt_qdot_avx512_available(void);
/* "scalar", "avx2", "avx512" ("auto" for MT_QDOT_AUTO), for logs and tools. */
const char *mt_qdot_impl_name(mt_qdot_impl impl);

/* True for the weight types these kernels handle (every type in dtype.h). */
int mt_qdot_supported(mt_dtype weight_type);

/* Bytes of quantised activations for n values dotted with rows of weight_type; 0 for
 * F32/F16/BF16, whose rows take the f32 activations. n must be a multiple of the weight
 * type's block size. */
size_t mt_act_bytes(mt_dtype weight_type, int64_t n);

/* True when activations quantised for weight type a also serve rows of type b (and
 * back): the 32-element formats share one layout, the K-quants another, and F32/F16/BF16
 * all take f32. Lets q/k/v or gate/up projections of one input share a quantisation. */
int mt_act_same(mt_dtype a, mt_dtype b);

/* Quantises n activations into out (mt_act_bytes(weight_type, n) bytes, 4-byte aligned:
 * any malloc'd pointer, or one offset from it by a multiple of mt_act_bytes). A no-op
 * for F32/F16/BF16. MT_ERR_ARG when n is not a positive multiple of the block size,
 * MT_ERR_UNSUPPORTED for a type mt_qdot_supported rejects. Non-finite activations give
 * an unspecified (but defined) result. */
mt_status mt_quantize_act(mt_dtype weight_type, const float *x, int64_t n, void *out);

/* One weight row of n elements (type t) dotted with one token's activations: x_q from
 * mt_quantize_act for quantised types, x_f32 for F32/F16/BF16 (the other may be NULL).
 * The row may sit at any address (GGUF blocks are not aligned). */
float mt_vec_dot(mt_dtype t, int64_t n, const void *w_row, const void *x_q, const float *x_f32);

/* y[r] = row r of w · x for rows r in [row0, row1); w is [rows x ne[0]] (ne[0] the row
 * length, all higher dimensions flattened into rows), y indexed by absolute row. The
 * caller splits the rows over threads. */
void mt_matvec_q(const mt_tensor *w, const void *x_q, const float *x_f32, float *y, int64_t row0,
                 int64_t row1);

/* The same for n_tok tokens at once, each weight block loaded once for all of them:
 * xq holds n_tok activations of mt_act_bytes(w->type, ne[0]) bytes one after another,
 * xf n_tok rows of ne[0] floats; y is n_tok rows of `rows` floats and
 * y[t * rows + r] is written for r in [row0, row1). For a few tokens (batched decoding
 * of up to ~16 sequences); prompts go through the matrix-matrix path. */
void mt_matmul_q(const mt_tensor *w, int n_tok, const void *xq, const float *xf, float *y,
                 int64_t row0, int64_t row1);

#endif
