#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/batch_cli.h"
#include "cli/beam_cli.h"
#include "cli/commands.h"
#include "cli/gen_opts.h"
#include "infer/session.h"
#include "pipeline/adapter.h"
#include "kernels/matmul.h"
#include "io/file_util.h"

/* One JSON object with the reply, its tokens and timings, for scripts and tests. */
static mt_status print_json(const mt_gen_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON *ids = cJSON_CreateArray();
    if (!o || !ids) {
        cJSON_Delete(o);
        cJSON_Delete(ids);
        return mt_fail(MT_ERR_NOMEM, "out of memory");
    }
    cJSON_AddStringToObject(o, "text", r->text);
    for (int i = 0; i < r->n_tokens; i++)
        cJSON_AddItemToArray(ids, cJSON_CreateNumber(r->tokens[i]));
    cJSON_AddItemToObject(o, "tokens", ids);
    cJSON_AddNumberToObject(o, "prompt_tokens", r->n_prompt);
    cJSON_AddStringToObject(o, "stop", mt_stop_reason_name(r->stop));
    cJSON_AddNumberToObject(o, "prefill_seconds", r->prefill_seconds);
    cJSON_AddNumberToObject(o, "decode_seconds", r->decode_seconds);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return mt_fail(MT_ERR_NOMEM, "out of memory");
    printf("%s\n", s);
    cJSON_free(s);
    return MT_OK;
}

