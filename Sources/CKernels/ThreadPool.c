// A thread pool whose idle workers spin for a short while before they sleep, so that the next parallel region starts
// within a microsecond or so instead of after a futex wake-up (tens of microseconds through libdispatch). At batch 1
// a network runs hundreds of regions of a few microseconds each; with libdispatch two cores ran it slower than one.
//
// A region is a count of pieces that the caller and the helpers claim one at a time from a single atomic word, which
// holds the region's generation and the range of pieces not yet taken (the caller takes from its front, the helpers
// from its back: `take_pieces`). The caller returns once every piece has finished;
// it never waits for a helper that claimed none, so a helper that comes late (its core taken by another process, or by
// the hypervisor) costs the region nothing: it finds every piece taken and goes back to waiting. Before, the caller
// waited for every helper to check in at every region: with another process busy on the second core, MobileNetV2 at
// 64 px, batch 1, two threads, ran 386–465 images/s (one thread: 2,119); now 1,999–2,069. SqueezeNet 1.1 64 px at
// batch 1 775 → 3,027, EfficientNet-Lite0 at batch 1 59 → 222, ResNet-18 64 px at batch 64 893 → 965 (same run, the
// busy loop pinned to the second core). On an idle host even (MobileNetV2 64 px: 3,305–3,380 → 3,428–3,452).

#include "CKernels.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
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

// The claim word: generation (24 bits) | next piece from the front (20 bits) | end of the pieces not yet taken from the
// back (20 bits; the piece count when the region starts). A region of more pieces runs as several regions of at most
// MAX_PIECES.
#define PIECE_BITS 20
#define MAX_PIECES ((1L << PIECE_BITS) - 1)
static inline uint64_t word(uint64_t generation, uint64_t next, uint64_t pieces) {
    return generation << (2 * PIECE_BITS) | next << PIECE_BITS | pieces;
}
static inline uint64_t generation_of(uint64_t w) { return w >> (2 * PIECE_BITS); }
static inline long next_of(uint64_t w) { return (long)(w >> PIECE_BITS & MAX_PIECES); }
static inline long end_of(uint64_t w) { return (long)(w & MAX_PIECES); }

// A region's fields: they fill one cache line (aligned), which a helper reads when a region starts; unaligned (at 16
// bytes into a line in one build), `first` and `workers` lay on a second line, one more transfer between the cores a
// region. Two copies of the pool in one C harness, 400 rounds of 500 regions of two 2 µs pieces each, alternated:
// aligned quicker in 347 and 369 of 400 rounds run second, 124 of 400 run first; about 35 ns a region (of 2.2–2.4 µs).
struct __attribute__((aligned(64))) region {
    _Atomic uint64_t claim;   // see `word`; a new generation publishes the fields below
    atomic_long done;         // pieces of the current region that have finished
    // The current region's; written only between regions (every piece of the last one finished).
    _Atomic(wc_pool_task) task;
    _Atomic(void *) context;
    atomic_long first;        // the region's piece 0 is the caller's piece `first`
    atomic_int workers;       // threads that may take part, the caller included
};
_Static_assert(sizeof(struct region) == 64, "a region's fields fill one cache line");

