/*
 * tokenizer.c -- building a tokenizer from tokenizer.json (+ config) or from
 * GGUF-style arrays, accessors, and the public ds8b_tokenizer_* API.
 * Encoding and decoding live in tok_encode.c.
 */
#include "tokenizer/tok_internal.h"
#include "tokenizer/tok_json.h"

#include <pthread.h>
#include <stdio.h>
#include <utf8proc.h>

/* ================================================================== */
/* Byte-level alphabet                                                 */
/* ================================================================== */
/* Printable bytes stand for themselves; the other 68 bytes (0-32, 127-160,
 * 173) get code points 256, 257, ... in byte order. */
#define BL_SELF(b) (((b) >= 33 && (b) <= 126) || ((b) >= 161 && (b) <= 172) || (b) >= 174)
uint16_t ds8b__bl_byte2cp[256];
#define bl_b2c ds8b__bl_byte2cp
static int16_t bl_c2b[324];
static pthread_once_t bl_once = PTHREAD_ONCE_INIT;
static void bl_init(void) {
    int k = 0;
    for (int i = 0; i < 324; i++) bl_c2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        uint16_t cp = BL_SELF(b) ? (uint16_t)b : (uint16_t)(256 + k++);
        bl_b2c[b] = cp;
        bl_c2b[cp] = (int16_t)b;
    }
}
int ds8b__bl_cp2byte(uint32_t cp) { return cp < 324 ? bl_c2b[cp] : -1; }

/* ================================================================== */
/* UTF-8                                                               */
/* ================================================================== */
int ds8b__utf8_scan(const unsigned char *s, size_t n, uint32_t *cp, size_t *bad) {
    unsigned char c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int need;
    uint32_t v;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) { need = 1; v = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2; v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        else if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3; v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;
    } else { *bad = 1; return 0; }
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= n) { *bad = (size_t)i; return -1; }
        unsigned char d = s[i];
        if (d < lo || d > hi) { *bad = (size_t)i; return 0; }
        lo = 0x80; hi = 0xBF;
        v = (v << 6) | (d & 0x3F);
    }
    *cp = v;
    return need + 1;
}

/* ================================================================== */
/* Hashing                                                             */
/* ================================================================== */
uint64_t ds8b__tok_strhash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h ^ (h >> 29);
}
static uint64_t pair_hash(int32_t a, int32_t b) {
    uint64_t x = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull; x ^= x >> 33;
    return x;
}

static int hash_init(ds8b__tok_hash *h, size_t n, ds8b__err *e, const char *name) {
    size_t cap = 16;
    while (cap < n * 2 + 16) {
        if (cap > (SIZE_MAX / 8)) return ds8b__seterr(e, DS8B_E_LIMIT, "%s: table too large", name);
        cap <<= 1;
    }
    h->slots = ds8b__calloc(DS8B_MEM_TOKENIZER, cap, sizeof(uint32_t));
    if (!h->slots) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot allocate a hash table of %zu slots", name, cap);
    h->mask = (uint32_t)(cap - 1);
    return DS8B_OK;
}

static const char *mstr(const ds8b_tokenizer *t, int32_t id, size_t *n) {
    *n = t->mstr_len[id];
    return t->arena + t->mstr_off[id];
}

int32_t ds8b__tok_vocab_lookup(const ds8b_tokenizer *t, const char *s, size_t n) {
    if (!t->vocab.slots) return -1;
    uint32_t i = (uint32_t)ds8b__tok_strhash(s, n) & t->vocab.mask;
    for (;;) {
        uint32_t v = t->vocab.slots[i];
        if (!v) return -1;
        int32_t id = (int32_t)(v - 1);
        size_t l;
        const char *p = mstr(t, id, &l);
        if (l == n && memcmp(p, s, n) == 0) return id;
        i = (i + 1) & t->vocab.mask;
    }
}

/* Inserts id under its model string; an existing equal key keeps the
 * later id (a JSON object with a repeated key keeps the last value). */
static void vocab_insert(ds8b_tokenizer *t, int32_t id) {
    size_t n;
    const char *s = mstr(t, id, &n);
    uint32_t i = (uint32_t)ds8b__tok_strhash(s, n) & t->vocab.mask;
    for (;;) {
        uint32_t v = t->vocab.slots[i];
        if (!v) { t->vocab.slots[i] = (uint32_t)id + 1; return; }
        size_t l;
        const char *p = mstr(t, (int32_t)(v - 1), &l);
        if (l == n && memcmp(p, s, n) == 0) { t->vocab.slots[i] = (uint32_t)id + 1; return; }
        i = (i + 1) & t->vocab.mask;
    }
}

static int32_t added_lookup(const ds8b_tokenizer *t, const char *s, size_t n) {
    if (!t->added_hash.slots) return -1;
    uint32_t i = (uint32_t)ds8b__tok_strhash(s, n) & t->added_hash.mask;
    for (;;) {
        uint32_t v = t->added_hash.slots[i];
        if (!v) return -1;
        const ds8b__tok_added *a = &t->added[v - 1];
        if (a->len == n && memcmp(t->arena + a->off, s, n) == 0) return (int32_t)(v - 1);
        i = (i + 1) & t->added_hash.mask;
    }
}

int32_t ds8b__tok_merge_lookup(const ds8b_tokenizer *t, int32_t a, int32_t b, int32_t *new_id) {
    if (!t->merges.slots) return -1;
    uint32_t i = (uint32_t)pair_hash(a, b) & t->merges.mask;
    for (;;) {
        uint32_t v = t->merges.slots[i];
        if (!v) return -1;
        uint32_t r = v - 1;
        if (t->merge_a[r] == a && t->merge_b[r] == b) {
            *new_id = t->merge_new[r];
            return (int32_t)r;
        }
        i = (i + 1) & t->merges.mask;
    }
}

/* A repeated pair takes the later rank, as a map built in order would. */
static void merge_insert(ds8b_tokenizer *t, uint32_t rank) {
    int32_t a = t->merge_a[rank], b = t->merge_b[rank];
    uint32_t i = (uint32_t)pair_hash(a, b) & t->merges.mask;
    for (;;) {
        uint32_t v = t->merges.slots[i];
        if (!v || (t->merge_a[v - 1] == a && t->merge_b[v - 1] == b)) {
            t->merges.slots[i] = rank + 1;
            return;
        }
        i = (i + 1) & t->merges.mask;
    }
}

/* ================================================================== */
/* Arena                                                               */
/* ================================================================== */
static int arena_put(ds8b_tokenizer *t, const char *s, size_t n, uint32_t *off, ds8b__err *e) {
    size_t need;
    if (!ds8b__add_ok(t->arena_len, n, &need) || !ds8b__add_ok(need, 1, &need) || need > UINT32_MAX)
        return ds8b__seterr(e, DS8B_E_LIMIT, "%s: token strings exceed 4 GiB", t->name);
    if (need > t->arena_cap) {
        size_t nc = t->arena_cap ? t->arena_cap : 4096;
        while (nc < need) nc *= 2;
        if (nc > (size_t)UINT32_MAX + 1) nc = (size_t)UINT32_MAX + 1;
        char *na = ds8b__realloc(DS8B_MEM_TOKENIZER, t->arena, nc);
        if (!na) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot grow the string arena to %zu bytes", t->name, nc);
        t->arena = na;
        t->arena_cap = nc;
    }
    *off = (uint32_t)t->arena_len;
    if (n) memcpy(t->arena + t->arena_len, s, n);
    t->arena[t->arena_len + n] = 0;
    t->arena_len += n + 1;
    return DS8B_OK;
}

/* ================================================================== */
/* Allocation of the per-id tables                                     */
/* ================================================================== */
static void *pc_malloc(size_t n, void *u) { (void)u; return ds8b__malloc(DS8B_MEM_TOKENIZER, n); }
static void pc_free(void *p, void *u) { (void)u; ds8b__free(p); }

static int tok_new(const char *name, ds8b_tokenizer **out, ds8b__err *e) {
    pthread_once(&bl_once, bl_init);
    ds8b_tokenizer *t = ds8b__calloc(DS8B_MEM_TOKENIZER, 1, sizeof *t);
    if (!t) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot allocate a tokenizer", name);
    t->magic = DS8B__TOK_MAGIC;
    t->name = ds8b__strdup(DS8B_MEM_TOKENIZER, name ? name : "tokenizer");
    t->gctx = pcre2_general_context_create(pc_malloc, pc_free, NULL);
    if (!t->name || !t->gctx) {
        ds8b__tok_free(t);
        return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot allocate a tokenizer", name);
    }
    t->unk_id = -1;
    t->cfg_add_bos = -1;
    t->bos_id = t->eos_id = t->pad_id = -1;
    t->decoder = 1;
    t->pre_name = "default";
    *out = t;
    return DS8B_OK;
}

