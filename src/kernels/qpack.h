/* Quantised weights packed for the AVX-512 VNNI kernels: sixteen rows per vector.
 *
 * The decoding kernels of qdot.h read rows in their GGUF layout, giving each int32 lane
 * a block of one row; every row then ends in a horizontal sum per token, and a row of
 * 576 values in a wide unit plus a two-block tail: about a third of the work. A packed
 * weight holds its rows in groups of sixteen, lane r of every vector belonging to row r
 * of the group, so one vpdpbusd multiplies four values of sixteen rows with four
 * activations of one token and there is neither sum nor tail. The copy takes about the
 * bytes of the original, is made once when a model is opened for fast generation
 * (model/pack.h), and serves every pass: a prompt, one sequence's decoding step, sixteen
 * sequences'. A token's result therefore has the same bits whatever the pass holds.
 *
 * For Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, F16 and BF16 rows, with the AVX-512 implementation
 * of qdot.h. Float rows go sixteen per vector the same way: a column of sixteen values
 * times a token's f32 activation, one FMA, in four partial sums per row.
 * The results differ in rounding from mt_matmul_q's (the float steps run in another
 * order), so a weight either has a packed copy for all its passes or none. */
#ifndef MT_KERNELS_QPACK_H
#define MT_KERNELS_QPACK_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "kernels/dtype.h"

/* True when rows of type t can be packed and multiplied here with the current qdot
 * implementation (AVX-512 VNNI; Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, F16, BF16). */
int mt_qpack_supported(mt_dtype t);

/* Bytes of w's packed copy (a multiple of 64); 0 when its type is not supported. */
size_t mt_qpack_bytes(const mt_tensor *w);

/* Writes w's packed copy to dst (mt_qpack_bytes(w) bytes, 64-byte aligned), splitting
 * the work over the kernel threads. The caller then points w->packed at it.
 * MT_ERR_UNSUPPORTED for a type mt_qpack_supported rejects. */
mt_status mt_qpack(const mt_tensor *w, void *dst);

/* y[t * rows + r] = row r of w · token t's activations (xq: n_tok records from
 * mt_quantize_act, one after another; for F16/BF16 rows n_tok rows of ne[0] floats) for
 * r in [row0, row1), from w->packed; any n_tok.
 * MT_ERR_UNSUPPORTED without a packed copy or a supported type, MT_ERR_NOMEM when the
 * per-call activation sums (Q4_K) cannot be had. */
mt_status mt_qpacked_matmul(const mt_tensor *w, int n_tok, const void *xq, float *y, int64_t row0,
                            int64_t row1);

#endif
