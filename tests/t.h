/* t.h -- a tiny test harness. Each test prints "ok NAME" or "not ok NAME";
 * tests/run.sh counts those lines across all test programs. */
#ifndef DS8B_T_H
#define DS8B_T_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failures;
static int t_total_failed;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            printf("  # %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            printf(__VA_ARGS__);                                               \
            printf("\n");                                                      \
            t_failures++;                                                      \
        }                                                                      \
    } while (0)

#define RUN(fn)                                                                \
    do {                                                                       \
        int f0_ = t_failures;                                                  \
        fflush(stdout);                                                        \
        fn();                                                                  \
        printf("%s %s\n", t_failures == f0_ ? "ok" : "not ok", #fn);           \
        if (t_failures != f0_) t_total_failed++;                               \
        fflush(stdout);                                                        \
    } while (0)

#define T_EXIT() return t_total_failed ? 1 : 0

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
