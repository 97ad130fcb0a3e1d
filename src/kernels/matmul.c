#include "kernels/matmul.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

#include "kernels/dequant.h"
#include "kernels/qdot.h"
#include "kernels/qpack.h"
#include "kernels/sgemm.h"

static int n_threads = 0;

/* Rows per block when a prompt's tokens pass over a quantised weight in groups. */
enum { PROMPT_ROW_BLOCK = 256 };

void mt_kernels_set_threads(int n) {
    n_threads = n > 0 ? n : omp_get_num_procs();
    openblas_set_num_threads(1);
    omp_set_num_threads(n_threads);
}

int mt_kernels_threads(void) {
    if (!n_threads) mt_kernels_set_threads(0);
    return n_threads;
}

void mt_embedding_row(const mt_tensor *w, int64_t r, float *out) {
    mt_dequantize_row(w, r, out);
}

/* Few tokens: each weight row is dequantised once into L1 and dotted with every token. */
static mt_status matmul_rows(const mt_tensor *w, const float *x, int n, float *y) {
    const int64_t cols = w->ne[0], rows = w->ne[1];
    int failed = 0;
#pragma omp parallel num_threads(mt_kernels_threads())
    {
        float *buf = malloc((size_t)cols * sizeof *buf);
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!buf) continue;
            mt_dequantize_row(w, r, buf);
            for (int t = 0; t < n; t++)
                y[(int64_t)t * rows + r] = cblas_sdot((int)cols, buf, 1, x + (int64_t)t * cols, 1);
        }
        free(buf);
    }
    return failed ? mt_fail(MT_ERR_NOMEM, "out of memory in matmul") : MT_OK;
}

/* Many tokens: dequantise a slab of rows per thread and multiply it with BLAS. */
static mt_status matmul_slabs(const mt_tensor *w, const float *x, int n, float *y) {
    const int64_t cols = w->ne[0], rows = w->ne[1];
    /* About 1 MiB of f32 per slab, and a slab count that is a multiple of the thread count:
     * with 2 threads, 3 slabs (Gemma's 1024-row Q projection) left one thread idle a third
     * of the time. */
    const int nt = mt_kernels_threads();
    int64_t n_slabs = (rows * cols + 256 * 1024 - 1) / (256 * 1024);
    n_slabs = (n_slabs + nt - 1) / nt * nt;
    /* Slabs of whole 32-row strips (the GEMM's tile width), the larger ones first so the
     * dynamic schedule evens them out: SmolLM2's down projection as 4 slabs of 144 rows
     * gave every slab a half-empty strip. Fewer rows than that: slabs of single rows. */
    const int64_t unit = rows >= 32 * n_slabs ? 32 : 1, units = (rows + unit - 1) / unit;
    if (n_slabs > units) n_slabs = units;
    const int64_t base = units / n_slabs, extra = units % n_slabs;
    const int64_t slab = unit * (base + (extra > 0));
    int failed = 0;
#pragma omp parallel num_threads(nt)
    {
        float *buf = malloc((size_t)(slab * cols) * sizeof *buf);
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t s = 0; s < n_slabs; s++) {
            if (!buf) continue;
            const int64_t r0 = unit * (s * base + (s < extra ? s : extra));
            const int64_t len = unit * (base + (s < extra)), r1 = r0 + len < rows ? r0 + len : rows;
            for (int64_t r = r0; r < r1; r++) mt_dequantize_row(w, r, buf + (r - r0) * cols);
            mt_sgemm(0, 1, n, (int)(r1 - r0), (int)cols, 1.0f, x, (int)cols, buf, (int)cols, 0.0f,
                     y + r0, (int)rows);
        }
        free(buf);
    }
    return failed ? mt_fail(MT_ERR_NOMEM, "out of memory in matmul") : MT_OK;
}

/* Rows [g0, g0 + len) of weights laid end to end, clipped to the weight whose rows are
 * [lo, hi) there, as its own rows [*r0, *r1); 0 when they do not meet. */
static int clip_range(int64_t g0, int64_t len, int64_t lo, int64_t hi, int64_t *r0, int64_t *r1) {
    const int64_t g1 = g0 + len;
    *r0 = (g0 > lo ? g0 : lo) - lo;
    *r1 = (g1 < hi ? g1 : hi) - lo;
    return *r0 < *r1;
}

/* Quantised rows of the 32- and 256-element block formats, as opposed to float rows. */
static int is_block_quant(mt_dtype t) {
    return t != MT_F32 && t != MT_F16 && t != MT_BF16;
}

