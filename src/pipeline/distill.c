#include "pipeline/distill.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/fault.h"
#include "core/progress.h"
#include "kernels/matmul.h"
#include "model/pack.h"
#include "infer/batch.h"
#include "infer/session.h"
#include "pipeline/distill_prompts.h"
#include "pipeline/expert_pass.h"
#include "pipeline/names.h"
#include "pipeline/questions.h"
#include "pipeline/run_dir.h"

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
    mt_store *s;
    mt_run_dir dir;
    mt_session weak;
    int weak_open;
    mt_question *qs; /* the train split */
    int n;
    char **guides;  /* per question: the guideline, or NULL */
    char **answers; /* per question: the expert's answer, or NULL */
    mt_expert *e;
} distill;

/* ---- guidelines ------------------------------------------------------------------------ */

typedef struct {
    distill *d;
    const int *which; /* batch position -> question */
    mt_progress bar;
    int done, failed;
} guide_ctx;

static mt_status guide_done(void *user, int k, const mt_gen_result *r) {
    guide_ctx *g = user;
    distill *d = g->d;
    const int i = g->which[k];
    const char *text = r->text ? r->text + strspn(r->text, " \t\r\n") : "";
    mt_status st;
    if (*text) {
        st = mt_store_item_done(d->s, MT_PHASE_DISTILL, MT_STAGE_GUIDELINE, d->qs[i].id, text);
        if (!st && !(d->guides[i] = mt_strdup(text))) st = MT_ERR_NOMEM;
        g->done++;
    } else {
        st = mt_store_item_failed(d->s, MT_PHASE_DISTILL, MT_STAGE_GUIDELINE, d->qs[i].id,
                                  "the weak model wrote an empty guideline");
        g->failed++;
    }
    if (st) return st;
    char status[64];
    snprintf(status, sizeof status, "%d written, %d empty", g->done, g->failed);
    mt_progress_update(&g->bar, g->bar.start_done + g->done + g->failed, status);
    mt_fault_point("guideline_done");
    return MT_OK;
}

static uint64_t id_seed(const char *id) {
    return strtoull(id, NULL, 16);
}

static mt_status write_guidelines(distill *d, const int *todo, int n_todo, int already) {
    const mt_distill_opts *o = d->o;
    mt_batch_item *items = mt_calloc((size_t)n_todo + 1, sizeof *items);
    int32_t **ids = mt_calloc((size_t)n_todo + 1, sizeof *ids);
    mt_status st = items && ids ? MT_OK : MT_ERR_NOMEM;
    for (int k = 0; !st && k < n_todo; k++) {
        char *prompt = mt_prompt_guideline(&d->qs[todo[k]]);
        if (!prompt) {
            st = MT_ERR_NOMEM;
            break;
        }
        mt_chat_msg m = {"user", prompt};
        size_t n_ids = 0;
        st = mt_session_encode(&d->weak, &m, 1, NULL, &ids[k], &n_ids);
        free(prompt);
        items[k] = (mt_batch_item){.prompt = ids[k],
                                   .n_prompt = (int)n_ids,
                                   .own_seed = 1,
                                   .seed = id_seed(d->qs[todo[k]].id)};
    }
    int32_t stop[8];
    mt_gen_params p = mt_gen_defaults();
    p.max_tokens = o->guide_max_tokens;
    p.sampling.temperature = o->guide_temperature;
    p.sampling.top_k = o->guide_top_k;
    p.sampling.top_p = o->guide_top_p;
    p.sampling.seed = o->seed;
    p.stop_tokens = stop;
    p.n_stop_tokens = mt_session_stop_tokens(&d->weak, stop, 8);
    guide_ctx g = {.d = d, .which = todo};
    mt_progress_start(&g.bar, "guidelines", already + n_todo, already);
    g.bar.quiet = o->quiet;
    mt_batch_stats bs;
    if (!st)
        st = mt_generate_batch(d->weak.model, d->weak.tok, items, n_todo, &p, o->slots, guide_done,
                               &g, &bs);
    mt_progress_finish(&g.bar, NULL);
    for (int k = 0; ids && k < n_todo; k++) free(ids[k]);
    free(ids);
    free(items);
    return st;
}

/* The outputs of a stage's done items into out[i]; the questions without one are listed
 * in missing (when not NULL). */
