#include "expert/local.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/progress.h"
#include "expert/json_reply.h"
#include "infer/batch.h"
#include "infer/session.h"

typedef struct {
    mt_session sess;
    char name[300];
    int slots;
    uint64_t seed;
} local_impl;

/* One request: its messages as sent (the schema instruction added) and its prompt. */
typedef struct {
    mt_chat_msg *msgs;
    int n_msgs;
    char *instructed; /* owned text of the last user turn with the schema added */
    int32_t *ids;
    size_t n_ids;
    const mt_json_constraint *schema; /* compiled request schema, or NULL */
} work;

/* The distinct schemas of one run, each compiled once. */
typedef struct {
    const char **texts; /* the requests' */
    mt_json_constraint **compiled;
    int n;
} schema_set;

typedef struct {
    local_impl *li;
    const mt_expert_req *reqs;
    const mt_expert_cb *cb;
    mt_expert *e;
    work *w;
    const int *idx; /* the group being decoded: batch item k is request idx[k] */
} group_ctx;

static void work_free(work *w) {
    free(w->msgs);
    free(w->instructed);
    free(w->ids);
    memset(w, 0, sizeof *w);
}

static uint64_t request_seed(const mt_expert *e, const mt_expert_req *r, uint64_t seed) {
    char hex[65];
    mt_expert_request_hash(e, r, hex);
    uint64_t h = seed;
    for (int i = 0; i < 16; i++)
        h = h * 16 + (uint64_t)(hex[i] <= '9' ? hex[i] - '0' : hex[i] - 'a' + 10);
    return h;
}

/* The request's turns; a schema request's last user turn gains the schema, as the remote
 * expert does without a response_format: the decoder guarantees the form, the model
 * still needs to know what the fields are for. */
static mt_status build_msgs(const mt_expert_req *r, work *w) {
    w->msgs = mt_calloc((size_t)r->n_msgs + 1, sizeof *w->msgs);
    if (!w->msgs) return MT_ERR_NOMEM;
    memcpy(w->msgs, r->msgs, (size_t)r->n_msgs * sizeof *w->msgs);
    w->n_msgs = r->n_msgs;
    if (!r->schema_json || r->n_msgs == 0) return MT_OK;
    const char *last = r->msgs[r->n_msgs - 1].content;
    const char *tail = "\n\nReply with only a JSON object matching this JSON Schema:\n";
    size_t len = strlen(last) + strlen(tail) + strlen(r->schema_json) + 1;
    if (!(w->instructed = malloc(len))) return MT_ERR_NOMEM;
    snprintf(w->instructed, len, "%s%s%s", last, tail, r->schema_json);
    w->msgs[r->n_msgs - 1].content = w->instructed;
    return MT_OK;
}

/* The compiled form of a request's schema, compiled on its first use in the run. */
static mt_status request_schema(local_impl *li, schema_set *set, const char *schema_json,
                                const mt_json_constraint **out) {
    for (int i = 0; i < set->n; i++)
        if (!strcmp(set->texts[i], schema_json)) {
            *out = set->compiled[i];
            return MT_OK;
        }
    mt_json_constraint *c = NULL;
    mt_status st = mt_session_constraint(&li->sess, schema_json, strlen(schema_json), &c);
    if (st) return st;
    set->texts[set->n] = schema_json;
    set->compiled[set->n++] = c;
    *out = c;
    return MT_OK;
}

static mt_status finish(group_ctx *g, int index, const mt_gen_result *res, int ok,
                        const char *content, const char *error) {
    mt_expert_reply r = {.ok = ok,
                         .content = (char *)content,
                         .error = (char *)error,
                         .prompt_tokens = res ? res->n_prompt : 0,
                         .completion_tokens = res ? res->n_tokens : 0,
                         .attempts = res ? 1 : 0};
    return g->cb->on_done ? g->cb->on_done(g->cb->user, index, &r) : MT_OK;
}

/* A constrained reply as compact JSON in *json, or NULL with why set when the reply is
 * not a whole document (it ran out of tokens) or, which the decoder rules out, does not
 * fit the schema. */