/* Rows [r0, r1) of w for the n tokens (xa: their activations quantised for w's type,
 * NULL for float rows; x: as floats): from w's packed copy where it has one, all tokens
 * at once; otherwise mt_matmul_q, in passes of up to `pass` tokens. Nonzero when the
 * packed kernel found no memory. */
static int run_rows(const mt_tensor *w, int n, const char *xa, const float *x, float *y, int64_t r0,
                    int64_t r1, int pass) {
    if (w->packed && mt_qpack_supported(w->type)) /* float rows take the f32 activations */
        return mt_qpacked_matmul(w, n, xa ? (const void *)xa : (const void *)x, y, r0, r1) != MT_OK;
    const int64_t cols = w->ne[0], rows = w->ne[1];
    const size_t ab = mt_act_bytes(w->type, cols);
    for (int t0 = 0; t0 < n; t0 += pass) {
        const int nn = n - t0 < pass ? n - t0 : pass;
        mt_matmul_q(w, nn, xa ? xa + ab * t0 : NULL, x + (size_t)t0 * cols, y + (size_t)t0 * rows,
                    r0, r1);
    }
    return 0;
}

/* Decoding a few tokens: weight rows are dotted in their stored form with activations
 * quantised once per token (or taken as f32 for float rows), never expanded to f32.
 * Several weights that read the same input (q/k/v, gate/up) go through together: one
 * quantisation per activation layout and one parallel pass over all their rows, which
 * in 16-slot decoding saved a parallel region and a quantisation per extra weight. */
static mt_status matmul_qdot(int nw, const mt_tensor *const *w, const float *x, int n,
                             float *const *y) {
    const int64_t cols = w[0]->ne[0];
    /* act[i]: the first weight whose activation layout weight i shares */
    int act[MT_MATMUL_MAX_WEIGHTS], own[MT_MATMUL_MAX_WEIGHTS], n_own = 0;
    size_t ab[MT_MATMUL_MAX_WEIGHTS], off[MT_MATMUL_MAX_WEIGHTS + 1];
    int64_t rows_before[MT_MATMUL_MAX_WEIGHTS + 1];
    off[0] = 0;
    rows_before[0] = 0;
    for (int i = 0; i < nw; i++) {
        act[i] = i;
        for (int j = 0; j < i; j++)
            if (act[j] == j && mt_act_same(w[j]->type, w[i]->type)) {
                act[i] = j;
                break;
            }
        ab[i] = mt_act_bytes(w[i]->type, cols);
        if (act[i] == i && ab[i]) own[n_own++] = i;
        off[i + 1] = off[i] + (act[i] == i ? ab[i] * (size_t)n : 0);
        rows_before[i + 1] = rows_before[i] + w[i]->ne[1];
    }
    char *xq = NULL;
    if (off[nw] && !(xq = malloc(off[nw]))) return mt_fail(MT_ERR_NOMEM, "out of memory in matmul");
    /* Each weight's own activation form: a group may mix float rows with quantised ones
     * (quantisers keep some tensors at higher precision), and a float row's kernel reads
     * f32 activations, never the group's 8-bit buffer. */
    const char *xa[MT_MATMUL_MAX_WEIGHTS];
    for (int i = 0; i < nw; i++) xa[i] = ab[i] ? xq + off[act[i]] : NULL;
    const int64_t total = rows_before[nw];
    /* Up to 16 tokens (decoding): one range of rows per thread, in multiples of 16 (the
     * packed groups; the decoding kernels rearrange the tokens' activations once per
     * call, so fewer, larger calls cost less). More tokens (a prompt) go through blocks
     * of 256 rows, which stay in L2 while every token passes over them. */
    const int nt = mt_kernels_threads();
    const int decode = n <= MT_QDOT_MAX_TOKENS;
    const int64_t per = ((total + nt - 1) / nt + 15) / 16 * 16;
    /* A prompt: the rows laid end to end in blocks of at most PROMPT_ROW_BLOCK, as many
     * per thread. Blocks per weight (576 rows as 256 + 256 + 64) had left one thread
     * twice the rows of the other on o and down. */
    const int64_t per_thread =
        (total + (int64_t)nt * PROMPT_ROW_BLOCK - 1) / ((int64_t)nt * PROMPT_ROW_BLOCK);
    const int64_t n_blocks = per_thread * nt;
    const int64_t block = ((total + n_blocks - 1) / n_blocks + 15) / 16 * 16;
    int failed = 0, nomem = 0;
    /* The tokens' activations are quantised inside the parallel region, split over the
     * threads: done serially before it, 16 tokens of batched decoding left the other
     * thread waiting a sixth of the time. */
#pragma omp parallel num_threads(nt)
    {
#pragma omp for schedule(static)
        for (int k = 0; k < n_own * n; k++) {
            const int i = own[k / n], t = k % n;
            if (mt_quantize_act(w[i]->type, x + (size_t)t * cols, cols,
                                xq + off[i] + ab[i] * (size_t)t)) {
#pragma omp atomic write
                failed = i + 1;
            }
        }
        if (!failed && decode) {
            /* Range p of the weights' rows laid end to end; a team smaller than asked
             * for (a nested region) takes the ranges of the missing threads too. */
            for (int p = omp_get_thread_num(); p < nt; p += omp_get_num_threads())
                for (int i = 0; i < nw; i++) {
                    int64_t r0, r1;
                    if (clip_range(p * per, per, rows_before[i], rows_before[i + 1], &r0, &r1) &&
                        run_rows(w[i], n, xa[i], x, y[i], r0, r1, n))
#pragma omp atomic write
                        nomem = 1;
                }
        } else if (!failed) {
#pragma omp for schedule(static)
            for (int64_t b = 0; b < n_blocks; b++)
                for (int i = 0; i < nw; i++) {
                    int64_t r0, r1;
                    if (clip_range(b * block, block, rows_before[i], rows_before[i + 1], &r0,
                                   &r1) &&
                        run_rows(w[i], n, xa[i], x, y[i], r0, r1, MT_QDOT_MAX_TOKENS))
#pragma omp atomic write
                        nomem = 1;
                }
        }
    }
    free(xq);
    if (nomem) return mt_fail(MT_ERR_NOMEM, "out of memory in matmul");
    return failed ? mt_fail(MT_ERR_ARG,
                            "matmul: activations of %lld values cannot be quantised "
                            "for %s rows",
                            (long long)cols, mt_dtype_name((int)w[failed - 1]->type))
                  : MT_OK;
}

