/* test_faults.c -- failure paths end to end: every allocation of a load +
 * session + generate cycle made to fail in turn, checkpoint and GGUF files
 * truncated and corrupted at many offsets, a disk that fills up while a
 * quantized file is written, and RSS over 1000 load/free cycles.
 *
 * Every case runs in a forked child so that a crash is reported as a
 * failure of that case (signal, file, offset) instead of ending the
 * program. Children report through a shared page. */
#include "t.h"
#include "ds8b.h"
#include "mem.h"
#include "formats/gguf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* What a child tells its parent. */
typedef struct report {
    int rc;              /* first failing DS8B_* code, or 0 */
    int stage;           /* 0 load, 1 params, 2 session, 3 generate, 4 done */
    int64_t nalloc;      /* allocations counted by the fault hook */
    int64_t leaked;      /* ds8b_memory_used(-1) after freeing minus before */
    int64_t marks[4];    /* allocation counts after load/params/session/generate */
    char msg[256];
} report;
static report *g_rep; /* MAP_SHARED, visible to the parent after the child exits */

typedef void (*child_fn)(const void *arg);

/* Runs fn(arg) in a child. Returns 0 when it exited normally, else the
 * signal number (a crash or the alarm). */
static int in_child(child_fn fn, const void *arg, int timeout_s) {
    memset(g_rep, 0, sizeof *g_rep);
    g_rep->rc = 1234567;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        alarm((unsigned)timeout_s);
        fn(arg);
        _exit(0);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (WIFSIGNALED(st)) return WTERMSIG(st);
    return 0;
}

static int write_file(const char *path, const void *data, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    const char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) { close(fd); return -1; }
        p += w;
        n -= (size_t)w;
    }
    return close(fd);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = b ? fread(b, 1, (size_t)sz, f) : 0;
    fclose(f);
    return b;
}

static void rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "lost+found")) n++;
    if (d) closedir(d);
    return n;
}

static char g_llama[4096];

/* Under a sanitizer the allocator keeps freed memory in quarantine, so RSS
 * says nothing about leaks there: that check needs a plain build. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

/* ------------------------------------------------------------------ */
/* 1. Allocation failure sweep over load + session + generate + free   */
/* ------------------------------------------------------------------ */
static int discard(void *u, const char *p, size_t n, int ch) { (void)u; (void)p; (void)n; (void)ch; return 0; }

static void cycle_child(const void *arg) {
    int64_t fail_at = *(const int64_t *)arg;
    report *r = g_rep;
    int64_t base = ds8b_memory_used(-1);
    ds8b_model *m = NULL;
    ds8b_params *p = NULL;
    ds8b_session *s = NULL;
    ds8b__mem_fail_at(fail_at);
    int rc = ds8b_model_load(g_llama, NULL, &m);
    r->marks[0] = ds8b__mem_alloc_count();
    if (!rc) { r->stage = 1; rc = ds8b_params_create(&p); }
    r->marks[1] = ds8b__mem_alloc_count();
    if (!rc) {
        r->stage = 2;
        ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 64);
        ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, 1);
        ds8b_params_set_int(p, DS8B_PARAM_MAX_TOKENS, 4);
        ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, 0.0);
        rc = ds8b_session_create(m, p, &s);
    }
    r->marks[2] = ds8b__mem_alloc_count();
    if (!rc) {
        r->stage = 3;
        int64_t ng = 0;
        rc = ds8b_generate(s, "The Python interpreter", 22, DS8B_GEN_ADD_SPECIAL, discard, NULL, &ng);
    }
    r->marks[3] = ds8b__mem_alloc_count();
    if (!rc) r->stage = 4;
    if (rc) snprintf(r->msg, sizeof r->msg, "%s", ds8b_errmsg());
    ds8b_session_free(s);
    ds8b_params_free(p);
    ds8b_model_free(m);
    r->nalloc = ds8b__mem_alloc_count();
    ds8b__mem_fail_at(0);
    r->rc = rc;
    r->leaked = ds8b_memory_used(-1) - base;
}

