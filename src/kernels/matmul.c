#include "kernels/matmul.h"
#include "kernels/vexp.h"

#include <cblas.h>
#include <stdlib.h>

#include "core/pool.h"
#include "kernels/dequant.h"
#include "kernels/qdot.h"
#include "kernels/qpack.h"
#include "kernels/sgemm.h"

/* Rows per block when a prompt's tokens pass over a quantised weight in groups. */
enum { PROMPT_ROW_BLOCK = 256 };

void mt_kernels_set_threads(int n) {
    openblas_set_num_threads(1);
    mt_pool_set_threads(n);
}

int mt_kernels_threads(void) {
    return mt_pool_threads();
}

void mt_embedding_row(const mt_tensor *w, int64_t r, float *out) {
    mt_dequantize_row(w, r, out);
}

typedef struct {
    const mt_tensor *w;
    const float *x;
    int n, n_tasks;
    float *y;
    mt_worker_bufs bufs;
} rows_job;

/* Task k: rows [k rows / n_tasks, (k + 1) rows / n_tasks). */
static int rows_task(void *ctx, int k, int worker) {
    rows_job *j = ctx;
    const int64_t cols = j->w->ne[0], rows = j->w->ne[1];
    float *buf = mt_worker_buf(&j->bufs, worker);
    if (!buf) return 1;
    for (int64_t r = rows * k / j->n_tasks; r < rows * (k + 1) / j->n_tasks; r++) {
        mt_dequantize_row(j->w, r, buf);
        for (int t = 0; t < j->n; t++)
            j->y[(int64_t)t * rows + r] =
                cblas_sdot((int)cols, buf, 1, j->x + (int64_t)t * cols, 1);
    }
    return 0;
}

/* Few tokens: each weight row is dequantised once into L1 and dotted with every token. */
static mt_status matmul_rows(const mt_tensor *w, const float *x, int n, float *y) {
    const int64_t rows = w->ne[1], most = MT_POOL_TASKS_PER_THREAD * (int64_t)mt_kernels_threads();
    rows_job j = {.w = w,
                  .x = x,
                  .n = n,
                  .n_tasks = (int)(rows < most ? rows : most),
                  .y = y,
                  .bufs = {.floats = (size_t)w->ne[0]}};
    const int failed = mt_pool_run(j.n_tasks, rows_task, &j);
    mt_worker_bufs_free(&j.bufs);
    return failed ? mt_fail(MT_ERR_NOMEM, "out of memory in matmul") : MT_OK;
}

typedef struct {
    const mt_tensor *w;
    const float *x;
    int n;
    float *y;
    int64_t unit, base, extra;
    mt_worker_bufs bufs;
} slabs_job;

static int slab_task(void *ctx, int s, int worker) {
    slabs_job *j = ctx;
    const int64_t cols = j->w->ne[0], rows = j->w->ne[1];
    float *buf = mt_worker_buf(&j->bufs, worker);
    if (!buf) return 1;
    const int64_t r0 = j->unit * (s * j->base + (s < j->extra ? s : j->extra));
    const int64_t len = j->unit * (j->base + (s < j->extra)),
                  r1 = r0 + len < rows ? r0 + len : rows;
    for (int64_t r = r0; r < r1; r++) mt_dequantize_row(j->w, r, buf + (r - r0) * cols);
    mt_sgemm(0, 1, j->n, (int)(r1 - r0), (int)cols, 1.0f, j->x, (int)cols, buf, (int)cols, 0.0f,
             j->y + r0, (int)rows);
    return 0;
}

