/* test_gguf_compat.c -- our GGUF files against llama.cpp's (issue #4).
 *
 * llama.cpp cannot run here, but ../shared/testdata/gguf holds files its
 * converter and quantizer wrote from the same demo checkpoints. Each is
 * paired with the file ds8b_quantize writes from that checkpoint in the
 * same scheme, and the two are compared structurally with the library's
 * own GGUF reader:
 *   - header: GGUF version, alignment, data offsets laid out the way
 *     llama.cpp's gguf_init_from_file demands (each tensor at the padded end
 *     of the one before, in info order), data inside the file;
 *   - metadata: every key of llama.cpp's file is in ours with the same GGUF
 *     type and value (arrays element by element), except a short list of
 *     descriptive keys llama.cpp's loader does not use, which are reported;
 *     the keys its loader requires are present; keys only we write are
 *     listed and, where llama.cpp would read them, checked for consistency;
 *   - tensors: the same names and shapes; the same ggml types for f16,
 *     q8_0 and q4_0; for q4_k_m type differences are listed (allowed, see
 *     docs/quantization.md) and every type must be one llama.cpp stores;
 *   - data: the f16 files must hold equal values in every tensor (names,
 *     shapes, Q/K row permutation and layout all at once); the quantized
 *     ones must dequantize close to llama.cpp's, much closer than the Q/K
 *     rows would be without the permutation.
 */
#include "t.h"
#include "ds8b.h"
#include "internal.h"
#include "formats/gguf.h"
#include "quant/quant.h"

#include <math.h>
#include <stdint.h>
#include <unistd.h>

typedef struct pair {
    const char *label;   /* for messages */
    const char *model;   /* HF checkpoint under ../shared */
    const char *scheme;  /* ds8b_quantize scheme */
    const char *theirs;  /* llama.cpp's file under ../shared */
} pair;

static const pair k_pairs[] = {
    {"demo-llama f16", "models/demo-llama", "f16", "testdata/gguf/demo-llama-f16.gguf"},
    {"demo-llama q8_0", "models/demo-llama", "q8_0", "testdata/gguf/demo-llama-Q8_0.gguf"},
    {"demo-llama q4_0", "models/demo-llama", "q4_0", "testdata/gguf/demo-llama-Q4_0.gguf"},
    {"demo-llama q4_k_m", "models/demo-llama", "q4_k_m", "testdata/gguf/demo-llama-Q4_K_M.gguf"},
    {"demo-qwen3 q4_k_m", "models/demo-qwen3", "q4_k_m", "testdata/gguf/demo-qwen3-Q4_K_M.gguf"},
};
#define N_PAIRS (sizeof k_pairs / sizeof k_pairs[0])

static ds8b__gguf *g_ours[N_PAIRS], *g_theirs[N_PAIRS];
static char g_paths[N_PAIRS][512];
static char g_dir[256];

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */
static const char *arch_of(const ds8b__gguf *g, char *buf, size_t cap) {
    const char *s;
    size_t n;
    if (ds8b__gguf_get_str(g, "general.architecture", &s, &n, NULL)) s = "?", n = 1;
    snprintf(buf, cap, "%.*s", (int)n, s);
    return buf;
}

/* A value as short text for messages. */
static void val_text(const ds8b__gguf *g, int64_t kv, char *buf, size_t cap) {
    ds8b__gguf_val v;
    int64_t i;
    double d;
    if (kv < 0 || ds8b__gguf_kv_val(g, kv, &v)) {
        snprintf(buf, cap, "(absent)");
    } else if (v.type == DS8B_GGUF_STRING) {
        snprintf(buf, cap, "\"%.*s%s\"", (int)(v.len > 48 ? 48 : v.len), (const char *)v.p, v.len > 48 ? "..." : "");
    } else if (v.type == DS8B_GGUF_ARRAY) {
        snprintf(buf, cap, "[%llu x %s]", (unsigned long long)v.len, ds8b__gguf_type_name(v.elem_type));
    } else if (v.type == DS8B_GGUF_BOOL) {
        snprintf(buf, cap, "%s", v.p[0] ? "true" : "false");
    } else if (ds8b__gguf_val_f64(&v, &d) == DS8B_OK) {
        snprintf(buf, cap, "%.9g", d);
    } else if (ds8b__gguf_val_i64(&v, &i) == DS8B_OK) {
        snprintf(buf, cap, "%lld", (long long)i);
    } else {
        uint64_t u = 0;
        ds8b__gguf_val_u64(&v, &u);
        snprintf(buf, cap, "%llu", (unsigned long long)u);
    }
}