static void test_alloc_failure_sweep(void) {
    /* The counting run: the fault never triggers. */
    int64_t never = INT64_MAX;
    int sig = in_child(cycle_child, &never, 60);
    CHECK(sig == 0 && g_rep->rc == 0, "clean cycle: signal %d rc %d %s", sig, g_rep->rc, g_rep->msg);
    if (sig || g_rep->rc) return;
    int64_t total = g_rep->nalloc, mk[4];
    memcpy(mk, g_rep->marks, sizeof mk);
    printf("  # clean cycle: %lld allocations (load %lld, params %lld, session %lld, generate %lld)\n",
           (long long)total, (long long)mk[0], (long long)(mk[1] - mk[0]), (long long)(mk[2] - mk[1]),
           (long long)(mk[3] - mk[2]));

    /* Which N to try: all of the first 400 and +-40 around every phase
     * boundary (session and generate sites sit there), every allocation of
     * session create and generate, then a stride over the long tokenizer
     * and weight-loading stretch, bounded by a time budget. */
    const double budget_s = 14.0;
    double t0 = now_s();
    int64_t runs = 0, ok_runs = 0, err_runs = 0, non_nomem = 0;
    int fails = 0;
    int64_t stride = (mk[0] - 400) / 500;
    if (stride < 1) stride = 1;
    for (int64_t n = 1; n <= total + 1; n++) {
        bool dense = n <= 400 || n > mk[0] - 40;
        for (int k = 0; k < 3 && !dense; k++)
            if (n > mk[k] - 40 && n <= mk[k] + 40) dense = true;
        if (!dense && (n % stride) != 0) continue;
        if (!dense && now_s() - t0 > budget_s) continue;
        runs++;
        sig = in_child(cycle_child, &n, 30);
        if (sig) {
            CHECK(0, "allocation %lld failing: killed by signal %d (stage %d)", (long long)n, sig, g_rep->stage);
            if (++fails > 10) break;
            continue;
        }
        if (g_rep->rc == 0) ok_runs++;
        else {
            err_runs++;
            if (g_rep->rc != DS8B_E_NOMEM) {
                non_nomem++;
                if (non_nomem <= 5)
                    printf("  # allocation %lld failing gives %s (%d) at stage %d: %s\n", (long long)n,
                           ds8b_errstr(g_rep->rc), g_rep->rc, g_rep->stage, g_rep->msg);
            }
        }
        CHECK(g_rep->rc <= 0 && g_rep->rc >= DS8B_E_INTERNAL, "allocation %lld: odd rc %d", (long long)n, g_rep->rc);
        if (g_rep->leaked != 0) {
            CHECK(0, "allocation %lld failing (stage %d, rc %d) leaks %lld bytes", (long long)n, g_rep->stage,
                  g_rep->rc, (long long)g_rep->leaked);
            if (++fails > 10) break;
        }
        if (g_rep->nalloc < n) break; /* the fault never triggered: past the end */
    }
    printf("  # sweep: %lld runs in %.1f s (stride %lld over the load): %lld succeeded anyway, %lld failed "
           "cleanly (%lld with a code other than NOMEM)\n",
           (long long)runs, now_s() - t0, (long long)stride, (long long)ok_runs, (long long)err_runs,
           (long long)non_nomem);
}

/* The same over the calls made on a live model and session: state save
 * and restore, fork, chat rendering and a chat reply, in-memory
 * quantization, and ds8b_quantize writing a file (which must leave no
 * OUT.tmp behind when it fails). */
static char g_qdir[64];

