#include "cli/batch_cli.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/progress.h"
#include "infer/batch.h"
#include "io/jsonl.h"

typedef struct {
    int32_t *ids;
    size_t n;
    cJSON *id;                        /* echoed back, owned */
    const mt_json_constraint *schema; /* the line's "json_schema", or NULL */
} prompt;

/* The distinct "json_schema" values of the input, each compiled once. */
typedef struct {
    char **texts; /* compact JSON */
    mt_json_constraint **compiled;
    int n, cap;
} schema_set;

typedef struct {
    prompt *items;
    int n;
    schema_set schemas;
    char **out; /* result lines, printed in input order */
    int next_print;
    mt_progress bar;
    int finished;
    long tokens;
} job;

/* Renders one input line to tokens. */
static mt_status encode_line(const mt_session *s, const cJSON *j, int chat, const char *system,
                             prompt *out) {
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "prompt");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    mt_chat_msg m[64];
    size_t n = 0;
    if (cJSON_IsString(pr) && !chat)
        return mt_session_encode(s, NULL, 0, pr->valuestring, &out->ids, &out->n);
    if (system) m[n++] = (mt_chat_msg){"system", system};
    if (cJSON_IsString(pr)) {
        m[n++] = (mt_chat_msg){"user", pr->valuestring};
    } else if (cJSON_IsArray(msgs)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, msgs) {
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role");
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
            if (!cJSON_IsString(role) || !cJSON_IsString(content))
                return mt_fail(MT_ERR_FORMAT, "each message needs string \"role\" and \"content\"");
            if (n == sizeof m / sizeof *m) return mt_fail(MT_ERR_FORMAT, "too many messages");
            m[n++] = (mt_chat_msg){role->valuestring, content->valuestring};
        }
    } else {
        return mt_fail(MT_ERR_FORMAT, "a line needs a string \"prompt\" or a \"messages\" list");
    }
    return mt_session_encode(s, m, (int)n, NULL, &out->ids, &out->n);
}

/* The constraint for a line's schema, compiled on its first use. */
static mt_status line_schema(mt_session *s, schema_set *set, const cJSON *schema,
                             const mt_json_constraint **out) {
    char *text = cJSON_PrintUnformatted(schema);
    if (!text) return mt_fail(MT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < set->n; i++)
        if (!strcmp(set->texts[i], text)) {
            cJSON_free(text);
            *out = set->compiled[i];
            return MT_OK;
        }
    if (set->n == set->cap) {
        const int cap = set->cap ? 2 * set->cap : 8;
        char **texts = realloc(set->texts, (size_t)cap * sizeof *texts);
        if (texts) set->texts = texts;
        mt_json_constraint **compiled =
            texts ? realloc(set->compiled, (size_t)cap * sizeof *compiled) : NULL;
        if (!compiled) {
            cJSON_free(text);
            return mt_fail(MT_ERR_NOMEM, "out of memory");
        }
        set->compiled = compiled;
        set->cap = cap;
    }
    mt_json_constraint *c = NULL;
    mt_status st = mt_session_constraint(s, text, strlen(text), &c);
    if (st) {
        cJSON_free(text);
        return mt_fail_prefix(st, "\"json_schema\"");
    }
    set->texts[set->n] = text;
    set->compiled[set->n++] = c;
    *out = c;
    return MT_OK;
}

static void schema_set_free(schema_set *set) {
    for (int i = 0; i < set->n; i++) {
        cJSON_free(set->texts[i]);
        mt_json_constraint_free(set->compiled[i]);
    }
    free(set->texts);
    free(set->compiled);
}

typedef struct {
    mt_session *s;
    const char *path, *system;
    int chat, cap;
    job *jb;
} prompt_reader;

static mt_status add_prompt(void *user, cJSON *j, int line) {
    prompt_reader *r = user;
    job *jb = r->jb;
    mt_status st = MT_OK;
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return mt_fail(MT_ERR_FORMAT, "%s:%d: not a JSON object", r->path, line);
    }
    if (jb->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 64;
        prompt *grown = realloc(jb->items, (size_t)cap * sizeof *grown);
        if (!grown) {
            cJSON_Delete(j);
            return mt_fail(MT_ERR_NOMEM, "out of memory reading %s", r->path);
        }
        jb->items = grown;
        r->cap = cap;
    }
    prompt *pr = &jb->items[jb->n];
    memset(pr, 0, sizeof *pr);
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(j, "json_schema");
    if (schema && !cJSON_IsObject(schema))
        st = mt_fail(MT_ERR_FORMAT, "\"json_schema\" must be a JSON Schema object");
    else if (schema)
        st = line_schema(r->s, &jb->schemas, schema, &pr->schema);
    if (!st) st = encode_line(r->s, j, r->chat, r->system, pr);
    if (st) {
        char where[4200];
        snprintf(where, sizeof where, "%s:%d", r->path, line);
        mt_fail_prefix(st, where);
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    pr->id = id ? cJSON_Duplicate(id, 1) : NULL;
    cJSON_Delete(j);
    jb->n++;
    return st;
}

