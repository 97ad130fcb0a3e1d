#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "pipeline/session.h"
#include "model/lora.h"
#include "train/export.h"
#include "train/trainer.h"

typedef struct {
    const char *model, *data, *out, *loss, *targets, *schedule, *chat_template;
    int full, rank, batch, accum, epochs, max_len, save_every, warmup, recompute, train_prompt;
    int resume, threads, max_batch_tokens, quiet, max_steps_i;
    float alpha, dropout, lr, min_lr_ratio, wd, clip, margin, beta, sft_weight;
    uint64_t seed;
} train_flags;

static void defaults(train_flags *f) {
    memset(f, 0, sizeof *f);
    f->loss = "sft";
    f->targets = "q,k,v,o,gate,up,down";
    f->schedule = "cosine";
    f->rank = 8;
    f->alpha = 16.0f;
    f->batch = 4;
    f->accum = 1;
    f->epochs = 1;
    f->max_len = 512;
    f->save_every = 50;
    f->lr = -1.0f; /* chosen by mode below */
    f->clip = 1.0f;
    f->margin = 1.0f;
    f->beta = 0.1f;
    f->seed = 42;
}

/* FNV-1a over the settings a resumed run must share with the run that wrote the
 * checkpoint. */
static void run_key(const train_flags *f, const mt_dataset *d, char *out, size_t cap) {
    char buf[1024];
    struct stat st;
    long long size = stat(f->model, &st) == 0 ? (long long)st.st_size : -1;
    snprintf(
        buf, sizeof buf,
        "%s|%lld|%016" PRIx64 "|%s|%d|%d|%g|%g|%s|%d|%d|%d|%d|%g|%s|%d|%" PRIu64 "|%d|%g|%g|%g",
        f->model, size, mt_dataset_fingerprint(d), f->loss, f->full, f->rank, f->alpha, f->dropout,
        f->targets, f->batch, f->accum, f->epochs, f->max_steps_i, f->lr, f->schedule, f->warmup,
        f->seed, f->max_batch_tokens, f->margin, f->beta, f->sft_weight);
    uint64_t h = 1469598103934665603ull;
    for (const char *p = buf; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    snprintf(out, cap, "%016" PRIx64, h);
}

static mt_status parse_choices(const train_flags *f, mt_train_opts *o) {
    if (!strcmp(f->loss, "sft"))
        o->loss = MT_LOSS_SFT;
    else if (!strcmp(f->loss, "margin"))
        o->loss = MT_LOSS_MARGIN;
    else if (!strcmp(f->loss, "dpo"))
        o->loss = MT_LOSS_DPO;
    else
        return mt_fail(MT_ERR_ARG, "--loss must be sft, margin or dpo (got '%s')", f->loss);
    if (!strcmp(f->schedule, "cosine"))
        o->sched.kind = MT_LR_COSINE;
    else if (!strcmp(f->schedule, "linear"))
        o->sched.kind = MT_LR_LINEAR;
    else if (!strcmp(f->schedule, "constant"))
        o->sched.kind = MT_LR_CONSTANT;
    else
        return mt_fail(MT_ERR_ARG, "--schedule must be cosine, linear or constant");
    if (f->batch <= 0 || f->accum <= 0 || f->epochs <= 0 || f->max_len <= 1 || f->max_steps_i < 0 ||
        f->warmup < 0 || f->save_every < 0)
        return mt_fail(MT_ERR_ARG,
                       "batch size, accumulation, epochs and length limits must be positive");
    return MT_OK;
}

static mt_status build_opts(const train_flags *f, mt_train_opts *o) {
    memset(o, 0, sizeof *o);
    mt_status s = parse_choices(f, o);
    if (s) return s;
    o->out_dir = f->out;
    o->pref = (mt_pref_params){.margin = f->margin, .beta = f->beta, .sft_weight = f->sft_weight};
    o->sched.base_lr = f->lr;
    o->sched.warmup_steps = f->warmup;
    o->sched.min_ratio = f->min_lr_ratio;
    o->adam = mt_adamw_defaults();
    o->adam.weight_decay = f->wd;
    o->max_grad_norm = f->clip;
    o->batch = (mt_batch_opts){.batch_size = f->batch,
                               .max_batch_tokens = f->max_batch_tokens,
                               .shuffle = 1,
                               .seed = f->seed};
    o->grad_accum = f->accum;
    o->epochs = f->epochs;
    o->max_steps = f->max_steps_i;
    o->save_every = f->save_every;
    o->recompute = f->recompute;
    o->train_prompt = f->train_prompt;
    o->resume = f->resume;
    o->quiet = f->quiet;
    return MT_OK;
}

static mt_status setup_trainable(const train_flags *f, mt_session *s, mt_lora **lora,
                                 mt_trainable *t) {
    if (f->full) return mt_trainable_full(t, s->model);
    mt_lora_config lc = {.rank = f->rank, .alpha = f->alpha, .dropout = f->dropout};
    mt_status st = mt_lora_parse_targets(f->targets, &lc.targets);
    if (!st) st = mt_lora_create(s->model, &lc, f->seed, lora);
    if (st) return st;
    mt_lora_attach(*lora, s->model);
    return mt_trainable_lora(t, s->model, *lora);
}

static int run(const train_flags *f) {
    mt_session s;
    if (!f->data || !f->out) {
        mt_fail(MT_ERR_ARG, "--data and --out are required");
        return mt_report_error();
    }
    if (mt_session_open(&s, f->model, f->threads, f->chat_template)) return mt_report_error();
    mt_dataset d = {0};
    mt_data_opts dopts = {.max_len = f->max_len};
    mt_lora *lora = NULL;
    mt_trainable t = {0};
    mt_train_opts o;
    mt_train_summary sum;
    train_flags fl = *f;
    if (fl.lr < 0) fl.lr = f->full ? 2e-5f : 2e-4f;
    mt_status st = mt_dataset_load(f->data, s.tok, s.chat, &dopts, &d);
    if (!st) {
        fprintf(stderr, "data: %d examples from %s", d.n, f->data);
        if (d.n_truncated)
            fprintf(stderr, ", %d truncated to %d tokens", d.n_truncated, f->max_len);
        if (d.n_dropped)
            fprintf(stderr, ", %d dropped (prompt of %d tokens or more)", d.n_dropped, f->max_len);
        fprintf(stderr, "\n");
        st = build_opts(&fl, &o);
    }
    if (!st) st = setup_trainable(&fl, &s, &lora, &t);
    if (!st) {
        run_key(&fl, &d, o.run_key, sizeof o.run_key);
        fprintf(stderr, "training %lld parameters (%s) with %s loss\n", mt_trainable_count(&t),
                f->full ? "full fine-tuning" : "LoRA", fl.loss);
        st = mt_train(s.model, &t, &d, &o, &sum);
    }
    char path[4096];
    if (!st) {
        /* The trained result in a form other tools load: a PEFT adapter, or for full
         * fine-tuning the whole model as an F32 GGUF. */
        snprintf(path, sizeof path, "%s/%s", f->out, lora ? "adapter" : "model.gguf");
        st = lora ? mt_lora_save_peft(lora, s.model, path)
                  : mt_export_merged_gguf(s.model, NULL, MT_F32, path);
        if (!st) fprintf(stderr, "wrote %s\n", path);
    }
    if (!st)
        fprintf(stderr,
                "trained %lld steps: loss %.4f -> %.4f, %.0f tokens/s; checkpoint in "
                "%s/checkpoint.safetensors\n",
                (long long)sum.steps, sum.first_loss, sum.last_loss, sum.tokens_per_second, f->out);
    mt_trainable_free(&t);
    mt_dataset_free(&d);
    mt_session_close(&s);
    mt_lora_free(lora);
    return st ? mt_report_error() : 0;
}

int mt_cmd_train(int argc, char **argv) {
    train_flags f;
    defaults(&f);
    const mt_opt opts[] = {
        {"--model", "-m", MT_OPT_STR, &f.model, "MODEL", "GGUF file or Hugging Face folder"},
        {"--data", "-d", MT_OPT_STR, &f.data, "FILE",
         "JSONL: question/answer, or question/chosen/rejected"},
        {"--out", "-o", MT_OPT_STR, &f.out, "DIR",
         "output folder (checkpoint, metrics.jsonl, adapter)"},
        {"--loss", NULL, MT_OPT_STR, &f.loss, "KIND", "sft | margin | dpo (sft)"},
        {"--full", NULL, MT_OPT_FLAG, &f.full, NULL,
         "train every weight instead of a LoRA adapter"},
        {"--lora-rank", NULL, MT_OPT_INT, &f.rank, "R", "LoRA rank (8)"},
        {"--lora-alpha", NULL, MT_OPT_FLOAT, &f.alpha, "A", "LoRA alpha (16)"},
        {"--lora-dropout", NULL, MT_OPT_FLOAT, &f.dropout, "P", "LoRA dropout (0)"},
        {"--lora-targets", NULL, MT_OPT_STR, &f.targets, "LIST", "q,k,v,o,gate,up,down or all"},
        {"--lr", NULL, MT_OPT_FLOAT, &f.lr, "LR", "peak learning rate (2e-4 LoRA, 2e-5 full)"},
        {"--schedule", NULL, MT_OPT_STR, &f.schedule, "KIND",
         "cosine | linear | constant (cosine)"},
        {"--warmup", NULL, MT_OPT_INT, &f.warmup, "STEPS", "linear warmup steps (0)"},
        {"--min-lr-ratio", NULL, MT_OPT_FLOAT, &f.min_lr_ratio, "X",
         "final learning rate / peak (0)"},
        {"--weight-decay", NULL, MT_OPT_FLOAT, &f.wd, "X", "AdamW decoupled weight decay (0)"},
        {"--max-grad-norm", NULL, MT_OPT_FLOAT, &f.clip, "X",
         "clip gradients to this global norm (1; 0 = off)"},
        {"--batch-size", "-b", MT_OPT_INT, &f.batch, "N", "examples per micro-batch (4)"},
        {"--max-batch-tokens", NULL, MT_OPT_INT, &f.max_batch_tokens, "N",
         "token budget per micro-batch (off)"},
        {"--grad-accum", NULL, MT_OPT_INT, &f.accum, "N", "micro-batches per optimiser step (1)"},
        {"--epochs", NULL, MT_OPT_INT, &f.epochs, "N", "passes over the data (1)"},
        {"--max-steps", NULL, MT_OPT_INT, &f.max_steps_i, "N",
         "optimiser steps (overrides --epochs)"},
        {"--max-len", NULL, MT_OPT_INT, &f.max_len, "N",
         "tokens per sequence; longer answers are cut (512)"},
        {"--margin", NULL, MT_OPT_FLOAT, &f.margin, "M", "margin of the METEOR ranking loss (1)"},
        {"--beta", NULL, MT_OPT_FLOAT, &f.beta, "B", "DPO beta (0.1)"},
        {"--sft-weight", NULL, MT_OPT_FLOAT, &f.sft_weight, "W",
         "SFT term beside a preference loss (0)"},
        {"--train-prompt", NULL, MT_OPT_FLAG, &f.train_prompt, NULL, "also train on prompt tokens"},
        {"--recompute", NULL, MT_OPT_FLAG, &f.recompute, NULL,
         "recompute activations in backward (less memory)"},
        {"--save-every", NULL, MT_OPT_INT, &f.save_every, "STEPS",
         "checkpoint interval (50; 0 = end only)"},
        {"--resume", NULL, MT_OPT_FLAG, &f.resume, NULL,
         "continue from DIR/checkpoint.safetensors"},
        {"--seed", NULL, MT_OPT_U64, &f.seed, "S", "seed for data order and initialisation (42)"},
        {"--threads", "-t", MT_OPT_INT, &f.threads, "N", "threads (0 = all cores)"},
        {"--chat-template", NULL, MT_OPT_STR, &f.chat_template, "NAME", "chatml | llama3 | gemma"},
        {"--quiet", "-q", MT_OPT_FLAG, &f.quiet, NULL, "no progress bar"},
    };
    const int n = sizeof opts / sizeof *opts;
    int help = 0;
    if (mt_parse_opts(opts, n, argc, argv, &help)) return mt_report_error();
    if (help) {
        mt_print_help(
            stdout, "meteor train -m MODEL --data FILE.jsonl --out DIR [options]",
            "Fine-tune a model (LoRA by default) with SFT, the METEOR margin loss or DPO.", opts,
            n);
        return 0;
    }
    return run(&f);
}
