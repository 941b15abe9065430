/* test_grammar.c -- GBNF grammars: parsing and matching with known answers,
 * errors with line and column, hostile grammars, llama.cpp's grammars,
 * constrained generation with the demo model (acceptance, split UTF-8,
 * EOS masking, fast path = full mask, save/restore, fork, batch, threads,
 * reasoning channel, stop strings). */
#include "t.h"
#include "ds8b.h"
#include "grammar/grammar.h"
#include "session/session.h"
#include "tokenizer/tokenizer.h"

#include <pthread.h>
#include <time.h>

static ds8b_model *g_model;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static ds8b_grammar *compile(const char *src) {
    ds8b_grammar *g = NULL;
    int rc = ds8b_grammar_compile(src, strlen(src), NULL, &g);
    CHECK(rc == 0 && g, "compile failed: %s\n%s", ds8b_errmsg(), src);
    return g;
}

static int accepts(const ds8b_grammar *g, const char *text) {
    int a = -1;
    int rc = ds8b_grammar_accepts(g, text, strlen(text), &a);
    CHECK(rc == 0, "accepts rc %d: %s", rc, ds8b_errmsg());
    return a;
}

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long l = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)l + 1);
    *n = fread(b, 1, (size_t)l, f);
    b[*n] = 0;
    fclose(f);
    return b;
}

static ds8b_grammar *load_shared(const char *name) {
    char rel[256], p[1024];
    snprintf(rel, sizeof rel, "testdata/grammars/%s.gbnf", name);
    size_t n = 0;
    char *src = read_all(t_path(p, sizeof p, rel), &n);
    CHECK(src, "cannot read %s", p);
    if (!src) return NULL;
    ds8b_grammar *g = NULL;
    int rc = ds8b_grammar_compile(src, n, NULL, &g);
    CHECK(rc == 0, "%s: %s", name, ds8b_errmsg());
    free(src);
    return g;
}

/* ------------------------------------------------------------------ */
typedef struct kcase { const char *text; int accept; } kcase;
typedef struct kgram { const char *gbnf; kcase cases[8]; } kgram;

static const kgram k_known[] = {
    /* llama.cpp grammars/README.md examples */
    {"root ::= (\"1. \" move \" \" move \"\\n\")+\nmove ::= [a-h] [1-8]\n",
     {{"1. e4 e5\n", 1}, {"1. e4 e5\n1. d4 d5\n", 1}, {"1. e4 e5", 0}, {"1. e9 e5\n", 0}, {"", 0}}},
    {"root ::= single-line\nsingle-line ::= [^\\n]+ \"\\n\"\n", {{"hello\n", 1}, {"\n", 0}, {"a\nb\n", 0}, {"ä\n", 1}}},
    {"root ::= hiragana+\nhiragana ::= [ぁ-ゟ]\n", {{"こんにちは", 1}, {"カタカナ", 0}, {"", 0}}},
    {"root ::= \"\\x41\\u00e9\\U0001F600\"\n", {{"Aé😀", 1}, {"Ae😀", 0}}},
    /* repetition */
    {"root ::= [a-z]{2,4} \"!\"\n", {{"ab!", 1}, {"abcd!", 1}, {"a!", 0}, {"abcde!", 0}}},
    {"root ::= \"x\"{3}\n", {{"xxx", 1}, {"xx", 0}, {"xxxx", 0}}},
    {"root ::= \"x\"{2,}\n", {{"xx", 1}, {"xxxxxxx", 1}, {"x", 0}}},
    {"root ::= \"x\"{0,2} \"y\"\n", {{"y", 1}, {"xxy", 1}, {"xxxy", 0}}},
    {"root ::= (\"ab\" | \"c\")* \"d\"?\n", {{"", 1}, {"abcab", 1}, {"abd", 1}, {"dd", 0}, {"a", 0}}},
    /* classes: negation, escapes, ranges, any */
    {"root ::= [^\"\\\\\\x00-\\x1F]* \"\\\"\"\n", {{"abc\"", 1}, {"a\\\"", 0}, {"\"", 1}}},
    {"root ::= [\\t\\n\\r\\]\\[-]+\n", {{"\t\n\r][-", 1}, {"a", 0}}},
    {"root ::= . . \"!\"\n", {{"日本!", 1}, {"ab!", 1}, {"a!", 0}}},
    {"root ::= [0-9a-fA-F]+\n", {{"09afAF", 1}, {"g", 0}}},
    /* comments, rules over several lines, alternatives, groups */
    {"# comment\nroot ::= (   # open\n  \"a\"\n  | \"b\" # alt\n) rest\nrest ::= \"c\" |\n  \"d\"\n",
     {{"ac", 1}, {"bd", 1}, {"ab", 0}, {"a", 0}}},
    /* right recursion, nested rules */
    {"root ::= list\nlist ::= item (\",\" item)*\nitem ::= [a-z]+ | \"(\" list \")\"\n",
     {{"a,b", 1}, {"(a,(b,c)),d", 1}, {"(a", 0}, {"a,", 0}}},
    {"root ::= \"a\" root \"b\" | \"\"\n", {{"", 1}, {"aabb", 1}, {"aab", 0}}},
    /* another root */
    {NULL, {{NULL, 0}}},
};