static int print_text(void *user, const char *text, size_t len) {
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static void print_stats(const mt_gen_result *r) {
    fprintf(
        stderr,
        "\n[prompt %d tokens in %.2f s (%.1f tok/s); generated %d tokens in %.2f s (%.2f tok/s); "
        "stop: %s]\n",
        r->n_prompt, r->prefill_seconds, r->n_prompt / (r->prefill_seconds + 1e-9), r->n_tokens,
        r->decode_seconds, r->n_tokens / (r->decode_seconds + 1e-9), mt_stop_reason_name(r->stop));
}

/* Renders messages with the chat template (or takes raw text) and generates a reply. */
static mt_status reply(const mt_session *s, const mt_gen_opts *o, const mt_json_constraint *json,
                       const mt_chat_msg *msgs, int n, const char *raw, int stream,
                       mt_gen_result *r) {
    mt_gen_params p;
    mt_status st = mt_gen_opts_params(o, &p);
    if (st) return st;
    p.constraint = json;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int32_t stops[8];
    st = mt_session_encode(s, msgs, n, raw, &ids, &n_ids);
    /* A raw prompt ends on the family's end tokens too, as in --batch and llama.cpp: Qwen's
     * EOS is <|im_end|>, yet a completion ends with <|endoftext|>, and past it comes noise. */
    p.stop_tokens = stops;
    p.n_stop_tokens = mt_session_stop_tokens(s, stops, 8);
    if (stream) p.on_text = print_text;
    if (!st) st = mt_generate(s->model, s->tok, ids, (int)n_ids, &p, r);
    free(ids);
    return st;
}

static int run_batch(const mt_gen_opts *o, mt_gen_params *p, const char *path, int chat, int slots,
                     int quiet, int has_prompt) {
    if (has_prompt) {
        mt_fail(MT_ERR_ARG, "--batch reads its prompts from the file; drop -p/-f");
        return mt_report_error();
    }
    if (slots <= 0) {
        mt_fail(MT_ERR_ARG, "--slots must be positive");
        return mt_report_error();
    }
    mt_session s;
    if (mt_session_open(&s, o->model, o->threads, o->chat_template) ||
        mt_session_apply_adapter(&s, o->adapter)) {
        mt_session_close(&s);
        return mt_report_error();
    }
    int32_t stops[8];
    p->stop_tokens = stops;
    p->n_stop_tokens = mt_session_stop_tokens(&s, stops, 8);
    mt_json_constraint *json = NULL;
    mt_status st = mt_gen_opts_constraint(o, &s, &json);
    p->constraint = json;
    if (!st) st = mt_cli_generate_batch(&s, p, path, chat, o->system, slots, o->stats, quiet);
    mt_json_constraint_free(json);
    mt_session_close(&s);
    return st ? mt_report_error() : 0;
}

static mt_status read_prompt(const char *prompt, const char *file, char **out) {
    size_t len;
    if (prompt && file) return mt_fail(MT_ERR_ARG, "give either --prompt or --file, not both");
    if (prompt) {
        *out = strdup(prompt);
        return *out ? MT_OK : mt_fail(MT_ERR_NOMEM, "out of memory");
    }
    if (file) return mt_read_file(file, out, &len);
    return mt_fail(MT_ERR_ARG, "no prompt given (use -p TEXT or -f FILE)");
}

int mt_cmd_generate(int argc, char **argv) {
    mt_gen_opts o;
    mt_gen_opts_defaults(&o);
    const char *prompt = NULL, *file = NULL;
    const char *batch = NULL;
    int chat = 0, json = 0, slots = 16, quiet = 0;
    mt_beam_opts beam;
    mt_beam_opts_defaults(&beam);
    mt_opt opts[MT_GEN_OPT_COUNT + 7 + MT_BEAM_OPT_COUNT];
    mt_gen_opts_table(&o, opts);
    opts[MT_GEN_OPT_COUNT] = (mt_opt){"--prompt", "-p", MT_OPT_STR, &prompt, "TEXT", "the prompt"};
    opts[MT_GEN_OPT_COUNT + 1] =
        (mt_opt){"--file", "-f", MT_OPT_STR, &file, "FILE", "read the prompt from FILE"};
    opts[MT_GEN_OPT_COUNT + 2] = (mt_opt){
        "--chat", NULL, MT_OPT_FLAG, &chat, NULL, "wrap the prompt in the model's chat template"};
    opts[MT_GEN_OPT_COUNT + 3] = (mt_opt){
        "--json", NULL, MT_OPT_FLAG,
        &json,    NULL, "print one JSON object (text, tokens, timings) instead of streaming"};
    opts[MT_GEN_OPT_COUNT + 4] =
        (mt_opt){"--batch", NULL,   MT_OPT_STR,
                 &batch,    "FILE", "JSONL prompts in, JSONL results out (batched)"};
    opts[MT_GEN_OPT_COUNT + 5] = (mt_opt){"--slots",
                                          NULL,
                                          MT_OPT_INT,
                                          &slots,
                                          "N",
                                          "sequences decoded together with --batch (16)",
                                          MT_RANGE(1, MT_CLI_MAX_SLOTS)};
    opts[MT_GEN_OPT_COUNT + 6] =
        (mt_opt){"--quiet", "-q", MT_OPT_FLAG, &quiet, NULL, "no progress bar with --batch"};
    mt_beam_opts_table(&beam, opts + MT_GEN_OPT_COUNT + 7);
    const int n_opts = MT_GEN_OPT_COUNT + 7 + MT_BEAM_OPT_COUNT;
    int help = 0;
    if (mt_parse_opts(opts, n_opts, argc, argv, &help)) return mt_report_error();
    if (help) {
        mt_print_help(stdout, "meteor generate -m MODEL -p PROMPT [--chat] [options]",
                      "Generate text from a prompt, streaming it to stdout.", opts, n_opts);
        return 0;
    }
    mt_gen_params checked;
    if (mt_gen_opts_params(&o, &checked)) return mt_report_error();
    mt_kernels_set_precise(o.precise);
    if (batch && beam.beams) {
        mt_fail(MT_ERR_ARG, "--beams does not combine with --batch");
        return mt_report_error();
    }
    if (batch) return run_batch(&o, &checked, batch, chat, slots, quiet, prompt || file);
    char *text = NULL;
    if (read_prompt(prompt, file, &text)) return mt_report_error();
    mt_session s;
    if (mt_session_open(&s, o.model, o.threads, o.chat_template) ||
        mt_session_apply_adapter(&s, o.adapter)) {
        mt_session_close(&s);
        free(text);
        return mt_report_error();
    }
    mt_chat_msg msgs[2];
    int n = 0;
    if (o.system) msgs[n++] = (mt_chat_msg){"system", o.system};
    msgs[n++] = (mt_chat_msg){"user", text};
    mt_gen_result r;
    mt_json_constraint *constraint = NULL;
    mt_status st = mt_gen_opts_constraint(&o, &s, &constraint);
    if (st)
        ;
    else if (beam.beams)
        st = mt_cli_beam_reply(&s, &o, &beam, constraint, msgs, n, chat ? NULL : text, json);
    else if (!(st = reply(&s, &o, constraint, msgs, n, chat ? NULL : text, !json, &r))) {
        if (json)
            st = print_json(&r);
        else
            printf("\n");
        if (o.stats) print_stats(&r);
        mt_gen_result_free(&r);
    }
    mt_json_constraint_free(constraint);
    mt_session_close(&s);
    free(text);
    return st ? mt_report_error() : 0;
}

/* Conversation history; message texts are owned. */
typedef struct {
    mt_chat_msg *msgs;
    int n, cap;
} history;

static mt_status history_add(history *h, const char *role, const char *content) {
    if (h->n == h->cap) {
        int cap = h->cap ? 2 * h->cap : 16;
        mt_chat_msg *m = realloc(h->msgs, (size_t)cap * sizeof *m);
        if (!m) return mt_fail(MT_ERR_NOMEM, "out of memory");
        h->msgs = m;
        h->cap = cap;
    }
    char *c = strdup(content);
    if (!c) return mt_fail(MT_ERR_NOMEM, "out of memory");
    h->msgs[h->n++] = (mt_chat_msg){role, c};
    return MT_OK;
}

static void history_clear(history *h, int keep) {
    while (h->n > keep) free((char *)h->msgs[--h->n].content);
}

static mt_status chat_loop(const mt_session *s, const mt_gen_opts *o,
                           const mt_json_constraint *json, history *h) {
    const int keep = h->n;
    char *line = NULL;
    size_t cap = 0;
    mt_status st = MT_OK;
    for (;;) {
        fprintf(stderr, "> ");
        ssize_t len = getline(&line, &cap, stdin);
        if (len < 0) break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) break;
        if (!strcmp(line, "/reset")) {
            history_clear(h, keep);
            fprintf(stderr, "(conversation cleared)\n");
            continue;
        }
        if (!len) continue;
        if ((st = history_add(h, "user", line))) break;
        mt_gen_result r;
        if ((st = reply(s, o, json, h->msgs, h->n, NULL, 1, &r))) break;
        printf("\n");
        if (o->stats) print_stats(&r);
        st = history_add(h, "assistant", r.text);
        mt_gen_result_free(&r);
        if (st) break;
    }
    free(line);
    return st;
}