static int tok_alloc_ids(ds8b_tokenizer *t, int32_t n_vocab, ds8b__err *e) {
    size_t n = (size_t)n_vocab;
    t->n_vocab = n_vocab;
    t->attr = ds8b__calloc(DS8B_MEM_TOKENIZER, n ? n : 1, 1);
    t->mstr_off = ds8b__calloc(DS8B_MEM_TOKENIZER, n ? n : 1, sizeof(uint32_t));
    t->mstr_len = ds8b__calloc(DS8B_MEM_TOKENIZER, n ? n : 1, sizeof(uint32_t));
    t->raw_off = ds8b__calloc(DS8B_MEM_TOKENIZER, n ? n : 1, sizeof(uint32_t));
    t->raw_len = ds8b__calloc(DS8B_MEM_TOKENIZER, n ? n : 1, sizeof(uint32_t));
    t->added_of = ds8b__calloc(DS8B_MEM_TOKENIZER, n ? n : 1, sizeof(int32_t));
    if (!t->attr || !t->mstr_off || !t->mstr_len || !t->raw_off || !t->raw_len || !t->added_of)
        return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot allocate tables for %d tokens", t->name, n_vocab);
    for (size_t i = 0; i < n; i++) t->added_of[i] = -1;
    return DS8B_OK;
}

static int set_model_token(ds8b_tokenizer *t, int32_t id, const char *s, size_t n, ds8b__err *e) {
    uint32_t off;
    int rc = arena_put(t, s, n, &off, e);
    if (rc) return rc;
    t->mstr_off[id] = off;
    t->mstr_len[id] = (uint32_t)n;
    t->attr[id] |= DS8B__TA_MODEL;
    return DS8B_OK;
}

/* ================================================================== */
/* Added tokens and tries                                              */
/* ================================================================== */
static int trie_add(ds8b_tokenizer *t, ds8b__tok_trie *tr, const char *s, size_t n, int32_t idx,
                    ds8b__err *e) {
    if (n == 0) return DS8B_OK;
    if (tr->n == 0) {
        tr->cap = 256;
        tr->nodes = ds8b__malloc(DS8B_MEM_TOKENIZER, tr->cap * sizeof *tr->nodes);
        if (!tr->nodes) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: out of memory for added tokens", t->name);
        tr->nodes[0] = (ds8b__tok_trie_node){-1, -1, -1, 0};
        tr->n = 1;
    }
    int32_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)s[i];
        int32_t c = tr->nodes[cur].first;
        while (c >= 0 && tr->nodes[c].byte != b) c = tr->nodes[c].next;
        if (c < 0) {
            if (tr->n == tr->cap) {
                if (tr->cap >= (1u << 30)) return ds8b__seterr(e, DS8B_E_LIMIT, "%s: added tokens too large", t->name);
                ds8b__tok_trie_node *nn = ds8b__realloc(DS8B_MEM_TOKENIZER, tr->nodes, (size_t)tr->cap * 2 * sizeof *nn);
                if (!nn) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: out of memory for added tokens", t->name);
                tr->nodes = nn;
                tr->cap *= 2;
            }
            c = (int32_t)tr->n++;
            tr->nodes[c] = (ds8b__tok_trie_node){-1, tr->nodes[cur].first, -1, b};
            tr->nodes[cur].first = c;
        }
        cur = c;
    }
    if (tr->nodes[cur].added < 0) tr->nodes[cur].added = idx; /* the earlier token wins a tie */
    tr->first_byte[(uint8_t)s[0] >> 3] |= (uint8_t)(1u << ((uint8_t)s[0] & 7));
    return DS8B_OK;
}

/* Normalizes s into a fresh heap buffer (DS8B_MEM_OTHER) with the
 * tokenizer's normalizers. s must be valid UTF-8. */
int ds8b__tok_normalize(const ds8b_tokenizer *t, const char *s, size_t n, char **out, size_t *out_len,
                        ds8b__err *e);

static int add_added(ds8b_tokenizer *t, int32_t id, const char *content, size_t len, uint8_t flags,
                     ds8b__err *e) {
    if (id < 0 || id >= t->n_vocab) return ds8b__seterr(e, DS8B_E_FORMAT, "%s: added token id %d out of range", t->name, id);
    ds8b__tok_added *a = &t->added[t->n_added];
    int rc = arena_put(t, content, len, &a->off, e);
    if (rc) return rc;
    a->len = (uint32_t)len;
    a->norm_off = a->off;
    a->norm_len = a->len;
    a->id = id;
    if ((flags & DS8B__TA_NORMALIZED) && t->n_norm > 0) {
        char *nb = NULL;
        size_t nl = 0;
        if ((rc = ds8b__tok_normalize(t, content, len, &nb, &nl, e))) return rc;
        rc = arena_put(t, nb, nl, &a->norm_off, e);
        ds8b__free(nb);
        if (rc) return rc;
        a->norm_len = (uint32_t)nl;
    }
    t->attr[id] = (uint8_t)((t->attr[id] & DS8B__TA_MODEL) | DS8B__TA_ADDED | flags);
    t->added_of[id] = (int32_t)t->n_added;
    t->n_added++;
    return DS8B_OK;
}

static bool utf8_valid(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t bad;
        int l = ds8b__utf8_scan((const unsigned char *)s + i, n - i, &cp, &bad);
        if (l <= 0) return false;
        i += (size_t)l;
    }
    return true;
}

/* Tries, the content hash, raw bytes of every id. Called once all tokens are in. */
static int finish_tables(ds8b_tokenizer *t, ds8b__err *e) {
    int rc;
    if ((rc = hash_init(&t->added_hash, t->n_added, e, t->name))) return rc;
    for (uint32_t i = 0; i < t->n_added; i++) {
        ds8b__tok_added *a = &t->added[i];
        if (added_lookup(t, t->arena + a->off, a->len) < 0) {
            uint32_t h = (uint32_t)ds8b__tok_strhash(t->arena + a->off, a->len) & t->added_hash.mask;
            while (t->added_hash.slots[h]) h = (h + 1) & t->added_hash.mask;
            t->added_hash.slots[h] = i + 1;
        }
        /* Empty or non-UTF-8 content (possible from GGUF) is never matched:
         * a match must not cut a character of the (valid) text. */
        if (a->len == 0 || !utf8_valid(t->arena + a->off, a->len) || !utf8_valid(t->arena + a->norm_off, a->norm_len))
            continue;
        if (t->attr[a->id] & DS8B__TA_NORMALIZED) rc = trie_add(t, &t->trie_norm, t->arena + a->norm_off, a->norm_len, (int32_t)i, e);
        else rc = trie_add(t, &t->trie_raw, t->arena + a->off, a->len, (int32_t)i, e);
        if (rc) return rc;
    }
    /* decoded bytes of each id */
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (t->added_of[id] >= 0) {
            const ds8b__tok_added *a = &t->added[t->added_of[id]];
            t->raw_off[id] = a->off;
            t->raw_len[id] = a->len;
            continue;
        }
        if (!(t->attr[id] & DS8B__TA_MODEL)) continue;
        size_t n;
        const char *s = mstr(t, id, &n);
        if (t->decoder != 1) { t->raw_off[id] = t->mstr_off[id]; t->raw_len[id] = (uint32_t)n; continue; }
        /* decode into a stack buffer, then store (the arena may move) */
        char tmp[1024];
        char *buf = n <= sizeof tmp ? tmp : ds8b__malloc(DS8B_MEM_OTHER, n);
        if (!buf) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: out of memory", t->name);
        size_t k = 0, i = 0;
        bool ok = true;
        while (i < n) {
            uint32_t cp;
            size_t bad;
            int l = ds8b__utf8_scan((const unsigned char *)s + i, n - i, &cp, &bad);
            int b = l > 0 ? ds8b__bl_cp2byte(cp) : -1;
            if (b < 0) { ok = false; break; }
            buf[k++] = (char)b;
            i += (size_t)l;
        }
        if (ok) {
            uint32_t off;
            rc = arena_put(t, buf, k, &off, e);
            t->raw_off[id] = off;
            t->raw_len[id] = (uint32_t)k;
        } else {
            t->raw_off[id] = t->mstr_off[id];
            t->raw_len[id] = (uint32_t)n;
        }
        if (buf != tmp) ds8b__free(buf);
        if (rc) return rc;
    }
    /* single-byte tokens */
    for (int b = 0; b < 256; b++) {
        char u[4];
        uint16_t cp = bl_b2c[b];
        size_t l;
        if (cp < 0x80) { u[0] = (char)cp; l = 1; }
        else { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); l = 2; }
        t->byte_id[b] = ds8b__tok_vocab_lookup(t, u, l);
    }
    return DS8B_OK;
}

/* ================================================================== */
/* Pre-tokenizer regexes                                               */
/* ================================================================== */
/* Unicode White_Space, which is what Oniguruma's \s matches on UTF-8. */
#define WS_CLASS "\\t-\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"

