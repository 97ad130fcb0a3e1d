#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/reporter.h"
#include "infer/session.h"
#include "pipeline/train_job.h"

typedef struct {
    const char *model, *chat_template;
    int threads, quiet;
    mt_train_job job;
    mt_cli_reporter reporter;
} train_flags;

static int run(train_flags *f) {
    mt_session s;
    if (!f->job.data || !f->job.out) {
        mt_fail(MT_ERR_ARG, "--data and --out are required");
        return mt_report_error();
    }
    if (mt_session_open(&s, f->model, f->threads, f->chat_template)) return mt_report_error();
    mt_train_summary sum;
    f->job.rep = mt_cli_reporter_init(&f->reporter, f->quiet);
    mt_status st = mt_train_job_run(&s, f->model, &f->job, &sum);
    if (!st)
        fprintf(stderr,
                "trained %lld steps (to step %lld): loss %.4f -> %.4f, %.0f tokens/s; "
                "checkpoint in %s/checkpoint.safetensors\n",
                (long long)(sum.steps - sum.init_step), (long long)sum.steps, sum.first_loss,
                sum.last_loss, sum.tokens_per_second, f->job.out);
    mt_session_close(&s);
    return st ? mt_report_error() : 0;
}

int mt_cmd_train(int argc, char **argv) {
    train_flags f = {0};
    mt_train_job_defaults(&f.job);
    const mt_opt opts[] = {
        {"--model", "-m", MT_OPT_STR, &f.model, "MODEL", "GGUF file or Hugging Face folder"},
        {"--data", "-d", MT_OPT_STR, &f.job.data, "FILE",
         "JSONL: question/answer, or question/chosen/rejected"},
        {"--out", "-o", MT_OPT_STR, &f.job.out, "DIR",
         "output folder (checkpoint, metrics.jsonl, adapter)"},
        {"--loss", NULL, MT_OPT_STR, &f.job.loss, "KIND", "sft | margin | dpo (sft)"},
        {"--full", NULL, MT_OPT_FLAG, &f.job.full, NULL,
         "train every weight instead of a LoRA adapter"},
        {"--lora-rank", NULL, MT_OPT_INT, &f.job.rank, "R", "LoRA rank (8)",
         MT_RANGE(1, MT_CLI_MAX_RANK)},
        {"--lora-alpha", NULL, MT_OPT_FLOAT, &f.job.alpha, "A", "LoRA alpha (16)",
         MT_RANGE_ABOVE(0)},
        {"--lora-dropout", NULL, MT_OPT_FLOAT, &f.job.dropout, "P", "LoRA dropout (0)",
         MT_RANGE_OPEN_HI(0, 1)},
        {"--lora-targets", NULL, MT_OPT_STR, &f.job.targets, "LIST", "q,k,v,o,gate,up,down or all"},
        {"--lr", NULL, MT_OPT_FLOAT, &f.job.lr, "LR", "peak learning rate (2e-4 LoRA, 2e-5 full)",
         MT_RANGE_ABOVE(0)},
        {"--schedule", NULL, MT_OPT_STR, &f.job.schedule, "KIND",
         "cosine | linear | constant (cosine)"},
        {"--warmup", NULL, MT_OPT_INT, &f.job.warmup, "STEPS", "linear warmup steps (0)",
         MT_RANGE(0, INT_MAX)},
        {"--min-lr-ratio", NULL, MT_OPT_FLOAT, &f.job.min_lr_ratio, "X",
         "final learning rate / peak (0)", MT_RANGE(0, 1)},
        {"--weight-decay", NULL, MT_OPT_FLOAT, &f.job.wd, "X", "AdamW decoupled weight decay (0)",
         MT_RANGE_FROM(0)},
        {"--max-grad-norm", NULL, MT_OPT_FLOAT, &f.job.clip, "X",
         "clip gradients to this global norm (1; 0 = off)", MT_RANGE_FROM(0)},
        {"--batch-size", "-b", MT_OPT_INT, &f.job.batch, "N", "examples per micro-batch (4)",
         MT_RANGE(1, MT_CLI_MAX_BATCH)},
        {"--max-batch-tokens", NULL, MT_OPT_INT, &f.job.max_batch_tokens, "N",
         "token budget per micro-batch (off)", MT_RANGE(0, INT_MAX)},
        {"--grad-accum", NULL, MT_OPT_INT, &f.job.accum, "N",
         "micro-batches per optimiser step (1)", MT_RANGE(1, MT_CLI_MAX_BATCH)},
        {"--epochs", NULL, MT_OPT_INT, &f.job.epochs, "N", "passes over the data (1)",
         MT_RANGE(1, MT_CLI_MAX_EPOCHS)},
        {"--max-steps", NULL, MT_OPT_INT, &f.job.max_steps, "N",
         "optimiser steps (overrides --epochs)", MT_RANGE(0, INT_MAX)},
        {"--max-len", NULL, MT_OPT_INT, &f.job.max_len, "N",
         "tokens per sequence; longer answers are cut (512)", MT_RANGE(2, MT_CLI_MAX_TOKENS)},
        {"--margin", NULL, MT_OPT_FLOAT, &f.job.margin, "M",
         "margin of the METEOR ranking loss (1)", MT_RANGE_FROM(0)},
        {"--beta", NULL, MT_OPT_FLOAT, &f.job.beta, "B", "DPO beta (0.1)", MT_RANGE_ABOVE(0)},
        {"--sft-weight", NULL, MT_OPT_FLOAT, &f.job.sft_weight, "W",
         "SFT term beside a preference loss (0)", MT_RANGE_FROM(0)},
        {"--train-prompt", NULL, MT_OPT_FLAG, &f.job.train_prompt, NULL,
         "also train on prompt tokens"},
        {"--recompute", NULL, MT_OPT_FLAG, &f.job.recompute, NULL,
         "recompute every layer's activations in backward (less memory)"},
        {"--recompute-layers", NULL, MT_OPT_STR, &f.job.recompute_layers, "LIST",
         "recompute only these layers, e.g. 0-9,20- (memory vs time per layer)"},
        {"--save-every", NULL, MT_OPT_INT, &f.job.save_every, "STEPS",
         "checkpoint interval (50; 0 = end only)", MT_RANGE(0, INT_MAX)},
        {"--resume", NULL, MT_OPT_FLAG, &f.job.resume, NULL,
         "continue from DIR/checkpoint.safetensors"},
        {"--init-checkpoint", NULL, MT_OPT_STR, &f.job.init_checkpoint, "FILE",
         "continue another job's checkpoint.safetensors (same model and trainable set): "
         "weights, optimiser state, step"},
        {"--init-adapter", NULL, MT_OPT_STR, &f.job.init_adapter, "DIR",
         "start the LoRA from a PEFT adapter folder (same rank, alpha, targets; fresh "
         "optimiser)"},
        {"--seed", NULL, MT_OPT_U64, &f.job.seed, "S",
         "seed for data order and initialisation (42)"},
        {"--threads", "-t", MT_OPT_INT, &f.threads, "N", "threads (0 = all cores)",
         MT_RANGE(0, MT_CLI_MAX_THREADS)},
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
