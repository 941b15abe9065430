/* test_gguf.c -- GGUF reader and writer: llama.cpp's files, round trips,
 * and a corpus of malformed files.
 *
 *   test_gguf                   run the tests
 *   test_gguf --gen-corpus DIR  write the malformed corpus (and seeds) to DIR
 */
#include "t.h"
#include "internal.h"
#include "formats/gguf.h"
#include "mem.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */
static char g_tmpdir[256];

static const char *tmp_path(char *buf, size_t cap, const char *name) {
    if (!g_tmpdir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(g_tmpdir, sizeof g_tmpdir, "%s/ds8b-gguf-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(g_tmpdir)) snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp");
    }
    snprintf(buf, cap, "%s/%s", g_tmpdir, name);
    return buf;
}

static bool exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(len > 0 ? (size_t)len : 1);
    *n = p ? fread(p, 1, (size_t)len, f) : 0;
    fclose(f);
    return p;
}

/* A byte vector for hand-built files. */
typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;
static void bb_put(bb *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void bb_u8(bb *b, uint8_t v) { bb_put(b, &v, 1); }
static void bb_u32(bb *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    bb_put(b, x, 4);
}
static void bb_u64(bb *b, uint64_t v) {
    bb_u32(b, (uint32_t)v);
    bb_u32(b, (uint32_t)(v >> 32));
}
static void bb_str(bb *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}

static bool msg_has(const ds8b__err *e, const char *needle) { return strstr(e->msg, needle) != NULL; }

/* ------------------------------------------------------------------ */
/* llama.cpp's files                                                   */
/* ------------------------------------------------------------------ */
static ds8b__gguf *open_shared(const char *name) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, "testdata/gguf/%s", name);
    t_path(path, sizeof path, rel);
    ds8b__gguf *g = NULL;
    ds8b__err e = {0};
    int rc = ds8b__gguf_open(path, &g, &e);
    CHECK(rc == DS8B_OK, "%s: %s", name, e.msg);
    return g;
}

static int count_type(const ds8b__gguf *g, int type) {
    int n = 0;
    for (int64_t i = 0; i < ds8b__gguf_n_tensors(g); i++)
        n += ds8b__gguf_tensor(g, i)->type == type;
    return n;
}

/* Checks that no two tensors overlap and all lie in the file. */
static void check_layout(const ds8b__gguf *g, const char *name) {
    size_t size;
    const uint8_t *base = ds8b__gguf_base(g, &size);
    uint32_t al = ds8b__gguf_alignment(g);
    for (int64_t i = 0; i < ds8b__gguf_n_tensors(g); i++) {
        const ds8b__tensor *t = ds8b__gguf_tensor(g, i);
        const uint8_t *d = t->data;
        CHECK(d >= base && d + t->nbytes <= base + size, "%s: %s inside", name, t->name);
        CHECK((uint64_t)(d - base) == ds8b__gguf_tensor_file_offset(g, i), "%s: offset", name);
        CHECK((ds8b__gguf_tensor_file_offset(g, i) - ds8b__gguf_data_offset(g)) % al == 0,
              "%s: %s aligned", name, t->name);
        size_t row;
        CHECK(ds8b__row_bytes(t->type, t->ne[0], &row) &&
                  row * (size_t)(t->ne[1] * t->ne[2] * t->ne[3]) == t->nbytes,
              "%s: %s size", name, t->name);
        CHECK(ds8b__gguf_find_tensor(g, t->name) == t, "%s: find %s", name, t->name);
    }
}

static void check_demo_vocab(const ds8b__gguf *g, const char *name) {
    int64_t k = ds8b__gguf_find_key(g, "tokenizer.ggml.tokens");
    CHECK(k >= 0, "%s: tokens", name);
    int et = -1;
    uint64_t count = 0;
    const void *raw = NULL;
    ds8b__err e = {0};
    CHECK(ds8b__gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &count, &raw, &e) == 0, "%s", e.msg);
    CHECK(et == DS8B_GGUF_STRING && count == 8192, "%s: %d x %llu", name, et,
          (unsigned long long)count);
    uint32_t bos = 0;
    CHECK(ds8b__gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos, &e) == 0 && bos == 8184,
          "%s: bos %u", name, bos);
    const char *s;
    size_t len;
    CHECK(ds8b__gguf_arr_str(g, k, bos, &s, &len, &e) == 0, "%s", e.msg);
    const char *want = "<\xef\xbd\x9c" "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>";
    CHECK(len == strlen(want) && memcmp(s, want, len) == 0, "%s: bos token '%.*s'", name, (int)len, s);
    CHECK(ds8b__gguf_arr_str(g, k, 8192, &s, &len, &e) == DS8B_E_FORMAT, "index past the end");
    int64_t tt = ds8b__gguf_find_key(g, "tokenizer.ggml.token_type");
    int64_t v = 0;
    CHECK(ds8b__gguf_arr_i64(g, tt, bos, &v, &e) == 0 && v == 3, "bos token type %lld (control)",
          (long long)v);
    CHECK(ds8b__gguf_arr_str(g, tt, 0, &s, &len, &e) == DS8B_E_FORMAT &&
              msg_has(&e, "tokenizer.ggml.token_type"),
          "string access to an int array: %s", e.msg);
    const char *pre;
    CHECK(ds8b__gguf_get_str(g, "tokenizer.ggml.pre", &pre, &len, &e) == 0 && len == 9 &&
              memcmp(pre, "llama-bpe", 9) == 0,
          "%s: pre", name);
}

static void test_llamacpp_llama(void) {
    const char *files[] = {"demo-llama-f16.gguf", "demo-llama-Q8_0.gguf", "demo-llama-Q4_0.gguf",
                           "demo-llama-Q4_K_M.gguf"};
    const int main_type[] = {DS8B_T_F16, DS8B_T_Q8_0, DS8B_T_Q4_0, DS8B_T_Q4_K};
    const char *per_layer[] = {"attn_q", "attn_k", "attn_v", "attn_output", "attn_norm",
                               "ffn_gate", "ffn_up", "ffn_down", "ffn_norm"};
    for (int f = 0; f < 4; f++) {
        ds8b__gguf *g = open_shared(files[f]);
        if (!g) continue;
        ds8b__err e = {0};
        CHECK(ds8b__gguf_version(g) == 3, "%s: version %u", files[f], ds8b__gguf_version(g));
        const char *arch;
        size_t len;
        CHECK(ds8b__gguf_get_str(g, "general.architecture", &arch, &len, &e) == 0 && len == 5 &&
                  memcmp(arch, "llama", 5) == 0,
              "%s: arch", files[f]);
        uint32_t nl = 0, ne = 0;
        CHECK(ds8b__gguf_get_u32(g, "llama.block_count", &nl, &e) == 0 && nl == 6, "%s: layers %u",
              files[f], nl);
        CHECK(ds8b__gguf_get_u32(g, "llama.embedding_length", &ne, &e) == 0 && ne == 256, "width");
        float fb = 0;
        CHECK(ds8b__gguf_get_f32(g, "llama.rope.freq_base", &fb, &e) == 0 && fb == 500000.0f,
              "freq_base %g", fb);
        /* 6 layers x 9 + token_embd + output_norm + output + rope_freqs (llama3 scaling) */
        CHECK(ds8b__gguf_n_tensors(g) == 6 * 9 + 4, "%s: %lld tensors", files[f],
              (long long)ds8b__gguf_n_tensors(g));
        for (uint32_t l = 0; l < nl; l++)
            for (int k = 0; k < 9; k++) {
                char tn[64];
                snprintf(tn, sizeof tn, "blk.%u.%s.weight", l, per_layer[k]);
                CHECK(ds8b__gguf_find_tensor(g, tn) != NULL, "%s: %s", files[f], tn);
            }
        const char *globals[] = {"token_embd.weight", "output_norm.weight", "output.weight",
                                 "rope_freqs.weight"};
        for (int k = 0; k < 4; k++)
            CHECK(ds8b__gguf_find_tensor(g, globals[k]) != NULL, "%s: %s", files[f], globals[k]);
        const ds8b__tensor *emb = ds8b__gguf_find_tensor(g, "token_embd.weight");
        CHECK(emb && emb->n_dims == 2 && emb->ne[0] == 256 && emb->ne[1] == 8192 &&
                  emb->type == main_type[f],
              "%s: token_embd", files[f]);
        const ds8b__tensor *q = ds8b__gguf_find_tensor(g, "blk.0.attn_q.weight");
        CHECK(q && q->ne[0] == 256 && q->ne[1] == 256, "attn_q shape");
        const ds8b__tensor *kk = ds8b__gguf_find_tensor(g, "blk.0.attn_k.weight");
        CHECK(kk && kk->ne[0] == 256 && kk->ne[1] == 64, "attn_k shape (2 kv heads x 32)");
        const ds8b__tensor *nrm = ds8b__gguf_find_tensor(g, "output_norm.weight");
        CHECK(nrm && nrm->type == DS8B_T_F32 && nrm->n_dims == 1 && nrm->nbytes == 1024, "norm");
        CHECK(count_type(g, DS8B_T_F32) == 14, "%s: f32 tensors (13 norms + rope_freqs)", files[f]);
        CHECK(count_type(g, main_type[f]) > 0, "%s: main type", files[f]);
        if (main_type[f] == DS8B_T_Q4_K)
            CHECK(count_type(g, DS8B_T_Q6_K) > 0, "Q4_K_M has q6_k tensors too");
        CHECK(ds8b__gguf_find_tensor(g, "nope") == NULL, "absent tensor");
        check_layout(g, files[f]);
        check_demo_vocab(g, files[f]);
        CHECK(!ds8b__gguf_has_crc(g) && ds8b__gguf_verify_crc(g, &e) == 0, "no CRC key: OK");
        /* type errors name the key and the type */
        uint32_t u;
        CHECK(ds8b__gguf_get_u32(g, "general.architecture", &u, &e) == DS8B_E_FORMAT &&
                  msg_has(&e, "general.architecture") && msg_has(&e, "string") &&
                  msg_has(&e, files[f]),
              "%s", e.msg);
        CHECK(ds8b__gguf_get_u32(g, "llama.no_such_key", &u, &e) == DS8B_E_FORMAT &&
                  msg_has(&e, "llama.no_such_key") && msg_has(&e, "missing"),
              "%s", e.msg);
        int64_t x;
        CHECK(ds8b__gguf_get_int_range(g, "llama.block_count", 7, 100, &x, &e) == DS8B_E_FORMAT &&
                  msg_has(&e, "outside"),
              "%s", e.msg);
        ds8b__gguf_close(g);
    }
}

