/* meteor tokenize: text to token ids and back, and chat rendering, for inspecting a
 * model's tokenizer and for the parity tests that compare it with Hugging Face. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "io/file_util.h"
#include "io/json_file.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    const char *model, *prompt, *file, *batch, *chat, *chat_family;
    int no_special, parse_special, json, decode, skip_special, no_gen_prompt;
} tok_opts;

static mt_status read_stdin(char **out, size_t *len) {
    size_t n = 0, cap = 1 << 16;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, stdin);
        if (n < cap) break;
        char *grown = realloc(buf, cap * 2 + 1);
        if (!grown) free(buf);
        buf = grown;
        cap *= 2;
    }
    if (!buf) return mt_fail(MT_ERR_NOMEM, "out of memory reading standard input");
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return MT_OK;
}

static mt_status read_input(const tok_opts *o, char **text, size_t *len) {
    if (o->prompt) {
        *len = strlen(o->prompt);
        *text = malloc(*len + 1);
        if (!*text) return mt_fail(MT_ERR_NOMEM, "out of memory");
        memcpy(*text, o->prompt, *len + 1);
        return MT_OK;
    }
    if (o->file) return mt_read_file(o->file, text, len);
    return read_stdin(text, len);
}

/* One line per token: its id and its text with control characters escaped. */
static void print_piece_line(const mt_tokenizer *t, int32_t id) {
    char buf[1024];
    size_t n = 0;
    if (mt_token_bytes(t, id, 1, buf, sizeof buf, &n) != MT_OK) n = 0;
    printf("%d\t", (int)id);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c == '\r')
            fputs("\\r", stdout);
        else if (c == '\\')
            fputs("\\\\", stdout);
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('\n');
}

static cJSON *ids_to_json(const int32_t *ids, size_t n) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
    return arr;
}

static void print_json(cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    if (s) printf("%s\n", s);
    free(s);
}

static mt_status encode_one(const mt_tokenizer *t, const tok_opts *o, const char *text, size_t len,
                            int32_t **ids, size_t *n) {
    return mt_tokenize(t, text, len, !o->no_special, o->parse_special, ids, n);
}

static mt_status run_encode(const mt_tokenizer *t, const tok_opts *o, const char *text,
                            size_t len) {
    int32_t *ids;
    size_t n;
    mt_status st = encode_one(t, o, text, len, &ids, &n);
    if (st != MT_OK) return st;
    if (o->json) {
        cJSON *j = ids_to_json(ids, n);
        print_json(j);
        cJSON_Delete(j);
    } else {
        for (size_t i = 0; i < n; i++) print_piece_line(t, ids[i]);
    }
    free(ids);
    return MT_OK;
}

/* Ids are any integers in the text, so "1 2 3", "1,2,3" and "[1, 2, 3]" all work. */
static mt_status parse_ids(const char *text, int32_t **ids, size_t *n) {
    size_t cap = 16, k = 0;
    int32_t *v = malloc(cap * sizeof *v);
    for (const char *p = text; v && *p;) {
        if (*p == '-') return free(v), mt_fail(MT_ERR_ARG, "token ids cannot be negative");
        if (!isdigit((unsigned char)*p)) {
            p++;
            continue;
        }
        char *end;
        long x = strtol(p, &end, 10);
        if (x > 2147483647L) return free(v), mt_fail(MT_ERR_ARG, "token id %ld too large", x);
        if (k == cap) {
            int32_t *grown = realloc(v, (cap *= 2) * sizeof *v);
            if (!grown) free(v);
            v = grown;
            if (!v) break;
        }
        v[k++] = (int32_t)x;
        p = end;
    }
    if (!v) return mt_fail(MT_ERR_NOMEM, "out of memory");
    *ids = v;
    *n = k;
    return MT_OK;
}

static mt_status decode_print(const mt_tokenizer *t, const tok_opts *o, const int32_t *ids,
                              size_t n, cJSON *into) {
    char *text;
    mt_status st = mt_detokenize(t, ids, n, !o->skip_special, &text);
    if (st != MT_OK) return st;
    if (into)
        cJSON_AddItemToArray(into, cJSON_CreateString(text));
    else if (o->json) {
        cJSON *j = cJSON_CreateString(text);
        print_json(j);
        cJSON_Delete(j);
    } else {
        fputs(text, stdout);
    }
    free(text);
    return MT_OK;
}

static mt_status run_decode(const mt_tokenizer *t, const tok_opts *o, const char *text) {
    int32_t *ids = NULL;
    size_t n = 0;
    mt_status st = parse_ids(text, &ids, &n);
    if (st == MT_OK) st = decode_print(t, o, ids, n, NULL);
    free(ids);
    return st;
}

/* --batch: a JSON array of strings (or of id arrays with --decode) in, one JSON array out. */
static mt_status batch_item(const mt_tokenizer *t, const tok_opts *o, const cJSON *e, cJSON *out) {
    if (!o->decode) {
        if (!cJSON_IsString(e)) return mt_fail(MT_ERR_ARG, "--batch: expected an array of strings");
        int32_t *ids;
        size_t n;
        mt_status st = encode_one(t, o, e->valuestring, strlen(e->valuestring), &ids, &n);
        if (st != MT_OK) return st;
        cJSON_AddItemToArray(out, ids_to_json(ids, n));
        free(ids);
        return MT_OK;
    }
    int n = cJSON_GetArraySize(e);
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    if (!ids) return mt_fail(MT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        const cJSON *x = cJSON_GetArrayItem(e, i);
        int id;
        if (!cJSON_IsNumber(x))
            return free(ids), mt_fail(MT_ERR_ARG, "--batch: ids must be numbers");
        if (mt_range_int(MT_ERR_ARG, "--batch: token id", x->valuedouble, MT_RANGE(0, INT32_MAX),
                         &id))
            return free(ids), MT_ERR_ARG;
        ids[i] = id;
    }
    mt_status st = decode_print(t, o, ids, (size_t)n, out);
    free(ids);
    return st;
}