/* Precise by default (training, tools, oracles); the generation verbs opt into the fast
 * decoding path. */
static int precise_mode = 1;

void mt_kernels_set_precise(int on) {
    precise_mode = on;
}

int mt_kernels_precise(void) {
    return precise_mode;
}

/* Whether mt_matmul takes the row-dot kernels of qdot.h (8-bit activations for
 * quantised rows, f32 for float rows) for these weights and tokens. */
static int takes_qdot(const mt_tensor *w, int n) {
    if (!mt_qdot_supported(w->type)) return 0;
    /* Outside precise mode every type takes them for any token count (as llama.cpp does
     * for quantised rows): a path chosen by count gave a short prompt alone other bits
     * than the same prompt admitted beside others, and a decoding step of 17+ sequences
     * other bits than one of 16. For quantised rows with AVX-512 VNNI it also costs
     * about a third of dequantising to f32 for the GEMM; with AVX2 their prompts go
     * about a fifth slower than the f32 path did (697 against 867 tok/s here), and F32
     * rows' prompts (F16 and BF16 rows have packed copies) likewise: the price of that
     * consistency. */
    if (!precise_mode) return 1;
    /* Precise mode: f32 activations, the GEMM for quantised and F32 rows, and for F16/BF16
     * rows above one decoding pass. */
    return !is_block_quant(w->type) && w->type != MT_F32 && n <= MT_QDOT_MAX_TOKENS;
}

mt_status mt_matmul_multi(int nw, const mt_tensor *const *w, const float *x, int n,
                          float *const *y) {
    int together = nw >= 1 && nw <= MT_MATMUL_MAX_WEIGHTS;
    for (int i = 0; together && i < nw; i++)
        together = takes_qdot(w[i], n) && w[i]->ne[0] == w[0]->ne[0];
    if (together) return matmul_qdot(nw, w, x, n, y);
    for (int i = 0; i < nw; i++) {
        const mt_status s = mt_matmul(w[i], x, n, y[i]);
        if (s) return s;
    }
    return MT_OK;
}

