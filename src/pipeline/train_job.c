#include "pipeline/train_job.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "model/lora.h"
#include "train/export.h"

void mt_train_job_defaults(mt_train_job *j) {
    memset(j, 0, sizeof *j);
    j->loss = "sft";
    j->targets = "q,k,v,o,gate,up,down";
    j->schedule = "cosine";
    j->rank = 8;
    j->alpha = 16.0f;
    j->batch = 4;
    j->accum = 1;
    j->epochs = 1;
    j->max_len = 512;
    j->save_every = 50;
    j->lr = -1.0f;
    j->clip = 1.0f;
    j->margin = 1.0f;
    j->beta = 0.1f;
    j->seed = 42;
}

/* FNV-1a over the settings a resumed run must share with the run that wrote the
 * checkpoint. */
static void run_key(const mt_train_job *j, const char *model, const mt_dataset *d, char *out,
                    size_t cap) {
    char buf[1024];
    struct stat st;
    long long size = stat(model, &st) == 0 ? (long long)st.st_size : -1;
    snprintf(
        buf, sizeof buf,
        "%s|%lld|%016" PRIx64 "|%s|%d|%d|%g|%g|%s|%d|%d|%d|%d|%g|%s|%d|%" PRIu64 "|%d|%g|%g|%g",
        model, size, mt_dataset_fingerprint(d), j->loss, j->full, j->rank, j->alpha, j->dropout,
        j->targets, j->batch, j->accum, j->epochs, j->max_steps, j->lr, j->schedule, j->warmup,
        j->seed, j->max_batch_tokens, j->margin, j->beta, j->sft_weight);
    uint64_t h = 1469598103934665603ull;
    for (const char *p = buf; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    snprintf(out, cap, "%016" PRIx64, h);
}

static mt_status parse_choices(const mt_train_job *j, mt_train_opts *o) {
    if (!strcmp(j->loss, "sft"))
        o->loss = MT_LOSS_SFT;
    else if (!strcmp(j->loss, "margin"))
        o->loss = MT_LOSS_MARGIN;
    else if (!strcmp(j->loss, "dpo"))
        o->loss = MT_LOSS_DPO;
    else
        return mt_fail(MT_ERR_ARG, "--loss must be sft, margin or dpo (got '%s')", j->loss);
    if (!strcmp(j->schedule, "cosine"))
        o->sched.kind = MT_LR_COSINE;
    else if (!strcmp(j->schedule, "linear"))
        o->sched.kind = MT_LR_LINEAR;
    else if (!strcmp(j->schedule, "constant"))
        o->sched.kind = MT_LR_CONSTANT;
    else
        return mt_fail(MT_ERR_ARG, "--schedule must be cosine, linear or constant");
    if (j->batch <= 0 || j->accum <= 0 || j->epochs <= 0 || j->max_len <= 1 || j->max_steps < 0 ||
        j->warmup < 0 || j->save_every < 0)
        return mt_fail(MT_ERR_ARG,
                       "batch size, accumulation, epochs and length limits must be positive");
    return MT_OK;
}

static mt_status build_opts(const mt_train_job *j, mt_train_opts *o) {
    memset(o, 0, sizeof *o);
    mt_status s = parse_choices(j, o);
    if (s) return s;
    o->out_dir = j->out;
    o->pref = (mt_pref_params){.margin = j->margin, .beta = j->beta, .sft_weight = j->sft_weight};
    o->sched.base_lr = j->lr;
    o->sched.warmup_steps = j->warmup;
    o->sched.min_ratio = j->min_lr_ratio;
    o->adam = mt_adamw_defaults();
    o->adam.weight_decay = j->wd;
    o->max_grad_norm = j->clip;
    o->batch = (mt_batch_opts){.batch_size = j->batch,
                               .max_batch_tokens = j->max_batch_tokens,
                               .shuffle = 1,
                               .seed = j->seed};
    o->grad_accum = j->accum;
    o->epochs = j->epochs;
    o->max_steps = j->max_steps;
    o->save_every = j->save_every;
    o->recompute = j->recompute;
    o->recompute_layers = j->recompute_layers;
    o->train_prompt = j->train_prompt;
    o->resume = j->resume;
    o->rep = j->rep;
    return MT_OK;
}

static mt_status setup_trainable(const mt_train_job *j, mt_session *s, mt_lora **lora,
                                 mt_trainable *t) {
    if (j->full) return mt_trainable_full(t, s->model);
    mt_lora_config lc = {.rank = j->rank, .alpha = j->alpha, .dropout = j->dropout};
    mt_status st = mt_lora_parse_targets(j->targets, &lc.targets);
    if (!st) st = mt_lora_create(s->model, &lc, j->seed, lora);
    if (st) return st;
    mt_lora_attach(*lora, s->model);
    return mt_trainable_lora(t, s->model, *lora);
}

static void report_data(const mt_train_job *j, const mt_dataset *d) {
    char truncated[64] = "", dropped[80] = "";
    if (d->n_truncated)
        snprintf(truncated, sizeof truncated, ", %d truncated to %d tokens", d->n_truncated,
                 j->max_len);
    if (d->n_dropped)
        snprintf(dropped, sizeof dropped, ", %d dropped (prompt of %d tokens or more)",
                 d->n_dropped, j->max_len);
    mt_report_note(j->rep, "data: %d examples from %s%s%s", d->n, j->data, truncated, dropped);
}

/* The trained result in a form other tools load. */
static mt_status save_result(const mt_train_job *j, mt_session *s, const mt_lora *lora) {
    char path[4096];
    if (j->result)
        snprintf(path, sizeof path, "%s", j->result);
    else
        snprintf(path, sizeof path, "%s/%s", j->out, lora ? "adapter" : "model.gguf");
    mt_status st = lora ? mt_lora_save_peft(lora, s->model, path)
                        : mt_export_merged_gguf(s->model, NULL, MT_F32, path);
    if (!st) mt_report_note(j->rep, "wrote %s", path);
    return st;
}

mt_status mt_train_job_run(mt_session *s, const char *model_path, const mt_train_job *job,
                           mt_train_summary *sum) {
    if (!job->data || !job->out) return mt_fail(MT_ERR_ARG, "--data and --out are required");
    mt_train_job j = *job;
    if (j.lr < 0) j.lr = j.full ? 2e-5f : 2e-4f;
    mt_dataset d = {0};
    mt_data_opts dopts = {.max_len = j.max_len};
    mt_lora *lora = NULL;
    mt_trainable t = {0};
    mt_train_opts o;
    mt_status st = mt_dataset_load(j.data, s->tok, s->chat, &dopts, &d);
    if (!st) {
        report_data(&j, &d);
        st = build_opts(&j, &o);
    }
    if (!st) st = setup_trainable(&j, s, &lora, &t);
    if (!st) {
        run_key(&j, model_path, &d, o.run_key, sizeof o.run_key);
        mt_report_note(j.rep, "training %lld parameters (%s) with %s loss", mt_trainable_count(&t),
                       j.full ? "full fine-tuning" : "LoRA", j.loss);
        st = mt_train(s->model, &t, &d, &o, sum);
    }
    if (!st) st = save_result(&j, s, lora);
    if (lora) mt_lora_detach(s->model);
    mt_trainable_free(&t);
    mt_dataset_free(&d);
    mt_lora_free(lora);
    return st;
}