static const char RE_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char RE_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_DSV3_1[] = "\\p{N}{1,3}";
static const char RE_DSV3_2[] = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+";
static const char RE_DSV3_3[] =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
/* DeepSeek LLM (v1/v2): newlines alone, words with an optional leading
 * space, ASCII/fullwidth punctuation runs, trailing whitespace, CJK runs,
 * digit runs. The letter class is \p{L} here (a simplification). */
static const char RE_DSLLM_1[] = "[\r\n]";
static const char RE_DSLLM_2[] = "\\s?\\p{L}+";
static const char RE_DSLLM_3[] = "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+";
static const char RE_DSLLM_4[] = "\\s+$";
static const char RE_DSLLM_5[] = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+";
static const char RE_DSLLM_6[] = "\\p{N}+";

/* The one table from tokenizer.ggml.pre names to split regexes. */
static const struct pre_entry {
    const char *names[4];
    const char *re[6];
    int n_re;
    bool nfc;
} PRE_TABLE[] = {
    {{"llama-bpe", "llama3", "llama-v3", NULL}, {RE_LLAMA3}, 1, false},
    {{"qwen2", "deepseek-r1-qwen", NULL, NULL}, {RE_QWEN2}, 1, true},
    {{"deepseek-v3", "deepseek3-llm", NULL, NULL}, {RE_DSV3_1, RE_DSV3_2, RE_DSV3_3}, 3, false},
    {{"deepseek-llm", NULL, NULL, NULL},
     {RE_DSLLM_1, RE_DSLLM_2, RE_DSLLM_3, RE_DSLLM_4, RE_DSLLM_5, RE_DSLLM_6}, 6, false},
    {{"default", "gpt2", "gpt-2", NULL}, {RE_GPT2}, 1, false},
};
#define N_PRE_TABLE (sizeof PRE_TABLE / sizeof PRE_TABLE[0])

/* Rewrites \s and \S to explicit White_Space classes. */
static char *rewrite_ws(const char *src, size_t n) {
    size_t cls = sizeof(WS_CLASS) - 1, cnt = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (src[i] == '\\') { if (src[i + 1] == 's' || src[i + 1] == 'S') cnt++; i++; }
    size_t cap;
    if (!ds8b__mul_ok(cnt, cls + 4, &cap) || !ds8b__add_ok(cap, n + 1, &cap)) return NULL;
    char *o = ds8b__malloc(DS8B_MEM_OTHER, cap);
    if (!o) return NULL;
    size_t k = 0;
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '\\' && i + 1 < n) {
            char d = src[i + 1];
            if (d == 's' || (d == 'S' && !in_class)) {
                if (!in_class) { o[k++] = '['; if (d == 'S') o[k++] = '^'; }
                memcpy(o + k, WS_CLASS, cls);
                k += cls;
                if (!in_class) o[k++] = ']';
            } else {
                o[k++] = c;
                o[k++] = d;
            }
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            o[k++] = c;
            /* a ']' right after '[' or '[^' is literal */
            if (i + 1 < n && src[i + 1] == '^') { o[k++] = '^'; i++; }
            if (i + 1 < n && src[i + 1] == ']') { o[k++] = ']'; i++; }
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && src[i + 1] == ':') {
            /* POSIX class [:name:] inside a class */
            const char *end = NULL;
            for (size_t j = i + 2; j + 1 < n; j++) if (src[j] == ':' && src[j + 1] == ']') { end = src + j; break; }
            if (end) {
                size_t l = (size_t)(end - (src + i)) + 2;
                memcpy(o + k, src + i, l);
                k += l;
                i += l - 1;
                continue;
            }
        }
        if (in_class && c == ']') in_class = false;
        o[k++] = c;
    }
    o[k] = 0;
    return o;
}

static int compile_re(ds8b_tokenizer *t, const char *src, size_t n, bool literal, pcre2_code **out,
                      ds8b__err *e) {
    char *pat = literal ? ds8b__strndup(DS8B_MEM_OTHER, src, n) : rewrite_ws(src, n);
    if (!pat) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: out of memory compiling a regex", t->name);
    size_t plen = literal ? n : strlen(pat);
    pcre2_compile_context *cc = pcre2_compile_context_create(t->gctx);
    if (!cc) { ds8b__free(pat); return ds8b__seterr(e, DS8B_E_NOMEM, "%s: out of memory compiling a regex", t->name); }
    int err = 0;
    PCRE2_SIZE erroff = 0;
    uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, plen, opts, &err, &erroff, cc);
    pcre2_compile_context_free(cc);
    ds8b__free(pat);
    if (!re) {
        char msg[256];
        pcre2_get_error_message(err, (PCRE2_UCHAR *)msg, sizeof msg);
        return ds8b__seterr(e, err == PCRE2_ERROR_HEAP_FAILED ? DS8B_E_NOMEM : DS8B_E_UNSUPPORTED,
                            "%s: pre_tokenizer regex \"%.*s\" does not compile: %s at %zu",
                            t->name, (int)(n > 200 ? 200 : n), src, msg, (size_t)erroff);
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
    *out = re;
    return DS8B_OK;
}

static int add_split(ds8b_tokenizer *t, const char *src, size_t n, bool literal, int behavior,
                     bool invert, ds8b__err *e) {
    if (t->n_pre >= DS8B__TOK_MAX_PRE)
        return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "%s: more than %d pre-tokenizers", t->name, DS8B__TOK_MAX_PRE);
    ds8b__tok_pre *p = &t->pre[t->n_pre];
    memset(p, 0, sizeof *p);
    p->kind = DS8B__PRE_SPLIT;
    p->behavior = behavior;
    p->invert = invert;
    p->src = ds8b__strndup(DS8B_MEM_TOKENIZER, src, n);
    if (!p->src) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: out of memory", t->name);
    t->n_pre++;
    return compile_re(t, src, n, literal, &p->re, e);
}

static int add_bytelevel(ds8b_tokenizer *t, bool add_prefix_space, bool use_regex, ds8b__err *e) {
    if (t->n_pre >= DS8B__TOK_MAX_PRE)
        return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "%s: more than %d pre-tokenizers", t->name, DS8B__TOK_MAX_PRE);
    ds8b__tok_pre *p = &t->pre[t->n_pre];
    memset(p, 0, sizeof *p);
    p->kind = DS8B__PRE_BYTELEVEL;
    p->add_prefix_space = add_prefix_space;
    p->use_regex = use_regex;
    t->n_pre++;
    if (use_regex) return compile_re(t, RE_GPT2, strlen(RE_GPT2), false, &p->re, e);
    return DS8B_OK;
}

/* Names the pre-tokenizer after the table entry whose regexes it uses. */
static void detect_pre_name(ds8b_tokenizer *t) {
    const char *srcs[DS8B__TOK_MAX_PRE];
    int n = 0;
    bool gpt2 = false;
    for (int i = 0; i < t->n_pre; i++) {
        if (t->pre[i].kind == DS8B__PRE_SPLIT) srcs[n++] = t->pre[i].src;
        else if (t->pre[i].use_regex) gpt2 = true;
    }
    if (gpt2 && n == 0) { t->pre_name = "default"; return; }
    for (size_t k = 0; k < N_PRE_TABLE; k++) {
        if (PRE_TABLE[k].n_re != n) continue;
        bool same = true;
        for (int i = 0; i < n && same; i++) same = strcmp(PRE_TABLE[k].re[i], srcs[i]) == 0;
        if (same) { t->pre_name = PRE_TABLE[k].names[0]; return; }
    }
    t->pre_name = "default";
}

/* ================================================================== */
/* tokenizer.json                                                      */
/* ================================================================== */
typedef struct jctx {
    ds8b__tj_doc *d;
    ds8b_tokenizer *t;
    ds8b__err *e;
} jctx;


static int j_normalizer(jctx *c, const ds8b__tj_node *n, int depth) {
    ds8b_tokenizer *t = c->t;
    if (!n || n->type == DS8B__TJ_NULL) return DS8B_OK;
    if (depth > 4) return ds8b__seterr(c->e, DS8B_E_UNSUPPORTED, "%s: normalizer nested too deep", t->name);
    const char *type = ds8b__tj_str(c->d, ds8b__tj_get(c->d, n, "type"));
    if (!type) return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: normalizer without a type", t->name);
    if (strcmp(type, "Sequence") == 0) {
        const ds8b__tj_node *arr = ds8b__tj_get(c->d, n, "normalizers");
        if (!ds8b__tj_is(arr, DS8B__TJ_ARR)) return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: normalizer Sequence without a normalizers array", t->name);
        for (const ds8b__tj_node *k = ds8b__tj_first(c->d, arr); k; k = ds8b__tj_next(c->d, k)) {
            int rc = j_normalizer(c, k, depth + 1);
            if (rc) return rc;
        }
        return DS8B_OK;
    }
    int opts;
    if (strcmp(type, "NFC") == 0) opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    else if (strcmp(type, "NFD") == 0) opts = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE;
    else if (strcmp(type, "NFKC") == 0) opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
    else if (strcmp(type, "NFKD") == 0) opts = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
    else return ds8b__seterr(c->e, DS8B_E_UNSUPPORTED, "%s: normalizer \"%s\" is not supported", t->name, type);
    if (t->n_norm >= DS8B__TOK_MAX_NORM) return ds8b__seterr(c->e, DS8B_E_UNSUPPORTED, "%s: too many normalizers", t->name);
    t->norm_opts[t->n_norm++] = opts;
    return DS8B_OK;
}