static mt_status schema_reply(const mt_gen_result *res, const char *schema_json, char **json,
                              char *why, size_t cap) {
    *json = NULL;
    if (res->stop != MT_STOP_DOCUMENT && res->stop != MT_STOP_EOS) {
        const size_t len = strlen(res->text), tail = len > 60 ? len - 60 : 0;
        snprintf(why, cap,
                 "the reply ended (%s) after %d tokens, before its JSON document was "
                 "complete: ...%s",
                 mt_stop_reason_name(res->stop), res->n_tokens, res->text + tail);
        return MT_OK;
    }
    cJSON *schema = cJSON_Parse(schema_json), *v = NULL;
    if (!schema) return mt_fail(MT_ERR_ARG, "the request's JSON schema does not parse");
    mt_status st = mt_json_reply_parse(res->text, &v);
    if (!st) st = mt_json_schema_check(schema, v);
    if (st) {
        snprintf(why, cap, "the constrained reply is not valid: %s", mt_last_error());
        mt_clear_error();
    } else if (!(*json = cJSON_PrintUnformatted(v))) {
        cJSON_Delete(v);
        cJSON_Delete(schema);
        return mt_fail(MT_ERR_NOMEM, "out of memory");
    }
    cJSON_Delete(v);
    cJSON_Delete(schema);
    return MT_OK;
}

static mt_status on_result(void *user, int k, const mt_gen_result *res) {
    group_ctx *g = user;
    const int index = g->idx[k];
    const mt_expert_req *r = &g->reqs[index];
    g->e->requests_sent++;
    g->e->prompt_tokens += res->n_prompt;
    g->e->completion_tokens += res->n_tokens;
    const char *text = res->text ? res->text : "";
    const double secs = res->prefill_seconds + res->decode_seconds;
    size_t lead = strspn(text, " \t\r\n");
    if (!text[lead]) {
        if (g->cb->on_attempt) g->cb->on_attempt(g->cb->user, index, 1, 0, "empty reply", secs);
        return finish(g, index, res, 0, NULL, "the local expert gave an empty reply");
    }
    if (!r->schema_json) {
        if (g->cb->on_attempt) g->cb->on_attempt(g->cb->user, index, 1, 0, NULL, secs);
        return finish(g, index, res, 1, text + lead, NULL);
    }
    char why[256] = "";
    char *json = NULL;
    mt_status st = schema_reply(res, r->schema_json, &json, why, sizeof why);
    if (st) return st;
    if (g->cb->on_attempt) g->cb->on_attempt(g->cb->user, index, 1, 0, json ? NULL : why, secs);
    st = finish(g, index, res, json != NULL, json, json ? NULL : why);
    cJSON_free(json);
    return st;
}

/* Decodes requests idx[0..n) together. */
static mt_status decode(group_ctx *g, const int *idx, int n, const mt_expert_req *proto) {
    local_impl *li = g->li;
    mt_batch_item *items = mt_calloc((size_t)n, sizeof *items);
    if (!items) return MT_ERR_NOMEM;
    for (int k = 0; k < n; k++) {
        const work *w = &g->w[idx[k]];
        items[k] = (mt_batch_item){.prompt = w->ids,
                                   .n_prompt = (int)w->n_ids,
                                   .own_seed = 1,
                                   .seed = request_seed(g->e, &g->reqs[idx[k]], li->seed),
                                   .constraint = w->schema};
    }
    int32_t stop[8];
    mt_gen_params p = mt_gen_defaults();
    p.max_tokens = proto->max_tokens > 0 ? proto->max_tokens : 512;
    p.sampling.temperature = (float)proto->temperature;
    p.stop_tokens = stop;
    p.n_stop_tokens = mt_session_stop_tokens(&li->sess, stop, 8);
    group_ctx sub = *g;
    sub.idx = idx;
    mt_batch_stats bs;
    mt_status st = mt_generate_batch(li->sess.model, li->sess.tok, items, n, &p, li->slots,
                                     on_result, &sub, &bs);
    free(items);
    return st;
}

static int same_params(const mt_expert_req *a, const mt_expert_req *b) {
    return a->max_tokens == b->max_tokens && a->temperature == b->temperature;
}

