#include "pipeline/refine.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/fault.h"
#include "core/lines.h"
#include "core/progress.h"
#include "io/file_util.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "model/lora.h"
#include "pipeline/expert_pass.h"
#include "pipeline/names.h"
#include "pipeline/refine_prompts.h"
#include "pipeline/stages.h"
#include "train/export.h"

#define MAX_ITERATIONS 16

void mt_refine_defaults(mt_refine_opts *o) {
    memset(o, 0, sizeof *o);
    o->seed = 42;
    o->test_fraction = 0.2;
    o->max_iterations = 3;
    o->fine_tune_interval = 10;
    o->replay = 0.25;
    o->attempt_max_tokens = 384;
    o->slots = 8;
    o->top_k = 50;
    o->temperature = 0.7f;
    o->top_p = 0.95f;
    o->verdict_max_tokens = 800;
    mt_train_job_defaults(&o->train);
    o->train.epochs = 1;
}

typedef enum { Q_OPEN = 0, Q_ACCEPTED, Q_NEVER, Q_STALLED } q_state;

/* One question's trajectory as the store holds it. */
typedef struct {
    q_state state;
    int version;  /* adapter version of its wave; -1 before its wave */
    int attempts; /* attempts made */
    char *answer[MAX_ITERATIONS];
    mt_verdict verdict[MAX_ITERATIONS];   /* parsed once, when its reply is read */
    unsigned char judged[MAX_ITERATIONS]; /* verdict[a] holds a verdict: the reply parsed */
} track;

typedef struct {
    const mt_refine_opts *o;
    const mt_expert_spec *sp;
    mt_run_ctx c;
    mt_session model;
    int model_open;
    mt_question *qs;
    int n;
    track *t;
    char **phase1_answers; /* per question: the phase 1 expert answer, or NULL */
    mt_expert *e;
    char model_path[4096];
    char start_adapter[4096];    /* "" with no_adapter */
    char start_checkpoint[4096]; /* phase 1's checkpoint when starting from its adapter */
    int version;                 /* rounds trained so far */
    int accepted_untrained;      /* accepted since the last round */
    int lines_at_last_round;     /* training records when the last round's data was written */
    int waves_started;           /* exports are written only once waves ran */
    double seconds_attempts, seconds_verdicts, seconds_training;
} refine;

/* ---- the model and its adapter ---------------------------------------------------------- */

static mt_status to_generation(refine *r, const char *dir) {
    return mt_stage_to_generation(&r->c, dir, r->o->precise);
}

/* ---- attempts -------------------------------------------------------------------------- */

static void track_key(const refine *r, int i, int attempt, char key[MT_ITEM_KEY_MAX]) {
    mt_item_key(r->qs[i].id, r->t[i].version, attempt, key);
}

static char *attempt_prompt(const refine *r, int i, int attempt) {
    const track *t = &r->t[i];
    /* an empty previous attempt has no verdict: ask again from the start */
    if (attempt == 1 || !t->judged[attempt - 2]) return mt_prompt_attempt(&r->qs[i]);
    return mt_prompt_revision(&r->qs[i], t->answer[attempt - 2], &t->verdict[attempt - 2]);
}

static mt_status write_attempts(refine *r, const int *active, int n_active, int attempt) {
    const mt_refine_opts *o = r->o;
    mt_gen_jobs s;
    mt_status st = mt_gen_jobs_alloc(&s, n_active);
    for (int k = 0; !st && k < n_active; k++) {
        const int i = active[k];
        st = mt_gen_jobs_add(&s, r->qs[i].id, r->t[i].version, attempt, i, NULL,
                             attempt_prompt(r, i, attempt),
                             mt_mix_key(strtoull(r->qs[i].id, NULL, 16), (uint64_t)attempt));
    }
    mt_gen_stage_opts go = {.phase = MT_PHASE_REFINE,
                            .stage = MT_STAGE_ATTEMPT,
                            .label = "attempts",
                            .keep_empty = 1,
                            .params = mt_gen_defaults(),
                            .slots = o->slots};
    go.params.max_tokens = o->attempt_max_tokens;
    go.params.sampling.temperature = o->temperature;
    go.params.sampling.top_k = o->top_k;
    go.params.sampling.top_p = o->top_p;
    go.params.sampling.seed = o->seed;
    mt_gen_stage_stats gs;
    const double t0 = mt_now_seconds();
    if (!st) st = mt_stage_generate(&r->c, s.jobs, n_active, &go, &gs);
    r->seconds_attempts += mt_now_seconds() - t0;
    char **texts = st ? NULL : mt_calloc((size_t)n_active + 1, sizeof *texts);
    if (!st && !texts) st = MT_ERR_NOMEM;
    if (!st)
        st = mt_stage_outputs(&r->c, MT_PHASE_REFINE, MT_STAGE_ATTEMPT, s.key_ptrs, n_active, texts,
                              NULL, NULL);
    for (int k = 0; !st && k < n_active; k++) {
        track *t = &r->t[active[k]];
        t->answer[attempt - 1] = texts[k] ? texts[k] : mt_strdup("");
        texts[k] = NULL;
        t->attempts = attempt;
    }
    for (int k = 0; texts && k < n_active; k++) free(texts[k]);
    free(texts);
    mt_gen_jobs_free(&s);
    return st;
}

