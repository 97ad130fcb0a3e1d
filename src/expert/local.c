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

/* One request in flight: its messages as sent (schema instruction or repair turn added). */
typedef struct {
    int index; /* into the caller's reqs */
    mt_chat_msg *msgs;
    int n_msgs;
    char *extra; /* owned text of an added or replaced turn */
    char *extra2;
    int32_t *ids;
    size_t n_ids;
    int attempts;
    int64_t prompt_tokens, completion_tokens;
} work;

typedef struct {
    local_impl *li;
    const mt_expert_req *reqs;
    const mt_expert_cb *cb;
    mt_expert *e;
    work *w;     /* the group being decoded */
    int *repair; /* indices into w needing a JSON repair turn */
    int n_repair;
    double t0;
} group_ctx;

static void work_free(work *w) {
    free(w->msgs);
    free(w->extra);
    free(w->extra2);
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
 * expert does without a response_format. */
static mt_status build_msgs(const mt_expert_req *r, work *w) {
    w->msgs = mt_calloc((size_t)r->n_msgs + 2, sizeof *w->msgs);
    if (!w->msgs) return MT_ERR_NOMEM;
    memcpy(w->msgs, r->msgs, (size_t)r->n_msgs * sizeof *w->msgs);
    w->n_msgs = r->n_msgs;
    if (!r->schema_json || r->n_msgs == 0) return MT_OK;
    const char *last = r->msgs[r->n_msgs - 1].content;
    const char *tail = "\n\nReply with only a JSON object matching this JSON Schema:\n";
    size_t len = strlen(last) + strlen(tail) + strlen(r->schema_json) + 1;
    if (!(w->extra = malloc(len))) return MT_ERR_NOMEM;
    snprintf(w->extra, len, "%s%s%s", last, tail, r->schema_json);
    w->msgs[r->n_msgs - 1].content = w->extra;
    return MT_OK;
}

/* Adds the bad reply and a repair request as two more turns. */
static mt_status add_repair(work *w, const char *bad, const char *why) {
    const char *fmt = "Your reply was not valid JSON matching the schema (%s). Reply with only "
                      "the JSON object.";
    size_t len = strlen(fmt) + strlen(why) + 1;
    free(w->extra2);
    if (!(w->extra2 = malloc(len + strlen(bad) + 1))) return MT_ERR_NOMEM;
    char *bad_copy = w->extra2 + len;
    snprintf(w->extra2, len, fmt, why);
    memcpy(bad_copy, bad, strlen(bad) + 1);
    w->msgs[w->n_msgs++] = (mt_chat_msg){"assistant", bad_copy};
    w->msgs[w->n_msgs++] = (mt_chat_msg){"user", w->extra2};
    return MT_OK;
}

static mt_status finish(group_ctx *g, work *w, int ok, const char *content, const char *error) {
    mt_expert_reply r = {.ok = ok,
                         .content = (char *)content,
                         .error = (char *)error,
                         .prompt_tokens = w->prompt_tokens,
                         .completion_tokens = w->completion_tokens,
                         .attempts = w->attempts};
    return g->cb->on_done ? g->cb->on_done(g->cb->user, w->index, &r) : MT_OK;
}

/* The reply's JSON, compact, in *json when it parses and fits the schema; otherwise *json
 * is NULL and why says what was wrong. */
static mt_status schema_reply(const char *text, const char *schema_json, char **json, char *why,
                              size_t cap) {
    *json = NULL;
    cJSON *schema = cJSON_Parse(schema_json), *v = NULL;
    if (!schema) return mt_fail(MT_ERR_ARG, "the request's JSON schema does not parse");
    mt_status st = mt_json_reply_parse(text, &v);
    if (!st) st = mt_json_schema_check(schema, v);
    if (st) {
        snprintf(why, cap, "%s", mt_last_error());
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
    work *w = &g->w[k];
    const mt_expert_req *r = &g->reqs[w->index];
    w->attempts++;
    w->prompt_tokens += res->n_prompt;
    w->completion_tokens += res->n_tokens;
    g->e->requests_sent++;
    g->e->prompt_tokens += res->n_prompt;
    g->e->completion_tokens += res->n_tokens;
    const char *text = res->text ? res->text : "";
    const double secs = res->prefill_seconds + res->decode_seconds;
    size_t lead = strspn(text, " \t\r\n");
    if (!text[lead]) {
        if (g->cb->on_attempt)
            g->cb->on_attempt(g->cb->user, w->index, w->attempts, 0, "empty reply", secs);
        return finish(g, w, 0, NULL, "the local expert gave an empty reply");
    }
    if (!r->schema_json) {
        if (g->cb->on_attempt) g->cb->on_attempt(g->cb->user, w->index, w->attempts, 0, NULL, secs);
        return finish(g, w, 1, text + lead, NULL);
    }
    char why[256] = "";
    char *json = NULL;
    mt_status st = schema_reply(text, r->schema_json, &json, why, sizeof why);
    if (st) return st;
    if (g->cb->on_attempt)
        g->cb->on_attempt(g->cb->user, w->index, w->attempts, 0, json ? NULL : why, secs);
    if (json) {
        st = finish(g, w, 1, json, NULL);
        cJSON_free(json);
        return st;
    }
    if (w->attempts >= 2) {
        char err[400];
        snprintf(err, sizeof err, "no valid JSON after a repair turn: %s", why);
        return finish(g, w, 0, NULL, err);
    }
    if ((st = add_repair(w, text, why))) return st;
    g->repair[g->n_repair++] = k;
    return MT_OK;
}

/* Decodes w[idx[0..n)] together. */
static mt_status decode(group_ctx *g, const int *idx, int n, const mt_expert_req *proto) {
    local_impl *li = g->li;
    mt_batch_item *items = mt_calloc((size_t)n, sizeof *items);
    if (!items) return MT_ERR_NOMEM;
    mt_status st = MT_OK;
    for (int k = 0; !st && k < n; k++) {
        work *w = &g->w[idx[k]];
        free(w->ids);
        w->ids = NULL;
        st = mt_session_encode(&li->sess, w->msgs, w->n_msgs, NULL, &w->ids, &w->n_ids);
        items[k] = (mt_batch_item){.prompt = w->ids,
                                   .n_prompt = (int)w->n_ids,
                                   .own_seed = 1,
                                   .seed = request_seed(g->e, &g->reqs[w->index], li->seed) +
                                           (uint64_t)w->attempts};
    }
    int32_t stop[8];
    mt_gen_params p = mt_gen_defaults();
    p.max_tokens = proto->max_tokens > 0 ? proto->max_tokens : 512;
    p.sampling.temperature = (float)proto->temperature;
    p.stop_tokens = stop;
    p.n_stop_tokens = mt_session_stop_tokens(&li->sess, stop, 8);
    /* The batch callback reports by position in items: decode a copy of the group's
     * entries in that order and put them back after. */
    if (!st) {
        group_ctx sub = *g;
        work *view = mt_calloc((size_t)n, sizeof *view);
        if (!view) st = MT_ERR_NOMEM;
        for (int k = 0; !st && k < n; k++) view[k] = g->w[idx[k]];
        sub.w = view;
        sub.n_repair = 0;
        int *rep = mt_calloc((size_t)n, sizeof *rep);
        sub.repair = rep;
        if (!st && !rep) st = MT_ERR_NOMEM;
        mt_batch_stats bs;
        if (!st)
            st = mt_generate_batch(li->sess.model, li->sess.tok, items, n, &p, li->slots, on_result,
                                   &sub, &bs);
        for (int k = 0; view && k < n; k++) g->w[idx[k]] = view[k];
        for (int r = 0; rep && r < sub.n_repair; r++) g->repair[g->n_repair++] = idx[rep[r]];
        free(view);
        free(rep);
    }
    free(items);
    return st;
}

static int same_params(const mt_expert_req *a, const mt_expert_req *b) {
    return a->max_tokens == b->max_tokens && a->temperature == b->temperature;
}

static mt_status local_run(mt_expert *e, const mt_expert_req *reqs, int n, const mt_expert_cb *cb) {
    local_impl *li = e->impl;
    work *w = mt_calloc((size_t)n + 1, sizeof *w);
    int *idx = mt_calloc((size_t)n + 1, sizeof *idx);
    int *repair = mt_calloc((size_t)n + 1, sizeof *repair);
    char *taken = mt_calloc((size_t)n + 1, 1);
    mt_status st = w && idx && repair && taken ? MT_OK : MT_ERR_NOMEM;
    for (int i = 0; !st && i < n; i++) {
        w[i].index = i;
        st = build_msgs(&reqs[i], &w[i]);
    }
    group_ctx g = {.li = li, .reqs = reqs, .cb = cb, .e = e, .w = w, .repair = repair};
    for (int i = 0; !st && i < n; i++) {
        if (taken[i]) continue;
        int m = 0;
        for (int j = i; j < n; j++)
            if (!taken[j] && same_params(&reqs[i], &reqs[j])) {
                taken[j] = 1;
                idx[m++] = j;
            }
        g.n_repair = 0;
        st = decode(&g, idx, m, &reqs[i]);
        if (!st && g.n_repair) {
            memcpy(idx, repair, (size_t)g.n_repair * sizeof *idx);
            m = g.n_repair;
            g.n_repair = 0;
            st = decode(&g, idx, m, &reqs[i]);
        }
    }
    for (int i = 0; w && i < n; i++) work_free(&w[i]);
    free(w);
    free(idx);
    free(repair);
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
