#include "cli/status_print.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERROR_SHOWN 120

/* Copies text onto one line of at most ERROR_SHOWN bytes, cut on a UTF-8 character
 * boundary, so one long or multi-line error cannot swamp the summary. */
static void one_line(const char *text, char out[ERROR_SHOWN + 4]) {
    size_t n = 0;
    const size_t len = strlen(text);
    for (; n < len && n < ERROR_SHOWN; n++) {
        const unsigned char c = (unsigned char)text[n];
        out[n] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    if (n < len) {
        while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80) n--;
        memcpy(out + n, "...", 4);
    } else {
        out[n] = '\0';
    }
}

static mt_status written(FILE *f, const mt_store_status *st) {
    if (fflush(f) || ferror(f))
        return mt_fail(MT_ERR_IO, "run store %s: cannot write the status", st->path);
    return MT_OK;
}

/* Column widths are in bytes, as printf pads, and never below the heading's. */
static int at_least(int min, size_t width) {
    return width > (size_t)min ? (int)width : min;
}

static void print_questions(FILE *f, const mt_store_status *st) {
    fprintf(f, "questions %lld\n", (long long)st->questions);
    for (int i = 0; i < st->n_splits; i++)
        fprintf(f, "  %-10s %8lld\n", st->splits[i].split ? st->splits[i].split : "unsplit",
                (long long)st->splits[i].questions);
}

static void print_stages(FILE *f, const mt_store_status *st) {
    if (!st->n_stages) {
        fprintf(f, "\nitems: none yet\n");
        return;
    }
    int w = 16;
    for (int i = 0; i < st->n_stages; i++)
        w = at_least(w, strlen(st->stages[i].phase) + 1 + strlen(st->stages[i].stage));
    fprintf(f, "\n%-*s %8s %8s\n", w + 2, "items", "done", "failed");
    for (int i = 0; i < st->n_stages; i++) {
        const mt_stage_count *c = &st->stages[i];
        const int label = (int)(strlen(c->phase) + 1 + strlen(c->stage));
        fprintf(f, "  %s/%s%*s %8lld %8lld\n", c->phase, c->stage, w - label, "",
                (long long)c->done, (long long)c->failed);
    }
}

static void print_failed(FILE *f, const mt_store_status *st) {
    if (!st->failed_total) return;
    if (st->failed_total > MT_STORE_STATUS_FAILED_LISTED)
        fprintf(f, "\nfailed items %lld (retried on the next run), the first %d:\n",
                (long long)st->failed_total, MT_STORE_STATUS_FAILED_LISTED);
    else
        fprintf(f, "\nfailed items %lld (retried on the next run):\n", (long long)st->failed_total);
    for (int i = 0; i < st->n_failed; i++) {
        const mt_failed_item *it = &st->failed[i];
        char msg[ERROR_SHOWN + 4];
        one_line(it->error ? it->error : "(no message)", msg);
        fprintf(f, "  %s/%s %s (%d failure%s): %s\n", it->phase, it->stage, it->qid, it->attempts,
                it->attempts == 1 ? "" : "s", msg);
    }
}

static void print_usage_row(FILE *f, int w, const char *label, const mt_usage *u) {
    fprintf(f, "  %-*s %9lld %9lld %9lld %14lld %14lld %10.4f\n", w, label, (long long)u->requests,
            (long long)u->attempts, (long long)u->failed_attempts, (long long)u->prompt_tokens,
            (long long)u->completion_tokens, u->cost);
}

static void print_usage(FILE *f, const mt_store_status *st) {
    if (!st->n_usage) {
        fprintf(f, "\nexpert usage: none yet\n");
        return;
    }
    int w = 12;
    for (int i = 0; i < st->n_usage; i++) w = at_least(w, strlen(st->usage[i].phase));
    fprintf(f, "\n%-*s %9s %9s %9s %14s %14s %10s\n", w + 2, "expert usage", "requests", "attempts",
            "failed", "prompt tok", "completion tok", "cost");
    for (int i = 0; i < st->n_usage; i++)
        print_usage_row(f, w, st->usage[i].phase, &st->usage[i].usage);
    print_usage_row(f, w, "total", &st->usage_total);
}

static void print_metrics(FILE *f, const mt_store_status *st) {
    if (!st->n_metrics) return;
    int w = 20;
    for (int i = 0; i < st->n_metrics; i++)
        w = at_least(w, strlen(st->metrics[i].phase) + 2 + strlen(st->metrics[i].name));
    fprintf(f, "\n%-*s %12s\n", w + 2, "metrics (latest)", "value");
    for (int i = 0; i < st->n_metrics; i++) {
        const mt_metric_value *m = &st->metrics[i];
        const int label = (int)(strlen(m->phase) + 2 + strlen(m->name));
        fprintf(f, "  %s  %s%*s ", m->phase, m->name, w - label, "");
        if (isnan(m->value))
            fprintf(f, "%12s\n", "nan");
        else
            fprintf(f, "%12.6g\n", m->value);
    }
}

mt_status mt_status_print_text(FILE *f, const mt_store_status *st) {
    fprintf(f, "run store %s\n", st->path);
    print_questions(f, st);
    print_stages(f, st);
    print_failed(f, st);
    print_usage(f, st);
    print_metrics(f, st);
    return written(f, st);
}

