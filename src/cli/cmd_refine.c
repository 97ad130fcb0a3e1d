#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/expert_flags.h"
#include "cli/reporter.h"
#include "pipeline/refine.h"

static mt_status parse_on_reject(const char *s, mt_on_reject *out) {
    if (!strcmp(s, "skip"))
        *out = MT_ON_REJECT_SKIP;
    else if (!strcmp(s, "expert-answer"))
        *out = MT_ON_REJECT_EXPERT_ANSWER;
    else
        return mt_fail(MT_ERR_ARG, "--on-reject must be skip or expert-answer (got '%s')", s);
    return MT_OK;
}

int mt_cmd_refine(int argc, char **argv) {
    mt_refine_opts o;
    mt_refine_defaults(&o);
    mt_expert_flags f;
    const char *on_reject = "skip";
    int quiet = 0;
    float test_fraction = (float)o.test_fraction, replay = (float)o.replay;
    mt_train_job *j = &o.train;
    const mt_opt head[] = {
        {"--run", NULL, MT_OPT_STR, &o.run_dir, "DIR", "run directory (phase 1's, usually)"},
        {"--model", "-m", MT_OPT_STR, &o.model, "MODEL",
         "the weak model (default: the run's phase 1 model)"},
        {"--questions", "-q", MT_OPT_STR, &o.questions, "FILE",
         "questions to import first (JSON or JSONL)"},
        {"--adapter", NULL, MT_OPT_STR, &o.adapter, "DIR",
         "PEFT adapter to start from (default: the run's phase 1 adapter)"},
        {"--no-adapter", NULL, MT_OPT_FLAG, &o.no_adapter, NULL, "start from the bare model"},
    };
    const mt_opt tail[] = {
        {"--max-iterations", NULL, MT_OPT_INT, &o.max_iterations, "N",
         "judged attempts per question (3)", MT_RANGE(1, 16)},
        {"--fine-tune-interval", NULL, MT_OPT_INT, &o.fine_tune_interval, "N",
         "questions per wave; train again after this many accepted answers (10)",
         MT_RANGE(1, INT_MAX)},
        {"--replay", NULL, MT_OPT_FLOAT, &replay, "F",
         "share of each round's data drawn from phase 1 (0.25)", MT_RANGE(0, 0.95)},
        {"--on-reject", NULL, MT_OPT_STR, &on_reject, "WHAT",
         "a never accepted question: skip | expert-answer (train on phase 1's answer)"},
        {"--grounded", NULL, MT_OPT_FLAG, &o.grounded, NULL,
         "the expert judges against the question's reference answer"},
        {"--no-train", NULL, MT_OPT_FLAG, &o.no_train, NULL, "judge and revise only; no rounds"},
        {"--precise", NULL, MT_OPT_FLAG, &o.precise, NULL,
         "generate with f32 activations (slower; training always does)"},
        {"--attempt-max-tokens", NULL, MT_OPT_INT, &o.attempt_max_tokens, "N",
         "longest attempt (384)", MT_RANGE(1, MT_CLI_MAX_TOKENS)},
        {"--verdict-max-tokens", NULL, MT_OPT_INT, &o.verdict_max_tokens, "N",
         "longest verdict (800)", MT_RANGE(1, MT_CLI_MAX_TOKENS)},
        {"--slots", NULL, MT_OPT_INT, &o.slots, "N", "attempts the model writes together (8)",
         MT_RANGE(1, MT_CLI_MAX_SLOTS)},
        {"--temperature", NULL, MT_OPT_FLOAT, &o.temperature, "T",
         "attempt sampling temperature (0.7; 0 greedy)", MT_RANGE_FROM(0)},
        {"--top-p", NULL, MT_OPT_FLOAT, &o.top_p, "P", "attempt top-p (0.95)",
         MT_RANGE_OPEN_LO(0, 1)},
        {"--top-k", NULL, MT_OPT_INT, &o.top_k, "K", "attempt top-k (50)", MT_RANGE(0, INT_MAX)},
        {"--test-fraction", NULL, MT_OPT_FLOAT, &test_fraction, "F",
         "share of imported questions held out (0.2; as the run's phase 1 drew it)",
         MT_RANGE_OPEN_HI(0, 1)},
        {"--seed", NULL, MT_OPT_U64, &o.seed, "S", "seed for sampling, replay, training (42)"},
        {"--lora-rank", NULL, MT_OPT_INT, &j->rank, "R",
         "LoRA rank (8; must match the starting adapter)", MT_RANGE(1, MT_CLI_MAX_RANK)},
        {"--lora-alpha", NULL, MT_OPT_FLOAT, &j->alpha, "A", "LoRA alpha (16)", MT_RANGE_ABOVE(0)},
        {"--epochs", NULL, MT_OPT_INT, &j->epochs, "N", "passes over each round's data (1)",
         MT_RANGE(1, MT_CLI_MAX_EPOCHS)},
        {"--lr", NULL, MT_OPT_FLOAT, &j->lr, "LR", "peak learning rate (2e-4)", MT_RANGE_ABOVE(0)},
        {"--batch-size", "-b", MT_OPT_INT, &j->batch, "N", "examples per batch (4)",
         MT_RANGE(1, MT_CLI_MAX_BATCH)},
        {"--max-len", NULL, MT_OPT_INT, &j->max_len, "N", "tokens per training sequence (512)",
         MT_RANGE(2, MT_CLI_MAX_TOKENS)},
        {"--save-every", NULL, MT_OPT_INT, &j->save_every, "STEPS", "checkpoint interval (50)",
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
                      "meteor refine --run DIR (--expert local:MODEL | --expert-url URL "
                      "--expert-model NAME) [options]",
                      "METEOR phase 2: the model (with phase 1's adapter) answers each training "
                      "question with its\nreasoning, the expert judges it (verdict, feedback, "
                      "hints), the model revises; only accepted\nanswers are trained on, in "
                      "rounds, so later questions meet an improved model. Writes\n"
                      "DIR/data/refined.jsonl, DIR/data/trajectories.jsonl and "
                      "DIR/adapters/phase2. Rerun the same\ncommand to continue a stopped or "
                      "killed run.",
                      opts, n);
        return 0;
    }
    o.test_fraction = test_fraction;
    o.replay = replay;
    if (!o.run_dir) {
        mt_fail(MT_ERR_ARG, "--run DIR is required (see --help)");
        return mt_report_error();
    }
    mt_expert_spec sp;
    if (parse_on_reject(on_reject, &o.on_reject) ||
        mt_expert_flags_spec(&f, o.threads, o.seed, 1, &sp))
        return mt_report_error();
    mt_cli_reporter reporter;
    o.rep = mt_cli_reporter_init(&reporter, quiet);
    return mt_expert_verb_exit(mt_refine(&o, &sp));
}