static void test_llamacpp_qwen3(void) {
    ds8b__gguf *g = open_shared("demo-qwen3-Q4_K_M.gguf");
    if (!g) return;
    ds8b__err e = {0};
    const char *arch;
    size_t len;
    CHECK(ds8b__gguf_get_str(g, "general.architecture", &arch, &len, &e) == 0 && len == 5 &&
              memcmp(arch, "qwen3", 5) == 0,
          "arch");
    uint32_t nl = 0, kl = 0;
    CHECK(ds8b__gguf_get_u32(g, "qwen3.block_count", &nl, &e) == 0 && nl == 6, "layers");
    CHECK(ds8b__gguf_get_u32(g, "qwen3.attention.key_length", &kl, &e) == 0 && kl == 64, "head_dim");
    /* 6 layers x 11 (q/k norms) + token_embd + output_norm; embeddings tied */
    CHECK(ds8b__gguf_n_tensors(g) == 6 * 11 + 2, "%lld tensors", (long long)ds8b__gguf_n_tensors(g));
    CHECK(ds8b__gguf_find_tensor(g, "output.weight") == NULL, "tied: no output.weight");
    const ds8b__tensor *qn = ds8b__gguf_find_tensor(g, "blk.5.attn_q_norm.weight");
    CHECK(qn && qn->type == DS8B_T_F32 && qn->ne[0] == 64, "q_norm");
    const ds8b__tensor *q = ds8b__gguf_find_tensor(g, "blk.0.attn_q.weight");
    CHECK(q && q->ne[0] == 256 && q->ne[1] == 512, "attn_q 8 heads x 64");
    CHECK(count_type(g, DS8B_T_Q4_K) > 0 && count_type(g, DS8B_T_Q6_K) > 0, "q4_k + q6_k");
    check_layout(g, "qwen3");
    check_demo_vocab(g, "qwen3");
    ds8b__gguf_close(g);
}

static void test_llamacpp_vocab(void) {
    const char *files[] = {"vocab-llama3.1.gguf", "vocab-qwen3.gguf"};
    const uint64_t n_tok[] = {128256, 151936};
    for (int f = 0; f < 2; f++) {
        ds8b__gguf *g = open_shared(files[f]);
        if (!g) continue;
        ds8b__err e = {0};
        CHECK(ds8b__gguf_n_tensors(g) == 0, "no tensors");
        int64_t k = ds8b__gguf_find_key(g, "tokenizer.ggml.tokens");
        ds8b__gguf_val v;
        CHECK(k >= 0 && ds8b__gguf_kv_val(g, k, &v) == 0 && v.type == DS8B_GGUF_ARRAY &&
                  v.elem_type == DS8B_GGUF_STRING && v.len == n_tok[f],
              "%s: tokens", files[f]);
        /* the O(1) index agrees with a sequential walk */
        const uint8_t *p = v.p;
        bool same = true;
        for (uint64_t i = 0; i < v.len && same; i++) {
            uint64_t n;
            memcpy(&n, p, 8);
            const char *s;
            size_t len;
            same = ds8b__gguf_arr_str(g, k, i, &s, &len, &e) == 0 && len == n &&
                   s == (const char *)p + 8;
            p += 8 + n;
        }
        CHECK(same, "%s: string index", files[f]);
        uint32_t eos;
        CHECK(ds8b__gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &eos, &e) == 0 && eos < n_tok[f],
              "eos");
        int64_t m = ds8b__gguf_find_key(g, "tokenizer.ggml.merges");
        const char *s;
        size_t len;
        CHECK(ds8b__gguf_arr_str(g, m, 0, &s, &len, &e) == 0 && memchr(s, ' ', len), "first merge");
        ds8b__gguf_close(g);
    }
    ds8b__gguf *g = open_shared("vocab-qwen3.gguf");
    if (g) {
        ds8b__err e = {0};
        float f = 0;
        const char *s;
        size_t len;
        CHECK(ds8b__gguf_get_f32(g, "qwen3.rope.scaling.factor", &f, &e) == 0 && f == 4.0f, "yarn");
        CHECK(ds8b__gguf_get_str(g, "qwen3.rope.scaling.type", &s, &len, &e) == 0 && len == 4 &&
                  !memcmp(s, "yarn", 4),
              "yarn type");
        bool b = true;
        CHECK(ds8b__gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, &e) == 0 && !b, "bool");
        ds8b__gguf_close(g);
    }
}

/* Truncating a real file anywhere in its header fails cleanly. */
static void test_llamacpp_truncated(void) {
    char path[1024];
    t_path(path, sizeof path, "testdata/gguf/demo-llama-Q4_0.gguf");
    size_t n = 0;
    uint8_t *buf = slurp(path, &n);
    CHECK(buf && n > 400000, "read %s", path);
    if (!buf) return;
    ds8b__gguf *g = NULL;
    ds8b__err e = {0};
    CHECK(ds8b__gguf_parse_mem(buf, n, "mem", &g, &e) == 0, "%s", e.msg);
    uint64_t hdr = ds8b__gguf_data_offset(g);
    ds8b__gguf_close(g);
    int bad = 0;
    uint64_t seed = 12345;
    for (int k = 0; k < 300; k++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t cut = k < 200 ? (size_t)((seed >> 33) % hdr) : (size_t)((seed >> 33) % n);
        int rc = ds8b__gguf_parse_mem(buf, cut, "cut", &g, &e);
        if (rc == 0) {
            bad++;
            ds8b__gguf_close(g);
        } else if (rc != DS8B_E_FORMAT) bad++;
    }
    CHECK(bad == 0, "%d truncations not refused with DS8B_E_FORMAT", bad);
    free(buf);
}

/* ------------------------------------------------------------------ */
/* Writer round trip                                                   */
/* ------------------------------------------------------------------ */
typedef struct rt_tensor {
    const char *name;
    int type;
    int n_dims;
    int64_t ne[4];
} rt_tensor;

static const rt_tensor k_rt[] = {
    {"w.f32", DS8B_T_F32, 2, {7, 3}},
    {"w.f16", DS8B_T_F16, 1, {64}},
    {"w.q8_0", DS8B_T_Q8_0, 2, {64, 2}},
    {"w.q4_k", DS8B_T_Q4_K, 3, {256, 3, 2}},
    {"w.bf16", DS8B_T_BF16, 4, {5, 1, 1, 2}},
    {"w.q6_k", DS8B_T_Q6_K, 1, {256}},
};
#define N_RT ((int)(sizeof k_rt / sizeof k_rt[0]))

static uint8_t *rt_data(int i, size_t n) {
    uint8_t *p = malloc(n);
    uint32_t s = 0x9e3779b9u * (uint32_t)(i + 1);
    for (size_t k = 0; k < n; k++) {
        s = s * 1103515245u + 12345u;
        p[k] = (uint8_t)(s >> 16);
    }
    return p;
}

#define N_TOK 150000