/* ---- verdicts -------------------------------------------------------------------------- */

typedef struct {
    mt_chat_msg msgs[2];
    char *user;
} turn;

static mt_status verdict_jobs(refine *r, const int *active, int n_active, int attempt, turn *t,
                              mt_expert_job *jobs, char (*keys)[MT_ITEM_KEY_MAX], int *n_jobs) {
    const mt_refine_opts *o = r->o;
    *n_jobs = 0;
    for (int k = 0; k < n_active; k++) {
        const int i = active[k];
        const char *answer = r->t[i].answer[attempt - 1];
        if (!answer[0]) continue; /* nothing to judge: rejected without a request */
        const mt_question *q = &r->qs[i];
        const char *reference =
            o->grounded && q->reference && q->reference[0] ? q->reference : NULL;
        turn *x = &t[*n_jobs];
        if (!(x->user = mt_prompt_verdict(q, answer, attempt, o->max_iterations, reference)))
            return MT_ERR_NOMEM;
        x->msgs[0] = (mt_chat_msg){"system", mt_prompt_verdict_system};
        x->msgs[1] = (mt_chat_msg){"user", x->user};
        track_key(r, i, attempt, keys[*n_jobs]);
        jobs[*n_jobs] = (mt_expert_job){.qid = keys[*n_jobs],
                                        .req = {.msgs = x->msgs,
                                                .n_msgs = 2,
                                                .schema_name = "verdict",
                                                .schema_json = mt_verdict_schema,
                                                .max_tokens = o->verdict_max_tokens,
                                                .temperature = 0.0}};
        (*n_jobs)++;
    }
    return MT_OK;
}

/* The question's state after attempt's verdict (or its absence). */
static void decide(refine *r, int i, int attempt) {
    track *t = &r->t[i];
    const int answered = t->answer[attempt - 1][0] != '\0';
    /* no reply, or a stored reply that is no verdict (never read as one) */
    if (answered && !t->judged[attempt - 1]) {
        t->state = Q_STALLED;
        return;
    }
    if (answered && t->verdict[attempt - 1].correct)
        t->state = Q_ACCEPTED;
    else if (attempt == r->o->max_iterations)
        t->state = Q_NEVER;
}

