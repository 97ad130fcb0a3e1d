/* The run store: one SQLite database (run.db) per run directory, the single source of
 * truth of a run. Questions with their split, per-phase item state, every expert request
 * and response keyed by a hash of the request, every attempt (retries included),
 * produced records and metrics. WAL mode; each public write is one transaction unless
 * the caller groups several between mt_store_begin and mt_store_commit, so a SIGKILL at
 * any moment loses at most the work in flight and never half a state change. */
#ifndef MT_STORE_STORE_H
#define MT_STORE_STORE_H

#include <stdint.h>

#include "core/status.h"

typedef struct mt_store mt_store;

/* Opens (creating when absent) the database at path and its schema. */
mt_status mt_store_open(const char *path, mt_store **out);
void mt_store_close(mt_store *s);

/* Groups the writes in between into one transaction (not nestable). */
mt_status mt_store_begin(mt_store *s);
mt_status mt_store_commit(mt_store *s);
void mt_store_rollback(mt_store *s);

/* Run settings (key/value). *value is malloc'ed, NULL when the key is absent. */
mt_status mt_store_meta_get(mt_store *s, const char *key, char **value);
mt_status mt_store_meta_set(mt_store *s, const char *key, const char *value);

/* ---- questions ---- */
typedef struct {
    char *id;    /* stable: a hash of the normalised title and content */
    int64_t seq; /* import order */
    char *title;
    char *content;
    char *reference; /* reference answer or NULL */
    char *category;  /* or NULL */
    char *split;     /* "train", "test" or NULL before the split is drawn */
} mt_question;

/* Adds q (q->seq is ignored: the next import number is used) unless a question with the
 * same id exists; *added is 1 when it was new, 0 for a duplicate. */
mt_status mt_store_add_question(mt_store *s, const mt_question *q, int *added);
mt_status mt_store_set_split(mt_store *s, const char *id, const char *split);
/* Questions of one split (NULL: all), in import order. */
mt_status mt_store_questions(mt_store *s, const char *split, mt_question **out, int *n);
void mt_questions_free(mt_question *q, int n);

/* ---- per-phase item state ---- */
typedef enum { MT_ITEM_PENDING = 0, MT_ITEM_DONE, MT_ITEM_FAILED } mt_item_state;

typedef struct {
    mt_item_state state;
    int attempts; /* times the item failed */
    char *output; /* malloc'ed, NULL when none */
    char *error;  /* last error, NULL when none */
} mt_item;

/* An item never written reads as PENDING with no output. */
mt_status mt_store_item_get(mt_store *s, const char *phase, const char *stage, const char *qid,
                            mt_item *out);
mt_status mt_store_item_done(mt_store *s, const char *phase, const char *stage, const char *qid,
                             const char *output);
/* Marks the item failed with error and counts one more failure; a later run retries it. */
mt_status mt_store_item_failed(mt_store *s, const char *phase, const char *stage, const char *qid,
                               const char *error);
void mt_item_free(mt_item *it);

typedef struct {
    int64_t done, failed;
} mt_item_counts;
mt_status mt_store_item_counts(mt_store *s, const char *phase, const char *stage,
                               mt_item_counts *out);

/* ---- expert request cache ---- */
typedef struct {
    char *response; /* the reply content as it was accepted */
    int64_t prompt_tokens, completion_tokens;
    double cost;
} mt_cached_reply;

/* *found = 0 when the hash was never answered; out is then untouched. */
mt_status mt_store_request_get(mt_store *s, const char *hash, mt_cached_reply *out, int *found);
mt_status mt_store_request_put(mt_store *s, const char *hash, const char *phase,
                               const char *request_json, const char *response,
                               int64_t prompt_tokens, int64_t completion_tokens, double cost,
                               int attempts);
void mt_cached_reply_free(mt_cached_reply *r);

/* One HTTP attempt (successful or not) of a request, so retries are visible. */
mt_status mt_store_attempt_log(mt_store *s, const char *hash, const char *phase, int attempt,
                               int http_status, const char *error, double seconds);

typedef struct {
    int64_t requests; /* distinct requests answered (cached rows) */
    int64_t attempts; /* HTTP attempts logged */
    int64_t failed_attempts;
    int64_t prompt_tokens, completion_tokens;
    double cost;
} mt_usage;
/* Totals over one phase (NULL: all phases). */
mt_status mt_store_usage(mt_store *s, const char *phase, mt_usage *out);

/* ---- produced records (one JSON object per phase and question) ---- */
/* Replaces the record of (phase, qid). */
mt_status mt_store_record_put(mt_store *s, const char *phase, const char *qid, const char *json);
/* Records of a phase in question import order; free with mt_strings_free. */
mt_status mt_store_records(mt_store *s, const char *phase, char ***jsons, int *n);
void mt_strings_free(char **v, int n);

/* ---- metrics ---- */
mt_status mt_store_metric(mt_store *s, const char *phase, const char *name, double value);
/* Latest value of a metric; *found = 0 when never written. */
mt_status mt_store_metric_get(mt_store *s, const char *phase, const char *name, double *value,
                              int *found);

/* ---- a run's summary (`meteor status`) ---- */
/* How many failed items the summary lists (the rest are only counted). */
#define MT_STORE_STATUS_FAILED_LISTED 5

typedef struct {
    char *split; /* NULL: no split drawn yet */
    int64_t questions;
} mt_split_count;

typedef struct {
    char *phase, *stage;
    int64_t done, failed;
} mt_stage_count;

typedef struct {
    char *phase, *stage, *qid;
    int attempts; /* times the item failed */
    char *error;  /* the last error as stored, whole; NULL when none was recorded */
} mt_failed_item;

typedef struct {
    char *phase;
    mt_usage usage;
} mt_phase_usage;

typedef struct {
    char *phase, *name;
    double value; /* NaN when NaN was recorded */
} mt_metric_value;

typedef struct {
    char *path; /* the run store's file */
    int64_t questions;
    mt_split_count *splits; /* "train", "test", then unsplit (descending name, NULL last) */
    int n_splits;
    mt_stage_count *stages; /* every (phase, stage) with items, in order of first write */
    int n_stages;
    int64_t failed_total;
    mt_failed_item failed[MT_STORE_STATUS_FAILED_LISTED]; /* the first failed, write order */
    int n_failed;
    mt_phase_usage *usage; /* phases with requests or attempts, by name */
    int n_usage;
    mt_usage usage_total;     /* over all phases */
    mt_metric_value *metrics; /* the latest value of each (phase, name), by phase and name */
    int n_metrics;
} mt_store_status;

/* Everything `meteor status` shows, read in one snapshot so counts and totals agree while a
 * run keeps committing (inside a caller's transaction it reads that one and leaves it open).
 * On error *out holds nothing to free. */
mt_status mt_store_status_read(mt_store *s, mt_store_status *out);
void mt_store_status_free(mt_store_status *st);

#endif
