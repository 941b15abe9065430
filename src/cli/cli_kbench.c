/*
 * cli_kbench.c -- `ds8b bench --kernels`: matmul kernel throughput per
 * weight type on random weights (ds8b__bench_matmul_ex), no model needed.
 *
 *   ds8b bench --kernels [--types q4_0,q4_1,...] [--shapes 4096x4096,14336x4096]
 *                        [--n 1,16] [--threads 1,2] [--runs 5] [-r 5] [--rowwise]
 *
 * Shapes are ROWSxCOLS of the weight matrix. Each run measures every type
 * once (best of -r timed calls, weights rotated past the LLC for decode);
 * the table gives the median over --runs runs, and each type's GB/s of
 * weights relative to q4_0 measured in the same runs (when q4_0 is listed).
 * --rowwise times batched decoding (DS8B_MM_ROWWISE: every activation row
 * computed as a one-row call would) instead of the prompt path for n > 1.
 */
#include "cli.h"

#include "kernels/kernels.h"

#include <stdlib.h>
#include <string.h>

enum { KB_MAX = 32 };

/* comma-separated positive numbers */
static int parse_list(const char *s, int64_t *out, int max) {
    int n = cli_parse_ints(s, out, max);
    for (int i = 0; i < n; i++)
        if (out[i] <= 0) return -1;
    return n;
}

static int type_by_name(const char *name, size_t len) {
    for (int t = 0; t < DS8B_T__COUNT; t++) {
        const ds8b__type_traits *ti = ds8b__type_info(t);
        if (ti && ti->name && strlen(ti->name) == len && strncmp(ti->name, name, len) == 0 &&
            ds8b__matmul_supports(t))
            return t;
    }
    return -1;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int cli_bench_kernels(const cli_args *a) {
    const char *types_s = cli_opt(a, "--types");
    if (!types_s) types_s = "q4_0,q4_1,q5_0,q5_1,q8_0,q2_k,q3_k,q4_k,q5_k,q6_k";
    int types[KB_MAX], nt = 0;
    for (const char *p = types_s; *p && nt < KB_MAX;) {
        size_t len = strcspn(p, ",");
        int t = type_by_name(p, len);
        if (t < 0) {
            fprintf(stderr, "ds8b: unknown or unsupported weight type '%.*s'\n", (int)len, p);
            return 2;
        }
        types[nt++] = t;
        p += len + (p[len] == ',');
    }
    const char *shapes_s = cli_opt(a, "--shapes");
    if (!shapes_s) shapes_s = "4096x4096,14336x4096";
    int64_t rows[KB_MAX], cols[KB_MAX];
    int ns = 0;
    for (const char *p = shapes_s; *p && ns < KB_MAX;) {
        char *end, *end2;
        rows[ns] = strtoll(p, &end, 10);
        if (end == p || *end != 'x' || rows[ns] <= 0) return cli_usage("--shapes wants ROWSxCOLS,...");
        cols[ns] = strtoll(end + 1, &end2, 10);
        if (end2 == end + 1 || cols[ns] <= 0 || (*end2 && *end2 != ','))
            return cli_usage("--shapes wants ROWSxCOLS,...");
        ns++;
        p = *end2 ? end2 + 1 : end2;
    }
    int64_t nlist[KB_MAX], thr[KB_MAX];
    int nn = parse_list(cli_opt(a, "--n") ? cli_opt(a, "--n") : "1", nlist, KB_MAX);
    int nth = parse_list(cli_opt(a, "--threads") ? cli_opt(a, "--threads") : "1,2", thr, KB_MAX);
    int64_t runs64 = 5, reps64 = 5;
    cli_int(a, "--runs", &runs64);
    cli_int(a, "-r", &reps64);
    if (nn <= 0 || nth <= 0 || runs64 < 1 || runs64 > 99 || reps64 < 1 || reps64 > 1000000)
        return cli_usage("bench --kernels: bad --n, --threads, --runs or -r");
    int runs = (int)runs64, reps = (int)reps64;
    int flags = cli_flag(a, "--rowwise") ? DS8B_MM_ROWWISE : 0;
    int q40 = -1;
    for (int i = 0; i < nt; i++)
        if (types[i] == DS8B_T_Q4_0) q40 = i;

    printf("isa %s; median of %d runs, each the best of %d calls\n\n", ds8b__isa_name(), runs, reps);
    printf("| type | rows x cols | n | threads | path | GB/s weights | GOPS | GB/s vs q4_0 |\n");
    printf("|---|---|---:|---:|---|---:|---:|---:|\n");
    double gb[KB_MAX][99], gops[KB_MAX][99];
    for (int ti = 0; ti < nth; ti++)
        for (int si = 0; si < ns; si++)
            for (int ni = 0; ni < nn; ni++) {
                int64_t n = nlist[ni];
                for (int r = 0; r < runs; r++)
                    for (int k = 0; k < nt; k++) {
                        int rc = ds8b__bench_matmul_ex(types[k], rows[si], cols[si], n, (int)thr[ti], reps,
                                                       flags, &gops[k][r], &gb[k][r]);
                        if (rc) return cli_fail("benchmarking a matmul", rc);
                    }
                double q4 = q40 >= 0 ? median(gb[q40], runs) : 0;
                for (int k = 0; k < nt; k++) {
                    double g = median(gb[k], runs), o = median(gops[k], runs);
                    const char *path = n == 1 ? "decode" : flags ? "rowwise" : "prompt";
                    printf("| %s | %lldx%lld | %lld | %lld | %s | %.2f | %.1f |", ds8b__type_info(types[k])->name,
                           (long long)rows[si], (long long)cols[si], (long long)n, (long long)thr[ti], path, g, o);
                    if (q4 > 0) printf(" %.2f |\n", g / q4);
                    else printf(" – |\n");
                }
                fflush(stdout);
            }
    return 0;
}