static mt_status judge(refine *r, const int *active, int n_active, int attempt) {
    turn *t = mt_calloc((size_t)n_active + 1, sizeof *t);
    mt_expert_job *jobs = mt_calloc((size_t)n_active + 1, sizeof *jobs);
    char(*keys)[MT_ITEM_KEY_MAX] = mt_calloc((size_t)n_active + 1, sizeof *keys);
    const char **key_ptrs = mt_calloc((size_t)n_active + 1, sizeof *key_ptrs);
    int n_jobs = 0;
    mt_status st = t && jobs && keys && key_ptrs ? MT_OK : MT_ERR_NOMEM;
    if (!st) st = verdict_jobs(r, active, n_active, attempt, t, jobs, keys, &n_jobs);
    for (int k = 0; !st && k < n_jobs; k++) key_ptrs[k] = keys[k];
    mt_expert_pass_opts po = {
        .phase = MT_PHASE_REFINE, .stage = MT_STAGE_VERDICT, .label = "verdicts", .rep = r->c.rep};
    mt_expert_pass_stats ps = {0};
    const double t0 = mt_now_seconds();
    if (!st) st = mt_expert_pass(r->c.store, r->e, jobs, n_jobs, &po, &ps);
    r->seconds_verdicts += mt_now_seconds() - t0;
    const mt_status stop = st == MT_ERR_BUDGET ? st : MT_OK;
    if (stop) st = MT_OK;
    char **out = st ? NULL : mt_calloc((size_t)n_jobs + 1, sizeof *out);
    if (!st && !out) st = MT_ERR_NOMEM;
    if (!st)
        st = mt_stage_outputs(&r->c, MT_PHASE_REFINE, MT_STAGE_VERDICT, key_ptrs, n_jobs, out, NULL,
                              NULL);
    for (int k = 0, j = 0; !st && k < n_active; k++) {
        const int i = active[k];
        track *tr = &r->t[i];
        if (tr->answer[attempt - 1][0]) {
            const char *reply = out[j++];
            tr->judged[attempt - 1] = reply && !mt_verdict_parse(reply, &tr->verdict[attempt - 1]);
        }
        decide(r, i, attempt);
    }
    for (int k = 0; out && k < n_jobs; k++) free(out[k]);
    free(out);
    for (int k = 0; t && k < n_active; k++) free(t[k].user);
    free(t);
    free(jobs);
    free(keys);
    free(key_ptrs);
    return st ? st : stop;
}

/* ---- waves ----------------------------------------------------------------------------- */

static int open_at(const refine *r, int first, int count, int attempt, int *active) {
    int n = 0;
    for (int i = first; i < first + count; i++)
        if (r->t[i].state == Q_OPEN && r->t[i].attempts == attempt - 1) active[n++] = i;
    return n;
}

static mt_status run_wave(refine *r, int first, int count) {
    int *active = mt_calloc((size_t)count + 1, sizeof *active);
    if (!active) return MT_ERR_NOMEM;
    for (int i = first; i < first + count; i++) r->t[i].version = r->version;
    mt_status st = MT_OK;
    for (int a = 1; !st && a <= r->o->max_iterations; a++) {
        const int n_active = open_at(r, first, count, a, active);
        if (!n_active) break;
        st = write_attempts(r, active, n_active, a);
        if (!st) st = judge(r, active, n_active, a);
    }
    free(active);
    return st;
}

static int count_state(const refine *r, int first, int count, q_state s) {
    int n = 0;
    for (int i = first; i < first + count; i++) n += r->t[i].state == s;
    return n;
}

/* A never-accepted question that is trained on anyway: with --on-reject expert-answer,
 * on phase 1's answer. */
static int trains_on_expert(const refine *r, int i) {
    return r->t[i].state == Q_NEVER && r->o->on_reject == MT_ON_REJECT_EXPERT_ANSWER &&
           r->phase1_answers[i];
}

static int final_attempt(const track *t) {
    return t->state == Q_ACCEPTED ? t->attempts : 0;
}

/* ---- exports --------------------------------------------------------------------------- */

static void add_question(cJSON *o, const mt_question *q) {
    cJSON_AddStringToObject(o, "id", q->id);
    cJSON_AddStringToObject(o, "question_title", q->title ? q->title : "");
    cJSON_AddStringToObject(o, "question_content", q->content ? q->content : "");
}

/* The training record of question i (accepted, or trained on phase 1's answer), or NULL. */
static char *refined_line(const refine *r, int i) {
    const track *t = &r->t[i];
    const int accepted = t->state == Q_ACCEPTED;
    if (!accepted && !trains_on_expert(r, i)) return NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    add_question(o, &r->qs[i]);
    cJSON_AddStringToObject(o, "answer",
                            accepted ? t->answer[final_attempt(t) - 1] : r->phase1_answers[i]);
    cJSON_AddNumberToObject(o, "attempts", t->attempts);
    cJSON_AddNumberToObject(o, "round", t->version);
    cJSON_AddStringToObject(o, "source", accepted ? "model" : "expert");
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return txt;
}

static mt_status refined_lines(const refine *r, mt_lines *out) {
    for (int i = 0; i < r->n; i++) {
        if (r->t[i].state != Q_ACCEPTED && !trains_on_expert(r, i)) continue;
        mt_status st = mt_lines_push(out, refined_line(r, i));
        if (st) return st;
    }
    return MT_OK;
}