static mt_status read_prompts(mt_session *s, const char *path, int chat, const char *system,
                              job *jb) {
    prompt_reader r = {.s = s, .path = path, .system = system, .chat = chat, .jb = jb};
    mt_status st = mt_jsonl_read(path, add_prompt, &r);
    if (!st && jb->n == 0) st = mt_fail(MT_ERR_FORMAT, "%s has no prompts", path);
    return st;
}

static mt_status on_done(void *user, int index, const mt_gen_result *r) {
    job *jb = user;
    cJSON *o = cJSON_CreateObject();
    cJSON *ids = cJSON_CreateIntArray(r->tokens, r->n_tokens);
    if (!o || !ids) {
        cJSON_Delete(o);
        cJSON_Delete(ids);
        return mt_fail(MT_ERR_NOMEM, "out of memory");
    }
    cJSON_AddNumberToObject(o, "index", index);
    if (jb->items[index].id)
        cJSON_AddItemToObject(o, "id", cJSON_Duplicate(jb->items[index].id, 1));
    cJSON_AddStringToObject(o, "text", r->text);
    cJSON_AddItemToObject(o, "tokens", ids);
    cJSON_AddNumberToObject(o, "prompt_tokens", r->n_prompt);
    cJSON_AddStringToObject(o, "stop", mt_stop_reason_name(r->stop));
    jb->out[index] = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!jb->out[index]) return mt_fail(MT_ERR_NOMEM, "out of memory");
    while (jb->next_print < jb->n && jb->out[jb->next_print]) {
        printf("%s\n", jb->out[jb->next_print]);
        cJSON_free(jb->out[jb->next_print]);
        jb->out[jb->next_print++] = NULL;
    }
    fflush(stdout);
    jb->tokens += r->n_tokens;
    char status[64];
    snprintf(status, sizeof status, "%.1f tok/s",
             (double)jb->tokens / (mt_now_seconds() - jb->bar.t0 + 1e-9));
    mt_progress_update(&jb->bar, ++jb->finished, status);
    return MT_OK;
}

mt_status mt_cli_generate_batch(mt_session *s, const mt_gen_params *p, const char *path, int chat,
                                const char *system, int n_slots, int stats, int quiet) {
    job jb = {0};
    mt_batch_item *items = NULL;
    mt_status st = read_prompts(s, path, chat, system, &jb);
    if (!st && !(jb.out = mt_calloc((size_t)jb.n, sizeof *jb.out))) st = MT_ERR_NOMEM;
    if (!st && !(items = mt_calloc((size_t)jb.n, sizeof *items))) st = MT_ERR_NOMEM;
    for (int i = 0; !st && i < jb.n; i++)
        items[i] = (mt_batch_item){.prompt = jb.items[i].ids,
                                   .n_prompt = (int)jb.items[i].n,
                                   .constraint = jb.items[i].schema};
    mt_batch_stats bs;
    if (!st) {
        mt_progress_start(&jb.bar, "generate", jb.n, 0);
        jb.bar.quiet = quiet;
        st = mt_generate_batch(s->model, s->tok, items, jb.n, p, n_slots, on_done, &jb, &bs);
        mt_progress_finish(&jb.bar, NULL);
    }
    if (!st && stats)
        fprintf(stderr, "[%d prompts, %d tokens generated in %.2f s: %.2f tok/s with %d slots]\n",
                bs.n_prompts, bs.n_generated, bs.seconds, bs.n_generated / (bs.seconds + 1e-9),
                n_slots);
    if (!st && stats)
        fprintf(stderr,
                "[prefill: %ld prompt tokens in %.2f s (%.2f tok/s); decoding: %ld steps, %ld "
                "tokens in %.2f s (%.2f tok/s)]\n",
                bs.n_prompt_tokens, bs.prefill_seconds,
                bs.n_prompt_tokens / (bs.prefill_seconds + 1e-9), bs.n_steps, bs.n_step_tokens,
                bs.decode_seconds, bs.n_step_tokens / (bs.decode_seconds + 1e-9));
    for (int i = 0; i < jb.n; i++) {
        free(jb.items[i].ids);
        cJSON_Delete(jb.items[i].id);
        if (jb.out) cJSON_free(jb.out[i]);
    }
    free(jb.items);
    free(jb.out);
    free(items);
    schema_set_free(&jb.schemas);
    return st;
}