static void ops_child(const void *arg) {
    int64_t fail_at = *(const int64_t *)arg;
    report *r = g_rep;
    ds8b_model *m = NULL;
    ds8b_params *p = NULL;
    ds8b_session *s = NULL;
    if (ds8b_model_load(g_llama, NULL, &m) || ds8b_params_create(&p)) { r->rc = -999; return; }
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 64);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, 1);
    ds8b_params_set_int(p, DS8B_PARAM_MAX_TOKENS, 3);
    ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, 0.0);
    int32_t ids[4] = {8184, 40, 41, 42};
    if (ds8b_session_create(m, p, &s) || ds8b_eval(s, ids, 4, NULL)) { r->rc = -999; return; }
    int64_t base = ds8b_memory_used(-1);
    char out[128], tmp[160];
    snprintf(out, sizeof out, "%s/q.gguf", g_qdir);
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    ds8b__mem_fail_at(fail_at);
    static unsigned char buf[1 << 20];
    size_t len = 0;
    int rc = ds8b_session_save(s, buf, sizeof buf, &len);
    int64_t past = ds8b_session_n_past(s);
    if (!rc) { r->stage = 1; rc = ds8b_session_load(s, buf, len); }
    if (ds8b_session_n_past(s) != past) { r->rc = -998; return; } /* unchanged on error */
    r->marks[0] = ds8b__mem_alloc_count();
    ds8b_session *f = NULL;
    if (!rc) { r->stage = 2; rc = ds8b_session_fork(s, &f); }
    ds8b_session_free(f);
    r->marks[1] = ds8b__mem_alloc_count();
    static const char msgs[] = "[{\"role\":\"user\",\"content\":\"Hi there\"}]";
    char text[4096];
    size_t tl = 0;
    if (!rc) { r->stage = 3; rc = ds8b_chat_render(m, msgs, sizeof msgs - 1, 1, text, sizeof text, &tl); }
    ds8b_chat *c = NULL;
    if (!rc) rc = ds8b_chat_create(s, &c);
    if (!rc) rc = ds8b_chat_add(c, "user", "Hello");
    if (!rc) rc = ds8b_chat_reply(c, discard, NULL, NULL);
    ds8b_chat_free(c);
    r->marks[2] = ds8b__mem_alloc_count();
    ds8b_model *q = NULL;
    if (!rc) { r->stage = 4; rc = ds8b_model_quantize(m, "f16", NULL, &q); }
    ds8b_model_free(q);
    r->marks[3] = ds8b__mem_alloc_count();
    if (!rc) { r->stage = 5; rc = ds8b_quantize(g_llama, out, "f16", NULL); }
    if (!rc) r->stage = 6;
    if (rc) snprintf(r->msg, sizeof r->msg, "%s", ds8b_errmsg());
    r->nalloc = ds8b__mem_alloc_count();
    ds8b__mem_fail_at(0);
    r->leaked = ds8b_memory_used(-1) - base;
    /* a failed ds8b_quantize leaves nothing; a good one leaves OUT only */
    bool has_out = access(out, F_OK) == 0, has_tmp = access(tmp, F_OK) == 0;
    if (has_tmp || (r->stage == 5 && rc && has_out)) r->leaked += 1000000000;
    unlink(out);
    r->rc = rc;
    ds8b_session_free(s);
    ds8b_params_free(p);
    ds8b_model_free(m);
}