static void test_known_answers(void) {
    for (const kgram *k = k_known; k->gbnf; k++) {
        ds8b_grammar *g = compile(k->gbnf);
        if (!g) continue;
        for (const kcase *c = k->cases; c->text; c++)
            CHECK(accepts(g, c->text) == c->accept, "%s: \"%s\" should be %s", k->gbnf, c->text,
                  c->accept ? "accepted" : "rejected");
        ds8b_grammar_free(g);
    }
    /* a root other than "root" */
    const char *src = "start ::= \"s\" other\nother ::= \"o\"\n";
    ds8b_grammar *g = NULL;
    CHECK(ds8b_grammar_compile(src, strlen(src), "start", &g) == 0, "%s", ds8b_errmsg());
    CHECK(g && accepts(g, "so") == 1 && accepts(g, "s") == 0, "start");
    ds8b_grammar_free(g);
    CHECK(ds8b_grammar_compile(src, strlen(src), NULL, &g) == DS8B_E_GRAMMAR && !g, "no root");
    CHECK(ds8b_grammar_compile(src, strlen(src), "other", &g) == 0, "other as root");
    CHECK(g && accepts(g, "o") == 1, "other");
    ds8b_grammar_free(g);
    /* invalid UTF-8 in the text is never accepted */
    g = compile("root ::= .*\n");
    const char bad[][4] = {"\xC3", "\xC0\xAF", "\xED\xA0\x80", "\xFF", "\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK(accepts(g, bad[i]) == 0, "bad utf8 %zu", i);
    CHECK(accepts(g, "\xC3\xA9") == 1, "é");
    ds8b_grammar_free(g);
}

typedef struct ecase { const char *gbnf; int code; int line, col; const char *needle; } ecase;
static const ecase k_errors[] = {
    {"root ::= foo\n", DS8B_E_GRAMMAR, 1, 10, "undefined rule 'foo'"},
    {"root ::= \"a\"\nx ::= \"b\"\n\ny ::= zz\n", DS8B_E_GRAMMAR, 4, 7, "undefined rule 'zz'"},
    {"other ::= \"a\"\n", DS8B_E_GRAMMAR, 0, 0, "no rule 'root'"},
    {"", DS8B_E_GRAMMAR, 0, 0, "no rule 'root'"},
    {"root ::=\n", DS8B_E_GRAMMAR, 1, 1, "empty"},
    {"root ::= root \"a\"\n", DS8B_E_GRAMMAR, 1, 1, "left recursion"},
    {"root ::= a\na ::= b \"x\"\nb ::= c\nc ::= a | \"y\"\n", DS8B_E_GRAMMAR, 0, 0, "left recursion"},
    {"root ::= \"x\"? root\n", DS8B_E_GRAMMAR, 1, 1, "left recursion"},
    {"root ::= (\"a\"?)* \n", DS8B_E_GRAMMAR, 0, 0, "left recursion"},
    {"root ::= \"abc\n", DS8B_E_GRAMMAR, 1, 14, "end of line"},
    {"root ::= [a-z\n", DS8B_E_GRAMMAR, 1, 14, "end of line"},
    {"root ::= \"a\" (\n  \"b\"\n", DS8B_E_GRAMMAR, 1, 14, "unmatched '('"},
    {"root ::= \"a\" )\n", DS8B_E_GRAMMAR, 1, 14, "unmatched ')'"},
    {"root ::= \"\\q\"\n", DS8B_E_GRAMMAR, 1, 11, "unknown escape"},
    {"root ::= \"\\x4\"\n", DS8B_E_GRAMMAR, 1, 14, "hex digits"},
    {"root ::= [z-a]\n", DS8B_E_GRAMMAR, 1, 13, "below its start"},
    {"root ::= * \"a\"\n", DS8B_E_GRAMMAR, 1, 10, "nothing before it"},
    {"root ::= \"a\"{3,1}\n", DS8B_E_GRAMMAR, 1, 0, "below the minimum"},
    {"root ::= \"a\"{x}\n", DS8B_E_GRAMMAR, 1, 14, "expected a number"},
    {"root ::= \"a\"\nroot ::= \"b\"\n", DS8B_E_GRAMMAR, 2, 1, "defined twice"},
    {"root \"a\"\n", DS8B_E_GRAMMAR, 1, 6, "'::='"},
    {"root ::= \"a\" b ::= \"c\"\n", DS8B_E_GRAMMAR, 1, 14, "newline"},
    {"root ::= <think>\n", DS8B_E_GRAMMAR, 1, 10, "token references"},
    {"root ::= \"a\"{1001}\n", DS8B_E_LIMIT, 1, 0, "repetition count"},
    {NULL, 0, 0, 0, NULL},
};

static void test_errors(void) {
    for (const ecase *c = k_errors; c->gbnf; c++) {
        ds8b_grammar *g = (ds8b_grammar *)1;
        int rc = ds8b_grammar_compile(c->gbnf, strlen(c->gbnf), NULL, &g);
        const char *msg = ds8b_errmsg();
        CHECK(rc == c->code && g == NULL, "%s: rc %d (want %d): %s", c->gbnf, rc, c->code, msg);
        CHECK(strstr(msg, c->needle), "%s: message '%s' lacks '%s'", c->gbnf, msg, c->needle);
        if (c->line) {
            char want[64];
            if (c->col) snprintf(want, sizeof want, "line %d, column %d: ", c->line, c->col);
            else snprintf(want, sizeof want, "line %d, column ", c->line);
            CHECK(strncmp(msg, want, strlen(want)) == 0, "%s: message '%s' does not start with '%s'", c->gbnf, msg,
                  want);
        } else
            CHECK(strncmp(msg, "line ", 5) == 0, "%s: '%s' has no position", c->gbnf, msg);
        if (rc == 0) ds8b_grammar_free(g);
    }
    CHECK(strcmp(ds8b_errstr(DS8B_E_GRAMMAR), "grammar error") == 0, "errstr");
    ds8b_grammar *g;
    CHECK(ds8b_grammar_compile(NULL, 4, NULL, &g) == DS8B_E_INVALID, "NULL text");
    CHECK(ds8b_grammar_compile("root ::= \"a\"", 12, NULL, NULL) == DS8B_E_INVALID, "NULL out");
    int a;
    CHECK(ds8b_grammar_accepts(NULL, "a", 1, &a) == DS8B_E_MISUSE, "NULL grammar");
    ds8b_grammar_free(NULL);
}

/* Grammars that must fail fast with a limit, never hang or crash. */
static void test_hostile(void) {
    double t0 = now_ms();
    size_t n = 200000;
    char *s = malloc(n + 64);
    ds8b_grammar *g = NULL;
    /* deep nesting */
    strcpy(s, "root ::= ");
    size_t k = strlen(s);
    for (int i = 0; i < 5000; i++) s[k++] = '(';
    s[k++] = '"'; s[k++] = 'a'; s[k++] = '"';
    for (int i = 0; i < 5000; i++) s[k++] = ')';
    s[k++] = '\n';
    CHECK(ds8b_grammar_compile(s, k, NULL, &g) == DS8B_E_LIMIT && !g, "nesting: %s", ds8b_errmsg());
    /* nested repetitions stay linear (each level is wrapped in a rule) */
    const char *rep = "root ::= ((((\"a\"{1000}){1000}){1000}){1000})\n";
    CHECK(ds8b_grammar_compile(rep, strlen(rep), NULL, &g) == 0, "nested repeat: %s", ds8b_errmsg());
    if (g) {
        CHECK(accepts(g, "aaaa") == 0, "10^12 a's needed");
        ds8b_grammar_free(g);
        g = NULL;
    }
    /* but the element count is bounded */
    k = (size_t)sprintf(s, "root ::= ");
    for (int i = 0; i < 2100; i++) k += (size_t)sprintf(s + k, "\"ab\"{1000} ");
    s[k++] = '\n';
    CHECK(ds8b_grammar_compile(s, k, NULL, &g) == DS8B_E_LIMIT && !g, "elements: %s", ds8b_errmsg());
    /* too big */
    CHECK(ds8b_grammar_compile(s, (size_t)DS8B__GRAMMAR_MAX_BYTES + 1, NULL, &g) == DS8B_E_LIMIT, "size");
    /* many rules: each line a rule */
    k = 0;
    k += (size_t)sprintf(s + k, "root ::= r0\n");
    for (int i = 0; i < 5000; i++) k += (size_t)sprintf(s + k, "r%d ::= \"x\" r%d | \"y\"\n", i, i + 1);
    k += (size_t)sprintf(s + k, "r5000 ::= \"z\"\n");
    CHECK(ds8b_grammar_compile(s, k, NULL, &g) == 0, "long chain: %s", ds8b_errmsg());
    if (g) {
        CHECK(accepts(g, "xxy") == 1, "chain");
        ds8b_grammar_free(g);
    }
    /* matching: unbounded nesting depth hits the depth bound */
    g = compile("root ::= \"a\" root \"b\" | \"\"\n");
    memset(s, 'a', 3000);
    int a = 5;
    int rc = ds8b_grammar_accepts(g, s, 3000, &a);
    CHECK(rc == DS8B_E_LIMIT, "deep match rc %d", rc);
    ds8b_grammar_free(g);
    /* an ambiguous grammar: many live parses at once */
    g = compile("root ::= x*\nx ::= [a-z] | [a-z] [a-z] | [a-z] [a-z] [a-z] | y\ny ::= [a-z]+ [0-9]?\n");
    memset(s, 'q', 2000);
    rc = ds8b_grammar_accepts(g, s, 2000, &a);
    CHECK(rc == 0 || rc == DS8B_E_LIMIT, "ambiguous rc %d", rc);
    ds8b_grammar_free(g);
    /* garbage bytes */
    for (size_t i = 0; i < 4096; i++) s[i] = (char)(i * 131 + 7);
    rc = ds8b_grammar_compile(s, 4096, NULL, &g);
    CHECK(rc == DS8B_E_GRAMMAR && !g, "garbage rc %d", rc);
    free(s);
    double dt = now_ms() - t0;
    CHECK(dt < 5000, "hostile grammars took %.0f ms", dt);
    printf("# hostile grammars: %.0f ms\n", dt);
}

static const char *k_shared[] = {"json", "json_arr", "list", "arithmetic", "c", "chess", "english", "japanese"};

static void test_shared_compile(void) {
    for (size_t i = 0; i < sizeof k_shared / sizeof *k_shared; i++) {
        ds8b_grammar *g = load_shared(k_shared[i]);
        ds8b_grammar_free(g);
    }
    ds8b_grammar *g = load_shared("json");
    if (g) {
        CHECK(accepts(g, "{\"a\": [1, 2.5e3, \"x\\u00e9\"], \"b\": null}") == 1, "json 1");
        CHECK(accepts(g, "{}") == 1 && accepts(g, "{\"a\" 1}") == 0 && accepts(g, "[1]") == 0, "json 2");
        ds8b_grammar_free(g);
    }
    g = load_shared("arithmetic");
    if (g) {
        CHECK(accepts(g, "1+2=3\n") == 1 && accepts(g, "(x*2)= 3\n") == 1 && accepts(g, "1+=2\n") == 0, "arith");
        ds8b_grammar_free(g);
    }
    g = load_shared("chess");
    if (g) {
        CHECK(accepts(g, "1. e4 e5\n2. Nf3 Nc6\n") == 1 && accepts(g, "1. e4\n") == 0, "chess");
        ds8b_grammar_free(g);
    }
}

/* Byte-level UTF-8 in the matcher. */
static void test_utf8_bytes(void) {
    ds8b_grammar *g = compile("root ::= [ぁ-ゟ]+\n");
    ds8b__err e = {0};
    ds8b__gmatch m = {0};
    CHECK(ds8b__gm_init(&m, g, &e) == 0, "init");
    const uint8_t ko[] = {0xE3, 0x81, 0x93}; /* こ */
    for (int i = 0; i < 3; i++) {
        CHECK(ds8b__gm_feed(&m, ko + i, 1, &e) == 0 && !ds8b__gm_dead(&m), "byte %d", i);
        CHECK(ds8b__gm_can_end(&m) == (i == 2), "end after %d", i);
    }
    ds8b__gmatch c = {0};
    CHECK(ds8b__gm_copy(&c, &m, &e) == 0, "copy");
    const uint8_t e4 = 0xE4; /* CJK lead byte: no hiragana starts with it */
    ds8b__gm_feed(&c, &e4, 1, &e);
    CHECK(ds8b__gm_dead(&c), "E4 prefix must be refused at once");
    ds8b__gm_copy(&c, &m, &e);
    const uint8_t bad[] = {0xE3, 0x41};
    ds8b__gm_feed(&c, bad, 2, &e);
    CHECK(ds8b__gm_dead(&c), "broken sequence");
    /* save / load round trip mid-character */
    ds8b__gm_copy(&c, &m, &e);
    ds8b__gm_feed(&c, ko, 2, &e);
    uint8_t buf[4096];
    size_t n = ds8b__gm_saved_size(&c);
    CHECK(n <= sizeof buf, "size");
    ds8b__gm_save(&c, buf);
    ds8b__gmatch d = {0};
    CHECK(ds8b__gm_load(&d, g, buf, n, &e) == 0, "load: %s", e.msg);
    ds8b__gm_feed(&d, ko + 2, 1, &e);
    CHECK(!ds8b__gm_dead(&d) && ds8b__gm_can_end(&d), "completed after load");
    buf[16] ^= 0x55; /* corrupt a stack entry */
    ds8b__gmatch d2 = {0};
    int rc = ds8b__gm_load(&d2, g, buf, n, &e);
    CHECK(rc == DS8B_E_FORMAT || rc == 0, "corrupt load rc %d", rc);
    CHECK(ds8b__gm_load(&d2, g, buf, 7, &e) == DS8B_E_FORMAT, "short");
    ds8b__gm_free(&d2);
    ds8b__gm_free(&d);
    ds8b__gm_free(&c);
    ds8b__gm_free(&m);
    ds8b_grammar_free(g);
}

/* ------------------------------------------------------------------ */
/* Generation                                                          */
/* ------------------------------------------------------------------ */
typedef struct obuf { char t[16384]; size_t n; int chan_bytes[2]; } obuf;
static int collect(void *u, const char *p, size_t n, int ch) {
    obuf *b = u;
    for (size_t i = 0; i < n && b->n < sizeof b->t - 1; i++) b->t[b->n++] = p[i];
    b->t[b->n] = 0;
    if (ch == 0 || ch == 1) b->chan_bytes[ch] += (int)n;
    return 0;
}

static ds8b_session *mk(double temp, int64_t seed, int64_t max_tokens, int threads) {
    ds8b_params *p;
    ds8b_params_create(&p);
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 512);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, threads);
    ds8b_params_set_int(p, DS8B_PARAM_SEED, seed);
    ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, temp);
    ds8b_params_set_int(p, DS8B_PARAM_MAX_TOKENS, max_tokens);
    ds8b_session *s = NULL;
    CHECK(ds8b_session_create(g_model, p, &s) == 0, "session: %s", ds8b_errmsg());
    ds8b_params_free(p);
    return s;
}

