#include "pipeline/distill.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "kernels/matmul.h"
#include "model/pack.h"
#include "infer/session.h"
#include "pipeline/distill_prompts.h"
#include "pipeline/expert_pass.h"
#include "pipeline/names.h"
#include "pipeline/run_dir.h"
#include "pipeline/stages.h"

void mt_distill_defaults(mt_distill_opts *o) {
    memset(o, 0, sizeof *o);
    o->seed = 42;
    o->test_fraction = 0.2;
    o->guide_max_tokens = 256;
    o->slots = 8;
    o->guide_top_k = 50;
    o->guide_temperature = 0.7f;
    o->guide_top_p = 0.95f;
    o->answer_max_tokens = 512;
    o->score_max_tokens = 400;
    o->answer_temperature = 0.0f;
    mt_train_job_defaults(&o->train);
    o->train.epochs = 3;
}

typedef struct {
    const mt_distill_opts *o;
    mt_run_ctx c;
    mt_session weak;
    int weak_open;
    mt_question *qs; /* the train split */
    int n;
    const char **keys; /* per question: its item key (the question id) */
    char **guides;     /* per question: the guideline, or NULL */
    char **answers;    /* per question: the expert's answer, or NULL */
    const mt_expert_spec *sp;
    mt_expert *e;
} distill;

/* ---- guidelines ------------------------------------------------------------------------ */

static uint64_t id_seed(const char *id) {
    return strtoull(id, NULL, 16);
}

/* Loads stored guidelines; writes the missing ones with the weak model. */
static mt_status guidelines(distill *d) {
    const mt_distill_opts *o = d->o;
    mt_gen_job *jobs = mt_calloc((size_t)d->n + 1, sizeof *jobs);
    mt_chat_msg *msgs = mt_calloc((size_t)d->n + 1, sizeof *msgs);
    char **prompts = mt_calloc((size_t)d->n + 1, sizeof *prompts);
    mt_status st = jobs && msgs && prompts ? MT_OK : MT_ERR_NOMEM;
    for (int i = 0; !st && i < d->n; i++) {
        if (!(prompts[i] = mt_prompt_guideline(&d->qs[i]))) st = MT_ERR_NOMEM;
        msgs[i] = (mt_chat_msg){"user", prompts[i]};
        jobs[i] = (mt_gen_job){
            .key = d->keys[i], .msgs = &msgs[i], .n_msgs = 1, .seed = id_seed(d->qs[i].id)};
    }
    mt_gen_stage_opts go = {.phase = MT_PHASE_DISTILL,
                            .stage = MT_STAGE_GUIDELINE,
                            .label = "guidelines",
                            .empty_error = "the weak model wrote an empty guideline",
                            .params = mt_gen_defaults(),
                            .slots = o->slots};
    go.params.max_tokens = o->guide_max_tokens;
    go.params.sampling.temperature = o->guide_temperature;
    go.params.sampling.top_k = o->guide_top_k;
    go.params.sampling.top_p = o->guide_top_p;
    go.params.sampling.seed = o->seed;
    mt_gen_stage_stats gs;
    if (!st) st = mt_stage_generate(&d->c, jobs, d->n, &go, &gs);
    if (!st)
        st = mt_stage_outputs(&d->c, MT_PHASE_DISTILL, MT_STAGE_GUIDELINE, d->keys, d->n, d->guides,
                              NULL, NULL);
    for (int i = 0; prompts && i < d->n; i++) free(prompts[i]);
    free(prompts);
    free(msgs);
    free(jobs);
    return st;
}

/* ---- expert answers --------------------------------------------------------------------- */

typedef struct {
    mt_chat_msg msgs[2];
    char *user;
} turn;

static cJSON *record_json(const distill *d, int i, const char *answer) {
    const mt_question *q = &d->qs[i];
    cJSON *r = cJSON_CreateObject();
    if (!r) return NULL;
    cJSON_AddStringToObject(r, "id", q->id);
    cJSON_AddStringToObject(r, "question_title", q->title ? q->title : "");
    cJSON_AddStringToObject(r, "question_content", q->content ? q->content : "");
    if (d->guides[i])
        cJSON_AddStringToObject(r, "guideline", d->guides[i]);
    else
        cJSON_AddNullToObject(r, "guideline");
    cJSON_AddStringToObject(r, "answer", answer);
    if (q->category) cJSON_AddStringToObject(r, "category", q->category);
    cJSON_AddStringToObject(r, "model", d->o->model);
    cJSON_AddStringToObject(r, "expert", d->e->name);
    return r;
}

