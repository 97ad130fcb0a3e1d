#include "pipeline/evolve.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/fault.h"
#include "core/lines.h"
#include "core/progress.h"
#include "io/file_util.h"
#include "infer/beam.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/lora.h"
#include "pipeline/evolve_prompts.h"
#include "pipeline/names.h"
#include "pipeline/stages.h"
#include "train/data.h"
#include "train/export.h"
#include "train/score.h"

#define MAX_ROUNDS 64
#define MAX_SAMPLES 64
/* tokens of a self-check reply: {"better": "A"} with room for whitespace */
#define CHECK_MAX_TOKENS 24

void mt_evolve_defaults(mt_evolve_opts *o) {
    memset(o, 0, sizeof *o);
    o->seed = 42;
    o->test_fraction = 0.2;
    o->rounds = 2;
    o->strategy = MT_EVOLVE_BEAM;
    o->beams = 4;
    o->samples = 8;
    o->length_penalty = 1.0f;
    o->max_tokens = 256;
    o->slots = 8;
    o->beam_questions = 4;
    o->temperature = 0.8f;
    o->top_p = 0.95f;
    o->top_k = 50;
    mt_train_job_defaults(&o->train);
    o->train.loss = "margin";
}

/* Why a pair is not trained on. */
typedef enum { DROP_NONE = 0, DROP_IDENTICAL, DROP_EMPTY, DROP_SELF_CHECK } drop_reason;
static const char *const drop_names[] = {"", "identical", "empty", "self_check"};

/* One question in one round, as the store holds it. */
typedef struct {
    char *greedy, *expensive;
    drop_reason drop;
    double greedy_logp, expensive_logp; /* mean token log-probs, round's starting adapter */
    double greedy_logp_after, expensive_logp_after; /* with the adapter the round trained */
    int scored_after;
} q_round;

typedef struct {
    const mt_evolve_opts *o;
    mt_run_ctx c;
    mt_session model;
    int model_open;
    mt_question *qs;
    int n;
    char **users; /* per question: its user turn, as training renders it */
    /* [r][i] for rounds 1..rounds_run, and round rounds_run + 1 whose greedy answers show
     * what the last trained adapter does */
    q_round *rounds[MAX_ROUNDS + 2];
    int rounds_run;
    int trained[MAX_ROUNDS + 2]; /* round r trained an adapter */
    char model_path[4096];
    char adapter[4096]; /* the adapter generation runs with now ("": none) */
    double seconds_generation, seconds_scoring, seconds_training;
} evolve;

static void round_key(const evolve *e, int i, int round, int attempt, char key[MT_ITEM_KEY_MAX]) {
    mt_item_key(e->qs[i].id, round, attempt, key);
}

static uint64_t question_seed(const evolve *e, int i, int round, int sample) {
    return mt_mix_key(strtoull(e->qs[i].id, NULL, 16),
                      (uint64_t)round * (MAX_SAMPLES + 1) + (uint64_t)sample);
}

/* ---- generation --------------------------------------------------------------------------- */

/* Question i's job of (round, attempt), asking user (borrowed) or owned (the list frees it). */
static mt_status add_job(const evolve *e, mt_gen_jobs *l, int i, int round, int attempt,
                         const char *user, char *owned) {
    return mt_gen_jobs_add(l, e->qs[i].id, round, attempt, i, user, owned,
                           question_seed(e, i, round, attempt));
}

/* Runs the jobs through the generate stage and returns every output (out[k], malloc'ed). */
static mt_status generate(evolve *e, const mt_gen_jobs *l, const char *stage, const char *label,
                          const mt_gen_params *params, char **out) {
    mt_gen_stage_opts go = {.phase = MT_PHASE_EVOLVE,
                            .stage = stage,
                            .label = label,
                            .keep_empty = 1,
                            .params = *params,
                            .slots = e->o->slots};
    mt_gen_stage_stats gs;
    const double t0 = mt_now_seconds();
    mt_status st = mt_stage_generate(&e->c, l->jobs, l->n, &go, &gs);
    e->seconds_generation += mt_now_seconds() - t0;
    if (!st)
        st = mt_stage_outputs(&e->c, MT_PHASE_EVOLVE, stage, l->key_ptrs, l->n, out, NULL, NULL);
    for (int k = 0; !st && k < l->n; k++)
        if (!out[k])
            st = mt_fail(MT_ERR_INTERNAL, "item %s of %s was not stored", l->keys[k], stage);
    return st;
}

static mt_gen_params greedy_params(const evolve *e) {
    mt_gen_params p = mt_gen_defaults();
    p.max_tokens = e->o->max_tokens;
    p.sampling.temperature = 0.0f;
    return p;
}

static mt_status greedy_pass(evolve *e, int round) {
    mt_gen_jobs l = {0};
    char **out = mt_calloc((size_t)e->n + 1, sizeof *out);
    mt_status st = out ? mt_gen_jobs_alloc(&l, e->n) : mt_fail(MT_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < e->n; i++) st = add_job(e, &l, i, round, 0, e->users[i], NULL);
    char label[64];
    snprintf(label, sizeof label, "round %d greedy", round);
    const mt_gen_params p = greedy_params(e);
    if (!st) st = generate(e, &l, MT_STAGE_GREEDY, label, &p, out);
    for (int i = 0; !st && i < e->n; i++) e->rounds[round][i].greedy = out[i], out[i] = NULL;
    for (int i = 0; out && i < e->n; i++) free(out[i]);
    free(out);
    mt_gen_jobs_free(&l);
    return st;
}

