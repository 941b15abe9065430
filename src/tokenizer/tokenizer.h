/*
 * tokenizer.h -- byte-level BPE tokenizer with Hugging Face `tokenizers`
 * semantics (internal API).
 *
 * What is implemented (read from tokenizer.json):
 *  - normalizer: null, NFC, NFD, NFKC, NFKD (utf8proc), Sequence of those;
 *  - pre_tokenizer: Split (Regex or String pattern; behaviours Isolated,
 *    Removed, MergedWithPrevious, MergedWithNext, Contiguous; invert),
 *    ByteLevel (add_prefix_space, use_regex with the GPT-2 regex), Sequence;
 *    regexes run on PCRE2 (UTF, UCP, JIT when available) with `\s`/`\S`
 *    rewritten to Unicode White_Space, as Oniguruma (used by HF) reads them;
 *  - model: BPE with merges as "a b" strings or ["a","b"] pairs,
 *    ignore_merges, unk_token; no dropout (ignored), no byte_fallback;
 *  - added tokens, matched leftmost-longest before pre-tokenization in two
 *    passes exactly like HF (tokens with normalized=false on the raw text,
 *    then normalized=true ones on the normalized text), with lstrip, rstrip
 *    and single_word; DS8B_TOKENIZE_NO_PARSE_SPECIAL skips special ones
 *    (non-special added tokens such as <think> are still matched), like
 *    HF's encode_special_tokens=True;
 *  - post_processor: TemplateProcessing (single), ByteLevel (no-op on ids),
 *    BertProcessing/RobertaProcessing (cls A sep), Sequence;
 *  - decoder: ByteLevel (or none: tokens joined by spaces). As in HF, added
 *    tokens decode to their content verbatim; model tokens through the
 *    byte-level table; the byte stream is then made valid UTF-8.
 *  - tokenizer_config.json: chat_template, bos_token, eos_token,
 *    add_bos_token; end-of-generation ids.
 *
 * Invalid UTF-8 input: before anything else, each maximal invalid
 * subsequence (the "maximal subpart" rule of Unicode ch. 3, which is also
 * what WHATWG and Rust's String::from_utf8_lossy do) is replaced by one
 * U+FFFD. Examples: "\xC3" at the end -> U+FFFD; "\xE4\xB8" then "A" ->
 * U+FFFD "A"; overlong "\xC0\xAF" -> U+FFFD U+FFFD; surrogate "\xED\xA0\x80"
 * -> three U+FFFD; "\xFF" -> U+FFFD. Encoding never fails on text.
 * Decoding applies the same rule to the decoded byte stream.
 *
 * GGUF (ds8b__tok_from_vocab): GGUF stores no normalizer, so NFC is
 * applied for the pre names "qwen2"/"deepseek-r1-qwen" (as Qwen's
 * tokenizer.json does) and not otherwise; the demo tokenizer.json has NFC
 * but its GGUF says "llama-bpe", so the two differ on non-NFC input only.
 * The "deepseek-llm" regexes are an approximation (letters as \p{L}).
 *
 * Thread safety: a built tokenizer is immutable; encode/decode allocate
 * their scratch per call.
 */
#ifndef DS8B_TOKENIZER_H
#define DS8B_TOKENIZER_H

#include "internal.h"

/* struct ds8b_tokenizer is the public opaque type, defined in tok_internal.h. */

/* tokenizer.json file, or a dir holding tokenizer.json (+ optional tokenizer_config.json). */
int ds8b__tok_load(const char *path, ds8b_tokenizer **out, ds8b__err *e);
int ds8b__tok_from_json(const char *json, size_t len, const char *config_json /*may be NULL*/,
                        size_t config_len, const char *name_for_msgs, ds8b_tokenizer **out,
                        ds8b__err *e);
/* Build from GGUF-style arrays. tokens are byte-level-encoded strings as in
 * tokenizer.json's vocab (control and user-defined tokens: their content);
 * types are GGUF token types (1 normal, 2 unknown, 3 control, 4
 * user-defined, 5 unused, 6 byte); merges are "a b" strings; pre is
 * tokenizer.ggml.pre (NULL = "default"). Control tokens become special
 * added tokens, user-defined ones non-special added tokens. bos/eos may be
 * -1. add_bos makes DS8B_TOKENIZE_ADD_SPECIAL prepend bos. */
int ds8b__tok_from_vocab(const char *const *tokens, const size_t *token_lens,
                         const int32_t *types, size_t n_tokens, const char *const *merges,
                         const size_t *merge_lens, size_t n_merges, const char *pre,
                         int32_t bos, int32_t eos, int add_bos, ds8b_tokenizer **out,
                         ds8b__err *e);
void ds8b__tok_free(ds8b_tokenizer *t);

/* ids heap-allocated with ds8b__malloc (DS8B_MEM_OTHER; free with
 * ds8b__free; may be NULL when *n == 0); flags DS8B_TOKENIZE_* */
int ds8b__tok_encode(const ds8b_tokenizer *t, const char *text, size_t len, int flags,
                     int32_t **ids, size_t *n, ds8b__err *e);