static void test_alloc_failure_sweep_ops(void) {
    snprintf(g_qdir, sizeof g_qdir, "/tmp/ds8b-faults-XXXXXX");
    if (!mkdtemp(g_qdir)) { CHECK(0, "mkdtemp"); return; }
    int64_t never = INT64_MAX;
    int sig = in_child(ops_child, &never, 60);
    CHECK(sig == 0 && g_rep->rc == 0, "clean run: signal %d rc %d %s", sig, g_rep->rc, g_rep->msg);
    if (sig || g_rep->rc) { rm_tree(g_qdir); return; }
    int64_t total = g_rep->nalloc, mk[4];
    memcpy(mk, g_rep->marks, sizeof mk);
    printf("  # clean run: %lld allocations (save+load %lld, fork %lld, chat %lld, model_quantize %lld, "
           "quantize to file %lld)\n", (long long)total, (long long)mk[0], (long long)(mk[1] - mk[0]),
           (long long)(mk[2] - mk[1]), (long long)(mk[3] - mk[2]), (long long)(total - mk[3]));
    /* every allocation up to the start of ds8b_quantize, then a stride
     * over its long stretch (one reload and per-tensor buffers), its end
     * included, within a time budget */
    const double budget_s = 8.0;
    double t0 = now_s(), t_dense = 0;
    int64_t runs = 0, errs = 0;
    int fails = 0;
    int64_t stride = (total - mk[3]) / 60 + 1;
    for (int64_t n = 1; n <= total + 1; n++) {
        bool dense = n <= mk[3] + 30 || n > total - 20;
        if (!dense && t_dense == 0) t_dense = now_s();
        if (!dense && ((n % stride) != 0 || now_s() - t_dense > budget_s)) continue;
        runs++;
        double tr = now_s();
        sig = in_child(ops_child, &n, 30);
        if (getenv("DS8B_FAULTS_TRACE"))
            fprintf(stderr, "n=%lld stage %d rc %d %.3f s\n", (long long)n, g_rep->stage, g_rep->rc, now_s() - tr);
        if (sig || g_rep->rc == -998 || g_rep->leaked || g_rep->rc > 0 || g_rep->rc < DS8B_E_INTERNAL) {
            CHECK(0, "allocation %lld failing (stage %d): signal %d rc %d leaked %lld%s", (long long)n, g_rep->stage,
                  sig, g_rep->rc, (long long)g_rep->leaked,
                  g_rep->rc == -998 ? " (session changed by a failed load)" : "");
            if (++fails > 10) break;
            continue;
        }
        if (g_rep->rc) errs++;
        if (g_rep->nalloc < n) break;
    }
    printf("  # sweep: %lld runs in %.1f s (stride %lld), %lld failed cleanly\n", (long long)runs, now_s() - t0,
           (long long)stride, (long long)errs);
    rm_tree(g_qdir);
}

/* ------------------------------------------------------------------ */
/* 2. Truncated and corrupted checkpoint files                          */
/* ------------------------------------------------------------------ */
static const char *k_ckpt_files[] = {
    "config.json", "generation_config.json", "model.safetensors.index.json",
    "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
    "tokenizer.json", "tokenizer_config.json",
};
#define N_CKPT_FILES (sizeof k_ckpt_files / sizeof *k_ckpt_files)

static void load_child(const void *arg) {
    const char *path = arg;
    report *r = g_rep;
    int64_t base = ds8b_memory_used(-1);
    ds8b_model *m = NULL;
    int rc = ds8b_model_load(path, NULL, &m);
    if (!rc) {
        /* corrupted weights may give garbage, never a crash */
        ds8b_params *p = NULL;
        ds8b_session *s = NULL;
        ds8b_params_create(&p);
        ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 16);
        ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, 1);
        if (ds8b_session_create(m, p, &s) == 0) {
            int32_t ids[3] = {1, 2, 3}, t;
            if (ds8b_eval(s, ids, 3, NULL) == 0) ds8b_sample(s, &t);
        }
        ds8b_session_free(s);
        ds8b_params_free(p);
    } else {
        snprintf(r->msg, sizeof r->msg, "%s", ds8b_errmsg());
    }
    ds8b_model_free(m);
    r->rc = rc;
    r->leaked = ds8b_memory_used(-1) - base;
}

typedef struct corrupt_stats { int cases, errors, loaded; } corrupt_stats;

/* Runs one corrupted variant. expect: 'e' must fail, 's' must load, '?' either. */
static void one_case(const char *load_path, const char *what, size_t off, char expect, corrupt_stats *st) {
    int sig = in_child(load_child, load_path, 30);
    st->cases++;
    if (sig) {
        CHECK(0, "%s at offset %zu: killed by signal %d", what, off, sig);
        return;
    }
    if (g_rep->rc) st->errors++;
    else st->loaded++;
    CHECK(g_rep->rc <= 0 && g_rep->rc >= DS8B_E_INTERNAL, "%s at %zu: odd rc %d", what, off, g_rep->rc);
    if (expect == 'e') CHECK(g_rep->rc != 0, "%s at offset %zu: loaded without an error", what, off);
    if (expect == 's') CHECK(g_rep->rc == 0, "%s at offset %zu: %s", what, off, g_rep->msg);
    CHECK(g_rep->leaked == 0, "%s at offset %zu: %lld bytes leaked", what, off, (long long)g_rep->leaked);
}

