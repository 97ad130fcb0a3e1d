/* `meteor status`'s two forms of a run's summary: aligned text for people, one JSON object
 * for scripts and tests. */
#ifndef MT_CLI_STATUS_PRINT_H
#define MT_CLI_STATUS_PRINT_H

#include <stdio.h>

#include "core/status.h"
#include "store/store.h"

/* Questions per split, items per phase/stage, the first failed items with their last error
 * cut to one line, expert usage per phase and in total, the latest metrics. */
mt_status mt_status_print_text(FILE *f, const mt_store_status *st);

/* The same data, errors whole: {"path", "questions": {"total", "splits": {name: count}}
 * (a question without a split counts as "unsplit"), "items": [{"phase", "stage", "done",
 * "failed"}], "failures": {"total", "first": [{"phase", "stage", "qid", "attempts",
 * "error"}]}, "usage": {"phases": [{"phase", "requests", "attempts", "failed_attempts",
 * "prompt_tokens", "completion_tokens", "cost"}], "total": {the same without "phase"}},
 * "metrics": [{"phase", "name", "value"}]}; a NaN (or infinite) value and a failure
 * without an error are null. One line, then a newline. */
mt_status mt_status_print_json(FILE *f, const mt_store_status *st);

#endif
