/* test_imatrix.c -- importance matrices: llama.cpp's two file formats
 * parsed with every length checked (truncated and corrupted files give
 * errors, never a crash), our GGUF writer read back, calibration over
 * text, and quantization with an imatrix: the file differs, scores better
 * on held-out text, and an imatrix of another model is refused. Also the
 * q3_k_m and q2_k schemes: the tensor types of the written files. */
#include "t.h"
#include "internal.h"
#include "formats/gguf.h"
#include "model/imatrix.h"

#include "t_json.h"
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_tmpdir[256];
static const char *tmp_path(char *buf, size_t cap, const char *name) {
    if (!g_tmpdir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(g_tmpdir, sizeof g_tmpdir, "%s/ds8b-imatrix-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(g_tmpdir)) snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp");
    }
    snprintf(buf, cap, "%s/%s", g_tmpdir, name);
    return buf;
}

/* ---- a .dat file written by hand, as llama.cpp lays it out ---- */
typedef struct buf { uint8_t *p; size_t n, cap; } buf;
static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_i32(buf *b, int32_t v) { put(b, &v, 4); } /* little-endian host (x86, aarch64) */
static void put_f32(buf *b, float v) { put(b, &v, 4); }

/* Two entries: "blk.0.attn_q.weight" (8 values i+1, ncall 10) and
 * "output.weight" (4 values 0.5), trailer: 10 chunks, dataset "calib.txt". */
static buf make_dat(bool trailer) {
    buf b = {0};
    put_i32(&b, 2);
    const char *n1 = "blk.0.attn_q.weight";
    put_i32(&b, (int32_t)strlen(n1));
    put(&b, n1, strlen(n1));
    put_i32(&b, 10);
    put_i32(&b, 8);
    for (int i = 0; i < 8; i++) put_f32(&b, (float)(i + 1) * 10.0f); /* mean (i+1) times ncall 10 */
    const char *n2 = "output.weight";
    put_i32(&b, (int32_t)strlen(n2));
    put(&b, n2, strlen(n2));
    put_i32(&b, 10);
    put_i32(&b, 4);
    for (int i = 0; i < 4; i++) put_f32(&b, 5.0f);
    if (trailer) {
        put_i32(&b, 10);
        put_i32(&b, 9);
        put(&b, "calib.txt", 9);
    }
    return b;
}

static void test_dat_parse(void) {
    buf b = make_dat(true);
    ds8b_imatrix *im = NULL;
    ds8b__err e = {0};
    CHECK(ds8b__imatrix_parse(b.p, b.n, "t.dat", &im, &e) == 0, "%s", e.msg);
    if (im) {
        int64_t v = 0;
        CHECK(ds8b_imatrix_info(im, DS8B_IMATRIX_ENTRIES, &v) == 0 && v == 2, "entries %lld", (long long)v);
        CHECK(ds8b_imatrix_info(im, DS8B_IMATRIX_CHUNKS, &v) == 0 && v == 10, "chunks %lld", (long long)v);
        CHECK(im->dataset && strcmp(im->dataset, "calib.txt") == 0, "dataset");
        const ds8b__imat_ent *q = ds8b__imatrix_find(im, "blk.0.attn_q.weight");
        CHECK(q && q->n == 8, "entry");
        if (q) {
            float w[8];
            ds8b__imatrix_weights(q, w);
            for (int i = 0; i < 8; i++) CHECK(fabsf(w[i] - (float)(i + 1)) < 1e-6f, "weight %d = %g", i, w[i]);
        }
        CHECK(ds8b__imatrix_find(im, "output.weight") != NULL, "second entry");
        CHECK(ds8b__imatrix_find(im, "nope") == NULL, "absent entry");
    }
    ds8b_imatrix_free(im);
    /* without the optional trailer */
    buf c = make_dat(false);
    im = NULL;
    CHECK(ds8b__imatrix_parse(c.p, c.n, "t.dat", &im, &e) == 0, "no trailer: %s", e.msg);
    ds8b_imatrix_free(im);
    free(b.p);
    free(c.p);
}

/* Every prefix of a valid file either parses (the ones that end where
 * the format allows: after the entries, after the chunk count) or fails
 * with DS8B_E_FORMAT and a message; and no byte value anywhere crashes. */
