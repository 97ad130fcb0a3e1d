/* Training examples from JSONL: records are read, rendered with the model's chat template,
 * tokenised, masked so that only the answer is trained, truncated to a length limit (with
 * counts, never silently), and grouped into seeded, resumable batches.
 *
 * Records, one JSON object per line (blank lines are allowed):
 *   SFT:        {"question": Q, "answer": A}
 *   preference: {"question": Q, "chosen": A, "rejected": B}
 * Instead of "question", METEOR's question fields may be given: "question_title" (or
 * "title") and/or "question_content"; the user turn is then "title\n\ncontent" verbatim,
 * or the one of them that is not blank, or just the content when it already opens with
 * the title (the Python FAQ writes the title again as the content's first line). An
 * optional "system" string becomes the system turn. Other keys are ignored. The first
 * record fixes the file's kind; every record must be of that kind. */
#ifndef MT_TRAIN_DATA_H
#define MT_TRAIN_DATA_H

#include <stdint.h>

#include "core/status.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

typedef enum { MT_DATA_SFT = 1, MT_DATA_PREF = 2 } mt_data_kind;

/* One tokenised conversation. Tokens [0, n_prompt) are the prompt (system and user turns
 * up to the opened assistant turn), [n_prompt, n) the answer and its end-of-turn token
 * (or EOS without a chat template). Nothing follows the end-of-turn token. */
typedef struct {
    int32_t *tokens;
    int n;
    int n_prompt;  /* index of the first answer token, < n */
    int truncated; /* the answer was cut to the length limit (its end-of-turn token too) */
    int line;      /* 1-based line of the record in its file */
} mt_sft_example;

/* Both sides share the prompt. */
typedef struct {
    mt_sft_example chosen, rejected;
} mt_pref_example;

typedef struct {
    int max_len; /* tokens per sequence; 0: no limit */
} mt_data_opts;

typedef struct {
    mt_data_kind kind;
    mt_sft_example *sft;   /* kind == MT_DATA_SFT: n of them */
    mt_pref_example *pref; /* kind == MT_DATA_PREF: n of them */
    int n;                 /* examples kept */
    int n_records;         /* records read: n + n_dropped */
    int n_truncated;       /* kept records with an answer cut (a pair counts once) */
    int n_dropped;         /* records whose prompt alone leaves no room for an answer token */
} mt_dataset;

/* Reads a JSONL file and tokenises every record with tok in chat family fam (MT_CHAT_NONE:
 * "question\n\nanswer" + EOS, with BOS first when the tokenizer adds one). Any bad record
 * fails the whole load with "path:line: ..." naming the field; a file without records
 * fails too. A dataset with every record dropped is not an error: check d->n. */
mt_status mt_dataset_load(const char *path, const mt_tokenizer *tok, mt_chat_family fam,
                          const mt_data_opts *o, mt_dataset *out);
void mt_dataset_free(mt_dataset *d);

/* The user turn of a question given as title and content (the records' question_title and
 * question_content): joined by a blank line; a blank part is left out, and a content that
 * already opens with the title is used alone so the title is not said twice. */
mt_status mt_data_user_turn(const char *title, const char *content, char **out);

/* Hash of every example's tokens and boundaries: a checkpoint stores it so that resuming
 * on different data (or a different tokenizer, template or length limit) is caught. */
uint64_t mt_dataset_fingerprint(const mt_dataset *d);

/* Labels for the loss, e->n of them: row i predicts token i + 1, so targets[i] =
 * tokens[i + 1] when that token is trained, else MT_IGNORE_INDEX (train/loss.h); the last
 * row is always ignored. Answer tokens are trained; with train_prompt the prompt's too. */
void mt_example_targets(const mt_sft_example *e, int train_prompt, int32_t *targets);
/* How many entries of those targets are trained. */
int mt_example_n_trained(const mt_sft_example *e, int train_prompt);

/* ---- batching ------------------------------------------------------------------------ */

typedef struct {
    int batch_size;       /* examples per batch; 0: no count limit (needs max_batch_tokens) */
    int max_batch_tokens; /* token budget per batch (a pair counts both sides); 0: none */
    int shuffle;          /* 0 keeps file order */
    uint64_t seed;
} mt_batch_opts;

/* The batches of one epoch: batch b is order[start[b]] .. order[start[b + 1] - 1]. The
 * plan depends only on (dataset, opts, epoch), so a run resumes mid-epoch from an
 * mt_data_pos alone by planning that epoch again. */
typedef struct {
    int epoch;
    int n_batches;
    int *order; /* dataset indices in visiting order, every example exactly once */
    int *start; /* n_batches + 1 offsets into order */
} mt_batches;

/* An example longer than max_batch_tokens gets a batch of its own; none is left out. */
mt_status mt_batch_plan(const mt_dataset *d, const mt_batch_opts *o, int epoch, mt_batches *out);
void mt_batches_free(mt_batches *b);
/* Indices of batch i (n of them), pointing into b->order. */
const int *mt_batch_indices(const mt_batches *b, int i, int *n);

/* Where a run stands in its data: the next batch to train. This pair is what a checkpoint
 * stores. */
typedef struct {
    int epoch;
    int batch;
} mt_data_pos;

/* Moves one batch on; after an epoch's last batch, to batch 0 of the next epoch. */
void mt_data_pos_advance(mt_data_pos *pos, const mt_batches *b);

#endif
