/* test_quantizer.c -- the quantizer pipeline: checksums bound to their
 * tensor table (a file whose tensors another tool rewrote while copying our
 * metadata loads; a corrupt tensor does not), and the vectorised scale
 * searches against the scalar reference, bit for bit. */
#include "t.h"
#include "ds8b.h"
#include "internal.h"
#include "formats/gguf.h"
#include "quant/quant.h"
#include "kernels/kernels.h"

#include <math.h>

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_tmpdir[256];
static const char *tmp_path(char *buf, size_t cap, const char *name) {
    if (!g_tmpdir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(g_tmpdir, sizeof g_tmpdir, "%s/ds8b-quantizer-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(g_tmpdir)) snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp");
    }
    snprintf(buf, cap, "%s/%s", g_tmpdir, name);
    return buf;
}
static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)sz;
    return b;
}
static int spit(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(b, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}
static uint8_t *find_bytes(uint8_t *h, size_t hn, const char *needle) {
    size_t nn = strlen(needle);
    for (size_t i = 0; i + nn <= hn; i++)
        if (memcmp(h + i, needle, nn) == 0) return h + i;
    return NULL;
}

typedef struct logbuf { char text[8192]; int warns; } logbuf;
static void log_cb(void *user, int level, const char *msg) {
    logbuf *l = user;
    if (level == DS8B_LOG_WARN) l->warns++;
    size_t n = strlen(l->text);
    snprintf(l->text + n, sizeof l->text - n, "%s\n", msg);
}
static int load_logged(const char *path, logbuf *lb) {
    ds8b_params *p = NULL;
    ds8b_params_create(&p);
    memset(lb, 0, sizeof *lb);
    ds8b_params_set_log(p, log_cb, lb);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, 1);
    ds8b_model *m = NULL;
    int rc = ds8b_model_load(path, p, &m);
    ds8b_model_free(m);
    ds8b_params_free(p);
    return rc;
}

/* What llama-quantize does to a GGUF: every KV pair copied (our CRCs and
 * digest too), the tensors rewritten in other types. Our writer adds fresh
 * checksum keys of the same sizes; they are then overwritten in place with
 * the source file's, which is byte for byte what a copying tool leaves.
 * legacy: the source has no digest (its key renamed), so the fresh one is
 * renamed too. */
