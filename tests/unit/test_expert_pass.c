/* One expert pass over the run store, driven by a scripted fake expert: every job
 * answered and committed with its item and the caller's record, reruns that send nothing,
 * the request cache across stages, failures retried on the next pass, an on_reply error
 * that rolls its reply back, budget stops that resume without sending anything twice,
 * results independent of completion order, and the progress a reporter sees. Each test
 * gets a fresh store in its own temporary directory. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_expert.h"
#include "tmpstore.h"
#include <sqlite3.h>

#include "core/report.h"
#include "pipeline/expert_pass.h"
#include "store/store.h"

#define PHASE "phase_t"
#define STAGE "stage_t"
#define N_JOBS 6

static mt_test_store ts; /* this test's store, fresh for each test */

/* ---- jobs and the fake's script --------------------------------------------------------- */

static const char SYSTEM_TEXT[] = "You are an expert on the subject.";

static struct {
    char qid[N_JOBS][16];
    char text[N_JOBS][128];
    mt_chat_msg msgs[N_JOBS][2];
    mt_expert_job jobs[N_JOBS];
} js;

/* Questions of different lengths, so token counts and costs differ per job and a reply
 * stored under the wrong job would show. */
static void make_jobs(void) {
    for (int i = 0; i < N_JOBS; i++) {
        snprintf(js.qid[i], sizeof js.qid[i], "q%d", i);
        int len = snprintf(js.text[i], sizeof js.text[i], "question %d:", i);
        for (int r = 0; r < 3 * i; r++)
            len += snprintf(js.text[i] + len, sizeof js.text[i] - (size_t)len, " why");
        js.msgs[i][0] = (mt_chat_msg){.role = "system", .content = SYSTEM_TEXT};
        js.msgs[i][1] = (mt_chat_msg){.role = "user", .content = js.text[i]};
        js.jobs[i] = (mt_expert_job){.qid = js.qid[i],
                                     .req = {.msgs = js.msgs[i],
                                             .n_msgs = 2,
                                             .schema_name = i % 2 ? "answer" : NULL,
                                             .schema_json = i % 2 ? "{\"type\":\"object\"}" : NULL,
                                             .max_tokens = 64,
                                             .temperature = 0.0}};
    }
}

/* The reply the script gives to a question text: long enough that completion tokens vary. */
static void reply_for(const char *text, char *out, size_t cap) {
    snprintf(out, cap, "the answer to <%s> is %s", text, text);
}

static const char *reply_of(int i) {
    static char buf[N_JOBS][320];
    reply_for(js.text[i], buf[i], sizeof buf[i]);
    return buf[i];
}

typedef struct {
    const char *fail_text; /* requests whose user message is this fail ... */
    int fail_left;         /* ... this many more times */
} script;

static int answer(void *user, const mt_expert_req *req, int request_number, char **content,
                  char **error) {
    script *sc = user;
    (void)request_number;
    const char *text = req->msgs[req->n_msgs - 1].content;
    if (sc && sc->fail_text && sc->fail_left > 0 && strcmp(text, sc->fail_text) == 0) {
        sc->fail_left--;
        *error = fake_strdup("scripted failure: the server said no");
        return 1;
    }
    char buf[320];
    reply_for(text, buf, sizeof buf);
    *content = fake_strdup(buf);
    return 0;
}

static fake_expert *new_fake(const char *name, script *sc) {
    fake_expert *f = fake_expert_new(name, answer, sc);
    assert_non_null(f);
    f->cost_per_1k_prompt = 1000.0; /* cost = prompt tokens + 2 x completion tokens */
    f->cost_per_1k_completion = 2000.0;
    return f;
}

/* Costs are sums of products of decimals: equal up to rounding, not bit for bit. */
static int near(double a, double b) {
    return fabs(a - b) <= 1e-9 * (1.0 + fabs(b));
}

static int64_t want_prompt_tokens(int i) {
    return (int64_t)(strlen(SYSTEM_TEXT) + strlen(js.text[i])) / 4;
}

static int64_t want_completion_tokens(int i) {
    return (int64_t)strlen(reply_of(i)) / 4;
}

/* ---- the caller's side: on_reply and a reporter ------------------------------------------ */

typedef struct {
    int calls[N_JOBS];
    int mismatches; /* index out of range, or content not the reply of that job */
    int fail_index; /* on_reply fails for this job (-1: never) */
    const mt_expert_job *jobs;
} sink;

