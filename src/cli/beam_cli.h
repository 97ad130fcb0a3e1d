/* `meteor generate --beams N`: beam search instead of sampling; prints the best reply, or
 * with --json the n-best list with scores. */
#ifndef MT_CLI_BEAM_CLI_H
#define MT_CLI_BEAM_CLI_H

#include "cli/args.h"
#include "cli/gen_opts.h"
#include "infer/session.h"

typedef struct {
    int beams; /* 0: no beam search */
    float length_penalty;
    int early_stopping;
    int n_best;
} mt_beam_opts;

#define MT_BEAM_OPT_COUNT 4

void mt_beam_opts_defaults(mt_beam_opts *b);
/* Fills table[MT_BEAM_OPT_COUNT] with --beams, --length-penalty, --early-stopping, --n-best. */
void mt_beam_opts_table(mt_beam_opts *b, mt_opt *table);

/* Beam search over prompt ids with generate's limits (--max-tokens, --ctx, --stop) and the
 * given stop tokens besides EOS. Plain output: the best text, or with n_best > 1 each
 * hypothesis under a "[rank] score" line; json: one object whose text/tokens are the best
 * hypothesis' and whose "n_best" lists every returned one. */
mt_status mt_cli_beam_generate(const mt_session *s, const mt_gen_opts *o, const mt_beam_opts *b,
                               const mt_json_constraint *constraint, const int32_t *prompt, int n,
                               const int32_t *stop_tokens, int n_stop_tokens, int json);

/* The same from messages (rendered with the chat template, whose end-of-turn tokens then
 * stop a hypothesis) or raw text, as generate tokenizes them. */
mt_status mt_cli_beam_reply(const mt_session *s, const mt_gen_opts *o, const mt_beam_opts *b,
                            const mt_json_constraint *constraint, const mt_chat_msg *msgs, int n,
                            const char *raw, int json);

#endif