/* The text is a viable prefix of g (not rejected). */
static bool viable(const ds8b_grammar *g, const char *t, size_t n) {
    ds8b__gmatch m = {0};
    ds8b__err e = {0};
    bool ok = ds8b__gm_init(&m, g, &e) == 0 && ds8b__gm_feed(&m, (const uint8_t *)t, n, &e) == 0 && !ds8b__gm_dead(&m);
    ds8b__gm_free(&m);
    return ok;
}

/* Tokens of text whose bytes alone are not complete UTF-8 (a character
 * split across tokens). */
static int split_tokens(const char *t, size_t n) {
    const ds8b_tokenizer *tok = ds8b_model_tokenizer(g_model);
    int32_t ids[4096];
    size_t ni = 0;
    if (ds8b_tokenize(tok, t, n, 0, ids, 4096, &ni)) return 0;
    int split = 0;
    for (size_t i = 0; i < ni; i++) {
        char b[256];
        size_t l = 0;
        if (!ds8b__tok_token_bytes(tok, ids[i], b, sizeof b, &l)) continue;
        size_t j = 0;
        while (j < l) {
            unsigned char c = (unsigned char)b[j];
            size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
            if (j + k > l || (c >= 0x80 && c < 0xC0)) { split++; break; }
            j += k;
        }
    }
    return split;
}