static struct {
    struct region outer;
    atomic_int sleepers;      // helpers asleep (or about to be) on `wake`
    atomic_int busy;          // a region is running: calls from other threads run inline
    int helpers;              // helper threads started (they live until the process exits)
    pthread_mutex_t lock;
    pthread_cond_t wake;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

// A region started from inside a piece of the outer one, once another worker has finished its own outer pieces and
// waits for the rest (`idle`): passes side by side, one per thread, where one thread runs slower than the other (its
// core shared with another tenant) or got the larger pass; the idle worker then takes pieces of the running pass's
// nodes instead of waiting for it. SqueezeNet 1.1 at 64 px, batch 64 (two passes of 32 images): on this AVX2 host one
// thread's pass took 30–37 ms against the other's 19–27 for about 40 batches in a row. The same executor's batches
// alternated in one process with and without, two threads, batch 64, mean ms over 12 and 10 s: SqueezeNet 1.1 64 px
// 21.9 / 22.7 and 27.1 / 28.3, MobileNetV2 64 px 32.5 / 34.6 and 41.5 / 42.8, ResNet-18 64 px 98.0 / 101.1 and
// 98.1 / 102.8, AlexNet 134.1 / 140.2 and 120.6 / 126.1, VGG-16 163.8 / 166.9 and 183.9 / 182.6; the 224 px nets
// (passes of one or two images) and batch 1 even. A worker that took a piece and then lost its core to another process
// holds the region up for the rest of its time slice: with a busy loop pinned to the second vCPU that made SqueezeNet
// 1.1 64 px 47.1 ms a batch against 42.6 and MobileNetV2 64 px 87.4 against 63.0. So a region that waited for its
// helper longer than 50 µs, and longer than its publisher's own pieces took, stops the sharing for 100 ms
// (`blocked_until`; with it 45.5 / 45.3, 63.5 / 63.1, VGG-16 285.5 / 295.7 under the busy loop).
static struct region inner;
static struct __attribute__((aligned(64))) {
    atomic_int busy;          // a piece of the outer region holds `inner`
    atomic_int idle;          // workers of the outer region with no outer piece left to take, waiting for it to end
    atomic_long blocked_until;  // no sharing until then (`wc_pool_run_pieces`)
} nested;
static const long stall_nanoseconds = 50000, backoff_nanoseconds = 100000000;

// Whether nested regions may use idle workers (`wc_pool_share_idle`).
static atomic_int share_idle = 1;

void wc_pool_share_idle(int on) { atomic_store(&share_idle, on); }

// 0 outside any region; 1 running a piece of an outer region, 2 of an inner one, 3 of one run inline on the calling
// thread alone (`wc_pool_in_part`).
static __thread int in_part;

int wc_pool_in_part(void) { return in_part; }

static long now_nanoseconds(void);

int wc_pool_idle_workers(void) {
    if (in_part != 1 || !atomic_load_explicit(&share_idle, memory_order_relaxed)) return 0;
    const int idle = atomic_load_explicit(&nested.idle, memory_order_acquire);
    return idle > 0 && now_nanoseconds() >= atomic_load_explicit(&nested.blocked_until, memory_order_relaxed) ? idle : 0;
}

// The calling thread's limit on workers (0: none).
static __thread int worker_limit;

int wc_pool_worker_limit(void) { return worker_limit; }

int wc_pool_limit_workers(int workers) {
    const int previous = worker_limit;
    worker_limit = workers;
    return previous;
}

static void run_piece(wc_pool_task task, void *context, long piece, int depth) {
    const int outer = in_part;
    in_part = depth;
    task(context, (int)piece);
    in_part = outer;
}

// A two-worker region of two pieces: the share of its work in the caller's piece (piece 0) that would have both
// workers finish together (`wc_pool_caller_share`), learnt from each such region's two times. The two vCPUs of these
// VMs run at different speeds for seconds at a time (another tenant on a core), and an even split then leaves the quicker
// worker waiting: MobileNetV2 224 px at batch 1, two threads, the caller waited for the helper 5% of its own pieces'
// time in the host's usual state and 16–32% in slow ones. With the shares learnt, the same executor's batches alternated
// in one process with and without them (8–10 s, two threads, batch 1), mean µs: MobileNetV2 224 px 7,323 / 7,539 and
// 6,011 / 6,099, EfficientNet-Lite0 8,652 / 8,946 and 7,678 / 7,849, SqueezeNet 1.1 64 px 589 / 607, 224 px 7,473 /
// 7,748, MobileNetV2 64 px 1,132 / 1,149; least batches even (docs/RESULTS.md, session 54).
static _Atomic double caller_share = 0.5;
// The helper's time runs from the region's start to its piece's end, so a helper that starts late counts as slower.
static _Atomic uint64_t timed_generation;         // the outer region being timed so (`publish`; 0: none)
static atomic_long helper_finished;               // when a helper finished its piece of that region (ns)
static _Atomic uint64_t helper_finished_generation;  // that region's generation
static atomic_int by_speed = 1;  // `wc_pool_split_by_speed`

void wc_pool_split_by_speed(int on) { atomic_store(&by_speed, on); }

double wc_pool_caller_share(void) {
    return in_part || !atomic_load_explicit(&by_speed, memory_order_relaxed)
        ? 0.5 : atomic_load_explicit(&caller_share, memory_order_relaxed);
}

// Moves the learnt share an eighth of the way towards the one that would have made this region's two pieces (`share`
// of the work in the caller's) finish together, had each worker kept its speed; within [0.2, 0.8].
static void learn_share(double share, long caller_nanoseconds, long helper_nanoseconds) {
    if (caller_nanoseconds <= 0 || helper_nanoseconds <= 0) return;
    const double caller = share / caller_nanoseconds, helper = (1 - share) / helper_nanoseconds;
    double s = atomic_load_explicit(&caller_share, memory_order_relaxed);
    s += (caller / (caller + helper) - s) / 8;
    atomic_store_explicit(&caller_share, s < 0.2 ? 0.2 : s > 0.8 ? 0.8 : s, memory_order_relaxed);
}

// Claims and runs pieces of region `generation` of `r` until none is left (or a newer region is published). A claim
// succeeds only while a piece is still untaken, so the region has not finished and its fields, read before the claim,
// are its. The caller (worker 0) takes pieces from the front, the helpers from the back: with two workers the caller
// runs the region's first pieces and the helper its last ones, the same split in every region, so that a layer split
// like the one before it reads what the same core wrote (a 1×1 layer's output channels and the depthwise layer after
// it). Taken as they came, either worker could win piece 0. MobileNetV2 224 px at batch 1, two threads, 3 alternated
// rounds, least µs a pass: 1,748–1,756 → 1,717–1,737; 64 px, SqueezeNet 1.1 64 px and EfficientNet-Lite0 at batch 1
// and the 64 px nets at batch 64 within noise. A worker of the outer region that finds no piece left to take counts
// itself `idle` before it reports its last piece done (so that it is counted before the region can end). Returns how
// many pieces it ran.
static int take_pieces(struct region *r, uint64_t generation, int index) {
    int taken = 0;
    const int depth = r == &pool.outer ? 1 : 2;
    uint64_t w = atomic_load_explicit(&r->claim, memory_order_acquire);
    while (generation_of(w) == generation && next_of(w) < end_of(w)) {
        const wc_pool_task task = atomic_load_explicit(&r->task, memory_order_relaxed);
        void *const context = atomic_load_explicit(&r->context, memory_order_relaxed);
        const long first = atomic_load_explicit(&r->first, memory_order_relaxed);
        if (index >= atomic_load_explicit(&r->workers, memory_order_relaxed)) return taken;
        const long piece = index == 0 ? next_of(w) : end_of(w) - 1;
        const uint64_t claimed = index == 0 ? w + (1ull << PIECE_BITS) : w - 1;
        if (!atomic_compare_exchange_weak_explicit(&r->claim, &w, claimed, memory_order_acquire,
                                                   memory_order_acquire))
            continue;  // w holds the word as it is now
        run_piece(task, context, first + piece, depth);
        taken++;
        if (depth == 1 && index > 0 && atomic_load_explicit(&timed_generation, memory_order_relaxed) == generation) {
            // Published by the release below.
            atomic_store_explicit(&helper_finished, now_nanoseconds(), memory_order_relaxed);
            atomic_store_explicit(&helper_finished_generation, generation, memory_order_relaxed);
        }
        w = atomic_load_explicit(&r->claim, memory_order_acquire);
        if (depth == 1 && (generation_of(w) != generation || next_of(w) >= end_of(w)))
            atomic_fetch_add_explicit(&nested.idle, 1, memory_order_release);
        atomic_fetch_add_explicit(&r->done, 1, memory_order_release);
    }
    return taken;
}

// Takes pieces of the inner region, if one is running with pieces left (as worker 1: from the back). Returns whether it
// took part.
static int help_inner(void) {
    const uint64_t w = atomic_load_explicit(&inner.claim, memory_order_acquire);
    if (next_of(w) >= end_of(w)) return 0;
    take_pieces(&inner, generation_of(w), 1);
    return 1;
}

static long now_nanoseconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000000000L + t.tv_nsec;
}