static void fuzz_bytes(const uint8_t *good, size_t n, const char *what, size_t *n_ok, size_t *min_ok) {
    ds8b__err e;
    *n_ok = 0;
    *min_ok = n;
    for (size_t len = 0; len < n; len++) {
        ds8b_imatrix *im = NULL;
        memset(&e, 0, sizeof e);
        int rc = ds8b__imatrix_parse(good, len, what, &im, &e);
        if (rc == 0) {
            (*n_ok)++;
            if (len < *min_ok) *min_ok = len;
        }
        else CHECK(e.msg[0] && im == NULL && (rc == DS8B_E_FORMAT || rc == DS8B_E_LIMIT), "%s prefix %zu: rc %d '%s'", what, len, rc, e.msg);
        ds8b_imatrix_free(im);
    }
    uint8_t *c = malloc(n);
    uint64_t r = 0x2545F4914F6CDD1Dull;
    static const uint8_t vals[] = {0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe};
    for (size_t pos = 0; pos < n; pos++) {
        for (size_t k = 0; k < sizeof vals + 2; k++) {
            memcpy(c, good, n);
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            c[pos] = k < sizeof vals ? vals[k] : (uint8_t)(r >> 32);
            ds8b_imatrix *im = NULL;
            memset(&e, 0, sizeof e);
            int rc = ds8b__imatrix_parse(c, n, what, &im, &e);
            if (rc) CHECK(e.msg[0] && im == NULL, "%s byte %zu: rc %d without a message", what, pos, rc);
            ds8b_imatrix_free(im);
        }
    }
    free(c);
}

static void test_dat_corrupt(void) {
    buf b = make_dat(true);
    size_t ok, min_ok;
    fuzz_bytes(b.p, b.n, "t.dat", &ok, &min_ok);
    /* the prefixes that are whole files: entries only, entries + chunk count */
    CHECK(ok == 2, "%zu prefixes parsed, expected 2", ok);
    /* specific lies, each a clear error */
    struct { size_t off; int32_t v; const char *expect; } lies[] = {
        {0, -1, "entry count"},
        {0, 0x7fffffff, "more than"},
        {4, 0x7fffffff, "name length"},
        {4, 1000, "truncated name"},
        {4 + 4 + 19, -3, "calls"},
        {4 + 4 + 19 + 4, 0x7fffffff, "values need"},
        {4 + 4 + 19 + 4, 0, "values"},
    };
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        buf c = make_dat(true);
        memcpy(c.p + lies[i].off, &lies[i].v, 4);
        ds8b_imatrix *im = NULL;
        ds8b__err e = {0};
        int rc = ds8b__imatrix_parse(c.p, c.n, "t.dat", &im, &e);
        CHECK(rc != 0 && strstr(e.msg, lies[i].expect), "lie %zu: rc %d '%s' (expected '%s')", i, rc, e.msg,
              lies[i].expect);
        ds8b_imatrix_free(im);
        free(c.p);
    }
    /* a NaN and a negative sum */
    for (int k = 0; k < 2; k++) {
        buf c = make_dat(true);
        float bad = k ? -1.0f : NAN;
        memcpy(c.p + 4 + 4 + 19 + 8 + 8, &bad, 4);
        ds8b_imatrix *im = NULL;
        ds8b__err e = {0};
        CHECK(ds8b__imatrix_parse(c.p, c.n, "t.dat", &im, &e) == DS8B_E_FORMAT && strstr(e.msg, "sum of squares"),
              "bad value %d: '%s'", k, e.msg);
        free(c.p);
    }
    /* a duplicate name */
    {
        buf d = {0};
        put_i32(&d, 2);
        for (int k = 0; k < 2; k++) {
            put_i32(&d, 3);
            put(&d, "abc", 3);
            put_i32(&d, 1);
            put_i32(&d, 1);
            put_f32(&d, 1.0f);
        }
        ds8b_imatrix *im = NULL;
        ds8b__err e = {0};
        CHECK(ds8b__imatrix_parse(d.p, d.n, "t.dat", &im, &e) == DS8B_E_FORMAT && strstr(e.msg, "twice"), "'%s'", e.msg);
        free(d.p);
    }
    /* a file that does not exist, and an empty one */
    ds8b_imatrix *im = NULL;
    CHECK(ds8b_imatrix_load("/nonexistent/imatrix.dat", &im) == DS8B_E_IO && im == NULL, "missing file");
    ds8b__err e = {0};
    CHECK(ds8b__imatrix_parse("", 0, "empty", &im, &e) == DS8B_E_FORMAT, "empty: %s", e.msg);
    free(b.p);
}

