#include "pipeline/eval.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/sha256.h"
#include "io/atomic_file.h"
#include "io/file_util.h"
#include "kernels/matmul.h"
#include "pipeline/bootstrap.h"
#include "pipeline/names.h"
#include "pipeline/stages.h"
#include "train/data.h"
#include "train/score.h"

#define MAX_MODELS 16
#define SUMMARY_VERSION 1

void mt_eval_defaults(mt_eval_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_tokens = 256;
    o->slots = 8;
    o->bootstrap = 1000;
    o->seed = 42;
}

typedef struct {
    char name[4200];    /* as the user names it: base, phaseN or adapter:PATH */
    char key[48];       /* in item keys: the name, or adapter-<hash of PATH> */
    char adapter[4096]; /* PEFT folder ("": the bare model) */
    char shown[4096];   /* the adapter as the summary names it (phases: relative to the run) */
    char **answers;     /* per test question */
    double *nll;        /* per question with a reference (eval.ref order) */
} eval_model;

typedef struct {
    double mean, lo, hi;
} interval;

typedef struct {
    const mt_eval_opts *o;
    mt_run_ctx c;
    mt_session model;
    int model_open;
    char model_path[4096];
    mt_question *qs; /* the test split */
    int n;
    char **users;
    int *ref; /* questions with a reference answer */
    int n_ref;
    eval_model *models;
    int n_models;
    int base; /* index of the base model, -1 when not evaluated */
} eval;

static void item_key(const eval *e, int i, const eval_model *m, char out[MT_ITEM_KEY_MAX]) {
    snprintf(out, MT_ITEM_KEY_MAX, "%s/%s", e->qs[i].id, m->key);
}

/* ---- models ---------------------------------------------------------------------------- */

static int adapter_present(const char *dir) {
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/adapter_config.json", dir);
    return mt_path_exists(cfg);
}

static const char *const phase_names[] = {MT_PHASE_DISTILL, MT_PHASE_REFINE, MT_PHASE_EVOLVE};
static const char *const phase_verbs[] = {"distill", "refine", "evolve"};

static int phase_index(const char *name) {
    for (int p = 0; p < 3; p++)
        if (!strcmp(name, phase_names[p])) return p;
    return -1;
}

static mt_status add_model(eval *e, const char *name, size_t len) {
    if (e->n_models == MAX_MODELS)
        return mt_fail(MT_ERR_ARG, "--models lists more than %d models", MAX_MODELS);
    eval_model *m = &e->models[e->n_models];
    snprintf(m->name, sizeof m->name, "%.*s", (int)len, name);
    for (int k = 0; k < e->n_models; k++)
        if (!strcmp(e->models[k].name, m->name))
            return mt_fail(MT_ERR_ARG, "--models names %s twice", m->name);
    const int phase = phase_index(m->name);
    if (!strcmp(m->name, "base")) {
        snprintf(m->key, sizeof m->key, "base");
        e->base = e->n_models;
    } else if (phase >= 0) {
        snprintf(m->key, sizeof m->key, "%s", phase_names[phase]);
        snprintf(m->shown, sizeof m->shown, "adapters/%s", phase_names[phase]);
        mt_run_path(&e->c.dir, m->shown, m->adapter, sizeof m->adapter);
        if (!adapter_present(m->adapter))
            return mt_fail(MT_ERR_ARG, "this run has no %s adapter (%s): run `meteor %s` first",
                           m->name, m->adapter, phase_verbs[phase]);
    } else if (!strncmp(m->name, "adapter:", 8) && m->name[8]) {
        const char *path = m->name + 8;
        char hex[65];
        mt_sha256_hex(path, strlen(path), hex);
        snprintf(m->key, sizeof m->key, "adapter-%.16s", hex);
        snprintf(m->adapter, sizeof m->adapter, "%s", path);
        snprintf(m->shown, sizeof m->shown, "%s", path);
        if (!adapter_present(m->adapter))
            return mt_fail(MT_ERR_ARG, "no PEFT adapter in %s (it has no adapter_config.json)",
                           path);
    } else {
        return mt_fail(MT_ERR_ARG,
                       "unknown model '%s' in --models: use base, phase1, phase2, phase3 or "
                       "adapter:PATH",
                       m->name);
    }
    e->n_models++;
    return MT_OK;
}

