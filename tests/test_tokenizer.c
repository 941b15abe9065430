/* test_tokenizer.c -- the BPE tokenizer against Hugging Face `tokenizers`
 * reference output (shared/testdata/tokenizer-cases.jsonl.gz), streaming
 * detokenization, invalid UTF-8, broken tokenizer.json, GGUF-style
 * construction and the public API. */
#include "t.h"
#include "internal.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tok_json.h"

#include <cjson/cJSON.h>
#include <utf8proc.h>
#include <pthread.h>
#include <time.h>
#include <zlib.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define T_SLOW 20.0 /* sanitizer builds run several times slower */
#else
/* DS8B_RUN set (make check-arm64): the program runs under qemu-aarch64,
 * which emulates NEON several times slower than native. */
#define T_SLOW (getenv("DS8B_RUN") && *getenv("DS8B_RUN") ? 20.0 : 1.0)
#endif

#define N_TOK 4
static const char *KEYS[N_TOK] = {"llama3_1", "qwen3", "deepseek_v3", "demo"};
static const char *DIRS[N_TOK] = {"llama3.1", "qwen3", "deepseek-v3", "demo"};
static ds8b_tokenizer *TOK[N_TOK];

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- the reference cases ---- */
typedef struct tcase {
    char *text;
    size_t text_len;
    struct {
        int32_t *ids, *ids_sp;
        size_t n_ids, n_sp;
        char *decoded;
        size_t dec_len;
    } r[N_TOK];
} tcase;
static tcase *CASES;
static size_t N_CASES;

static int32_t *json_ids(const ds8b__tj_doc *d, const ds8b__tj_node *arr, size_t *n) {
    *n = arr ? arr->count : 0;
    int32_t *v = malloc((*n + 1) * sizeof *v);
    size_t i = 0;
    for (const ds8b__tj_node *c = ds8b__tj_first(d, arr); c; c = ds8b__tj_next(d, c)) v[i++] = (int32_t)c->num;
    return v;
}
static char *dupn(const char *s, size_t n) {
    char *p = malloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static int load_cases(void) {
    char path[1024];
    gzFile f = gzopen(t_path(path, sizeof path, "testdata/tokenizer-cases.jsonl.gz"), "rb");
    if (!f) return -1;
    size_t cap = 1 << 16, len = 0, ccap = 0;
    char *line = malloc(cap);
    for (;;) {
        len = 0;
        line[0] = 0;
        for (;;) {
            if (!gzgets(f, line + len, (int)(cap - len))) break;
            len += strlen(line + len);
            if (len && line[len - 1] == '\n') break;
            if (len + 1 >= cap) { cap *= 2; line = realloc(line, cap); }
        }
        if (len == 0) break;
        ds8b__tj_doc d;
        ds8b__err e = {0};
        if (ds8b__tj_parse(&d, line, len, "case", &e) != 0) { printf("  # bad case line: %s\n", e.msg); continue; }
        if (N_CASES == ccap) { ccap = ccap ? ccap * 2 : 256; CASES = realloc(CASES, ccap * sizeof *CASES); }
        tcase *c = &CASES[N_CASES++];
        memset(c, 0, sizeof *c);
        const ds8b__tj_node *root = ds8b__tj_root(&d);
        const ds8b__tj_node *tx = ds8b__tj_get(&d, root, "text");
        c->text = dupn(ds8b__tj_str(&d, tx), tx->str_len);
        c->text_len = tx->str_len;
        const ds8b__tj_node *tk = ds8b__tj_get(&d, root, "tok");
        for (int k = 0; k < N_TOK; k++) {
            const ds8b__tj_node *o = ds8b__tj_get(&d, tk, KEYS[k]);
            c->r[k].ids = json_ids(&d, ds8b__tj_get(&d, o, "ids"), &c->r[k].n_ids);
            c->r[k].ids_sp = json_ids(&d, ds8b__tj_get(&d, o, "ids_special"), &c->r[k].n_sp);
            const ds8b__tj_node *dec = ds8b__tj_get(&d, o, "decoded");
            c->r[k].decoded = dupn(ds8b__tj_str(&d, dec) ? ds8b__tj_str(&d, dec) : "", dec ? dec->str_len : 0);
            c->r[k].dec_len = dec ? dec->str_len : 0;
        }
        ds8b__tj_free(&d);
    }
    free(line);
    gzclose(f);
    return 0;
}

static void print_ids(const char *label, const int32_t *v, size_t n) {
    printf("  #   %s (%zu):", label, n);
    for (size_t i = 0; i < n && i < 40; i++) printf(" %d", v[i]);
    if (n > 40) printf(" ...");
    printf("\n");
}
static void print_text(const char *label, const char *s, size_t n) {
    printf("  #   %s: \"", label);
    for (size_t i = 0; i < n && i < 160; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) printf("\\x%02x", ch); else putchar(ch);
    }
    printf("%s\"\n", n > 160 ? "..." : "");
}

