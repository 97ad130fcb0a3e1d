#include "pipeline/stages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/fault.h"
#include "io/file_util.h"
#include "infer/batch.h"
#include "kernels/matmul.h"
#include "model/lora.h"
#include "model/pack.h"
#include "pipeline/adapter.h"
#include "pipeline/questions.h"

void mt_item_key(const char *qid, int round, int attempt, char out[MT_ITEM_KEY_MAX]) {
    if (round == 0 && attempt == 0)
        snprintf(out, MT_ITEM_KEY_MAX, "%s", qid);
    else
        snprintf(out, MT_ITEM_KEY_MAX, "%s/r%d/a%d", qid, round, attempt);
}

/* ---- the model's mode -------------------------------------------------------------------- */

static void drop_adapter(mt_session *s) {
    if (!s->lora) return;
    mt_lora_detach(s->model);
    mt_lora_free(s->lora);
    s->lora = NULL;
}

mt_status mt_stage_to_generation(const mt_run_ctx *c, const char *dir, int precise) {
    mt_kernels_set_precise(precise);
    mt_status st = precise ? MT_OK : mt_model_pack(c->model->model);
    drop_adapter(c->model);
    if (!st && dir && *dir) st = mt_session_apply_adapter(c->model, dir);
    return st;
}

void mt_stage_to_training(const mt_run_ctx *c) {
    drop_adapter(c->model);
    mt_kernels_set_precise(1);
    mt_model_unpack(c->model->model);
}

/* ---- questions ---------------------------------------------------------------------------- */

static mt_status empty_split_error(const mt_run_ctx *c) {
    mt_question *all = NULL;
    int n_all = 0;
    mt_status st = mt_store_questions(c->store, NULL, &all, &n_all);
    mt_questions_free(all, n_all);
    if (st) return st;
    return mt_fail(MT_ERR_ARG, n_all ? "no question fell into the training split; lower "
                                       "--test-fraction or add questions"
                                     : "the run has no questions yet: pass --questions FILE");
}

mt_status mt_stage_questions(const mt_run_ctx *c, const char *path, int draw_split, uint64_t seed,
                             double test_fraction, mt_question **qs, int *n) {
    *qs = NULL;
    *n = 0;
    mt_status st = MT_OK;
    if (path) {
        mt_import_stats is;
        if (!(st = mt_questions_import(c->store, path, &is)))
            mt_report_note(c->rep, "questions: %d read from %s, %d new, %d already known", is.read,
                           path, is.added, is.duplicates);
    }
    if (!st && draw_split) st = mt_questions_split(c->store, seed, test_fraction);
    if (!st) st = mt_store_questions(c->store, "train", qs, n);
    if (!st && *n == 0) st = empty_split_error(c);
    if (!st) mt_report_note(c->rep, "training split: %d questions", *n);
    return st;
}

mt_status mt_stage_item_done(const mt_run_ctx *c, const char *phase, const char *stage,
                             const char *key, int *done) {
    mt_item it = {0};
    mt_status st = mt_store_item_get(c->store, phase, stage, key, &it);
    *done = !st && it.state == MT_ITEM_DONE;
    mt_item_free(&it);
    return st;
}

/* ---- generate ---------------------------------------------------------------------------- */

mt_status mt_gen_jobs_alloc(mt_gen_jobs *l, int cap) {
    memset(l, 0, sizeof *l);
    l->jobs = mt_calloc((size_t)cap + 1, sizeof *l->jobs);
    l->msgs = mt_calloc((size_t)cap + 1, sizeof *l->msgs);
    l->owned = mt_calloc((size_t)cap + 1, sizeof *l->owned);
    l->keys = mt_calloc((size_t)cap + 1, sizeof *l->keys);
    l->key_ptrs = mt_calloc((size_t)cap + 1, sizeof *l->key_ptrs);
    l->question = mt_calloc((size_t)cap + 1, sizeof *l->question);
    return l->jobs && l->msgs && l->owned && l->keys && l->key_ptrs && l->question
               ? MT_OK
               : mt_fail(MT_ERR_NOMEM, "out of memory");
}

mt_status mt_gen_jobs_add(mt_gen_jobs *l, const char *qid, int round, int attempt, int question,
                          const char *user, char *owned, uint64_t seed) {
    if (!user && !owned) return mt_fail(MT_ERR_NOMEM, "out of memory");
    const int k = l->n++;
    mt_item_key(qid, round, attempt, l->keys[k]);
    l->key_ptrs[k] = l->keys[k];
    l->question[k] = question;
    l->owned[k] = owned;
    l->msgs[k] = (mt_chat_msg){"user", user ? user : owned};
    l->jobs[k] = (mt_gen_job){.key = l->keys[k], .msgs = &l->msgs[k], .n_msgs = 1, .seed = seed};
    return MT_OK;
}