static mt_status resolve_models(eval *e) {
    e->base = -1;
    e->models = mt_calloc(MAX_MODELS, sizeof *e->models);
    if (!e->models) return mt_fail(MT_ERR_NOMEM, "out of memory");
    const char *list = e->o->models;
    if (!list) {
        mt_status st = add_model(e, "base", 4);
        for (int p = 0; !st && p < 3; p++) {
            char dir[4096], rel[64];
            snprintf(rel, sizeof rel, "adapters/%s", phase_names[p]);
            mt_run_path(&e->c.dir, rel, dir, sizeof dir);
            if (adapter_present(dir)) st = add_model(e, phase_names[p], strlen(phase_names[p]));
        }
        return st;
    }
    for (const char *p = list;;) {
        const size_t len = strcspn(p, ",");
        if (!len) return mt_fail(MT_ERR_ARG, "--models has an empty name: '%s'", list);
        mt_status st = add_model(e, p, len);
        if (st) return st;
        if (!p[len]) break;
        p += len + 1;
    }
    return MT_OK;
}

static mt_status resolve_model_path(eval *e) {
    if (e->o->model) {
        snprintf(e->model_path, sizeof e->model_path, "%s", e->o->model);
        return MT_OK;
    }
    static const char *const keys[] = {MT_SETTING_EVOLVE_MODEL, MT_SETTING_REFINE_MODEL,
                                       MT_SETTING_DISTILL_MODEL};
    char *m = NULL;
    mt_status st = MT_OK;
    for (int k = 0; !st && !m && k < 3; k++) st = mt_store_meta_get(e->c.store, keys[k], &m);
    if (!st && !m) st = mt_fail(MT_ERR_ARG, "no model: this run has no weak model yet; pass -m");
    if (!st) snprintf(e->model_path, sizeof e->model_path, "%s", m);
    free(m);
    return st;
}

/* ---- questions ------------------------------------------------------------------------- */

static mt_status test_questions(eval *e) {
    mt_status st = mt_store_questions(e->c.store, "test", &e->qs, &e->n);
    if (!st && !e->n)
        st = mt_fail(MT_ERR_ARG, "this run has no held-out test questions: a phase run with "
                                 "--questions draws the split (--test-fraction > 0)");
    if (!st) {
        e->users = mt_calloc((size_t)e->n + 1, sizeof *e->users);
        e->ref = mt_calloc((size_t)e->n + 1, sizeof *e->ref);
        if (!e->users || !e->ref) st = mt_fail(MT_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; !st && i < e->n; i++) {
        st = mt_data_user_turn(e->qs[i].title, e->qs[i].content, &e->users[i]);
        if (e->qs[i].reference && e->qs[i].reference[0]) e->ref[e->n_ref++] = i;
    }
    for (int k = 0; !st && k < e->n_models; k++) {
        e->models[k].answers = mt_calloc((size_t)e->n + 1, sizeof *e->models[k].answers);
        e->models[k].nll = mt_calloc((size_t)e->n_ref + 1, sizeof *e->models[k].nll);
        if (!e->models[k].answers || !e->models[k].nll) st = mt_fail(MT_ERR_NOMEM, "out of memory");
    }
    return st;
}

/* ---- answers ---------------------------------------------------------------------------- */

static mt_status answer_pass(eval *e, eval_model *m) {
    mt_gen_job *jobs = mt_calloc((size_t)e->n + 1, sizeof *jobs);
    mt_chat_msg *msgs = mt_calloc((size_t)e->n + 1, sizeof *msgs);
    char(*keys)[MT_ITEM_KEY_MAX] = mt_calloc((size_t)e->n + 1, sizeof *keys);
    const char **key_ptrs = mt_calloc((size_t)e->n + 1, sizeof *key_ptrs);
    mt_status st =
        jobs && msgs && keys && key_ptrs ? MT_OK : mt_fail(MT_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < e->n; i++) {
        item_key(e, i, m, keys[i]);
        key_ptrs[i] = keys[i];
        msgs[i] = (mt_chat_msg){"user", e->users[i]};
        jobs[i] = (mt_gen_job){.key = keys[i], .msgs = &msgs[i], .n_msgs = 1};
    }
    mt_gen_stage_opts go = {.phase = MT_PHASE_EVAL,
                            .stage = MT_STAGE_ANSWER,
                            .keep_empty = 1,
                            .params = mt_gen_defaults(),
                            .slots = e->o->slots};
    go.params.max_tokens = e->o->max_tokens;
    go.params.sampling.temperature = 0.0f;
    char label[4300];
    snprintf(label, sizeof label, "%s answers", m->name);
    go.label = label;
    mt_gen_stage_stats gs;
    if (!st) st = mt_stage_generate(&e->c, jobs, e->n, &go, &gs);
    if (!st)
        st = mt_stage_outputs(&e->c, MT_PHASE_EVAL, MT_STAGE_ANSWER, key_ptrs, e->n, m->answers,
                              NULL, NULL);
    for (int i = 0; !st && i < e->n; i++)
        if (!m->answers[i])
            st = mt_fail(MT_ERR_INTERNAL, "item %s of %s was not stored", keys[i], MT_STAGE_ANSWER);
    free(jobs);
    free(msgs);
    free(keys);
    free(key_ptrs);
    return st;
}

/* ---- reference NLL ---------------------------------------------------------------------- */

static mt_status read_nll(const char *key, const char *json, double *nll) {
    cJSON *j = cJSON_Parse(json);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "reference_nll");
    const int ok = cJSON_IsNumber(v);
    if (ok) *nll = v->valuedouble;
    cJSON_Delete(j);
    return ok ? MT_OK : mt_fail(MT_ERR_FORMAT, "the stored NLL of %s is unreadable", key);
}

