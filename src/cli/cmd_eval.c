#include <stdio.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/reporter.h"
#include "pipeline/eval.h"

int mt_cmd_eval(int argc, char **argv) {
    mt_eval_opts o;
    mt_eval_defaults(&o);
    int quiet = 0;
    const mt_opt opts[] = {
        {"--run", NULL, MT_OPT_STR, &o.run_dir, "DIR", "run directory"},
        {"--models", NULL, MT_OPT_STR, &o.models, "LIST",
         "comma-separated: base, phase1, phase2, phase3, adapter:PATH (default: base and every "
         "phase adapter the run has)"},
        {"--model", "-m", MT_OPT_STR, &o.model, "MODEL",
         "the weak model (default: the run's phase 3, 2 or 1 model)"},
        {"--max-tokens", NULL, MT_OPT_INT, &o.max_tokens, "N", "longest answer (256)",
         MT_RANGE(1, MT_CLI_MAX_TOKENS)},
        {"--slots", NULL, MT_OPT_INT, &o.slots, "N", "answers decoded together (8)",
         MT_RANGE(1, MT_CLI_MAX_SLOTS)},
        {"--bootstrap", NULL, MT_OPT_INT, &o.bootstrap, "N",
         "bootstrap resamples for the confidence intervals (1000)", MT_RANGE(1, 1000000)},
        {"--seed", NULL, MT_OPT_U64, &o.seed, "S", "seed of the bootstrap resampling (42)"},
        {"--precise", NULL, MT_OPT_FLAG, &o.precise, NULL,
         "generate and score with f32 activations (slower)"},
        {"--threads", "-t", MT_OPT_INT, &o.threads, "N", "threads (0 = all cores)",
         MT_RANGE(0, MT_CLI_MAX_THREADS)},
        {"--chat-template", NULL, MT_OPT_STR, &o.chat_template, "NAME",
         "weak model's chat template: chatml | llama3 | gemma"},
        {"--quiet", NULL, MT_OPT_FLAG, &quiet, NULL, "no progress output"},
    };
    const int n = sizeof opts / sizeof *opts;
    int help = 0;
    if (mt_parse_opts(opts, n, argc, argv, &help)) return mt_report_error();
    if (help) {
        mt_print_help(stdout, "meteor eval --run DIR [options]",
                      "Evaluates a run: every listed model answers the held-out test questions "
                      "greedily, and\nthe mean token NLL of each reference answer is measured "
                      "under each model, with\nbootstrap 95 % confidence intervals and each "
                      "model's difference from the base. Writes\nDIR/data/eval-answers.jsonl and "
                      "DIR/eval/summary.json. A rerun computes only what is\nmissing.",
                      opts, n);
        return 0;
    }
    if (!o.run_dir) {
        mt_fail(MT_ERR_ARG, "--run DIR is required (see --help)");
        return mt_report_error();
    }
    mt_cli_reporter reporter;
    o.rep = mt_cli_reporter_init(&reporter, quiet);
    return mt_eval(&o) ? mt_report_error() : 0;
}