/* ---- GGUF: written by us (ds8b_imatrix_save), read back, then fuzzed ---- */
static ds8b_imatrix *from_dat(void) {
    buf b = make_dat(true);
    ds8b_imatrix *im = NULL;
    ds8b__err e = {0};
    ds8b__imatrix_parse(b.p, b.n, "t.dat", &im, &e);
    free(b.p);
    return im;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long l = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)l + 1);
    *n = fread(p, 1, (size_t)l, f);
    fclose(f);
    return p;
}

static void test_gguf_round_trip_and_corrupt(void) {
    char path[512];
    ds8b_imatrix *im = from_dat(), *back = NULL;
    CHECK(im != NULL, "source");
    if (!im) return;
    CHECK(ds8b_imatrix_save(im, tmp_path(path, sizeof path, "im.gguf")) == 0, "%s", ds8b_errmsg());
    CHECK(ds8b_imatrix_load(path, &back) == 0, "%s", ds8b_errmsg());
    if (back) {
        int64_t v;
        CHECK(ds8b_imatrix_info(back, DS8B_IMATRIX_ENTRIES, &v) == 0 && v == 2, "entries");
        CHECK(ds8b_imatrix_info(back, DS8B_IMATRIX_CHUNKS, &v) == 0 && v == 10, "chunks");
        CHECK(back->dataset && strcmp(back->dataset, "calib.txt") == 0, "dataset");
        const ds8b__imat_ent *a = ds8b__imatrix_find(im, "blk.0.attn_q.weight"), *b = ds8b__imatrix_find(back, "blk.0.attn_q.weight");
        CHECK(a && b && a->n == b->n, "entry");
        if (a && b) {
            float wa[8], wb[8];
            ds8b__imatrix_weights(a, wa);
            ds8b__imatrix_weights(b, wb);
            for (int i = 0; i < 8; i++) CHECK(fabsf(wa[i] - wb[i]) <= 1e-6f * wa[i], "weight %d: %g vs %g", i, wa[i], wb[i]);
        }
    }
    /* llama.cpp's layout: NAME.in_sum2 [n, 1] and NAME.counts [1, 1], F32, names sorted */
    uint64_t data_end = 0;
    ds8b__gguf *g = NULL;
    ds8b__err e = {0};
    CHECK(ds8b__gguf_open(path, &g, &e) == 0, "%s", e.msg);
    if (g) {
        CHECK(ds8b__gguf_n_tensors(g) == 4, "tensors");
        const ds8b__tensor *t0 = ds8b__gguf_tensor(g, 0), *t1 = ds8b__gguf_tensor(g, 1);
        CHECK(t0 && strcmp(t0->name, "blk.0.attn_q.weight.in_sum2") == 0 && t0->ne[0] == 8 && t0->type == DS8B_T_F32,
              "first tensor %s", t0 ? t0->name : "?");
        CHECK(t1 && strcmp(t1->name, "blk.0.attn_q.weight.counts") == 0 && t1->ne[0] == 1, "second tensor");
        const char *s;
        size_t sl;
        CHECK(ds8b__gguf_get_str(g, "general.type", &s, &sl, &e) == 0 && sl == 7 && !memcmp(s, "imatrix", 7), "type");
        uint32_t cc;
        CHECK(ds8b__gguf_get_u32(g, "imatrix.chunk_count", &cc, &e) == 0 && cc == 10, "chunk_count");
        int64_t last = ds8b__gguf_n_tensors(g) - 1;
        data_end = ds8b__gguf_tensor_file_offset(g, last) + ds8b__gguf_tensor(g, last)->nbytes;
        ds8b__gguf_close(g);
    }
    size_t n;
    uint8_t *bytes = slurp(path, &n);
    CHECK(bytes != NULL, "read back");
    if (bytes && data_end) {
        /* the only prefixes that parse are those that keep every tensor's
         * data: cuts in the alignment padding after the last one */
        size_t ok, min_ok;
        fuzz_bytes(bytes, n, "im.gguf", &ok, &min_ok);
        CHECK(min_ok == data_end, "a prefix of %zu bytes parsed; the data ends at %zu", min_ok, (size_t)data_end);
    }
    free(bytes);
    ds8b_imatrix_free(im);
    ds8b_imatrix_free(back);
}

