/* Timing of JSON-schema token masks on a real tokenizer's vocabulary.
 *
 *   json_mask_bench MODEL.gguf [DOCS_PER_SCHEMA] [SEED]
 *
 * Builds the token index, compiles a few schemas, then simulates decoding: each step
 * fills the mask (timed), picks a random allowed token (seeded; a tenth of the time one
 * that closes a string, object or array, so documents stay finite; when the document may
 * end, a coin flip ends it), accepts it, until the document must end or 400 tokens.
 * Every finished document must parse (cJSON) and pass the schema checker. Prints the CPU,
 * the index build, and per schema the compile time and the mask time median / p99. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "expert/json_reply.h"
#include "infer/grammar.h"
#include "infer/json_schema.h"
#include "infer/token_index.h"
#include "tokenizer/tokenizer.h"

static const struct {
    const char *name, *schema;
} SCHEMAS[] = {
    {"verdict",
     "{\"type\":\"object\",\"properties\":{\"verdict\":{\"enum\":[\"accept\",\"revise\"]},"
     "\"feedback\":{\"type\":\"string\",\"maxLength\":400},\"hints\":{\"type\":\"array\","
     "\"items\":{\"type\":\"string\"},\"maxItems\":3}},\"required\":[\"verdict\",\"feedback\","
     "\"hints\"]}"},
    {"judge", "{\"type\":\"object\",\"properties\":{"
              "\"accuracy\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":10},"
              "\"completeness\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":10},"
              "\"clarity\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":10},"
              "\"relevance\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":10},"
              "\"depth\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":10},"
              "\"rationale\":{\"type\":\"string\"}},\"required\":[\"accuracy\",\"completeness\","
              "\"clarity\",\"relevance\",\"depth\",\"rationale\"]}"},
    {"nested",
     "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{"
     "\"name\":{\"type\":\"string\",\"maxLength\":30},"
     "\"value\":{\"anyOf\":[{\"type\":\"integer\",\"minimum\":0,\"maximum\":1000},"
     "{\"type\":\"string\",\"maxLength\":20},{\"type\":\"boolean\"},{\"type\":\"null\"}]},"
     "\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"a\",\"b\",\"c\"]}},"
     "\"children\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"},"
     "\"maxItems\":3}},\"required\":[\"name\",\"value\"]}},"
     "\"$ref\":\"#/$defs/node\"}"},
    {"json_object", "{\"type\":\"object\"}"},
};

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_cpu(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            const char *v = strchr(line, ':');
            printf("cpu: %s", v ? v + 2 : line);
            break;
        }
    }
    if (f) fclose(f);
}

static int closes(const mt_token_index *ix, int id) {
    for (uint32_t k = ix->off[id]; k < ix->off[id + 1]; k++)
        if (ix->bytes[k] == '"' || ix->bytes[k] == '}' || ix->bytes[k] == ']') return 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [DOCS_PER_SCHEMA] [SEED]\n", argv[0]);
        return 2;
    }
    const int docs = argc > 2 ? atoi(argv[2]) : 20;
    const uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
    print_cpu();
    mt_tokenizer *tok = NULL;
    if (mt_tokenizer_load(argv[1], &tok)) {
        fprintf(stderr, "json_mask_bench: %s\n", mt_last_error());
        return 1;
    }
    const int n = mt_tokenizer_n_vocab(tok);
    double t0 = now_us();
    mt_token_index *ix = NULL;
    if (mt_token_index_from_tokenizer(tok, n, &ix)) {
        fprintf(stderr, "json_mask_bench: %s\n", mt_last_error());
        return 1;
    }
    printf("vocabulary: %d tokens, index build %.1f ms, trie %u nodes (%u outside the "
           "string-content sets), longest token %d bytes\n",
           n, (now_us() - t0) / 1e3, ix->all.n_node, ix->nonstr.n_node, ix->max_len);
    uint64_t *bits = calloc((size_t)ix->words, sizeof *bits);
    int32_t *cand = calloc((size_t)n, sizeof *cand), *closing = calloc((size_t)n, sizeof *closing);
    const size_t max_steps = 400, cap_times = (size_t)docs * max_steps;
    double *times = calloc(cap_times, sizeof *times);
    char *text = malloc(max_steps * (MT_TOKEN_INDEX_MAX_BYTES + 1) + 1);
    mt_rng r;
    mt_rng_seed(&r, seed);
    int failures = 0;
    for (size_t s = 0; s < sizeof SCHEMAS / sizeof *SCHEMAS; s++) {
        const char *sch = SCHEMAS[s].schema;
        mt_grammar *g = NULL;
        double best = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            mt_grammar_free(g);
            g = NULL;
            t0 = now_us();
            if (mt_json_schema_compile(sch, strlen(sch), &g)) {
                fprintf(stderr, "json_mask_bench: %s\n", mt_last_error());
                return 1;
            }
            const double t = (now_us() - t0) / 1e3;
            if (t < best) best = t;
        }
        cJSON *schema = cJSON_Parse(sch);
        mt_gcache *cache = NULL;
        if (mt_gcache_new(g, ix, 0, &cache)) return 1;
        size_t n_times = 0;
        int finished = 0, steps_total = 0;
        for (int d = 0; d < docs; d++) {
            mt_gmatch *m = NULL;
            if (mt_gmatch_new(g, ix, cache, &m)) return 1;
            size_t len = 0;
            int ended = 0;
            for (size_t step = 0; step < max_steps; step++) {
                if (mt_gmatch_must_end(m) || (mt_gmatch_can_end(m) && mt_rng_uniform(&r) < 0.5)) {
                    ended = 1;
                    break;
                }
                const double a = now_us();
                if (mt_gmatch_fill_mask(m, bits)) {
                    fprintf(stderr, "json_mask_bench: %s\n", mt_last_error());
                    return 1;
                }
                times[n_times++] = now_us() - a;
                int nc = 0, ncl = 0;
                for (int w = 0; w < ix->words; w++)
                    for (uint64_t x = bits[w]; x; x &= x - 1) {
                        const int id = w * 64 + __builtin_ctzll(x);
                        cand[nc++] = id;
                        if (closes(ix, id)) closing[ncl++] = id;
                    }
                if (!nc) {
                    fprintf(stderr, "%s: no token allowed after %.*s\n", SCHEMAS[s].name, (int)len,
                            text);
                    failures++;
                    break;
                }
                const int id = ncl && mt_rng_uniform(&r) < 0.1
                                   ? closing[mt_rng_next(&r) % (uint64_t)ncl]
                                   : cand[mt_rng_next(&r) % (uint64_t)nc];
                if (mt_gmatch_accept(m, id)) {
                    fprintf(stderr, "json_mask_bench: %s\n", mt_last_error());
                    return 1;
                }
                const uint32_t tl = ix->off[id + 1] - ix->off[id];
                memcpy(text + len, ix->bytes + ix->off[id], tl);
                len += tl;
                steps_total++;
            }
            if (!ended && mt_gmatch_must_end(m)) ended = 1;
            mt_gmatch_free(m);
            if (!ended) continue;
            finished++;
            text[len] = '\0';
            cJSON *doc = cJSON_Parse(text);
            if (!doc || mt_json_schema_check(schema, doc)) {
                fprintf(stderr, "%s: %s: %s\n", SCHEMAS[s].name, doc ? mt_last_error() : "not JSON",
                        text);
                failures++;
            }
            if (d == 0) printf("  %s sample: %.300s\n", SCHEMAS[s].name, text);
            cJSON_Delete(doc);
        }
        qsort(times, n_times, sizeof *times, cmp_double);
        const double med = n_times ? times[n_times / 2] : 0;
        const double p99 = n_times ? times[(size_t)((double)(n_times - 1) * 0.99)] : 0;
        const double max = n_times ? times[n_times - 1] : 0;
        printf("%-12s compile %.2f ms (%d states)  steps %d  documents %d/%d finished  "
               "mask us: median %.1f  p99 %.1f  max %.1f\n",
               SCHEMAS[s].name, best, mt_grammar_n_states(g), steps_total, finished, docs, med, p99,
               max);
        mt_gcache_release(cache);
        mt_grammar_free(g);
        cJSON_Delete(schema);
    }
    free(times);
    free(text);
    free(bits);
    free(cand);
    free(closing);
    mt_token_index_free(ix);
    mt_tokenizer_free(tok);
    if (failures) printf("FAILURES: %d\n", failures);
    return failures ? 1 : 0;
}
