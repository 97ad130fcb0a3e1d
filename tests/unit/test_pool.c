/* The kernels' worker pool: every task runs exactly once on a valid worker index, for
 * any thread count and task count; failures are reported; loops started from inside a
 * task or from a second thread run whole on their caller; a preempted worker (a task
 * that sleeps) makes the caller run the next loops alone. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/pool.h"

typedef struct {
    atomic_int *runs; /* per task */
    atomic_int bad_worker;
    int threads;
    int fail_task; /* -1: none */
} count_job;

static int count_task(void *ctx, int task, int worker) {
    count_job *j = ctx;
    atomic_fetch_add(&j->runs[task], 1);
    if (worker < 0 || worker >= j->threads) atomic_store(&j->bad_worker, 1);
    return task == j->fail_task;
}

static void run_counted(int threads, int tasks, int fail_task, int want_rc) {
    mt_pool_set_threads(threads);
    assert_int_equal(mt_pool_threads(), threads);
    atomic_int *runs = calloc((size_t)tasks + 1, sizeof *runs);
    count_job j = {.runs = runs, .threads = threads, .fail_task = fail_task};
    assert_int_equal(mt_pool_run(tasks, count_task, &j), want_rc);
    for (int t = 0; t < tasks; t++) assert_int_equal(atomic_load(&runs[t]), 1);
    assert_int_equal(atomic_load(&j.bad_worker), 0);
    free(runs);
}

static void test_every_task_once(void **state) {
    (void)state;
    const int threads[] = {1, 2, 3, 8};
    const int tasks[] = {0, 1, 2, 3, 7, 64, 1000};
    for (size_t a = 0; a < sizeof threads / sizeof *threads; a++)
        for (size_t b = 0; b < sizeof tasks / sizeof *tasks; b++)
            for (int rep = 0; rep < 20; rep++) run_counted(threads[a], tasks[b], -1, 0);
}

static void test_failure_reported(void **state) {
    (void)state;
    run_counted(2, 50, 17, 1);
    run_counted(2, 50, 0, 1);
    run_counted(1, 5, 4, 1);
    run_counted(2, 50, -1, 0);
}

typedef struct {
    atomic_int *hits;
    int64_t n;
    atomic_int bad_range;
} range_check;

/* cmocka's asserts must not run on a worker thread: errors are flagged for the caller */
static void mark_range(void *ctx, int64_t begin, int64_t end) {
    range_check *r = ctx;
    if (!(begin >= 0 && begin < end && end <= r->n)) atomic_store(&r->bad_range, 1);
    for (int64_t i = begin; i < end && i < r->n; i++) atomic_fetch_add(&r->hits[i], 1);
}

static void test_for_covers_range(void **state) {
    (void)state;
    mt_pool_set_threads(2);
    const int64_t sizes[] = {0, 1, 2, 5, 9, 100, 4097};
    const int64_t grains[] = {1, 3, 64, 100000};
    for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++)
        for (size_t b = 0; b < sizeof grains / sizeof *grains; b++) {
            range_check r = {.hits = calloc((size_t)sizes[a] + 1, sizeof(atomic_int)),
                             .n = sizes[a]};
            mt_pool_for(sizes[a], grains[b], mark_range, &r);
            assert_int_equal(atomic_load(&r.bad_range), 0);
            for (int64_t i = 0; i < sizes[a]; i++) assert_int_equal(atomic_load(&r.hits[i]), 1);
            free(r.hits);
        }
}

/* Each outer task runs an inner loop: it must run whole, on the task's thread. */
typedef struct {
    atomic_int inner_runs;
    atomic_int inner_wrong_thread;
} nest_job;

typedef struct {
    nest_job *outer;
    pthread_t self;
} inner_ctx;

static int inner_task(void *ctx, int task, int worker) {
    (void)task;
    inner_ctx *c = ctx;
    atomic_fetch_add(&c->outer->inner_runs, 1);
    if (!pthread_equal(pthread_self(), c->self) || worker != 0)
        atomic_store(&c->outer->inner_wrong_thread, 1);
    return 0;
}

static int outer_task(void *ctx, int task, int worker) {
    (void)task;
    (void)worker;
    inner_ctx c = {.outer = ctx, .self = pthread_self()};
    return mt_pool_run(10, inner_task, &c);
}

static void test_nested_runs_inline(void **state) {
    (void)state;
    mt_pool_set_threads(2);
    nest_job j = {0};
    assert_int_equal(mt_pool_run(16, outer_task, &j), 0);
    assert_int_equal(atomic_load(&j.inner_runs), 160);
    assert_int_equal(atomic_load(&j.inner_wrong_thread), 0);
}

typedef struct {
    int loops;
    int failures;
} caller_result;

static void *second_caller(void *arg) {
    caller_result *r = arg;
    atomic_int runs[37];
    for (int l = 0; l < r->loops; l++) {
        for (int t = 0; t < 37; t++) atomic_store(&runs[t], 0);
        count_job j = {.runs = runs, .threads = mt_pool_threads(), .fail_task = -1};
        if (mt_pool_run(37, count_task, &j)) r->failures++;
        for (int t = 0; t < 37; t++)
            if (atomic_load(&runs[t]) != 1) r->failures++;
        if (atomic_load(&j.bad_worker)) r->failures++;
    }
    return NULL;
}

static void test_two_callers(void **state) {
    (void)state;
    mt_pool_set_threads(2);
    caller_result a = {.loops = 2000}, b = {.loops = 2000};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, second_caller, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, second_caller, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.failures, 0);
    assert_int_equal(b.failures, 0);
}

/* A worker's task sleeps, as a worker preempted by another process would hold its task;
 * the caller's task waits until the worker's has started, so each loop has one of each.
 * The caller must notice the wait and run the next loops alone. */
typedef struct {
    atomic_int worker_started;
} stall_job;

static int stall_task(void *ctx, int task, int worker) {
    (void)task;
    stall_job *j = ctx;
    if (worker != 0) {
        atomic_store(&j->worker_started, 1);
        nanosleep(&(struct timespec){.tv_nsec = 50000000}, NULL);
        return 0;
    }
    for (int i = 0; i < 5000 && !atomic_load(&j->worker_started); i++)
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    return 0;
}

static void test_stall_backs_off(void **state) {
    (void)state;
    mt_pool_set_threads(2);
    const mt_pool_stats before = mt_pool_get_stats();
    stall_job j = {0};
    assert_int_equal(mt_pool_run(2, stall_task, &j), 0);
    assert_true(atomic_load(&j.worker_started));
    const mt_pool_stats stalled = mt_pool_get_stats();
    assert_int_equal(stalled.stalls, before.stalls + 1);
    atomic_int runs[2] = {0, 0};
    count_job c = {.runs = runs, .threads = 2, .fail_task = -1};
    mt_pool_run(2, count_task, &c);
    assert_int_equal(mt_pool_get_stats().solo_loops, stalled.solo_loops + 1);
    /* a new configuration forgets the back-off */
    mt_pool_set_threads(2);
    mt_pool_run(2, count_task, &c);
    assert_int_equal(mt_pool_get_stats().solo_loops, stalled.solo_loops + 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_task_once),  cmocka_unit_test(test_failure_reported),
        cmocka_unit_test(test_for_covers_range), cmocka_unit_test(test_nested_runs_inline),
        cmocka_unit_test(test_two_callers),      cmocka_unit_test(test_stall_backs_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