/* GGUF files that are well-formed GGUF but wrong imatrix files. */
static void test_gguf_wrong_content(void) {
    char path[512];
    struct { const char *type_value; const char *t1; int ty1; int64_t n1; const char *t2; int ty2; int64_t n2; int rc;
             const char *expect; } cases[] = {
        {"model", "a.in_sum2", DS8B_T_F32, 4, "a.counts", DS8B_T_F32, 1, DS8B_E_FORMAT, "not 'imatrix'"},
        {"imatrix", "a.in_sum2", DS8B_T_F32, 4, "b.counts", DS8B_T_F32, 1, DS8B_E_FORMAT, "beside it"},
        {"imatrix", "a.in_sum2", DS8B_T_F32, 4, "a.counts", DS8B_T_F16, 2, DS8B_E_FORMAT, "must be F32"},
        {"imatrix", "a.weight", DS8B_T_F32, 4, "a.counts", DS8B_T_F32, 1, DS8B_E_FORMAT, "neither"},
        {"imatrix", "a.in_sum2", DS8B_T_F32, 8, "a.counts", DS8B_T_F32, 2, DS8B_E_UNSUPPORTED, "mixture of experts"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        ds8b__gguf_writer *w = NULL;
        ds8b__err e = {0};
        tmp_path(path, sizeof path, "bad.gguf");
        CHECK(ds8b__gguf_writer_create(path, &w, &e) == 0, "%s", e.msg);
        if (!w) continue;
        ds8b__gguf_writer_add_str(w, "general.type", cases[c].type_value, strlen(cases[c].type_value), &e);
        int64_t ne1[2] = {cases[c].n1 == 8 ? 4 : cases[c].n1, cases[c].n1 == 8 ? 2 : 1}, ne2[2] = {cases[c].n2 == 2 ? 2 : 1, 1};
        if (cases[c].rc == DS8B_E_UNSUPPORTED) ne2[0] = 1, ne2[1] = 2;
        ds8b__gguf_writer_add_tensor_info(w, cases[c].t1, cases[c].ty1, 2, ne1, NULL, &e);
        ds8b__gguf_writer_add_tensor_info(w, cases[c].t2, cases[c].ty2, 2, ne2, NULL, &e);
        ds8b__gguf_writer_write_header(w, &e);
        uint8_t zero[64] = {0};
        float one = 1.0f;
        memcpy(zero, &one, 4);
        ds8b__gguf_writer_write_tensor_data(w, 0, zero, ds8b__gguf_writer_tensor_nbytes(w, 0), &e);
        ds8b__gguf_writer_write_tensor_data(w, 1, zero, ds8b__gguf_writer_tensor_nbytes(w, 1), &e);
        CHECK(ds8b__gguf_writer_finish(w, &e) == 0, "case %zu: %s", c, e.msg);
        ds8b_imatrix *im = NULL;
        int rc = ds8b_imatrix_load(path, &im);
        CHECK(rc == cases[c].rc && strstr(ds8b_errmsg(), cases[c].expect), "case %zu: rc %d '%s' (expected '%s')", c, rc,
              ds8b_errmsg(), cases[c].expect);
        CHECK(im == NULL, "no handle on failure");
        ds8b_imatrix_free(im);
    }
}

/* ---- with the demo model ---- */
static double mean_nll_lang(ds8b_model *m, const cJSON *ref, const char *lang, int max_windows) {
    ds8b_params *p;
    ds8b_params_create(&p);
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 512);
    ds8b_params_set_int(p, DS8B_PARAM_N_BATCH, 512);
    ds8b_params_set_int(p, DS8B_PARAM_KV_TYPE, DS8B_KV_F32);
    ds8b_session *s = NULL;
    CHECK(ds8b_session_create(m, p, &s) == 0, "session: %s", ds8b_errmsg());
    ds8b_params_free(p);
    if (!s) return NAN;
    int64_t V;
    ds8b_model_info(m, DS8B_MODEL_N_VOCAB, &V);
    float *lg = malloc(512 * (size_t)V * 4);
    const cJSON *l = cJSON_GetObjectItem(cJSON_GetObjectItem(ref, "perplexity"), lang);
    double sum = 0;
    int nw = 0;
    for (const cJSON *w = cJSON_GetObjectItem(l, "windows")->child; w && nw < max_windows; w = w->next) {
        size_t n;
        int32_t *ids = t_ids_of(w, &n);
        ds8b_session_reset(s);
        CHECK(ds8b_eval(s, ids, n, lg) == 0, "eval: %s", ds8b_errmsg());
        double nll = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            const float *r = lg + i * (size_t)V;
            double mx = r[0], z = 0;
            for (int64_t k = 1; k < V; k++) if (r[k] > mx) mx = r[k];
            for (int64_t k = 0; k < V; k++) z += exp(r[k] - mx);
            nll += mx + log(z) - r[ids[i + 1]];
        }
        sum += nll / (double)(n - 1);
        nw++;
        free(ids);
    }
    free(lg);
    ds8b_session_free(s);
    return sum / nw;
}