/* ---- JSON ---------------------------------------------------------------------------- */
/* Each helper returns 0 when cJSON ran out of memory; a child is attached before it is
 * filled, so deleting the root frees whatever was built. */

static cJSON *new_object_in(cJSON *array) {
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddItemToArray(array, o)) return o;
    cJSON_Delete(o);
    return NULL;
}

static int add_text(cJSON *o, const char *key, const char *v) {
    return (v ? cJSON_AddStringToObject(o, key, v) : cJSON_AddNullToObject(o, key)) != NULL;
}

static int add_count(cJSON *o, const char *key, int64_t v) {
    char text[24];
    snprintf(text, sizeof text, "%lld", (long long)v);
    return cJSON_AddRawToObject(o, key, text) != NULL;
}

/* The shortest decimal that reads back as the same double (cJSON's own printing settles
 * for 15 digits within a relative epsilon, so a cost could round differently from the text
 * form); JSON has no NaN or infinity: such a value is null. */
static int add_number(cJSON *o, const char *key, double v) {
    if (!isfinite(v)) return cJSON_AddNullToObject(o, key) != NULL;
    char text[32];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, v);
        if (strtod(text, NULL) == v) break;
    }
    return cJSON_AddRawToObject(o, key, text) != NULL;
}

static int add_usage(cJSON *o, const mt_usage *u) {
    return add_count(o, "requests", u->requests) && add_count(o, "attempts", u->attempts) &&
           add_count(o, "failed_attempts", u->failed_attempts) &&
           add_count(o, "prompt_tokens", u->prompt_tokens) &&
           add_count(o, "completion_tokens", u->completion_tokens) &&
           add_number(o, "cost", u->cost);
}

static int add_questions(cJSON *root, const mt_store_status *st) {
    cJSON *q = cJSON_AddObjectToObject(root, "questions");
    cJSON *splits =
        q && add_count(q, "total", st->questions) ? cJSON_AddObjectToObject(q, "splits") : NULL;
    int ok = splits != NULL;
    for (int i = 0; ok && i < st->n_splits; i++)
        ok = add_count(splits, st->splits[i].split ? st->splits[i].split : "unsplit",
                       st->splits[i].questions);
    return ok;
}

static int add_stages(cJSON *root, const mt_store_status *st) {
    cJSON *items = cJSON_AddArrayToObject(root, "items");
    int ok = items != NULL;
    for (int i = 0; ok && i < st->n_stages; i++) {
        const mt_stage_count *c = &st->stages[i];
        cJSON *o = new_object_in(items);
        ok = o && add_text(o, "phase", c->phase) && add_text(o, "stage", c->stage) &&
             add_count(o, "done", c->done) && add_count(o, "failed", c->failed);
    }
    return ok;
}

static int add_failed(cJSON *root, const mt_store_status *st) {
    cJSON *failures = cJSON_AddObjectToObject(root, "failures");
    cJSON *first = failures && add_count(failures, "total", st->failed_total)
                       ? cJSON_AddArrayToObject(failures, "first")
                       : NULL;
    int ok = first != NULL;
    for (int i = 0; ok && i < st->n_failed; i++) {
        const mt_failed_item *it = &st->failed[i];
        cJSON *o = new_object_in(first);
        ok = o && add_text(o, "phase", it->phase) && add_text(o, "stage", it->stage) &&
             add_text(o, "qid", it->qid) && add_count(o, "attempts", it->attempts) &&
             add_text(o, "error", it->error);
    }
    return ok;
}

static int add_usage_all(cJSON *root, const mt_store_status *st) {
    cJSON *usage = cJSON_AddObjectToObject(root, "usage");
    cJSON *phases = usage ? cJSON_AddArrayToObject(usage, "phases") : NULL;
    int ok = phases != NULL;
    for (int i = 0; ok && i < st->n_usage; i++) {
        cJSON *o = new_object_in(phases);
        ok = o && add_text(o, "phase", st->usage[i].phase) && add_usage(o, &st->usage[i].usage);
    }
    cJSON *total = ok ? cJSON_AddObjectToObject(usage, "total") : NULL;
    return total && add_usage(total, &st->usage_total);
}

static int add_metrics(cJSON *root, const mt_store_status *st) {
    cJSON *metrics = cJSON_AddArrayToObject(root, "metrics");
    int ok = metrics != NULL;
    for (int i = 0; ok && i < st->n_metrics; i++) {
        const mt_metric_value *m = &st->metrics[i];
        cJSON *o = new_object_in(metrics);
        ok = o && add_text(o, "phase", m->phase) && add_text(o, "name", m->name) &&
             add_number(o, "value", m->value);
    }
    return ok;
}

mt_status mt_status_print_json(FILE *f, const mt_store_status *st) {
    cJSON *root = cJSON_CreateObject();
    const int ok = root && add_text(root, "path", st->path) && add_questions(root, st) &&
                   add_stages(root, st) && add_failed(root, st) && add_usage_all(root, st) &&
                   add_metrics(root, st);
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return mt_fail(MT_ERR_NOMEM, "out of memory writing the status as JSON");
    fprintf(f, "%s\n", text);
    cJSON_free(text);
    return written(f, st);
}
