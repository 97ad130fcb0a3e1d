/* A progress line on stderr for long work: count, rate, ETA and a caller-supplied
 * status (e.g. the loss). Redrawn in place on a terminal; on a pipe or file, printed
 * as plain lines every ~10% so logs stay readable. */
#ifndef MT_CORE_PROGRESS_H
#define MT_CORE_PROGRESS_H

#include <stdint.h>

typedef struct {
    const char *label;
    int64_t total;
    int64_t done;
    double t0;
    double last_draw;
    int64_t last_logged_decile;
    int tty;
    int quiet;
    int64_t start_done;
} mt_progress;

void mt_progress_start(mt_progress *p, const char *label, int64_t total, int64_t already_done);
/* Sets the done count and redraws; status is free text ("loss 1.234, 512 tok/s"). */
void mt_progress_update(mt_progress *p, int64_t done, const char *status);
void mt_progress_finish(mt_progress *p, const char *status);
double mt_now_seconds(void);

#endif
