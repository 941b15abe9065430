/* json_schema_api.c -- public entry points for JSON Schema grammars. */
#include "grammar/grammar.h"
#include "grammar/json_schema.h"

static int compile_gbnf(char *gbnf, size_t n, ds8b_grammar **out, ds8b__err *e) {
    int rc = ds8b__grammar_compile(gbnf, n, "root", out, e);
    if (rc) ds8b__errprefix(e, "json schema: the generated grammar does not compile");
    ds8b__free(gbnf);
    return rc;
}

DS8B_API int ds8b_grammar_from_json_schema(const char *schema_json, size_t len, ds8b_grammar **out) {
    ds8b__err e = {0};
    char *gbnf = NULL;
    size_t n = 0;
    int rc;
    if (!out || !schema_json) rc = ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_grammar_from_json_schema: NULL argument");
    else {
        *out = NULL;
        rc = ds8b__json_schema_to_gbnf(schema_json, len, &gbnf, &n, &e);
        if (!rc) rc = compile_gbnf(gbnf, n, out, &e);
    }
    if (rc) ds8b__set_last_error(&e);
    return rc;
}

DS8B_API int ds8b_grammar_any_json(ds8b_grammar **out) {
    ds8b__err e = {0};
    char *gbnf = NULL;
    size_t n = 0;
    int rc;
    if (!out) rc = ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_grammar_any_json: NULL argument");
    else {
        *out = NULL;
        rc = ds8b__json_any_gbnf(&gbnf, &n, &e);
        if (!rc) rc = compile_gbnf(gbnf, n, out, &e);
    }
    if (rc) ds8b__set_last_error(&e);
    return rc;
}

DS8B_API int ds8b_json_schema_to_gbnf(const char *schema_json, size_t len, char *buf, size_t cap,
                                      size_t *out_len) {
    ds8b__err e = {0};
    char *gbnf = NULL;
    size_t n = 0;
    int rc;
    if (!schema_json || !out_len) rc = ds8b__seterr(&e, DS8B_E_INVALID, "ds8b_json_schema_to_gbnf: NULL argument");
    else rc = ds8b__json_schema_to_gbnf(schema_json, len, &gbnf, &n, &e);
    if (!rc) {
        *out_len = n;
        if (!buf || cap < n + 1)
            rc = ds8b__seterr(&e, DS8B_E_BUFFER, "ds8b_json_schema_to_gbnf: the grammar needs %zu bytes plus a NUL", n);
        else {
            memcpy(buf, gbnf, n);
            buf[n] = 0;
        }
    }
    ds8b__free(gbnf);
    if (rc) ds8b__set_last_error(&e);
    return rc;
}