static int j_pretok(jctx *c, const ds8b__tj_node *n, int depth) {
    ds8b_tokenizer *t = c->t;
    const ds8b__tj_doc *d = c->d;
    if (!n || n->type == DS8B__TJ_NULL) return DS8B_OK;
    if (depth > 4) return ds8b__seterr(c->e, DS8B_E_UNSUPPORTED, "%s: pre_tokenizer nested too deep", t->name);
    const char *type = ds8b__tj_str(d, ds8b__tj_get(d, n, "type"));
    if (!type) return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: pre_tokenizer without a type", t->name);
    if (strcmp(type, "Sequence") == 0) {
        const ds8b__tj_node *arr = ds8b__tj_get(d, n, "pretokenizers");
        if (!ds8b__tj_is(arr, DS8B__TJ_ARR)) return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: pre_tokenizer Sequence without a pretokenizers array", t->name);
        for (const ds8b__tj_node *k = ds8b__tj_first(d, arr); k; k = ds8b__tj_next(d, k)) {
            int rc = j_pretok(c, k, depth + 1);
            if (rc) return rc;
        }
        return DS8B_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        return add_bytelevel(t, ds8b__tj_bool(ds8b__tj_get(d, n, "add_prefix_space"), true),
                             ds8b__tj_bool(ds8b__tj_get(d, n, "use_regex"), true), c->e);
    }
    if (strcmp(type, "Split") == 0) {
        const ds8b__tj_node *pat = ds8b__tj_get(d, n, "pattern");
        const ds8b__tj_node *re = ds8b__tj_get(d, pat, "Regex");
        const ds8b__tj_node *lit = ds8b__tj_get(d, pat, "String");
        const ds8b__tj_node *src = ds8b__tj_is(re, DS8B__TJ_STR) ? re : lit;
        if (!ds8b__tj_is(src, DS8B__TJ_STR))
            return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: Split pre_tokenizer without a Regex or String pattern", t->name);
        const char *beh = ds8b__tj_str(d, ds8b__tj_get(d, n, "behavior"));
        int b;
        if (!beh || strcmp(beh, "Isolated") == 0) b = DS8B__SPLIT_ISOLATED;
        else if (strcmp(beh, "Removed") == 0) b = DS8B__SPLIT_REMOVED;
        else if (strcmp(beh, "MergedWithPrevious") == 0) b = DS8B__SPLIT_MERGED_PREV;
        else if (strcmp(beh, "MergedWithNext") == 0) b = DS8B__SPLIT_MERGED_NEXT;
        else if (strcmp(beh, "Contiguous") == 0) b = DS8B__SPLIT_CONTIGUOUS;
        else return ds8b__seterr(c->e, DS8B_E_UNSUPPORTED, "%s: Split behavior \"%s\" is not supported", t->name, beh);
        if (src->str_len == 0) return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: Split pattern is empty", t->name);
        return add_split(t, ds8b__tj_str(d, src), src->str_len, src != re, b,
                         ds8b__tj_bool(ds8b__tj_get(d, n, "invert"), false), c->e);
    }
    return ds8b__seterr(c->e, DS8B_E_UNSUPPORTED, "%s: pre_tokenizer \"%s\" is not supported", t->name, type);
}

static int push_ids(ds8b_tokenizer *t, int32_t **arr, uint32_t *n, const int32_t *ids, uint32_t k,
                    bool front, ds8b__err *e) {
    if (k == 0) return DS8B_OK;
    if (*n + (uint64_t)k > 1024) return ds8b__seterr(e, DS8B_E_LIMIT, "%s: post_processor adds too many tokens", t->name);
    int32_t *na = ds8b__realloc(DS8B_MEM_TOKENIZER, *arr, (*n + k) * sizeof(int32_t));
    if (!na) return ds8b__seterr(e, DS8B_E_NOMEM, "%s: out of memory", t->name);
    if (front) {
        memmove(na + k, na, *n * sizeof(int32_t));
        memcpy(na, ids, k * sizeof(int32_t));
    } else {
        memcpy(na + *n, ids, k * sizeof(int32_t));
    }
    *arr = na;
    *n += k;
    return DS8B_OK;
}

static int j_id_in_range(jctx *c, const ds8b__tj_node *v, int32_t *id) {
    if (!ds8b__tj_is(v, DS8B__TJ_NUM) || v->num < 0 || v->num >= c->t->n_vocab || v->num != (double)(int32_t)v->num)
        return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: post_processor token id is not a valid id", c->t->name);
    *id = (int32_t)v->num;
    return DS8B_OK;
}

static int j_postproc(jctx *c, const ds8b__tj_node *n, int depth) {
    ds8b_tokenizer *t = c->t;
    const ds8b__tj_doc *d = c->d;
    if (!n || n->type == DS8B__TJ_NULL) return DS8B_OK;
    if (depth > 4) return ds8b__seterr(c->e, DS8B_E_UNSUPPORTED, "%s: post_processor nested too deep", t->name);
    const char *type = ds8b__tj_str(d, ds8b__tj_get(d, n, "type"));
    if (!type) return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: post_processor without a type", t->name);
    int rc;
    if (strcmp(type, "Sequence") == 0) {
        const ds8b__tj_node *arr = ds8b__tj_get(d, n, "processors");
        if (!ds8b__tj_is(arr, DS8B__TJ_ARR)) return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: post_processor Sequence without processors", t->name);
        for (const ds8b__tj_node *k = ds8b__tj_first(d, arr); k; k = ds8b__tj_next(d, k))
            if ((rc = j_postproc(c, k, depth + 1))) return rc;
        return DS8B_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) return DS8B_OK; /* offsets only */
    if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0) {
        int32_t cls, sep;
        if ((rc = j_id_in_range(c, ds8b__tj_at(d, ds8b__tj_get(d, n, "cls"), 1), &cls))) return rc;
        if ((rc = j_id_in_range(c, ds8b__tj_at(d, ds8b__tj_get(d, n, "sep"), 1), &sep))) return rc;
        if ((rc = push_ids(t, &t->post_prefix, &t->n_post_prefix, &cls, 1, true, c->e))) return rc;
        return push_ids(t, &t->post_suffix, &t->n_post_suffix, &sep, 1, false, c->e);
    }
    if (strcmp(type, "TemplateProcessing") != 0)
        return ds8b__seterr(c->e, DS8B_E_UNSUPPORTED, "%s: post_processor \"%s\" is not supported", t->name, type);
    const ds8b__tj_node *single = ds8b__tj_get(d, n, "single");
    const ds8b__tj_node *specials = ds8b__tj_get(d, n, "special_tokens");
    if (!ds8b__tj_is(single, DS8B__TJ_ARR)) return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: TemplateProcessing without a single template", t->name);
    int32_t pre[1024], post[1024];
    uint32_t npre = 0, npost = 0;
    bool seen_a = false;
    for (const ds8b__tj_node *it = ds8b__tj_first(d, single); it; it = ds8b__tj_next(d, it)) {
        const ds8b__tj_node *sp = ds8b__tj_get(d, it, "SpecialToken");
        const ds8b__tj_node *sq = ds8b__tj_get(d, it, "Sequence");
        if (sq) {
            if (seen_a) return ds8b__seterr(c->e, DS8B_E_UNSUPPORTED, "%s: TemplateProcessing single template repeats the sequence", t->name);
            seen_a = true;
            continue;
        }
        const char *name = ds8b__tj_str(d, ds8b__tj_get(d, sp, "id"));
        if (!name) return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: TemplateProcessing item is neither SpecialToken nor Sequence", t->name);
        const ds8b__tj_node *st = ds8b__tj_get(d, specials, name);
        const ds8b__tj_node *ids = ds8b__tj_get(d, st, "ids");
        if (!ds8b__tj_is(ids, DS8B__TJ_ARR))
            return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: TemplateProcessing special token \"%s\" has no ids", t->name, name);
        for (const ds8b__tj_node *v = ds8b__tj_first(d, ids); v; v = ds8b__tj_next(d, v)) {
            int32_t id;
            if ((rc = j_id_in_range(c, v, &id))) return rc;
            if (!seen_a) { if (npre >= 1024) return ds8b__seterr(c->e, DS8B_E_LIMIT, "%s: template too long", t->name); pre[npre++] = id; }
            else { if (npost >= 1024) return ds8b__seterr(c->e, DS8B_E_LIMIT, "%s: template too long", t->name); post[npost++] = id; }
        }
    }
    if ((rc = push_ids(t, &t->post_prefix, &t->n_post_prefix, pre, npre, true, c->e))) return rc;
    return push_ids(t, &t->post_suffix, &t->n_post_suffix, post, npost, false, c->e);
}

