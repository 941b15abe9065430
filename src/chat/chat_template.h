/*
 * chat_template.h -- a sandboxed interpreter for the Jinja subset used by
 * Hugging Face chat templates (tokenizer_config.json "chat_template").
 *
 * Rendering follows transformers' apply_chat_template: Jinja2 with
 * trim_blocks and lstrip_blocks on, autoescape off, globals messages,
 * add_generation_prompt, bos_token, eos_token, raise_exception() and
 * strftime_now(), plus whatever the caller passes in `extra` (tools,
 * documents, enable_thinking, ...).
 *
 * The sandbox performs no I/O, reads attributes only of dicts, lists and
 * strings (a fixed whitelist of methods), and bounds loop iterations,
 * nesting depth, output size, working memory and template size. Exceeding
 * a bound fails with DS8B_E_LIMIT; syntax errors and raise_exception() fail
 * with DS8B_E_TEMPLATE (the message carries line and column, or the text
 * the template raised).
 */
#ifndef DS8B_CHAT_TEMPLATE_H
#define DS8B_CHAT_TEMPLATE_H

#include "internal.h"
#include <cjson/cJSON.h>
#include <stdbool.h>

typedef struct ds8b__tmpl ds8b__tmpl; /* compiled template: immutable, shareable */

/* Sandbox bounds. Zero fields take the defaults below. */
typedef struct ds8b__tmpl_limits {
    size_t max_output;      /* bytes of rendered text (default 8 MiB) */
    size_t max_memory;      /* working memory of one render (default 64 MiB) */
    uint64_t max_iterations;/* loop iterations + list items processed (default 1e6) */
    int max_depth;          /* nesting of calls/macros at render time (default 64) */
} ds8b__tmpl_limits;

#define DS8B__TMPL_MAX_SOURCE   (1u << 20) /* template source bytes */
#define DS8B__TMPL_MAX_NESTING  64         /* block and expression nesting */

int ds8b__tmpl_compile(const char *src, size_t len, ds8b__tmpl **out, ds8b__err *e);
void ds8b__tmpl_free(ds8b__tmpl *t);

/* messages: a cJSON array of objects. extra: optional cJSON object of extra
 * globals (e.g. tools), may be NULL. bos_token / eos_token may be NULL (then
 * undefined in the template). On success *out is a NUL-terminated heap string
 * (free with ds8b__free) of *out_len bytes. */
int ds8b__tmpl_render(const ds8b__tmpl *t, const cJSON *messages, bool add_generation_prompt,
                      const char *bos_token, const char *eos_token, const cJSON *extra,
                      char **out, size_t *out_len, ds8b__err *e);
/* As ds8b__tmpl_render with explicit bounds (lim may be NULL). */
int ds8b__tmpl_render_ex(const ds8b__tmpl *t, const cJSON *messages, bool add_generation_prompt,
                         const char *bos_token, const char *eos_token, const cJSON *extra,
                         const ds8b__tmpl_limits *lim, char **out, size_t *out_len,
                         ds8b__err *e);

/* Built-in templates for model files that carry none: "deepseek-r1" (the
 * DeepSeek V3/R1 format as the shipped tokenizer_config.json renders it),
 * "deepseek-r1-distill" (the R1 distill variant: thinking dropped from earlier
 * assistant turns, generation prompt opens <think>), "llama3" and "chatml".
 * Returns the Jinja source, or NULL for an unknown name. */
const char *ds8b__tmpl_builtin(const char *name);

#endif /* DS8B_CHAT_TEMPLATE_H */
