#include "cli/beam_cli.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/beam.h"

void mt_beam_opts_defaults(mt_beam_opts *b) {
    memset(b, 0, sizeof *b);
    b->length_penalty = 1.0f;
    b->n_best = 1;
}

void mt_beam_opts_table(mt_beam_opts *b, mt_opt *t) {
    const mt_opt table[MT_BEAM_OPT_COUNT] = {
        {"--beams", NULL, MT_OPT_INT, &b->beams, "N",
         "beam search with N beams instead of sampling (0 = off)", MT_RANGE(0, MT_CLI_MAX_BEAMS)},
        {"--length-penalty", NULL, MT_OPT_FLOAT, &b->length_penalty, "X",
         "beam score = sum log-prob / length^X (1; > 0 favours longer replies)",
         MT_RANGE_FROM(-HUGE_VAL)},
        {"--early-stopping", NULL, MT_OPT_FLAG, &b->early_stopping, NULL,
         "end beam search as soon as N hypotheses are finished"},
        {"--n-best", NULL, MT_OPT_INT, &b->n_best, "K",
         "hypotheses to print with --beams, best first (1)", MT_RANGE(1, MT_CLI_MAX_BEAMS)},
    };
    memcpy(t, table, sizeof table);
}

static mt_status check_opts(const mt_gen_opts *o, const mt_beam_opts *b) {
    if (b->beams < 1) return mt_fail(MT_ERR_ARG, "--beams must be positive");
    if (b->n_best < 1 || b->n_best > b->beams)
        return mt_fail(MT_ERR_ARG, "--n-best must be in 1..%d (the number of beams)", b->beams);
    /* Beam search ranks whole sequences by log-probability; a logit penalty would change
     * the scores it reports, so refuse rather than silently ignore it. */
    if (o->sampling.repeat_penalty != 1.0f)
        return mt_fail(MT_ERR_ARG, "--repeat-penalty is not supported with --beams");
    return MT_OK;
}

static cJSON *hyp_json(const mt_beam_hyp *h) {
    cJSON *o = cJSON_CreateObject(), *ids = cJSON_CreateArray();
    if (!o || !ids) {
        cJSON_Delete(o);
        cJSON_Delete(ids);
        return NULL;
    }
    cJSON_AddStringToObject(o, "text", h->text ? h->text : "");
    for (int i = 0; i < h->n_tokens; i++)
        cJSON_AddItemToArray(ids, cJSON_CreateNumber(h->tokens[i]));
    cJSON_AddItemToObject(o, "tokens", ids);
    cJSON_AddNumberToObject(o, "score", h->score);
    cJSON_AddNumberToObject(o, "sum_logprob", h->sum_logprob);
    cJSON_AddNumberToObject(o, "length", h->length);
    cJSON_AddStringToObject(o, "stop", mt_stop_reason_name(h->stop));
    return o;
}

/* Top-level text/tokens/stop are the best hypothesis', as generate --json prints them. */
static mt_status print_json(const mt_beam_result *r, int beams, int n_best) {
    const mt_beam_hyp *best = &r->hyps[0];
    cJSON *o = cJSON_CreateObject(), *ids = cJSON_CreateArray(), *list = cJSON_CreateArray();
    if (!o || !ids || !list) {
        cJSON_Delete(o);
        cJSON_Delete(ids);
        cJSON_Delete(list);
        return mt_fail(MT_ERR_NOMEM, "out of memory");
    }
    cJSON_AddStringToObject(o, "text", best->text ? best->text : "");
    for (int i = 0; i < best->n_tokens; i++)
        cJSON_AddItemToArray(ids, cJSON_CreateNumber(best->tokens[i]));
    cJSON_AddItemToObject(o, "tokens", ids);
    cJSON_AddNumberToObject(o, "score", best->score);
    cJSON_AddNumberToObject(o, "prompt_tokens", r->n_prompt);
    cJSON_AddStringToObject(o, "stop", mt_stop_reason_name(best->stop));
    cJSON_AddNumberToObject(o, "beams", beams);
    cJSON_AddNumberToObject(o, "steps", r->n_steps);
    cJSON_AddNumberToObject(o, "prefill_seconds", r->prefill_seconds);
    cJSON_AddNumberToObject(o, "decode_seconds", r->decode_seconds);
    for (int i = 0; i < n_best && i < r->n_hyps; i++) {
        cJSON *h = hyp_json(&r->hyps[i]);
        if (!h) {
            cJSON_Delete(o);
            cJSON_Delete(list);
            return mt_fail(MT_ERR_NOMEM, "out of memory");
        }
        cJSON_AddItemToArray(list, h);
    }
    cJSON_AddItemToObject(o, "n_best", list);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return mt_fail(MT_ERR_NOMEM, "out of memory");
    printf("%s\n", s);
    cJSON_free(s);
    return MT_OK;
}