static mt_status score_reference(eval *e, int i, const char *key, double *nll) {
    const char *answer = e->qs[i].reference;
    mt_answer_score s;
    mt_status st =
        mt_score_answers(e->model.model, e->model.tok, e->model.chat, e->users[i], &answer, 1, &s);
    if (st) return st;
    *nll = -mt_answer_mean_logprob(&s);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "reference_nll", *nll);
    cJSON_AddNumberToObject(o, "tokens", s.n_tokens);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!json) return mt_fail(MT_ERR_NOMEM, "out of memory");
    st = mt_store_item_done(e->c.store, MT_PHASE_EVAL, MT_STAGE_NLL, key, json);
    cJSON_free(json);
    return st;
}

static mt_status nll_pass(eval *e, eval_model *m) {
    mt_task task;
    char label[4300];
    snprintf(label, sizeof label, "%s reference NLL", m->name);
    mt_task_start(&task, e->c.rep, label, e->n_ref, 0);
    mt_status st = MT_OK;
    for (int k = 0; !st && k < e->n_ref; k++) {
        char key[MT_ITEM_KEY_MAX];
        item_key(e, e->ref[k], m, key);
        mt_item it = {0};
        st = mt_store_item_get(e->c.store, MT_PHASE_EVAL, MT_STAGE_NLL, key, &it);
        if (!st && it.state == MT_ITEM_DONE)
            st = read_nll(key, it.output, &m->nll[k]);
        else if (!st)
            st = score_reference(e, e->ref[k], key, &m->nll[k]);
        mt_item_free(&it);
        mt_task_update(&task, k + 1, NULL);
    }
    mt_task_finish(&task, NULL);
    return st;
}

/* ---- statistics ------------------------------------------------------------------------- */

static mt_status mean_ci(const eval *e, const double *v, interval *out) {
    double sum = 0;
    for (int k = 0; k < e->n_ref; k++) sum += v[k];
    out->mean = sum / e->n_ref;
    return mt_bootstrap_mean_ci(v, e->n_ref, e->o->bootstrap, e->o->seed, &out->lo, &out->hi);
}

/* m's interval, and (when the base is evaluated and m is not it) its difference from the
 * base's, resampled with the same indices (the same seed). */
static mt_status model_stats(const eval *e, const eval_model *m, interval *nll, interval *vs,
                             int *has_vs) {
    *has_vs = e->base >= 0 && m != &e->models[e->base];
    mt_status st = mean_ci(e, m->nll, nll);
    if (st || !*has_vs) return st;
    double *d = mt_calloc((size_t)e->n_ref, sizeof *d);
    if (!d) return mt_fail(MT_ERR_NOMEM, "out of memory");
    for (int k = 0; k < e->n_ref; k++) d[k] = m->nll[k] - e->models[e->base].nll[k];
    st = mean_ci(e, d, vs);
    free(d);
    return st;
}

/* Writes a metric only when it changed, so a rerun over finished work leaves the store as
 * it was. */
static mt_status metric(eval *e, const eval_model *m, const char *name, double value) {
    char full[4400];
    snprintf(full, sizeof full, "%s.%s", m->name, name);
    double was = 0;
    int found = 0;
    mt_status st = mt_store_metric_get(e->c.store, MT_PHASE_EVAL, full, &was, &found);
    if (!st && (!found || was != value)) st = mt_stage_metric(&e->c, MT_PHASE_EVAL, full, value);
    return st;
}

