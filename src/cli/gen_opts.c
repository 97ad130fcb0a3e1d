#include "cli/gen_opts.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "io/file_util.h"

void mt_gen_opts_defaults(mt_gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_tokens = 256;
    o->sampling = mt_sampler_defaults();
    /* Sampling by default, as chat front-ends do; --greedy makes runs repeatable. */
    o->sampling.temperature = 0.7f;
    o->sampling.top_p = 0.95f;
    o->sampling.top_k = 50;
}

void mt_gen_opts_table(mt_gen_opts *o, mt_opt *t) {
    const mt_opt table[MT_GEN_OPT_COUNT] = {
        {"--model", "-m", MT_OPT_STR, &o->model, "MODEL", "GGUF file or Hugging Face folder"},
        {"--max-tokens", "-n", MT_OPT_INT, &o->max_tokens, "N", "tokens to generate at most (256)",
         MT_RANGE(1, MT_CLI_MAX_TOKENS)},
        {"--greedy", NULL, MT_OPT_FLAG, &o->greedy, NULL, "always take the most likely token"},
        {"--temperature", NULL, MT_OPT_FLOAT, &o->sampling.temperature, "T",
         "sampling temperature (0.7; 0 = greedy)", MT_RANGE_FROM(0)},
        {"--top-k", NULL, MT_OPT_INT, &o->sampling.top_k, "K",
         "keep the K most likely tokens (50; 0 = off)", MT_RANGE(0, INT_MAX)},
        {"--top-p", NULL, MT_OPT_FLOAT, &o->sampling.top_p, "P",
         "nucleus sampling mass (0.95; 1 = off)", MT_RANGE_OPEN_LO(0, 1)},
        {"--min-p", NULL, MT_OPT_FLOAT, &o->sampling.min_p, "P",
         "drop tokens below P x the best probability (0)", MT_RANGE_OPEN_HI(0, 1)},
        {"--repeat-penalty", NULL, MT_OPT_FLOAT, &o->sampling.repeat_penalty, "X",
         "repetition penalty (1 = off)", MT_RANGE_ABOVE(0)},
        {"--repeat-last-n", NULL, MT_OPT_INT, &o->sampling.repeat_last_n, "N",
         "history the penalty looks at (64; -1 = all)", MT_RANGE(-1, INT_MAX)},
        {"--seed", NULL, MT_OPT_U64, &o->sampling.seed, "S", "random seed (42)"},
        {"--stop", NULL, MT_OPT_STR_LIST, &o->stops, "TEXT", "stop before this text (repeatable)"},
        {"--ctx", NULL, MT_OPT_INT, &o->n_ctx, "N", "context size (prompt + max tokens)",
         MT_RANGE(0, MT_CLI_MAX_TOKENS)},
        {"--threads", "-t", MT_OPT_INT, &o->threads, "N", "threads (0 = all cores)",
         MT_RANGE(0, MT_CLI_MAX_THREADS)},
        {"--chat-template", NULL, MT_OPT_STR, &o->chat_template, "NAME",
         "chatml | llama3 | gemma (default: from the model)"},
        {"--system", NULL, MT_OPT_STR, &o->system, "TEXT", "system message for chat prompts"},
        {"--stats", NULL, MT_OPT_FLAG, &o->stats, NULL, "print timing and tokens/s to stderr"},
        {"--verbose", "-v", MT_OPT_FLAG, &o->stats, NULL, "same as --stats"},
        {"--adapter", NULL, MT_OPT_STR, &o->adapter, "DIR", "apply a LoRA adapter (PEFT folder)"},
        {"--precise", NULL, MT_OPT_FLAG, &o->precise, NULL,
         "f32 activations in decoding (slower; matches the f32 reference)"},
        {"--json-schema", NULL, MT_OPT_STR, &o->json_schema, "FILE",
         "the reply is JSON that this JSON Schema accepts (constrained decoding)"},
        {"--json-object", NULL, MT_OPT_FLAG, &o->json_object, NULL,
         "the reply is a JSON object (constrained decoding)"},
    };
    memcpy(t, table, sizeof table);
}

mt_status mt_gen_opts_params(const mt_gen_opts *o, mt_gen_params *p) {
    *p = mt_gen_defaults();
    if (o->max_tokens <= 0) return mt_fail(MT_ERR_ARG, "--max-tokens must be positive");
    if (o->n_ctx < 0) return mt_fail(MT_ERR_ARG, "--ctx must be positive");
    p->max_tokens = o->max_tokens;
    p->n_ctx = o->n_ctx;
    p->sampling = o->sampling;
    if (o->greedy) p->sampling.temperature = 0.0f;
    for (int i = 0; i < o->stops.n; i++)
        if (!o->stops.items[i][0]) return mt_fail(MT_ERR_ARG, "--stop needs non-empty text");
    p->stop_strings = o->stops.items;
    p->n_stop_strings = o->stops.n;
    if (o->json_schema && o->json_object)
        return mt_fail(MT_ERR_ARG, "give either --json-schema or --json-object, not both");
    return mt_sampler_params_validate(&p->sampling);
}

mt_status mt_gen_opts_constraint(const mt_gen_opts *o, mt_session *s, mt_json_constraint **out) {
    *out = NULL;
    if (o->json_object)
        return mt_session_constraint(s, MT_JSON_ANY_OBJECT_SCHEMA,
                                     strlen(MT_JSON_ANY_OBJECT_SCHEMA), out);
    if (!o->json_schema) return MT_OK;
    char *text = NULL;
    size_t len = 0;
    mt_status st = mt_read_file(o->json_schema, &text, &len);
    if (!st) st = mt_session_constraint(s, text, len, out);
    free(text);
    return st ? mt_fail_prefix(st, o->json_schema) : MT_OK;
}
