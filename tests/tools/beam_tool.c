/* Test tool: beam search over given prompt token ids, printing the n-best list as JSON.
 *   beam_tool MODEL IDS N MAX_NEW [LENGTH_PENALTY] [EARLY] [STOP_IDS] [THREADS]
 * IDS and STOP_IDS are comma-separated ("-" for no extra stop tokens). EARLY: 0 (the
 * transformers heuristic), 1 (stop at N finished) or "never". The model's tokenizer,
 * when it has one, adds its EOS and the texts; tiny test models have none. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/beam.h"
#include "kernels/matmul.h"

static int fail(void) {
    fprintf(stderr, "beam_tool: %s\n", mt_last_error());
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

static cJSON *hyp_json(const mt_beam_hyp *h) {
    cJSON *o = cJSON_CreateObject(), *ids = cJSON_CreateArray();
    for (int i = 0; i < h->n_tokens; i++)
        cJSON_AddItemToArray(ids, cJSON_CreateNumber(h->tokens[i]));
    cJSON_AddItemToObject(o, "tokens", ids);
    cJSON_AddNumberToObject(o, "score", h->score);
    cJSON_AddNumberToObject(o, "sum_logprob", h->sum_logprob);
    cJSON_AddNumberToObject(o, "length", h->length);
    cJSON_AddStringToObject(o, "stop", mt_stop_reason_name(h->stop));
    cJSON_AddNumberToObject(o, "stop_token", h->stop_token);
    if (h->text) cJSON_AddStringToObject(o, "text", h->text);
    return o;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: beam_tool MODEL IDS N MAX_NEW [LENGTH_PENALTY] [EARLY] "
                        "[STOP_IDS] [THREADS]\n");
        return 2;
    }
    int32_t *ids = NULL, *stops = NULL;
    const int n = parse_ids(argv[2], &ids);
    mt_beam_params p = mt_beam_defaults();
    p.n_beams = atoi(argv[3]);
    p.max_tokens = atoi(argv[4]);
    if (argc > 5) p.length_penalty = strtof(argv[5], NULL);
    if (argc > 6)
        p.early_stopping =
            !strcmp(argv[6], "never") ? MT_BEAM_STOP_NEVER : (mt_beam_stopping)atoi(argv[6]);
    if (argc > 7 && strcmp(argv[7], "-")) {
        p.n_stop_tokens = parse_ids(argv[7], &stops);
        p.stop_tokens = stops;
    }
    mt_kernels_set_threads(argc > 8 ? atoi(argv[8]) : 0);
    mt_model *m = NULL;
    if (mt_model_load(argv[1], &m)) return fail();
    mt_tokenizer *tok = NULL;
    if (mt_tokenizer_load(argv[1], &tok)) tok = NULL;
    mt_beam_result r;
    if (mt_beam_search(m, tok, ids, n, &p, &r)) return fail();
    cJSON *o = cJSON_CreateObject(), *hyps = cJSON_CreateArray();
    for (int i = 0; i < r.n_hyps; i++) cJSON_AddItemToArray(hyps, hyp_json(&r.hyps[i]));
    cJSON_AddItemToObject(o, "hyps", hyps);
    cJSON_AddNumberToObject(o, "n_prompt", r.n_prompt);
    cJSON_AddNumberToObject(o, "n_steps", r.n_steps);
    cJSON_AddNumberToObject(o, "kv_rows_copied", (double)r.kv_rows_copied);
    cJSON_AddNumberToObject(o, "prefill_seconds", r.prefill_seconds);
    cJSON_AddNumberToObject(o, "decode_seconds", r.decode_seconds);
    char *s = cJSON_PrintUnformatted(o);
    printf("%s\n", s);
    cJSON_free(s);
    cJSON_Delete(o);
    mt_beam_result_free(&r);
    mt_tokenizer_free(tok);
    mt_model_free(m);
    free(ids);
    free(stops);
    return 0;
}