static int j_decoder(jctx *c, const ds8b__tj_node *n, int depth) {
    ds8b_tokenizer *t = c->t;
    const ds8b__tj_doc *d = c->d;
    if (!n || n->type == DS8B__TJ_NULL) { if (depth == 0) t->decoder = 0; return DS8B_OK; }
    if (depth > 4) return ds8b__seterr(c->e, DS8B_E_UNSUPPORTED, "%s: decoder nested too deep", t->name);
    const char *type = ds8b__tj_str(d, ds8b__tj_get(d, n, "type"));
    if (!type) return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: decoder without a type", t->name);
    if (strcmp(type, "ByteLevel") == 0) { t->decoder = 1; return DS8B_OK; }
    if (strcmp(type, "Sequence") == 0) {
        const ds8b__tj_node *arr = ds8b__tj_get(d, n, "decoders");
        if (!ds8b__tj_is(arr, DS8B__TJ_ARR)) return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: decoder Sequence without decoders", t->name);
        for (const ds8b__tj_node *k = ds8b__tj_first(d, arr); k; k = ds8b__tj_next(d, k)) {
            int rc = j_decoder(c, k, depth + 1);
            if (rc) return rc;
        }
        return DS8B_OK;
    }
    return ds8b__seterr(c->e, DS8B_E_UNSUPPORTED, "%s: decoder \"%s\" is not supported", t->name, type);
}

static int j_idnum(const ds8b__tj_node *v, int32_t *id) {
    if (!ds8b__tj_is(v, DS8B__TJ_NUM) || !(v->num >= 0) || v->num >= DS8B__TOK_MAX_VOCAB || v->num != (double)(int32_t)v->num)
        return -1;
    *id = (int32_t)v->num;
    return 0;
}

static int j_merge_ids(jctx *c, const char *a, size_t al, const char *b, size_t bl, uint32_t rank) {
    ds8b_tokenizer *t = c->t;
    int32_t ia = ds8b__tok_vocab_lookup(t, a, al), ib = ds8b__tok_vocab_lookup(t, b, bl);
    if (ia < 0 || ib < 0)
        return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: merge %u: token \"%.*s\" is not in the vocab", t->name, rank,
                            (int)(ia < 0 ? (al > 100 ? 100 : al) : (bl > 100 ? 100 : bl)), ia < 0 ? a : b);
    char tmp[512];
    size_t n;
    if (!ds8b__add_ok(al, bl, &n)) return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: merge %u too long", t->name, rank);
    char *buf = n <= sizeof tmp ? tmp : ds8b__malloc(DS8B_MEM_OTHER, n);
    if (!buf) return ds8b__seterr(c->e, DS8B_E_NOMEM, "%s: out of memory", t->name);
    memcpy(buf, a, al);
    memcpy(buf + al, b, bl);
    int32_t nw = ds8b__tok_vocab_lookup(t, buf, n);
    if (buf != tmp) ds8b__free(buf);
    if (nw < 0)
        return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: merge %u: \"%.*s%.*s\" is not in the vocab", t->name, rank,
                            (int)(al > 100 ? 100 : al), a, (int)(bl > 100 ? 100 : bl), b);
    t->merge_a[rank] = ia;
    t->merge_b[rank] = ib;
    t->merge_new[rank] = nw;
    return DS8B_OK;
}

static int alloc_merges(ds8b_tokenizer *t, size_t n, ds8b__err *e) {
    if (n > (size_t)INT32_MAX) return ds8b__seterr(e, DS8B_E_LIMIT, "%s: too many merges", t->name);
    t->merge_a = ds8b__calloc(DS8B_MEM_TOKENIZER, n ? n : 1, sizeof(int32_t));
    t->merge_b = ds8b__calloc(DS8B_MEM_TOKENIZER, n ? n : 1, sizeof(int32_t));
    t->merge_new = ds8b__calloc(DS8B_MEM_TOKENIZER, n ? n : 1, sizeof(int32_t));
    if (!t->merge_a || !t->merge_b || !t->merge_new)
        return ds8b__seterr(e, DS8B_E_NOMEM, "%s: cannot allocate %zu merges", t->name, n);
    t->n_merges = (uint32_t)n;
    return hash_init(&t->merges, n, e, t->name);
}

static int j_model(jctx *c, const ds8b__tj_node *model, const ds8b__tj_node *added) {
    ds8b_tokenizer *t = c->t;
    const ds8b__tj_doc *d = c->d;
    int rc;
    if (!ds8b__tj_is(model, DS8B__TJ_OBJ)) return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: no \"model\" object", t->name);
    const char *type = ds8b__tj_str(d, ds8b__tj_get(d, model, "type"));
    if (type && strcmp(type, "BPE") != 0)
        return ds8b__seterr(c->e, DS8B_E_UNSUPPORTED, "%s: model type \"%s\" is not supported (only BPE)", t->name, type);
    if (ds8b__tj_bool(ds8b__tj_get(d, model, "byte_fallback"), false))
        return ds8b__seterr(c->e, DS8B_E_UNSUPPORTED, "%s: BPE byte_fallback is not supported", t->name);
    const char *csp = ds8b__tj_str(d, ds8b__tj_get(d, model, "continuing_subword_prefix"));
    const char *eow = ds8b__tj_str(d, ds8b__tj_get(d, model, "end_of_word_suffix"));
    if ((csp && *csp) || (eow && *eow))
        return ds8b__seterr(c->e, DS8B_E_UNSUPPORTED, "%s: BPE subword prefix/suffix is not supported", t->name);
    t->ignore_merges = ds8b__tj_bool(ds8b__tj_get(d, model, "ignore_merges"), false);
    const ds8b__tj_node *vocab = ds8b__tj_get(d, model, "vocab");
    const ds8b__tj_node *merges = ds8b__tj_get(d, model, "merges");
    if (!ds8b__tj_is(vocab, DS8B__TJ_OBJ)) return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: model has no \"vocab\" object", t->name);
    if (!ds8b__tj_is(merges, DS8B__TJ_ARR)) return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: model has no \"merges\" array", t->name);
    /* id range */
    int32_t max_id = -1;
    for (const ds8b__tj_node *v = ds8b__tj_first(d, vocab); v; v = ds8b__tj_next(d, v)) {
        int32_t id;
        if (j_idnum(v, &id)) return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: vocab entry \"%.100s\" has a bad id", t->name, ds8b__tj_key(d, v));
        if (id > max_id) max_id = id;
    }
    if (added && !ds8b__tj_is(added, DS8B__TJ_ARR) && added->type != DS8B__TJ_NULL)
        return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: \"added_tokens\" is not an array", t->name);
    for (const ds8b__tj_node *a = ds8b__tj_first(d, added); a; a = ds8b__tj_next(d, a)) {
        int32_t id;
        if (j_idnum(ds8b__tj_get(d, a, "id"), &id) || !ds8b__tj_is(ds8b__tj_get(d, a, "content"), DS8B__TJ_STR))
            return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: added token without a valid id and content", t->name);
        if (id > max_id) max_id = id;
    }
    if ((rc = tok_alloc_ids(t, max_id + 1, c->e))) return rc;
    for (const ds8b__tj_node *v = ds8b__tj_first(d, vocab); v; v = ds8b__tj_next(d, v)) {
        int32_t id = (int32_t)v->num;
        if ((rc = set_model_token(t, id, ds8b__tj_key(d, v), v->key_len, c->e))) return rc;
    }
    if ((rc = hash_init(&t->vocab, vocab->count, c->e, t->name))) return rc;
    for (const ds8b__tj_node *v = ds8b__tj_first(d, vocab); v; v = ds8b__tj_next(d, v)) vocab_insert(t, (int32_t)v->num);
    /* merges */
    if ((rc = alloc_merges(t, merges->count, c->e))) return rc;
    uint32_t rank = 0;
    for (const ds8b__tj_node *m = ds8b__tj_first(d, merges); m; m = ds8b__tj_next(d, m), rank++) {
        if (m->type == DS8B__TJ_STR) {
            const char *s = ds8b__tj_str(d, m);
            const char *sp = memchr(s, ' ', m->str_len);
            if (!sp || memchr(sp + 1, ' ', m->str_len - (size_t)(sp + 1 - s)))
                return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: merge %u \"%.100s\" is not two tokens", t->name, rank, s);
            rc = j_merge_ids(c, s, (size_t)(sp - s), sp + 1, m->str_len - (size_t)(sp + 1 - s), rank);
        } else if (m->type == DS8B__TJ_ARR && m->count == 2) {
            const ds8b__tj_node *a = ds8b__tj_first(d, m), *b = ds8b__tj_next(d, a);
            if (!ds8b__tj_is(a, DS8B__TJ_STR) || !ds8b__tj_is(b, DS8B__TJ_STR))
                return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: merge %u is not a pair of strings", t->name, rank);
            rc = j_merge_ids(c, ds8b__tj_str(d, a), a->str_len, ds8b__tj_str(d, b), b->str_len, rank);
        } else {
            return ds8b__seterr(c->e, DS8B_E_FORMAT, "%s: merge %u is neither \"a b\" nor [a, b]", t->name, rank);
        }
        if (rc) return rc;
        merge_insert(t, rank);
    }
    const char *unk = ds8b__tj_str(d, ds8b__tj_get(d, model, "unk_token"));
    if (unk) t->unk_id = ds8b__tok_vocab_lookup(t, unk, strlen(unk));
    /* added tokens */
    if (added && added->count) {
        t->added = ds8b__calloc(DS8B_MEM_TOKENIZER, added->count, sizeof *t->added);
        if (!t->added) return ds8b__seterr(c->e, DS8B_E_NOMEM, "%s: out of memory for added tokens", t->name);
    }
    for (const ds8b__tj_node *a = ds8b__tj_first(d, added); a; a = ds8b__tj_next(d, a)) {
        const ds8b__tj_node *cn = ds8b__tj_get(d, a, "content");
        bool special = ds8b__tj_bool(ds8b__tj_get(d, a, "special"), false);
        uint8_t f = (special ? DS8B__TA_SPECIAL : 0) |
                    (ds8b__tj_bool(ds8b__tj_get(d, a, "normalized"), !special) ? DS8B__TA_NORMALIZED : 0) |
                    (ds8b__tj_bool(ds8b__tj_get(d, a, "lstrip"), false) ? DS8B__TA_LSTRIP : 0) |
                    (ds8b__tj_bool(ds8b__tj_get(d, a, "rstrip"), false) ? DS8B__TA_RSTRIP : 0) |
                    (ds8b__tj_bool(ds8b__tj_get(d, a, "single_word"), false) ? DS8B__TA_SINGLE_WORD : 0);
        if ((rc = add_added(t, (int32_t)ds8b__tj_get(d, a, "id")->num, ds8b__tj_str(d, cn), cn->str_len, f, c->e))) return rc;
    }
    return DS8B_OK;
}