/* Messages, prompt tokens and compiled schema of request i; a schema the decoder cannot
 * follow fails that request (*refused) and the run goes on. */
static mt_status prepare(group_ctx *g, schema_set *set, int i, int *refused) {
    const mt_expert_req *r = &g->reqs[i];
    work *w = &g->w[i];
    *refused = 0;
    mt_status st = build_msgs(r, w);
    if (!st) st = mt_session_encode(&g->li->sess, w->msgs, w->n_msgs, NULL, &w->ids, &w->n_ids);
    if (st || !r->schema_json) return st;
    st = request_schema(g->li, set, r->schema_json, &w->schema);
    if (st == MT_ERR_NOMEM || !st) return st;
    char err[400];
    snprintf(err, sizeof err, "%s", mt_last_error());
    mt_clear_error();
    *refused = 1;
    if (g->cb->on_attempt) g->cb->on_attempt(g->cb->user, i, 0, 0, err, 0.0);
    return finish(g, i, NULL, 0, NULL, err);
}

static mt_status local_run(mt_expert *e, const mt_expert_req *reqs, int n, const mt_expert_cb *cb) {
    local_impl *li = e->impl;
    work *w = mt_calloc((size_t)n + 1, sizeof *w);
    int *idx = mt_calloc((size_t)n + 1, sizeof *idx);
    char *taken = mt_calloc((size_t)n + 1, 1);
    schema_set set = {.texts = mt_calloc((size_t)n + 1, sizeof *set.texts),
                      .compiled = mt_calloc((size_t)n + 1, sizeof *set.compiled)};
    mt_status st = w && idx && taken && set.texts && set.compiled ? MT_OK : MT_ERR_NOMEM;
    group_ctx g = {.li = li, .reqs = reqs, .cb = cb, .e = e, .w = w};
    for (int i = 0; !st && i < n; i++) {
        int refused = 0;
        st = prepare(&g, &set, i, &refused);
        if (refused) taken[i] = 1;
    }
    for (int i = 0; !st && i < n; i++) {
        if (taken[i]) continue;
        int m = 0;
        for (int j = i; j < n; j++)
            if (!taken[j] && same_params(&reqs[i], &reqs[j])) {
                taken[j] = 1;
                idx[m++] = j;
            }
        st = decode(&g, idx, m, &reqs[i]);
    }
    for (int i = 0; w && i < n; i++) work_free(&w[i]);
    for (int i = 0; i < set.n; i++) mt_json_constraint_free(set.compiled[i]);
    free(set.texts);
    free(set.compiled);
    free(w);
    free(idx);
    free(taken);
    return st;
}

static void local_free(mt_expert *e) {
    local_impl *li = e->impl;
    if (li) mt_session_close(&li->sess);
    free(li);
    free(e);
}

mt_status mt_expert_local_new(const mt_local_opts *o, mt_expert **out) {
    *out = NULL;
    if (!o->model_path || !*o->model_path)
        return mt_fail(MT_ERR_ARG, "--expert local: needs a model (local:PATH)");
    if (o->slots < 1 || o->slots > 256)
        return mt_fail(MT_ERR_ARG, "expert slots must be in 1..256");
    mt_expert *e = mt_calloc(1, sizeof *e);
    local_impl *li = mt_calloc(1, sizeof *li);
    if (!e || !li) {
        free(e);
        free(li);
        return MT_ERR_NOMEM;
    }
    mt_status st = mt_session_open(&li->sess, o->model_path, o->threads, o->chat_template);
    if (st) {
        free(e);
        free(li);
        return st;
    }
    if (li->sess.chat == MT_CHAT_NONE) {
        mt_session_close(&li->sess);
        free(e);
        free(li);
        return mt_fail(MT_ERR_ARG, "local expert %s has no chat template; it cannot answer turns",
                       o->model_path);
    }
    const char *base = strrchr(o->model_path, '/');
    snprintf(li->name, sizeof li->name, "local:%s", base ? base + 1 : o->model_path);
    li->slots = o->slots;
    li->seed = o->seed;
    e->name = li->name;
    e->impl = li;
    e->run = local_run;
    e->free = local_free;
    *out = e;
    return MT_OK;
}