/* Writes the round-trip file; returns the writer's status. */
static int write_rt(const char *path, uint32_t align, bool big_vocab, ds8b__err *e) {
    ds8b__gguf_writer *w = NULL;
    int rc = ds8b__gguf_writer_create(path, &w, e);
    if (rc) return rc;
#define TRY(x) do { rc = (x); if (rc) { ds8b__gguf_writer_abort(w); return rc; } } while (0)
    if (align != 32) TRY(ds8b__gguf_writer_add_u32(w, "general.alignment", align, e));
    TRY(ds8b__gguf_writer_add_str(w, "general.architecture", "llama", 5, e));
    TRY(ds8b__gguf_writer_add_u8(w, "t.u8", 250, e));
    TRY(ds8b__gguf_writer_add_i8(w, "t.i8", -100, e));
    TRY(ds8b__gguf_writer_add_u16(w, "t.u16", 65000, e));
    TRY(ds8b__gguf_writer_add_i16(w, "t.i16", -30000, e));
    TRY(ds8b__gguf_writer_add_u32(w, "t.u32", 4000000000u, e));
    TRY(ds8b__gguf_writer_add_i32(w, "t.i32", INT32_MIN, e));
    TRY(ds8b__gguf_writer_add_f32(w, "t.f32", 1.5f, e));
    TRY(ds8b__gguf_writer_add_bool(w, "t.bool", true, e));
    TRY(ds8b__gguf_writer_add_u64(w, "t.u64", UINT64_MAX, e));
    TRY(ds8b__gguf_writer_add_i64(w, "t.i64", INT64_MIN, e));
    TRY(ds8b__gguf_writer_add_f64(w, "t.f64", 3.141592653589793, e));
    TRY(ds8b__gguf_writer_add_f64(w, "t.f64big", 1e300, e));
    TRY(ds8b__gguf_writer_add_str(w, "t.str.nul", "a\0b", 3, e));
    TRY(ds8b__gguf_writer_add_str(w, "t.str.empty", "", 0, e));
    TRY(ds8b__gguf_writer_add_str(w, "t.str.utf8", "\xe4\xb8\xad\xe6\x96\x87", 6, e));
    uint8_t a_u8[] = {0, 1, 255};
    int8_t a_i8[] = {-128, 0, 127};
    uint16_t a_u16[] = {1, 65535};
    int16_t a_i16[] = {-32768, 5};
    uint32_t a_u32[] = {7, 8, 9, 4294967295u};
    int32_t a_i32[] = {-1, 2, -3};
    float a_f32[] = {0.25f, -2.0f, 1e30f};
    uint8_t a_bool[] = {1, 0, 1};
    uint64_t a_u64[] = {UINT64_MAX, 0};
    int64_t a_i64[] = {INT64_MIN, INT64_MAX};
    double a_f64[] = {-0.5, 1e-300};
    TRY(ds8b__gguf_writer_add_arr(w, "a.u8", DS8B_GGUF_UINT8, a_u8, 3, e));
    TRY(ds8b__gguf_writer_add_arr(w, "a.i8", DS8B_GGUF_INT8, a_i8, 3, e));
    TRY(ds8b__gguf_writer_add_arr(w, "a.u16", DS8B_GGUF_UINT16, a_u16, 2, e));
    TRY(ds8b__gguf_writer_add_arr(w, "a.i16", DS8B_GGUF_INT16, a_i16, 2, e));
    TRY(ds8b__gguf_writer_add_arr(w, "a.u32", DS8B_GGUF_UINT32, a_u32, 4, e));
    TRY(ds8b__gguf_writer_add_arr(w, "a.i32", DS8B_GGUF_INT32, a_i32, 3, e));
    TRY(ds8b__gguf_writer_add_arr(w, "a.f32", DS8B_GGUF_FLOAT32, a_f32, 3, e));
    TRY(ds8b__gguf_writer_add_arr(w, "a.bool", DS8B_GGUF_BOOL, a_bool, 3, e));
    TRY(ds8b__gguf_writer_add_arr(w, "a.u64", DS8B_GGUF_UINT64, a_u64, 2, e));
    TRY(ds8b__gguf_writer_add_arr(w, "a.i64", DS8B_GGUF_INT64, a_i64, 2, e));
    TRY(ds8b__gguf_writer_add_arr(w, "a.f64", DS8B_GGUF_FLOAT64, a_f64, 2, e));
    TRY(ds8b__gguf_writer_add_arr(w, "a.empty", DS8B_GGUF_INT32, NULL, 0, e));
    const char *few[] = {"x", "", "hello world"};
    TRY(ds8b__gguf_writer_add_arr_str(w, "a.str", few, NULL, 3, e));
    if (big_vocab) {
        char **toks = malloc(N_TOK * sizeof *toks);
        size_t *lens = malloc(N_TOK * sizeof *lens);
        for (int i = 0; i < N_TOK; i++) {
            char b[32];
            lens[i] = (size_t)snprintf(b, sizeof b, "tok%d", i);
            toks[i] = strdup(b);
        }
        rc = ds8b__gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks,
                                           lens, N_TOK, e);
        for (int i = 0; i < N_TOK; i++) free(toks[i]);
        free(toks);
        free(lens);
        if (rc) { ds8b__gguf_writer_abort(w); return rc; }
    }
    /* nested: [[1,2], [], ["x","yz"]] and [[[-5]]] */
    ds8b__gguf_buf b = {0};
    ds8b__gguf_buf_arr(&b, DS8B_GGUF_ARRAY, 3);
    ds8b__gguf_buf_arr(&b, DS8B_GGUF_UINT32, 2);
    ds8b__gguf_buf_u32(&b, 1);
    ds8b__gguf_buf_u32(&b, 2);
    ds8b__gguf_buf_arr(&b, DS8B_GGUF_UINT32, 0);
    ds8b__gguf_buf_arr(&b, DS8B_GGUF_STRING, 2);
    ds8b__gguf_buf_str(&b, "x", 1);
    ds8b__gguf_buf_str(&b, "yz", 2);
    rc = b.failed ? DS8B_E_NOMEM : ds8b__gguf_writer_add_raw(w, "n.mixed", DS8B_GGUF_ARRAY, b.p, b.len, e);
    ds8b__gguf_buf_free(&b);
    if (rc) { ds8b__gguf_writer_abort(w); return rc; }
    ds8b__gguf_buf_arr(&b, DS8B_GGUF_ARRAY, 1);
    ds8b__gguf_buf_arr(&b, DS8B_GGUF_ARRAY, 1);
    ds8b__gguf_buf_arr(&b, DS8B_GGUF_INT64, 1);
    int64_t m5 = -5;
    ds8b__gguf_buf_bytes(&b, &m5, 8);
    rc = b.failed ? DS8B_E_NOMEM : ds8b__gguf_writer_add_raw(w, "n.deep", DS8B_GGUF_ARRAY, b.p, b.len, e);
    ds8b__gguf_buf_free(&b);
    if (rc) { ds8b__gguf_writer_abort(w); return rc; }
    /* writer-managed keys are skipped */
    TRY(ds8b__gguf_writer_add_str(w, "general.quantized_by", "someone else", 12, e));
    TRY(ds8b__gguf_writer_add_u32(w, "ds8b.tensor_crc32", 0, e));
    for (int i = 0; i < N_RT; i++) {
        int64_t idx = -1;
        TRY(ds8b__gguf_writer_add_tensor_info(w, k_rt[i].name, k_rt[i].type, k_rt[i].n_dims,
                                              k_rt[i].ne, &idx, e));
        if (idx != i) { ds8b__gguf_writer_abort(w); return DS8B_E_INTERNAL; }
    }
    TRY(ds8b__gguf_writer_write_header(w, e));
    for (int i = 0; i < N_RT; i++) {
        size_t n = ds8b__gguf_writer_tensor_nbytes(w, i);
        uint8_t *d = rt_data(i, n);
        if (i == 3) { /* in chunks */
            size_t a = n / 3, c = n / 2;
            rc = ds8b__gguf_writer_write_tensor_data(w, i, d, a, e);
            if (!rc) rc = ds8b__gguf_writer_write_tensor_data(w, i, d + a, 0, e);
            if (!rc) rc = ds8b__gguf_writer_write_tensor_data(w, i, d + a, c, e);
            if (!rc) rc = ds8b__gguf_writer_write_tensor_data(w, i, d + a + c, n - a - c, e);
        } else {
            rc = ds8b__gguf_writer_write_tensor_data(w, i, d, n, e);
        }
        free(d);
        if (rc) { ds8b__gguf_writer_abort(w); return rc; }
    }
#undef TRY
    return ds8b__gguf_writer_finish(w, e);
}

