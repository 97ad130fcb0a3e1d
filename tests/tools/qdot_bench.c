/* Micro-benchmark of the quantised matrix-vector kernels (a tool, not a test):
 *   qdot_bench [ROWS COLS [SECONDS]]      (default 2048 2048 0.3)
 *   qdot_bench --model FILE.gguf [THREADS [N_TOK]]
 * For each weight type, a random matrix with valid blocks is multiplied with one token
 * (mt_matvec_q) on one thread by the scalar, AVX2 and AVX-512 kernels, then by the best
 * of them on all kernel threads, and for 4 and 16 tokens at once (mt_matmul_q, one
 * thread; AVX2 and AVX-512), next to the previous decode path (dequantise a row,
 * cblas_sdot; mt_matmul on one thread). Columns of an implementation the CPU lacks
 * read 0.
 * GB/s counts weight bytes read per second; ns/row is per row per token. Best of five
 * timed runs, each at least SECONDS long.
 * --model times what one decoding step spends in matrix-vector products: every 2-D
 * weight of the file (the tied embedding as LM head when there is no output.weight),
 * activations quantised, rows split over THREADS (default: all cores), for N_TOK tokens
 * at once (default 1), scalar, AVX2 and AVX-512 — an upper bound on tokens/s from the matvecs
 * alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/pool.h"
#include "core/rng.h"
#include "io/gguf.h"
#include "kernels/dequant.h"
#include "kernels/matmul.h"
#include "kernels/qdot.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    const mt_tensor *w;
    int n_tok, threads, old_path;
    const void *xq;
    const float *xf;
    float *y;
} job;

typedef struct {
    const mt_tensor *w;
    int n_tok, n_tasks;
    const void *xq;
    const float *xf;
    float *y;
} rows_job;

/* Task t: rows [rows t / n_tasks, rows (t + 1) / n_tasks). */
static int rows_task(void *ctx, int t, int worker) {
    (void)worker;
    const rows_job *r = ctx;
    const int64_t rows = r->w->ne[1];
    mt_matmul_q(r->w, r->n_tok, r->xq, r->xf, r->y, rows * t / r->n_tasks,
                rows * (t + 1) / r->n_tasks);
    return 0;
}

/* The rows split evenly over `threads` tasks on the kernel threads. */
static void split_rows(const mt_tensor *w, int n_tok, const void *xq, const float *xf, float *y,
                       int threads) {
    rows_job r = {.w = w, .n_tok = n_tok, .n_tasks = threads, .xq = xq, .xf = xf, .y = y};
    mt_pool_set_threads(threads);
    mt_pool_run(threads, rows_task, &r);
}

static void run(const job *j) {
    const int64_t rows = j->w->ne[1];
    if (j->old_path) {
        mt_matmul(j->w, j->xf, j->n_tok, j->y);
        return;
    }
    if (j->threads == 1) {
        mt_matmul_q(j->w, j->n_tok, j->xq, j->xf, j->y, 0, rows);
        return;
    }
    split_rows(j->w, j->n_tok, j->xq, j->xf, j->y, j->threads);
}

/* Seconds per call: best of five runs of at least min_s each. */
static double time_job(const job *j, double min_s) {
    double best = 1e30;
    run(j); /* warm caches and pages */
    for (int rep = 0; rep < 5; rep++) {
        int calls = 0;
        const double t0 = now();
        double el;
        do {
            run(j);
            calls++;
            el = now() - t0;
        } while (el < min_s / 5);
        if (el / calls < best) best = el / calls;
    }
    return best;
}

static void fill(mt_rng *r, mt_dtype t, uint8_t *w, int64_t rows, int64_t cols) {
    const size_t bytes = mt_dtype_row_bytes(t, cols) * (size_t)rows;
    for (size_t i = 0; i < bytes; i++) w[i] = (uint8_t)mt_rng_next(r);
    if (t == MT_F32) {
        float *f = (float *)(void *)w;
        for (size_t i = 0; i < bytes / 4; i++) f[i] = (float)(mt_rng_uniform(r) - 0.5);
        return;
    }
    if (t == MT_F16 || t == MT_BF16) {
        for (size_t i = 0; i < bytes; i += 2) w[i + 1] = (uint8_t)(0x30 + (w[i + 1] & 0x0f));
        return;
    }
    /* finite f16 scales (and mins) in every block */
    const size_t bb = mt_dtype_block_bytes(t);
    const size_t d_at = t == MT_Q6_K ? 208 : 0;
    const int has_min = t == MT_Q4_1 || t == MT_Q5_1 || t == MT_Q4_K || t == MT_Q5_K;
    const uint16_t h = mt_fp32_to_fp16(0.01f);
    for (size_t b = 0; b < bytes / bb; b++) {
        memcpy(w + b * bb + d_at, &h, 2);
        if (has_min) memcpy(w + b * bb + 2, &h, 2);
    }
}

