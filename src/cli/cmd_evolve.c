#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/reporter.h"
#include "pipeline/evolve.h"

static mt_status parse_strategy(const char *s, mt_evolve_strategy *out) {
    if (!strcmp(s, "beam"))
        *out = MT_EVOLVE_BEAM;
    else if (!strcmp(s, "best-of-n"))
        *out = MT_EVOLVE_BEST_OF_N;
    else
        return mt_fail(MT_ERR_ARG, "--strategy must be beam or best-of-n (got '%s')", s);
    return MT_OK;
}

int mt_cmd_evolve(int argc, char **argv) {
    mt_evolve_opts o;
    mt_evolve_defaults(&o);
    const char *strategy = "beam";
    int quiet = 0;
    float test_fraction = (float)o.test_fraction;
    mt_train_job *j = &o.train;
    const mt_opt opts[] = {
        {"--run", NULL, MT_OPT_STR, &o.run_dir, "DIR", "run directory (phase 2's, usually)"},
        {"--model", "-m", MT_OPT_STR, &o.model, "MODEL",
         "the weak model (default: the run's phase 2 model)"},
        {"--questions", "-q", MT_OPT_STR, &o.questions, "FILE",
         "questions to import first (JSON or JSONL)"},
        {"--adapter", NULL, MT_OPT_STR, &o.adapter, "DIR",
         "PEFT adapter to start from (default: the run's phase 2 adapter)"},
        {"--from-base", NULL, MT_OPT_FLAG, &o.from_base, NULL,
         "start a fresh adapter on the bare model"},
        {"--rounds", NULL, MT_OPT_INT, &o.rounds, "N", "rounds of generate, pair, train (2)",
         MT_RANGE(1, 64)},
        {"--strategy", NULL, MT_OPT_STR, &strategy, "WHAT",
         "the expensive decoding: beam | best-of-n (beam)"},
        {"--beams", NULL, MT_OPT_INT, &o.beams, "N", "beam width (4)", MT_RANGE(1, 64)},
        {"--n", NULL, MT_OPT_INT, &o.samples, "N", "samples per question for best-of-n (8)",
         MT_RANGE(1, 64)},
        {"--length-penalty", NULL, MT_OPT_FLOAT, &o.length_penalty, "F",
         "beam score = sum log-prob / length^F (1; > 0 favours longer answers)",
         MT_RANGE_FROM(-HUGE_VAL)},
        {"--self-check", NULL, MT_OPT_FLAG, &o.self_check, NULL,
         "keep a pair only when the model prefers the expensive answer in both orders"},
        {"--loss", NULL, MT_OPT_STR, &j->loss, "KIND", "margin | dpo (margin)"},
        {"--margin", NULL, MT_OPT_FLOAT, &j->margin, "M",
         "margin of the ranking loss on mean token NLL (1)", MT_RANGE_FROM(0)},
        {"--beta", NULL, MT_OPT_FLOAT, &j->beta, "B", "DPO beta (0.1)", MT_RANGE_ABOVE(0)},
        {"--sft-weight", NULL, MT_OPT_FLOAT, &j->sft_weight, "W",
         "weight of an SFT term on the chosen answer (0)", MT_RANGE_FROM(0)},
        {"--max-tokens", NULL, MT_OPT_INT, &o.max_tokens, "N", "longest answer (256)",
         MT_RANGE(1, MT_CLI_MAX_TOKENS)},
        {"--slots", NULL, MT_OPT_INT, &o.slots, "N",
         "greedy answers or samples decoded together (8)", MT_RANGE(1, MT_CLI_MAX_SLOTS)},
        {"--beam-questions", NULL, MT_OPT_INT, &o.beam_questions, "N",
         "questions whose beams are decoded together (4)", MT_RANGE(1, MT_CLI_MAX_SLOTS)},
        {"--temperature", NULL, MT_OPT_FLOAT, &o.temperature, "T",
         "best-of-n sampling temperature (0.8)", MT_RANGE_ABOVE(0)},
        {"--top-p", NULL, MT_OPT_FLOAT, &o.top_p, "P", "best-of-n top-p (0.95)",
         MT_RANGE_OPEN_LO(0, 1)},
        {"--top-k", NULL, MT_OPT_INT, &o.top_k, "K", "best-of-n top-k (50)", MT_RANGE(0, INT_MAX)},
        {"--precise", NULL, MT_OPT_FLAG, &o.precise, NULL,
         "generate with f32 activations (slower; training always does)"},
        {"--test-fraction", NULL, MT_OPT_FLOAT, &test_fraction, "F",
         "share of imported questions held out (0.2; as the run's phase 1 drew it)",
         MT_RANGE_OPEN_HI(0, 1)},
        {"--seed", NULL, MT_OPT_U64, &o.seed, "S", "seed for sampling and the split (42)"},
        {"--lora-rank", NULL, MT_OPT_INT, &j->rank, "R",
         "LoRA rank (8; must match the starting adapter)", MT_RANGE(1, MT_CLI_MAX_RANK)},
        {"--lora-alpha", NULL, MT_OPT_FLOAT, &j->alpha, "A", "LoRA alpha (16)", MT_RANGE_ABOVE(0)},
        {"--epochs", NULL, MT_OPT_INT, &j->epochs, "N", "passes over each round's pairs (1)",
         MT_RANGE(1, MT_CLI_MAX_EPOCHS)},
        {"--lr", NULL, MT_OPT_FLOAT, &j->lr, "LR", "peak learning rate (2e-4)", MT_RANGE_ABOVE(0)},
        {"--batch-size", "-b", MT_OPT_INT, &j->batch, "N", "pairs per batch (4)",
         MT_RANGE(1, MT_CLI_MAX_BATCH)},
        {"--max-len", NULL, MT_OPT_INT, &j->max_len, "N", "tokens per training sequence (512)",
         MT_RANGE(2, MT_CLI_MAX_TOKENS)},
        {"--save-every", NULL, MT_OPT_INT, &j->save_every, "STEPS", "checkpoint interval (50)",
         MT_RANGE(0, INT_MAX)},
        {"--train-seed", NULL, MT_OPT_U64, &j->seed, "S", "training seed; round r uses S + r (42)"},
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
        mt_print_help(stdout, "meteor evolve --run DIR [options]",
                      "METEOR phase 3: with no expert, the model answers each training question "
                      "greedily and\nwith beam search (or the best of n samples), prefers the "
                      "expensive answer, and is\ntrained on those pairs with a preference loss, "
                      "round after round. Writes\nDIR/data/pairs-round-N.jsonl, "
                      "DIR/data/evolution.jsonl, DIR/adapters/phase3/round-N and\n"
                      "DIR/adapters/phase3. Rerun the same command to continue a stopped or "
                      "killed run.",
                      opts, n);
        return 0;
    }
    o.test_fraction = test_fraction;
    if (!o.run_dir) {
        mt_fail(MT_ERR_ARG, "--run DIR is required (see --help)");
        return mt_report_error();
    }
    if (parse_strategy(strategy, &o.strategy)) return mt_report_error();
    mt_cli_reporter reporter;
    o.rep = mt_cli_reporter_init(&reporter, quiet);
    return mt_evolve(&o) ? mt_report_error() : 0;
}