void mt_gen_jobs_free(mt_gen_jobs *l) {
    for (int k = 0; l->owned && k < l->n; k++) free(l->owned[k]);
    free(l->owned);
    free(l->jobs);
    free(l->msgs);
    free(l->keys);
    free(l->key_ptrs);
    free(l->question);
    memset(l, 0, sizeof *l);
}

typedef struct {
    const mt_run_ctx *c;
    const mt_gen_job *jobs;
    const mt_gen_stage_opts *o;
    mt_gen_stage_stats *stats;
    const int *which; /* batch position -> job */
    mt_task task;
} gen_pass;

static mt_status commit_output(gen_pass *g, int j, const char *text) {
    const mt_gen_stage_opts *o = g->o;
    mt_store *s = g->c->store;
    mt_status st = mt_store_begin(s);
    if (st) return st;
    st = mt_store_item_done(s, o->phase, o->stage, g->jobs[j].key, text);
    if (!st && o->on_output) st = o->on_output(o->user, s, j, text);
    if (!st) st = mt_store_commit(s);
    if (st) mt_store_rollback(s);
    return st;
}

static mt_status generated(void *user, int k, const mt_gen_result *r) {
    gen_pass *g = user;
    const int j = g->which[k];
    const char *text = r->text ? r->text + strspn(r->text, " \t\r\n") : "";
    mt_status st;
    if (*text || g->o->keep_empty) {
        st = commit_output(g, j, text);
        g->stats->written++;
    } else {
        st = mt_store_item_failed(g->c->store, g->o->phase, g->o->stage, g->jobs[j].key,
                                  g->o->empty_error);
        g->stats->empty++;
    }
    if (st) return st;
    char status[64];
    snprintf(status, sizeof status, "%d written, %d empty", g->stats->written, g->stats->empty);
    mt_task_update(&g->task, g->stats->done_before + g->stats->written + g->stats->empty, status);
    /* kill tests name the point after the stage: "guideline_done" */
    char point[80];
    snprintf(point, sizeof point, "%s_done", g->o->stage);
    mt_fault_point(point);
    return MT_OK;
}

/* The jobs whose item is not done yet, into todo. */
static mt_status pending_jobs(const mt_run_ctx *c, const mt_gen_job *jobs, int n,
                              const mt_gen_stage_opts *o, int *todo, int *n_todo) {
    *n_todo = 0;
    for (int j = 0; j < n; j++) {
        int done = 0;
        mt_status st = mt_stage_item_done(c, o->phase, o->stage, jobs[j].key, &done);
        if (st) return st;
        if (!done) todo[(*n_todo)++] = j;
    }
    return MT_OK;
}

static mt_status encode_jobs(const mt_run_ctx *c, const mt_gen_job *jobs, const int *todo,
                             int n_todo, mt_batch_item *items, int32_t **ids) {
    for (int k = 0; k < n_todo; k++) {
        const mt_gen_job *job = &jobs[todo[k]];
        size_t n_ids = 0;
        mt_status st = mt_session_encode(c->model, job->msgs, job->n_msgs, NULL, &ids[k], &n_ids);
        if (st) return st;
        items[k] = (mt_batch_item){
            .prompt = ids[k], .n_prompt = (int)n_ids, .own_seed = 1, .seed = job->seed};
    }
    return MT_OK;
}

mt_status mt_stage_generate(const mt_run_ctx *c, const mt_gen_job *jobs, int n,
                            const mt_gen_stage_opts *o, mt_gen_stage_stats *stats) {
    memset(stats, 0, sizeof *stats);
    stats->total = n;
    int *todo = mt_calloc((size_t)n + 1, sizeof *todo);
    mt_batch_item *items = mt_calloc((size_t)n + 1, sizeof *items);
    int32_t **ids = mt_calloc((size_t)n + 1, sizeof *ids);
    int n_todo = 0;
    mt_status st = todo && items && ids ? pending_jobs(c, jobs, n, o, todo, &n_todo) : MT_ERR_NOMEM;
    stats->done_before = n - n_todo;
    if (!st && n_todo) st = encode_jobs(c, jobs, todo, n_todo, items, ids);
    if (!st && n_todo) {
        int32_t stop[8];
        mt_gen_params p = o->params;
        p.stop_tokens = stop;
        p.n_stop_tokens = mt_session_stop_tokens(c->model, stop, 8);
        gen_pass g = {.c = c, .jobs = jobs, .o = o, .stats = stats, .which = todo};
        mt_task_start(&g.task, c->rep, o->label, n, stats->done_before);
        mt_batch_stats bs;
        st = mt_generate_batch(c->model->model, c->model->tok, items, n_todo, &p, o->slots,
                               generated, &g, &bs);
        mt_task_finish(&g.task, NULL);
    }
    for (int k = 0; ids && k < n_todo; k++) free(ids[k]);
    free(ids);
    free(items);
    free(todo);
    return st;
}