typedef struct {
    distill *d;
    const int *which; /* job -> question */
} answer_ctx;

static mt_status answer_reply(void *user, mt_store *s, int j, const char *content) {
    answer_ctx *a = user;
    cJSON *r = record_json(a->d, a->which[j], content);
    char *txt = r ? cJSON_PrintUnformatted(r) : NULL;
    mt_status st = txt ? mt_store_record_put(s, MT_PHASE_DISTILL, a->d->qs[a->which[j]].id, txt)
                       : mt_fail(MT_ERR_NOMEM, "out of memory");
    cJSON_free(txt);
    cJSON_Delete(r);
    return st;
}

/* The answer requests of the questions whose guideline exists (all, with --no-guideline). */
static mt_status answer_jobs(distill *d, turn *t, mt_expert_job *jobs, int *which, int *n_jobs) {
    *n_jobs = 0;
    for (int i = 0; i < d->n; i++) {
        if (!d->o->no_guideline && !d->guides[i]) continue;
        turn *x = &t[*n_jobs];
        if (!(x->user = mt_prompt_answer(&d->qs[i], d->o->no_guideline ? NULL : d->guides[i],
                                         d->o->grounded)))
            return MT_ERR_NOMEM;
        x->msgs[0] = (mt_chat_msg){"system", mt_prompt_expert_system};
        x->msgs[1] = (mt_chat_msg){"user", x->user};
        jobs[*n_jobs] = (mt_expert_job){.qid = d->qs[i].id,
                                        .req = {.msgs = x->msgs,
                                                .n_msgs = 2,
                                                .max_tokens = d->o->answer_max_tokens,
                                                .temperature = d->o->answer_temperature}};
        which[(*n_jobs)++] = i;
    }
    return MT_OK;
}

static void report_pass(const distill *d, const char *what, const mt_expert_pass_stats *ps) {
    mt_report_note(d->c.rep,
                   "%s: %d items: %d done before, %d from the request cache, %d answered now, %d "
                   "failed%s",
                   what, ps->total, ps->done_before, ps->cached, ps->answered, ps->failed,
                   ps->unsent ? " (budget stop: some not sent)" : "");
}

static mt_status answers(distill *d, int *failed) {
    turn *t = mt_calloc((size_t)d->n + 1, sizeof *t);
    mt_expert_job *jobs = mt_calloc((size_t)d->n + 1, sizeof *jobs);
    int *which = mt_calloc((size_t)d->n + 1, sizeof *which);
    int n_jobs = 0;
    mt_status st = t && jobs && which ? answer_jobs(d, t, jobs, which, &n_jobs) : MT_ERR_NOMEM;
    answer_ctx a = {.d = d, .which = which};
    mt_expert_pass_opts po = {.phase = MT_PHASE_DISTILL,
                              .stage = MT_STAGE_ANSWER,
                              .label = "expert answers",
                              .rep = d->c.rep,
                              .on_reply = answer_reply,
                              .user = &a};
    mt_expert_pass_stats ps = {0};
    if (!st) st = mt_expert_pass(d->c.store, d->e, jobs, n_jobs, &po, &ps);
    if (!st || st == MT_ERR_BUDGET) report_pass(d, "answers", &ps);
    *failed = ps.failed;
    for (int k = 0; t && k < d->n; k++) free(t[k].user);
    free(t);
    free(jobs);
    free(which);
    return st;
}

/* ---- stored answers, export, judge scores ------------------------------------------------ */

/* The judge's score of question qid's answer, or 0 when it has none. */
static mt_status stored_score(const distill *d, const char *qid, int *score) {
    mt_item it = {0};
    *score = 0;
    mt_status st = mt_store_item_get(d->c.store, MT_PHASE_DISTILL, MT_STAGE_SCORE, qid, &it);
    if (!st && it.state == MT_ITEM_DONE && it.output) {
        cJSON *j = cJSON_Parse(it.output);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "score");
        if (cJSON_IsNumber(v)) *score = v->valueint;
        cJSON_Delete(j);
    }
    mt_item_free(&it);
    return st;
}