static char *trajectory_line(const refine *r, int i, int a) {
    const track *t = &r->t[i];
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "id", r->qs[i].id);
    cJSON_AddNumberToObject(o, "attempt", a);
    cJSON_AddNumberToObject(o, "round", t->version);
    cJSON_AddStringToObject(o, "answer", t->answer[a - 1]);
    if (t->judged[a - 1]) {
        const mt_verdict v = t->verdict[a - 1];
        cJSON_AddStringToObject(o, "verdict", v.correct ? "correct" : "incorrect");
        cJSON_AddStringToObject(o, "feedback", v.feedback);
        cJSON *h = cJSON_AddArrayToObject(o, "hints");
        for (int k = 0; h && k < v.n_hints; k++)
            cJSON_AddItemToArray(h, cJSON_CreateString(v.hints[k]));
    } else {
        cJSON_AddNullToObject(o, "verdict");
        cJSON_AddStringToObject(o, "feedback",
                                t->answer[a - 1][0] ? "no verdict: the request failed"
                                                    : "the model wrote no answer");
        cJSON_AddArrayToObject(o, "hints");
    }
    cJSON_AddBoolToObject(o, "accepted", t->state == Q_ACCEPTED && a == t->attempts);
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return txt;
}

static mt_status export_all(refine *r) {
    mt_lines refined = {0}, traj = {0};
    mt_status st = refined_lines(r, &refined);
    for (int i = 0; !st && i < r->n; i++)
        for (int a = 1; !st && a <= r->t[i].attempts; a++)
            st = mt_lines_push(&traj, trajectory_line(r, i, a));
    char path[4096];
    mt_run_path(&r->c.dir, "data/refined.jsonl", path, sizeof path);
    if (!st) st = mt_write_jsonl(path, refined.v, refined.n);
    if (!st) mt_report_note(r->c.rep, "wrote %s (%d records)", path, refined.n);
    mt_run_path(&r->c.dir, "data/trajectories.jsonl", path, sizeof path);
    if (!st) st = mt_write_jsonl(path, traj.v, traj.n);
    if (!st) mt_report_note(r->c.rep, "wrote %s (%d attempts)", path, traj.n);
    mt_lines_free(&refined);
    mt_lines_free(&traj);
    return st;
}

/* ---- training rounds ------------------------------------------------------------------- */

typedef struct {
    uint64_t order;
    char *line;
} replay_pick;

static int by_order(const void *a, const void *b) {
    const uint64_t x = ((const replay_pick *)a)->order, y = ((const replay_pick *)b)->order;
    return x < y ? -1 : x > y;
}

static char *replay_line(const char *record) {
    cJSON *in = cJSON_Parse(record), *o = cJSON_CreateObject();
    char *txt = NULL;
    const char *keys[] = {"id", "question_title", "question_content", "answer"};
    for (int k = 0; in && o && k < 4; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, keys[k]);
        if (cJSON_IsString(v)) cJSON_AddStringToObject(o, keys[k], v->valuestring);
    }
    if (in && o) {
        cJSON_AddStringToObject(o, "source", "replay");
        txt = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(in);
    cJSON_Delete(o);
    return txt;
}

/* The replay share of a round: phase 1 records in an order drawn from (seed, round). */
static mt_status add_replay(const refine *r, int round, int n_trained, mt_lines *out) {
    const double share = r->o->replay;
    if (share <= 0 || n_trained == 0) return MT_OK;
    char **recs = NULL;
    int n = 0;
    mt_status st = mt_store_records(r->c.store, MT_PHASE_DISTILL, &recs, &n);
    if (st || n == 0) return st;
    int want = (int)(share / (1.0 - share) * n_trained + 0.5);
    if (want > n) want = n;
    replay_pick *p = mt_calloc((size_t)n, sizeof *p);
    if (!p) st = MT_ERR_NOMEM;
    for (int k = 0; !st && k < n; k++)
        p[k] = (replay_pick){mt_mix_key(mt_mix_key(r->o->seed, (uint64_t)round), (uint64_t)k),
                             recs[k]};
    if (!st) qsort(p, (size_t)n, sizeof *p, by_order);
    for (int k = 0; !st && k < want; k++) st = mt_lines_push(out, replay_line(p[k].line));
    free(p);
    mt_strings_free(recs, n);
    return st;
}

static int count_refined(const refine *r) {
    int n = 0;
    for (int i = 0; i < r->n; i++) n += r->t[i].state == Q_ACCEPTED || trains_on_expert(r, i);
    return n;
}