/* One decode step of a model's matvecs: returns seconds per step (best of five). */
static double model_step(const mt_gguf *g, int threads, int n_tok, float *x, uint8_t *xq, float *y,
                         double min_s) {
    const int tied = mt_gguf_find_tensor(g, "output.weight") == NULL;
    double best = 1e30;
    for (int rep = 0; rep < 6; rep++) {
        const double t0 = now();
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const mt_gguf_tensor *gt = &g->tensors[i];
            if (gt->n_dims != 2 || !mt_dtype_supported(gt->ggml_type)) continue;
            if (!tied && !strcmp(gt->name, "token_embd.weight")) continue;
            const mt_tensor *w = &gt->view;
            const int64_t n = w->ne[0];
            const size_t ab = mt_act_bytes(w->type, n);
            for (int k = 0; k < n_tok; k++) mt_quantize_act(w->type, x + k * n, n, xq + k * ab);
            split_rows(w, n_tok, xq, x, y, threads);
        }
        const double el = now() - t0;
        if (rep && el < best) best = el; /* the first pass pages the file in */
    }
    (void)min_s;
    return best;
}

static int bench_model(const char *path, int threads, int n_tok) {
    mt_gguf *g = NULL;
    if (mt_gguf_open(path, &g)) {
        fprintf(stderr, "qdot_bench: %s\n", mt_last_error());
        return 1;
    }
    int64_t max_n = 0, max_rows = 0;
    size_t bytes = 0;
    const int tied = mt_gguf_find_tensor(g, "output.weight") == NULL;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const mt_gguf_tensor *gt = &g->tensors[i];
        if (gt->n_dims != 2 || !mt_dtype_supported(gt->ggml_type)) continue;
        if (!tied && !strcmp(gt->name, "token_embd.weight")) continue;
        if (gt->ne[0] > max_n) max_n = gt->ne[0];
        if (gt->ne[1] > max_rows) max_rows = gt->ne[1];
        bytes += mt_tensor_nbytes(&gt->view);
    }
    float *x = malloc((size_t)(n_tok * max_n) * sizeof *x);
    float *y = malloc((size_t)(n_tok * max_rows) * sizeof *y);
    uint8_t *xq = malloc((size_t)(n_tok * max_n) * 2 + 64);
    if (!x || !y || !xq) return 1;
    for (int64_t i = 0; i < n_tok * max_n; i++) x[i] = (float)((i * 7919 % 2001) - 1000) * 1e-3f;
    printf("%s: %.1f MB of matvec weights, %d thread(s), %d token(s) per step\n", path,
           (double)bytes / 1e6, threads, n_tok);
    for (int impl = MT_QDOT_SCALAR; impl <= MT_QDOT_AVX512; impl++) {
        if (mt_qdot_set_impl((mt_qdot_impl)impl)) continue;
        const double s = model_step(g, threads, n_tok, x, xq, y, 0);
        printf("  %-6s %8.2f ms/step  %8.1f tokens/s  %6.2f GB/s\n",
               mt_qdot_impl_name((mt_qdot_impl)impl), s * 1e3, n_tok / s, (double)bytes / s / 1e9);
    }
    mt_qdot_set_impl(MT_QDOT_AUTO);
    free(x), free(y), free(xq);
    mt_gguf_close(g);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "--model"))
        return bench_model(argv[2], argc > 3 ? atoi(argv[3]) : (int)sysconf(_SC_NPROCESSORS_ONLN),
                           argc > 4 ? atoi(argv[4]) : 1);
    const int64_t rows = argc > 2 ? atoll(argv[1]) : 2048, cols = argc > 2 ? atoll(argv[2]) : 2048;
    const double min_s = argc > 3 ? atof(argv[3]) : 0.3;
    if (rows <= 0 || cols <= 0 || cols % 32) {
        fprintf(stderr, "usage: qdot_bench [ROWS COLS [SECONDS]] (COLS a multiple of 32; "
                        "K-quants are skipped unless it is one of 256)\n");
        return 1;
    }
    const mt_dtype types[] = {MT_Q4_0, MT_Q4_1, MT_Q5_0, MT_Q5_1, MT_Q8_0, MT_Q4_K,
                              MT_Q5_K, MT_Q6_K, MT_F16,  MT_BF16, MT_F32};
    const int max_tok = 16, threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    mt_kernels_set_threads(1);
    float *x = malloc((size_t)(max_tok * cols) * sizeof *x);
    float *y = malloc((size_t)(max_tok * rows) * sizeof *y);
    mt_rng r;
    mt_rng_seed(&r, 42);
    for (int64_t i = 0; i < max_tok * cols; i++) x[i] = (float)(mt_rng_uniform(&r) * 2 - 1);
    printf("%lld x %lld, %d thread(s) available, AVX2 %s, AVX-512 %s\n", (long long)rows,
           (long long)cols, threads, mt_qdot_avx2_available() ? "yes" : "no",
           mt_qdot_avx512_available() ? "yes" : "no");
    printf("%-5s %8s | %-17s | %-17s | %-17s | %-17s | %-17s | %-10s | %-10s | %-10s | %-10s\n",
           "type", "MB", "old deq+sdot 1t", "scalar 1t", "avx2 1t", "avx512 1t", "best all threads",
           "avx2 4 tok", "avx2 16 tok", "avx512 4", "avx512 16");
    printf("%-5s %8s | %-17s | %-17s | %-17s | %-17s | %-17s | %-10s | %-10s | %-10s | %-10s\n", "",
           "", "GB/s  ns/row", "GB/s  ns/row", "GB/s  ns/row", "GB/s  ns/row", "GB/s  ns/row",
           "ns/row/tok", "ns/row/tok", "ns/row/tok", "ns/row/tok");
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const mt_dtype t = types[k];
        if (cols % mt_dtype_block_elems(t)) continue;
        const size_t bytes = mt_dtype_row_bytes(t, cols) * (size_t)rows;
        uint8_t *w = malloc(bytes);
        const size_t ab = mt_act_bytes(t, cols);
        uint8_t *xq = malloc(ab * max_tok + 1);
        if (!w || !xq || !x || !y) return 1;
        fill(&r, t, w, rows, cols);
        for (int i = 0; i < max_tok; i++)
            if (mt_quantize_act(t, x + i * cols, cols, xq + i * ab)) return 1;
        const mt_tensor wt = {.type = t, .n_dims = 2, .ne = {cols, rows, 1, 1}, .data = w};
        /* per call: old path, scalar, avx2, avx512 on one thread, the best SIMD on all */
        double s[5] = {0};
        double tok[2][2] = {{0}}; /* [avx2, avx512][4, 16 tokens], per token */
        job j = {&wt, 1, 1, 1, xq, x, y};
        s[0] = time_job(&j, min_s);
        j.old_path = 0;
        mt_qdot_set_impl(MT_QDOT_SCALAR);
        s[1] = time_job(&j, min_s);
        for (int v = 0; v < 2; v++) {
            if (mt_qdot_set_impl(v ? MT_QDOT_AVX512 : MT_QDOT_AVX2) != MT_OK) continue;
            j.threads = 1, j.n_tok = 1;
            s[2 + v] = time_job(&j, min_s);
            j.threads = threads;
            s[4] = time_job(&j, min_s);
            j.threads = 1, j.n_tok = 4;
            tok[v][0] = time_job(&j, min_s) / 4;
            j.n_tok = 16;
            tok[v][1] = time_job(&j, min_s) / 16;
        }
        mt_qdot_set_impl(MT_QDOT_AUTO);
        printf("%-5s %8.2f |", mt_dtype_name(t), (double)bytes / 1e6);
        for (int c = 0; c < 5; c++)
            printf(" %6.2f %9.1f |", s[c] ? (double)bytes / s[c] / 1e9 : 0.0,
                   s[c] * 1e9 / (double)rows);
        printf(" %10.1f | %10.1f | %10.1f | %10.1f\n", tok[0][0] * 1e9 / (double)rows,
               tok[0][1] * 1e9 / (double)rows, tok[1][0] * 1e9 / (double)rows,
               tok[1][1] * 1e9 / (double)rows);
        free(w), free(xq);
    }
    free(x), free(y);
    return 0;
}
