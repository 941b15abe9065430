/* fuzz_gbnf.c -- compiles the input as a GBNF grammar; when it compiles,
 * matches a few texts against it: the bytes after the first NUL (if any),
 * then prefixes of the grammar text itself, feeding byte by byte and
 * copying / saving / reloading the matcher state on the way. Limits are
 * the library's own: a hostile grammar must fail with an error, quickly. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/grammar.h"

static void match(const ds8b_grammar *g, const uint8_t *t, size_t n) {
    ds8b__err e = {0};
    ds8b__gmatch m = {0}, c = {0};
    if (ds8b__gm_init(&m, g, &e) == 0) {
        for (size_t i = 0; i < n && !ds8b__gm_dead(&m); i++) {
            if (ds8b__gm_feed(&m, t + i, 1, &e)) break;
            (void)ds8b__gm_can_end(&m);
            (void)ds8b__gm_must_end(&m);
            if (i % 7 == 3) {
                size_t sz = ds8b__gm_saved_size(&m);
                uint8_t *buf = malloc(sz);
                if (buf) {
                    ds8b__gm_save(&m, buf);
                    if (ds8b__gm_load(&c, g, buf, sz, &e) == 0) {
                        bool ok = false;
                        ds8b__gm_allows(&c, t + i, n - i, &ok, &e);
                    }
                    free(buf);
                }
            }
        }
    }
    ds8b__gm_free(&c);
    ds8b__gm_free(&m);
    int a = 0;
    ds8b_grammar_accepts(g, (const char *)t, n, &a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *z = memchr(data, 0, size);
    size_t glen = z ? (size_t)(z - data) : size;
    ds8b_grammar *g = NULL;
    ds8b__err e = {0};
    if (ds8b__grammar_compile((const char *)data, glen, NULL, &g, &e) != 0) return 0;
    if (z) match(g, z + 1, size - glen - 1);
    match(g, data, glen < 256 ? glen : 256);
    ds8b__grammar_destroy(g);
    return 0;
}
