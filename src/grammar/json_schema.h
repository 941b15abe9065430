/* json_schema.h -- JSON Schema to GBNF (internal). See docs/json-schema.md
 * for the supported keywords, the whitespace rule and the limits. */
#ifndef DS8B_JSON_SCHEMA_H
#define DS8B_JSON_SCHEMA_H

#include "internal.h"

/* Bounds: a schema is input. */
#define DS8B__JS_MAX_INPUT (4u << 20)   /* bytes of schema text */
#define DS8B__JS_MAX_DEPTH 64           /* nesting of subschemas (and of merges, refs) */
#define DS8B__JS_MAX_OUTPUT (1u << 20)  /* bytes of generated GBNF */
#define DS8B__JS_MAX_RULES 4096         /* rules in the generated grammar */
#define DS8B__JS_MAX_REPEAT 1000        /* minLength, maxLength, minItems, maxItems, {m,n} (the GBNF bound) */
#define DS8B__JS_MAX_REF_CHAIN 32       /* $ref that point to $ref ... */
#define DS8B__JS_MAX_PATTERN 4096       /* bytes of one pattern */
#define DS8B__JS_INT_DIGITS 16          /* digits of an integer without a maximum */

/* Converts the JSON Schema text json[0..len) to GBNF text (NUL-terminated,
 * heap, DS8B_MEM_OTHER; free with ds8b__free). The start rule is `root`.
 * "{}" and "true" give the any-JSON-value grammar. Errors: DS8B_E_FORMAT
 * (not JSON), DS8B_E_UNSUPPORTED (a keyword, format or regex feature this
 * converter does not handle; the message names it and its JSON-pointer
 * path), DS8B_E_INVALID (a schema that is malformed or can match nothing),
 * DS8B_E_LIMIT (a bound above), DS8B_E_NOMEM. */
int ds8b__json_schema_to_gbnf(const char *json, size_t len, char **gbnf, size_t *gbnf_len,
                              ds8b__err *e);

/* The any-JSON-value grammar (same whitespace rule), heap text as above. */
int ds8b__json_any_gbnf(char **gbnf, size_t *gbnf_len, ds8b__err *e);

#endif
