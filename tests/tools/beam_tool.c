/* Test tool: beam search, printing n-best lists as JSON.
 *
 * One prompt (mt_beam_search):
 *   beam_tool MODEL IDS N MAX_NEW [LENGTH_PENALTY] [EARLY] [STOP_IDS] [THREADS]
 * IDS and STOP_IDS are comma-separated ("-" for no extra stop tokens). EARLY: 0 (the
 * transformers heuristic), 1 (stop at N finished) or "never". The model's tokenizer,
 * when it has one, adds its EOS and the texts; tiny test models have none.
 *
 * Several prompts (mt_beam_search_batch), one JSON object per stdin line: {"ids": [...]}
 * (token ids) or {"chat": "question"} (rendered with the model's chat template, whose
 * end-of-turn tokens then stop hypotheses too):
 *   beam_tool --batch MODEL N MAX_NEW LENGTH_PENALTY EARLY STOP_IDS THREADS MAX_PROMPTS
 *             [--fast] [--alone] [--abort-after K]
 * --fast: outside precise mode, weights packed, as `meteor generate` decodes.
 * --alone: each prompt by mt_beam_search, one after the other, for comparison.
 * --abort-after K: the callback refuses the result after K (the search's error path).
 * Prints {"results": [per prompt, in input order], "order": [completion order],
 * "stats": {...}, "seconds": search time}. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "infer/beam.h"
#include "infer/session.h"
#include "kernels/matmul.h"
#include "model/pack.h"

#define MAX_CHAT_STOPS 8

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

static mt_beam_stopping parse_early(const char *s) {
    return !strcmp(s, "never") ? MT_BEAM_STOP_NEVER : (mt_beam_stopping)atoi(s);
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

static cJSON *result_json(const mt_beam_result *r) {
    cJSON *o = cJSON_CreateObject(), *hyps = cJSON_CreateArray();
    for (int i = 0; i < r->n_hyps; i++) cJSON_AddItemToArray(hyps, hyp_json(&r->hyps[i]));
    cJSON_AddItemToObject(o, "hyps", hyps);
    cJSON_AddNumberToObject(o, "n_prompt", r->n_prompt);
    cJSON_AddNumberToObject(o, "n_steps", r->n_steps);
    cJSON_AddNumberToObject(o, "kv_rows_copied", (double)r->kv_rows_copied);
    cJSON_AddNumberToObject(o, "prefill_seconds", r->prefill_seconds);
    cJSON_AddNumberToObject(o, "decode_seconds", r->decode_seconds);
    return o;
}

static void print_json(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    printf("%s\n", s);
    cJSON_free(s);
    cJSON_Delete(o);
}

static int one_prompt(int argc, char **argv) {
    int32_t *ids = NULL, *stops = NULL;
    const int n = parse_ids(argv[2], &ids);
    mt_beam_params p = mt_beam_defaults();
    p.n_beams = atoi(argv[3]);
    p.max_tokens = atoi(argv[4]);
    if (argc > 5) p.length_penalty = strtof(argv[5], NULL);
    if (argc > 6) p.early_stopping = parse_early(argv[6]);
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
    print_json(result_json(&r));
    mt_beam_result_free(&r);
    mt_tokenizer_free(tok);
    mt_model_free(m);
    free(ids);
    free(stops);
    return 0;
}

/* Every prompt's result as JSON, at its input index, and the completion order. */
typedef struct {
    cJSON **results;
    cJSON *order;
    int n_done, abort_after; /* abort_after < 0: never */
} collected;

static mt_status collect(void *user, int index, const mt_beam_result *r) {
    collected *c = user;
    if (c->n_done == c->abort_after)
        return mt_fail(MT_ERR_ARG, "aborted by the caller after %d results", c->abort_after);
    c->n_done++;
    c->results[index] = result_json(r);
    cJSON_AddItemToArray(c->order, cJSON_CreateNumber(index));
    return MT_OK;
}

/* The prompts of stdin's lines; *chat_used when one needed the chat template. Nonzero
 * on a bad line. */
static int read_prompts(const mt_session *s, mt_beam_prompt **out, int *n_out, int *chat_used) {
    char line[1 << 16];
    int n = 0, cap = 0;
    mt_beam_prompt *pr = NULL;
    while (fgets(line, sizeof line, stdin)) {
        if (line[strspn(line, " \t\r\n")] == '\0') continue;
        cJSON *o = cJSON_Parse(line);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(o, "ids");
        const cJSON *chat = cJSON_GetObjectItemCaseSensitive(o, "chat");
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            pr = realloc(pr, (size_t)cap * sizeof *pr);
        }
        int32_t *toks = NULL;
        int n_toks = 0;
        if (cJSON_IsArray(ids)) {
            n_toks = cJSON_GetArraySize(ids);
            toks = calloc((size_t)(n_toks ? n_toks : 1), sizeof *toks);
            for (int i = 0; i < n_toks; i++)
                toks[i] = (int32_t)cJSON_GetArrayItem(ids, i)->valuedouble;
        } else if (cJSON_IsString(chat) && s->tok) {
            const mt_chat_msg msg = {"user", chat->valuestring};
            size_t n_ids = 0;
            if (mt_session_encode(s, &msg, 1, NULL, &toks, &n_ids)) return fail();
            n_toks = (int)n_ids;
            *chat_used = 1;
        } else {
            fprintf(stderr, "beam_tool: line %d is neither {\"ids\": [...]} nor {\"chat\": ...}\n",
                    n + 1);
            return 1;
        }
        cJSON_Delete(o);
        pr[n++] = (mt_beam_prompt){.prompt = toks, .n_prompt = n_toks};
    }
    *out = pr;
    *n_out = n;
    return 0;
}