static void test_generate_shared(void) {
    double t0 = now_ms();
    int64_t fast = 0, full = 0;
    for (size_t gi = 0; gi < sizeof k_shared / sizeof *k_shared; gi++) {
        ds8b_grammar *g = load_shared(k_shared[gi]);
        if (!g) continue;
        int completed = 0, grammar_end = 0, eos = 0, viable_n = 0, split = 0;
        ds8b_session *s = mk(1.0, 1, 20, 2);
        CHECK(ds8b_session_set_grammar(s, g) == 0, "set: %s", ds8b_session_errmsg(s));
        for (int seed = 1; seed <= 20; seed++) {
            ds8b_session_reset(s);
            ds8b_session_set_int(s, DS8B_PARAM_SEED, seed);
            ds8b_session_reset(s);
            obuf o = {0};
            int rc = ds8b_generate(s, "The", 3, DS8B_GEN_ADD_SPECIAL, collect, &o, NULL);
            CHECK(rc == 0, "%s seed %d: %s", k_shared[gi], seed, ds8b_session_errmsg(s));
            int fr = ds8b_session_finish_reason(s);
            CHECK(fr == DS8B_FINISH_GRAMMAR || fr == DS8B_FINISH_EOS || fr == DS8B_FINISH_MAX_TOKENS,
                  "%s seed %d: finish %d", k_shared[gi], seed, fr);
            /* a generation cut off by the token limit inside a character ends
             * the stream with U+FFFD for the incomplete bytes (the
             * detokenizer's final flush, not sampled text): check the rest */
            size_t vn = o.n;
            if (fr == DS8B_FINISH_MAX_TOKENS && vn >= 3 && !memcmp(o.t + vn - 3, "\xEF\xBF\xBD", 3)) vn -= 3;
            bool v = viable(g, o.t, vn);
            CHECK(v, "%s seed %d: the text is not a prefix of the grammar: [%s] (last bytes %02x %02x %02x %02x)",
                  k_shared[gi], seed, o.t, o.n > 3 ? (unsigned char)o.t[o.n - 4] : 0,
                  o.n > 2 ? (unsigned char)o.t[o.n - 3] : 0, o.n > 1 ? (unsigned char)o.t[o.n - 2] : 0,
                  o.n > 0 ? (unsigned char)o.t[o.n - 1] : 0);
            viable_n += v;
            if (fr == DS8B_FINISH_GRAMMAR || fr == DS8B_FINISH_EOS) {
                completed++;
                grammar_end += fr == DS8B_FINISH_GRAMMAR;
                eos += fr == DS8B_FINISH_EOS;
                CHECK(accepts(g, o.t) == 1, "%s seed %d: completed text not accepted: [%s]", k_shared[gi], seed, o.t);
            }
            split += split_tokens(o.t, o.n);
        }
        fast += s->gram->n_fast;
        full += s->gram->n_full;
        printf("# %-10s 20 generations: %2d completed (%d grammar end, %d EOS), %d viable, %d split-character tokens\n",
               k_shared[gi], completed, grammar_end, eos, viable_n, split);
        if (!strcmp(k_shared[gi], "japanese"))
            CHECK(split > 0, "japanese: expected characters split across tokens (byte-level UTF-8)");
        ds8b_session_set_grammar(s, NULL);
        ds8b_session_free(s);
        ds8b_grammar_free(g);
    }
    printf("# sampled tokens: %lld by the fast path, %lld by the full mask; %.0f ms\n", (long long)fast,
           (long long)full, now_ms() - t0);
}