static mt_status write_round_data(refine *r, int round, const char *rel, int *n_examples) {
    mt_lines l = {0};
    mt_status st = refined_lines(r, &l);
    const int n_trained = l.n;
    r->lines_at_last_round = n_trained;
    if (!st) st = add_replay(r, round, n_trained, &l);
    char path[4096];
    mt_run_path(&r->c.dir, rel, path, sizeof path);
    if (!st) st = mt_write_jsonl(path, l.v, l.n);
    *n_examples = l.n;
    mt_lines_free(&l);
    return st;
}

/* Where round `round` starts from: the previous round's checkpoint, or for the first, the
 * starting adapter's checkpoint or folder. */
static void round_start(const refine *r, int round, mt_train_job *j, char *buf, size_t cap) {
    j->init_checkpoint = NULL;
    j->init_adapter = NULL;
    if (round > 1) {
        char rel[128];
        snprintf(rel, sizeof rel, "train/" MT_PHASE_REFINE "/round-%d/checkpoint.safetensors",
                 round - 1);
        mt_run_path(&r->c.dir, rel, buf, cap);
        j->init_checkpoint = buf;
    } else if (r->start_checkpoint[0]) {
        j->init_checkpoint = r->start_checkpoint;
    } else if (r->start_adapter[0]) {
        j->init_adapter = r->start_adapter;
    }
}

static mt_status train_round(refine *r) {
    const int round = r->version + 1;
    char data[128], work[128], result[160], item[32], first[64], last[64], start[4096];
    snprintf(data, sizeof data, "train/" MT_PHASE_REFINE "/round-%d.jsonl", round);
    snprintf(work, sizeof work, "train/" MT_PHASE_REFINE "/round-%d", round);
    snprintf(result, sizeof result, "%s/adapter", work);
    snprintf(item, sizeof item, "round-%d", round);
    snprintf(first, sizeof first, MT_METRIC_ROUND_FIRST_LOSS_FMT, round);
    snprintf(last, sizeof last, MT_METRIC_ROUND_LAST_LOSS_FMT, round);
    int n_examples = 0;
    mt_status st = mt_run_mkdir(&r->c.dir, "train/" MT_PHASE_REFINE);
    if (!st) st = write_round_data(r, round, data, &n_examples);
    if (st) return st;
    mt_train_stage_opts to = {.phase = MT_PHASE_REFINE,
                              .stage = MT_STAGE_SFT,
                              .item = item,
                              .data = data,
                              .work = work,
                              .result = result,
                              .first_loss_metric = first,
                              .last_loss_metric = last,
                              .job = r->o->train};
    round_start(r, round, &to.job, start, sizeof start);
    int done = 0;
    if ((st = mt_stage_item_done(&r->c, MT_PHASE_REFINE, MT_STAGE_SFT, item, &done))) return st;
    mt_train_summary sum;
    int trained = 0;
    const double t0 = mt_now_seconds();
    /* a finished round (a resumed run) needs no switch to training and back */
    if (!done) {
        mt_report_note(r->c.rep, "training round %d on %d examples", round, n_examples);
        mt_stage_to_training(&r->c);
        st = mt_stage_train(&r->c, &to, &trained, &sum);
    }
    r->seconds_training += mt_now_seconds() - t0;
    if (st) return st;
    if (trained)
        mt_report_note(r->c.rep, "round %d: %lld steps, loss %.4f -> %.4f", round,
                       (long long)(sum.steps - sum.init_step), sum.first_loss, sum.last_loss);
    mt_fault_point("refine_round_done");
    r->version = round;
    r->accepted_untrained = 0;
    char dir[4096];
    mt_run_path(&r->c.dir, result, dir, sizeof dir);
    return to_generation(r, dir);
}

/* The final adapter where later phases and users look for it. */
static mt_status save_final_adapter(refine *r) {
    if (!r->model.lora) return MT_OK;
    char dir[4096];
    mt_run_path(&r->c.dir, "adapters/" MT_PHASE_REFINE, dir, sizeof dir);
    mt_status st = mt_lora_save_peft(r->model.lora, r->model.model, dir);
    if (!st) mt_report_note(r->c.rep, "phase 2 adapter (version %d) in %s", r->version, dir);
    return st;
}

/* ---- metrics --------------------------------------------------------------------------- */