mt_status mt_stage_outputs(const mt_run_ctx *c, const char *phase, const char *stage,
                           const char *const *keys, int n, char **out, int *missing,
                           int *n_missing) {
    if (n_missing) *n_missing = 0;
    for (int k = 0; k < n; k++) {
        mt_item it = {0};
        out[k] = NULL;
        mt_status st = mt_store_item_get(c->store, phase, stage, keys[k], &it);
        if (!st && it.state == MT_ITEM_DONE)
            out[k] = it.output, it.output = NULL;
        else if (!st && missing)
            missing[(*n_missing)++] = k;
        mt_item_free(&it);
        if (st) return st;
    }
    return MT_OK;
}

/* ---- export ------------------------------------------------------------------------------ */

static mt_status decorate_line(char **line, mt_status (*decorate)(void *, cJSON *), void *user) {
    cJSON *r = cJSON_Parse(*line);
    if (!r) return mt_fail(MT_ERR_FORMAT, "a stored record is not JSON: %.80s", *line);
    mt_status st = decorate(user, r);
    char *txt = st ? NULL : cJSON_PrintUnformatted(r);
    char *copy = txt ? strdup(txt) : NULL;
    cJSON_free(txt);
    cJSON_Delete(r);
    if (st) return st;
    if (!copy) return mt_fail(MT_ERR_NOMEM, "out of memory exporting records");
    free(*line);
    *line = copy;
    return MT_OK;
}

mt_status mt_stage_export(const mt_run_ctx *c, const char *phase, const char *rel,
                          mt_status (*decorate)(void *user, cJSON *record), void *user,
                          int *n_records) {
    char **lines = NULL;
    int n = 0;
    mt_status st = mt_store_records(c->store, phase, &lines, &n);
    for (int k = 0; !st && decorate && k < n; k++) st = decorate_line(&lines[k], decorate, user);
    char path[4096];
    mt_run_path(&c->dir, rel, path, sizeof path);
    if (!st) st = mt_write_jsonl(path, lines, n);
    if (!st) mt_report_note(c->rep, "wrote %s (%d records)", path, n);
    *n_records = n;
    mt_strings_free(lines, n);
    return st;
}

/* ---- metrics ----------------------------------------------------------------------------- */

mt_status mt_stage_metric(const mt_run_ctx *c, const char *phase, const char *name, double value) {
    mt_status st = mt_store_metric(c->store, phase, name, value);
    if (!st) mt_report_metric(c->rep, phase, name, value);
    return st;
}

/* ---- train -------------------------------------------------------------------------------- */

static mt_status record_training(const mt_run_ctx *c, const mt_train_stage_opts *o,
                                 const mt_train_summary *sum) {
    char summary[256];
    snprintf(summary, sizeof summary,
             "{\"steps\":%lld,\"first_loss\":%.6f,\"last_loss\":%.6f,\"tokens_per_second\":%.1f}",
             (long long)sum->steps, sum->first_loss, sum->last_loss, sum->tokens_per_second);
    mt_status st = mt_store_begin(c->store);
    if (st) return st;
    st = mt_stage_metric(c, o->phase, o->first_loss_metric, sum->first_loss);
    if (!st) st = mt_stage_metric(c, o->phase, o->last_loss_metric, sum->last_loss);
    if (!st) st = mt_store_item_done(c->store, o->phase, o->stage, o->item, summary);
    if (!st) st = mt_store_commit(c->store);
    if (st) mt_store_rollback(c->store);
    return st;
}

mt_status mt_stage_train(const mt_run_ctx *c, const mt_train_stage_opts *o, int *trained,
                         mt_train_summary *sum) {
    *trained = 0;
    int done = 0;
    mt_status st = mt_stage_item_done(c, o->phase, o->stage, o->item, &done);
    if (st || done) return st;
    char data[4096], out[4096], result[4096], ckpt[4200];
    mt_run_path(&c->dir, o->data, data, sizeof data);
    mt_run_path(&c->dir, o->work, out, sizeof out);
    mt_run_path(&c->dir, o->result, result, sizeof result);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out);
    if ((st = mt_run_mkdir(&c->dir, o->work))) return st;
    mt_train_job j = o->job;
    j.data = data;
    j.out = out;
    j.result = result;
    j.rep = c->rep;
    j.resume = mt_path_exists(ckpt);
    if (j.resume) mt_report_note(c->rep, "resuming training from %s", ckpt);
    if ((st = mt_train_job_run(c->model, c->model_path, &j, sum))) return st;
    if ((st = record_training(c, o, sum))) return st;
    *trained = 1;
    return MT_OK;
}