/* The stored expensive answer: {"text": ..., "score": ...}. */
static char *expensive_json(const char *text, double score, int sample) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "text", text);
    cJSON_AddNumberToObject(o, "score", score);
    if (sample > 0) cJSON_AddNumberToObject(o, "sample", sample);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static mt_status commit_expensive(evolve *e, int i, int round, const char *text, double score,
                                  int sample) {
    char key[MT_ITEM_KEY_MAX];
    round_key(e, i, round, 0, key);
    char *json = expensive_json(text + strspn(text, " \t\r\n"), score, sample);
    if (!json) return mt_fail(MT_ERR_NOMEM, "out of memory");
    mt_status st = mt_store_item_done(e->c.store, MT_PHASE_EVOLVE, MT_STAGE_EXPENSIVE, key, json);
    cJSON_free(json);
    if (!st) mt_fault_point(MT_STAGE_EXPENSIVE "_done");
    return st;
}

/* The questions of round whose expensive answer is not stored yet. */
static mt_status expensive_todo(const evolve *e, int round, int *todo, int *n_todo) {
    *n_todo = 0;
    for (int i = 0; i < e->n; i++) {
        char key[MT_ITEM_KEY_MAX];
        int done = 0;
        round_key(e, i, round, 0, key);
        mt_status st = mt_stage_item_done(&e->c, MT_PHASE_EVOLVE, MT_STAGE_EXPENSIVE, key, &done);
        if (st) return st;
        if (!done) todo[(*n_todo)++] = i;
    }
    return MT_OK;
}

typedef struct {
    evolve *e;
    int round;
    const int *todo;
    int done;
    mt_task task;
} beam_pass;

static mt_status beam_done(void *user, int k, const mt_beam_result *r) {
    beam_pass *b = user;
    const mt_beam_hyp *best = r->n_hyps ? &r->hyps[0] : NULL;
    mt_status st =
        commit_expensive(b->e, b->todo[k], b->round, best && best->text ? best->text : "",
                         best ? best->score : 0, 0);
    if (!st) mt_task_update(&b->task, ++b->done, NULL);
    return st;
}

static mt_status beam_search(evolve *e, int round, const int *todo, int n_todo) {
    const mt_evolve_opts *o = e->o;
    mt_beam_prompt *prompts = mt_calloc((size_t)n_todo + 1, sizeof *prompts);
    int32_t **ids = mt_calloc((size_t)n_todo + 1, sizeof *ids);
    mt_status st = prompts && ids ? MT_OK : mt_fail(MT_ERR_NOMEM, "out of memory");
    for (int k = 0; !st && k < n_todo; k++) {
        const mt_chat_msg msg = {"user", e->users[todo[k]]};
        size_t n_ids = 0;
        st = mt_session_encode(&e->model, &msg, 1, NULL, &ids[k], &n_ids);
        prompts[k] = (mt_beam_prompt){.prompt = ids[k], .n_prompt = (int)n_ids};
    }
    int32_t stop[8];
    mt_beam_params p = mt_beam_defaults();
    p.n_beams = o->beams;
    p.length_penalty = o->length_penalty;
    p.max_tokens = o->max_tokens;
    p.stop_tokens = stop;
    p.n_stop_tokens = mt_session_stop_tokens(&e->model, stop, 8);
    beam_pass b = {.e = e, .round = round, .todo = todo, .done = e->n - n_todo};
    char label[64];
    snprintf(label, sizeof label, "round %d beam search", round);
    if (!st) {
        mt_task_start(&b.task, e->c.rep, label, e->n, b.done);
        st = mt_beam_search_batch(e->model.model, e->model.tok, prompts, n_todo, &p,
                                  o->beam_questions, beam_done, &b, NULL);
        mt_task_finish(&b.task, NULL);
    }
    for (int k = 0; ids && k < n_todo; k++) free(ids[k]);
    free(ids);
    free(prompts);
    return st;
}

/* Mean token log-probs of question i's answers, with the adapter attached now. */
static mt_status score_answers(evolve *e, int i, const char *const *answers, int n,
                               double *mean_logprob) {
    mt_answer_score *s = mt_calloc((size_t)n + 1, sizeof *s);
    if (!s) return mt_fail(MT_ERR_NOMEM, "out of memory");
    const double t0 = mt_now_seconds();
    mt_status st =
        mt_score_answers(e->model.model, e->model.tok, e->model.chat, e->users[i], answers, n, s);
    e->seconds_scoring += mt_now_seconds() - t0;
    for (int k = 0; !st && k < n; k++) mean_logprob[k] = mt_answer_mean_logprob(&s[k]);
    free(s);
    return st;
}

/* Best of n: every sample of every question first, then per question the sample the
 * model finds most likely (mean token log-prob; the first of equals; an empty sample only
 * when all are). */
