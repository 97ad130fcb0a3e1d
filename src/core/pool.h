/* meteor's own worker threads for the kernels' parallel loops.
 *
 * Why not OpenMP: its threads spin while they wait, and its loops hand each thread a fixed
 * share. When another process keeps one core busy (an expert server beside meteor, the
 * normal case), the thread sharing that core burns its time slices spinning and is
 * preempted in the middle of its share, and the whole team waits for it: two threads ran
 * several times slower than one. Here tasks are taken one at a time by whichever thread
 * is free, idle workers spin only briefly before they sleep, and when the calling thread
 * keeps finding itself waiting for a preempted worker it runs the loops alone for a while
 * (see pool.c).
 *
 * Results never depend on which thread runs a task: a task writes only its own outputs
 * and the worker index only picks scratch memory. */
#ifndef MT_CORE_POOL_H
#define MT_CORE_POOL_H

#include <stddef.h>
#include <stdint.h>

/* Upper bound on the thread count (callers size per-worker scratch arrays with it). */
enum { MT_POOL_MAX_THREADS = 64 };

/* How many tasks a loop cuts its work into per thread: with one share per thread, a thread
 * slowed by another process on its core holds the whole loop back by its share; with
 * several, the other threads take its remaining tasks and it delays the loop by one. */
enum { MT_POOL_TASKS_PER_THREAD = 4 };

/* Runs task `task` of a loop on the thread numbered `worker` (0 .. mt_pool_threads() - 1;
 * it names the thread, for per-thread scratch, never the work). Returns 0, or non-zero
 * for a failure (the loop still runs every other task). */
typedef int (*mt_pool_task_fn)(void *ctx, int task, int worker);

/* Runs fn for every task in [0, n_tasks), each exactly once, on up to mt_pool_threads()
 * threads including the caller, and returns when all have run: 0, or 1 if any task
 * failed. A call made from inside a task, or while another thread's loop runs, runs its
 * tasks on the calling thread. */
int mt_pool_run(int n_tasks, mt_pool_task_fn fn, void *ctx);

/* Runs fn(ctx, begin, end) over [0, n) cut into consecutive ranges of at least `grain`
 * items, a few per thread, so a slow thread delays the loop by one short range. */
typedef void (*mt_pool_range_fn)(void *ctx, int64_t begin, int64_t end);
void mt_pool_for(int64_t n, int64_t grain, mt_pool_range_fn fn, void *ctx);

/* Sets the thread count (0 = the cores this process may run on) and clears any back-off.
 * Waits for a loop in progress to end. */
void mt_pool_set_threads(int n);
int mt_pool_threads(void);

/* A float buffer per worker for one loop, allocated by the first task a worker runs
 * (so a loop run by fewer threads allocates fewer). Zero-initialise with .floats set. */
typedef struct {
    size_t floats;
    float *buf[MT_POOL_MAX_THREADS];
} mt_worker_bufs;

/* Worker `worker`'s buffer, or NULL when out of memory. */
float *mt_worker_buf(mt_worker_bufs *b, int worker);
void mt_worker_bufs_free(mt_worker_bufs *b);

/* Counters since the process started, for benchmarks and tests. */
typedef struct {
    int64_t loops;      /* mt_pool_run calls that had more than one task */
    int64_t solo_loops; /* of those, run on the caller alone (nested, or while backing off) */
    int64_t stalls;     /* loops whose caller waited long for a preempted worker */
} mt_pool_stats;
mt_pool_stats mt_pool_get_stats(void);

#endif
