#include "train/trainer.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/fault.h"
#include "core/progress.h"
#include "io/atomic_file.h"
#include "io/file_util.h"
#include "kernels/ops.h"
#include "train/checkpoint.h"
#include "train/ref_logps.h"

void mt_train_path(const mt_train_opts *o, const char *file, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", o->out_dir, file);
}

/* One micro-batch laid out for the engine: sequences end to end with their targets. */
typedef struct {
    int n_seqs, n_tokens;
    int *seq_start;
    int32_t *tokens, *targets;
    float *coef, *logprobs;
    int cap_tokens, cap_seqs;
} micro;

static mt_status micro_reserve(micro *b, int n_seqs, int n_tokens) {
    if (n_seqs + 1 > b->cap_seqs) {
        int *p = realloc(b->seq_start, (size_t)(n_seqs + 1) * sizeof *p);
        if (!p) return mt_fail(MT_ERR_NOMEM, "out of memory building a batch");
        b->seq_start = p;
        b->cap_seqs = n_seqs + 1;
    }
    if (n_tokens > b->cap_tokens) {
        int32_t *tk = realloc(b->tokens, (size_t)n_tokens * sizeof *tk);
        if (tk) b->tokens = tk;
        int32_t *tg = tk ? realloc(b->targets, (size_t)n_tokens * sizeof *tg) : NULL;
        if (tg) b->targets = tg;
        float *c = tg ? realloc(b->coef, (size_t)n_tokens * sizeof *c) : NULL;
        if (c) b->coef = c;
        float *lp = c ? realloc(b->logprobs, (size_t)n_tokens * sizeof *lp) : NULL;
        if (lp) b->logprobs = lp;
        if (!lp) return mt_fail(MT_ERR_NOMEM, "out of memory building a batch");
        b->cap_tokens = n_tokens;
    }
    return MT_OK;
}

static void micro_free(micro *b) {
    free(b->seq_start);
    free(b->tokens);
    free(b->targets);
    free(b->coef);
    free(b->logprobs);
}

/* The sequences of a batch: SFT examples, or chosen then rejected of each pair. */
static const mt_sft_example *seq_of(const mt_dataset *d, const int *idx, int i) {
    if (d->kind == MT_DATA_SFT) return &d->sft[idx[i]];
    const mt_pref_example *p = &d->pref[idx[i / 2]];
    return i % 2 == 0 ? &p->chosen : &p->rejected;
}

static mt_status micro_build(micro *b, const mt_dataset *d, const int *idx, int n_ex,
                             int train_prompt) {
    const int n_seqs = d->kind == MT_DATA_SFT ? n_ex : 2 * n_ex;
    int n_tokens = 0;
    for (int i = 0; i < n_seqs; i++) n_tokens += seq_of(d, idx, i)->n;
    mt_status s = micro_reserve(b, n_seqs, n_tokens);
    if (s) return s;
    b->n_seqs = n_seqs;
    b->n_tokens = n_tokens;
    b->seq_start[0] = 0;
    for (int i = 0; i < n_seqs; i++) {
        const mt_sft_example *e = seq_of(d, idx, i);
        const int o = b->seq_start[i];
        memcpy(b->tokens + o, e->tokens, (size_t)e->n * sizeof *b->tokens);
        mt_example_targets(e, train_prompt, b->targets + o);
        b->seq_start[i + 1] = o + e->n;
    }
    return MT_OK;
}

typedef struct {
    double loss;
    int64_t trained_tokens;
    mt_pref_stats pref;
} step_stats;

/* Per-sequence sums of the trained rows' log-probabilities. */
static void seq_sums(const micro *b, int s, double *sum, int64_t *count) {
    *sum = 0.0;
    *count = 0;
    for (int i = b->seq_start[s]; i < b->seq_start[s + 1]; i++)
        if (b->targets[i] >= 0) *sum += b->logprobs[i], ++*count;
}

static void set_seq_coef(micro *b, int s, float c) {
    for (int i = b->seq_start[s]; i < b->seq_start[s + 1]; i++)
        b->coef[i] = b->targets[i] >= 0 ? c : 0.0f;
}

