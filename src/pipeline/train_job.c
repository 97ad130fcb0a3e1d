#include "pipeline/train_job.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/sha256.h"
#include "io/file_util.h"
#include "model/lora.h"
#include "train/checkpoint.h"
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

/* Adds a file's bytes to the hash of an adapter folder. */
static mt_status hash_file(mt_sha256_ctx *c, const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    const void *data = NULL;
    size_t size = 0;
    mt_status s = mt_map_file(path, &data, &size);
    if (s) return s;
    mt_sha256_update(c, name, strlen(name) + 1);
    mt_sha256_update(c, &size, sizeof size);
    if (size) mt_sha256_update(c, data, size);
    mt_unmap_file(data, size);
    return MT_OK;
}

/* What the job starts from, for its resume key: the init checkpoint's own run key and step
 * (together they name its bytes), or a hash of the init adapter's files; "" for a fresh start. */
static mt_status start_identity(const mt_train_job *j, char *out, size_t cap) {
    if (j->init_checkpoint) {
        mt_ckpt_meta meta;
        mt_status s = mt_checkpoint_read_meta(j->init_checkpoint, &meta);
        if (s) return s;
        snprintf(out, cap, "checkpoint:%s:%lld", meta.run_key, (long long)meta.step);
    } else if (j->init_adapter) {
        mt_sha256_ctx c;
        uint8_t digest[32];
        char hex[65];
        mt_sha256_init(&c);
        mt_status s = hash_file(&c, j->init_adapter, "adapter_config.json");
        if (!s) s = hash_file(&c, j->init_adapter, "adapter_model.safetensors");
        if (s) return s;
        mt_sha256_final(&c, digest);
        mt_sha256_to_hex(digest, hex);
        snprintf(out, cap, "adapter:%s", hex);
    } else {
        out[0] = '\0';
    }
    return MT_OK;
}

/* FNV-1a over the settings a resumed run must share with the run that wrote the
 * checkpoint, the starting point included (a fresh start adds nothing, so keys of jobs
 * written before starting points existed still match). */
static void run_key(const mt_train_job *j, const char *model, const mt_dataset *d,
                    const char *start, char *out, size_t cap) {
    char buf[8192];
    struct stat st;
    long long size = stat(model, &st) == 0 ? (long long)st.st_size : -1;
    snprintf(
        buf, sizeof buf,
        "%s|%lld|%016" PRIx64 "|%s|%d|%d|%g|%g|%s|%d|%d|%d|%d|%g|%s|%d|%" PRIu64 "|%d|%g|%g|%g%s%s",
        model, size, mt_dataset_fingerprint(d), j->loss, j->full, j->rank, j->alpha, j->dropout,
        j->targets, j->batch, j->accum, j->epochs, j->max_steps, j->lr, j->schedule, j->warmup,
        j->seed, j->max_batch_tokens, j->margin, j->beta, j->sft_weight, *start ? "|" : "", start);
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
    o->init_checkpoint = j->init_checkpoint;
    o->rep = j->rep;
    return MT_OK;
}

/* A LoRA's trained set in words, as checkpoints record it. */
static void describe_lora(const mt_lora_config *c, char *buf, size_t cap) {
    char targets[128];
    mt_lora_target_names(c->targets, targets, sizeof targets);
    snprintf(buf, cap, "lora rank %d alpha %g %s", c->rank, c->alpha, targets);
}

/* The LoRA to train: created fresh, or read from the init adapter, which must have the
 * job's rank, alpha and targets (a silently different alpha would rescale every update). */
static mt_status make_lora(const mt_train_job *j, const mt_model *m, mt_lora **lora) {
    mt_lora_config want = {.rank = j->rank, .alpha = j->alpha, .dropout = j->dropout};
    mt_status st = mt_lora_parse_targets(j->targets, &want.targets);
    if (st) return st;
    if (!j->init_adapter) return mt_lora_create(m, &want, j->seed, lora);
    if ((st = mt_lora_import_peft(j->init_adapter, m, lora))) return st; /* names the file */
    const mt_lora_config *have = &(*lora)->cfg;
    if (have->rank != want.rank || have->alpha != want.alpha || have->targets != want.targets) {
        char have_s[160], want_s[160];
        describe_lora(have, have_s, sizeof have_s);
        describe_lora(&want, want_s, sizeof want_s);
        mt_lora_free(*lora);
        *lora = NULL;
        return mt_fail(MT_ERR_ARG,
                       "%s holds a %s, this job trains a %s: give the job the adapter's rank, "
                       "alpha and targets",
                       j->init_adapter, have_s, want_s);
    }
    (*lora)->cfg.dropout = j->dropout; /* a training setting, not part of the weights */
    return MT_OK;
}

static mt_status setup_trainable(const mt_train_job *j, mt_session *s, mt_lora **lora,
                                 mt_trainable *t, mt_train_opts *o) {
    if (j->full) {
        snprintf(o->trainable, sizeof o->trainable, "full");
        return mt_trainable_full(t, s->model);
    }
    mt_status st = make_lora(j, s->model, lora);
    if (st) return st;
    describe_lora(&(*lora)->cfg, o->trainable, sizeof o->trainable);
    mt_lora_attach(*lora, s->model);
    return mt_trainable_lora(t, s->model, *lora);
}

/* Refuses start settings that cannot both hold or do not apply. */
static mt_status check_start(const mt_train_job *j) {
    if (j->init_checkpoint && j->init_adapter)
        return mt_fail(MT_ERR_ARG,
                       "--init-checkpoint and --init-adapter exclude each other (a checkpoint "
                       "already holds the adapter's weights)");
    if (j->init_adapter && j->full)
        return mt_fail(MT_ERR_ARG,
                       "--init-adapter starts a LoRA adapter; it does not apply to --full (use "
                       "--init-checkpoint with a full fine-tuning checkpoint)");
    return MT_OK;
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
    mt_status st = check_start(job);
    if (st) return st;
    mt_train_job j = *job;
    if (j.lr < 0) j.lr = j.full ? 2e-5f : 2e-4f;
    mt_dataset d = {0};
    mt_data_opts dopts = {.max_len = j.max_len};
    mt_lora *lora = NULL;
    mt_trainable t = {0};
    mt_train_opts o;
    char start[128];
    st = mt_dataset_load(j.data, s->tok, s->chat, &dopts, &d);
    if (!st) {
        report_data(&j, &d);
        st = build_opts(&j, &o);
    }
    if (!st) st = setup_trainable(&j, s, &lora, &t, &o);
    if (!st) st = start_identity(&j, start, sizeof start);
    if (!st) {
        run_key(&j, model_path, &d, start, o.run_key, sizeof o.run_key);
        if (j.init_checkpoint)
            mt_report_note(j.rep, "continuing from %s", j.init_checkpoint);
        else if (j.init_adapter)
            mt_report_note(j.rep, "starting the LoRA adapter from %s", j.init_adapter);
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