static mt_status best_of_n(evolve *e, int round, const int *todo, int n_todo) {
    const mt_evolve_opts *o = e->o;
    const int n_jobs = n_todo * o->samples;
    mt_gen_jobs l = {0};
    char **out = mt_calloc((size_t)n_jobs + 1, sizeof *out);
    mt_status st = out ? mt_gen_jobs_alloc(&l, n_jobs) : mt_fail(MT_ERR_NOMEM, "out of memory");
    for (int k = 0; !st && k < n_todo; k++)
        for (int s = 1; s <= o->samples; s++)
            st = add_job(e, &l, todo[k], round, s, e->users[todo[k]], NULL);
    mt_gen_params p = mt_gen_defaults();
    p.max_tokens = o->max_tokens;
    p.sampling.temperature = o->temperature;
    p.sampling.top_k = o->top_k;
    p.sampling.top_p = o->top_p;
    p.sampling.seed = o->seed;
    char label[64];
    snprintf(label, sizeof label, "round %d samples", round);
    if (!st) st = generate(e, &l, MT_STAGE_SAMPLE, label, &p, out);
    const char **texts = mt_calloc((size_t)o->samples + 1, sizeof *texts);
    double *logp = mt_calloc((size_t)o->samples + 1, sizeof *logp);
    int *which = mt_calloc((size_t)o->samples + 1, sizeof *which);
    if (!st && (!texts || !logp || !which)) st = mt_fail(MT_ERR_NOMEM, "out of memory");
    mt_task task;
    snprintf(label, sizeof label, "round %d ranking", round);
    mt_task_start(&task, e->c.rep, label, n_todo, 0);
    for (int k = 0; !st && k < n_todo; k++) {
        int n_texts = 0;
        for (int s = 0; s < o->samples; s++)
            if (out[k * o->samples + s][0])
                which[n_texts] = s, texts[n_texts++] = out[k * o->samples + s];
        st = score_answers(e, todo[k], texts, n_texts, logp);
        int best = -1;
        for (int t = 0; !st && t < n_texts; t++)
            if (best < 0 || logp[t] > logp[best]) best = t;
        if (!st)
            st = commit_expensive(e, todo[k], round, best < 0 ? "" : texts[best],
                                  best < 0 ? 0 : logp[best], best < 0 ? 0 : which[best] + 1);
        mt_task_update(&task, k + 1, NULL);
    }
    mt_task_finish(&task, NULL);
    free(texts);
    free(logp);
    free(which);
    for (int k = 0; out && k < n_jobs; k++) free(out[k]);
    free(out);
    mt_gen_jobs_free(&l);
    return st;
}

static mt_status read_expensive(evolve *e, int round) {
    for (int i = 0; i < e->n; i++) {
        char key[MT_ITEM_KEY_MAX], *json = NULL;
        const char *keys[1] = {key};
        round_key(e, i, round, 0, key);
        mt_status st = mt_stage_outputs(&e->c, MT_PHASE_EVOLVE, MT_STAGE_EXPENSIVE, keys, 1, &json,
                                        NULL, NULL);
        cJSON *j = json ? cJSON_Parse(json) : NULL;
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(j, "text");
        if (!st && !cJSON_IsString(text))
            st = mt_fail(MT_ERR_FORMAT, "the stored expensive answer of %s is unreadable", key);
        if (!st && !(e->rounds[round][i].expensive = mt_strdup(text->valuestring)))
            st = mt_fail(MT_ERR_NOMEM, "out of memory");
        cJSON_Delete(j);
        free(json);
        if (st) return st;
    }
    return MT_OK;
}

static mt_status expensive_pass(evolve *e, int round) {
    int *todo = mt_calloc((size_t)e->n + 1, sizeof *todo);
    int n_todo = 0;
    mt_status st =
        todo ? expensive_todo(e, round, todo, &n_todo) : mt_fail(MT_ERR_NOMEM, "out of memory");
    const double t0 = mt_now_seconds();
    if (!st && n_todo)
        st = e->o->strategy == MT_EVOLVE_BEAM ? beam_search(e, round, todo, n_todo)
                                              : best_of_n(e, round, todo, n_todo);
    if (e->o->strategy == MT_EVOLVE_BEAM) e->seconds_generation += mt_now_seconds() - t0;
    free(todo);
    return st ? st : read_expensive(e, round);
}

/* ---- pairs -------------------------------------------------------------------------------- */

static drop_reason text_drop(const q_round *q) {
    if (!q->greedy[0] || !q->expensive[0]) return DROP_EMPTY;
    if (!strcmp(q->greedy, q->expensive)) return DROP_IDENTICAL;
    return DROP_NONE;
}

/* The model compares the two answers of every candidate pair in both orders (a1: the
 * expensive answer shown as A, a2: as B); a pair stays only when both prefer it. */
static mt_status self_check_pass(evolve *e, int round, unsigned char *disagrees) {
    q_round *q = e->rounds[round];
    mt_gen_jobs l = {0};
    char **out = mt_calloc(2 * (size_t)e->n + 1, sizeof *out);
    mt_json_constraint *constraint = NULL;
    mt_status st = out ? mt_gen_jobs_alloc(&l, 2 * e->n) : mt_fail(MT_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < e->n; i++) {
        if (text_drop(&q[i]) != DROP_NONE) continue;
        st = add_job(e, &l, i, round, 1, NULL,
                     mt_prompt_compare(e->users[i], q[i].expensive, q[i].greedy));
        if (!st)
            st = add_job(e, &l, i, round, 2, NULL,
                         mt_prompt_compare(e->users[i], q[i].greedy, q[i].expensive));
    }
    if (!st && l.n)
        st = mt_session_constraint(&e->model, mt_compare_schema, strlen(mt_compare_schema),
                                   &constraint);
    mt_gen_params p = greedy_params(e);
    p.max_tokens = CHECK_MAX_TOKENS;
    p.constraint = constraint;
    char label[64];
    snprintf(label, sizeof label, "round %d self-check", round);
    if (!st && l.n) st = generate(e, &l, MT_STAGE_CHECK, label, &p, out);
    for (int k = 0; !st && k + 1 < l.n; k += 2) {
        int first_a = 0, second_a = 1;
        /* a reply cut by the token limit is no preference */
        const int parsed =
            !mt_compare_parse(out[k], &first_a) && !mt_compare_parse(out[k + 1], &second_a);
        disagrees[l.question[k]] = !(parsed && first_a && !second_a);
    }
    mt_json_constraint_free(constraint);
    for (int k = 0; out && k < l.n; k++) free(out[k]);
    free(out);
    mt_gen_jobs_free(&l);
    return st;
}