/* n offsets spread over [lo, hi): dense at the start, then even steps. */
static size_t spread(size_t lo, size_t hi, int i, int n) {
    if (hi <= lo) return lo;
    if (i < n / 4) return lo + (size_t)i * 3 < hi ? lo + (size_t)i * 3 : hi - 1;
    return lo + (hi - lo) * (size_t)(i - n / 4) / (size_t)(n - n / 4);
}

static void test_corrupt_checkpoint(void) {
    char src[4096], dir[] = "/tmp/ds8b-faults-XXXXXX";
    t_path(src, sizeof src, "models/demo-llama");
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    for (size_t i = 0; i < N_CKPT_FILES; i++) {
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%s/%s", src, k_ckpt_files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, k_ckpt_files[i]);
        CHECK(symlink(a, b) == 0, "symlink %s", b);
    }
    int sig = in_child(load_child, dir, 30);
    CHECK(sig == 0 && g_rep->rc == 0, "the pristine copy loads: %s", g_rep->msg);
    corrupt_stats st = {0};
    double t0 = now_s();
    for (size_t fi = 0; fi < N_CKPT_FILES; fi++) {
        const char *name = k_ckpt_files[fi];
        char orig[4096], path[4096], what[512];
        snprintf(orig, sizeof orig, "%s/%s", src, name);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        size_t n = 0;
        unsigned char *data = slurp(orig, &n);
        if (!data || n < 16) { CHECK(0, "read %s", orig); free(data); continue; }
        unlink(path);
        bool st_file = strstr(name, ".safetensors") && !strstr(name, ".json");
        bool optional = !strcmp(name, "generation_config.json") || !strcmp(name, "tokenizer_config.json");
        size_t hdr_end = n; /* safetensors: end of the JSON header; JSON: the closing brace */
        if (st_file) {
            uint64_t hl = 0;
            for (int k = 7; k >= 0; k--) hl = hl << 8 | data[k];
            hdr_end = 8 + (size_t)hl < n ? 8 + (size_t)hl : n;
        } else {
            while (hdr_end > 0 && data[hdr_end - 1] != '}') hdr_end--;
            if (hdr_end) hdr_end--;
        }
        /* truncations: ~50 for a shard (header and data), ~25 for JSON */
        int nt = st_file ? 30 : 25;
        for (int i = 0; i < nt; i++) {
            size_t off = spread(0, hdr_end, i, nt);
            write_file(path, data, off);
            snprintf(what, sizeof what, "%s truncated", name);
            one_case(dir, what, off, optional ? '?' : 'e', &st);
        }
        if (st_file) {
            for (int i = 0; i < 20; i++) {
                size_t off = hdr_end + (n - hdr_end) * (size_t)i / 20 + 1;
                write_file(path, data, off);
                snprintf(what, sizeof what, "%s truncated in data", name);
                one_case(dir, what, off, 'e', &st);
            }
        }
        /* byte flips in the header / JSON text */
        int nf = st_file ? 30 : 20;
        for (int i = 0; i < nf; i++) {
            size_t off = spread(0, hdr_end, i, nf);
            unsigned char old = data[off];
            data[off] = (unsigned char)(i & 1 ? old ^ 0xff : old ^ (1u << (i % 8)));
            write_file(path, data, n);
            data[off] = old;
            snprintf(what, sizeof what, "%s flipped", name);
            one_case(dir, what, off, '?', &st);
        }
        /* flips in weight data: still a valid file */
        if (st_file) {
            for (int i = 0; i < 4; i++) {
                size_t off = hdr_end + (n - hdr_end) * (size_t)(2 * i + 1) / 8;
                unsigned char old = data[off];
                data[off] = old ^ 0xff;
                write_file(path, data, n);
                data[off] = old;
                snprintf(what, sizeof what, "%s flipped in data", name);
                one_case(dir, what, off, 's', &st);
            }
        }
        unlink(path);
        CHECK(symlink(orig, path) == 0, "restore %s", path);
        free(data);
    }
    printf("  # checkpoint: %d corrupted variants in %.1f s: %d rejected, %d loaded\n", st.cases,
           now_s() - t0, st.errors, st.loaded);
    rm_tree(dir);
}