/* Element i of a top-level array as short text. */
static void elem_text(const ds8b__gguf *g, int64_t kv, uint64_t i, char *buf, size_t cap) {
    const char *s;
    size_t n;
    int64_t v;
    float f;
    if (ds8b__gguf_arr_str(g, kv, i, &s, &n, NULL) == DS8B_OK)
        snprintf(buf, cap, "\"%.*s\"", (int)(n > 40 ? 40 : n), s);
    else if (ds8b__gguf_arr_i64(g, kv, i, &v, NULL) == DS8B_OK)
        snprintf(buf, cap, "%lld", (long long)v);
    else if (ds8b__gguf_arr_f32(g, kv, i, &f, NULL) == DS8B_OK)
        snprintf(buf, cap, "%.9g", f);
    else
        snprintf(buf, cap, "?");
}

/* Compares KV a of file A with KV b of file B: same type, same value
 * (bytes of the encoded value, so floats compare bit for bit and arrays
 * element by element). On a difference *why says what differs. */
static bool same_value(const ds8b__gguf *A, int64_t a, const ds8b__gguf *B, int64_t b, char *why, size_t cap) {
    ds8b__gguf_val va, vb;
    why[0] = 0;
    if (ds8b__gguf_kv_val(A, a, &va) || ds8b__gguf_kv_val(B, b, &vb)) {
        snprintf(why, cap, "unreadable");
        return false;
    }
    if (va.type != vb.type) {
        snprintf(why, cap, "type %s vs %s", ds8b__gguf_type_name(va.type), ds8b__gguf_type_name(vb.type));
        return false;
    }
    if (va.type == DS8B_GGUF_ARRAY && va.elem_type != vb.elem_type) {
        snprintf(why, cap, "array of %s vs array of %s", ds8b__gguf_type_name(va.elem_type),
                 ds8b__gguf_type_name(vb.elem_type));
        return false;
    }
    if (va.len == vb.len && va.size == vb.size && memcmp(va.p, vb.p, va.size) == 0) return true;
    if (va.type != DS8B_GGUF_ARRAY) {
        char x[128], y[128];
        val_text(A, a, x, sizeof x);
        val_text(B, b, y, sizeof y);
        snprintf(why, cap, "%s vs %s", x, y);
        return false;
    }
    /* arrays: count the differing elements and name the first few */
    uint64_t n = va.len < vb.len ? va.len : vb.len, ndiff = 0;
    size_t w = (size_t)snprintf(why, cap, "%llu vs %llu elements", (unsigned long long)va.len,
                                (unsigned long long)vb.len);
    for (uint64_t i = 0; i < n; i++) {
        ds8b__gguf_val ea, eb;
        bool eq;
        if (va.elem_type == DS8B_GGUF_STRING) {
            const char *s1, *s2;
            size_t l1, l2;
            eq = ds8b__gguf_arr_str(A, a, i, &s1, &l1, NULL) == DS8B_OK &&
                 ds8b__gguf_arr_str(B, b, i, &s2, &l2, NULL) == DS8B_OK && l1 == l2 && memcmp(s1, s2, l1) == 0;
        } else {
            eq = ds8b__gguf_val_elem(&va, i, &ea) == DS8B_OK && ds8b__gguf_val_elem(&vb, i, &eb) == DS8B_OK &&
                 ea.size == eb.size && memcmp(ea.p, eb.p, ea.size) == 0;
        }
        if (eq) continue;
        if (++ndiff <= 3 && w < cap) {
            char x[96], y[96];
            elem_text(A, a, i, x, sizeof x);
            elem_text(B, b, i, y, sizeof y);
            w += (size_t)snprintf(why + w, cap - w, "; [%llu] %s vs %s", (unsigned long long)i, x, y);
        }
    }
    if (w < cap) snprintf(why + w, cap - w, "; %llu of the first %llu differ", (unsigned long long)ndiff,
                          (unsigned long long)n);
    return false;
}

/* Keys llama.cpp's file carries that describe the model for people or
 * set front-end defaults; llama.cpp's loader does not depend on them, so
 * a difference is reported, not failed. */
static bool descriptive_key(const char *k) {
    return strcmp(k, "general.name") == 0 || strcmp(k, "general.size_label") == 0 ||
           strncmp(k, "general.sampling.", 17) == 0;
}

/* Keys only our files carry: our own namespace, which llama.cpp ignores. */
static bool own_key(const char *k) {
    return strncmp(k, "ds8b.", 5) == 0 || strcmp(k, DS8B_GGUF_QUANTIZED_BY_KEY) == 0;
}