/* Generates under g with sampler settings; force_full picks the path. */
static void gen_with(const ds8b_grammar *g, double temp, int64_t top_k, double top_p, double min_p, double rep,
                     int force_full, obuf *o, uint64_t rng[2], int threads) {
    ds8b_session *s = mk(temp, 7, 24, threads);
    ds8b_session_set_int(s, DS8B_PARAM_TOP_K, top_k);
    ds8b_session_set_float(s, DS8B_PARAM_TOP_P, top_p);
    ds8b_session_set_float(s, DS8B_PARAM_MIN_P, min_p);
    ds8b_session_set_float(s, DS8B_PARAM_REPEAT_PENALTY, rep);
    ds8b_session_set_grammar(s, g);
    s->gram->force_full = force_full;
    memset(o, 0, sizeof *o);
    int rc = ds8b_generate(s, "Hello", 5, DS8B_GEN_ADD_SPECIAL, collect, o, NULL);
    CHECK(rc == 0, "gen: %s", ds8b_session_errmsg(s));
    if (rng) { rng[0] = s->sampler.rng[0]; rng[1] = s->sampler.rng[1]; }
    ds8b_session_set_grammar(s, NULL);
    ds8b_session_free(s);
}

/* Fast path and full mask: the same tokens and the same RNG state, for
 * every sampler setting. */
static void test_fast_equals_full(void) {
    ds8b_grammar *g = load_shared("json");
    ds8b_grammar *e = load_shared("english");
    struct { double t; int64_t k; double p, mp, rep; } cfg[] = {
        {1.0, 40, 0.95, 0.05, 1.0}, {0.0, 40, 0.95, 0.05, 1.0}, {1.0, 0, 1.0, 0.0, 1.0}, {0.7, 5, 0.5, 0.0, 1.3},
        {1.5, 100, 1.0, 0.2, 1.1}, {1.0, 1, 1.0, 0.0, 1.0},
    };
    for (int gi = 0; gi < 2; gi++) {
        for (size_t i = 0; i < sizeof cfg / sizeof *cfg; i++) {
            obuf a, b;
            uint64_t ra[2], rb[2];
            gen_with(gi ? e : g, cfg[i].t, cfg[i].k, cfg[i].p, cfg[i].mp, cfg[i].rep, 0, &a, ra, 2);
            gen_with(gi ? e : g, cfg[i].t, cfg[i].k, cfg[i].p, cfg[i].mp, cfg[i].rep, 1, &b, rb, 2);
            CHECK(a.n == b.n && memcmp(a.t, b.t, a.n) == 0, "config %zu: fast [%s] != full [%s]", i, a.t, b.t);
            CHECK(ra[0] == rb[0] && ra[1] == rb[1], "config %zu: RNG state differs", i);
            CHECK(viable(gi ? e : g, a.t, a.n), "config %zu: [%s]", i, a.t);
        }
    }
    /* thread count does not change the result */
    obuf a, b;
    gen_with(g, 1.0, 40, 0.95, 0.05, 1.0, 0, &a, NULL, 1);
    gen_with(g, 1.0, 40, 0.95, 0.05, 1.0, 0, &b, NULL, 2);
    CHECK(a.n == b.n && memcmp(a.t, b.t, a.n) == 0, "threads: [%s] != [%s]", a.t, b.t);
    ds8b_grammar_free(g);
    ds8b_grammar_free(e);
}

/* EOS only where the grammar can end; a grammar that completes ends
 * generation with DS8B_FINISH_GRAMMAR. */