static void test_corrupt_gguf(void) {
    char orig[4096], dir[] = "/tmp/ds8b-faults-XXXXXX", path[4200];
    t_path(orig, sizeof orig, "testdata/gguf/demo-llama-Q4_0.gguf");
    size_t n = 0;
    unsigned char *data = slurp(orig, &n);
    if (!data || n < 1024 || !mkdtemp(dir)) { CHECK(0, "read %s", orig); free(data); return; }
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    /* the data section starts after metadata and tensor infos */
    ds8b__gguf *g = NULL;
    size_t data_off = n / 2;
    if (ds8b__gguf_open(orig, &g, NULL) == 0) {
        data_off = (size_t)ds8b__gguf_data_offset(g);
        ds8b__gguf_close(g);
    }
    CHECK(data_off > 64 && data_off < n, "data offset %zu", data_off);
    corrupt_stats st = {0};
    double t0 = now_s();
    for (int i = 0; i < 50; i++) {
        size_t off = i < 40 ? spread(0, data_off, i, 40) : data_off + (n - data_off) * (size_t)(i - 40) / 10 + 1;
        write_file(path, data, off);
        one_case(path, "gguf truncated", off, 'e', &st);
    }
    for (int i = 0; i < 50; i++) {
        size_t off = spread(0, data_off, i, 50);
        unsigned char old = data[off];
        data[off] = (unsigned char)(i & 1 ? old ^ 0xff : old ^ (1u << (i % 8)));
        write_file(path, data, n);
        data[off] = old;
        one_case(path, "gguf flipped", off, '?', &st);
    }
    for (int i = 0; i < 4; i++) {
        size_t off = data_off + (n - data_off) * (size_t)(2 * i + 1) / 8;
        unsigned char old = data[off];
        data[off] = old ^ 0x5a;
        write_file(path, data, n);
        data[off] = old;
        one_case(path, "gguf flipped in data", off, 's', &st);
    }
    printf("  # gguf: %d corrupted variants in %.1f s: %d rejected, %d loaded\n", st.cases, now_s() - t0,
           st.errors, st.loaded);
    free(data);
    rm_tree(dir);
}

/* ------------------------------------------------------------------ */
/* 3. Disk full while writing a quantized file                          */
/* ------------------------------------------------------------------ */
static void quantize_child(const void *arg) {
    const char *out = arg;
    int64_t base = ds8b_memory_used(-1);
    int rc = ds8b_quantize(g_llama, out, "q8_0", NULL);
    g_rep->rc = rc;
    if (rc) snprintf(g_rep->msg, sizeof g_rep->msg, "%s", ds8b_errmsg());
    g_rep->leaked = ds8b_memory_used(-1) - base;
}

static void quantize_fsize_child(const void *arg) {
    struct rlimit rl = {1u << 20, 1u << 20};
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &rl);
    quantize_child(arg);
}

static void check_disk_full(const char *dir, const char *how, child_fn fn) {
    char out[4200], tmp[4300];
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    int sig = in_child(fn, out, 60);
    CHECK(sig == 0, "%s: killed by signal %d", how, sig);
    if (sig) return;
    CHECK(g_rep->rc == DS8B_E_IO, "%s: rc %d (%s): %s", how, g_rep->rc, ds8b_errstr(g_rep->rc), g_rep->msg);
    CHECK(access(out, F_OK) != 0 && access(tmp, F_OK) != 0, "%s: a file was left behind", how);
    CHECK(count_entries(dir) == 0, "%s: %d entries left in %s", how, count_entries(dir), dir);
    CHECK(g_rep->leaked == 0, "%s: %lld bytes leaked", how, (long long)g_rep->leaked);
    printf("  # %s: %s\n", how, g_rep->msg);
}

