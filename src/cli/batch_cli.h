/* `meteor generate --batch FILE.jsonl`: one prompt per line in, one JSON result per line
 * out (in input order), generated with continuous batching. */
#ifndef MT_CLI_BATCH_CLI_H
#define MT_CLI_BATCH_CLI_H

#include "cli/gen_opts.h"
#include "infer/session.h"

/* Lines: {"prompt": "..."} or {"messages": [{"role": ..., "content": ...}, ...]}, with an
 * optional "id" echoed back and an optional "json_schema" (a JSON Schema object) the
 * line's reply must follow, in place of p's constraint. chat: wrap plain prompts in the
 * chat template. A progress bar (finished prompts, tokens/s, ETA) goes to stderr unless
 * quiet. */
mt_status mt_cli_generate_batch(mt_session *s, const mt_gen_params *p, const char *path, int chat,
                                const char *system, int n_slots, int stats, int quiet);

#endif
