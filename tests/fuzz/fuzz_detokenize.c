/* fuzz_detokenize.c -- decode arbitrary id sequences (including invalid
 * ids) with the qwen3-like byte-level tables of the demo tokenizer, or a
 * tiny built-in one when shared/ is not reachable. Checks: the streaming
 * detokenizer yields only valid UTF-8 pieces whose concatenation equals the
 * one-shot decode of the valid ids. */
#include "internal.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>

static const char MINI[] =
    "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"\\u00e4\":1,\"\\u00b8\":2,\"\\u0143\":3,\"\\u00e4\\u00b8\":4,"
    "\"\\u00f0\":5,\"\\u0141\":6,\"\\u00a4\":7,\"\\u012c\":8},\"merges\":[\"\\u00e4 \\u00b8\"]},"
    "\"added_tokens\":[{\"id\":9,\"content\":\"<|x|>\",\"special\":true}],\"decoder\":{\"type\":\"ByteLevel\"}}";

static ds8b_tokenizer *T;
static int inited;

static int valid_utf8(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t l;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) l = 2;
        else if (c >= 0xE0 && c <= 0xEF) { l = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
        else if (c >= 0xF0 && c <= 0xF4) { l = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
        else return 0;
        if (i + l > n) return 0;
        for (size_t j = 1; j < l; j++) {
            unsigned char d = (unsigned char)s[i + j];
            if (d < lo || d > hi) return 0;
            lo = 0x80; hi = 0xBF;
        }
        i += l;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!inited) {
        inited = 1;
        const char *sh = getenv("DS8B_SHARED");
        char path[2048];
        snprintf(path, sizeof path, "%s/tokenizers/demo", sh && *sh ? sh : "../shared");
        if (ds8b__tok_load(path, &T, NULL) != 0)
            ds8b__tok_from_json(MINI, sizeof MINI - 1, NULL, 0, "fuzz-mini", &T, NULL);
        if (!T) __builtin_trap();
    }
    if (size < 1) return 0;
    int flags = data[0] & 1;
    size_t n = (size - 1) / 2;
    int32_t nv = ds8b__tok_n_vocab(T);
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        int v = data[1 + 2 * i] | (data[2 + 2 * i] << 8);
        /* mostly small ids (bytes), sometimes out of range */
        ids[i] = (v & 0x8000) ? (int32_t)(v & 0x7fff) - 16 : (int32_t)(v % (nv + 3));
    }
    char *whole = NULL;
    size_t wl = 0;
    if (ds8b__tok_decode(T, ids, n, flags, &whole, &wl, NULL) != 0) __builtin_trap();
    if (!valid_utf8(whole, wl)) __builtin_trap();
    char *acc = malloc(wl + 8);
    size_t got = 0;
    ds8b__detok_stream st = {0};
    char piece[8192];
    for (size_t i = 0; i < n; i++) {
        size_t l = 0;
        int rc = ds8b__detok_push(T, &st, ids[i], flags, piece, sizeof piece, &l);
        if (rc == DS8B_E_INVALID) continue;
        if (rc != 0 || !valid_utf8(piece, l) || got + l > wl) __builtin_trap();
        memcpy(acc + got, piece, l);
        got += l;
    }
    size_t l = 0;
    if (ds8b__detok_flush(&st, piece, sizeof piece, &l) != 0 || got + l != wl) __builtin_trap();
    memcpy(acc + got, piece, l);
    if (memcmp(acc, whole, wl) != 0) __builtin_trap();
    free(acc);
    ds8b__free(whole);
    free(ids);
    return 0;
}