static int batch(int argc, char **argv) {
    if (argc < 10) {
        fprintf(stderr, "usage: beam_tool --batch MODEL N MAX_NEW LENGTH_PENALTY EARLY STOP_IDS "
                        "THREADS MAX_PROMPTS [--fast] [--alone] [--abort-after K] "
                        "< prompts.jsonl\n");
        return 2;
    }
    int fast = 0, alone = 0, abort_after = -1;
    for (int i = 10; i < argc; i++) {
        fast |= !strcmp(argv[i], "--fast");
        alone |= !strcmp(argv[i], "--alone");
        if (!strcmp(argv[i], "--abort-after") && i + 1 < argc) abort_after = atoi(argv[++i]);
    }
    mt_kernels_set_precise(!fast);
    mt_beam_params p = mt_beam_defaults();
    p.n_beams = atoi(argv[3]);
    p.max_tokens = atoi(argv[4]);
    p.length_penalty = strtof(argv[5], NULL);
    p.early_stopping = parse_early(argv[6]);
    int32_t stops[64 + MAX_CHAT_STOPS];
    int n_stops = 0;
    if (strcmp(argv[7], "-")) {
        int32_t *given = NULL;
        n_stops = parse_ids(argv[7], &given);
        if (n_stops > 64) n_stops = 64;
        memcpy(stops, given, (size_t)n_stops * sizeof *stops);
        free(given);
    }
    const int max_prompts = atoi(argv[9]);
    /* A model with a tokenizer opens as a session (packed outside precise mode); tiny
     * test models have none and load bare. */
    mt_session s;
    if (mt_session_open(&s, argv[2], atoi(argv[8]), NULL)) {
        memset(&s, 0, sizeof s);
        mt_kernels_set_threads(atoi(argv[8]));
        if (mt_model_load(argv[2], &s.model) || (fast && mt_model_pack(s.model))) return fail();
    }
    mt_beam_prompt *prompts = NULL;
    int n = 0, chat_used = 0;
    if (read_prompts(&s, &prompts, &n, &chat_used)) return 1;
    if (chat_used) n_stops += mt_session_stop_tokens(&s, stops + n_stops, MAX_CHAT_STOPS);
    p.stop_tokens = stops;
    p.n_stop_tokens = n_stops;
    collected c = {.results = calloc((size_t)(n ? n : 1), sizeof *c.results),
                   .order = cJSON_CreateArray(),
                   .abort_after = abort_after};
    mt_beam_batch_stats stats;
    memset(&stats, 0, sizeof stats);
    const double t0 = mt_now_seconds();
    for (int i = 0; alone && i < n; i++) {
        mt_beam_result r;
        if (mt_beam_search(s.model, s.tok, prompts[i].prompt, prompts[i].n_prompt, &p, &r))
            return fail();
        collect(&c, i, &r);
        mt_beam_result_free(&r);
    }
    if (!alone &&
        mt_beam_search_batch(s.model, s.tok, prompts, n, &p, max_prompts, collect, &c, &stats)) {
        /* Everything freed first, so that a leak check covers the search's error path. */
        fprintf(stderr, "beam_tool: %s (%d results taken)\n", mt_last_error(), c.n_done);
        for (int i = 0; i < n; i++) {
            free((void *)prompts[i].prompt);
            cJSON_Delete(c.results[i]);
        }
        free(prompts);
        free(c.results);
        cJSON_Delete(c.order);
        mt_session_close(&s);
        return 1;
    }
    const double seconds = mt_now_seconds() - t0;
    cJSON *o = cJSON_CreateObject(), *results = cJSON_CreateArray(), *st = cJSON_CreateObject();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(results, c.results[i] ? c.results[i] : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "results", results);
    cJSON_AddItemToObject(o, "order", c.order);
    cJSON_AddNumberToObject(st, "n_prompts", stats.n_prompts);
    cJSON_AddNumberToObject(st, "n_steps", (double)stats.n_steps);
    cJSON_AddNumberToObject(st, "n_step_tokens", (double)stats.n_step_tokens);
    cJSON_AddNumberToObject(st, "prefill_seconds", stats.prefill_seconds);
    cJSON_AddNumberToObject(st, "decode_seconds", stats.decode_seconds);
    cJSON_AddItemToObject(o, "stats", st);
    cJSON_AddNumberToObject(o, "seconds", seconds);
    print_json(o);
    for (int i = 0; i < n; i++) free((void *)prompts[i].prompt);
    free(prompts);
    free(c.results);
    mt_session_close(&s);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--batch")) return batch(argc, argv);
    if (argc < 5) {
        fprintf(stderr, "usage: beam_tool MODEL IDS N MAX_NEW [LENGTH_PENALTY] [EARLY] "
                        "[STOP_IDS] [THREADS]\n"
                        "       beam_tool --batch MODEL N MAX_NEW LENGTH_PENALTY EARLY STOP_IDS "
                        "THREADS MAX_PROMPTS [--fast] [--alone] [--abort-after K] "
                        "< prompts.jsonl\n");
        return 2;
    }
    return one_prompt(argc, argv);
}