static bool same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

/* ---- tests ---- */
static void test_load(void) {
    char path[1024];
    for (int k = 0; k < N_TOK; k++) {
        char rel[256];
        snprintf(rel, sizeof rel, "tokenizers/%s", DIRS[k]);
        ds8b__err e = {0};
        int64_t m0 = ds8b_memory_used(DS8B_MEM_TOKENIZER), o0 = ds8b_memory_used(DS8B_MEM_OTHER);
        ds8b_memory_highwater(DS8B_MEM_OTHER, 1);
        double t0 = now_s(), c0 = cpu_s();
        int rc = ds8b__tok_load(t_path(path, sizeof path, rel), &TOK[k], &e);
        double dt = now_s() - t0, dc = cpu_s() - c0;
        CHECK(rc == 0 && TOK[k], "load %s: %s", DIRS[k], e.msg);
        CHECK(ds8b_memory_used(DS8B_MEM_OTHER) == o0, "%s: load leaves no temporary memory", DIRS[k]);
        printf("  # load %-12s %7.1f ms (cpu %6.1f ms)  vocab %d  kept %.1f MB  peak temp %.1f MB\n", DIRS[k], dt * 1e3, dc * 1e3,
               TOK[k] ? ds8b__tok_n_vocab(TOK[k]) : -1, (ds8b_memory_used(DS8B_MEM_TOKENIZER) - m0) / 1e6,
               (ds8b_memory_highwater(DS8B_MEM_OTHER, 0) - o0) / 1e6);
        if (k == 1) CHECK(dc < T_SLOW, "qwen3 load took %.2f s of CPU", dc);
    }
}

static void test_reference_cases(void) {
    CHECK(load_cases() == 0 && N_CASES == 1500, "read %zu cases", N_CASES);
    for (int k = 0; k < N_TOK; k++) {
        if (!TOK[k]) continue;
        size_t bad_ids = 0, bad_sp = 0, bad_dec = 0, shown = 0;
        double t0 = now_s();
        size_t bytes = 0;
        for (size_t i = 0; i < N_CASES; i++) {
            tcase *c = &CASES[i];
            int32_t *ids = NULL;
            size_t n = 0;
            ds8b__err e = {0};
            int rc = ds8b__tok_encode(TOK[k], c->text, c->text_len, 0, &ids, &n, &e);
            bytes += c->text_len;
            bool ok = rc == 0 && same_ids(ids, n, c->r[k].ids, c->r[k].n_ids);
            if (!ok) {
                bad_ids++;
                if (shown++ < 4) {
                    printf("  # %s case %zu: ids mismatch (rc %d %s)\n", KEYS[k], i, rc, e.msg);
                    print_text("text", c->text, c->text_len);
                    print_ids("want", c->r[k].ids, c->r[k].n_ids);
                    print_ids("got ", ids, n);
                }
            }
            ds8b__free(ids);
            ids = NULL;
            rc = ds8b__tok_encode(TOK[k], c->text, c->text_len, DS8B_TOKENIZE_ADD_SPECIAL, &ids, &n, &e);
            if (rc != 0 || !same_ids(ids, n, c->r[k].ids_sp, c->r[k].n_sp)) {
                bad_sp++;
                if (shown++ < 4) {
                    printf("  # %s case %zu: ids_special mismatch\n", KEYS[k], i);
                    print_ids("want", c->r[k].ids_sp, c->r[k].n_sp);
                    print_ids("got ", ids, n);
                }
            }
            ds8b__free(ids);
            char *out = NULL;
            size_t ol = 0;
            rc = ds8b__tok_decode(TOK[k], c->r[k].ids, c->r[k].n_ids, 0, &out, &ol, &e);
            if (rc != 0 || ol != c->r[k].dec_len || memcmp(out, c->r[k].decoded, ol) != 0) {
                bad_dec++;
                if (shown++ < 4) {
                    printf("  # %s case %zu: decoded mismatch\n", KEYS[k], i);
                    print_text("want", c->r[k].decoded, c->r[k].dec_len);
                    print_text("got ", out ? out : "", ol);
                }
            }
            ds8b__free(out);
        }
        double dt = now_s() - t0;
        printf("  # %-12s mismatches: ids %zu, ids_special %zu, decoded %zu of %zu   (%.0f ms for all, %.1f MB/s encode+decode)\n",
               KEYS[k], bad_ids, bad_sp, bad_dec, N_CASES, dt * 1e3, 2 * bytes / dt / 1e6);
        CHECK(bad_ids == 0 && bad_sp == 0 && bad_dec == 0, "%s: %zu/%zu/%zu mismatches", KEYS[k], bad_ids, bad_sp, bad_dec);
    }
}