static cJSON *interval_json(const interval *v) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "mean", v->mean);
    cJSON_AddNumberToObject(o, "ci_low", v->lo);
    cJSON_AddNumberToObject(o, "ci_high", v->hi);
    return o;
}

static mt_status model_summary(eval *e, const eval_model *m, cJSON *models) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(models, o);
    cJSON_AddStringToObject(o, "name", m->name);
    if (m->shown[0])
        cJSON_AddStringToObject(o, "adapter", m->shown);
    else
        cJSON_AddNullToObject(o, "adapter");
    cJSON_AddNumberToObject(o, "n", e->n_ref);
    if (!e->n_ref) {
        cJSON_AddNullToObject(o, "reference_nll");
        cJSON_AddNullToObject(o, "vs_base");
        return MT_OK;
    }
    interval nll, vs;
    int has_vs = 0;
    mt_status st = model_stats(e, m, &nll, &vs, &has_vs);
    if (st) return st;
    cJSON_AddItemToObject(o, "reference_nll", interval_json(&nll));
    if (has_vs)
        cJSON_AddItemToObject(o, "vs_base", interval_json(&vs));
    else
        cJSON_AddNullToObject(o, "vs_base");
    st = metric(e, m, MT_METRIC_REFERENCE_NLL, nll.mean);
    if (!st) st = metric(e, m, MT_METRIC_REFERENCE_NLL_CI_LOW, nll.lo);
    if (!st) st = metric(e, m, MT_METRIC_REFERENCE_NLL_CI_HIGH, nll.hi);
    if (!st && has_vs) st = metric(e, m, MT_METRIC_REFERENCE_NLL_VS_BASE, vs.mean);
    if (!st && has_vs) st = metric(e, m, MT_METRIC_REFERENCE_NLL_VS_BASE_CI_LOW, vs.lo);
    if (!st && has_vs) st = metric(e, m, MT_METRIC_REFERENCE_NLL_VS_BASE_CI_HIGH, vs.hi);
    if (st) return st;
    if (has_vs)
        mt_report_note(e->c.rep,
                       "%s: reference NLL %.4f [%.4f, %.4f], vs base %+.4f [%+.4f, %+.4f]", m->name,
                       nll.mean, nll.lo, nll.hi, vs.mean, vs.lo, vs.hi);
    else
        mt_report_note(e->c.rep, "%s: reference NLL %.4f [%.4f, %.4f]", m->name, nll.mean, nll.lo,
                       nll.hi);
    return MT_OK;
}

/* ---- exports ---------------------------------------------------------------------------- */

static mt_status write_summary(eval *e) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "version", SUMMARY_VERSION);
    cJSON_AddNumberToObject(root, "questions", e->n);
    cJSON *models = cJSON_AddArrayToObject(root, "models");
    mt_status st = MT_OK;
    for (int k = 0; !st && k < e->n_models; k++) st = model_summary(e, &e->models[k], models);
    cJSON *b = cJSON_AddObjectToObject(root, "bootstrap");
    cJSON_AddNumberToObject(b, "resamples", e->o->bootstrap);
    cJSON_AddNumberToObject(b, "seed", (double)e->o->seed);
    char *text = st ? NULL : cJSON_Print(root);
    cJSON_Delete(root);
    if (!st && !text) st = mt_fail(MT_ERR_NOMEM, "out of memory");
    char path[4096];
    mt_run_path(&e->c.dir, "eval/summary.json", path, sizeof path);
    if (!st) st = mt_run_mkdir(&e->c.dir, "eval");
    mt_atomic_file f;
    if (!st) st = mt_atomic_open(&f, path);
    if (!st) {
        st = mt_atomic_write(&f, text, strlen(text));
        if (!st) st = mt_atomic_write(&f, "\n", 1);
        if (st)
            mt_atomic_abort(&f);
        else
            st = mt_atomic_commit(&f);
    }
    if (!st) mt_report_note(e->c.rep, "wrote %s", path);
    cJSON_free(text);
    return st;
}