static char *token_string(const ds8b__tj_doc *d, const ds8b__tj_node *n) {
    if (ds8b__tj_is(n, DS8B__TJ_OBJ)) n = ds8b__tj_get(d, n, "content");
    const char *s = ds8b__tj_str(d, n);
    return s ? ds8b__strdup(DS8B_MEM_TOKENIZER, s) : NULL;
}

static const char *const EOG_NAMES[] = {
    "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end_of_text|>", "<|endoftext|>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", "<|EOT|>", "<|end|>",
};

static void add_eog(ds8b_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab) return;
    for (uint32_t i = 0; i < t->n_eog; i++) if (t->eog[i] == id) return;
    if (t->n_eog < sizeof t->eog / sizeof t->eog[0]) t->eog[t->n_eog++] = id;
}

static void finish_specials(ds8b_tokenizer *t) {
    if (t->bos_id < 0 && t->bos_str) t->bos_id = ds8b__tok_find(t, t->bos_str);
    if (t->bos_id < 0 && !t->bos_str && t->n_post_prefix > 0) t->bos_id = t->post_prefix[0];
    if (t->eos_id < 0 && t->eos_str) t->eos_id = ds8b__tok_find(t, t->eos_str);
    if (t->pad_id < 0 && t->pad_str) t->pad_id = ds8b__tok_find(t, t->pad_str);
    for (size_t i = 0; t->eos_id < 0 && !t->eos_str && i < sizeof EOG_NAMES / sizeof EOG_NAMES[0]; i++)
        t->eos_id = ds8b__tok_find(t, EOG_NAMES[i]);
    add_eog(t, t->eos_id);
    for (size_t i = 0; i < sizeof EOG_NAMES / sizeof EOG_NAMES[0]; i++) add_eog(t, ds8b__tok_find(t, EOG_NAMES[i]));
}

static int j_config(ds8b_tokenizer *t, const char *cfg, size_t len, ds8b__err *e) {
    ds8b__tj_doc d;
    char nm[300];
    snprintf(nm, sizeof nm, "%s (tokenizer_config.json)", t->name);
    int rc = ds8b__tj_parse(&d, cfg, len, nm, e);
    if (rc) return rc;
    const ds8b__tj_node *root = ds8b__tj_root(&d);
    if (!ds8b__tj_is(root, DS8B__TJ_OBJ)) { ds8b__tj_free(&d); return ds8b__seterr(e, DS8B_E_FORMAT, "%s: not a JSON object", nm); }
    const ds8b__tj_node *ct = ds8b__tj_get(&d, root, "chat_template");
    const char *tmpl = ds8b__tj_str(&d, ct);
    if (!tmpl && ds8b__tj_is(ct, DS8B__TJ_ARR)) { /* [{name, template}, ...]: "default" or the first */
        for (const ds8b__tj_node *k = ds8b__tj_first(&d, ct); k; k = ds8b__tj_next(&d, k)) {
            const char *nmk = ds8b__tj_str(&d, ds8b__tj_get(&d, k, "name"));
            const char *tk = ds8b__tj_str(&d, ds8b__tj_get(&d, k, "template"));
            if (tk && (!tmpl || (nmk && strcmp(nmk, "default") == 0))) tmpl = tk;
        }
    }
    rc = DS8B_OK;
    if (tmpl && !(t->chat_template = ds8b__strdup(DS8B_MEM_TOKENIZER, tmpl))) rc = DS8B_E_NOMEM;
    const ds8b__tj_node *b = ds8b__tj_get(&d, root, "bos_token"), *eo = ds8b__tj_get(&d, root, "eos_token");
    if (b && b->type != DS8B__TJ_NULL && !(t->bos_str = token_string(&d, b)) && (ds8b__tj_is(b, DS8B__TJ_STR))) rc = DS8B_E_NOMEM;
    if (eo && eo->type != DS8B__TJ_NULL && !(t->eos_str = token_string(&d, eo)) && (ds8b__tj_is(eo, DS8B__TJ_STR))) rc = DS8B_E_NOMEM;
    const ds8b__tj_node *pd = ds8b__tj_get(&d, root, "pad_token");
    if (pd && pd->type != DS8B__TJ_NULL && !(t->pad_str = token_string(&d, pd)) && (ds8b__tj_is(pd, DS8B__TJ_STR))) rc = DS8B_E_NOMEM;
    const ds8b__tj_node *ab = ds8b__tj_get(&d, root, "add_bos_token");
    if (ab && (ab->type == DS8B__TJ_TRUE || ab->type == DS8B__TJ_FALSE)) t->cfg_add_bos = ab->type == DS8B__TJ_TRUE;
    ds8b__tj_free(&d);
    if (rc) return ds8b__seterr(e, rc, "%s: out of memory", nm);
    return DS8B_OK;
}

int ds8b__tok_from_json(const char *json, size_t len, const char *config_json, size_t config_len,
                        const char *name_for_msgs, ds8b_tokenizer **out, ds8b__err *e) {
    if (!out) return ds8b__seterr(e, DS8B_E_INVALID, "tokenizer: NULL out");
    *out = NULL;
    const char *name = name_for_msgs ? name_for_msgs : "tokenizer.json";
    if (!json) return ds8b__seterr(e, DS8B_E_INVALID, "%s: NULL JSON text", name);
    ds8b_tokenizer *t;
    int rc = tok_new(name, &t, e);
    if (rc) return rc;
    ds8b__tj_doc d;
    if ((rc = ds8b__tj_parse(&d, json, len, name, e))) { ds8b__tok_free(t); return rc; }
    jctx c = {&d, t, e};
    const ds8b__tj_node *root = ds8b__tj_root(&d);
    if (!ds8b__tj_is(root, DS8B__TJ_OBJ)) rc = ds8b__seterr(e, DS8B_E_FORMAT, "%s: not a JSON object", name);
    if (!rc) rc = j_normalizer(&c, ds8b__tj_get(&d, root, "normalizer"), 0);
    if (!rc) rc = j_decoder(&c, ds8b__tj_get(&d, root, "decoder"), 0);
    if (!rc) rc = j_model(&c, ds8b__tj_get(&d, root, "model"), ds8b__tj_get(&d, root, "added_tokens"));
    if (!rc) rc = j_pretok(&c, ds8b__tj_get(&d, root, "pre_tokenizer"), 0);
    if (!rc) rc = j_postproc(&c, ds8b__tj_get(&d, root, "post_processor"), 0);
    ds8b__tj_free(&d);
    if (!rc) rc = finish_tables(t, e);
    if (!rc && config_json) rc = j_config(t, config_json, config_len, e);
    if (rc) { ds8b__tok_free(t); return rc; }
    detect_pre_name(t);
    finish_specials(t);
    *out = t;
    return DS8B_OK;
}

