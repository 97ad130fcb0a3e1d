#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/reporter.h"
#include "pipeline/distill.h"

typedef struct {
    const char *expert, *url, *model, *key_env, *json_mode;
    int dry_run, quiet;
    int concurrency, retries, max_requests, expert_slots;
    float timeout, connect_timeout, backoff_base, backoff_max, cost_prompt, cost_completion,
        max_cost, test_fraction;
} expert_flags;

static mt_status parse_json_mode(const char *s, mt_json_mode *out) {
    if (!strcmp(s, "schema"))
        *out = MT_JSON_MODE_SCHEMA;
    else if (!strcmp(s, "object"))
        *out = MT_JSON_MODE_OBJECT;
    else if (!strcmp(s, "none"))
        *out = MT_JSON_MODE_NONE;
    else
        return mt_fail(MT_ERR_ARG, "--json-mode must be schema, object or none (got '%s')", s);
    return MT_OK;
}

/* --expert local:MODEL or --expert-url/--expert-model into a spec. */
static mt_status build_spec(const expert_flags *f, const mt_distill_opts *o, mt_expert_spec *sp) {
    memset(sp, 0, sizeof *sp);
    sp->remote = mt_remote_defaults();
    if (f->expert) {
        if (strncmp(f->expert, "local:", 6) || !f->expert[6])
            return mt_fail(MT_ERR_ARG,
                           "--expert takes local:MODEL (for a remote expert use --expert-url and "
                           "--expert-model)");
        if (f->url) return mt_fail(MT_ERR_ARG, "give either --expert local:MODEL or --expert-url");
        sp->local_model = f->expert + 6;
        sp->local = (mt_local_opts){.chat_template = NULL,
                                    .threads = o->threads,
                                    .slots = f->expert_slots,
                                    .seed = o->seed};
        return MT_OK;
    }
    if (!f->url && !f->dry_run)
        return mt_fail(MT_ERR_ARG, "no expert: pass --expert local:MODEL, or --expert-url URL and "
                                   "--expert-model NAME");
    mt_remote_opts *r = &sp->remote;
    r->url = f->url;
    r->model = f->model;
    if (f->concurrency) r->concurrency = f->concurrency;
    if (f->retries >= 0) r->max_retries = f->retries;
    if (f->timeout > 0) r->timeout_s = f->timeout;
    if (f->connect_timeout > 0) r->connect_timeout_s = f->connect_timeout;
    if (f->backoff_base > 0) r->backoff_base_s = f->backoff_base;
    if (f->backoff_max > 0) r->backoff_max_s = f->backoff_max;
    r->cost_per_1k_prompt = f->cost_prompt;
    r->cost_per_1k_completion = f->cost_completion;
    r->max_cost = f->max_cost;
    r->max_requests = f->max_requests;
    r->seed = o->seed;
    sp->key_env = f->key_env;
    if (!f->key_env && getenv("OPENAI_API_KEY")) sp->key_env = "OPENAI_API_KEY";
    /* A missing key stops the run before the weak model writes any guideline. */
    const char *key;
    mt_status st = f->dry_run ? MT_OK : mt_expert_api_key(sp, &key);
    return st ? st : parse_json_mode(f->json_mode, &r->json_mode);
}

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
    expert_flags f = {.json_mode = "schema", .retries = -1, .expert_slots = 8};
    float test_fraction = (float)o.test_fraction;
    mt_train_job *j = &o.train;
    const mt_opt opts[] = {
        {"--run", NULL, MT_OPT_STR, &o.run_dir, "DIR", "run directory (created when missing)"},
        {"--model", "-m", MT_OPT_STR, &o.model, "MODEL", "the weak model (GGUF or HF folder)"},
        {"--questions", "-q", MT_OPT_STR, &o.questions, "FILE",
         "questions to import (JSON or JSONL; METEOR or generic format)"},
        {"--expert", NULL, MT_OPT_STR, &f.expert, "local:MODEL",
         "answer with a local model in this process"},
        {"--expert-url", NULL, MT_OPT_STR, &f.url, "URL",
         "OpenAI-compatible endpoint, e.g. http://host:8080/v1"},
        {"--expert-model", NULL, MT_OPT_STR, &f.model, "NAME", "model name sent to the endpoint"},
        {"--api-key-env", NULL, MT_OPT_STR, &f.key_env, "VAR",
         "environment variable with the API key (OPENAI_API_KEY when set)"},
        {"--concurrency", NULL, MT_OPT_INT, &f.concurrency, "N", "expert requests in flight (4)",
         MT_RANGE(1, 256)},
        {"--timeout", NULL, MT_OPT_FLOAT, &f.timeout, "S", "seconds per request (120)",
         MT_RANGE_OPEN_LO(0, MT_CLI_MAX_SECONDS)},
        {"--connect-timeout", NULL, MT_OPT_FLOAT, &f.connect_timeout, "S",
         "seconds to connect (10)", MT_RANGE_OPEN_LO(0, MT_CLI_MAX_SECONDS)},
        {"--max-retries", NULL, MT_OPT_INT, &f.retries, "N", "retries per request (6)",
         MT_RANGE(0, 100)},
        {"--backoff-base", NULL, MT_OPT_FLOAT, &f.backoff_base, "S",
         "first retry delay, doubled each time, with jitter (1)", MT_RANGE(0, MT_CLI_MAX_SECONDS)},
        {"--backoff-max", NULL, MT_OPT_FLOAT, &f.backoff_max, "S", "longest retry delay (60)",
         MT_RANGE(0, MT_CLI_MAX_SECONDS)},
        {"--json-mode", NULL, MT_OPT_STR, &f.json_mode, "MODE",
         "structured replies: schema (OpenAI) | object (llama.cpp) | none"},
        {"--cost-per-1k-prompt", NULL, MT_OPT_FLOAT, &f.cost_prompt, "X",
         "price per 1000 prompt tokens", MT_RANGE_FROM(0)},
        {"--cost-per-1k-completion", NULL, MT_OPT_FLOAT, &f.cost_completion, "X",
         "price per 1000 completion tokens", MT_RANGE_FROM(0)},
        {"--max-cost", NULL, MT_OPT_FLOAT, &f.max_cost, "X",
         "stop cleanly once the run has spent this much (resumable)", MT_RANGE_FROM(0)},
        {"--max-requests", NULL, MT_OPT_INT, &f.max_requests, "N",
         "stop cleanly after this many HTTP requests in the run (resumable)", MT_RANGE(0, INT_MAX)},
        {"--expert-slots", NULL, MT_OPT_INT, &f.expert_slots, "N",
         "sequences the local expert decodes together (8)", MT_RANGE(1, 256)},
        {"--dry-run", NULL, MT_OPT_FLAG, &f.dry_run, NULL,
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
        {"--quiet", NULL, MT_OPT_FLAG, &f.quiet, NULL, "no progress output"},
    };
    const int n = sizeof opts / sizeof *opts;
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
    if (build_spec(&f, &o, &sp)) return mt_report_error();
    mt_cli_reporter reporter;
    o.rep = mt_cli_reporter_init(&reporter, f.quiet);
    if (f.dry_run) return dry_run(&o, &sp);
    mt_status st = mt_distill(&o, &sp);
    if (st == MT_ERR_BUDGET) {
        fprintf(stderr, "meteor: stopped: %s\n", mt_last_error());
        return 3;
    }
    if (st) return mt_report_error();
    return 0;
}