static bool uint_key(const ds8b__gguf *g, const char *k, uint64_t *v) {
    return ds8b__gguf_find_key(g, k) >= 0 && ds8b__gguf_get_u64(g, k, v, NULL) == DS8B_OK;
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

/* GGUF version, alignment, and the data layout llama.cpp's reader
 * insists on; checked on llama.cpp's files too, as a check of the check. */
static void test_header_and_layout(void) {
    for (size_t p = 0; p < N_PAIRS; p++) {
        if (!g_ours[p] || !g_theirs[p]) continue;
        const ds8b__gguf *gs[2] = {g_ours[p], g_theirs[p]};
        CHECK(ds8b__gguf_version(g_ours[p]) == 3 && ds8b__gguf_version(g_theirs[p]) == 3, "%s: versions %u, %u",
              k_pairs[p].label, ds8b__gguf_version(g_ours[p]), ds8b__gguf_version(g_theirs[p]));
        uint32_t al = ds8b__gguf_alignment(g_ours[p]), tal = ds8b__gguf_alignment(g_theirs[p]);
        bool al_key = ds8b__gguf_find_key(g_ours[p], "general.alignment") >= 0;
        /* llama.cpp takes general.alignment (a power of two) or 32 */
        CHECK(al >= 32 && (al & (al - 1)) == 0 && al % tal == 0, "%s: alignment %u vs llama.cpp's %u",
              k_pairs[p].label, al, tal);
        if (al_key) {
            uint32_t v = 0;
            CHECK(ds8b__gguf_get_u32(g_ours[p], "general.alignment", &v, NULL) == 0 && v == al,
                  "%s: general.alignment must be a uint32", k_pairs[p].label);
        }
        for (int f = 0; f < 2; f++) {
            const ds8b__gguf *g = gs[f];
            const char *who = f ? "llama.cpp's" : "our";
            uint32_t a = ds8b__gguf_alignment(g);
            uint64_t data = ds8b__gguf_data_offset(g), expect = 0, end = data;
            size_t fsize;
            ds8b__gguf_base(g, &fsize);
            CHECK(data % a == 0, "%s: %s data section at %llu is not %u-aligned", k_pairs[p].label, who,
                  (unsigned long long)data, a);
            for (int64_t i = 0; i < ds8b__gguf_n_tensors(g); i++) {
                const ds8b__tensor *t = ds8b__gguf_tensor(g, i);
                uint64_t off = ds8b__gguf_tensor_file_offset(g, i) - data;
                size_t rb = 0;
                bool rb_ok = ds8b__row_bytes(t->type, t->ne[0], &rb);
                uint64_t nb = (uint64_t)rb * (uint64_t)(t->ne[1] * t->ne[2] * t->ne[3]);
                CHECK(rb_ok && nb == t->nbytes, "%s: %s %s: %zu bytes, ggml size %llu", k_pairs[p].label, who,
                      t->name, t->nbytes, (unsigned long long)nb);
                /* gguf_init_from_file: "tensor '%s' has offset %llu, expected %zu" */
                CHECK(off == expect, "%s: %s tensor %s at data offset %llu, llama.cpp expects %llu", k_pairs[p].label,
                      who, t->name, (unsigned long long)off, (unsigned long long)expect);
                CHECK(strlen(t->name) < 64, "%s: %s tensor name %s too long for ggml", k_pairs[p].label, who, t->name);
                expect = off + (t->nbytes + a - 1) / a * a;
                if (data + off + t->nbytes > end) end = data + off + t->nbytes;
            }
            CHECK(end <= fsize, "%s: %s tensor data ends at %llu, past the end of the file (%zu)", k_pairs[p].label,
                  who, (unsigned long long)end, fsize);
        }
        printf("  # %s: GGUF v%u both; alignment ours %u, llama.cpp's %u; %lld tensors laid out as llama.cpp reads them\n",
               k_pairs[p].label, ds8b__gguf_version(g_ours[p]), al, tal, (long long)ds8b__gguf_n_tensors(g_ours[p]));
    }
}

/* Every key of llama.cpp's file is in ours with the same type and value
 * (descriptive keys reported only); the keys llama.cpp's loader requires
 * are present; our extra keys are listed and checked where llama.cpp
 * would read them. */
static void test_metadata(void) {
    /* "%s" is the architecture */
    static const char *const required[] = {
        "general.architecture", "%s.context_length", "%s.embedding_length", "%s.block_count",
        "%s.feed_forward_length", "%s.attention.head_count", "%s.attention.layer_norm_rms_epsilon",
        "tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.merges",
    };
    for (size_t p = 0; p < N_PAIRS; p++) {
        const ds8b__gguf *o = g_ours[p], *t = g_theirs[p];
        if (!o || !t) continue;
        char arch[32], tarch[32], key[128], why[1024];
        arch_of(o, arch, sizeof arch);
        CHECK(strcmp(arch, arch_of(t, tarch, sizeof tarch)) == 0, "%s: architecture %s vs %s", k_pairs[p].label, arch,
              tarch);
        for (size_t r = 0; r < sizeof required / sizeof required[0]; r++) {
            snprintf(key, sizeof key, required[r], arch);
            CHECK(ds8b__gguf_find_key(o, key) >= 0, "%s: required key %s missing", k_pairs[p].label, key);
            CHECK(ds8b__gguf_find_key(t, key) >= 0, "%s: llama.cpp's file lacks %s (test assumption)", k_pairs[p].label,
                  key);
        }
        int n_equal = 0;
        char missing[1024] = "", descr[1024] = "", extra[1024] = "";
        for (int64_t i = 0; i < ds8b__gguf_n_kv(t); i++) {
            const char *k = ds8b__gguf_kv_key(t, i);
            int64_t j = ds8b__gguf_find_key(o, k);
            if (descriptive_key(k)) {
                char a[128], b[128];
                val_text(t, i, a, sizeof a);
                val_text(o, j, b, sizeof b);
                if (j < 0 || !same_value(t, i, o, j, why, sizeof why))
                    snprintf(descr + strlen(descr), sizeof descr - strlen(descr), "%s%s (llama.cpp %s, ours %s)",
                             descr[0] ? ", " : "", k, a, b);
                else n_equal++;
                continue;
            }
            if (j < 0) {
                snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s", missing[0] ? ", " : "", k);
                CHECK(j >= 0, "%s: key %s of llama.cpp's file is missing in ours", k_pairs[p].label, k);
                continue;
            }
            bool eq = same_value(t, i, o, j, why, sizeof why);
            CHECK(eq, "%s: %s differs (llama.cpp vs ours): %s", k_pairs[p].label, k, why);
            n_equal += eq;
        }
        /* keys only in ours */
        uint64_t kl = 0, hc = 0, emb = 0, v;
        snprintf(key, sizeof key, "%s.attention.key_length", arch);
        if (!uint_key(t, key, &kl)) {
            snprintf(key, sizeof key, "%s.embedding_length", arch);
            uint_key(t, key, &emb);
            snprintf(key, sizeof key, "%s.attention.head_count", arch);
            uint_key(t, key, &hc);
            kl = hc ? emb / hc : 0;
        }
        const ds8b__tensor *embd = ds8b__gguf_find_tensor(t, "token_embd.weight");
        int64_t ktok = ds8b__gguf_find_key(t, "tokenizer.ggml.tokens");
        ds8b__gguf_val tv = {0};
        if (ktok >= 0) ds8b__gguf_kv_val(t, ktok, &tv);
        for (int64_t j = 0; j < ds8b__gguf_n_kv(o); j++) {
            const char *k = ds8b__gguf_kv_key(o, j);
            if (ds8b__gguf_find_key(t, k) >= 0) continue;
            snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "%s%s", extra[0] ? ", " : "", k);
            if (own_key(k)) continue;
            size_t al = strlen(arch);
            const char *sub = strncmp(k, arch, al) == 0 && k[al] == '.' ? k + al + 1 : NULL;
            /* ones llama.cpp reads: they must say what llama.cpp assumes without them */
            if (sub && strcmp(sub, "vocab_size") == 0) {
                CHECK(uint_key(o, k, &v) && v == tv.len && embd && (int64_t)v == embd->ne[1],
                      "%s: %s = %llu, llama.cpp's vocabulary has %llu tokens", k_pairs[p].label, k,
                      (unsigned long long)v, (unsigned long long)tv.len);
            } else if (sub && (strcmp(sub, "rope.dimension_count") == 0 || strcmp(sub, "attention.key_length") == 0 ||
                               strcmp(sub, "attention.value_length") == 0)) {
                CHECK(uint_key(o, k, &v) && v == kl, "%s: %s = %llu, llama.cpp's head size is %llu", k_pairs[p].label, k,
                      (unsigned long long)v, (unsigned long long)kl);
            } else {
                CHECK(false, "%s: extra key %s is not checked against llama.cpp", k_pairs[p].label, k);
            }
        }
        printf("  # %s: %d of llama.cpp's %lld keys equal in type and value in ours\n", k_pairs[p].label, n_equal,
               (long long)ds8b__gguf_n_kv(t));
        printf("  # %s: missing in ours: %s\n", k_pairs[p].label, missing[0] ? missing : "none");
        printf("  # %s: descriptive keys that differ (not used by llama.cpp's loader): %s\n", k_pairs[p].label,
               descr[0] ? descr : "none");
        printf("  # %s: only in ours: %s\n", k_pairs[p].label, extra[0] ? extra : "none");
    }
}