/* A record as exported: with the judge's score where there is one. */
static mt_status add_score(void *user, cJSON *record) {
    const distill *d = user;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(record, "id");
    int score = 0;
    mt_status st = cJSON_IsString(id) ? stored_score(d, id->valuestring, &score) : MT_OK;
    if (!st && score > 0 && !cJSON_AddNumberToObject(record, "judge_score", score))
        st = mt_fail(MT_ERR_NOMEM, "out of memory exporting records");
    return st;
}

static mt_status export_records(distill *d) {
    int n = 0;
    return mt_stage_export(&d->c, MT_PHASE_DISTILL, "data/distilled.jsonl", add_score, d, &n);
}

static mt_status mean_score(distill *d) {
    double sum = 0;
    int n_scored = 0;
    for (int i = 0; i < d->n; i++) {
        int sc = 0;
        mt_status st = stored_score(d, d->qs[i].id, &sc);
        if (st) return st;
        if (sc > 0) sum += sc, n_scored++;
    }
    if (!n_scored) return MT_OK;
    mt_status st = mt_stage_metric(&d->c, MT_PHASE_DISTILL,
                                   d->o->no_guideline ? MT_METRIC_JUDGE_SCORE_NO_GUIDELINE
                                                      : MT_METRIC_JUDGE_SCORE_GUIDELINE,
                                   sum / n_scored);
    if (!st)
        mt_report_note(d->c.rep, "judge: mean score %.2f over %d answers (%s guidelines)",
                       sum / n_scored, n_scored, d->o->no_guideline ? "without" : "with");
    return st;
}

static mt_status scores(distill *d) {
    turn *t = mt_calloc((size_t)d->n + 1, sizeof *t);
    mt_expert_job *jobs = mt_calloc((size_t)d->n + 1, sizeof *jobs);
    int n_jobs = 0;
    mt_status st = t && jobs ? MT_OK : MT_ERR_NOMEM;
    for (int i = 0; !st && i < d->n; i++) {
        if (!d->answers[i]) continue;
        turn *x = &t[n_jobs];
        if (!(x->user = mt_prompt_score(&d->qs[i], d->answers[i]))) st = MT_ERR_NOMEM;
        x->msgs[0] = (mt_chat_msg){"system", mt_prompt_judge_system};
        x->msgs[1] = (mt_chat_msg){"user", x->user};
        jobs[n_jobs++] = (mt_expert_job){.qid = d->qs[i].id,
                                         .req = {.msgs = x->msgs,
                                                 .n_msgs = 2,
                                                 .schema_name = "answer_score",
                                                 .schema_json = mt_score_schema,
                                                 .max_tokens = d->o->score_max_tokens,
                                                 .temperature = 0.0}};
    }
    mt_expert_pass_opts po = {.phase = MT_PHASE_DISTILL,
                              .stage = MT_STAGE_SCORE,
                              .label = "judge scores",
                              .rep = d->c.rep};
    mt_expert_pass_stats ps = {0};
    if (!st) st = mt_expert_pass(d->c.store, d->e, jobs, n_jobs, &po, &ps);
    if (!st || st == MT_ERR_BUDGET) report_pass(d, "judge scores", &ps);
    if (!st) st = mean_score(d);
    for (int k = 0; t && k < d->n; k++) free(t[k].user);
    free(t);
    free(jobs);
    return st;
}

/* ---- SFT ------------------------------------------------------------------------------- */

