/* fuzz_tokenizer_json.c -- arbitrary bytes as tokenizer.json (and, after a
 * NUL separator, as tokenizer_config.json). A load either fails with an
 * error code and message or yields a tokenizer that encodes and decodes. */
#include "internal.h"
#include "tokenizer/tokenizer.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *js = (const char *)data;
    const char *nul = memchr(data, 0, size);
    size_t jl = nul ? (size_t)(nul - js) : size;
    const char *cfg = nul ? nul + 1 : NULL;
    size_t cl = nul ? size - jl - 1 : 0;
    ds8b_tokenizer *t = NULL;
    ds8b__err e = {0};
    int rc = ds8b__tok_from_json(js, jl, cfg, cl, "fuzz", &t, &e);
    if (rc != 0) {
        if (t || e.msg[0] == 0) __builtin_trap();
        return 0;
    }
    static const char text[] = "Hello, world! 123 caf\xC3\xA9 <s> \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80\xFF";
    int32_t *ids = NULL;
    size_t n = 0;
    if (ds8b__tok_encode(t, text, sizeof text - 1, DS8B_TOKENIZE_ADD_SPECIAL, &ids, &n, NULL) != 0) __builtin_trap();
    char *out = NULL;
    size_t ol = 0;
    if (ds8b__tok_decode(t, ids, n, 0, &out, &ol, NULL) != 0) __builtin_trap();
    ds8b__detok_stream st = {0};
    char piece[4096];
    for (size_t i = 0; i < n; i++) {
        size_t l;
        ds8b__detok_push(t, &st, ids[i], 0, piece, sizeof piece, &l);
    }
    ds8b__free(out);
    ds8b__free(ids);
    (void)ds8b__tok_find(t, "<s>");
    (void)ds8b__tok_chat_template(t);
    ds8b__tok_free(t);
    return 0;
}