static void test_eos_and_finish(void) {
    const ds8b_tokenizer *tok = ds8b_model_tokenizer(g_model);
    int32_t eos = ds8b_tokenizer_eos(tok);
    ds8b_grammar *must = compile("root ::= [a-z]{3,} | [0-9]\n");
    ds8b_grammar *may = compile("root ::= [a-z]*\n");
    ds8b_session *s = mk(1.0, 3, 8, 2);
    ds8b__err e = {0};
    for (int i = 0; i < 2; i++) {
        ds8b_session_set_grammar(s, i ? may : must);
        ds8b__gen *gen = NULL;
        CHECK(ds8b__gen_create(s, NULL, NULL, 0, &gen, &e) == 0, "create");
        CHECK(ds8b__gen_start(gen, "Hi", 2, 0, &e) == 0, "start: %s", e.msg);
        bool ok = true;
        CHECK(ds8b__gen_grammar_allows(gen, eos, &ok, &e) == 0 && ok == (i == 1), "eos allowed %d at start", ok);
        int32_t a = ds8b__tok_find(tok, "a"), d = ds8b__tok_find(tok, "5");
        CHECK(a >= 0 && d >= 0, "tokens");
        CHECK(ds8b__gen_grammar_allows(gen, a, &ok, &e) == 0 && ok, "a allowed");
        CHECK(ds8b__gen_grammar_allows(gen, d, &ok, &e) == 0 && ok == (i == 0), "5 allowed %d", ok);
        if (i == 0) {
            CHECK(ds8b__gen_grammar_accept(gen, d, &e) == 0, "accept 5");
            CHECK(ds8b__gen_grammar_allows(gen, eos, &ok, &e) == 0 && ok, "eos after 5");
            CHECK(ds8b__gen_grammar_allows(gen, a, &ok, &e) == 0 && !ok, "nothing after 5");
        }
        ds8b__gen_free(gen);
    }
    /* a grammar with one sentence: generation ends by the grammar */
    ds8b_grammar *one = compile("root ::= \"Yes, it is.\"\n");
    ds8b_session_set_int(s, DS8B_PARAM_MAX_TOKENS, 32);
    ds8b_session_set_grammar(s, one);
    ds8b_session_reset(s);
    obuf o = {0};
    int64_t ng = 0;
    CHECK(ds8b_generate(s, "Is it?", 6, DS8B_GEN_ADD_SPECIAL, collect, &o, &ng) == 0, "%s", ds8b_session_errmsg(s));
    CHECK(strcmp(o.t, "Yes, it is.") == 0, "text [%s]", o.t);
    CHECK(ds8b_session_finish_reason(s) == DS8B_FINISH_GRAMMAR, "finish %d", ds8b_session_finish_reason(s));
    /* without STOP_AT_EOS no end-of-generation token is ever allowed */
    ds8b_session_set_int(s, DS8B_PARAM_STOP_AT_EOS, 0);
    ds8b_session_set_grammar(s, may);
    ds8b__gen *gen = NULL;
    ds8b__gen_create(s, NULL, NULL, 0, &gen, &e);
    ds8b__gen_start(gen, "Hi", 2, 0, &e);
    bool ok = true;
    CHECK(ds8b__gen_grammar_allows(gen, eos, &ok, &e) == 0 && !ok, "eos without stop_at_eos");
    ds8b__gen_free(gen);
    /* freeing a grammar in use is refused */
    ds8b_grammar_free(may);
    CHECK(strstr(ds8b_errmsg(), "still use"), "free refused: %s", ds8b_errmsg());
    CHECK(accepts(may, "abc") == 1, "still alive");
    CHECK(ds8b_session_set_grammar(s, (const ds8b_grammar *)s) == DS8B_E_MISUSE, "bad handle");
    ds8b_session_set_grammar(s, NULL);
    ds8b_session_free(s);
    ds8b_grammar_free(may);
    ds8b_grammar_free(must);
    ds8b_grammar_free(one);
}

/* Save mid-generation, restore, continue: identical; fork too. */
static void test_save_restore_fork(void) {
    ds8b_grammar *g = compile("root ::= \"{\\\"name\\\": \\\"\" [a-zA-Z ]{10,40} \"\\\"}\"\n");
    ds8b_grammar *other = compile("root ::= [a-z ]+\n");
    ds8b_session *s = mk(1.0, 11, 6, 2);
    ds8b_session_set_grammar(s, g);
    obuf a = {0};
    CHECK(ds8b_generate(s, "Name", 4, DS8B_GEN_ADD_SPECIAL, collect, &a, NULL) == 0, "%s", ds8b_session_errmsg(s));
    CHECK(ds8b_session_finish_reason(s) == DS8B_FINISH_MAX_TOKENS, "first part should stop at max tokens (%d)",
          ds8b_session_finish_reason(s));
    size_t len = 0;
    ds8b_session_save(s, NULL, 0, &len);
    void *st = malloc(len);
    CHECK(ds8b_session_save(s, st, len, &len) == 0, "save: %s", ds8b_session_errmsg(s));
    ds8b_session *f = NULL;
    CHECK(ds8b_session_fork(s, &f) == 0, "fork");
    /* continue the original */
    ds8b_session_set_int(s, DS8B_PARAM_MAX_TOKENS, 20);
    obuf b = a;
    CHECK(ds8b_generate(s, "", 0, 0, collect, &b, NULL) == 0, "%s", ds8b_session_errmsg(s));
    CHECK(viable(g, b.t, b.n), "continued text is viable: [%s]", b.t);
    /* restore into a fresh session with the same grammar */
    ds8b_session *r = mk(1.0, 99, 20, 1);
    CHECK(ds8b_session_load(r, st, len) == DS8B_E_MISMATCH, "no grammar: %s", ds8b_session_errmsg(r));
    ds8b_session_set_grammar(r, other);
    CHECK(ds8b_session_load(r, st, len) == DS8B_E_MISMATCH, "other grammar");
    ds8b_session_set_grammar(r, g);
    CHECK(ds8b_session_load(r, st, len) == 0, "load: %s", ds8b_session_errmsg(r));
    ds8b_session_set_int(r, DS8B_PARAM_MAX_TOKENS, 20);
    obuf c = a;
    CHECK(ds8b_generate(r, "", 0, 0, collect, &c, NULL) == 0, "%s", ds8b_session_errmsg(r));
    CHECK(b.n == c.n && memcmp(b.t, c.t, b.n) == 0, "restored [%s] != original [%s]", c.t, b.t);
    /* the fork */
    ds8b_session_set_int(f, DS8B_PARAM_MAX_TOKENS, 20);
    obuf d = a;
    CHECK(ds8b_generate(f, "", 0, 0, collect, &d, NULL) == 0, "%s", ds8b_session_errmsg(f));
    CHECK(b.n == d.n && memcmp(b.t, d.t, b.n) == 0, "fork [%s] != original [%s]", d.t, b.t);
    /* a state saved without a grammar generation loads anywhere */
    ds8b_session *plain = mk(1.0, 5, 4, 1);
    obuf x = {0};
    ds8b_generate(plain, "Hi", 2, 0, collect, &x, NULL);
    ds8b_session_save(plain, NULL, 0, &len);
    void *st2 = malloc(len);
    ds8b_session_save(plain, st2, len, &len);
    CHECK(ds8b_session_load(r, st2, len) == 0, "plain state into a grammar session: %s", ds8b_session_errmsg(r));
    free(st2);
    free(st);
    ds8b_session_set_grammar(s, NULL);
    ds8b_session_free(plain);
    ds8b_session_free(s);
    ds8b_session_free(r);
    ds8b_session_free(f);
    ds8b_grammar_free(g);
    ds8b_grammar_free(other);
}

