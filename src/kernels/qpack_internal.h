/* The packed layout of qpack.h, shared by the packer (qpack.c) and the kernels
 * (qpack_avx512.c); not for use outside src/kernels/.
 *
 * Rows go in groups of sixteen (the last group padded with zero rows); a group is its
 * rows' blocks, one record per block in order, and starts on a 64-byte boundary. In a
 * record, "vector" k is 64 bytes whose dword r holds four consecutive codes of row r,
 * and "scales" are 16 values, one per row:
 *   Q4_0: 4 vectors of nibbles, d (16 f16)                                    288 bytes
 *   Q4_1: 4 vectors of nibbles, d, m (16 f16 each)                            320 bytes
 *   Q5_0: 4 vectors of nibbles, 8 masks of fifth bits (u64), d (16 f16)       352 bytes
 *   Q8_0: 8 vectors of codes + 128 (u8), d (16 f16)                           544 bytes
 *   Q4_K (a 256-value super-block): per 32-value sub-block 4 vectors of nibbles, then
 *         d, dmin (16 f16 each), the sub-blocks' scales and mins (8 x 16 u8)   2368 bytes
 *   F16, BF16 (one column): the sixteen rows' values                           32 bytes
 * A 32-value block's nibble vector j holds, in byte i of dword r, codes 4j + i (low
 * nibble) and 16 + 4j + i (high nibble) of row r: GGUF's Q4_0 byte order, which Q4_K's
 * sub-blocks are rearranged into. Mask k of Q5_0 has bit 4r + i set when code 4k + i of
 * row r has its fifth bit. */
#ifndef MT_KERNELS_QPACK_INTERNAL_H
#define MT_KERNELS_QPACK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/dtype.h"

enum { MT_QPACK_ROWS = 16, MT_QPACK_VEC = 64 };

/* Record offsets of Q4_K's super-block: d, dmin, scales, mins. */
enum { MT_QPACK_K_D = 2048, MT_QPACK_K_DMIN = 2080, MT_QPACK_K_SC = 2112, MT_QPACK_K_MN = 2240 };

/* Bytes of one record; 0 for a type without a packed layout. */
static inline size_t mt_qpack_record_bytes(mt_dtype t) {
    switch (t) {
    case MT_Q4_0:
        return 288;
    case MT_Q4_1:
        return 320;
    case MT_Q5_0:
        return 352;
    case MT_Q8_0:
        return 544;
    case MT_Q4_K:
        return 2368;
    case MT_F16:
    case MT_BF16:
        return 32;
    default:
        return 0;
    }
}

/* Bytes of one group of rows of n values. */
static inline size_t mt_qpack_group_bytes(mt_dtype t, int64_t n) {
    const size_t b = mt_qpack_record_bytes(t) * (size_t)(n / mt_dtype_block_elems(t));
    return (b + 63) / 64 * 64;
}

#endif