static int cancel_at_half(void *user, double frac, const char *stage) {
    (void)user;
    return frac >= 0.5 && strcmp(stage, "calibrating") == 0;
}

/* Calibration text: our own documentation (English prose about this
 * library), which the held-out windows of ../shared/testdata/reference
 * (the Python documentation, man pages) do not contain. */
static char *calib_text(size_t *len) {
    size_t a = 0, b = 0;
    uint8_t *x = slurp("docs/quantization.md", &a), *y = slurp("README.md", &b);
    char *t = malloc(a + b + 2);
    size_t n = 0;
    if (x) memcpy(t, x, a), n += a;
    t[n++] = '\n';
    if (y) memcpy(t + n, y, b), n += b;
    t[n] = 0;
    free(x);
    free(y);
    *len = n;
    return t;
}

static void test_calibrate_and_quantize(void) {
    char mp[1024], rp[1024], p1[512], p2[512], p3[512];
    ds8b_model *src = NULL;
    if (ds8b_model_load(t_path(mp, sizeof mp, "models/demo-llama"), NULL, &src) != 0) {
        SKIP("no demo model: %s", ds8b_errmsg());
        return;
    }
    cJSON *ref = t_load_json(t_path(rp, sizeof rp, "testdata/reference/demo-llama.json"));
    size_t len;
    char *text = calib_text(&len);
    ds8b_params *p;
    ds8b_params_create(&p);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, 2);
    /* cancellation through the progress callback */
    ds8b_imatrix *im = NULL;
    ds8b_params_set_progress(p, cancel_at_half, NULL);
    CHECK(ds8b_imatrix_compute(src, text, len, p, &im) == DS8B_E_CANCELLED && im == NULL, "cancel: %s", ds8b_errmsg());
    ds8b_params_set_progress(p, NULL, NULL);
    CHECK(ds8b_imatrix_compute(src, text, len, p, &im) == 0, "compute: %s", ds8b_errmsg());
    ds8b_imatrix *none = NULL;
    CHECK(ds8b_imatrix_compute(src, "", 0, p, &none) == DS8B_E_INVALID && none == NULL, "empty text");
    CHECK(im != NULL, "no imatrix computed");
    int64_t n_layer = 0, ne = 0, ch = 0;
    ds8b_model_info(src, DS8B_MODEL_N_LAYER, &n_layer);
    if (im) {
        ds8b_imatrix_info(im, DS8B_IMATRIX_ENTRIES, &ne);
        ds8b_imatrix_info(im, DS8B_IMATRIX_CHUNKS, &ch);
        CHECK(ne == 7 * n_layer + 1, "%lld entries for %lld layers", (long long)ne, (long long)n_layer);
        CHECK(ch >= 2, "%lld chunks", (long long)ch);
        const ds8b__imat_ent *q = ds8b__imatrix_find(im, "blk.0.attn_q.weight"), *d = ds8b__imatrix_find(im, "blk.5.ffn_down.weight");
        CHECK(q && q->n == 256 && q->count > 0, "attn_q entry");
        CHECK(d && d->n > 256, "ffn_down entry");
        if (q) {
            int pos = 0;
            for (int64_t c = 0; c < q->n; c++) pos += q->sum[c] > 0;
            CHECK(pos == q->n, "%d of %lld columns with activations", pos, (long long)q->n);
        }
        /* saved and read back: the same weights */
        ds8b_imatrix *back = NULL;
        CHECK(ds8b_imatrix_save(im, tmp_path(p1, sizeof p1, "calib.imatrix.gguf")) == 0, "%s", ds8b_errmsg());
        CHECK(ds8b_imatrix_load(p1, &back) == 0, "%s", ds8b_errmsg());
        const ds8b__imat_ent *b = back ? ds8b__imatrix_find(back, "blk.5.ffn_down.weight") : NULL;
        CHECK(b && d && b->n == d->n, "read back");
        if (b && d) {
            float *wa = malloc((size_t)d->n * 4), *wb = malloc((size_t)d->n * 4);
            ds8b__imatrix_weights(d, wa);
            ds8b__imatrix_weights(b, wb);
            int same = 1;
            for (int64_t c = 0; c < d->n; c++) same &= fabsf(wa[c] - wb[c]) <= 1e-6f * wa[c] + 1e-30f;
            CHECK(same, "weights differ after a round trip");
            free(wa);
            free(wb);
        }
        ds8b_imatrix_free(back);
    }
    /* q2_k with and without: the files differ, and the imatrix one scores
     * better on held-out text (English, as the calibration text is) */
    if (im) {
        ds8b_params *pq;
        ds8b_params_create(&pq);
        ds8b_params_set_int(pq, DS8B_PARAM_N_THREADS, 2);
        CHECK(ds8b_quantize(mp, tmp_path(p2, sizeof p2, "plain.gguf"), "q2_k", pq) == 0, "%s", ds8b_errmsg());
        ds8b_params_set_imatrix(pq, im);
        CHECK(ds8b_quantize(mp, tmp_path(p3, sizeof p3, "imat.gguf"), "q2_k", pq) == 0, "%s", ds8b_errmsg());
        size_t na, nb;
        uint8_t *fa = slurp(p2, &na), *fb = slurp(p3, &nb);
        CHECK(fa && fb && (na != nb || memcmp(fa, fb, na) != 0), "the files are identical");
        free(fa);
        free(fb);
        /* llama-quantize's keys say an imatrix was used */
        ds8b__gguf *g = NULL;
        ds8b__err e = {0};
        if (ds8b__gguf_open(p3, &g, &e) == 0) {
            int32_t v = 0;
            CHECK(ds8b__gguf_get_i32(g, "quantize.imatrix.entries_count", &v, &e) == 0 && v == ne, "entries_count %d", v);
            ds8b__gguf_close(g);
        }
        ds8b_model *a = NULL, *bq = NULL;
        CHECK(ds8b_model_load(p2, NULL, &a) == 0 && ds8b_model_load(p3, NULL, &bq) == 0, "%s", ds8b_errmsg());
        if (a && bq && ref) {
            int nw = t_quick() ? 2 : 8;
            double na_ = mean_nll_lang(a, ref, "en", nw), nb_ = mean_nll_lang(bq, ref, "en", nw);
            printf("  # q2_k en mean NLL over %d held-out windows: %.4f without, %.4f with the importance matrix\n", nw,
                   na_, nb_);
            CHECK(nb_ < na_, "imatrix q2_k %.4f is not better than plain %.4f", nb_, na_);
        }
        ds8b_model_free(a);
        ds8b_model_free(bq);
        /* in memory: the same weighting applies */
        ds8b_model *qa = NULL, *qb = NULL;
        CHECK(ds8b_model_quantize(src, "q4_0", NULL, &qa) == 0, "%s", ds8b_errmsg());
        CHECK(ds8b_model_quantize(src, "q4_0", pq, &qb) == 0, "%s", ds8b_errmsg());
        if (qa && qb && ref) {
            double x = mean_nll_lang(qa, ref, "en", 1), y = mean_nll_lang(qb, ref, "en", 1);
            CHECK(x != y, "in-memory quantization ignored the imatrix (%.6f)", x);
        }
        ds8b_model_free(qa);
        ds8b_model_free(qb);
        ds8b_params_free(pq);
    }
    /* an imatrix of another model: refused, naming the tensor */
    {
        buf d = {0};
        put_i32(&d, 1);
        put_i32(&d, 19);
        put(&d, "blk.0.attn_q.weight", 19);
        put_i32(&d, 1);
        put_i32(&d, 64);
        for (int i = 0; i < 64; i++) put_f32(&d, 1.0f);
        ds8b_imatrix *other = NULL;
        ds8b__err e = {0};
        CHECK(ds8b__imatrix_parse(d.p, d.n, "other.dat", &other, &e) == 0, "%s", e.msg);
        ds8b_params *pq;
        ds8b_params_create(&pq);
        ds8b_params_set_imatrix(pq, other);
        int rc = ds8b_quantize(mp, tmp_path(p2, sizeof p2, "other.gguf"), "q4_0", pq);
        CHECK(rc == DS8B_E_MISMATCH && strstr(ds8b_errmsg(), "blk.0.attn_q.weight"), "rc %d '%s'", rc, ds8b_errmsg());
        struct stat st;
        CHECK(stat(p2, &st) != 0, "a file was left behind");
        ds8b_model *qm = NULL;
        CHECK(ds8b_model_quantize(src, "q4_0", pq, &qm) == DS8B_E_MISMATCH && qm == NULL, "in memory: %s", ds8b_errmsg());
        ds8b_params_free(pq);
        ds8b_imatrix_free(other);
        free(d.p);
    }
    CHECK(ds8b_params_set_imatrix(NULL, im) == DS8B_E_MISUSE, "NULL params");
    ds8b_imatrix_free(im);
    ds8b_params_free(p);
    free(text);
    cJSON_Delete(ref);
    ds8b_model_free(src);
    unlink(p1);
    unlink(p2);
    unlink(p3);
}