/* Batch members with different grammars equal generating alone. */
static void test_batch(void) {
    const char *names[3] = {"json", "chess", "list"};
    ds8b_grammar *gs[3];
    obuf alone[3], batched[3];
    for (int i = 0; i < 3; i++) {
        gs[i] = load_shared(names[i]);
        ds8b_session *s = mk(1.0, 20 + i, 16, 2);
        ds8b_session_set_grammar(s, gs[i]);
        memset(&alone[i], 0, sizeof alone[i]);
        ds8b_generate(s, "Go", 2, DS8B_GEN_ADD_SPECIAL, collect, &alone[i], NULL);
        ds8b_session_free(s);
    }
    ds8b_batch *b = NULL;
    CHECK(ds8b_batch_create(g_model, NULL, &b) == 0, "batch");
    ds8b_session *ss[3];
    for (int i = 0; i < 3; i++) {
        ss[i] = mk(1.0, 20 + i, 16, 2);
        ds8b_session_set_grammar(ss[i], gs[i]);
        memset(&batched[i], 0, sizeof batched[i]);
        CHECK(ds8b_batch_add(b, ss[i], "Go", 2, DS8B_GEN_ADD_SPECIAL, collect, &batched[i]) == 0, "add: %s",
              ds8b_batch_errmsg(b));
    }
    int64_t active = 3;
    for (int step = 0; step < 64 && active > 0; step++) CHECK(ds8b_batch_step(b, &active) == 0, "step");
    for (int i = 0; i < 3; i++) {
        CHECK(alone[i].n == batched[i].n && memcmp(alone[i].t, batched[i].t, alone[i].n) == 0,
              "%s: batched [%s] != alone [%s]", names[i], batched[i].t, alone[i].t);
        CHECK(viable(gs[i], batched[i].t, batched[i].n), "%s viable", names[i]);
    }
    ds8b_batch_free(b);
    for (int i = 0; i < 3; i++) {
        ds8b_session_free(ss[i]);
        ds8b_grammar_free(gs[i]);
    }
}

/* The reasoning channel is free; the grammar starts after </think>. Stop
 * strings still stop. */
static void test_reasoning_and_stops(void) {
    ds8b_grammar *g = compile("root ::= \"x\"+\n");
    ds8b_session *s = mk(1.0, 4, 20, 2);
    ds8b_session_set_grammar(s, g);
    obuf o = {0};
    CHECK(ds8b_generate(s, "Why?", 4, DS8B_GEN_ADD_SPECIAL | DS8B_GEN_REASONING | DS8B_GEN_START_REASONING, collect,
                        &o, NULL) == 0, "%s", ds8b_session_errmsg(s));
    bool other = false;
    for (size_t i = 0; i < o.n; i++)
        if (o.t[i] != 'x') other = true;
    CHECK(o.chan_bytes[1] > 0 && other, "reasoning text is not constrained: [%s]", o.t);
    /* in the answer channel the grammar applies from the first token */
    ds8b_session_reset(s);
    memset(&o, 0, sizeof o);
    CHECK(ds8b_generate(s, "Why?", 4, DS8B_GEN_ADD_SPECIAL | DS8B_GEN_REASONING, collect, &o, NULL) == 0, "%s",
          ds8b_session_errmsg(s));
    CHECK(o.n > 0 && strspn(o.t, "x") == o.n, "answer [%s]", o.t);
    /* stop string */
    ds8b_grammar *l = compile("root ::= [a-z]+ (\" \" [a-z]+)*\n");
    ds8b_session_set_grammar(s, l);
    ds8b_session_reset(s);
    ds8b_session_add_stop(s, " ");
    memset(&o, 0, sizeof o);
    ds8b_session_set_int(s, DS8B_PARAM_MAX_TOKENS, 40);
    CHECK(ds8b_generate(s, "Say", 3, DS8B_GEN_ADD_SPECIAL, collect, &o, NULL) == 0, "%s", ds8b_session_errmsg(s));
    int fr = ds8b_session_finish_reason(s);
    CHECK(fr == DS8B_FINISH_STOP_STRING || fr == DS8B_FINISH_MAX_TOKENS || fr == DS8B_FINISH_EOS, "finish %d", fr);
    CHECK(!strchr(o.t, ' ') && viable(l, o.t, o.n), "stopped text [%s]", o.t);
    ds8b_session_free(s);
    ds8b_grammar_free(g);
    ds8b_grammar_free(l);
}

/* Two threads generate under grammars on a fresh model at once: the
 * vocabulary trie is built lazily: both may build one, the first to
 * publish it wins and the other frees its copy; both results equal a
 * sequential run. */