static void check_rt(const ds8b__gguf *g, uint32_t align, bool big_vocab) {
    ds8b__err e = {0};
    CHECK(ds8b__gguf_version(g) == 3, "v3");
    CHECK(ds8b__gguf_alignment(g) == align, "alignment %u", ds8b__gguf_alignment(g));
    CHECK(ds8b__gguf_data_offset(g) % align == 0, "data section aligned");
    int64_t n_user = 31 + (align != 32) + big_vocab;
    CHECK(ds8b__gguf_n_kv(g) == n_user + 3, "n_kv %lld", (long long)ds8b__gguf_n_kv(g));
    int64_t i64;
    uint64_t u64;
    uint32_t u32;
    int32_t i32;
    float f;
    double d;
    bool b;
    const char *s;
    size_t len;
    CHECK(ds8b__gguf_get_u32(g, "t.u8", &u32, &e) == 0 && u32 == 250, "u8 as u32");
    CHECK(ds8b__gguf_get_i32(g, "t.i8", &i32, &e) == 0 && i32 == -100, "i8");
    CHECK(ds8b__gguf_get_u32(g, "t.i8", &u32, &e) == DS8B_E_FORMAT && msg_has(&e, "t.i8") &&
              msg_has(&e, "int8"),
          "negative i8 as u32: %s", e.msg);
    CHECK(ds8b__gguf_get_u32(g, "t.u16", &u32, &e) == 0 && u32 == 65000, "u16");
    CHECK(ds8b__gguf_get_i64(g, "t.i16", &i64, &e) == 0 && i64 == -30000, "i16");
    CHECK(ds8b__gguf_get_u32(g, "t.u32", &u32, &e) == 0 && u32 == 4000000000u, "u32");
    CHECK(ds8b__gguf_get_i32(g, "t.u32", &i32, &e) == DS8B_E_FORMAT, "u32 too big for i32");
    CHECK(ds8b__gguf_get_i32(g, "t.i32", &i32, &e) == 0 && i32 == INT32_MIN, "i32");
    CHECK(ds8b__gguf_get_f32(g, "t.f32", &f, &e) == 0 && f == 1.5f, "f32");
    CHECK(ds8b__gguf_get_bool(g, "t.bool", &b, &e) == 0 && b, "bool");
    CHECK(ds8b__gguf_get_bool(g, "t.u8", &b, &e) == DS8B_E_FORMAT, "u8 is not a bool");
    CHECK(ds8b__gguf_get_u64(g, "t.u64", &u64, &e) == 0 && u64 == UINT64_MAX, "u64");
    CHECK(ds8b__gguf_get_i64(g, "t.u64", &i64, &e) == DS8B_E_FORMAT, "u64 max as i64");
    CHECK(ds8b__gguf_get_i64(g, "t.i64", &i64, &e) == 0 && i64 == INT64_MIN, "i64");
    CHECK(ds8b__gguf_get_u64(g, "t.i64", &u64, &e) == DS8B_E_FORMAT && msg_has(&e, "negative"), "neg");
    CHECK(ds8b__gguf_get_f64(g, "t.f64", &d, &e) == 0 && d == 3.141592653589793, "f64");
    CHECK(ds8b__gguf_get_f32(g, "t.f64", &f, &e) == 0 && f == (float)3.141592653589793, "f64 as f32");
    CHECK(ds8b__gguf_get_f32(g, "t.f64big", &f, &e) == DS8B_E_FORMAT, "1e300 as f32");
    CHECK(ds8b__gguf_get_f32(g, "t.u32", &f, &e) == DS8B_E_FORMAT && msg_has(&e, "uint32"), "int as f32");
    CHECK(ds8b__gguf_get_str(g, "t.str.nul", &s, &len, &e) == 0 && len == 3 && !memcmp(s, "a\0b", 3),
          "string with NUL");
    CHECK(ds8b__gguf_get_str(g, "t.str.empty", &s, &len, &e) == 0 && len == 0, "empty string");
    CHECK(ds8b__gguf_get_str(g, "t.str.utf8", &s, &len, &e) == 0 && len == 6, "utf8");
    CHECK(ds8b__gguf_get_str(g, "general.quantized_by", &s, &len, &e) == 0 &&
              len == strlen("libds8b " DS8B_VERSION_STRING) &&
              !memcmp(s, "libds8b " DS8B_VERSION_STRING, len),
          "quantized_by");
    /* arrays */
    struct { const char *key; int type; uint64_t n; const void *want; size_t bytes; } arrs[] = {
        {"a.u8", DS8B_GGUF_UINT8, 3, (uint8_t[]){0, 1, 255}, 3},
        {"a.i8", DS8B_GGUF_INT8, 3, (int8_t[]){-128, 0, 127}, 3},
        {"a.u16", DS8B_GGUF_UINT16, 2, (uint16_t[]){1, 65535}, 4},
        {"a.i16", DS8B_GGUF_INT16, 2, (int16_t[]){-32768, 5}, 4},
        {"a.u32", DS8B_GGUF_UINT32, 4, (uint32_t[]){7, 8, 9, 4294967295u}, 16},
        {"a.i32", DS8B_GGUF_INT32, 3, (int32_t[]){-1, 2, -3}, 12},
        {"a.f32", DS8B_GGUF_FLOAT32, 3, (float[]){0.25f, -2.0f, 1e30f}, 12},
        {"a.bool", DS8B_GGUF_BOOL, 3, (uint8_t[]){1, 0, 1}, 3},
        {"a.u64", DS8B_GGUF_UINT64, 2, (uint64_t[]){UINT64_MAX, 0}, 16},
        {"a.i64", DS8B_GGUF_INT64, 2, (int64_t[]){INT64_MIN, INT64_MAX}, 16},
        {"a.f64", DS8B_GGUF_FLOAT64, 2, (double[]){-0.5, 1e-300}, 16},
        {"a.empty", DS8B_GGUF_INT32, 0, "", 0},
    };
    for (size_t k = 0; k < sizeof arrs / sizeof arrs[0]; k++) {
        int et;
        uint64_t n;
        const void *raw;
        int rc = ds8b__gguf_get_arr(g, arrs[k].key, &et, &n, &raw, &e);
        CHECK(rc == 0 && et == arrs[k].type && n == arrs[k].n &&
                  memcmp(raw, arrs[k].want, arrs[k].bytes) == 0,
              "array %s", arrs[k].key);
    }
    int64_t ki = ds8b__gguf_find_key(g, "a.i32");
    CHECK(ds8b__gguf_arr_i64(g, ki, 2, &i64, &e) == 0 && i64 == -3, "arr_i64");
    CHECK(ds8b__gguf_arr_i64(g, ki, 3, &i64, &e) == DS8B_E_FORMAT && msg_has(&e, "a.i32"), "past end");
    ki = ds8b__gguf_find_key(g, "a.f32");
    CHECK(ds8b__gguf_arr_f32(g, ki, 1, &f, &e) == 0 && f == -2.0f, "arr_f32");
    ki = ds8b__gguf_find_key(g, "a.u64");
    CHECK(ds8b__gguf_arr_i64(g, ki, 0, &i64, &e) == DS8B_E_FORMAT, "u64 max element as i64");
    ki = ds8b__gguf_find_key(g, "a.str");
    CHECK(ds8b__gguf_arr_str(g, ki, 2, &s, &len, &e) == 0 && len == 11 && !memcmp(s, "hello world", 11),
          "string array");
    CHECK(ds8b__gguf_arr_str(g, ki, 1, &s, &len, &e) == 0 && len == 0, "empty element");
    if (big_vocab) {
        ki = ds8b__gguf_find_key(g, "tokenizer.ggml.tokens");
        bool ok = ki >= 0;
        for (int i = 0; ok && i < N_TOK; i += 997) {
            char want[32];
            int n = snprintf(want, sizeof want, "tok%d", i);
            ok = ds8b__gguf_arr_str(g, ki, (uint64_t)i, &s, &len, &e) == 0 && len == (size_t)n &&
                 !memcmp(s, want, len);
        }
        CHECK(ok && ds8b__gguf_arr_str(g, ki, N_TOK - 1, &s, &len, &e) == 0 && len == 9 &&
                  !memcmp(s, "tok149999", 9),
              "150k tokens");
    }
    /* nested arrays */
    ds8b__gguf_val v, x, y, z;
    CHECK(ds8b__gguf_kv_val(g, ds8b__gguf_find_key(g, "n.mixed"), &v) == 0 &&
              v.type == DS8B_GGUF_ARRAY && v.elem_type == DS8B_GGUF_ARRAY && v.len == 3,
          "n.mixed");
    CHECK(ds8b__gguf_val_elem(&v, 0, &x) == 0 && x.elem_type == DS8B_GGUF_UINT32 && x.len == 2 &&
              ds8b__gguf_val_elem(&x, 1, &y) == 0 && ds8b__gguf_val_u64(&y, &u64) == 0 && u64 == 2,
          "[0][1] == 2");
    CHECK(ds8b__gguf_val_elem(&v, 1, &x) == 0 && x.len == 0 && ds8b__gguf_val_elem(&x, 0, &y) != 0,
          "[1] empty");
    CHECK(ds8b__gguf_val_elem(&v, 2, &x) == 0 && x.elem_type == DS8B_GGUF_STRING &&
              ds8b__gguf_val_elem(&x, 1, &y) == 0 && y.type == DS8B_GGUF_STRING && y.len == 2 &&
              !memcmp(y.p, "yz", 2),
          "[2][1] == yz");
    CHECK(ds8b__gguf_val_elem(&v, 3, &x) == DS8B_E_INVALID, "[3] out of range");
    CHECK(ds8b__gguf_kv_val(g, ds8b__gguf_find_key(g, "n.deep"), &v) == 0 &&
              ds8b__gguf_val_elem(&v, 0, &x) == 0 && ds8b__gguf_val_elem(&x, 0, &y) == 0 &&
              ds8b__gguf_val_elem(&y, 0, &z) == 0 && ds8b__gguf_val_i64(&z, &i64) == 0 && i64 == -5,
          "[[[-5]]]");
    /* tensors */
    CHECK(ds8b__gguf_n_tensors(g) == N_RT, "n_tensors");
    for (int i = 0; i < N_RT; i++) {
        const ds8b__tensor *t = ds8b__gguf_tensor(g, i);
        if (!t) continue;
        CHECK(!strcmp(t->name, k_rt[i].name) && t->type == k_rt[i].type &&
                  t->n_dims == k_rt[i].n_dims,
              "tensor %d", i);
        for (int dd = 0; dd < 4; dd++)
            CHECK(t->ne[dd] == (dd < k_rt[i].n_dims ? k_rt[i].ne[dd] : 1), "%s ne[%d]", t->name, dd);
        uint8_t *want = rt_data(i, t->nbytes);
        CHECK(memcmp(want, t->data, t->nbytes) == 0, "%s data", t->name);
        free(want);
        CHECK((ds8b__gguf_tensor_file_offset(g, i) - ds8b__gguf_data_offset(g)) % align == 0,
              "%s aligned", t->name);
    }
    check_layout(g, "round trip");
    CHECK(ds8b__gguf_has_crc(g), "has CRC");
    CHECK(ds8b__gguf_verify_crc(g, &e) == 0, "CRC: %s", e.msg);
}

