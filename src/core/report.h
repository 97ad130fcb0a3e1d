/* How library code tells its caller what it is doing: the progress of long work (tasks),
 * one-line notes and metrics. Library code never prints; the CLI turns these into a
 * progress bar and stderr lines (cli/reporter.c), tests collect them, and a NULL reporter
 * (or a NULL callback) discards them, which is what --quiet gives. */
#ifndef MT_CORE_REPORT_H
#define MT_CORE_REPORT_H

#include <stdint.h>

typedef enum { MT_TASK_START = 0, MT_TASK_UPDATE, MT_TASK_FINISH } mt_task_event;

typedef struct {
    /* A task's progress: done of total items (done starts at what earlier runs did);
     * status is free text ("loss 1.234, 512 tok/s") or NULL. */
    void (*task)(void *user, mt_task_event ev, const char *label, int64_t done, int64_t total,
                 const char *status);
    /* One line for a person: what was read, written, resumed, measured. */
    void (*note)(void *user, const char *text);
    /* A figure as it is recorded in the run store (phase and name from pipeline/names.h). */
    void (*metric)(void *user, const char *phase, const char *name, double value);
    void *user;
} mt_reporter;

void mt_report_note(const mt_reporter *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mt_report_metric(const mt_reporter *r, const char *phase, const char *name, double value);

/* One task as library code drives it. */
typedef struct {
    const mt_reporter *rep;
    const char *label;
    int64_t done, total;
} mt_task;

void mt_task_start(mt_task *t, const mt_reporter *r, const char *label, int64_t total,
                   int64_t already_done);
void mt_task_update(mt_task *t, int64_t done, const char *status);
void mt_task_finish(mt_task *t, const char *status);

#endif