/* The q3_k_m and q2_k mixes, tensor by tensor (docs/quantization.md). */
static void test_low_bit_scheme_types(void) {
    char mp[1024], out[512];
    t_path(mp, sizeof mp, "models/demo-llama");
    static const char *const roles[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    for (int s = 0; s < 2; s++) {
        const char *scheme = s ? "q2_k" : "q3_k_m";
        ds8b_params *p;
        ds8b_params_create(&p);
        ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, 2);
        int rc = ds8b_quantize(mp, tmp_path(out, sizeof out, "low.gguf"), scheme, p);
        ds8b_params_free(p);
        if (rc) {
            SKIP("no demo model: %s", ds8b_errmsg());
            return;
        }
        ds8b__gguf *g = NULL;
        ds8b__err e = {0};
        CHECK(ds8b__gguf_open(out, &g, &e) == 0, "%s", e.msg);
        if (!g) continue;
        uint32_t ft = 0;
        CHECK(ds8b__gguf_get_u32(g, "general.file_type", &ft, &e) == 0 && ft == (s ? 10u : 12u), "file_type %u", ft);
        const ds8b__tensor *t = ds8b__gguf_find_tensor(g, "output.weight");
        CHECK(t && t->type == DS8B_T_Q6_K, "output");
        t = ds8b__gguf_find_tensor(g, "token_embd.weight");
        CHECK(t && t->type == (s ? DS8B_T_Q2_K : DS8B_T_Q3_K), "token_embd");
        for (int l = 0; l < 6; l++)
            for (int r = 0; r < 7; r++) {
                char nm[64];
                snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, roles[r]);
                int want;
                if (s == 0) /* q3_k_m */
                    want = r == 2 ? (l < 2 ? DS8B_T_Q5_K : DS8B_T_Q4_K)
                         : r == 6 ? DS8B_T_Q4_K /* layer < 6/16 = 0: none Q5_K */
                         : r == 3 ? DS8B_T_Q4_K : DS8B_T_Q3_K;
                else /* q2_k, 4 query heads per KV head */
                    want = r == 2 ? DS8B_T_Q4_K : (r == 3 || r == 6) ? DS8B_T_Q3_K : DS8B_T_Q2_K;
                t = ds8b__gguf_find_tensor(g, nm);
                CHECK(t && t->type == want, "%s %s: %s, expected %s", scheme, nm, t ? ds8b__type_info(t->type)->name : "missing",
                      ds8b__type_info(want)->name);
            }
        ds8b__gguf_close(g);
        /* and it loads and runs */
        ds8b_model *m = NULL;
        CHECK(ds8b_model_load(out, NULL, &m) == 0, "%s", ds8b_errmsg());
        ds8b_model_free(m);
        unlink(out);
    }
}

int main(void) {
    RUN(test_dat_parse);
    RUN(test_dat_corrupt);
    RUN(test_gguf_round_trip_and_corrupt);
    RUN(test_gguf_wrong_content);
    RUN(test_calibrate_and_quantize);
    RUN(test_low_bit_scheme_types);
    rmdir(g_tmpdir);
    T_EXIT();
}