int ds8b__tok_load(const char *path, ds8b_tokenizer **out, ds8b__err *e) {
    if (!out) return ds8b__seterr(e, DS8B_E_INVALID, "tokenizer: NULL out");
    *out = NULL;
    if (!path) return ds8b__seterr(e, DS8B_E_INVALID, "tokenizer: NULL path");
    char *json_path = NULL, *cfg_path = NULL;
    if (ds8b__is_dir(path)) {
        json_path = ds8b__path_join(path, "tokenizer.json");
        cfg_path = ds8b__path_join(path, "tokenizer_config.json");
    } else {
        json_path = ds8b__strdup(DS8B_MEM_OTHER, path);
        const char *slash = strrchr(path, '/');
        if (slash) {
            char *dir = ds8b__strndup(DS8B_MEM_OTHER, path, (size_t)(slash - path) + 1);
            if (dir) { cfg_path = ds8b__path_join(dir, "tokenizer_config.json"); ds8b__free(dir); }
        } else {
            cfg_path = ds8b__strdup(DS8B_MEM_OTHER, "tokenizer_config.json");
        }
    }
    if (!json_path || !cfg_path) {
        ds8b__free(json_path); ds8b__free(cfg_path);
        return ds8b__seterr(e, DS8B_E_NOMEM, "%s: out of memory", path);
    }
    char *js = NULL, *cs = NULL;
    size_t jl = 0, cl = 0;
    int rc = ds8b__read_file(json_path, (size_t)1 << 30, DS8B_MEM_OTHER, &js, &jl, e);
    if (!rc && ds8b__file_exists(cfg_path)) rc = ds8b__read_file(cfg_path, (size_t)64 << 20, DS8B_MEM_OTHER, &cs, &cl, e);
    if (!rc) rc = ds8b__tok_from_json(js, jl, cs, cl, json_path, out, e);
    ds8b__free(js);
    ds8b__free(cs);
    ds8b__free(json_path);
    ds8b__free(cfg_path);
    return rc;
}

/* ================================================================== */
/* GGUF-style construction                                             */
/* ================================================================== */
int ds8b__tok_from_vocab(const char *const *tokens, const size_t *token_lens, const int32_t *types,
                         size_t n_tokens, const char *const *merges, const size_t *merge_lens,
                         size_t n_merges, const char *pre, int32_t bos, int32_t eos, int add_bos,
                         ds8b_tokenizer **out, ds8b__err *e) {
    if (!out) return ds8b__seterr(e, DS8B_E_INVALID, "tokenizer: NULL out");
    *out = NULL;
    if ((n_tokens && (!tokens || !token_lens)) || (n_merges && (!merges || !merge_lens)))
        return ds8b__seterr(e, DS8B_E_INVALID, "GGUF tokenizer: NULL arrays");
    if (n_tokens == 0 || n_tokens > DS8B__TOK_MAX_VOCAB)
        return ds8b__seterr(e, DS8B_E_FORMAT, "GGUF tokenizer: %zu tokens", n_tokens);
    const struct pre_entry *pe = NULL;
    const char *pname = pre && *pre ? pre : "default";
    for (size_t k = 0; k < N_PRE_TABLE && !pe; k++)
        for (int i = 0; i < 4 && PRE_TABLE[k].names[i]; i++)
            if (strcmp(PRE_TABLE[k].names[i], pname) == 0) { pe = &PRE_TABLE[k]; break; }
    if (!pe) return ds8b__seterr(e, DS8B_E_UNSUPPORTED, "GGUF tokenizer: tokenizer.ggml.pre \"%.64s\" is not supported", pname);
    ds8b_tokenizer *t;
    int rc = tok_new("GGUF tokenizer", &t, e);
    if (rc) return rc;
    if (pe->nfc) t->norm_opts[t->n_norm++] = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    if ((rc = tok_alloc_ids(t, (int32_t)n_tokens, e))) goto fail;
    size_t n_added = 0;
    for (size_t i = 0; i < n_tokens; i++) {
        if (!tokens[i] && token_lens[i]) { rc = ds8b__seterr(e, DS8B_E_FORMAT, "GGUF tokenizer: token %zu is NULL", i); goto fail; }
        int32_t ty = types ? types[i] : 1;
        if (ty == 3 || ty == 4) n_added++;
        else if ((rc = set_model_token(t, (int32_t)i, tokens[i] ? tokens[i] : "", token_lens[i], e))) goto fail;
        if (ty == 5) t->attr[i] |= DS8B__TA_UNUSED;
    }
    if ((rc = hash_init(&t->vocab, n_tokens, e, t->name))) goto fail;
    for (size_t i = 0; i < n_tokens; i++) if (t->attr[i] & DS8B__TA_MODEL) vocab_insert(t, (int32_t)i);
    if (n_added && !(t->added = ds8b__calloc(DS8B_MEM_TOKENIZER, n_added, sizeof *t->added))) {
        rc = ds8b__seterr(e, DS8B_E_NOMEM, "GGUF tokenizer: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n_tokens; i++) {
        int32_t ty = types ? types[i] : 1;
        if (ty != 3 && ty != 4) continue;
        if ((rc = add_added(t, (int32_t)i, tokens[i] ? tokens[i] : "", token_lens[i], ty == 3 ? DS8B__TA_SPECIAL : 0, e))) goto fail;
    }
    if ((rc = alloc_merges(t, n_merges, e))) goto fail;
    {
        ds8b__tj_doc dummy = {0};
        jctx c = {&dummy, t, e};
        for (size_t r = 0; r < n_merges; r++) {
            const char *s = merges[r];
            size_t l = merge_lens[r];
            const char *sp = s ? memchr(s, ' ', l) : NULL;
            if (!sp) { rc = ds8b__seterr(e, DS8B_E_FORMAT, "GGUF tokenizer: merge %zu is not two tokens", r); goto fail; }
            if ((rc = j_merge_ids(&c, s, (size_t)(sp - s), sp + 1, l - (size_t)(sp + 1 - s), (uint32_t)r))) goto fail;
            merge_insert(t, (uint32_t)r);
        }
    }
    for (int i = 0; i < pe->n_re; i++)
        if ((rc = add_split(t, pe->re[i], strlen(pe->re[i]), false, DS8B__SPLIT_ISOLATED, false, e))) goto fail;
    if ((rc = add_bytelevel(t, false, false, e))) goto fail;
    t->pre_name = pe->names[0];
    if (bos >= 0 && bos < (int32_t)n_tokens) {
        t->bos_id = bos;
        if (add_bos && (rc = push_ids(t, &t->post_prefix, &t->n_post_prefix, &bos, 1, true, e))) goto fail;
    }
    t->cfg_add_bos = add_bos ? 1 : 0;
    if (eos >= 0 && eos < (int32_t)n_tokens) t->eos_id = eos;
    if ((rc = finish_tables(t, e))) goto fail;
    finish_specials(t);
    *out = t;
    return DS8B_OK;
fail:
    ds8b__tok_free(t);
    return rc;
}

void ds8b__tok_free(ds8b_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_pre; i++) {
        if (t->pre[i].re) pcre2_code_free(t->pre[i].re);
        ds8b__free(t->pre[i].src);
    }
    if (t->gctx) pcre2_general_context_free(t->gctx);
    ds8b__free(t->name);
    ds8b__free(t->attr);
    ds8b__free(t->mstr_off);
    ds8b__free(t->mstr_len);
    ds8b__free(t->raw_off);
    ds8b__free(t->raw_len);
    ds8b__free(t->added_of);
    ds8b__free(t->arena);
    ds8b__free(t->vocab.slots);
    ds8b__free(t->added);
    ds8b__free(t->added_hash.slots);
    ds8b__free(t->trie_raw.nodes);
    ds8b__free(t->trie_norm.nodes);
    ds8b__free(t->merge_a);
    ds8b__free(t->merge_b);
    ds8b__free(t->merge_new);
    ds8b__free(t->merges.slots);
    ds8b__free(t->post_prefix);
    ds8b__free(t->post_suffix);
    ds8b__free(t->chat_template);
    ds8b__free(t->bos_str);
    ds8b__free(t->eos_str);
    ds8b__free(t->pad_str);
    t->magic = 0;
    ds8b__free(t);
}

