/* Flags shared by `generate` and `chat`. */
#ifndef MT_CLI_GEN_OPTS_H
#define MT_CLI_GEN_OPTS_H

#include "cli/args.h"
#include "infer/generate.h"
#include "infer/session.h"

typedef struct {
    const char *model;
    const char *chat_template;
    const char *system;
    const char *adapter;
    int threads;
    int max_tokens;
    int n_ctx;
    int greedy;
    int stats;
    int precise;
    mt_sampler_params sampling;
    mt_str_list stops;
    const char *json_schema; /* file of a JSON Schema the reply must follow */
    int json_object;         /* the reply must be a JSON object */
} mt_gen_opts;

#define MT_GEN_OPT_COUNT 21

void mt_gen_opts_defaults(mt_gen_opts *o);
/* Fills table[MT_GEN_OPT_COUNT] with the shared flags bound to o. */
void mt_gen_opts_table(mt_gen_opts *o, mt_opt *table);
/* Builds generation parameters (validated) from the parsed flags. */
mt_status mt_gen_opts_params(const mt_gen_opts *o, mt_gen_params *p);
/* The JSON constraint --json-schema or --json-object asks for, or NULL when neither. */
mt_status mt_gen_opts_constraint(const mt_gen_opts *o, mt_session *s, mt_json_constraint **out);

#endif