static mt_status train(distill *d) {
    mt_train_stage_opts to = {.phase = MT_PHASE_DISTILL,
                              .stage = MT_STAGE_SFT,
                              .item = MT_ITEM_ADAPTER,
                              .data = "data/distilled.jsonl",
                              .work = "train/" MT_PHASE_DISTILL,
                              .result = "adapters/" MT_PHASE_DISTILL,
                              .first_loss_metric = MT_METRIC_SFT_FIRST_LOSS,
                              .last_loss_metric = MT_METRIC_SFT_LAST_LOSS,
                              .job = d->o->train};
    mt_train_summary sum;
    int trained = 0;
    mt_status st = mt_stage_train(&d->c, &to, &trained, &sum);
    if (!st && !trained) mt_report_note(d->c.rep, "phase 1 adapter already trained");
    if (!st && trained) {
        char result[4096];
        mt_run_path(&d->c.dir, to.result, result, sizeof result);
        mt_report_note(d->c.rep, "phase 1 SFT: %lld steps, loss %.4f -> %.4f; adapter in %s",
                       (long long)sum.steps, sum.first_loss, sum.last_loss, result);
    }
    return st;
}

/* ---- dry run --------------------------------------------------------------------------- */

static int64_t count_tokens(distill *d, const char *system, const char *user) {
    mt_chat_msg m[2] = {{"system", system}, {"user", user}};
    int32_t *ids = NULL;
    size_t n = 0;
    if (mt_session_encode(&d->weak, m, 2, NULL, &ids, &n)) n = strlen(user) / 4;
    free(ids);
    return (int64_t)n;
}

/* The answer request question i would send now, and what is stored for it. */
static mt_status plan_question(distill *d, int i, mt_distill_plan *plan) {
    const mt_distill_opts *o = d->o;
    mt_item g = {0}, a = {0};
    mt_status st =
        mt_store_item_get(d->c.store, MT_PHASE_DISTILL, MT_STAGE_GUIDELINE, d->keys[i], &g);
    if (!st) st = mt_store_item_get(d->c.store, MT_PHASE_DISTILL, MT_STAGE_ANSWER, d->keys[i], &a);
    const int have_guide = g.state == MT_ITEM_DONE, have_answer = a.state == MT_ITEM_DONE;
    char *user = st ? NULL
                    : mt_prompt_answer(&d->qs[i],
                                       o->no_guideline ? NULL
                                       : have_guide    ? g.output
                                                       : "",
                                       o->grounded);
    mt_item_free(&g);
    mt_item_free(&a);
    if (st) return st;
    if (!user) return MT_ERR_NOMEM;
    plan->guidelines_to_write += !o->no_guideline && !have_guide;
    if (have_answer) {
        plan->answers_done++;
    } else {
        plan->answers_to_request++;
        plan->prompt_tokens += count_tokens(d, mt_prompt_expert_system, user) +
                               (o->no_guideline || have_guide ? 0 : o->guide_max_tokens);
    }
    free(user);
    return MT_OK;
}

static mt_status estimate(distill *d, const mt_expert_spec *sp, mt_distill_plan *plan) {
    const mt_distill_opts *o = d->o;
    memset(plan, 0, sizeof *plan);
    plan->questions = d->n;
    for (int i = 0; i < d->n; i++) {
        mt_status st = plan_question(d, i, plan);
        if (st) return st;
    }
    plan->completion_tokens = (int64_t)plan->answers_to_request * o->answer_max_tokens;
    plan->score_requests = o->score ? plan->answers_to_request + plan->answers_done : 0;
    const double cp = sp->remote.cost_per_1k_prompt, cc = sp->remote.cost_per_1k_completion;
    plan->cost = !sp->local_model && (cp > 0 || cc > 0)
                     ? plan->prompt_tokens / 1000.0 * cp + plan->completion_tokens / 1000.0 * cc
                     : -1.0;
    return MT_OK;
}

/* ---- the phase --------------------------------------------------------------------------- */

static mt_status pin_settings(distill *d) {
    const mt_distill_opts *o = d->o;
    mt_store *s = d->c.store;
    mt_status st = mt_run_setting(s, MT_SETTING_DISTILL_MODEL, o->model, "weak model");
    if (!st)
        st = mt_run_setting(s, MT_SETTING_DISTILL_GUIDELINE, o->no_guideline ? "off" : "on",
                            "guidelines");
    if (!st)
        st = mt_run_setting(s, MT_SETTING_DISTILL_GROUNDED, o->grounded ? "on" : "off",
                            "grounding in reference answers");
    return st;
}