static void test_roundtrip(void) {
    char path[512], tmp[520];
    tmp_path(path, sizeof path, "rt.gguf");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ds8b__err e = {0};
    int rc = write_rt(path, 32, true, &e);
    CHECK(rc == 0, "write: %s", e.msg);
    CHECK(exists(path) && !exists(tmp), "renamed");
    ds8b__gguf *g = NULL;
    rc = ds8b__gguf_open(path, &g, &e);
    CHECK(rc == 0, "open: %s", e.msg);
    if (g) check_rt(g, 32, true);
    ds8b__gguf_close(g);

    /* a flipped data byte is caught and the tensor named */
    size_t n;
    uint8_t *buf = slurp(path, &n);
    if (buf) {
        rc = ds8b__gguf_parse_mem(buf, n, "flipped", &g, &e);
        CHECK(rc == 0, "%s", e.msg);
        if (g) {
            uint64_t off = ds8b__gguf_tensor_file_offset(g, 3) + 100;
            ds8b__gguf_close(g);
            buf[off] ^= 0x10;
            CHECK(ds8b__gguf_parse_mem(buf, n, "flipped", &g, &e) == 0, "still parses");
            CHECK(ds8b__gguf_verify_crc(g, &e) == DS8B_E_CHECKSUM && msg_has(&e, "w.q4_k") &&
                      msg_has(&e, "flipped"),
                  "checksum: %s", e.msg);
            CHECK(ds8b__gguf_verify_tensor_crc(g, 2, &e) == 0, "other tensors fine");
            CHECK(ds8b__gguf_verify_tensor_crc(g, 3, &e) == DS8B_E_CHECKSUM, "this one not");
            ds8b__gguf_close(g);
        }
        free(buf);
    }

    /* another alignment */
    rc = write_rt(path, 64, false, &e);
    CHECK(rc == 0, "write align 64: %s", e.msg);
    rc = ds8b__gguf_open(path, &g, &e);
    CHECK(rc == 0, "open: %s", e.msg);
    if (g) check_rt(g, 64, false);
    ds8b__gguf_close(g);
    unlink(path);
}

static void test_writer_errors(void) {
    char path[512], tmp[520];
    tmp_path(path, sizeof path, "err.gguf");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ds8b__err e = {0};
    ds8b__gguf_writer *w = NULL;
    /* an existing file under the final name survives an abort */
    FILE *f = fopen(path, "wb");
    if (f) { fputs("old", f); fclose(f); }
    CHECK(ds8b__gguf_writer_create(path, &w, &e) == 0, "%s", e.msg);
    if (!w) return;
    CHECK(exists(tmp), "writes to .tmp");
    CHECK(ds8b__gguf_writer_add_u32(w, "k", 1, &e) == 0, "add");
    CHECK(ds8b__gguf_writer_add_u32(w, "k", 2, &e) == DS8B_E_INVALID && msg_has(&e, "'k'"), "dup key");
    CHECK(ds8b__gguf_writer_add_u32(w, "", 2, &e) == DS8B_E_INVALID, "empty key");
    CHECK(ds8b__gguf_writer_add_u64(w, "general.alignment", 32, &e) == DS8B_E_INVALID, "alignment type");
    CHECK(ds8b__gguf_writer_add_u32(w, "general.alignment", 48, &e) == DS8B_E_INVALID, "alignment 48");
    CHECK(ds8b__gguf_writer_add_u32(w, "general.alignment", 0, &e) == DS8B_E_INVALID, "alignment 0");
    CHECK(ds8b__gguf_writer_add_arr(w, "a", DS8B_GGUF_STRING, "x", 1, &e) == DS8B_E_INVALID, "arr type");
    uint8_t two = 2;
    CHECK(ds8b__gguf_writer_add_arr(w, "a", DS8B_GGUF_BOOL, &two, 1, &e) == DS8B_E_INVALID, "bool 2");
    uint8_t bad_raw[12] = {9, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 127};
    CHECK(ds8b__gguf_writer_add_raw(w, "r", DS8B_GGUF_ARRAY, bad_raw, 12, &e) == DS8B_E_INVALID &&
              msg_has(&e, "'r'"),
          "bad raw: %s", e.msg);
    int64_t ne[4] = {32, 2, 1, 1};
    CHECK(ds8b__gguf_writer_add_tensor_info(w, "t", DS8B_T_Q8_0, 2, ne, NULL, &e) == 0, "%s", e.msg);
    CHECK(ds8b__gguf_writer_add_tensor_info(w, "t", DS8B_T_F32, 2, ne, NULL, &e) == DS8B_E_INVALID,
          "dup tensor");
    CHECK(ds8b__gguf_writer_add_tensor_info(w, "u", 20, 2, ne, NULL, &e) == DS8B_E_INVALID, "type 20");
    CHECK(ds8b__gguf_writer_add_tensor_info(w, "u", DS8B_T_W4A16, 2, ne, NULL, &e) == DS8B_E_INVALID,
          "our own type");
    CHECK(ds8b__gguf_writer_add_tensor_info(w, "u", DS8B_T_F32, 5, ne, NULL, &e) == DS8B_E_INVALID,
          "5 dims");
    int64_t ne0[2] = {0, 4}, ne33[1] = {33};
    CHECK(ds8b__gguf_writer_add_tensor_info(w, "u", DS8B_T_F32, 2, ne0, NULL, &e) == DS8B_E_INVALID,
          "zero dim");
    CHECK(ds8b__gguf_writer_add_tensor_info(w, "u", DS8B_T_Q4_0, 1, ne33, NULL, &e) == DS8B_E_INVALID,
          "partial block");
    char longname[80];
    memset(longname, 'x', 64);
    longname[64] = 0;
    CHECK(ds8b__gguf_writer_add_tensor_info(w, longname, DS8B_T_F32, 1, ne, NULL, &e) == DS8B_E_INVALID,
          "64-byte name");
    CHECK(ds8b__gguf_writer_write_tensor_data(w, 0, "x", 1, &e) == DS8B_E_MISUSE, "data before header");
    CHECK(ds8b__gguf_writer_write_header(w, &e) == 0, "%s", e.msg);
    CHECK(ds8b__gguf_writer_add_u32(w, "late", 1, &e) == DS8B_E_MISUSE, "kv after header");
    CHECK(ds8b__gguf_writer_write_header(w, &e) == DS8B_E_MISUSE, "header twice");
    uint8_t data[68] = {0};
    CHECK(ds8b__gguf_writer_write_tensor_data(w, 1, data, 68, &e) == DS8B_E_MISUSE, "wrong tensor");
    CHECK(ds8b__gguf_writer_write_tensor_data(w, 0, data, 69, &e) == DS8B_E_INVALID, "too many bytes");
    CHECK(ds8b__gguf_writer_write_tensor_data(w, 0, data, 10, &e) == 0, "%s", e.msg);
    ds8b__gguf_writer_abort(w);
    CHECK(!exists(tmp), "abort removes .tmp");
    size_t n = 0;
    uint8_t *old = slurp(path, &n);
    CHECK(old && n == 3 && !memcmp(old, "old", 3), "final name untouched");
    free(old);
    unlink(path);

    /* finishing with missing data fails and leaves nothing */
    CHECK(ds8b__gguf_writer_create(path, &w, &e) == 0, "%s", e.msg);
    CHECK(ds8b__gguf_writer_add_tensor_info(w, "t", DS8B_T_F32, 1, ne, NULL, &e) == 0, "%s", e.msg);
    CHECK(ds8b__gguf_writer_write_header(w, &e) == 0, "%s", e.msg);
    CHECK(ds8b__gguf_writer_write_tensor_data(w, 0, data, 64, &e) == 0, "%s", e.msg);
    CHECK(ds8b__gguf_writer_finish(w, &e) == DS8B_E_MISUSE && msg_has(&e, "'t'"), "incomplete: %s", e.msg);
    CHECK(!exists(path) && !exists(tmp), "nothing left");

    /* a file with no tensors (finish writes the header itself) */
    CHECK(ds8b__gguf_writer_create(path, &w, &e) == 0, "%s", e.msg);
    CHECK(ds8b__gguf_writer_add_str(w, "general.name", "v", 1, &e) == 0, "%s", e.msg);
    CHECK(ds8b__gguf_writer_finish(w, &e) == 0, "%s", e.msg);
    ds8b__gguf *g = NULL;
    CHECK(ds8b__gguf_open(path, &g, &e) == 0 && ds8b__gguf_n_tensors(g) == 0 &&
              ds8b__gguf_n_kv(g) == 2 && !ds8b__gguf_has_crc(g),
          "%s", e.msg);
    ds8b__gguf_close(g);
    unlink(path);

    /* unwritable place */
    CHECK(ds8b__gguf_writer_create("/nonexistent-dir/x.gguf", &w, &e) == DS8B_E_IO &&
              msg_has(&e, "/nonexistent-dir/x.gguf.tmp"),
          "%s", e.msg);
}

