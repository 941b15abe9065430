/*
 * tok_json.h -- a small JSON reader for tokenizer.json / tokenizer_config.json.
 *
 * The whole document is parsed into one node array plus one string arena
 * (both through ds8b__malloc), so a 11 MB tokenizer.json costs two big
 * allocations instead of a million small ones. Strings keep their length
 * (they may hold "\u0000"), and surrogate pairs are joined into UTF-8.
 * Nesting is limited to DS8B__TJ_MAX_DEPTH so hostile input cannot exhaust
 * the stack.
 */
#ifndef DS8B_TOK_JSON_H
#define DS8B_TOK_JSON_H

#include "internal.h"

#define DS8B__TJ_MAX_DEPTH 128

enum { DS8B__TJ_NULL, DS8B__TJ_FALSE, DS8B__TJ_TRUE, DS8B__TJ_NUM, DS8B__TJ_STR,
       DS8B__TJ_ARR, DS8B__TJ_OBJ };

typedef struct ds8b__tj_node {
    uint8_t type;
    uint32_t key_off, key_len;   /* key in the arena when the parent is an object */
    uint32_t str_off, str_len;   /* string value in the arena */
    uint32_t first, next;        /* first child / next sibling; 0 = none (node 0 is the root) */
    uint32_t count;              /* number of children */
    double num;
} ds8b__tj_node;

typedef struct ds8b__tj_doc {
    ds8b__tj_node *nodes;
    uint32_t n_nodes, cap_nodes;
    char *arena;                 /* unescaped strings, each NUL-terminated */
    size_t arena_len, arena_cap;
} ds8b__tj_doc;

/* Parses len bytes. name is used in messages. On failure the doc is empty. */
int ds8b__tj_parse(ds8b__tj_doc *d, const char *json, size_t len, const char *name, ds8b__err *e);
void ds8b__tj_free(ds8b__tj_doc *d);

/* Accessors; all accept a NULL node and return NULL/defaults. */
static inline const ds8b__tj_node *ds8b__tj_root(const ds8b__tj_doc *d) {
    return d->n_nodes ? &d->nodes[0] : NULL;
}
const ds8b__tj_node *ds8b__tj_get(const ds8b__tj_doc *d, const ds8b__tj_node *obj, const char *key);
static inline const ds8b__tj_node *ds8b__tj_first(const ds8b__tj_doc *d, const ds8b__tj_node *n) {
    return (n && n->first) ? &d->nodes[n->first] : NULL;
}
static inline const ds8b__tj_node *ds8b__tj_next(const ds8b__tj_doc *d, const ds8b__tj_node *n) {
    return (n && n->next) ? &d->nodes[n->next] : NULL;
}
static inline const char *ds8b__tj_str(const ds8b__tj_doc *d, const ds8b__tj_node *n) {
    return (n && n->type == DS8B__TJ_STR) ? d->arena + n->str_off : NULL;
}
static inline const char *ds8b__tj_key(const ds8b__tj_doc *d, const ds8b__tj_node *n) {
    return d->arena + n->key_off;
}
static inline bool ds8b__tj_is(const ds8b__tj_node *n, int type) { return n && n->type == type; }
/* Child number i of an array (linear walk). */
const ds8b__tj_node *ds8b__tj_at(const ds8b__tj_doc *d, const ds8b__tj_node *arr, uint32_t i);
/* True for true, false for anything else; def when absent or null. */
bool ds8b__tj_bool(const ds8b__tj_node *n, bool def);

#endif