/* Loss of one micro-batch and dLoss/dlogprob of every row (already divided by accum). */
static mt_status micro_loss(const mt_train_opts *o, const mt_ref_logps *ref, const int *idx,
                            micro *b, step_stats *st) {
    const int accum = o->grad_accum;
    if (o->loss == MT_LOSS_SFT) {
        /* The coefficients do not depend on the log-probs, which the backward pass fills
         * in; sft_loss_tally adds the loss afterwards. */
        int64_t n = 0;
        for (int i = 0; i < b->n_tokens; i++) n += b->targets[i] >= 0;
        const float c = n ? -1.0f / ((float)n * accum) : 0.0f;
        for (int i = 0; i < b->n_tokens; i++) b->coef[i] = b->targets[i] >= 0 ? c : 0.0f;
        st->trained_tokens += n;
        return MT_OK;
    }
    const int np = b->n_seqs / 2;
    double lp[2 * 64], refs[2 * 64], dc[64], dr[64];
    int64_t cnt[2 * 64];
    if (np > 64) return mt_fail(MT_ERR_ARG, "at most 64 preference pairs per batch");
    for (int p = 0; p < np; p++) {
        seq_sums(b, 2 * p, &lp[p], &cnt[p]);
        seq_sums(b, 2 * p + 1, &lp[64 + p], &cnt[64 + p]);
        if (ref && !ref->have[idx[p]])
            return mt_fail(MT_ERR_INTERNAL, "no reference log-probs for training pair %d", idx[p]);
        if (ref) {
            refs[p] = ref->chosen[idx[p]];
            refs[64 + p] = ref->rejected[idx[p]];
        }
        st->trained_tokens += cnt[p] + cnt[64 + p];
    }
    mt_pref_params pp = o->pref;
    pp.kind = o->loss == MT_LOSS_DPO ? MT_PREF_DPO : MT_PREF_MARGIN;
    const mt_pref_batch pb = {.n_pairs = np,
                              .lp_chosen = lp,
                              .lp_rejected = lp + 64,
                              .n_chosen = cnt,
                              .n_rejected = cnt + 64,
                              .ref_chosen = ref ? refs : NULL,
                              .ref_rejected = ref ? refs + 64 : NULL};
    mt_pref_stats ps;
    mt_status s = mt_pref_loss(&pp, &pb, dc, dr, &ps);
    if (s) return s;
    for (int p = 0; p < np; p++) {
        set_seq_coef(b, 2 * p, (float)(dc[p] / accum));
        set_seq_coef(b, 2 * p + 1, (float)(dr[p] / accum));
    }
    st->loss += ps.loss / accum;
    st->pref.reward_margin += ps.reward_margin / accum;
    st->pref.accuracy += ps.accuracy / accum;
    st->pref.logps_chosen += ps.logps_chosen / accum;
    st->pref.logps_rejected += ps.logps_rejected / accum;
    return MT_OK;
}

static void sft_loss_tally(const mt_train_opts *o, const micro *b, step_stats *st) {
    int64_t n = 0;
    double sum = 0.0;
    for (int i = 0; i < b->n_tokens; i++)
        if (b->targets[i] >= 0) n++, sum += b->logprobs[i];
    st->loss += n ? -sum / n / o->grad_accum : 0.0;
}

/* Forward, loss and backward of one micro-batch; gradients accumulate in t. */
static mt_status micro_step(const mt_model *m, mt_trainable *t, const mt_train_opts *o,
                            const mt_ref_logps *ref, const unsigned char *ckpt, const int *idx,
                            micro *b, uint64_t drop_seed, step_stats *st) {
    mt_tape *tape = NULL;
    mt_status s = mt_train_forward(m, b->tokens, b->seq_start, b->n_seqs, ckpt, drop_seed, &tape);
    if (o->loss == MT_LOSS_SFT) {
        /* One LM-head pass: log-probs come out of the backward pass. */
        if (!s) s = micro_loss(o, ref, idx, b, st);
        if (!s) s = mt_train_backward_lp(m, tape, b->targets, b->coef, &t->grads, b->logprobs);
        if (!s) sft_loss_tally(o, b, st);
    } else {
        if (!s) s = mt_head_logprobs(m, tape, b->targets, b->logprobs);
        if (!s) s = micro_loss(o, ref, idx, b, st);
        if (!s) s = mt_train_backward(m, tape, b->targets, b->coef, &t->grads);
    }
    mt_tape_free(tape);
    return s;
}