static mt_status load_stage(distill *d, const char *stage, char **out, int *missing,
                            int *n_missing) {
    if (n_missing) *n_missing = 0;
    for (int i = 0; i < d->n; i++) {
        mt_item it = {0};
        mt_status st = mt_store_item_get(d->s, MT_PHASE_DISTILL, stage, d->qs[i].id, &it);
        if (!st && it.state == MT_ITEM_DONE)
            out[i] = it.output, it.output = NULL;
        else if (!st && missing)
            missing[(*n_missing)++] = i;
        mt_item_free(&it);
        if (st) return st;
    }
    return MT_OK;
}

/* Loads stored guidelines; writes the missing ones with the weak model. */
static mt_status guidelines(distill *d) {
    int *todo = mt_calloc((size_t)d->n + 1, sizeof *todo);
    int n_todo = 0;
    mt_status st =
        todo ? load_stage(d, MT_STAGE_GUIDELINE, d->guides, todo, &n_todo) : MT_ERR_NOMEM;
    if (!st && n_todo) st = write_guidelines(d, todo, n_todo, d->n - n_todo);
    free(todo);
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

static void report_pass(const char *what, const mt_expert_pass_stats *ps, int quiet) {
    if (quiet) return;
    fprintf(stderr,
            "%s: %d items: %d done before, %d from the request cache, %d answered now, %d "
            "failed%s\n",
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
                              .rep = d->o->quiet ? NULL : d->o->rep,
                              .on_reply = answer_reply,
                              .user = &a};
    mt_expert_pass_stats ps = {0};
    if (!st) st = mt_expert_pass(d->s, d->e, jobs, n_jobs, &po, &ps);
    if (!st || st == MT_ERR_BUDGET) report_pass("answers", &ps, d->o->quiet);
    *failed = ps.failed;
    for (int k = 0; t && k < d->n; k++) free(t[k].user);
    free(t);
    free(jobs);
    free(which);
    return st;
}

/* ---- stored answers, export, judge scores ------------------------------------------------ */

/* The judge's score of question qid's answer, or 0 when it has none. */
static mt_status stored_score(distill *d, const char *qid, int *score) {
    mt_item it = {0};
    *score = 0;
    mt_status st = mt_store_item_get(d->s, MT_PHASE_DISTILL, MT_STAGE_SCORE, qid, &it);
    if (!st && it.state == MT_ITEM_DONE && it.output) {
        cJSON *j = cJSON_Parse(it.output);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "score");
        if (cJSON_IsNumber(v)) *score = v->valueint;
        cJSON_Delete(j);
    }
    mt_item_free(&it);
    return st;
}

/* data/distilled.jsonl from the store's records, in question order, with the judge's score
 * where there is one. */
static mt_status export_records(distill *d, int *n_out) {
    char **lines = NULL;
    int n = 0;
    mt_status st = mt_store_records(d->s, MT_PHASE_DISTILL, &lines, &n);
    for (int k = 0; !st && k < n; k++) {
        cJSON *r = cJSON_Parse(lines[k]);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "id");
        int score = 0;
        if (cJSON_IsString(id)) st = stored_score(d, id->valuestring, &score);
        if (!st && score > 0) {
            cJSON_AddNumberToObject(r, "judge_score", score);
            char *txt = cJSON_PrintUnformatted(r);
            char *copy = txt ? strdup(txt) : NULL;
            cJSON_free(txt);
            if (copy) {
                free(lines[k]);
                lines[k] = copy;
            } else {
                st = mt_fail(MT_ERR_NOMEM, "out of memory exporting records");
            }
        }
        cJSON_Delete(r);
    }
    char path[4096];
    mt_run_path(&d->dir, "data/distilled.jsonl", path, sizeof path);
    if (!st) st = mt_write_jsonl(path, lines, n);
    if (!st && !d->o->quiet) fprintf(stderr, "wrote %s (%d records)\n", path, n);
    *n_out = n;
    mt_strings_free(lines, n);
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
                              .rep = d->o->quiet ? NULL : d->o->rep};
    mt_expert_pass_stats ps = {0};
    if (!st) st = mt_expert_pass(d->s, d->e, jobs, n_jobs, &po, &ps);
    if (!st || st == MT_ERR_BUDGET) report_pass("judge scores", &ps, d->o->quiet);
    double sum = 0;
    int n_scored = 0;
    for (int i = 0; !st && i < d->n; i++) {
        int sc = 0;
        if (!(st = stored_score(d, d->qs[i].id, &sc)) && sc > 0) sum += sc, n_scored++;
    }
    if (!st && n_scored) {
        st = mt_store_metric(d->s, MT_PHASE_DISTILL,
                             d->o->no_guideline ? MT_METRIC_JUDGE_SCORE_NO_GUIDELINE
                                                : MT_METRIC_JUDGE_SCORE_GUIDELINE,
                             sum / n_scored);
        if (!d->o->quiet)
            fprintf(stderr, "judge: mean score %.2f over %d answers (%s guidelines)\n",
                    sum / n_scored, n_scored, d->o->no_guideline ? "without" : "with");
    }
    for (int k = 0; t && k < d->n; k++) free(t[k].user);
    free(t);
    free(jobs);
    return st;
}