static char *pair_json(const q_round *q) {
    cJSON *o = cJSON_CreateObject();
    if (q->drop)
        cJSON_AddStringToObject(o, "drop", drop_names[q->drop]);
    else
        cJSON_AddNullToObject(o, "drop");
    cJSON_AddNumberToObject(o, "greedy_logp", q->greedy_logp);
    cJSON_AddNumberToObject(o, "expensive_logp", q->expensive_logp);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static mt_status number_field(const cJSON *j, const char *name, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    if (!cJSON_IsNumber(v))
        return mt_fail(MT_ERR_FORMAT, "the stored item %s has no number '%s'", key, name);
    *out = v->valuedouble;
    return MT_OK;
}

static mt_status read_pair(const char *json, const char *key, q_round *q) {
    cJSON *j = cJSON_Parse(json);
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(j, "drop");
    mt_status st = number_field(j, "greedy_logp", key, &q->greedy_logp);
    if (!st) st = number_field(j, "expensive_logp", key, &q->expensive_logp);
    q->drop = DROP_NONE;
    for (int d = DROP_IDENTICAL; !st && cJSON_IsString(drop) && d <= DROP_SELF_CHECK; d++)
        if (!strcmp(drop->valuestring, drop_names[d])) q->drop = (drop_reason)d;
    if (!st && cJSON_IsString(drop) && q->drop == DROP_NONE)
        st = mt_fail(MT_ERR_FORMAT, "the stored pair %s has an unknown drop reason", key);
    cJSON_Delete(j);
    return st;
}

/* Mean token log-probs of both answers with the adapter generation runs with now. */
static mt_status score_pair(evolve *e, int i, const q_round *q, double *greedy, double *expensive) {
    const char *answers[2] = {q->expensive, q->greedy};
    double logp[2];
    const int same = !strcmp(q->greedy, q->expensive);
    mt_status st = score_answers(e, i, answers, same ? 1 : 2, logp);
    *expensive = logp[0];
    *greedy = same ? logp[0] : logp[1];
    return st;
}

static mt_status pair_pass(evolve *e, int round) {
    q_round *q = e->rounds[round];
    unsigned char *disagrees = mt_calloc((size_t)e->n + 1, 1);
    mt_status st = disagrees ? MT_OK : mt_fail(MT_ERR_NOMEM, "out of memory");
    if (!st && e->o->self_check) st = self_check_pass(e, round, disagrees);
    mt_task task;
    char label[64];
    snprintf(label, sizeof label, "round %d pairs", round);
    mt_task_start(&task, e->c.rep, label, e->n, 0);
    for (int i = 0; !st && i < e->n; i++) {
        char key[MT_ITEM_KEY_MAX], *json = NULL;
        const char *keys[1] = {key};
        round_key(e, i, round, 0, key);
        st = mt_stage_outputs(&e->c, MT_PHASE_EVOLVE, MT_STAGE_PAIR, keys, 1, &json, NULL, NULL);
        if (!st && json) {
            st = read_pair(json, key, &q[i]);
        } else if (!st) {
            q[i].drop = text_drop(&q[i]);
            if (q[i].drop == DROP_NONE && disagrees[i]) q[i].drop = DROP_SELF_CHECK;
            st = score_pair(e, i, &q[i], &q[i].greedy_logp, &q[i].expensive_logp);
            if (!st && !(json = pair_json(&q[i]))) st = mt_fail(MT_ERR_NOMEM, "out of memory");
            if (!st) st = mt_store_item_done(e->c.store, MT_PHASE_EVOLVE, MT_STAGE_PAIR, key, json);
            if (!st) mt_fault_point(MT_STAGE_PAIR "_done");
        }
        free(json);
        mt_task_update(&task, i + 1, NULL);
    }
    mt_task_finish(&task, NULL);
    free(disagrees);
    return st;
}

static char *rescore_json(const q_round *q) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "greedy_logp", q->greedy_logp_after);
    cJSON_AddNumberToObject(o, "expensive_logp", q->expensive_logp_after);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Both answers of every question again, with the adapter the round trained. */
static mt_status rescore_pass(evolve *e, int round) {
    q_round *q = e->rounds[round];
    mt_task task;
    char label[64];
    snprintf(label, sizeof label, "round %d rescoring", round);
    mt_task_start(&task, e->c.rep, label, e->n, 0);
    mt_status st = MT_OK;
    for (int i = 0; !st && i < e->n; i++) {
        char key[MT_ITEM_KEY_MAX], *json = NULL;
        const char *keys[1] = {key};
        round_key(e, i, round, 0, key);
        st = mt_stage_outputs(&e->c, MT_PHASE_EVOLVE, MT_STAGE_RESCORE, keys, 1, &json, NULL, NULL);
        if (!st && json) {
            cJSON *j = cJSON_Parse(json);
            st = number_field(j, "greedy_logp", key, &q[i].greedy_logp_after);
            if (!st) st = number_field(j, "expensive_logp", key, &q[i].expensive_logp_after);
            cJSON_Delete(j);
        } else if (!st) {
            st = score_pair(e, i, &q[i], &q[i].greedy_logp_after, &q[i].expensive_logp_after);
            if (!st && !(json = rescore_json(&q[i]))) st = mt_fail(MT_ERR_NOMEM, "out of memory");
            if (!st)
                st = mt_store_item_done(e->c.store, MT_PHASE_EVOLVE, MT_STAGE_RESCORE, key, json);
            if (!st) mt_fault_point(MT_STAGE_RESCORE "_done");
        }
        q[i].scored_after = !st;
        free(json);
        mt_task_update(&task, i + 1, NULL);
    }
    mt_task_finish(&task, NULL);
    return st;
}