static mt_status append_metrics(FILE *f, int64_t step, double lr, double gnorm,
                                const step_stats *st, double tps, mt_loss_kind kind) {
    fprintf(f,
            "{\"step\":%lld,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6f,\"tokens\":%lld,\"tokens_"
            "per_s\":%.1f",
            (long long)step, st->loss, lr, gnorm, (long long)st->trained_tokens, tps);
    if (kind != MT_LOSS_SFT)
        fprintf(f,
                ",\"logps_chosen\":%.4f,\"logps_rejected\":%.4f,\"reward_margin\":%.6f,"
                "\"accuracy\":%.3f",
                st->pref.logps_chosen, st->pref.logps_rejected, st->pref.reward_margin,
                st->pref.accuracy);
    fprintf(f, "}\n");
    return fflush(f) == 0 ? MT_OK
                          : mt_fail(MT_ERR_IO, "cannot write metrics.jsonl: %s", strerror(errno));
}

/* On resume, drops metric lines past the checkpoint so the file matches the run. */
static mt_status trim_metrics(const char *path, int64_t keep_steps) {
    char *text = NULL;
    size_t len = 0;
    if (mt_read_file(path, &text, &len)) {
        mt_clear_error();
        return MT_OK; /* no metrics yet */
    }
    size_t cut = 0;
    for (size_t i = 0; i < len;) {
        char *nl = memchr(text + i, '\n', len - i);
        if (!nl) break;
        long long step = -1;
        if (sscanf(text + i, "{\"step\":%lld", &step) != 1 || step > keep_steps) break;
        cut = (size_t)(nl - text) + 1;
        i = cut;
    }
    mt_status s = mt_write_file_atomic(path, text, cut);
    free(text);
    return s;
}

static int64_t total_steps(const mt_dataset *d, const mt_train_opts *o, int bpe) {
    if (o->max_steps > 0) return o->max_steps;
    const int64_t micro_total = (int64_t)bpe * o->epochs;
    const int64_t steps = micro_total / o->grad_accum;
    (void)d;
    return steps > 0 ? steps : 1;
}

typedef struct {
    mt_batches plan;
    mt_data_pos pos;
    int have_plan;
} data_cursor;

static mt_status cursor_next(data_cursor *c, const mt_dataset *d, const mt_train_opts *o,
                             const int **idx, int *n) {
    if (!c->have_plan || c->plan.epoch != c->pos.epoch) {
        if (c->have_plan) mt_batches_free(&c->plan);
        mt_status s = mt_batch_plan(d, &o->batch, c->pos.epoch, &c->plan);
        if (s) return s;
        c->have_plan = 1;
    }
    *idx = mt_batch_indices(&c->plan, c->pos.batch, n);
    mt_data_pos_advance(&c->pos, &c->plan);
    return MT_OK;
}

static mt_status save_checkpoint(const mt_train_opts *o, const mt_trainable *t, int64_t step,
                                 const data_cursor *c) {
    char path[4096];
    mt_train_path(o, "checkpoint.safetensors", path, sizeof path);
    mt_ckpt_meta meta = {
        .step = step, .seed = o->batch.seed, .epoch = c->pos.epoch, .batch = c->pos.batch};
    snprintf(meta.run_key, sizeof meta.run_key, "%s", o->run_key);
    snprintf(meta.trainable, sizeof meta.trainable, "%s", o->trainable);
    mt_status s = mt_checkpoint_save(path, t, &meta);
    if (!s) mt_fault_point("checkpoint_saved");
    return s;
}

/* Whether a and b name one file (a checkpoint continued into the folder it came from
 * would be overwritten by the job's first save). */
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* Creates the folder and removes what a killed run left of its files' atomic writes (the
 * folder may be the user's, so only the temporaries of the trainer's own files). */
static mt_status prepare_out_dir(const mt_train_opts *o) {
    if (mkdir(o->out_dir, 0755) != 0 && errno != EEXIST)
        return mt_fail(MT_ERR_IO, "cannot create output folder %s: %s", o->out_dir,
                       strerror(errno));
    static const char *const files[] = {"checkpoint.safetensors", "metrics.jsonl",
                                        "ref_logps.json"};
    char path[4096];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        mt_train_path(o, files[i], path, sizeof path);
        mt_atomic_clean_stale(path);
    }
    return MT_OK;
}

