#include "core/pool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* How long an idle worker polls for the next loop before it sleeps. A decoding step's
 * loops follow each other within microseconds, so a worker that slept between them
 * would pay a wake-up on every one; a worker that polled much longer would spend the
 * time slices of a core it shares with another process. */
#define SPIN_NS 100000
/* A loop whose caller, done with every task it could take, waited longer than this for
 * a worker (and longer than its own share took) is taken as a preempted worker: the
 * worker was descheduled in the middle of a task for another process's time slice. Much
 * shorter waits happen on a quiet machine too (a page fault, a kernel thread). */
#define STALL_NS 500000
/* After a stall the caller runs loops alone for a back-off period, doubling while the
 * stalls go on (the other core stays busy) and reset once loops run together without one
 * for RECOVER_NS. */
#define BACKOFF_MIN_NS 20000000
#define BACKOFF_MAX_NS 1000000000
#define RECOVER_NS 100000000

/* The claim word: the loop's number in the high 32 bits, its next task in the low 32.
 * A worker that reads a loop's fields and then takes a task with a compare-and-swap on
 * this word knows the fields were that loop's: a new loop changes the word before it
 * changes the fields, and numbers only grow. */
#define CLAIM_CLOSED 0xffffffffu

static struct {
    pthread_mutex_t run_lock; /* held by the thread whose loop the workers serve */
    atomic_int threads;       /* configured, caller included; 0 until first asked */
    int started;              /* workers running */
    pthread_t workers[MT_POOL_MAX_THREADS];
    unsigned start_generation[MT_POOL_MAX_THREADS];

    /* the current loop */
    _Atomic uint64_t claim;
    _Atomic(mt_pool_task_fn) fn;
    _Atomic(void *) ctx;
    atomic_int n_tasks;
    atomic_int done; /* tasks finished; the caller sleeps on it */
    atomic_int failed;
    atomic_int caller_sleeping;

    atomic_uint generation; /* bumped for each loop posted; idle workers sleep on it */
    atomic_int sleepers;
    atomic_int stop;

    /* back-off, touched only by the run_lock holder */
    int64_t solo_until, backoff, parallel_since;
    uint32_t loop_id;

    _Atomic int64_t loops, solo_loops, stalls;
} pool = {.run_lock = PTHREAD_MUTEX_INITIALIZER, .backoff = BACKOFF_MIN_NS};