// The generation current when each helper was started: a region published before the helper first runs is still its.
static uint64_t start_generation[MAX_HELPERS + 1];

static void *helper_main(void *argument) {
    const int index = (int)(long)argument;  // 1 ... helpers; the caller is worker 0
    uint64_t seen = start_generation[index];
    for (;;) {
        uint64_t current = generation_of(atomic_load_explicit(&pool.outer.claim, memory_order_acquire));
        if (current == seen) {
            // This wait and the caller's in `wc_pool_run_pieces` pause, and call sched_yield every 64th turn (a pause
            // 25 ns here, a sched_yield about 1 µs). Pausing only for the first 512 turns of each wait made batch-1
            // inference on two threads 1–2% quicker (MobileNetV2 64 px, the same executor's batches alternated in one
            // process) but training at batch 64 3–6% slower (wc-train-bench on the small MobileNetV2, fresh processes
            // alternated: the old waits quicker in 13 of 18 rounds): not kept (docs/RESULTS.md, session 50).
            long deadline = now_nanoseconds() + spin_nanoseconds;
            for (int spins = 1; current == seen; spins++) {
                if (help_inner()) deadline = now_nanoseconds() + spin_nanoseconds;
                else if (spins & 63) relax(); else sched_yield();  // yield: a thread on this core may need it more
                current = generation_of(atomic_load_explicit(&pool.outer.claim, memory_order_acquire));
                if (current == seen && (spins & 255) == 0 && now_nanoseconds() > deadline) {
                    pthread_mutex_lock(&pool.lock);
                    atomic_fetch_add(&pool.sleepers, 1);
                    while ((current = generation_of(atomic_load(&pool.outer.claim))) == seen)
                        pthread_cond_wait(&pool.wake, &pool.lock);
                    atomic_fetch_sub(&pool.sleepers, 1);
                    pthread_mutex_unlock(&pool.lock);
                }
            }
        }
        seen = current;
        take_pieces(&pool.outer, current, index);
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
        // Only the region holder changes it.
        start_generation[pool.helpers + 1] = generation_of(atomic_load(&pool.outer.claim));
        int failed = pthread_create(&thread, &attributes, helper_main, (void *)(long)(pool.helpers + 1));
        pthread_attr_destroy(&attributes);
        if (failed) break;
        pool.helpers++;
    }
    return pool.helpers;
}