/* out heap-allocated (DS8B_MEM_OTHER), NUL-terminated; flags DS8B_DETOKENIZE_*.
 * Invalid ids are skipped. */
int ds8b__tok_decode(const ds8b_tokenizer *t, const int32_t *ids, size_t n, int flags,
                     char **out, size_t *len, ds8b__err *e);
/* Raw bytes a token stands for (after byte-level decoding; special tokens
 * give their content). Returns false for an invalid id. *len always gets
 * the full length; when it exceeds cap, only cap bytes are written and the
 * call returns false. */
bool ds8b__tok_token_bytes(const ds8b_tokenizer *t, int32_t id, char *buf, size_t cap,
                           size_t *len);

/* Streaming detokenizer: feed one id at a time, get out only complete UTF-8
 * (incomplete trailing bytes held; bytes that can never complete become
 * U+FFFD). Start from a zeroed struct. A token emits at most
 * 3 * (its byte length + 3) bytes; when cap is smaller than what this push
 * produces, DS8B_E_BUFFER is returned with *len = bytes needed and the
 * stream is unchanged. Invalid ids give DS8B_E_INVALID. With
 * DS8B_DETOKENIZE_SKIP_SPECIAL special tokens emit nothing. */
typedef struct ds8b__detok_stream {
    unsigned char pend[8];
    int npend;
} ds8b__detok_stream;
int ds8b__detok_push(const ds8b_tokenizer *t, ds8b__detok_stream *s, int32_t id, int flags,
                     char *out, size_t cap, size_t *len);
/* Emits U+FFFD for held incomplete bytes (if any) and resets the stream. */
int ds8b__detok_flush(ds8b__detok_stream *s, char *out, size_t cap, size_t *len);

/* exact vocab/added-token lookup (added-token content first, then the
 * byte-level vocab string), -1 if absent */
int32_t ds8b__tok_find(const ds8b_tokenizer *t, const char *token_text);
bool ds8b__tok_is_eog(const ds8b_tokenizer *t, int32_t id);
/* All end-of-generation ids (eos first); *n receives the count. */
const int32_t *ds8b__tok_eog_ids(const ds8b_tokenizer *t, size_t *n);
const char *ds8b__tok_chat_template(const ds8b_tokenizer *t); /* NULL if none */
const char *ds8b__tok_bos_str(const ds8b_tokenizer *t);       /* NULL if none */
const char *ds8b__tok_eos_str(const ds8b_tokenizer *t);       /* NULL if none */
int32_t ds8b__tok_bos(const ds8b_tokenizer *t);               /* -1 if none */
int32_t ds8b__tok_eos(const ds8b_tokenizer *t);               /* -1 if none */
/* Padding token: tokenizer_config.json's pad_token, or a GGUF file's
 * tokenizer.ggml.padding_token_id (set_pad; ids out of range ignored).
 * Only written to GGUF files; tokenizing never uses it. -1 if none. */
int32_t ds8b__tok_pad(const ds8b_tokenizer *t);
void ds8b__tok_set_pad(ds8b_tokenizer *t, int32_t id);
/* add_bos_token from tokenizer_config.json when given; otherwise whether
 * the post-processor puts a special token first. */
bool ds8b__tok_add_bos(const ds8b_tokenizer *t);
int32_t ds8b__tok_n_vocab(const ds8b_tokenizer *t); /* highest id + 1 */
bool ds8b__tok_is_special(const ds8b_tokenizer *t, int32_t id);

/* ---- For writing GGUF ---- */
/* Token id (0 <= id < n_vocab): *s and *len get the tokenizer.ggml.tokens
 * string (byte-level vocab string; for added tokens their content; for ids
 * that are holes in the vocab "[PAD<id>]" written into buf of cap bytes),
 * *type the GGUF token type (1 normal, 3 control, 4 user-defined, 5
 * unused). Returns false for an id out of range. */
bool ds8b__tok_vocab_entry(const ds8b_tokenizer *t, int32_t id, const char **s, size_t *len,
                           int32_t *type, char *buf, size_t cap);
size_t ds8b__tok_n_merges(const ds8b_tokenizer *t);
/* Merge of rank i as its two byte-level strings. */
bool ds8b__tok_merge(const ds8b_tokenizer *t, size_t i, const char **a, size_t *alen,
                     const char **b, size_t *blen);
/* tokenizer.ggml.pre name for the pre-tokenizer ("llama-bpe", "qwen2",
 * "deepseek-v3", "deepseek-llm", "default", ...). */
const char *ds8b__tok_pre_name(const ds8b_tokenizer *t);

/* GGUF tokenizer loader, defined by the GGUF reader (src/formats). A weak
 * fallback returning DS8B_E_UNSUPPORTED lives in tok_gguf_weak.c. */
extern int ds8b__gguf_load_tokenizer(const char *path, ds8b_tokenizer **out, ds8b__err *e);

/* Whether the tokenizer applies NFC; force NFC on a tokenizer built from
 * GGUF arrays (files written by libds8b carry ds8b.tokenizer.nfc). */
bool ds8b__tok_has_nfc(const ds8b_tokenizer *t);
void ds8b__tok_force_nfc(ds8b_tokenizer *t);

#endif /* DS8B_TOKENIZER_H */
