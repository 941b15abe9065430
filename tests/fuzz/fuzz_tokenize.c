/* fuzz_tokenize.c -- encode arbitrary bytes with a small built-in tokenizer
 * (NFC, Llama-3 split regex, ByteLevel, added tokens with lstrip/rstrip/
 * single_word, TemplateProcessing) and, when shared/ is reachable, with the
 * demo tokenizer. Byte 0 of the input selects the flags. Checks: encoding
 * never fails, ids are in range, decoding gives valid UTF-8. */
#include "internal.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>

static char *mini_json(size_t *len) {
    /* 256 byte tokens, a few merges, added tokens */
    size_t cap = 1 << 16, k = 0;
    char *s = malloc(cap);
    k += (size_t)snprintf(s + k, cap - k,
        "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"}]},"
        "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
        "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(?i:'s|'t)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},"
        "{\"type\":\"Split\",\"pattern\":{\"String\":\"x\"},\"behavior\":\"MergedWithNext\",\"invert\":false},"
        "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]},"
        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
        "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}}],"
        "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[262],\"tokens\":[\"<s>\"]}}},"
        "\"decoder\":{\"type\":\"ByteLevel\"},"
        "\"added_tokens\":["
        "{\"id\":262,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
        "{\"id\":263,\"content\":\"<tool>\",\"special\":false,\"lstrip\":true,\"rstrip\":true,\"normalized\":false},"
        "{\"id\":264,\"content\":\"word\",\"special\":false,\"single_word\":true,\"normalized\":true},"
        "{\"id\":265,\"content\":\"\\u00e9t\\u00e9\",\"special\":false,\"normalized\":true}],"
        "\"model\":{\"type\":\"BPE\",\"ignore_merges\":true,\"vocab\":{");
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int cp = ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) ? b : 256 + n++;
        k += (size_t)snprintf(s + k, cap - k, "\"\\u%04x\":%d,", cp, b);
    }
    k += (size_t)snprintf(s + k, cap - k,
        "\"\\u0120t\":256,\"he\":257,\"\\u0120the\":258,\"aa\":259,\"aaaa\":260,\"\\u0120\\u0120\":261},"
        "\"merges\":[\"\\u0120 t\",\"h e\",[\"\\u0120t\",\"he\"],\"a a\",\"aa aa\",\"\\u0120 \\u0120\"]}}");
    *len = k;
    return s;
}

static ds8b_tokenizer *T[2];
static int inited;

static void check_one(const ds8b_tokenizer *t, const uint8_t *data, size_t size, int flags) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (ds8b__tok_encode(t, (const char *)data, size, flags, &ids, &n, NULL) != 0) __builtin_trap();
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= ds8b__tok_n_vocab(t)) __builtin_trap();
    char *out = NULL;
    size_t ol = 0;
    if (ds8b__tok_decode(t, ids, n, flags >> 2, &out, &ol, NULL) != 0) __builtin_trap();
    ds8b__free(out);
    ds8b__free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!inited) {
        inited = 1;
        size_t jl;
        char *js = mini_json(&jl);
        ds8b__tok_from_json(js, jl, NULL, 0, "fuzz-mini", &T[0], NULL);
        free(js);
        const char *sh = getenv("DS8B_SHARED");
        char path[2048];
        snprintf(path, sizeof path, "%s/tokenizers/demo", sh && *sh ? sh : "../shared");
        ds8b__tok_load(path, &T[1], NULL);
        if (!T[0]) __builtin_trap();
    }
    if (size == 0) return 0;
    int flags = data[0] & 7;
    for (int i = 0; i < 2; i++)
        if (T[i]) check_one(T[i], data + 1, size - 1, flags);
    return 0;
}