static void print_text(const mt_beam_result *r, int n_best) {
    if (n_best == 1) {
        printf("%s\n", r->hyps[0].text ? r->hyps[0].text : "");
        return;
    }
    for (int i = 0; i < n_best && i < r->n_hyps; i++)
        printf("[%d] score %.4f (log-prob %.4f, %d tokens, stop: %s)\n%s\n", i + 1,
               r->hyps[i].score, r->hyps[i].sum_logprob, r->hyps[i].length,
               mt_stop_reason_name(r->hyps[i].stop), r->hyps[i].text ? r->hyps[i].text : "");
}

static void print_stats(const mt_beam_result *r, int beams) {
    fprintf(stderr,
            "[prompt %d tokens in %.2f s (%.1f tok/s); %d beams x %d steps in %.2f s (%.1f ms "
            "per step); %lld KV rows copied; best stop: %s]\n",
            r->n_prompt, r->prefill_seconds, r->n_prompt / (r->prefill_seconds + 1e-9), beams,
            r->n_steps, r->decode_seconds, 1e3 * r->decode_seconds / (r->n_steps ? r->n_steps : 1),
            r->kv_rows_copied, mt_stop_reason_name(r->hyps[0].stop));
}

mt_status mt_cli_beam_generate(const mt_session *s, const mt_gen_opts *o, const mt_beam_opts *b,
                               const mt_json_constraint *constraint, const int32_t *prompt, int n,
                               const int32_t *stop_tokens, int n_stop_tokens, int json) {
    mt_status st = check_opts(o, b);
    if (st) return st;
    if (o->max_tokens <= 0) return mt_fail(MT_ERR_ARG, "--max-tokens must be positive");
    mt_beam_params p = mt_beam_defaults();
    p.n_beams = b->beams;
    p.length_penalty = b->length_penalty;
    p.early_stopping = b->early_stopping ? MT_BEAM_STOP_EARLY : MT_BEAM_STOP_HEURISTIC;
    p.max_tokens = o->max_tokens;
    p.n_ctx = o->n_ctx;
    p.stop_tokens = stop_tokens;
    p.n_stop_tokens = n_stop_tokens;
    p.stop_strings = o->stops.items;
    p.n_stop_strings = o->stops.n;
    p.constraint = constraint;
    mt_beam_result r;
    if ((st = mt_beam_search(s->model, s->tok, prompt, n, &p, &r))) return st;
    if (r.n_hyps == 0) {
        mt_beam_result_free(&r);
        return mt_fail(MT_ERR_INTERNAL, "beam search finished no hypothesis");
    }
    if (json)
        st = print_json(&r, b->beams, b->n_best);
    else
        print_text(&r, b->n_best);
    if (o->stats) print_stats(&r, b->beams);
    mt_beam_result_free(&r);
    return st;
}

mt_status mt_cli_beam_reply(const mt_session *s, const mt_gen_opts *o, const mt_beam_opts *b,
                            const mt_json_constraint *constraint, const mt_chat_msg *msgs, int n,
                            const char *raw, int json) {
    mt_status st = check_opts(o, b);
    if (st) return st;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int32_t stops[8];
    const int n_stops = mt_session_stop_tokens(s, stops, 8); /* raw prompts too, as generate */
    if (!(st = mt_session_encode(s, msgs, n, raw, &ids, &n_ids)))
        st = mt_cli_beam_generate(s, o, b, constraint, ids, (int)n_ids, stops, n_stops, json);
    free(ids);
    return st;
}
