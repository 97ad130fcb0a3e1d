/* The online-softmax output head (model/train_head.c) against a direct double-precision
 * computation: log-sum-exp, target logit and the gradient with respect to the normed
 * input, with and without a soft cap, over a vocabulary of several slabs per thread (so
 * the running max is rescaled within a thread and the threads' partials are merged). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rng.h"
#include "kernels/matmul.h"
#include "model/train_head.h"

enum { D = 24, V = 1500, N = 7 };

static mt_rng rng;

static float uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)mt_rng_uniform(&rng);
}

typedef struct {
    double lse, lt, dxn[D];
} expect;

/* log-sum-exp of the (capped) logits, the target's logit and coef * d log p / d xn. */
static expect direct(const float *w, const float *xn, int tgt, float coef, float cap) {
    static double l[V], dcap[V];
    expect e;
    double mx = -INFINITY;
    for (int v = 0; v < V; v++) {
        double s = 0;
        for (int i = 0; i < D; i++) s += (double)xn[i] * w[v * D + i];
        dcap[v] = 1.0;
        if (cap > 0) {
            const double th = tanh(s / cap);
            s = cap * th;
            dcap[v] = 1.0 - th * th;
        }
        l[v] = s;
        mx = s > mx ? s : mx;
    }
    double z = 0;
    for (int v = 0; v < V; v++) z += exp(l[v] - mx);
    e.lse = mx + log(z);
    e.lt = l[tgt];
    for (int i = 0; i < D; i++) {
        double g = dcap[tgt] * w[tgt * D + i];
        for (int v = 0; v < V; v++) g -= exp(l[v] - e.lse) * dcap[v] * w[v * D + i];
        e.dxn[i] = coef * g;
    }
    return e;
}

static void run(float cap) {
    mt_rng_seed(&rng, cap > 0 ? 11 : 7);
    float *w = malloc(sizeof(float) * V * D);
    float xn[N * D], dxn[N * D], coef[N], lse[N], lt[N], lse2[N], lt2[N];
    int32_t tgt[N];
    for (int i = 0; i < V * D; i++) w[i] = uniform(-1.0f, 1.0f);
    /* one strongly preferred token in a late slab, so the max grows after the first */
    for (int i = 0; i < D; i++) w[1400 * D + i] = 2.0f;
    for (int i = 0; i < N * D; i++) xn[i] = uniform(-1.0f, 1.0f) + 0.5f;
    for (int r = 0; r < N; r++) {
        tgt[r] = (int32_t)(r * 211 + 3) % V;
        coef[r] = r == 3 ? 0.0f : uniform(0.2f, 1.5f);
    }
    mt_model m;
    memset(&m, 0, sizeof m);
    m.cfg.n_embd = D;
    m.cfg.n_vocab = V;
    m.cfg.final_softcap = cap;
    m.output = (mt_tensor){.type = MT_F32, .n_dims = 2, .ne = {D, V, 1, 1}, .data = w};
    assert_int_equal(mt_head_online(&m, xn, tgt, N, lse, lt, dxn, coef), MT_OK);
    /* without gradients: the same log-probs, bit for bit */
    assert_int_equal(mt_head_online(&m, xn, tgt, N, lse2, lt2, NULL, NULL), MT_OK);
    for (int r = 0; r < N; r++) {
        const expect e = direct(w, xn + r * D, tgt[r], coef[r], cap);
        assert_true(fabs(lse[r] - e.lse) <= 1e-5 * fabs(e.lse) + 1e-5);
        assert_true(fabs(lt[r] - e.lt) <= 1e-5 * fabs(e.lt) + 1e-5);
        assert_memory_equal(&lse[r], &lse2[r], sizeof(float));
        assert_memory_equal(&lt[r], &lt2[r], sizeof(float));
        double scale = 0;
        for (int i = 0; i < D; i++) scale = fmax(scale, fabs(e.dxn[i]));
        for (int i = 0; i < D; i++)
            if (fabs(dxn[r * D + i] - e.dxn[i]) > 1e-5 * scale + 1e-7)
                fail_msg("cap %g row %d dim %d: online %.9g direct %.9g", (double)cap, r, i,
                         (double)dxn[r * D + i], e.dxn[i]);
    }
    free(w);
}

static void test_online_head(void **state) {
    (void)state;
    mt_kernels_set_threads(2);
    run(0.0f);
}

static void test_online_head_softcap(void **state) {
    (void)state;
    mt_kernels_set_threads(2);
    run(5.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_online_head),
        cmocka_unit_test(test_online_head_softcap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
