/* Training checkpoints: resuming one's own (run key checked) and starting from another
 * job's (tensors and trained set checked, run key not), on hand-made trainable sets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "io/safetensors_write.h"
#include "tmpdir.h"
#include "train/checkpoint.h"

#define MAX_N 8

/* A trainable set of two tensors with its own storage; sizes n0 and n1 (at most MAX_N). */
typedef struct {
    float w[2][MAX_N], g[2][MAX_N], m[2][MAX_N], v[2][MAX_N];
    mt_param p[2];
    mt_trainable t;
} toy;

static void toy_init(toy *x, int n_params, int n0, int n1, float base) {
    memset(x, 0, sizeof *x);
    static const char *const names[2] = {"layers.0.q_proj.lora_A", "layers.0.q_proj.lora_B"};
    const int n[2] = {n0, n1};
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < n[i]; k++) {
            x->w[i][k] = base + (float)(10 * i + k);
            x->m[i][k] = base + 0.5f * (float)k;
            x->v[i][k] = base + 0.25f * (float)k;
        }
        x->p[i] = (mt_param){.name = names[i],
                             .w = x->w[i],
                             .g = x->g[i],
                             .m = x->m[i],
                             .v = x->v[i],
                             .n = n[i],
                             .decay = 1};
    }
    x->t.params = x->p;
    x->t.n = n_params;
}

typedef struct {
    char dir[256], path[320];
} fixture;

static int setup(void **state) {
    static fixture f;
    if (mt_test_mkdtemp(f.dir, sizeof f.dir, "ckpt")) return -1;
    snprintf(f.path, sizeof f.path, "%s/checkpoint.safetensors", f.dir);
    *state = &f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    return mt_test_rmtree(f->dir);
}

static const char LORA4[] = "lora rank 4 alpha 8 q_proj";

/* A checkpoint of the toy (sizes 3 and 5) at step 7 with run key "job-a". */
static void save_toy(const char *path, const char *trainable) {
    toy src;
    toy_init(&src, 2, 3, 5, 1.0f);
    mt_ckpt_meta meta = {.step = 7, .epoch = 2, .batch = 1, .seed = 99};
    snprintf(meta.run_key, sizeof meta.run_key, "job-a");
    snprintf(meta.trainable, sizeof meta.trainable, "%s", trainable);
    assert_int_equal(mt_checkpoint_save(path, &src.t, &meta), MT_OK);
}

static void assert_toy_untouched(const toy *x) {
    for (int k = 0; k < 3; k++) {
        assert_true(x->w[0][k] == 100.0f + (float)k);
        assert_true(x->m[0][k] == 100.0f + 0.5f * (float)k);
    }
}

static void test_init_restores_weights_moments_and_step(void **state) {
    fixture *f = *state;
    save_toy(f->path, LORA4);
    toy dst;
    toy_init(&dst, 2, 3, 5, 100.0f);
    mt_ckpt_meta meta;
    /* The run key is another job's: starting from it is allowed, resuming is not. */
    assert_int_equal(mt_checkpoint_load_init(f->path, &dst.t, LORA4, &meta), MT_OK);
    assert_int_equal(meta.step, 7);
    assert_int_equal(meta.epoch, 2);
    assert_int_equal(meta.batch, 1);
    assert_string_equal(meta.run_key, "job-a");
    assert_string_equal(meta.trainable, LORA4);
    toy want;
    toy_init(&want, 2, 3, 5, 1.0f);
    assert_memory_equal(dst.w, want.w, sizeof want.w);
    assert_memory_equal(dst.m, want.m, sizeof want.m);
    assert_memory_equal(dst.v, want.v, sizeof want.v);

    mt_ckpt_meta peek;
    assert_int_equal(mt_checkpoint_read_meta(f->path, &peek), MT_OK);
    assert_int_equal(peek.step, 7);
    assert_string_equal(peek.run_key, "job-a");

    mt_ckpt_meta resume = {0};
    snprintf(resume.run_key, sizeof resume.run_key, "job-b");
    assert_int_equal(mt_checkpoint_load(f->path, &dst.t, &resume), MT_ERR_ARG);
    assert_non_null(strstr(mt_last_error(), "different settings"));
    snprintf(resume.run_key, sizeof resume.run_key, "job-a");
    assert_int_equal(mt_checkpoint_load(f->path, &dst.t, &resume), MT_OK);
    assert_int_equal(resume.step, 7);
}