static mt_status on_reply(void *user, mt_store *st, int index, const char *content) {
    sink *k = user;
    if (index < 0 || index >= N_JOBS) {
        k->mismatches++;
        return mt_fail(MT_ERR_INTERNAL, "on_reply: index %d out of range", index);
    }
    k->calls[index]++;
    if (strcmp(content, reply_of(index)) != 0) k->mismatches++;
    /* Written before failing, so a rollback has something to discard. */
    mt_status e = mt_store_record_put(st, PHASE, k->jobs[index].qid, content);
    if (e) return e;
    if (index == k->fail_index) return mt_fail(MT_ERR_FORMAT, "on_reply: scripted failure");
    return MT_OK;
}

#define MAX_EVENTS 64
typedef struct {
    int n;
    mt_task_event ev[MAX_EVENTS];
    int64_t done[MAX_EVENTS], total[MAX_EVENTS];
    int label_ok[MAX_EVENTS];
    int notes;
} collector;

static void on_task(void *user, mt_task_event ev, const char *label, int64_t done, int64_t total,
                    const char *status) {
    collector *c = user;
    (void)status;
    if (c->n == MAX_EVENTS) return;
    c->ev[c->n] = ev;
    c->done[c->n] = done;
    c->total[c->n] = total;
    c->label_ok[c->n] = label && strcmp(label, "test answers") == 0;
    c->n++;
}

static void on_note(void *user, const char *text) {
    collector *c = user;
    (void)text;
    c->notes++;
}

/* ---- helpers ------------------------------------------------------------------------------- */

static mt_status pass_on(mt_store *store, fake_expert *f, const char *stage, int n, sink *k,
                         const mt_reporter *rep, mt_expert_pass_stats *ps) {
    k->jobs = js.jobs;
    mt_expert_pass_opts o = {.phase = PHASE,
                             .stage = stage,
                             .label = "test answers",
                             .rep = rep,
                             .on_reply = on_reply,
                             .user = k};
    return mt_expert_pass(store, &f->base, js.jobs, n, &o, ps);
}

static mt_status run_pass(fake_expert *f, const char *stage, int n, sink *k,
                          mt_expert_pass_stats *ps) {
    return pass_on(ts.store, f, stage, n, k, NULL, ps);
}

static void assert_stats(const mt_expert_pass_stats *ps, int total, int done_before, int cached,
                         int answered, int failed, int unsent) {
    assert_int_equal(ps->total, total);
    assert_int_equal(ps->done_before, done_before);
    assert_int_equal(ps->cached, cached);
    assert_int_equal(ps->answered, answered);
    assert_int_equal(ps->failed, failed);
    assert_int_equal(ps->unsent, unsent);
}

static void assert_item(mt_store *store, const char *stage, int i, mt_item_state want) {
    mt_item it;
    assert_int_equal(mt_store_item_get(store, PHASE, stage, js.qid[i], &it), MT_OK);
    assert_int_equal(it.state, want);
    if (want == MT_ITEM_DONE) {
        assert_non_null(it.output);
        assert_string_equal(it.output, reply_of(i));
        assert_null(it.error);
    }
    mt_item_free(&it);
}

/* A figure from run.db through a second connection: it sees only committed rows. */
static int64_t query_int(const char *path, const char *sql) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static int request_stored(mt_store *store, const mt_expert *e, int i, mt_cached_reply *out) {
    char hash[65];
    mt_expert_request_hash(e, &js.jobs[i].req, hash);
    int found = -1;
    mt_cached_reply c = {0};
    assert_int_equal(mt_store_request_get(store, hash, &c, &found), MT_OK);
    if (out)
        *out = c;
    else
        mt_cached_reply_free(&c);
    return found;
}

static int setup(void **state) {
    (void)state;
    make_jobs();
    return mt_test_store_open(&ts, "expert_pass");
}