static mt_status version_metrics(refine *r, int version) {
    int questions = 0, first_ok = 0;
    for (int i = 0; i < r->n; i++) {
        if (r->t[i].version != version || r->t[i].attempts == 0) continue;
        questions++;
        first_ok += r->t[i].state == Q_ACCEPTED && r->t[i].attempts == 1;
    }
    if (!questions) return MT_OK;
    char name[96];
    snprintf(name, sizeof name, MT_METRIC_VERSION_FMT, version, MT_METRIC_QUESTIONS);
    mt_status st = mt_stage_metric(&r->c, MT_PHASE_REFINE, name, questions);
    snprintf(name, sizeof name, MT_METRIC_VERSION_FMT, version, MT_METRIC_FIRST_ATTEMPT_ACCEPTANCE);
    if (!st) st = mt_stage_metric(&r->c, MT_PHASE_REFINE, name, (double)first_ok / questions);
    if (!st)
        mt_report_note(r->c.rep, "adapter version %d: %d questions, first-attempt acceptance %.3f",
                       version, questions, (double)first_ok / questions);
    return st;
}

static mt_status phase_metrics(refine *r) {
    int accepted = 0, never = 0, resolved = 0, attempts = 0, first_ok = 0;
    int by_revision[MAX_ITERATIONS] = {0};
    for (int i = 0; i < r->n; i++) {
        const track *t = &r->t[i];
        if (t->state == Q_ACCEPTED) accepted++, by_revision[t->attempts - 1]++;
        never += t->state == Q_NEVER;
        if (t->state == Q_ACCEPTED || t->state == Q_NEVER) resolved++, attempts += t->attempts;
        first_ok += t->state == Q_ACCEPTED && t->attempts == 1;
    }
    int failures = 0;
    for (int i = 0; i < r->n; i++) failures += r->t[i].state == Q_STALLED;
    const mt_run_ctx *c = &r->c;
    mt_status st = mt_stage_metric(c, MT_PHASE_REFINE, MT_METRIC_ACCEPTED, accepted);
    if (!st) st = mt_stage_metric(c, MT_PHASE_REFINE, MT_METRIC_NEVER_ACCEPTED, never);
    if (!st) st = mt_stage_metric(c, MT_PHASE_REFINE, MT_METRIC_TRAINING_ROUNDS, r->version);
    if (!st) st = mt_stage_metric(c, MT_PHASE_REFINE, MT_METRIC_VERDICT_FAILURES, failures);
    if (!st && resolved) {
        st = mt_stage_metric(c, MT_PHASE_REFINE, MT_METRIC_FIRST_ATTEMPT_ACCEPTANCE,
                             (double)first_ok / resolved);
        if (!st)
            st = mt_stage_metric(c, MT_PHASE_REFINE, MT_METRIC_MEAN_ATTEMPTS,
                                 (double)attempts / resolved);
        int cumulative = 0;
        for (int k = 0; !st && k < r->o->max_iterations; k++) {
            char name[64];
            cumulative += by_revision[k];
            snprintf(name, sizeof name, MT_METRIC_ACCEPTED_AFTER_REVISIONS_FMT, k);
            st = mt_stage_metric(c, MT_PHASE_REFINE, name, (double)cumulative / resolved);
        }
    }
    for (int v = 0; !st && v <= r->version; v++) st = version_metrics(r, v);
    if (!st)
        mt_report_note(r->c.rep,
                       "phase 2: %d accepted, %d never accepted, %d training rounds; time in "
                       "attempts %.1f s, verdicts %.1f s, training %.1f s",
                       accepted, never, r->version, r->seconds_attempts, r->seconds_verdicts,
                       r->seconds_training);
    return st;
}

/* ---- setup ----------------------------------------------------------------------------- */

static mt_status resolve_model(refine *r) {
    const mt_refine_opts *o = r->o;
    if (o->model) {
        snprintf(r->model_path, sizeof r->model_path, "%s", o->model);
        return MT_OK;
    }
    char *m = NULL;
    mt_status st = mt_store_meta_get(r->c.store, MT_SETTING_DISTILL_MODEL, &m);
    if (!st && !m)
        st = mt_fail(MT_ERR_ARG, "no model: this run has no phase 1 weak model; pass -m MODEL");
    if (!st) snprintf(r->model_path, sizeof r->model_path, "%s", m);
    free(m);
    return st;
}

