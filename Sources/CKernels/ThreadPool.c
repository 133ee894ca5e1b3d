// A thread pool whose idle workers spin for a short while before they sleep, so that the next parallel region starts
// within a microsecond or so instead of after a futex wake-up (tens of microseconds through libdispatch). At batch 1
// a network runs hundreds of regions of a few microseconds each; with libdispatch two cores ran it slower than one.

#include "CKernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void relax(void) { _mm_pause(); }
#else
static inline void relax(void) { sched_yield(); }
#endif

enum { MAX_HELPERS = 255 };
// How long an idle helper spins before it sleeps on the condition variable.
static const long spin_nanoseconds = 200000;

static struct {
    atomic_ulong generation;  // incremented once per region; helpers wait for it to change
    atomic_int remaining;     // helpers that have not yet finished the current region
    atomic_int sleepers;      // helpers asleep (or about to be) on `wake`
    atomic_int busy;          // a region is running: nested or concurrent calls run inline
    int helpers;              // helper threads started (they live until the process exits)
    wc_pool_task task;
    void *context;
    int workers;              // workers in the current region, the caller included
    pthread_mutex_t lock;
    pthread_cond_t wake;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

// Whether this thread is running a part of a region (nested regions then run inline: `wc_pool_in_part`).
static __thread int in_part;

int wc_pool_in_part(void) { return in_part; }

// task(context, worker) as a part of a region on this thread.
static void run_part(wc_pool_task task, void *context, int worker) {
    const int outer = in_part;
    in_part = 1;
    task(context, worker);
    in_part = outer;
}

static long now_nanoseconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000000000L + t.tv_nsec;
}

// The generation current when each helper was started: a region published before the helper first runs is still its.
static unsigned long start_generation[MAX_HELPERS + 1];

static void *helper_main(void *argument) {
    const int index = (int)(long)argument;  // 1 ... helpers; the caller is worker 0
    unsigned long seen = start_generation[index];
    for (;;) {
        unsigned long current = atomic_load_explicit(&pool.generation, memory_order_acquire);
        if (current == seen) {
            long deadline = now_nanoseconds() + spin_nanoseconds;
            for (int spins = 1; current == seen; spins++) {
                if (spins & 63) relax(); else sched_yield();  // yield: a thread on this core may need it more
                current = atomic_load_explicit(&pool.generation, memory_order_acquire);
                if (current == seen && (spins & 255) == 0 && now_nanoseconds() > deadline) {
                    pthread_mutex_lock(&pool.lock);
                    atomic_fetch_add(&pool.sleepers, 1);
                    while ((current = atomic_load(&pool.generation)) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
                    atomic_fetch_sub(&pool.sleepers, 1);
                    pthread_mutex_unlock(&pool.lock);
                }
            }
        }
        seen = current;
        // Every helper acknowledges every region (so the fields below are stable while anyone reads them); only the
        // first `workers - 1` run a part of it.
        if (index < pool.workers) run_part(pool.task, pool.context, index);
        atomic_fetch_sub_explicit(&pool.remaining, 1, memory_order_release);
    }
    return NULL;
}

static int start_helpers(int wanted) {
    if (wanted > MAX_HELPERS) wanted = MAX_HELPERS;
    while (pool.helpers < wanted) {
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        start_generation[pool.helpers + 1] = atomic_load(&pool.generation);  // stable: only the region holder changes it
        int failed = pthread_create(&thread, &attributes, helper_main, (void *)(long)(pool.helpers + 1));
        pthread_attr_destroy(&attributes);
        if (failed) break;
        pool.helpers++;
    }
    return pool.helpers;
}

void wc_pool_run(int workers, wc_pool_task task, void *context) {
    if (workers <= 1) {
        if (workers == 1) run_part(task, context, 0);
        return;
    }
    int expected = 0;
    if (!atomic_compare_exchange_strong(&pool.busy, &expected, 1)) {
        // Nested inside a region, or another thread's region is running: run every part here.
        for (int w = 0; w < workers; w++) run_part(task, context, w);
        return;
    }
    int helpers = start_helpers(workers - 1);
    if (helpers < workers - 1) {
        // Fewer threads than asked for (thread creation failed): the caller runs the parts no helper takes.
        for (int w = helpers + 1; w < workers; w++) run_part(task, context, w);
        workers = helpers + 1;
    }
    pool.task = task;
    pool.context = context;
    pool.workers = workers;
    atomic_store_explicit(&pool.remaining, helpers, memory_order_relaxed);
    atomic_fetch_add(&pool.generation, 1);  // sequentially consistent: publishes the fields above
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
    run_part(task, context, 0);
    for (int spins = 1; atomic_load_explicit(&pool.remaining, memory_order_acquire) > 0; spins++) {
        if (spins & 63) relax(); else sched_yield();
    }
    atomic_store(&pool.busy, 0);
}

// Pieces handed out as the workers come free: each worker runs the next piece not yet taken until none is left.
typedef struct {
    wc_pool_task task;
    void *context;
    long pieces;
    atomic_long next;
} pieces_region;

static void run_pieces(void *context, int worker) {
    (void)worker;
    pieces_region *region = context;
    for (long p; (p = atomic_fetch_add_explicit(&region->next, 1, memory_order_relaxed)) < region->pieces;)
        region->task(region->context, (int)p);
}

void wc_pool_run_pieces(int workers, long pieces, wc_pool_task task, void *context) {
    pieces_region region = {.task = task, .context = context, .pieces = pieces};
    atomic_init(&region.next, 0);
    wc_pool_run(workers, run_pieces, &region);
}