int mt_cmd_chat(int argc, char **argv) {
    mt_gen_opts o;
    mt_gen_opts_defaults(&o);
    mt_opt opts[MT_GEN_OPT_COUNT];
    mt_gen_opts_table(&o, opts);
    int help = 0;
    if (mt_parse_opts(opts, MT_GEN_OPT_COUNT, argc, argv, &help)) return mt_report_error();
    if (help) {
        mt_print_help(stdout, "meteor chat -m MODEL [options]",
                      "Chat with a model. Type a message and press Enter; /reset clears the\n"
                      "conversation, /quit or end of input leaves.",
                      opts, MT_GEN_OPT_COUNT);
        return 0;
    }
    mt_gen_params checked;
    if (mt_gen_opts_params(&o, &checked)) return mt_report_error();
    mt_kernels_set_precise(o.precise);
    mt_session s;
    if (mt_session_open(&s, o.model, o.threads, o.chat_template)) return mt_report_error();
    mt_status st = mt_session_apply_adapter(&s, o.adapter);
    if (!st && s.chat == MT_CHAT_NONE)
        st = mt_fail(MT_ERR_ARG, "the model has no chat template; pass --chat-template");
    history h = {0};
    mt_json_constraint *json = NULL;
    if (!st) st = mt_gen_opts_constraint(&o, &s, &json);
    if (!st && o.system) st = history_add(&h, "system", o.system);
    if (!st) st = chat_loop(&s, &o, json, &h);
    history_clear(&h, 0);
    free(h.msgs);
    mt_json_constraint_free(json);
    mt_session_close(&s);
    return st ? mt_report_error() : 0;
}