static mt_status resolve_start(refine *r) {
    const mt_refine_opts *o = r->o;
    r->start_adapter[0] = r->start_checkpoint[0] = '\0';
    if (o->no_adapter) {
        if (o->adapter) return mt_fail(MT_ERR_ARG, "give either --adapter DIR or --no-adapter");
        return MT_OK;
    }
    if (o->adapter) {
        snprintf(r->start_adapter, sizeof r->start_adapter, "%s", o->adapter);
        return MT_OK;
    }
    mt_run_path(&r->c.dir, "adapters/" MT_PHASE_DISTILL, r->start_adapter, sizeof r->start_adapter);
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/adapter_config.json", r->start_adapter);
    if (!mt_path_exists(cfg))
        return mt_fail(MT_ERR_ARG,
                       "this run has no phase 1 adapter (%s): run `meteor distill` first, or "
                       "pass --adapter DIR, or --no-adapter to start from the bare model",
                       r->start_adapter);
    mt_run_path(&r->c.dir, "train/" MT_PHASE_DISTILL "/checkpoint.safetensors", r->start_checkpoint,
                sizeof r->start_checkpoint);
    if (!mt_path_exists(r->start_checkpoint)) r->start_checkpoint[0] = '\0';
    return MT_OK;
}

static mt_status pin_settings(refine *r) {
    const mt_refine_opts *o = r->o;
    mt_store *s = r->c.store;
    char schedule[256];
    snprintf(schedule, sizeof schedule,
             "max_iterations=%d fine_tune_interval=%d replay=%g on_reject=%s train=%s seed=%llu",
             o->max_iterations, o->fine_tune_interval, o->replay,
             o->on_reject == MT_ON_REJECT_SKIP ? "skip" : "expert-answer",
             o->no_train ? "no" : "yes", (unsigned long long)o->seed);
    mt_status st = mt_run_setting(s, MT_SETTING_REFINE_MODEL, r->model_path, "weak model");
    /* the run's own adapter is named relative to the run, so a moved run continues */
    const char *start = r->start_adapter[0] ? r->start_adapter : "none";
    if (!o->no_adapter && !o->adapter) start = "the run's adapters/" MT_PHASE_DISTILL;
    if (!st) st = mt_run_setting(s, MT_SETTING_REFINE_START, start, "starting adapter");
    if (!st)
        st = mt_run_setting(s, MT_SETTING_REFINE_GROUNDED, o->grounded ? "on" : "off",
                            "grounding in reference answers");
    if (!st) st = mt_run_setting(s, MT_SETTING_REFINE_SCHEDULE, schedule, "phase 2 settings");
    return st;
}

/* Phase 1's expert answers, for --on-reject expert-answer. */
static mt_status load_phase1_answers(refine *r) {
    char **recs = NULL;
    int n = 0;
    mt_status st = mt_store_records(r->c.store, MT_PHASE_DISTILL, &recs, &n);
    for (int k = 0; !st && k < n; k++) {
        cJSON *j = cJSON_Parse(recs[k]);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        const cJSON *answer = cJSON_GetObjectItemCaseSensitive(j, "answer");
        for (int i = 0; cJSON_IsString(id) && cJSON_IsString(answer) && i < r->n; i++)
            if (!strcmp(r->qs[i].id, id->valuestring) &&
                !(r->phase1_answers[i] = mt_strdup(answer->valuestring)))
                st = MT_ERR_NOMEM;
        cJSON_Delete(j);
    }
    mt_strings_free(recs, n);
    return st;
}