/* ---- SFT ------------------------------------------------------------------------------- */

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static mt_status train(distill *d) {
    mt_item it = {0};
    mt_status st = mt_store_item_get(d->s, MT_PHASE_DISTILL, MT_STAGE_SFT, MT_ITEM_ADAPTER, &it);
    const int done = it.state == MT_ITEM_DONE;
    mt_item_free(&it);
    if (st || done) {
        if (done && !d->o->quiet) fprintf(stderr, "phase 1 adapter already trained\n");
        return st;
    }
    char data[4096], out[4096], result[4096], ckpt[4200];
    mt_run_path(&d->dir, "data/distilled.jsonl", data, sizeof data);
    mt_run_path(&d->dir, "train/" MT_PHASE_DISTILL, out, sizeof out);
    mt_run_path(&d->dir, "adapters/" MT_PHASE_DISTILL, result, sizeof result);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", out);
    if ((st = mt_run_mkdir(&d->dir, "train/" MT_PHASE_DISTILL))) return st;
    mt_train_job j = d->o->train;
    j.data = data;
    j.out = out;
    j.result = result;
    j.quiet = d->o->quiet;
    j.resume = file_exists(ckpt);
    if (j.resume && !d->o->quiet) fprintf(stderr, "resuming training from %s\n", ckpt);
    mt_train_summary sum;
    if ((st = mt_train_job_run(&d->weak, d->o->model, &j, &sum))) return st;
    char summary[256];
    snprintf(summary, sizeof summary,
             "{\"steps\":%lld,\"first_loss\":%.6f,\"last_loss\":%.6f,\"tokens_per_second\":%.1f}",
             (long long)sum.steps, sum.first_loss, sum.last_loss, sum.tokens_per_second);
    if ((st = mt_store_begin(d->s))) return st;
    st = mt_store_metric(d->s, MT_PHASE_DISTILL, MT_METRIC_SFT_FIRST_LOSS, sum.first_loss);
    if (!st) st = mt_store_metric(d->s, MT_PHASE_DISTILL, MT_METRIC_SFT_LAST_LOSS, sum.last_loss);
    if (!st)
        st = mt_store_item_done(d->s, MT_PHASE_DISTILL, MT_STAGE_SFT, MT_ITEM_ADAPTER, summary);
    if (!st) st = mt_store_commit(d->s);
    if (st) mt_store_rollback(d->s);
    if (!st && !d->o->quiet)
        fprintf(stderr, "phase 1 SFT: %lld steps, loss %.4f -> %.4f; adapter in %s\n",
                (long long)sum.steps, sum.first_loss, sum.last_loss, result);
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

static mt_status dry_run(distill *d, const mt_expert_spec *sp) {
    const mt_distill_opts *o = d->o;
    int guides = 0, answers = 0, done = 0;
    int64_t prompt = 0;
    for (int i = 0; i < d->n; i++) {
        mt_item g = {0}, a = {0};
        mt_status st =
            mt_store_item_get(d->s, MT_PHASE_DISTILL, MT_STAGE_GUIDELINE, d->qs[i].id, &g);
        if (!st) st = mt_store_item_get(d->s, MT_PHASE_DISTILL, MT_STAGE_ANSWER, d->qs[i].id, &a);
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
        guides += !o->no_guideline && !have_guide;
        if (have_answer) {
            done++;
        } else {
            answers++;
            prompt += count_tokens(d, mt_prompt_expert_system, user) +
                      (o->no_guideline || have_guide ? 0 : o->guide_max_tokens);
        }
        free(user);
    }
    const int64_t completion = (int64_t)answers * o->answer_max_tokens;
    const int score_reqs = o->score ? answers + done : 0;
    printf("dry run: %d training questions; %d guidelines to write with the weak model\n", d->n,
           guides);
    printf("expert answers: %d to request, %d already done\n", answers, done);
    if (o->score) printf("judge scores: up to %d requests\n", score_reqs);
    printf("estimated tokens: about %lld prompt + at most %lld completion (weak model's "
           "tokenizer; the expert's may differ)\n",
           (long long)prompt, (long long)completion);
    const double cp = sp->remote.cost_per_1k_prompt, cc = sp->remote.cost_per_1k_completion;
    if (!sp->local_model && (cp > 0 || cc > 0))
        printf("estimated cost: at most %.4f\n", prompt / 1000.0 * cp + completion / 1000.0 * cc);
    printf("nothing was sent; run again without --dry-run to start\n");
    return MT_OK;
}

/* ---- the phase --------------------------------------------------------------------------- */

static mt_status prepare(distill *d) {
    const mt_distill_opts *o = d->o;
    mt_status st = mt_run_dir_open(o->run_dir, &d->dir, &d->s);
    if (!st) st = mt_run_setting(d->s, MT_SETTING_DISTILL_MODEL, o->model, "weak model");
    if (!st)
        st = mt_run_setting(d->s, MT_SETTING_DISTILL_GUIDELINE, o->no_guideline ? "off" : "on",
                            "guidelines");
    if (!st)
        st = mt_run_setting(d->s, MT_SETTING_DISTILL_GROUNDED, o->grounded ? "on" : "off",
                            "grounding in reference answers");
    if (!st && o->questions) {
        mt_import_stats is;
        if (!(st = mt_questions_import(d->s, o->questions, &is)) && !o->quiet)
            fprintf(stderr, "questions: %d read from %s, %d new, %d already known\n", is.read,
                    o->questions, is.added, is.duplicates);
    }
    if (!st) st = mt_questions_split(d->s, o->seed, o->test_fraction);
    if (!st) st = mt_store_questions(d->s, "train", &d->qs, &d->n);
    if (!st && d->n == 0) {
        mt_question *all = NULL;
        int n_all = 0;
        mt_store_questions(d->s, NULL, &all, &n_all);
        mt_questions_free(all, n_all);
        st = mt_fail(MT_ERR_ARG, n_all ? "no question fell into the training split; lower "
                                         "--test-fraction or add questions"
                                       : "the run has no questions yet: pass --questions FILE");
    }
    if (!st && !o->quiet) fprintf(stderr, "training split: %d questions\n", d->n);
    if (!st) {
        d->guides = mt_calloc((size_t)d->n, sizeof *d->guides);
        d->answers = mt_calloc((size_t)d->n, sizeof *d->answers);
        if (!d->guides || !d->answers) st = MT_ERR_NOMEM;
    }
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
    mt_questions_free(d->qs, d->n);
    if (d->weak_open) mt_session_close(&d->weak);
    mt_expert_free(d->e);
    mt_store_close(d->s);
}

static mt_status check_complete(distill *d, int failed) {
    int missing = 0;
    for (int i = 0; i < d->n; i++) missing += !d->answers[i];
    if (!missing) return MT_OK;
    return mt_fail(MT_ERR_REMOTE,
                   "%d of %d questions have no answer yet (%d failed this run; `meteor status "
                   "%s` lists them); rerun the same command to retry them; training starts once "
                   "every answer is in",
                   missing, d->n, failed, d->dir.root);
}

static mt_status run_phase(const mt_distill_opts *o, const mt_expert_spec *sp) {
    distill d = {.o = o};
    int failed = 0, n_rec = 0;
    mt_status st = prepare(&d);
    if (!st && o->dry_run) {
        st = dry_run(&d, sp);
        cleanup(&d);
        return st;
    }
    if (!st && !o->no_guideline) st = guidelines(&d);
    if (!st) st = mt_expert_open(sp, d.s, &d.e);
    if (!st) st = answers(&d, &failed);
    mt_status stop = st == MT_ERR_BUDGET ? st : MT_OK;
    if (!st || st == MT_ERR_BUDGET) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", mt_last_error());
        st = load_stage(&d, MT_STAGE_ANSWER, d.answers, NULL, NULL);
        if (!st) st = export_records(&d, &n_rec);
        if (!st && stop) st = mt_fail(stop, "%s", msg);
    }
    if (!st && o->score) st = scores(&d);
    if (!st && o->score) st = export_records(&d, &n_rec);
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