static mt_status write_answers(eval *e) {
    const int n_lines = e->n_models * e->n;
    char **lines = mt_calloc((size_t)n_lines + 1, sizeof *lines);
    mt_status st = lines ? MT_OK : mt_fail(MT_ERR_NOMEM, "out of memory");
    for (int k = 0, line = 0; !st && k < e->n_models; k++) {
        const eval_model *m = &e->models[k];
        for (int i = 0, r = 0; !st && i < e->n; i++, line++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", e->qs[i].id);
            cJSON_AddStringToObject(o, "model", m->name);
            cJSON_AddStringToObject(o, "answer", m->answers[i]);
            if (r < e->n_ref && e->ref[r] == i)
                cJSON_AddNumberToObject(o, "reference_nll", m->nll[r++]);
            else
                cJSON_AddNullToObject(o, "reference_nll");
            char *s = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
            if (!s || !(lines[line] = mt_strdup(s))) st = mt_fail(MT_ERR_NOMEM, "out of memory");
            cJSON_free(s);
        }
    }
    char path[4096];
    mt_run_path(&e->c.dir, "data/eval-answers.jsonl", path, sizeof path);
    if (!st) st = mt_write_jsonl(path, lines, n_lines);
    if (!st) mt_report_note(e->c.rep, "wrote %s (%d answers)", path, n_lines);
    for (int k = 0; lines && k < n_lines; k++) free(lines[k]);
    free(lines);
    return st;
}

/* ---- the evaluation --------------------------------------------------------------------- */

static mt_status pin_settings(eval *e) {
    char settings[4400];
    snprintf(settings, sizeof settings, "model=%s max_tokens=%d precise=%d chat_template=%s",
             e->model_path, e->o->max_tokens, e->o->precise,
             e->o->chat_template ? e->o->chat_template : "auto");
    return mt_run_setting(e->c.store, MT_SETTING_EVAL, settings, "evaluation settings");
}

static mt_status check_opts(const mt_eval_opts *o) {
    if (!o->run_dir) return mt_fail(MT_ERR_ARG, "--run DIR is required");
    if (o->bootstrap < 1) return mt_fail(MT_ERR_ARG, "--bootstrap must be at least 1");
    if (o->max_tokens < 1 || o->slots < 1)
        return mt_fail(MT_ERR_ARG, "--max-tokens and --slots must be at least 1");
    return MT_OK;
}

static mt_status prepare(eval *e) {
    const mt_eval_opts *o = e->o;
    mt_status st = check_opts(o);
    if (st) return st;
    char db[4200];
    snprintf(db, sizeof db, "%s/run.db", o->run_dir);
    if (!mt_path_exists(db))
        return mt_fail(MT_ERR_ARG, "%s is not a run directory (it has no run.db)", o->run_dir);
    e->c.rep = o->rep;
    e->c.model = &e->model;
    st = mt_run_dir_open(o->run_dir, &e->c.dir, &e->c.store);
    if (!st) st = resolve_models(e);
    if (!st) st = resolve_model_path(e);
    if (!st) st = test_questions(e);
    if (!st) {
        e->c.model_path = e->model_path;
        e->c.qs = e->qs;
        e->c.n = e->n;
    }
    if (!st && !(st = mt_session_open(&e->model, e->model_path, o->threads, o->chat_template)))
        e->model_open = 1;
    /* after the model opened, so a mistyped path is not pinned */
    if (!st) st = pin_settings(e);
    return st;
}

static void cleanup(eval *e) {
    for (int k = 0; e->models && k < MAX_MODELS; k++) {
        for (int i = 0; e->models[k].answers && i < e->n; i++) free(e->models[k].answers[i]);
        free(e->models[k].answers);
        free(e->models[k].nll);
    }
    free(e->models);
    for (int i = 0; e->users && i < e->n; i++) free(e->users[i]);
    free(e->users);
    free(e->ref);
    mt_questions_free(e->qs, e->n);
    if (e->model_open) mt_session_close(&e->model);
    mt_store_close(e->c.store);
}

static mt_status run_eval(const mt_eval_opts *o) {
    eval e = {.o = o};
    mt_status st = prepare(&e);
    if (!st)
        mt_report_note(o->rep, "%d models answer %d test questions (%d with a reference answer)",
                       e.n_models, e.n, e.n_ref);
    for (int k = 0; !st && k < e.n_models; k++) {
        eval_model *m = &e.models[k];
        st = mt_stage_to_generation(&e.c, m->adapter, o->precise);
        if (!st) st = answer_pass(&e, m);
        if (!st) st = nll_pass(&e, m);
    }
    if (!st) st = write_answers(&e);
    if (!st) st = write_summary(&e);
    cleanup(&e);
    return st;
}

mt_status mt_eval(const mt_eval_opts *o) {
    const int was = mt_kernels_precise();
    mt_kernels_set_precise(o->precise);
    const mt_status st = run_eval(o);
    mt_kernels_set_precise(was);
    return st;
}
