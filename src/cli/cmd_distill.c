#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/expert_flags.h"
#include "cli/reporter.h"
#include "pipeline/distill.h"

static int dry_run(const mt_distill_opts *o, const mt_expert_spec *sp) {
    mt_distill_plan p;
    if (mt_distill_estimate(o, sp, &p)) return mt_report_error();
    printf("dry run: %d training questions; %d guidelines to write with the weak model\n",
           p.questions, p.guidelines_to_write);
    printf("expert answers: %d to request, %d already done\n", p.answers_to_request,
           p.answers_done);
    if (o->score) printf("judge scores: up to %d requests\n", p.score_requests);
    printf("estimated tokens: about %lld prompt + at most %lld completion (weak model's "
           "tokenizer; the expert's may differ)\n",
           (long long)p.prompt_tokens, (long long)p.completion_tokens);
    if (p.cost >= 0) printf("estimated cost: at most %.4f\n", p.cost);
    printf("nothing was sent; run again without --dry-run to start\n");
    return 0;
}

int mt_cmd_distill(int argc, char **argv) {
    mt_distill_opts o;
    mt_distill_defaults(&o);
    mt_expert_flags f;
    int dry_run_only = 0, quiet = 0;
    float test_fraction = (float)o.test_fraction;
    mt_train_job *j = &o.train;
    const mt_opt head[] = {
        {"--run", NULL, MT_OPT_STR, &o.run_dir, "DIR", "run directory (created when missing)"},
        {"--model", "-m", MT_OPT_STR, &o.model, "MODEL", "the weak model (GGUF or HF folder)"},
        {"--questions", "-q", MT_OPT_STR, &o.questions, "FILE",
         "questions to import (JSON or JSONL; METEOR or generic format)"},
    };
    const mt_opt tail[] = {
        {"--dry-run", NULL, MT_OPT_FLAG, &dry_run_only, NULL,
         "estimate requests and tokens; send nothing"},
        {"--no-guideline", NULL, MT_OPT_FLAG, &o.no_guideline, NULL,
         "ablation: the expert answers without the weak model's guideline"},
        {"--grounded", NULL, MT_OPT_FLAG, &o.grounded, NULL,
         "the expert answers with the question's reference answer as trusted facts"},
        {"--score", NULL, MT_OPT_FLAG, &o.score, NULL,
         "have the expert score every distilled answer 1-10 (data quality)"},
        {"--no-train", NULL, MT_OPT_FLAG, &o.no_train, NULL, "stop after the data; no SFT"},
        {"--precise", NULL, MT_OPT_FLAG, &o.precise, NULL,
         "generate with f32 activations (slower; training always does)"},
        {"--test-fraction", NULL, MT_OPT_FLOAT, &test_fraction, "F",
         "share of questions held out for evaluation (0.2)", MT_RANGE_OPEN_HI(0, 1)},
        {"--seed", NULL, MT_OPT_U64, &o.seed, "S", "seed for the split, sampling, training (42)"},
        {"--slots", NULL, MT_OPT_INT, &o.slots, "N",
         "guidelines the weak model writes together (8)", MT_RANGE(1, MT_CLI_MAX_SLOTS)},
        {"--guideline-max-tokens", NULL, MT_OPT_INT, &o.guide_max_tokens, "N",
         "longest guideline (256)", MT_RANGE(1, MT_CLI_MAX_TOKENS)},
        {"--temperature", NULL, MT_OPT_FLOAT, &o.guide_temperature, "T",
         "guideline sampling temperature (0.7)", MT_RANGE_FROM(0)},
        {"--top-p", NULL, MT_OPT_FLOAT, &o.guide_top_p, "P", "guideline top-p (0.95)",
         MT_RANGE_OPEN_LO(0, 1)},
        {"--top-k", NULL, MT_OPT_INT, &o.guide_top_k, "K", "guideline top-k (50)",
         MT_RANGE(0, INT_MAX)},
        {"--answer-max-tokens", NULL, MT_OPT_INT, &o.answer_max_tokens, "N",
         "longest expert answer (512)", MT_RANGE(1, MT_CLI_MAX_TOKENS)},
        {"--answer-temperature", NULL, MT_OPT_FLOAT, &o.answer_temperature, "T",
         "expert sampling temperature (0)", MT_RANGE_FROM(0)},
        {"--lora-rank", NULL, MT_OPT_INT, &j->rank, "R", "SFT: LoRA rank (8)",
         MT_RANGE(1, MT_CLI_MAX_RANK)},
        {"--lora-alpha", NULL, MT_OPT_FLOAT, &j->alpha, "A", "SFT: LoRA alpha (16)",
         MT_RANGE_ABOVE(0)},
        {"--full", NULL, MT_OPT_FLAG, &j->full, NULL, "SFT: train every weight"},
        {"--epochs", NULL, MT_OPT_INT, &j->epochs, "N", "SFT: passes over the data (3)",
         MT_RANGE(1, MT_CLI_MAX_EPOCHS)},
        {"--lr", NULL, MT_OPT_FLOAT, &j->lr, "LR", "SFT: peak learning rate (2e-4 LoRA)",
         MT_RANGE_ABOVE(0)},
        {"--batch-size", "-b", MT_OPT_INT, &j->batch, "N", "SFT: examples per batch (4)",
         MT_RANGE(1, MT_CLI_MAX_BATCH)},
        {"--max-len", NULL, MT_OPT_INT, &j->max_len, "N", "SFT: tokens per sequence (512)",
         MT_RANGE(2, MT_CLI_MAX_TOKENS)},
        {"--max-steps", NULL, MT_OPT_INT, &j->max_steps, "N", "SFT: optimiser steps",
         MT_RANGE(0, INT_MAX)},
        {"--save-every", NULL, MT_OPT_INT, &j->save_every, "STEPS", "SFT: checkpoint interval (50)",
         MT_RANGE(0, INT_MAX)},
        {"--threads", "-t", MT_OPT_INT, &o.threads, "N", "threads (0 = all cores)",
         MT_RANGE(0, MT_CLI_MAX_THREADS)},
        {"--chat-template", NULL, MT_OPT_STR, &o.chat_template, "NAME",
         "weak model's chat template: chatml | llama3 | gemma"},
        {"--quiet", NULL, MT_OPT_FLAG, &quiet, NULL, "no progress output"},
    };
    enum { N_HEAD = sizeof head / sizeof *head, N_TAIL = sizeof tail / sizeof *tail };
    mt_opt opts[N_HEAD + MT_EXPERT_FLAG_COUNT + N_TAIL];
    const int n = mt_expert_flags_table(&f, head, N_HEAD, tail, N_TAIL, opts);
    int help = 0;
    if (mt_parse_opts(opts, n, argc, argv, &help)) return mt_report_error();
    if (help) {
        mt_print_help(stdout,
                      "meteor distill --run DIR -m WEAK --questions FILE (--expert local:MODEL | "
                      "--expert-url URL --expert-model NAME) [options]",
                      "METEOR phase 1: the weak model writes a guideline per question, the expert "
                      "answers by it,\nthe answers go to DIR/data/distilled.jsonl and the weak "
                      "model is fine-tuned on them\n(DIR/adapters/phase1). Rerun the same "
                      "command to continue a stopped or killed run.",
                      opts, n);
        return 0;
    }
    o.test_fraction = test_fraction;
    if (!o.run_dir || !o.model) {
        mt_fail(MT_ERR_ARG, "--run DIR and --model WEAK are required (see --help)");
        return mt_report_error();
    }
    mt_expert_spec sp;
    if (mt_expert_flags_spec(&f, o.threads, o.seed, !dry_run_only, &sp)) return mt_report_error();
    mt_cli_reporter reporter;
    o.rep = mt_cli_reporter_init(&reporter, quiet);
    if (dry_run_only) return dry_run(&o, &sp);
    return mt_expert_verb_exit(mt_distill(&o, &sp));
}