mt_status mt_train(const mt_model *m, mt_trainable *t, const mt_dataset *d, const mt_train_opts *o,
                   mt_train_summary *out) {
    memset(out, 0, sizeof *out);
    if (d->n == 0) return mt_fail(MT_ERR_ARG, "the training data has no usable example");
    /* Every micro-batch allocates and frees its tape (hundreds of MB): kept in the heap
     * instead of mmap'ed and unmapped each time, the pages are not faulted in and zeroed
     * by the kernel again at every step. Peak memory is the same. */
    mallopt(M_MMAP_THRESHOLD, 512 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
    if (o->grad_accum <= 0 || o->epochs <= 0)
        return mt_fail(MT_ERR_ARG, "gradient accumulation and epochs must be positive");
    if ((o->loss == MT_LOSS_SFT) != (d->kind == MT_DATA_SFT))
        return mt_fail(MT_ERR_ARG, "loss %s needs %s data",
                       o->loss == MT_LOSS_SFT ? "sft" : "margin/dpo",
                       o->loss == MT_LOSS_SFT ? "question/answer" : "question/chosen/rejected");
    mt_status s = prepare_out_dir(o);
    if (s) return s;
    data_cursor cur = {0};
    if ((s = mt_batch_plan(d, &o->batch, 0, &cur.plan))) return s;
    cur.have_plan = 1;
    mt_train_opts opts = *o;
    opts.sched.total_steps = total_steps(d, o, cur.plan.n_batches);
    mt_adamw opt;
    if ((s = mt_lr_schedule_check(&opts.sched)) || (s = mt_adamw_init(&opt, &o->adam))) {
        mt_batches_free(&cur.plan);
        return s;
    }
    char path[4096];
    mt_ref_logps ref = {0}, *refp = NULL;
    FILE *mf = NULL;
    micro b = {0};
    unsigned char *ckpt = mt_calloc((size_t)m->cfg.n_layer, 1);
    if (!ckpt) {
        s = mt_fail(MT_ERR_NOMEM, "out of memory starting training");
        goto done;
    }
    for (int l = 0; l < m->cfg.n_layer; l++) ckpt[l] = (unsigned char)(o->recompute != 0);
    if (o->recompute_layers && *o->recompute_layers && !o->recompute &&
        (s = mt_parse_layer_list(o->recompute_layers, m->cfg.n_layer, ckpt)))
        goto done;
    mt_ckpt_meta meta = {0};
    snprintf(meta.run_key, sizeof meta.run_key, "%s", o->run_key);
    mt_train_path(o, "checkpoint.safetensors", path, sizeof path);
    if (o->init_checkpoint && same_file(o->init_checkpoint, path)) {
        s = mt_fail(MT_ERR_ARG,
                    "%s is the checkpoint this job writes: continue from a copy, or give the job "
                    "another output folder",
                    o->init_checkpoint);
        goto done;
    }
    /* The checkpoint is checked before the reference pass and loaded after it: missing
     * reference values must come from the starting model, not the trained one. */
    if (o->resume && (s = mt_checkpoint_check(path, t, &meta))) goto done;
    int64_t base = 0; /* the step this job continues from */
    if (o->init_checkpoint) {
        mt_ckpt_meta init;
        if ((s = mt_checkpoint_load_init(o->init_checkpoint, t, o->trainable, &init))) goto done;
        base = opt.step = init.step;
    }
    const int64_t end = base + opts.sched.total_steps;
    if (o->resume && (meta.step < base || meta.step > end)) {
        s = mt_fail(MT_ERR_FORMAT, "%s is at step %lld, outside this job's steps %lld to %lld",
                    path, (long long)meta.step, (long long)base, (long long)end);
        goto done;
    }
    if (o->loss == MT_LOSS_DPO) {
        const int64_t n_micro = opts.sched.total_steps * o->grad_accum;
        if ((s = mt_ref_logps_prepare(m, d, o, ckpt, n_micro, &ref))) goto done;
        refp = &ref;
    }
    out->init_step = out->start_step = base;
    if (o->resume) {
        if ((s = mt_checkpoint_load(path, t, &meta))) goto done;
        opt.step = meta.step;
        cur.pos = (mt_data_pos){meta.epoch, meta.batch};
        out->start_step = meta.step;
        mt_train_path(o, "metrics.jsonl", path, sizeof path);
        if ((s = trim_metrics(path, meta.step))) goto done;
    } else {
        mt_train_path(o, "metrics.jsonl", path, sizeof path);
        if ((s = mt_write_file_atomic(path, "", 0))) goto done;
    }
    mt_train_path(o, "metrics.jsonl", path, sizeof path);
    if (!(mf = fopen(path, "a"))) {
        s = mt_fail(MT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        goto done;
    }
    mt_task task;
    mt_task_start(&task, o->rep, "train", opts.sched.total_steps, opt.step - base);
    const double t0 = mt_now_seconds();
    int64_t tokens_seen = 0;
    int first = 1;
    while (opt.step < end) {
        step_stats st = {0};
        mt_zero_grads(t->params, t->n);
        const double ts = mt_now_seconds();
        int64_t step_tokens = 0;
        for (int a = 0; a < o->grad_accum && !s; a++) {
            const int *idx;
            int n_ex;
            if ((s = cursor_next(&cur, d, o, &idx, &n_ex))) break;
            if ((s = micro_build(&b, d, idx, n_ex, o->train_prompt))) break;
            step_tokens += b.n_tokens;
            /* Dropout masks depend only on (seed, micro-batch number): a resumed run
             * draws the same ones. */
            const uint64_t drop =
                mt_mix_key(o->batch.seed, (uint64_t)(opt.step * o->grad_accum + a));
            s = micro_step(m, t, &opts, refp, ckpt, idx, &b, drop, &st);
        }
        if (s) break;
        if (!isfinite(st.loss)) {
            s = mt_fail(MT_ERR_INTERNAL,
                        "the loss became %g at step %lld; stopped without saving, the last good "
                        "checkpoint is in %s",
                        st.loss, (long long)opt.step + 1, o->out_dir);
            break;
        }
        const double gnorm = mt_clip_grad_norm(t->params, t->n, o->max_grad_norm);
        if (!isfinite(gnorm)) {
            s = mt_fail(MT_ERR_INTERNAL,
                        "the gradient norm became %g at step %lld; stopped without saving, the "
                        "last good checkpoint is in %s",
                        gnorm, (long long)opt.step + 1, o->out_dir);
            break;
        }
        const float lr = mt_lr_at(&opts.sched, opt.step - base);
        if ((s = mt_adamw_step(&opt, t->params, t->n, lr))) break;
        tokens_seen += step_tokens;
        const double tps = step_tokens / (mt_now_seconds() - ts + 1e-9);
        if ((s = append_metrics(mf, opt.step, lr, gnorm, &st, tps, o->loss))) break;
        if (first) out->first_loss = st.loss, first = 0;
        out->last_loss = st.loss;
        char status[96];
        snprintf(status, sizeof status, "loss %.4f  %.0f tok/s", st.loss, tps);
        mt_task_update(&task, opt.step - base, status);
        if (o->save_every > 0 && (opt.step - base) % o->save_every == 0 && opt.step < end &&
            (s = save_checkpoint(o, t, opt.step, &cur)))
            break;
    }
    if (!s) s = save_checkpoint(o, t, opt.step, &cur);
    if (!s) {
        char status[96];
        snprintf(status, sizeof status, "loss %.4f", out->last_loss);
        mt_task_finish(&task, status);
    }
    out->steps = opt.step;
    out->tokens = tokens_seen;
    out->tokens_per_second = tokens_seen / (mt_now_seconds() - t0 + 1e-9);
done:
    if (mf) fclose(mf);
    free(ckpt);
    micro_free(&b);
    mt_ref_logps_free(&ref);
    if (cur.have_plan) mt_batches_free(&cur.plan);
    return s;
}

static mt_status parse_layer_item(const char *item, int n_layer, unsigned char *mask) {
    char *end = NULL;
    long lo = 0, hi = n_layer - 1;
    const char *dash = strchr(item, '-');
    if (dash != item) {
        lo = strtol(item, &end, 10);
        if (end == item || (dash ? end != dash : *end)) goto bad;
    }
    if (!dash)
        hi = lo;
    else if (dash[1]) {
        hi = strtol(dash + 1, &end, 10);
        if (end == dash + 1 || *end) goto bad;
    }
    if (lo < 0 || hi >= n_layer || lo > hi)
        return mt_fail(MT_ERR_ARG, "layer range '%s' is outside 0-%d", item, n_layer - 1);
    for (long l = lo; l <= hi; l++) mask[l] = 1;
    return MT_OK;
bad:
    return mt_fail(MT_ERR_ARG, "bad layer list item '%s' (use e.g. 0-5,12,20-)", item);
}

mt_status mt_parse_layer_list(const char *spec, int n_layer, unsigned char *mask) {
    memset(mask, 0, (size_t)n_layer);
    if (!strcmp(spec, "none")) return MT_OK;
    if (!strcmp(spec, "all")) {
        memset(mask, 1, (size_t)n_layer);
        return MT_OK;
    }
    char buf[256];
    if (strlen(spec) >= sizeof buf) return mt_fail(MT_ERR_ARG, "layer list too long");
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *save = NULL, *item = strtok_r(buf, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
        mt_status s = parse_layer_item(item, n_layer, mask);
        if (s) return s;
    }
    return MT_OK;
}
