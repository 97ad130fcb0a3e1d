#include "core/progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double mt_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void mt_progress_start(mt_progress *p, const char *label, int64_t total, int64_t already_done) {
    p->label = label;
    p->total = total > 0 ? total : 1;
    p->done = already_done;
    p->t0 = mt_now_seconds();
    p->last_draw = 0.0;
    p->last_logged_decile = -1;
    p->tty = isatty(2);
    p->quiet = 0;
    p->start_done = already_done;
}

static void format_eta(double s, char *buf, size_t cap) {
    if (s < 0 || s > 1e7) {
        snprintf(buf, cap, "--:--");
        return;
    }
    const long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, cap, "%02ld:%02ld", t / 60, t % 60);
}

static void draw(mt_progress *p, const char *status, int final) {
    const double el = mt_now_seconds() - p->t0;
    const int64_t run = p->done - p->start_done;
    const double eta = run > 0 ? el / run * (double)(p->total - p->done) : -1.0;
    char eta_s[32];
    format_eta(final ? el : eta, eta_s, sizeof eta_s);
    const int width = 24, fill = (int)(width * p->done / p->total);
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "%s%s [%s] %lld/%lld %s %s%s%s", p->tty ? "\r\033[K" : "", p->label, bar,
            (long long)p->done, (long long)p->total, final ? "in" : "eta", eta_s,
            status && *status ? "  " : "", status ? status : "");
    if (!p->tty || final) fputc('\n', stderr);
    fflush(stderr);
}

void mt_progress_update(mt_progress *p, int64_t done, const char *status) {
    p->done = done;
    if (p->quiet) return;
    const double now = mt_now_seconds();
    if (p->tty) {
        if (now - p->last_draw < 0.2 && done < p->total) return;
        p->last_draw = now;
        draw(p, status, 0);
        return;
    }
    const int64_t decile = done * 10 / p->total;
    if (decile == p->last_logged_decile) return;
    p->last_logged_decile = decile;
    draw(p, status, 0);
}

void mt_progress_finish(mt_progress *p, const char *status) {
    if (!p->quiet) draw(p, status, 1);
}