static int requantize_copying_meta(const char *in, const char *out, bool legacy, ds8b__err *e) {
    ds8b__gguf *src = NULL;
    int rc = ds8b__gguf_open(in, &src, e);
    if (rc) return rc;
    ds8b__gguf_writer *w = NULL;
    rc = ds8b__gguf_writer_create(out, &w, e);
    for (int64_t i = 0; !rc && i < ds8b__gguf_n_kv(src); i++) rc = ds8b__gguf_writer_copy_kv(w, src, i, e);
    int64_t nt = ds8b__gguf_n_tensors(src);
    int *types = calloc((size_t)nt + 1, sizeof(int));
    for (int64_t i = 0; !rc && i < nt; i++) {
        const ds8b__tensor *t = ds8b__gguf_tensor(src, i);
        types[i] = t->type == DS8B_T_Q8_0 ? DS8B_T_Q4_0 : t->type;
        rc = ds8b__gguf_writer_add_tensor_info(w, t->name, types[i], t->n_dims, t->ne, NULL, e);
    }
    if (!rc) rc = ds8b__gguf_writer_write_header(w, e);
    for (int64_t i = 0; !rc && i < nt; i++) {
        const ds8b__tensor *t = ds8b__gguf_tensor(src, i);
        if (types[i] == t->type) {
            rc = ds8b__gguf_writer_write_tensor_data(w, i, t->data, t->nbytes, e);
            continue;
        }
        int64_t cols = t->ne[0];
        size_t srb, drb;
        ds8b__row_bytes(t->type, cols, &srb);
        ds8b__row_bytes(types[i], cols, &drb);
        int64_t rows = (int64_t)(t->nbytes / srb);
        float *f = malloc((size_t)cols * sizeof(float));
        uint8_t *q = malloc(drb);
        for (int64_t r = 0; !rc && r < rows; r++) {
            ds8b__dequant_row(t->type, (const uint8_t *)t->data + (size_t)r * srb, f, cols);
            ds8b__quant_row(types[i], f, q, cols);
            rc = ds8b__gguf_writer_write_tensor_data(w, i, q, drb, e);
        }
        free(f);
        free(q);
    }
    free(types);
    if (rc) ds8b__gguf_writer_abort(w);
    else rc = ds8b__gguf_writer_finish(w, e);
    ds8b__gguf_close(src);
    if (rc) return rc;
    /* put the source's checksum keys back, as a copying tool leaves them */
    size_t ns, nd;
    uint8_t *sb = slurp(in, &ns), *db = slurp(out, &nd);
    rc = -1;
    if (sb && db) {
        uint8_t *dd = find_bytes(db, nd, DS8B_GGUF_TDIGEST_KEY);
        uint8_t *sd = legacy ? dd : find_bytes(sb, ns, DS8B_GGUF_TDIGEST_KEY);
        uint8_t *sc = find_bytes(sb, ns, DS8B_GGUF_CRC_KEY), *dc = find_bytes(db, nd, DS8B_GGUF_CRC_KEY);
        size_t kd = strlen(DS8B_GGUF_TDIGEST_KEY), kc = strlen(DS8B_GGUF_CRC_KEY);
        size_t dlen = kd + 4 + 8 + DS8B_GGUF_TDIGEST_LEN, clen = kc + 4 + 4 + 8 + (size_t)nt * 4;
        if (legacy && dd) {
            dd[kd - 1] = 'Y';
        } else if (sd && dd && (size_t)(sd - sb) + dlen <= ns && (size_t)(dd - db) + dlen <= nd) {
            memcpy(dd, sd, dlen);
        } else {
            dc = NULL;
        }
        if (sc && dc && (size_t)(sc - sb) + clen <= ns && (size_t)(dc - db) + clen <= nd) {
            memcpy(dc, sc, clen);
            rc = spit(out, db, nd);
        }
    }
    free(sb);
    free(db);
    return rc;
}