mt_status mt_matmul(const mt_tensor *w, const float *x, int n, float *y) {
    const int64_t cols = w->ne[0], rows = w->ne[1];
    if (takes_qdot(w, n)) return matmul_qdot(1, &w, x, n, &y);
    if (w->type == MT_F32 && n > 1) {
        /* One big sgemm split by rows across our threads. */
        const int nt = mt_kernels_threads();
        const int64_t per = (rows + nt - 1) / nt;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int t = 0; t < nt; t++) {
            const int64_t r0 = t * per;
            if (r0 >= rows) continue;
            const int64_t nr = r0 + per <= rows ? per : rows - r0;
            mt_sgemm(0, 1, n, (int)nr, (int)cols, 1.0f, x, (int)cols,
                     (const float *)w->data + r0 * cols, (int)cols, 0.0f, y + r0, (int)rows);
        }
        return MT_OK;
    }
    return n < 4 ? matmul_rows(w, x, n, y) : matmul_slabs(w, x, n, y);
}

void mt_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc) {
    const int nt = mt_kernels_threads();
    if (m < 16 * nt && n >= 64 * nt) {
        /* Few rows (LoRA's A-factor gradient has rank rows): split the columns instead,
         * in multiples of 32, so no thread is left with a sliver of rows. */
        const int per = ((n + nt - 1) / nt + 31) / 32 * 32;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int t = 0; t < nt; t++) {
            const int j0 = t * per;
            if (j0 >= n) continue;
            const int nc = j0 + per <= n ? per : n - j0;
            mt_sgemm(trans_a, trans_b, m, nc, k, alpha, a, lda,
                     trans_b ? b + (size_t)j0 * ldb : b + j0, ldb, beta, c + j0, ldc);
        }
        return;
    }
    const int per = (m + nt - 1) / nt;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < nt; t++) {
        const int r0 = t * per;
        if (r0 >= m) continue;
        const int nr = r0 + per <= m ? per : m - r0;
        /* Rows r0.. of op(A): offset along A's rows, or its columns when transposed. */
        const float *a0 = trans_a ? a + r0 : a + (size_t)r0 * lda;
        mt_sgemm(trans_a, trans_b, nr, n, k, alpha, a0, lda, b, ldb, beta, c + (size_t)r0 * ldc,
                 ldc);
    }
}

mt_status mt_matmul_dx(const mt_tensor *w, const float *dy, int n, float *dx, int accumulate) {
    const int64_t cols = w->ne[0], rows = w->ne[1];
    if (w->type == MT_F32) {
        mt_gemm(0, 0, n, (int)cols, (int)rows, 1.0f, dy, (int)rows, w->data, (int)cols,
                accumulate ? 1.0f : 0.0f, dx, (int)cols);
        return MT_OK;
    }
    /* Slab by slab, the threads dequantise the slab's rows together, then each multiplies
     * its own band of columns. (Giving each thread a band of tokens instead made every
     * thread dequantise and pack the whole weight.) Two slab buffers alternate, so the
     * barrier after a slab's dequantisation also proves the slab before it is no longer
     * being read. */
    int64_t slab = (256 * 1024) / cols;
    if (slab < 1) slab = 1;
    const int nt = mt_kernels_threads();
    /* Column bands in multiples of 32, the GEMM's tile width. */
    const int64_t band = ((cols + nt - 1) / nt + 31) / 32 * 32;
    float *buf[2] = {malloc((size_t)(slab * cols) * sizeof(float)),
                     malloc((size_t)(slab * cols) * sizeof(float))};
    const int failed = !buf[0] || !buf[1];
    if (!failed) {
#pragma omp parallel num_threads(nt)
        {
            const int t = omp_get_thread_num();
            const int64_t c0 = t * band, c1 = c0 + band < cols ? c0 + band : cols;
            for (int64_t r0 = 0, s = 0; r0 < rows; r0 += slab, s ^= 1) {
                const int64_t nr = r0 + slab <= rows ? slab : rows - r0;
                float *bs = buf[s];
#pragma omp for schedule(static)
                for (int64_t r = 0; r < nr; r++) mt_dequantize_row(w, r0 + r, bs + r * cols);
                if (c0 >= c1) continue;
                const float beta = (r0 == 0 && !accumulate) ? 0.0f : 1.0f;
                mt_sgemm(0, 0, n, (int)(c1 - c0), (int)nr, 1.0f, dy + r0, (int)rows, bs + c0,
                         (int)cols, beta, dx + c0, (int)cols);
            }
        }
    }
    free(buf[0]);
    free(buf[1]);
    return failed ? mt_fail(MT_ERR_NOMEM, "out of memory in matmul backward") : MT_OK;
}
