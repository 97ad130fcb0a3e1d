/* The CLI's reporter (core/report.h): tasks as a progress bar on stderr, notes as stderr
 * lines, metrics as notes. --quiet gives NULL, which library code treats as silence. */
#ifndef MT_CLI_REPORTER_H
#define MT_CLI_REPORTER_H

#include "core/progress.h"
#include "core/report.h"

typedef struct {
    mt_reporter rep;
    mt_progress bar; /* the task being drawn */
    int bar_open;
} mt_cli_reporter;

/* The reporter to hand to library calls: &r->rep, or NULL when quiet. */
const mt_reporter *mt_cli_reporter_init(mt_cli_reporter *r, int quiet);

#endif