/* The tokenizer and file-type keys once more, by name, so a change in the
 * generic comparison cannot skip them silently. */
static void test_named_keys(void) {
    static const char *const keys[] = {
        "general.file_type", "general.quantization_version", "tokenizer.ggml.model", "tokenizer.ggml.pre",
        "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token",
        "tokenizer.ggml.add_eos_token", "tokenizer.ggml.add_sep_token", "tokenizer.chat_template",
    };
    for (size_t p = 0; p < N_PAIRS; p++) {
        if (!g_ours[p] || !g_theirs[p]) continue;
        char why[1024];
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            int64_t i = ds8b__gguf_find_key(g_theirs[p], keys[k]), j = ds8b__gguf_find_key(g_ours[p], keys[k]);
            CHECK(i >= 0, "%s: llama.cpp's file lacks %s (test assumption)", k_pairs[p].label, keys[k]);
            CHECK(j >= 0, "%s: ours lacks %s", k_pairs[p].label, keys[k]);
            if (i >= 0 && j >= 0)
                CHECK(same_value(g_theirs[p], i, g_ours[p], j, why, sizeof why), "%s: %s: %s", k_pairs[p].label,
                      keys[k], why);
        }
        uint32_t ft = 0;
        ds8b__gguf_get_u32(g_ours[p], "general.file_type", &ft, NULL);
        printf("  # %s: general.file_type %u, quantization_version, tokenizer (8192 tokens, merges, ids, flags) "
               "and chat template equal to llama.cpp's\n",
               k_pairs[p].label, ft);
    }
}