static void test_checksums_bound_to_table(void) {
    char model[512], q8[512], rq[512], bad[512], legacy[512], legacy_rq[512];
    t_path(model, sizeof model, "models/demo-llama");
    if (access(model, R_OK) != 0) {
        SKIP("no demo model at %s", model);
        return;
    }
    tmp_path(q8, sizeof q8, "q8.gguf");
    tmp_path(rq, sizeof rq, "requant.gguf");
    tmp_path(bad, sizeof bad, "corrupt.gguf");
    tmp_path(legacy, sizeof legacy, "legacy.gguf");
    tmp_path(legacy_rq, sizeof legacy_rq, "legacy-requant.gguf");
    ds8b_params *p = NULL;
    ds8b_params_create(&p);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, 2);
    int rc = ds8b_quantize(model, q8, "q8_0", p);
    ds8b_params_free(p);
    CHECK(rc == 0, "quantize: %s", ds8b_errmsg());
    if (rc) return;
    logbuf lb;
    ds8b__err e = {0};

    /* our own file: bound, verified, quiet */
    ds8b__gguf *g = NULL;
    CHECK(ds8b__gguf_open(q8, &g, &e) == 0, "%s", e.msg);
    CHECK(g && ds8b__gguf_crc_state(g) == DS8B_GGUF_CRC_BOUND, "bound");
    ds8b__gguf_close(g);
    CHECK(load_logged(q8, &lb) == 0 && lb.warns == 0, "own file: %s", lb.text);

    /* tensors rewritten, metadata copied: stale, logged, loads */
    rc = requantize_copying_meta(q8, rq, false, &e);
    CHECK(rc == 0, "requantize: %d %s", rc, e.msg);
    g = NULL;
    CHECK(ds8b__gguf_open(rq, &g, &e) == 0, "%s", e.msg);
    if (g) {
        CHECK(ds8b__gguf_crc_state(g) == DS8B_GGUF_CRC_STALE, "stale: %d", ds8b__gguf_crc_state(g));
        CHECK(ds8b__gguf_tensor(g, 0)->type == DS8B_T_Q4_0, "really rewritten");
        ds8b__gguf_close(g);
    }
    rc = load_logged(rq, &lb);
    CHECK(rc == 0, "requantized file loads: %s", ds8b_errmsg());
    CHECK(lb.warns == 1 && strstr(lb.text, "stale") && strstr(lb.text, DS8B_GGUF_CRC_KEY), "logged: %s", lb.text);

    /* a corrupt tensor in our own file: still an error */
    size_t n;
    uint8_t *b = slurp(q8, &n);
    CHECK(b != NULL, "read");
    if (!b) return;
    g = NULL;
    if (ds8b__gguf_parse_mem(b, n, "x", &g, &e) == 0) {
        int64_t ti = ds8b__gguf_find_tensor_index(g, "blk.2.ffn_up.weight");
        uint64_t off = ds8b__gguf_tensor_file_offset(g, ti) + 77;
        ds8b__gguf_close(g);
        b[off] ^= 0x04;
        CHECK(spit(bad, b, n) == 0, "write");
        b[off] ^= 0x04;
        rc = load_logged(bad, &lb);
        CHECK(rc == DS8B_E_CHECKSUM && strstr(ds8b_errmsg(), "blk.2.ffn_up.weight"), "corrupt: %d %s", rc,
              ds8b_errmsg());
    }
    /* Files written before the digest (renaming the key in place makes
     * one): verified, a mismatch is a warning, not an error. */
    uint8_t *k = find_bytes(b, n, DS8B_GGUF_TDIGEST_KEY);
    CHECK(k != NULL, "digest key in the file");
    if (k) {
        k[strlen(DS8B_GGUF_TDIGEST_KEY) - 1] = 'X';
        CHECK(spit(legacy, b, n) == 0, "write");
        rc = load_logged(legacy, &lb);
        CHECK(rc == 0 && lb.warns == 0, "legacy intact: %d %s", rc, lb.text);
        CHECK(requantize_copying_meta(legacy, legacy_rq, true, &e) == 0, "%s", e.msg);
        g = NULL;
        CHECK(ds8b__gguf_open(legacy_rq, &g, &e) == 0 && ds8b__gguf_crc_state(g) == DS8B_GGUF_CRC_LEGACY, "legacy");
        ds8b__gguf_close(g);
        rc = load_logged(legacy_rq, &lb);
        CHECK(rc == 0 && lb.warns == 1 && strstr(lb.text, "do not match"), "legacy rewritten: %d %s", rc, lb.text);
    }
    free(b);
    unlink(q8);
    unlink(rq);
    unlink(bad);
    unlink(legacy);
    unlink(legacy_rq);
}

static uint64_t rng = 0x243F6A8885A308D3ull;
static uint32_t rnd32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float rndu(void) { return (float)(rnd32() & 0xFFFFFF) / 16777216.0f; }
static float rndn(void) { return (rndu() + rndu() + rndu() + rndu() - 2.0f) * 1.7320508f; }

/* Blocks of many kinds: gaussian, heavy outliers, constant, all zero but
 * one, tiny (denormal) and huge values, exact code multiples. */
static void fill_block(float *x, float *w, int n, int kind) {
    float sc = powf(10.0f, (float)(int)(rnd32() % 9) - 4.0f);
    for (int i = 0; i < n; i++) {
        switch (kind % 7) {
        case 0: x[i] = rndn() * sc; break;
        case 1: x[i] = rndn() * sc * (rnd32() % 11 == 0 ? 20.0f : 1.0f); break;
        case 2: x[i] = sc; break;
        case 3: x[i] = i == (int)(rnd32() % (unsigned)n) ? -sc : 0.0f; break;
        case 4: x[i] = rndn() * 1e-40f; break;
        case 5: x[i] = rndn() * 1e30f; break;
        default: x[i] = (float)((int)(rnd32() % 15) - 7) * 0.125f; break;
        }
        w[i] = kind & 8 ? 1.0f : (rnd32() % 5 == 0 ? 0.0f : rndu() * 3.0f);
    }
}

