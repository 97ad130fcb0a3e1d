#include "cli/expert_flags.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mt_expert_flags_init(mt_expert_flags *f, mt_opt *opts) {
    *f = (mt_expert_flags){.json_mode = "schema", .retries = -1, .expert_slots = 8};
    const mt_opt table[MT_EXPERT_FLAG_COUNT] = {
        {"--expert", NULL, MT_OPT_STR, &f->expert, "local:MODEL",
         "answer with a local model in this process"},
        {"--expert-url", NULL, MT_OPT_STR, &f->url, "URL",
         "OpenAI-compatible endpoint, e.g. http://host:8080/v1"},
        {"--expert-model", NULL, MT_OPT_STR, &f->model, "NAME", "model name sent to the endpoint"},
        {"--api-key-env", NULL, MT_OPT_STR, &f->key_env, "VAR",
         "environment variable with the API key (OPENAI_API_KEY when set)"},
        {"--concurrency", NULL, MT_OPT_INT, &f->concurrency, "N", "expert requests in flight (4)",
         MT_RANGE(1, 256)},
        {"--timeout", NULL, MT_OPT_FLOAT, &f->timeout, "S", "seconds per request (120)",
         MT_RANGE_OPEN_LO(0, MT_CLI_MAX_SECONDS)},
        {"--connect-timeout", NULL, MT_OPT_FLOAT, &f->connect_timeout, "S",
         "seconds to connect (10)", MT_RANGE_OPEN_LO(0, MT_CLI_MAX_SECONDS)},
        {"--max-retries", NULL, MT_OPT_INT, &f->retries, "N", "retries per request (6)",
         MT_RANGE(0, 100)},
        {"--backoff-base", NULL, MT_OPT_FLOAT, &f->backoff_base, "S",
         "first retry delay, doubled each time, with jitter (1)", MT_RANGE(0, MT_CLI_MAX_SECONDS)},
        {"--backoff-max", NULL, MT_OPT_FLOAT, &f->backoff_max, "S", "longest retry delay (60)",
         MT_RANGE(0, MT_CLI_MAX_SECONDS)},
        {"--json-mode", NULL, MT_OPT_STR, &f->json_mode, "MODE",
         "structured replies: schema (OpenAI) | object (llama.cpp) | none"},
        {"--cost-per-1k-prompt", NULL, MT_OPT_FLOAT, &f->cost_prompt, "X",
         "price per 1000 prompt tokens", MT_RANGE_FROM(0)},
        {"--cost-per-1k-completion", NULL, MT_OPT_FLOAT, &f->cost_completion, "X",
         "price per 1000 completion tokens", MT_RANGE_FROM(0)},
        {"--max-cost", NULL, MT_OPT_FLOAT, &f->max_cost, "X",
         "stop cleanly once the run has spent this much (resumable)", MT_RANGE_FROM(0)},
        {"--max-requests", NULL, MT_OPT_INT, &f->max_requests, "N",
         "stop cleanly after this many HTTP requests in the run (resumable)", MT_RANGE(0, INT_MAX)},
        {"--expert-slots", NULL, MT_OPT_INT, &f->expert_slots, "N",
         "sequences the local expert decodes together (8)", MT_RANGE(1, 256)},
    };
    memcpy(opts, table, sizeof table);
}

static mt_status parse_json_mode(const char *s, mt_json_mode *out) {
    if (!strcmp(s, "schema"))
        *out = MT_JSON_MODE_SCHEMA;
    else if (!strcmp(s, "object"))
        *out = MT_JSON_MODE_OBJECT;
    else if (!strcmp(s, "none"))
        *out = MT_JSON_MODE_NONE;
    else
        return mt_fail(MT_ERR_ARG, "--json-mode must be schema, object or none (got '%s')", s);
    return MT_OK;
}

static mt_status local_spec(const mt_expert_flags *f, int threads, uint64_t seed,
                            mt_expert_spec *sp) {
    if (strncmp(f->expert, "local:", 6) || !f->expert[6])
        return mt_fail(MT_ERR_ARG,
                       "--expert takes local:MODEL (for a remote expert use --expert-url and "
                       "--expert-model)");
    if (f->url) return mt_fail(MT_ERR_ARG, "give either --expert local:MODEL or --expert-url");
    sp->local_model = f->expert + 6;
    sp->local = (mt_local_opts){
        .chat_template = NULL, .threads = threads, .slots = f->expert_slots, .seed = seed};
    return MT_OK;
}

mt_status mt_expert_flags_spec(const mt_expert_flags *f, int threads, uint64_t seed,
                               int need_expert, mt_expert_spec *sp) {
    memset(sp, 0, sizeof *sp);
    sp->remote = mt_remote_defaults();
    if (f->expert) return local_spec(f, threads, seed, sp);
    if (!f->url && need_expert)
        return mt_fail(MT_ERR_ARG, "no expert: pass --expert local:MODEL, or --expert-url URL and "
                                   "--expert-model NAME");
    mt_remote_opts *r = &sp->remote;
    r->url = f->url;
    r->model = f->model;
    if (f->concurrency) r->concurrency = f->concurrency;
    if (f->retries >= 0) r->max_retries = f->retries;
    if (f->timeout > 0) r->timeout_s = f->timeout;
    if (f->connect_timeout > 0) r->connect_timeout_s = f->connect_timeout;
    if (f->backoff_base > 0) r->backoff_base_s = f->backoff_base;
    if (f->backoff_max > 0) r->backoff_max_s = f->backoff_max;
    r->cost_per_1k_prompt = f->cost_prompt;
    r->cost_per_1k_completion = f->cost_completion;
    r->max_cost = f->max_cost;
    r->max_requests = f->max_requests;
    r->seed = seed;
    sp->key_env = f->key_env;
    if (!f->key_env && getenv("OPENAI_API_KEY")) sp->key_env = "OPENAI_API_KEY";
    /* A missing key stops the run before the weak model does any work. */
    const char *key;
    mt_status st = need_expert ? mt_expert_api_key(sp, &key) : MT_OK;
    return st ? st : parse_json_mode(f->json_mode, &r->json_mode);
}

int mt_expert_flags_table(mt_expert_flags *f, const mt_opt *head, int n_head, const mt_opt *tail,
                          int n_tail, mt_opt *opts) {
    memcpy(opts, head, (size_t)n_head * sizeof *head);
    mt_expert_flags_init(f, opts + n_head);
    memcpy(opts + n_head + MT_EXPERT_FLAG_COUNT, tail, (size_t)n_tail * sizeof *tail);
    return n_head + MT_EXPERT_FLAG_COUNT + n_tail;
}

int mt_expert_verb_exit(mt_status st) {
    if (st == MT_ERR_BUDGET) {
        fprintf(stderr, "meteor: stopped: %s\n", mt_last_error());
        return 3;
    }
    return st ? mt_report_error() : 0;
}
