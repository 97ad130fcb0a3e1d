#include "core/report.h"

#include <stdarg.h>
#include <stdio.h>

void mt_report_note(const mt_reporter *r, const char *fmt, ...) {
    if (!r || !r->note) return;
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    r->note(r->user, text);
}

void mt_report_metric(const mt_reporter *r, const char *phase, const char *name, double value) {
    if (r && r->metric) r->metric(r->user, phase, name, value);
}

static void task_event(const mt_task *t, mt_task_event ev, const char *status) {
    if (t->rep && t->rep->task) t->rep->task(t->rep->user, ev, t->label, t->done, t->total, status);
}

void mt_task_start(mt_task *t, const mt_reporter *r, const char *label, int64_t total,
                   int64_t already_done) {
    *t = (mt_task){.rep = r, .label = label, .done = already_done, .total = total};
    task_event(t, MT_TASK_START, NULL);
}

void mt_task_update(mt_task *t, int64_t done, const char *status) {
    t->done = done;
    task_event(t, MT_TASK_UPDATE, status);
}

void mt_task_finish(mt_task *t, const char *status) {
    task_event(t, MT_TASK_FINISH, status);
}
