/* fuzz_json_schema.c -- converts the input as a JSON Schema to GBNF and,
 * when that succeeds, compiles the grammar (it must compile or hit a
 * grammar bound: the converter's output is never a syntax error) and
 * matches a few fixed JSON texts against it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/grammar.h"
#include "grammar/json_schema.h"

static const char *const TEXTS[] = {"{}", "[]", "null", "0", "-12.5e3", "\"a\\n\\u00e9\"", "{\"a\": [1, true]}",
                                    "[\"x\", {\"k\": null}]", "\"2024-02-28\"", "true"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *g = NULL;
    size_t n = 0;
    ds8b__err e = {0};
    if (ds8b__json_schema_to_gbnf((const char *)data, size, &g, &n, &e) != 0) {
        if (g) abort(); /* no output on error */
        return 0;
    }
    if (!g || strlen(g) != n || strncmp(g, "root ::= ", 9) != 0) abort();
    ds8b_grammar *gr = NULL;
    int rc = ds8b__grammar_compile(g, n, "root", &gr, &e);
    /* A generated grammar is well-formed: it compiles, or hits a bound, or
     * is left-recursive (a schema that refers to itself before any text). */
    if (rc != 0 && rc != DS8B_E_LIMIT && rc != DS8B_E_NOMEM && !(rc == DS8B_E_GRAMMAR && strstr(e.msg, "left recursion")))
        abort();
    if (rc == 0) {
        for (size_t i = 0; i < sizeof TEXTS / sizeof TEXTS[0]; i++) {
            int acc;
            ds8b_grammar_accepts(gr, TEXTS[i], strlen(TEXTS[i]), &acc);
        }
        ds8b_grammar_free(gr);
    }
    ds8b__free(g);
    return 0;
}