/* A GGUF written from one of our GGUF files (not from the checkpoint)
 * keeps the same keys: the tokenizer ids and flags come through the GGUF
 * reader this time. */
static void test_from_gguf(void) {
    size_t p = 0; /* demo-llama f16 */
    if (!g_ours[p] || !g_theirs[p]) return;
    char out[600], why[1024];
    snprintf(out, sizeof out, "%s/again.gguf", g_dir);
    int rc = ds8b_quantize(g_paths[p], out, "f16", NULL);
    CHECK(rc == 0, "ds8b_quantize from GGUF: %s", ds8b_errmsg());
    ds8b__gguf *g = NULL;
    if (rc || ds8b__gguf_open(out, &g, NULL)) return;
    int n = 0;
    for (int64_t i = 0; i < ds8b__gguf_n_kv(g_ours[p]); i++) {
        const char *k = ds8b__gguf_kv_key(g_ours[p], i);
        if (own_key(k) || descriptive_key(k)) continue; /* general.name: the file name this time */
        int64_t j = ds8b__gguf_find_key(g, k);
        CHECK(j >= 0, "%s lost when writing from GGUF", k);
        if (j >= 0) CHECK(same_value(g_ours[p], i, g, j, why, sizeof why), "%s changed when writing from GGUF: %s", k, why);
        n++;
    }
    CHECK(ds8b__gguf_n_kv(g) == ds8b__gguf_n_kv(g_ours[p]), "%lld keys, %lld from the checkpoint",
          (long long)ds8b__gguf_n_kv(g), (long long)ds8b__gguf_n_kv(g_ours[p]));
    printf("  # %s written again from our GGUF: the same %d keys (padding_token_id included; general.name not "
           "compared)\n",
           k_pairs[p].label, n);
    ds8b__gguf_close(g);
    unlink(out);
}

/* GGUF tensor types llama.cpp stores model weights in (ggml ids). */
static bool llamacpp_type(int t) {
    switch (t) {
    case DS8B_T_F32: case DS8B_T_F16: case DS8B_T_BF16: case DS8B_T_Q4_0: case DS8B_T_Q4_1: case DS8B_T_Q5_0:
    case DS8B_T_Q5_1: case DS8B_T_Q8_0: case DS8B_T_Q2_K: case DS8B_T_Q3_K: case DS8B_T_Q4_K: case DS8B_T_Q5_K:
    case DS8B_T_Q6_K:
        return true;
    default:
        return false;
    }
}

static const char *tname(int t) {
    const ds8b__type_traits *ti = t >= 0 && t < DS8B_T__COUNT ? ds8b__type_info(t) : NULL;
    return ti ? ti->name : "?";
}