// Publishes `count` pieces of `task` (from piece `first`) as the next region of `r`, for `workers` workers.
// With `timed`, a helper's piece of it reports when it finished (`learn_share`).
static uint64_t publish(struct region *r, wc_pool_task task, void *context, long first, int workers, long count,
                        int timed) {
    atomic_store_explicit(&r->task, task, memory_order_relaxed);
    atomic_store_explicit(&r->context, context, memory_order_relaxed);
    atomic_store_explicit(&r->first, first, memory_order_relaxed);
    atomic_store_explicit(&r->workers, workers, memory_order_relaxed);
    atomic_store_explicit(&r->done, 0, memory_order_relaxed);
    const uint64_t generation = (generation_of(atomic_load(&r->claim)) + 1) & ((1ull << (64 - 2 * PIECE_BITS)) - 1);
    if (r == &pool.outer) atomic_store_explicit(&timed_generation, timed ? generation : 0, memory_order_relaxed);
    atomic_store(&r->claim, word(generation, 0, (uint64_t)count));  // sequentially consistent: publishes the fields
    return generation;
}

// Waits until `count` pieces of `r`'s current region have finished; while the outer region's run on, takes pieces of the
// inner one that they start.
static void wait_for_pieces(struct region *r, long count) {
    for (int spins = 1; atomic_load_explicit(&r->done, memory_order_acquire) < count; spins++) {
        if (r == &pool.outer && help_inner()) continue;
        if (spins & 63) relax(); else sched_yield();
    }
}

void wc_pool_run_pieces(int workers, long pieces, wc_pool_task task, void *context, double first_share) {
    if (pieces <= 0) return;
    int expected = 0;
    if (workers > 1 && pieces > 1 && wc_pool_idle_workers() > 0
        && atomic_compare_exchange_strong(&nested.busy, &expected, 1)) {
        // Inside a piece of the outer region, with a worker idle: a region of its own, which that worker joins.
        for (long first = 0; first < pieces; first += MAX_PIECES) {
            const long count = pieces - first < MAX_PIECES ? pieces - first : MAX_PIECES;
            const long start = now_nanoseconds();
            const uint64_t generation = publish(&inner, task, context, first, workers, count, 0);
            take_pieces(&inner, generation, 0);
            const long own = now_nanoseconds();
            wait_for_pieces(&inner, count);
            // A helper that took a piece and then lost its core (another process on it) held this region up: no
            // sharing for a while.
            const long end = now_nanoseconds();
            if (end - own > stall_nanoseconds && end - own > own - start)
                atomic_store_explicit(&nested.blocked_until, end + backoff_nanoseconds, memory_order_relaxed);
        }
        atomic_store(&nested.busy, 0);
        return;
    }
    expected = 0;
    if (workers <= 1 || pieces == 1 || in_part || !atomic_compare_exchange_strong(&pool.busy, &expected, 1)) {
        // One worker, one piece, or nested inside a region / another thread's region running: every piece here.
        for (long p = 0; p < pieces; p++) run_piece(task, context, p, in_part ? in_part : 3);
        return;
    }
    const int helpers = start_helpers(workers - 1);
    for (long first = 0; first < pieces; first += MAX_PIECES) {
        const long count = pieces - first < MAX_PIECES ? pieces - first : MAX_PIECES;
        atomic_store(&nested.idle, 0);
        // Timed to learn the caller's share from (`learn_share`) where the caller runs piece 0 and a helper piece 1.
        const int timed = first_share > 0 && count == 2 && workers == 2
                          && atomic_load_explicit(&by_speed, memory_order_relaxed);
        const long start = timed ? now_nanoseconds() : 0;
        const uint64_t generation = publish(&pool.outer, task, context, first,
                                            helpers + 1 < workers ? helpers + 1 : workers, count, timed);
        if (atomic_load(&pool.sleepers) > 0) {
            pthread_mutex_lock(&pool.lock);
            pthread_cond_broadcast(&pool.wake);
            pthread_mutex_unlock(&pool.lock);
        }
        const int taken = take_pieces(&pool.outer, generation, 0);
        const long own = timed ? now_nanoseconds() : 0;
        wait_for_pieces(&pool.outer, count);
        if (timed && taken == 1
            && atomic_load_explicit(&helper_finished_generation, memory_order_relaxed) == generation)
            learn_share(first_share, own - start, atomic_load_explicit(&helper_finished, memory_order_relaxed) - start);
    }
    atomic_store(&pool.busy, 0);
}