static bool valid_utf8(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t l; uint32_t lo = 0x80, hi = 0xBF;
        if (c < 0x80) { i++; continue; }
        else if (c >= 0xC2 && c <= 0xDF) l = 2;
        else if (c >= 0xE0 && c <= 0xEF) { l = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
        else if (c >= 0xF0 && c <= 0xF4) { l = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
        else return false;
        if (i + l > n) return false;
        for (size_t j = 1; j < l; j++) {
            unsigned char d = (unsigned char)s[i + j];
            if (d < lo || d > hi) return false;
            lo = 0x80; hi = 0xBF;
        }
        i += l;
    }
    return true;
}

static void test_streaming(void) {
    char piece[4096];
    for (int k = 0; k < N_TOK; k++) {
        if (!TOK[k]) continue;
        size_t bad = 0, split = 0;
        for (size_t i = 0; i < N_CASES; i++) {
            tcase *c = &CASES[i];
            ds8b__detok_stream st = {0};
            size_t cap = c->r[k].dec_len * 3 + 64, got = 0;
            char *acc = malloc(cap);
            for (size_t j = 0; j < c->r[k].n_ids; j++) {
                size_t l = 0;
                int rc = ds8b__detok_push(TOK[k], &st, c->r[k].ids[j], 0, piece, sizeof piece, &l);
                if (rc != 0) { bad++; break; }
                if (!valid_utf8(piece, l)) split++;
                if (got + l <= cap) memcpy(acc + got, piece, l);
                got += l;
            }
            size_t l = 0;
            ds8b__detok_flush(&st, piece, sizeof piece, &l);
            if (got + l <= cap) memcpy(acc + got, piece, l);
            got += l;
            if (got != c->r[k].dec_len || memcmp(acc, c->r[k].decoded, got) != 0) {
                if (bad++ < 3) { printf("  # %s case %zu: stream differs\n", KEYS[k], i); print_text("got", acc, got > cap ? cap : got); }
            }
            free(acc);
        }
        CHECK(bad == 0 && split == 0, "%s: %zu streams differ, %zu pieces split a character", KEYS[k], bad, split);
    }
    /* a push that does not fit leaves the stream unchanged */
    ds8b_tokenizer *t = TOK[3];
    if (t) {
        int32_t id = ds8b__tok_find(t, "<think>");
        ds8b__detok_stream st = {0};
        char small[2];
        size_t l = 0;
        CHECK(ds8b__detok_push(t, &st, id, 0, small, sizeof small, &l) == DS8B_E_BUFFER && l == 7, "buffer %zu", l);
        CHECK(ds8b__detok_push(t, &st, id, 0, piece, sizeof piece, &l) == 0 && l == 7 && memcmp(piece, "<think>", 7) == 0, "retry");
        CHECK(ds8b__detok_push(t, &st, -5, 0, piece, sizeof piece, &l) == DS8B_E_INVALID, "bad id");
        CHECK(ds8b__detok_push(t, &st, id, DS8B_DETOKENIZE_SKIP_SPECIAL, piece, sizeof piece, &l) == 0 && l == 7,
              "<think> is not special");
        int32_t bos = ds8b__tok_bos(t);
        CHECK(ds8b__detok_push(t, &st, bos, DS8B_DETOKENIZE_SKIP_SPECIAL, piece, sizeof piece, &l) == 0 && l == 0, "skip bos");
    }
}

/* Invalid UTF-8 encodes exactly like the text with U+FFFD substituted. */
static void test_invalid_utf8(void) {
    static const struct { const char *bad; const char *good; } C[] = {
        {"\xC3", "\xEF\xBF\xBD"},
        {"a\xE4\xB8" "b", "a\xEF\xBF\xBD" "b"},
        {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xED\xA0\x80x", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDx"},
        {"\xFF\xFE hi", "\xEF\xBF\xBD\xEF\xBF\xBD hi"},
        {"ok \xF0\x9F\x98", "ok \xEF\xBF\xBD"},
        {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\x80\x80 <think>\xE0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD <think>\xEF\xBF\xBD\xEF\xBF\xBD"},
    };
    for (int k = 0; k < N_TOK; k++) {
        if (!TOK[k]) continue;
        for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
            int32_t *a = NULL, *b = NULL;
            size_t na = 0, nb = 0;
            int ra = ds8b__tok_encode(TOK[k], C[i].bad, strlen(C[i].bad), 0, &a, &na, NULL);
            int rb = ds8b__tok_encode(TOK[k], C[i].good, strlen(C[i].good), 0, &b, &nb, NULL);
            CHECK(ra == 0 && rb == 0 && same_ids(a, na, b, nb), "%s case %zu", KEYS[k], i);
            /* and it round-trips to the repaired text */
            char *out = NULL;
            size_t ol = 0;
            CHECK(ds8b__tok_decode(TOK[k], a, na, 0, &out, &ol, NULL) == 0 && ol == strlen(C[i].good) &&
                  memcmp(out, C[i].good, ol) == 0, "%s roundtrip %zu", KEYS[k], i);
            ds8b__free(out);
            ds8b__free(a);
            ds8b__free(b);
        }
    }
    /* random bytes: never crash; decode(encode(x)) is valid UTF-8 */
    if (TOK[1]) {
        unsigned s = 12345;
        char buf[300];
        for (int it = 0; it < 300; it++) {
            size_t n = (size_t)(it % 290) + 1;
            for (size_t i = 0; i < n; i++) { s = s * 1103515245u + 12345u; buf[i] = (char)(s >> 16); }
            int32_t *ids = NULL;
            size_t ni = 0;
            char *out = NULL;
            size_t ol = 0;
            int rc = ds8b__tok_encode(TOK[1], buf, n, 0, &ids, &ni, NULL);
            CHECK(rc == 0, "random %d", it);
            CHECK(ds8b__tok_decode(TOK[1], ids, ni, 0, &out, &ol, NULL) == 0 && valid_utf8(out, ol), "random decode %d", it);
            ds8b__free(ids);
            ds8b__free(out);
        }
    }
}

static void test_bad_json(void) {
    char path[1024];
    char *js = NULL;
    size_t jl = 0;
    ds8b__err e = {0};
    CHECK(ds8b__read_file(t_path(path, sizeof path, "tokenizers/demo/tokenizer.json"), 1 << 30, DS8B_MEM_OTHER, &js, &jl, &e) == 0, "%s", e.msg);
    if (!js) return;
    /* truncations */
    for (int i = 0; i < 60; i++) {
        size_t cut = (size_t)((double)jl * i / 60.0);
        ds8b_tokenizer *t = NULL;
        int rc = ds8b__tok_from_json(js, cut, NULL, 0, "truncated", &t, &e);
        CHECK(rc != 0 && t == NULL && e.msg[0], "truncated at %zu: rc %d", cut, rc);
    }
    /* byte flips in the structure-heavy head: error or a working tokenizer */
    unsigned s = 7;
    for (int i = 0; i < 40; i++) {
        s = s * 1103515245u + 12345u;
        size_t at = (s >> 8) % (jl < 4000 ? jl : 4000);
        char old = js[at];
        js[at] = (char)(s >> 3);
        ds8b_tokenizer *t = NULL;
        int rc = ds8b__tok_from_json(js, jl, NULL, 0, "flipped", &t, NULL);
        if (rc == 0) {
            int32_t *ids = NULL;
            size_t n = 0;
            CHECK(ds8b__tok_encode(t, "Hello <think> world", 19, DS8B_TOKENIZE_ADD_SPECIAL, &ids, &n, NULL) == 0, "flip encode");
            ds8b__free(ids);
            ds8b__tok_free(t);
        }
        js[at] = old;
    }
    static const struct { const char *j; int rc; } C[] = {
        {"", DS8B_E_FORMAT},
        {"{}", DS8B_E_FORMAT},
        {"[]", DS8B_E_FORMAT},
        {"{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", DS8B_E_UNSUPPORTED},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a a\"]}}", DS8B_E_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}", DS8B_E_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":99999999999},\"merges\":[]}}", DS8B_E_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"}}}", DS8B_E_UNSUPPORTED},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"added_tokens\":[{\"id\":5}]}", DS8B_E_FORMAT},
        {"{\"a\":\"\\ud800\"}", DS8B_E_FORMAT},
        {"{\"a\":\"\xff\"}", DS8B_E_FORMAT},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\xc3\"}}}", DS8B_E_FORMAT},
        {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", DS8B_E_FORMAT},
    };
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        ds8b_tokenizer *t = NULL;
        int rc = ds8b__tok_from_json(C[i].j, strlen(C[i].j), NULL, 0, "case", &t, &e);
        CHECK(rc == C[i].rc && !t, "json case %zu: rc %d (%s)", i, rc, e.msg);
    }
    /* a minimal valid one works and is usable */
    const char *mini = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[[\"a\",\"b\"]]},"
                       "\"added_tokens\":[{\"id\":3,\"content\":\"<s>\",\"special\":true}]}";
    ds8b_tokenizer *t = NULL;
    CHECK(ds8b__tok_from_json(mini, strlen(mini), NULL, 0, "mini", &t, &e) == 0, "%s", e.msg);
    if (t) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK(ds8b__tok_encode(t, "abab<s>a", 8, 0, &ids, &n, NULL) == 0 && n == 4 && ids[0] == 2 && ids[1] == 2 &&
              ids[2] == 3 && ids[3] == 0, "mini encode n=%zu", n);
        ds8b__free(ids);
        CHECK(ds8b__tok_encode(t, "ab<s>", 5, DS8B_TOKENIZE_NO_PARSE_SPECIAL, &ids, &n, NULL) == 0 && n == 1 && ids[0] == 2,
              "no-parse-special drops unknown chars: n=%zu", n);
        ds8b__free(ids);
        ds8b__tok_free(t);
    }
    ds8b__free(js);
}