static void test_init_refuses_other_sizes_and_leaves_t(void **state) {
    fixture *f = *state;
    save_toy(f->path, LORA4);
    toy dst;
    /* The first tensor matches, the second is bigger (a higher rank): nothing is copied. */
    toy_init(&dst, 2, 3, 6, 100.0f);
    mt_ckpt_meta meta;
    assert_int_equal(mt_checkpoint_load_init(f->path, &dst.t, NULL, &meta), MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), f->path));
    assert_non_null(strstr(mt_last_error(), "w.layers.0.q_proj.lora_B"));
    assert_non_null(strstr(mt_last_error(), "holds 5 values, expected 6"));
    assert_non_null(strstr(mt_last_error(), "LoRA rank"));
    assert_toy_untouched(&dst);
    /* One tensor fewer (other targets). */
    toy_init(&dst, 1, 3, 5, 100.0f);
    assert_int_equal(mt_checkpoint_load_init(f->path, &dst.t, NULL, &meta), MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "holds 2 tensors, this job trains 1"));
    assert_toy_untouched(&dst);
}

static void test_init_refuses_another_trained_set(void **state) {
    fixture *f = *state;
    save_toy(f->path, LORA4);
    toy dst;
    toy_init(&dst, 2, 3, 5, 100.0f);
    mt_ckpt_meta meta;
    /* Same tensor sizes, other alpha: only the record tells them apart. */
    assert_int_equal(mt_checkpoint_load_init(f->path, &dst.t, "lora rank 4 alpha 16 q_proj", &meta),
                     MT_ERR_ARG);
    assert_non_null(strstr(mt_last_error(), f->path));
    assert_non_null(strstr(mt_last_error(), "alpha 8"));
    assert_non_null(strstr(mt_last_error(), "alpha 16"));
    assert_toy_untouched(&dst);
    /* A file without the record (written before it existed) is checked by its tensors. */
    save_toy(f->path, "");
    assert_int_equal(mt_checkpoint_read_meta(f->path, &meta), MT_OK);
    assert_string_equal(meta.trainable, "");
    assert_int_equal(mt_checkpoint_load_init(f->path, &dst.t, "lora rank 4 alpha 16 q_proj", &meta),
                     MT_OK);
    assert_true(dst.w[1][4] == 1.0f + 14.0f);
}

static void test_other_files_are_not_checkpoints(void **state) {
    fixture *f = *state;
    mt_st_writer *w = NULL;
    const float x[2] = {1, 2};
    const int64_t shape[1] = {2};
    assert_int_equal(mt_st_writer_new(&w), MT_OK);
    assert_int_equal(mt_st_writer_add(w, "lora_A.weight", MT_F32, 1, shape, x), MT_OK);
    assert_int_equal(mt_st_writer_write(w, f->path), MT_OK);
    mt_st_writer_free(w);
    toy dst;
    toy_init(&dst, 2, 3, 5, 100.0f);
    mt_ckpt_meta meta;
    assert_int_equal(mt_checkpoint_load_init(f->path, &dst.t, NULL, &meta), MT_ERR_FORMAT);
    assert_non_null(strstr(mt_last_error(), "is not a meteor training checkpoint"));
    char missing[400];
    snprintf(missing, sizeof missing, "%s/none.safetensors", f->dir);
    assert_int_not_equal(mt_checkpoint_read_meta(missing, &meta), MT_OK);
    assert_non_null(strstr(mt_last_error(), missing));
    assert_toy_untouched(&dst);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_restores_weights_moments_and_step, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_init_refuses_other_sizes_and_leaves_t, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_init_refuses_another_trained_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_files_are_not_checkpoints, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