static void test_disk_full(void) {
    char dir[] = "/tmp/ds8b-faults-XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    if (mount("tmpfs", dir, "tmpfs", 0, "size=1m") == 0) {
        check_disk_full(dir, "1 MiB tmpfs", quantize_child);
        umount(dir);
    } else {
        printf("  # cannot mount a tmpfs (%s): RLIMIT_FSIZE only\n", strerror(errno));
    }
    check_disk_full(dir, "RLIMIT_FSIZE 1 MiB", quantize_fsize_child);
    rm_tree(dir);
}

/* ------------------------------------------------------------------ */
/* 4. 1000 load/free cycles keep RSS flat                              */
/* ------------------------------------------------------------------ */
static long rss_kb(void) {
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = -1;
    fclose(f);
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Under a sanitizer RSS says nothing (see UNDER_SANITIZER): a short loop
 * still checks that every load/free cycle gives all accounted memory back. */
#define RSS_ITERS (UNDER_SANITIZER ? 20 : 1000)
#define RSS_MARK (RSS_ITERS / 10)

static void rss_child(const void *arg) {
    const char *path = arg;
    int64_t base = ds8b_memory_used(-1);
    long rss100 = 0;
    double t0 = now_s();
    for (int i = 1; i <= RSS_ITERS; i++) {
        ds8b_model *m = NULL;
        int rc = ds8b_model_load(path, NULL, &m);
        ds8b_model_free(m);
        if (rc) { g_rep->rc = rc; snprintf(g_rep->msg, sizeof g_rep->msg, "%s", ds8b_errmsg()); return; }
        if (i == RSS_MARK) rss100 = rss_kb();
        if (now_s() - t0 > (UNDER_SANITIZER ? 100 : 50)) { g_rep->rc = -100; snprintf(g_rep->msg, sizeof g_rep->msg, "too slow: %d loads", i); return; }
    }
    g_rep->rc = 0;
    g_rep->marks[0] = rss100;
    g_rep->marks[1] = rss_kb();
    g_rep->marks[2] = (int64_t)((now_s() - t0) * 1000);
    g_rep->leaked = ds8b_memory_used(-1) - base;
}

static void test_rss_flat(void) {
    char gguf[4096];
    t_path(gguf, sizeof gguf, "testdata/gguf/demo-llama-Q4_0.gguf");
    const char *paths[2] = {gguf, g_llama};
    const char *names[2] = {"gguf", "checkpoint"};
    for (int k = 0; k < 2; k++) {
        int sig = in_child(rss_child, paths[k], 120);
        CHECK(sig == 0 && g_rep->rc == 0, "%s: signal %d rc %d %s", names[k], sig, g_rep->rc, g_rep->msg);
        if (sig || g_rep->rc) continue;
        long drift = (long)(g_rep->marks[1] - g_rep->marks[0]);
        printf("  # %s: %d load/free in %.1f s; RSS %lld kB after %d, %lld kB after %d (drift %ld kB)%s\n",
               names[k], RSS_ITERS, g_rep->marks[2] / 1000.0, (long long)g_rep->marks[0], RSS_MARK,
               (long long)g_rep->marks[1], RSS_ITERS, drift, UNDER_SANITIZER ? "; not checked under a sanitizer" : "");
        if (!UNDER_SANITIZER)
            CHECK(drift < 2048, "%s: RSS grew by %ld kB between load 100 and load 1000", names[k], drift);
        CHECK(g_rep->leaked == 0, "%s: %lld bytes still accounted", names[k], (long long)g_rep->leaked);
    }
}

int main(int argc, char **argv) {
    t_path(g_llama, sizeof g_llama, "models/demo-llama");
    g_rep = mmap(NULL, sizeof(report), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (g_rep == MAP_FAILED) { printf("not ok mmap\n"); return 1; }
    const char *only = argc > 1 ? argv[1] : NULL;
#define RUN_IF(fn) do { if (!only || strstr(#fn, only)) RUN(fn); } while (0)
    RUN_IF(test_alloc_failure_sweep);
    RUN_IF(test_alloc_failure_sweep_ops);
    RUN_IF(test_corrupt_checkpoint);
    RUN_IF(test_corrupt_gguf);
    RUN_IF(test_disk_full);
    RUN_IF(test_rss_flat);
    T_EXIT();
}