static void test_no_parse_special(void) {
    ds8b_tokenizer *t = TOK[0];
    if (!t) return;
    const char *s = "<|begin_of_text|>hi";
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK(ds8b__tok_encode(t, s, strlen(s), 0, &a, &na, NULL) == 0 && na == 2 && a[0] == ds8b__tok_find(t, "<|begin_of_text|>"),
          "special parsed");
    CHECK(ds8b__tok_encode(t, s, strlen(s), DS8B_TOKENIZE_NO_PARSE_SPECIAL, &b, &nb, NULL) == 0 && nb > 2, "special as text");
    char *out = NULL;
    size_t ol = 0;
    CHECK(b && ds8b__tok_decode(t, b, nb, 0, &out, &ol, NULL) == 0 && ol == strlen(s) && memcmp(out, s, ol) == 0, "text back");
    for (size_t i = 0; b && i < nb; i++) CHECK(!ds8b__tok_is_special(t, b[i]), "no special id");
    ds8b__free(out);
    ds8b__free(a);
    ds8b__free(b);
    /* skip_special decode */
    int32_t ids[3] = {ds8b__tok_find(t, "<|begin_of_text|>"), ds8b__tok_find(t, "hi"), ds8b__tok_find(t, "<|eot_id|>")};
    CHECK(ds8b__tok_decode(t, ids, 3, DS8B_DETOKENIZE_SKIP_SPECIAL, &out, &ol, NULL) == 0 && ol == 2 && memcmp(out, "hi", 2) == 0, "skip");
    ds8b__free(out);
}