/* Copying a llama.cpp file through the writer keeps every byte. */
static void test_copy_file(void) {
    ds8b__gguf *src = open_shared("demo-llama-Q4_K_M.gguf");
    if (!src) return;
    char path[512];
    tmp_path(path, sizeof path, "copy.gguf");
    ds8b__err e = {0};
    ds8b__gguf_writer *w = NULL;
    int rc = ds8b__gguf_writer_create(path, &w, &e);
    for (int64_t i = 0; !rc && i < ds8b__gguf_n_kv(src); i++) rc = ds8b__gguf_writer_copy_kv(w, src, i, &e);
    for (int64_t i = 0; !rc && i < ds8b__gguf_n_tensors(src); i++) {
        const ds8b__tensor *t = ds8b__gguf_tensor(src, i);
        rc = ds8b__gguf_writer_add_tensor_info(w, t->name, t->type, t->n_dims, t->ne, NULL, &e);
    }
    if (!rc) rc = ds8b__gguf_writer_write_header(w, &e);
    for (int64_t i = 0; !rc && i < ds8b__gguf_n_tensors(src); i++) {
        const ds8b__tensor *t = ds8b__gguf_tensor(src, i);
        rc = ds8b__gguf_writer_write_tensor_data(w, i, t->data, t->nbytes, &e);
    }
    if (rc) ds8b__gguf_writer_abort(w);
    else rc = ds8b__gguf_writer_finish(w, &e);
    CHECK(rc == 0, "copy: %s", e.msg);
    ds8b__gguf *g = NULL;
    CHECK(ds8b__gguf_open(path, &g, &e) == 0, "%s", e.msg);
    if (g) {
        CHECK(ds8b__gguf_n_kv(g) == ds8b__gguf_n_kv(src) + 3, "three keys added");
        for (int64_t i = 0; i < ds8b__gguf_n_kv(src); i++) {
            ds8b__gguf_val a, b;
            ds8b__gguf_kv_val(src, i, &a);
            int64_t j = ds8b__gguf_find_key(g, ds8b__gguf_kv_key(src, i));
            CHECK(j == i && ds8b__gguf_kv_val(g, j, &b) == 0 && a.type == b.type && a.len == b.len &&
                      a.size == b.size && memcmp(a.p, b.p, a.size) == 0,
                  "key %s", ds8b__gguf_kv_key(src, i));
        }
        CHECK(ds8b__gguf_n_tensors(g) == ds8b__gguf_n_tensors(src), "tensors");
        for (int64_t i = 0; i < ds8b__gguf_n_tensors(src); i++) {
            const ds8b__tensor *a = ds8b__gguf_tensor(src, i), *b = ds8b__gguf_tensor(g, i);
            CHECK(b && !strcmp(a->name, b->name) && a->type == b->type && a->nbytes == b->nbytes &&
                      !memcmp(a->ne, b->ne, sizeof a->ne) && !memcmp(a->data, b->data, a->nbytes),
                  "tensor %s", a->name);
        }
        CHECK(ds8b__gguf_verify_crc(g, &e) == 0, "%s", e.msg);
        /* and the copy of the copy skips our keys rather than doubling them */
        ds8b__gguf_writer *w2 = NULL;
        char p2[512];
        tmp_path(p2, sizeof p2, "copy2.gguf");
        rc = ds8b__gguf_writer_create(p2, &w2, &e);
        for (int64_t i = 0; !rc && i < ds8b__gguf_n_kv(g); i++) rc = ds8b__gguf_writer_copy_kv(w2, g, i, &e);
        CHECK(rc == 0, "%s", e.msg);
        if (!rc) rc = ds8b__gguf_writer_finish(w2, &e);
        else ds8b__gguf_writer_abort(w2);
        ds8b__gguf *g2 = NULL;
        CHECK(rc == 0 && ds8b__gguf_open(p2, &g2, &e) == 0 &&
                  ds8b__gguf_n_kv(g2) == ds8b__gguf_n_kv(src) + 1,
              "copy of copy: %s", e.msg);
        ds8b__gguf_close(g2);
        unlink(p2);
        ds8b__gguf_close(g);
    }
    ds8b__gguf_close(src);
    unlink(path);
}

/* ------------------------------------------------------------------ */
/* Malformed files                                                     */
/* ------------------------------------------------------------------ */
/* Each mutation of the small valid file built by build(). */
#define MUTATIONS(X)                                                                           \
    X(NONE) X(MAGIC) X(V0) X(V1) X(V4) X(BIGENDIAN) X(NKV_2_63) X(NKV_MAX) X(NT_2_63)            \
    X(NKV_PLUS1) X(NT_PLUS1) X(NKV_MINUS1) X(KEYLEN_2_63) X(KEY_EMPTY) X(KEY_NUL) X(STRLEN_2_63) \
    X(STRLEN_PAST) X(KVTYPE_13) X(KVTYPE_FFFF) X(ARR_ELEMTYPE_BAD) X(ARR_COUNT_2_63)            \
    X(STRARR_COUNT_2_63) X(STRARR_ELEMLEN_2_63) X(NESTED_COUNT_2_63) X(NEST_DEEP) X(BOOL_2)      \
    X(BOOLARR_2) X(DUP_KEY) X(ALIGN_0) X(ALIGN_2_31) X(ALIGN_3) X(ALIGN_48) X(ALIGN_2MIB)       \
    X(ALIGN_STRING) X(ALIGN_NEG) X(NDIMS_0) X(NDIMS_5) X(NDIMS_FFFF) X(DIM_ZERO) X(DIM_OVERFLOW) \
    X(DIM_2_63) X(TTYPE_20) X(TTYPE_39) X(TTYPE_FFFF) X(TTYPE_OURS) X(BLOCK_PARTIAL)             \
    X(OVERLAP_SAME) X(OVERLAP_PART) X(OFF_PAST_END) X(OFF_END_PLUS) X(OFF_MISALIGNED)           \
    X(OFF_HUGE) X(DUP_TENSOR) X(TNAME_LONG) X(TNAME_EMPTY) X(TNAME_2_63) X(TNAME_NUL)           \
    X(DATA_SHORT)
#define X_ENUM(n) M_##n,
#define X_NAME(n) #n,
enum { MUTATIONS(X_ENUM) M__COUNT };
static const char *const k_mut_names[] = {MUTATIONS(X_NAME)};

static void key(bb *b, int m, const char *k) {
    if (m == M_KEYLEN_2_63 && !strcmp(k, "test.u8")) {
        bb_u64(b, 1ull << 63);
        bb_put(b, k, strlen(k));
    } else if (m == M_KEY_EMPTY && !strcmp(k, "test.u8")) {
        bb_str(b, "");
    } else if (m == M_KEY_NUL && !strcmp(k, "test.u8")) {
        bb_u64(b, 7);
        bb_put(b, "test\0u8", 7);
    } else {
        bb_str(b, m == M_DUP_KEY && !strcmp(k, "test.i8") ? "test.u8" : k);
    }
}

/* One nested value [[...]] of the given depth, elements uint32. */
static void nested(bb *b, int depth) {
    if (depth == 0) {
        bb_u32(b, DS8B_GGUF_UINT32);
        bb_u64(b, 1);
        bb_u32(b, 42);
        return;
    }
    bb_u32(b, DS8B_GGUF_ARRAY);
    bb_u64(b, 1);
    nested(b, depth - 1);
}

static void tinfo(bb *b, int m, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type,
                  uint64_t off) {
    bool c = !strcmp(name, "c");
    if (c && m == M_TNAME_LONG) {
        char n[66];
        memset(n, 'n', 65);
        n[65] = 0;
        bb_str(b, n);
    } else if (c && m == M_TNAME_EMPTY) bb_str(b, "");
    else if (c && m == M_TNAME_2_63) { bb_u64(b, 1ull << 63); bb_put(b, "c", 1); }
    else if (c && m == M_TNAME_NUL) { bb_u64(b, 2); bb_put(b, "c\0", 2); }
    else bb_str(b, c && m == M_DUP_TENSOR ? "a" : name);
    if (c && m == M_NDIMS_0) nd = 0;
    if (c && m == M_NDIMS_5) nd = 5;
    if (c && m == M_NDIMS_FFFF) nd = 0xffffffffu;
    bb_u32(b, nd);
    uint64_t ne5[5] = {ne[0], ne[1], 1, 1, 1};
    if (c && m == M_DIM_ZERO) ne5[1] = 0;
    if (c && m == M_DIM_OVERFLOW) ne5[0] = ne5[1] = 1ull << 32;
    if (c && m == M_DIM_2_63) ne5[1] = 1ull << 63;
    for (uint32_t d = 0; d < nd && d < 5; d++) bb_u64(b, ne5[d]);
    if (c && m == M_TTYPE_20) type = 20;
    if (c && m == M_TTYPE_39) type = 39;
    if (c && m == M_TTYPE_FFFF) type = 0xffffffffu;
    if (c && m == M_TTYPE_OURS) type = DS8B_T_W4A16;
    bb_u32(b, type);
    if (c && m == M_OVERLAP_SAME) off = 64;
    if (c && m == M_OVERLAP_PART) off = 32; /* inside a's [0, 64) */
    if (c && m == M_OFF_PAST_END) off = 1ull << 40;
    if (c && m == M_OFF_END_PLUS) off = 160;
    if (c && m == M_OFF_MISALIGNED) off = 130;
    if (c && m == M_OFF_HUGE) off = UINT64_MAX - 31;
    bb_u64(b, off);
}

/* A small valid GGUF (mutation NONE), or one broken the given way.
 * Tensors: a f32 [8,2] @0 (64 B), b q8_0 [32] @64 (34 B), c f16 [4,4] @128
 * (32 B); the file ends right after c. */
