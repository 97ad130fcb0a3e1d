#include "cli/reporter.h"

#include <stdio.h>

static void on_task(void *user, mt_task_event ev, const char *label, int64_t done, int64_t total,
                    const char *status) {
    mt_cli_reporter *r = user;
    switch (ev) {
    case MT_TASK_START:
        mt_progress_start(&r->bar, label, total, done);
        r->bar_open = 1;
        break;
    case MT_TASK_UPDATE:
        if (r->bar_open) mt_progress_update(&r->bar, done, status);
        break;
    case MT_TASK_FINISH:
        if (r->bar_open) mt_progress_finish(&r->bar, status);
        r->bar_open = 0;
        break;
    }
}

static void on_note(void *user, const char *text) {
    mt_cli_reporter *r = user;
    /* A note in the middle of a bar drawn in place starts on a line of its own. */
    if (r->bar_open && r->bar.tty) fputc('\n', stderr);
    fprintf(stderr, "%s\n", text);
}

const mt_reporter *mt_cli_reporter_init(mt_cli_reporter *r, int quiet) {
    *r = (mt_cli_reporter){.rep = {.task = on_task, .note = on_note, .user = r}};
    return quiet ? NULL : &r->rep;
}