/* Type counts as "Q4_K x30, Q6_K x10, ...". */
static void type_hist(const ds8b__gguf *g, char *buf, size_t cap) {
    int n[DS8B_T__GGUF_MAX] = {0};
    for (int64_t i = 0; i < ds8b__gguf_n_tensors(g); i++) {
        int t = ds8b__gguf_tensor(g, i)->type;
        if (t >= 0 && t < DS8B_T__GGUF_MAX) n[t]++;
    }
    buf[0] = 0;
    for (int t = 0; t < DS8B_T__GGUF_MAX; t++)
        if (n[t]) snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s x%d", buf[0] ? ", " : "", tname(t), n[t]);
}

/* Same tensor names and shapes; same types (q4_k_m: differences listed). */
static void test_tensor_set(void) {
    for (size_t p = 0; p < N_PAIRS; p++) {
        const ds8b__gguf *o = g_ours[p], *t = g_theirs[p];
        if (!o || !t) continue;
        bool mix_allowed = strcmp(k_pairs[p].scheme, "q4_k_m") == 0;
        CHECK(ds8b__gguf_n_tensors(o) == ds8b__gguf_n_tensors(t), "%s: %lld tensors vs llama.cpp's %lld",
              k_pairs[p].label, (long long)ds8b__gguf_n_tensors(o), (long long)ds8b__gguf_n_tensors(t));
        int type_diffs = 0;
        for (int64_t i = 0; i < ds8b__gguf_n_tensors(t); i++) {
            const ds8b__tensor *b = ds8b__gguf_tensor(t, i), *a = ds8b__gguf_find_tensor(o, b->name);
            CHECK(a != NULL, "%s: tensor %s missing in ours", k_pairs[p].label, b->name);
            if (!a) continue;
            bool same_shape = a->n_dims == b->n_dims;
            for (int d = 0; d < DS8B_MAX_DIMS; d++) same_shape = same_shape && a->ne[d] == b->ne[d];
            CHECK(same_shape, "%s: %s: ne [%lld %lld] (%d dims) vs llama.cpp's [%lld %lld] (%d dims)", k_pairs[p].label,
                  b->name, (long long)a->ne[0], (long long)a->ne[1], a->n_dims, (long long)b->ne[0],
                  (long long)b->ne[1], b->n_dims);
            if (a->type != b->type) {
                type_diffs++;
                if (mix_allowed)
                    printf("  # %s: %s is %s in ours, %s in llama.cpp's (mix difference)\n", k_pairs[p].label, b->name,
                           tname(a->type), tname(b->type));
                else
                    CHECK(false, "%s: %s is %s in ours, %s in llama.cpp's", k_pairs[p].label, b->name, tname(a->type),
                          tname(b->type));
            }
        }
        for (int64_t i = 0; i < ds8b__gguf_n_tensors(o); i++) {
            const ds8b__tensor *a = ds8b__gguf_tensor(o, i);
            /* llama.cpp refuses a file with tensors it does not create */
            CHECK(ds8b__gguf_find_tensor(t, a->name) != NULL, "%s: extra tensor %s in ours", k_pairs[p].label, a->name);
            CHECK(llamacpp_type(a->type), "%s: %s has type %d, which llama.cpp does not store", k_pairs[p].label,
                  a->name, a->type);
        }
        char ho[256], ht[256];
        type_hist(o, ho, sizeof ho);
        type_hist(t, ht, sizeof ht);
        printf("  # %s: %lld tensors, names and shapes equal; types differ in %d (ours: %s; llama.cpp's: %s)\n",
               k_pairs[p].label, (long long)ds8b__gguf_n_tensors(o), type_diffs, ho, ht);
    }
}

/* Relative RMS difference of two float vectors. */
static double rel_rms(const float *a, const float *b, size_t n) {
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        s += (double)b[i] * b[i];
    }
    return s > 0 ? sqrt(d / s) : sqrt(d);
}

/* Largest relative RMS difference allowed between the dequantized
 * tensors of two files of one scheme. Two quantizers of the same float
 * weights differ by about their own errors (printed against the f16 file
 * below); Q/K rows out of order, or any other mix-up of rows, gives about
 * 1.4 (uncorrelated rows). */
static double tolerance(int ta, int tb) { return ta == DS8B_T_Q8_0 && tb == DS8B_T_Q8_0 ? 0.02 : 0.25; }

/* Distance in units in the last place between two finite floats. */
static int64_t ulps(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if (ia < 0) ia = INT32_MIN - ia;
    if (ib < 0) ib = INT32_MIN - ib;
    return ia > ib ? (int64_t)ia - ib : (int64_t)ib - ia;
}

/* Dequantizes a whole tensor into a malloc'd float array. */
static float *dequant_all(const ds8b__tensor *t, size_t *n) {
    int64_t cols = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
    size_t rb;
    *n = (size_t)(cols * rows);
    float *f = malloc(*n * sizeof(float));
    ds8b__row_bytes(t->type, cols, &rb);
    for (int64_t r = 0; r < rows; r++)
        ds8b__dequant_row(t->type, (const uint8_t *)t->data + (size_t)r * rb, f + (size_t)r * cols, cols);
    return f;
}