static void build(int m, bb *o) {
    bb kv = {0};
    uint64_t nkv = 0;
    key(&kv, m, "general.architecture");
    bb_u32(&kv, m == M_KVTYPE_13 ? 13 : m == M_KVTYPE_FFFF ? 0xffffffffu : DS8B_GGUF_STRING);
    if (m == M_STRLEN_2_63) { bb_u64(&kv, 1ull << 63); bb_put(&kv, "llama", 5); }
    else bb_str(&kv, "llama");
    nkv++;
    key(&kv, m, "general.alignment");
    if (m == M_ALIGN_STRING) { bb_u32(&kv, DS8B_GGUF_STRING); bb_str(&kv, "32"); }
    else if (m == M_ALIGN_NEG) { bb_u32(&kv, DS8B_GGUF_INT32); bb_u32(&kv, (uint32_t)-32); }
    else {
        bb_u32(&kv, DS8B_GGUF_UINT32);
        bb_u32(&kv, m == M_ALIGN_0 ? 0 : m == M_ALIGN_2_31 ? 1u << 31 : m == M_ALIGN_3 ? 3
                    : m == M_ALIGN_48 ? 48 : m == M_ALIGN_2MIB ? 2u << 20 : 32);
    }
    nkv++;
    key(&kv, m, "test.u8"); bb_u32(&kv, DS8B_GGUF_UINT8); bb_u8(&kv, 7); nkv++;
    key(&kv, m, "test.i8"); bb_u32(&kv, DS8B_GGUF_INT8); bb_u8(&kv, 0xf0); nkv++;
    key(&kv, m, "test.u16"); bb_u32(&kv, DS8B_GGUF_UINT16); bb_put(&kv, "\x01\x02", 2); nkv++;
    key(&kv, m, "test.i16"); bb_u32(&kv, DS8B_GGUF_INT16); bb_put(&kv, "\xff\xff", 2); nkv++;
    key(&kv, m, "test.i32"); bb_u32(&kv, DS8B_GGUF_INT32); bb_u32(&kv, 123456); nkv++;
    key(&kv, m, "test.f32"); bb_u32(&kv, DS8B_GGUF_FLOAT32); bb_u32(&kv, 0x3fc00000u); nkv++;
    key(&kv, m, "test.bool"); bb_u32(&kv, DS8B_GGUF_BOOL); bb_u8(&kv, m == M_BOOL_2 ? 2 : 1); nkv++;
    key(&kv, m, "test.u64"); bb_u32(&kv, DS8B_GGUF_UINT64); bb_u64(&kv, 1ull << 40); nkv++;
    key(&kv, m, "test.i64"); bb_u32(&kv, DS8B_GGUF_INT64); bb_u64(&kv, (uint64_t)-5); nkv++;
    key(&kv, m, "test.f64"); bb_u32(&kv, DS8B_GGUF_FLOAT64); bb_u64(&kv, 0x4000000000000000ull); nkv++;
    key(&kv, m, "test.bools");
    bb_u32(&kv, DS8B_GGUF_ARRAY);
    bb_u32(&kv, m == M_ARR_ELEMTYPE_BAD ? 77 : DS8B_GGUF_BOOL);
    bb_u64(&kv, m == M_ARR_COUNT_2_63 ? 1ull << 63 : 3);
    bb_put(&kv, m == M_BOOLARR_2 ? "\x01\x02\x00" : "\x01\x00\x01", 3);
    nkv++;
    key(&kv, m, "test.strs");
    bb_u32(&kv, DS8B_GGUF_ARRAY);
    bb_u32(&kv, DS8B_GGUF_STRING);
    bb_u64(&kv, m == M_STRARR_COUNT_2_63 ? 1ull << 63 : 3);
    bb_str(&kv, "a");
    if (m == M_STRARR_ELEMLEN_2_63) { bb_u64(&kv, 1ull << 63); bb_put(&kv, "bc", 2); }
    else bb_str(&kv, "bc");
    bb_str(&kv, "");
    nkv++;
    key(&kv, m, "test.nested"); /* [[1,2],[3]] */
    bb_u32(&kv, DS8B_GGUF_ARRAY);
    bb_u32(&kv, DS8B_GGUF_ARRAY);
    bb_u64(&kv, 2);
    bb_u32(&kv, DS8B_GGUF_UINT32);
    bb_u64(&kv, m == M_NESTED_COUNT_2_63 ? 1ull << 63 : 2);
    bb_u32(&kv, 1);
    bb_u32(&kv, 2);
    bb_u32(&kv, DS8B_GGUF_UINT32);
    bb_u64(&kv, 1);
    bb_u32(&kv, 3);
    nkv++;
    key(&kv, m, "test.deep");
    bb_u32(&kv, DS8B_GGUF_ARRAY);
    nested(&kv, m == M_NEST_DEEP ? DS8B_GGUF_MAX_DEPTH + 1 : 3);
    nkv++;
    if (m == M_STRLEN_PAST) { /* last key: its string runs one byte past the end of the file */
        key(&kv, m, "test.last");
        bb_u32(&kv, DS8B_GGUF_STRING);
        bb_u64(&kv, 1000);
        nkv++;
    }

    bb ti = {0};
    uint64_t nt = 0;
    if (m != M_STRLEN_PAST) {
        tinfo(&ti, m, "a", 2, (uint64_t[]){8, 2}, DS8B_T_F32, 0); nt++;
        tinfo(&ti, m, "b", 1, (uint64_t[]){m == M_BLOCK_PARTIAL ? 33 : 32, 1}, DS8B_T_Q8_0, 64); nt++;
        tinfo(&ti, m, "c", 2, (uint64_t[]){4, 4}, DS8B_T_F16, 128); nt++;
    }

    o->n = 0;
    bb_put(o, m == M_MAGIC ? "GGUG" : "GGUF", 4);
    if (m == M_BIGENDIAN) bb_put(o, "\0\0\0\3", 4);
    else bb_u32(o, m == M_V0 ? 0 : m == M_V1 ? 1 : m == M_V4 ? 4 : 3);
    bb_u64(o, m == M_NT_2_63 ? 1ull << 63 : m == M_NT_PLUS1 ? nt + 1 : nt);
    bb_u64(o, m == M_NKV_2_63 ? 1ull << 63 : m == M_NKV_MAX ? UINT64_MAX
              : m == M_NKV_PLUS1 ? nkv + 1 : m == M_NKV_MINUS1 ? nkv - 1 : nkv);
    bb_put(o, kv.p, kv.n);
    bb_put(o, ti.p, ti.n);
    if (nt) {
        while (o->n % 32) bb_u8(o, 0);
        for (int i = 0; i < 160 - (m == M_DATA_SHORT); i++) bb_u8(o, (uint8_t)(i * 7 + 1));
    }
    free(kv.p);
    free(ti.p);
}