/* The vectorised searches return exactly the scalar reference's scales. */
static void test_sym_search_simd_matches_scalar(void) {
#if !defined(__x86_64__)
    SKIP("the vectorised scale searches are x86 (AVX2, AVX-512) only");
#else
    int maxl = ds8b__isa_max_level();
    if (maxl < 1) {
        SKIP("this CPU has neither AVX2 nor AVX-512");
        return;
    }
    static const int ranges[4][2] = {{-8, 7}, {-127, 127}, {-16, 15}, {-32, 31}};
    float x[16 * 32], w[16 * 32], d0[16], d1[16], d2[16];
    long cases = 0, mism = 0;
    for (int rep = 0; rep < 3000; rep++) {
        int n = rep % 3 == 0 ? 16 : 32;
        int nblk = 1 + (int)(rnd32() % 16);
        int r = (int)(rnd32() % 4);
        for (int b = 0; b < nblk; b++) fill_block(x + b * n, w + b * n, n, (int)(rnd32() % 16));
        ds8b__sym_search_scalar(x, w, n, nblk, ranges[r][0], ranges[r][1], d0);
        ds8b__sym_search_avx2(x, w, n, nblk, ranges[r][0], ranges[r][1], d1);
        if (maxl >= 2) ds8b__sym_search_avx512(x, w, n, nblk, ranges[r][0], ranges[r][1], d2);
        for (int b = 0; b < nblk; b++) {
            cases++;
            if (memcmp(&d0[b], &d1[b], 4) || (maxl >= 2 && memcmp(&d0[b], &d2[b], 4))) {
                if (mism++ < 5)
                    printf("  # rep %d block %d n %d: scalar %a avx2 %a avx512 %a\n", rep, b, n, d0[b], d1[b],
                           maxl >= 2 ? d2[b] : 0.0f);
            }
        }
    }
    CHECK(mism == 0, "%ld of %ld blocks differ", mism, cases);
    if (maxl < 2) SKIP("AVX2 checked; no AVX-512 on this CPU");
#endif
}

/* Whole rows through ds8b__quant_row_w at every ISA level: same bytes. */
static void test_quant_rows_same_bytes_every_isa(void) {
    int maxl = ds8b__isa_max_level();
    if (maxl < 1) {
        SKIP("this CPU has neither AVX2 nor AVX-512");
        return;
    }
    static const int types[] = {DS8B_T_Q4_0, DS8B_T_Q8_0, DS8B_T_Q5_0, DS8B_T_Q6_K, DS8B_T_Q4_K, DS8B_T_Q5_K,
                                DS8B_T_Q3_K, DS8B_T_Q2_K};
    const int64_t n = 256 * 23;
    float *x = malloc((size_t)n * sizeof(float)), *imp = malloc((size_t)n * sizeof(float));
    uint8_t *q[8]; /* one per level (x86 has 4, ARM 4) */
    if (maxl > 7) maxl = 7;
    for (int i = 0; i < 8; i++) q[i] = malloc((size_t)n * 2);
    for (int64_t i = 0; i < n; i++) {
        x[i] = rndn() * 0.02f * (rnd32() % 50 == 0 ? 8.0f : 1.0f);
        imp[i] = rndu() * rndu() * 4.0f;
    }
    int old = ds8b__isa_level();
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        size_t rb;
        ds8b__row_bytes(types[ti], n, &rb);
        for (int wi = 0; wi < 2; wi++) {
            for (int l = 0; l <= maxl; l++) {
                ds8b__isa_force(l);
                CHECK(ds8b__quant_row_w(types[ti], x, wi ? imp : NULL, q[l], n) == 0, "quant");
            }
            for (int l = 1; l <= maxl; l++)
                CHECK(memcmp(q[0], q[l], rb) == 0, "type %d weights %d: level %d differs from scalar", types[ti], wi, l);
        }
    }
    ds8b__isa_force(old);
    free(x);
    free(imp);
    for (int i = 0; i < 8; i++) free(q[i]);
}

int main(void) {
    RUN(test_checksums_bound_to_table);
    RUN(test_sym_search_simd_matches_scalar);
    RUN(test_quant_rows_same_bytes_every_isa);
    rmdir(g_tmpdir);
    T_EXIT();
}