/* Tensor data. f16 tensors: every value equal. f32 tensors (norms,
 * rope_freqs): equal, or 1 ulp apart (rope_freqs: see docs/quantization.md,
 * "llama.cpp compatibility"). Quantized: every tensor dequantizes close to
 * llama.cpp's; for attn_q and attn_k the distance to llama.cpp's rows
 * un-permuted (HF order) is shown beside, as evidence the measure would
 * catch a permutation error. Where llama.cpp's f16 file of the same model
 * exists, both quantizers' errors against it are printed (not checked). */
static void test_tensor_data(void) {
    for (size_t p = 0; p < N_PAIRS; p++) {
        const ds8b__gguf *o = g_ours[p], *t = g_theirs[p];
        if (!o || !t) continue;
        bool exact = strcmp(k_pairs[p].scheme, "f16") == 0;
        uint64_t hd = 0;
        char key[128], arch[32];
        arch_of(t, arch, sizeof arch);
        snprintf(key, sizeof key, "%s.attention.key_length", arch);
        if (!uint_key(t, key, &hd)) {
            uint64_t emb = 0, hc = 1;
            snprintf(key, sizeof key, "%s.embedding_length", arch);
            uint_key(t, key, &emb);
            snprintf(key, sizeof key, "%s.attention.head_count", arch);
            uint_key(t, key, &hc);
            hd = emb / (hc ? hc : 1);
        }
        bool llama = strcmp(arch, "llama") == 0;
        double worst = 0, worst_qk_control = 1e9;
        const char *worst_name = "-";
        int64_t n_cmp = 0, n_exact = 0, n_ulp = 0;
        /* llama.cpp's f16 file of this model: the float weights, in GGUF order */
        const ds8b__gguf *ref = NULL;
        for (size_t r = 0; r < N_PAIRS; r++)
            if (r != p && strcmp(k_pairs[r].model, k_pairs[p].model) == 0 && strcmp(k_pairs[r].scheme, "f16") == 0)
                ref = g_theirs[r];
        double err_ours = 0, err_theirs = 0;
        int n_err = 0;
        for (int64_t i = 0; i < ds8b__gguf_n_tensors(t); i++) {
            const ds8b__tensor *b = ds8b__gguf_tensor(t, i), *a = ds8b__gguf_find_tensor(o, b->name);
            if (!a || a->ne[0] != b->ne[0] || a->ne[1] != b->ne[1] || a->ne[2] != b->ne[2] || a->ne[3] != b->ne[3])
                continue; /* reported by test_tensor_set */
            int64_t cols = b->ne[0], rows = b->ne[1] * b->ne[2] * b->ne[3];
            size_t n, nb;
            float *fa = dequant_all(a, &n), *fb = dequant_all(b, &nb);
            (void)nb; /* equal shapes: n == nb */
            n_cmp++;
            if (exact || a->type == DS8B_T_F32 || b->type == DS8B_T_F32) {
                /* the same float values: f16 of the same bf16 weights, or f32 vectors */
                size_t bad = 0, first = 0, one = 0, first_one = 0;
                for (size_t k = 0; k < n; k++) {
                    if (fa[k] == fb[k]) continue;
                    if (a->type == DS8B_T_F32 && b->type == DS8B_T_F32 && ulps(fa[k], fb[k]) == 1) {
                        if (!one) first_one = k;
                        one++;
                        continue;
                    }
                    if (!bad) first = k;
                    bad++;
                }
                CHECK(a->type == b->type && bad == 0,
                      "%s: %s: %zu of %zu values differ (first [%zu]: %.9g vs llama.cpp %.9g)", k_pairs[p].label,
                      b->name, bad, n, first, bad ? fa[first] : 0.0, bad ? fb[first] : 0.0);
                if (one)
                    printf("  # %s: %s: %zu of %zu values 1 ulp from llama.cpp's (first [%zu]: %.9g vs %.9g)\n",
                           k_pairs[p].label, b->name, one, n, first_one, fa[first_one], fb[first_one]);
                n_exact += bad == 0 && one == 0;
                n_ulp += one > 0 && bad == 0;
            } else {
                double d = rel_rms(fa, fb, n), tol = tolerance(a->type, b->type);
                CHECK(d <= tol, "%s: %s: dequantized values differ from llama.cpp's by %.4f (RMS, relative; "
                                "tolerance %.2f)",
                      k_pairs[p].label, b->name, d, tol);
                if (d > worst) worst = d, worst_name = b->name;
                const ds8b__tensor *rt = ref ? ds8b__gguf_find_tensor(ref, b->name) : NULL;
                if (rt && rt->ne[0] == b->ne[0] && rt->ne[1] == b->ne[1]) {
                    size_t nr;
                    float *fr = dequant_all(rt, &nr);
                    err_ours += rel_rms(fa, fr, n);
                    err_theirs += rel_rms(fb, fr, n);
                    n_err++;
                    free(fr);
                }
            }
            bool qk = strstr(b->name, ".attn_q.weight") || strstr(b->name, ".attn_k.weight");
            if (llama && qk && hd >= 2 && rows % (int64_t)hd == 0) {
                /* control: llama.cpp's rows put back in HF order (row (h, p*half + i)
                 * from GGUF row (h, 2i + p)) against ours */
                float *un = malloc(n * sizeof(float));
                int64_t half = (int64_t)hd / 2;
                for (int64_t r = 0; r < rows; r++) {
                    int64_t h = r / (int64_t)hd, w = r % (int64_t)hd;
                    int64_t src = h * (int64_t)hd + (w % half) * 2 + w / half;
                    memcpy(un + (size_t)r * cols, fb + (size_t)src * cols, (size_t)cols * sizeof(float));
                }
                double c = rel_rms(fa, un, n);
                CHECK(c > 3 * (exact ? 0.0 : tolerance(a->type, b->type)) && c > 0.5,
                      "%s: %s: un-permuted rows are as close as permuted ones (%.4f): the check cannot see the "
                      "permutation",
                      k_pairs[p].label, b->name, c);
                if (c < worst_qk_control) worst_qk_control = c;
                free(un);
            }
            free(fa);
            free(fb);
        }
        if (exact)
            printf("  # %s: %lld of %lld tensors hold exactly llama.cpp's values, %lld within 1 ulp", k_pairs[p].label,
                   (long long)n_exact, (long long)n_cmp, (long long)n_ulp);
        else
            printf("  # %s: %lld tensors compared; largest relative RMS difference %.4f (%s)", k_pairs[p].label,
                   (long long)n_cmp, worst, worst_name);
        if (n_err)
            printf("; mean relative RMS error against the f16 weights: ours %.4f, llama.cpp's %.4f", err_ours / n_err,
                   err_theirs / n_err);
        if (llama) printf("; Q/K rows without the permutation would differ by >= %.3f\n", worst_qk_control);
        else printf("; no Q/K permutation for %s\n", arch);
    }
}