static int teardown(void **state) {
    (void)state;
    return mt_test_store_close(&ts);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_all_answered(void **state) {
    (void)state;
    fake_expert *f = new_fake("fake-a", NULL);
    f->order = FAKE_ORDER_SHUFFLED;
    f->seed = 11;
    sink k = {.fail_index = -1};
    mt_expert_pass_stats ps;
    assert_int_equal(run_pass(f, STAGE, N_JOBS, &k, &ps), MT_OK);
    assert_stats(&ps, N_JOBS, 0, 0, N_JOBS, 0, 0);
    assert_int_equal(k.mismatches, 0);
    assert_int_equal(f->n_received, N_JOBS);
    for (int i = 0; i < N_JOBS; i++) {
        assert_int_equal(k.calls[i], 1);
        assert_item(ts.store, STAGE, i, MT_ITEM_DONE);
        assert_int_equal(fake_expert_count(f, js.text[i]), 1);
        /* what was sent is the job's request, schema name included */
        const fake_received *r = &f->received[i];
        assert_int_equal(r->n_msgs, 2);
        assert_string_equal(r->roles[0], "system");
        assert_string_equal(r->contents[1], js.text[i]);
        if (i % 2)
            assert_string_equal(r->schema_name, "answer");
        else
            assert_null(r->schema_name);
        /* each request row carries its own tokens and cost, whatever the completion order */
        mt_cached_reply c;
        assert_int_equal(request_stored(ts.store, &f->base, i, &c), 1);
        assert_string_equal(c.response, reply_of(i));
        assert_int_equal(c.prompt_tokens, want_prompt_tokens(i));
        assert_int_equal(c.completion_tokens, want_completion_tokens(i));
        assert_true(near(c.cost, (double)(want_prompt_tokens(i) + 2 * want_completion_tokens(i))));
        mt_cached_reply_free(&c);
    }
    mt_usage u;
    assert_int_equal(mt_store_usage(ts.store, PHASE, &u), MT_OK);
    assert_int_equal(u.requests, N_JOBS);
    assert_int_equal(u.attempts, N_JOBS);
    assert_int_equal(u.failed_attempts, 0);
    assert_int_equal(u.prompt_tokens, f->base.prompt_tokens);
    assert_int_equal(u.completion_tokens, f->base.completion_tokens);
    assert_true(u.cost > 0 && near(u.cost, f->base.cost));
    /* every attempt is logged under the hash of the request it belongs to, with status 200 */
    assert_int_equal(query_int(ts.db_path, "SELECT COUNT(*) FROM attempts a JOIN requests r"
                                           " ON a.hash = r.hash WHERE a.http_status = 200"
                                           " AND a.error IS NULL AND a.attempt = 1"),
                     N_JOBS);
    assert_int_equal(
        query_int(ts.db_path, "SELECT COUNT(*) FROM records WHERE phase = '" PHASE "'"), N_JOBS);
    mt_expert_free(&f->base);
}

static void test_rerun_sends_nothing(void **state) {
    (void)state;
    fake_expert *f = new_fake("fake-a", NULL);
    sink k = {.fail_index = -1};
    mt_expert_pass_stats ps;
    assert_int_equal(run_pass(f, STAGE, N_JOBS, &k, &ps), MT_OK);
    assert_int_equal(f->n_received, N_JOBS);

    sink k2 = {.fail_index = -1};
    collector c = {0};
    mt_reporter rep = {.task = on_task, .note = on_note, .user = &c};
    assert_int_equal(pass_on(ts.store, f, STAGE, N_JOBS, &k2, &rep, &ps), MT_OK);
    assert_stats(&ps, N_JOBS, N_JOBS, 0, 0, 0, 0);
    assert_int_equal(f->n_received, N_JOBS); /* nothing new sent */
    for (int i = 0; i < N_JOBS; i++) assert_int_equal(k2.calls[i], 0);
    assert_int_equal(c.notes, 0);
    mt_usage u;
    assert_int_equal(mt_store_usage(ts.store, PHASE, &u), MT_OK);
    assert_int_equal(u.requests, N_JOBS);
    assert_int_equal(u.attempts, N_JOBS);
    mt_expert_free(&f->base);
}

static void test_request_cache(void **state) {
    (void)state;
    fake_expert *f = new_fake("fake-a", NULL);
    sink k = {.fail_index = -1};
    mt_expert_pass_stats ps;
    assert_int_equal(run_pass(f, STAGE, N_JOBS, &k, &ps), MT_OK);
    const double cost = f->base.cost;

    /* The same requests under another stage: served from the store, nothing sent, but each
     * item is done and the caller still gets its reply. */
    sink k2 = {.fail_index = -1};
    assert_int_equal(run_pass(f, "stage_again", N_JOBS, &k2, &ps), MT_OK);
    assert_stats(&ps, N_JOBS, 0, N_JOBS, 0, 0, 0);
    assert_int_equal(f->n_received, N_JOBS);
    assert_true(f->base.cost == cost);
    assert_int_equal(k2.mismatches, 0);
    for (int i = 0; i < N_JOBS; i++) {
        assert_int_equal(k2.calls[i], 1);
        assert_item(ts.store, "stage_again", i, MT_ITEM_DONE);
    }
    mt_usage u;
    assert_int_equal(mt_store_usage(ts.store, PHASE, &u), MT_OK);
    assert_int_equal(u.requests, N_JOBS);
    assert_int_equal(u.attempts, N_JOBS);

    /* Another expert's name is part of the key: its requests are not the cached ones. */
    fake_expert *g = new_fake("fake-b", NULL);
    sink k3 = {.fail_index = -1};
    assert_int_equal(run_pass(g, "stage_other_expert", N_JOBS, &k3, &ps), MT_OK);
    assert_stats(&ps, N_JOBS, 0, 0, N_JOBS, 0, 0);
    assert_int_equal(g->n_received, N_JOBS);
    assert_int_equal(mt_store_usage(ts.store, PHASE, &u), MT_OK);
    assert_int_equal(u.requests, 2 * N_JOBS);
    mt_expert_free(&g->base);
    mt_expert_free(&f->base);
}

static void test_failure_then_retry(void **state) {
    (void)state;
    script sc = {.fail_text = js.text[2], .fail_left = 1};
    fake_expert *f = new_fake("fake-a", &sc);
    f->order = FAKE_ORDER_REVERSED;
    sink k = {.fail_index = -1};
    mt_expert_pass_stats ps;
    assert_int_equal(run_pass(f, STAGE, N_JOBS, &k, &ps), MT_OK);
    assert_stats(&ps, N_JOBS, 0, 0, N_JOBS - 1, 1, 0);
    assert_int_equal(k.calls[2], 0);
    mt_item it;
    assert_int_equal(mt_store_item_get(ts.store, PHASE, STAGE, js.qid[2], &it), MT_OK);
    assert_int_equal(it.state, MT_ITEM_FAILED);
    assert_int_equal(it.attempts, 1);
    assert_non_null(it.error);
    assert_string_equal(it.error, "scripted failure: the server said no");
    assert_null(it.output);
    mt_item_free(&it);
    assert_int_equal(request_stored(ts.store, &f->base, 2, NULL), 0);
    mt_usage u;
    assert_int_equal(mt_store_usage(ts.store, PHASE, &u), MT_OK);
    assert_int_equal(u.requests, N_JOBS - 1);
    assert_int_equal(u.attempts, N_JOBS);
    assert_int_equal(u.failed_attempts, 1);
    assert_int_equal(query_int(ts.db_path, "SELECT COUNT(*) FROM attempts WHERE http_status = 500"
                                           " AND error = 'scripted failure: the server said no'"),
                     1);

    /* The next pass retries only the failed item, and this time it is answered. */
    sink k2 = {.fail_index = -1};
    assert_int_equal(run_pass(f, STAGE, N_JOBS, &k2, &ps), MT_OK);
    assert_stats(&ps, N_JOBS, N_JOBS - 1, 0, 1, 0, 0);
    assert_int_equal(f->n_received, N_JOBS + 1);
    assert_string_equal(f->received[N_JOBS].contents[1], js.text[2]);
    assert_int_equal(f->received[N_JOBS].run, 1);
    assert_int_equal(fake_expert_count(f, js.text[2]), 2);
    assert_int_equal(k2.calls[2], 1);
    for (int i = 0; i < N_JOBS; i++) assert_item(ts.store, STAGE, i, MT_ITEM_DONE);
    assert_int_equal(mt_store_usage(ts.store, PHASE, &u), MT_OK);
    assert_int_equal(u.requests, N_JOBS);
    assert_int_equal(u.attempts, N_JOBS + 1);
    assert_int_equal(u.failed_attempts, 1);
    mt_expert_free(&f->base);
}

static void test_on_reply_error_rolls_back(void **state) {
    (void)state;
    fake_expert *f = new_fake("fake-a", NULL); /* in order: 0, 1, 2 commit, 3 fails */
    sink k = {.fail_index = 3};
    mt_expert_pass_stats ps;
    assert_int_equal(run_pass(f, STAGE, N_JOBS, &k, &ps), MT_ERR_FORMAT);
    assert_string_equal(mt_last_error(), "on_reply: scripted failure");
    assert_int_equal(ps.answered, 3);
    assert_int_equal(ps.failed, 0);
    for (int i = 0; i < 3; i++) assert_item(ts.store, STAGE, i, MT_ITEM_DONE);
    /* The failing reply's whole transaction is gone: item, request row, record. */
    for (int i = 3; i < N_JOBS; i++) {
        assert_item(ts.store, STAGE, i, MT_ITEM_PENDING);
        assert_int_equal(request_stored(ts.store, &f->base, i, NULL), 0);
    }
    assert_int_equal(k.calls[3], 1);
    assert_int_equal(k.calls[4], 0); /* the batch stopped at the error */
    assert_int_equal(query_int(ts.db_path, "SELECT COUNT(*) FROM records WHERE qid = 'q3'"), 0);
    assert_int_equal(query_int(ts.db_path, "SELECT COUNT(*) FROM requests"), 3);
    /* the store is still usable: no transaction was left open */
    assert_int_equal(mt_store_meta_set(ts.store, "after", "ok"), MT_OK);
    assert_int_equal(query_int(ts.db_path, "SELECT COUNT(*) FROM meta WHERE key = 'after'"), 1);

    /* A rerun finishes the rest; the rolled-back reply has to be asked for again. */
    sink k2 = {.fail_index = -1};
    const int sent_before = f->n_received;
    assert_int_equal(run_pass(f, STAGE, N_JOBS, &k2, &ps), MT_OK);
    assert_stats(&ps, N_JOBS, 3, 0, 3, 0, 0);
    assert_int_equal(f->n_received - sent_before, 3);
    for (int i = 0; i < N_JOBS; i++) assert_item(ts.store, STAGE, i, MT_ITEM_DONE);
    assert_int_equal(query_int(ts.db_path, "SELECT COUNT(*) FROM records"), N_JOBS);
    assert_int_equal(query_int(ts.db_path, "SELECT COUNT(*) FROM requests"), N_JOBS);
    mt_expert_free(&f->base);
}

static void test_budget_stop_and_resume(void **state) {
    (void)state;
    fake_expert *f = new_fake("fake-a", NULL);
    f->order = FAKE_ORDER_SHUFFLED;
    f->seed = 5;
    f->max_requests = 4;
    sink k = {.fail_index = -1};
    mt_expert_pass_stats ps;
    assert_int_equal(run_pass(f, STAGE, N_JOBS, &k, &ps), MT_ERR_BUDGET);
    assert_stats(&ps, N_JOBS, 0, 0, 4, 0, 2);
    assert_int_equal(f->n_received, 4);
    int done = 0;
    for (int i = 0; i < N_JOBS; i++) {
        mt_item it;
        assert_int_equal(mt_store_item_get(ts.store, PHASE, STAGE, js.qid[i], &it), MT_OK);
        done += it.state == MT_ITEM_DONE;
        assert_int_equal(k.calls[i], it.state == MT_ITEM_DONE);
        mt_item_free(&it);
    }
    assert_int_equal(done, 4);

    /* The budget is spent: a pass sends nothing and leaves everything pending unsent. */
    assert_int_equal(run_pass(f, STAGE, N_JOBS, &k, &ps), MT_ERR_BUDGET);
    assert_stats(&ps, N_JOBS, 4, 0, 0, 0, 2);
    assert_int_equal(f->n_received, 4);

    /* More budget: the rest are sent, each request exactly once over all passes. */
    f->max_requests = 100;
    assert_int_equal(run_pass(f, STAGE, N_JOBS, &k, &ps), MT_OK);
    assert_stats(&ps, N_JOBS, 4, 0, 2, 0, 0);
    assert_int_equal(f->n_received, N_JOBS);
    for (int i = 0; i < N_JOBS; i++) {
        assert_int_equal(fake_expert_count(f, js.text[i]), 1);
        assert_int_equal(k.calls[i], 1);
        assert_item(ts.store, STAGE, i, MT_ITEM_DONE);
    }
    mt_usage u;
    assert_int_equal(mt_store_usage(ts.store, PHASE, &u), MT_OK);
    assert_int_equal(u.requests, N_JOBS);
    assert_int_equal(u.attempts, N_JOBS);
    mt_expert_free(&f->base);
}

/* Stored items, records and request rows as one text, for comparing whole stores. */
static char *dump(const char *path) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    static const char *const queries[] = {
        "SELECT phase || '|' || stage || '|' || qid || '|' || state || '|' || attempts || '|' ||"
        " COALESCE(output, '-') || '|' || COALESCE(error, '-') FROM items ORDER BY qid",
        "SELECT phase || '|' || qid || '|' || json FROM records ORDER BY qid",
        "SELECT hash || '|' || request || '|' || response || '|' || prompt_tokens || '|' ||"
        " completion_tokens || '|' || cost || '|' || attempts FROM requests ORDER BY hash",
        "SELECT hash || '|' || http_status || '|' || COALESCE(error, '-') FROM attempts"
        " ORDER BY hash, attempt"};
    size_t len = 0, cap = 4096;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    for (size_t q = 0; q < sizeof queries / sizeof *queries; q++) {
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, queries[q], -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *row = (const char *)sqlite3_column_text(st, 0);
            const size_t n = strlen(row);
            if (len + n + 2 > cap) {
                cap = 2 * (len + n + 2);
                out = realloc(out, cap);
                assert_non_null(out);
            }
            memcpy(out + len, row, n);
            len += n;
            out[len++] = '\n';
            out[len] = '\0';
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return out;
}

static void test_completion_order_does_not_matter(void **state) {
    (void)state;
    const struct {
        fake_order order;
        uint64_t seed;
    } orders[] = {{FAKE_ORDER_IN, 0},
                  {FAKE_ORDER_REVERSED, 0},
                  {FAKE_ORDER_SHUFFLED, 1},
                  {FAKE_ORDER_SHUFFLED, 2},
                  {FAKE_ORDER_SHUFFLED, 3}};
    char *first = NULL;
    for (size_t o = 0; o < sizeof orders / sizeof *orders; o++) {
        char path[160];
        snprintf(path, sizeof path, "%s/order%zu.db", ts.dir, o);
        mt_store *store;
        assert_int_equal(mt_store_open(path, &store), MT_OK);
        /* one failure in the mix, so failed items are compared too */
        script sc = {.fail_text = js.text[4], .fail_left = 1};
        fake_expert *f = new_fake("fake-a", &sc);
        f->order = orders[o].order;
        f->seed = orders[o].seed;
        sink k = {.fail_index = -1};
        mt_expert_pass_stats ps;
        assert_int_equal(pass_on(store, f, STAGE, N_JOBS, &k, NULL, &ps), MT_OK);
        assert_stats(&ps, N_JOBS, 0, 0, N_JOBS - 1, 1, 0);
        assert_int_equal(k.mismatches, 0);
        mt_store_close(store);
        mt_expert_free(&f->base);
        char *d = dump(path);
        if (!first)
            first = d;
        else {
            assert_string_equal(d, first);
            free(d);
        }
    }
    /* the dump is not trivially equal: it holds every item and request */
    assert_non_null(strstr(first, reply_of(N_JOBS - 1)));
    assert_non_null(strstr(first, "scripted failure: the server said no"));
    free(first);
}

/* The fake really reorders completions: a shuffled run reports them out of batch order. */
typedef struct {
    int seen[N_JOBS], n;
} done_log;

static mt_status log_done(void *user, int index, const mt_expert_reply *r) {
    done_log *l = user;
    (void)r;
    l->seen[l->n++] = index;
    return MT_OK;
}

static mt_status stop_at_second(void *user, int index, const mt_expert_reply *r) {
    done_log *l = user;
    (void)r;
    l->seen[l->n++] = index;
    return l->n == 2 ? MT_ERR_IO : MT_OK;
}

static void test_fake_orders_and_aborts(void **state) {
    (void)state;
    mt_expert_req reqs[N_JOBS];
    for (int i = 0; i < N_JOBS; i++) reqs[i] = js.jobs[i].req;
    fake_expert *f = new_fake("fake-a", NULL);
    done_log l = {0};
    mt_expert_cb cb = {.on_done = log_done, .user = &l};
    f->order = FAKE_ORDER_REVERSED;
    assert_int_equal(f->base.run(&f->base, reqs, N_JOBS, &cb), MT_OK);
    for (int i = 0; i < N_JOBS; i++) assert_int_equal(l.seen[i], N_JOBS - 1 - i);
    f->order = FAKE_ORDER_SHUFFLED;
    int reordered = 0;
    for (uint64_t seed = 0; seed < 4; seed++) {
        f->seed = seed;
        l.n = 0;
        assert_int_equal(f->base.run(&f->base, reqs, N_JOBS, &cb), MT_OK);
        assert_int_equal(l.n, N_JOBS);
        int mask = 0;
        for (int i = 0; i < N_JOBS; i++) {
            mask |= 1 << l.seen[i];
            reordered |= l.seen[i] != i;
        }
        assert_int_equal(mask, (1 << N_JOBS) - 1); /* a permutation */
    }
    assert_true(reordered);
    /* on_done's error aborts the batch with it: nothing more is reported */
    done_log l2 = {0};
    mt_expert_cb stop = {.on_done = stop_at_second, .user = &l2};
    f->order = FAKE_ORDER_IN;
    assert_int_equal(f->base.run(&f->base, reqs, N_JOBS, &stop), MT_ERR_IO);
    assert_int_equal(l2.n, 2);
    assert_int_equal(f->base.requests_sent, 6 * N_JOBS);
    mt_expert_free(&f->base);
}

/* The fake's own contract, as expert.h states it for every expert. */
typedef struct {
    int attempts[N_JOBS], status[N_JOBS], done[N_JOBS], ok[N_JOBS];
    char error[N_JOBS][64];
    int64_t tokens;
} contract_log;

static void contract_attempt(void *user, int index, int attempt, int http_status, const char *error,
                             double seconds) {
    contract_log *l = user;
    assert_int_equal(attempt, 1);
    assert_true(seconds == 0.0);
    assert_int_equal(error != NULL, http_status != 200);
    l->attempts[index]++;
    l->status[index] = http_status;
}

static mt_status contract_done(void *user, int index, const mt_expert_reply *r) {
    contract_log *l = user;
    assert_int_equal(l->attempts[index], 1); /* the attempt is reported before the reply */
    assert_int_equal(r->attempts, 1);
    assert_int_equal(r->http_status, l->status[index]);
    l->done[index]++;
    l->ok[index] = r->ok;
    if (r->ok) {
        assert_null(r->error);
        l->tokens += r->prompt_tokens + r->completion_tokens;
    } else {
        assert_null(r->content);
        assert_non_null(r->error);
        snprintf(l->error[index], sizeof l->error[index], "%s", r->error);
        assert_int_equal(r->prompt_tokens + r->completion_tokens, 0);
    }
    return MT_OK;
}

/* Job 1 fails with no message, job 2 "succeeds" with no content, the rest answer. */
static int odd_script(void *user, const mt_expert_req *req, int request_number, char **content,
                      char **error) {
    (void)user, (void)error;
    if (request_number == 1) return 1;
    if (request_number == 2) return 0;
    return answer(NULL, req, request_number, content, error);
}

static void test_fake_contract(void **state) {
    (void)state;
    mt_expert_req reqs[N_JOBS];
    for (int i = 0; i < N_JOBS; i++) reqs[i] = js.jobs[i].req;
    fake_expert *f = fake_expert_new("fake-c", odd_script, NULL);
    assert_non_null(f);
    f->order = FAKE_ORDER_SHUFFLED;
    f->max_requests = 4;
    contract_log l = {0};
    mt_expert_cb cb = {.on_attempt = contract_attempt, .on_done = contract_done, .user = &l};
    assert_int_equal(f->base.run(&f->base, reqs, N_JOBS, &cb), MT_ERR_BUDGET);
    assert_non_null(strstr(mt_last_error(), "budget"));
    for (int i = 0; i < N_JOBS; i++) {
        assert_int_equal(l.done[i], i < 4); /* nothing reported for the unsent */
        assert_int_equal(l.attempts[i], i < 4);
    }
    assert_int_equal(l.ok[0] + l.ok[1] + l.ok[2] + l.ok[3], 2);
    assert_int_equal(l.status[1], 500);
    assert_string_equal(l.error[1], "scripted failure");
    assert_int_equal(l.status[2], 500);
    assert_string_equal(l.error[2], "the script answered with no content");
    assert_int_equal(f->base.requests_sent, 4);
    assert_int_equal(f->n_received, 4);
    const int64_t want = want_prompt_tokens(0) + want_completion_tokens(0) + want_prompt_tokens(3) +
                         want_completion_tokens(3);
    assert_int_equal(l.tokens, want);
    assert_int_equal(f->base.prompt_tokens + f->base.completion_tokens, want);
    assert_true(f->base.cost == 0.0); /* no prices set */
    mt_expert_free(&f->base);
}

static void assert_updates(const collector *c, int from, int to, int64_t first_done,
                           int64_t last_done) {
    int64_t prev = first_done;
    for (int i = from; i < to; i++) {
        assert_int_equal(c->ev[i], MT_TASK_UPDATE);
        assert_true(c->label_ok[i]);
        assert_int_equal(c->total[i], N_JOBS);
        assert_true(c->done[i] == prev + 1);
        prev = c->done[i];
    }
    assert_true(prev == last_done);
}

static void test_reporter(void **state) {
    (void)state;
    fake_expert *f = new_fake("fake-a", NULL);
    f->max_requests = 2;
    collector c = {0};
    mt_reporter rep = {.task = on_task, .note = on_note, .user = &c};
    sink k = {.fail_index = -1};
    mt_expert_pass_stats ps;
    assert_int_equal(pass_on(ts.store, f, STAGE, N_JOBS, &k, &rep, &ps), MT_ERR_BUDGET);
    /* START at 0 of 6, one UPDATE per reply, FINISH */
    assert_int_equal(c.n, 4);
    assert_int_equal(c.ev[0], MT_TASK_START);
    assert_true(c.label_ok[0]);
    assert_int_equal(c.done[0], 0);
    assert_int_equal(c.total[0], N_JOBS);
    assert_updates(&c, 1, 3, 0, 2);
    assert_int_equal(c.ev[3], MT_TASK_FINISH);
    assert_int_equal(c.done[3], 2);

    /* The next pass starts at what the first one did. */
    f->max_requests = 0;
    collector c2 = {0};
    rep.user = &c2;
    assert_int_equal(pass_on(ts.store, f, STAGE, N_JOBS, &k, &rep, &ps), MT_OK);
    assert_int_equal(c2.n, 1 + 4 + 1);
    assert_int_equal(c2.ev[0], MT_TASK_START);
    assert_int_equal(c2.done[0], 2);
    assert_updates(&c2, 1, 5, 2, N_JOBS);
    assert_int_equal(c2.ev[5], MT_TASK_FINISH);
    assert_int_equal(c2.done[5], N_JOBS);
    assert_int_equal(c.notes + c2.notes, 0);

    /* A NULL reporter and one without callbacks are silent and change nothing. */
    mt_reporter empty = {0};
    assert_int_equal(pass_on(ts.store, f, "stage_null", N_JOBS, &k, NULL, &ps), MT_OK);
    assert_stats(&ps, N_JOBS, 0, N_JOBS, 0, 0, 0);
    fake_expert *g = new_fake("fake-b", NULL);
    assert_int_equal(pass_on(ts.store, g, "stage_empty", N_JOBS, &k, &empty, &ps), MT_OK);
    assert_stats(&ps, N_JOBS, 0, 0, N_JOBS, 0, 0);
    for (int i = 0; i < N_JOBS; i++) assert_item(ts.store, "stage_empty", i, MT_ITEM_DONE);
    mt_expert_free(&g->base);
    mt_expert_free(&f->base);
}

/* Items served from the cache count as done from the start, and progress never goes back. */
static void test_reporter_with_cached_items(void **state) {
    (void)state;
    fake_expert *f = new_fake("fake-a", NULL);
    sink k = {.fail_index = -1};
    mt_expert_pass_stats ps;
    assert_int_equal(run_pass(f, STAGE, 3, &k, &ps), MT_OK); /* caches jobs 0..2 */
    collector c = {0};
    mt_reporter rep = {.task = on_task, .user = &c};
    assert_int_equal(pass_on(ts.store, f, "stage_more", N_JOBS, &k, &rep, &ps), MT_OK);
    assert_stats(&ps, N_JOBS, 0, 3, 3, 0, 0);
    assert_int_equal(c.n, 1 + 3 + 1);
    assert_int_equal(c.ev[0], MT_TASK_START);
    assert_int_equal(c.done[0], 3);
    assert_updates(&c, 1, 4, 3, N_JOBS);
    assert_int_equal(c.ev[4], MT_TASK_FINISH);
    assert_int_equal(c.done[4], N_JOBS);
    mt_expert_free(&f->base);
}

static void test_empty_pass(void **state) {
    (void)state;
    fake_expert *f = new_fake("fake-a", NULL);
    sink k = {.fail_index = -1};
    mt_expert_pass_stats ps = {.total = 99, .answered = 99};
    assert_int_equal(run_pass(f, STAGE, 0, &k, &ps), MT_OK);
    assert_stats(&ps, 0, 0, 0, 0, 0, 0);
    assert_int_equal(f->n_received, 0);
    mt_expert_free(&f->base);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_all_answered),
        T(test_rerun_sends_nothing),
        T(test_request_cache),
        T(test_failure_then_retry),
        T(test_on_reply_error_rolls_back),
        T(test_budget_stop_and_resume),
        T(test_completion_order_does_not_matter),
        T(test_fake_orders_and_aborts),
        T(test_fake_contract),
        T(test_reporter),
        T(test_reporter_with_cached_items),
        T(test_empty_pass),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