static _Thread_local int in_task;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void futex_wait(atomic_int *word, int expected) {
    syscall(SYS_futex, (int *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake(atomic_int *word) {
    syscall(SYS_futex, (int *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static int run_task(mt_pool_task_fn fn, void *ctx, int task, int worker) {
    const int outer = in_task;
    in_task = 1;
    const int rc = fn(ctx, task, worker);
    in_task = outer;
    return rc;
}

/* Takes and runs tasks of the current loop until none is left. */
static void take_tasks(int worker) {
    for (;;) {
        uint64_t v = atomic_load(&pool.claim);
        const uint32_t next = (uint32_t)v;
        if (next == CLAIM_CLOSED) return;
        const mt_pool_task_fn fn = atomic_load(&pool.fn);
        void *const ctx = atomic_load(&pool.ctx);
        const int n = atomic_load(&pool.n_tasks);
        if ((int64_t)next >= n) return;
        if (!atomic_compare_exchange_weak(&pool.claim, &v, v + 1)) continue;
        if (run_task(fn, ctx, (int)next, worker)) atomic_store(&pool.failed, 1);
        if (atomic_fetch_add(&pool.done, 1) + 1 == n && atomic_load(&pool.caller_sleeping))
            futex_wake(&pool.done);
    }
}

static void *worker_main(void *arg) {
    const int worker = (int)(intptr_t)arg;
    /* the generation when the worker was made: a loop posted before the thread first ran
     * is still seen as new */
    unsigned seen = pool.start_generation[worker];
    for (;;) {
        /* stop is set before the generation moves, so a worker that started after the
         * move still sees it here */
        if (atomic_load(&pool.stop)) return NULL;
        unsigned g = atomic_load(&pool.generation);
        if (g == seen) {
            const int64_t until = now_ns() + SPIN_NS;
            for (int i = 1; (g = atomic_load(&pool.generation)) == seen; i++) {
                cpu_relax();
                if (!(i & 63) && now_ns() > until) break;
            }
            if (g == seen) {
                atomic_fetch_add(&pool.sleepers, 1);
                while ((g = atomic_load(&pool.generation)) == seen)
                    futex_wait((atomic_int *)&pool.generation, (int)seen);
                atomic_fetch_sub(&pool.sleepers, 1);
            }
        }
        seen = g;
        if (atomic_load(&pool.stop)) return NULL;
        take_tasks(worker);
    }
}

static void stop_workers(void) {
    atomic_store(&pool.stop, 1);
    atomic_fetch_add(&pool.generation, 1);
    futex_wake((atomic_int *)&pool.generation);
    for (int i = 0; i < pool.started; i++) pthread_join(pool.workers[i], NULL);
    pool.started = 0;
    atomic_store(&pool.stop, 0);
}

static int default_threads(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static int clamp_threads(int n) {
    if (n <= 0) n = default_threads();
    return n > MT_POOL_MAX_THREADS ? MT_POOL_MAX_THREADS : n;
}

/* Workers start with the first loop that needs them; a thread that cannot be made
 * leaves the loops to fewer threads. */
static void start_workers(void) {
    while (pool.started < atomic_load(&pool.threads) - 1) {
        const int id = pool.started + 1;
        pool.start_generation[id] = atomic_load(&pool.generation);
        if (pthread_create(&pool.workers[pool.started], NULL, worker_main, (void *)(intptr_t)id))
            break;
        pool.started++;
    }
}

void mt_pool_set_threads(int n) {
    n = clamp_threads(n);
    pthread_mutex_lock(&pool.run_lock);
    if (n != atomic_load(&pool.threads)) {
        stop_workers();
        atomic_store(&pool.threads, n);
    }
    /* a new configuration starts without a back-off */
    pool.solo_until = pool.parallel_since = 0;
    pool.backoff = BACKOFF_MIN_NS;
    pthread_mutex_unlock(&pool.run_lock);
}

/* Lock-free: tasks ask it while their loop holds run_lock. */
int mt_pool_threads(void) {
    int n = atomic_load(&pool.threads);
    if (n) return n;
    int unset = 0;
    atomic_compare_exchange_strong(&pool.threads, &unset, clamp_threads(0));
    return atomic_load(&pool.threads);
}

static int run_alone(int n_tasks, mt_pool_task_fn fn, void *ctx) {
    int failed = 0;
    for (int t = 0; t < n_tasks; t++) failed |= run_task(fn, ctx, t, 0) != 0;
    return failed;
}

/* Waits until the workers have finished the tasks they took. */
static void wait_done(int n_tasks) {
    const int64_t until = now_ns() + SPIN_NS;
    int d;
    for (int i = 1; (d = atomic_load(&pool.done)) != n_tasks; i++) {
        cpu_relax();
        if (!(i & 63) && now_ns() > until) break;
    }
    if (d == n_tasks) return;
    atomic_store(&pool.caller_sleeping, 1);
    while ((d = atomic_load(&pool.done)) != n_tasks) futex_wait(&pool.done, d);
    atomic_store(&pool.caller_sleeping, 0);
}

/* Called with run_lock held and the workers started. */
static int run_together(int n_tasks, mt_pool_task_fn fn, void *ctx) {
    const uint32_t id = ++pool.loop_id;
    atomic_store(&pool.claim, (uint64_t)id << 32 | CLAIM_CLOSED);
    atomic_store(&pool.fn, fn);
    atomic_store(&pool.ctx, ctx);
    atomic_store(&pool.n_tasks, n_tasks);
    atomic_store(&pool.done, 0);
    atomic_store(&pool.failed, 0);
    atomic_store(&pool.claim, (uint64_t)id << 32);
    atomic_fetch_add(&pool.generation, 1);
    if (atomic_load(&pool.sleepers)) futex_wake((atomic_int *)&pool.generation);

    const int64_t t0 = now_ns();
    take_tasks(0);
    const int64_t t1 = now_ns();
    wait_done(n_tasks);
    const int64_t t2 = now_ns();
    atomic_store(&pool.claim, (uint64_t)id << 32 | CLAIM_CLOSED);

    const int64_t waited = t2 - t1;
    if (waited > STALL_NS && waited > t1 - t0) {
        atomic_fetch_add(&pool.stalls, 1);
        pool.solo_until = t2 + pool.backoff;
        if (pool.backoff < BACKOFF_MAX_NS) pool.backoff *= 2;
        pool.parallel_since = 0;
    } else if (!pool.parallel_since) {
        pool.parallel_since = t0;
    } else if (t2 - pool.parallel_since > RECOVER_NS) {
        pool.backoff = BACKOFF_MIN_NS;
    }
    return atomic_load(&pool.failed);
}

int mt_pool_run(int n_tasks, mt_pool_task_fn fn, void *ctx) {
    if (n_tasks <= 0) return 0;
    if (n_tasks == 1 || in_task) return run_alone(n_tasks, fn, ctx);
    if (pthread_mutex_trylock(&pool.run_lock)) return run_alone(n_tasks, fn, ctx);
    atomic_fetch_add(&pool.loops, 1);
    int failed;
    if (mt_pool_threads() < 2 || now_ns() < pool.solo_until) {
        atomic_fetch_add(&pool.solo_loops, 1);
        failed = run_alone(n_tasks, fn, ctx);
    } else {
        start_workers();
        failed = pool.started ? run_together(n_tasks, fn, ctx) : run_alone(n_tasks, fn, ctx);
    }
    pthread_mutex_unlock(&pool.run_lock);
    return failed;
}

typedef struct {
    mt_pool_range_fn fn;
    void *ctx;
    int64_t n;
    int tasks;
} range_job;

static int range_task(void *ctx, int task, int worker) {
    (void)worker;
    const range_job *j = ctx;
    const int64_t begin = j->n * task / j->tasks, end = j->n * (task + 1) / j->tasks;
    if (begin < end) j->fn(j->ctx, begin, end);
    return 0;
}

void mt_pool_for(int64_t n, int64_t grain, mt_pool_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    int64_t tasks = (n + grain - 1) / grain;
    const int64_t most = (int64_t)mt_pool_threads() * MT_POOL_TASKS_PER_THREAD;
    if (tasks > most) tasks = most;
    if (tasks <= 1 || in_task) {
        fn(ctx, 0, n);
        return;
    }
    range_job j = {.fn = fn, .ctx = ctx, .n = n, .tasks = (int)tasks};
    mt_pool_run((int)tasks, range_task, &j);
}

float *mt_worker_buf(mt_worker_bufs *b, int worker) {
    if (!b->buf[worker]) b->buf[worker] = malloc(b->floats * sizeof(float));
    return b->buf[worker];
}

void mt_worker_bufs_free(mt_worker_bufs *b) {
    for (int w = 0; w < MT_POOL_MAX_THREADS; w++) free(b->buf[w]);
}

mt_pool_stats mt_pool_get_stats(void) {
    return (mt_pool_stats){.loops = atomic_load(&pool.loops),
                           .solo_loops = atomic_load(&pool.solo_loops),
                           .stalls = atomic_load(&pool.stalls)};
}
