/* t.h -- a tiny test harness. Each test prints "ok NAME" or "not ok NAME";
 * tests/run.sh counts those lines across all test programs. */
#ifndef DS8B_T_H
#define DS8B_T_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failures;
static int t_total_failed;
static int t_skipped; /* set by SKIP() inside the running test */

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            printf("  # %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            printf(__VA_ARGS__);                                               \
            printf("\n");                                                      \
            t_failures++;                                                      \
        }                                                                      \
    } while (0)

/* SKIP(reason): the running test cannot run here (no such CPU feature,
 * no tool). Call it and return: RUN then prints "ok NAME # SKIP reason",
 * which tests/run.sh counts as skipped, not passed. */
static char t_skip_reason[256];
#define SKIP(...)                                                              \
    do {                                                                       \
        snprintf(t_skip_reason, sizeof t_skip_reason, __VA_ARGS__);            \
        t_skipped = 1;                                                         \
    } while (0)

#define RUN(fn)                                                                \
    do {                                                                       \
        int f0_ = t_failures;                                                  \
        t_skipped = 0;                                                         \
        fflush(stdout);                                                        \
        fn();                                                                  \
        if (t_failures == f0_ && t_skipped)                                    \
            printf("ok %s # SKIP %s\n", #fn, t_skip_reason);                   \
        else                                                                   \
            printf("%s %s\n", t_failures == f0_ ? "ok" : "not ok", #fn);       \
        if (t_failures != f0_) t_total_failed++;                               \
        fflush(stdout);                                                        \
    } while (0)

#define T_EXIT() return t_total_failed ? 1 : 0

/* DS8B_QUICK=1 (set by `make test-asan` and by the TSan run of
 * tests/test_sanitizers.sh): the slow sanitizer builds run smaller
 * workloads. Every code path still runs; the checks that need the full
 * workload (e.g. perplexity over all reference windows) are made by
 * `make test`. */
static inline int t_quick(void) {
    const char *q = getenv("DS8B_QUICK");
    return q && *q && *q != '0';
}

/* Where ../shared lives; tests/run.sh sets DS8B_SHARED. */
static inline const char *t_shared(void) {
    const char *s = getenv("DS8B_SHARED");
    return s && *s ? s : "../shared";
}
static inline const char *t_path(char *buf, size_t cap, const char *rel) {
    snprintf(buf, cap, "%s/%s", t_shared(), rel);
    return buf;
}
#endif
