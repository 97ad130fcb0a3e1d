/* Quantised weight rows times many tokens for prompt passes: the products mt_matmul_q
 * computes, through kernels that hold sixteen rows per vector (kernels/qgemm_avx512.c).
 * Only for the types mt_qgemm_supported accepts, under the AVX-512 implementation of
 * qdot.h. A token's result never depends on the other tokens of the call, but differs in
 * rounding from mt_matmul_q's, so a caller uses one or the other for a kind of pass
 * (prompts here, decoding steps there), never by token count. */
#ifndef MT_KERNELS_QGEMM_H
#define MT_KERNELS_QGEMM_H

#include <stdint.h>

#include "core/status.h"
#include "kernels/dtype.h"

/* True when weight rows of type t have a kernel here with the current qdot
 * implementation (AVX-512 VNNI; Q4_0, Q4_1, Q5_0, Q8_0, Q4_K). */
int mt_qgemm_supported(mt_dtype t);

/* y[t * rows + r] = row r of w · token t's activations (xq: n_tok records from
 * mt_quantize_act, one after another) for r in [row0, row1); w as in mt_matmul_q.
 * MT_ERR_UNSUPPORTED when !mt_qgemm_supported(w->type), MT_ERR_NOMEM when the scratch
 * cannot be had. */
mt_status mt_qgemm_q(const mt_tensor *w, int n_tok, const void *xq, float *y, int64_t row0,
                     int64_t row1);

#endif
