/* Test tool for adapter export (oracle tests drive it):
 *   lora_tool random MODEL OUT_DIR [--rank R] [--alpha A] [--targets LIST] [--seed S]
 *                     [--gguf-lora FILE] [--logits IDS OUT.f32]
 *       a random adapter made by meteor (PEFT's A init, B random instead of zero) in the
 *       model's own row order, saved as PEFT (and GGUF-LoRA); --logits writes the model's
 *       logits with this in-memory adapter attached, before any file round trip.
 *   lora_tool logits MODEL IDS OUT.f32 [--adapter DIR]
 *       logits of every position (n x n_vocab f32) with a PEFT adapter imported.
 *   lora_tool resave MODEL DIR OUT_DIR [--gguf-lora FILE]
 *       imports a PEFT adapter and saves it again.
 *   lora_tool merge MODEL OUT.gguf f32|f16|q8_0 [--adapter DIR]
 *       the merged model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "kernels/matmul.h"
#include "model/forward.h"
#include "train/export.h"

static int fail(void) {
    fprintf(stderr, "lora_tool: %s\n", mt_last_error());
    return 1;
}

static const char *opt(int argc, char **argv, const char *name, const char *def) {
    for (int i = 0; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    return def;
}

static int parse_ids(const char *s, int32_t **ids) {
    int n = 1;
    for (const char *p = s; *p; p++) n += *p == ',';
    *ids = calloc((size_t)n, sizeof **ids);
    char *end;
    for (int i = 0; i < n; i++) {
        (*ids)[i] = (int32_t)strtol(s, &end, 10);
        s = end + (*end == ',');
    }
    return n;
}

static int write_logits(const mt_model *m, const char *ids_text, const char *path) {
    int32_t *ids = NULL;
    const int n = parse_ids(ids_text, &ids);
    const int V = m->cfg.n_vocab;
    float *logits = calloc((size_t)n * V, sizeof *logits);
    mt_kv_cache kv;
    if (mt_kv_cache_init(&kv, &m->cfg, n)) return fail();
    if (mt_forward(m, &kv, ids, n, logits, MT_LOGITS_ALL)) return fail();
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(logits, sizeof *logits, (size_t)n * V, f) != (size_t)n * V) {
        fprintf(stderr, "lora_tool: cannot write %s\n", path);
        return 1;
    }
    fclose(f);
    mt_kv_cache_free(&kv);
    free(logits);
    free(ids);
    return 0;
}

/* Standard normal by Box-Muller, scaled so B·A is a visible change of the layer. */
static float gauss(mt_rng *r) {
    double u = mt_rng_uniform(r), v = mt_rng_uniform(r);
    return (float)(sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v));
}

static int cmd_random(int argc, char **argv, mt_model *m) {
    mt_lora_config cfg = {.rank = atoi(opt(argc, argv, "--rank", "4")),
                          .alpha = (float)atof(opt(argc, argv, "--alpha", "8")),
                          .dropout = 0.05f};
    const uint64_t seed = strtoull(opt(argc, argv, "--seed", "1"), NULL, 10);
    if (mt_lora_parse_targets(opt(argc, argv, "--targets", "all"), &cfg.targets)) return fail();
    mt_lora *l = NULL;
    if (mt_lora_create(m, &cfg, seed, &l)) return fail();
    mt_rng rng;
    mt_rng_seed(&rng, seed + 1000);
    for (int layer = 0; layer < l->n_layer; layer++)
        for (int r = 0; r < MT_LIN_COUNT; r++) {
            float *b = *mt_lora_b_slot(l, layer, r);
            if (!b) continue;
            const int64_t n = (int64_t)mt_linear_out(&m->layers[layer].lin[r]) * cfg.rank;
            for (int64_t i = 0; i < n; i++) b[i] = 0.1f * gauss(&rng);
        }
    if (mt_lora_save_peft(l, m, argv[3])) return fail();
    const char *gguf = opt(argc, argv, "--gguf-lora", NULL);
    if (gguf && mt_lora_save_gguf(l, m, gguf)) return fail();
    for (int i = 4; i + 2 < argc; i++)
        if (!strcmp(argv[i], "--logits")) {
            mt_lora_attach(l, m);
            if (write_logits(m, argv[i + 1], argv[i + 2])) return 1;
            mt_lora_detach(m);
        }
    mt_lora_free(l);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: lora_tool random|logits|resave|merge MODEL ... (see source)\n");
        return 2;
    }
    mt_kernels_set_threads(0);
    mt_model *m = NULL;
    if (mt_model_load(argv[2], &m)) return fail();
    const char *adapter = opt(argc, argv, "--adapter", NULL);
    mt_lora *l = NULL;
    int rc = 0;
    if (!strcmp(argv[1], "random")) {
        rc = cmd_random(argc, argv, m);
    } else if (!strcmp(argv[1], "logits") && argc >= 5) {
        if (adapter && mt_lora_import_peft(adapter, m, &l)) return fail();
        if (l) mt_lora_attach(l, m);
        rc = write_logits(m, argv[3], argv[4]);
    } else if (!strcmp(argv[1], "resave") && argc >= 5) {
        if (mt_lora_import_peft(argv[3], m, &l) || mt_lora_save_peft(l, m, argv[4])) return fail();
        const char *gguf = opt(argc, argv, "--gguf-lora", NULL);
        if (gguf && mt_lora_save_gguf(l, m, gguf)) return fail();
    } else if (!strcmp(argv[1], "merge") && argc >= 5) {
        mt_dtype t = !strcmp(argv[4], "f32") ? MT_F32 : !strcmp(argv[4], "f16") ? MT_F16 : MT_Q8_0;
        if (adapter && mt_lora_import_peft(adapter, m, &l)) return fail();
        if (mt_export_merged_gguf(m, l, t, argv[3])) return fail();
    } else {
        fprintf(stderr, "lora_tool: bad command line\n");
        rc = 2;
    }
    mt_lora_free(l);
    mt_model_free(m);
    return rc;
}