/* Values from tokenizer_config.json, read independently with cJSON. */
static void test_config(void) {
    char path[1024], rel[256];
    for (int k = 0; k < N_TOK; k++) {
        if (!TOK[k]) continue;
        snprintf(rel, sizeof rel, "tokenizers/%s/tokenizer_config.json", DIRS[k]);
        char *js = NULL;
        size_t jl = 0;
        ds8b__read_file(t_path(path, sizeof path, rel), 1 << 26, DS8B_MEM_OTHER, &js, &jl, NULL);
        cJSON *root = js ? cJSON_ParseWithLength(js, jl) : NULL;
        CHECK(root, "%s config parse", DIRS[k]);
        if (!root) { ds8b__free(js); continue; }
        cJSON *ct = cJSON_GetObjectItem(root, "chat_template");
        CHECK(ds8b__tok_chat_template(TOK[k]) && strcmp(ds8b__tok_chat_template(TOK[k]), ct->valuestring) == 0, "%s template", DIRS[k]);
        for (int w = 0; w < 2; w++) {
            cJSON *b = cJSON_GetObjectItem(root, w ? "eos_token" : "bos_token");
            if (cJSON_IsObject(b)) b = cJSON_GetObjectItem(b, "content");
            const char *got = w ? ds8b__tok_eos_str(TOK[k]) : ds8b__tok_bos_str(TOK[k]);
            int32_t gid = w ? ds8b__tok_eos(TOK[k]) : ds8b__tok_bos(TOK[k]);
            if (cJSON_IsString(b)) {
                CHECK(got && strcmp(got, b->valuestring) == 0, "%s %s str", DIRS[k], w ? "eos" : "bos");
                CHECK(gid >= 0 && gid == ds8b__tok_find(TOK[k], b->valuestring), "%s %s id %d", DIRS[k], w ? "eos" : "bos", gid);
                size_t l = 0;
                char buf[128];
                CHECK(ds8b__tok_token_bytes(TOK[k], gid, buf, sizeof buf, &l) && l == strlen(b->valuestring) &&
                      memcmp(buf, b->valuestring, l) == 0, "token bytes");
            } else {
                CHECK(got == NULL, "%s no %s", DIRS[k], w ? "eos" : "bos");
            }
        }
        CHECK(ds8b__tok_is_eog(TOK[k], ds8b__tok_eos(TOK[k])), "%s eos is eog", DIRS[k]);
        cJSON *ab = cJSON_GetObjectItem(root, "add_bos_token");
        if (cJSON_IsBool(ab)) CHECK(ds8b__tok_add_bos(TOK[k]) == cJSON_IsTrue(ab), "%s add_bos", DIRS[k]);
        cJSON_Delete(root);
        ds8b__free(js);
    }
    const char *eogs[] = {"<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "<｜end▁of▁sentence｜>", "<|endoftext|>"};
    for (int k = 0; k < N_TOK; k++) {
        if (!TOK[k]) continue;
        for (size_t i = 0; i < sizeof eogs / sizeof eogs[0]; i++) {
            int32_t id = ds8b__tok_find(TOK[k], eogs[i]);
            if (id >= 0) CHECK(ds8b__tok_is_eog(TOK[k], id), "%s: %s is eog", DIRS[k], eogs[i]);
        }
        CHECK(!ds8b__tok_is_eog(TOK[k], ds8b__tok_find(TOK[k], "the")), "the is not eog");
    }
    static const char *PRE[N_TOK] = {"llama-bpe", "qwen2", "deepseek-v3", "llama-bpe"};
    for (int k = 0; k < N_TOK; k++)
        if (TOK[k]) CHECK(strcmp(ds8b__tok_pre_name(TOK[k]), PRE[k]) == 0, "%s pre %s", DIRS[k], ds8b__tok_pre_name(TOK[k]));
}

/* Rebuild each tokenizer from its own GGUF-style export; it must encode the
 * reference cases the same way. */
static void test_from_vocab(void) {
    for (int k = 0; k < N_TOK; k++) {
        ds8b_tokenizer *t = TOK[k];
        if (!t) continue;
        int32_t nv = ds8b__tok_n_vocab(t);
        const char **toks = calloc((size_t)nv, sizeof *toks);
        size_t *lens = calloc((size_t)nv, sizeof *lens);
        int32_t *types = calloc((size_t)nv, sizeof *types);
        char (*pads)[32] = calloc((size_t)nv, 32);
        for (int32_t i = 0; i < nv; i++)
            CHECK(ds8b__tok_vocab_entry(t, i, &toks[i], &lens[i], &types[i], pads[i], 32), "entry %d", i);
        size_t nm = ds8b__tok_n_merges(t);
        char **merges = calloc(nm, sizeof *merges);
        size_t *mlens = calloc(nm, sizeof *mlens);
        for (size_t i = 0; i < nm; i++) {
            const char *a, *b;
            size_t al, bl;
            ds8b__tok_merge(t, i, &a, &al, &b, &bl);
            merges[i] = malloc(al + bl + 2);
            memcpy(merges[i], a, al);
            merges[i][al] = ' ';
            memcpy(merges[i] + al + 1, b, bl);
            mlens[i] = al + bl + 1;
        }
        ds8b_tokenizer *g = NULL;
        ds8b__err e = {0};
        int rc = ds8b__tok_from_vocab(toks, lens, types, (size_t)nv, (const char *const *)merges, mlens, nm,
                                      ds8b__tok_pre_name(t), ds8b__tok_bos(t), ds8b__tok_eos(t), ds8b__tok_add_bos(t), &g, &e);
        CHECK(rc == 0, "%s from_vocab: %s", DIRS[k], e.msg);
        size_t bad = 0;
        for (size_t i = 0; g && i < N_CASES; i++) {
            int32_t *ids = NULL;
            size_t n = 0;
            /* GGUF has no normalizer field: "llama-bpe" means no NFC, while the demo
             * tokenizer.json has one, so feed it NFC text (utf8proc in the test). */
            char *nfc = NULL;
            if (k == 3 && CASES[i].text_len == strlen(CASES[i].text))
                nfc = (char *)utf8proc_NFC((const utf8proc_uint8_t *)CASES[i].text);
            if (nfc) ds8b__tok_encode(g, nfc, strlen(nfc), 0, &ids, &n, NULL);
            else ds8b__tok_encode(g, CASES[i].text, CASES[i].text_len, 0, &ids, &n, NULL);
            free(nfc);
            if (!same_ids(ids, n, CASES[i].r[k].ids, CASES[i].r[k].n_ids)) {
                if (bad++ < 2) { printf("  # %s gguf-style case %zu differs\n", DIRS[k], i); print_text("text", CASES[i].text, CASES[i].text_len); }
            }
            ds8b__free(ids);
        }
        CHECK(bad == 0, "%s: %zu cases differ after from_vocab", DIRS[k], bad);
        if (g) {
            CHECK(ds8b__tok_eos(g) == ds8b__tok_eos(t) && ds8b__tok_bos(g) == ds8b__tok_bos(t), "bos/eos kept");
            CHECK(ds8b__tok_is_eog(g, ds8b__tok_eos(t)), "eog");
        }
        ds8b__tok_free(g);
        for (size_t i = 0; i < nm; i++) free(merges[i]);
        free(merges); free(mlens); free(toks); free(lens); free(types); free(pads);
    }
    ds8b__err e = {0};
    const char *tk[] = {"a"};
    size_t tl[] = {1};
    ds8b_tokenizer *g = NULL;
    CHECK(ds8b__tok_from_vocab(tk, tl, NULL, 1, NULL, NULL, 0, "no-such-pre", -1, -1, 0, &g, &e) == DS8B_E_UNSUPPORTED && !g, "bad pre");
}

/* Tokenizers from the GGUF files written by llama.cpp's converter, through
 * the public loader (the GGUF reader feeds ds8b__tok_from_vocab). */
static void test_gguf_files(void) {
    static const struct { const char *file; int k; } G[] = {
        {"testdata/gguf/vocab-llama3.1.gguf", 0},
        {"testdata/gguf/vocab-qwen3.gguf", 1},
        {"testdata/gguf/demo-llama-Q4_0.gguf", 3},
    };
    char path[1024];
    for (size_t g = 0; g < sizeof G / sizeof G[0]; g++) {
        ds8b_tokenizer *t = NULL;
        int rc = ds8b_tokenizer_load(t_path(path, sizeof path, G[g].file), &t);
        if (rc == DS8B_E_UNSUPPORTED) { printf("  # %s: GGUF loader not linked (%s)\n", G[g].file, ds8b_errmsg()); continue; }
        CHECK(rc == 0 && t, "%s: %s", G[g].file, ds8b_errmsg());
        if (!t) continue;
        int k = G[g].k;
        size_t bad = 0, bad_sp = 0;
        for (size_t i = 0; i < N_CASES; i++) {
            char *nfc = NULL;
            const char *txt = CASES[i].text;
            size_t tl = CASES[i].text_len;
            if (k == 3 && tl == strlen(txt) && (nfc = (char *)utf8proc_NFC((const utf8proc_uint8_t *)txt))) { txt = nfc; tl = strlen(nfc); }
            int32_t *ids = NULL;
            size_t n = 0;
            ds8b__tok_encode(t, txt, tl, 0, &ids, &n, NULL);
            if (!same_ids(ids, n, CASES[i].r[k].ids, CASES[i].r[k].n_ids) && bad++ < 2) {
                printf("  # %s case %zu differs\n", G[g].file, i);
                print_text("text", CASES[i].text, CASES[i].text_len);
                print_ids("want", CASES[i].r[k].ids, CASES[i].r[k].n_ids);
                print_ids("got ", ids, n);
            }
            ds8b__free(ids);
            ds8b__tok_encode(t, txt, tl, DS8B_TOKENIZE_ADD_SPECIAL, &ids, &n, NULL);
            if (!same_ids(ids, n, CASES[i].r[k].ids_sp, CASES[i].r[k].n_sp)) bad_sp++;
            ds8b__free(ids);
            free(nfc);
        }
        printf("  # %-40s mismatches: ids %zu, ids_special %zu of %zu\n", G[g].file, bad, bad_sp, N_CASES);
        CHECK(bad == 0 && bad_sp == 0, "%s: %zu/%zu cases differ", G[g].file, bad, bad_sp);
        CHECK(ds8b_tokenizer_eos(t) >= 0 && ds8b__tok_is_eog(t, ds8b_tokenizer_eos(t)), "eos");
        ds8b_tokenizer_free(t);
    }
}

/* One tokenizer shared by several threads at once gives the same results. */
typedef struct thr_arg { int k; size_t start, bad; } thr_arg;
static void *thr_main(void *p) {
    thr_arg *a = p;
    for (size_t j = 0; j < N_CASES; j++) {
        size_t i = (j + a->start) % N_CASES;
        int32_t *ids = NULL;
        size_t n = 0;
        char *out = NULL;
        size_t ol = 0;
        if (ds8b__tok_encode(TOK[a->k], CASES[i].text, CASES[i].text_len, 0, &ids, &n, NULL) != 0 ||
            !same_ids(ids, n, CASES[i].r[a->k].ids, CASES[i].r[a->k].n_ids))
            a->bad++;
        if (ds8b__tok_decode(TOK[a->k], CASES[i].r[a->k].ids, CASES[i].r[a->k].n_ids, 0, &out, &ol, NULL) != 0 ||
            ol != CASES[i].r[a->k].dec_len || memcmp(out, CASES[i].r[a->k].decoded, ol) != 0)
            a->bad++;
        ds8b__free(ids);
        ds8b__free(out);
    }
    return NULL;
}
static void test_threads(void) {
    enum { NT = 4 };
    for (int k = 1; k <= 2; k++) {
        if (!TOK[k]) continue;
        pthread_t th[NT];
        thr_arg a[NT];
        for (int i = 0; i < NT; i++) {
            a[i] = (thr_arg){k, (size_t)i * 377, 0};
            pthread_create(&th[i], NULL, thr_main, &a[i]);
        }
        for (int i = 0; i < NT; i++) {
            pthread_join(th[i], NULL);
            CHECK(a[i].bad == 0, "%s thread %d: %zu mismatches", KEYS[k], i, a[i].bad);
        }
    }
}

static void test_public_api(void) {
    char path[1024];
    ds8b_tokenizer *t = NULL;
    CHECK(ds8b_tokenizer_load(t_path(path, sizeof path, "tokenizers/llama3.1/tokenizer.json"), &t) == 0 && t, "load file: %s", ds8b_errmsg());
    if (!t) return;
    CHECK(ds8b_tokenizer_vocab_size(t) == 128256, "vocab %d", ds8b_tokenizer_vocab_size(t));
    CHECK(ds8b_tokenizer_bos(t) == 128000, "bos");
    CHECK(ds8b_tokenizer_eos(t) == ds8b__tok_find(t, "<|eot_id|>"), "eos");
    CHECK(ds8b_tokenizer_is_special(t, 128000) == 1 && ds8b_tokenizer_is_special(t, 100) == 0, "special");
    tcase *c = N_CASES > 10 ? &CASES[10] : NULL;
    if (c) {
        int32_t ids[4096];
        size_t n = 0;
        CHECK(ds8b_tokenize(t, c->text, c->text_len, DS8B_TOKENIZE_ADD_SPECIAL, ids, 4096, &n) == 0 &&
              same_ids(ids, n, c->r[0].ids_sp, c->r[0].n_sp), "tokenize");
        size_t n2 = 0;
        if (n > 1) CHECK(ds8b_tokenize(t, c->text, c->text_len, DS8B_TOKENIZE_ADD_SPECIAL, ids, 1, &n2) == DS8B_E_BUFFER && n2 == n, "buffer");
        char buf[8192];
        size_t l = 0;
        CHECK(ds8b_detokenize(t, c->r[0].ids, c->r[0].n_ids, 0, buf, sizeof buf, &l) == 0 && l == c->r[0].dec_len &&
              memcmp(buf, c->r[0].decoded, l) == 0 && buf[l] == 0, "detokenize");
        if (l > 1) CHECK(ds8b_detokenize(t, c->r[0].ids, c->r[0].n_ids, 0, buf, 1, &l) == DS8B_E_BUFFER && l == c->r[0].dec_len, "small");
    }
    size_t n = 0;
    CHECK(ds8b_tokenize(NULL, "a", 1, 0, NULL, 0, &n) == DS8B_E_MISUSE, "null handle");
    CHECK(ds8b_detokenize(NULL, NULL, 0, 0, NULL, 0, &n) == DS8B_E_MISUSE, "null handle");
    CHECK(ds8b_tokenizer_bos(NULL) == -1 && ds8b_tokenizer_is_special(NULL, 0) == 0, "null");
    CHECK(ds8b_tokenize(t, NULL, 5, 0, NULL, 0, &n) == DS8B_E_INVALID, "null text");
    CHECK(ds8b_tokenize(t, "", 0, 0, NULL, 0, &n) == 0 && n == 0, "empty");
    ds8b_tokenizer_free(t);
    ds8b_tokenizer_free(NULL);
    t = NULL;
    CHECK(ds8b_tokenizer_load("/nonexistent/dir/tokenizer.json", &t) == DS8B_E_IO && !t && ds8b_errmsg()[0], "missing");
    CHECK(ds8b_tokenizer_load("/nonexistent/x.gguf", &t) != 0 && !t, "gguf path");
    /* directory load gets the config */
    CHECK(ds8b_tokenizer_load(t_path(path, sizeof path, "tokenizers/qwen3"), &t) == 0 && ds8b__tok_chat_template(t), "dir");
    CHECK(ds8b_tokenizer_bos(t) == -1, "qwen3 has no bos");
    ds8b_tokenizer_free(t);
}

/* Long repeats must not be quadratic. */
static void test_speed(void) {
    for (int k = 0; k < N_TOK; k++) {
        if (!TOK[k]) continue;
        size_t n = 200000;
        char *s = malloc(n);
        for (size_t i = 0; i < n; i++) s[i] = "ab"[i % 2];
        double t0 = cpu_s();
        int32_t *ids = NULL;
        size_t ni = 0;
        CHECK(ds8b__tok_encode(TOK[k], s, n, 0, &ids, &ni, NULL) == 0 && ni > 0, "long");
        ds8b__free(ids);
        memset(s, ' ', n);
        CHECK(ds8b__tok_encode(TOK[k], s, n, 0, &ids, &ni, NULL) == 0 && ni > 0, "spaces");
        ds8b__free(ids);
        double dt = cpu_s() - t0;
        printf("  # %-12s 2 x 200 KB repeats: %.0f ms CPU\n", KEYS[k], dt * 1e3);
        CHECK(dt < 5 * T_SLOW, "%s: long repeats take %.1f s", KEYS[k], dt);
        free(s);
    }
}

int main(void) {
    RUN(test_load);
    RUN(test_reference_cases);
    RUN(test_streaming);
    RUN(test_invalid_utf8);
    RUN(test_bad_json);
    RUN(test_no_parse_special);
    RUN(test_config);
    RUN(test_from_vocab);
    RUN(test_gguf_files);
    RUN(test_public_api);
    RUN(test_threads);
    RUN(test_speed);
    for (int k = 0; k < N_TOK; k++) ds8b__tok_free(TOK[k]);
    T_EXIT();
}
