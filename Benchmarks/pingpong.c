// How long two threads take to hand one cache line back and forth (ns a round trip, 200,000 of them): about 0.1 µs
// where the two cores share a last-level cache, 0.4–0.55 µs on the VM of sessions 34–35 when the hypervisor had placed
// its two vCPUs apart, a state that lasted minutes and took both engines' second thread at batch 1 (docs/RESULTS.md
// "Session 35"). Scripts/bench-architectures.sh prints it before each row.
//   cc -O2 -pthread -o /tmp/pingpong Benchmarks/pingpong.c && /tmp/pingpong
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

enum { ROUND_TRIPS = 200000 };
static _Atomic long flag __attribute__((aligned(64)));

static void *other(void *unused) {
    (void)unused;
    for (long i = 0; i < ROUND_TRIPS; i++) {
        while (atomic_load(&flag) != 2 * i + 1) {}
        atomic_store(&flag, 2 * i + 2);
    }
    return NULL;
}

int main(void) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, other, NULL) != 0) return 1;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < ROUND_TRIPS; i++) {
        atomic_store(&flag, 2 * i + 1);
        while (atomic_load(&flag) != 2 * i + 2) {}
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    pthread_join(thread, NULL);
    printf("%.0f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / ROUND_TRIPS);
    return 0;
}