static void test_malformed(void) {
    bb b = {0};
    build(M_NONE, &b);
    ds8b__gguf *g = NULL;
    ds8b__err e = {0};
    int rc = ds8b__gguf_parse_mem(b.p, b.n, "base", &g, &e);
    CHECK(rc == 0, "the base file is valid: %s", e.msg);
    if (g) {
        CHECK(ds8b__gguf_n_tensors(g) == 3 && ds8b__gguf_n_kv(g) == 16, "base counts");
        ds8b__gguf_val v, x, y;
        int64_t i64;
        CHECK(ds8b__gguf_kv_val(g, ds8b__gguf_find_key(g, "test.nested"), &v) == 0 &&
                  ds8b__gguf_val_elem(&v, 1, &x) == 0 && ds8b__gguf_val_elem(&x, 0, &y) == 0 &&
                  ds8b__gguf_val_i64(&y, &i64) == 0 && i64 == 3,
              "nested [1][0]");
        CHECK(ds8b__gguf_get_i64(g, "test.i16", &i64, &e) == 0 && i64 == -1, "i16");
        ds8b__gguf_close(g);
    }
    /* every prefix */
    int bad = 0;
    for (size_t n = 0; n < b.n; n++) {
        rc = ds8b__gguf_parse_mem(b.p, n, "prefix", &g, &e);
        if (rc == 0) {
            bad++;
            ds8b__gguf_close(g);
        }
        if (rc != 0 && !msg_has(&e, "prefix")) bad++;
    }
    CHECK(bad == 0, "%d of %zu prefixes accepted or unnamed", bad, b.n);
    /* every mutation */
    for (int m = 1; m < M__COUNT; m++) {
        build(m, &b);
        memset(&e, 0, sizeof e);
        rc = ds8b__gguf_parse_mem(b.p, b.n, k_mut_names[m], &g, &e);
        CHECK(rc != 0, "%s accepted", k_mut_names[m]);
        if (rc == 0) { ds8b__gguf_close(g); continue; }
        CHECK(msg_has(&e, k_mut_names[m]), "%s: message names the file: %s", k_mut_names[m], e.msg);
        CHECK(e.code == rc, "%s: code", k_mut_names[m]);
    }
    /* specific codes and messages */
    struct { int m, code; const char *needle; } want[] = {
        {M_V1, DS8B_E_UNSUPPORTED, "version 1"},
        {M_BIGENDIAN, DS8B_E_UNSUPPORTED, "big-endian"},
        {M_NKV_2_63, DS8B_E_FORMAT, "metadata count"},
        {M_NT_2_63, DS8B_E_FORMAT, "tensor count"},
        {M_STRLEN_2_63, DS8B_E_FORMAT, "general.architecture"},
        {M_KVTYPE_13, DS8B_E_FORMAT, "unknown value type 13"},
        {M_ARR_COUNT_2_63, DS8B_E_FORMAT, "test.bools"},
        {M_STRARR_ELEMLEN_2_63, DS8B_E_FORMAT, "test.strs"},
        {M_NESTED_COUNT_2_63, DS8B_E_FORMAT, "test.nested"},
        {M_NEST_DEEP, DS8B_E_FORMAT, "nested"},
        {M_DUP_KEY, DS8B_E_FORMAT, "test.u8"},
        {M_ALIGN_0, DS8B_E_FORMAT, "general.alignment"},
        {M_ALIGN_2_31, DS8B_E_FORMAT, "2147483648"},
        {M_NDIMS_5, DS8B_E_FORMAT, "n_dims 5"},
        {M_DIM_ZERO, DS8B_E_FORMAT, "ne[1] = 0"},
        {M_DIM_OVERFLOW, DS8B_E_FORMAT, "overflows"},
        {M_TTYPE_20, DS8B_E_UNSUPPORTED, "tensor 'c' has type id 20"},
        {M_TTYPE_FFFF, DS8B_E_FORMAT, "4294967295"},
        {M_TTYPE_OURS, DS8B_E_FORMAT, "type id 100"},
        {M_BLOCK_PARTIAL, DS8B_E_FORMAT, "'b'"},
        {M_OVERLAP_SAME, DS8B_E_FORMAT, "overlap"},
        {M_OVERLAP_PART, DS8B_E_FORMAT, "overlap"},
        {M_OFF_PAST_END, DS8B_E_FORMAT, "'c'"},
        {M_OFF_END_PLUS, DS8B_E_FORMAT, "past the end"},
        {M_OFF_MISALIGNED, DS8B_E_FORMAT, "alignment"},
        {M_OFF_HUGE, DS8B_E_FORMAT, "'c'"},
        {M_DUP_TENSOR, DS8B_E_FORMAT, "tensor name 'a' appears twice"},
        {M_TNAME_LONG, DS8B_E_FORMAT, "tensor name #2"},
        {M_DATA_SHORT, DS8B_E_FORMAT, "'c'"},
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        build(want[k].m, &b);
        rc = ds8b__gguf_parse_mem(b.p, b.n, "f.gguf", &g, &e);
        CHECK(rc == want[k].code && msg_has(&e, want[k].needle) && msg_has(&e, "f.gguf"),
              "%s: rc %d: %s", k_mut_names[want[k].m], rc, e.msg);
        if (!rc) ds8b__gguf_close(g);
    }
    /* random byte flips: no crash, and whatever parses can be walked */
    build(M_NONE, &b);
    uint64_t s = 99;
    for (int it = 0; it < 20000; it++) {
        uint8_t *c = malloc(b.n);
        memcpy(c, b.p, b.n);
        for (int f = 0; f < 1 + it % 4; f++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            c[(s >> 33) % b.n] ^= (uint8_t)(1u << ((s >> 20) & 7));
        }
        if (ds8b__gguf_parse_mem(c, b.n, "flip", &g, NULL) == 0) {
            for (int64_t i = 0; i < ds8b__gguf_n_kv(g); i++) {
                ds8b__gguf_val v, x;
                ds8b__gguf_kv_val(g, i, &v);
                if (v.type == DS8B_GGUF_ARRAY)
                    for (uint64_t j = 0; j < v.len && j < 8; j++) ds8b__gguf_val_elem(&v, j, &x);
            }
            ds8b__gguf_verify_crc(g, NULL);
            ds8b__gguf_close(g);
        }
        free(c);
    }
    free(b.p);
}

/* A ds8b.tensor_crc32 of the wrong length and no table digest: the table
 * changed since, so the checksums are stale (skipped); of the wrong element
 * type: FORMAT. */
static void test_crc_key_shape(void) {
    for (int et = 0; et < 2; et++) {
    ds8b__err e = {0};
    bb o = {0};
    bb_put(&o, "GGUF", 4);
    bb_u32(&o, 2); /* v2 is read too */
    bb_u64(&o, 1);
    bb_u64(&o, 1);
    bb_str(&o, DS8B_GGUF_CRC_KEY);
    bb_u32(&o, DS8B_GGUF_ARRAY);
    bb_u32(&o, et ? DS8B_GGUF_INT32 : DS8B_GGUF_UINT32);
    bb_u64(&o, 2); /* one tensor, two CRCs */
    bb_u32(&o, 0);
    bb_u32(&o, 0);
    bb_str(&o, "t");
    bb_u32(&o, 1);
    bb_u64(&o, 4);
    bb_u32(&o, DS8B_T_F32);
    bb_u64(&o, 0);
    while (o.n % 32) bb_u8(&o, 0);
    bb_put(&o, "0123456789abcdef", 16);
    ds8b__gguf *g = NULL;
    CHECK(ds8b__gguf_parse_mem(o.p, o.n, "crcshape", &g, &e) == 0, "%s", e.msg);
    if (g) {
        CHECK(ds8b__gguf_version(g) == 2, "v2");
        CHECK(!ds8b__gguf_has_crc(g), "not usable");
        if (et) {
            CHECK(ds8b__gguf_crc_state(g) == DS8B_GGUF_CRC_BAD, "bad");
            CHECK(ds8b__gguf_verify_crc(g, &e) == DS8B_E_FORMAT && msg_has(&e, DS8B_GGUF_CRC_KEY), "%s", e.msg);
        } else {
            CHECK(ds8b__gguf_crc_state(g) == DS8B_GGUF_CRC_STALE, "stale");
            CHECK(ds8b__gguf_verify_crc(g, &e) == 0, "%s", e.msg);
        }
        ds8b__gguf_close(g);
    }
    free(o.p);
    }
}

/* Every allocation failing in turn: DS8B_E_NOMEM, nothing leaked, and for
 * the writer no file left behind. */
static void test_oom(void) {
    bb b = {0};
    build(M_NONE, &b);
    int64_t base = ds8b_memory_used(-1);
    int fails = 0, bad = 0;
    for (int64_t k = 1; k < 1000; k++) {
        ds8b__gguf *g = NULL;
        ds8b__err e = {0};
        ds8b__mem_fail_at(k);
        int rc = ds8b__gguf_parse_mem(b.p, b.n, "oom", &g, &e);
        ds8b__mem_fail_at(0);
        if (rc == 0) {
            ds8b__gguf_close(g);
            break;
        }
        fails++;
        if (rc != DS8B_E_NOMEM || !msg_has(&e, "oom")) bad++;
        if (ds8b_memory_used(-1) != base) bad++;
    }
    CHECK(fails > 5 && bad == 0, "parse: %d failures, %d bad", fails, bad);
    char path[512], tmp[520];
    tmp_path(path, sizeof path, "oom.gguf");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    fails = bad = 0;
    for (int64_t k = 1; k < 1000; k++) {
        ds8b__err e = {0};
        ds8b__mem_fail_at(k);
        int rc = write_rt(path, 32, false, &e);
        ds8b__mem_fail_at(0);
        if (rc == 0) break;
        fails++;
        if (rc != DS8B_E_NOMEM || exists(tmp) || exists(path)) { bad++; printf("  # k=%lld rc=%d %s\n", (long long)k, rc, e.msg); }
        if (ds8b_memory_used(-1) != base) bad++;
    }
    CHECK(fails > 5 && bad == 0, "writer: %d failures, %d bad", fails, bad);
    CHECK(exists(path) && !exists(tmp), "finally written");
    unlink(path);
    free(b.p);
}

/* ------------------------------------------------------------------ */
/* Corpus generation                                                   */
/* ------------------------------------------------------------------ */
static int save(const char *dir, const char *name, const void *p, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fwrite(p, 1, n, f);
    return fclose(f);
}

static int gen_corpus(const char *dir) {
    bb b = {0};
    char name[128];
    int files = 0;
    for (int m = 0; m < M__COUNT; m++) {
        build(m, &b);
        snprintf(name, sizeof name, "%s%s.gguf", m ? "bad-" : "valid-", k_mut_names[m]);
        for (char *c = name; *c; c++) if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
        files += save(dir, name, b.p, b.n) == 0;
    }
    build(M_NONE, &b);
    for (size_t n = 0; n < b.n; n += 1 + n / 8) {
        snprintf(name, sizeof name, "trunc-%04zu.gguf", n);
        files += save(dir, name, b.p, n) == 0;
    }
    /* a writer-made seed with every value type and a few tensors */
    char path[512];
    tmp_path(path, sizeof path, "seed.gguf");
    ds8b__err e = {0};
    if (write_rt(path, 32, false, &e) == 0) {
        size_t n;
        uint8_t *p = slurp(path, &n);
        if (p) files += save(dir, "valid-writer-all-types.gguf", p, n) == 0;
        free(p);
        unlink(path);
    }
    free(b.p);
    printf("wrote %d files to %s\n", files, dir);
    return files > 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--gen-corpus")) return gen_corpus(argv[2]);
    RUN(test_llamacpp_llama);
    RUN(test_llamacpp_qwen3);
    RUN(test_llamacpp_vocab);
    RUN(test_llamacpp_truncated);
    RUN(test_roundtrip);
    RUN(test_writer_errors);
    RUN(test_copy_file);
    RUN(test_malformed);
    RUN(test_crc_key_shape);
    RUN(test_oom);
    if (g_tmpdir[0] && strcmp(g_tmpdir, "/tmp")) rmdir(g_tmpdir);
    T_EXIT();
}