static mt_status prepare(refine *r) {
    const mt_refine_opts *o = r->o;
    if (o->max_iterations < 1 || o->max_iterations > MAX_ITERATIONS)
        return mt_fail(MT_ERR_ARG, "--max-iterations must be 1 to %d", MAX_ITERATIONS);
    if (o->fine_tune_interval < 1) return mt_fail(MT_ERR_ARG, "--fine-tune-interval must be >= 1");
    if (o->replay < 0 || o->replay >= 1) return mt_fail(MT_ERR_ARG, "--replay must be in [0, 1)");
    r->c.rep = o->rep;
    r->c.model = &r->model;
    mt_status st = mt_run_dir_open(o->run_dir, &r->c.dir, &r->c.store);
    if (!st) st = resolve_model(r);
    if (!st) st = resolve_start(r);
    if (!st) st = pin_settings(r);
    /* the split phase 1 drew stays as it is; only newly imported questions need one */
    if (!st)
        st = mt_stage_questions(&r->c, o->questions, o->questions != NULL, o->seed,
                                o->test_fraction, &r->qs, &r->n);
    if (!st) {
        r->c.model_path = r->model_path;
        r->c.qs = r->qs;
        r->c.n = r->n;
        r->t = mt_calloc((size_t)r->n, sizeof *r->t);
        r->phase1_answers = mt_calloc((size_t)r->n, sizeof *r->phase1_answers);
        if (!r->t || !r->phase1_answers) st = MT_ERR_NOMEM;
    }
    for (int i = 0; !st && i < r->n; i++) r->t[i].version = -1;
    if (!st) st = load_phase1_answers(r);
    if (!st && !(st = mt_session_open(&r->model, r->model_path, o->threads, o->chat_template)))
        r->model_open = 1;
    if (!st) st = to_generation(r, r->start_adapter);
    if (!st) st = mt_expert_open(r->sp, r->c.store, &r->e);
    return st;
}

static void cleanup(refine *r) {
    for (int i = 0; r->t && i < r->n; i++)
        for (int a = 0; a < MAX_ITERATIONS; a++) {
            free(r->t[i].answer[a]);
            if (r->t[i].judged[a]) mt_verdict_free(&r->t[i].verdict[a]);
        }
    for (int i = 0; r->phase1_answers && i < r->n; i++) free(r->phase1_answers[i]);
    free(r->t);
    free(r->phase1_answers);
    mt_questions_free(r->qs, r->n);
    if (r->model_open) mt_session_close(&r->model);
    mt_expert_free(r->e);
    mt_store_close(r->c.store);
}

/* ---- the phase ------------------------------------------------------------------------- */

static mt_status stalled_error(const refine *r, int first, int count) {
    const int stalled = count_state(r, first, count, Q_STALLED);
    return mt_fail(MT_ERR_REMOTE,
                   "%d verdict%s failed for good (`meteor status %s` lists them); phase 2 "
                   "stopped after this wave so that later training rounds see the same data; "
                   "rerun the same command to retry",
                   stalled, stalled == 1 ? "" : "s", r->c.dir.root);
}

static mt_status waves(refine *r) {
    const int interval = r->o->fine_tune_interval;
    const int n_waves = (r->n + interval - 1) / interval;
    mt_status st = MT_OK;
    r->waves_started = 1;
    for (int w = 0; !st && w < n_waves; w++) {
        const int first = w * interval;
        const int count = first + interval <= r->n ? interval : r->n - first;
        mt_report_note(r->c.rep, "wave %d of %d: %d questions, adapter version %d", w + 1, n_waves,
                       count, r->version);
        st = run_wave(r, first, count);
        if (st) break;
        if (count_state(r, first, count, Q_STALLED)) return stalled_error(r, first, count);
        r->accepted_untrained += count_state(r, first, count, Q_ACCEPTED);
        if (!r->o->no_train && r->accepted_untrained >= interval) st = train_round(r);
    }
    /* the last answers, and phase 1 answers standing in for never accepted ones */
    if (!st && !r->o->no_train && count_refined(r) > r->lines_at_last_round) st = train_round(r);
    return st;
}

static mt_status run_phase(const mt_refine_opts *o, const mt_expert_spec *sp) {
    refine r = {.o = o, .sp = sp};
    mt_status st = prepare(&r);
    if (!st) st = waves(&r);
    /* What is stored is exported even when a budget or failed verdicts stopped the run. */
    if (r.waves_started) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", mt_last_error());
        mt_status ex = export_all(&r);
        if (!ex) ex = phase_metrics(&r);
        if (!ex && !st) ex = save_final_adapter(&r);
        if (ex && !st)
            st = ex;
        else if (st)
            mt_fail(st, "%s", msg);
    }
    cleanup(&r);
    return st;
}

mt_status mt_refine(const mt_refine_opts *o, const mt_expert_spec *sp) {
    const int was = mt_kernels_precise();
    /* Before the model is opened, so that it is packed for fast generation unless precise
     * (both give a sequence the same bits however it is batched). */
    mt_kernels_set_precise(o->precise);
    const mt_status st = run_phase(o, sp);
    mt_kernels_set_precise(was);
    return st;
}