typedef struct thr { ds8b_model *m; const ds8b_grammar *g; int seed; obuf out; int rc; } thr;
static void *thr_run(void *u) {
    thr *t = u;
    ds8b_params *p;
    ds8b_params_create(&p);
    ds8b_params_set_int(p, DS8B_PARAM_N_CTX, 256);
    ds8b_params_set_int(p, DS8B_PARAM_N_THREADS, 1);
    ds8b_params_set_int(p, DS8B_PARAM_SEED, t->seed);
    ds8b_params_set_float(p, DS8B_PARAM_TEMPERATURE, 1.0);
    ds8b_params_set_int(p, DS8B_PARAM_MAX_TOKENS, 16);
    ds8b_session *s = NULL;
    t->rc = ds8b_session_create(t->m, p, &s);
    ds8b_params_free(p);
    if (!t->rc) t->rc = ds8b_session_set_grammar(s, t->g);
    if (!t->rc) t->rc = ds8b_generate(s, "Go", 2, DS8B_GEN_ADD_SPECIAL, collect, &t->out, NULL);
    ds8b_session_free(s);
    return NULL;
}

static void test_threads_share(void) {
    char p[1024];
    ds8b_grammar *g = load_shared("json");
    thr seq[2], par[2];
    for (int round = 0; round < 2; round++) {
        ds8b_model *m = NULL;
        CHECK(ds8b_model_load(t_path(p, sizeof p, "models/demo-llama"), NULL, &m) == 0, "load");
        thr *t = round ? par : seq;
        for (int i = 0; i < 2; i++) {
            memset(&t[i], 0, sizeof t[i]);
            t[i].m = m;
            t[i].g = g;
            t[i].seed = 40 + i;
        }
        if (round == 0) {
            thr_run(&t[0]);
            thr_run(&t[1]);
        } else {
            pthread_t a, b;
            pthread_create(&a, NULL, thr_run, &t[0]);
            pthread_create(&b, NULL, thr_run, &t[1]);
            pthread_join(a, NULL);
            pthread_join(b, NULL);
        }
        ds8b_model_free(m);
    }
    for (int i = 0; i < 2; i++) {
        CHECK(seq[i].rc == 0 && par[i].rc == 0, "rc %d %d", seq[i].rc, par[i].rc);
        CHECK(seq[i].out.n == par[i].out.n && memcmp(seq[i].out.t, par[i].out.t, seq[i].out.n) == 0,
              "thread %d: [%s] != [%s]", i, par[i].out.t, seq[i].out.t);
    }
    ds8b_grammar_free(g);
}

/* Full mask over the real 128k vocabulary: the per-token cost. */
static void test_mask_cost(void) {
    char p[1024];
    ds8b_tokenizer *tok = NULL;
    if (ds8b_tokenizer_load(t_path(p, sizeof p, "tokenizers/llama3.1"), &tok)) {
        SKIP("no llama3.1 tokenizer in ../shared");
        return;
    }
    ds8b_grammar *g = load_shared("json");
    ds8b__tokref tr;
    memset(&tr, 0, sizeof tr);
    tr.tok = tok;
    atomic_init(&tr.refs, 1);
    atomic_init(&tr.gtrie, NULL);
    ds8b__memscope_init(&tr.mem, NULL);
    ds8b__err e = {0};
    const ds8b__vtrie *t = NULL;
    double t0 = now_ms();
    CHECK(ds8b__vtrie_get(&tr, &t, &e) == 0, "trie: %s", e.msg);
    double build = now_ms() - t0;
    int64_t nv = ds8b_tokenizer_vocab_size(tok);
    uint8_t *allow = malloc((size_t)nv);
    /* states: after "{" (a key or "}"), inside a string, after a number */
    const char *pre[] = {"", "{", "{\"ke", "{\"a\": 12", "{\"a\": [1, "};
    for (size_t i = 0; i < sizeof pre / sizeof *pre; i++) {
        ds8b__gmatch m = {0};
        ds8b__gm_init(&m, g, &e);
        ds8b__gm_feed(&m, (const uint8_t *)pre[i], strlen(pre[i]), &e);
        double best = 1e9, cold = 0;
        int64_t n_allowed = 0;
        for (int rep = 0; rep < 3; rep++) {
            double a = now_ms();
            CHECK(ds8b__gm_mask(&m, t, allow, nv, &e) == 0, "mask");
            double d = now_ms() - a;
            if (rep == 0) cold = d;
            if (d < best) best = d;
        }
        /* cross-check a sample of tokens one by one */
        int bad = 0;
        n_allowed = 0;
        for (int32_t id = 0; id < nv; id++) {
            n_allowed += allow[id];
            if (id % 97) continue;
            char b[1024];
            size_t l = 0;
            bool ok = false;
            if (ds8b__tok_token_bytes(tok, id, b, sizeof b, &l) && !ds8b_tokenizer_is_special(tok, id) && l)
                ds8b__gm_allows(&m, (const uint8_t *)b, l, &ok, &e);
            if (ok != (allow[id] != 0)) bad++;
        }
        CHECK(bad == 0, "prefix '%s': %d tokens differ between the mask and one-by-one tests", pre[i], bad);
        printf("# llama3.1 vocab, json after '%s': %lld allowed, full mask %.2f ms cold, %.2f ms with the "
               "transition cache warm (best of 3)\n", pre[i], (long long)n_allowed, cold, best);
        ds8b__gm_free(&m);
    }
    printf("# trie build %.0f ms\n", build);
    free(allow);
    ds8b__vtrie_free((ds8b__vtrie *)t);
    ds8b_grammar_free(g);
    ds8b_tokenizer_free(tok);
}

int main(void) {
    RUN(test_known_answers);
    RUN(test_errors);
    RUN(test_hostile);
    RUN(test_shared_compile);
    RUN(test_utf8_bytes);
    char p[1024];
    if (ds8b_model_load(t_path(p, sizeof p, "models/demo-llama"), NULL, &g_model)) {
        printf("not ok load demo model: %s\n", ds8b_errmsg());
        return 1;
    }
    RUN(test_generate_shared);
    RUN(test_fast_equals_full);
    RUN(test_eos_and_finish);
    RUN(test_save_restore_fork);
    RUN(test_batch);
    RUN(test_reasoning_and_stops);
    RUN(test_threads_share);
    RUN(test_mask_cost);
    ds8b_model_free(g_model);
    T_EXIT();
}
