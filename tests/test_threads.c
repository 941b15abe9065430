/* test_threads.c -- the fork-join pool: every thread runs each job once,
 * many short jobs, pool of one, an idle pool sleeps, free after use. */
#include "t.h"
#include "internal.h"
#include "threads/pool.h"

#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    _Atomic int calls;
    _Atomic int mask;
    _Atomic long sum;
    int nth_seen;
} job_t;

static void job_fn(void *ctx, int ith, int nth) {
    job_t *j = ctx;
    atomic_fetch_add(&j->calls, 1);
    atomic_fetch_or(&j->mask, 1 << ith);
    j->nth_seen = nth;
    long s = 0;
    for (int i = ith; i < 1000; i += nth) s += i;
    atomic_fetch_add(&j->sum, s);
}

static void test_basic(void) {
    for (int n = 1; n <= 5; n++) {
        ds8b__pool *p = NULL;
        ds8b__err e = {0};
        CHECK(ds8b__pool_create(n, &p, &e) == 0, "create %d: %s", n, e.msg);
        if (!p) continue;
        CHECK(ds8b__pool_size(p) == n, "size %d", ds8b__pool_size(p));
        job_t j = {0};
        ds8b__pool_run(p, job_fn, &j);
        CHECK(j.calls == n, "n=%d calls %d", n, j.calls);
        CHECK(j.mask == (1 << n) - 1, "n=%d mask %x", n, j.mask);
        CHECK(j.sum == 999 * 1000 / 2, "n=%d sum %ld", n, j.sum);
        CHECK(j.nth_seen == n, "nth %d", j.nth_seen);
        ds8b__pool_free(p);
    }
    ds8b__pool *p = NULL;
    CHECK(ds8b__pool_create(0, &p, NULL) == 0 && p && ds8b__pool_size(p) >= 1, "auto");
    ds8b__pool_free(p);
    CHECK(ds8b__pool_create(-1, &p, NULL) == DS8B_E_INVALID, "negative");
    ds8b__pool_free(NULL);
    CHECK(ds8b__pool_size(NULL) == 1, "null size");
    job_t j = {0};
    ds8b__pool_run(NULL, job_fn, &j);
    CHECK(j.calls == 1 && j.sum == 999 * 1000 / 2, "null pool runs inline");
}

static void count_fn(void *ctx, int ith, int nth) {
    _Atomic long *c = ctx;
    atomic_fetch_add(c, ith + 1);
}

static void test_many_short_jobs(void) {
    for (int spin = 0; spin < 2; spin++) {
        ds8b__pool *p = NULL;
        CHECK(ds8b__pool_create(3, &p, NULL) == 0, "create");
        if (!p) return;
        if (spin == 0) ds8b__pool_set_spin_us(p, 0); /* always sleep: the slow path */
        _Atomic long c = 0;
        int jobs = spin ? 20000 : 3000;
        for (int i = 0; i < jobs; i++) ds8b__pool_run(p, count_fn, &c);
        CHECK(c == (long)jobs * 6, "spin %d: count %ld", spin, (long)c);
        ds8b__pool_free(p);
    }
}

static void test_single_inline(void) {
    ds8b__pool *p = NULL;
    CHECK(ds8b__pool_create(1, &p, NULL) == 0, "create");
    job_t j = {0};
    for (int i = 0; i < 100; i++) ds8b__pool_run(p, job_fn, &j);
    CHECK(j.calls == 100 && j.mask == 1, "calls %d", j.calls);
    ds8b__pool_free(p);
}

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* An idle pool must sleep: the process uses almost no CPU while waiting. */
static void test_idle_sleeps(void) {
    ds8b__pool *p = NULL;
    CHECK(ds8b__pool_create(4, &p, NULL) == 0, "create");
    job_t j = {0};
    ds8b__pool_run(p, job_fn, &j);
    double c0 = cpu_seconds();
    usleep(200000);
    double used = cpu_seconds() - c0;
    CHECK(used < 0.03, "idle pool used %.3f s CPU in 0.2 s", used);
    /* still works after sleeping */
    job_t k = {0};
    ds8b__pool_run(p, job_fn, &k);
    CHECK(k.calls == 4, "calls %d", k.calls);
    ds8b__pool_free(p);
}

/* create/free repeatedly, some pools freed without ever running */
static void test_create_free(void) {
    for (int i = 0; i < 50; i++) {
        ds8b__pool *p = NULL;
        CHECK(ds8b__pool_create(1 + i % 4, &p, NULL) == 0, "create");
        if (i % 2) {
            job_t j = {0};
            ds8b__pool_run(p, job_fn, &j);
            CHECK(j.calls == 1 + i % 4, "calls");
        }
        ds8b__pool_free(p);
    }
}

int main(void) {
    RUN(test_basic);
    RUN(test_many_short_jobs);
    RUN(test_single_inline);
    RUN(test_idle_sleeps);
    RUN(test_create_free);
    T_EXIT();
}