/* ================================================================== */
/* Accessors                                                           */
/* ================================================================== */
int32_t ds8b__tok_find(const ds8b_tokenizer *t, const char *s) {
    if (!t || !s) return -1;
    size_t n = strlen(s);
    int32_t a = added_lookup(t, s, n);
    if (a >= 0) return t->added[a].id;
    return ds8b__tok_vocab_lookup(t, s, n);
}
bool ds8b__tok_is_eog(const ds8b_tokenizer *t, int32_t id) {
    if (!t) return false;
    for (uint32_t i = 0; i < t->n_eog; i++) if (t->eog[i] == id) return true;
    return false;
}
const int32_t *ds8b__tok_eog_ids(const ds8b_tokenizer *t, size_t *n) { *n = t->n_eog; return t->eog; }
const char *ds8b__tok_chat_template(const ds8b_tokenizer *t) { return t ? t->chat_template : NULL; }
const char *ds8b__tok_bos_str(const ds8b_tokenizer *t) { return t ? t->bos_str : NULL; }
const char *ds8b__tok_eos_str(const ds8b_tokenizer *t) { return t ? t->eos_str : NULL; }
int32_t ds8b__tok_bos(const ds8b_tokenizer *t) { return t ? t->bos_id : -1; }
int32_t ds8b__tok_eos(const ds8b_tokenizer *t) { return t ? t->eos_id : -1; }
int32_t ds8b__tok_pad(const ds8b_tokenizer *t) { return t ? t->pad_id : -1; }
void ds8b__tok_set_pad(ds8b_tokenizer *t, int32_t id) {
    if (t && id >= 0 && id < t->n_vocab) t->pad_id = id;
}
bool ds8b__tok_add_bos(const ds8b_tokenizer *t) {
    if (!t) return false;
    return t->cfg_add_bos >= 0 ? t->cfg_add_bos == 1 : t->n_post_prefix > 0;
}
int32_t ds8b__tok_n_vocab(const ds8b_tokenizer *t) { return t ? t->n_vocab : 0; }
bool ds8b__tok_is_special(const ds8b_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_vocab && (t->attr[id] & DS8B__TA_SPECIAL);
}

bool ds8b__tok_token_bytes(const ds8b_tokenizer *t, int32_t id, char *buf, size_t cap, size_t *len) {
    if (!t || id < 0 || id >= t->n_vocab || !(t->attr[id] & (DS8B__TA_MODEL | DS8B__TA_ADDED))) {
        if (len) *len = 0;
        return false;
    }
    size_t n = t->raw_len[id];
    if (len) *len = n;
    if (n > cap) { if (buf && cap) memcpy(buf, t->arena + t->raw_off[id], cap); return false; }
    if (buf && n) memcpy(buf, t->arena + t->raw_off[id], n);
    return true;
}

bool ds8b__tok_vocab_entry(const ds8b_tokenizer *t, int32_t id, const char **s, size_t *len,
                           int32_t *type, char *buf, size_t cap) {
    if (!t || id < 0 || id >= t->n_vocab) return false;
    uint8_t a = t->attr[id];
    if (a & DS8B__TA_ADDED) {
        const ds8b__tok_added *ad = &t->added[t->added_of[id]];
        *s = t->arena + ad->off;
        *len = ad->len;
        *type = (a & DS8B__TA_SPECIAL) ? 3 : 4;
    } else if (a & DS8B__TA_MODEL) {
        *s = t->arena + t->mstr_off[id];
        *len = t->mstr_len[id];
        *type = (a & DS8B__TA_UNUSED) ? 5 : 1;
    } else {
        int k = snprintf(buf, cap, "[PAD%d]", id);
        *s = buf;
        *len = k < 0 ? 0 : ((size_t)k < cap ? (size_t)k : (cap ? cap - 1 : 0));
        *type = 5;
    }
    return true;
}

size_t ds8b__tok_n_merges(const ds8b_tokenizer *t) { return t ? t->n_merges : 0; }
bool ds8b__tok_merge(const ds8b_tokenizer *t, size_t i, const char **a, size_t *alen,
                     const char **b, size_t *blen) {
    if (!t || i >= t->n_merges) return false;
    *a = mstr(t, t->merge_a[i], alen);
    *b = mstr(t, t->merge_b[i], blen);
    return true;
}
const char *ds8b__tok_pre_name(const ds8b_tokenizer *t) { return t ? t->pre_name : "default"; }

/* ================================================================== */
/* Public API                                                          */
/* ================================================================== */
static bool tok_ok(const ds8b_tokenizer *t) { return t && t->magic == DS8B__TOK_MAGIC; }

static int misuse(const char *fn) {
    ds8b__err e = {0};
    ds8b__seterr(&e, DS8B_E_MISUSE, "%s: NULL or invalid tokenizer handle", fn);
    ds8b__set_last_error(&e);
    return DS8B_E_MISUSE;
}

DS8B_API int ds8b_tokenizer_load(const char *path, ds8b_tokenizer **out) {
    ds8b__err e = {0};
    if (!out || !path) {
        if (out) *out = NULL;
        ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_tokenizer_load: NULL %s", path ? "out" : "path");
        ds8b__set_last_error(&e);
        return DS8B_E_INVALID;
    }
    *out = NULL;
    size_t n = strlen(path);
    int rc;
    if (n >= 5 && strcmp(path + n - 5, ".gguf") == 0) rc = ds8b__gguf_load_tokenizer(path, out, &e);
    else rc = ds8b__tok_load(path, out, &e);
    if (rc) ds8b__set_last_error(&e);
    return rc;
}

DS8B_API void ds8b_tokenizer_free(ds8b_tokenizer *tok) {
    if (tok_ok(tok)) ds8b__tok_free(tok);
}

DS8B_API int ds8b_tokenize(const ds8b_tokenizer *tok, const char *text, size_t len, int flags,
                           int32_t *ids, size_t cap, size_t *n_ids) {
    if (!tok_ok(tok)) return misuse("ds8b_tokenize");
    ds8b__err e = {0};
    if ((!text && len) || (!ids && cap) || !n_ids) {
        ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_tokenize: NULL %s", !n_ids ? "n_ids" : (!text && len) ? "text" : "ids");
        ds8b__set_last_error(&e);
        return DS8B_E_INVALID;
    }
    int32_t *out = NULL;
    size_t n = 0;
    int rc = ds8b__tok_encode(tok, text ? text : "", len, flags, &out, &n, &e);
    if (rc) { ds8b__set_last_error(&e); return rc; }
    *n_ids = n;
    if (n > cap) {
        if (cap) memcpy(ids, out, cap * sizeof(int32_t));
        ds8b__free(out);
        ds8b__seterr(&e, DS8B_E_BUFFER, "ds8b_tokenize: %zu ids do not fit in %zu", n, cap);
        ds8b__set_last_error(&e);
        return DS8B_E_BUFFER;
    }
    if (n) memcpy(ids, out, n * sizeof(int32_t));
    ds8b__free(out);
    return DS8B_OK;
}

DS8B_API int ds8b_detokenize(const ds8b_tokenizer *tok, const int32_t *ids, size_t n, int flags,
                             char *buf, size_t cap, size_t *len) {
    if (!tok_ok(tok)) return misuse("ds8b_detokenize");
    ds8b__err e = {0};
    if ((!ids && n) || (!buf && cap) || !len) {
        ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_detokenize: NULL %s", !len ? "len" : (!ids && n) ? "ids" : "buf");
        ds8b__set_last_error(&e);
        return DS8B_E_INVALID;
    }
    char *out = NULL;
    size_t l = 0;
    int rc = ds8b__tok_decode(tok, ids, n, flags, &out, &l, &e);
    if (rc) { ds8b__set_last_error(&e); return rc; }
    *len = l;
    size_t k = l < cap ? l : cap;
    if (k) memcpy(buf, out, k);
    if (l < cap) buf[l] = 0;
    ds8b__free(out);
    if (l > cap) {
        ds8b__seterr(&e, DS8B_E_BUFFER, "ds8b_detokenize: %zu bytes do not fit in %zu", l, cap);
        ds8b__set_last_error(&e);
        return DS8B_E_BUFFER;
    }
    return DS8B_OK;
}

DS8B_API int32_t ds8b_tokenizer_vocab_size(const ds8b_tokenizer *tok) {
    if (!tok_ok(tok)) { misuse("ds8b_tokenizer_vocab_size"); return DS8B_E_MISUSE; }
    return tok->n_vocab;
}
DS8B_API int32_t ds8b_tokenizer_bos(const ds8b_tokenizer *tok) { return tok_ok(tok) ? tok->bos_id : -1; }
DS8B_API int32_t ds8b_tokenizer_eos(const ds8b_tokenizer *tok) { return tok_ok(tok) ? tok->eos_id : -1; }
DS8B_API int ds8b_tokenizer_is_special(const ds8b_tokenizer *tok, int32_t id) {
    return tok_ok(tok) && ds8b__tok_is_special(tok, id) ? 1 : 0;
}

/* GGUF has no field for the normalizer; libds8b records NFC in its own key
 * (ds8b.tokenizer.nfc) so files it writes tokenize exactly like the
 * tokenizer.json they came from. */
bool ds8b__tok_has_nfc(const ds8b_tokenizer *t) {
    for (int i = 0; i < t->n_norm; i++)
        if (t->norm_opts[i] == (UTF8PROC_STABLE | UTF8PROC_COMPOSE)) return true;
    return false;
}

void ds8b__tok_force_nfc(ds8b_tokenizer *t) {
    if (!ds8b__tok_has_nfc(t) && t->n_norm < DS8B__TOK_MAX_NORM)
        t->norm_opts[t->n_norm++] = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
}