/* ---- exports ------------------------------------------------------------------------------ */

static void add_question(cJSON *o, const mt_question *q) {
    cJSON_AddStringToObject(o, "id", q->id);
    cJSON_AddStringToObject(o, "question_title", q->title ? q->title : "");
    cJSON_AddStringToObject(o, "question_content", q->content ? q->content : "");
}

static char *pair_line(const evolve *e, int round, int i) {
    const q_round *q = &e->rounds[round][i];
    cJSON *o = cJSON_CreateObject();
    add_question(o, &e->qs[i]);
    cJSON_AddStringToObject(o, "chosen", q->expensive);
    cJSON_AddStringToObject(o, "rejected", q->greedy);
    cJSON_AddNumberToObject(o, "chosen_logp", q->expensive_logp);
    cJSON_AddNumberToObject(o, "rejected_logp", q->greedy_logp);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void pairs_rel(int round, char *rel, size_t cap) {
    snprintf(rel, cap, "data/pairs-round-%d.jsonl", round);
}

/* data/pairs-round-N.jsonl: the round's kept pairs, the round's training data. */
static mt_status export_pairs(evolve *e, int round, int *kept) {
    mt_lines l = {0};
    mt_status st = MT_OK;
    for (int i = 0; !st && i < e->n; i++)
        if (e->rounds[round][i].drop == DROP_NONE) st = mt_lines_push(&l, pair_line(e, round, i));
    char rel[64], path[4096];
    pairs_rel(round, rel, sizeof rel);
    mt_run_path(&e->c.dir, rel, path, sizeof path);
    if (!st) st = mt_run_mkdir(&e->c.dir, "data");
    if (!st) st = mt_write_jsonl(path, l.v, l.n);
    *kept = l.n;
    mt_lines_free(&l);
    return st;
}

static char *evolution_line(const evolve *e, int round, int i) {
    const q_round *q = &e->rounds[round][i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", e->qs[i].id);
    cJSON_AddNumberToObject(o, "round", round);
    cJSON_AddStringToObject(o, "greedy", q->greedy);
    cJSON_AddStringToObject(o, "expensive", q->expensive);
    cJSON_AddBoolToObject(o, "kept", q->drop == DROP_NONE);
    if (q->drop)
        cJSON_AddStringToObject(o, "drop", drop_names[q->drop]);
    else
        cJSON_AddNullToObject(o, "drop");
    cJSON_AddNumberToObject(o, "greedy_logp", q->greedy_logp);
    cJSON_AddNumberToObject(o, "expensive_logp", q->expensive_logp);
    if (q->scored_after) {
        cJSON_AddNumberToObject(o, "greedy_logp_after", q->greedy_logp_after);
        cJSON_AddNumberToObject(o, "expensive_logp_after", q->expensive_logp_after);
    }
    const q_round *next = e->rounds[round + 1] ? &e->rounds[round + 1][i] : NULL;
    if (e->trained[round] && next && next->greedy)
        cJSON_AddStringToObject(o, "greedy_after", next->greedy);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* data/evolution.jsonl: per round and question both answers, the pair's fate, the scores. */
static mt_status export_evolution(evolve *e) {
    mt_lines l = {0};
    mt_status st = MT_OK;
    for (int r = 1; !st && r <= e->rounds_run; r++)
        for (int i = 0; !st && i < e->n; i++) st = mt_lines_push(&l, evolution_line(e, r, i));
    char path[4096];
    mt_run_path(&e->c.dir, "data/evolution.jsonl", path, sizeof path);
    if (!st) st = mt_write_jsonl(path, l.v, l.n);
    if (!st) mt_report_note(e->c.rep, "wrote %s (%d lines)", path, l.n);
    mt_lines_free(&l);
    return st;
}

/* ---- metrics ------------------------------------------------------------------------------ */

static mt_status round_metric(evolve *e, int round, const char *name, double value) {
    char full[96];
    snprintf(full, sizeof full, MT_METRIC_VERSION_FMT, round, name);
    return mt_stage_metric(&e->c, MT_PHASE_EVOLVE, full, value);
}

typedef struct {
    int kept, identical, empty, self_check, same_text;
    double chosen, rejected, chosen_after, rejected_after; /* means over kept pairs */
    double expensive, expensive_after;                     /* means over all questions */
} round_stats;

static round_stats round_summary(const evolve *e, int round) {
    round_stats s = {0};
    const q_round *q = e->rounds[round];
    for (int i = 0; i < e->n; i++) {
        s.identical += q[i].drop == DROP_IDENTICAL;
        s.empty += q[i].drop == DROP_EMPTY;
        s.self_check += q[i].drop == DROP_SELF_CHECK;
        s.same_text += !strcmp(q[i].greedy, q[i].expensive);
        s.expensive += q[i].expensive_logp / e->n;
        s.expensive_after += q[i].expensive_logp_after / e->n;
        if (q[i].drop != DROP_NONE) continue;
        s.kept++;
        s.chosen += q[i].expensive_logp, s.rejected += q[i].greedy_logp;
        s.chosen_after += q[i].expensive_logp_after, s.rejected_after += q[i].greedy_logp_after;
    }
    if (s.kept) {
        s.chosen /= s.kept, s.rejected /= s.kept;
        s.chosen_after /= s.kept, s.rejected_after /= s.kept;
    }
    return s;
}

static mt_status metrics_before(evolve *e, int round) {
    const round_stats s = round_summary(e, round);
    mt_status st = round_metric(e, round, MT_METRIC_PAIRS_KEPT, s.kept);
    if (!st) st = round_metric(e, round, MT_METRIC_DROPPED_IDENTICAL, s.identical);
    if (!st) st = round_metric(e, round, MT_METRIC_DROPPED_EMPTY, s.empty);
    if (!st) st = round_metric(e, round, MT_METRIC_DROPPED_SELF_CHECK, s.self_check);
    if (!st) st = round_metric(e, round, MT_METRIC_EXPENSIVE_LOGP_BEFORE, s.expensive);
    if (!st)
        st = round_metric(e, round, MT_METRIC_GREEDY_IS_EXPENSIVE_BEFORE,
                          (double)s.same_text / e->n);
    if (!st && s.kept) st = round_metric(e, round, MT_METRIC_CHOSEN_LOGP_BEFORE, s.chosen);
    if (!st && s.kept) st = round_metric(e, round, MT_METRIC_REJECTED_LOGP_BEFORE, s.rejected);
    if (!st && s.kept) st = round_metric(e, round, MT_METRIC_MARGIN_BEFORE, s.chosen - s.rejected);
    if (!st)
        mt_report_note(e->c.rep,
                       "round %d: %d pairs kept; dropped %d identical, %d empty, %d by the "
                       "self-check",
                       round, s.kept, s.identical, s.empty, s.self_check);
    return st;
}

static mt_status metrics_after(evolve *e, int round) {
    const round_stats s = round_summary(e, round);
    mt_status st = round_metric(e, round, MT_METRIC_EXPENSIVE_LOGP_AFTER, s.expensive_after);
    if (!st) st = round_metric(e, round, MT_METRIC_CHOSEN_LOGP_AFTER, s.chosen_after);
    if (!st) st = round_metric(e, round, MT_METRIC_REJECTED_LOGP_AFTER, s.rejected_after);
    if (!st) st = round_metric(e, round, MT_METRIC_MARGIN_AFTER, s.chosen_after - s.rejected_after);
    if (!st)
        mt_report_note(e->c.rep,
                       "round %d: chosen log-prob %.4f -> %.4f, margin %.4f -> %.4f; expensive "
                       "answers %.4f -> %.4f",
                       round, s.chosen, s.chosen_after, s.chosen - s.rejected,
                       s.chosen_after - s.rejected_after, s.expensive, s.expensive_after);
    return st;
}

/* How often the greedy answer after round's training equals round's expensive answer. */
static mt_status greedy_evidence(evolve *e, int round) {
    int same = 0;
    for (int i = 0; i < e->n; i++)
        same += !strcmp(e->rounds[round + 1][i].greedy, e->rounds[round][i].expensive);
    mt_status st = round_metric(e, round, MT_METRIC_GREEDY_IS_EXPENSIVE_AFTER, (double)same / e->n);
    if (!st)
        mt_report_note(e->c.rep,
                       "round %d: greedy answer equals the round's expensive answer for %d of "
                       "%d questions after training",
                       round, same, e->n);
    return st;
}

/* ---- training ----------------------------------------------------------------------------- */

static mt_status train_round(evolve *e, int round) {
    const mt_evolve_opts *o = e->o;
    char data[64], work[64], result[64], item[32], first[64], last[64];
    pairs_rel(round, data, sizeof data);
    snprintf(work, sizeof work, "train/" MT_PHASE_EVOLVE "/round-%d", round);
    snprintf(result, sizeof result, "adapters/" MT_PHASE_EVOLVE "/round-%d", round);
    snprintf(item, sizeof item, "round-%d", round);
    snprintf(first, sizeof first, MT_METRIC_PREF_ROUND_FIRST_LOSS_FMT, round);
    snprintf(last, sizeof last, MT_METRIC_PREF_ROUND_LAST_LOSS_FMT, round);
    mt_train_stage_opts to = {.phase = MT_PHASE_EVOLVE,
                              .stage = MT_STAGE_PREF,
                              .item = item,
                              .data = data,
                              .work = work,
                              .result = result,
                              .first_loss_metric = first,
                              .last_loss_metric = last,
                              .job = o->train};
    /* round r continues round r - 1's adapter; DPO's reference is that starting point */
    to.job.init_adapter = e->adapter[0] ? e->adapter : NULL;
    to.job.seed = o->train.seed + (uint64_t)round;
    int done = 0;
    mt_status st = mt_stage_item_done(&e->c, MT_PHASE_EVOLVE, MT_STAGE_PREF, item, &done);
    if (!st) st = mt_run_mkdir(&e->c.dir, "adapters/" MT_PHASE_EVOLVE);
    if (!st && !done) {
        mt_report_note(e->c.rep, "round %d: %s training", round, o->train.loss);
        mt_stage_to_training(&e->c);
        mt_train_summary sum;
        int trained = 0;
        const double t0 = mt_now_seconds();
        st = mt_stage_train(&e->c, &to, &trained, &sum);
        e->seconds_training += mt_now_seconds() - t0;
        if (!st && trained)
            mt_report_note(e->c.rep, "round %d: %lld steps, loss %.4f -> %.4f", round,
                           (long long)sum.steps, sum.first_loss, sum.last_loss);
        if (!st) mt_fault_point("evolve_round_done");
    }
    if (st) return st;
    mt_run_path(&e->c.dir, result, e->adapter, sizeof e->adapter);
    e->trained[round] = 1;
    return mt_stage_to_generation(&e->c, e->adapter, o->precise);
}

/* The last trained adapter where later phases and users look for it. */
static mt_status save_final_adapter(evolve *e) {
    if (!e->model.lora) return MT_OK;
    char dir[4096];
    mt_run_path(&e->c.dir, "adapters/" MT_PHASE_EVOLVE, dir, sizeof dir);
    mt_status st = mt_lora_save_peft(e->model.lora, e->model.model, dir);
    if (!st) mt_report_note(e->c.rep, "phase 3 adapter in %s", dir);
    return st;
}

/* ---- the rounds --------------------------------------------------------------------------- */

static mt_status open_round(evolve *e, int round) {
    if (e->rounds[round]) return MT_OK;
    e->rounds[round] = mt_calloc((size_t)e->n + 1, sizeof *e->rounds[round]);
    return e->rounds[round] ? MT_OK : mt_fail(MT_ERR_NOMEM, "out of memory");
}

/* One round: generate both answers, build and score the pairs, train, score again.
 * *kept: pairs the round trained on. */
static mt_status run_round(evolve *e, int round, int *kept) {
    mt_report_note(e->c.rep, "round %d of %d", round, e->o->rounds);
    mt_status st = open_round(e, round);
    if (!st && !e->rounds[round][0].greedy) st = greedy_pass(e, round);
    if (!st && round > 1 && e->trained[round - 1]) st = greedy_evidence(e, round - 1);
    if (!st) st = expensive_pass(e, round);
    if (!st) st = pair_pass(e, round);
    if (!st) st = export_pairs(e, round, kept);
    e->rounds_run = round;
    if (!st) st = metrics_before(e, round);
    if (st || !*kept) return st;
    if (!st) st = train_round(e, round);
    if (!st) st = rescore_pass(e, round);
    if (!st) st = metrics_after(e, round);
    return st;
}

static mt_status rounds(evolve *e) {
    mt_status st = MT_OK;
    int kept = 0;
    for (int round = 1; !st && round <= e->o->rounds; round++) {
        st = run_round(e, round, &kept);
        if (!st && !kept) {
            mt_report_note(e->c.rep,
                           "round %d kept no pair: the greedy answers already equal the "
                           "expensive ones; no further round would differ",
                           round);
            return MT_OK;
        }
    }
    /* what the last adapter answers greedily: the phase's evidence */
    const int last = e->rounds_run;
    if (!st) st = open_round(e, last + 1);
    if (!st && !e->rounds[last + 1][0].greedy) st = greedy_pass(e, last + 1);
    if (!st) st = greedy_evidence(e, last);
    return st;
}

static mt_status phase_metrics(evolve *e) {
    int trained = 0, pairs = 0;
    for (int r = 1; r <= e->rounds_run; r++) {
        trained += e->trained[r];
        for (int i = 0; i < e->n; i++) pairs += e->rounds[r][i].drop == DROP_NONE;
    }
    mt_status st = mt_stage_metric(&e->c, MT_PHASE_EVOLVE, MT_METRIC_ROUNDS, trained);
    if (!st) st = mt_stage_metric(&e->c, MT_PHASE_EVOLVE, MT_METRIC_PAIRS_KEPT, pairs);
    if (!st)
        mt_report_note(e->c.rep,
                       "phase 3: %d rounds trained on %d pairs; time in generation %.1f s, "
                       "scoring %.1f s, training %.1f s",
                       trained, pairs, e->seconds_generation, e->seconds_scoring,
                       e->seconds_training);
    return st;
}

/* ---- setup -------------------------------------------------------------------------------- */

static mt_status resolve_model(evolve *e) {
    if (e->o->model) {
        snprintf(e->model_path, sizeof e->model_path, "%s", e->o->model);
        return MT_OK;
    }
    char *m = NULL;
    mt_status st = mt_store_meta_get(e->c.store, MT_SETTING_REFINE_MODEL, &m);
    if (!st && !m) st = mt_store_meta_get(e->c.store, MT_SETTING_DISTILL_MODEL, &m);
    if (!st && !m)
        st = mt_fail(MT_ERR_ARG, "no model: this run has no weak model yet; pass -m MODEL");
    if (!st) snprintf(e->model_path, sizeof e->model_path, "%s", m);
    free(m);
    return st;
}

static mt_status resolve_start(evolve *e) {
    const mt_evolve_opts *o = e->o;
    e->adapter[0] = '\0';
    if (o->from_base && o->adapter)
        return mt_fail(MT_ERR_ARG, "give either --adapter DIR or --from-base");
    if (o->from_base) return MT_OK;
    if (o->adapter) {
        snprintf(e->adapter, sizeof e->adapter, "%s", o->adapter);
        return MT_OK;
    }
    mt_run_path(&e->c.dir, "adapters/" MT_PHASE_REFINE, e->adapter, sizeof e->adapter);
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/adapter_config.json", e->adapter);
    if (!mt_path_exists(cfg))
        return mt_fail(MT_ERR_ARG,
                       "this run has no phase 2 adapter (%s) to evolve from: run `meteor "
                       "refine` first, or pass --adapter DIR, or --from-base to start a fresh "
                       "adapter on the bare model",
                       e->adapter);
    return MT_OK;
}

static mt_status pin_settings(evolve *e) {
    const mt_evolve_opts *o = e->o;
    mt_store *s = e->c.store;
    char schedule[512];
    if (o->strategy == MT_EVOLVE_BEAM)
        snprintf(schedule, sizeof schedule, "strategy=beam beams=%d length_penalty=%g", o->beams,
                 o->length_penalty);
    else
        snprintf(schedule, sizeof schedule,
                 "strategy=best-of-n n=%d temperature=%g top_p=%g top_k=%d", o->samples,
                 o->temperature, o->top_p, o->top_k);
    const size_t used = strlen(schedule);
    snprintf(schedule + used, sizeof schedule - used,
             " self_check=%s max_tokens=%d loss=%s margin=%g beta=%g sft_weight=%g seed=%llu",
             o->self_check ? "on" : "off", o->max_tokens, o->train.loss, o->train.margin,
             o->train.beta, o->train.sft_weight, (unsigned long long)o->seed);
    mt_status st = mt_run_setting(s, MT_SETTING_EVOLVE_MODEL, e->model_path, "weak model");
    /* the run's own adapter is named relative to the run, so a moved run continues */
    const char *start = o->from_base ? "none (fresh adapter)" : e->adapter;
    if (!o->from_base && !o->adapter) start = "the run's adapters/" MT_PHASE_REFINE;
    if (!st) st = mt_run_setting(s, MT_SETTING_EVOLVE_START, start, "starting adapter");
    if (!st) st = mt_run_setting(s, MT_SETTING_EVOLVE_SCHEDULE, schedule, "phase 3 settings");
    return st;
}

static mt_status check_opts(const mt_evolve_opts *o) {
    if (o->rounds < 1 || o->rounds > MAX_ROUNDS)
        return mt_fail(MT_ERR_ARG, "--rounds must be 1 to %d", MAX_ROUNDS);
    if (o->strategy == MT_EVOLVE_BEAM && o->beams < 2)
        return mt_fail(MT_ERR_ARG,
                       "--beams %d with --strategy beam would make every pair "
                       "identical (one beam is greedy decoding): use 2 or more",
                       o->beams);
    if (o->strategy == MT_EVOLVE_BEST_OF_N && (o->samples < 2 || o->samples > MAX_SAMPLES))
        return mt_fail(MT_ERR_ARG, "--n must be 2 to %d for --strategy best-of-n", MAX_SAMPLES);
    if (strcmp(o->train.loss, "margin") && strcmp(o->train.loss, "dpo"))
        return mt_fail(MT_ERR_ARG, "--loss must be margin or dpo (got '%s')", o->train.loss);
    if (o->train.full)
        return mt_fail(MT_ERR_ARG, "phase 3 trains a LoRA adapter; full fine-tuning is not "
                                   "supported here");
    return MT_OK;
}

static mt_status user_turns(evolve *e) {
    e->users = mt_calloc((size_t)e->n + 1, sizeof *e->users);
    if (!e->users) return mt_fail(MT_ERR_NOMEM, "out of memory");
    for (int i = 0; i < e->n; i++) {
        mt_status st = mt_data_user_turn(e->qs[i].title, e->qs[i].content, &e->users[i]);
        if (st) return st;
    }
    return MT_OK;
}

static mt_status prepare(evolve *e) {
    const mt_evolve_opts *o = e->o;
    mt_status st = check_opts(o);
    if (st) return st;
    e->c.rep = o->rep;
    e->c.model = &e->model;
    st = mt_run_dir_open(o->run_dir, &e->c.dir, &e->c.store);
    if (!st) st = resolve_model(e);
    if (!st) st = resolve_start(e);
    if (!st) st = pin_settings(e);
    if (!st)
        st = mt_stage_questions(&e->c, o->questions, o->questions != NULL, o->seed,
                                o->test_fraction, &e->qs, &e->n);
    if (!st) {
        e->c.model_path = e->model_path;
        e->c.qs = e->qs;
        e->c.n = e->n;
        st = user_turns(e);
    }
    if (!st && !(st = mt_session_open(&e->model, e->model_path, o->threads, o->chat_template)))
        e->model_open = 1;
    if (!st) st = mt_stage_to_generation(&e->c, e->adapter, o->precise);
    return st;
}

static void cleanup(evolve *e) {
    for (int r = 0; r < MAX_ROUNDS + 2; r++) {
        for (int i = 0; e->rounds[r] && i < e->n; i++) {
            free(e->rounds[r][i].greedy);
            free(e->rounds[r][i].expensive);
        }
        free(e->rounds[r]);
    }
    for (int i = 0; e->users && i < e->n; i++) free(e->users[i]);
    free(e->users);
    mt_questions_free(e->qs, e->n);
    if (e->model_open) mt_session_close(&e->model);
    mt_store_close(e->c.store);
}

static mt_status run_phase(const mt_evolve_opts *o) {
    evolve e = {.o = o};
    mt_status st = prepare(&e);
    if (!st) st = rounds(&e);
    if (!st && e.rounds_run) st = export_evolution(&e);
    if (!st) st = save_final_adapter(&e);
    if (!st) st = phase_metrics(&e);
    cleanup(&e);
    return st;
}

mt_status mt_evolve(const mt_evolve_opts *o) {
    const int was = mt_kernels_precise();
    mt_kernels_set_precise(o->precise);
    const mt_status st = run_phase(o);
    mt_kernels_set_precise(was);
    return st;
}
