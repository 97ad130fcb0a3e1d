/* Test tool: runs meteor's forward pass over given token ids and writes the logits of
 * every position as raw little-endian float32 (n_tokens x n_vocab), for oracle tests.
 *   dump_logits MODEL IDS OUT.f32 [SPLIT] [THREADS] [fast]
 * IDS is comma-separated. SPLIT: feed the first SPLIT tokens in one call and the rest one
 * at a time through the KV cache (default: all in one call). "fast" decodes with 8-bit
 * activations and packed weights as generation does; the default is the precise f32
 * path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/matmul.h"
#include "model/forward.h"
#include "model/pack.h"

static int fail(void) {
    fprintf(stderr, "dump_logits: %s\n", mt_last_error());
    return 1;
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

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: dump_logits MODEL IDS OUT.f32 [SPLIT] [THREADS]\n");
        return 2;
    }
    int32_t *ids = NULL;
    const int n = parse_ids(argv[2], &ids);
    int split = argc > 4 ? atoi(argv[4]) : n;
    if (split <= 0 || split > n) split = n;
    mt_kernels_set_threads(argc > 5 ? atoi(argv[5]) : 0);
    const int fast = argc > 6 && !strcmp(argv[6], "fast");
    mt_kernels_set_precise(!fast);
    mt_model *m = NULL;
    if (mt_model_load(argv[1], &m) || (fast && mt_model_pack(m))) return fail();
    const int V = m->cfg.n_vocab;
    float *logits = calloc((size_t)n * V, sizeof *logits);
    mt_kv_cache kv;
    if (mt_kv_cache_init(&kv, &m->cfg, n)) return fail();
    if (mt_forward(m, &kv, ids, split, logits, MT_LOGITS_ALL)) return fail();
    for (int t = split; t < n; t++)
        if (mt_forward(m, &kv, ids + t, 1, logits + (size_t)t * V, MT_LOGITS_LAST)) return fail();
    FILE *f = fopen(argv[3], "wb");
    if (!f || fwrite(logits, sizeof *logits, (size_t)n * V, f) != (size_t)n * V) {
        fprintf(stderr, "dump_logits: cannot write %s\n", argv[3]);
        return 1;
    }
    fclose(f);
    mt_kv_cache_free(&kv);
    mt_model_free(m);
    free(logits);
    free(ids);
    return 0;
}