/* Many tokens: dequantise a slab of rows per thread and multiply it with BLAS. */
static mt_status matmul_slabs(const mt_tensor *w, const float *x, int n, float *y) {
    const int64_t cols = w->ne[0], rows = w->ne[1];
    /* At most about 1 MiB of f32 per slab, at least MT_POOL_TASKS_PER_THREAD slabs per
     * thread, and a slab count that is a multiple of the thread count: with 2 threads, 3
     * slabs (Gemma's 1024-row Q projection) left one thread idle a third of the time. */
    const int nt = mt_kernels_threads();
    int64_t n_slabs = (rows * cols + 256 * 1024 - 1) / (256 * 1024);
    if (n_slabs < MT_POOL_TASKS_PER_THREAD * nt) n_slabs = MT_POOL_TASKS_PER_THREAD * nt;
    n_slabs = (n_slabs + nt - 1) / nt * nt;
    /* Slabs of whole 32-row strips (the GEMM's tile width), the larger ones first so the
     * dynamic schedule evens them out: SmolLM2's down projection as 4 slabs of 144 rows
     * gave every slab a half-empty strip. Fewer rows than that: slabs of single rows. */
    const int64_t unit = rows >= 32 * n_slabs ? 32 : 1, units = (rows + unit - 1) / unit;
    if (n_slabs > units) n_slabs = units;
    const int64_t base = units / n_slabs, extra = units % n_slabs;
    slabs_job j = {.w = w,
                   .x = x,
                   .n = n,
                   .y = y,
                   .unit = unit,
                   .base = base,
                   .extra = extra,
                   .bufs = {.floats = (size_t)(unit * (base + (extra > 0)) * cols)}};
    const int failed = mt_pool_run((int)n_slabs, slab_task, &j);
    mt_worker_bufs_free(&j.bufs);
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

typedef struct {
    const mt_tensor *const *w;
    const float *x;
    int n;
    float *const *y;
    int nw;
    const int *own;
    const size_t *ab, *off;
    const int64_t *rows_before;
    char *xq;
    const char *const *xa; /* each weight's activations: its layout in xq, or NULL (floats) */
    int64_t range;         /* rows per task, the weights' rows laid end to end */
    int pass;              /* tokens per call of the decoding kernels */
} qdot_job;

/* Task k: token k % n's activations in the layout of weight own[k / n]. */
static int quantize_task(void *ctx, int k, int worker) {
    (void)worker;
    const qdot_job *j = ctx;
    const int i = j->own[k / j->n], t = k % j->n;
    const int64_t cols = j->w[0]->ne[0];
    return mt_quantize_act(j->w[i]->type, j->x + (size_t)t * cols, cols,
                           j->xq + j->off[i] + j->ab[i] * (size_t)t) != MT_OK;
}

/* Task b: rows [b range, (b + 1) range) of the weights laid end to end. */
static int qdot_rows_task(void *ctx, int b, int worker) {
    (void)worker;
    const qdot_job *j = ctx;
    int nomem = 0;
    for (int i = 0; i < j->nw; i++) {
        int64_t r0, r1;
        if (clip_range(b * j->range, j->range, j->rows_before[i], j->rows_before[i + 1], &r0, &r1))
            nomem |= run_rows(j->w[i], j->n, j->xa[i], j->x, j->y[i], r0, r1, j->pass);
    }
    return nomem;
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
    /* Up to 16 tokens (decoding): a few ranges of rows per thread, in multiples of 16 (the
     * packed groups; the decoding kernels rearrange the tokens' activations once per
     * call, so fewer, larger calls cost less). More tokens (a prompt) go through blocks
     * of 256 rows, which stay in L2 while every token passes over them. */
    const int nt = mt_kernels_threads();
    const int decode = n <= MT_QDOT_MAX_TOKENS;
    const int64_t tasks = (int64_t)nt * MT_POOL_TASKS_PER_THREAD;
    const int64_t per = ((total + tasks - 1) / tasks + 15) / 16 * 16;
    /* A prompt: the rows laid end to end in blocks of at most PROMPT_ROW_BLOCK, as many
     * per thread, a few at least. Blocks per weight (576 rows as 256 + 256 + 64) had left one
     * thread twice the rows of the other on o and down. */
    int64_t n_blocks = (total + PROMPT_ROW_BLOCK - 1) / PROMPT_ROW_BLOCK;
    if (n_blocks < tasks) n_blocks = tasks;
    n_blocks = (n_blocks + nt - 1) / nt * nt;
    const int64_t block = ((total + n_blocks - 1) / n_blocks + 15) / 16 * 16;
    qdot_job j = {.w = w,
                  .x = x,
                  .n = n,
                  .y = y,
                  .nw = nw,
                  .own = own,
                  .ab = ab,
                  .off = off,
                  .rows_before = rows_before,
                  .xq = xq,
                  .xa = xa,
                  .range = decode ? per : block,
                  .pass = decode ? n : MT_QDOT_MAX_TOKENS};
    /* The tokens' activations are quantised on the threads: done serially, 16 tokens of
     * batched decoding left the other thread waiting a sixth of the time. */
    int failed = mt_pool_run(n_own * n, quantize_task, &j);
    int nomem = 0;
    if (!failed) nomem = mt_pool_run((int)((total + j.range - 1) / j.range), qdot_rows_task, &j);
    if (failed) {
        /* the first weight whose activations could not be quantised, for the message */
        for (int k = 0; k < n_own * n && failed == 1; k++)
            if (quantize_task(&j, k, 0)) failed = own[k / n] + 1;
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

typedef struct {
    int trans_a, trans_b, m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    float *c;
    int by_columns, per; /* each task's share: `per` columns, or `per` rows of C */
} gemm_job;

static int gemm_task(void *ctx, int t, int worker) {
    (void)worker;
    const gemm_job *g = ctx;
    if (g->by_columns) {
        const int j0 = t * g->per, nc = j0 + g->per <= g->n ? g->per : g->n - j0;
        mt_sgemm(g->trans_a, g->trans_b, g->m, nc, g->k, g->alpha, g->a, g->lda,
                 g->trans_b ? g->b + (size_t)j0 * g->ldb : g->b + j0, g->ldb, g->beta, g->c + j0,
                 g->ldc);
        return 0;
    }
    const int r0 = t * g->per, nr = r0 + g->per <= g->m ? g->per : g->m - r0;
    /* Rows r0.. of op(A): offset along A's rows, or its columns when transposed. */
    const float *a0 = g->trans_a ? g->a + r0 : g->a + (size_t)r0 * g->lda;
    mt_sgemm(g->trans_a, g->trans_b, nr, g->n, g->k, g->alpha, a0, g->lda, g->b, g->ldb, g->beta,
             g->c + (size_t)r0 * g->ldc, g->ldc);
    return 0;
}

typedef struct {
    int n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    float *c;
} rowwise_job;

static void rowwise_rows(void *ctx, int64_t first, int64_t end) {
    const rowwise_job *g = ctx;
    for (int64_t i = first; i < end; i++) {
        float *ci = g->c + (size_t)i * g->ldc;
        for (int j = 0; j < g->n; j++) {
            const float d =
                g->alpha * mt_dot(g->a + (size_t)i * g->lda, g->b + (size_t)j * g->ldb, g->k);
            ci[j] = g->beta == 0.0f ? d : d + g->beta * ci[j];
        }
    }
}

void mt_gemm_nt_rowwise(int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                        int ldb, float beta, float *c, int ldc) {
    rowwise_job g = {.n = n,
                     .k = k,
                     .lda = lda,
                     .ldb = ldb,
                     .ldc = ldc,
                     .alpha = alpha,
                     .beta = beta,
                     .a = a,
                     .b = b,
                     .c = c};
    /* split by rows of C only: an element's value never depends on the split */
    mt_pool_for(m, 1, rowwise_rows, &g);
}

mt_status mt_matmul(const mt_tensor *w, const float *x, int n, float *y) {
    const int64_t cols = w->ne[0], rows = w->ne[1];
    if (takes_qdot(w, n)) return matmul_qdot(1, &w, x, n, &y);
    if (w->type == MT_F32 && n > 1) {
        /* One big sgemm, y = x w^T, split by the weight's rows across our threads. */
        const int nt = mt_kernels_threads();
        gemm_job g = {.trans_b = 1,
                      .m = n,
                      .n = (int)rows,
                      .k = (int)cols,
                      .lda = (int)cols,
                      .ldb = (int)cols,
                      .ldc = (int)rows,
                      .alpha = 1.0f,
                      .a = x,
                      .b = w->data,
                      .c = y,
                      .by_columns = 1,
                      .per = (int)((rows + nt * MT_POOL_TASKS_PER_THREAD - 1) /
                                   (nt * MT_POOL_TASKS_PER_THREAD))};
        mt_pool_run((int)((rows + g.per - 1) / g.per), gemm_task, &g);
        return MT_OK;
    }
    return n < 4 ? matmul_rows(w, x, n, y) : matmul_slabs(w, x, n, y);
}

void mt_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc) {
    const int nt = mt_kernels_threads();
    gemm_job g = {.trans_a = trans_a,
                  .trans_b = trans_b,
                  .m = m,
                  .n = n,
                  .k = k,
                  .lda = lda,
                  .ldb = ldb,
                  .ldc = ldc,
                  .alpha = alpha,
                  .beta = beta,
                  .a = a,
                  .b = b,
                  .c = c};
    int tasks;
    if (m < 16 * nt && n >= 64 * nt) {
        /* Few rows (LoRA's A-factor gradient has rank rows): split the columns instead,
         * in multiples of 32, so no thread is left with a sliver of rows. */
        g.by_columns = 1;
        const int split = nt * MT_POOL_TASKS_PER_THREAD;
        g.per = ((n + split - 1) / split + 31) / 32 * 32;
        tasks = (n + g.per - 1) / g.per;
    } else {
        const int split = nt * MT_POOL_TASKS_PER_THREAD;
        g.per = (m + split - 1) / split;
        tasks = m > 0 ? (m + g.per - 1) / g.per : 0;
    }
    mt_pool_run(tasks, gemm_task, &g);
}

typedef struct {
    const mt_tensor *w;
    const float *dy;
    float *dx;
    int n, accumulate;
    int64_t slab, band;
    int n_bands, n_dequant;
    float *buf[2];
    int64_t s; /* the slab being dequantised; s - 1 is being multiplied */
} dx_job;

/* The first n_bands tasks of a loop (when s > 0) multiply a band of slab s - 1; the
 * others dequantise a share of slab s's rows. */
static int dx_task(void *ctx, int t, int worker) {
    (void)worker;
    const dx_job *j = ctx;
    const int64_t cols = j->w->ne[0], rows = j->w->ne[1];
    if (j->s > 0 && t < j->n_bands) {
        const int64_t r0 = (j->s - 1) * j->slab, nr = r0 + j->slab <= rows ? j->slab : rows - r0;
        const int64_t c0 = t * j->band, c1 = c0 + j->band < cols ? c0 + j->band : cols;
        const float beta = (r0 == 0 && !j->accumulate) ? 0.0f : 1.0f;
        mt_sgemm(0, 0, j->n, (int)(c1 - c0), (int)nr, 1.0f, j->dy + r0, (int)rows,
                 j->buf[(j->s - 1) & 1] + c0, (int)cols, beta, j->dx + c0, (int)cols);
        return 0;
    }
    const int k = j->s > 0 ? t - j->n_bands : t;
    const int64_t r0 = j->s * j->slab, nr = r0 + j->slab <= rows ? j->slab : rows - r0;
    float *bs = j->buf[j->s & 1];
    for (int64_t r = nr * k / j->n_dequant; r < nr * (k + 1) / j->n_dequant; r++)
        mt_dequantize_row(j->w, r0 + r, bs + r * cols);
    return 0;
}

mt_status mt_matmul_dx(const mt_tensor *w, const float *dy, int n, float *dx, int accumulate) {
    const int64_t cols = w->ne[0], rows = w->ne[1];
    if (w->type == MT_F32) {
        mt_gemm(0, 0, n, (int)cols, (int)rows, 1.0f, dy, (int)rows, w->data, (int)cols,
                accumulate ? 1.0f : 0.0f, dx, (int)cols);
        return MT_OK;
    }
    /* Slab by slab: the threads dequantise a slab's rows together, then each task
     * multiplies one band of columns. (Giving each thread a band of tokens instead made
     * every thread dequantise and pack the whole weight.) Two slab buffers alternate, so
     * one loop multiplies slab s - 1 while it dequantises slab s, and the end of the loop
     * proves both done. */
    int64_t slab = (256 * 1024) / cols;
    if (slab < 1) slab = 1;
    const int nt = mt_kernels_threads();
    float *buf[2] = {malloc((size_t)(slab * cols) * sizeof(float)),
                     malloc((size_t)(slab * cols) * sizeof(float))};
    const int failed = !buf[0] || !buf[1];
    if (!failed) {
        dx_job j = {
            .w = w,
            .dy = dy,
            .dx = dx,
            .n = n,
            .accumulate = accumulate,
            .slab = slab,
            /* column bands in multiples of 32, the GEMM's tile width */
            .band = ((cols + nt * MT_POOL_TASKS_PER_THREAD - 1) / (nt * MT_POOL_TASKS_PER_THREAD) +
                     31) /
                    32 * 32,
            .buf = {buf[0], buf[1]}};
        j.n_bands = (int)((cols + j.band - 1) / j.band);
        j.n_dequant = 2 * nt;
        const int64_t n_slabs = (rows + slab - 1) / slab;
        for (j.s = 0; j.s <= n_slabs; j.s++) {
            const int bands = j.s > 0 ? j.n_bands : 0, dequants = j.s < n_slabs ? j.n_dequant : 0;
            mt_pool_run(bands + dequants, dx_task, &j);
        }
    }
    free(buf[0]);
    free(buf[1]);
    return failed ? mt_fail(MT_ERR_NOMEM, "out of memory in matmul backward") : MT_OK;
}
