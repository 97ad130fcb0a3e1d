/* A small declarative flag parser shared by every verb: unknown flags and bad values are
 * errors with one clear message, and --help text is generated from the same table. */
#ifndef MT_CLI_ARGS_H
#define MT_CLI_ARGS_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>

#include "core/range.h"
#include "core/status.h"

typedef enum {
    MT_OPT_FLAG,
    MT_OPT_STR,
    MT_OPT_INT,
    MT_OPT_FLOAT,
    MT_OPT_U64,
    MT_OPT_STR_LIST
} mt_opt_kind;

#define MT_OPT_LIST_MAX 16

/* Upper bounds of the options' ranges. Token counts and context sizes: far past any
 * model's context, yet a prompt's length plus one of them still fits an int. Seconds: a
 * timeout in milliseconds still fits a long. */
#define MT_CLI_MAX_TOKENS (1 << 24)
#define MT_CLI_MAX_THREADS 4096
#define MT_CLI_MAX_SLOTS 1024
#define MT_CLI_MAX_BEAMS 1024
#define MT_CLI_MAX_RANK 65536
#define MT_CLI_MAX_BATCH 65536
#define MT_CLI_MAX_EPOCHS 1000000
#define MT_CLI_MAX_SECONDS 1e6

typedef struct {
    const char *items[MT_OPT_LIST_MAX];
    int n;
} mt_str_list;

typedef struct {
    const char *name;  /* "--top-p" */
    const char *alias; /* "-p" or NULL */
    mt_opt_kind kind;
    void *dst; /* int* for FLAG/INT, const char** for STR, float*, uint64_t*, mt_str_list* */
    const char *metavar;
    const char *help;
    /* INT and FLOAT: the values the option takes; a value outside is refused naming the
     * option, the value and this range. Every INT and FLOAT option has one. */
    mt_range range;
} mt_opt;

/* Option tables are written positionally and give .range only for the options that take
 * a number; the others leave it out (zero), which -Wextra would report. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* Parses argv[1..]; *help is set when -h/--help is seen. Positional arguments are not
 * accepted (every input has a flag). `--config FILE.yaml` applies a flat YAML mapping of
 * settings at its place in argv: each key is a flag without its dashes (`lora_rank: 8`
 * or `lora-rank: 8`), flags take true/false, lists join with commas; flags after it win. */
mt_status mt_parse_opts(const mt_opt *opts, int n_opts, int argc, char **argv, int *help);
void mt_print_help(FILE *f, const char *usage, const char *about, const mt_opt *opts, int n_opts);
/* Prints "meteor: error: <last error>" and returns the exit code for errors (1). */
int mt_report_error(void);

#endif