static mt_status prepare(distill *d) {
    const mt_distill_opts *o = d->o;
    d->c.rep = o->rep;
    d->c.model = &d->weak;
    d->c.model_path = o->model;
    mt_status st = mt_run_dir_open(o->run_dir, &d->c.dir, &d->c.store);
    if (!st) st = pin_settings(d);
    if (!st)
        st = mt_stage_questions(&d->c, o->questions, 1, o->seed, o->test_fraction, &d->qs, &d->n);
    if (!st) {
        d->c.qs = d->qs;
        d->c.n = d->n;
        d->keys = mt_calloc((size_t)d->n, sizeof *d->keys);
        d->guides = mt_calloc((size_t)d->n, sizeof *d->guides);
        d->answers = mt_calloc((size_t)d->n, sizeof *d->answers);
        if (!d->keys || !d->guides || !d->answers) st = MT_ERR_NOMEM;
    }
    for (int i = 0; !st && i < d->n; i++) d->keys[i] = d->qs[i].id;
    if (!st && !(st = mt_session_open(&d->weak, o->model, o->threads, o->chat_template)))
        d->weak_open = 1;
    return st;
}

static void cleanup(distill *d) {
    for (int i = 0; i < d->n; i++) {
        if (d->guides) free(d->guides[i]);
        if (d->answers) free(d->answers[i]);
    }
    free(d->guides);
    free(d->answers);
    free(d->keys);
    mt_questions_free(d->qs, d->n);
    if (d->weak_open) mt_session_close(&d->weak);
    mt_expert_free(d->e);
    mt_store_close(d->c.store);
}

static mt_status check_complete(distill *d, int failed) {
    int missing = 0;
    for (int i = 0; i < d->n; i++) missing += !d->answers[i];
    if (!missing) return MT_OK;
    return mt_fail(MT_ERR_REMOTE,
                   "%d of %d questions have no answer yet (%d failed this run; `meteor status "
                   "%s` lists them); rerun the same command to retry them; training starts once "
                   "every answer is in",
                   missing, d->n, failed, d->c.dir.root);
}

/* Answers, then the export of what is stored, even after a budget stop. */
static mt_status answers_and_export(distill *d, int *failed) {
    mt_status st = mt_expert_open(d->sp, d->c.store, &d->e);
    if (!st) st = answers(d, failed);
    if (st && st != MT_ERR_BUDGET) return st;
    const mt_status stop = st;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", mt_last_error());
    st = mt_stage_outputs(&d->c, MT_PHASE_DISTILL, MT_STAGE_ANSWER, d->keys, d->n, d->answers, NULL,
                          NULL);
    if (!st) st = export_records(d);
    if (!st && stop) st = mt_fail(stop, "%s", msg);
    return st;
}

static mt_status run_phase(const mt_distill_opts *o, const mt_expert_spec *sp) {
    distill d = {.o = o, .sp = sp};
    int failed = 0;
    mt_status st = prepare(&d);
    if (!st && !o->no_guideline) st = guidelines(&d);
    if (!st) st = answers_and_export(&d, &failed);
    if (!st && o->score) st = scores(&d);
    if (!st && o->score) st = export_records(&d);
    if (!st) st = check_complete(&d, failed);
    /* Training reads the weak model's stored rows in precise mode: the packed copies and
     * the expert (a local one holds a model) are no longer needed. */
    mt_kernels_set_precise(1);
    if (d.weak_open) mt_model_unpack(d.weak.model);
    mt_expert_free(d.e);
    d.e = NULL;
    if (!st && !o->no_train) st = train(&d);
    cleanup(&d);
    return st;
}

mt_status mt_distill(const mt_distill_opts *o, const mt_expert_spec *sp) {
    const int was = mt_kernels_precise();
    /* Before any model is opened: outside precise mode the sessions pack their weights
     * for the fast kernels, which give a sequence the same bits however it is batched, so
     * a resumed run writes what an uninterrupted one would. */
    mt_kernels_set_precise(o->precise);
    const mt_status st = run_phase(o, sp);
    mt_kernels_set_precise(was);
    return st;
}

mt_status mt_distill_estimate(const mt_distill_opts *o, const mt_expert_spec *sp,
                              mt_distill_plan *plan) {
    distill d = {.o = o, .sp = sp};
    mt_status st = prepare(&d);
    if (!st) st = estimate(&d, sp, plan);
    cleanup(&d);
    return st;
}