static mt_status run_batch(const mt_tokenizer *t, const tok_opts *o) {
    cJSON *in;
    mt_status st = mt_json_read_file(o->batch, &in);
    if (st != MT_OK) return st;
    cJSON *out = cJSON_CreateArray();
    const cJSON *e, *items = cJSON_IsArray(in) ? in : NULL;
    if (!items) st = mt_fail(MT_ERR_ARG, "%s: expected a JSON array", o->batch);
    cJSON_ArrayForEach(e, items) {
        if (st != MT_OK) break;
        st = batch_item(t, o, e, out);
    }
    if (st == MT_OK) print_json(out);
    cJSON_Delete(out);
    cJSON_Delete(in);
    return st;
}

/* --chat: render a JSON array of {role, content} with the model's chat family. */
static mt_status run_chat(const mt_tokenizer *t, const tok_opts *o) {
    mt_chat_family f = mt_chat_detect(mt_tokenizer_chat_template(t), mt_tokenizer_arch(t));
    mt_status st = o->chat_family ? mt_chat_family_parse(o->chat_family, &f) : MT_OK;
    cJSON *in = NULL;
    if (st == MT_OK) st = mt_json_read_file(o->chat, &in);
    int n = cJSON_GetArraySize(in);
    mt_chat_msg *msgs = st == MT_OK ? calloc((size_t)n + 1, sizeof *msgs) : NULL;
    if (st == MT_OK && !msgs) st = mt_fail(MT_ERR_NOMEM, "out of memory");
    for (int i = 0; st == MT_OK && i < n; i++) {
        const cJSON *m = cJSON_GetArrayItem(in, i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(content))
            st =
                mt_fail(MT_ERR_ARG, "%s: message %d needs string role and content", o->chat, i + 1);
        else
            msgs[i] = (mt_chat_msg){role->valuestring, content->valuestring};
    }
    char *text = NULL;
    if (st == MT_OK) st = mt_chat_render(f, t, msgs, (size_t)n, !o->no_gen_prompt, &text);
    if (st == MT_OK && o->json) {
        cJSON *j = cJSON_CreateString(text);
        print_json(j);
        cJSON_Delete(j);
    } else if (st == MT_OK) {
        fputs(text, stdout);
    }
    free(text);
    free(msgs);
    cJSON_Delete(in);
    return st;
}

static mt_status run(const tok_opts *o) {
    mt_tokenizer *t;
    mt_status st = mt_tokenizer_load(o->model, &t);
    if (st != MT_OK) return st;
    if (o->chat)
        st = run_chat(t, o);
    else if (o->batch)
        st = run_batch(t, o);
    else {
        char *text;
        size_t len;
        st = read_input(o, &text, &len);
        if (st == MT_OK) {
            st = o->decode ? run_decode(t, o, text) : run_encode(t, o, text, len);
            free(text);
        }
    }
    mt_tokenizer_free(t);
    return st;
}

int mt_cmd_tokenize(int argc, char **argv) {
    tok_opts o = {0};
    const mt_opt opts[] = {
        {"--model", "-m", MT_OPT_STR, &o.model, "PATH", "GGUF file or Hugging Face folder"},
        {"--prompt", "-p", MT_OPT_STR, &o.prompt, "TEXT",
         "text to tokenize (or ids with --decode)"},
        {"--file", "-f", MT_OPT_STR, &o.file, "FILE", "read the text from FILE (default: stdin)"},
        {"--no-special", NULL, MT_OPT_FLAG, &o.no_special, NULL, "do not add BOS/EOS"},
        {"--parse-special", NULL, MT_OPT_FLAG, &o.parse_special, NULL,
         "recognise special tokens such as <|im_start|> written in the text"},
        {"--json", NULL, MT_OPT_FLAG, &o.json, NULL, "print a JSON array (or string)"},
        {"--decode", NULL, MT_OPT_FLAG, &o.decode, NULL, "input holds token ids; print the text"},
        {"--skip-special", NULL, MT_OPT_FLAG, &o.skip_special, NULL,
         "with --decode: leave control tokens out of the text"},
        {"--batch", NULL, MT_OPT_STR, &o.batch, "FILE",
         "JSON array of strings (id arrays with --decode); prints one JSON array"},
        {"--chat", NULL, MT_OPT_STR, &o.chat, "FILE",
         "render a JSON array of {role, content} messages with the chat template"},
        {"--chat-template", NULL, MT_OPT_STR, &o.chat_family, "NAME",
         "with --chat: chatml, llama3 or gemma instead of the detected family"},
        {"--no-gen-prompt", NULL, MT_OPT_FLAG, &o.no_gen_prompt, NULL,
         "with --chat: do not open an assistant turn"},
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    int help;
    if (mt_parse_opts(opts, n_opts, argc, argv, &help) != MT_OK) return mt_report_error();
    if (help) {
        mt_print_help(stdout, "meteor tokenize -m MODEL [-p TEXT | -f FILE] [options]",
                      "Show the token ids of a text, decode ids back to text, or render a chat.",
                      opts, n_opts);
        return 0;
    }
    if (!o.model) {
        mt_fail(MT_ERR_ARG, "tokenize needs -m MODEL (see --help)");
        return mt_report_error();
    }
    if (o.prompt && o.file) {
        mt_fail(MT_ERR_ARG, "give either -p or -f, not both");
        return mt_report_error();
    }
    if (run(&o) != MT_OK) return mt_report_error();
    return 0;
}
