/*
 * tok_internal.h -- the tokenizer's data structures, shared by the files of
 * src/tokenizer only.
 */
#ifndef DS8B_TOK_INTERNAL_H
#define DS8B_TOK_INTERNAL_H

#include "tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#define DS8B__TOK_MAGIC 0x6b6f7438u /* "8tok" */
#define DS8B__TOK_MAX_VOCAB (1 << 24)

/* Per-id attributes. */
enum {
    DS8B__TA_MODEL = 1,       /* in the BPE model vocab */
    DS8B__TA_ADDED = 2,       /* an added token */
    DS8B__TA_SPECIAL = 4,     /* added token with special=true (GGUF control) */
    DS8B__TA_NORMALIZED = 8,  /* matched on normalized text */
    DS8B__TA_LSTRIP = 16,
    DS8B__TA_RSTRIP = 32,
    DS8B__TA_SINGLE_WORD = 64,
    DS8B__TA_UNUSED = 128     /* GGUF "unused" type */
};

/* Open-addressing hash: slots hold value+1 (0 = empty). */
typedef struct ds8b__tok_hash {
    uint32_t *slots;
    uint32_t mask;
} ds8b__tok_hash;

/* Byte trie for added-token matching. */
typedef struct ds8b__tok_trie_node {
    int32_t first, next; /* first child, next sibling; -1 = none */
    int32_t added;       /* index into added[], or -1 */
    uint8_t byte;
} ds8b__tok_trie_node;
typedef struct ds8b__tok_trie {
    ds8b__tok_trie_node *nodes;
    uint32_t n, cap;
    uint8_t first_byte[32]; /* bitmap of bytes that start some token */
    bool empty;
} ds8b__tok_trie;

typedef struct ds8b__tok_added {
    uint32_t off, len;           /* content in the arena */
    uint32_t norm_off, norm_len; /* normalized content (normalized tokens) */
    int32_t id;
} ds8b__tok_added;

enum { DS8B__PRE_SPLIT = 1, DS8B__PRE_BYTELEVEL = 2 };
enum { DS8B__SPLIT_ISOLATED, DS8B__SPLIT_REMOVED, DS8B__SPLIT_MERGED_PREV,
       DS8B__SPLIT_MERGED_NEXT, DS8B__SPLIT_CONTIGUOUS };
typedef struct ds8b__tok_pre {
    int kind;
    pcre2_code *re;      /* Split pattern, or ByteLevel's GPT-2 regex when use_regex */
    int behavior;
    bool invert;
    bool add_prefix_space;
    bool use_regex;
    char *src;           /* the pattern as written (for pre-name detection) */
} ds8b__tok_pre;

#define DS8B__TOK_MAX_NORM 4
#define DS8B__TOK_MAX_PRE 8

struct ds8b_tokenizer {
    uint32_t magic;
    char *name;

    int32_t n_vocab;       /* highest id + 1 */
    uint8_t *attr;         /* [n_vocab] DS8B__TA_* */
    uint32_t *mstr_off, *mstr_len; /* [n_vocab] model vocab string (byte-level) */
    uint32_t *raw_off, *raw_len;   /* [n_vocab] decoded bytes */
    int32_t *added_of;     /* [n_vocab] index in added[] or -1 */
    char *arena;
    size_t arena_len, arena_cap;

    ds8b__tok_hash vocab;  /* model string -> id */
    ds8b__tok_added *added;
    uint32_t n_added;
    ds8b__tok_hash added_hash; /* content -> added index */
    ds8b__tok_trie trie_raw, trie_norm;

    /* merges by rank */
    int32_t *merge_a, *merge_b, *merge_new;
    uint32_t n_merges;
    ds8b__tok_hash merges; /* (a,b) -> rank */

    int32_t byte_id[256];  /* id of each byte's one-character token, -1 if absent */
    int32_t unk_id;
    bool ignore_merges;

    int norm_opts[DS8B__TOK_MAX_NORM]; /* utf8proc option sets, applied in order */
    int n_norm;

    ds8b__tok_pre pre[DS8B__TOK_MAX_PRE];
    int n_pre;

    int32_t *post_prefix, *post_suffix;
    uint32_t n_post_prefix, n_post_suffix;

    int decoder;           /* 0 = none (join with spaces), 1 = ByteLevel */

    char *chat_template, *bos_str, *eos_str, *pad_str;
    int cfg_add_bos;       /* -1 unknown, 0, 1 */
    int32_t bos_id, eos_id, pad_id;
    int32_t eog[16];
    uint32_t n_eog;
    const char *pre_name;

    pcre2_general_context *gctx;
};

/* Byte-level alphabet: byte -> code point, code point (< 324) -> byte. */
extern uint16_t ds8b__bl_byte2cp[256]; /* filled when the first tokenizer is made */
int ds8b__bl_cp2byte(uint32_t cp);

/* UTF-8 scanning with the maximal-subpart rule. Returns the sequence
 * length (1..4) of a valid character at s (with *cp), or 0 for an invalid
 * subsequence whose length goes to *bad (>= 1). If the bytes run out while
 * the sequence is still a valid prefix, returns -1 and *bad = bytes seen. */
int ds8b__utf8_scan(const unsigned char *s, size_t n, uint32_t *cp, size_t *bad);

/* Hash helpers */
uint64_t ds8b__tok_strhash(const char *s, size_t n);
int32_t ds8b__tok_vocab_lookup(const ds8b_tokenizer *t, const char *s, size_t n);
int32_t ds8b__tok_merge_lookup(const ds8b_tokenizer *t, int32_t a, int32_t b, int32_t *new_id);

#endif