/* ------------------------------------------------------------------ */
int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/ds8b-compat-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        printf("not ok setup (mkdtemp %s)\n", g_dir);
        return 1;
    }
    ds8b_params *prm = NULL;
    ds8b_params_create(&prm);
    ds8b_params_set_int(prm, DS8B_PARAM_N_THREADS, 2);
    int setup_fail = 0;
    for (size_t p = 0; p < N_PAIRS; p++) {
        char mp[1024], tp[1024];
        snprintf(g_paths[p], sizeof g_paths[p], "%s/%s-%s.gguf", g_dir, strrchr(k_pairs[p].model, '/') + 1,
                 k_pairs[p].scheme);
        int rc = ds8b_quantize(t_path(mp, sizeof mp, k_pairs[p].model), g_paths[p], k_pairs[p].scheme, prm);
        ds8b__err e = {0};
        if (rc) printf("  # %s: ds8b_quantize: %s\n", k_pairs[p].label, ds8b_errmsg());
        else if (ds8b__gguf_open(g_paths[p], &g_ours[p], &e)) printf("  # %s: reading ours: %s\n", k_pairs[p].label, e.msg);
        if (ds8b__gguf_open(t_path(tp, sizeof tp, k_pairs[p].theirs), &g_theirs[p], &e))
            printf("  # %s: reading llama.cpp's: %s\n", k_pairs[p].label, e.msg);
        if (!g_ours[p] || !g_theirs[p]) setup_fail++;
    }
    ds8b_params_free(prm);
    printf("%s setup\n", setup_fail ? "not ok" : "ok");
    if (setup_fail) t_total_failed++;

    RUN(test_header_and_layout);
    RUN(test_metadata);
    RUN(test_named_keys);
    RUN(test_from_gguf);
    RUN(test_tensor_set);
    RUN(test_tensor_data);

    for (size_t p = 0; p < N_PAIRS; p++) {
        ds8b__gguf_close(g_ours[p]);
        ds8b__gguf_close(g_theirs[p]);
        unlink(g_paths[p]);
    }
    rmdir(g_dir);
    T_EXIT();
}
