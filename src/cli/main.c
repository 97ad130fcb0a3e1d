/* meteor: turn a general LLM into a domain expert (METEOR). Dispatches to one verb. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

#define METEOR_VERSION "0.1.0"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *about;
} verb;

static const verb verbs[] = {
    {"info", mt_cmd_info, "show a model's architecture, sizes, tensor types and tokenizer"},
    {"generate", mt_cmd_generate, "generate text from a prompt (streams to stdout)"},
    {"chat", mt_cmd_chat, "interactive chat with a model"},
    {"train", mt_cmd_train, "fine-tune a model: LoRA or full, SFT / margin / DPO losses"},
    {"export", mt_cmd_export, "write a LoRA adapter (PEFT / GGUF-LoRA) or a merged GGUF model"},
    {"distill", mt_cmd_distill,
     "METEOR phase 1: guidelines, expert answers, SFT of the weak model"},
    {"refine", mt_cmd_refine,
     "METEOR phase 2: answers judged by the expert, revised, accepted ones trained on"},
    {"evolve", mt_cmd_evolve,
     "METEOR phase 3: greedy vs beam-search answers as preference pairs, trained on"},
    {"eval", mt_cmd_eval, "evaluate a run: test answers of each model, reference NLL with CIs"},
    {"status", mt_cmd_status, "summarise a run: progress, failures, tokens and cost"},
    {"tokenize", mt_cmd_tokenize, "show the token ids of a text, or decode ids"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: meteor <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++)
        fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].about);
    fprintf(f, "\n'meteor <command> --help' describes a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("meteor %s\n", METEOR_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++)
        if (!strcmp(argv[1], verbs[i].name)) return verbs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "meteor: error: unknown command '%s' (see meteor --help)\n", argv[1]);
    return 2;
}
